//! One watch per namespace over seakeeper's Jobs (selected by their `managed-by` label), kept
//! in a store that the executor's `state`, `wait` and lookups read: no thread or watch per
//! running job, and no GET per job on every pass. kube's watcher re-lists after a 410 Gone or a
//! reconnect; a Job missing from a re-list was deleted meanwhile. Until a namespace's first list
//! has been read (or while its watch keeps failing) the store does not speak for it, and the
//! executor asks the API directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::runtime::watcher;

use super::manifest::{BUILD_ID, JOB, MANAGED_BY};
use crate::model::JobKey;

/// Deleted Jobs remembered (for a waiter that looks after the deletion), at most.
const DELETED_KEPT: usize = 1024;

/// What the store knows of a Job.
#[derive(Debug, Clone)]
pub(super) enum Seen {
    /// It exists, as last seen.
    Present(Box<Job>),
    /// It was deleted; this is how it last looked.
    Deleted(Box<Job>),
    /// The store speaks for its namespaces and has not seen it (it may be too new).
    Absent,
    /// The store does not speak for every namespace yet (or a watch is failing): ask the API.
    Unknown,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<JobKey, Job>,
    deleted: HashMap<JobKey, Job>,
    /// Namespaces whose list has been read, and whose watch is not failing.
    synced: HashSet<String>,
    /// Bumped by every change (a waiter waits for it to move: no wake-up is lost).
    generation: u64,
}

/// The Jobs of every watched namespace.
pub(super) struct JobStore {
    namespaces: Vec<String>,
    inner: Mutex<Inner>,
    changed: Condvar,
}

/// A Job's key, from its annotations.
pub(super) fn key_of(job: &Job) -> Option<JobKey> {
    let a = job.metadata.annotations.as_ref()?;
    Some(JobKey {
        build_id: a.get(BUILD_ID)?.parse().ok()?,
        job: a.get(JOB)?.clone(),
    })
}

impl JobStore {
    /// A store for `namespaces` (each watched once, even when named twice).
    pub fn new(namespaces: &[&str]) -> JobStore {
        let mut ns: Vec<String> = namespaces.iter().map(|n| (*n).to_owned()).collect();
        ns.sort();
        ns.dedup();
        JobStore {
            namespaces: ns,
            inner: Mutex::new(Inner::default()),
            changed: Condvar::new(),
        }
    }

    /// The namespaces watched.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the store knows of `key`, and the store's generation (see
    /// [`JobStore::wait_change`]). A Job of a namespace whose watch is failing is `Unknown`:
    /// its last state may be stale.
    pub fn seen(&self, key: &JobKey) -> (Seen, u64) {
        let g = self.lock();
        let synced = |j: &Job| {
            j.metadata
                .namespace
                .as_ref()
                .is_some_and(|n| g.synced.contains(n))
        };
        let seen = if let Some(j) = g.jobs.get(key) {
            if synced(j) {
                Seen::Present(Box::new(j.clone()))
            } else {
                Seen::Unknown
            }
        } else if let Some(j) = g.deleted.get(key) {
            if synced(j) {
                Seen::Deleted(Box::new(j.clone()))
            } else {
                Seen::Unknown
            }
        } else if self.namespaces.iter().all(|n| g.synced.contains(n)) {
            Seen::Absent
        } else {
            Seen::Unknown
        };
        (seen, g.generation)
    }

    /// Every Job in the store, when it speaks for every namespace.
    pub fn all(&self) -> Option<Vec<(JobKey, Job)>> {
        let g = self.lock();
        self.namespaces
            .iter()
            .all(|n| g.synced.contains(n))
            .then(|| g.jobs.iter().map(|(k, j)| (k.clone(), j.clone())).collect())
    }

    /// Waits until the store's generation moves past `generation` (as [`JobStore::seen`]
    /// gave it), at most `timeout`.
    pub fn wait_change(&self, generation: u64, timeout: Duration) {
        let g = self.lock();
        let _ = self
            .changed
            .wait_timeout_while(g, timeout, |i| i.generation == generation)
            .unwrap_or_else(|p| p.into_inner());
    }

    /// Something changed: wake the waiters.
    fn bump(&self, mut g: std::sync::MutexGuard<'_, Inner>) {
        g.generation += 1;
        drop(g);
        self.changed.notify_all();
    }

    fn apply(&self, job: Job) {
        let mut g = self.lock();
        if let Some(k) = key_of(&job) {
            g.deleted.remove(&k);
            g.jobs.insert(k, job);
        }
        self.bump(g);
    }

    fn delete(&self, job: Job) {
        let mut g = self.lock();
        if let Some(k) = key_of(&job) {
            g.jobs.remove(&k);
            if g.deleted.len() >= DELETED_KEPT {
                g.deleted.clear();
            }
            g.deleted.insert(k, job);
        }
        self.bump(g);
    }

    /// A namespace listed afresh: what it holds now replaces what the store had of it.
    fn relisted(&self, ns: &str, listed: HashMap<JobKey, Job>) {
        let mut g = self.lock();
        let gone: Vec<JobKey> = g
            .jobs
            .iter()
            .filter(|(k, j)| {
                j.metadata.namespace.as_deref() == Some(ns) && !listed.contains_key(*k)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(j) = g.jobs.remove(&k) {
                if g.deleted.len() >= DELETED_KEPT {
                    g.deleted.clear();
                }
                g.deleted.insert(k, j);
            }
        }
        for (k, j) in listed {
            g.deleted.remove(&k);
            g.jobs.insert(k, j);
        }
        g.synced.insert(ns.to_owned());
        self.bump(g);
    }

    /// The watch of a namespace listed before is answering again (it resumed from where it
    /// was: nothing was missed).
    fn resumed(&self, ns: &str) {
        let mut g = self.lock();
        if !g.synced.contains(ns) {
            g.synced.insert(ns.to_owned());
            self.bump(g);
        }
    }

    fn failing(&self, ns: &str) {
        let mut g = self.lock();
        if g.synced.remove(ns) {
            self.bump(g);
        }
    }

    /// Watches one namespace for as long as the runtime runs.
    pub async fn watch(&self, api: Api<Job>, ns: String) {
        // The server ends each watch within a minute and the watcher resumes it: a connection
        // that died silently is found within that, not after kube's idle timeout of minutes.
        let config = watcher::Config::default()
            .labels(&format!("{MANAGED_BY}=seakeeper"))
            .timeout(55);
        let mut stream = watcher::watcher(api, config).boxed();
        let mut relist: Option<HashMap<JobKey, Job>> = None;
        let mut listed = false;
        while let Some(ev) = stream.next().await {
            if listed && matches!(ev, Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) {
                self.resumed(&ns);
            }
            match ev {
                Ok(watcher::Event::Init) => relist = Some(HashMap::new()),
                Ok(watcher::Event::InitApply(j)) => {
                    if let (Some(r), Some(k)) = (relist.as_mut(), key_of(&j)) {
                        r.insert(k, j);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    self.relisted(&ns, relist.take().unwrap_or_default());
                    listed = true;
                }
                Ok(watcher::Event::Apply(j)) => self.apply(j),
                Ok(watcher::Event::Delete(j)) => self.delete(j),
                // The watcher re-lists and reconnects by itself; meanwhile the executor asks
                // the API directly.
                Err(e) => {
                    if self.lock().synced.contains(&ns) {
                        tracing::warn!("watching jobs in {ns}: {e}; asking the API meanwhile");
                    } else {
                        tracing::debug!("watching jobs in {ns}: {e}");
                    }
                    self.failing(&ns);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
