//! Live consoles: one follower thread per job being watched reads the executor's log
//! (`Executor::logs` with `follow`, the same for both executors), masks secrets, renders each
//! line to HTML once and keeps it; every viewer of that job (however many, however late)
//! reads the same lines from the start and then waits for more. Memory per job is bounded
//! ([`MAX_BYTES`]); past it, the rest is in the stored log once the job ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::executor::Executor;
use crate::model::JobKey;

use super::ansi;

/// Rendered bytes kept per job for viewers.
pub const MAX_BYTES: usize = 32 << 20;

/// How long an ended job's console stays in memory for late viewers.
const KEEP_ENDED: Duration = Duration::from_secs(300);

/// Consoles kept at once (each bounded by [`MAX_BYTES`]); past it, new ones are refused.
pub const MAX_CONSOLES: usize = 64;

/// What a kept line costs besides its text (its `Arc`, its slot), counted against
/// [`MAX_BYTES`], so that a job printing blank lines is bounded too.
const LINE_OVERHEAD: usize = 64;

/// How far a console has got: lines kept, and the job's end once it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Lines kept so far.
    pub lines: usize,
    /// Lines not kept (past [`MAX_BYTES`]).
    pub skipped: usize,
    /// How the job ended (`success`, `failure`, ...), once it did.
    pub ended: Option<String>,
}

/// One job's console.
pub struct Console {
    lines: RwLock<Vec<Arc<str>>>,
    progress: tokio::sync::watch::Sender<Progress>,
    ended_at: Mutex<Option<Instant>>,
}

impl Console {
    /// At most `max` lines from `from` on, as kept now.
    pub fn lines_from(&self, from: usize, max: usize) -> Vec<Arc<str>> {
        let lines = self.lines.read().unwrap_or_else(|p| p.into_inner());
        lines
            .get(from..)
            .map(|l| l[..l.len().min(max)].to_vec())
            .unwrap_or_default()
    }

    /// A receiver of the console's progress.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<Progress> {
        self.progress.subscribe()
    }
}

/// Consoles by job key.
#[derive(Default)]
pub struct Hub {
    consoles: Mutex<HashMap<String, Arc<Console>>>,
}

impl Hub {
    /// The console of job `key`, following it from the start if nobody does yet; `None` when
    /// [`MAX_CONSOLES`] are kept already.
    pub fn console(
        &self,
        executor: Arc<dyn Executor>,
        key: &JobKey,
        secrets: Arc<Vec<String>>,
    ) -> Option<Arc<Console>> {
        let mut consoles = self.consoles.lock().unwrap_or_else(|p| p.into_inner());
        consoles.retain(|_, c| {
            c.ended_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none_or(|at| at.elapsed() < KEEP_ENDED)
        });
        if let Some(c) = consoles.get(&key.to_string()) {
            return Some(c.clone());
        }
        if consoles.len() >= MAX_CONSOLES {
            return None;
        }
        let console = Arc::new(Console {
            lines: RwLock::new(Vec::new()),
            progress: tokio::sync::watch::channel(Progress::default()).0,
            ended_at: Mutex::new(None),
        });
        consoles.insert(key.to_string(), console.clone());
        let c = console.clone();
        let k = key.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("live {k}"))
            .spawn(move || follow(&*executor, &k, &c, &secrets));
        if let Err(e) = spawned {
            end(&console, format!("error: cannot follow the log: {e}"));
        }
        Some(console)
    }
}

/// Ends a console. One that failed (the log could not be read) is dropped from the hub at
/// once, so the next viewer tries again rather than seeing the same error for minutes.
fn end(console: &Console, ended: String) {
    let at = if ended.starts_with("error") {
        Instant::now()
            .checked_sub(KEEP_ENDED)
            .unwrap_or_else(Instant::now)
    } else {
        Instant::now()
    };
    *console.ended_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(at);
    console.progress.send_modify(|p| p.ended = Some(ended));
}

fn follow(executor: &dyn Executor, key: &JobKey, console: &Console, secrets: &[String]) {
    let mut style = ansi::Style::default();
    let mut bytes = 0usize;
    let result = executor.logs(key, true, &mut |l| {
        let (html, next) = ansi::line(&crate::apply::mask_secrets(&l.text, secrets), style);
        style = next;
        let html = html.into_string();
        let cost = html.len() + LINE_OVERHEAD;
        if bytes + cost > MAX_BYTES {
            console.progress.send_modify(|p| p.skipped += 1);
            return;
        }
        bytes += cost;
        let n = {
            let mut lines = console.lines.write().unwrap_or_else(|p| p.into_inner());
            lines.push(Arc::from(html));
            lines.len()
        };
        console.progress.send_modify(|p| p.lines = n);
    });
    let ended = match result {
        Err(e) => format!("error: {e}"),
        Ok(()) => match executor.state(key) {
            Ok(Some(s)) if s.is_final() => crate::reconcile::job_status(Some(&s)).as_str().into(),
            Ok(Some(_)) => "error: the log ended before the job".into(),
            Ok(None) => "error: the executor does not know the job".into(),
            Err(e) => format!("error: {e}"),
        },
    };
    end(console, ended);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_bounded() {
        let c = Console {
            lines: RwLock::new((0..10).map(|i| Arc::from(i.to_string())).collect()),
            progress: tokio::sync::watch::channel(Progress::default()).0,
            ended_at: Mutex::new(None),
        };
        assert_eq!(c.lines_from(2, 3).len(), 3);
        assert_eq!(c.lines_from(8, 3).len(), 2);
        assert!(c.lines_from(11, 3).is_empty());
    }
}
