//! Reading files straight from git objects at a commit (no checkout), and resolving a revision
//! given as a commit id or a ref name.

use std::collections::BTreeMap;

use super::tree::{self, MODE_TREE};
use super::{ObjectId, read_object};

/// An error while resolving a revision or reading files.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The revision names nothing in the repository.
    #[error("{0:?} is neither a commit id nor a branch, tag or ref in this repository")]
    UnknownRevision(String),
    /// An object is missing or malformed.
    #[error("{0}")]
    Corrupt(String),
    /// A file, or the tree as a whole, is larger than the limits allow: refused before it is
    /// read, let alone parsed (files from patchsets are untrusted).
    #[error("{0}")]
    TooLarge(String),
}

/// How much of a tree is read: files from patchsets are untrusted, so their size is capped
/// before a byte of them is read.
pub const MAX_FILE: u64 = 1 << 20;
/// The most bytes read from one tree (a config repo's every file together).
pub const MAX_TREE: u64 = 16 << 20;
/// The deepest directory nesting read.
pub const MAX_DEPTH: usize = 32;
/// The most files read from one tree.
pub const MAX_FILES: usize = 50_000;

fn blob_size(repo: &gix::Repository, id: &ObjectId) -> Result<u64, FilesError> {
    use gix::prelude::Header as _;
    match repo.objects.try_header(id) {
        Ok(Some(h)) => Ok(h.size()),
        Ok(None) => Err(FilesError::Corrupt(format!("object {id} is missing"))),
        Err(e) => Err(FilesError::Corrupt(format!("reading {id}: {e}"))),
    }
}

/// Refuses files over [`MAX_FILE`] and trees over [`MAX_TREE`], by the objects' headers.
fn check_sizes(repo: &gix::Repository, ids: &BTreeMap<String, ObjectId>) -> Result<(), FilesError> {
    let mut total = 0u64;
    for (path, id) in ids {
        let size = blob_size(repo, id)?;
        if size > MAX_FILE {
            return Err(FilesError::TooLarge(format!(
                "{path} is {size} bytes, over the limit of {MAX_FILE}"
            )));
        }
        total += size;
        if total > MAX_TREE {
            return Err(FilesError::TooLarge(format!(
                "the files come to more than {MAX_TREE} bytes (the limit for one tree)"
            )));
        }
    }
    Ok(())
}

/// A file read from a tree: its blob id and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// The blob's id (unchanged blob, unchanged content: parsers may cache by it).
    pub blob: ObjectId,
    /// The content.
    pub bytes: Vec<u8>,
}

/// Resolves `rev`: a full commit id, `HEAD`, a full ref name, or a branch, tag or remote name.
pub fn resolve(repo: &gix::Repository, rev: &str) -> Result<ObjectId, FilesError> {
    if rev.len() == 40
        && let Ok(id) = ObjectId::from_hex(rev.as_bytes())
    {
        return Ok(id);
    }
    let candidates = [
        rev.to_owned(),
        format!("refs/heads/{rev}"),
        format!("refs/tags/{rev}"),
        format!("refs/remotes/{rev}"),
    ];
    for name in candidates {
        if let Ok(Some(mut r)) = repo.try_find_reference(name.as_str())
            && let Ok(id) = r.peel_to_id()
        {
            return Ok(id.detach());
        }
    }
    Err(FilesError::UnknownRevision(rev.to_owned()))
}

fn object(
    repo: &gix::Repository,
    id: &ObjectId,
) -> Result<(gix::object::Kind, Vec<u8>), FilesError> {
    read_object(repo, id)
        .map_err(|e| FilesError::Corrupt(format!("reading {id}: {e}")))?
        .ok_or_else(|| FilesError::Corrupt(format!("object {id} is missing")))
}

/// The root tree of a commit.
pub fn commit_tree(repo: &gix::Repository, commit: &ObjectId) -> Result<ObjectId, FilesError> {
    let (kind, data) = object(repo, commit)?;
    if kind != gix::object::Kind::Commit {
        return Err(FilesError::Corrupt(format!(
            "{commit} is a {kind}, not a commit"
        )));
    }
    let decoded = gix::objs::CommitRef::from_bytes(&data, gix::hash::Kind::Sha1)
        .map_err(|e| FilesError::Corrupt(format!("commit {commit}: {e}")))?;
    Ok(decoded.tree())
}

