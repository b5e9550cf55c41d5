//! Every error kind in `fixtures/invalid-config/` and `fixtures/invalid-pipeline/` is found,
//! with the file, field, message and suggestion the `.expect` file names, on top of the sample
//! world that `fixtures/make-sample-world` builds (which itself must be valid).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{git, ok, output, seakeeper, stdout};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn sample_world(dir: &Path) -> PathBuf {
    let world = dir.join("world");
    ok(Command::new(fixtures().join("make-sample-world")).arg(&world));
    world
}

fn copy_dir(from: &Path, to: &Path) {
    ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

fn commit_all(repo: &Path) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "--quiet", "-m", "change"]);
}

#[test]
fn the_sample_world_is_valid_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let world = sample_world(dir.path());
    let out = ok(seakeeper()
        .args(["config", "check", "--json", "--rev", "HEAD", "--repo"])
        .arg(world.join("config")));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // Fixed dates and identities: the same commit on every machine.
    assert_eq!(v["commit"], "cdb376f5ad5c1d7b38d03781d15d118a967bdb5d");
    for p in [
        "mediawiki/core",
        "mediawiki/extensions/Cite",
        "mediawiki/extensions/ParserFunctions",
        "operations/software/thumbor",
    ] {
        let out = ok(seakeeper()
            .args([
                "pipeline",
                "check",
                "--json",
                "--project",
                p,
                "--config-repo",
            ])
            .arg(world.join("config"))
            .arg(world.join("repos").join(p)));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["ok"], true, "{p}: {v}");
    }
}

#[test]
fn a_pipeline_file_is_read_at_a_commit_from_git_objects() {
    let dir = tempfile::tempdir().unwrap();
    let world = sample_world(dir.path());
    let repo = gix::open(world.join("repos/mediawiki/core")).unwrap();
    let head = seakeeper::git::files::resolve(&repo, "main").unwrap();
    let bytes =
        seakeeper::git::files::read_file(&repo, &head, seakeeper::config::pipeline::PIPELINE_FILE)
            .unwrap()
            .expect("core has a pipeline file");
    let config_repo = gix::open(world.join("config")).unwrap();
    let commit = seakeeper::git::files::resolve(&config_repo, "HEAD").unwrap();
    let files = seakeeper::git::files::read_all(&config_repo, &commit).unwrap();
    let layout =
        seakeeper::config::load(&files.into_iter().map(|(p, f)| (p, f.bytes)).collect()).unwrap();
    let project = "mediawiki/core".parse().unwrap();
    let resolved = seakeeper::config::pipeline::check(
        ".pipeline/config.yaml",
        std::str::from_utf8(&bytes).unwrap(),
        Some(&project),
        Some(&layout),
    )
    .unwrap();
    let check: Vec<_> = resolved[&seakeeper::config::PipelineKind::Check]
        .iter()
        .map(|j| (j.name.as_str(), j.enforced))
        .collect();
    assert_eq!(
        check,
        vec![("lint", false), ("unit", false), ("banned-phrases", true)]
    );
    assert_eq!(
        seakeeper::git::files::read_file(&repo, &head, "no/such/file").unwrap(),
        None
    );
}

#[test]
fn every_invalid_config_case_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let world = sample_world(dir.path());
    let corpus = fixtures().join("invalid-config");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "expect"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15, "the corpus has one case per error kind");
    for expect in cases {
        let name = expect.file_stem().unwrap().to_string_lossy().into_owned();
        let spec = std::fs::read_to_string(&expect).unwrap();
        let parts: Vec<&str> = spec.trim_end().split('|').collect();
        let (file, field, message, suggestion) = (
            parts[0],
            parts[1],
            parts[2],
            parts.get(3).copied().unwrap_or(""),
        );
        let repo = dir.path().join(format!("case-{name}"));
        copy_dir(&world.join("config"), &repo);
        let overlay = corpus.join(&name);
        if overlay.join(".delete").exists() {
            for path in std::fs::read_to_string(overlay.join(".delete"))
                .unwrap()
                .lines()
            {
                std::fs::remove_file(repo.join(path)).unwrap();
            }
        }
        ok(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", overlay.display()))
            .arg(&repo));
        let _ = std::fs::remove_file(repo.join(".delete"));
        commit_all(&repo);
        let out = output(
            seakeeper()
                .args(["config", "check", "--json", "--repo"])
                .arg(&repo),
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: expected failure: {}",
            stdout(&out)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let errors = v["errors"].as_array().unwrap();
        let hit = errors.iter().find(|e| {
            e["file"] == file
                && (field.is_empty() || e["field"] == field)
                && e["message"].as_str().unwrap().contains(message)
        });
        let e = hit.unwrap_or_else(|| panic!("{name}: no error {file}|{field}|{message} in {v:#}"));
        if !suggestion.is_empty() {
            assert_eq!(e["suggestion"], suggestion, "{name}: {e}");
        }
        if !file.is_empty() && message != "is missing" {
            assert!(
                e["line"].is_u64()
                    || file.starts_with("promotions/stagign")
                    || file.starts_with("policies/timeout"),
                "{name}: no line in {e}"
            );
        }
    }
}

#[test]
fn every_invalid_pipeline_case_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let world = sample_world(dir.path());
    let corpus = fixtures().join("invalid-pipeline");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 12);
    for case in cases {
        let name = case.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&case).unwrap();
        let project = text
            .lines()
            .find_map(|l| l.strip_prefix("# project: "))
            .unwrap_or("mediawiki/core");
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .expect("every case says what it expects");
        let parts: Vec<&str> = expect.split(" | ").collect();
        let (field, message, suggestion) = (parts[0], parts[1], parts.get(2).copied());
        let checkout = dir.path().join(format!("p-{name}"));
        std::fs::create_dir_all(checkout.join(".pipeline")).unwrap();
        std::fs::write(checkout.join(".pipeline/config.yaml"), &text).unwrap();
        let out = output(
            seakeeper()
                .args([
                    "pipeline",
                    "check",
                    "--json",
                    "--project",
                    project,
                    "--config-repo",
                ])
                .arg(world.join("config"))
                .arg(&checkout),
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{name}: expected failure: {}",
            stdout(&out)
        );
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let hit = v["errors"].as_array().unwrap().iter().find(|e| {
            e["field"].as_str().unwrap().starts_with(field)
                && e["message"].as_str().unwrap().contains(message)
        });
        let e = hit.unwrap_or_else(|| panic!("{name}: no error {field}|{message} in {v:#}"));
        assert!(e["line"].is_u64(), "{name}: no line in {e}");
        if let Some(s) = suggestion {
            assert_eq!(e["suggestion"], s, "{name}: {e}");
        }
    }
}
