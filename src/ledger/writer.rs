//! The ledger writer: one thread per process that group-commits records from any number of
//! producers into signed commits.
//!
//! A producer's records are acknowledged only after the pack holding them and the ref that
//! points at it are fsynced. The ref moves by compare-and-swap; when another process moved it
//! first, the batch is re-planned on the new tip, so concurrent writers lose nothing. Writing a
//! record that is already present with the same content is a no-op, so every write may be
//! repeated safely.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::git::{self, ObjectId};
use crate::model::{Artifact, BuildId, CommitId, Record, RecordKind};
use crate::signing::SigningKey;

use super::commit::{
    SEQUENCE_TRAILER, message_sequence, meta_from, put_chain_entry, read_commit, sequence_trailer,
    signed_commit,
};
use super::layout;
use super::overlay::Overlay;
use super::{LEDGER_REF, LedgerError};

/// How the writer batches.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Most records in one commit.
    pub max_records: usize,
    /// Most bytes of record files in one commit.
    pub max_bytes: usize,
    /// How long to wait for more records after the first one arrives, to fill a batch.
    pub linger: Duration,
    /// Whether to merge small packs after commits (geometric repacking).
    pub compact: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_records: 5000,
            max_bytes: 8 << 20,
            linger: Duration::from_millis(2),
            compact: true,
        }
    }
}

/// A record that is durable in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Where the record lives.
    pub path: String,
    /// A ledger commit that holds it: the new commit, or for a record that was already
    /// present, the tip at the time of the write.
    pub commit: CommitId,
    /// Whether the record was there already (the write was a no-op).
    pub already_present: bool,
}

/// Why one record was not written. Other records of the same batch are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record breaks a rule of its schema.
    #[error("invalid {kind} record: {message}")]
    Invalid {
        /// The record kind.
        kind: &'static str,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The record refers to a build whose request is not in the ledger.
    #[error("build {0} has no build-request in the ledger")]
    UnknownBuild(BuildId),
    /// A different record is already stored where this one belongs.
    #[error("{path}: {message}")]
    Conflict {
        /// The path.
        path: String,
        /// What differs.
        message: String,
    },
    /// The ledger could not be written; nothing of this batch was written.
    #[error("{0}")]
    Ledger(String),
}

enum Msg {
    Records(
        Vec<Record>,
        mpsc::SyncSender<Vec<Result<Receipt, RecordError>>>,
    ),
}

