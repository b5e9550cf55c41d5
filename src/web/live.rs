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
    /// Lines `from..` as kept now.
    pub fn lines_from(&self, from: usize) -> Vec<Arc<str>> {
        let lines = self.lines.read().unwrap_or_else(|p| p.into_inner());
        lines.get(from..).map(<[_]>::to_vec).unwrap_or_default()
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
    /// The console of job `key`, following it from the start if nobody does yet.
    pub fn console(
        &self,
        executor: Arc<dyn Executor>,
        key: &JobKey,
        secrets: Arc<Vec<String>>,
    ) -> Arc<Console> {
        let mut consoles = self.consoles.lock().unwrap_or_else(|p| p.into_inner());
        consoles.retain(|_, c| {
            c.ended_at
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none_or(|at| at.elapsed() < KEEP_ENDED)
        });
        if let Some(c) = consoles.get(&key.to_string()) {
            return c.clone();
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
            console.progress.send_modify(|p| {
                p.ended = Some(format!("error: cannot follow the log: {e}"));
            });
        }
        console
    }
}

/// `text` with each secret value (4 characters or more) replaced by `***`.
fn mask(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

fn follow(executor: &dyn Executor, key: &JobKey, console: &Console, secrets: &[String]) {
    let mut style = ansi::Style::default();
    let mut bytes = 0usize;
    let result = executor.logs(key, true, &mut |l| {
        let (html, next) = ansi::line(&mask(&l.text, secrets), style);
        style = next;
        let html = html.into_string();
        if bytes + html.len() > MAX_BYTES {
            console.progress.send_modify(|p| p.skipped += 1);
            return;
        }
        bytes += html.len();
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
    *console.ended_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    console.progress.send_modify(|p| p.ended = Some(ended));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            mask("token=hunter22 x", &["hunter22".into(), "x".into()]),
            "token=*** x"
        );
    }
}
