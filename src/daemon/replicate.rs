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
    history: Option<crate::ledger::verify::History>,
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
    let made = bootstrap_into(
        &aside,
        dir,
        remote,
        credentials,
        key,
        &VerifyOptions {
            pinned: None,
            authority: Some(authority.clone()),
            history,
        },
        init,
    );
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
    options: &VerifyOptions,
    init: bool,
) -> anyhow::Result<()> {
    let new_ledger = |key: &mut SigningKey| -> anyhow::Result<()> {
        Ledger::init(aside, key)?;
        // A warning, so that it shows at the default level: a new ledger is a new history.
        tracing::warn!("started a new ledger at {}", dir.display());
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
    match pull(aside, remote, credentials, options, None) {
        Ok(pulled) => {
            let _ = crate::git::sync_dir(aside);
            tracing::warn!(
                "ledger restored from {} at {} ({} commits verified)",
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
    /// Starts pushing `dir`'s ledger to `remote`. `mark` is where the last head the remote
    /// acknowledged is kept: a remote found anywhere else (rewound, emptied, moved by someone
    /// else) is refused, not pushed over.
    pub fn start(
        dir: &Path,
        remote: &str,
        credentials: Option<(String, String)>,
        mark: PathBuf,
    ) -> Replicator {
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
        // Behind until the first push (or check) says otherwise.
        crate::metrics::get().replication_behind();
        let s = shared.clone();
        let dir: PathBuf = dir.to_owned();
        let remote = remote.to_owned();
        let thread = std::thread::Builder::new()
            .name("ledger-replication".into())
            .spawn(move || run(&s, &dir, &remote, credentials, &mark))
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
            // Under the lock, as the pusher clears it: a write during a push stays counted.
            crate::metrics::get().replication_behind();
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

    /// Waits until nothing is left to push, at most `timeout`; gives up at once when the
    /// remote was refused (that takes people, not time).
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut g = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        while g.1 {
            if g.0
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("REFUSED"))
            {
                return false;
            }
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

/// The remote's head as this server last pushed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMark {
    /// The remote (credentials removed).
    pub remote: String,
    /// The head it acknowledged.
    pub head: String,
}

impl RemoteMark {
    /// Reads the mark of `remote`; `None` when there is none (or it is another remote's). A
    /// mark that cannot be read is an error, not "no mark": without it a rewound remote would
    /// be pushed over.
    pub fn read(path: &Path, remote: &str) -> Result<Option<RemoteMark>, String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "REFUSED: {} cannot be read ({e}): not pushing until a person repairs or \
                     removes it",
                    path.display()
                ));
            }
        };
        let mark = serde_json::from_slice::<RemoteMark>(&bytes).map_err(|e| {
            format!(
                "REFUSED: {} is corrupt ({e}): not pushing until a person repairs or removes it",
                path.display()
            )
        })?;
        Ok(Some(mark).filter(|m| m.remote == redact(remote)))
    }

    /// Writes it durably.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("a mark serializes");
        crate::store::write_durably(path, &bytes)
    }
}

/// Whether the remote may be pushed to: it is where this server left it (or holds a head this
/// server pushed since: a crash can lose the acknowledgement). Returns the head to record when
/// the remote already has what we would push.
fn check_remote(
    dir: &Path,
    remote: &str,
    credentials: Option<&(String, String)>,
    mark: Option<&RemoteMark>,
    local: Option<&str>,
) -> Result<(), String> {
    let listed = run_git(dir, &["ls-remote", "--", remote, LEDGER_REF], credentials)?;
    let remote_head = listed.split_whitespace().next();
    let Some(mark) = mark else {
        return Ok(());
    };
    let Some(r) = remote_head else {
        return Err(format!(
            "REFUSED: the remote lost its ledger ({LEDGER_REF} is gone; this server last left it \
             at {}): not pushing over it",
            mark.head
        ));
    };
    if r == mark.head || Some(r) == local {
        return Ok(());
    }
    let known = run_git(dir, &["cat-file", "-e", &format!("{r}^{{commit}}")], None).is_ok();
    let is_ancestor =
        |a: &str, d: &str| run_git(dir, &["merge-base", "--is-ancestor", a, d], None).is_ok();
    if known && is_ancestor(r, &mark.head) {
        return Err(format!(
            "REFUSED: the remote was rewound from {} to {r}: not pushing over it",
            mark.head
        ));
    }
    if known && is_ancestor(&mark.head, r) && local.is_some_and(|l| is_ancestor(r, l)) {
        return Ok(());
    }
    Err(format!(
        "REFUSED: the remote's head {r} is not the {} this server left it at, nor one of its \
         own commits: someone else wrote to it; not pushing over it",
        mark.head
    ))
}

fn run(
    s: &Shared,
    dir: &Path,
    remote: &str,
    credentials: Option<(String, String)>,
    mark_path: &Path,
) {
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
        let creds = credentials_for(remote, credentials.as_ref());
        // Never forced, and never over a remote that is not where we left it: a remote that
        // was rewound or written by someone else is an incident for people, not a retry.
        let r = RemoteMark::read(mark_path, remote)
            .and_then(|mark| check_remote(dir, remote, creds, mark.as_ref(), tip.as_deref()))
            .and_then(|()| run_git(dir, &["push", "--quiet", "--", remote, &refspec], creds));
        if r.is_ok()
            && let Some(head) = &tip
        {
            let m = RemoteMark {
                remote: redact(remote),
                head: head.clone(),
            };
            if let Err(e) = m.write(mark_path) {
                tracing::warn!("{}: {e}", mark_path.display());
            }
        }
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
                        crate::metrics::get().replication_caught_up();
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
                    crate::metrics::get().replication_failures.inc();
                    tracing::warn!(
                        "pushing the ledger to {} (attempt {}): {e}",
                        g.0.remote,
                        g.0.failures
                    );
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
