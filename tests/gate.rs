//! The gate end to end (issue 16): approved changes are tested on the speculative state of
//! the queue, with real git and the local executor, against the Gerrit stand-in; the commit
//! that was tested is the commit that lands (pushed as a fast-forward, or submitted and
//! checked), Gerrit closes the change, and the ledger records the landing.

mod support;

use support::site::{CI_BOT, Daemon, IMAGE, Site, build_ids, git, wait_for};
use support::{ok, output, seakeeper, stderr};

/// `unit` fails when the tree holds a file named `broken`; it runs in the pipelines the
/// project takes part in of check and gate.
fn gate_pipeline(project_file: &str) -> String {
    let mut t = format!(
        "jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"test ! -e broken\"]\n    timeout: 1m\npipelines:\n"
    );
    let pipelines = project_file.lines().next().unwrap_or_default();
    for p in ["check", "gate"] {
        if pipelines.contains(p) {
            t.push_str(&format!("  {p}: [unit]\n"));
        }
    }
    t
}

/// A gate site: acme/api takes part in check, gate and post-merge, with a pipeline file on
/// main already.
fn gate_site(project_file: &str) -> Site {
    let site = Site::new("", "");
    site.write_config("projects/acme/api.yaml", project_file);
    site.commit_config("The gate for acme/api");
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(w.join(".pipeline/config.yaml"), gate_pipeline(project_file)).unwrap();
    std::fs::write(w.join("README"), "acme api\n").unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "The pipeline"]);
    site.merge("acme/api");
    site.reconcile(); // the baseline
    site
}

/// Uploads a change made on main's tip (not on the clone's last change).
fn upload_on_main(site: &Site, change_id: &str, files: &[(&str, &str)]) -> String {
    let w = site.clone("acme/api");
    git(&w, &["fetch", "-q", "origin", "main"]);
    git(&w, &["checkout", "-q", "--detach", "FETCH_HEAD"]);
    site.upload("acme/api", change_id, files, false)
}

fn tip(site: &Site) -> String {
    git(&site.g.repo("acme/api"), &["rev-parse", "refs/heads/main"])
}

fn landed_as(review: &str) -> Option<String> {
    review
        .lines()
        .find_map(|l| l.strip_prefix("Landed as "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_owned)
}

/// The ledger's landing records, as YAML texts.
fn landings(site: &Site) -> Vec<String> {
    let files = git(
        &site.ledger(),
        &["ls-tree", "-r", "--name-only", "refs/heads/main"],
    );
    files
        .lines()
        .filter(|f| f.ends_with("/landing.yaml"))
        .map(|f| git(&site.ledger(), &["show", &format!("refs/heads/main:{f}")]))
        .collect()
}

fn field<'a>(yaml: &'a str, key: &str) -> &'a str {
    yaml.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in {yaml}"))
        .trim()
}

