//! Gate benchmarks, each against baselines measured in the same run:
//!
//! 1. Gate throughput, simulated: one queue of 100 approved changes, a job time T (10 minutes),
//!    each change bad with probability 10% (seeded); a tested state fails iff it holds a bad
//!    change. Changes landed per hour and the time to land every good change, for serial
//!    testing on the tip (bors/homu), a small model of Zuul's dependent pipeline (window 20,
//!    +1 per landing, halved per failure, floor 3) and seakeeper's real `reconcile::plan()`
//!    driven in a loop whose actions are absorbed as apply's facts. Targets: seakeeper/serial
//!    at least 5x, seakeeper/zuul at least 1.0.
//! 2. Speculative merge: a repository of 100,000 files, 20 changes off its base merged in
//!    order: `git::speculative::merge_chain`, one step at a time as the gate's merges are,
//!    against `git merge-tree --write-tree` and `git commit-tree` by hand. Target: no slower.
//!
//! Run: `cargo bench --bench gate -- [--throughput] [--merge] [--changes N] [--seeds N]
//! [--window N] [--job-minutes N] [--files N] [--items N] [--runs N]` (both by default).
//! Under `cargo test` it is a smoke run with small sizes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// SplitMix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// How one model did (times in seconds of simulated time from the start).
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    landed: usize,
    left: usize,
    /// Builds started.
    builds: usize,
    /// Builds cancelled while running (resets, window shrinks).
    resets: usize,
    last_landing: i64,
    settled: i64,
}

// ---- 1a. serial ----------------------------------------------------------------------------

fn serial(bad: &[bool], t: i64) -> Outcome {
    let mut o = Outcome::default();
    for b in bad {
        o.settled += t;
        o.builds += 1;
        if *b {
            o.left += 1;
        } else {
            o.landed += 1;
            o.last_landing = o.settled;
        }
    }
    o
}

// ---- 1b. Zuul's dependent pipeline, modelled ------------------------------------------------

/// Items are tested on the state of the non-failing items ahead of them; a build whose state
/// changed is reset; only the first `window` items start builds (as in Zuul, builds of items
/// the window no longer covers run on); an item leaves at the head, landing or failing.
fn zuul(bad: &[bool], t: i64, window: u32, floor: u32) -> Outcome {
    // Each item: its change and its build (state: the changes in it; end; passes).
    let mut queue: Vec<(usize, Option<(Vec<usize>, i64, bool)>)> =
        (0..bad.len()).map(|c| (c, None)).collect();
    let mut merged = vec![false; bad.len()];
    let (mut w, mut now, mut o) = (window.max(floor), 0i64, Outcome::default());
    loop {
        'settle: loop {
            let mut ahead: Vec<usize> = Vec::new();
            for i in 0..queue.len() {
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
                    *build = Some((want, now + t, pass));
                    o.builds += 1;
                }
                let done = build.as_ref().filter(|b| b.1 <= now).map(|b| b.2);
                let change = *change;
                if i == 0
                    && let Some(pass) = done
                {
                    queue.remove(0);
                    if pass {
                        merged[change] = true;
                        o.landed += 1;
                        o.last_landing = now;
                        w += 1;
                    } else {
                        o.left += 1;
                        w = (w / 2).max(floor);
                    }
                    continue 'settle;
                }
                if done != Some(false) {
                    ahead.push(change);
                }
            }
            break;
        }
        if queue.is_empty() {
            o.settled = now;
            return o;
        }
        now = queue
            .iter()
            .filter_map(|(_, b)| b.as_ref().map(|b| b.1))
            .filter(|end| *end > now)
            .min()
            .expect("a build runs while the queue is not empty");
    }
}

// ---- 1c. seakeeper's planner ----------------------------------------------------------------

const START: i64 = 1_764_000_000;
const PIPELINE: &str = "jobs:\n  unit:\n    image: x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    commands: [true]\npipelines:\n  gate: [unit]\n";

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(START + second).expect("a time")
}

fn hex_id(text: &str) -> CommitId {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))[..40]
        .parse()
        .expect("40 hex digits")
}

