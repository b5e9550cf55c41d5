//! Every recorded Gerrit sample parses; `seakeeper gerrit events` normalizes a stream and
//! survives malformed lines.

mod support;

use std::path::PathBuf;

use support::{seakeeper, stderr, stdout, with_stdin};

/// The recorded samples beside the checkout. CI always has them (a missing directory fails
/// there); a developer checkout without `shared/` skips these tests with a message.
fn samples() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/gerrit-samples");
    assert!(
        dir.exists() || std::env::var_os("CI").is_none(),
        "{} is missing: CI runs with shared/ beside the checkout",
        dir.display()
    );
    dir
}

#[test]
fn every_sample_event_parses() {
    let dir = samples();
    if !dir.exists() {
        eprintln!("skipping: {} is not beside this checkout", dir.display());
        return;
    }
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
    if !dir.exists() {
        eprintln!("skipping: {} is not beside this checkout", dir.display());
        return;
    }
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
    assert_eq!(
        events[2]["type"], "ignored",
        "reviewer-added is not acted on"
    );
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
