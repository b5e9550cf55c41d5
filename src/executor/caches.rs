//! Dependency caches: a workspace directory (`vendor`, `node_modules`) saved after a job
//! succeeds and restored before the next one, keyed by the content of the files that decide it
//! (`composer.lock`, `package-lock.json`), the project, the image and the trust level. A key's
//! archive is written once and never changed (content-addressed, as the key is), so two jobs
//! racing to save it write the same thing.
//!
//! Kept apart by trust: each trust level has its own directory (locally
//! `<state>/caches/<trusted|untrusted>`, on Kubernetes a volume in each trust level's
//! namespace), and the trust level is part of the key too, so a cache an untrusted job wrote is
//! never read by a trusted one. Restoring never writes outside the cache's directory: each
//! existing segment of the path must be a real directory of the workspace (a checked-out
//! symbolic link is refused), and entries that would leave it are refused. Archives hold only
//! directories, regular files (modes 0644 or 0755) and symbolic links. Old archives go by the
//! retention policy (`caches.days` after they were last used).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use crate::model::{CacheSpec, JobSpec};

/// The most a cache may hold; a bigger one is not saved (the log says so).
pub const MAX_CACHE_BYTES: u64 = 2 << 30;
/// The most a key file may hold.
const MAX_KEY_FILE_BYTES: u64 = 64 << 20;

/// What keys every cache of a job besides its files: project, trust level and image.
pub fn identity(spec: &JobSpec) -> String {
    let mut h = sha2::Sha256::new();
    for part in [
        "seakeeper-cache-v1",
        spec.project.as_str(),
        spec.trust.as_str(),
        spec.image.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// A workspace path, checked: every existing segment a real directory (or, for the last, a
/// file when `file`), none a symbolic link.
fn inside(workspace: &Path, rel: &str, file: bool) -> Result<PathBuf, String> {
    let mut p = workspace.to_owned();
    let segments: Vec<&str> = rel.split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        if s.is_empty() || *s == "." || *s == ".." {
            return Err(format!("{rel:?}: not a plain relative path"));
        }
        p.push(s);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("{rel:?}: {s} is a symbolic link in the workspace"));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) if file && i + 1 == segments.len() => {}
            Ok(_) => return Err(format!("{rel:?}: {s} is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{rel:?}: {e}")),
        }
    }
    Ok(p)
}