#[test]
fn a_failing_change_leaves_and_the_one_behind_it_is_tested_again_and_lands_as_tested() {
    let site = gate_site("pipelines: [check, gate, post-merge]\n");
    let before = tip(&site);
    upload_on_main(
        &site,
        "I1000000000000000000000000000000000000001",
        &[("broken", "x\n")],
    );
    upload_on_main(
        &site,
        "I1000000000000000000000000000000000000002",
        &[("two.txt", "2\n")],
    );
    // A change that is only +1, and one that is a work in progress: neither enters.
    upload_on_main(
        &site,
        "I1000000000000000000000000000000000000003",
        &[("three.txt", "3\n")],
    );
    upload_on_main(
        &site,
        "I1000000000000000000000000000000000000004",
        &[("four.txt", "4\n")],
    );
    site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    site.g.review("bob", 2, &[("Code-Review", 2)], "").unwrap();
    site.g.review("bob", 3, &[("Code-Review", 1)], "").unwrap();
    site.g.set_wip("alice", 4, true).unwrap();
    site.g.review("bob", 4, &[("Code-Review", 2)], "").unwrap();
    let out = site.reconcile();

    // Change 1 failed at the head of the queue: told with its failing job, and it left.
    let one = site.reviews(1);
    let failed = one
        .iter()
        .find(|r| r.contains("seakeeper gate: FAILURE"))
        .unwrap_or_else(|| panic!("{one:#?}\n{out}"));
    assert_eq!(site.g.change(1).vote("Verified", CI_BOT), -1);
    assert!(failed.contains("- unit: FAILURE"), "{failed}");
    assert!(failed.contains("Gate: failed 1/"), "{failed}");
    assert!(
        one.iter()
            .any(|r| r.contains("entered the gate queue project:acme/api at position 1 of 2")),
        "{one:#?}"
    );
    assert_eq!(site.g.change(1).status, "NEW");

    // Change 2 was tested with change 1 ahead of it (and failed: `broken` was in that state),
    // then again without it, and landed as exactly the commit that was tested.
    let two = site.reviews(2);
    assert!(
        two.iter().any(|r| r.contains("at position 2 of 2")),
        "{two:#?}"
    );
    let success = two
        .iter()
        .find(|r| r.contains("seakeeper gate: SUCCESS"))
        .unwrap_or_else(|| panic!("{two:#?}\n{out}"));
    let landed = landed_as(success).expect("a landed commit");
    assert_eq!(tip(&site), landed, "main is the tested commit");
    assert_eq!(
        site.g.change(2).status,
        "MERGED",
        "Gerrit closed it: its commit is on main"
    );
    // The tested commit holds change 2 and not change 1, and descends from the old tip.
    let repo = site.g.repo("acme/api");
    assert_eq!(git(&repo, &["show", &format!("{landed}:two.txt")]), "2");
    assert!(
        git(&repo, &["ls-tree", "--name-only", &landed])
            .lines()
            .all(|f| f != "broken")
    );
    git(&repo, &["merge-base", "--is-ancestor", &before, &landed]);
    // Verified at the label's top was given before it landed (Gerrit takes no votes on a
    // merged change); the landing is said in words, with the build id.
    assert_eq!(site.g.change(2).vote("Verified", CI_BOT), 1);
    assert!(!success.contains("Verified"), "{success}");
    let ids = build_ids(success);
    assert_eq!(ids.len(), 1);

    // The ledger: the build's request names that very commit, and the landing records both.
    let landings = landings(&site);
    assert_eq!(landings.len(), 1, "{landings:?}");
    let l = &landings[0];
    assert_eq!(field(l, "commit"), landed);
    assert_eq!(field(l, "old_tip"), before);
    assert_eq!(field(l, "build_id"), ids[0]);
    assert_eq!(field(l, "method"), "push");
    assert!(l.contains("Code-Review+2 by bob"), "{l}");
    let files = git(
        &site.ledger(),
        &["ls-tree", "-r", "--name-only", "refs/heads/main"],
    );
    let request = files
        .lines()
        .find(|f| f.contains(&ids[0]) && f.ends_with("/request.yaml"))
        .unwrap();
    let request = git(
        &site.ledger(),
        &["show", &format!("refs/heads/main:{request}")],
    );
    assert_eq!(field(&request, "source_commit"), landed);
    assert!(
        site.ledger_log()
            .contains(&format!("Landed-Commit: {landed}"))
    );
    site.verify_ledger();

    // The others never entered; nothing waits.
    assert!(
        site.reviews(3).iter().all(|r| !r.contains("gate")),
        "{:?}",
        site.reviews(3)
    );
    assert!(
        site.reviews(4).iter().all(|r| !r.contains("gate")),
        "{:?}",
        site.reviews(4)
    );
    assert!(site.g.change(3).status == "NEW" && site.g.change(4).status == "NEW");

    // Running again changes nothing: nothing lands twice, nobody is told twice.
    let reviews = (site.reviews(1).len(), site.reviews(2).len());
    site.reconcile();
    assert_eq!((site.reviews(1).len(), site.reviews(2).len()), reviews);
    assert_eq!(tip(&site), landed);

    // `recheck` on the failed change enters it again (it still fails, alone now).
    site.g.review("alice", 1, &[], "recheck").unwrap();
    let out = site.reconcile();
    let one = site.reviews(1);
    assert_eq!(
        one.iter()
            .filter(|r| r.contains("seakeeper gate: FAILURE"))
            .count(),
        2,
        "{one:#?}\n{out}"
    );
    assert_eq!(tip(&site), landed);
}

