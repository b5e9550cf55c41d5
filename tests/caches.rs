//! Issue 18: dependency caches, for real through `seakeeper job run` and bubblewrap: restored by
//! key on the second run, kept apart by trust, refused when declared unsafely.

mod support;

use std::path::{Path, PathBuf};

fn bwrap_available() -> bool {
    let found = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "bubblewrap must be installed in CI (scripts/install-deps)"
    );
    found
}

const IMAGE: &str = "registry.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn project(dir: &Path, caches: &str) -> PathBuf {
    let repo = dir.join("shop");
    std::fs::create_dir_all(repo.join(".pipeline")).unwrap();
    support::git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join(".pipeline/config.yaml"),
        format!(
            r#"jobs:
  deps:
    image: {IMAGE}
    timeout: 60s
{caches}
    commands:
      - if [ -f vendor/installed ]; then echo "CACHE-$(echo HIT)"; else echo "CACHE-$(echo MISS)"; mkdir -p vendor/pkg && echo pkg > vendor/installed && echo code > vendor/pkg/lib.php; fi
      - cat vendor/installed
pipelines:
  check: [deps]
  post-merge: [deps]
"#
        ),
    )
    .unwrap();
    std::fs::write(
        repo.join("composer.lock"),
        "{\"packages\": [\"a/b 1.0\"]}\n",
    )
    .unwrap();
    support::git(&repo, &["add", "."]);
    support::git_with(
        &repo,
        &["commit", "-q", "-m", "Initial"],
        &[
            ("GIT_AUTHOR_NAME", "Dev"),
            ("GIT_AUTHOR_EMAIL", "dev@example.org"),
            ("GIT_COMMITTER_NAME", "Dev"),
            ("GIT_COMMITTER_EMAIL", "dev@example.org"),
        ],
    );
    repo
}

const CACHES: &str = "    caches:\n      - path: vendor\n        key: [composer.lock]\n";

fn run(repo: &Path, state: &Path, pipeline: &str) -> (bool, String) {
    // Each run its own build (ids from the clock could repeat within a second).
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = format!(
        "run-{}",
        RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let out = support::output(
        support::seakeeper()
            .args(["job", "run", "deps", "--host-tools", "--build-id", &id])
            .args(["--pipeline", pipeline, "--repo"])
            .arg(repo)
            .arg("--state")
            .arg(state),
    );
    (
        out.status.success(),
        format!("{}{}", support::stdout(&out), support::stderr(&out)),
    )
}

#[test]
fn issue_18_the_second_run_restores_the_cache_and_trust_levels_never_share() {
    if !bwrap_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = project(dir.path(), CACHES);
    let state = dir.path().join("state");
    let (ok, log) = run(&repo, &state, "check");
    assert!(ok, "{log}");
    assert!(
        log.contains("CACHE-MISS") && log.contains("cache vendor saved"),
        "{log}"
    );
    let (ok, log) = run(&repo, &state, "check");
    assert!(ok, "{log}");
    assert!(
        log.contains("CACHE-HIT") && log.contains("cache vendor restored"),
        "{log}"
    );
    assert!(log.contains("cache vendor unchanged"), "{log}");
    // The untrusted jobs' cache, same key files: invisible to a trusted job.
    let (ok, log) = run(&repo, &state, "post-merge");
    assert!(ok, "{log}");
    assert!(
        log.contains("CACHE-MISS"),
        "a trusted job read an untrusted cache:\n{log}"
    );
    let (ok, log) = run(&repo, &state, "post-merge");
    assert!(ok, "{log}");
    assert!(log.contains("CACHE-HIT"), "{log}");
    let archives = |trust: &str| {
        std::fs::read_dir(state.join("caches").join(trust))
            .unwrap()
            .count()
    };
    assert_eq!((archives("untrusted"), archives("trusted")), (1, 1));
    // Another lock file: another key, a miss.
    std::fs::write(
        repo.join("composer.lock"),
        "{\"packages\": [\"a/b 2.0\"]}\n",
    )
    .unwrap();
    support::git(&repo, &["commit", "-qam", "Update"]);
    let (ok, log) = run(&repo, &state, "check");
    assert!(ok, "{log}");
    assert!(log.contains("CACHE-MISS"), "{log}");
}

#[test]
fn issue_18_a_cache_outside_the_workspace_is_a_config_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = project(
        dir.path(),
        "    caches:\n      - path: ../../etc\n        key: [composer.lock]\n",
    );
    let (ok, log) = run(&repo, &dir.path().join("state"), "check");
    assert!(!ok);
    assert!(
        log.contains(".pipeline/config.yaml:6") && log.contains("caches[0].path"),
        "{log}"
    );
    assert!(log.contains("`..`"), "{log}");
}

