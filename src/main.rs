//! CLI entry: parse arguments, run the subcommand, map errors to exit codes
//! (0 success, 1 failure, 2 usage).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    init_logging();
    let cli = seakeeper::cli::Cli::parse();
    match seakeeper::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Diagnostics go to stderr through `tracing`: warnings always, more with
/// `SEAKEEPER_LOG=info|debug|trace` (`error` or `off` for fewer).
fn init_logging() {
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
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false)
        .without_time()
        .try_init();
}
