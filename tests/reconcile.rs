//! The reconciler end to end: the check pipeline against the Gerrit stand-in (reviews with
//! Verified and ledger links, rechecks, superseding patchsets), config changes checked and an
//! invalid config at HEAD kept out, post-merge images pushed to a real registry and promoted
//! to another, freezes holding and releasing promotions, ledger replication and a fresh server
//! resuming from it, and `kill -9` at every step of a build.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::site::{CI_BOT, Daemon, IMAGE, Site, build_ids, git, pipeline, wait_for};
use support::{ok, output, seakeeper, stderr, stdout};

#[test]
fn check_pipeline_reviews_once_per_build_with_links_rechecks_and_failures() {
    let site = Site::new("", "");
    site.reconcile(); // the baseline
    let cid = "I0000000000000000000000000000000000000001";
    site.upload(
        "acme/api",
        cid,
        &[
            (".pipeline/config.yaml", &pipeline("grep -q ok msg.txt")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    let out = site.reconcile();
    assert!(out.contains("reported to Gerrit"), "{out}");
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    let r = &reviews[0];
    assert!(r.contains("Verified+1"), "{r}");
    assert!(r.contains("seakeeper check: SUCCESS"), "{r}");
    assert!(r.contains("- unit: SUCCESS in "), "{r}");
    // No links while nothing serves pages (a link that leads nowhere is worse than none).
    assert!(!r.contains("https://ci.example.org"), "{r}");
    assert!(r.contains(", log sha256:"), "{r}");
    // The log is in the store under its digest: the job's timestamped lines, as the job wrote.
    let hex = r
        .split(", log sha256:")
        .nth(1)
        .and_then(|t| t.get(..64))
        .expect("a log digest");
    let stored = std::fs::read(site.state().join("store/sha256").join(hex)).unwrap();
    {
        use sha2::Digest as _;
        assert_eq!(hex::encode(sha2::Sha256::digest(&stored)), hex);
    }
    let stored = String::from_utf8(stored).unwrap();
    assert!(
        stored.lines().any(|l| l.ends_with(" $ grep -q ok msg.txt")),
        "{stored}"
    );
    assert!(
        stored
            .lines()
            .last()
            .unwrap()
            .contains("seakeeper: succeeded after"),
        "{stored}"
    );
    let ledger_link = r
        .lines()
        .find_map(|l| l.strip_prefix("Ledger commit: "))
        .expect("a ledger commit");
    // It names a real ledger commit that holds the result.
    let shown = git(&site.ledger(), &["show", "--stat", ledger_link]);
    assert!(shown.contains("result.yaml"), "{shown}");
    assert_eq!(site.g.change(1).vote("Verified", CI_BOT), 1);
    let first = build_ids(r);
    assert_eq!(first.len(), 1);

    // Nothing new: nothing posted again.
    site.reconcile();
    assert_eq!(site.reviews(1).len(), 1);

    // "recheck" runs the same patchset again, as a new build.
    site.g.review("bob", 1, &[], "recheck").unwrap();
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    let second = build_ids(&reviews[1]);
    assert_ne!(first, second);

    // A new patchset that fails: Verified -1.
    site.upload("acme/api", cid, &[("msg.txt", "not good\n")], true);
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 3, "{reviews:?}");
    assert!(reviews[2].contains("Verified-1"), "{}", reviews[2]);
    assert!(reviews[2].contains("- unit: FAILURE"), "{}", reviews[2]);
    // Issue 14, item 10: the failing job, its exit code, the end of its log, and how to run it.
    let failed = &reviews[2];
    assert!(failed.contains("(exit code 1)"), "{failed}");
    assert!(
        failed.contains("unit failed (exit code 1); the last ")
            && failed.contains("    $ grep -q ok msg.txt"),
        "{failed}"
    );
    assert!(
        failed.contains("Run it yourself, in a clone of acme/api: seakeeper job run unit --rev ")
            && failed.contains(" --pipeline check"),
        "{failed}"
    );
    assert_eq!(site.g.change(1).vote("Verified", CI_BOT), -1);

    // Every fact is in the ledger, findable with plain git.
    let log = site.ledger_log();
    for id in first.iter().chain(&second) {
        assert!(log.contains(&format!("Build-Id: {id}")), "{log}");
    }
    site.verify_ledger();

    // An invalid pipeline file is reported with its errors, not ignored.
    site.upload(
        "acme/api",
        cid,
        &[(".pipeline/config.yaml", "jobs:\n  unit:\n    image: x\n")],
        true,
    );
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 4);
    assert!(
        reviews[3].contains(".pipeline/config.yaml is invalid"),
        "{}",
        reviews[3]
    );
    assert!(reviews[3].contains("Verified-1"), "{}", reviews[3]);
}

#[test]
fn serve_supersedes_a_running_build_with_a_new_patchset_and_stops_on_sigterm() {
    let site = Site::new("", "");
    site.reconcile();
    let daemon = Daemon::start(&site);
    let cid = "I0000000000000000000000000000000000000002";
    site.upload(
        "acme/api",
        cid,
        &[
            (".pipeline/config.yaml", &pipeline("sleep 30")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    let status = || {
        output(
            seakeeper()
                .args(["status", "--json", "--settings"])
                .arg(&site.settings),
        )
    };
    wait_for("the first job to run", Duration::from_secs(30), || {
        let o = status();
        o.status.success() && stdout(&o).contains("\"running_jobs\": 1")
    });
    site.upload(
        "acme/api",
        cid,
        &[(".pipeline/config.yaml", &pipeline("true"))],
        true,
    );
    wait_for("the review of patchset 2", Duration::from_secs(30), || {
        !site.reviews(1).is_empty()
    });
    let out = daemon.term();
    assert!(out.status.success(), "{}", stderr(&out));
    let reviews = site.reviews(1);
    assert_eq!(
        reviews.len(),
        1,
        "only the newest patchset is reported: {reviews:?}"
    );
    assert!(reviews[0].contains("Verified+1"));
    let text = stdout(&out);
    assert!(
        text.contains("cancelled, superseded by patchset 2"),
        "{text}"
    );
    let log = site.ledger_log();
    assert!(
        log.contains("cancelled"),
        "the cancellation is in the ledger: {log}"
    );
    site.verify_ledger();
}

#[test]
fn kill_9_at_any_step_loses_nothing_and_repeats_nothing() {
    for point in [
        "after-request",
        "after-start",
        "after-result",
        "before-review",
        "after-review",
    ] {
        let site = Site::new("", "");
        site.reconcile();
        site.upload(
            "acme/api",
            "I0000000000000000000000000000000000000003",
            &[
                // Killed after the start, seakeeper dies while the job still runs.
                (
                    ".pipeline/config.yaml",
                    &pipeline(if point == "after-start" {
                        "sleep 1"
                    } else {
                        "true"
                    }),
                ),
                ("msg.txt", "ok\n"),
            ],
            false,
        );
        let out = output(site.reconcile_cmd().env("SEAKEEPER_TEST_CRASH_AT", point));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{point}: {}",
            stderr(&out)
        );
        site.reconcile();
        let reviews = site.reviews(1);
        assert_eq!(reviews.len(), 1, "{point}: {reviews:?}");
        let ids = build_ids(&reviews[0]);
        assert!(reviews[0].contains("Verified+1"), "{point}: {}", reviews[0]);
        // One request and one result for the build, nothing else requested.
        let files = git(
            &site.ledger(),
            &["ls-tree", "-r", "--name-only", "refs/heads/main"],
        );
        let requests = files
            .lines()
            .filter(|f| f.ends_with("/request.yaml"))
            .count();
        let results = files
            .lines()
            .filter(|f| f.ends_with("/result.yaml"))
            .count();
        assert_eq!((requests, results), (1, 1), "{point}: {files}");
        assert!(site.ledger_log().contains(&format!("Build-Id: {}", ids[0])));
        // The job ran once: killed while it ran, seakeeper adopted it on restart.
        let runs: Vec<String> = std::fs::read_dir(site.state().join("jobs").join(&ids[0]))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(runs.len(), 1, "{point}: {runs:?}");
        let log = std::fs::read_to_string(
            site.state()
                .join("jobs")
                .join(&ids[0])
                .join(&runs[0])
                .join("log"),
        )
        .unwrap();
        assert_eq!(
            log.matches("seakeeper: succeeded").count(),
            1,
            "{point}: {log}"
        );
        site.verify_ledger();
        // Nothing is left in flight.
        assert_eq!(
            std::fs::read_dir(site.state().join("inflight"))
                .unwrap()
                .count(),
            0,
            "{point}"
        );
    }
}

#[test]
fn sigterm_leaves_running_jobs_to_the_next_start_which_adopts_them() {
    let site = Site::new("", "");
    site.reconcile();
    let daemon = Daemon(
        seakeeper()
            .args(["serve", "--full-every", "1", "--settings"])
            .arg(&site.settings)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000005",
        &[
            (".pipeline/config.yaml", &pipeline("sleep 4")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    let job_state = || {
        let builds: Vec<PathBuf> = std::fs::read_dir(site.state().join("jobs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        builds
            .first()
            .and_then(|b| std::fs::read_to_string(b.join("unit/state.json")).ok())
            .unwrap_or_default()
    };
    wait_for("the job to run", Duration::from_secs(30), || {
        job_state().contains("running")
    });
    // SIGTERM (a restart, an upgrade): the daemon exits without waiting for the job, which
    // carries on under its supervisor.
    let out = daemon.term();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(job_state().contains("running"), "{}", job_state());
    assert!(site.reviews(1).is_empty());
    // The next start adopts the job: it ran once, and is reported once.
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(reviews[0].contains("Verified+1"), "{}", reviews[0]);
    let ids = build_ids(&reviews[0]);
    let dir = site.state().join("jobs").join(&ids[0]);
    let runs: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let log = std::fs::read_to_string(dir.join("unit/log")).unwrap();
    assert_eq!(log.matches("$ sleep 4").count(), 1, "{log}");
    assert_eq!(log.matches("seakeeper: succeeded").count(), 1, "{log}");
    site.verify_ledger();
}

#[test]
fn config_changes_are_checked_and_an_invalid_head_keeps_the_last_good_config() {
    let site = Site::new("", "config_project: seakeeper/config\n");
    // The config repo is a Gerrit project, read from Gerrit.
    site.g.create_project("seakeeper/config");
    git(
        &site.config,
        &[
            "push",
            "-q",
            "-f",
            &site.g.push_url("seakeeper/config", "alice"),
            "HEAD:refs/heads/main",
        ],
    );
    let settings = std::fs::read_to_string(&site.settings).unwrap().replace(
        &format!("config_repo: {}", site.config.display()),
        &format!("config_repo: {}", site.g.git_url("seakeeper/config")),
    );
    std::fs::write(&site.settings, settings).unwrap();
    site.reconcile();
    let w = site.clone("seakeeper/config");
    std::fs::write(
        w.join("environments.yaml"),
        "environments:\n  - {name: testing, registry: nowhere}\n",
    )
    .unwrap();
    git(&w, &["add", "-A"]);
    git(
        &w,
        &[
            "commit",
            "-q",
            "-m",
            "Break the config\n\nChange-Id: I0000000000000000000000000000000000000004",
        ],
    );
    git(
        &w,
        &[
            "push",
            "-q",
            &site.g.push_url("seakeeper/config", "alice"),
            "HEAD:refs/for/main",
        ],
    );
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(reviews[0].contains("Verified-1"), "{}", reviews[0]);
    assert!(
        reviews[0].contains("config-check: FAILURE"),
        "{}",
        reviews[0]
    );
    assert!(reviews[0].contains("environments.yaml"), "{}", reviews[0]);

    // The same mistake lands anyway (pushed past review): seakeeper keeps running with the
    // last good config and says so on the change.
    let good = git(&site.config, &["rev-parse", "HEAD"]);
    let bad = git(&w, &["rev-parse", "HEAD"]);
    git(
        &w,
        &[
            "push",
            "-q",
            &site.g.push_url("seakeeper/config", "alice"),
            "HEAD:refs/heads/main",
        ],
    );
    let out = site.reconcile();
    assert!(
        out.contains(&format!("{bad} is INVALID; running with {good}")),
        "{out}"
    );
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 2, "{reviews:?}");
    assert!(
        reviews[1].contains("made the config repo invalid"),
        "{}",
        reviews[1]
    );
    assert!(reviews[1].contains(&good), "{}", reviews[1]);
    // Once only, also across restarts.
    site.reconcile();
    assert_eq!(site.reviews(1).len(), 2);
    // Changes are still checked, with the good config.
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000005",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    site.reconcile();
    assert_eq!(site.reviews(2).len(), 1);
    let status = ok(seakeeper()
        .args(["status", "--json", "--settings"])
        .arg(&site.settings));
    assert!(
        status.contains(&format!("\"config_in_use\": \"{good}\"")),
        "{status}"
    );
    assert!(status.contains("nowhere"), "{status}");
}

#[test]
fn post_merge_pushes_an_attested_image_to_a_real_registry_and_promotion_obeys_freezes() {
    let (Some(testing), Some(staging)) = (
        support::registry::DockerRegistry::start(),
        support::registry::DockerRegistry::start(),
    ) else {
        return;
    };
    let registries = format!(
        "registries:\n  testing: {{ url: \"http://{}\" }}\n  staging: {{ url: \"http://{}\" }}\n",
        testing.host, staging.host
    );
    let site = Site::new(&registries, "");
    // A base image, pinned by digest, in the registry the first environment uses.
    let base_dir = site.w.path("base");
    std::fs::create_dir_all(base_dir.join("etc")).unwrap();
    std::fs::write(base_dir.join("etc/os-release"), "ID=base\n").unwrap();
    let layout = site.w.path("base-layout");
    let built = ok(seakeeper()
        .args(["image", "build", "--from-dir"])
        .arg(&base_dir)
        .arg("--layout")
        .arg(&layout)
        .args(["--tag", "base"]));
    let base_digest = built.trim().to_owned();
    ok(seakeeper().args([
        "image",
        "copy",
        &format!("oci:{}@{base_digest}", layout.display()),
        &format!("docker://{}/base", testing.host),
        "--plain-http",
    ]));
    site.reconcile();
    let pipeline = format!(
        "jobs:\n  build:\n    image: {IMAGE}\n    commands: [mkdir -p dist, cp msg.txt dist/]\n    timeout: 1m\n    outputs:\n      files: [\"dist/**\"]\n      images:\n        - name: api\n          base: {}/base@{base_digest}\n          files: [\"dist/**\"]\npipelines:\n  post-merge: [build]\n",
        testing.host
    );
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(w.join(".pipeline/config.yaml"), pipeline).unwrap();
    std::fs::write(w.join("msg.txt"), "hello\n").unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "Build an image"]);
    site.merge("acme/api");
    let out = site.reconcile();
    assert!(out.contains("pushed to testing"), "{out}");
    let digest = out
        .lines()
        .find(|l| l.contains("image api sha256:"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .unwrap()
        .to_owned();
    // skopeo, an independent client, reads it from the registry.
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{}/api@{digest}", testing.host))
        .output();
    if let Ok(o) = inspect {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The ledger traces it to its build, with a trusted attestation.
    let trace = ok(seakeeper()
        .args(["trace", &digest, "--json", "--ledger"])
        .arg(site.ledger()));
    assert!(trace.contains("\"trust\":\"trusted\""), "{trace}");
    assert!(trace.contains("https://slsa.dev/provenance/v1"), "{trace}");

    // A freeze on staging holds the promotion, with its reason, on the status output.
    site.write_config(
        "freezes/eoy.yaml",
        "scope: [\"promote:staging\"]\nreason: End of year.\nticket: T42\n",
    );
    let freeze = site.commit_config("Freeze staging");
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    site.commit_config("Promote api to staging");
    let out = site.reconcile();
    assert!(out.contains("eoy is ACTIVE"), "{out}");
    assert!(
        out.contains("held: staging is frozen by eoy (T42): End of year."),
        "{out}"
    );
    let status = ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings));
    assert!(
        status.contains("eoy [promote:staging] (T42): End of year."),
        "{status}"
    );
    assert!(
        output(
            Command::new("skopeo")
                .args(["inspect", "--tls-verify=false", "--raw"])
                .arg(format!("docker://{}/api@{digest}", staging.host))
        )
        .status
        .code()
            != Some(0),
        "nothing reached staging"
    );
    // Reverting the freeze releases it on the next pass.
    git(&site.config, &["revert", "--no-edit", &freeze]);
    let out = site.reconcile();
    assert!(out.contains("eoy was lifted"), "{out}");
    assert!(
        out.contains(&format!("api@{digest} now runs in staging")),
        "{out}"
    );
    let log = site.ledger_log();
    assert!(log.contains("Environment: staging"), "{log}");
    site.verify_ledger();
}

#[test]
fn the_ledger_is_replicated_and_a_fresh_server_resumes_from_its_remote() {
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("ledger.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare"]);
    let site = Site::new("", "");
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &format!("{s}ledger:\n  remote: {}\n", remote.display()),
    );
    site.commit_config("Replicate the ledger");
    site.reconcile();
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000006",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    site.reconcile();
    let local = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    assert_eq!(git(&remote, &["rev-parse", "refs/heads/main"]), local);
    // The server is lost; a new one starts from an empty state directory.
    std::fs::remove_dir_all(site.state()).unwrap();
    let out = output(&mut site.reconcile_cmd());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ledger restored from"),
        "{}",
        stderr(&out)
    );
    let restored = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    assert!(
        git(
            &site.ledger(),
            &["merge-base", "--is-ancestor", &local, &restored]
        )
        .is_empty(),
        "the old history is kept"
    );
    // It goes on recording, and the remote follows without a forced push.
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000007",
        &[("msg.txt", "ok again\n")],
        false,
    );
    site.reconcile();
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/main"]),
        git(&site.ledger(), &["rev-parse", "refs/heads/main"])
    );
    assert_eq!(site.reviews(2).len(), 1);
    site.verify_ledger();
}

#[test]
fn the_demo_runs_the_whole_flow_with_no_servers() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("demo");
    let out = output(seakeeper().args(["demo", "--dir"]).arg(&world));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for expected in [
        "[check] api change 1,1: build check-",
        "seakeeper check: SUCCESS",
        "pushed to testing",
        "now runs in staging",
        "end-of-year is ACTIVE",
        "held: production is frozen by end-of-year (T1234)",
        "ok: ",
        // Issue 16: the gate. Change 1 fails its gate build and leaves; change 2, first tested
        // with change 1 ahead of it, is tested again without it and lands as what was tested.
        "[gate] api change 1: seakeeper gate: change 1,1 entered the gate queue project:api at position 1 of 2",
        "seakeeper gate: FAILURE",
        "Gate: failed 1/",
        "seakeeper gate: SUCCESS",
        "cause     gate, queue project:api",
        // Build once: no post-merge build of api; web's is triggered by the landed gate build.
        "[post-merge] web refs/heads/main: build post-merge-",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Change 2's first build (with change 1 ahead) is reset: cancelled if still running, else
    // retired.
    assert!(
        text.contains("retired (its state is no longer wanted)")
            || text.contains("cancelled, reset"),
        "{text}"
    );
    // The commit on api's main is the one the gate build tested, and the image's trace says so.
    let landed = git(
        &world.join("git/api.git"),
        &["rev-parse", "refs/heads/main"],
    );
    assert!(
        text.contains(&format!(
            "Landed as {landed} on refs/heads/main: the commit this build tested"
        )) && text.contains(&format!(
            "landed    change 2,1 as {landed} on refs/heads/main"
        )),
        "{text}"
    );
    assert!(world.join("ledger").is_dir() && world.join("config").is_dir());
    // Issue 14: web's image traces to the api build that caused it; its provenance names that
    // build as a resolved dependency, with well-formed git URIs; its build started when its
    // first job did.
    let web = text
        .lines()
        .find(|l| l.contains("image web sha256:"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .unwrap_or_else(|| panic!("no web image in:\n{text}"))
        .to_owned();
    let trace = ok(seakeeper()
        .args(["trace", &web, "--json", "--ledger"])
        .arg(world.join("ledger")));
    let v: serde_json::Value = serde_json::from_str(&trace).unwrap();
    assert_eq!(v["cause"]["kind"], "upstream", "{trace}");
    assert_eq!(v["cause"]["project"], "api", "{trace}");
    let envelope_path = v["attestations"][0]["path"].as_str().unwrap().to_owned();
    let record = ok(seakeeper()
        .args(["ledger", "show", "--json"])
        .arg(world.join("ledger"))
        .arg(&envelope_path));
    let shown: serde_json::Value = serde_json::from_str(&record).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(shown["content"].as_str().unwrap()).unwrap();
    let payload = record["envelope"]["payload"]
        .as_str()
        .unwrap_or_else(|| panic!("{record}"));
    let statement: serde_json::Value = {
        use base64::Engine as _;
        serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let upstream = deps.iter().find(|d| d["name"] == "upstream").unwrap();
    assert_eq!(upstream["annotations"]["buildId"], v["cause"]["build_id"]);
    for d in deps {
        let uri = d["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("git+file:///") || !uri.starts_with("git+"),
            "{uri}"
        );
    }
    // started_at is when the first job started: after the request, by the time the job took
    // to be started.
    let show = |path: &str| -> serde_json::Value {
        let shown: serde_json::Value = serde_json::from_str(&ok(seakeeper()
            .args(["ledger", "show", "--json"])
            .arg(world.join("ledger"))
            .arg(path)))
        .unwrap();
        yaml_serde_value(shown["content"].as_str().unwrap())
    };
    let path_of = |kind: &str| {
        v["ledger_commits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record"] == kind)
            .and_then(|r| r["path"].as_str())
            .unwrap_or_else(|| panic!("no {kind} in {trace}"))
            .to_owned()
    };
    let requested = show(&path_of("build-request"))["requested_at"].clone();
    let started = show(&path_of("build-result"))["started_at"].clone();
    let (requested, started): (jiff::Timestamp, jiff::Timestamp) = (
        requested.as_str().unwrap().parse().unwrap(),
        started.as_str().unwrap().parse().unwrap(),
    );
    assert!(started > requested, "{started} after {requested}");
    // Lifting the freeze with a revert releases the promotion on the next pass.
    let freeze = git(
        &world.join("config"),
        &["log", "--format=%H", "-1", "--", "freezes"],
    );
    git(&world.join("config"), &["revert", "--no-edit", &freeze]);
    let settings = world.join("settings.yaml");
    let out = ok(seakeeper()
        .args(["reconcile", "--once", "--settings"])
        .arg(&settings));
    assert!(out.contains("now runs in production"), "{out}");
    assert!(out.contains("end-of-year was lifted"), "{out}");
}

#[test]
fn schedules_run_the_periodic_pipeline_once_per_tick() {
    let site = Site::new("", "");
    site.write_config(
        "schedules.yaml",
        "schedules:\n  - {name: every-minute, cron: \"* * * * *\", project: acme/api}\n",
    );
    site.write_config(
        "projects/acme/api.yaml",
        "pipelines: [check, post-merge, periodic]\nimages: [api]\n",
    );
    site.commit_config("Run api every minute");
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(
        w.join(".pipeline/config.yaml"),
        format!(
            "jobs:\n  nightly:\n    image: {IMAGE}\n    commands: [\"true\"]\n    timeout: 1m\npipelines:\n  periodic: [nightly]\n"
        ),
    )
    .unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "Add a periodic job"]);
    site.merge("acme/api");
    let out = site.reconcile();
    assert!(
        out.contains("[periodic] acme/api refs/heads/main: build periodic-"),
        "{out}"
    );
    assert!(out.contains("seakeeper periodic: SUCCESS"), "{out}");
    // The same tick does not fire twice (unless the minute turned in between).
    let again = site.reconcile();
    let fired = again.matches("[periodic]").count();
    assert!(fired <= 1, "{again}");
    site.verify_ledger();
}

#[test]
fn with_the_kubernetes_executor_a_restart_adopts_the_running_job() {
    let api = support::kube::KubeApi::start();
    let site = Site::new("", "");
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &s.replace(
            "executor:\n  kind: local",
            &format!(
                "executor:\n  kind: kubernetes\n  seakeeper_image: {}",
                support::SEAKEEPER_IMAGE
            ),
        ),
    );
    site.commit_config("Run jobs on Kubernetes");
    let kubeconfig = api.kubeconfig(site.w.dir.path());
    let reconcile = || {
        let mut c = site.reconcile_cmd();
        c.env("KUBECONFIG", &kubeconfig);
        c
    };
    ok(&mut reconcile());
    let job = format!(
        "jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"make test\"]\n    timeout: 1m\n    env: {{STANDIN_DURATION_MS: \"1500\"}}\npipelines:\n  check: [unit]\n"
    );
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000008",
        &[(".pipeline/config.yaml", &job)],
        false,
    );
    // seakeeper dies right after creating the Job.
    let out = output(reconcile().env("SEAKEEPER_TEST_CRASH_AT", "after-start"));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(libc::SIGKILL),
        "{}",
        stderr(&out)
    );
    assert_eq!(api.jobs().len(), 1);
    // The next start adopts the Job that kept running: it is not created again.
    let out = ok(&mut reconcile());
    assert!(out.contains("reported to Gerrit"), "{out}");
    assert_eq!(api.jobs().len(), 1, "the job ran once");
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(reviews[0].contains("Verified+1"), "{}", reviews[0]);
    assert!(reviews[0].contains("- unit: SUCCESS"), "{}", reviews[0]);
    site.verify_ledger();
}