#[test]
fn a_conflict_is_refused_with_its_paths_and_submit_lands_only_the_tested_commit() {
    let site = gate_site("pipelines: [check, gate]\ngate:\n  land: submit\n");
    upload_on_main(
        &site,
        "I2000000000000000000000000000000000000001",
        &[("README", "one\n")],
    );
    upload_on_main(
        &site,
        "I2000000000000000000000000000000000000002",
        &[("README", "two\n")],
    );
    site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    site.g.review("bob", 2, &[("Code-Review", 2)], "").unwrap();
    let out = output(&mut site.reconcile_cmd());
    let said = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    // Change 1 is on main's tip: submitted, and the tip is its own commit.
    assert_eq!(site.g.change(1).status, "MERGED", "{said}");
    let l = &landings(&site)[0];
    assert_eq!(field(l, "method"), "submit");
    assert_eq!(field(l, "commit"), tip(&site));
    // Change 2 conflicts with change 1 ahead of it: refused with the path, nothing merged.
    let two = site.reviews(2);
    let refused = two
        .iter()
        .find(|r| r.contains("cannot be tested"))
        .unwrap_or_else(|| panic!("{two:#?}"));
    assert!(refused.contains("conflicts in README"), "{refused}");
    assert!(refused.contains("Gate: refused 1/"), "{refused}");
    assert_eq!(site.g.change(2).status, "NEW");
    site.verify_ledger();
    // And `status` shows nothing left in the queue.
    let status = ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings));
    assert!(!status.contains(" testing "), "{status}");
}

