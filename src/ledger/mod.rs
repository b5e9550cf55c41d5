//! The ledger: an append-only git repository of signed commits, each holding records of what
//! seakeeper did (builds, artifacts, attestations, promotions, freezes).
//!
//! Layout, sharding and the verification rules are documented in `state-schema/README.md`.
//! The ledger ref (`refs/heads/main`) moves only by compare-and-swap after the objects it points
//! at are durable; history is linear; every commit is signed by a key the previous commit
//! allowed. This module must not talk to Gerrit, registries or executors.

mod commit;
mod diff;
pub mod layout;
pub mod mark;
mod overlay;
pub mod pull;
mod reader;
pub mod sample;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::git::{self, ObjectId};
use crate::model::CommitId;
use crate::signing::{SigningError, SigningKey};

pub use commit::{RawCommit, SEQUENCE_TRAILER, message_sequence, parse_commit};
pub use reader::{
    BuildRecords, CommitSummary, Snapshot, Trace, TraceAttestation, TraceLanding, TracePromotion,
    TraceRecord,
};
pub use verify::{
    VerifyFailure, VerifyOptions, VerifyReport, check_record_path, verify, verify_since, verify_tip,
};
pub use writer::{Receipt, RecordError, Writer, WriterOptions};

/// Held (shared) while reading a ledger in a process whose writer merges packs in the
/// background, and (exclusively) by the merger while it removes the packs it merged (writing
/// the merged pack needs no lock: adding a pack is safe): gix-odb 0.87 panics
/// ("if the generation changed, the slot index must have changed") when packs are removed
/// under a handle that is reading. Never hold it while waiting for the writer.
pub static PACKS: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Bumped after every merge of packs in this process; handles older than it are re-opened.
pub(crate) static PACK_GENERATION: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// A shared hold on [`PACKS`], for a stretch of reads.
pub fn read_guard() -> std::sync::RwLockReadGuard<'static, ()> {
    PACKS.read().unwrap_or_else(|p| p.into_inner())
}

/// The ref that holds the ledger's history.
pub const LEDGER_REF: &str = "refs/heads/main";
/// The ledger format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// An error while opening, reading or writing a ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The path is not a git repository, or not one we can open.
    #[error("{path}: not a ledger repository: {message}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// Why it could not be opened.
        message: String,
    },
    /// `ledger init` was pointed at a directory that already holds something.
    #[error("{0}: already exists and is not empty")]
    AlreadyExists(PathBuf),
    /// The ledger has no commit yet.
    #[error("the ledger has no commits (run `seakeeper ledger init`)")]
    Empty,
    /// The signing key is not one the ledger allows.
    #[error("key {fingerprint} is not allowed to sign this ledger (allowed: {allowed})")]
    KeyNotAllowed {
        /// The key's fingerprint.
        fingerprint: String,
        /// The allowed fingerprints.
        allowed: String,
    },
    /// A stored object is missing or malformed.
    #[error("ledger data is corrupt: {0}")]
    Corrupt(String),
    /// Reading an object failed.
    #[error("reading object {id}: {message}")]
    Read {
        /// The object.
        id: String,
        /// What went wrong.
        message: String,
    },
    /// Writing to the object database or the filesystem failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Moving the ledger ref failed.
    #[error(transparent)]
    Ref(#[from] git::RefUpdateError),
    /// Signing failed.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The writer gave up because the ref kept moving under it.
    #[error("gave up after {0} attempts: other writers kept moving the ledger ref")]
    TooManyConflicts(u32),
    /// The writer thread is gone (it panicked or was shut down).
    #[error("the ledger writer has stopped")]
    WriterStopped,
    /// A key rotation request was invalid.
    #[error("{0}")]
    Rotation(String),
    /// The ledger ref went back under a writer: it no longer descends from the last commit
    /// this writer saw.
    #[error(
        "the ledger ref moved back: it is at {found}, which does not descend from {expected} \
         (written or seen by this writer); refusing to write onto a rolled-back ledger"
    )]
    RolledBack {
        /// What the writer saw last.
        expected: String,
        /// Where the ref is now.
        found: String,
    },
}

impl LedgerError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LedgerError {
        let what = what.into();
        move |source| LedgerError::Io { what, source }
    }
}

/// The `LEDGER` file at the root of every ledger commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerMeta {
    /// The format version; readers refuse formats they do not know.
    pub format: u32,
    /// A random id chosen at `init`, so that two ledgers are never confused.
    pub ledger_id: String,
    /// Fingerprints (40 uppercase hex digits) of the certs allowed to sign the next commit.
    /// Each has its public cert at `KEYS/<fingerprint>.asc`.
    pub signers: Vec<String>,
}

impl LedgerMeta {
    /// Parses and checks a LEDGER file.
    pub fn parse(bytes: &[u8]) -> Result<LedgerMeta, String> {
        let meta: LedgerMeta = yaml_serde::from_slice(bytes).map_err(|e| format!("LEDGER: {e}"))?;
        if meta.format != FORMAT_VERSION {
            return Err(format!(
                "LEDGER: format {} is not supported (this seakeeper reads format {FORMAT_VERSION})",
                meta.format
            ));
        }
        if meta.ledger_id.len() != 32 || !meta.ledger_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("LEDGER: ledger_id must be 32 hex digits".into());
        }
        if meta.signers.is_empty() {
            return Err("LEDGER: signers must name at least one key".into());
        }
        for s in &meta.signers {
            if !is_fingerprint(s) {
                return Err(format!(
                    "LEDGER: signer {s:?} is not a 40-hex-digit uppercase fingerprint"
                ));
            }
        }
        Ok(meta)
    }

    /// The file's canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        yaml_serde::to_string(self)
            .expect("LedgerMeta always serializes")
            .into_bytes()
    }
}

