//! `seakeeper gerrit events`: normalizes `gerrit stream-events` lines into domain events.

use std::io::{BufRead as _, Write as _};
use std::process::{ExitCode, Stdio};

use anyhow::Context as _;
use clap::Subcommand;

use crate::gerrit;

#[derive(Debug, Subcommand)]
pub(super) enum GerritCommand {
    /// Read stream-events JSON lines from stdin (or from COMMAND's output) and print one
    /// normalized domain event per line as JSON. Malformed lines go to stderr with their line
    /// number; the rest continue. Exits 0 at the end of input.
    Events {
        /// A command whose output is the stream, e.g.
        /// "ssh -p 29418 seakeeper@gerrit.example.org gerrit stream-events" (run by sh -c).
        #[arg(long)]
        command: Option<String>,
    },
}

pub(super) fn run(cmd: GerritCommand) -> anyhow::Result<ExitCode> {
    let GerritCommand::Events { command } = cmd;
    let mut child = None;
    let input: Box<dyn std::io::BufRead> = match &command {
        None => Box::new(std::io::stdin().lock()),
        Some(c) => {
            let mut ch = std::process::Command::new("sh")
                .args(["-c", c])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .with_context(|| format!("starting {c:?}"))?;
            let out = ch.stdout.take().expect("stdout was piped");
            child = Some(ch);
            Box::new(std::io::BufReader::new(out))
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading line {}", i + 1))?;
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        match gerrit::parse_line(&text) {
            Ok(event) => {
                serde_json::to_writer(&mut out, &event)?;
                out.write_all(b"\n")?;
            }
            Err(e) => eprintln!("line {}: {e}", i + 1),
        }
    }
    out.flush()?;
    if let Some(mut ch) = child {
        let status = ch.wait()?;
        if !status.success() {
            eprintln!("the stream command exited with {status}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
