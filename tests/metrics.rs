//! Metrics and logs from a real run: a daemon in this process reconciles a change through the
//! check pipeline against the Gerrit stand-in, and then what `metrics::render` serves is
//! checked by Prometheus's own `promtool check metrics` and parsed by the Python client's
//! parsers (the classic text format and OpenMetrics). `--log-format json` is checked on the
//! real binary: every stderr line is one JSON object, with the pass's and the action's spans.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use seakeeper::daemon::{Daemon, Options, settings::Settings};
use support::site::{Site, pipeline};
use support::{output, stderr, wait_for};

const CID: &str = "I0000000000000000000000000000000000000017";

/// Runs `program args` with `input` on stdin; its output, or why it failed.
fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("writing to the checker");
    let out = child.wait_with_output().expect("the checker ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Parses an exposition with the Python client's `parser` module (`prometheus_client.parser`
/// or `prometheus_client.openmetrics.parser`); one `name type samples` line per family.
fn python_parse(module: &str, text: &str) -> String {
    let script = format!(
        "import sys\nfrom {module} import text_string_to_metric_families\n\
         for f in text_string_to_metric_families(sys.stdin.read()):\n    \
         print(f.name, f.type, len(f.samples))\n"
    );
    run_with_stdin("/usr/bin/python3", &["-c", &script], text)
        .unwrap_or_else(|e| panic!("{module} rejected the metrics: {e}\n{text}"))
}

#[test]
fn a_real_pass_renders_metrics_that_promtool_and_the_python_parsers_accept() {
    let site = Site::new("", "");
    site.reconcile(); // the baseline, and a new ledger
    site.upload(
        "acme/api",
        CID,
        &[
            (".pipeline/config.yaml", &pipeline("grep -q ok msg.txt")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    let settings = Settings::load(&site.settings).expect("the site's settings");
    let mut d = Daemon::open(
        settings,
        Options {
            reporter: Arc::new(|_: &str| {}),
            concurrency: None,
            supervisor: Some(env!("CARGO_BIN_EXE_seakeeper").into()),
            init_ledger: false,
        },
    )
    .expect("the daemon opens");
    d.pass(None).expect("a pass");
    wait_for("the check to be reported", Duration::from_secs(60), || {
        let report = d.pass(Some(Vec::new())).expect("a pass");
        !report.busy && !site.reviews(1).is_empty()
    });
    // As `reconcile --once` does: the status (and the gauges set from it) as of the last pass.
    d.flush_status();
    d.shutdown();

    let (content_type, text) = seakeeper::metrics::render(None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    // What this run did is there, by pipeline, result, kind and operation.
    for sample in [
        "seakeeper_builds_total{pipeline=\"check\",result=\"success\"} 1",
        "seakeeper_jobs_total{pipeline=\"check\",result=\"success\"} 1",
        "seakeeper_job_duration_seconds_count{pipeline=\"check\"} 1",
        "seakeeper_job_queue_wait_seconds_count{pipeline=\"check\"} 1",
        "seakeeper_cycle_patchset_reported_seconds_count{pipeline=\"check\"} 1",
        "seakeeper_actions_total{kind=\"request-build\"} 1",
        "seakeeper_actions_total{kind=\"report\"} 1",
        "seakeeper_builds_in_flight 0",
    ] {
        assert!(text.contains(sample), "no `{sample}` in\n{text}");
    }
    for family in [
        "seakeeper_reconcile_pass_duration_seconds_count{scope=\"full\"}",
        "seakeeper_reconcile_pass_duration_seconds_count{scope=\"hinted\"}",
        "seakeeper_gerrit_request_duration_seconds_count{operation=\"post_review\"}",
        "seakeeper_gerrit_request_duration_seconds_count{operation=\"get_change\"}",
        "seakeeper_ledger_write_duration_seconds_count",
        "seakeeper_ledger_batch_records_count",
        "seakeeper_ledger_replication_lag_seconds",
        "seakeeper_jobs_running",
        "seakeeper_freezes_active",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(family)),
            "no `{family}` in\n{text}"
        );
    }
    // No build id, commit or change number is a label.
    assert!(
        !text.contains("build_id") && !text.contains("change="),
        "{text}"
    );

    // Prometheus's own checker, which rejects OpenMetrics and anything malformed (its lint
    // findings, such as a missing HELP, fail the check too).
    let checked = run_with_stdin("promtool", &["check", "metrics"], &text)
        .unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{text}"));
    assert!(checked.trim().is_empty(), "promtool: {checked}");

    let families = python_parse("prometheus_client.parser", &text);
    assert!(families.contains("seakeeper_builds counter"), "{families}");
    assert!(
        families.contains("seakeeper_job_duration_seconds histogram"),
        "{families}"
    );

    let (content_type, open) = seakeeper::metrics::render(Some(
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3",
    ));
    assert!(content_type.starts_with("application/openmetrics-text"));
    let families = python_parse("prometheus_client.openmetrics.parser", &open);
    assert!(families.contains("seakeeper_builds counter"), "{families}");
    assert!(
        families.contains("seakeeper_reconcile_pass_duration_seconds histogram"),
        "{families}"
    );
    // promtool reads only the classic format.
    assert!(run_with_stdin("promtool", &["check", "metrics"], &open).is_err());
}

#[test]
fn json_logs_are_one_object_per_line_with_the_pass_and_action_spans() {
    let site = Site::new("", "");
    site.reconcile();
    site.upload(
        "acme/api",
        CID,
        &[
            (".pipeline/config.yaml", &pipeline("grep -q ok msg.txt")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    for (i, json) in [
        site.reconcile_cmd().arg("--log-format").arg("json"),
        site.reconcile_cmd().env("SEAKEEPER_LOG_FORMAT", "json"),
    ]
    .iter_mut()
    .enumerate()
    {
        if i > 0 {
            // Something to do again: a new build of the same patchset.
            site.g.review("bob", 1, &[], "recheck").unwrap();
        }
        let out = output(json.env("SEAKEEPER_LOG", "info"));
        assert!(out.status.success(), "{}", stderr(&out));
        let lines: Vec<serde_json::Value> = stderr(&out)
            .lines()
            .map(|l| {
                let v: serde_json::Value =
                    serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
                assert!(v.is_object(), "{l}");
                assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
                v
            })
            .collect();
        let pass = lines
            .iter()
            .find(|v| v["fields"]["message"] == "pass done")
            .unwrap_or_else(|| panic!("no pass in {lines:#?}"));
        assert_eq!(pass["span"]["name"], "pass", "{pass}");
        assert!(pass["span"]["pass"].is_u64(), "{pass}");
        assert!(pass["span"]["duration_ms"].is_u64(), "{pass}");
        assert!(pass["fields"]["duration_ms"].is_u64(), "{pass}");
        let action = lines
            .iter()
            .find(|v| v["span"]["name"] == "action" && v["span"]["build_id"].is_string())
            .unwrap_or_else(|| panic!("no action with a build id in {lines:#?}"));
        assert!(action["span"]["kind"].is_string(), "{action}");
        // The pass it ran in is in the span list.
        assert_eq!(action["spans"][0]["name"], "pass", "{action}");
    }
    // The text format stays the default.
    let out = output(site.reconcile_cmd().env("SEAKEEPER_LOG", "info"));
    let text = stderr(&out);
    assert!(text.contains("pass done"), "{text}");
    assert!(!text.trim_start().starts_with('{'), "{text}");
    let bad = output(site.reconcile_cmd().env("SEAKEEPER_LOG_FORMAT", "yaml"));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// The value of the sample `series` (name and labels, exactly as rendered), if it is there.
fn sample_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn client_calls_are_timed_and_their_failures_counted_by_operation() {
    use seakeeper::gerrit::{Rest, http::Credentials};
    use seakeeper::model::{ChangeNumber, Digest};
    use seakeeper::registry::distribution::Registry;

    // Gerrit (the stand-in): a change that does not exist is a 404.
    let g = support::gerrit::Gerrit::start();
    g.create_project("acme/api");
    let a = g.account("ci-bot");
    let rest = Rest::new(
        &g.url,
        Some(Credentials::new(&a.username, &a.password)),
        Duration::from_secs(10),
    )
    .unwrap();
    let missing: ChangeNumber = 999_999u64.try_into().unwrap();
    assert!(
        rest.get_change(&"acme/api".parse().unwrap(), missing)
            .is_err()
    );
    let (_, text) = seakeeper::metrics::render(None);
    assert!(
        sample_value(
            &text,
            "seakeeper_gerrit_request_errors_total{operation=\"get_change\",error=\"status\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );

    // A real registry: a pushed blob, a manifest that is not there, then no registry at all.
    let Some(mut registry) = support::registry::DockerRegistry::start() else {
        return; // not installed (outside CI, where it must be)
    };
    let client = Registry::new(&format!("http://{}", registry.host), None)
        .unwrap()
        .with_retry(1, Duration::from_millis(10));
    let blob = b"a blob for the metrics test";
    let digest = Digest::of(blob);
    assert!(!client.has_blob("metrics/app", &digest).unwrap());
    client
        .push_blob(
            "metrics/app",
            &digest,
            blob.len() as u64,
            Box::new(&blob[..]),
        )
        .unwrap();
    assert!(client.has_blob("metrics/app", &digest).unwrap());
    assert!(client.get_manifest("metrics/app", "missing").is_err());
    registry.stop();
    assert!(client.has_blob("metrics/app", &digest).is_err());

    let (_, text) = seakeeper::metrics::render(None);
    for (series, at_least) in [
        (
            "seakeeper_registry_request_duration_seconds_count{operation=\"has_blob\"}",
            3.0,
        ),
        (
            "seakeeper_registry_request_duration_seconds_count{operation=\"start_upload\"}",
            1.0,
        ),
        (
            "seakeeper_registry_request_duration_seconds_count{operation=\"push_blob\"}",
            1.0,
        ),
        (
            "seakeeper_registry_request_errors_total{operation=\"get_manifest\",error=\"status\"}",
            1.0,
        ),
        (
            "seakeeper_registry_request_errors_total{operation=\"has_blob\",error=\"transport\"}",
            1.0,
        ),
    ] {
        assert!(
            sample_value(&text, series).is_some_and(|n| n >= at_least),
            "no {series} >= {at_least} in\n{text}"
        );
    }
    // Nothing of the repository or the digest is a label.
    assert!(
        !text.contains("metrics/app") && !text.contains(digest.as_str()),
        "{text}"
    );
    let checked = run_with_stdin("promtool", &["check", "metrics"], &text);
    assert!(checked.is_ok_and(|o| o.trim().is_empty()), "{text}");
}
