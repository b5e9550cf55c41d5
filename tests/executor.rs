//! The local executor and `seakeeper job run|render`, for real: bubblewrap, process trees,
//! timeouts, signals, the content-addressed output store, restarts.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seakeeper::executor::Executor as _;
use seakeeper::executor::local::{LocalConfig, LocalExecutor, Prepare, Sandbox};
use seakeeper::model::{JobKey, JobSpec, JobState, Trust};

/// Commits with fixed names and dates: the rendered manifest's snapshot names the commit.
fn git(dir: &Path, args: &[&str]) -> String {
    let mut env = support::FIXED_DATES.to_vec();
    env.extend([
        ("GIT_AUTHOR_NAME", "Dev"),
        ("GIT_AUTHOR_EMAIL", "dev@example.org"),
        ("GIT_COMMITTER_NAME", "Dev"),
        ("GIT_COMMITTER_EMAIL", "dev@example.org"),
    ]);
    support::git_with(dir, args, &env)
}

fn bwrap_available() -> bool {
    let found = Command::new("bwrap").arg("--version").output().is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "bubblewrap must be installed in CI (scripts/install-deps)"
    );
    found
}

/// A project repository with a pipeline file and a few files, committed; then the working tree
/// is made dirty (which no job may see).
fn project(pipeline: &str) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("widgets");
    std::fs::create_dir_all(repo.join(".pipeline")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join(".pipeline/config.yaml"), pipeline).unwrap();
    std::fs::write(repo.join("a.txt"), "committed content\n").unwrap();
    std::fs::create_dir_all(repo.join("src/deep")).unwrap();
    std::fs::write(repo.join("src/deep/tool.sh"), "#!/bin/sh\necho tool ran\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["update-index", "--chmod=+x", "src/deep/tool.sh"]);
    git(&repo, &["commit", "-q", "-m", "Initial"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);
    std::fs::write(repo.join("a.txt"), "DIRTY working tree\n").unwrap();
    std::fs::write(repo.join("untracked.txt"), "untracked\n").unwrap();
    (dir, repo, commit)
}

const PIPELINE: &str = r#"
jobs:
  show:
    image: debian:bookworm
    commands:
      - ls -A
      - cat a.txt
      - ./src/deep/tool.sh
      - env | sort
  fail:
    image: debian:bookworm
    commands: ["echo about to fail", "exit 3", "echo never"]
  build:
    image: debian:bookworm
    commands:
      - mkdir -p dist/sub
      - echo artifact > dist/app.tar
      - echo nested > dist/sub/x.whl
      - echo ignored > other.txt
      - ln -s /etc/hostname dist/link.tar
      - ln -s /proc/self/environ dist/env.tar
    outputs:
      files: ["dist/*.tar", "dist/**/*.whl"]
  slow:
    image: debian:bookworm
    timeout: 2s
    commands:
      - (sleep 1000.4242 &) ; sleep 1000.4243 & sleep 1000.4244
pipelines:
  check: [show, fail, build, slow]
"#;

fn job_run(repo: &Path, state: &Path, job: &str, extra: &[&str]) -> std::process::Output {
    support::output(
        support::seakeeper()
            .args(["job", "run", job, "--host-tools", "--repo"])
            .arg(repo)
            .arg("--state")
            .arg(state)
            .args(extra)
            .env("SECRET_TOKEN", "hunter2-should-not-leak"),
    )
}

#[test]
fn job_run_sees_exactly_the_commit_and_only_its_environment() {
    let sandboxed = bwrap_available();
    let (dir, repo, commit) = project(PIPELINE);
    let state = dir.path().join("state");
    let out = job_run(&repo, &state, "show", &[]);
    let stdout = support::stdout(&out);
    let stderr = support::stderr(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("committed content"), "{stdout}");
    assert!(!stdout.contains("DIRTY"), "the working tree is never used");
    assert!(!stdout.contains("untracked.txt"));
    assert!(
        !stdout.contains(".git"),
        "no .git in the workspace: {stdout}"
    );
    assert!(stdout.contains("tool ran"), "executable bits are kept");
    assert!(stdout.contains(&format!("SEAKEEPER_COMMIT={commit}")));
    assert!(stdout.contains("SEAKEEPER_PIPELINE=check"));
    assert!(stdout.contains("SEAKEEPER_TRUST=untrusted"));
    assert!(stdout.contains("$ cat a.txt"), "commands are echoed");
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("SECRET_TOKEN"),
        "seakeeper's own environment is invisible to the job"
    );
    if sandboxed {
        assert!(
            stdout.contains("SEAKEEPER_WORKSPACE=/workspace"),
            "{stdout}"
        );
        assert!(!stderr.contains("WITHOUT isolation"));
    } else {
        assert!(stderr.contains("WITHOUT isolation"), "{stderr}");
    }
    // --no-sandbox runs the same job unisolated, with a warning.
    let out = job_run(&repo, &state, "show", &["--no-sandbox"]);
    assert!(out.status.success());
    assert!(support::stderr(&out).contains("WITHOUT isolation"));
}

