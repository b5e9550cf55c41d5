//! Fail closed on promotion and freezes (issue 14, items 5 and 6): a digest is promoted only
//! on an attestation whose signature verifies with a builder key, only under the image name
//! it was attested as, only from an environment that runs it now; a freeze file that cannot be
//! read holds everything instead of letting the last good config run without it.

mod support;

use seakeeper::model::{Attestation, Digest, Record};
use support::site::{
    Site, envelope, git, image_in_layout, image_in_testing, import, in_staging, record_build,
};
use support::{ok, output, seakeeper, stderr};

#[test]
fn issue_14_promotion_needs_a_verified_attestation_under_the_same_image_name() {
    let site = Site::new("", "");
    site.write_config(
        "projects/acme/web.yaml",
        "pipelines: [check, post-merge]\nimages: [web]\n",
    );
    site.commit_config("Add web");
    site.reconcile();
    let digest = image_in_testing(&site);
    // A record says "trusted", but the attestation is signed by a key that is no builder's.
    let (attacker, _, _) = site.w.another_key("attacker");
    record_build(&site, &digest, envelope(&attacker, &digest));
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    site.commit_config("Promote api to staging");
    let out = output(&mut site.reconcile_cmd());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no verified trusted build attestation")
            && text.contains("does not verify with a builder key"),
        "{text}"
    );
    assert!(!in_staging(&site, &digest));
    let status = ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings));
    assert!(status.contains("refused"), "{status}");

    // The same digest attested by the server's own (builder) key is promoted as api...
    import(
        &site,
        &[Record::Attestation(Attestation {
            subject_digest: digest.clone(),
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            envelope: envelope(&site.w.key, &digest),
        })],
    );
    let out = site.reconcile();
    assert!(
        out.contains(&format!("api@{digest} now runs in staging")),
        "{out}"
    );
    assert!(in_staging(&site, &digest));

    // ...but never as web: the attestation names api.
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n  web: {digest}\n"),
    );
    site.commit_config("Promote api's digest as web");
    let out = output(&mut site.reconcile_cmd());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "{digest} was built and attested as api, not as web"
        )),
        "{text}"
    );
    assert!(!text.contains(&format!("web@{digest} now runs")), "{text}");
    // Each refusal is a ledger record with its reason (once, however many passes refuse it).
    let log = site.ledger_log();
    assert_eq!(
        log.matches(&format!(
            "Refuse web@{digest} in staging: {digest} was built and attested as api"
        ))
        .count(),
        1,
        "{log}"
    );
    site.reconcile_cmd().output().unwrap();
    assert_eq!(
        site.ledger_log()
            .matches(&format!("Refuse web@{digest} in staging"))
            .count(),
        1
    );
    assert!(
        log.contains(&format!(
            "Refuse api@{digest} in staging: the ledger holds no verified"
        )),
        "{log}"
    );
    site.verify_ledger();
}

/// A site where a trusted build of api is recorded and attested by the server's key, and
/// `promotions/staging.yaml` asks for it.
fn promotion_asked() -> (Site, Digest) {
    let site = Site::new("", "");
    site.reconcile();
    let digest = image_in_testing(&site);
    record_build(&site, &digest, envelope(&site.w.key, &digest));
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    site.commit_config("Promote api to staging");
    (site, digest)
}

#[test]
fn issue_14_a_freeze_file_that_cannot_be_read_holds_everything() {
    // The promotion is asked for, then a freeze that is broken YAML is merged: the config
    // at HEAD is invalid, but its freeze holds all the same.
    let (site, digest) = promotion_asked();
    site.write_config(
        "freezes/eoy.yaml",
        "scope: [promote:staging\nreason: End of year.\n",
    );
    site.commit_config("Freeze (badly)");
    let out = output(&mut site.reconcile_cmd());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("is invalid"), "{text}");
    assert!(
        text.contains("held: staging is frozen by eoy")
            && text.contains("freezes/eoy.yaml cannot be read"),
        "{text}"
    );
    assert!(!in_staging(&site, &digest));
    // A readable freeze with a scope that means nothing known holds everything too.
    site.write_config(
        "freezes/eoy.yaml",
        "scope: [promote:stagign]\nreason: End of year.\n",
    );
    site.commit_config("Freeze (typo)");
    let out = output(&mut site.reconcile_cmd());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("held: staging is frozen by eoy") && text.contains("promote:stagign"),
        "{text}"
    );
    assert!(!in_staging(&site, &digest));
    // Config check points at the file, line and column.
    let check = output(
        seakeeper()
            .args(["config", "check", "--repo"])
            .arg(&site.config),
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("freezes/eoy.yaml:1:"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // An expired freeze holds nothing; the promotion goes ahead.
    site.write_config(
        "freezes/eoy.yaml",
        "scope: [promote:staging]\nreason: End of year.\nexpires: 2020-01-01T00:00:00Z\n",
    );
    site.commit_config("Freeze that has expired");
    let out = site.reconcile();
    assert!(
        out.contains(&format!("api@{digest} now runs in staging")),
        "{out}"
    );
    let _ = git;
}

#[test]
fn issue_14_a_config_head_that_cannot_be_read_holds_everything() {
    // The promotion is asked for, then a file over the 1 MiB limit: HEAD cannot be read at
    // all, so nothing it might say (a freeze) can be seen.
    let (site, digest) = promotion_asked();
    site.write_config("huge.txt", &"x".repeat(2 << 20));
    site.commit_config("Add a huge file");
    let out = output(&mut site.reconcile_cmd());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cannot be read"), "{text}");
    assert!(
        text.contains("held: staging is frozen by config-head-unreadable"),
        "{text}"
    );
    assert!(!in_staging(&site, &digest));
    let status = ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings));
    assert!(
        status.contains("INVALID") && status.contains("config-head-unreadable"),
        "{status}"
    );
    // A readable HEAD again: the promotion goes ahead.
    git(&site.config, &["rm", "-q", "huge.txt"]);
    site.commit_config("Remove the huge file");
    let out = site.reconcile();
    assert!(
        out.contains(&format!("api@{digest} now runs in staging")),
        "{out}"
    );
}

