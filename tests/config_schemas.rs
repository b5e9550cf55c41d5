//! The JSON Schemas in `state-schema/config/v1/` accept the sample world, seakeeper's shipped
//! policies and every project's `.pipeline/config.yaml`, and refuse the schema-level cases of
//! the invalid corpus, as checked by an independent validator (Python's `jsonschema`).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The schema for a file of the config repo (or a project's pipeline file).
fn schema_for(path: &str) -> Option<&'static str> {
    Some(match path {
        "seakeeper.yaml" => "seakeeper",
        "environments.yaml" => "environments",
        "schedules.yaml" => "schedules",
        "notifications.yaml" => "notifications",
        ".pipeline/config.yaml" => "pipeline",
        "policies/enforced-jobs.yaml" => "policy-enforced-jobs",
        "policies/trust.yaml" => "policy-trust",
        "policies/images.yaml" => "policy-images",
        "policies/timeouts.yaml" => "policy-timeouts",
        "policies/secrets.yaml" => "policy-secrets",
        "policies/promotion.yaml" => "policy-promotion",
        "policies/retention.yaml" => "policy-retention",
        "policies/limits.yaml" => "policy-limits",
        p if p.starts_with("projects/") => "project",
        p if p.starts_with("promotions/") => "promotions",
        p if p.starts_with("freezes/") => "freeze",
        p if p.starts_with("templates/") => "template",
        p if p.starts_with("pipelines/") => "pipeline",
        _ => return None,
    })
}

/// Validates (schema, YAML text) pairs; returns the first error message of each, if any.
fn validate(cases: &[(String, String)]) -> Vec<Option<String>> {
    let docs: Vec<(String, serde_json::Value)> = cases
        .iter()
        .map(|(schema, text)| {
            let v: serde_json::Value = yaml_serde::from_str(text)
                .unwrap_or(serde_json::Value::String("<not YAML>".into()));
            (schema.clone(), v)
        })
        .collect();
    let script = r#"
import json, sys, pathlib
from jsonschema import Draft202012Validator
root = pathlib.Path(sys.argv[1])
out = []
for name, doc in json.load(sys.stdin):
    schema = json.loads((root / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    errs = sorted(Draft202012Validator(schema).iter_errors(doc), key=str)
    out.append(errs[0].message if errs else None)
json.dump(out, sys.stdout)
"#;
    let out = support::with_stdin(
        Command::new("python3")
            .args(["-c", script])
            .arg(root().join("state-schema/config/v1")),
        serde_json::to_string(&docs).unwrap().as_bytes(),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn files_under(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if p.is_dir() {
            files_under(&p, base, out);
        } else {
            out.push((
                p.strip_prefix(base).unwrap().to_string_lossy().into_owned(),
                p,
            ));
        }
    }
}

#[test]
fn valid_files_satisfy_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    support::ok(Command::new(root().join("fixtures/make-sample-world")).arg(&world));
    let mut files = Vec::new();
    files_under(&world.join("config"), &world.join("config"), &mut files);
    for p in ["mediawiki/core", "operations/software/thumbor"] {
        files.push((
            ".pipeline/config.yaml".into(),
            world.join("repos").join(p).join(".pipeline/config.yaml"),
        ));
    }
    // A config repo imported from the Zuul fixture: central pipeline files, the images
    // policy's `unpinned` marker.
    let w = root().join("fixtures/import/wikimedia");
    let imported = dir.path().join("imported");
    support::ok(
        support::seakeeper()
            .args(["import", "zuul", "--offline", "--layout"])
            .arg(w.join("zuul/layout.yaml"))
            .arg("--jjb")
            .arg(w.join("jjb"))
            .arg("--dependencies")
            .arg(w.join("zuul/dependencies.yaml"))
            .arg("--out")
            .arg(&imported),
    );
    files_under(&imported, &imported, &mut files);
    for (name, _) in seakeeper::config::policies::DEFAULTS {
        files.push((
            format!("policies/{name}"),
            root().join("policies").join(name),
        ));
    }
    let cases: Vec<(String, String)> = files
        .iter()
        .filter_map(|(rel, path)| {
            schema_for(rel).map(|s| (s.to_owned(), std::fs::read_to_string(path).unwrap()))
        })
        .collect();
    assert!(cases.len() > 20, "{}", cases.len());
    for ((schema, text), result) in cases.iter().zip(validate(&cases)) {
        assert_eq!(result, None, "{schema} rejects:\n{text}");
    }
}

#[test]
fn schema_level_mistakes_are_refused() {
    let corpus = root().join("fixtures/invalid-config");
    let mut cases = Vec::new();
    for case in [
        "unknown-key",
        "wrong-type",
        "malformed-digest",
        "plain-http-registry",
        "template-uses-template",
    ] {
        let mut files = Vec::new();
        files_under(&corpus.join(case), &corpus.join(case), &mut files);
        for (rel, path) in files {
            if let Some(schema) = schema_for(&rel) {
                cases.push((schema.to_owned(), std::fs::read_to_string(path).unwrap()));
            }
        }
    }
    for case in ["unknown-key", "unknown-pipeline", "unpinned-base-image"] {
        let text =
            std::fs::read_to_string(root().join(format!("fixtures/invalid-pipeline/{case}.yaml")))
                .unwrap();
        cases.push(("pipeline".into(), text));
    }
    for ((schema, text), result) in cases.iter().zip(validate(&cases)) {
        assert!(
            result.is_some(),
            "{schema} accepts what seakeeper refuses:\n{text}"
        );
    }
}

/// The example of `docs/notifications.md` satisfies the schema and seakeeper's loader, and the
/// schema refuses what the loader refuses at the level of shapes.
#[test]
fn the_notifications_example_is_valid_and_shape_mistakes_are_refused() {
    let doc = std::fs::read_to_string(root().join("docs/notifications.md")).unwrap();
    let example = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a yaml block in docs/notifications.md")
        .to_owned();
    let files: std::collections::BTreeMap<String, Vec<u8>> = [
        (
            "seakeeper.yaml",
            "public_url: https://ci.example.org\nregistries:\n  t: { url: \"oci:/tmp/t\" }\n",
        ),
        (
            "environments.yaml",
            "environments:\n  - {name: production, registry: t}\n",
        ),
        ("projects/mediawiki/core.yaml", "pipelines: [check]\n"),
        ("notifications.yaml", example.as_str()),
    ]
    .into_iter()
    .map(|(p, t)| (p.to_owned(), t.as_bytes().to_vec()))
    .collect();
    if let Err(e) = seakeeper::config::load(&files) {
        panic!("{e:#?}");
    }
    let bad = [
        example.replace("tls: starttls", "tls: sometimes"),
        example.replace("  releng-irc:\n    irc:", "  releng-irc:\n    irk:"),
        example.replace("events: [promoted, ", "events: [promotd, "),
        example.replace("to: [ops@example.org, ", "to: [ops at example.org, "),
    ];
    let mut cases = vec![("notifications".to_owned(), example.clone())];
    cases.extend(bad.iter().map(|b| ("notifications".to_owned(), b.clone())));
    let results = validate(&cases);
    assert_eq!(results[0], None, "the schema refuses the example");
    for (text, result) in bad.iter().zip(&results[1..]) {
        assert!(result.is_some(), "the schema accepts:\n{text}");
        let mut files = files.clone();
        files.insert("notifications.yaml".into(), text.as_bytes().to_vec());
        assert!(
            seakeeper::config::load(&files).is_err(),
            "seakeeper accepts:\n{text}"
        );
    }
}
