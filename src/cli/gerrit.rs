//! `seakeeper gerrit events`: normalizes `gerrit stream-events` lines into domain events.
//! `seakeeper gerrit poll`: one pass of the ref watcher, printing what changed.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use crate::gerrit;
use crate::model::{ChangeNumber, ProjectName};

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
    /// One pass of the ref watcher: list the projects' refs (smart HTTP protocol v2, or a
    /// directory of bare repositories), compare with what STATE remembers, print one JSON line
    /// per change (new patchset, change meta updated, branch created/moved/deleted, other ref),
    /// then remember it. The first pass over a project only records its baseline.
    Poll {
        /// The Gerrit server (`https://gerrit.example.org`) or `file:///srv/git`.
        #[arg(long)]
        url: String,
        /// The directory where seen refs are kept (created if missing).
        #[arg(long)]
        state: PathBuf,
        /// A project to poll (repeatable).
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Poll every project of this config repo (a path or URL) instead.
        #[arg(long)]
        config_repo: Option<PathBuf>,
        /// The config repo revision.
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// Only this change's refs (`refs/changes/XX/N/`), as an event hint would.
        #[arg(long)]
        change: Option<u64>,
        /// The secrets file with `gerrit: {username, password}` (mode 0600).
        #[arg(long)]
        secrets: Option<PathBuf>,
        /// Read each change whose meta ref moved over REST and print it too.
        #[arg(long)]
        details: bool,
        /// Parallel requests.
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
}

pub(super) fn run(cmd: GerritCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GerritCommand::Events { command } => events(command),
        GerritCommand::Poll {
            url,
            state,
            projects,
            config_repo,
            rev,
            change,
            secrets,
            details,
            threads,
        } => poll(PollArgs {
            url,
            state,
            projects,
            config_repo,
            rev,
            change,
            secrets,
            details,
            threads,
        }),
    }
}

struct PollArgs {
    url: String,
    state: PathBuf,
    projects: Vec<String>,
    config_repo: Option<PathBuf>,
    rev: String,
    change: Option<u64>,
    secrets: Option<PathBuf>,
    details: bool,
    threads: usize,
}

fn poll(a: PollArgs) -> anyhow::Result<ExitCode> {
    let mut projects: Vec<ProjectName> = Vec::new();
    for p in &a.projects {
        projects.push(p.parse().with_context(|| format!("--project {p:?}"))?);
    }
    if let Some(repo) = &a.config_repo {
        match super::pipeline::load_layout(repo, &a.rev)? {
            Ok((_, layout)) => projects.extend(layout.projects.keys().cloned()),
            Err((commit, errors)) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                anyhow::bail!("the config repo at {commit} is invalid");
            }
        }
    }
    if projects.is_empty() {
        anyhow::bail!("no projects: give --project NAME (repeatable) or --config-repo");
    }
    let credentials = match &a.secrets {
        Some(path) => gerrit::load_gerrit_credentials(path)?,
        None => None,
    };
    let http = a.url.starts_with("http://") || a.url.starts_with("https://");
    let rest = if http {
        Some(
            gerrit::Rest::new(&a.url, credentials, Duration::from_secs(30))
                .map_err(|e| anyhow::anyhow!("--url: {e}"))?,
        )
    } else {
        None
    };
    if a.details && rest.is_none() {
        anyhow::bail!("--details needs an http(s) --url (a Gerrit server)");
    }
    let source = gerrit::RefSource::for_url(&a.url, rest.as_ref().map(|r| r.endpoint().clone()))
        .map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    let watcher = gerrit::RefWatcher::open(source, &a.state)?;
    let scope = match a.change {
        Some(n) => gerrit::Scope::Change(
            ChangeNumber::try_from(n).map_err(|e| anyhow::anyhow!("--change: {e}"))?,
        ),
        None => gerrit::Scope::All,
    };
    let work: Vec<(ProjectName, gerrit::Scope)> =
        projects.into_iter().map(|p| (p, scope.clone())).collect();
    let mut pass = gerrit::pass(
        &watcher,
        rest.as_ref().filter(|_| a.details),
        &work,
        a.threads,
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for o in std::mem::take(&mut pass.observations) {
        if o.first_sight {
            eprintln!(
                "{}: first sight, {} refs recorded as the baseline",
                o.project, o.listed
            );
        }
        for e in &o.events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        // A vote whose change could not be read is not remembered: the next pass reports it again.
        let unread = o.events.iter().any(|e| match e {
            gerrit::RefEvent::ChangeMetaUpdated {
                project, change, ..
            } => pass
                .changes
                .get(&(project.clone(), *change))
                .is_some_and(|r| r.is_err()),
            _ => false,
        });
        if unread {
            eprintln!(
                "{}: not remembered (a change could not be read); it is reported again next time",
                o.project
            );
        } else {
            watcher.acknowledge(o)?;
        }
    }
    for ((project, change), details) in &pass.changes {
        match details {
            Ok(c) => {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({"type": "change-details", "change": c}),
                )?;
                out.write_all(b"\n")?;
            }
            Err(e) => eprintln!("{project} change {change}: {e}"),
        }
    }
    let failed = pass.errors.len();
    for (project, e) in pass.errors {
        eprintln!("{project}: {e}");
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn events(command: Option<String>) -> anyhow::Result<ExitCode> {
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
