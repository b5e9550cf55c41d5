//! Durable files: written whole to a temporary name, fsynced, renamed into place, and the
//! directory fsynced, so that a crash leaves either the old file or the new one, never half.
//! This module does no parsing and knows nothing of what it stores.

use std::io::Write as _;
use std::path::Path;

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
pub fn blob_dir(store: &Path) -> std::path::PathBuf {
    store.join("sha256")
}

/// Where the content-addressed store under `store` keeps the blob `digest`:
/// `<store>/sha256/<hex>`.
pub fn blob_path(store: &Path, digest: &crate::model::Digest) -> std::path::PathBuf {
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
