//! `seakeeper import zuul --check`: compares a config repo made by an import (as it is now,
//! perhaps edited since) with the Zuul layout it came from (as it is now), and lists every
//! (project, pipeline, job) that one runs and the other does not, so that both systems can
//! run side by side and be kept in sync. seakeeper's side is each project's central pipeline
//! file and the enforced jobs that apply to it; Zuul's is what an import would map now.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{ImportError, map, zuul};
use crate::config::files::PipelineFile;
use crate::config::{glob_matches, parse_yaml};

/// A (project, pipeline, job).
pub type Triple = (String, String, String);

/// What differs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Run by Zuul, not by seakeeper.
    pub only_zuul: Vec<Triple>,
    /// Run by seakeeper, not by Zuul.
    pub only_seakeeper: Vec<Triple>,
    /// Projects seakeeper knows without a central pipeline file (their own repository's file
    /// is not compared).
    pub without_central_file: Vec<String>,
}

impl Diff {
    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.only_zuul.is_empty() && self.only_seakeeper.is_empty()
    }

    /// One line per difference: `- project pipeline job` (only in Zuul), `+ ...` (only in
    /// seakeeper).
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<(&Triple, char)> = self
            .only_zuul
            .iter()
            .map(|t| (t, '-'))
            .chain(self.only_seakeeper.iter().map(|t| (t, '+')))
            .collect();
        out.sort();
        out.into_iter()
            .map(|((p, pl, j), c)| format!("{c} {p} {pl} {j}"))
            .collect()
    }
}

/// Reads a directory's files (`.git` aside) as the config loader takes them.
pub fn read_tree(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, ImportError> {
    fn walk(
        root: &Path,
        dir: &Path,
        depth: usize,
        out: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<(), ImportError> {
        let io = |e| ImportError::Io {
            path: dir.display().to_string(),
            source: e,
        };
        if depth > 32 {
            return Err(ImportError::Output(format!(
                "{}: directories nest too deep",
                dir.display()
            )));
        }
        for e in std::fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let path = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            if e.file_type().map_err(io)?.is_dir() {
                walk(root, &path, depth + 1, out)?;
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("under the root")
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(&path).map_err(|e| ImportError::Io {
                    path: path.display().to_string(),
                    source: e,
                })?;
                out.insert(rel, bytes);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, 0, &mut out)?;
    Ok(out)
}

/// Compares the config repo at `repo` with `layout`.
pub fn compare(layout: &zuul::Layout, repo: &Path) -> Result<Diff, ImportError> {
    let files = read_tree(repo)?;
    // seakeeper would not adopt a config that fails its checks either (the last good one
    // stays in use): the repo is fixed first, then compared.
    let config = crate::config::load(&files).map_err(|errors| {
        ImportError::Output(format!(
            "{}: this config repo does not pass `config check`, so it is not compared with \
             the layout; fix it first:\n{}",
            repo.display(),
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ))
    })?;
    let expected = map::expected(layout)?;
    let mut actual: BTreeSet<Triple> = BTreeSet::new();
    let mut without = Vec::new();
    for name in config.projects.keys() {
        let path = format!("{}{name}.yaml", crate::config::central::DIR);
        match config.central_pipeline(name) {
            Some(text) => {
                let file: PipelineFile =
                    parse_yaml(&path, text).map_err(|e| ImportError::Input {
                        file: e.file.clone(),
                        line: e.line,
                        message: e.message.clone(),
                    })?;
                for (kind, jobs) in file.pipelines {
                    for j in jobs {
                        actual.insert((name.to_string(), kind.as_str().to_owned(), j));
                    }
                }
            }
            None => without.push(name.to_string()),
        }
        for e in &config.policies.enforced_jobs.enforced {
            if e.projects.iter().any(|g| glob_matches(g, name.as_str())) {
                for k in &e.pipelines {
                    actual.insert((name.to_string(), k.as_str().to_owned(), e.name.clone()));
                }
            }
        }
    }
    // A project that took its jobs over has them in its own repository, which is not read.
    let expected: BTreeSet<Triple> = expected
        .into_iter()
        .filter(|(p, _, _)| !without.contains(p))
        .collect();
    Ok(Diff {
        only_zuul: expected.difference(&actual).cloned().collect(),
        only_seakeeper: actual.difference(&expected).cloned().collect(),
        without_central_file: without,
    })
}
