//! Property tests (proptest) over the parsers of outside input (issue 14's harness): whatever
//! the bytes, the Gerrit stream-events parser, the ledger record parser, the config loader and
//! the pipeline-file check answer with a value or an error, never a panic. The long mutation
//! fuzzers (`cargo bench --bench fuzz_inputs`, `--bench fuzz_config`) go further; these run with
//! every `scripts/test` (`PROPTEST_CASES` sets how many cases each property gets).

use std::collections::BTreeMap;

use proptest::prelude::*;

/// JSON-ish text built from Gerrit event fragments, so that the parser gets past its first
/// check often.
fn event_like() -> impl Strategy<Value = String> {
    let kinds = prop_oneof![
        Just("patchset-created".to_owned()),
        Just("ref-updated".to_owned()),
        Just("change-merged".to_owned()),
        Just("comment-added".to_owned()),
        Just("change-abandoned".to_owned()),
        Just("dropped-output".to_owned()),
        ".{0,12}",
    ];
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("{}".to_owned()),
        Just("[]".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[ -~]{0,20}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just(r#"{"project":"acme/api","branch":"main","number":7}"#.to_owned()),
        Just(r#"{"number":2,"revision":"1111111111111111111111111111111111111111","ref":"refs/changes/07/7/2"}"#.to_owned()),
    ];
    let keys = prop_oneof![
        Just("change".to_owned()),
        Just("patchSet".to_owned()),
        Just("refUpdate".to_owned()),
        Just("eventCreatedOn".to_owned()),
        Just("uploader".to_owned()),
        Just("approvals".to_owned()),
        Just("comment".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    (kinds, proptest::collection::vec((keys, value), 0..6)).prop_map(|(kind, fields)| {
        let mut s = format!(r#"{{"type":{}"#, serde_json::to_string(&kind).unwrap());
        for (k, v) in fields {
            s.push_str(&format!(r#","{k}":{v}"#));
        }
        s.push('}');
        s
    })
}

/// YAML-ish text from config fragments.
fn yaml_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("jobs:".to_owned()),
        Just("  unit:".to_owned()),
        Just("    image: r.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111".to_owned()),
        Just("    commands: [make]".to_owned()),
        Just("    timeout: 1m".to_owned()),
        Just("pipelines:".to_owned()),
        Just("  check: [unit]".to_owned()),
        Just("environments:".to_owned()),
        Just("  - {name: testing, registry: testing}".to_owned()),
        Just("scope: [all]".to_owned()),
        Just("a: &x [*x]".to_owned()),
        Just("<<: *x".to_owned()),
        "[ -~]{0,30}",
        "( {0,6})[a-z_]{1,10}: [ -~]{0,20}",
    ];
    proptest::collection::vec(line, 0..20).prop_map(|l| l.join("\n"))
}

proptest! {
    #[test]
    fn the_stream_parser_never_panics(line in prop_oneof![event_like(), ".{0,200}"]) {
        let _ = seakeeper::gerrit::parse_line(line.trim_end());
    }

    #[test]
    fn the_record_parser_never_panics(text in prop_oneof![yaml_like(), ".{0,200}"], kind in prop_oneof![
        Just("build-request"), Just("build-result"), Just("artifact"), Just("promotion"),
        Just("expiry"), Just("freeze"), Just("promotion-refusal"), Just("attestation"),
    ]) {
        let text = format!("record: {kind}\n{text}");
        if let Ok(r) = yaml_serde::from_str::<seakeeper::model::Record>(&text) {
            let _ = r.validate();
        }
    }

    #[test]
    fn the_config_loader_never_panics(text in yaml_like(), file in prop_oneof![
        Just("seakeeper.yaml"), Just("environments.yaml"), Just("projects/acme/api.yaml"),
        Just("freezes/eoy.yaml"), Just("promotions/testing.yaml"), Just("schedules.yaml"),
        Just("policies/retention.yaml"), Just("keys/ci.yaml"), Just("templates/base.yaml"),
    ]) {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        files.insert("seakeeper.yaml".into(), b"public_url: https://ci.example.org\n".to_vec());
        files.insert(file.to_owned(), text.into_bytes());
        let _ = seakeeper::config::load(&files);
    }

    #[test]
    fn the_pipeline_check_never_panics(text in yaml_like()) {
        let _ = seakeeper::config::pipeline::check(".pipeline/config.yaml", &text, None, None);
    }
}
