//! The [`Notifier`]: a bounded queue of deliveries, drained by one thread that sends them with
//! deadlines and retries failures with exponential backoff. The keys of delivered messages
//! are appended to `<state>/notify/sent` (the newest few thousand are kept), so that the same
//! event learnt again, by this process or the next one, is not told twice.
//!
//! The caller's thread only takes a short lock: it never waits for the network.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::{Delivery, Message, SendError};
use crate::secrets::{ApiToken, Credentials};

/// The deadlines of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting, and each read or write.
    pub io: Duration,
    /// The whole conversation.
    pub total: Duration,
}

/// The accounts of the secrets file that notifications use.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// SASL PLAIN on IRC.
    pub irc: Option<Credentials>,
    /// SMTP AUTH.
    pub smtp: Option<Credentials>,
    /// Conduit's API token.
    pub phabricator: Option<ApiToken>,
}

/// How the notifier works.
#[derive(Debug, Clone)]
pub struct NotifyOptions {
    /// The daemon's state directory: delivered keys go to `notify/sent` under it.
    pub state_dir: PathBuf,
    /// Accounts.
    pub secrets: Secrets,
    /// The wait before the first retry; it doubles on each failure.
    pub first_retry: Duration,
    /// The longest wait between attempts.
    pub max_retry: Duration,
    /// Attempts before a delivery is given up (and counted as failed).
    pub attempts: u32,
    /// Deliveries waiting at most; more are dropped (and counted as failed).
    pub queue_limit: usize,
    /// Delivered keys remembered.
    pub remembered: usize,
    /// Deadlines.
    pub timeouts: Timeouts,
}

impl NotifyOptions {
    /// The defaults: retries from 5 s doubling to 10 min, 10 attempts (about half an hour),
    /// 1000 waiting, 10 000 remembered, 10 s per operation and 60 s per delivery.
    pub fn new(state_dir: &Path, secrets: Secrets) -> NotifyOptions {
        NotifyOptions {
            state_dir: state_dir.to_owned(),
            secrets,
            first_retry: Duration::from_secs(5),
            max_retry: Duration::from_secs(600),
            attempts: 10,
            queue_limit: 1000,
            remembered: 10_000,
            timeouts: Timeouts {
                io: Duration::from_secs(10),
                total: Duration::from_secs(60),
            },
        }
    }
}

/// Counters of one target kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStats {
    /// Deliveries made.
    pub sent: u64,
    /// Deliveries given up (attempts exhausted, or the queue was full).
    pub failed: u64,
    /// Attempts that failed and will be made again.
    pub retried: u64,
    /// Deliveries waiting now.
    pub pending: u64,
    /// Deliveries not queued because they were made (or queued) already.
    pub deduplicated: u64,
}

/// Counters by target kind, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyStats {
    /// IRC.
    pub irc: KindStats,
    /// Email.
    pub email: KindStats,
    /// Phabricator.
    pub phabricator: KindStats,
}

impl NotifyStats {
    fn kind(&mut self, kind: &str) -> &mut KindStats {
        match kind {
            "irc" => &mut self.irc,
            "email" => &mut self.email,
            _ => &mut self.phabricator,
        }
    }
}

/// One target's state, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// The target's name.
    pub target: String,
    /// `irc`, `email` or `phabricator`.
    pub kind: String,
    /// Deliveries waiting.
    pub pending: u64,
    /// Deliveries made.
    pub sent: u64,
    /// Deliveries given up.
    pub failed: u64,
    /// The last failure, until a delivery succeeds.
    pub last_error: Option<String>,
}

struct Item {
    delivery: Delivery,
    hash: String,
    attempts: u32,
    due: Instant,
    sending: bool,
}

/// Delivered keys (hashed), newest last, mirrored in a file.
struct SentKeys {
    path: PathBuf,
    order: VecDeque<String>,
    set: HashSet<String>,
    cap: usize,
    lines: usize,
}

impl SentKeys {
    fn load(path: PathBuf, cap: usize) -> SentKeys {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let mut s = SentKeys {
            path,
            order: VecDeque::new(),
            set: HashSet::new(),
            cap: cap.max(1),
            lines: all.len(),
        };
        for k in &all[all.len().saturating_sub(s.cap)..] {
            if s.set.insert((*k).to_owned()) {
                s.order.push_back((*k).to_owned());
            }
        }
        s
    }

    fn contains(&self, hash: &str) -> bool {
        self.set.contains(hash)
    }

