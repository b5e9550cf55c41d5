use super::*;
use crate::model::Record;

/// A sample build's request and result (build `n` of the ledger's sample data: its id,
/// change and commits differ with `n`).
fn sample(n: u64) -> (BuildRequest, BuildResult) {
    let records = crate::ledger::sample::build_records(n);
    let request = records.iter().find_map(|r| match r {
        Record::BuildRequest(r) => Some(r.clone()),
        _ => None,
    });
    let result = records.iter().find_map(|r| match r {
        Record::BuildResult(r) => Some(r.clone()),
        _ => None,
    });
    (
        request.expect("sample builds have a request"),
        result.expect("sample builds have a result"),
    )
}

/// Calls every instrumentation point once, as the daemon's code paths do.
fn drive(m: &Metrics, n: u64) {
    let (request, result) = sample(n);
    let starts = vec![Some(request.requested_at); result.jobs.len()];
    m.build_recorded(&request, &result, &starts);
    m.reported(request.pipeline, request.requested_at);
    m.landed(request.requested_at, result.finished_at);
    m.entered("staging", result.started_at, result.finished_at);
    m.action("request-build", true, None);
    m.action("land", false, Some("git"));
    m.gerrit_call("get_change", Timer::start(), None);
    m.gerrit_call("post_review", Timer::start(), Some("transport"));
    m.gerrit_error("get_change", "status");
    m.registry_call("get_manifest", Timer::start(), None);
    m.registry_error("push_blob", "status");
    m.ledger_written(Timer::start());
    m.ledger_batch.observe(3.0);
    m.replication_behind();
    m.replication_failures.inc();
    m.pass_duration
        .get_or_create(&PassLabel { scope: "full" })
        .observe(0.01);
    m.gate_queues([("queue:mediawiki", 3, 20)]);
    m.freezes_active.set(1);
    m.promotions_held.set(2);
    m.promotions_refused.set(0);
    m.builds_in_flight.set(4);
    m.jobs_running.set(2);
    m.jobs_queued.set(5);
}

/// The sample lines (not comments) of a rendering.
fn samples(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
}

const FAMILIES: [&str; 26] = [
    "seakeeper_builds_total",
    "seakeeper_jobs_total",
    "seakeeper_job_duration_seconds",
    "seakeeper_job_queue_wait_seconds",
    "seakeeper_cycle_patchset_reported_seconds",
    "seakeeper_cycle_approved_landed_seconds",
    "seakeeper_cycle_landed_environment_seconds",
    "seakeeper_gate_queue_length",
    "seakeeper_gate_queue_window",
    "seakeeper_reconcile_pass_duration_seconds",
    "seakeeper_actions_total",
    "seakeeper_action_errors_total",
    "seakeeper_ledger_write_duration_seconds",
    "seakeeper_ledger_batch_records",
    "seakeeper_ledger_replication_lag_seconds",
    "seakeeper_ledger_replication_failures_total",
    "seakeeper_gerrit_request_duration_seconds",
    "seakeeper_gerrit_request_errors_total",
    "seakeeper_registry_request_duration_seconds",
    "seakeeper_registry_request_errors_total",
    "seakeeper_freezes_active",
    "seakeeper_promotions_held",
    "seakeeper_promotions_refused",
    "seakeeper_builds_in_flight",
    "seakeeper_jobs_running",
    "seakeeper_jobs_queued",
];

#[test]
fn every_family_has_samples_after_instrumentation() {
    let m = Metrics::new();
    drive(&m, 0);
    let (content_type, text) = m.render(None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} has no TYPE line in\n{text}"
        );
        assert!(
            samples(&text).iter().any(|l| l.starts_with(family)),
            "{family} has no sample in\n{text}"
        );
    }
    // Nothing registered that the list (and docs/metrics.md) does not name.
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(types, FAMILIES.len(), "{text}");
    assert!(
        !text.contains("# EOF"),
        "the classic format has no EOF marker"
    );
    assert!(
        text.contains("seakeeper_builds_total{pipeline=\"post-merge\",result=\"success\"} 1\n"),
        "{text}"
    );
}

#[test]
fn openmetrics_only_when_asked_for() {
    let m = Metrics::new();
    drive(&m, 1);
    let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
    let (ct, text) = m.render(Some(prometheus));
    assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE seakeeper_builds counter\n"), "{text}");
    for accept in [
        None,
        Some("text/plain"),
        Some("*/*"),
        Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
        Some("application/openmetrics-text;q=0"),
    ] {
        let (ct, text) = m.render(accept);
        assert_eq!(ct, TEXT_CONTENT_TYPE, "{accept:?}");
        assert!(!text.contains("# EOF"), "{accept:?}");
    }
}

#[test]
fn series_do_not_grow_with_build_ids_changes_or_commits() {
    let m = Metrics::new();
    // The sample builds cycle through their pipelines and results within 68 builds.
    for n in 0..68 {
        drive(&m, n);
    }
    let (_, after_first) = m.render(None);
    for n in 68..1_068 {
        drive(&m, n);
    }
    let (_, after_thousand) = m.render(None);
    assert_eq!(
        samples(&after_first).len(),
        samples(&after_thousand).len(),
        "the number of series grew with the builds driven through"
    );
    // And none of the thousand builds' ids, commits or changes became a label.
    for n in [0u64, 500, 999] {
        let (request, _) = sample(n);
        for value in [
            request.build_id.to_string(),
            request.source_commit.to_string(),
        ] {
            assert!(
                !after_thousand.contains(&value),
                "{value} is in the metrics"
            );
        }
    }
    assert!(after_thousand.contains("seakeeper_builds_total{"));
}

#[test]
fn gate_queues_that_empty_lose_their_series() {
    let m = Metrics::new();
    m.gate_queues([("queue:a", 2, 20), ("project:b", 1, 20)]);
    m.gate_queues([("queue:a", 1, 21)]);
    let (_, text) = m.render(None);
    assert!(
        text.contains("seakeeper_gate_queue_length{queue=\"queue:a\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("seakeeper_gate_queue_window{queue=\"queue:a\"} 21\n"),
        "{text}"
    );
    assert!(!text.contains("project:b"), "{text}");
}

#[test]
fn replication_lag_is_zero_in_sync_and_grows_while_behind() {
    let m = Metrics::new();
    let lag = |m: &Metrics| {
        let (_, text) = m.render(None);
        text.lines()
            .find_map(|l| l.strip_prefix("seakeeper_ledger_replication_lag_seconds "))
            .and_then(|v| v.parse::<f64>().ok())
            .expect("a lag sample")
    };
    assert_eq!(lag(&m), 0.0);
    // Behind since ten seconds ago (the first write counts, later ones do not reset it).
    m.replication_behind_since
        .store(now_millis() - 10_000, Ordering::Relaxed);
    m.replication_behind();
    assert!(lag(&m) >= 10.0);
    m.replication_caught_up();
    assert_eq!(lag(&m), 0.0);
}

#[test]
fn the_process_wide_instance_renders() {
    let (ct, text) = render(None);
    assert_eq!(ct, TEXT_CONTENT_TYPE);
    // Families without series are left out; those without labels are always there.
    assert!(
        text.contains("# TYPE seakeeper_ledger_write_duration_seconds histogram"),
        "{text}"
    );
}