/// Whether `s` is a v4 fingerprint as seakeeper writes them (40 uppercase hex digits).
pub fn is_fingerprint(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

/// An open ledger repository.
pub struct Ledger {
    repo: gix::Repository,
    path: PathBuf,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

/// The ledger opened for the writer and the pack merger, which read little (the tip's trees):
/// a small object cache keeps a long-running daemon small.
pub(crate) fn open_repo_for_writing(path: &Path) -> Result<gix::Repository, LedgerError> {
    let mut repo =
        gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| LedgerError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    repo.object_cache_size_if_unset(2 << 20);
    Ok(repo)
}

pub(crate) fn open_repo(path: &Path) -> Result<gix::Repository, LedgerError> {
    let mut repo =
        gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| LedgerError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    repo.object_cache_size_if_unset(16 << 20);
    Ok(repo)
}

impl Ledger {
    /// Opens an existing ledger (a bare repository).
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        Ok(Ledger {
            repo: open_repo(path)?,
            path: path.to_owned(),
        })
    }

    /// Creates a new ledger at `path`: a bare repository whose first commit, signed by `key`,
    /// holds `LEDGER` (allowing only `key`) and the key's public cert under `KEYS/`.
    pub fn init(path: &Path, key: &mut SigningKey) -> Result<(Ledger, CommitId), LedgerError> {
        if path.exists() {
            let mut entries = std::fs::read_dir(path)
                .map_err(LedgerError::io(format!("reading {}", path.display())))?;
            if entries.next().is_some() {
                return Err(LedgerError::AlreadyExists(path.to_owned()));
            }
        }
        let repo = gix::init_bare(path).map_err(|e| LedgerError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        std::fs::write(repo.git_dir().join("HEAD"), format!("ref: {LEDGER_REF}\n"))
            .map_err(LedgerError::io("writing HEAD"))?;
        drop(repo);
        let ledger = Ledger::open(path)?;
        let meta = LedgerMeta {
            format: FORMAT_VERSION,
            ledger_id: new_ledger_id(path, key.fingerprint()),
            signers: vec![key.fingerprint().to_owned()],
        };
        let mut overlay = overlay::Overlay::new(&ledger.repo, None);
        overlay.put_blob("LEDGER", meta.to_bytes())?;
        overlay.put_blob(
            &layout::key_path(key.fingerprint()),
            key.public_cert_armored()?,
        )?;
        let message = format!(
            "Initialize ledger {}\n\nLedger-Id: {}\nSigner: {}\n{}",
            meta.ledger_id,
            meta.ledger_id,
            meta.signers[0],
            commit::sequence_trailer(0)
        );
        let commit = commit::commit_overlay(&ledger.repo, overlay, None, key, &message)?;
        Ok((ledger, commit))
    }

    /// The path of the repository.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying repository, for readers in this crate.
    /// A commit of this repository taken apart (payload, signature, message); an error when
    /// the repository holds no such commit.
    pub fn raw_commit(&self, id: ObjectId) -> Result<RawCommit, LedgerError> {
        commit::read_commit(self.repo(), id)
    }

    pub(crate) fn repo(&self) -> &gix::Repository {
        &self.repo
    }

    /// The commit the ledger ref points at, or `None` for an empty ledger.
    pub fn tip(&self) -> Result<Option<ObjectId>, LedgerError> {
        Ok(git::read_ref(&self.repo, LEDGER_REF)?)
    }

    /// A read view of the ledger at its current tip. Refuses a ledger whose format this build
    /// does not know.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, LedgerError> {
        let tip = self.tip()?.ok_or(LedgerError::Empty)?;
        let snapshot = Snapshot::at(self, tip)?;
        snapshot.meta()?;
        Ok(snapshot)
    }

    /// A read view at a given commit.
    pub fn snapshot_at(&self, commit: ObjectId) -> Result<Snapshot<'_>, LedgerError> {
        Snapshot::at(self, commit)
    }

    /// Changes the set of keys allowed to sign the *next* commits. The commit that does so is
    /// signed by `key`, which must be allowed now. `add` are armored public certs.
    pub fn rotate_keys(
        &self,
        key: &mut SigningKey,
        add: &[Vec<u8>],
        remove: &[String],
    ) -> Result<CommitId, LedgerError> {
        commit::rotate_keys(self, key, add, remove)
    }
}

fn new_ledger_id(path: &Path, fingerprint: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(path.as_os_str().as_encoded_bytes());
    h.update(fingerprint.as_bytes());
    h.update(std::process::id().to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.update(now.as_nanos().to_le_bytes());
    if let Ok(random) = std::fs::read("/proc/sys/kernel/random/uuid") {
        h.update(random);
    }
    hex::encode(&h.finalize()[..16])
}
