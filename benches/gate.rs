//! Gate benchmarks, each against baselines measured in the same run:
//!
//! 1. Throughput, simulated: one queue of 100 approved changes, jobs of T = 10 minutes, each
//!    change bad with probability 10% (seeded); a tested state fails iff it holds a bad change.
//!    Changes landed per hour, and the time to land every good change, of serial testing on
//!    the tip (bors/homu), a model of Zuul's dependent pipeline (window 20, +1 a landing,
//!    halved a failure, floor 3) and seakeeper's own `reconcile::plan()` in a loop absorbing
//!    what apply would. Targets: seakeeper/serial >= 5x, seakeeper/zuul >= 1.0.
//! 2. Speculative merge: 20 changes off the base of a 100,000-file repository merged in order
//!    by `git::speculative::merge_chain`, against `git merge-tree --write-tree` and
//!    `git commit-tree` by hand. Target: no slower.
//!
//! Run: `cargo bench --bench gate -- [--throughput] [--merge] [--changes N] [--seeds N]
//! [--window N] [--job-minutes N] [--files N] [--items N] [--runs N]` (both by default).
//! Under `cargo test` it is a smoke run with small sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use sha2::Digest as _;

use seakeeper::config::{Layout, pipeline};
use seakeeper::git::ObjectId;
use seakeeper::git::speculative::{Step, merge_chain};
use seakeeper::model::record::{BuildCause, BuildRequest, BuildResult};
use seakeeper::model::{
    BuildId, BuildStatus, ChangeNumber, CommitId, JobState, ProjectName, RefName, Timestamp,
};
use seakeeper::reconcile::{
    self, Action, Approval, BuildState, ConfigState, Fact, GateEntry, GateEvent, GateNote, JobRun,
    MergeOutcome, Patchset, Review, World, gate,
};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64 (deterministic, no dependency): `true` with probability `p`.
fn chance(state: &mut u64, p: f64) -> bool {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// How a model did (`resets`: builds cancelled while running; times: simulated seconds).
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    landed: usize,
    left: usize,
    builds: usize,
    resets: usize,
    last_landing: i64,
}

// ---- 1b. Zuul's dependent pipeline, modelled (1a, serial, is in `throughput_bench`) -----------

/// Items are tested on the state of the non-failing items ahead of them; a build whose state
/// changed is reset; only the first `window` items start builds (as in Zuul, the builds of
/// items the window no longer covers run on); an item leaves at the head, landing or failing.
/// An item of the modelled queue: its change, and its build (the changes its state holds,
/// when it ends, whether it passes).
type ZuulItem = (usize, Option<(Vec<usize>, i64, bool)>);

fn zuul(bad: &[bool], t: i64, window: u32, floor: u32) -> Outcome {
    // Each item: its change and its build (the changes its state holds, its end, whether it
    // passes). A pass from the head (again after an item left), then the next build's end.
    let mut queue: Vec<ZuulItem> = (0..bad.len()).map(|c| (c, None)).collect();
    let (mut merged, mut o) = (vec![false; bad.len()], Outcome::default());
    let (mut w, mut now, mut i, mut ahead) = (window.max(floor), 0, 0, Vec::new());
    loop {
        if i == queue.len() {
            let ends = queue.iter().filter_map(|(_, b)| b.as_ref().map(|b| b.1));
            let Some(end) = ends.filter(|end| *end > now).min() else {
                return o;
            };
            (now, i, ahead) = (end, 0, Vec::new());
        }
        let mut want = ahead.clone();
        want.push(queue[i].0);
        let (change, build) = &mut queue[i];
        if let Some((state, end, _)) = build
            && state.iter().filter(|c| !merged[**c]).ne(want.iter())
        {
            o.resets += usize::from(*end > now);
            *build = None;
        }
        if build.is_none() && i < w as usize {
            let pass = !want.iter().any(|c| bad[*c]);
            (*build, o.builds) = (Some((want, now + t, pass)), o.builds + 1);
        }
        let (change, done) = (*change, build.as_ref().filter(|b| b.1 <= now).map(|b| b.2));
        match done {
            Some(true) if i == 0 => {
                merged[change] = true;
                (o.landed, o.last_landing, w) = (o.landed + 1, now, w + 1);
            }
            Some(false) if i == 0 => (o.left, w) = (o.left + 1, (w / 2).max(floor)),
            Some(false) => {}
            _ => ahead.push(change),
        }
        if done.is_some() && i == 0 {
            (i, ahead) = (0, Vec::new());
            queue.remove(0);
        } else {
            i += 1;
        }
    }
}