#[test]
fn kill_9_at_any_step_of_the_gate_lands_once_what_was_tested() {
    for point in [
        "after-request",
        "after-start",
        "after-result",
        "after-land",
        "before-review",
        "after-review",
    ] {
        let site = gate_site("pipelines: [gate]\n");
        upload_on_main(
            &site,
            "I3000000000000000000000000000000000000001",
            &[("one.txt", "1\n")],
        );
        // main moves on after the change was made: it lands as a merge seakeeper makes.
        let w = site.clone("acme/api");
        git(&w, &["fetch", "-q", "origin", "main"]);
        git(&w, &["checkout", "-q", "--detach", "FETCH_HEAD"]);
        std::fs::write(w.join("other.txt"), "o\n").unwrap();
        git(&w, &["add", "-A"]);
        git(&w, &["commit", "-q", "-m", "Another change"]);
        site.merge("acme/api");
        let before = tip(&site);
        site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
        let out = output(
            site.reconcile_cmd()
                .env("SEAKEEPER_TEST_CRASH_AT", point)
                .env("SEAKEEPER_LOG", "warn"),
        );
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL),
            "{point}: {}",
            stderr(&out)
        );
        let again = site.reconcile();
        let again = format!("{again}{}", site.reconcile());
        // Landed once, as the tested merge of the change onto the tip it was tested on.
        let landings = landings(&site);
        assert_eq!(
            landings.len(),
            1,
            "{point}: {landings:?}\n{again}\n{:#?}",
            site.reviews(1)
        );
        let landed = tip(&site);
        assert_eq!(field(&landings[0], "commit"), landed, "{point}");
        assert_eq!(field(&landings[0], "old_tip"), before, "{point}");
        let repo = site.g.repo("acme/api");
        assert_eq!(
            git(
                &repo,
                &["rev-parse", &format!("{landed}^1"), &format!("{landed}^2")]
            ),
            format!("{before}\n{}", site.g.change(1).current().revision),
            "{point}"
        );
        assert_eq!(site.g.change(1).status, "MERGED", "{point}");
        // One gate build requested and finished; its request names the landed commit.
        let files = git(
            &site.ledger(),
            &["ls-tree", "-r", "--name-only", "refs/heads/main"],
        );
        let requests: Vec<&str> = files
            .lines()
            .filter(|f| f.contains("/gate-") && f.ends_with("/request.yaml"))
            .collect();
        assert_eq!(requests.len(), 1, "{point}: {files}");
        let request = git(
            &site.ledger(),
            &["show", &format!("refs/heads/main:{}", requests[0])],
        );
        assert_eq!(field(&request, "source_commit"), landed, "{point}");
        // Told once that it landed.
        let reviews = site.reviews(1);
        assert_eq!(
            reviews.iter().filter(|r| r.contains("Landed as ")).count(),
            1,
            "{point}: {reviews:#?}"
        );
        assert_eq!(
            reviews
                .iter()
                .filter(|r| r.contains("entered the gate queue"))
                .count(),
            1,
            "{point}: {reviews:#?}"
        );
        site.verify_ledger();
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
fn a_change_that_breaks_another_projects_tests_in_its_queue_does_not_land() {
    // AllTests: acme/lib and acme/app share the queue `core`; lib's gate job requires app and
    // runs app's tests against lib's change.
    let site = Site::new("", "");
    site.g.create_project("acme/lib");
    site.g.create_project("acme/app");
    site.write_config("projects/acme/lib.yaml", "queue: core\npipelines: [gate]\n");
    site.write_config("projects/acme/app.yaml", "queue: core\npipelines: [gate]\n");
    site.commit_config("lib and app share a gate queue");
    let app = site.clone("acme/app");
    std::fs::write(app.join("test.sh"), "grep -qx stable api.txt\n").unwrap();
    std::fs::create_dir_all(app.join(".pipeline")).unwrap();
    std::fs::write(
        app.join(".pipeline/config.yaml"),
        format!("jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"test -e test.sh\"]\npipelines:\n  gate: [unit]\n"),
    )
    .unwrap();
    git(&app, &["add", "-A"]);
    git(&app, &["commit", "-q", "-m", "app"]);
    site.merge("acme/app");
    let lib = site.clone("acme/lib");
    std::fs::write(lib.join("api.txt"), "stable\n").unwrap();
    std::fs::create_dir_all(lib.join(".pipeline")).unwrap();
    std::fs::write(
        lib.join(".pipeline/config.yaml"),
        format!(
            "jobs:\n  app-tests:\n    image: {IMAGE}\n    requires: [acme/app]\n    commands: [\"sh $SEAKEEPER_REQUIRED_ACME_APP/test.sh\"]\npipelines:\n  gate: [app-tests]\n"
        ),
    )
    .unwrap();
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "lib"]);
    site.merge("acme/lib");
    site.reconcile();
    let app_tip = git(&site.g.repo("acme/app"), &["rev-parse", "refs/heads/main"]);
    let lib_tip = git(&site.g.repo("acme/lib"), &["rev-parse", "refs/heads/main"]);
    // Change 1 breaks app's tests; change 2 does not.
    let upload = |cid: &str, file: &str, text: &str| {
        git(&lib, &["fetch", "-q", "origin", "main"]);
        git(&lib, &["checkout", "-q", "--detach", "FETCH_HEAD"]);
        site.upload("acme/lib", cid, &[(file, text)], false)
    };
    upload(
        "I4000000000000000000000000000000000000001",
        "api.txt",
        "changed\n",
    );
    upload(
        "I4000000000000000000000000000000000000002",
        "more.txt",
        "more\n",
    );
    site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    site.g.review("bob", 2, &[("Code-Review", 2)], "").unwrap();
    let out = site.reconcile();
    let one = site.reviews(1);
    assert!(
        one.iter()
            .any(|r| r.contains("seakeeper gate: FAILURE") && r.contains("- app-tests: FAILURE")),
        "{one:#?}\n{out}"
    );
    assert_eq!(
        site.g.change(1).status,
        "NEW",
        "a change that breaks app never lands"
    );
    assert_eq!(
        site.g.change(2).status,
        "MERGED",
        "{:#?}\n{out}",
        site.reviews(2)
    );
    let new_lib = git(&site.g.repo("acme/lib"), &["rev-parse", "refs/heads/main"]);
    assert_ne!(new_lib, lib_tip);
    assert_eq!(
        git(
            &site.g.repo("acme/lib"),
            &["show", "refs/heads/main:api.txt"]
        ),
        "stable"
    );
    assert_eq!(
        git(
            &site.g.repo("acme/lib"),
            &["show", "refs/heads/main:more.txt"]
        ),
        "more"
    );
    // The landed build's request says which state of app its job saw.
    let l = &landings(&site)[0];
    let files = git(
        &site.ledger(),
        &["ls-tree", "-r", "--name-only", "refs/heads/main"],
    );
    let request = files
        .lines()
        .find(|f| f.contains(field(l, "build_id")) && f.ends_with("/request.yaml"))
        .unwrap();
    let request = git(
        &site.ledger(),
        &["show", &format!("refs/heads/main:{request}")],
    );
    assert!(
        request.contains("project: acme/app") && request.contains(&format!("commit: {app_tip}")),
        "{request}"
    );
    site.verify_ledger();
}