/// Every regular file under the tree of `commit`, by path. Submodules and symlinks are skipped.
pub fn read_all(
    repo: &gix::Repository,
    commit: &ObjectId,
) -> Result<BTreeMap<String, File>, FilesError> {
    let mut ids = BTreeMap::new();
    list(repo, commit_tree(repo, commit)?, "", 0, &mut ids)?;
    check_sizes(repo, &ids)?;
    ids.into_iter()
        .map(|(path, blob)| {
            let (kind, bytes) = object(repo, &blob)?;
            if kind != gix::object::Kind::Blob {
                return Err(FilesError::Corrupt(format!(
                    "{path}: {blob} is a {kind}, not a blob"
                )));
            }
            Ok((path, File { blob, bytes }))
        })
        .collect()
}

/// A file's blob id and content, shared with the cache.
pub type BlobFile = (ObjectId, std::sync::Arc<[u8]>);

/// Blob contents by id, kept between reads of successive commits: a file whose blob did not
/// change is not read again.
#[derive(Default)]
pub struct BlobCache {
    blobs: std::collections::HashMap<ObjectId, std::sync::Arc<[u8]>>,
}

impl BlobCache {
    /// An empty cache.
    pub fn new() -> BlobCache {
        BlobCache::default()
    }
}

/// Every regular file of `commit` with its blob id, reading only blobs not in `cache`; the
/// cache then holds exactly this commit's blobs.
pub fn read_all_cached(
    repo: &gix::Repository,
    commit: &ObjectId,
    cache: &mut BlobCache,
) -> Result<BTreeMap<String, BlobFile>, FilesError> {
    let mut ids = BTreeMap::new();
    list(repo, commit_tree(repo, commit)?, "", 0, &mut ids)?;
    check_sizes(repo, &ids)?;
    let mut fresh = std::collections::HashMap::with_capacity(ids.len());
    let mut out = BTreeMap::new();
    for (path, id) in ids {
        let bytes = match cache.blobs.get(&id) {
            Some(b) => b.clone(),
            None => {
                let (kind, bytes) = object(repo, &id)?;
                if kind != gix::object::Kind::Blob {
                    return Err(FilesError::Corrupt(format!(
                        "{path}: {id} is a {kind}, not a blob"
                    )));
                }
                std::sync::Arc::from(bytes)
            }
        };
        fresh.insert(id, bytes.clone());
        out.insert(path, (id, bytes));
    }
    cache.blobs = fresh;
    Ok(out)
}

fn list(
    repo: &gix::Repository,
    id: ObjectId,
    prefix: &str,
    depth: usize,
    out: &mut BTreeMap<String, ObjectId>,
) -> Result<(), FilesError> {
    if depth > MAX_DEPTH {
        return Err(FilesError::TooLarge(format!(
            "{prefix}: directories nest deeper than {MAX_DEPTH} levels"
        )));
    }
    if out.len() > MAX_FILES {
        return Err(FilesError::TooLarge(format!(
            "the tree holds more than {MAX_FILES} files"
        )));
    }
    let (kind, data) = object(repo, &id)?;
    if kind != gix::object::Kind::Tree {
        return Err(FilesError::Corrupt(format!("{id} is a {kind}, not a tree")));
    }
    for e in tree::decode(&data).map_err(|e| FilesError::Corrupt(format!("tree {id}: {e}")))? {
        let name = String::from_utf8_lossy(&e.name);
        let path = if prefix.is_empty() {
            name.into_owned()
        } else {
            format!("{prefix}/{name}")
        };
        match e.mode {
            MODE_TREE => list(repo, e.oid, &path, depth + 1, out)?,
            0o100644 | 0o100755 => {
                out.insert(path, e.oid);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The content of one file at `commit` (e.g. a project's `.pipeline/config.yaml`), reading only
/// the trees on its path; `None` if there is no such file.
pub fn read_file(
    repo: &gix::Repository,
    commit: &ObjectId,
    path: &str,
) -> Result<Option<Vec<u8>>, FilesError> {
    let mut id = commit_tree(repo, commit)?;
    let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
    while let Some(part) = parts.next() {
        let (kind, data) = object(repo, &id)?;
        if kind != gix::object::Kind::Tree {
            return Ok(None);
        }
        let Some((mode, oid)) = tree::find(&data, part.as_bytes())
            .map_err(|e| FilesError::Corrupt(format!("tree {id}: {e}")))?
        else {
            return Ok(None);
        };
        if parts.peek().is_none() {
            if mode == MODE_TREE {
                return Ok(None);
            }
            let size = blob_size(repo, &oid)?;
            if size > MAX_FILE {
                return Err(FilesError::TooLarge(format!(
                    "{path} is {size} bytes, over the limit of {MAX_FILE}"
                )));
            }
            let (kind, bytes) = object(repo, &oid)?;
            return Ok((kind == gix::object::Kind::Blob).then_some(bytes));
        }
        id = oid;
    }
    Ok(None)
}
