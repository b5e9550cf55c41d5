//! The JSON Schemas in `state-schema/` and seakeeper's typed parsers agree: on sample records
//! both accept, on broken ones both refuse. The schemas are checked by an independent
//! implementation (Python's `jsonschema`).

mod support;

use serde_json::{Value, json};

use seakeeper::model::Record;

fn python_validates(cases: &[(String, Value)]) -> Vec<Result<(), String>> {
    let script = r#"
import json, sys, pathlib
from jsonschema import Draft202012Validator, FormatChecker
root = pathlib.Path(sys.argv[1])
cases = json.load(sys.stdin)
out = []
for kind, doc in cases:
    schema = json.loads((root / f"{kind}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(doc), key=str)
    out.append(None if not errors else errors[0].message)
json.dump(out, sys.stdout)
"#;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/state-schema/ledger/v1");
    let out = support::with_stdin(
        std::process::Command::new("python3").args(["-c", script, dir]),
        serde_json::to_string(cases).unwrap().as_bytes(),
    );
    assert!(
        out.status.success(),
        "python jsonschema failed: {}",
        support::stderr(&out)
    );
    let results: Vec<Option<String>> = serde_json::from_slice(&out.stdout).unwrap();
    results.into_iter().map(|r| r.map_or(Ok(()), Err)).collect()
}

fn rust_validates(doc: &Value) -> Result<(), String> {
    let r: Record = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    r.validate()
}

#[test]
fn schemas_and_parsers_agree() {
    let samples = seakeeper::ledger::sample::records(0, 120);
    let mut cases: Vec<(String, Value)> = Vec::new();
    let mut expect_ok = Vec::new();
    for r in &samples {
        cases.push((
            r.kind().as_str().to_owned(),
            serde_json::to_value(r).unwrap(),
        ));
        expect_ok.push(true);
    }
    let expiry = json!({
        "record": "expiry",
        "digest": format!("sha256:{}", "e".repeat(64)),
        "name": "mediawiki",
        "store": "docker://registry.example.org/mediawiki",
        "rule": "image, untrusted: 7 days",
        "expired_at": "2026-11-22T06:00:00Z",
    });
    cases.push(("expiry".to_owned(), expiry.clone()));
    expect_ok.push(true);
    let refusal = json!({
        "record": "promotion-refusal",
        "environment": "staging",
        "image": "web",
        "digest": format!("sha256:{}", "f".repeat(64)),
        "reason": "sha256:ff.. was built and attested as api, not as web",
        "config_commit": "757722a60577c0df52583199be87b0a0bf5c06d4",
        "refused_at": "2026-11-22T06:00:00Z",
    });
    cases.push(("promotion-refusal".to_owned(), refusal.clone()));
    expect_ok.push(true);
    // With an upstream cause, a build request is still valid to both.
    let mut caused = serde_json::to_value(&samples[0]).unwrap();
    caused["cause"] = json!({"kind": "upstream", "build_id": "post-merge-1", "project": "api", "commit": "757722a60577c0df52583199be87b0a0bf5c06d4"});
    cases.push(("build-request".to_owned(), caused));
    expect_ok.push(true);
    // ...and with the change that merged it.
    let mut merged = serde_json::to_value(&samples[0]).unwrap();
    merged["cause"] = json!({"kind": "merge", "change": 4711, "patchset": 3});
    cases.push(("build-request".to_owned(), merged));
    expect_ok.push(true);
    let mut merged = serde_json::to_value(&samples[0]).unwrap();
    merged["cause"] = json!({"kind": "merge", "change": 0, "patchset": 3});
    cases.push(("build-request".to_owned(), merged));
    expect_ok.push(false);
    let request = serde_json::to_value(&samples[0]).unwrap();
    let mut broken = Vec::new();
    let mut e = expiry.clone();
    e["rule"] = json!("   ");
    broken.push(e);
    let mut r = refusal.clone();
    r["reason"] = json!(" ");
    broken.push(r);
    let mut e = expiry.clone();
    e["store"] = json!("two words");
    broken.push(e);
    let mut edit = |f: &dyn Fn(&mut Value)| {
        let mut v = request.clone();
        f(&mut v);
        broken.push(v);
    };
    edit(&|v| v["colour"] = json!("blue"));
    edit(&|v| v["change"] = json!("4711"));
    edit(&|v| v["source_commit"] = json!("abc"));
    edit(&|v| v["requested_at"] = json!("2026-11-22 02:30"));
    edit(&|v| v["trust"] = json!("maybe"));
    edit(&|v| v["build_id"] = json!("../etc"));
    edit(&|v| v["project"] = json!("a//b"));
    edit(&|v| {
        v["patchset"] = json!(2);
        v.as_object_mut().unwrap().remove("change");
    });
    edit(&|v| v["jobs"] = json!(["a", "a"]));
    edit(&|v| {
        v.as_object_mut().unwrap().remove("jobs");
    });
    let artifact = samples
        .iter()
        .find(|r| r.kind().as_str() == "artifact")
        .unwrap();
    let mut a = serde_json::to_value(artifact).unwrap();
    a["digest"] = json!("sha256:ABC");
    broken.push(a);
    for b in broken {
        cases.push((b["record"].as_str().unwrap().to_owned(), b));
        expect_ok.push(false);
    }
    let python = python_validates(&cases);
    for (((kind, doc), want), got) in cases.iter().zip(&expect_ok).zip(&python) {
        let rust = rust_validates(doc);
        assert_eq!(
            got.is_ok(),
            *want,
            "schema for {kind} disagrees on {doc}: {got:?}"
        );
        assert_eq!(
            rust.is_ok(),
            *want,
            "parser for {kind} disagrees on {doc}: {rust:?}"
        );
    }
}

#[test]
fn every_record_kind_has_a_schema() {
    for kind in seakeeper::model::RecordKind::ALL {
        let path = format!(
            "{}/state-schema/ledger/v1/{}.schema.json",
            env!("CARGO_MANIFEST_DIR"),
            kind.as_str()
        );
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(schema["properties"]["record"]["const"], kind.as_str());
        assert_eq!(
            schema["additionalProperties"], false,
            "{path} must reject unknown fields"
        );
    }
}