// ---- 1c. seakeeper's planner ----------------------------------------------------------------

const PIPELINE: &str = "jobs:\n  unit:\n    image: x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    commands: [true]\npipelines:\n  gate: [unit]\n";

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_764_000_000 + second).expect("a time")
}

/// A fake commit id (a state, a ledger commit), named by what makes it.
fn fake_id(text: &str) -> CommitId {
    let hex = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    hex[..40].parse().expect("40 hex digits")
}

/// Change `i`'s commit, and back.
fn change_commit(i: usize) -> CommitId {
    format!("cc{i:038x}").parse().expect("40 hex digits")
}

fn change_index(c: &CommitId) -> usize {
    usize::from_str_radix(&c.as_str()[2..], 16).expect("a change's commit")
}

/// One project in its own queue; `concurrency`: its `project_concurrency` (else the default).
fn layout(window: u32, floor: u32, concurrency: Option<u32>) -> Layout {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let settings = format!(
        "public_url: https://ci.example.org\nregistries:\n  t: {{ url: \"oci:/tmp/t\" }}\n\
         gate:\n  window: {window}\n  window_floor: {floor}\n"
    );
    files.insert("seakeeper.yaml".into(), settings.into_bytes());
    let environments = "environments:\n  - {name: testing, registry: t}\n";
    files.insert("environments.yaml".into(), environments.into());
    files.insert("projects/api.yaml".into(), b"pipelines: [gate]\n".to_vec());
    if let Some(n) = concurrency {
        let limits = format!("priorities: [gate, check]\nproject_concurrency: {n}\n");
        files.insert("policies/limits.yaml".into(), limits.into_bytes());
    }
    seakeeper::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

/// What the simulation knows that the planner does not, and what it counts.
#[derive(Default)]
struct Track {
    t: i64,
    now: i64,
    bad: Vec<bool>,
    /// A state (the tip, or a speculative commit) -> the changes it holds.
    holds: BTreeMap<CommitId, BTreeSet<usize>>,
    /// Job ends (jobs run once: the executor loses none): time -> (build, job, passes).
    ends: BTreeMap<i64, Vec<(BuildId, String, bool)>>,
    settled: Vec<bool>,
    o: Outcome,
    /// Gate builds requested for a change that had landed (never expected).
    after_landing: usize,
    stalled: Option<String>,
}

/// seakeeper's planner in a World of `bad.len()` changes of one project, approved in order.
fn simulate(bad: &[bool], t: i64, layout: &Layout) -> Track {
    let zero: CommitId = format!("{:040x}", 0).parse().expect("id");
    let config = ConfigState {
        head: zero.clone(),
        layout_commit: zero,
        author: "RelEng".into(),
        errors: Vec::new(),
        unreported: None,
    };
    let mut world = World::new(at(0), config);
    world.capacity = 1000;
    let project: ProjectName = "api".parse().expect("a project");
    let main: RefName = "refs/heads/main".parse().expect("a branch");
    let tip: CommitId = format!("{:040x}", 1).parse().expect("id");
    let slot = (project.clone(), main.clone());
    world.tips.insert(slot, tip.clone());
    let file = pipeline::PIPELINE_FILE;
    let resolved = pipeline::check(file, PIPELINE, Some(&project), Some(layout))
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"));
    for (i, n) in (0..bad.len()).zip(1000u64..) {
        let commit = change_commit(i);
        let slot = (project.clone(), commit.clone());
        world.pipelines.insert(slot, resolved.clone());
        let votes = vec![Approval {
            label: "Code-Review".into(),
            value: 2,
            by: "bob".into(),
            date: Some(at(i as i64 - 10_000)),
        }];
        let review = Review {
            branch: main.clone(),
            votes,
            wip: false,
            private: false,
            parents: vec![tip.clone()],
            depends_on: Vec::new(),
            notes: BTreeSet::new(),
        };
        let git_ref = format!("refs/changes/{:02}/{n}/1", n % 100);
        let patchset = Patchset {
            patchset: 1u64.try_into().expect("patchset"),
            git_ref: git_ref.parse().expect("a ref"),
            commit,
            rechecks: 0,
            review: Some(review),
        };
        let n = ChangeNumber::try_from(n).expect("a change");
        world.changes.insert((project.clone(), n), patchset);
    }
    let mut k = Track::default();
    (k.t, k.bad, k.settled) = (t, bad.to_vec(), vec![false; bad.len()]);
    k.holds.insert(tip, BTreeSet::new());
    loop {
        // Plans and applies until the planner asks for nothing more at this instant.
        let mut last: Vec<String> = Vec::new();
        loop {
            let mut actions = reconcile::plan(&world, layout);
            actions.retain(|a| !matches!(a, Action::HoldLanding { .. } | Action::Hold { .. }));
            let keys: Vec<String> = actions.iter().map(Action::key).collect();
            if keys.is_empty() || keys == last {
                let repeats = format!("the planner repeats at {} s: {keys:?}", k.now);
                k.stalled = (!keys.is_empty()).then_some(repeats);
                break;
            }
            last = keys;
            for a in actions {
                apply(&mut world, layout, &mut k, a);
            }
        }
        if k.settled.iter().all(|s| *s) || k.stalled.is_some() {
            return k;
        }
        let Some((when, ended)) = k.ends.pop_first() else {
            let q = gate::queues(&world, layout);
            k.stalled = Some(format!("no job runs at {} s: {q:?}", k.now));
            return k;
        };
        k.now = when;
        let (now, capacity) = (at(when), 1000);
        world.absorb(Fact::Tick { now, capacity });
        for (build, job, pass) in ended {
            // A cancelled build is done with: its job's end is not seen.
            if world.builds.get(&build).is_some_and(|b| b.result.is_none()) {
                let reason = "a bad change".to_owned();
                let state = Some(match pass {
                    true => JobState::Succeeded,
                    false => JobState::Failed {
                        exit_code: Some(1),
                        reason,
                    },
                });
                let run = JobRun { attempt: 1, state };
                world.absorb(Fact::JobObserved { build, job, run });
            }
        }
    }
}

/// A build's result recorded (its jobs left out: the World reads only the status).
fn recorded(world: &World, build_id: BuildId, status: BuildStatus, now: i64) -> Fact {
    let started_at = world.builds[&build_id].request.requested_at;
    let commit = fake_id(&format!("ledger {build_id} {status:?}"));
    let result = BuildResult {
        build_id,
        status,
        started_at,
        finished_at: at(now),
        jobs: Vec::new(),
        artifacts: Vec::new(),
    };
    Fact::ResultRecorded { result, commit }
}

/// A gate build's change leaves the queue, landed or failed: its note, the new window.
fn leaves(world: &mut World, layout: &Layout, k: &mut Track, r: &BuildRequest, event: GateEvent) {
    let Some(BuildCause::Gate {
        queue,
        branch,
        eligible_since: since,
        rechecks,
        ..
    }) = r.cause.clone()
    else {
        return;
    };
    let (change, patchset) = (r.change.expect("a change"), r.patchset.expect("a patchset"));
    let (project, landed) = (r.project.clone(), event == GateEvent::Landed);
    if landed {
        world.absorb(Fact::Landed {
            build: r.build_id.clone(),
            project: project.clone(),
            branch,
            commit: r.source_commit.clone(),
            tip: r.source_commit.clone(),
        });
    }
    let settings = &layout.settings.gate;
    let now = gate::window_of(&world.windows, &queue, settings);
    let window = gate::next_window(now, landed, settings);
    let entry = GateEntry {
        patchset,
        since,
        rechecks,
    };
    let note = GateNote { event, entry };
    world.absorb(Fact::GateNoted {
        project,
        change,
        note,
    });
    world.absorb(Fact::GateWindow { queue, window });
    k.settled[(change.get() - 1000) as usize] = true;
    if landed {
        // Gerrit closes the change.
        world.changes.remove(&(r.project.clone(), change));
        (k.o.landed, k.o.last_landing) = (k.o.landed + 1, k.now);
    } else {
        k.o.left += 1;
    }
}

/// What apply would do, as the facts it would give.
fn apply(world: &mut World, layout: &Layout, k: &mut Track, action: Action) {
    match action {
        Action::Merge {
            project,
            onto,
            commit,
            ..
        } => {
            let state = fake_id(&format!("{onto} {commit}"));
            let mut holds = k.holds.get(&onto).cloned().unwrap_or_default();
            holds.insert(change_index(&commit));
            k.holds.insert(state.clone(), holds);
            let outcome = MergeOutcome::Merged(state);
            world.absorb(Fact::Merged {
                project,
                onto,
                commit,
                outcome,
            });
        }
        Action::TellGate {
            project,
            change,
            note,
            ..
        } => world.absorb(Fact::GateNoted {
            project,
            change,
            note,
        }),
        Action::RequestBuild { request, depth } => {
            if let Some(BuildCause::Gate { change_commit, .. }) = &request.cause {
                let i = change_index(change_commit);
                k.o.builds += 1;
                k.after_landing += usize::from(k.settled[i] && !k.bad[i]);
            }
            world.absorb(Fact::BuildInFlight(Box::new(BuildState {
                request,
                result: None,
                reported: false,
                cancelled: false,
                jobs: BTreeMap::new(),
                depth,
                recorded: None,
                landed: None,
            })));
        }
        Action::StartJob { build_id, job, .. } => {
            let holds = k.holds.get(&world.builds[&build_id].request.source_commit);
            let pass = holds.is_some_and(|h| h.iter().all(|c| !k.bad[*c]));
            let end = (build_id.clone(), job.name.clone(), pass);
            k.ends.entry(k.now + k.t).or_default().push(end);
            let (build, job, state) = (build_id, job.name, Some(JobState::Running));
            let run = JobRun { attempt: 1, state };
            world.absorb(Fact::JobObserved { build, job, run });
        }
        Action::RecordResult { build_id } => {
            let jobs = world.builds[&build_id].jobs.values();
            let status = reconcile::outcome(jobs.filter_map(|r| r.state.clone()));
            world.absorb(recorded(world, build_id, status, k.now));
        }
        Action::Cancel { build_id, .. } => {
            k.o.resets += 1;
            let fact = recorded(world, build_id.clone(), BuildStatus::Cancelled, k.now);
            world.absorb(fact);
            world.absorb(Fact::BuildDone(build_id));
        }
        Action::Land { build_id } => {
            let r = world.builds[&build_id].request.clone();
            leaves(world, layout, k, &r, GateEvent::Landed);
        }
        Action::Report { build_id } => {
            use BuildStatus::{Error, Failure, TimedOut};
            if let Some(b) = world.builds.get(&build_id)
                && b.landed.is_none()
                && matches!(b.result, Some(Failure | Error | TimedOut))
            {
                let r = b.request.clone();
                leaves(world, layout, k, &r, GateEvent::Failed);
            }
            world.absorb(Fact::BuildDone(build_id));
        }
        Action::Retire { build_id } => world.absorb(Fact::BuildDone(build_id)),
        _ => {}
    }
}

fn throughput_bench(changes: usize, seeds: usize, window: u32, minutes: i64) {
    let (floor, t) = (3, minutes * 60);
    let names = [
        "baseline serial (bors/homu)",
        "baseline Zuul dependent pipeline, modelled",
        "seakeeper plan(), project_concurrency 1000",
        "seakeeper plan(), default limits.yaml",
    ];
    let mut rows: Vec<Vec<Outcome>> = vec![Vec::new(); names.len()];
    let (mut bad_total, mut problems) = (0, Vec::new());
    let layouts = [Some(1000), None].map(|c| layout(window, floor, c));
    let started = Instant::now();
    for seed in 1..=seeds as u64 {
        let mut rng = seed;
        let bad: Vec<bool> = (0..changes).map(|_| chance(&mut rng, 0.1)).collect();
        let n_bad = bad.iter().filter(|b| **b).count();
        bad_total += n_bad;
        // Serial: one change at a time on the tip, T each; a good one lands.
        let mut o = Outcome::default();
        let last = bad.iter().rposition(|b| !*b).map_or(0, |i| i as i64 + 1);
        (o.landed, o.left, o.builds, o.last_landing) = (changes - n_bad, n_bad, changes, last * t);
        rows[0].push(o);
        rows[1].push(zuul(&bad, t, window, floor));
        for (row, layout) in layouts.iter().enumerate().map(|(i, l)| (i + 2, l)) {
            let k = simulate(&bad, t, layout);
            let (name, o, after) = (names[row], k.o, k.after_landing);
            let (landed, left, stalled) = (o.landed, o.left, k.stalled.as_deref());
            if (landed, left, after, stalled) != (changes - n_bad, n_bad, 0, None) {
                problems.push(format!(
                    "{name}, seed {seed}: landed {landed}, failed {left} of {n_bad} bad, {after} \
                     gate builds requested after their change landed; stalled: {stalled:?}"
                ));
            }
            rows[row].push(o);
        }
    }
    let ideal = changes as f64 * t as f64 / f64::from(window);
    let (all, took) = (changes * seeds, started.elapsed().as_secs_f64());
    println!(
        "# gate throughput, simulated: {changes} changes x {seeds} seeds ({bad_total} bad of \
         {all}), job time {minutes} min, window {window} (floor {floor}), capacity 1000; \
         simulated in {took:.1} s\n\
         {:<44}  landed  left  builds  resets all good (min)  x ideal  landed/hour",
        "model"
    );
    let mut rate = Vec::new();
    for (name, outcomes) in names.iter().zip(&rows) {
        let sum = |f: fn(&Outcome) -> usize| outcomes.iter().map(f).sum::<usize>();
        let wall = outcomes.iter().map(|o| o.last_landing).sum::<i64>() as f64 / seeds as f64;
        let landed = sum(|o| o.landed);
        rate.push(landed as f64 / seeds as f64 / (wall / 3600.0));
        let (left, builds, resets) = (sum(|o| o.left), sum(|o| o.builds), sum(|o| o.resets));
        let (minutes, x, r) = (wall / 60.0, wall / ideal, rate[rate.len() - 1]);
        println!(
            "{name:<44} {landed:>7} {left:>5} {builds:>7} {resets:>7} \
             {minutes:>14.1} {x:>8.2} {r:>12.1}"
        );
    }
    let (per_serial, per_zuul, ideal) = (rate[2] / rate[0], rate[2] / rate[1], ideal / 60.0);
    println!(
        "seakeeper/serial = {per_serial:.2}x (target >= 5x); seakeeper/zuul = {per_zuul:.2}x \
         (target >= 1.0); ideal {changes}*T/window = {ideal:.1} min"
    );
    problems.iter().for_each(|p| println!("PROBLEM {p}"));
}

// ---- 2. speculative merge -------------------------------------------------------------------

/// git in `dir`, its input from `input`; its output, trimmed.
fn git(dir: &Path, args: &[&str], input: Option<std::fs::File>) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=A", "-c", "user.email=a@example.org"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(input.map_or(Stdio::null(), Stdio::from))
        .output()
        .expect("git");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "git {args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn merge_bench(files: usize, items: usize, runs: usize) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo.git");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "--bare", "-b", "main"], None);
    // One base commit of `files` small files, 100 a directory, and `items` changes off it,
    // each touching one file of another directory, by `git fast-import`.
    let dirs = files.div_ceil(100);
    let path = |i: usize| format!("d{:04}/f{i:06}.txt", i % dirs);
    let who = "committer Alice <alice@example.org> 1700000000 +0000";
    let mut s = format!("commit refs/heads/main\nmark :1\n{who}\ndata 4\nbase\n");
    for i in 0..files {
        let text = format!("file {i}\n");
        s += &format!("M 100644 inline {}\ndata {}\n{text}\n", path(i), text.len());
    }
    for k in 0..items {
        let text = format!("changed by change {k}\n");
        let file = path((k * (files / items.max(1)) + k) % files);
        s += &format!("commit refs/heads/change{k}\n{who}\ndata 9\nchange {k}\nfrom :1\n");
        s += &format!("M 100644 inline {file}\ndata {}\n{text}\n", text.len());
    }
    let stream = tmp.path().join("stream");
    std::fs::write(&stream, s).expect("write");
    let input = std::fs::File::open(&stream).expect("the stream");
    git(&repo, &["fast-import", "--quiet"], Some(input));
    let base = git(&repo, &["rev-parse", "main"], None);
    let changes: Vec<String> = (0..items)
        .map(|k| git(&repo, &["rev-parse", &format!("change{k}")], None))
        .collect();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_tree, mut their_tree) = (String::new(), String::new());
    let tree = |state: &str| git(&repo, &["rev-parse", &format!("{state}^{{tree}}")], None);
    // Each way `runs` times, which goes first alternating, from the same base each time.
    for run in 0..runs * 2 {
        if run % 4 == 0 || run % 4 == 3 {
            let mut state = ObjectId::from_hex(base.as_bytes()).expect("an id");
            for (k, c) in changes.iter().enumerate() {
                let commit = ObjectId::from_hex(c.as_bytes()).expect("an id");
                let label = format!("change {k},1");
                let t = Instant::now();
                let merged = merge_chain(&repo, state, &[Step { label, commit }]);
                ours.push(t.elapsed().as_secs_f64() * 1000.0);
                state = merged.unwrap_or_else(|e| panic!("{e}"))[0].commit();
            }
            our_tree = tree(&state.to_string());
        } else {
            let mut state = base.clone();
            for (k, c) in changes.iter().enumerate() {
                let t = Instant::now();
                let out = git(&repo, &["merge-tree", "--write-tree", &state, c], None);
                let tree = out.lines().next().unwrap_or_default().to_owned();
                let msg = format!("Speculative merge of change {k},1");
                let args = ["commit-tree", &tree, "-p", &state, "-p", c, "-m", &msg];
                state = git(&repo, &args, None);
                theirs.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            their_tree = tree(&state);
        }
    }
    assert_eq!(our_tree, their_tree, "both ways merge to the same tree");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (our_mean, their_mean) = (mean(&ours), mean(&theirs));
    let ratio = their_mean / our_mean;
    println!(
        "# speculative merge: {files} files in {dirs} directories, {items} changes off the base \
         (a file each) merged in order, {runs} runs each way\n\
         baseline   merge-tree --write-tree, commit-tree by hand: {their_mean:>7.2} ms per item\n\
         seakeeper  merge_chain, a step a call (as the gate):    {our_mean:>7.2} ms per item; \
         baseline/seakeeper = {ratio:.2}x (target >= 1.0)"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (bench, all) = (flag("--bench"), !flag("--throughput") && !flag("--merge"));
    if all || flag("--throughput") {
        let (changes, window) = (arg(&args, "--changes", 100), arg(&args, "--window", 20));
        let seeds = arg(&args, "--seeds", if bench { 5 } else { 1 });
        let minutes = arg(&args, "--job-minutes", 10) as i64;
        throughput_bench(changes, seeds, window as u32, minutes);
    }
    if all || flag("--merge") {
        let files = arg(&args, "--files", if bench { 100_000 } else { 2_000 });
        let runs = arg(&args, "--runs", if bench { 5 } else { 1 });
        merge_bench(files, arg(&args, "--items", 20), runs);
    }
}
