//! Writing exactly a commit's files into an empty directory, straight from git objects: no
//! clone, no index, nothing from anyone's working tree. Trees come from code under review, so
//! every name is checked (no `..`, no `/`, no `.git`, nothing outside the directory) before
//! anything is written. Files are written by several threads.

use std::path::{Path, PathBuf};

use super::tree::{self, MODE_TREE};
use super::{ObjectId, read_object};

/// A checkout failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// An object is missing or is not what the tree says.
    #[error("{0}")]
    Corrupt(String),
    /// A name in a tree would escape the workspace or touch `.git`.
    #[error("refusing to check out {path:?}: {why}")]
    UnsafePath {
        /// The path in the tree.
        path: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// Writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What was written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutStats {
    /// Regular files and symlinks.
    pub files: usize,
    /// Bytes of file content.
    pub bytes: u64,
}

struct Entry {
    path: PathBuf,
    mode: u32,
    oid: ObjectId,
}

fn check_name(parent: &str, name: &[u8]) -> Result<String, CheckoutError> {
    let text = String::from_utf8_lossy(name).into_owned();
    let path = if parent.is_empty() {
        text.clone()
    } else {
        format!("{parent}/{text}")
    };
    let why = if name.is_empty() {
        Some("empty name")
    } else if name == b"." || name == b".." {
        Some("a relative path component")
    } else if name.contains(&b'/') || name.contains(&0) || name.contains(&b'\\') {
        Some("a separator or NUL in a name")
    } else if name.eq_ignore_ascii_case(b".git") {
        Some("a .git entry")
    } else {
        None
    };
    match why {
        Some(why) => Err(CheckoutError::UnsafePath { path, why }),
        None => Ok(path),
    }
}

/// Writes the files of `commit` into `dest` (created if missing; it should be empty), on
/// `threads` threads. Submodules become empty directories.
pub fn checkout(
    repo: &gix::ThreadSafeRepository,
    commit: &ObjectId,
    dest: &Path,
    threads: usize,
) -> Result<CheckoutStats, CheckoutError> {
    let local = repo.to_thread_local();
    let tree = super::files::commit_tree(&local, commit)
        .map_err(|e| CheckoutError::Corrupt(e.to_string()))?;
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| CheckoutError::Io {
            path: p.to_owned(),
            message: e.to_string(),
        })
    };
    mkdir(dest)?;
    // Walk the trees (one thread; trees are few), creating directories as we go.
    let mut files = Vec::new();
    let mut stack = vec![(String::new(), tree)];
    while let Some((prefix, oid)) = stack.pop() {
        let (kind, data) = read_object(&local, &oid)
            .map_err(CheckoutError::Corrupt)?
            .ok_or_else(|| CheckoutError::Corrupt(format!("tree {oid} is missing")))?;
        if kind != gix::object::Kind::Tree {
            return Err(CheckoutError::Corrupt(format!("{oid} is not a tree")));
        }
        let entries = tree::decode(&data)
            .map_err(|e| CheckoutError::Corrupt(format!("tree {oid}: {}", e.0)))?;
        for e in entries {
            let path = check_name(&prefix, &e.name)?;
            match e.mode {
                MODE_TREE => {
                    mkdir(&dest.join(&path))?;
                    stack.push((path, e.oid));
                }
                0o160000 => mkdir(&dest.join(&path))?,
                0o100644 | 0o100755 | 0o100664 | 0o120000 => files.push(Entry {
                    path: PathBuf::from(path),
                    mode: e.mode,
                    oid: e.oid,
                }),
                m => {
                    return Err(CheckoutError::Corrupt(format!(
                        "{path}: unknown file mode {m:o}"
                    )));
                }
            }
        }
    }
    // Write the files in parallel, each thread with its own object cache.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = threads.clamp(1, 16).min(files.len().max(1));
    let results: Vec<Result<CheckoutStats, CheckoutError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let repo = repo.to_thread_local();
                    let mut stats = CheckoutStats::default();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(e) = files.get(i) else {
                            return Ok(stats);
                        };
                        let (kind, data) = read_object(&repo, &e.oid)
                            .map_err(CheckoutError::Corrupt)?
                            .ok_or_else(|| {
                                CheckoutError::Corrupt(format!(
                                    "{}: blob {} is missing",
                                    e.path.display(),
                                    e.oid
                                ))
                            })?;
                        if kind != gix::object::Kind::Blob {
                            return Err(CheckoutError::Corrupt(format!(
                                "{}: {} is not a blob",
                                e.path.display(),
                                e.oid
                            )));
                        }
                        let target = dest.join(&e.path);
                        let io = |err: std::io::Error| CheckoutError::Io {
                            path: target.clone(),
                            message: err.to_string(),
                        };
                        if e.mode == 0o120000 {
                            let link = String::from_utf8_lossy(&data).into_owned();
                            std::os::unix::fs::symlink(&link, &target).map_err(io)?;
                        } else {
                            use std::os::unix::fs::OpenOptionsExt as _;
                            let mode = if e.mode == 0o100755 { 0o755 } else { 0o644 };
                            let mut f = std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .mode(mode)
                                .open(&target)
                                .map_err(io)?;
                            std::io::Write::write_all(&mut f, &data).map_err(io)?;
                        }
                        stats.files += 1;
                        stats.bytes += data.len() as u64;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a checkout thread panicked"))
            .collect()
    });
    let mut total = CheckoutStats::default();
    for r in results {
        let s = r?;
        total.files += s.files;
        total.bytes += s.bytes;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [&b".."[..], b".", b"a/b", b".GIT", b"", b"x\0y"] {
            assert!(check_name("dir", bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_name("dir", b"ok.txt").unwrap(), "dir/ok.txt");
    }
}
