//! CLI entry: parse arguments, start logging, run the subcommand, map errors to exit codes
//! (0 success, 1 failure, 2 usage).

use std::process::ExitCode;

use clap::Parser as _;
use seakeeper::cli::LogFormat;

fn main() -> ExitCode {
    let cli = seakeeper::cli::Cli::parse();
    match cli.log_format() {
        Ok(format) => init_logging(format),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    }
    match seakeeper::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Diagnostics go to stderr through `tracing`: warnings always, more with
/// `SEAKEEPER_LOG=info|debug|trace` (`error` or `off` for fewer). As text for people, or with
/// `--log-format json` (or `SEAKEEPER_LOG_FORMAT=json`) one JSON object per line, with the
/// time, level, target, the event's fields, its span (a reconcile `pass`, an `action`) and the
/// spans around it, for log collectors.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::filter::LevelFilter;
    let level = match std::env::var("SEAKEEPER_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "error" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        _ => LevelFilter::WARN,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).without_time().try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