#[test]
fn job_run_exits_with_the_jobs_status_and_reports_bad_input() {
    let (dir, repo, _) = project(PIPELINE);
    let state = dir.path().join("state");
    let out = job_run(&repo, &state, "fail", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", support::stderr(&out));
    let stdout = support::stdout(&out);
    assert!(stdout.contains("about to fail") && !stdout.contains("never"));

    let out = job_run(&repo, &state, "nope", &[]);
    assert!(!out.status.success());
    let err = support::stderr(&out);
    assert!(
        err.contains("no job \"nope\"") && err.contains("check/show"),
        "{err}"
    );

    let out = job_run(&repo, &state, "show", &["--pipeline", "deploy"]);
    assert!(support::stderr(&out).contains("--pipeline \"deploy\""));

    let out = job_run(&repo, &state, "show", &["--rev", "no-such-branch"]);
    assert!(!out.status.success());
    assert!(support::stderr(&out).contains("no-such-branch"));
}

#[test]
fn outputs_go_to_the_content_addressed_store() {
    let (dir, repo, _) = project(PIPELINE);
    let state = dir.path().join("state");
    let out = job_run(&repo, &state, "build", &[]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let err = support::stderr(&out);
    let digest = seakeeper::model::Digest::of(b"artifact\n");
    assert!(
        err.contains(&format!("output: dist/app.tar {digest}")),
        "{err}"
    );
    assert!(err.contains("output: dist/sub/x.whl"), "{err}");
    assert!(!err.contains("other.txt"));
    assert!(
        !err.contains("link.tar") && !err.contains("env.tar"),
        "symlinks are never followed: {err}"
    );
    let stored = state.join("store/sha256").join(digest.hex());
    assert_eq!(std::fs::read(stored).unwrap(), b"artifact\n");
}

fn leftover(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn the_timeout_kills_the_whole_tree_in_time() {
    let (dir, repo, _) = project(PIPELINE);
    let state = dir.path().join("state");
    let started = Instant::now();
    let out = job_run(&repo, &state, "slow", &[]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(124), "{}", support::stderr(&out));
    assert!(
        took < Duration::from_secs(2 + 2),
        "killed within the deadline plus 2 s: {took:?}"
    );
    assert!(support::stdout(&out).contains("killed at the time limit of 2 s"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        leftover("1000.424"),
        Vec::<String>::new(),
        "no process survives"
    );
}

#[test]
fn ctrl_c_cancels_the_job() {
    let (dir, repo, _) = project(&PIPELINE.replace("timeout: 2s", "timeout: 60s"));
    let state = dir.path().join("state");
    let mut child = support::seakeeper()
        .args(["job", "run", "slow", "--host-tools", "--repo"])
        .arg(&repo)
        .arg("--state")
        .arg(&state)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftover("1000.4244").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: sends SIGINT to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(started.elapsed() < Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(leftover("1000.424"), Vec::<String>::new());
}

fn spec(commit: &str, job: &str, commands: &[&str]) -> JobSpec {
    JobSpec {
        build_id: format!("b-{job}").parse().unwrap(),
        job: job.into(),
        pipeline: "check".into(),
        project: "widgets".parse().unwrap(),
        change: Some((4711u64.try_into().unwrap(), 2u64.try_into().unwrap())),
        source: "widgets".into(),
        commit: commit.parse().unwrap(),
        image: "debian:bookworm".into(),
        commands: commands.iter().map(|c| c.to_string()).collect(),
        env: [("MY_VAR".to_owned(), "declared".to_owned())].into(),
        timeout_seconds: 60,
        cpu: None,
        memory: None,
        services: Default::default(),
        secrets: vec![],
        network: false,
        outputs: vec![],
        trust: Trust::Untrusted,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    }
}

/// Whether a line of the log is exactly `word` (the command lines echoed hold it too).
fn said(log: &str, word: &str) -> bool {
    log.lines().any(|l| l == word)
}

/// One IPv4 address of this host other than loopback.
fn host_ipv4() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .expect("a non-loopback IPv4 address")
        .to_owned()
}

fn executor(repo: &Path, state: &Path, max: usize) -> LocalExecutor {
    executor_with(repo, state, max, None, Sandbox::Auto)
}

fn executor_with(
    repo: &Path,
    state: &Path,
    max: usize,
    supervisor: Option<PathBuf>,
    sandbox: Sandbox,
) -> LocalExecutor {
    let repo = gix::open(repo).unwrap().into_sync();
    let prepare: Prepare = Arc::new(move |spec, dir| {
        let commit = gix::ObjectId::from_hex(spec.commit.as_str().as_bytes()).unwrap();
        seakeeper::git::checkout::checkout(&repo, &commit, dir, 2)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let mut config = LocalConfig::new(state);
    config.max_concurrent = max;
    config.supervisor = supervisor;
    config.sandbox = sandbox;
    LocalExecutor::new(config, prepare).unwrap()
}

/// An executor whose jobs run under detached `seakeeper job supervise` processes.
fn supervised(repo: &Path, state: &Path, max: usize) -> LocalExecutor {
    executor_with(
        repo,
        state,
        max,
        Some(env!("CARGO_BIN_EXE_seakeeper").into()),
        Sandbox::Auto,
    )
}

fn wait_running(e: &LocalExecutor, key: &JobKey) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.state(key).unwrap() != Some(JobState::Running) {
        assert!(Instant::now() < deadline, "{key} never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn log_of(e: &LocalExecutor, key: &JobKey) -> String {
    let mut s = String::new();
    e.logs(key, false, &mut |l| {
        assert!(l.time.ends_with('Z') && l.time.len() == 24, "{l:?}");
        s.push_str(&l.text);
        s.push('\n');
    })
    .unwrap();
    s
}

#[test]
fn sandboxed_jobs_see_only_their_workspace_and_no_network() {
    if !bwrap_available() {
        return;
    }
    let (dir, repo, commit) = project(PIPELINE);
    let state = dir.path().join("state");
    let e = executor(&repo, &state, 2);
    assert!(e.isolated());
    // A service of the server's on loopback, and one on all of the host's addresses.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let everywhere = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port_everywhere = everywhere.local_addr().unwrap().port();
    let host_ip = host_ipv4();
    let state_path = state.display().to_string();
    let probe = [
        "echo secret-of-$SEAKEEPER_JOB > mine.txt",
        "sleep 0.5",
        &format!("test ! -e {state_path} && echo cannot-see-the-host-state"),
        "ls / | tr '\\n' ' '; echo",
        "test ! -e /etc/shadow && echo no-shadow",
        "id -u",
        &format!(
            "if bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo net-yes; else echo net-no; fi"
        ),
        &format!(
            "if timeout 5 bash -c 'echo > /dev/tcp/{host_ip}/{port_everywhere}' 2>/dev/null; then echo host-yes; else echo host-no; fi"
        ),
        "if grep -q tap0 /proc/net/route; then echo has-route; fi",
        "echo MY_VAR=$MY_VAR change=$SEAKEEPER_CHANGE/$SEAKEEPER_PATCHSET",
        "echo workspace: $(ls | tr '\\n' ' ') mine=$(cat mine.txt)",
    ];
    let a = spec(&commit, "a", &probe);
    let mut b = spec(&commit, "b", &probe);
    b.network = true;
    let mut c = spec(&commit, "c", &probe);
    c.network = true;
    c.trust = Trust::Trusted;
    e.start(&a).unwrap();
    e.start(&b).unwrap();
    assert_eq!(e.wait(&a.key(), None).unwrap(), JobState::Succeeded);
    assert_eq!(e.wait(&b.key(), None).unwrap(), JobState::Succeeded);
    e.start(&c).unwrap();
    assert_eq!(e.wait(&c.key(), None).unwrap(), JobState::Succeeded);
    let (la, lb, lc) = (
        log_of(&e, &a.key()),
        log_of(&e, &b.key()),
        log_of(&e, &c.key()),
    );
    for l in [&la, &lb, &lc] {
        assert!(l.contains("cannot-see-the-host-state"), "{l}");
        assert!(l.contains("no-shadow"), "{l}");
        assert!(l.contains("65534"), "runs as nobody: {l}");
        assert!(l.contains("MY_VAR=declared change=4711/2"), "{l}");
    }
    assert!(said(&la, "net-no"), "untrusted without network: {la}");
    assert!(!said(&la, "has-route"), "untrusted without network: {la}");
    // Issue 14, item 9: an untrusted job the policy gives the network has a network of its
    // own (a route out), but neither the host's loopback nor the host's own addresses.
    assert!(said(&lb, "has-route"), "untrusted with network: {lb}");
    assert!(
        said(&lb, "net-no"),
        "untrusted jobs never reach the host's loopback: {lb}"
    );
    assert!(said(&lb, "host-no"), "nor the host's addresses: {lb}");
    // A trusted job with the network has the host's.
    assert!(said(&lc, "net-yes"), "trusted with network: {lc}");
    drop((listener, everywhere));
    // Each workspace held only its own file, and is gone once the job ended.
    assert!(
        la.contains("mine=secret-of-a") && !la.contains("secret-of-b"),
        "{la}"
    );
    assert!(
        lb.contains("mine=secret-of-b") && !lb.contains("secret-of-a"),
        "{lb}"
    );
    for j in ["a", "b"] {
        let ws = state
            .join("jobs")
            .join(format!("b-{j}"))
            .join(j)
            .join("workspace");
        assert!(!ws.exists(), "{} is left behind", ws.display());
    }
}

/// Issue 14, item 9: untrusted jobs are contained.
#[test]
fn issue_14_sandboxed_jobs_are_contained_by_seccomp_pids_log_and_workspace_limits() {
    if !bwrap_available() {
        return;
    }
    let (dir, repo, commit) = project(PIPELINE);
    let state = dir.path().join("state");
    let repo_handle = gix::open(&repo).unwrap().into_sync();
    let prepare: Prepare = Arc::new(move |spec, dir| {
        let commit = gix::ObjectId::from_hex(spec.commit.as_str().as_bytes()).unwrap();
        seakeeper::git::checkout::checkout(&repo_handle, &commit, dir, 2)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let mut config = LocalConfig::new(&state);
    config.max_concurrent = 4;
    config.limits = seakeeper::executor::limits::JobLimits {
        workspace_bytes: 1 << 20,
        log_bytes: 4096,
        pids: 16,
    };
    let e = LocalExecutor::new(config, prepare).unwrap();
    // No nested namespaces, no mounts, no ptrace, no keyring.
    let calls = spec(
        &commit,
        "calls",
        &[
            "if unshare --user --map-root-user true 2>/dev/null; then echo userns-yes; else echo userns-no; fi",
            "if unshare --net true 2>/dev/null; then echo netns-yes; else echo netns-no; fi",
            "mkdir -p /tmp/m",
            "if mount -t tmpfs none /tmp/m 2>/dev/null; then echo mount-yes; else echo mount-no; fi",
            "python3 -c 'import ctypes,os; libc=ctypes.CDLL(None, use_errno=True); r=libc.syscall(250, 0, 0, 0, 0); print(\"keyctl\", r, os.strerror(ctypes.get_errno()))'",
            "python3 -c 'import ctypes,os; libc=ctypes.CDLL(None, use_errno=True); r=libc.syscall(101, 16, os.getppid(), 0, 0); print(\"ptrace\", r, os.strerror(ctypes.get_errno()))'",
            "echo ordinary work still runs: $(echo a b | wc -w)",
        ],
    );
    // A fork bomb meets the pids limit.
    let forks = spec(
        &commit,
        "forks",
        &["for i in $(seq 1 40); do sleep 3 & done; wait; echo all-forked"],
    );
    // A chatty job's log is cut with a marker; the job still succeeds.
    let chatty = spec(
        &commit,
        "chatty",
        &[
            "i=0; while [ $i -lt 2000 ]; do echo line $i of a very chatty job; i=$((i+1)); done",
            "echo the-end",
        ],
    );
    // A job filling its workspace is stopped.
    let filler = spec(
        &commit,
        "filler",
        &[
            "head -c 5000000 /dev/zero > big",
            "sleep 30",
            "echo survived",
        ],
    );
    for s in [&calls, &forks, &chatty, &filler] {
        e.start(s).unwrap();
    }
    assert_eq!(e.wait(&calls.key(), None).unwrap(), JobState::Succeeded);
    let log = log_of(&e, &calls.key());
    for want in [
        "userns-no",
        "netns-no",
        "mount-no",
        "keyctl -1 Operation not permitted",
        "ptrace -1 Operation not permitted",
        "ordinary work still runs: 2",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
    let forked = e.wait(&forks.key(), None).unwrap();
    let log = log_of(&e, &forks.key());
    if !log.contains("no pids limit") {
        assert!(!log.lines().any(|l| l == "all-forked"), "{log}");
        assert!(
            matches!(forked, JobState::Failed { .. }),
            "{forked:?}: {log}"
        );
    }
    assert_eq!(e.wait(&chatty.key(), None).unwrap(), JobState::Succeeded);
    let log = log_of(&e, &chatty.key());
    assert!(
        log.contains("the log is cut here, past 4096 bytes"),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l == "the-end") && !log.contains("line 1999 "),
        "{log}"
    );
    match e.wait(&filler.key(), None).unwrap() {
        JobState::Failed { reason, .. } => {
            assert!(
                reason.contains("workspace grew past its limit of 1048576 bytes"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(!log_of(&e, &filler.key()).lines().any(|l| l == "survived"));
}

#[test]
fn restart_adopts_jobs_and_never_runs_one_twice() {
    let (dir, repo, commit) = project(PIPELINE);
    let state = dir.path().join("state");
    let e = executor(&repo, &state, 1);
    let done = spec(&commit, "done", &["echo ran once"]);
    e.start(&done).unwrap();
    assert_eq!(e.wait(&done.key(), None).unwrap(), JobState::Succeeded);
    // A queued job (the only slot is busy), then cancel it and a running one.
    let long = spec(&commit, "long", &["sleep 1000.5151"]);
    let queued = spec(&commit, "queued", &["echo queued"]);
    e.start(&long).unwrap();
    e.start(&queued).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.state(&queued.key()).unwrap(), Some(JobState::Pending));
    let t = Instant::now();
    e.cancel(&long.key()).unwrap();
    assert_eq!(e.wait(&long.key(), None).unwrap(), JobState::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(e.wait(&queued.key(), None).unwrap(), JobState::Succeeded);
    drop(e);

    // A new executor over the same state: every job is known, none runs again.
    let e2 = executor(&repo, &state, 1);
    let listed: Vec<(String, JobState)> = e2
        .list()
        .unwrap()
        .into_iter()
        .map(|(k, s)| (k.job, s))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("done".to_owned(), JobState::Succeeded),
            ("long".to_owned(), JobState::Cancelled),
            ("queued".to_owned(), JobState::Succeeded),
        ]
    );
    e2.start(&done).unwrap();
    assert_eq!(e2.wait(&done.key(), None).unwrap(), JobState::Succeeded);
    assert_eq!(
        log_of(&e2, &done.key()).matches("ran once").count(),
        2,
        "echoed + output, once"
    );
    // A job that was running when its seakeeper died is reported lost, not rerun.
    let lost_dir = state.join("jobs/b-lost/lost");
    std::fs::create_dir_all(&lost_dir).unwrap();
    std::fs::write(lost_dir.join("state.json"), r#"{"state":"running"}"#).unwrap();
    let lost = spec(&commit, "lost", &["echo should not run"]);
    e2.start(&lost).unwrap();
    match e2.state(&lost.key()).unwrap() {
        Some(JobState::Lost { reason }) => assert!(reason.contains("stopped"), "{reason}"),
        s => panic!("{s:?}"),
    }
    // A job accepted but never launched (queued when its seakeeper stopped) starts afresh.
    let queued_dir = state.join("jobs/b-unlaunched/unlaunched");
    std::fs::create_dir_all(&queued_dir).unwrap();
    std::fs::write(queued_dir.join("state.json"), r#"{"state":"pending"}"#).unwrap();
    let unlaunched = spec(&commit, "unlaunched", &["echo ran after all"]);
    e2.start(&unlaunched).unwrap();
    assert_eq!(
        e2.wait(&unlaunched.key(), None).unwrap(),
        JobState::Succeeded
    );
    // A job another seakeeper process is running (it holds the job's lock) is not lost.
    let held_dir = state.join("jobs/b-held/held");
    std::fs::create_dir_all(&held_dir).unwrap();
    std::fs::write(held_dir.join("state.json"), r#"{"state":"running"}"#).unwrap();
    let lock = std::fs::File::create(held_dir.join("lock")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(
        unsafe {
            libc::flock(
                std::os::unix::io::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        },
        0
    );
    let held = spec(&commit, "held", &["true"]);
    assert_eq!(e2.state(&held.key()).unwrap(), Some(JobState::Running));
    drop(lock);
    assert!(matches!(
        e2.state(&held.key()).unwrap(),
        Some(JobState::Lost { .. })
    ));
    // Bad input is an error, not a panic.
    let mut bad = spec(&commit, "x", &["true"]);
    bad.job = "../escape".into();
    assert!(e2.start(&bad).is_err());
    let mut services = spec(&commit, "svc", &["true"]);
    services
        .services
        .insert("mariadb".into(), "mariadb:11".into());
    assert!(
        e2.start(&services)
            .unwrap_err()
            .to_string()
            .contains("services (mariadb)")
    );
    let mut secret = spec(&commit, "s", &["true"]);
    secret.secrets = vec!["TOKEN".into()];
    assert!(
        e2.start(&secret)
            .unwrap_err()
            .to_string()
            .contains("untrusted")
    );
}

#[test]
fn supervised_jobs_outlive_the_seakeeper_that_started_them_and_are_adopted() {
    if !bwrap_available() {
        return;
    }
    let (dir, repo, commit) = project(PIPELINE);
    let state = dir.path().join("state");
    let first = supervised(&repo, &state, 4);
    let mut survivor = spec(
        &commit,
        "survivor",
        &[
            "sleep 1.5",
            "echo survived with $MY_VAR",
            "mkdir -p out",
            "echo x > out/f",
        ],
    );
    survivor.outputs = vec!["out/**".into()];
    let victim = spec(&commit, "victim", &["sleep 1000.6161"]);
    let orphan = spec(&commit, "orphan", &["sleep 1000.7171"]);
    let shutdown = spec(&commit, "shutdown", &["sleep 1000.8181"]);
    for s in [&survivor, &victim, &orphan, &shutdown] {
        first.start(s).unwrap();
    }
    for s in [&survivor, &victim, &orphan, &shutdown] {
        wait_running(&first, &s.key());
    }
    // Each job runs under its own supervisor, in its own session, not under this process.
    // (A supervisor starting its job forks: for a moment the child has the same command line,
    // so processes are counted by job directory and the oldest is the supervisor.)
    let ours = || {
        let mut by_dir: std::collections::BTreeMap<String, i32> = Default::default();
        for p in leftover("job supervise") {
            let (Some((pid, cmd)), true) =
                (p.split_once(':'), p.contains(&state.display().to_string()))
            else {
                continue;
            };
            let pid: i32 = pid.parse().unwrap();
            let dir = cmd.trim().rsplit(' ').next().unwrap().to_owned();
            let e = by_dir.entry(dir).or_insert(pid);
            *e = (*e).min(pid);
        }
        by_dir
    };
    let supervisors = ours();
    assert_eq!(supervisors.len(), 4, "{supervisors:?}");

    // Another seakeeper over the same state directory (as after a restart): the running jobs
    // are adopted (their supervisors hold their locks), not lost and not run again.
    let second = supervised(&repo, &state, 4);
    wait_running(&second, &survivor.key());
    let t = Instant::now();
    second.cancel(&victim.key()).unwrap();
    assert_eq!(
        second.wait(&victim.key(), None).unwrap(),
        JobState::Cancelled
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        second.wait(&survivor.key(), None).unwrap(),
        JobState::Succeeded
    );
    let outputs = second.outputs(&survivor.key()).unwrap();
    assert_eq!(
        outputs.iter().map(|o| o.path.as_str()).collect::<Vec<_>>(),
        ["out/f"]
    );
    let log = log_of(&second, &survivor.key());
    assert_eq!(
        log.matches("survived with declared").count(),
        1,
        "the job's environment reaches it through its supervisor: {log}"
    );
    assert!(log.contains("seakeeper: succeeded after"), "{log}");
    // The first seakeeper learns the same ends.
    assert_eq!(
        first.wait(&survivor.key(), None).unwrap(),
        JobState::Succeeded
    );
    assert_eq!(
        first.wait(&victim.key(), None).unwrap(),
        JobState::Cancelled
    );

    // Signals a job's supervisor; the job must end up lost (and so run again), neither
    // passed, failed nor cancelled.
    let stop_supervisor = |job: &JobSpec, signal: i32| {
        let pid = ours()
            .into_iter()
            .find(|(dir, _)| dir.ends_with(&format!("/{}/{}", job.build_id, job.job)))
            .expect("the job's supervisor")
            .1;
        // SAFETY: signals a supervisor this test started.
        unsafe {
            libc::kill(pid, signal);
        }
        match second
            .wait(&job.key(), Some(Duration::from_secs(10)))
            .unwrap()
        {
            JobState::Lost { .. } => {}
            s => panic!("{s:?}"),
        }
    };
    // A supervisor killed with its job still running: the job dies with it (bubblewrap's
    // --die-with-parent), never silently running on.
    stop_supervisor(&orphan, libc::SIGKILL);
    // A supervisor stopped by SIGTERM (the machine shutting down) stops its job but does not
    // call it cancelled.
    stop_supervisor(&shutdown, libc::SIGTERM);
    // Variables that change how programs load never reach seakeeper's own processes.
    let mut preload = spec(&commit, "preload", &["true"]);
    preload
        .env
        .insert("LD_PRELOAD".into(), "/workspace/evil.so".into());
    let refused = second.start(&preload).unwrap_err().to_string();
    assert!(refused.contains("LD_PRELOAD"), "{refused}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(leftover("1000.6161"), Vec::<String>::new());
    assert_eq!(leftover("1000.7171"), Vec::<String>::new());
    assert_eq!(leftover("1000.8181"), Vec::<String>::new());
    assert_eq!(ours(), Default::default());
}

/// Without a sandbox nothing ties a job's processes to its supervisor but the process group:
/// a supervisor killed with SIGKILL takes only the job's first process with it. Whoever finds
/// the job lost kills the rest, so its next attempt never runs beside them.
#[test]
fn a_lost_job_without_a_sandbox_leaves_no_processes_behind() {
    let (dir, repo, commit) = project(PIPELINE);
    let state = dir.path().join("state");
    let bin: PathBuf = env!("CARGO_BIN_EXE_seakeeper").into();
    let first = executor_with(&repo, &state, 4, Some(bin.clone()), Sandbox::None);
    // Each leaves a background `sleep` in its group besides the one the shell waits for.
    let watched = spec(&commit, "watched", &["sleep 1000.9131 & sleep 1000.9132"]);
    let adopted = spec(&commit, "adopted", &["sleep 1000.9241 & sleep 1000.9242"]);
    for s in [&watched, &adopted] {
        first.start(s).unwrap();
        wait_running(&first, &s.key());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftover("sleep 1000.9").len() < 4 {
        assert!(Instant::now() < deadline, "{:?}", leftover("sleep 1000.9"));
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill_supervisor = |job: &JobSpec| {
        let dir = format!("/{}/{}", job.build_id, job.job);
        let pid: i32 = leftover("job supervise")
            .iter()
            .filter(|p| p.trim_end().ends_with(&dir))
            .map(|p| p.split_once(':').unwrap().0.parse().unwrap())
            .min()
            .expect("the job's supervisor");
        // SAFETY: signals a supervisor this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    };
    let is_lost = |s: JobState| matches!(&s, JobState::Lost { .. });
    // Found lost by the seakeeper that started it, as it waits for the supervisor.
    kill_supervisor(&watched);
    let s = first
        .wait(&watched.key(), Some(Duration::from_secs(10)))
        .unwrap();
    assert!(is_lost(s.clone()), "{s:?}");
    // Found lost by a later seakeeper reading the job's state from disk (or by the first,
    // still waiting for that supervisor too: either kills what is left).
    let second = executor_with(&repo, &state, 4, Some(bin), Sandbox::None);
    kill_supervisor(&adopted);
    let s = second
        .wait(&adopted.key(), Some(Duration::from_secs(10)))
        .unwrap();
    assert!(is_lost(s.clone()), "{s:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !leftover("sleep 1000.9").is_empty() {
        assert!(
            Instant::now() < deadline,
            "a lost job's processes run on: {:?}",
            leftover("sleep 1000.9")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for s in [&watched, &adopted] {
        let log = log_of(&second, &s.key());
        assert!(log.contains("the lost job left running"), "{log}");
    }
}

#[test]
fn a_tree_that_escapes_the_workspace_is_refused() {
    let (dir, repo, _) = project(PIPELINE);
    // A tree object naming "..": git mktree refuses it, so write it raw.
    let blob = git(&repo, &["hash-object", "-w", "--stdin"]);
    let mut raw = b"100644 ..\0".to_vec();
    raw.extend_from_slice(&hex::decode(&blob).unwrap());
    let tmp = dir.path().join("evil-tree");
    std::fs::write(&tmp, &raw).unwrap();
    let tree = git(
        &repo,
        &[
            "hash-object",
            "-t",
            "tree",
            "--literally",
            "-w",
            tmp.to_str().unwrap(),
        ],
    );
    let commit = git(&repo, &["commit-tree", &tree, "-m", "evil"]);
    let r = gix::open(&repo).unwrap().into_sync();
    let dest = dir.path().join("ws");
    let err = seakeeper::git::checkout::checkout(
        &r,
        &gix::ObjectId::from_hex(commit.as_bytes()).unwrap(),
        &dest,
        2,
    )
    .unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
    assert!(
        !dest.exists() || std::fs::read_dir(&dest).unwrap().next().is_none(),
        "nothing was written"
    );
}

#[test]
fn job_render_prints_the_kubernetes_manifest() {
    let (dir, repo, _) = project(PIPELINE);
    let state = dir.path().join("state");
    let out = support::output(
        support::seakeeper()
            .args(["job", "render", "build", "--repo"])
            .arg(&repo)
            .arg("--state")
            .arg(&state)
            .args(["--build-id", "b-render"])
            .args(["--seakeeper-image", support::SEAKEEPER_IMAGE]),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let yaml = support::stdout(&out).replace(&repo.display().to_string(), "<repo>");
    let snapshot = Path::new("tests/snapshots/job-render.yaml");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshot.parent().unwrap()).unwrap();
        std::fs::write(snapshot, &yaml).unwrap();
    }
    let want = std::fs::read_to_string(snapshot).expect("run with UPDATE_SNAPSHOTS=1 once");
    assert_eq!(
        yaml, want,
        "the rendered manifest changed (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

/// Issue 18: `job run` runs the jobs a job needs first, as a build does; their outputs are its
/// inputs under `.seakeeper/inputs/<job>/`; when one fails, the job is skipped.
#[test]
fn issue_18_job_run_runs_the_needed_jobs_first_and_hands_their_outputs_on() {
    let pipeline = r#"
jobs:
  build:
    image: debian:bookworm
    commands: ["mkdir -p dist", "cp a.txt dist/a.txt", "cp src/deep/tool.sh dist/tool.sh"]
    outputs:
      files: ["dist/**"]
  test:
    image: debian:bookworm
    needs: [build]
    commands: ["cat .seakeeper/inputs/build/dist/a.txt", "./.seakeeper/inputs/build/dist/tool.sh", "test \"$FAIL\" != yes"]
    env: {FAIL: "no"}
  broken:
    image: debian:bookworm
    commands: ["exit 4"]
  after-broken:
    image: debian:bookworm
    needs: [broken]
    commands: ["echo should not run"]
pipelines:
  check: [test, build, broken, after-broken]
"#;
    let (dir, repo, _) = project(pipeline);
    let state = dir.path().join("state");
    let out = job_run(&repo, &state, "test", &[]);
    let stdout = support::stdout(&out);
    let stderr = support::stderr(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let build = stdout.find("$ mkdir -p dist").expect("build ran");
    let test = stdout
        .find("committed content")
        .expect("test read its input");
    assert!(build < test, "build ran first: {stdout}");
    assert!(
        stdout.contains("tool ran"),
        "executable bits are kept: {stdout}"
    );
    let out = job_run(&repo, &state, "after-broken", &[]);
    assert_eq!(out.status.code(), Some(4), "{}", support::stderr(&out));
    assert!(!support::stdout(&out).contains("should not run"));
    assert!(
        support::stderr(&out).contains("after-broken skipped: broken did not succeed"),
        "{}",
        support::stderr(&out)
    );
}

/// Issue 18: `job render` of a job that runs in an image a job it needs builds asks for that
/// digest (known once the job ran in a build) and says where its inputs come from.
#[test]
fn issue_18_job_render_of_a_job_in_a_built_image_takes_its_digest() {
    let pipeline = r#"
jobs:
  build:
    image: debian:bookworm
    commands: ["true"]
    outputs:
      files: ["dist/**"]
      images:
        - name: api
          base: r.example.org/base@sha256:1111111111111111111111111111111111111111111111111111111111111111
          files: ["dist/**"]
  test:
    image: {from: build}
    needs: [build]
    commands: ["true"]
pipelines:
  check: [build, test]
"#;
    let (_dir, repo, _) = project(pipeline);
    let render = |extra: &[&str]| {
        support::output(
            support::seakeeper()
                .args(["job", "render", "test", "--repo"])
                .arg(&repo)
                .args(["--seakeeper-image", support::SEAKEEPER_IMAGE])
                .args(extra),
        )
    };
    let out = render(&[]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("test runs in image api that job build assembles"),
        "{}",
        support::stderr(&out)
    );
    let image =
        "r.example.org/api@sha256:2222222222222222222222222222222222222222222222222222222222222222";
    let out = render(&["--image", image]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(support::stdout(&out).contains(&format!("image: {image}")));
    assert!(
        support::stderr(&out).contains("test needs build"),
        "{}",
        support::stderr(&out)
    );
}
