//! `seakeeper config check`: validates the config repo at a revision, from git objects.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use crate::config;
use crate::git::files;

use super::print_json;

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate the config repo at a revision; print every error; exit 1 if there is any.
    Check {
        /// The config repository (a local clone or bare repository).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The revision: a commit id, a branch, a tag or a full ref name.
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// Print one JSON object: `ok`, `commit`, `errors` (file, line, column, field,
        /// message, suggestion) and, when valid, a `summary`.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { repo, rev, json } => {
            let r = gix::open_opts(&repo, gix::open::Options::isolated())
                .with_context(|| format!("{} is not a git repository", repo.display()))?;
            let commit = files::resolve(&r, &rev)?;
            let all = files::read_all(&r, &commit)?;
            let bytes: BTreeMap<String, Vec<u8>> =
                all.into_iter().map(|(p, f)| (p, f.bytes)).collect();
            match config::load(&bytes) {
                Ok(layout) => {
                    if json {
                        print_json(
                            &serde_json::json!({"ok": true, "commit": commit.to_string(), "errors": [], "summary": layout.summary()}),
                        )?;
                    } else {
                        let s = layout.summary();
                        println!(
                            "ok: config at {commit} is valid ({} environments: {}; {} projects; {} active freezes)",
                            s.environments.len(),
                            s.environments.join(" -> "),
                            s.projects,
                            s.freezes.len()
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(errors) => {
                    if json {
                        print_json(
                            &serde_json::json!({"ok": false, "commit": commit.to_string(), "errors": errors}),
                        )?;
                    } else {
                        for e in &errors {
                            println!("{e}");
                        }
                        eprintln!("{} error(s) in the config at {commit}", errors.len());
                    }
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