/// A handle to the writer thread; clone it freely to share among producers.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Msg>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts a writer for the ledger at `path`, signing with `key`. Fails before anything is
    /// written if the ledger does not allow `key`.
    pub fn open(
        path: &Path,
        key: SigningKey,
        options: WriterOptions,
    ) -> Result<Writer, LedgerError> {
        let repo = super::open_repo_for_writing(path)?;
        let tip = git::read_ref(&repo, LEDGER_REF)?.ok_or(LedgerError::Empty)?;
        check_key_allowed(&repo, tip, &key)?;
        let pack_dir = repo.objects.store_ref().path().join("pack");
        git::pack::remove_stale_temporaries(&pack_dir, Duration::from_secs(3600));
        let (tx, rx) = mpsc::channel();
        let (merge_tx, merge_rx) = mpsc::channel::<()>();
        let merge_path = path.to_owned();
        let merger = std::thread::Builder::new()
            .name("ledger-merger".into())
            .spawn(move || merge_packs_when_asked(&merge_path, merge_rx))
            .map_err(LedgerError::io("starting the ledger pack merger thread"))?;
        let mut state = State {
            path: path.to_owned(),
            repo,
            key,
            options,
            merger: Some((merge_tx, merger)),
            generation: super::PACK_GENERATION.load(std::sync::atomic::Ordering::SeqCst),
            batches_since_open: 0,
            last_seen: Some(tip),
        };
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || state.run(rx))
            .map_err(LedgerError::io("starting the ledger writer thread"))?;
        Ok(Writer {
            tx,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Writes one record and waits until it is durable.
    pub fn append(&self, record: Record) -> Result<Receipt, RecordError> {
        self.append_all(vec![record])
            .pop()
            .unwrap_or_else(|| Err(RecordError::Ledger(LedgerError::WriterStopped.to_string())))
    }

    /// Writes records (in order) and waits until all are durable; one result per record.
    pub fn append_all(&self, records: Vec<Record>) -> Vec<Result<Receipt, RecordError>> {
        let n = records.len();
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        let stopped = || vec![Err(RecordError::Ledger(LedgerError::WriterStopped.to_string())); n];
        if self.tx.send(Msg::Records(records, reply_tx)).is_err() {
            return stopped();
        }
        let timer = crate::metrics::Timer::start();
        let results = reply_rx.recv().unwrap_or_else(|_| stopped());
        crate::metrics::get().ledger_written(timer);
        results
    }

    /// Stops the writer after the records already submitted, and waits for it.
    pub fn shutdown(self) {
        let Writer { tx, thread } = self;
        drop(tx);
        if Arc::strong_count(&thread) == 1
            && let Some(handle) = thread.lock().ok().and_then(|mut t| t.take())
        {
            let _ = handle.join();
        }
    }
}

fn check_key_allowed(
    repo: &gix::Repository,
    tip: ObjectId,
    key: &SigningKey,
) -> Result<(), LedgerError> {
    let commit = read_commit(repo, tip)?;
    let mut overlay = Overlay::new(repo, Some(commit.tree));
    let meta = meta_from(&mut overlay)?;
    if meta.signers.iter().any(|s| s == key.fingerprint()) {
        Ok(())
    } else {
        Err(LedgerError::KeyNotAllowed {
            fingerprint: key.fingerprint().to_owned(),
            allowed: meta.signers.join(", "),
        })
    }
}

/// Merges packs each time it is asked (requests that pile up are served once), on its own
/// repository handle, so that merging never holds up commits. Runs a last merge when the
/// writer stops.
fn merge_packs_when_asked(path: &Path, rx: mpsc::Receiver<()>) {
    // Only its paths are used: merging reads the packs itself, so this handle never gathers
    // pack slots and need not be reopened.
    let repo = match super::open_repo_for_writing(path) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("the ledger pack merger cannot open the ledger: {e}");
            return;
        }
    };
    while rx.recv().is_ok() {
        while rx.try_recv().is_ok() {}
        match compact(&repo) {
            Ok(_) => {}
            Err(e) => tracing::warn!("merging ledger packs failed (will retry later): {e}"),
        }
    }
}

struct State {
    /// Where the ledger is, to re-open it: gix's object store has a bounded number of pack
    /// index slots, and packs come and go as they are merged.
    path: std::path::PathBuf,
    repo: gix::Repository,
    key: SigningKey,
    options: WriterOptions,
    /// The pack merger thread and the channel that asks it to run.
    merger: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
    /// The [`super::PACK_GENERATION`] `repo` was opened at.
    generation: u64,
    /// Batches committed through `repo` since it was opened (see [`REOPEN_EVERY`]).
    batches_since_open: u32,
    /// The last tip this writer saw or wrote: the ref must only ever move forward from it.
    /// Other writers may add commits; nobody may take them away.
    last_seen: Option<ObjectId>,
}

/// The writer opens the ledger afresh after this many batches. Packs are mapped into memory,
/// a merged pack scatters what one read needs over the pack, and the kernel maps the pages
/// around each one read (an index entry, a directory on a record's path): a handle kept open
/// for hours ends up with much of the ledger resident. Opening it again costs well under a millisecond.
const REOPEN_EVERY: u32 = 8;

struct Pending {
    records: Vec<Record>,
    results: Vec<Option<Result<Receipt, RecordError>>>,
    reply: mpsc::SyncSender<Vec<Result<Receipt, RecordError>>>,
}

/// What applying one record to the overlay did.
enum Applied {
    Written(String),
    Present(String),
}

const MAX_ATTEMPTS: u32 = 50;

/// How long the writer must have nothing to do before it merges packs. Producers that wait for
/// each acknowledgement leave the queue empty for a moment between batches; that is not idle.
const IDLE_BEFORE_MERGING: Duration = Duration::from_millis(50);

/// How many packs may pile up while records keep arriving before the writer merges anyway.
const MAX_PACKS_WHILE_BUSY: usize = 48;