#[test]
fn changes_that_pass_land_one_after_the_other_each_on_the_one_before() {
    let site = gate_site("pipelines: [gate]\n");
    let before = tip(&site);
    upload_on_main(
        &site,
        "I5000000000000000000000000000000000000001",
        &[("a.txt", "a\n")],
    );
    upload_on_main(
        &site,
        "I5000000000000000000000000000000000000002",
        &[("b.txt", "b\n")],
    );
    upload_on_main(
        &site,
        "I5000000000000000000000000000000000000003",
        &[("c.txt", "c\n")],
    );
    for n in 1..=3 {
        site.g.review("bob", n, &[("Code-Review", 2)], "").unwrap();
    }
    let out = site.reconcile();
    for n in 1..=3 {
        // No check pipeline here: the gate's own Verified vote, given before it landed.
        assert_eq!(site.g.change(n).vote("Verified", CI_BOT), 1, "change {n}");
        assert!(
            site.reviews(n)
                .iter()
                .any(|r| r.contains("seakeeper gate: passed as ")),
            "{:#?}",
            site.reviews(n)
        );
        assert_eq!(
            site.g.change(n).status,
            "MERGED",
            "change {n}: {:#?}\n{out}",
            site.reviews(n)
        );
    }
    // Each landed on the one before: the landings chain from the old tip to main's tip.
    let mut landings: Vec<(String, String)> = landings(&site)
        .iter()
        .map(|l| {
            (
                field(l, "old_tip").to_owned(),
                field(l, "commit").to_owned(),
            )
        })
        .collect();
    assert_eq!(landings.len(), 3, "{landings:?}");
    let mut at = before;
    while let Some(i) = landings.iter().position(|(old, _)| *old == at) {
        at = landings.remove(i).1;
    }
    assert!(
        landings.is_empty(),
        "a landing not on the one before: {landings:?}"
    );
    assert_eq!(at, tip(&site));
    let repo = site.g.repo("acme/api");
    for f in ["a.txt", "b.txt", "c.txt"] {
        git(&repo, &["show", &format!("refs/heads/main:{f}")]);
    }
    site.verify_ledger();
}

