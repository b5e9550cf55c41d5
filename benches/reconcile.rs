//! Reconciler benchmarks, each against a baseline measured in the same run:
//!
//! 1. `plan()` over a World of 2,200 projects and 500 open changes (plus builds in flight and
//!    promotions), against one deep clone of that World (the least any look at all of it costs).
//!    Target: under 5 ms.
//! 2. Latency through `seakeeper`'s own daemon loop (in-process, local executor with
//!    bubblewrap, the Gerrit stand-in streaming events): a new patchset becoming visible (its
//!    push returned) to its job starting (the job log's first line), and the job ending (its
//!    state file) to the Gerrit review being posted. Baselines: the `git push` itself, and one
//!    bare REST review post. Target: p99 under 100 ms each.
//! 3. A simulated Wikimedia day: `seakeeper serve` as its own process over 2,200 projects
//!    (file:// repositories), 5,000 patchsets arriving in waves, 40 jobs at once, a fast fake
//!    job: the daemon's own CPU time and peak resident memory, against the same daemon idling
//!    over the same world. Target: under 150 MB resident.
//!
//! 4. The gate (issue 16): a Code-Review+2 becoming visible (the vote's REST call returned) to
//!    the change's first gate job starting, through the same daemon loop. Baseline: the REST
//!    vote itself. Target: p99 under 100 ms.
//!
//! Run: `cargo bench --bench reconcile -- [--plan] [--latency] [--enter] [--day] [--samples N]
//! [--patchsets N] [--projects N]` (all three by default). Under `cargo test` it is a smoke run
//! with small sizes.

#[path = "../tests/support/gerrit/mod.rs"]
mod standin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use seakeeper::config::pipeline;
use seakeeper::model::record::BuildRequest;
use seakeeper::model::{
    BuildId, ChangeNumber, CommitId, Digest, JobState, ProjectName, RefName, Timestamp, Trust,
};
use seakeeper::reconcile::{self, BuildState, ConfigState, DigestFacts, JobRun, Patchset, World};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

const IMAGE: &str = "registry.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn pipeline_file(test: &str) -> String {
    format!(
        "jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"{test}\"]\n    timeout: 1m\npipelines:\n  check: [unit]\n"
    )
}

// ---- 1. plan() ---------------------------------------------------------------------------