/// Issue 14, item 10: a post-merge build names the Gerrit change whose submission made the
/// commit it builds (fast-forward or Gerrit's merge commit), in its request, its trace and the
/// change's ledger index; a direct push names none.
#[test]
fn issue_14_post_merge_builds_name_the_change_that_merged_them() {
    let site = Site::new("", "");
    site.reconcile();
    let ledger = site.ledger();
    let trace_of = |id: &str| ok(seakeeper().args(["trace", id, "--ledger"]).arg(&ledger));
    let post_merge_id = |out: &str| {
        build_ids(out)
            .into_iter()
            .find(|i| i.starts_with("post-merge"))
            .unwrap_or_else(|| panic!("no post-merge build: {out}"))
    };
    // Two changes on the same base: the first fast-forwards, the second is merged by a merge
    // commit Gerrit makes.
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000a01",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "one\n"),
        ],
        false,
    );
    site.reconcile();
    for label in [("Code-Review", 2), ("Verified", 1)] {
        site.g.review("alice", 1, &[label], "ok").unwrap();
    }
    site.g.submit("alice", 1).unwrap();
    let out = site.reconcile();
    let first = post_merge_id(&out);
    let trace = trace_of(&first);
    assert!(
        trace.contains("cause     merge of change 1 patchset 1"),
        "{trace}"
    );

    let w = site.clone("acme/api");
    git(&w, &["reset", "-q", "--hard", "HEAD~1"]);
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000a02",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("other.txt", "two\n"),
        ],
        false,
    );
    site.reconcile();
    for label in [("Code-Review", 2), ("Verified", 1)] {
        site.g.review("alice", 2, &[label], "ok").unwrap();
    }
    site.g.submit("alice", 2).unwrap();
    let out = site.reconcile();
    let second = post_merge_id(&out);
    assert_ne!(first, second);
    let trace = trace_of(&second);
    assert!(
        trace.contains("cause     merge of change 2 patchset 1"),
        "{trace}"
    );
    // The change's entries in the ledger lead to its post-merge build too.
    let tree = git(
        &ledger,
        &[
            "ls-tree",
            "-r",
            "--name-only",
            "HEAD",
            "changes/acme/api/02/2/1",
        ],
    );
    assert!(tree.contains(&second), "{tree}");

    // A direct push names no change.
    let w = site.clone("acme/api");
    git(
        &w,
        &[
            "pull",
            "-q",
            "--rebase",
            &site.g.push_url("acme/api", "alice"),
            "main",
        ],
    );
    std::fs::write(w.join("msg.txt"), "pushed\n").unwrap();
    git(&w, &["commit", "-qam", "Pushed straight"]);
    site.merge("acme/api");
    let out = site.reconcile();
    let third = post_merge_id(&out);
    assert!(!trace_of(&third).contains("cause"), "{}", trace_of(&third));
    site.verify_ledger();
}