#[test]
fn abandoning_or_a_new_patchset_while_in_the_gate_cancels_and_lands_nothing() {
    // The gate job sleeps: the change is still being tested when it is abandoned.
    let site = gate_site("pipelines: [gate]\n");
    let w = site.clone("acme/api");
    std::fs::write(
        w.join(".pipeline/config.yaml"),
        format!("jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"sleep 3\"]\n    timeout: 1m\npipelines:\n  gate: [unit]\n"),
    )
    .unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "A slow gate"]);
    site.merge("acme/api");
    site.reconcile();
    let before = tip(&site);
    upload_on_main(
        &site,
        "I6000000000000000000000000000000000000001",
        &[("a.txt", "a\n")],
    );
    upload_on_main(
        &site,
        "I6000000000000000000000000000000000000002",
        &[("b.txt", "b\n")],
    );
    let daemon = Daemon::start(&site);
    site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    site.g.review("bob", 2, &[("Code-Review", 2)], "").unwrap();
    let running = |n: u32| {
        let reviews = site.reviews(n);
        reviews.iter().any(|r| r.contains("entered the gate queue"))
    };
    wait_for(
        "both changes in the gate",
        std::time::Duration::from_secs(20),
        || running(1) && running(2),
    );
    // While both are tested: change 1 is abandoned, change 2 gets a new patchset.
    site.g.abandon("alice", 1).unwrap();
    upload_on_main(
        &site,
        "I6000000000000000000000000000000000000002",
        &[("b.txt", "b2\n")],
    );
    std::thread::sleep(std::time::Duration::from_secs(6));
    let out = daemon.term();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.matches("cancelled, reset").count() >= 2, "{said}");
    assert_eq!(tip(&site), before, "nothing landed: {said}");
    assert_eq!(site.g.change(1).status, "ABANDONED");
    assert_eq!(site.g.change(2).status, "NEW");
    assert!(landings(&site).is_empty());
    // The new patchset needs a new vote; with it, it lands.
    site.g.review("bob", 2, &[("Code-Review", 2)], "").unwrap();
    site.reconcile();
    assert_eq!(site.g.change(2).status, "MERGED", "{:#?}", site.reviews(2));
    assert_eq!(
        git(&site.g.repo("acme/api"), &["show", "refs/heads/main:b.txt"]),
        "b2"
    );
    site.verify_ledger();
}

#[test]
fn with_the_kubernetes_executor_the_tested_states_are_fetched_from_gerrit() {
    // Pods fetch their source from Gerrit: a state seakeeper merged is published there as
    // refs/seakeeper/speculative/<commit> for them, and lands as usual.
    let api = support::kube::KubeApi::start();
    let site = gate_site("pipelines: [gate]\n");
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
    upload_on_main(
        &site,
        "I7000000000000000000000000000000000000001",
        &[("a.txt", "a\n")],
    );
    upload_on_main(
        &site,
        "I7000000000000000000000000000000000000002",
        &[("b.txt", "b\n")],
    );
    site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    site.g.review("bob", 2, &[("Code-Review", 2)], "").unwrap();
    let out = ok(&mut reconcile());
    assert_eq!(site.g.change(1).status, "MERGED", "{out}");
    assert_eq!(site.g.change(2).status, "MERGED", "{out}");
    // Change 2 was tested on change 1's state merged with it: a commit only seakeeper made,
    // which the pod's fetch could only find on Gerrit.
    let landed = tip(&site);
    let repo = site.g.repo("acme/api");
    let published = git(
        &repo,
        &[
            "for-each-ref",
            "--format=%(objectname)",
            "refs/seakeeper/speculative/",
        ],
    );
    assert!(published.lines().any(|l| l == landed), "{published}\n{out}");
    let manifests = api.jobs();
    assert!(
        manifests.iter().any(|j| j.to_string().contains(&landed)),
        "a pod fetched the landed state"
    );
}
