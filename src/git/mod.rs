//! gix helpers: object ids, tree encoding, durable pack writing and compare-and-swap ref
//! updates.
//!
//! gix never fsyncs, so everything here that writes makes its data durable itself before it
//! returns: a caller may acknowledge a write to someone else as soon as these functions return.
//! This module knows nothing of the ledger's layout or of signatures.

pub mod checkout;
pub mod delta;
pub mod files;
pub mod mirror;
pub mod pack;
pub mod speculative;
pub mod tree;
pub mod workspace;

use std::fs;
use std::path::Path;

pub use gix::ObjectId;

/// The kinds of git object seakeeper writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A commit.
    Commit,
    /// A tree.
    Tree,
    /// A blob.
    Blob,
}

impl ObjectKind {
    fn header_name(self) -> &'static [u8] {
        match self {
            ObjectKind::Commit => b"commit",
            ObjectKind::Tree => b"tree",
            ObjectKind::Blob => b"blob",
        }
    }
    /// The type number used in pack entries.
    fn pack_type(self) -> u8 {
        match self {
            ObjectKind::Commit => 1,
            ObjectKind::Tree => 2,
            ObjectKind::Blob => 3,
        }
    }
}

/// The SHA-1 object id git gives `data` as an object of `kind`.
pub fn object_id(kind: ObjectKind, data: &[u8]) -> ObjectId {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(kind.header_name());
    h.update(b" ");
    h.update(data.len().to_string().as_bytes());
    h.update([0u8]);
    h.update(data);
    let bytes: [u8; 20] = h.finalize().into();
    ObjectId::from(bytes)
}

/// An error while moving a ref.
#[derive(Debug, thiserror::Error)]
pub enum RefUpdateError {
    /// The ref did not hold the expected value: someone else moved it first.
    #[error("{name} moved concurrently (expected {expected}, found {found})")]
    Conflict {
        /// The ref.
        name: String,
        /// What we expected it to hold.
        expected: String,
        /// What it held.
        found: String,
    },
    /// gix could not edit the ref for another reason.
    #[error("updating {name}: {message}")]
    Other {
        /// The ref.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The ref file or its directory could not be synced.
    #[error("syncing {path}: {source}")]
    Sync {
        /// The file or directory.
        path: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Reads the object id a ref points at (following no symbolic refs), or `None` if it is absent.
pub fn read_ref(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>, RefUpdateError> {
    let other = |message: String| RefUpdateError::Other {
        name: name.to_owned(),
        message,
    };
    match repo
        .try_find_reference(name)
        .map_err(|e| other(e.to_string()))?
    {
        None => Ok(None),
        Some(r) => match r.target() {
            gix::refs::TargetRef::Object(id) => Ok(Some(id.to_owned())),
            gix::refs::TargetRef::Symbolic(to) => Err(other(format!(
                "is a symbolic ref to {to}, expected a commit"
            ))),
        },
    }
}

/// Moves `name` from `expected` (or from not existing) to `new`, atomically, then fsyncs the
/// ref file and its directory. Fails with [`RefUpdateError::Conflict`] when the ref did not hold
/// `expected`; never forces.
pub fn compare_and_swap_ref(
    repo: &gix::Repository,
    name: &str,
    expected: Option<ObjectId>,
    new: ObjectId,
    reflog_message: &str,
) -> Result<(), RefUpdateError> {
    use gix::refs::Target;
    use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};

    let other = |message: String| RefUpdateError::Other {
        name: name.to_owned(),
        message,
    };
    let full_name: gix::refs::FullName = name
        .try_into()
        .map_err(|e: gix::validate::reference::name::Error| other(e.to_string()))?;
    let previous = match expected {
        Some(id) => PreviousValue::MustExistAndMatch(Target::Object(id)),
        None => PreviousValue::MustNotExist,
    };
    let edit = RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: reflog_message.into(),
            },
            expected: previous,
            new: Target::Object(new),
        },
        name: full_name,
        deref: false,
    };
    let committer = gix::actor::Signature {
        name: "seakeeper".into(),
        email: "seakeeper@localhost".into(),
        time: gix::date::Time::now_local_or_utc(),
    };
    let mut time_buf = gix::date::parse::TimeBuf::default();
    let mut result =
        repo.edit_references_as(Some(edit.clone()), Some(committer.to_ref(&mut time_buf)));
    // A lock file left by a writer that died mid-update (kill -9, a crash) would refuse every
    // later update forever: one older than any live update can be is removed, then the update
    // is tried once more (still compare-and-swap: nothing is forced).
    if result.is_err() && remove_stale_lock(&repo.git_dir().join(format!("{name}.lock"))) {
        result = repo.edit_references_as(Some(edit), Some(committer.to_ref(&mut time_buf)));
    }
    if let Err(e) = result {
        let found = read_ref(repo, name)?;
        if found != expected {
            return Err(RefUpdateError::Conflict {
                name: name.to_owned(),
                expected: expected.map_or_else(|| "no ref".into(), |id| id.to_string()),
                found: found.map_or_else(|| "no ref".into(), |id| id.to_string()),
            });
        }
        return Err(other(e.to_string()));
    }
    let path = repo.git_dir().join(name);
    if path.is_file() {
        sync_file(&path).map_err(|source| RefUpdateError::Sync {
            path: path.display().to_string(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            sync_dir(dir).map_err(|source| RefUpdateError::Sync {
                path: dir.display().to_string(),
                source,
            })?;
        }
    }
    Ok(())
}

/// How old a ref's lock file must be to be taken for one a dead writer left (a live update
/// holds it for milliseconds).
pub const STALE_LOCK: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes `lock` when it is older than [`STALE_LOCK`]; whether it did.
pub fn remove_stale_lock(lock: &Path) -> bool {
    let old = fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age >= STALE_LOCK);
    if old && fs::remove_file(lock).is_ok() {
        tracing::warn!(
            "removed {}, a lock a writer that died left behind",
            lock.display()
        );
        if let Some(dir) = lock.parent() {
            let _ = sync_dir(dir);
        }
        return true;
    }
    false
}

/// fsync a file's data and metadata.
pub fn sync_file(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// fsync a directory, so that renames and new entries in it are durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Reads an object's kind and bytes from the repository, or `None` if it is absent.
pub fn read_object(
    repo: &gix::Repository,
    id: &ObjectId,
) -> Result<Option<(gix::object::Kind, Vec<u8>)>, String> {
    use gix::prelude::Find as _;
    let mut buf = Vec::new();
    match repo.objects.try_find(id, &mut buf) {
        Ok(Some(data)) => {
            let kind = data.kind;
            Ok(Some((kind, buf)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Helpers for this module's tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    /// Runs `git` in `dir` (with an author set and `input` on its standard input), asserts
    /// that it succeeded, and returns its output.
    pub fn git(dir: &Path, args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
        use std::io::Write as _;
        let mut child = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = input.unwrap_or_default().to_vec();
        // Written from another thread: git answers while it reads, and both pipes are bounded.
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}
