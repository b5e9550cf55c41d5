//! Bootstrap benchmark (issue 19): from a fresh root to `/readyz` answering 200 (`seakeeper
//! bootstrap --root R --no-packages --no-start`, then `seakeeper serve` on what it wrote, polled
//! until ready), against the same machine doing the least a server must: `git clone` of the
//! config repo plus one `seakeeper reconcile --once` (both reported; medians).
//!
//! Run: `cargo bench --bench bootstrap -- [--runs N]`. Under `cargo test` it is a smoke run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn seakeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seakeeper"))
}

fn ok(cmd: &mut Command) {
    let out = cmd.output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ready(addr: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(
        format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .is_err()
    {
        return false;
    }
    let mut r = String::new();
    let _ = s.read_to_string(&mut r);
    r.starts_with("HTTP/1.1 200")
}

/// Fresh root to `/readyz` 200: (total, the bootstrap command alone).
fn to_ready(work: &Path, config: &Path) -> (Duration, Duration) {
    let root = work.join("root");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    ok(seakeeper()
        .args(["bootstrap", "--no-packages", "--no-start", "--root"])
        .arg(&root)
        .arg("--config-repo")
        .arg(config)
        .args(["--listen", &addr]));
    let bootstrapped = started.elapsed();
    let mut serve = seakeeper()
        .args(["serve", "--settings"])
        .arg(root.join("etc/seakeeper/settings.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready(&addr) {
        assert!(Instant::now() < deadline, "/readyz did not answer 200");
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    // SAFETY: signals our own child.
    unsafe {
        libc::kill(serve.id() as i32, libc::SIGTERM);
    }
    let _ = serve.wait();
    (took, bootstrapped)
}

/// The parts of a bootstrap measured alone: generating the key, copying the binary.
fn parts(work: &Path) -> (Duration, Duration) {
    let started = Instant::now();
    ok(seakeeper()
        .args(["key", "generate", "--userid", "ci <ci@localhost>", "--out"])
        .arg(work.join("k.asc"))
        .arg("--cert-out")
        .arg(work.join("c.asc")));
    let key = started.elapsed();
    let started = Instant::now();
    std::fs::copy(env!("CARGO_BIN_EXE_seakeeper"), work.join("copy")).unwrap();
    (key, started.elapsed())
}

/// `git clone` of the config repo plus one `reconcile --once` of a bootstrapped root.
fn baseline(work: &Path, config: &Path, root: &Path) -> Duration {
    let started = Instant::now();
    ok(Command::new("git")
        .args(["clone", "-q"])
        .arg(config)
        .arg(work.join("clone")));
    ok(seakeeper()
        .args(["reconcile", "--once", "--settings"])
        .arg(root.join("etc/seakeeper/settings.yaml")));
    started.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let runs = arg(&args, "--runs", if bench { 7 } else { 1 });
    let dir = tempfile::tempdir().unwrap();
    let config: PathBuf = dir.path().join("config");
    ok(seakeeper().args(["init", "config"]).arg(&config));
    let (mut ours, mut theirs, mut boot, mut keys, mut copies) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs {
        let work = dir.path().join(format!("run{r}"));
        std::fs::create_dir_all(&work).unwrap();
        // The previous run's files written back first, so this run's fsyncs wait for its own
        // writes only (else each run pays for the last one's 170 MB binary copies).
        // SAFETY: sync(2) takes no arguments.
        unsafe { libc::sync() };
        let (total, b) = to_ready(&work, &config);
        ours.push(total);
        boot.push(b);
        theirs.push(baseline(&work, &config, &work.join("root")));
        let (k, c) = parts(&work);
        keys.push(k);
        copies.push(c);
    }
    let (o, t) = (median(ours), median(theirs));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("fresh root to /readyz 200, {runs} runs (median)");
    println!(
        "  seakeeper bootstrap + serve until ready   {:>8.1} ms",
        o.as_secs_f64() * 1e3
    );
    println!(
        "  git clone + reconcile --once (baseline)   {:>8.1} ms",
        t.as_secs_f64() * 1e3
    );
    println!("  ratio {:.2}x", o.as_secs_f64() / t.as_secs_f64());
    let b = median(boot);
    println!("where the time goes (medians):");
    println!(
        "  the bootstrap command                     {:>8.1} ms",
        ms(b)
    );
    println!(
        "    of which: key generate alone            {:>8.1} ms",
        ms(median(keys))
    );
    println!(
        "    of which: copying the binary alone      {:>8.1} ms",
        ms(median(copies))
    );
    println!(
        "  serve started until /readyz 200           {:>8.1} ms",
        ms(o.saturating_sub(b))
    );
}
