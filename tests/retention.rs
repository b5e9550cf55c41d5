//! Retention runs (issue 14, item 13): `seakeeper retention run` and the daemon, every `every`
//! of `policies/retention.yaml`, delete from each store what the rules let go, never a digest
//! an environment runs now, with one `expiry` record per deletion, and a crash between a
//! deletion and its record is finished by the next sweep.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use seakeeper::model::{
    Artifact, ArtifactKind, ArtifactRef, BuildRequest, BuildResult, BuildStatus, Digest, JobResult,
    Promotion, Record, Timestamp, Trust,
};
use support::site::{Daemon, Site, image_in_layout, import, wait_for};
use support::{ok, output, seakeeper, stderr, stdout};

const COMMIT: &str = "1111111111111111111111111111111111111111";

const POLICY: &str = "rules:\n  - {kind: log, trust: untrusted, days: 30}\n  - {kind: log, trust: trusted, days: 180}\n  - {kind: image, trust: trusted, days: 30}\nproduction_days: 365\n";

/// A log in the server's store, stored at `at` (its modification time).
fn stored_log(site: &Site, text: &str, at: &str) -> (Digest, PathBuf) {
    let digest = Digest::of(text.as_bytes());
    let dir = site.state().join("store/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(digest.hex());
    std::fs::write(&path, text).unwrap();
    let t: Timestamp = at.parse().unwrap();
    let f = std::fs::File::options().append(true).open(&path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(t.as_second() as u64))
        .unwrap();
    (digest, path)
}

/// The records of a finished build requested at `at`: its log, and the images it made.
fn build(
    id: &str,
    trust: Trust,
    at: &str,
    log: &Digest,
    images: &[(&str, &Digest)],
) -> Vec<Record> {
    let at: Timestamp = at.parse().unwrap();
    let pipeline = if trust == Trust::Trusted {
        "post-merge"
    } else {
        "check"
    };
    let mut records = vec![
        Record::BuildRequest(BuildRequest {
            build_id: id.parse().unwrap(),
            pipeline: pipeline.parse().unwrap(),
            project: "acme/api".parse().unwrap(),
            change: None,
            patchset: None,
            git_ref: "refs/heads/main".parse().unwrap(),
            source_commit: COMMIT.parse().unwrap(),
            config_commit: COMMIT.parse().unwrap(),
            trust,
            requested_at: at,
            jobs: vec!["build".into()],
            cause: None,
        }),
        Record::BuildResult(BuildResult {
            build_id: id.parse().unwrap(),
            status: BuildStatus::Success,
            started_at: at,
            finished_at: at,
            jobs: vec![JobResult {
                name: "build".into(),
                status: BuildStatus::Success,
                duration_ms: 10,
                log_digest: Some(log.clone()),
                needs: Vec::new(),
                image: None,
            }],
            artifacts: images
                .iter()
                .map(|(name, d)| ArtifactRef {
                    digest: (*d).clone(),
                    name: (*name).into(),
                    kind: ArtifactKind::Image,
                })
                .collect(),
        }),
    ];
    for (name, d) in images {
        records.push(Record::Artifact(Artifact {
            digest: (*d).clone(),
            build_id: id.parse().unwrap(),
            name: (*name).into(),
            kind: ArtifactKind::Image,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 500,
        }));
    }
    records
}

fn promotion(image: &str, digest: &Digest, previous: Option<&Digest>, at: &str) -> Record {
    Record::Promotion(Promotion {
        environment: "testing".parse().unwrap(),
        image: image.parse().unwrap(),
        digest: digest.clone(),
        previous_digest: previous.cloned(),
        from_registry: "oci:build".into(),
        to_registry: "oci:testing".into(),
        config_commit: COMMIT.parse().unwrap(),
        promoted_at: at.parse().unwrap(),
    })
}

fn in_layout(layout: &Path, digest: &Digest) -> bool {
    layout.join("blobs/sha256").join(digest.hex()).exists()
}

fn retention(site: &Site, extra: &[&str]) -> std::process::Output {
    output(
        seakeeper()
            .args(["retention", "run", "--settings"])
            .arg(&site.settings)
            .args(extra),
    )
}

#[test]
fn issue_14_retention_deletes_what_the_rules_let_go_with_an_expiry_record_each() {
    let site = Site::new("", "");
    site.write_config("policies/retention.yaml", POLICY);
    site.commit_config("Retention");
    site.reconcile();
    let testing = site.w.path("reg/testing");
    let old = image_in_layout(&site.w.path("root-old"), &testing, "api v1\n");
    let running = image_in_layout(&site.w.path("root-new"), &testing, "api v2\n");
    let (trusted_log, trusted_log_path) =
        stored_log(&site, "post-merge log\n", "2026-10-01T09:00:00Z");
    let (check_log, check_log_path) = stored_log(&site, "check log\n", "2026-10-02T09:00:00Z");
    let mut records = build(
        "post-merge-api-1",
        Trust::Trusted,
        "2026-10-01T09:00:00Z",
        &trusted_log,
        &[("api", &old)],
    );
    records.push(promotion("api", &old, None, "2026-10-01T09:00:00Z"));
    records.extend(build(
        "check-api-1",
        Trust::Untrusted,
        "2026-10-02T09:00:00Z",
        &check_log,
        &[],
    ));
    // Built as long ago, but testing runs it now: never deleted, however old.
    records.extend(build(
        "post-merge-api-2",
        Trust::Trusted,
        "2026-10-03T09:00:00Z",
        &trusted_log,
        &[("api", &running)],
    ));
    records.push(promotion(
        "api",
        &running,
        Some(&old),
        "2026-10-03T09:00:00Z",
    ));
    import(&site, &records);

    // A dry run says what would go and deletes nothing.
    let out = retention(&site, &["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains(&format!("would delete api {old}")), "{text}");
    assert!(
        text.contains(&format!(
            "would delete log of check-api-1/build {check_log}"
        )),
        "{text}"
    );
    assert!(!text.contains(&running.to_string()), "{text}");
    assert!(in_layout(&testing, &old) && check_log_path.exists());

    let out = retention(&site, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("2 deleted"), "{text}");
    assert!(
        text.contains("image, trusted: 30 days") && text.contains("log, untrusted: 30 days"),
        "{text}"
    );
    assert!(!in_layout(&testing, &old), "the old image is gone");
    assert!(in_layout(&testing, &running), "what testing runs stays");
    assert!(!check_log_path.exists(), "the old check log is gone");
    assert!(trusted_log_path.exists(), "a trusted log is kept 180 days");
    // One expiry record per deletion, signed like every record; trace shows it.
    let log = site.ledger_log();
    assert_eq!(log.matches("Expire ").count(), 2, "{log}");
    let trace = ok(seakeeper()
        .args(["trace", "--ledger"])
        .arg(site.ledger())
        .arg(old.to_string()));
    assert!(trace.contains("expiry"), "{trace}");
    site.verify_ledger();

    // Nothing twice.
    let out = retention(&site, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 deleted"), "{text}");
    assert_eq!(site.ledger_log().matches("Expire ").count(), 2);

    // A deletion a crash interrupted (its intent written, the record not) is finished: the
    // blob is deleted and recorded once.
    let (late, late_path) = stored_log(&site, "another check log\n", "2026-10-02T10:00:00Z");
    let state_file = site.state().join("retention.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["deleting"] = serde_json::json!([{
        "item": {"digest": late.to_string(), "kind": "log", "name": "log of check-api-9/build",
                 "trust": "untrusted", "created": "2026-10-02T10:00:00Z"},
        "store": format!("dir:{}", site.state().join("store").display()),
        "rule": "log, untrusted: 30 days (it is 62 days old)"
    }]);
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let out = retention(&site, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!late_path.exists());
    assert_eq!(site.ledger_log().matches("Expire ").count(), 3);
    retention(&site, &[]);
    assert_eq!(site.ledger_log().matches("Expire ").count(), 3);

    // A state file that cannot be read deletes nothing and says why.
    std::fs::write(&state_file, "{not json").unwrap();
    let out = retention(&site, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("retention.json"), "{}", stderr(&out));
}

#[test]
fn issue_14_the_daemon_applies_the_retention_policy_on_its_schedule() {
    let site = Site::new("", "");
    site.write_config("policies/retention.yaml", &format!("{POLICY}every: 1s\n"));
    site.commit_config("Retention every second");
    site.reconcile();
    let (check_log, check_log_path) = stored_log(&site, "check log\n", "2026-10-02T09:00:00Z");
    import(
        &site,
        &build(
            "check-api-1",
            Trust::Untrusted,
            "2026-10-02T09:00:00Z",
            &check_log,
            &[],
        ),
    );
    let daemon = Daemon::start(&site);
    wait_for("the daemon's sweep", Duration::from_secs(30), || {
        !check_log_path.exists() && site.ledger_log().contains("Expire ")
    });
    wait_for("the sweep in status", Duration::from_secs(10), || {
        let status = ok(seakeeper()
            .args(["status", "--settings"])
            .arg(&site.settings));
        status.contains("retention: last sweep") && status.contains("1 deleted")
    });
    let out = daemon.term();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "retention: deleted log of check-api-1/build {check_log}"
        )),
        "{text}"
    );
    assert_eq!(site.ledger_log().matches("Expire ").count(), 1);
}

#[test]
fn issue_18_dependency_caches_unused_for_cache_days_are_removed() {
    let site = Site::new("", "");
    site.reconcile();
    let dir = site.state().join("caches/untrusted");
    std::fs::create_dir_all(&dir).unwrap();
    let (old, fresh) = (
        dir.join(format!("{}.tar", "a".repeat(64))),
        dir.join(format!("{}.tar", "b".repeat(64))),
    );
    std::fs::write(&old, vec![0u8; 2048]).unwrap();
    std::fs::write(&fresh, vec![0u8; 1024]).unwrap();
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_times(std::fs::FileTimes::new().set_modified(month_ago))
        .unwrap();
    // A dry run names it and keeps it.
    let out = retention(&site, &["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("would delete cache {} (2048 bytes", old.display())),
        "{}",
        stdout(&out)
    );
    assert!(old.exists());
    let out = retention(&site, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!old.exists() && fresh.exists(), "{}", stdout(&out));
}
