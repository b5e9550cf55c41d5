//! Ref-watcher benchmark: a full poll pass over 2,200 projects served by the Gerrit stand-in
//! (48 refs each, one project with 100,000 change refs) and an incremental pass when one project
//! changed, against running `git ls-remote` per project in the same run (same parallelism).
//! Targets: full pass under 2 s, incremental under 100 ms.
//!
//! The stand-in is measured two ways: answering `ls-refs` in-process as Gerrit's JGit does
//! (byte-identical to git's, see tests/gerrit.rs), and through the real `git http-backend`, which
//! forks two processes per request and so measures the stand-in as much as the client.
//!
//! Run: `cargo bench --bench gerrit_poll -- [--projects N] [--big-refs N] [--threads N] [--skip-cgi]`.
//! Under `cargo test` it is a smoke test with small sizes.

#[path = "../tests/support/gerrit/mod.rs"]
mod standin;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seakeeper::gerrit::{self, RefEvent, RefSource, RefWatcher, Scope};
use seakeeper::model::{ChangeNumber, ProjectName};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A seed repository holding `n` commits; every project borrows its objects (alternates).
fn seed(root: &Path, n: usize) -> Vec<String> {
    let seed = root.join("seed.git");
    let ok = Command::new("git")
        .args(["init", "-q", "--bare"])
        .arg(&seed)
        .status()
        .unwrap();
    assert!(ok.success());
    let mut input = String::new();
    for i in 0..n {
        let data = format!("file {i}\n");
        input.push_str(&format!(
            "commit refs/heads/c{i}\nmark :{}\ncommitter B <b@example.org> {} +0000\ndata 9\ncommit {i:02}\nM 644 inline f\ndata {}\n{data}\n",
            i + 1,
            1_700_000_000 + i,
            data.len()
        ));
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(&seed)
        .args(["fast-import", "--quiet", "--export-marks=marks"])
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
    let marks = std::fs::read_to_string(seed.join("marks")).unwrap();
    marks
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect()
}

/// A bare repository written by hand: HEAD, config, alternates, and a packed-refs file.
fn project(root: &Path, name: &str, refs: &[(String, &str)]) {
    let dir = root.join(format!("{name}.git"));
    std::fs::create_dir_all(dir.join("objects/info")).unwrap();
    std::fs::create_dir_all(dir.join("refs/heads")).unwrap();
    std::fs::create_dir_all(dir.join("refs/tags")).unwrap();
    std::fs::write(dir.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::write(
        dir.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("objects/info/alternates"),
        format!("{}\n", root.join("seed.git/objects").display()),
    )
    .unwrap();
    let mut sorted: Vec<&(String, &str)> = refs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut text = String::from("# pack-refs with: peeled fully-peeled sorted \n");
    for (r, sha) in sorted {
        text.push_str(&format!("{sha} {r}\n"));
    }
    std::fs::write(dir.join("packed-refs"), text).unwrap();
}

fn change_refs(changes: std::ops::Range<u32>, commits: &[String]) -> Vec<(String, &str)> {
    let mut refs = Vec::new();
    for n in changes {
        for p in 1..=3u32 {
            let sha = &commits[(n as usize * 3 + p as usize) % commits.len()];
            refs.push((format!("refs/changes/{:02}/{n}/{p}", n % 100), sha.as_str()));
        }
        let meta = &commits[(n as usize * 7) % commits.len()];
        refs.push((
            format!("refs/changes/{:02}/{n}/meta", n % 100),
            meta.as_str(),
        ));
    }
    refs
}

fn write_loose(root: &Path, project: &str, name: &str, sha: &str) {
    let path = root.join(format!("{project}.git")).join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, format!("{sha}\n")).unwrap();
}

struct World {
    _dir: tempfile::TempDir,
    root: PathBuf,
    projects: Vec<ProjectName>,
    commits: Vec<String>,
    big: ProjectName,
}

fn world(n_projects: usize, big_refs: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("git");
    std::fs::create_dir_all(&root).unwrap();
    let commits = seed(&root, 64);
    let mut projects = Vec::new();
    for i in 0..n_projects {
        let name = format!("bench/p{i:05}");
        let c = |k: usize| commits[(i + k) % commits.len()].as_str();
        let mut refs: Vec<(String, &str)> = vec![
            ("refs/heads/main".into(), c(0)),
            ("refs/heads/stable".into(), c(1)),
            ("refs/tags/v1".into(), c(2)),
            ("refs/tags/v2".into(), c(3)),
        ];
        let first = 1000 + (i as u32) * 11;
        refs.extend(change_refs(first..first + 11, &commits));
        project(&root, &name, &refs);
        projects.push(name.parse().unwrap());
    }
    let big: ProjectName = "bench/big".parse().unwrap();
    let mut refs: Vec<(String, &str)> = vec![("refs/heads/main".into(), commits[0].as_str())];
    refs.extend(change_refs(1..(big_refs as u32 / 4 + 1), &commits));
    project(&root, big.as_str(), &refs);
    projects.push(big.clone());
    World {
        _dir: dir,
        root,
        projects,
        commits,
        big,
    }
}

struct Measured {
    first: Duration,
    full: Duration,
    incremental: Duration,
    incremental_big: Duration,
    refs: usize,
}

fn poll(w: &World, source: RefSource, threads: usize, tag: &str, change_base: u32) -> Measured {
    let state = tempfile::tempdir().unwrap();
    let watcher = RefWatcher::open(source, state.path()).unwrap();
    let all: Vec<(ProjectName, Scope)> =
        w.projects.iter().map(|p| (p.clone(), Scope::All)).collect();
    let ack = |pass: gerrit::Pass| -> (usize, usize) {
        assert!(pass.errors.is_empty(), "{tag}: {:?}", pass.errors.first());
        let mut refs = 0;
        let mut events = 0;
        for o in pass.observations {
            refs += o.listed;
            events += o.events.len();
            watcher.acknowledge(o).unwrap();
        }
        (refs, events)
    };
    // First sight: every project listed and its baseline written (one fsynced file each).
    let t = Instant::now();
    let (refs, _) = ack(gerrit::pass(&watcher, None, &all, threads));
    let first = t.elapsed();
    // The periodic full pass: everything listed and compared, nothing changed.
    let t = Instant::now();
    let (_, events) = ack(gerrit::pass(&watcher, None, &all, threads));
    let full = t.elapsed();
    assert_eq!(events, 0, "{tag}: nothing changed");
    // One project changed (a new patchset of change N and its meta): the hinted pass.
    let target = &w.projects[w.projects.len() / 2];
    let n = change_base;
    let shard = format!("refs/changes/{:02}/{n}", n % 100);
    write_loose(
        &w.root,
        target.as_str(),
        &format!("{shard}/1"),
        &w.commits[5],
    );
    write_loose(
        &w.root,
        target.as_str(),
        &format!("{shard}/meta"),
        &w.commits[6],
    );
    let change = ChangeNumber::try_from(u64::from(n)).unwrap();
    let t = Instant::now();
    let pass = gerrit::pass(
        &watcher,
        None,
        &[(target.clone(), Scope::Change(change))],
        1,
    );
    let incremental = t.elapsed();
    assert!(matches!(
        pass.observations[0].events.first(),
        Some(RefEvent::PatchsetCreated { .. })
    ));
    ack(pass);
    // The same in the project with 100,000 change refs.
    let n = change_base + 1;
    let shard = format!("refs/changes/{:02}/{n}", n % 100);
    write_loose(
        &w.root,
        w.big.as_str(),
        &format!("{shard}/1"),
        &w.commits[7],
    );
    let change = ChangeNumber::try_from(u64::from(n)).unwrap();
    let t = Instant::now();
    let pass = gerrit::pass(&watcher, None, &[(w.big.clone(), Scope::Change(change))], 1);
    let incremental_big = t.elapsed();
    assert_eq!(pass.observations[0].events.len(), 1);
    ack(pass);
    Measured {
        first,
        full,
        incremental,
        incremental_big,
        refs,
    }
}

/// `git ls-remote URL` for every project, `threads` at a time.
fn ls_remote_all(base: &str, projects: &[ProjectName], threads: usize) -> (Duration, usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let lines = std::sync::atomic::AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(p) = projects.get(i) else { break };
                    let out = Command::new("git")
                        .args(["ls-remote", &format!("{base}/{p}")])
                        .env("GIT_TERMINAL_PROMPT", "0")
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    lines.fetch_add(
                        out.stdout.iter().filter(|b| **b == b'\n').count(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
            });
        }
    });
    (t.elapsed(), lines.into_inner())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let n = arg(&args, "--projects", if bench { 2200 } else { 40 });
    let big_refs = arg(&args, "--big-refs", if bench { 100_000 } else { 2_000 });
    let threads = arg(&args, "--threads", 4);
    let skip_cgi = args.iter().any(|a| a == "--skip-cgi") || !bench;

    let t = Instant::now();
    let w = world(n, big_refs);
    println!(
        "world: {} projects (48 refs each) + 1 with {big_refs} change refs, made in {:.1} s",
        n,
        t.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    let mut modes = vec![("in-process ls-refs (as JGit)", true)];
    if !skip_cgi {
        modes.push(("git http-backend (CGI)", false));
    }
    for (i, (mode, native)) in modes.into_iter().enumerate() {
        let g = standin::Gerrit::start_with(standin::Options {
            root: Some(w.root.clone()),
            native_ls_refs: native,
            ..standin::Options::default()
        });
        let endpoint = gerrit::Endpoint::new(&g.url, None, Duration::from_secs(60)).unwrap();
        let m = poll(
            &w,
            RefSource::for_url(&g.url, Some(endpoint)).unwrap(),
            threads,
            mode,
            900_000 + 10 * i as u32,
        );
        let (base, lines) = ls_remote_all(&g.url, &w.projects, threads);
        assert!(lines >= m.refs, "ls-remote lists at least what we list");
        rows.push((mode.to_owned(), m, Some(base)));
    }
    let m = poll(
        &w,
        RefSource::for_url(w.root.to_str().unwrap(), None).unwrap(),
        threads,
        "local",
        950_000,
    );
    rows.push(("file:// (gix, no server)".to_owned(), m, None));

    println!(
        "\n{:<30} {:>11} {:>11} {:>13} {:>14} {:>16} {:>8}",
        "source", "first pass", "full pass", "incremental", "incr. (big)", "git ls-remote", "ratio"
    );
    for (mode, m, base) in &rows {
        let (b, ratio) = match base {
            Some(b) => (
                format!("{:.0} ms", ms(*b)),
                format!("{:.1}x", b.as_secs_f64() / m.full.as_secs_f64()),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<30} {:>8.0} ms {:>8.0} ms {:>10.1} ms {:>11.1} ms {:>16} {:>8}",
            mode,
            ms(m.first),
            ms(m.full),
            ms(m.incremental),
            ms(m.incremental_big),
            b,
            ratio
        );
    }
    println!(
        "\nrefs listed per full pass: {}; {} threads; targets: full pass < 2000 ms, incremental < 100 ms",
        rows[0].1.refs, threads
    );
    println!("ratio = git ls-remote per project (same parallelism) / seakeeper's full pass");
}
