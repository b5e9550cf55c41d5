//! Migration into seakeeper: `seakeeper import zuul` reads a Zuul v2 layout, its
//! `dependencies.yaml` and the Jenkins Job Builder files that define the jobs, and writes a
//! config repo that passes `config check`, with a report of what was mapped exactly,
//! approximately and not at all; `--check` compares such a repo with the layout again.
//!
//! The model (docs/import.md): every project gets `projects/<name>.yaml` and a central
//! pipeline file `pipelines/<name>.yaml` (its `.pipeline/config.yaml`, kept by the config
//! repo as Zuul v2 kept every project's jobs); each JJB job becomes `templates/<job>.yaml`,
//! which the central files `use`. Reading is here and in [`yaml`], [`zuul`] and [`jjb`];
//! [`map`] decides the mapping, [`images`] pins tags, [`write`] writes atomically.
//!
//! This module reads the files it is given and, in `write`, writes the output directory; it
//! never touches a config repo's git history, and writes nothing when anything fails.

pub mod builders;
pub mod check;
pub mod images;
pub mod jjb;
pub mod map;
pub mod report;
pub mod write;
pub mod yaml;
pub mod zuul;

use std::fmt;

/// What went wrong in an import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An input file is malformed or names something that does not exist.
    #[error("{}", input_message(.file, .line, .message))]
    Input {
        /// The file.
        file: String,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config repo made is not valid (a bug in the mapping, reported rather than written).
    #[error("the imported config does not pass `config check`:\n{0}")]
    Invalid(String),
    /// The output directory cannot be used.
    #[error("{0}")]
    Output(String),
}

fn input_message(file: &str, line: &Option<usize>, message: &str) -> String {
    match line {
        Some(l) => format!("{file}:{l}: {message}"),
        None => format!("{file}: {message}"),
    }
}

/// How faithfully something was carried over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fidelity {
    /// Exactly: it does in seakeeper what it did before.
    Exact,
    /// Approximately: it runs, but differs in a way the reason says.
    Approximate,
    /// Not at all: it has no counterpart, and the reason says why.
    NotMapped,
}

impl fmt::Display for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fidelity::Exact => "exact",
            Fidelity::Approximate => "approximate",
            Fidelity::NotMapped => "not mapped",
        })
    }
}

/// Formats `s` as Jenkins Job Builder and Zuul v2 do (Python's `str.format` with names only):
/// `{key}` is the parameter's value, `{key|default}` falls back to `default`, `{{` and `}}`
/// are braces. Braces around anything that is not a parameter name are left as they are.
/// Returns the name of the first parameter that has no value.
pub fn format(s: &str, get: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
            continue;
        }
        let inner_end = tail[1..].find(['{', '}']).map(|j| j + 1);
        let Some(end) = inner_end.filter(|&j| tail.as_bytes()[j] == b'}') else {
            out.push('{');
            rest = &tail[1..];
            continue;
        };
        let inner = &tail[1..end];
        let (key, default) = match inner.split_once('|') {
            Some((k, d)) => (k, Some(d)),
            None => (inner, None),
        };
        let is_key = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !is_key {
            out.push('{');
            rest = &tail[1..];
            continue;
        }
        match get(key).or_else(|| default.map(str::to_owned)) {
            Some(v) => out.push_str(&v),
            None => return Err(key.to_owned()),
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Drops from `needs` (job -> the job it runs after) each edge that closes a cycle, returning
/// the dropped (job, parent) pairs.
pub(crate) fn drop_cycles(
    needs: &mut std::collections::BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut dropped = Vec::new();
    let jobs: Vec<String> = needs.keys().cloned().collect();
    for job in jobs {
        let mut seen = std::collections::BTreeSet::new();
        let mut at = job.clone();
        while let Some(p) = needs.get(&at).cloned() {
            if p == job {
                if let Some(parent) = needs.remove(&job) {
                    dropped.push((job.clone(), parent));
                }
                break;
            }
            if !seen.insert(p.clone()) {
                break;
            }
            at = p;
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_jjb() {
        let get = |k: &str| match k {
            "name" => Some("Cite".to_owned()),
            "php" => Some("php72".to_owned()),
            _ => None,
        };
        assert_eq!(
            format("{name}-{php}-test", &get).unwrap(),
            "Cite-php72-test"
        );
        assert_eq!(format("${{HOME}} {name}", &get).unwrap(), "${HOME} Cite");
        assert_eq!(format("{db|mysql}", &get).unwrap(), "mysql");
        assert_eq!(format("f() { x; }", &get).unwrap(), "f() { x; }");
        assert_eq!(format("{missing}", &get).unwrap_err(), "missing");
    }
}
