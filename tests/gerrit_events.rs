//! Every recorded Gerrit sample parses; `seakeeper gerrit events` normalizes a stream and
//! survives malformed lines.

mod support;

use std::path::PathBuf;

use support::{seakeeper, stderr, stdout, with_stdin};

/// The recorded samples, copied from `../shared/reference/gerrit-samples/` into
/// `fixtures/gerrit-samples/` so the tests never depend on what sits beside the checkout.
fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/gerrit-samples")
}

/// When the reference is beside the checkout, the copy must not have drifted from it.
#[test]
fn the_fixture_copy_matches_the_reference() {
    let reference =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/gerrit-samples");
    if !reference.exists() {
        eprintln!(
            "skipping: {} is not beside the checkout",
            reference.display()
        );
        return;
    }
    let mut stack = vec![reference.clone()];
    let mut n = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(&reference).unwrap();
            let copy = samples().join(rel);
            assert_eq!(
                std::fs::read(&p).unwrap(),
                std::fs::read(&copy).unwrap_or_default(),
                "fixtures/gerrit-samples/{} differs from the reference",
                rel.display()
            );
            n += 1;
        }
    }
    assert!(n >= 10);
}

#[test]
fn every_sample_event_parses() {
    let dir = samples();
    assert!(dir.exists(), "{} is missing", dir.display());
    for name in [
        "patchset-created.json",
        "comment-added.json",
        "change-merged.json",
        "ref-updated.json",
    ] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let event =
            seakeeper::gerrit::parse_line(text.trim()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !matches!(event, seakeeper::gerrit::DomainEvent::Ignored { .. }),
            "{name}"
        );
    }
    for (i, line) in std::fs::read_to_string(dir.join("stream-sample.jsonl"))
        .unwrap()
        .lines()
        .enumerate()
    {
        seakeeper::gerrit::parse_line(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
    }
}

#[test]
fn the_cli_normalizes_a_stream_and_reports_bad_lines() {
    let dir = samples();
    assert!(dir.exists(), "{} is missing", dir.display());
    let mut input = std::fs::read_to_string(dir.join("stream-sample.jsonl")).unwrap();
    input.push_str("this is not json\n{\"type\":\"patchset-created\"}\n{\"type\":\"dropped-output\",\"eventCreatedOn\":1}\n");
    let out = with_stdin(seakeeper().args(["gerrit", "events"]), input.as_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        8,
        "7 sample lines and dropped-output: {events:#?}"
    );
    assert_eq!(events[0]["type"], "ref-updated");
    assert_eq!(events[0]["ref"], "refs/changes/11/4711/1");
    assert!(
        events[0].get("old_commit").is_none(),
        "a created ref has no old commit"
    );
    assert_eq!(events[1]["type"], "patchset-created");
    assert_eq!(events[1]["project"], "acme/widgets");
    assert_eq!(events[1]["change"], 4711);
    assert_eq!(events[1]["patchset"], 1);
    assert_eq!(
        events[1]["commit"],
        "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5"
    );
    assert_eq!(events[2]["type"], "change-updated");
    assert_eq!(events[2]["gerrit_type"], "reviewer-added");
    assert_eq!(events[2]["change"], 4711);
    assert_eq!(events[3]["type"], "comment-added");
    assert_eq!(
        events[3]["approvals"][1],
        serde_json::json!({"label": "Verified", "value": 1, "old_value": 0})
    );
    assert_eq!(
        events[4]["approvals"][0],
        serde_json::json!({"label": "Code-Review", "value": 2, "old_value": 0})
    );
    assert_eq!(events[6]["type"], "change-merged");
    assert_eq!(
        events[6]["new_rev"],
        "5f0e1d2c3b4a59687766554433221100ffeeddcc"
    );
    assert_eq!(events[7]["type"], "dropped-output");
    let err = stderr(&out);
    assert!(err.contains("line 8: not a JSON event"), "{err}");
    assert!(
        err.contains("line 9: patchset-created: project: missing"),
        "{err}"
    );
    // The same through --command.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &input).unwrap();
    let out = support::output(seakeeper().args([
        "gerrit",
        "events",
        "--command",
        &format!("cat {}", file.path().display()),
    ]));
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 8);
}