fn layout(window: u32, floor: u32) -> Layout {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert(
        "seakeeper.yaml".into(),
        format!("public_url: https://ci.example.org\nregistries:\n  t: {{ url: \"oci:/tmp/t\" }}\ngate:\n  window: {window}\n  window_floor: {floor}\n").into_bytes(),
    );
    files.insert(
        "environments.yaml".into(),
        b"environments:\n  - {name: testing, registry: t}\n".to_vec(),
    );
    files.insert("projects/api.yaml".into(), b"pipelines: [gate]\n".to_vec());
    files.insert(
        "policies/limits.yaml".into(),
        b"priorities: [gate, check, post-merge, periodic]\nproject_concurrency: 1000\n".to_vec(),
    );
    seakeeper::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The World, the Layout, and what the simulation knows that the planner does not.
struct Sim {
    world: World,
    layout: Layout,
    main: RefName,
    t: i64,
    now: i64,
    bad: Vec<bool>,
    /// A change's commit -> its index.
    number: BTreeMap<CommitId, usize>,
    /// A state (tip or speculative commit) -> the changes it holds.
    holds: BTreeMap<CommitId, BTreeSet<usize>>,
    /// Job ends: time -> (build, job, attempt, passes).
    ends: BTreeMap<i64, Vec<(BuildId, String, u32, bool)>>,
    settled: Vec<bool>,
    o: Outcome,
    plans: Vec<f64>,
    merges: usize,
    /// Gate builds requested for a change that had landed already (never expected).
    after_landing: usize,
    stalled: Option<String>,
}

impl Sim {
    fn new(bad: &[bool], t: i64, window: u32, floor: u32) -> Sim {
        let layout = layout(window, floor);
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
        let project: ProjectName = "api".parse().expect("name");
        let main: RefName = "refs/heads/main".parse().expect("ref");
        let tip: CommitId = format!("{:040x}", 1).parse().expect("id");
        world
            .tips
            .insert((project.clone(), main.clone()), tip.clone());
        let resolved = pipeline::check(
            pipeline::PIPELINE_FILE,
            PIPELINE,
            Some(&project),
            Some(&layout),
        )
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"));
        let mut number = BTreeMap::new();
        for i in 0..bad.len() {
            let n = ChangeNumber::try_from(1000 + i as u64).expect("change");
            let commit = hex_id(&format!("change {i}"));
            number.insert(commit.clone(), i);
            let slot = (project.clone(), commit.clone());
            world.pipelines.insert(slot, resolved.clone());
            // Approved in order, before the simulation starts.
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
            let git_ref = format!("refs/changes/{:02}/{n}/1", n.get() % 100);
            let patchset = Patchset {
                patchset: 1u64.try_into().expect("patchset"),
                git_ref: git_ref.parse().expect("ref"),
                commit,
                rechecks: 0,
                review: Some(review),
            };
            world.changes.insert((project.clone(), n), patchset);
        }
        Sim {
            world,
            layout,
            main,
            t,
            now: 0,
            bad: bad.to_vec(),
            number,
            holds: BTreeMap::from([(tip, BTreeSet::new())]),
            ends: BTreeMap::new(),
            settled: vec![false; bad.len()],
            o: Outcome::default(),
            plans: Vec::new(),
            merges: 0,
            after_landing: 0,
            stalled: None,
        }
    }

    /// Settles each instant, then moves on to the next job end, until every change settled.
    fn run(mut self) -> Sim {
        loop {
            self.settle();
            if self.settled.iter().all(|s| *s) || self.stalled.is_some() {
                return self;
            }
            let Some((when, ended)) = self.ends.pop_first() else {
                let q = gate::queues(&self.world, &self.layout);
                self.stalled = Some(format!("no job runs at {} s: {q:?}", self.now));
                return self;
            };
            self.now = when;
            let tick = Fact::Tick {
                now: at(when),
                capacity: 1000,
            };
            self.world.absorb(tick);
            let running = Some(JobState::Running);
            for (build, job, attempt, pass) in ended {
                let live = self.world.builds.get(&build).is_some_and(|b| {
                    let run = b.jobs.get(&job);
                    b.result.is_none()
                        && run.is_some_and(|r| r.attempt == attempt && r.state == running)
                });
                let state = match pass {
                    true => JobState::Succeeded,
                    false => JobState::Failed {
                        exit_code: Some(1),
                        reason: "a bad change".into(),
                    },
                };
                if live {
                    let run = JobRun {
                        attempt,
                        state: Some(state),
                    };
                    self.world.absorb(Fact::JobObserved { build, job, run });
                }
            }
        }
    }

    /// Plans and applies until the planner asks for nothing more at this instant.
    fn settle(&mut self) {
        let mut last: Vec<String> = Vec::new();
        loop {
            if std::env::var_os("GATE_TRACE").is_some() {
                for q in gate::queues(&self.world, &self.layout) {
                    let line: Vec<String> = q
                        .items
                        .iter()
                        .take(30)
                        .map(|i| {
                            let n = i.change.get() - 1000;
                            let b = if self.bad[n as usize] { "!" } else { "" };
                            let st = match &i.state {
                                gate::ItemState::Inactive => "-".to_owned(),
                                gate::ItemState::Blocked(_) => "B".to_owned(),
                                gate::ItemState::Merging { .. } => "M".to_owned(),
                                gate::ItemState::Refused(_) => "R".to_owned(),
                                gate::ItemState::Contained => "C".to_owned(),
                                gate::ItemState::Testing(t) => {
                                    match (self.world.builds.get(&t.build), t.result) {
                                        (_, Some(r)) => {
                                            format!("{r:?}").chars().next().unwrap().to_string()
                                        }
                                        (Some(_), None) => "r".into(),
                                        (None, None) => "q".into(),
                                    }
                                }
                            };
                            format!("{n}{b}{st}")
                        })
                        .collect();
                    eprintln!("t={} w={} {}", self.now / 60, q.window, line.join(" "));
                }
            }
            let started = Instant::now();
            let mut actions = reconcile::plan(&self.world, &self.layout);
            self.plans.push(ms(started.elapsed()));
            actions.retain(|a| {
                !matches!(
                    a,
                    Action::HoldLanding { .. }
                        | Action::Hold { .. }
                        | Action::Refuse { .. }
                        | Action::RecordFreeze { .. }
                )
            });
            if actions.is_empty() {
                return;
            }
            let keys: Vec<String> = actions.iter().map(Action::key).collect();
            if keys == last {
                self.stalled = Some(format!("the planner repeats at {} s: {keys:?}", self.now));
                return;
            }
            last = keys;
            for a in actions {
                self.apply(a);
            }
        }
    }

    /// A build's result, as recorded (its jobs left out: the World reads only the status).
    fn record(&mut self, build_id: BuildId, status: BuildStatus) {
        let started_at = self.world.builds[&build_id].request.requested_at;
        let commit = hex_id(&format!("ledger {build_id} {status:?}"));
        let result = BuildResult {
            build_id,
            status,
            started_at,
            finished_at: at(self.now),
            jobs: Vec::new(),
            artifacts: Vec::new(),
        };
        self.world.absorb(Fact::ResultRecorded { result, commit });
    }

    /// A gate build's change leaves the queue, landed or failed: its note and the window.
    fn leaves(&mut self, r: &BuildRequest, event: GateEvent) {
        let Some(BuildCause::Gate {
            queue,
            change_commit,
            eligible_since,
            rechecks,
            ..
        }) = &r.cause
        else {
            return;
        };
        let (Some(change), Some(patchset)) = (r.change, r.patchset) else {
            return;
        };
        let landed = event == GateEvent::Landed;
        let settings = &self.layout.settings.gate;
        let now = gate::window_of(&self.world.windows, queue, settings);
        let window = gate::next_window(now, landed, settings);
        let entry = GateEntry {
            patchset,
            since: *eligible_since,
            rechecks: *rechecks,
        };
        let note = GateNote { event, entry };
        let project = r.project.clone();
        self.world.absorb(Fact::GateNoted {
            project,
            change,
            note,
        });
        let queue = queue.clone();
        self.world.absorb(Fact::GateWindow { queue, window });
        if let Some(i) = self.number.get(change_commit) {
            self.settled[*i] = true;
        }
        self.o.settled = self.now;
        if landed {
            // Gerrit closes the change.
            self.world.changes.remove(&(r.project.clone(), change));
            self.o.landed += 1;
            self.o.last_landing = self.now;
        } else {
            self.o.left += 1;
        }
    }

    /// What apply would do, as the facts it would return.
    fn apply(&mut self, action: Action) {
        let w = &mut self.world;
        match action {
            Action::Merge {
                project,
                onto,
                commit,
                ..
            } => {
                let state = hex_id(&format!("{onto} {commit}"));
                let mut holds = self.holds.get(&onto).cloned().unwrap_or_default();
                holds.extend(self.number.get(&commit));
                self.holds.insert(state.clone(), holds);
                self.merges += 1;
                let outcome = MergeOutcome::Merged(state);
                w.absorb(Fact::Merged {
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
            } => w.absorb(Fact::GateNoted {
                project,
                change,
                note,
            }),
            Action::RequestBuild { request, depth } => {
                if let Some(BuildCause::Gate { change_commit, .. }) = &request.cause {
                    self.o.builds += 1;
                    let i = self.number.get(change_commit);
                    let landed = i.is_some_and(|i| self.settled[*i] && !self.bad[*i]);
                    self.after_landing += usize::from(landed);
                }
                w.absorb(Fact::BuildInFlight(Box::new(BuildState {
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
            Action::StartJob {
                build_id,
                job,
                attempt,
            } => {
                let source = &w.builds[&build_id].request.source_commit;
                let holds = self.holds.get(source);
                let pass = holds.is_some_and(|h| h.iter().all(|c| !self.bad[*c]));
                let end = (build_id.clone(), job.name.clone(), attempt, pass);
                self.ends.entry(self.now + self.t).or_default().push(end);
                let state = Some(JobState::Running);
                let run = JobRun { attempt, state };
                w.absorb(Fact::JobObserved {
                    build: build_id,
                    job: job.name,
                    run,
                });
            }
            Action::RecordResult { build_id } => {
                let b = &w.builds[&build_id];
                let states = b.request.jobs.iter().map(|j| {
                    let run = b.jobs.get(j).and_then(|r| r.state.clone());
                    run.unwrap_or(JobState::Cancelled)
                });
                let status = reconcile::outcome(states);
                self.record(build_id, status);
            }
            Action::Cancel { build_id, .. } => {
                if std::env::var_os("GATE_TRACE").is_some() {
                    eprintln!("cancel {:?}", w.builds[&build_id].request.change);
                }
                self.o.resets += 1;
                self.record(build_id.clone(), BuildStatus::Cancelled);
                self.world.absorb(Fact::BuildDone(build_id));
            }
            Action::Land { build_id } => {
                let r = w.builds[&build_id].request.clone();
                w.absorb(Fact::Landed {
                    build: build_id,
                    project: r.project.clone(),
                    branch: self.main.clone(),
                    commit: r.source_commit.clone(),
                    tip: r.source_commit.clone(),
                });
                self.leaves(&r, GateEvent::Landed);
            }
            Action::Report { build_id } => {
                if let Some(b) = w.builds.get(&build_id)
                    && b.landed.is_none()
                    && matches!(
                        b.result,
                        Some(BuildStatus::Failure | BuildStatus::Error | BuildStatus::TimedOut)
                    )
                {
                    let r = b.request.clone();
                    self.leaves(&r, GateEvent::Failed);
                }
                self.world.absorb(Fact::BuildDone(build_id));
            }
            Action::Retire { build_id } => w.absorb(Fact::BuildDone(build_id)),
            _ => {}
        }
    }
}

fn throughput_bench(changes: usize, seeds: usize, window: u32, minutes: i64) {
    let (floor, t) = (3, minutes * 60);
    let names = [
        "baseline serial (bors/homu)",
        "baseline Zuul dependent pipeline, modelled",
        "seakeeper reconcile::plan(), simulated",
    ];
    // Per model: outcomes over the seeds.
    let mut all: Vec<Vec<Outcome>> = vec![Vec::new(); 3];
    let (mut plans, mut merges, mut bad_total, mut problems) = (Vec::new(), 0, 0, Vec::new());
    let started = Instant::now();
    for seed in 1..=seeds as u64 {
        let mut rng = Rng(seed);
        let bad: Vec<bool> = (0..changes).map(|_| rng.chance(0.1)).collect();
        let bad_here = bad.iter().filter(|b| **b).count();
        bad_total += bad_here;
        all[0].push(serial(&bad, t));
        all[1].push(zuul(&bad, t, window, floor));
        let sim = Sim::new(&bad, t, window, floor).run();
        plans.extend(sim.plans.iter().copied());
        merges += sim.merges;
        if let Some(s) = &sim.stalled {
            problems.push(format!("seed {seed}: STALLED: {s}"));
        }
        if sim.o.landed != changes - bad_here || sim.o.left != bad_here {
            problems.push(format!(
                "seed {seed}: seakeeper landed {} and failed {} (expected {} and {bad_here})",
                sim.o.landed,
                sim.o.left,
                changes - bad_here
            ));
        }
        if sim.after_landing > 0 {
            problems.push(format!(
                "seed {seed}: {} gate builds requested for changes that had landed",
                sim.after_landing
            ));
        }
        all[2].push(sim.o);
    }
    let ideal = changes as f64 * t as f64 / f64::from(window);
    println!(
        "# gate throughput, simulated: {changes} changes x {seeds} seeds ({bad_total} bad of {}), \
         job time {minutes} min, window {window} (floor {floor}), capacity 1000; simulated in {:.1} s",
        changes * seeds,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<44} {:>7} {:>5} {:>7} {:>7} {:>14} {:>8} {:>12}",
        "model", "landed", "left", "builds", "resets", "all good (min)", "x ideal", "landed/hour"
    );
    let mut rate = [0.0; 3];
    for (m, outcomes) in all.iter().enumerate() {
        let sum = |f: fn(&Outcome) -> i64| outcomes.iter().map(f).sum::<i64>();
        let wall = sum(|o| o.last_landing) as f64;
        rate[m] = sum(|o| o.landed as i64) as f64 / (wall / 3600.0);
        println!(
            "{:<44} {:>7} {:>5} {:>7} {:>7} {:>14.1} {:>8.2} {:>12.1}",
            names[m],
            sum(|o| o.landed as i64),
            sum(|o| o.left as i64),
            sum(|o| o.builds as i64),
            sum(|o| o.resets as i64),
            wall / 60.0 / seeds as f64,
            wall / seeds as f64 / ideal,
            rate[m]
        );
    }
    println!(
        "seakeeper/serial = {:.2}x (target >= 5x); seakeeper/zuul = {:.2}x (target >= 1.0); \
         ideal = {changes}*T/window = {:.1} min",
        rate[2] / rate[0],
        rate[2] / rate[1],
        ideal / 60.0
    );
    let calls = plans.len();
    println!(
        "seakeeper: {calls} plan() calls, median {:.3} ms, {merges} speculative merges",
        median(&mut plans)
    );
    for p in problems {
        println!("PROBLEM {p}");
    }
}

// ---- 2. speculative merge -------------------------------------------------------------------

fn git(dir: &Path, args: &[&str], input: Option<&[u8]>) -> String {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_AUTHOR_DATE", "1700000000 +0000")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_DATE", "1700000000 +0000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git");
    let mut stdin = child.stdin.take().expect("stdin");
    if let Some(bytes) = input {
        stdin.write_all(bytes).expect("git's input");
    }
    drop(stdin);
    let out = child.wait_with_output().expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.as_bytes()).expect("an object id")
}

fn merge_bench(files: usize, items: usize, runs: usize) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let repo = tmp.path().join("repo.git");
    std::fs::create_dir_all(&repo).expect("mkdir");
    git(&repo, &["init", "-q", "--bare", "-b", "main"], None);
    // One base commit of `files` small files, 100 a directory; `items` changes off it, each
    // touching one file of another directory.
    let dirs = files.div_ceil(100);
    let path = |i: usize| format!("d{:04}/f{:06}.txt", i % dirs, i);
    let who = "committer Alice <alice@example.org> 1700000000 +0000";
    let mut s = format!("commit refs/heads/main\nmark :1\n{who}\ndata 4\nbase\n");
    for i in 0..files {
        let text = format!("file {i}\n");
        s.push_str(&format!(
            "M 100644 inline {}\ndata {}\n{text}\n",
            path(i),
            text.len()
        ));
    }
    for k in 0..items {
        let text = format!("changed by change {k}\n");
        s.push_str(&format!(
            "commit refs/heads/change{k}\n{who}\ndata 9\nchange {k}\nfrom :1\n\
             M 100644 inline {}\ndata {}\n{text}\n",
            path(k * (files / items.max(1)) + k % dirs),
            text.len()
        ));
    }
    let made = Instant::now();
    git(&repo, &["fast-import", "--quiet"], Some(s.as_bytes()));
    let base = git(&repo, &["rev-parse", "main"], None);
    let changes: Vec<String> = (0..items)
        .map(|k| git(&repo, &["rev-parse", &format!("change{k}")], None))
        .collect();
    let made = made.elapsed();
    let (mut ours, mut theirs, mut chain) = (Vec::new(), Vec::new(), Vec::new());
    let (mut our_tree, mut their_tree) = (String::new(), String::new());
    for run in 0..runs {
        for first in [run % 2 == 0, run % 2 == 1] {
            if first {
                let mut state = oid(&base);
                for (k, c) in changes.iter().enumerate() {
                    let step = Step {
                        label: format!("change {k},1"),
                        commit: oid(c),
                    };
                    let t = Instant::now();
                    let merged = merge_chain(&repo, state, std::slice::from_ref(&step))
                        .unwrap_or_else(|e| panic!("{e}"));
                    ours.push(ms(t.elapsed()));
                    state = merged[0].commit();
                }
                our_tree = git(&repo, &["rev-parse", &format!("{state}^{{tree}}")], None);
            } else {
                let mut state = base.clone();
                for (k, c) in changes.iter().enumerate() {
                    let t = Instant::now();
                    let out = git(&repo, &["merge-tree", "--write-tree", &state, c], None);
                    let tree = out.lines().next().unwrap_or_default().to_owned();
                    let msg = format!("Speculative merge of change {k},1");
                    state = git(
                        &repo,
                        &["commit-tree", &tree, "-p", &state, "-p", c, "-m", &msg],
                        None,
                    );
                    theirs.push(ms(t.elapsed()));
                }
                their_tree = git(&repo, &["rev-parse", &format!("{state}^{{tree}}")], None);
            }
        }
        let steps: Vec<Step> = changes
            .iter()
            .enumerate()
            .map(|(k, c)| Step {
                label: format!("change {k},1"),
                commit: oid(c),
            })
            .collect();
        let t = Instant::now();
        merge_chain(&repo, oid(&base), &steps).unwrap_or_else(|e| panic!("{e}"));
        chain.push(ms(t.elapsed()) / items as f64);
    }
    assert_eq!(our_tree, their_tree, "both ways merge to the same tree");
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (our_mean, their_mean) = (mean(&ours), mean(&theirs));
    println!(
        "# speculative merge: {files} files in {dirs} directories (made by fast-import in {:.1} s), \
         {items} changes off the base, each touching one file, merged in order; {runs} runs",
        made.as_secs_f64()
    );
    println!(
        "baseline   git merge-tree --write-tree + git commit-tree:   mean {their_mean:>7.2} ms per item, \
         median {:>7.2} ms",
        median(&mut theirs)
    );
    println!(
        "seakeeper  merge_chain, one step per call (as the gate):    mean {our_mean:>7.2} ms per item, \
         median {:>7.2} ms  baseline/seakeeper = {:.2}x (target >= 1.0)",
        median(&mut ours),
        their_mean / our_mean
    );
    println!(
        "seakeeper  merge_chain, all {items} steps in one call:          median {:>7.2} ms per item \
         (first step a fast-forward)",
        median(&mut chain)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let only: Vec<&str> = ["--throughput", "--merge"]
        .into_iter()
        .filter(|f| args.iter().any(|a| a == f))
        .collect();
    let run = |f: &str| only.is_empty() || only.contains(&f);
    if run("--throughput") {
        throughput_bench(
            arg(&args, "--changes", 100),
            arg(&args, "--seeds", if bench { 5 } else { 1 }),
            arg(&args, "--window", 20) as u32,
            arg(&args, "--job-minutes", 10) as i64,
        );
    }
    if run("--merge") {
        merge_bench(
            arg(&args, "--files", if bench { 100_000 } else { 2_000 }),
            arg(&args, "--items", 20),
            arg(&args, "--runs", if bench { 5 } else { 1 }),
        );
    }
}
