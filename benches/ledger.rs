//! Ledger benchmarks, each against a named baseline measured in the same run:
//!
//! - import: durable records/s through the group-committing writer (and through the
//!   `ledger import` CLI) against the git CLI writing one signed commit per record
//!   (`hash-object -w`, `mktree`, `commit-tree -S` with gpg, `update-ref`);
//! - trace: latency of `trace <digest>` in-process and as a whole CLI process, against
//!   `git log --grep=<digest>` on the same ledger;
//! - verify: records/s of `ledger verify` (signatures and schemas) against
//!   `git log --show-signature` over the same commits.
//!
//! Run: `cargo bench --bench ledger -- [--records N] [--baseline-records N] [--keep DIR]`.
//! Under `cargo test` it runs as a quick smoke test with small sizes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seakeeper::ledger::{Ledger, VerifyOptions, Writer, WriterOptions, sample, verify};
use seakeeper::model::{Digest, Record};
use seakeeper::signing::{SigningKey, generate_key};

struct Args {
    records: usize,
    baseline_records: usize,
    cli_records: usize,
    keep: Option<PathBuf>,
}

fn parse_args() -> Args {
    let mut a = Args {
        records: 1_000_000,
        baseline_records: 200,
        cli_records: 100_000,
        keep: None,
    };
    // `cargo test --all-targets` runs this binary without `--bench`: then it is a smoke test
    // of the benchmark itself, on a small ledger.
    if !std::env::args().any(|a| a == "--bench") {
        a = Args {
            records: 3_000,
            baseline_records: 5,
            cli_records: 500,
            keep: None,
        };
    }
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "--records" => a.records = num("--records"),
            "--baseline-records" => a.baseline_records = num("--baseline-records"),
            "--cli-records" => a.cli_records = num("--cli-records"),
            "--keep" => a.keep = it.next().map(PathBuf::from),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("spawning a baseline command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn git(dir: &Path, gnupghome: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(dir).env("GNUPGHOME", gnupghome);
    c
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args = parse_args();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let dir = args.keep.clone().unwrap_or_else(|| tmp.path().to_owned());
    std::fs::create_dir_all(&dir).expect("creating the work dir");
    let (secret, public) =
        generate_key("seakeeper bench <bench@example.org>").expect("generating a key");
    let key_path = dir.join("key.asc");
    let cert_path = dir.join("cert.asc");
    std::fs::write(&key_path, &secret).expect("writing key");
    std::fs::write(&cert_path, &public).expect("writing cert");
    let gnupghome = dir.join("gnupg");
    std::fs::create_dir_all(&gnupghome).expect("gnupg home");
    std::fs::set_permissions(
        &gnupghome,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    run(Command::new("gpg")
        .env("GNUPGHOME", &gnupghome)
        .args(["--batch", "--quiet", "--import"])
        .arg(&key_path));
    let fingerprint = SigningKey::from_bytes(&secret, "bench key")
        .expect("key")
        .fingerprint()
        .to_owned();

    println!(
        "# seakeeper ledger benchmarks ({} records; machine: {} cores)",
        args.records,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // ---- Baseline: git CLI, one signed commit per record. ----
    let base_repo = dir.join("baseline.git");
    run(Command::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(&base_repo));
    let base_records = sample::records(0, args.baseline_records);
    let started = Instant::now();
    let mut parent: Option<String> = None;
    for (i, r) in base_records.iter().take(args.baseline_records).enumerate() {
        let yaml = yaml_serde::to_string(r).expect("yaml");
        let mut child = git(&base_repo, &gnupghome)
            .args(["hash-object", "-w", "--stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git hash-object");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write");
        let blob = String::from_utf8(child.wait_with_output().expect("wait").stdout).expect("utf8");
        let mut child = git(&base_repo, &gnupghome)
            .args(["mktree"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git mktree");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("100644 blob {}\trecord-{i}.yaml\n", blob.trim()).as_bytes())
            .expect("write");
        let tree = String::from_utf8(child.wait_with_output().expect("wait").stdout).expect("utf8");
        let mut c = git(&base_repo, &gnupghome);
        c.args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.org",
            "commit-tree",
        ])
        .arg(format!("-S{fingerprint}"))
        .args(["-m", &format!("record {i}")]);
        if let Some(p) = &parent {
            c.args(["-p", p]);
        }
        c.arg(tree.trim());
        let commit = String::from_utf8(run(&mut c))
            .expect("utf8")
            .trim()
            .to_owned();
        let mut c = git(&base_repo, &gnupghome);
        c.args(["update-ref", "refs/heads/main", &commit]);
        if let Some(p) = &parent {
            c.arg(p);
        }
        run(&mut c);
        parent = Some(commit);
    }
    let baseline_rate = args.baseline_records as f64 / started.elapsed().as_secs_f64();

    // ---- seakeeper: CLI import of JSON lines. ----
    let exe = env!("CARGO_BIN_EXE_seakeeper");
    let cli_ledger = dir.join("cli-ledger.git");
    run(Command::new(exe)
        .args(["ledger", "init"])
        .arg(&cli_ledger)
        .arg("--key")
        .arg(&key_path));
    let mut jsonl = Vec::new();
    for r in sample::records(0, args.cli_records) {
        serde_json::to_writer(&mut jsonl, &r).expect("json");
        jsonl.push(b'\n');
    }
    let cli_count = jsonl.iter().filter(|&&b| b == b'\n').count();
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["ledger", "import"])
        .arg(&cli_ledger)
        .arg("--key")
        .arg(&key_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("seakeeper import");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&jsonl)
        .expect("write");
    assert!(
        child.wait().expect("wait").success(),
        "ledger import failed"
    );
    let cli_rate = cli_count as f64 / started.elapsed().as_secs_f64();
    drop(jsonl);

    // ---- seakeeper: library writer, concurrent producers, the big ledger. ----
    let ledger_path = dir.join("ledger.git");
    let mut key = SigningKey::from_bytes(&secret, "bench key").expect("key");
    Ledger::init(&ledger_path, &mut key).expect("init");
    let writer = Writer::open(&ledger_path, key, WriterOptions::default()).expect("writer");
    let producers = 4u64;
    let per_build = sample::build_records(1).len();
    let builds = (args.records / per_build) as u64 + 1;
    let started = Instant::now();
    let written: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|p| {
                let writer = writer.clone();
                s.spawn(move || {
                    let mut n = 0;
                    let mut chunk: Vec<Record> = Vec::new();
                    let mut b = p;
                    while b < builds {
                        chunk.extend(sample::build_records(b));
                        b += producers;
                        if chunk.len() >= 1000 || b >= builds {
                            let results = writer.append_all(std::mem::take(&mut chunk));
                            for r in &results {
                                r.as_ref().expect("bench records are valid");
                            }
                            n += results.len();
                        }
                    }
                    n
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("producer"))
            .sum()
    });
    let import_time = started.elapsed();
    writer.shutdown();
    let lib_rate = written as f64 / import_time.as_secs_f64();
    println!("\n## import (durable: pack and ref fsynced before acknowledging)");
    println!(
        "baseline   git CLI, 1 signed commit per record ({} records): {:>10.1} records/s",
        args.baseline_records, baseline_rate
    );
    println!(
        "seakeeper  ledger import CLI ({cli_count} records):              {:>10.0} records/s  ratio {:>7.0}x",
        cli_rate,
        cli_rate / baseline_rate
    );
    println!(
        "seakeeper  writer, {producers} producers ({written} records):         {:>10.0} records/s  ratio {:>7.0}x",
        lib_rate,
        lib_rate / baseline_rate
    );

    // ---- trace ----
    let ledger = Ledger::open(&ledger_path).expect("open");
    let digests: Vec<Digest> = (0..1000u64)
        .map(|i| (i * 7919) % builds)
        .map(|b| Digest::of(format!("image {b}").as_bytes()))
        .collect();
    let mut lat = Vec::new();
    for d in &digests {
        let t = Instant::now();
        let trace = ledger
            .snapshot()
            .expect("snapshot")
            .trace_digest(d)
            .expect("trace");
        lat.push(t.elapsed());
        assert!(trace.is_some(), "{d} must be in the ledger");
    }
    lat.sort();
    let mut cli_lat = Vec::new();
    for d in digests.iter().take(50) {
        let t = Instant::now();
        let out = Command::new(exe)
            .args(["trace", d.as_str(), "--json", "--ledger"])
            .arg(&ledger_path)
            .output()
            .expect("trace");
        cli_lat.push(t.elapsed());
        assert!(out.status.success());
    }
    cli_lat.sort();
    let mut grep_lat = Vec::new();
    for d in digests.iter().take(3) {
        let t = Instant::now();
        let out = git(&ledger_path, &gnupghome)
            .args(["log", "--format=%H", &format!("--grep={d}")])
            .output()
            .expect("git log");
        grep_lat.push(t.elapsed());
        assert!(!out.stdout.is_empty(), "git log --grep finds the digest");
    }
    grep_lat.sort();
    let grep_median = percentile(&grep_lat, 0.5);
    println!("\n## trace <digest> on a ledger of {written} records");
    println!(
        "baseline   git log --grep=<digest>:   median {:>9.2} ms",
        ms(grep_median)
    );
    println!(
        "seakeeper  in-process (1000 digests):  p50 {:>7.3} ms  p99 {:>7.3} ms  ratio (grep median / p99) {:>8.0}x",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(grep_median) / ms(percentile(&lat, 0.99))
    );
    println!(
        "seakeeper  whole CLI process (50 runs): p50 {:>7.2} ms  p99 {:>7.2} ms  ratio (grep median / p99) {:>8.0}x",
        ms(percentile(&cli_lat, 0.5)),
        ms(percentile(&cli_lat, 0.99)),
        ms(grep_median) / ms(percentile(&cli_lat, 0.99))
    );

    // ---- verify ----
    let mut ring = seakeeper::signing::Keyring::new();
    ring.add_cert_bytes(&public, "cert").expect("cert");
    let t = Instant::now();
    let report = verify(
        &ledger,
        &VerifyOptions {
            pinned: Some(ring),
            authority: None,
            history: None,
        },
    )
    .expect("the ledger verifies");
    let verify_time = t.elapsed();
    let t = Instant::now();
    let out = git(&ledger_path, &gnupghome)
        .args(["log", "--show-signature", "--format=%H %G?"])
        .output()
        .expect("git log");
    let git_time = t.elapsed();
    assert!(out.status.success());
    let good = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(" G") || l.ends_with(" U"))
        .count();
    println!(
        "\n## verify ({} commits, {} records)",
        report.commits, report.records
    );
    println!(
        "baseline   git log --show-signature ({good} good signatures): {:>8.2} s",
        git_time.as_secs_f64()
    );
    println!(
        "seakeeper  ledger verify (signatures, keys, schemas, indexes): {:>8.2} s = {:>9.0} records/s  time ratio git/seakeeper {:>5.2} (git checks the signatures only)",
        verify_time.as_secs_f64(),
        report.records as f64 / verify_time.as_secs_f64(),
        git_time.as_secs_f64() / verify_time.as_secs_f64()
    );
    let packs = std::fs::read_dir(ledger_path.join("objects/pack"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
            })
            .count()
        })
        .unwrap_or(0);
    println!("\nledger: {packs} pack(s) after geometric merging");
}
