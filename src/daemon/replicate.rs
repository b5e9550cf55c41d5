//! Ledger replication: after each write the ledger's branch is pushed to its remote (for
//! example a Gerrit project only seakeeper may push to), in the background, with retries and
//! never forced, so the remote can only ever gain commits. A fresh server with an empty state
//! directory starts from the remote's ledger instead of a new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::git::mirror::run_git;
use crate::ledger::pull::{PullError, pull};
use crate::ledger::{LEDGER_REF, Ledger, VerifyOptions};
use crate::signing::{Authority, SigningKey};

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

/// Creates the ledger at `dir` on a server that has none: from `remote` when it holds a
/// ledger that verifies against `authority` (every commit, with the roles its records need),
/// or, only when `init` says so, a new one (which replication then pushes). A server never
/// starts a second ledger by itself: with no remote, or a remote that holds none, it fails
/// naming `--init-ledger`; with a remote it cannot read, it fails naming the remote.
pub fn bootstrap(
    dir: &Path,
    remote: Option<&str>,
    credentials: Option<&(String, String)>,
    key: &mut SigningKey,
    authority: &Authority,
    init: bool,
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
    if let Some(parent) = aside.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let made = bootstrap_into(&aside, dir, remote, credentials, key, authority, init);
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&aside);
        return Err(e);
    }
    std::fs::rename(&aside, dir)?;
    if let Some(parent) = dir.parent() {
        let _ = crate::git::sync_dir(parent);
    }
    Ok(())
}

fn bootstrap_into(
    aside: &Path,
    dir: &Path,
    remote: Option<&str>,
    credentials: Option<&(String, String)>,
    key: &mut SigningKey,
    authority: &Authority,
    init: bool,
) -> anyhow::Result<()> {
    let new_ledger = |key: &mut SigningKey| -> anyhow::Result<()> {
        Ledger::init(aside, key)?;
        eprintln!("seakeeper: started a new ledger at {}", dir.display());
        Ok(())
    };
    let Some(remote) = remote else {
        if init {
            return new_ledger(key);
        }
        anyhow::bail!(
            "there is no ledger at {} and the config names no ledger.remote to restore it \
             from; to start a new ledger (once, for a new deployment), run with --init-ledger",
            dir.display()
        );
    };
    // An empty repository to fetch into; HEAD names the ledger's branch, as `ledger init`'s does.
    drop(gix::init_bare(aside).map_err(|e| anyhow::anyhow!("{}: {e}", aside.display()))?);
    std::fs::write(aside.join("HEAD"), format!("ref: {LEDGER_REF}\n"))?;
    let options = VerifyOptions {
        pinned: None,
        authority: Some(authority.clone()),
    };
    match pull(aside, remote, credentials, &options, None) {
        Ok(pulled) => {
            let _ = crate::git::sync_dir(aside);
            eprintln!(
                "seakeeper: ledger restored from {} at {} ({} commits verified)",
                redact(remote),
                pulled.after,
                pulled.commits
            );
            Ok(())
        }
        Err(PullError::NoLedger { remote: shown }) => {
            if init {
                std::fs::remove_dir_all(aside)?;
                return new_ledger(key);
            }
            anyhow::bail!(
                "the ledger remote {shown} holds no ledger yet and there is none at {}; to \
                 start a new ledger (once, for a new deployment), run with --init-ledger",
                dir.display()
            )
        }
        Err(e @ PullError::Unreachable { .. }) => Err(anyhow::anyhow!(
            "{e}; not starting a new ledger that would diverge from it"
        )),
        Err(e) => Err(e.into()),
    }
}

fn credentials_for<'a>(
    remote: &str,
    credentials: Option<&'a (String, String)>,
) -> Option<&'a (String, String)> {
    credentials.filter(|_| remote.starts_with("https://") || remote.starts_with("http://"))
}

fn redact(url: &str) -> String {
    crate::git::mirror::redact(url)
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
