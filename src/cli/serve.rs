//! `seakeeper serve` (the daemon), `seakeeper reconcile --once` (one pass, for cron and
//! debugging) and `seakeeper status [--json]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::daemon::{Daemon, Options, Settings, Status};

pub(super) const DEFAULT_SETTINGS: &str = "/etc/seakeeper/settings.yaml";

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// The local settings file.
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    settings: PathBuf,
    /// Seconds between full passes over every project (events trigger passes in between).
    #[arg(long, default_value_t = 60)]
    full_every: u64,
    /// Seconds to wait on SIGTERM for running jobs to end and be recorded. They keep running
    /// after seakeeper exits (each under its own supervisor) and the next start adopts them,
    /// so the default is not to wait.
    #[arg(long, default_value_t = 0)]
    grace: u64,
    /// Jobs at once (default: `executor.concurrency` from seakeeper.yaml).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Start a new ledger when this server has none and the config's ledger remote holds none
    /// (once, for a new deployment; refused when a ledger exists). Without it a server never
    /// starts a second ledger by itself.
    #[arg(long)]
    init_ledger: bool,
}

#[derive(Debug, Args)]
pub(super) struct ReconcileArgs {
    /// The local settings file.
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    settings: PathBuf,
    /// One pass (the only mode: `serve` runs the loop).
    #[arg(long)]
    once: bool,
    /// Wait for the jobs the pass starts, and record and report them, before returning
    /// (always so with the local executor, whose jobs end with the process).
    #[arg(long)]
    wait: bool,
    /// Jobs at once.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Start a new ledger when this server has none and the config's ledger remote holds none
    /// (once, for a new deployment; refused when a ledger exists). Without it a server never
    /// starts a second ledger by itself.
    #[arg(long)]
    init_ledger: bool,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// The local settings file.
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    settings: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `seakeeper retention run`.
#[derive(Debug, Args)]
pub(super) struct RetentionArgs {
    /// The local settings file.
    #[arg(long, default_value = DEFAULT_SETTINGS)]
    settings: PathBuf,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// One retention sweep now (the daemon runs one every `every` of `policies/retention.yaml`).
pub(super) fn retention(a: RetentionArgs) -> anyhow::Result<ExitCode> {
    let settings = load(&a.settings)?;
    let mut d = Daemon::open(
        settings,
        Options {
            reporter: stdout_reporter(),
            concurrency: None,
            supervisor: crate::daemon::this_program(),
            init_ledger: false,
        },
    )?;
    let report = d.retention_now(a.dry_run);
    d.shutdown();
    let report = report?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let verb = if a.dry_run { "would delete" } else { "deleted" };
        for e in &report.expired {
            println!(
                "{verb} {} {} from {}: {}",
                e.name, e.digest, e.store, e.rule
            );
        }
        println!(
            "{} {verb}; {} builds read; {} kept for now and decided again next sweep",
            report.expired.len(),
            report.builds_read,
            report.pending
        );
        for (path, bytes) in &report.caches_expired {
            println!("{verb} cache {path} ({bytes} bytes, unused for the policy's cache_days)");
        }
        for e in &report.errors {
            eprintln!("error: {e}");
        }
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Set by SIGTERM or SIGINT.
pub(super) static STOP: std::sync::LazyLock<Arc<AtomicBool>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicBool::new(false)));

fn stdout_reporter() -> crate::apply::Reporter {
    Arc::new(|line: &str| println!("{}", line.trim_end()))
}

fn load(path: &std::path::Path) -> anyhow::Result<Settings> {
    Settings::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

pub(super) fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = load(&a.settings)?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, STOP.clone())?;
    }
    let mut d = Daemon::open(
        settings.clone(),
        Options {
            reporter: stdout_reporter(),
            concurrency: a.concurrency,
            supervisor: crate::daemon::this_program(),
            init_ledger: a.init_ledger,
        },
    )?;
    let web = super::web::start(&settings, None, d.feed(), false)?;
    exit_soon_after_stop(Duration::from_secs(a.grace) + STOP_DEADLINE);
    eprintln!("seakeeper: serving (pid {})", std::process::id());
    d.serve(
        &STOP,
        Duration::from_secs(a.full_every.max(1)),
        Duration::from_secs(a.grace),
    )?;
    if let Some(w) = web {
        w.stop();
    }
    eprintln!("seakeeper: stopped");
    Ok(ExitCode::SUCCESS)
}

/// How long the daemon may take to stop after SIGTERM (beyond `--grace`), whatever it is
/// doing: a pass blocked on a slow server is abandoned.
const STOP_DEADLINE: Duration = Duration::from_secs(9);

/// Ends the process `deadline` after SIGTERM if it has not ended by itself. What it abandons is
/// safe to abandon: ledger records are durable before anything acts on them, a copy records
/// nothing until it is checked at the target, and jobs run under their own supervisors (the
/// next start adopts them) -- as after `kill -9`, which the tests do at every step.
fn exit_soon_after_stop(deadline: Duration) {
    let _ = std::thread::Builder::new()
        .name("stop-deadline".into())
        .spawn(move || {
            while !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(deadline);
            eprintln!(
                "seakeeper: still busy {} s after SIGTERM (a server is slow to answer); \
                 stopping now, the next start picks up what was left",
                deadline.as_secs()
            );
            std::process::exit(0);
        });
}

pub(super) fn reconcile(a: ReconcileArgs) -> anyhow::Result<ExitCode> {
    if !a.once {
        anyhow::bail!("reconcile runs one pass: pass --once (the loop is `seakeeper serve`)");
    }
    let settings = load(&a.settings)?;
    let mut d = Daemon::open(
        settings,
        Options {
            reporter: stdout_reporter(),
            concurrency: a.concurrency,
            supervisor: crate::daemon::this_program(),
            init_ledger: a.init_ledger,
        },
    )?;
    let failed = run_once(&mut d, a.wait)?;
    print!("{}", d.status().render());
    let gerrit_down = d.gerrit_error().is_some();
    d.shutdown();
    if gerrit_down {
        eprintln!("seakeeper: Gerrit could not be read (see status)");
    }
    Ok(if failed == 0 && !gerrit_down {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One pass; with `wait`, more passes until the builds it started are reported. Returns the
/// number of actions that failed in any of these passes (a failure is not hidden by a later
/// pass that, backing off, did not try again).
pub(super) fn run_once(d: &mut Daemon, wait: bool) -> anyhow::Result<usize> {
    let mut report = d.pass(None)?;
    let mut failed = report.failed.len();
    // A pass that starts local jobs waits for them (see `Daemon::local_jobs`).
    let wait = wait || d.local_jobs();
    while wait && report.busy {
        std::thread::sleep(Duration::from_millis(20));
        report = d.pass(Some(Vec::new()))?;
        failed += report.failed.len();
    }
    // A copy that ended between the pass that started it and its `busy` (a promotion whose
    // source lacks the digest fails at once) has an outcome to take: one more pass takes it.
    if d.copies_pending() {
        std::thread::sleep(Duration::from_millis(20));
        failed += d.pass(Some(Vec::new()))?.failed.len();
    }
    d.flush_status();
    if !d.flush_replication(Duration::from_secs(30)) {
        eprintln!("warning: the ledger is not yet replicated to its remote (see status)");
    }
    Ok(failed)
}

pub(super) fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let settings = load(&a.settings)?;
    let path = settings.state_dir.join("status.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{}: no status yet (has seakeeper serve or reconcile --once run with these settings?)",
            path.display()
        )
    })?;
    let status: Status = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a status file", path.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print!("{}", status.render());
    }
    Ok(ExitCode::SUCCESS)
}
