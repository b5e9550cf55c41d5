//! Work the reconcile pass hands to threads of its own (promotion copies, fetching a
//! patchset's source and parsing its pipeline file), so that a slow server or a large untrusted
//! file holds up nothing else: a pass starts a task and moves on, a later pass takes its result.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Shared<K, V> = Arc<(Mutex<BTreeMap<K, Option<V>>>, Condvar)>;

/// Tasks by key: `None` while running, then the outcome until it is taken.
pub struct Tasks<K, V> {
    state: Shared<K, V>,
    name: &'static str,
}

impl<K, V> Clone for Tasks<K, V> {
    fn clone(&self) -> Self {
        Tasks {
            state: self.state.clone(),
            name: self.name,
        }
    }
}

impl<K, V> Tasks<K, V>
where
    K: Ord + Clone + Send + 'static,
    V: Send + 'static,
{
    /// No tasks; threads are named after `name`.
    pub fn new(name: &'static str) -> Tasks<K, V> {
        Tasks {
            state: Arc::new((Mutex::new(BTreeMap::new()), Condvar::new())),
            name,
        }
    }

    /// The outcome of task `key` once it has ended (taken), `None` while it runs; starts it with
    /// `run` when it is not known.
    pub fn poll_or_start(&self, key: &K, run: impl FnOnce() -> V + Send + 'static) -> Option<V> {
        let mut g = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.get(key) {
            Some(Some(_)) => return g.remove(key).flatten(),
            Some(None) => return None,
            None => {}
        }
        g.insert(key.clone(), None);
        drop(g);
        let state = self.state.clone();
        let k = key.clone();
        let spawned = std::thread::Builder::new()
            .name(self.name.to_owned())
            .spawn(move || {
                let v = run();
                state
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(k, Some(v));
                state.1.notify_all();
            });
        if spawned.is_err() {
            // No thread to be had: try again next pass.
            self.state
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
        }
        None
    }

    /// The outcome of task `key` once it has ended (taken); `None` while it runs or when it
    /// is not known. Starts nothing.
    pub fn take(&self, key: &K) -> Option<V> {
        let mut g = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        match g.get(key) {
            Some(Some(_)) => g.remove(key).flatten(),
            _ => None,
        }
    }

    /// The tasks running now.
    pub fn running(&self) -> Vec<K> {
        self.state
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether any task runs or has an outcome not yet taken.
    pub fn pending(&self) -> bool {
        !self
            .state
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Waits at most `limit` for every running task to end (the usual tasks take
    /// milliseconds: waiting a little saves a pass; a slow one is left running).
    pub fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut g = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        while g.values().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = self
                .state
                .1
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
