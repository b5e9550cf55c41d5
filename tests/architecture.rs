//! The code keeps the shape `docs/architecture.md` describes: the modules depend on each other
//! only in the table's direction (so there is no cycle; `metrics` is a leaf every module but
//! `model` and the pure deciders may use), no file under `src/` grows past 900
//! lines, apply's errors are typed, and a `World` is changed only in `reconcile/world.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every source file under `src/`, with its text up to its first `#[cfg(test)]` (tests may
/// reach anywhere).
fn code() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    files.sort();
    // Test modules in files of their own.
    files.retain(|p| {
        !p.file_name()
            .is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs"))
    });
    assert!(files.len() > 50, "the sources were not found");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            (rel, code)
        })
        .collect()
}

/// The top-level module a file belongs to (`src/apply/build.rs` -> `apply`).
fn module_of(path: &str) -> String {
    let rest = path.strip_prefix("src/").unwrap();
    rest.split(['/', '.']).next().unwrap().to_owned()
}

#[test]
fn modules_depend_only_downwards() {
    // The table of docs/architecture.md: what each module may use.
    let allowed: BTreeMap<&str, &[&str]> = [
        ("model", &[][..]),
        // A leaf like `model` (see the note on `metrics` below).
        ("metrics", &["model"][..]),
        ("config", &["model"][..]),
        ("policy", &["model", "config"][..]),
        ("git", &["model"][..]),
        ("signing", &["model"][..]),
        ("store", &["model"][..]),
        ("ledger", &["model", "git", "signing", "store"][..]),
        ("secrets", &["model"][..]),
        ("gerrit", &["model", "store", "secrets"][..]),
        ("registry", &["model", "store", "secrets", "config"][..]),
        ("executor", &["model", "store", "secrets"][..]),
        ("reconcile", &["model", "config", "policy", "gerrit"][..]),
        ("notify", &["model", "config", "secrets", "store"][..]),
        // Reads Zuul and JJB files, maps them with the config loader, pins tags through the
        // registry client.
        ("import", &["model", "config", "registry"][..]),
        (
            "apply",
            &[
                "model",
                "config",
                "policy",
                "git",
                "signing",
                "store",
                "ledger",
                "secrets",
                "gerrit",
                "registry",
                "executor",
                "reconcile",
            ][..],
        ),
        (
            "daemon",
            &[
                "model",
                "config",
                "policy",
                "git",
                "signing",
                "store",
                "ledger",
                "secrets",
                "gerrit",
                "registry",
                "executor",
                "reconcile",
                "apply",
                "notify",
            ][..],
        ),
        (
            "web",
            &[
                "model",
                "git",
                "ledger",
                "signing",
                "store",
                "secrets",
                "gerrit",
                "executor",
                "reconcile",
                "apply",
                "daemon",
            ][..],
        ),
    ]
    .into();
    let mut wrong = BTreeSet::new();
    for (path, code) in code() {
        let from = module_of(&path);
        let Some(may) = allowed.get(from.as_str()) else {
            // cli, lib.rs and main.rs may use everything; any other module must be in the table.
            assert!(
                ["cli", "lib", "main"].contains(&from.as_str()),
                "{path}: module `{from}` is not in the table of docs/architecture.md"
            );
            continue;
        };
        let mut uses = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + 7..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{config, ledger::Ledger};`
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for item in group.split(',') {
                    uses.push(item.trim().split("::").next().unwrap_or("").to_owned());
                }
            } else {
                uses.push(
                    rest.chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect(),
                );
            }
        }
        for to in uses {
            // `metrics` may be used by every module but `model` (which it uses) and the pure
            // deciders: a plan that counted would no longer be a function of its input.
            let metrics_ok =
                to == "metrics" && !["model", "policy", "reconcile"].contains(&from.as_str());
            if to != from && !to.is_empty() && !may.contains(&to.as_str()) && !metrics_ok {
                wrong.insert(format!("{path}: {from} -> {to}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the table of docs/architecture.md:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_pure_modules_do_no_io() {
    // model, policy and reconcile decide; they never read or write anything themselves.
    let mut found = Vec::new();
    for (path, code) in code() {
        if !["model", "policy", "reconcile"].contains(&module_of(&path).as_str()) {
            continue;
        }
        for io in [
            "std::fs",
            "std::process",
            "std::net",
            "std::io::stdin",
            "Command::new",
        ] {
            if code.contains(io) {
                found.push(format!("{path}: {io}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn no_source_file_is_over_900_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 900).then(|| format!("{}: {n} lines", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

#[test]
fn apply_errors_are_typed_and_only_world_rs_changes_a_world() {
    let mut found = Vec::new();
    for (path, code) in code() {
        if path.starts_with("src/apply/") && code.contains(", String>") {
            for l in code
                .lines()
                .filter(|l| l.contains("Result<") && l.contains(", String>"))
            {
                found.push(format!("{path}: {}", l.trim()));
            }
        }
        if path == "src/reconcile/world.rs" {
            continue;
        }
        for l in code.lines() {
            let l = l.trim();
            let mutates = l.contains("world.")
                && [
                    ".insert(",
                    ".remove(",
                    ".retain(",
                    ".clear(",
                    ".get_mut(",
                    ".entry(",
                    ".append(",
                    ".push(",
                ]
                .iter()
                .any(|m| l.contains(m))
                && !l.contains("absorb(");
            let assigns = l.starts_with("self.world.") && l.contains(" = ")
                || l.starts_with("world.") && l.contains(" = ");
            if mutates || assigns {
                found.push(format!("{path}: {l}"));
            }
        }
        if code.contains("starts_with(\"lost") {
            found.push(format!(
                "{path}: a job's state read from its reason's words"
            ));
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}