/// A record file's text (YAML) as JSON.
fn yaml_serde_value(text: &str) -> serde_json::Value {
    yaml_serde::from_str(text).unwrap()
}

/// Issue 15: with Gerrit as a local directory (the embedded default) and no event stream, a
/// push is seen at once through a watch of the repository, not at the next full pass.
#[test]
fn issue_15_a_push_to_a_local_gerrit_is_seen_without_waiting_for_a_full_pass() {
    let site = Site::new("", "");
    let yaml = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &yaml.replace(
            &format!("url: {}\n", site.g.url),
            &format!("url: file://{}\n", site.g.root.display()),
        ),
    );
    site.commit_config("Gerrit is a local directory");
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(w.join(".pipeline/config.yaml"), pipeline("true")).unwrap();
    std::fs::write(w.join("msg.txt"), "one\n").unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "One"]);
    site.merge("acme/api");
    // Full passes once a minute: only the watch can see the next push within the test.
    let daemon = Daemon(
        seakeeper()
            .args(["serve", "--full-every", "60", "--init-ledger", "--settings"])
            .arg(&site.settings)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let post_merge_builds = || {
        let log = if site.ledger().exists() {
            site.ledger_log()
        } else {
            String::new()
        };
        log.lines()
            .filter(|l| l.trim().starts_with("Build-Id: post-merge-"))
            .count()
    };
    // The first full pass learns the branch; then a push moves it.
    wait_for("the daemon's ledger", Duration::from_secs(30), || {
        site.ledger().exists()
    });
    std::thread::sleep(Duration::from_secs(2));
    let before = post_merge_builds();
    std::fs::write(w.join("msg.txt"), "two\n").unwrap();
    git(&w, &["commit", "-q", "-am", "Two"]);
    let pushed = std::time::Instant::now();
    site.merge("acme/api");
    while post_merge_builds() == before && pushed.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = pushed.elapsed();
    assert!(
        seen < Duration::from_secs(20),
        "the push was not seen before the next full pass; the daemon said:\n{}",
        stderr(&daemon.term())
    );
    eprintln!("a push to the local Gerrit was requested as a build after {seen:?}");
}

