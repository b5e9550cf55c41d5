//! Ledger replication: after each write the ledger's branch is pushed to its remote (for
//! example a Gerrit project only seakeeper may push to), in the background, with retries and
//! never forced, so the remote can only ever gain commits. A fresh server with an empty state
//! directory starts from the remote's ledger instead of a new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::git::mirror::run_git;
use crate::ledger::{LEDGER_REF, Ledger};
use crate::signing::SigningKey;

/// Replication as last seen.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The remote (credentials are never part of it).
    pub remote: String,
    /// The last commit the remote acknowledged.
    pub pushed: Option<String>,
    /// When.
    pub pushed_at: Option<String>,
    /// The last error, cleared by a successful push.
    pub error: Option<String>,
    /// Consecutive failures.
    pub failures: u32,
}

struct Shared {
    state: Mutex<(State, bool, bool)>, // (state, dirty, stop)
    changed: Condvar,
}

/// The background pusher.
pub struct Replicator {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Creates the ledger at `dir`: from `remote` when it already holds one, else a new one (which
/// replication then pushes).
pub fn bootstrap(
    dir: &Path,
    remote: Option<&str>,
    credentials: Option<&(String, String)>,
    key: &mut SigningKey,
) -> anyhow::Result<()> {
    // Built aside and renamed into place, so that a crash never leaves a half-made ledger
    // that later starts would take for a real one.
    let name = dir
        .file_name()
        .map_or_else(|| "ledger".into(), |n| n.to_string_lossy().into_owned());
    let aside = dir.with_file_name(format!(".{name}.bootstrap"));
    if aside.exists() {
        std::fs::remove_dir_all(&aside)?;
    }
    bootstrap_into(&aside, remote, credentials, key)?;
    std::fs::rename(&aside, dir)?;
    if let Some(parent) = dir.parent() {
        let _ = crate::git::sync_dir(parent);
    }
    Ok(())
}

fn bootstrap_into(
    dir: &Path,
    remote: Option<&str>,
    credentials: Option<&(String, String)>,
    key: &mut SigningKey,
) -> anyhow::Result<()> {
    if let Some(remote) = remote {
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let listed = run_git(
            parent,
            &["ls-remote", "--", remote, LEDGER_REF],
            credentials_for(remote, credentials),
        )
        .map_err(|e| {
            anyhow::anyhow!(
                "the ledger remote cannot be read ({e}); not starting a new ledger that would \
                 diverge from it"
            )
        })?;
        if !listed.trim().is_empty() {
            std::fs::create_dir_all(dir)?;
            run_git(dir, &["init", "--quiet", "--bare"], None)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            let refspec = format!("{LEDGER_REF}:{LEDGER_REF}");
            run_git(
                dir,
                &["fetch", "--quiet", "--no-tags", "--", remote, &refspec],
                credentials_for(remote, credentials),
            )
            .map_err(|e| anyhow::anyhow!("fetching the ledger from its remote: {e}"))?;
            let _ = crate::git::sync_dir(dir);
            // The fetched ledger must verify as ours before we append to it.
            Ledger::open(dir)?;
            eprintln!("seakeeper: ledger restored from {}", redact(remote));
            return Ok(());
        }
    }
    Ledger::init(dir, key)?;
    Ok(())
}

fn credentials_for<'a>(
    remote: &str,
    credentials: Option<&'a (String, String)>,
) -> Option<&'a (String, String)> {
    credentials.filter(|_| remote.starts_with("https://") || remote.starts_with("http://"))
}

fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Replicator {
    /// Starts pushing `dir`'s ledger to `remote`.
    pub fn start(dir: &Path, remote: &str, credentials: Option<(String, String)>) -> Replicator {
        let shared = Arc::new(Shared {
            state: Mutex::new((
                State {
                    remote: redact(remote),
                    ..State::default()
                },
                true,
                false,
            )),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        let dir: PathBuf = dir.to_owned();
        let remote = remote.to_owned();
        let thread = std::thread::Builder::new()
            .name("ledger-replication".into())
            .spawn(move || run(&s, &dir, &remote, credentials))
            .expect("spawning the replication thread");
        Replicator {
            shared,
            thread: Some(thread),
        }
    }

    /// A function that asks for a push (cheap; pushes coalesce).
    pub fn notifier(&self) -> Arc<dyn Fn() + Send + Sync> {
        let s = self.shared.clone();
        Arc::new(move || {
            let mut g = s.state.lock().unwrap_or_else(|p| p.into_inner());
            g.1 = true;
            s.changed.notify_all();
        })
    }

    /// The state now.
    pub fn state(&self) -> State {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Waits until nothing is left to push, at most `timeout`.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        while g.1 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = self
                .shared
                .changed
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Stops after a last push attempt.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        {
            let mut g = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
            g.2 = true;
            self.shared.changed.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn run(s: &Shared, dir: &Path, remote: &str, credentials: Option<(String, String)>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        {
            let mut g = s.state.lock().unwrap_or_else(|p| p.into_inner());
            while !g.1 && !g.2 {
                g = s.changed.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            if !g.1 && g.2 {
                return;
            }
        }
        let tip = crate::ledger::Ledger::open(dir)
            .ok()
            .and_then(|l| l.tip().ok().flatten())
            .map(|t| t.to_string());
        let refspec = format!("{LEDGER_REF}:{LEDGER_REF}");
        // Never forced: a remote that has diverged is an incident for people, not a retry.
        let r = run_git(
            dir,
            &["push", "--quiet", "--", remote, &refspec],
            credentials_for(remote, credentials.as_ref()),
        );
        let stopping;
        {
            let mut g = s.state.lock().unwrap_or_else(|p| p.into_inner());
            stopping = g.2;
            match r {
                Ok(_) => {
                    // Only clean if nothing new arrived while pushing.
                    let current = crate::ledger::Ledger::open(dir)
                        .ok()
                        .and_then(|l| l.tip().ok().flatten())
                        .map(|t| t.to_string());
                    if current == tip {
                        g.1 = false;
                    }
                    g.0.pushed = tip;
                    g.0.pushed_at = Some(crate::model::Timestamp::now().to_string());
                    g.0.error = None;
                    g.0.failures = 0;
                    backoff = Duration::from_millis(500);
                }
                Err(e) => {
                    g.0.error = Some(e.clone());
                    g.0.failures += 1;
                    crate::telemetry::warn(&format!(
                        "pushing the ledger to {} (attempt {}): {e}",
                        g.0.remote, g.0.failures
                    ));
                }
            }
            s.changed.notify_all();
            if stopping && (!g.1 || g.0.failures > 0) {
                return;
            }
            if g.0.failures > 0 {
                let _ = s.changed.wait_timeout(g, backoff);
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}