fn plan_bench(projects: usize, changes: usize, iterations: usize) {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        "seakeeper.yaml".into(),
        b"public_url: https://ci.example.org\nregistries:\n  t: { url: \"oci:/tmp/t\" }\n  s: { url: \"oci:/tmp/s\" }\n  p: { url: \"oci:/tmp/p\" }\n".to_vec(),
    );
    files.insert(
        "environments.yaml".into(),
        b"environments:\n  - {name: testing, registry: t}\n  - {name: staging, registry: s}\n  - {name: production, registry: p}\n".to_vec(),
    );
    let mut staging = String::from("images:\n");
    for i in 0..projects {
        let images = if i % 44 == 0 {
            staging.push_str(&format!(
                "  img{i}: {}\n",
                Digest::of(format!("{i}").as_bytes())
            ));
            format!("images: [img{i}]\n")
        } else {
            String::new()
        };
        let deps = if i % 10 == 1 {
            "depends_on: [p0000]\n".to_owned()
        } else {
            String::new()
        };
        files.insert(
            format!("projects/p{i:04}.yaml"),
            format!("pipelines: [check, post-merge]\n{deps}{images}").into_bytes(),
        );
    }
    files.insert("promotions/staging.yaml".into(), staging.into_bytes());
    files.insert(
        "freezes/eoy.yaml".into(),
        b"scope: [\"promote:production\"]\nreason: End of year.\n".to_vec(),
    );
    let t = Instant::now();
    let layout = seakeeper::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"));
    let load = t.elapsed();
    let zero: CommitId = "0000000000000000000000000000000000000000".parse().unwrap();
    let mut world = World::new(
        Timestamp::now(),
        ConfigState {
            head: zero.clone(),
            layout_commit: zero.clone(),
            author: "RelEng".into(),
            errors: Vec::new(),
            unreported: None,
        },
    );
    world.capacity = 40;
    let names: Vec<ProjectName> = layout.projects.keys().cloned().collect();
    let text = pipeline_file("true");
    for (i, p) in names.iter().enumerate() {
        let commit: CommitId = format!("{:040x}", i + 1).parse().unwrap();
        let main: RefName = "refs/heads/main".parse().unwrap();
        world.tips.insert((p.clone(), main), commit.clone());
        if i < changes || i % 5 == 0 {
            let resolved = pipeline::check(pipeline::PIPELINE_FILE, &text, Some(p), Some(&layout))
                .map(Arc::new)
                .map_err(|e| format!("{e:?}"));
            world.pipelines.insert((p.clone(), commit), resolved);
        }
    }
    // Open changes, most already built (their ids done), some in flight with running jobs.
    for i in 0..changes {
        let p = &names[i % names.len()];
        let commit: CommitId = format!("{:040x}", i % names.len() + 1).parse().unwrap();
        let n = ChangeNumber::try_from(10_000 + i as u64).unwrap();
        let ps = Patchset {
            patchset: 1u64.try_into().unwrap(),
            git_ref: format!("refs/changes/{:02}/{n}/1", n.get() % 100)
                .parse()
                .unwrap(),
            commit,
            rechecks: 0,
            review: None,
        };
        let id = reconcile::check_build_id(p, n, &ps);
        if i % 5 == 0 {
            world.builds.insert(
                id.clone(),
                BuildState {
                    request: BuildRequest {
                        build_id: id.clone(),
                        pipeline: "check".parse().unwrap(),
                        project: p.clone(),
                        change: Some(n),
                        patchset: Some(ps.patchset),
                        git_ref: ps.git_ref.clone(),
                        source_commit: ps.commit.clone(),
                        config_commit: zero.clone(),
                        trust: Trust::Untrusted,
                        requested_at: world.now,
                        jobs: vec!["unit".into()],
                        cause: None,
                    },
                    result: None,
                    reported: false,
                    cancelled: false,
                    jobs: BTreeMap::from([(
                        "unit".to_owned(),
                        JobRun {
                            attempt: 1,
                            state: Some(JobState::Running),
                        },
                    )]),
                    depth: 0,
                    recorded: None,
                    landed: None,
                },
            );
        } else {
            world.done.insert(id);
        }
        world.changes.insert((p.clone(), n), ps);
    }
    for i in 0..5_000u64 {
        world
            .done
            .insert(format!("check-{i:016x}").parse::<BuildId>().unwrap());
    }
    for (env, images) in &layout.promotions {
        for (img, d) in images {
            world.digests.insert(
                d.clone(),
                DigestFacts {
                    provenance: seakeeper::policy::promotion::Provenance::Trusted,
                    images: [img.clone()].into(),
                    problem: None,
                    entered: BTreeMap::from([(
                        ("testing".parse().unwrap(), img.clone()),
                        world.now,
                    )]),
                },
            );
            if img.as_str().ends_with('0') {
                world
                    .deployed
                    .insert((env.clone(), img.clone()), (d.clone(), world.now));
            }
        }
    }
    let actions = reconcile::plan(&world, &layout);
    assert!(
        actions.is_empty()
            || actions
                .iter()
                .all(|a| !matches!(a, reconcile::Action::RequestBuild { .. }))
    );
    let mut plan_ms = Vec::new();
    let mut clone_ms = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let a = reconcile::plan(&world, &layout);
        plan_ms.push(ms(t.elapsed()));
        std::hint::black_box(a);
        let t = Instant::now();
        let c = world.clone();
        clone_ms.push(ms(t.elapsed()));
        std::hint::black_box(c);
    }
    let (p50, p99) = (
        percentile(&mut plan_ms, 0.5),
        percentile(&mut plan_ms, 0.99),
    );
    let c50 = percentile(&mut clone_ms, 0.5);
    println!(
        "plan: {} projects, {} open changes, {} builds in flight, {} ids done, {} actions planned; \
         layout loaded in {:.1} ms",
        names.len(),
        world.changes.len(),
        world.builds.len(),
        world.done.len(),
        actions.len(),
        ms(load)
    );
    println!(
        "plan: median {p50:.3} ms, p99 {p99:.3} ms (target 5 ms); baseline one World clone: median \
         {c50:.3} ms; plan/clone = {:.2}x",
        p50 / c50
    );
}

// ---- 2. latency --------------------------------------------------------------------------

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn system_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

fn log_first_time(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let first = text.lines().next()?;
    let t: jiff::Timestamp = first.split(' ').next()?.parse().ok()?;
    Some(t.as_millisecond() as f64 + f64::from(t.subsec_nanosecond() % 1_000_000) / 1e6)
}