/// On Kubernetes: the fetch container restores (caches read-only), the collector saves
/// (caches writable), the job's own container never mounts them, and the keys travel in a
/// volume only those two see.
#[test]
fn issue_18_kubernetes_jobs_restore_in_fetch_and_save_in_the_collector() {
    use seakeeper::executor::kubernetes::{KubeSettings, manifest};
    let spec = seakeeper::model::JobSpec {
        build_id: "b-1".parse().unwrap(),
        job: "deps".into(),
        pipeline: "check".into(),
        project: "shop".parse().unwrap(),
        change: None,
        source: "https://gerrit.example.org/shop".into(),
        commit: "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5".parse().unwrap(),
        image: IMAGE.into(),
        commands: vec!["composer install".into()],
        env: Default::default(),
        timeout_seconds: 600,
        cpu: None,
        memory: None,
        services: Default::default(),
        secrets: vec![],
        network: false,
        outputs: vec![],
        trust: seakeeper::model::Trust::Untrusted,
        required: vec![],
        caches: vec![seakeeper::model::CacheSpec {
            path: "vendor".into(),
            key: vec!["composer.lock".into()],
        }],
        inputs: vec![],
    };
    let job = serde_json::to_value(manifest(&spec, &KubeSettings::default())).unwrap();
    let pod = &job["spec"]["template"]["spec"];
    let mounts = |c: &serde_json::Value| -> Vec<(String, bool)> {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().to_owned(),
                    m["readOnly"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    let find = |list: &str, name: &str| -> serde_json::Value {
        pod[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let fetch = find("initContainers", "fetch");
    assert!(mounts(&fetch).contains(&("caches".into(), true)));
    assert!(mounts(&fetch).contains(&("cache-keys".into(), false)));
    assert_eq!(fetch["command"], serde_json::json!(["seakeeper"]));
    let args: Vec<&str> = fetch["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w == ["--caches-dir", "/caches"]),
        "{args:?}"
    );
    let collect = find("containers", "collect");
    assert!(mounts(&collect).contains(&("caches".into(), false)));
    assert!(mounts(&collect).contains(&("cache-keys".into(), true)));
    let main = find("containers", "job");
    assert!(
        mounts(&main)
            .iter()
            .all(|(n, _)| n != "caches" && n != "cache-keys")
    );
    let claim = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "caches")
        .unwrap();
    assert_eq!(
        claim["persistentVolumeClaim"]["claimName"],
        "seakeeper-caches"
    );
    // The namespace is the trust level's: its claim is that level's alone.
    assert_eq!(job["metadata"]["namespace"], "seakeeper-untrusted");
}

/// The pod's two steps, run here as the containers would: `job fetch` (the commit by git,
/// no shell; the caches restored and their keys written), then the collector saving after a
/// success only.
#[test]
fn issue_18_cache_restore_and_collect_work_as_the_pod_runs_them() {
    let dir = tempfile::tempdir().unwrap();
    let caches = dir.path().join("caches");
    std::fs::create_dir_all(&caches).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    support::git(&src, &["init", "-q", "-b", "main"]);
    std::fs::write(src.join("composer.lock"), "v1").unwrap();
    support::git(&src, &["add", "."]);
    support::git(&src, &["commit", "-q", "-m", "lock"]);
    let commit = support::git(&src, &["rev-parse", "HEAD"]);
    let plan = serde_json::json!({
        "source": format!("file://{}", src.display()),
        "commit": commit.trim(),
    })
    .to_string();
    let env = [
        (
            "SEAKEEPER_CACHES",
            r#"[{"path":"vendor","key":["composer.lock"]}]"#.to_owned(),
        ),
        ("SEAKEEPER_CACHE_IDENTITY", "id".to_owned()),
        ("SEAKEEPER_FETCH", plan),
    ];
    let workspace = |n: &str| {
        let w = dir.path().join(n);
        std::fs::create_dir_all(&w).unwrap();
        w
    };
    let restore = |w: &Path| {
        let keys = w.with_extension("keys");
        let out = support::output(
            support::seakeeper()
                .args(["job", "fetch", "--workspace"])
                .arg(w)
                .arg("--caches-dir")
                .arg(&caches)
                .arg("--keys-out")
                .arg(&keys)
                .env("TMPDIR", dir.path())
                .envs(env.clone()),
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
        assert_eq!(std::fs::read(w.join("composer.lock")).unwrap(), b"v1");
        assert!(!w.join(".git").exists());
        (support::stderr(&out), keys)
    };
    let collect = |w: &Path, keys: &Path, status: &str| {
        let marker = w.with_extension("status");
        std::fs::write(&marker, status).unwrap();
        let out = support::output(
            support::seakeeper()
                .args(["job", "collect", "--workspace"])
                .arg(w)
                .arg("--wait-for")
                .arg(&marker)
                .arg("--caches-dir")
                .arg(&caches)
                .arg("--cache-keys")
                .arg(keys)
                .arg("--termination-log")
                .arg(w.with_extension("termination")),
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
    };
    let w1 = workspace("w1");
    let (log, keys) = restore(&w1);
    assert!(log.contains("none yet"), "{log}");
    std::fs::create_dir_all(w1.join("vendor")).unwrap();
    std::fs::write(w1.join("vendor/x"), "dep").unwrap();
    // A failed job saves nothing.
    collect(&w1, &keys, "1\n");
    assert_eq!(std::fs::read_dir(&caches).unwrap().count(), 0);
    collect(&w1, &keys, "0\n");
    assert_eq!(std::fs::read_dir(&caches).unwrap().count(), 1);
    let w2 = workspace("w2");
    let (log, _) = restore(&w2);
    assert!(log.contains("restored"), "{log}");
    assert_eq!(std::fs::read(w2.join("vendor/x")).unwrap(), b"dep");
}

/// Issue 19: `seakeeper job fetch` (the fetch container, no shell) places the projects a job
/// requires and the inputs it needs, checking each input's digest; a tree that puts a link
/// where seakeeper writes is refused, and nothing is written through it.
#[test]
fn issue_19_job_fetch_places_required_projects_and_checked_inputs() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let repo = |name: &str, files: &[(&str, &str)], link: Option<(&str, &Path)>| {
        let r = dir.path().join(name);
        std::fs::create_dir_all(&r).unwrap();
        support::git(&r, &["init", "-q", "-b", "main"]);
        for (p, c) in files {
            std::fs::write(r.join(p), c).unwrap();
        }
        if let Some((at, to)) = link {
            std::os::unix::fs::symlink(to, r.join(at)).unwrap();
        }
        support::git(&r, &["add", "."]);
        support::git(&r, &["commit", "-q", "-m", name]);
        (
            format!("file://{}", r.display()),
            support::git(&r, &["rev-parse", "HEAD"]),
        )
    };
    let (app, app_commit) = repo("app", &[("main.txt", "app")], None);
    let (lib, lib_commit) = repo("lib", &[("lib.txt", "lib")], None);
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("sha256")).unwrap();
    let body = b"built\n";
    let hex = hex::encode(sha2::Sha256::digest(body));
    std::fs::write(store.join("sha256").join(&hex), body).unwrap();
    let plan = |source: &str, commit: &str| {
        serde_json::json!({
            "source": source, "commit": commit,
            "required": [{"project": "acme/lib", "source": lib, "commit": lib_commit}],
            "inputs": [{"job": "build", "files": [
                {"path": "dist/out.txt", "digest": format!("sha256:{hex}"), "size": 6, "executable": true}]}],
        })
        .to_string()
    };
    let fetch = |w: &Path, plan: String| {
        std::fs::create_dir_all(w).unwrap();
        support::output(
            support::seakeeper()
                .args(["job", "fetch", "--workspace"])
                .arg(w)
                .arg("--store")
                .arg(&store)
                .env("TMPDIR", dir.path())
                .env("SEAKEEPER_FETCH", plan),
        )
    };
    let w = dir.path().join("w");
    let out = fetch(&w, plan(&app, &app_commit));
    assert!(out.status.success(), "{}", support::stderr(&out));
    // The same plan in pieces (as a pod gets one too large for one variable).
    let whole = plan(&app, &app_commit);
    let (a, b) = whole.split_at(whole.len() / 2);
    let pieces = dir.path().join("w-pieces");
    std::fs::create_dir_all(&pieces).unwrap();
    let out = support::output(
        support::seakeeper()
            .args(["job", "fetch", "--workspace"])
            .arg(&pieces)
            .arg("--store")
            .arg(&store)
            .env("TMPDIR", dir.path())
            .env_remove("SEAKEEPER_FETCH")
            .env("SEAKEEPER_FETCH_0", a)
            .env("SEAKEEPER_FETCH_1", b),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(std::fs::read(pieces.join("main.txt")).unwrap(), b"app");
    assert_eq!(std::fs::read(w.join("main.txt")).unwrap(), b"app");
    assert_eq!(
        std::fs::read(w.join(".seakeeper/required/acme/lib/lib.txt")).unwrap(),
        b"lib"
    );
    let input = w.join(".seakeeper/inputs/build/dist/out.txt");
    assert_eq!(std::fs::read(&input).unwrap(), body);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&input).unwrap().permissions().mode() & 0o777,
        0o755
    );

    // A tree whose `.seakeeper` is a link out of the workspace.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let (evil, evil_commit) = repo("evil", &[("x", "x")], Some((".seakeeper", &outside)));
    let out = fetch(&dir.path().join("w2"), plan(&evil, &evil_commit));
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("is not a directory"),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    // A store blob that is not what its name says.
    std::fs::write(store.join("sha256").join(&hex), b"tamper").unwrap();
    let out = fetch(&dir.path().join("w3"), plan(&app, &app_commit));
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("not sha256:"),
        "{}",
        support::stderr(&out)
    );
}