/// The build result of `build_id` at the ledger's tip, as YAML.
fn build_result(site: &Site, build_id: &str) -> serde_json::Value {
    let files = git(&site.ledger(), &["ls-tree", "-r", "--name-only", "main"]);
    let path = files
        .lines()
        .find(|p| p.contains(build_id) && p.ends_with("/result.yaml"))
        .unwrap_or_else(|| panic!("no result of {build_id} in {files}"));
    yaml_serde_value(&git(&site.ledger(), &["show", &format!("main:{path}")]))
}

/// Issue 18: stages. `build -> test -> publish` in post-merge: `test` gets build's outputs as
/// inputs and runs in the image build declared, by the very digest the build publishes; a
/// failing `test` skips `publish`, and the result records the DAG in order.
#[test]
fn issue_18_a_dag_runs_in_order_tests_the_published_image_and_skips_after_a_failure() {
    let site = Site::new("", "");
    // The base image, pinned by digest, in the first environment's registry (a layout).
    let base_dir = site.w.path("base");
    std::fs::create_dir_all(base_dir.join("etc")).unwrap();
    std::fs::write(base_dir.join("etc/os-release"), "ID=base\n").unwrap();
    let base = ok(seakeeper()
        .args(["image", "build", "--from-dir"])
        .arg(&base_dir)
        .arg("--layout")
        .arg(site.w.path("reg/testing"))
        .args(["--tag", "base"]));
    let base = base.trim();
    site.reconcile();
    let pipeline = format!(
        "jobs:\n  publish:\n    image: {IMAGE}\n    needs: [test]\n    commands: [\"echo publishing $(cat .seakeeper/inputs/test/report.txt)\"]\n    timeout: 1m\n  test:\n    image: {{from: build}}\n    needs: [build]\n    commands: [\"test \\\"$(cat .seakeeper/inputs/build/dist/msg.txt)\\\" = hello\", \"echo passed > report.txt\"]\n    timeout: 1m\n    outputs:\n      files: [report.txt]\n  build:\n    image: {IMAGE}\n    commands: [mkdir -p dist, cp msg.txt dist/]\n    timeout: 1m\n    outputs:\n      files: [\"dist/**\"]\n      images:\n        - name: api\n          base: registry.example.org/base@{base}\n          files: [\"dist/**\"]\npipelines:\n  post-merge: [publish, test, build]\n"
    );
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(w.join(".pipeline/config.yaml"), &pipeline).unwrap();
    std::fs::write(w.join("msg.txt"), "hello\n").unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "Build, test, publish"]);
    site.merge("acme/api");
    let out = site.reconcile();
    let id = build_ids(&out).last().cloned().expect("a build");
    assert!(
        out.contains("jobs: build, test, publish"),
        "DAG order: {out}"
    );
    let digest = out
        .lines()
        .find(|l| l.contains("image api sha256:"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .unwrap_or_else(|| panic!("an image was published: {out}"))
        .to_owned();
    let result = build_result(&site, &id);
    assert_eq!(result["status"], "success", "{result:#}");
    let jobs = result["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["build", "test", "publish"]);
    assert_eq!(jobs[1]["needs"], serde_json::json!(["build"]));
    assert_eq!(jobs[2]["needs"], serde_json::json!(["test"]));
    assert!(jobs[0].get("needs").is_none(), "{result:#}");
    // test ran in the very digest the build published.
    assert_eq!(jobs[1]["image"], format!("api@{digest}"), "{result:#}");
    assert!(jobs[0].get("image").is_none(), "{result:#}");
    // publish got test's output through its inputs (its log, stored by digest, says so).
    let log_digest = jobs[2]["log_digest"].as_str().unwrap();
    let log = std::fs::read_to_string(
        site.state()
            .join("store/sha256")
            .join(log_digest.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert!(log.contains(" publishing passed"), "{log}");

    // A failing test skips publish.
    std::fs::write(w.join("msg.txt"), "bye\n").unwrap();
    git(&w, &["commit", "-q", "-am", "Break the test"]);
    site.merge("acme/api");
    let out = site.reconcile();
    let id = build_ids(&out).last().cloned().expect("a build");
    let result = build_result(&site, &id);
    assert_eq!(result["status"], "failure", "{result:#}");
    let status: Vec<(&str, &str)> = result["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        status,
        [
            ("build", "success"),
            ("test", "failure"),
            ("publish", "skipped")
        ]
    );
    assert!(
        !out.contains("image api sha256:"),
        "a failed build publishes nothing: {out}"
    );

    // A cycle is a config error, at its line.
    let cyclic = pipeline.replace(
        "  build:\n    image:",
        "  build:\n    needs: [publish]\n    image:",
    );
    std::fs::write(w.join(".pipeline/config.yaml"), &cyclic).unwrap();
    git(&w, &["commit", "-q", "-am", "A cycle"]);
    site.merge("acme/api");
    let out = site.reconcile();
    assert!(
        out.contains(
            ".pipeline/config.yaml:15:5: jobs.build.needs: the `needs` of pipeline `post-merge` \
             form a cycle: build -> publish -> test -> build"
        ),
        "{out}"
    );
    site.verify_ledger();
}

/// Issue 18 on Kubernetes: the Job of `test` fetches build's outputs from the store and runs
/// in the image build declared, pushed by digest where the build publishes it.
#[test]
fn issue_18_with_the_kubernetes_executor_a_stage_gets_its_inputs_and_built_image() {
    let api = support::kube::KubeApi::start();
    let site = Site::new("", "");
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &s.replace(
            "executor:\n  kind: local",
            &format!(
                "executor:\n  kind: kubernetes\n  seakeeper_image: {}",
                support::SEAKEEPER_IMAGE
            ),
        ),
    );
    site.commit_config("Run jobs on Kubernetes");
    let kubeconfig = api.kubeconfig(site.w.dir.path());
    let reconcile = || {
        let mut c = site.reconcile_cmd();
        c.env("KUBECONFIG", &kubeconfig);
        c
    };
    ok(&mut reconcile());
    let base_dir = site.w.path("base");
    std::fs::create_dir_all(base_dir.join("etc")).unwrap();
    std::fs::write(base_dir.join("etc/os-release"), "ID=base\n").unwrap();
    let base = ok(seakeeper()
        .args(["image", "build", "--from-dir"])
        .arg(&base_dir)
        .arg("--layout")
        .arg(site.w.path("reg/testing"))
        .args(["--tag", "base"]));
    // What build's collector stored (the stand-in runs no commands).
    let hex = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    let store = site.state().join("store/sha256");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(store.join(hex), "hello\n").unwrap();
    let outputs = format!(
        "[{{\\\"path\\\":\\\"dist/msg.txt\\\",\\\"digest\\\":\\\"sha256:{hex}\\\",\\\"size\\\":6,\\\"executable\\\":false}}]"
    );
    let pipeline = format!(
        "jobs:\n  build:\n    image: {IMAGE}\n    commands: [make]\n    timeout: 1m\n    env: {{STANDIN_OUTPUTS: \"{outputs}\"}}\n    outputs:\n      files: [\"dist/**\"]\n      images:\n        - name: api\n          base: registry.example.org/base@{}\n          files: [\"dist/**\"]\n  test:\n    image: {{from: build}}\n    needs: [build]\n    commands: [make test]\n    timeout: 1m\npipelines:\n  post-merge: [build, test]\n",
        base.trim()
    );
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(w.join(".pipeline/config.yaml"), &pipeline).unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "Build and test"]);
    site.merge("acme/api");
    let out = ok(&mut reconcile());
    let digest = out
        .lines()
        .find(|l| l.contains("image api sha256:"))
        .and_then(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .unwrap_or_else(|| panic!("an image was published: {out}"))
        .to_owned();
    let jobs = api.jobs();
    let test = jobs
        .iter()
        .find(|j| {
            j["metadata"]["annotations"]
                .to_string()
                .contains("\"test\"")
        })
        .unwrap_or_else(|| panic!("a Job for test: {jobs:#?}"));
    let pod = &test["spec"]["template"]["spec"];
    let container = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "job")
        .unwrap_or_else(|| panic!("{pod:#}"));
    assert_eq!(container["image"], format!("api@{digest}"), "{pod:#}");
    let fetch = &pod["initContainers"][0];
    // The fetch step's plan (`seakeeper job fetch`) names the input by job, path and digest.
    let plan: serde_json::Value = fetch["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "SEAKEEPER_FETCH")
        .and_then(|e| serde_json::from_str(e["value"].as_str()?).ok())
        .unwrap_or_else(|| panic!("{fetch:#}"));
    let input = &plan["inputs"][0];
    assert_eq!(input["job"], "build", "{plan:#}");
    assert_eq!(input["files"][0]["path"], "dist/msg.txt", "{plan:#}");
    assert!(
        input["files"][0]["digest"].as_str().unwrap().contains(hex),
        "{plan:#}"
    );
    assert!(
        fetch["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "store" && m["readOnly"] == true),
        "{fetch:#}"
    );
    site.verify_ledger();
}
