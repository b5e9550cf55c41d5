//! What the daemon publishes for readers on other threads (the web server): its status after
//! each pass, the keys it trusts, its executor (for live logs) and where Gerrit's webhook
//! events go. The daemon writes, readers only read; nothing here changes the World.

use std::collections::BTreeSet;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::Status;
use crate::executor::Executor;
use crate::gerrit::StreamItem;
use crate::ledger::verify::History;

/// See the module doc.
pub struct Feed {
    /// The status as of the last pass; readers wait on it for changes (`changed()`).
    status: tokio::sync::watch::Sender<Arc<Status>>,
    /// The config commit in use, and the keys trusted at any config commit.
    keys: RwLock<Option<(String, History)>>,
    /// The executor running this daemon's jobs.
    executor: RwLock<Option<Arc<dyn Executor>>>,
    /// Where webhook events go (set while `serve` runs).
    hints: Mutex<Option<Sender<StreamItem>>>,
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}

impl Feed {
    /// An empty feed: no status yet, no keys, no executor.
    pub fn new() -> Feed {
        let (status, _) = tokio::sync::watch::channel(Arc::new(Status::empty()));
        Feed {
            status,
            keys: RwLock::new(None),
            executor: RwLock::new(None),
            hints: Mutex::new(None),
        }
    }

    /// Publishes a new status (readers waiting on [`Feed::subscribe`] wake up).
    pub fn publish_status(&self, status: Status) {
        self.status.send_replace(Arc::new(status));
    }

    /// The status as last published.
    pub fn status(&self) -> Arc<Status> {
        self.status.borrow().clone()
    }

    /// A receiver that sees every later status.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<Status>> {
        self.status.subscribe()
    }

    /// Publishes the config commit in use and the keys trusted at each config commit.
    pub fn publish_keys(&self, config_commit: &str, history: History) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) =
            Some((config_commit.to_owned(), history));
    }

    /// The config commit in use and the keys at each config commit; `None` before the first
    /// valid config (then no signature is "allowed").
    pub fn keys(&self) -> Option<(String, History)> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the keys published are those of `config_commit`.
    pub fn keys_are_of(&self, config_commit: &str) -> bool {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(c, _)| c == config_commit)
    }

    /// Publishes the executor.
    pub fn publish_executor(&self, executor: Arc<dyn Executor>) {
        *self.executor.write().unwrap_or_else(|p| p.into_inner()) = Some(executor);
    }

    /// The executor, once the daemon has one.
    pub fn executor(&self) -> Option<Arc<dyn Executor>> {
        self.executor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets where webhook events go.
    pub fn set_hints(&self, tx: Option<Sender<StreamItem>>) {
        *self.hints.lock().unwrap_or_else(|p| p.into_inner()) = tx;
    }

    /// Hands a webhook event to the loop; false when no loop listens.
    pub fn hint(&self, item: StreamItem) -> bool {
        self.hints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| tx.send(item).is_ok())
    }
}

impl super::Daemon {
    /// What this daemon publishes for the web server.
    pub fn feed(&self) -> Arc<Feed> {
        self.feed.clone()
    }

    /// When the job `key` was first seen running (remembered while it runs).
    pub(crate) fn job_seen_running(
        &self,
        key: &str,
        state: Option<&crate::model::JobState>,
    ) -> Option<String> {
        let mut seen = self.job_seen.lock().unwrap_or_else(|p| p.into_inner());
        match state {
            Some(crate::model::JobState::Running) => Some(
                seen.entry(key.to_owned())
                    .or_insert_with(|| super::now().to_string())
                    .clone(),
            ),
            Some(s) if s.is_final() => seen.remove(key),
            _ => None,
        }
    }

    /// Forgets the start times of jobs no longer in flight.
    pub(crate) fn job_seen_retain(&self, in_flight: &BTreeSet<String>) {
        self.job_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| in_flight.contains(k));
    }

    /// Publishes the config in use with the keys trusted at each config commit, and the
    /// executor, when they changed.
    pub(super) fn publish(&mut self) {
        if let Some(commit) = &self.layout_commit {
            let commit = commit.to_string();
            if !self.feed.keys_are_of(&commit) {
                match self.key_history() {
                    Ok(h) => self.feed.publish_keys(&commit, h),
                    Err(e) => tracing::warn!("trusted keys: {e:#}"),
                }
            }
        }
        if let Some(svc) = &self.svc
            && self.feed.executor().is_none()
        {
            self.feed.publish_executor(svc.executor.clone());
        }
    }

    /// Events posted to the web server's Gerrit webhook wake the loop like stream events.
    pub(super) fn listen_to_webhooks(
        &self,
        tx: &std::sync::mpsc::Sender<super::Wake>,
    ) -> anyhow::Result<()> {
        let (htx, hrx) = std::sync::mpsc::channel::<StreamItem>();
        let forward = tx.clone();
        std::thread::Builder::new()
            .name("gerrit-webhook".into())
            .spawn(move || {
                for item in hrx {
                    if forward.send(super::Wake::Gerrit(Box::new(item))).is_err() {
                        break;
                    }
                }
            })?;
        self.feed.set_hints(Some(htx));
        Ok(())
    }

    /// The status as of the last pass.
    pub fn status(&self) -> Status {
        super::status::Status::of(self)
    }

    /// Writes the status skipped by the last [`Daemon::write_status`], if one was (the
    /// loop calls this at least every half second, so a quiet daemon's pages are not stale).
    pub(super) fn write_pending_status(&mut self) {
        if self.status_pending {
            self.write_status(false);
        }
    }

    /// Writes `<state>/status.json` now.
    pub fn flush_status(&mut self) {
        self.write_status(true);
    }

    /// Writes the status file and publishes the status, at most five times a second: a
    /// write skipped for that is remembered and done by [`Daemon::write_pending_status`].
    pub(super) fn write_status(&mut self, force: bool) {
        if !force
            && self
                .status_written
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < Duration::from_millis(200))
        {
            self.status_pending = true;
            return;
        }
        self.status_pending = false;
        let status = self.status();
        super::telemetry::set_gauges(&status);
        let Ok(text) = serde_json::to_string_pretty(&status.without_time()) else {
            return;
        };
        // Only when something changed (at most five times a second), or every 10 s.
        let due = match &self.status_written {
            None => true,
            Some((at, last)) => *last != text || at.elapsed() > Duration::from_secs(10),
        };
        if force || due {
            self.publish();
            self.feed.publish_status(status.clone());
            let path = self.settings.state_dir.join("status.json");
            if let Ok(full) = serde_json::to_vec_pretty(&status) {
                let tmp = path.with_extension("json.tmp");
                if std::fs::write(&tmp, &full).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
            self.status_written = Some((Instant::now(), text));
        }
    }
}
