//! CLI entry: parse arguments, run the subcommand, map errors to exit codes
//! (0 success, 1 failure, 2 usage).

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = seakeeper::cli::Cli::parse();
    match seakeeper::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