impl State {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut stashed: Option<Msg> = None;
        loop {
            let first = match stashed.take() {
                Some(m) => m,
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            let mut pending = vec![first];
            let deadline = Instant::now() + self.options.linger;
            let mut count: usize = pending.iter().map(|Msg::Records(r, _)| r.len()).sum();
            while count < self.options.max_records {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match rx.recv_timeout(deadline - now) {
                    Ok(msg) => {
                        let Msg::Records(r, _) = &msg;
                        count += r.len();
                        pending.push(msg);
                    }
                    Err(_) => break,
                }
            }
            let mut pending: Vec<Pending> = pending
                .into_iter()
                .map(|Msg::Records(records, reply)| Pending {
                    results: vec![None; records.len()],
                    records,
                    reply,
                })
                .collect();
            self.process(&mut pending);
            for p in pending {
                let results = p
                    .results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(RecordError::Ledger("not processed".into()))))
                    .collect();
                let _ = p.reply.send(results);
            }
            // Merge packs when idle: under a burst, merging after every commit would rewrite
            // the same objects again and again; a bound on the pack count keeps reads fast.
            let busy = match rx.recv_timeout(IDLE_BEFORE_MERGING) {
                Ok(m) => {
                    stashed = Some(m);
                    true
                }
                Err(_) => false,
            };
            self.maybe_compact(busy);
        }
        self.maybe_compact(false);
        if let Some((tx, handle)) = self.merger.take() {
            drop(tx);
            let _ = handle.join();
        }
    }

    fn maybe_compact(&mut self, busy: bool) {
        if !self.options.compact {
            return;
        }
        if busy {
            let pack_dir = self.repo.objects.store_ref().path().join("pack");
            let packs = git::pack::list_packs(&pack_dir).map_or(0, |p| p.len());
            if packs <= MAX_PACKS_WHILE_BUSY {
                return;
            }
        }
        if let Some((tx, _)) = &self.merger {
            let _ = tx.send(());
        }
    }

    /// Opens the repository afresh, so that gix forgets packs that were merged away.
    fn reopen(&mut self) {
        self.batches_since_open = 0;
        match super::open_repo_for_writing(&self.path) {
            Ok(repo) => self.repo = repo,
            Err(e) => tracing::warn!("re-opening the ledger failed: {e}"),
        }
    }

    fn process(&mut self, pending: &mut [Pending]) {
        // Cut the queue into batches bounded by record count and bytes.
        let mut slots: Vec<(usize, usize)> = Vec::new();
        for (i, p) in pending.iter().enumerate() {
            for j in 0..p.records.len() {
                slots.push((i, j));
            }
        }
        let mut start = 0;
        while start < slots.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < slots.len()
                && end - start < self.options.max_records
                && bytes < self.options.max_bytes
            {
                let (i, j) = slots[end];
                bytes += approximate_size(&pending[i].records[j]);
                end += 1;
            }
            let batch: Vec<&Record> = slots[start..end]
                .iter()
                .map(|&(i, j)| &pending[i].records[j])
                .collect();
            let results = self.commit_batch(&batch);
            for (&(i, j), r) in slots[start..end].iter().zip(results) {
                pending[i].results[j] = Some(r);
            }
            start = end;
        }
    }

    fn commit_batch(&mut self, records: &[&Record]) -> Vec<Result<Receipt, RecordError>> {
        let fail_all =
            |e: LedgerError| vec![Err(RecordError::Ledger(e.to_string())); records.len()];
        crate::metrics::get()
            .ledger_batch
            .observe(records.len() as f64);
        let prepared = prepare(records);
        // No merge may replace packs while this batch reads the tip's trees.
        let _shared = super::read_guard();
        let generation = super::PACK_GENERATION.load(std::sync::atomic::Ordering::SeqCst);
        self.batches_since_open += 1;
        if generation != self.generation || self.batches_since_open >= REOPEN_EVERY {
            self.reopen();
            self.generation = generation;
        }
        let mut reopened_for_missing = false;
        for _attempt in 0..MAX_ATTEMPTS {
            match self.try_commit_batch(records, &prepared) {
                Ok(results) => return results,
                Err(LedgerError::Ref(git::RefUpdateError::Conflict { .. })) => continue,
                // The merger (ours or another process's) may have replaced the packs this handle
                // had loaded: look again with a fresh handle.
                Err(LedgerError::Read { .. }) => self.reopen(),
                Err(LedgerError::Corrupt(m))
                    if m.ends_with("is missing") && !reopened_for_missing =>
                {
                    reopened_for_missing = true;
                    self.reopen();
                }
                Err(e) => return fail_all(e),
            }
        }
        fail_all(LedgerError::TooManyConflicts(MAX_ATTEMPTS))
    }

    fn try_commit_batch(
        &mut self,
        records: &[&Record],
        prepared: &[Result<Vec<u8>, RecordError>],
    ) -> Result<Vec<Result<Receipt, RecordError>>, LedgerError> {
        let repo = &self.repo;
        let tip = git::read_ref(repo, LEDGER_REF)?.ok_or(LedgerError::Empty)?;
        if let Some(seen) = self.last_seen
            && seen != tip
            && !descends_from(repo, tip, seen)?
        {
            return Err(LedgerError::RolledBack {
                expected: seen.to_string(),
                found: tip.to_string(),
            });
        }
        self.last_seen = Some(tip);
        let tip_commit = read_commit(repo, tip)?;
        let mut overlay = Overlay::new(repo, Some(tip_commit.tree));
        let meta = meta_from(&mut overlay)?;
        if !meta.signers.iter().any(|s| s == self.key.fingerprint()) {
            return Err(LedgerError::KeyNotAllowed {
                fingerprint: self.key.fingerprint().to_owned(),
                allowed: meta.signers.join(", "),
            });
        }
        let outcomes: Vec<_> = records
            .iter()
            .zip(prepared)
            .map(|(record, p)| apply(&mut overlay, record, p))
            .collect();
        let written: Vec<&Record> = records
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Ok(Applied::Written(_))))
            .map(|(r, _)| *r)
            .collect();
        let tip_id: CommitId = tip
            .to_string()
            .parse()
            .expect("object ids are 40 hex digits");
        let commit_id = if written.is_empty() {
            tip_id.clone()
        } else {
            let parent_sequence = message_sequence(&tip_commit.message).ok_or_else(|| {
                LedgerError::Corrupt(format!("commit {tip} has no {SEQUENCE_TRAILER} trailer"))
            })?;
            let sequence = put_chain_entry(&mut overlay, tip, tip_commit.tree, parent_sequence)?;
            let mut message = commit_message(&written);
            message.push_str(&sequence_trailer(sequence));
            let (tree, mut objects) = overlay.finish();
            let commit = signed_commit(&mut self.key, tree, Some(tip), &message)?;
            let new_id = commit.id;
            objects.push(commit);
            let pack_dir = repo.objects.store_ref().path().join("pack");
            std::fs::create_dir_all(&pack_dir).map_err(LedgerError::io("creating objects/pack"))?;
            git::pack::write_pack(&pack_dir, &objects)
                .map_err(LedgerError::io("writing a pack"))?;
            let summary = message.lines().next().unwrap_or_default();
            git::compare_and_swap_ref(
                repo,
                LEDGER_REF,
                Some(tip),
                new_id,
                &format!("seakeeper: {summary}"),
            )?;
            self.last_seen = Some(new_id);
            new_id
                .to_string()
                .parse()
                .expect("object ids are 40 hex digits")
        };
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.map(|a| match a {
                    Applied::Written(path) => Receipt {
                        path,
                        commit: commit_id.clone(),
                        already_present: false,
                    },
                    Applied::Present(path) => Receipt {
                        path,
                        commit: tip_id.clone(),
                        already_present: true,
                    },
                })
            })
            .collect())
    }
}