/// The key of `cache`: the job's identity, the cache's path, and each key file's name and
/// content (a missing file counts as missing, so adding it changes the key).
pub fn key(identity: &str, workspace: &Path, cache: &CacheSpec) -> Result<String, String> {
    let mut h = sha2::Sha256::new();
    h.update(identity.as_bytes());
    h.update([0]);
    h.update(cache.path.as_bytes());
    h.update([0]);
    for k in &cache.key {
        h.update(k.as_bytes());
        h.update([0]);
        let path = inside(workspace, k, true)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {
                if m.len() > MAX_KEY_FILE_BYTES {
                    return Err(format!(
                        "key file {k}: {} bytes, over {MAX_KEY_FILE_BYTES}",
                        m.len()
                    ));
                }
                let mut f = std::fs::File::open(&path).map_err(|e| format!("key file {k}: {e}"))?;
                let mut buf = vec![0u8; 1 << 16];
                h.update(m.len().to_le_bytes());
                loop {
                    let n = f.read(&mut buf).map_err(|e| format!("key file {k}: {e}"))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            Ok(_) => return Err(format!("key file {k}: not a regular file")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => h.update(b"missing"),
            Err(e) => return Err(format!("key file {k}: {e}")),
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

fn archive(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.tar"))
}

/// What restoring did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Nothing under this key yet.
    Miss,
    /// Restored this many bytes.
    Hit(u64),
}

/// Restores the archive of `key` from `dir` into the cache's directory of the workspace.
pub fn restore(
    dir: &Path,
    key: &str,
    workspace: &Path,
    cache: &CacheSpec,
) -> Result<Restored, String> {
    let path = archive(dir, key);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::Miss),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let target = inside(workspace, &cache.path, false)?;
    std::fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
    // Created just now: check again that nothing in the chain became a link.
    inside(workspace, &cache.path, false)?;
    let err = |e: String| format!("{}: {e}", path.display());
    let mut a = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, file));
    // Directories known to be real (not links) below `target`: each is checked once.
    let mut real: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    real.insert(target.clone());
    let mut buf = vec![0u8; 1 << 18];
    for entry in a.entries().map_err(|e| err(e.to_string()))? {
        let mut entry = entry.map_err(|e| err(e.to_string()))?;
        let kind = entry.header().entry_type();
        let rel = entry.path().map_err(|e| err(e.to_string()))?.into_owned();
        // Plain relative segments only: nothing can name a place outside `target`.
        let mut dest = target.clone();
        for c in rel.components() {
            match c {
                std::path::Component::Normal(n) => dest.push(n),
                _ => return Err(err(format!("{}: not a plain relative path", rel.display()))),
            }
        }
        if dest == target {
            continue;
        }
        let parent = dest
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| target.clone());
        if !real.contains(&parent) {
            // Every directory on the way is a real one (a link the checkout or an earlier
            // entry made is never written through).
            let mut p = parent.clone();
            let mut chain = Vec::new();
            while !real.contains(&p) {
                chain.push(p.clone());
                if !p.pop() || !p.starts_with(&target) {
                    return Err(err(format!("{}: outside the cache", rel.display())));
                }
            }
            for d in chain.into_iter().rev() {
                match std::fs::symlink_metadata(&d) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        return Err(err(format!("{}: not a directory", d.display())));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        std::fs::create_dir(&d).map_err(|e| err(e.to_string()))?;
                    }
                    Err(e) => return Err(err(e.to_string())),
                }
                real.insert(d);
            }
        }
        if kind.is_dir() {
            match std::fs::symlink_metadata(&dest) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(err(format!("{}: not a directory", dest.display()))),
                Err(_) => std::fs::create_dir(&dest).map_err(|e| err(e.to_string()))?,
            }
            real.insert(dest);
        } else if kind.is_symlink() {
            let to = entry
                .link_name()
                .map_err(|e| err(e.to_string()))?
                .ok_or_else(|| err("a link without a target".into()))?
                .into_owned();
            let _ = std::fs::remove_file(&dest);
            std::os::unix::fs::symlink(&to, &dest).map_err(|e| err(e.to_string()))?;
        } else if kind.is_file() {
            let mode = entry.header().mode().unwrap_or(0o644) & 0o755;
            // Replaces what the checkout has there, never writing through a link.
            match std::fs::symlink_metadata(&dest) {
                Ok(m) if m.is_dir() => {
                    return Err(err(format!("{}: a directory", dest.display())));
                }
                Ok(_) => std::fs::remove_file(&dest).map_err(|e| err(e.to_string()))?,
                Err(_) => {}
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&dest)
                .map_err(|e| err(format!("{}: {e}", dest.display())))?;
            loop {
                let n = entry.read(&mut buf).map_err(|e| err(e.to_string()))?;
                if n == 0 {
                    break;
                }
                f.write_all(&buf[..n]).map_err(|e| err(e.to_string()))?;
            }
        } else {
            return Err(err(format!("an entry of type {kind:?}")));
        }
    }
    // Last used now: retention counts from here.
    let _ = std::fs::File::open(&path).and_then(|f| {
        f.set_times(std::fs::FileTimes::new().set_modified(std::time::SystemTime::now()))
    });
    Ok(Restored::Hit(size))
}

/// What saving did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    /// The key's archive exists already (it never changes).
    Present,
    /// The job left no such directory.
    Nothing,
    /// Saved this many bytes.
    Saved(u64),
    /// Over [`MAX_CACHE_BYTES`]: not saved.
    TooBig(u64),
}

