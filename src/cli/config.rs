//! `seakeeper config check`: validates the config repo at a revision, from git objects.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config;

use super::print_json;

#[derive(Debug, Subcommand)]
pub(super) enum ConfigCommand {
    /// Validate the config: the working tree as it is on disk (by default), or the repository
    /// at a revision; print every error; exit 1 if there is any.
    Check {
        /// The config repository (a clone, whose working tree is checked by default, or a bare
        /// repository, whose HEAD is).
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// A revision instead of the working tree: a commit id, a branch, a tag, a ref, or any
        /// expression git knows (`HEAD~1`).
        #[arg(long)]
        rev: Option<String>,
        /// Print one JSON object: `ok`, `commit`, `errors` (file, line, column, field,
        /// message, suggestion) and, when valid, a `summary`.
        #[arg(long)]
        json: bool,
        /// The server's secret key: also open every sealed secret (`secrets/<NAME>.pgp`) with
        /// it, reporting one that was altered, is encrypted to another key or under another
        /// name. Values are never printed.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Print the resolved view: each project's pipelines with the enforced jobs merged in,
    /// active freezes, desired promotions and schedules.
    Show {
        /// The config repository.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// The revision.
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Show { repo, rev, json } => {
            let (commit, layout) = match super::pipeline::load_layout(&repo, &rev)? {
                Ok(ok) => ok,
                Err((commit, errors)) => {
                    for e in &errors {
                        println!("{e}");
                    }
                    eprintln!("{} error(s) in the config at {commit}", errors.len());
                    return Ok(ExitCode::from(1));
                }
            };
            let view = config::show(&layout, crate::model::Timestamp::now());
            if json {
                print_json(&serde_json::json!({"commit": commit, "view": view}))?;
            } else {
                println!("config at {commit}");
                println!("environments: {}", view.environments.join(" -> "));
                for (name, p) in &view.projects {
                    println!(
                        "project {name}{}",
                        p.queue
                            .as_ref()
                            .map(|q| format!(" (queue {q})"))
                            .unwrap_or_default()
                    );
                    for (pipeline, enforced) in &p.pipelines {
                        let mut parts = Vec::new();
                        if let Some(jobs) = p.central.get(pipeline).filter(|j| !j.is_empty()) {
                            parts.push(format!("central {}", jobs.join(", ")));
                        }
                        if !enforced.is_empty() {
                            parts.push(format!("enforced {}", enforced.join(", ")));
                        }
                        if parts.is_empty() {
                            println!("  {pipeline}");
                        } else {
                            println!("  {pipeline}: {}", parts.join("; "));
                        }
                    }
                    if !p.depends_on.is_empty() {
                        println!("  depends on {}", p.depends_on.join(", "));
                    }
                }
                for (env, images) in &view.promotions {
                    for (image, digest) in images {
                        println!("promote {image} to {env}: {digest}");
                    }
                }
                for (name, f) in &view.freezes {
                    let state = if f.active { "" } else { " (expired)" };
                    println!(
                        "freeze {name}{state}: {} — {}",
                        f.scope.join(", "),
                        f.reason
                    );
                }
                for s in &view.schedules {
                    println!(
                        "schedule {}: {} {} ({})",
                        s.name, s.project, s.branch, s.cron
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check {
            repo,
            rev,
            json,
            key,
        } => {
            let worktree = rev.is_none()
                && !repo.to_string_lossy().contains("://")
                && repo.join(".git").exists();
            let loaded = match (&rev, worktree) {
                (None, true) => super::pipeline::load_layout_worktree(&repo)?,
                (rev, _) => super::pipeline::load_layout(&repo, rev.as_deref().unwrap_or("HEAD"))?,
            };
            let key = match &key {
                Some(path) => Some((
                    std::fs::read(path)
                        .map_err(|e| anyhow::anyhow!("--key {}: {e}", path.display()))?,
                    path.display().to_string(),
                )),
                None => None,
            };
            let loaded = loaded.and_then(|(commit, layout)| {
                let errors = match &key {
                    Some((bytes, what)) => crate::daemon::job_secrets::check(&layout, bytes, what),
                    None => Vec::new(),
                };
                if errors.is_empty() {
                    Ok((commit, layout))
                } else {
                    Err((commit, errors))
                }
            });
            match loaded {
                Ok((commit, layout)) => {
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
                        if let Some((_, what)) = &key {
                            println!("{} secret(s) open with {what}", layout.secrets.len());
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err((commit, errors)) => {
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