fn latency_bench(samples: usize) {
    let dir = tempfile::tempdir().unwrap();
    let g = standin::Gerrit::start();
    g.create_project("acme/api");
    let (secret, _) = seakeeper::signing::generate_key("bench <b@example.org>").unwrap();
    std::fs::write(dir.path().join("key.asc"), secret).unwrap();
    std::fs::set_permissions(
        dir.path().join("key.asc"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("projects/acme")).unwrap();
    git(&config, &["init", "-q", "-b", "main"]);
    let d = dir.path().display();
    std::fs::write(
        config.join("seakeeper.yaml"),
        format!(
            "public_url: https://ci.example.org\ngerrit:\n  url: {}\n  user: ci-bot\n  stream_command: \"{}\"\nregistries:\n  t: {{ url: \"oci:{d}/t\" }}\nexecutor:\n  concurrency: 4\n",
            g.url,
            g.stream_command().replace('"', "\\\"")
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("environments.yaml"),
        "environments:\n  - {name: testing, registry: t}\n",
    )
    .unwrap();
    std::fs::write(
        config.join("projects/acme/api.yaml"),
        "pipelines: [check]\n",
    )
    .unwrap();
    git(&config, &["add", "-A"]);
    git(&config, &["commit", "-q", "-m", "config"]);
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(
        &secrets,
        "gerrit:\n  username: ci-bot\n  password: ci-bot-http-token\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &secrets,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let settings_path = dir.path().join("settings.yaml");
    std::fs::write(
        &settings_path,
        format!(
            "state_dir: state\nsigning_key: key.asc\nsecrets: secrets.yaml\nconfig_repo: {}\nhost_tools: true\n",
            config.display()
        ),
    )
    .unwrap();
    let settings = seakeeper::daemon::Settings::load(&settings_path).unwrap();
    let lines: Arc<Mutex<Vec<(SystemTime, String)>>> = Arc::default();
    let sink = lines.clone();
    let reporter: seakeeper::apply::Reporter = Arc::new(move |l: &str| {
        sink.lock().unwrap().push((SystemTime::now(), l.to_owned()));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let daemon = std::thread::spawn(move || {
        let mut d = seakeeper::daemon::Daemon::open(
            settings,
            seakeeper::daemon::Options {
                reporter,
                concurrency: None,
                supervisor: None,
                init_ledger: true,
            },
        )
        .unwrap();
        d.serve(&stop2, Duration::from_secs(600), Duration::from_secs(5))
            .unwrap();
    });
    // Let the first full pass take its baseline and the stream connect.
    std::thread::sleep(Duration::from_millis(2500));
    let work = dir.path().join("work");
    let out = Command::new("git")
        .args(["clone", "-q", &g.git_url("acme/api")])
        .arg(&work)
        .output()
        .unwrap();
    assert!(out.status.success());
    let state = dir.path().join("state");
    let rest = seakeeper::gerrit::Rest::new(
        &g.url,
        Some(seakeeper::gerrit::Credentials::new("bob", "bob-http-token")),
        Duration::from_secs(10),
    )
    .unwrap();
    let (mut start_lat, mut review_lat, mut push_ms, mut rest_ms) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let change_id = "I00000000000000000000000000000000000000bb";
    for i in 0..samples {
        std::fs::create_dir_all(work.join(".pipeline")).unwrap();
        std::fs::write(work.join(".pipeline/config.yaml"), pipeline_file("true")).unwrap();
        std::fs::write(work.join("n.txt"), format!("{i}\n")).unwrap();
        git(&work, &["add", "-A"]);
        let msg = format!("Sample {i}\n\nChange-Id: {change_id}\n");
        if i == 0 {
            git(&work, &["commit", "-q", "-m", &msg]);
        } else {
            git(&work, &["commit", "-q", "--amend", "-m", &msg]);
        }
        let before = lines.lock().unwrap().len();
        let t = Instant::now();
        git(
            &work,
            &[
                "push",
                "-q",
                &g.push_url("acme/api", "alice"),
                "HEAD:refs/for/main",
            ],
        );
        push_ms.push(ms(t.elapsed()));
        let visible = system_ms(SystemTime::now());
        // Wait for the report.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (build, reported_at) = loop {
            assert!(Instant::now() < deadline, "no report for sample {i}");
            let l = lines.lock().unwrap();
            let build = l[before..].iter().find_map(|(_, t)| {
                t.split(" build ")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .filter(|_| t.contains("requested"))
                    .map(str::to_owned)
            });
            let reported = l[before..]
                .iter()
                .find(|(_, t)| t.contains("reported to Gerrit"))
                .map(|(at, _)| *at);
            if let (Some(b), Some(at)) = (build, reported) {
                break (b, at);
            }
            drop(l);
            std::thread::sleep(Duration::from_millis(2));
        };
        let job = state.join("jobs").join(&build).join("unit");
        let started = log_first_time(&job.join("log")).expect("a job log");
        let ended = system_ms(
            std::fs::metadata(job.join("state.json"))
                .unwrap()
                .modified()
                .unwrap(),
        );
        start_lat.push(started - visible);
        review_lat.push(system_ms(reported_at) - ended);
        // Baseline: one bare review post.
        let t = Instant::now();
        rest.post_review(
            &"acme/api".parse().unwrap(),
            1u64.try_into().unwrap(),
            "current",
            &seakeeper::gerrit::ReviewInput::for_pipeline("bench", "baseline", None),
        )
        .unwrap();
        rest_ms.push(ms(t.elapsed()));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    daemon.join().unwrap();
    let p = |v: &mut Vec<f64>| (percentile(v, 0.5), percentile(v, 0.99));
    let (s50, s99) = p(&mut start_lat);
    let (r50, r99) = p(&mut review_lat);
    let (g50, _) = p(&mut push_ms);
    let (b50, _) = p(&mut rest_ms);
    println!(
        "latency: {samples} patchsets, local executor (bubblewrap), stand-in Gerrit with stream-events"
    );
    println!(
        "latency: patchset visible -> job started: median {s50:.1} ms, p99 {s99:.1} ms (target 100 ms); \
         baseline git push median {g50:.1} ms; p99/push = {:.2}x",
        s99 / g50
    );
    println!(
        "latency: job ended -> review posted: median {r50:.1} ms, p99 {r99:.1} ms (target 100 ms); \
         baseline one REST review post median {b50:.1} ms; p99/post = {:.2}x",
        r99 / b50
    );
}

// ---- 4. the gate: +2 -> first gate job ----------------------------------------------------

/// A daemon in this process, with the stand-in streaming events, for `pipelines` of acme/api;
/// returns its directory, the stand-in, the reporter's lines and the stop flag.
type Site = (
    tempfile::TempDir,
    standin::Gerrit,
    Arc<Mutex<Vec<(SystemTime, String)>>>,
    Arc<AtomicBool>,
    std::thread::JoinHandle<()>,
);

fn daemon_site(pipelines: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let g = standin::Gerrit::start();
    g.create_project("acme/api");
    let (secret, _) = seakeeper::signing::generate_key("bench <b@example.org>").unwrap();
    let write_private = |name: &str, text: &[u8]| {
        std::fs::write(dir.path().join(name), text).unwrap();
        std::fs::set_permissions(
            dir.path().join(name),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    };
    write_private("key.asc", &secret);
    write_private(
        "secrets.yaml",
        b"gerrit:\n  username: ci-bot\n  password: ci-bot-http-token\n",
    );
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("projects/acme")).unwrap();
    git(&config, &["init", "-q", "-b", "main"]);
    let d = dir.path().display();
    write(
        &config.join("seakeeper.yaml"),
        &format!(
            "public_url: https://ci.example.org\ngerrit:\n  url: {}\n  user: ci-bot\n  stream_command: \"{}\"\nregistries:\n  t: {{ url: \"oci:{d}/t\" }}\nexecutor:\n  concurrency: 4\n",
            g.url,
            g.stream_command().replace('"', "\\\"")
        ),
    );
    write(
        &config.join("environments.yaml"),
        "environments:\n  - {name: testing, registry: t}\n",
    );
    write(
        &config.join("projects/acme/api.yaml"),
        &format!("pipelines: [{pipelines}]\n"),
    );
    git(&config, &["add", "-A"]);
    git(&config, &["commit", "-q", "-m", "config"]);
    let settings_path = dir.path().join("settings.yaml");
    write(
        &settings_path,
        &format!(
            "state_dir: state\nsigning_key: key.asc\nsecrets: secrets.yaml\nconfig_repo: {}\nhost_tools: true\n",
            config.display()
        ),
    );
    let settings = seakeeper::daemon::Settings::load(&settings_path).unwrap();
    let lines: Arc<Mutex<Vec<(SystemTime, String)>>> = Arc::default();
    let sink = lines.clone();
    let reporter: seakeeper::apply::Reporter = Arc::new(move |l: &str| {
        sink.lock().unwrap().push((SystemTime::now(), l.to_owned()));
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let daemon = std::thread::spawn(move || {
        let mut d = seakeeper::daemon::Daemon::open(
            settings,
            seakeeper::daemon::Options {
                reporter,
                concurrency: None,
                supervisor: None,
                init_ledger: true,
            },
        )
        .unwrap();
        d.serve(&stop2, Duration::from_secs(600), Duration::from_secs(5))
            .unwrap();
    });
    (dir, g, lines, stop, daemon)
}

fn enter_bench(samples: usize) {
    let (dir, g, lines, stop, daemon) = daemon_site("gate");
    let work = dir.path().join("work");
    let out = Command::new("git")
        .args(["clone", "-q", &g.git_url("acme/api")])
        .arg(&work)
        .output()
        .unwrap();
    assert!(out.status.success());
    // The pipeline file on main first; each change lands before the next is voted.
    std::fs::create_dir_all(work.join(".pipeline")).unwrap();
    std::fs::write(
        work.join(".pipeline/config.yaml"),
        pipeline_file("true").replace("  check: [unit]", "  gate: [unit]"),
    )
    .unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "pipeline"]);
    git(
        &work,
        &[
            "push",
            "-q",
            &g.push_url("acme/api", "alice"),
            "HEAD:refs/heads/main",
        ],
    );
    std::thread::sleep(Duration::from_millis(2500));
    let state = dir.path().join("state");
    let rest = seakeeper::gerrit::Rest::new(
        &g.url,
        Some(seakeeper::gerrit::Credentials::new("bob", "bob-http-token")),
        Duration::from_secs(10),
    )
    .unwrap();
    let (mut enter, mut vote_ms) = (Vec::new(), Vec::new());
    for i in 0..samples {
        git(&work, &["fetch", "-q", "origin", "main"]);
        git(&work, &["checkout", "-q", "--detach", "FETCH_HEAD"]);
        std::fs::write(work.join("n.txt"), format!("{i}\n")).unwrap();
        git(&work, &["add", "-A"]);
        let msg = format!("Sample {i}\n\nChange-Id: I{:040x}\n", 0xe000 + i);
        git(&work, &["commit", "-q", "-m", &msg]);
        git(
            &work,
            &[
                "push",
                "-q",
                &g.push_url("acme/api", "alice"),
                "HEAD:refs/for/main",
            ],
        );
        // Let the daemon see the patchset (and read its pipeline file) first: what is
        // measured is the vote.
        std::thread::sleep(Duration::from_millis(300));
        let before = lines.lock().unwrap().len();
        let change: ChangeNumber = u64::try_from(i + 1).unwrap().try_into().unwrap();
        let t = Instant::now();
        let mut vote = seakeeper::gerrit::ReviewInput::for_pipeline("bench", "+2", None);
        vote.tag = None;
        vote.labels.insert("Code-Review".into(), 2);
        rest.post_review(&"acme/api".parse().unwrap(), change, "current", &vote)
            .unwrap();
        vote_ms.push(ms(t.elapsed()));
        let visible = system_ms(SystemTime::now());
        let deadline = Instant::now() + Duration::from_secs(30);
        let build = loop {
            assert!(Instant::now() < deadline, "no gate build for sample {i}");
            let l = lines.lock().unwrap();
            let build = l[before..].iter().find_map(|(_, t)| {
                t.strip_prefix("[gate] ")
                    .filter(|t| t.contains("requested"))
                    .and_then(|t| t.split(" build ").nth(1))
                    .and_then(|r| r.split_whitespace().next())
                    .map(str::to_owned)
            });
            let landed = l[before..].iter().any(|(_, t)| t.contains("landed as"));
            if let (Some(b), true) = (build, landed) {
                break b;
            }
            drop(l);
            std::thread::sleep(Duration::from_millis(2));
        };
        let log = state.join("jobs").join(&build).join("unit/log");
        let started = log_first_time(&log).expect("a job log");
        enter.push(started - visible);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    daemon.join().unwrap();
    let (e50, e99) = (percentile(&mut enter, 0.5), percentile(&mut enter, 0.99));
    let v50 = percentile(&mut vote_ms, 0.5);
    println!("enter: {samples} changes approved one after the other, each landing before the next");
    println!(
        "enter: Code-Review+2 visible -> first gate job started: median {e50:.1} ms, p99 {e99:.1} ms \
         (target 100 ms); baseline the REST vote median {v50:.1} ms; p99/vote = {:.2}x",
        e99 / v50
    );
}

// ---- 3. a simulated day -------------------------------------------------------------------

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A minimal bare repository borrowing `seed`'s objects, its main at `commit`.
fn light_repo(path: &Path, seed: &Path, main: &str) {
    write(&path.join("HEAD"), "ref: refs/heads/main\n");
    write(
        &path.join("config"),
        "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
    );
    write(
        &path.join("objects/info/alternates"),
        &format!("{}\n", seed.join("objects").display()),
    );
    write(&path.join("refs/heads/main"), &format!("{main}\n"));
}

/// A process's own CPU seconds and those of the children it waited for (the jobs' supervisors
/// and jobs), from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, r)| {
            r.split_whitespace()
                .map(|f| f.parse().unwrap_or(0.0))
                .collect()
        })
        .unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let sum =
        |a: usize, b: usize| (fields.get(a).unwrap_or(&0.0) + fields.get(b).unwrap_or(&0.0)) / tick;
    (sum(11, 12), sum(13, 14))
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn proc_stat(pid: u32) -> (f64, u64) {
    (cpu_seconds(pid).0, status_kb(pid, "VmHWM"))
}

fn children_cpu(pid: u32) -> f64 {
    cpu_seconds(pid).1
}

fn vm_rss_kb(pid: u32) -> u64 {
    status_kb(pid, "VmRSS")
}

/// The daemon's resident memory by mapping (heap, stacks, files), largest first.
fn mappings(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let mut current = String::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().next().is_some_and(|c| c.is_ascii_hexdigit()) {
            current = line
                .split_whitespace()
                .nth(5)
                .unwrap_or("[anon]")
                .to_owned();
            if current.contains("/objects/pack/") {
                current = "[git packs]".into();
            }
        } else if let Some(kb) = line.strip_prefix("Rss:") {
            *by.entry(current.clone()).or_default() += kb
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .unwrap_or(0);
        }
    }
    let mut v: Vec<_> = by.into_iter().collect();
    v.sort_by_key(|(_, kb)| std::cmp::Reverse(*kb));
    v.iter()
        .take(6)
        .map(|(name, kb)| format!("{:.1} MB {name}", *kb as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(", ")
}

fn day_bench(projects: usize, patchsets: usize, idle_secs: u64) {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_seakeeper"));
    let dir = tempfile::tempdir().unwrap();
    // SEAKEEPER_BENCH_KEEP=1 leaves the day's world (ledger, state, repositories) behind.
    let (_dir, root) = match std::env::var_os("SEAKEEPER_BENCH_KEEP") {
        Some(_) => {
            let kept = dir.keep();
            println!("day: the world stays in {}", kept.display());
            (None, kept)
        }
        None => {
            let root = dir.path().to_owned();
            (Some(dir), root)
        }
    };
    let root = root.as_path();
    let seed = root.join("seed");
    std::fs::create_dir_all(&seed).unwrap();
    git(&seed, &["init", "-q", "-b", "main"]);
    write(&seed.join(".pipeline/config.yaml"), &pipeline_file("true"));
    write(&seed.join("README"), "project\n");
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "base"]);
    let main = git(&seed, &["rev-parse", "HEAD"]);
    write(&seed.join("README"), "a change\n");
    git(&seed, &["commit", "-q", "-am", "a change"]);
    let change = git(&seed, &["rev-parse", "HEAD"]);
    let seed_git = seed.join(".git");
    let repos = root.join("git");
    let config = root.join("config");
    std::fs::create_dir_all(&config).unwrap();
    git(&config, &["init", "-q", "-b", "main"]);
    write(
        &config.join("seakeeper.yaml"),
        &format!(
            "public_url: https://ci.example.org\ngerrit:\n  url: file://{}\n  report: false\nregistries:\n  t: {{ url: \"oci:{}/t\" }}\nexecutor:\n  concurrency: 40\n",
            repos.display(),
            root.display()
        ),
    );
    write(
        &config.join("environments.yaml"),
        "environments:\n  - {name: testing, registry: t}\n",
    );
    let names: Vec<String> = (0..projects).map(|i| format!("p{i:04}")).collect();
    for n in &names {
        light_repo(&repos.join(format!("{n}.git")), &seed_git, &main);
        write(
            &config.join(format!("projects/{n}.yaml")),
            "pipelines: [check]\n",
        );
    }
    git(&config, &["add", "-A"]);
    git(&config, &["commit", "-q", "-m", "config"]);
    let (secret, _) = seakeeper::signing::generate_key("bench <b@example.org>").unwrap();
    std::fs::write(root.join("key.asc"), secret).unwrap();
    std::fs::set_permissions(
        root.join("key.asc"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        root.join("settings.yaml"),
        format!(
            "state_dir: state\nsigning_key: key.asc\nconfig_repo: {}\nsandbox: none\nhost_tools: true\n",
            config.display()
        ),
    )
    .unwrap();
    // SEAKEEPER_BENCH_WRAP=heaptrack (or another profiler) runs the daemon under it.
    let mut command = match std::env::var("SEAKEEPER_BENCH_WRAP") {
        Ok(w) if !w.is_empty() => {
            let mut c = Command::new(w);
            c.arg(&exe);
            c
        }
        _ => Command::new(&exe),
    };
    let mut child = command
        .args([
            "serve",
            "--init-ledger",
            "--full-every",
            "2",
            "--concurrency",
            "40",
            "--settings",
        ])
        .arg(root.join("settings.yaml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let reported = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reported.clone();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.starts_with("Build-Id: ") {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    // The baseline: the same daemon, idle over the same world (after its first full pass).
    std::thread::sleep(Duration::from_secs(idle_secs));
    let (idle_cpu, idle_hwm) = proc_stat(pid);
    let idle_children = children_cpu(pid);
    // Resident memory over the day, sampled every 50 ms: (builds reported, kB).
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        let status_path = root.join("state/status.json");
        let reported = reported.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let mut heap = (0u64, 0u64);
            let mut tick = 0u64;
            let (mut top, mut at_top) = (0u64, String::new());
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let rss = vm_rss_kb(pid);
                samples.push((reported.load(std::sync::atomic::Ordering::Relaxed), rss));
                // What the memory is, each time it reaches a new high (by 2 MB).
                if rss > top + 2048 {
                    top = rss;
                    at_top = mappings(pid);
                }
                // The daemon's own view (status.json, rewritten about once a second).
                tick += 1;
                if tick.is_multiple_of(20)
                    && let Some(m) = std::fs::read(&status_path)
                        .ok()
                        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                        .and_then(|v| v.get("memory").cloned())
                {
                    let kb = |k: &str| m.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
                    heap.0 = heap.0.max(kb("heap_in_use_kb"));
                    heap.1 = heap.1.max(kb("heap_free_kb"));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (samples, heap, at_top)
        })
    };
    // The day: patchsets in waves of 250 across random projects.
    let started = Instant::now();
    let mut created = 0;
    let mut n = 1u64;
    let mut rng = 0x2545F4914F6CDD1Du64;
    while created < patchsets {
        let wave = 250.min(patchsets - created);
        for _ in 0..wave {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let p = &names[(rng % names.len() as u64) as usize];
            write(
                &repos.join(format!("{p}.git/refs/changes/{:02}/{n}/1", n % 100)),
                &format!("{change}\n"),
            );
            n += 1;
            created += 1;
        }
        let target = created;
        let deadline = Instant::now() + Duration::from_secs(120);
        while reported.load(std::sync::atomic::Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "the daemon fell behind at {target}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let elapsed = started.elapsed();
    let (cpu, hwm) = proc_stat(pid);
    let children = children_cpu(pid) - idle_children;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (samples, heap, at_top) = sampler.join().unwrap();
    println!("day: resident at the highest sample: {at_top}");
    println!("day: resident at the end: {}", mappings(pid));
    // Where in the day resident memory was highest, and how it moved: the highest sample in
    // each tenth of the builds.
    if let Some(&(at, kb)) = samples.iter().max_by_key(|(_, kb)| *kb) {
        let tenths: Vec<String> = (0..10)
            .map(|t| {
                let (lo, hi) = (patchsets * t / 10, patchsets * (t + 1) / 10);
                let max = samples
                    .iter()
                    .filter(|(r, _)| *r >= lo && *r < hi)
                    .map(|(_, kb)| *kb)
                    .max()
                    .unwrap_or(0);
                format!("{:.0}", max as f64 / 1024.0)
            })
            .collect();
        println!(
            "day: highest sampled RSS {:.1} MB after {at} builds; highest per tenth of the day (MB): {}",
            kb as f64 / 1024.0,
            tenths.join(" ")
        );
        println!(
            "day: the daemon's allocator (status.json, once a second): at most {:.1} MB in use, at most {:.1} MB freed but kept",
            heap.0 as f64 / 1024.0,
            heap.1 as f64 / 1024.0
        );
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    let _ = reader.join();
    println!(
        "day: {projects} projects, {patchsets} patchsets checked and reported in {:.1} s ({:.0} builds/s), 40 jobs at once",
        elapsed.as_secs_f64(),
        patchsets as f64 / elapsed.as_secs_f64()
    );
    println!(
        "day: the jobs' supervisors and the jobs themselves (the daemon's children): CPU {children:.1} s ({:.2} ms per build)",
        children * 1000.0 / patchsets as f64
    );
    println!(
        "day: daemon CPU {:.1} s ({:.2} ms per build), peak RSS {:.1} MB (target 150 MB); baseline \
         idle over the same world for {idle_secs} s: CPU {:.1} s, peak RSS {:.1} MB; RSS day/idle = {:.2}x",
        cpu - idle_cpu,
        (cpu - idle_cpu) * 1000.0 / patchsets as f64,
        hwm as f64 / 1024.0,
        idle_cpu,
        idle_hwm as f64 / 1024.0,
        hwm as f64 / idle_hwm.max(1) as f64
    );
    ledger_size(&root.join("state/ledger"), patchsets);
}

/// The ledger's size on disk after the day, against git's own repack of a copy of it (deltas
/// found by a window search: what `git gc --aggressive` would leave).
fn ledger_size(ledger: &Path, builds: usize) {
    let size = |dir: &Path| -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = std::fs::symlink_metadata(p) else {
                return 0;
            };
            if m.is_dir() {
                std::fs::read_dir(p)
                    .map(|d| d.flatten().map(|e| walk(&e.path())).sum())
                    .unwrap_or(0)
            } else {
                m.len()
            }
        }
        walk(&dir.join("objects"))
    };
    let commits = git(ledger, &["rev-list", "--count", "--all"]);
    let ours = size(ledger);
    let copy = ledger.with_file_name("ledger-repacked");
    let out = Command::new("cp")
        .args(["-a"])
        .arg(ledger)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(out.success());
    let started = Instant::now();
    git(
        &copy,
        &[
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
            "--depth=50",
            "--window=250",
        ],
    );
    let took = started.elapsed();
    let theirs = size(&copy);
    println!(
        "day: ledger objects after {builds} builds in {commits} commits: {:.1} MB ({:.1} KB per build); \
         baseline `git repack -a -d -f --window=250` of a copy: {:.1} MB in {:.1} s; ours/git = {:.1}x",
        ours as f64 / 1e6,
        ours as f64 / 1e3 / builds as f64,
        theirs as f64 / 1e6,
        took.as_secs_f64(),
        ours as f64 / theirs.max(1) as f64
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let only: Vec<&str> = ["--plan", "--latency", "--enter", "--day"]
        .into_iter()
        .filter(|f| args.iter().any(|a| a == f))
        .collect();
    let run = |f: &str| only.is_empty() || only.contains(&f);
    if run("--plan") {
        plan_bench(
            arg(&args, "--projects", if bench { 2200 } else { 200 }),
            arg(&args, "--changes", if bench { 500 } else { 50 }),
            if bench { 200 } else { 5 },
        );
    }
    if run("--latency") {
        latency_bench(arg(&args, "--samples", if bench { 100 } else { 3 }));
    }
    if run("--enter") {
        enter_bench(arg(&args, "--samples", if bench { 100 } else { 3 }));
    }
    if run("--day") {
        day_bench(
            arg(&args, "--projects", if bench { 2200 } else { 50 }),
            arg(&args, "--patchsets", if bench { 5000 } else { 100 }),
            if bench { 10 } else { 3 },
        );
    }
}