/// Whether `tip` is `ancestor` or has it in its (linear) history. Walks back by sequence
/// number, so only the commits added since `ancestor` are read.
fn descends_from(
    repo: &gix::Repository,
    tip: ObjectId,
    ancestor: ObjectId,
) -> Result<bool, LedgerError> {
    let target = super::commit::read_commit_message_sequence(repo, ancestor)?;
    let mut id = tip;
    let mut sequence = super::commit::read_commit_message_sequence(repo, id)?;
    while sequence > target {
        match read_commit(repo, id)?.parents.first() {
            Some(p) => id = *p,
            None => return Ok(false),
        }
        sequence = super::commit::read_commit_message_sequence(repo, id)?;
    }
    Ok(id == ancestor)
}

fn approximate_size(r: &Record) -> usize {
    match r {
        Record::Attestation(a) => 512 + a.envelope.payload.len(),
        Record::BuildResult(b) => 512 + 128 * (b.jobs.len() + b.artifacts.len()),
        _ => 512,
    }
}

fn invalid(record: &Record, message: String) -> RecordError {
    RecordError::Invalid {
        kind: record.kind().as_str(),
        message,
    }
}

/// Writes `content` at `path` unless the same bytes are there already; different bytes are a
/// conflict.
fn put_immutable(
    overlay: &mut Overlay<'_>,
    path: String,
    content: Vec<u8>,
    what: &str,
) -> Result<Applied, RecordError> {
    match overlay
        .read(&path)
        .map_err(|e| RecordError::Ledger(e.to_string()))?
    {
        Some(existing) if existing == content => Ok(Applied::Present(path)),
        Some(_) => Err(RecordError::Conflict {
            path,
            message: format!("a different {what} is already recorded here"),
        }),
        None => {
            overlay
                .put_blob(&path, content)
                .map_err(|e| RecordError::Ledger(e.to_string()))?;
            Ok(Applied::Written(path))
        }
    }
}