    fn insert(&mut self, hash: &str) {
        if !self.set.insert(hash.to_owned()) {
            return;
        }
        self.order.push_back(hash.to_owned());
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        let appended = (|| -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            f.write_all(format!("{hash}\n").as_bytes())?;
            f.sync_data()
        })();
        self.lines += 1;
        if let Err(e) = appended {
            tracing::warn!("{}: {e}; a restart may send it again", self.path.display());
        }
        if self.lines > 2 * self.cap {
            let mut text = String::new();
            for k in &self.order {
                text.push_str(k);
                text.push('\n');
            }
            match crate::store::write_durably(&self.path, text.as_bytes()) {
                Ok(()) => self.lines = self.order.len(),
                Err(e) => tracing::warn!("{}: {e}", self.path.display()),
            }
        }
    }
}

struct State {
    queue: Vec<Item>,
    sent: SentKeys,
    stats: NotifyStats,
    targets: BTreeMap<String, TargetStatus>,
    stop: bool,
}

impl State {
    fn target(&mut self, d: &Delivery) -> &mut TargetStatus {
        self.targets
            .entry(d.target.clone())
            .or_insert_with(|| TargetStatus {
                target: d.target.clone(),
                kind: d.kind().to_owned(),
                ..TargetStatus::default()
            })
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Sends deliveries on a thread of its own (see the module's documentation).
pub struct Notifier {
    shared: Arc<Shared>,
    queue_limit: usize,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier")
    }
}

fn hash(key: &str) -> String {
    hex::encode(&sha2::Sha256::digest(key.as_bytes())[..16])
}

impl Notifier {
    /// Loads the delivered keys and starts the sending thread.
    pub fn start(options: NotifyOptions) -> Notifier {
        let sent = SentKeys::load(
            options.state_dir.join("notify").join("sent"),
            options.remembered,
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Vec::new(),
                sent,
                stats: NotifyStats::default(),
                targets: BTreeMap::new(),
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let queue_limit = options.queue_limit.max(1);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("notify".into())
            .spawn(move || run(&s, &options));
        if let Err(e) = spawned {
            tracing::warn!("no notification thread: {e}; notifications wait");
        }
        Notifier {
            shared,
            queue_limit,
        }
    }

    /// Queues deliveries not made or queued before; returns at once.
    pub fn submit(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let mut st = self.shared.lock();
        for d in deliveries {
            let h = hash(&d.key);
            if st.sent.contains(&h) || st.queue.iter().any(|i| i.hash == h) {
                st.stats.kind(d.kind()).deduplicated += 1;
                crate::metrics::get().notification(d.kind(), "deduplicated");
                continue;
            }
            st.target(&d);
            if st.queue.len() >= self.queue_limit {
                tracing::warn!("notification queue full: dropped {}", d.key);
                st.stats.kind(d.kind()).failed += 1;
                crate::metrics::get().notification(d.kind(), "failed");
                let t = st.target(&d);
                t.failed += 1;
                t.last_error = Some("the queue was full: dropped".into());
                continue;
            }
            st.queue.push(Item {
                delivery: d,
                hash: h,
                attempts: 0,
                due: Instant::now(),
                sending: false,
            });
        }
        drop(st);
        self.shared.wake.notify_all();
    }

    /// Counters by target kind.
    pub fn stats(&self) -> NotifyStats {
        let st = self.shared.lock();
        let mut stats = st.stats;
        for i in &st.queue {
            stats.kind(i.delivery.kind()).pending += 1;
        }
        stats
    }

    /// Each target's state, by name.
    pub fn status(&self) -> Vec<TargetStatus> {
        let st = self.shared.lock();
        let mut out: BTreeMap<String, TargetStatus> = st.targets.clone();
        for i in &st.queue {
            if let Some(t) = out.get_mut(&i.delivery.target) {
                t.pending += 1;
            }
        }
        out.into_values().collect()
    }

    /// Waits, at most `timeout`, until every queued delivery was attempted at least once
    /// (made, or failed and waiting for its retry): what a process about to exit gives them.
    /// Whether they all were.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if st.queue.iter().all(|i| i.attempts > 0 && !i.sending) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .shared
                .wake
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Makes every waiting delivery due now (a test, or an operator who fixed a target).
    pub fn retry_now(&self) {
        let mut st = self.shared.lock();
        let now = Instant::now();
        for i in &mut st.queue {
            i.due = i.due.min(now);
        }
        drop(st);
        self.shared.wake.notify_all();
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // The thread ends after the delivery it is making, if any (bounded by its deadlines).
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

fn backoff(o: &NotifyOptions, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    o.first_retry.saturating_mul(factor).min(o.max_retry)
}

/// The sending thread.
fn run(shared: &Shared, o: &NotifyOptions) {
    let mut st = shared.lock();
    loop {
        if st.stop {
            return;
        }
        let now = Instant::now();
        let Some(next) = st.queue.iter().filter(|i| !i.sending).map(|i| i.due).min() else {
            st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        };
        if next > now {
            st = shared
                .wake
                .wait_timeout(st, next - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        // The first due delivery, and for IRC every due line for the same target (one
        // connection says them all).
        let first = st
            .queue
            .iter()
            .position(|i| !i.sending && i.due <= now)
            .expect("a delivery is due");
        let target = st.queue[first].delivery.target.clone();
        let batch_irc = matches!(st.queue[first].delivery.message, Message::Irc(_));
        let mut batch = Vec::new();
        for (n, i) in st.queue.iter_mut().enumerate() {
            let same = n == first
                || (batch_irc
                    && !i.sending
                    && i.due <= now
                    && i.delivery.target == target
                    && matches!(i.delivery.message, Message::Irc(_)));
            if same && batch.len() < 20 {
                i.sending = true;
                batch.push((i.hash.clone(), i.delivery.clone()));
            }
        }
        drop(st);
        let outcome = deliver(o, &batch);
        st = shared.lock();
        let hashes: Vec<&String> = batch.iter().map(|(h, _)| h).collect();
        match outcome {
            Ok(()) => {
                for (h, d) in &batch {
                    st.sent.insert(h);
                    st.stats.kind(d.kind()).sent += 1;
                    crate::metrics::get().notification(d.kind(), "sent");
                    let t = st.target(d);
                    t.sent += 1;
                    t.last_error = None;
                }
                st.queue.retain(|i| !hashes.contains(&&i.hash));
            }
            Err(e) => {
                let message = format!("{e} [{}]", e.label());
                let mut given_up = Vec::new();
                let now = Instant::now();
                for i in st.queue.iter_mut().filter(|i| hashes.contains(&&i.hash)) {
                    i.sending = false;
                    i.attempts += 1;
                    if i.attempts >= o.attempts {
                        given_up.push(i.hash.clone());
                    } else {
                        i.due = now + backoff(o, i.attempts);
                    }
                }
                for (h, d) in &batch {
                    if given_up.contains(h) {
                        tracing::warn!(
                            "notification {} to {}: {message}; given up",
                            d.key,
                            d.target
                        );
                        st.stats.kind(d.kind()).failed += 1;
                        crate::metrics::get().notification(d.kind(), "failed");
                        st.target(d).failed += 1;
                    } else {
                        tracing::warn!(
                            "notification {} to {}: {message}; trying again",
                            d.key,
                            d.target
                        );
                        st.stats.kind(d.kind()).retried += 1;
                        crate::metrics::get().notification(d.kind(), "retried");
                    }
                    st.target(d).last_error = Some(message.clone());
                }
                st.queue.retain(|i| !given_up.contains(&i.hash));
            }
        }
        // For `flush`, which waits on the same condition.
        shared.wake.notify_all();
    }
}

/// Makes one batch of deliveries (all for one target).
fn deliver(o: &NotifyOptions, batch: &[(String, Delivery)]) -> Result<(), SendError> {
    let Some((hash, first)) = batch.first() else {
        return Ok(());
    };
    let s = &o.secrets;
    match (&first.message, &first.spec) {
        (Message::Irc(_), spec) if spec.irc.is_some() => {
            let lines: Vec<String> = batch
                .iter()
                .filter_map(|(_, d)| match &d.message {
                    Message::Irc(l) => Some(l.clone()),
                    _ => None,
                })
                .collect();
            let t = spec.irc.as_ref().expect("matched above");
            super::irc::send(t, s.irc.as_ref(), &lines, o.timeouts)
        }
        (Message::Email { subject, body }, spec) if spec.email.is_some() => {
            let t = spec.email.as_ref().expect("matched above");
            super::smtp::send(t, s.smtp.as_ref(), subject, body, hash, o.timeouts)
        }
        (Message::Comment { task, text }, spec) if spec.phabricator.is_some() => {
            let t = spec.phabricator.as_ref().expect("matched above");
            super::phabricator::comment(t, s.phabricator.as_ref(), *task, text, o.timeouts)
        }
        _ => Err(SendError::Setup(format!(
            "target {} cannot carry this message",
            first.target
        ))),
    }
}
