//! Config loading benchmark: a config repo of 2,200 projects, loaded at a commit straight from
//! git objects (cold), and reloaded after one file changed (only the changed blob read and
//! re-parsed), against the baseline of re-parsing every file from a checkout, in the same run.
//! Targets: cold under 200 ms, one-file reload under 10 ms.
//!
//! Run: `cargo bench --bench config -- [--projects N]`. Under `cargo test` it is a smoke test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use seakeeper::config::{self, Loader, SourceFile};
use seakeeper::git::files::{self, BlobCache};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .args(["-c", "user.name=b", "-c", "user.email=b@example.org"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn source(files: BTreeMap<String, (gix::ObjectId, Arc<[u8]>)>) -> BTreeMap<String, SourceFile> {
    files
        .into_iter()
        .map(|(p, (id, bytes))| {
            (
                p,
                SourceFile {
                    key: id.to_string(),
                    bytes,
                },
            )
        })
        .collect()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mut projects = if bench { 2200 } else { 200 };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--projects" {
            projects = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--projects takes a number");
        }
    }
    let runs = if bench { 15 } else { 3 };
    let tmp = tempfile::tempdir().expect("temp dir");
    let world = tmp.path().join("world");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make-sample-world");
    assert!(
        Command::new(&script)
            .arg(&world)
            .output()
            .expect("make-sample-world")
            .status
            .success()
    );
    let repo_dir = world.join("config");
    for i in 0..projects {
        let group = i / 100;
        let path = repo_dir.join(format!(
            "projects/wikimedia/group{group:02}/project{i:04}.yaml"
        ));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        let deps = if i % 100 == 0 {
            String::new()
        } else {
            format!(
                "depends_on: [wikimedia/group{group:02}/project{:04}]\n",
                group * 100
            )
        };
        let images = if i % 10 == 0 {
            format!("images: [image{i:04}]\n")
        } else {
            String::new()
        };
        std::fs::write(&path, format!("queue: group{group:02}\npipelines: [check, gate, post-merge]\n{deps}{images}branches: [main, wmf/1.{i}]\n")).expect("write");
    }
    git(&repo_dir, &["add", "-A"]);
    git(&repo_dir, &["commit", "--quiet", "-m", "2200 projects"]);
    let c1 = git(&repo_dir, &["rev-parse", "HEAD"]);
    let changed = repo_dir.join("projects/wikimedia/group00/project0001.yaml");
    std::fs::write(
        &changed,
        "queue: group00\npipelines: [check, gate]\ndepends_on: [wikimedia/group00/project0000]\n",
    )
    .expect("write");
    git(
        &repo_dir,
        &["commit", "--quiet", "-am", "one project changes"],
    );
    let c2 = git(&repo_dir, &["rev-parse", "HEAD"]);
    let repo = gix::open_opts(&repo_dir, gix::open::Options::isolated()).expect("open");
    let id = |c: &str| gix::ObjectId::from_hex(c.as_bytes()).expect("id");
    let file_count = files::read_all(&repo, &id(&c1)).expect("read").len();

    // Cold: nothing cached, from git objects.
    let mut cold = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let r = gix::open_opts(&repo_dir, gix::open::Options::isolated()).expect("open");
        let commit = files::resolve(&r, &c1).expect("resolve");
        let f = files::read_all_cached(&r, &commit, &mut BlobCache::new()).expect("read");
        let loaded = Loader::new().load(&c1, &source(f));
        cold.push(t.elapsed());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors.first());
    }

    // Reload after one file changed, alternating between the two commits.
    let mut loader = Loader::new();
    let mut blobs = BlobCache::new();
    let f = files::read_all_cached(&repo, &id(&c1), &mut blobs).expect("read");
    loader.load(&c1, &source(f));
    let mut reload = Vec::new();
    for i in 0..runs * 2 {
        let c = if i % 2 == 0 { &c2 } else { &c1 };
        let t = Instant::now();
        let f = files::read_all_cached(&repo, &id(c), &mut blobs).expect("read");
        let loaded = loader.load(c, &source(f));
        reload.push(t.elapsed());
        assert!(loaded.errors.is_empty());
    }

    // Baseline: re-parse everything from a checkout.
    let checkout = tmp.path().join("checkout");
    assert!(
        Command::new("git")
            .args(["clone", "--quiet"])
            .arg(&repo_dir)
            .arg(&checkout)
            .output()
            .expect("clone")
            .status
            .success()
    );
    let mut baseline = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut all = BTreeMap::new();
        let mut stack = vec![checkout.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("read_dir") {
                let p = e.expect("entry").path();
                if p.file_name().is_some_and(|n| n == ".git") {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(&checkout)
                        .expect("prefix")
                        .to_string_lossy()
                        .into_owned();
                    all.insert(rel, std::fs::read(&p).expect("read"));
                }
            }
        }
        let layout = config::load(&all);
        baseline.push(t.elapsed());
        assert!(layout.is_ok());
    }
    let (cold, reload, baseline) = (median(cold), median(reload), median(baseline));
    println!(
        "# config loading: {projects} generated projects ({file_count} files in the config repo)"
    );
    println!(
        "baseline   re-parse every file from a checkout:      median {:>8.2} ms",
        ms(baseline)
    );
    println!(
        "seakeeper  cold load at a commit from git objects:   median {:>8.2} ms  ratio {:>5.1}x  (target < 200 ms)",
        ms(cold),
        ms(baseline) / ms(cold)
    );
    println!(
        "seakeeper  reload after one file changed:            median {:>8.2} ms  ratio {:>5.1}x  (target < 10 ms)",
        ms(reload),
        ms(baseline) / ms(reload)
    );
}
