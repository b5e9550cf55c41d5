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
