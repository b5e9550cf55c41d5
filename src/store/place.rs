//! Writing below a directory whose contents came from code under review (a job's workspace,
//! checked out from a patchset): a symbolic link the tree placed there must never redirect a
//! write of seakeeper's out of it. Directories are made one component at a time and refused when
//! a component is anything but a real directory; files are created new, never through a link.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::model::Digest;

/// Whether `rel` is a plain relative path: `/`-separated, no empty, `.` or `..` segment.
fn plain(rel: &str) -> bool {
    crate::model::job::is_safe_relative_path(rel)
}

/// Makes `root/rel` a directory, creating each missing component, and returns it. A component
/// that exists as anything but a real directory (a symbolic link, a file) is refused.
pub fn create_dirs_within(root: &Path, rel: &str) -> Result<PathBuf, String> {
    if !plain(rel) {
        return Err(format!("{rel:?} is not a plain relative path"));
    }
    let mut at = root.to_path_buf();
    for part in rel.split('/') {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!(
                    "{}: exists and is not a directory (the checked-out tree placed it there)",
                    at.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|e| format!("{}: {e}", at.display()))?;
            }
            Err(e) => return Err(format!("{}: {e}", at.display())),
        }
    }
    Ok(at)
}

/// Makes `root/rel` a new, empty directory (its parents as [`create_dirs_within`] makes them):
/// refused when it exists already, so nothing the tree put there is written into.
pub fn create_new_dir_within(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let (parent, name) = match rel.rsplit_once('/') {
        Some((p, n)) => (create_dirs_within(root, p)?, n),
        None => (root.to_path_buf(), rel),
    };
    if !plain(name) {
        return Err(format!("{rel:?} is not a plain relative path"));
    }
    let dir = parent.join(name);
    std::fs::create_dir(&dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{}: exists already (the checked-out tree placed it there)",
                dir.display()
            )
        } else {
            format!("{}: {e}", dir.display())
        }
    })?;
    Ok(dir)
}

/// Copies the blob `digest` of the content-addressed store under `store` to `root/rel` (a new
/// file, mode `mode`), checking its content against the digest as it copies: a store on a
/// shared volume is not taken at its word. A file that exists at `rel` is refused; the blob
/// must be a regular file (never followed through a link, never a FIFO or a device) of at most
/// `size` bytes.
pub fn copy_blob_within(
    store: &Path,
    digest: &Digest,
    root: &Path,
    rel: &str,
    mode: u32,
    size: u64,
) -> Result<(), String> {
    let parent = match rel.rsplit_once('/') {
        Some((p, _)) => create_dirs_within(root, p)?,
        None => root.to_path_buf(),
    };
    if !plain(rel) {
        return Err(format!("{rel:?} is not a plain relative path"));
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let dst = parent.join(name);
    let src = super::blob_path(store, digest);
    let mut from = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&src)
        .map_err(|e| format!("{}: {e}", src.display()))?;
    if !from.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{}: not a regular file", src.display()));
    }
    let mut to = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&dst)
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied: u64 = 0;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", src.display()))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if copied > size {
            drop(to);
            let _ = std::fs::remove_file(&dst);
            return Err(format!(
                "{}: longer than the {size} bytes recorded for it",
                src.display()
            ));
        }
        h.update(&buf[..n]);
        to.write_all(&buf[..n])
            .map_err(|e| format!("{}: {e}", dst.display()))?;
    }
    let got = hex::encode(h.finalize());
    if got != digest.hex() {
        drop(to);
        let _ = std::fs::remove_file(&dst);
        return Err(format!(
            "{}: the store's blob has digest sha256:{got}, not {digest}",
            src.display()
        ));
    }
    // The umask may have taken bits `mode` asked for.
    use std::os::unix::fs::PermissionsExt as _;
    to.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", dst.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbolic_link_in_the_tree_never_redirects_a_write() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("ws");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(".seakeeper")).unwrap();
        let e = create_dirs_within(&root, ".seakeeper/inputs/build").unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
        let e = create_new_dir_within(&root, ".seakeeper/required/p").unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        // A file link at the destination itself.
        let store = t.path().join("store");
        std::fs::create_dir_all(store.join("sha256")).unwrap();
        let body = b"hello";
        let hex = hex::encode(sha2::Sha256::digest(body));
        std::fs::write(store.join("sha256").join(&hex), body).unwrap();
        let digest: Digest = format!("sha256:{hex}").parse().unwrap();
        std::fs::remove_file(root.join(".seakeeper")).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::os::unix::fs::symlink(outside.join("x"), root.join("d/f")).unwrap();
        assert!(copy_blob_within(&store, &digest, &root, "d/f", 0o644, 5).is_err());
        assert!(!outside.join("x").exists());
        copy_blob_within(&store, &digest, &root, "d/g", 0o755, 5).unwrap();
        assert_eq!(std::fs::read(root.join("d/g")).unwrap(), body);

        // A FIFO or a link in the store's place: refused at once, never waited on or followed.
        let other: Digest = format!("sha256:{}", "1".repeat(64)).parse().unwrap();
        let fifo = store.join("sha256").join(other.hex());
        let made = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(made.as_ptr(), 0o600) }, 0);
        let e = copy_blob_within(&store, &other, &root, "d/fifo", 0o644, 5).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&fifo).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &fifo).unwrap();
        assert!(copy_blob_within(&store, &other, &root, "d/zero", 0o644, 5).is_err());
        assert!(!root.join("d/zero").exists());
        // Longer than recorded: stopped there.
        let e = copy_blob_within(&store, &digest, &root, "d/long", 0o644, 3).unwrap_err();
        assert!(e.contains("longer than the 3 bytes"), "{e}");
        assert!(!root.join("d/long").exists());

        // A blob whose content is not its name.
        std::fs::write(store.join("sha256").join(&hex), b"tampered").unwrap();
        let e = copy_blob_within(&store, &digest, &root, "d/h", 0o644, 100).unwrap_err();
        assert!(e.contains("not sha256:"), "{e}");
        assert!(!root.join("d/h").exists());
    }
}
