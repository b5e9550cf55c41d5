//! Durable files: written whole to a temporary name, fsynced, renamed into place, and the
//! directory fsynced, so that a crash leaves either the old file or the new one, never half.
//! This module does no parsing and knows nothing of what it stores.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::model::Digest;

pub mod place;

/// Replaces `path` with `bytes` durably (temporary file, fsync, rename, fsync of the directory).
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Unique per process and call: two threads may write the same file.
    let tmp = path.with_file_name(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The directory of the content-addressed store under `store` that holds its blobs:
/// `<store>/sha256`.
pub fn blob_dir(store: &Path) -> PathBuf {
    store.join("sha256")
}

/// Where the content-addressed store under `store` keeps the blob `digest`:
/// `<store>/sha256/<hex>`.
pub fn blob_path(store: &Path, digest: &Digest) -> PathBuf {
    blob_dir(store).join(digest.hex())
}

/// Marks a blob that was stored again as new (its modification time is now): retention only
/// deletes blobs nobody stored within the rule's age, so a blob an old build and a running one
/// share is never taken from under the running one.
pub fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

/// A content-addressed store of blobs by SHA-256 (`<root>/sha256/<hex>`): job logs, job
/// outputs. A blob is written whole and durably before its name exists, and storing the same
/// content again only marks it new (see [`touch`]).
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// The store under `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> BlobStore {
        BlobStore { root: root.into() }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or would be).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// Stores `bytes` durably; returns their digest.
    pub fn put(&self, bytes: &[u8]) -> std::io::Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.path(&digest);
        if path.exists() {
            touch(&path);
        } else {
            let dir = blob_dir(&self.root);
            std::fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
            write_durably(&path, bytes).map_err(|e| at(&path, e))?;
        }
        Ok(digest)
    }

    /// A blob's bytes.
    pub fn read(&self, digest: &Digest) -> std::io::Result<Vec<u8>> {
        let path = self.path(digest);
        std::fs::read(&path).map_err(|e| at(&path, e))
    }

    /// A writer that stores a blob as it comes, hashing on the way, so that a large one (a
    /// job's log) never has to be in memory whole.
    pub fn writer(&self) -> std::io::Result<BlobWriter> {
        use sha2::Digest as _;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = blob_dir(&self.root);
        std::fs::create_dir_all(&dir).map_err(|e| at(&dir, e))?;
        let tmp = dir.join(format!(
            ".blob.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let f = std::fs::File::create(&tmp).map_err(|e| at(&tmp, e))?;
        Ok(BlobWriter {
            dir,
            tmp,
            out: std::io::BufWriter::new(f),
            hash: sha2::Sha256::new(),
            len: 0,
        })
    }
}

/// An I/O error that names its file.
fn at(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// See [`BlobStore::writer`].
pub struct BlobWriter {
    dir: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    hash: sha2::Sha256,
    len: u64,
}

impl BlobWriter {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use sha2::Digest as _;
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Stores what was written (durably) and returns its digest; `None` if nothing was.
    pub fn finish(self) -> std::io::Result<Option<Digest>> {
        use sha2::Digest as _;
        let BlobWriter {
            dir,
            tmp,
            out,
            hash,
            len,
        } = self;
        let result = (|| {
            let f = out.into_inner().map_err(|e| at(&tmp, e.into_error()))?;
            if len == 0 {
                return Ok(None);
            }
            let digest: Digest = format!("sha256:{}", hex::encode(hash.finalize()))
                .parse()
                .expect("a sha256 digest");
            let path = dir.join(digest.hex());
            if path.exists() {
                touch(&path);
            } else {
                f.sync_all().map_err(|e| at(&tmp, e))?;
                std::fs::rename(&tmp, &path).map_err(|e| at(&path, e))?;
                // The blob is whole under its name; the directory's fsync only hurries it.
                let _ = std::fs::File::open(&dir).and_then(|d| d.sync_all());
            }
            Ok(Some(digest))
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_stored_once_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let d = store.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert_eq!(store.read(&d).unwrap(), b"hello");
        let mut w = store.writer().unwrap();
        w.write(b"hel").unwrap();
        w.write(b"lo").unwrap();
        assert_eq!(w.finish().unwrap(), Some(d.clone()));
        assert!(store.writer().unwrap().finish().unwrap().is_none());
        let names: Vec<_> = std::fs::read_dir(blob_dir(dir.path()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(d.hex())]);
    }
}