fn build_dir_of(overlay: &mut Overlay<'_>, id: &BuildId) -> Result<Option<String>, RecordError> {
    Ok(overlay
        .read(&layout::build_index_path(id))
        .map_err(|e| RecordError::Ledger(e.to_string()))?
        .map(|b| String::from_utf8_lossy(&b).trim_end().to_owned()))
}

/// Validates and encodes records on every core (the writer thread is the bottleneck).
fn prepare(records: &[&Record]) -> Vec<Result<Vec<u8>, RecordError>> {
    let one = |r: &&Record| -> Result<Vec<u8>, RecordError> {
        r.validate().map_err(|m| invalid(r, m))?;
        Ok(layout::encode_record(r))
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    if records.len() < 64 || threads < 2 {
        return records.iter().map(one).collect();
    }
    let chunk = records.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("encoding threads do not panic"))
            .collect()
    })
}

fn apply(
    overlay: &mut Overlay<'_>,
    record: &Record,
    prepared: &Result<Vec<u8>, RecordError>,
) -> Result<Applied, RecordError> {
    let content = prepared.clone()?;
    let ledger_err = |e: LedgerError| RecordError::Ledger(e.to_string());
    match record {
        Record::BuildRequest(r) => {
            let dir = layout::build_dir(r.requested_at, &r.build_id);
            if let Some(existing) = build_dir_of(overlay, &r.build_id)?
                && existing != dir
            {
                return Err(RecordError::Conflict {
                    path: format!("{dir}/request.yaml"),
                    message: format!("build {} is already recorded at {existing}", r.build_id),
                });
            }
            let applied = put_immutable(
                overlay,
                format!("{dir}/request.yaml"),
                content,
                "build-request",
            )?;
            if let Applied::Written(_) = applied {
                let pointer = format!("{dir}\n").into_bytes();
                overlay
                    .put_blob(&layout::build_index_path(&r.build_id), pointer.clone())
                    .map_err(ledger_err)?;
                if let Some(path) = layout::change_index_for(r) {
                    overlay.put_blob(&path, pointer).map_err(ledger_err)?;
                }
            }
            Ok(applied)
        }
        Record::BuildResult(r) => {
            let dir = build_dir_of(overlay, &r.build_id)?
                .ok_or_else(|| RecordError::UnknownBuild(r.build_id.clone()))?;
            put_immutable(
                overlay,
                format!("{dir}/result.yaml"),
                content,
                "build-result",
            )
        }
        Record::Artifact(a) => {
            if build_dir_of(overlay, &a.build_id)?.is_none() {
                return Err(RecordError::UnknownBuild(a.build_id.clone()));
            }
            let path = layout::artifact_path(&a.digest);
            match overlay.read(&path).map_err(ledger_err)? {
                Some(existing) if existing == content => Ok(Applied::Present(path)),
                None => put_immutable(overlay, path, content, "artifact"),
                Some(existing) => {
                    let first: Option<Artifact> = yaml_serde::from_slice::<Record>(&existing)
                        .ok()
                        .and_then(|r| match r {
                            Record::Artifact(a) => Some(a),
                            _ => None,
                        });
                    match first {
                        Some(first) if first.build_id != a.build_id => put_immutable(
                            overlay,
                            layout::rebuilt_path(&a.digest, &a.build_id),
                            content,
                            "artifact",
                        ),
                        _ => Err(RecordError::Conflict {
                            path,
                            message:
                                "the same build already recorded this digest with other metadata"
                                    .into(),
                        }),
                    }
                }
            }
        }
        Record::Landing(l) => {
            let dir = build_dir_of(overlay, &l.build_id)?
                .ok_or_else(|| RecordError::UnknownBuild(l.build_id.clone()))?;
            let applied =
                put_immutable(overlay, format!("{dir}/landing.yaml"), content, "landing")?;
            if let Applied::Written(_) = applied {
                overlay
                    .put_blob(
                        &layout::landing_index_path(&l.commit),
                        format!("{dir}\n").into_bytes(),
                    )
                    .map_err(ledger_err)?;
            }
            Ok(applied)
        }
        Record::Attestation(a) => {
            let path = layout::attestation_path(a, &content);
            put_immutable(overlay, path, content, "attestation")
        }
        Record::Expiry(e) => {
            let path = layout::expiry_path(e, &content);
            put_immutable(overlay, path, content, "expiry")
        }
        Record::PromotionRefusal(r) => {
            let path = layout::refusal_path(r);
            put_immutable(overlay, path, content, "promotion-refusal")
        }
        Record::Promotion(p) => {
            let path = layout::promotion_history(p, &content);
            let applied = put_immutable(overlay, path, content.clone(), "promotion")?;
            if let Applied::Written(_) = applied {
                let pointer = layout::promotion_pointer(&p.environment, &p.image);
                let newer = match overlay.read(&pointer).map_err(ledger_err)? {
                    None => true,
                    Some(bytes) => match yaml_serde::from_slice::<Record>(&bytes) {
                        Ok(Record::Promotion(current)) => current.promoted_at <= p.promoted_at,
                        _ => true,
                    },
                };
                if newer {
                    overlay.put_blob(&pointer, content).map_err(ledger_err)?;
                }
            }
            Ok(applied)
        }
        Record::Freeze(f) => {
            let applied = put_immutable(
                overlay,
                layout::freeze_history(f),
                content.clone(),
                "freeze",
            )?;
            if let Applied::Written(_) = applied {
                overlay
                    .put_blob(&layout::freeze_pointer(&f.name), content)
                    .map_err(ledger_err)?;
            }
            Ok(applied)
        }
    }
}

