//! Writing the imported config repo all or nothing: into a fresh directory next to `--out`,
//! renamed into place at the end; on any failure the temporary directory is removed and
//! `--out` is as it was. An `--out` that holds anything is refused, never overwritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ImportError;

fn io(path: &Path) -> impl Fn(std::io::Error) -> ImportError + '_ {
    move |e| ImportError::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// A directory next to `target` that does not exist yet.
fn temp_beside(target: &Path) -> Result<PathBuf, ImportError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            ImportError::Output(format!("{}: not a directory name", target.display()))
        })?;
    for i in 0..100 {
        let t = parent.join(format!(".{name}.import-{}-{i}", std::process::id()));
        if !t.exists() {
            return Ok(t);
        }
    }
    Err(ImportError::Output(format!(
        "{}: no free temporary name beside it",
        target.display()
    )))
}

/// Writes `files` (path in the repo -> text) as the directory `out`.
pub fn repo(out: &Path, files: &BTreeMap<String, String>) -> Result<(), ImportError> {
    // A new directory, an empty one, or a fresh clone or `git init` holding only `.git` (so
    // that the import is reviewed as a change of the config repo).
    let (replace_empty, into_git) = match std::fs::read_dir(out) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if names.iter().any(|n| n != ".git") {
                return Err(ImportError::Output(format!(
                    "{} holds files: import into a new directory, an empty one or one holding \
                     only .git (nothing was written)",
                    out.display()
                )));
            }
            (names.is_empty(), !names.is_empty())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (false, false),
        Err(e) => return Err(io(out)(e)),
    };
    let tmp = temp_beside(out)?;
    let result = (|| {
        for (path, text) in files {
            if path
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            {
                return Err(ImportError::Output(format!(
                    "refusing to write the path {path:?}"
                )));
            }
            let p = tmp.join(path);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            std::fs::write(&p, text).map_err(io(&p))?;
        }
        if into_git {
            // Each top-level entry renamed in beside `.git`.
            for e in std::fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
                let to = out.join(e.file_name());
                std::fs::rename(e.path(), &to).map_err(io(&to))?;
            }
            return std::fs::remove_dir(&tmp).map_err(io(&tmp));
        }
        if replace_empty {
            std::fs::remove_dir(out).map_err(io(out))?;
        }
        std::fs::rename(&tmp, out).map_err(io(out))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Writes one file by writing a temporary file beside it and renaming it into place.
pub fn file(path: &Path, bytes: &[u8]) -> Result<(), ImportError> {
    let tmp = temp_beside(path)?;
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}