/// Every event type of GERRIT-PROTOCOL.md §1.3 (and plugin types), written in Gerrit's form
/// from the tables: each becomes a domain event, or `ignored`, never an error.
#[test]
fn every_event_type_in_the_catalogue_parses() {
    let acct = r#"{"name":"Bob Reviewer","email":"bob@example.org","username":"bob"}"#;
    let ps = r#"{"number":2,"revision":"a7c4e1f09b2d3c5e8f6a0b1c2d3e4f5a6b7c8d9e","parents":["e3d2c1b0a9f8e7d6c5b4a3928170f6e5d4c3b2a1"],"ref":"refs/changes/11/4711/2","uploader":{"name":"Alice Example","email":"alice@example.org","username":"alice"},"createdOn":1718003600,"author":{"name":"Alice Example","email":"alice@example.org","username":"alice"},"kind":"REWORK","sizeInsertions":42,"sizeDeletions":7}"#;
    let change = r#"{"project":"acme/widgets","branch":"main","topic":"frob","id":"I8c2a5d61f0b74e3a9d1c6e2b7f40a9d35e18c7b2","number":4711,"subject":"Add frobnicator","owner":{"name":"Alice Example","email":"alice@example.org","username":"alice"},"url":"https://review.example.org/c/acme/widgets/+/4711","commitMessage":"Add frobnicator\n","createdOn":1718000000,"status":"NEW","wip":true}"#;
    let envelope = |own: &str, with_ps: bool, kind: &str| {
        let ps = if with_ps {
            format!(",\"patchSet\":{ps}")
        } else {
            String::new()
        };
        format!(
            "{{{own}{ps},\"change\":{change},\"project\":\"acme/widgets\",\"refName\":\"refs/heads/main\",\"changeKey\":{{\"id\":\"I8c2a5d61f0b74e3a9d1c6e2b7f40a9d35e18c7b2\"}},\"type\":\"{kind}\",\"eventCreatedOn\":1718007200}}"
        )
    };
    let approvals = r#""approvals":[{"type":"Code-Review","description":"Code-Review","value":"0","oldValue":"-1"}]"#;
    let upd = r#"{"oldRev":"0000000000000000000000000000000000000000","newRev":"a7c4e1f09b2d3c5e8f6a0b1c2d3e4f5a6b7c8d9e","refName":"refs/changes/11/4711/2","project":"acme/widgets"}"#;
    let cases: Vec<(String, &str)> = vec![
        (envelope(&format!(r#""reviewer":{acct},"adder":{acct}"#), true, "reviewer-added"), "change-updated"),
        (envelope(&format!(r#""reviewer":{acct},"remover":{acct},{approvals},"comment":"Removed""#), true, "reviewer-deleted"), "change-updated"),
        (envelope(&format!(r#""reviewer":{acct},"remover":{acct},{approvals},"comment":"Removed the vote""#), true, "vote-deleted"), "change-updated"),
        (envelope(&format!(r#""changer":{acct}"#), true, "wip-state-changed"), "change-updated"),
        (envelope(&format!(r#""changer":{acct}"#), true, "private-state-changed"), "change-updated"),
        (envelope(&format!(r#""changer":{acct},"oldTopic":"old""#), false, "topic-changed"), "change-updated"),
        (envelope(&format!(r#""editor":{acct},"added":["a"],"hashtags":["a"]"#), false, "hashtags-changed"), "change-updated"),
        (envelope(&format!(r#""deleter":{acct}"#), false, "change-deleted"), "change-updated"),
        (envelope(&format!(r#""changer":{acct},"oldAssignee":{acct}"#), false, "assignee-changed"), "change-updated"),
        (envelope(&format!(r#""abandoner":{acct},"reason":"obsolete""#), true, "change-abandoned"), "change-abandoned"),
        (envelope(&format!(r#""restorer":{acct},"reason":"still needed""#), true, "change-restored"), "change-restored"),
        (format!(r#"{{"submitter":{acct},"refUpdates":[{upd},{upd}],"type":"batch-ref-updated","eventCreatedOn":1}}"#), "batch-ref-updated"),
        (r#"{"projectName":"acme/new","headName":"refs/heads/main","type":"project-created","eventCreatedOn":1}"#.to_owned(), "project-created"),
        (r#"{"projectName":"acme/new","oldHead":"refs/heads/master","newHead":"refs/heads/main","type":"project-head-updated","eventCreatedOn":1}"#.to_owned(), "ignored"),
        (r#"{"project":"acme/widgets","ref":"refs/heads/main","targetNode":"replica","status":"succeeded","refStatus":"OK","type":"ref-replicated","eventCreatedOn":1}"#.to_owned(), "ignored"),
        (r#"{"cacheName":"projects","key":"acme/widgets","type":"cache-eviction","eventCreatedOn":1}"#.to_owned(), "ignored"),
        (r#"{"type":"dropped-output","eventCreatedOn":1718007300}"#.to_owned(), "dropped-output"),
    ];
    for (line, want) in &cases {
        let e = seakeeper::gerrit::parse_line(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], *want, "{line}");
        if *want == "change-updated" {
            assert_eq!(v["change"], 4711);
            assert_eq!(v["project"], "acme/widgets");
        }
    }
}
