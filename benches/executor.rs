//! Local executor benchmark, each against a baseline in the same run:
//! - overhead from spec to the job's first command running (checkout excluded), against
//!   spawning the same `sh` directly; target under 20 ms median;
//! - checkout of a 10,000-file repository at a commit, against `git clone --depth 1` plus
//!   `git checkout` of the same commit; target no slower than git;
//! - 40 concurrent short jobs, against 40 concurrent bare `sh` processes.
//!
//! Run: `cargo bench --bench executor -- [--files N] [--runs N] [--jobs N]`. Under `cargo test`
//! it is a smoke test with small sizes.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use seakeeper::executor::Executor as _;
use seakeeper::executor::local::{LocalConfig, LocalExecutor, Prepare};
use seakeeper::model::{JobSpec, JobState, Trust};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn epoch_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A repository of `files` files in nested directories, made with fast-import.
fn big_repo(dir: &Path, files: usize) -> String {
    let repo = dir.join("big.git");
    assert!(
        Command::new("git")
            .args(["init", "-q", "--bare", "-b", "main"])
            .arg(&repo)
            .status()
            .unwrap()
            .success()
    );
    let mut input = String::from(
        "commit refs/heads/main\ncommitter B <b@example.org> 1700000000 +0000\ndata 4\nbig\n",
    );
    for i in 0..files {
        let data = format!("file {i}\n{}\n", "x".repeat(200 + i % 300));
        input.push_str(&format!(
            "M 644 inline d{}/e{}/f{i}.txt\ndata {}\n{data}\n",
            i % 50,
            i % 7,
            data.len()
        ));
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", "main"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn spec(n: usize, commit: &str, commands: Vec<String>) -> JobSpec {
    JobSpec {
        build_id: format!("bench-{n}").parse().unwrap(),
        job: "j".into(),
        pipeline: "check".into(),
        project: "bench".parse().unwrap(),
        change: None,
        source: "bench".into(),
        commit: commit.parse().unwrap(),
        image: "debian:bookworm".into(),
        commands,
        env: Default::default(),
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let files = arg(&args, "--files", if bench { 10_000 } else { 500 });
    let runs = arg(&args, "--runs", if bench { 50 } else { 5 });
    let jobs = arg(&args, "--jobs", if bench { 40 } else { 8 });
    let dir = tempfile::tempdir().unwrap();
    let commit = big_repo(dir.path(), files);
    let repo = gix::open(dir.path().join("big.git")).unwrap().into_sync();

    // 1. Checkout: seakeeper (from objects, 2 threads) vs git clone --depth 1 + checkout.
    let mut ours = Vec::new();
    let mut git = Vec::new();
    let cruns = if bench { 5 } else { 2 };
    for i in 0..cruns {
        let dest = dir.path().join(format!("ours-{i}"));
        let t = Instant::now();
        let stats = seakeeper::git::checkout::checkout(
            &repo,
            &gix::ObjectId::from_hex(commit.as_bytes()).unwrap(),
            &dest,
            2,
        )
        .unwrap();
        ours.push(t.elapsed());
        assert_eq!(stats.files, files);
        let dest = dir.path().join(format!("git-{i}"));
        let t = Instant::now();
        let url = format!("file://{}", dir.path().join("big.git").display());
        assert!(
            Command::new("git")
                .args(["clone", "-q", "--no-checkout", "--depth", "1", &url])
                .arg(&dest)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new("git")
                .arg("-C")
                .arg(&dest)
                .args(["checkout", "-q", &commit])
                .status()
                .unwrap()
                .success()
        );
        git.push(t.elapsed());
    }
    let (co_ours, co_git) = (median(ours), median(git));

    // 2. Overhead from start() to the first command running (checkout excluded).
    let state = dir.path().join("state");
    let prepare: Prepare = Arc::new(|_, _| Ok(()));
    let mut config = LocalConfig::new(&state);
    config.max_concurrent = jobs.max(1);
    let exec = LocalExecutor::new(config, prepare).unwrap();
    let sandbox = if exec.isolated() {
        "bubblewrap"
    } else {
        "none"
    };
    let mut overhead = Vec::new();
    for n in 0..runs {
        let s = spec(n, &commit, vec!["date +%s.%N".into()]);
        let t0 = epoch_now();
        exec.start(&s).unwrap();
        assert_eq!(exec.wait(&s.key(), None).unwrap(), JobState::Succeeded);
        // The first command's output, from the job's log (its workspace is gone once it ends).
        let mut started = None;
        exec.logs(&s.key(), false, &mut |l| {
            if started.is_none() {
                started = l.text.trim().parse::<f64>().ok();
            }
        })
        .unwrap();
        let started = started.expect("the job printed its start time");
        overhead.push(Duration::from_secs_f64((started - t0).max(0.0)));
    }
    let mut bare = Vec::new();
    for _ in 0..runs {
        let f = dir.path().join("bare-started");
        let t0 = epoch_now();
        let out = Command::new("/bin/sh")
            .args(["-e", "-c", "date +%s.%N > \"$1\"", "sh"])
            .arg(&f)
            .env_clear()
            .output()
            .unwrap();
        assert!(out.status.success());
        let started: f64 = std::fs::read_to_string(&f).unwrap().trim().parse().unwrap();
        bare.push(Duration::from_secs_f64((started - t0).max(0.0)));
    }
    let (oh, oh_bare) = (median(overhead), median(bare));

    // 3. Concurrent short jobs.
    let t = Instant::now();
    let specs: Vec<JobSpec> = (0..jobs)
        .map(|n| spec(10_000 + n, &commit, vec!["sleep 0.2".into()]))
        .collect();
    for s in &specs {
        exec.start(s).unwrap();
    }
    for s in &specs {
        assert_eq!(exec.wait(&s.key(), None).unwrap(), JobState::Succeeded);
    }
    let concurrent = t.elapsed();
    let t = Instant::now();
    let children: Vec<_> = (0..jobs)
        .map(|_| {
            Command::new("/bin/sh")
                .args(["-c", "sleep 0.2"])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        c.wait().unwrap();
    }
    let concurrent_bare = t.elapsed();

    println!(
        "local executor (sandbox: {sandbox}), {files}-file checkout, {runs} runs, {jobs} concurrent jobs\n"
    );
    println!(
        "{:<52} {:>12} {:>14} {:>8}",
        "what", "seakeeper", "baseline", "ratio"
    );
    println!(
        "{:<52} {:>9.1} ms {:>11.1} ms {:>7.2}x",
        format!("checkout of {files} files (vs git clone --depth 1 + checkout)"),
        ms(co_ours),
        ms(co_git),
        co_git.as_secs_f64() / co_ours.as_secs_f64()
    );
    println!(
        "{:<52} {:>9.1} ms {:>11.1} ms {:>7.2}x",
        "spec to first command running, median (vs bare sh)",
        ms(oh),
        ms(oh_bare),
        oh_bare.as_secs_f64() / oh.as_secs_f64().max(1e-9)
    );
    println!(
        "{:<52} {:>9.0} ms {:>11.0} ms {:>7.2}x",
        format!("{jobs} concurrent `sleep 0.2` jobs, wall (vs bare sh)"),
        ms(concurrent),
        ms(concurrent_bare),
        concurrent_bare.as_secs_f64() / concurrent.as_secs_f64()
    );
    println!("\ntargets: overhead < 20 ms median; checkout no slower than git (ratio >= 1)");
}