/// One summary line, a blank line, and git trailers for every record written.
pub(crate) fn commit_message(records: &[&Record]) -> String {
    let summary = match records {
        [one] => describe(one),
        many => {
            let mut counts = Vec::new();
            for kind in RecordKind::ALL {
                let n = many.iter().filter(|r| r.kind() == kind).count();
                if n > 0 {
                    counts.push(format!("{n} {}", kind.as_str()));
                }
            }
            format!("Record {} entries: {}", many.len(), counts.join(", "))
        }
    };
    let mut seen = BTreeSet::new();
    let mut trailers = Vec::new();
    let mut add = |key: &str, value: String| {
        if seen.insert((key.to_owned(), value.clone())) {
            trailers.push(format!("{key}: {value}"));
        }
    };
    for r in records {
        match r {
            Record::BuildRequest(b) => {
                add("Build-Id", b.build_id.to_string());
                add("Project", b.project.to_string());
                if let Some(c) = b.change {
                    add("Change", c.to_string());
                }
                if let Some(p) = b.patchset {
                    add("Patchset", p.to_string());
                }
                add("Source-Commit", b.source_commit.to_string());
                add("Config-Commit", b.config_commit.to_string());
                add("Trust", b.trust.as_str().to_owned());
            }
            Record::BuildResult(b) => add("Build-Id", b.build_id.to_string()),
            Record::Artifact(a) => {
                add("Build-Id", a.build_id.to_string());
                add("Artifact-Digest", a.digest.to_string());
            }
            Record::Attestation(a) => add("Artifact-Digest", a.subject_digest.to_string()),
            Record::Promotion(p) => {
                add("Artifact-Digest", p.digest.to_string());
                add("Environment", p.environment.to_string());
                add("Config-Commit", p.config_commit.to_string());
            }
            Record::Freeze(f) => add("Config-Commit", f.config_commit.to_string()),
            Record::Expiry(e) => add("Artifact-Digest", e.digest.to_string()),
            Record::Landing(l) => {
                add("Build-Id", l.build_id.to_string());
                add("Landed-Commit", l.commit.to_string());
                add("Config-Commit", l.config_commit.to_string());
            }
            Record::PromotionRefusal(r) => {
                add("Artifact-Digest", r.digest.to_string());
                add("Environment", r.environment.to_string());
                add("Config-Commit", r.config_commit.to_string());
            }
        }
    }
    let mut message = summary;
    message.push_str("\n\n");
    for t in trailers {
        message.push_str(&t);
        message.push('\n');
    }
    message
}