#[test]
fn issue_14_a_promotion_whose_source_lacks_the_digest_fails_visibly() {
    let site = Site::new("", "");
    site.reconcile();
    // Recorded and attested, but the testing registry does not hold it.
    let digest = Digest::of(b"an image nobody pushed");
    record_build(&site, &digest, envelope(&site.w.key, &digest));
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    site.commit_config("Promote api to staging");
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    assert!(!in_staging(&site, &digest));
    let status = ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings));
    assert!(
        status.contains(&format!(
            "staging api@{digest} failed: promoting api@{digest}"
        )),
        "{status}"
    );
}

#[test]
fn issue_14_a_registry_that_stalls_mid_blob_holds_up_nothing_and_sigterm_still_stops() {
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    use support::site::{Daemon, pipeline, wait_for};
    let dirs = tempfile::tempdir().unwrap();
    let source = dirs.path().join("testing-layout");
    let digest = image_in_layout(&dirs.path().join("root"), &source, &"api v1\n".repeat(1000));
    let stall = support::registry::StallingRegistry::start(source);
    let site = support::site::promoting_from(
        &stall.host,
        &dirs.path().join("staging"),
        &digest,
        "Promote api to staging",
    );
    let daemon = Daemon::start(&site);
    wait_for("the copy to stall", Duration::from_secs(30), || {
        stall.stalled.load(Ordering::SeqCst) > 0
    });
    // While the copy hangs, a new patchset is still checked and reviewed.
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000201",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    wait_for("the review", Duration::from_secs(60), || {
        site.reviews(1).len() == 1
    });
    let status = ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings));
    assert!(
        status.contains(&format!("staging api@{digest} copying")),
        "{status}"
    );
    // SIGTERM ends the daemon promptly, the copy abandoned and nothing recorded for it.
    let asked = Instant::now();
    let out = daemon.term();
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopped after {:?}: {}",
        asked.elapsed(),
        stderr(&out)
    );
    let log = site.ledger_log();
    assert!(!log.contains("Environment: staging"), "{log}");
    site.verify_ledger();
}

/// Issue 14, item 7: a Gerrit that stops answering holds up nothing else: a config change is
/// still taken up and shown in `status` (with Gerrit's silence), and SIGTERM still stops.
#[test]
fn issue_14_a_gerrit_that_hangs_holds_up_nothing_and_sigterm_still_stops() {
    use std::time::{Duration, Instant};
    use support::site::{Daemon, wait_for};
    let site = Site::new("", "");
    site.reconcile();
    let daemon = Daemon::start(&site);
    let status = || {
        ok(seakeeper()
            .args(["status", "--settings"])
            .arg(&site.settings))
    };
    wait_for("the daemon's status", Duration::from_secs(30), || {
        status().contains("reachable")
    });
    // Every Gerrit request from now on is answered after a minute.
    site.g.delay_next(1000, Duration::from_secs(60));
    let frozen = {
        site.write_config(
            "freezes/hold.yaml",
            "scope: [\"promote:staging\"]\nreason: Held while Gerrit hangs.\n",
        );
        site.commit_config("Freeze staging")
    };
    let asked = Instant::now();
    wait_for("the new config in status", Duration::from_secs(10), || {
        let s = status();
        s.contains(&format!("config: {frozen}")) && s.contains("hold")
    });
    let taken_up = asked.elapsed();
    wait_for(
        "Gerrit's silence in status",
        Duration::from_secs(30),
        || status().contains("no answer for"),
    );
    let asked = Instant::now();
    let out = daemon.term();
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "stopped after {:?}: {}",
        asked.elapsed(),
        stderr(&out)
    );
    assert!(taken_up < Duration::from_secs(10), "{taken_up:?}");
    site.verify_ledger();
}