/// Saves the cache's directory of the workspace as the archive of `key` in `dir`, unless
/// there is one.
pub fn save(dir: &Path, key: &str, workspace: &Path, cache: &CacheSpec) -> Result<Saved, String> {
    let path = archive(dir, key);
    if path.exists() {
        return Ok(Saved::Present);
    }
    let source = match inside(workspace, &cache.path, false) {
        Ok(p) => p,
        // A job that turned the directory into a link: nothing of it is kept.
        Err(_) => return Ok(Saved::Nothing),
    };
    match std::fs::symlink_metadata(&source) {
        Ok(m) if m.is_dir() => {}
        _ => return Ok(Saved::Nothing),
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // A name of its own per save (jobs of one process may save the same key at once), and
    // published by a link, which never replaces an archive another save published first.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{key}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let result = write_archive(&source, &tmp).and_then(|size| {
        if size > MAX_CACHE_BYTES {
            return Ok(Saved::TooBig(size));
        }
        match std::fs::hard_link(&tmp, &path) {
            Ok(()) => Ok(Saved::Saved(size)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Saved::Present),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    });
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Writes `source` as a tar archive (sorted, modes normalized, no owners or times), durably;
/// returns the bytes written (it stops early past [`MAX_CACHE_BYTES`]).
fn write_archive(source: &Path, to: &Path) -> Result<u64, String> {
    let err = |e: std::io::Error| format!("{}: {e}", to.display());
    let file = std::fs::File::create(to).map_err(err)?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.follow_symlinks(false);
    let mut total = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = source.join(&rel);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().rev() {
            let name = rel.join(e.file_name());
            let full = source.join(&name);
            let m =
                std::fs::symlink_metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
            let mut h = tar::Header::new_gnu();
            h.set_mtime(0);
            if m.file_type().is_symlink() {
                let target =
                    std::fs::read_link(&full).map_err(|e| format!("{}: {e}", full.display()))?;
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, &name, &target).map_err(err)?;
            } else if m.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, &name, std::io::empty())
                    .map_err(err)?;
                stack.push(name);
            } else if m.is_file() {
                total += m.len();
                if total > MAX_CACHE_BYTES {
                    return Ok(total);
                }
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(if m.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                });
                h.set_size(m.len());
                let f =
                    std::fs::File::open(&full).map_err(|e| format!("{}: {e}", full.display()))?;
                b.append_data(&mut h, &name, f).map_err(err)?;
            }
            // Sockets, fifos and devices a job left are not kept.
        }
    }
    let mut w = b.into_inner().map_err(err)?;
    w.flush().map_err(err)?;
    let f = w.into_inner().map_err(|e| err(e.into_error()))?;
    f.sync_all().map_err(err)?;
    Ok(total)
}

/// Restores every cache of a job from `dir` (its trust level's) into `workspace`, telling
/// `line` what each did; returns each usable cache with its key, to save if the job succeeds.
/// A cache that cannot be used is told and skipped, never a reason to fail the job. Both
/// executors use this (locally before the commands; on Kubernetes in the fetch container).
pub fn restore_all(
    identity: &str,
    dir: &Path,
    workspace: &Path,
    caches: &[CacheSpec],
    line: &mut dyn FnMut(&str),
) -> Vec<(CacheSpec, String)> {
    let mut keys = Vec::new();
    for c in caches {
        match key(identity, workspace, c)
            .and_then(|k| restore(dir, &k, workspace, c).map(|r| (k, r)))
        {
            Ok((k, r)) => {
                line(&match r {
                    Restored::Hit(n) => format!(
                        "seakeeper: cache {} restored ({n} bytes, key {})",
                        c.path,
                        &k[..12]
                    ),
                    Restored::Miss => {
                        format!("seakeeper: cache {}: none yet for key {}", c.path, &k[..12])
                    }
                });
                keys.push((c.clone(), k));
            }
            Err(e) => line(&format!("seakeeper: cache {} not used: {e}", c.path)),
        }
    }
    keys
}

/// Saves `cache` under `key` in `dir` and says what happened, as a log line.
pub fn save_line(dir: &Path, key: &str, workspace: &Path, cache: &CacheSpec) -> String {
    match save(dir, key, workspace, cache) {
        Ok(Saved::Saved(n)) => format!("seakeeper: cache {} saved ({n} bytes)", cache.path),
        Ok(Saved::Present) => format!("seakeeper: cache {} unchanged", cache.path),
        Ok(Saved::Nothing) => format!(
            "seakeeper: cache {}: the job left no such directory",
            cache.path
        ),
        Ok(Saved::TooBig(n)) => format!(
            "seakeeper: cache {} not saved: {n} bytes, over {MAX_CACHE_BYTES}",
            cache.path
        ),
        Err(e) => format!("seakeeper: cache {} not saved: {e}", cache.path),
    }
}