fn describe(r: &Record) -> String {
    match r {
        Record::BuildRequest(b) => {
            let change = match (b.change, b.patchset) {
                (Some(c), Some(p)) => format!(" change {c},{p}"),
                (Some(c), None) => format!(" change {c}"),
                _ => String::new(),
            };
            format!(
                "Request {} build {} of {}{}",
                b.pipeline, b.build_id, b.project, change
            )
        }
        Record::BuildResult(b) => format!("Build {} finished: {}", b.build_id, b.status.as_str()),
        Record::Artifact(a) => format!(
            "Artifact {} ({}) from build {}",
            a.digest, a.name, a.build_id
        ),
        Record::Attestation(a) => format!("Attest {} ({})", a.subject_digest, a.predicate_type),
        Record::Promotion(p) => format!("Promote {}@{} to {}", p.image, p.digest, p.environment),
        Record::Freeze(f) => format!("Freeze {} {}", f.name, f.state.as_str()),
        Record::Expiry(e) => format!("Expire {}@{} from {}", e.name, e.digest, e.store),
        Record::Landing(l) => format!(
            "Land change {},{} of {} on {} as {}",
            l.change, l.patchset, l.project, l.branch, l.commit
        ),
        Record::PromotionRefusal(r) => format!(
            "Refuse {}@{} in {}: {}",
            r.image,
            r.digest,
            r.environment,
            r.reason.lines().next().unwrap_or_default()
        ),
    }
}

/// Merges small packs (geometric repacking) under an advisory lock, so that two processes
/// never merge the same packs. A busy lock means someone else is merging: skip. Returns whether
/// packs were replaced.
pub(crate) fn compact(repo: &gix::Repository) -> Result<bool, LedgerError> {
    let pack_dir = repo.objects.store_ref().path().join("pack");
    let packs = git::pack::list_packs(&pack_dir).map_err(LedgerError::io("listing packs"))?;
    if git::pack::geometric_merge_set(packs).is_empty() {
        return Ok(false);
    }
    let lock_path = repo.git_dir().join("seakeeper-compact.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(LedgerError::io(format!("opening {}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(LedgerError::io("locking for compaction")(e));
        }
    }
    // Re-list under the lock: another process may have merged meanwhile.
    let packs = git::pack::list_packs(&pack_dir).map_err(LedgerError::io("listing packs"))?;
    let chosen = git::pack::geometric_merge_set(packs);
    if chosen.len() < 2 {
        return Ok(false);
    }
    // Merging reads the old packs with pread and only adds a pack, so readers go on meanwhile;
    // only removing the old packs waits for them (see `PACKS`).
    if let Some((_, replaced)) = git::pack::merge_packs(&pack_dir, &chosen, true)
        .map_err(LedgerError::io("merging packs"))?
    {
        let _exclusive = super::PACKS.write().unwrap_or_else(|p| p.into_inner());
        super::PACK_GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for old in &replaced {
            git::pack::remove_pack(old).map_err(LedgerError::io("removing a merged pack"))?;
        }
        git::sync_dir(&pack_dir).map_err(LedgerError::io("syncing objects/pack"))?;
        return Ok(true);
    }
    Ok(false)
}