/// Removes archives under `root` (each trust level's directory) not used for `max_age` (only
/// lists them when `dry_run`); returns them with their sizes.
pub fn expire(
    root: &Path,
    max_age: std::time::Duration,
    dry_run: bool,
) -> Result<Vec<(PathBuf, u64)>, String> {
    let mut removed = Vec::new();
    let Ok(levels) = std::fs::read_dir(root) else {
        return Ok(removed);
    };
    let now = std::time::SystemTime::now();
    for level in levels.flatten() {
        let Ok(files) = std::fs::read_dir(level.path()) else {
            continue;
        };
        for f in files.flatten() {
            let p = f.path();
            let Ok(m) = f.metadata() else { continue };
            let age = m.modified().ok().and_then(|t| now.duration_since(t).ok());
            let stale_tmp = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && age.is_some_and(|a| a > std::time::Duration::from_secs(24 * 3600));
            let old = p.extension().is_some_and(|e| e == "tar") && age.is_some_and(|a| a > max_age);
            if (old || stale_tmp) && (dry_run || std::fs::remove_file(&p).is_ok()) {
                removed.push((p, m.len()));
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> CacheSpec {
        CacheSpec {
            path: "vendor".into(),
            key: vec!["composer.lock".into()],
        }
    }

    #[test]
    fn saved_then_restored_by_the_same_key_only() {
        let t = tempfile::tempdir().expect("tmp");
        let (ws, store) = (t.path().join("ws"), t.path().join("caches"));
        std::fs::create_dir_all(ws.join("vendor/lib")).expect("dirs");
        std::fs::write(ws.join("composer.lock"), "v1").expect("lock");
        std::fs::write(ws.join("vendor/lib/a.php"), "<?php").expect("file");
        std::os::unix::fs::symlink("lib/a.php", ws.join("vendor/link")).expect("link");
        let k = key("id", &ws, &cache()).expect("key");
        assert!(matches!(
            save(&store, &k, &ws, &cache()),
            Ok(Saved::Saved(5))
        ));
        assert_eq!(save(&store, &k, &ws, &cache()), Ok(Saved::Present));
        let ws2 = t.path().join("ws2");
        std::fs::create_dir_all(&ws2).expect("ws2");
        std::fs::write(ws2.join("composer.lock"), "v1").expect("lock");
        assert_eq!(key("id", &ws2, &cache()).expect("key"), k);
        assert!(matches!(
            restore(&store, &k, &ws2, &cache()),
            Ok(Restored::Hit(_))
        ));
        assert_eq!(
            std::fs::read(ws2.join("vendor/lib/a.php")).expect("restored"),
            b"<?php"
        );
        assert_eq!(
            std::fs::read(ws2.join("vendor/link")).expect("link"),
            b"<?php"
        );
        // Another lock file, another identity: other keys.
        std::fs::write(ws2.join("composer.lock"), "v2").expect("lock");
        assert_ne!(key("id", &ws2, &cache()).expect("key"), k);
        assert_ne!(key("other", &ws, &cache()).expect("key"), k);
    }

    #[test]
    fn a_checked_out_link_is_never_restored_through() {
        let t = tempfile::tempdir().expect("tmp");
        let (ws, store, outside) = (
            t.path().join("ws"),
            t.path().join("c"),
            t.path().join("out"),
        );
        std::fs::create_dir_all(ws.join("vendor")).expect("dirs");
        std::fs::create_dir_all(&outside).expect("outside");
        std::fs::write(ws.join("vendor/x"), "x").expect("file");
        save(&store, "k", &ws, &cache()).expect("save");
        let ws2 = t.path().join("ws2");
        std::fs::create_dir_all(&ws2).expect("ws2");
        std::os::unix::fs::symlink(&outside, ws2.join("vendor")).expect("link");
        assert!(restore(&store, "k", &ws2, &cache()).is_err());
        assert!(!outside.join("x").exists());
        std::fs::write(ws2.join("composer.lock.real"), "x").expect("f");
        std::os::unix::fs::symlink("/etc/hostname", ws2.join("composer.lock")).expect("link");
        assert!(key("id", &ws2, &cache()).is_err());
    }
}
