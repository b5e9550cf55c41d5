//! The reconcile loop's pure half: a [`World`] snapshot of everything observed, and
//! [`plan`], which turns it into the [`Action`]s that bring what happened closer to what the
//! config repo asks for. No I/O, no clock, no randomness: the same World always gives the same
//! actions, and every action is named by its content so that planning twice is harmless.
//!
//! Build ids derive from the pipeline, project, ref, commit, trigger (patchset, branch move,
//! upstream build or schedule tick) and attempt. Unlike DESIGN.md's first sketch they leave the
//! config commit out: a config change must not re-run every open change. The config commit that
//! planned a build is still recorded in its request.
//!
//! A build's jobs start as capacity allows once every job they `need` has succeeded, and are
//! skipped when one did not ([`stages`]).

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest as _;

use crate::config::files::PipelineKind;
use crate::config::pipeline::ResolvedJob;
use crate::config::{Layout, glob_matches};
use crate::model::record::{BuildRequest, Freeze};
use crate::model::{
    BuildId, BuildStatus, ChangeNumber, CommitId, FreezeName, FreezeState, JobState,
    PatchsetNumber, ProjectName, RefName, Timestamp, Trust,
};
use crate::policy::promotion::{self, Decision, Provenance};

mod action;
mod check;
pub mod gate;
mod gate_plan;
mod review;
pub mod stages;
mod world;
pub use action::Action;
pub use gate::pipeline_commit;
pub use world::{
    Approval, BuildState, ConfigState, DigestFacts, Fact, GateEntry, GateEvent, GateNote, JobRun,
    MergeOutcome, Patchset, Review, World, depends_on_footers, is_recheck,
};

/// The name of the job that checks a change to the config repo itself.
pub const CONFIG_CHECK_JOB: &str = "config-check";

/// How many times a job the executor lost (its seakeeper died) is started again.
pub const MAX_JOB_ATTEMPTS: u32 = 2;

/// How far back a schedule's tick still fires (a daemon down longer skips the missed ticks,
/// as a Kubernetes CronJob's `startingDeadlineSeconds` does).
pub const SCHEDULE_WINDOW_MINUTES: i64 = 10;

/// How deep `depends_on` chains are followed from one merge.
pub const MAX_DEPENDENCY_DEPTH: u32 = 8;

/// A build's id: `<pipeline>-<16 hex>` of the SHA-256 of what names it.
pub fn build_id(
    pipeline: &str,
    project: &ProjectName,
    git_ref: &str,
    commit: &str,
    trigger: &str,
    attempt: u32,
) -> BuildId {
    let mut h = sha2::Sha256::new();
    for part in [
        pipeline,
        project.as_str(),
        git_ref,
        commit,
        trigger,
        &attempt.to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let hex = hex::encode(h.finalize());
    format!("{pipeline}-{}", &hex[..16])
        .parse()
        .expect("a pipeline name and hex make a valid build id")
}

/// The id of the check build of a patchset's `attempt` (0, then one more per recheck).
pub fn check_build_id(project: &ProjectName, c: ChangeNumber, p: &Patchset) -> BuildId {
    build_id(
        "check",
        project,
        p.git_ref.as_str(),
        p.commit.as_str(),
        &format!("{c}/{}", p.patchset),
        p.rechecks,
    )
}

/// The id of the post-merge build of a branch tip (`upstream`: the build whose success
/// triggered it, for dependents).
pub fn post_merge_build_id(
    project: &ProjectName,
    git_ref: &RefName,
    commit: &CommitId,
    upstream: Option<&BuildId>,
) -> BuildId {
    let trigger = upstream.map_or_else(|| "merge".to_owned(), |u| format!("after {u}"));
    build_id(
        "post-merge",
        project,
        git_ref.as_str(),
        commit.as_str(),
        &trigger,
        0,
    )
}

/// The id of a periodic build at a schedule's tick. The commit is left out: a branch that
/// moves after the tick fired must not make the same tick fire again.
pub fn periodic_build_id(
    schedule: &str,
    project: &ProjectName,
    git_ref: &RefName,
    tick: Timestamp,
) -> BuildId {
    build_id(
        "periodic",
        project,
        git_ref.as_str(),
        "",
        &format!("{schedule}@{}", tick.as_second()),
        0,
    )
}

/// The trust of a pipeline under the layout's policy.
pub fn trust_of(layout: &Layout, kind: PipelineKind) -> Trust {
    if layout.policies.trust.trusted_pipelines.contains(&kind) {
        Trust::Trusted
    } else {
        Trust::Untrusted
    }
}

/// The jobs a build runs, from the World's pipeline files.
pub fn jobs_of<'w>(world: &'w World, request: &BuildRequest) -> Option<&'w [ResolvedJob]> {
    let kind = request.pipeline;
    let resolved = world
        .pipelines
        .get(&(request.project.clone(), pipeline_commit(request).clone()))?
        .as_ref()
        .ok()?;
    resolved.get(&kind).map(Vec::as_slice)
}

/// What a job's state means for its build (a job that has not ended, or is unknown, is an
/// error: a result is only recorded once every job has ended). The one place this is decided.
pub fn job_status(state: Option<&JobState>) -> BuildStatus {
    match state {
        Some(JobState::Succeeded) => BuildStatus::Success,
        Some(JobState::Failed { .. }) => BuildStatus::Failure,
        Some(JobState::TimedOut) => BuildStatus::TimedOut,
        // Lost on its last attempt: the system failed, not the change.
        Some(JobState::Lost { .. }) => BuildStatus::Error,
        Some(JobState::Cancelled) => BuildStatus::Cancelled,
        Some(JobState::Pending | JobState::Running) | None => BuildStatus::Error,
    }
}

/// Whether a build's outputs become images: only a successful trusted post-merge or periodic
/// build's (proposed code never produces anything promotable).
pub fn publishes_images(request: &BuildRequest, status: BuildStatus) -> bool {
    status == BuildStatus::Success
        && request.trust == Trust::Trusted
        && matches!(
            request.pipeline,
            PipelineKind::PostMerge | PipelineKind::Periodic
        )
}

/// The outcome of a build whose jobs have all ended.
pub fn outcome(jobs: impl IntoIterator<Item = JobState>) -> BuildStatus {
    let mut status = BuildStatus::Success;
    for s in jobs {
        let this = job_status(Some(&s));
        let rank = |b: BuildStatus| match b {
            BuildStatus::Success => 0,
            BuildStatus::Cancelled => 1,
            BuildStatus::TimedOut => 2,
            BuildStatus::Failure => 3,
            BuildStatus::Error => 4,
            // Never the status of a job that ran (see `stages`).
            BuildStatus::Skipped => 0,
        };
        if rank(this) > rank(status) {
            status = this;
        }
    }
    status
}

/// What a build is of.
struct Target<'a> {
    project: &'a ProjectName,
    change: Option<(ChangeNumber, PatchsetNumber)>,
    git_ref: &'a RefName,
    commit: &'a CommitId,
}

fn request(
    world: &World,
    layout: &Layout,
    kind: PipelineKind,
    build_id: BuildId,
    target: Target<'_>,
    jobs: Vec<String>,
) -> BuildRequest {
    BuildRequest {
        build_id,
        pipeline: kind,
        project: target.project.clone(),
        change: target.change.map(|c| c.0),
        patchset: target.change.map(|c| c.1),
        git_ref: target.git_ref.clone(),
        source_commit: target.commit.clone(),
        config_commit: world.config.layout_commit.clone(),
        trust: trust_of(layout, kind),
        requested_at: world.now,
        jobs,
        cause: None,
    }
}

fn known(world: &World, id: &BuildId) -> bool {
    world.builds.contains_key(id) || world.done.contains(id)
}

fn branch_watched(layout: &Layout, project: &ProjectName, git_ref: &RefName) -> bool {
    let Some(p) = layout.projects.get(project) else {
        return false;
    };
    let Some(branch) = git_ref.as_str().strip_prefix("refs/heads/") else {
        return false;
    };
    p.branches.iter().any(|g| glob_matches(g, branch))
}

/// The job names a pipeline file gives a pipeline, or `None` when the file is missing from
/// the World (the observer has not read it yet) or invalid (then `Err` with why).
fn job_names(
    world: &World,
    kind: PipelineKind,
    project: &ProjectName,
    commit: &CommitId,
) -> Option<Result<Vec<String>, String>> {
    match world.pipelines.get(&(project.clone(), commit.clone()))? {
        Ok(p) => Some(Ok(p
            .get(&kind)
            .map(|jobs| jobs.iter().map(|j| j.name.clone()).collect())
            .unwrap_or_default())),
        Err(e) => Some(Err(e.clone())),
    }
}

/// The images a gate build's jobs declare: what it publishes once it lands.
pub fn gate_images(world: &World, request: &BuildRequest) -> BTreeSet<String> {
    jobs_of(world, request)
        .map(|jobs| {
            jobs.iter()
                .flat_map(|j| j.output_images.iter().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// The post-merge jobs a branch tip needs (`None` until its pipeline file is read; `Err` when
/// it is invalid). Build once: of a commit the gate landed, the jobs whose every image the
/// gate build already built from that very commit are left out.
pub fn post_merge_jobs(
    world: &World,
    project: &ProjectName,
    commit: &CommitId,
) -> Option<Result<Vec<String>, String>> {
    let names = job_names(world, PipelineKind::PostMerge, project, commit)?;
    let Some((_, built)) = world.gate_landed.get(&(project.clone(), commit.clone())) else {
        return Some(names);
    };
    let resolved = world
        .pipelines
        .get(&(project.clone(), commit.clone()))
        .and_then(|p| p.as_ref().ok())
        .and_then(|p| p.get(&PipelineKind::PostMerge));
    Some(names.map(|names| {
        names
            .into_iter()
            .filter(|n| {
                let images = resolved
                    .and_then(|jobs| jobs.iter().find(|j| &j.name == n))
                    .map(|j| j.output_images.as_slice())
                    .unwrap_or(&[]);
                images.is_empty() || !images.iter().all(|i| built.contains(i))
            })
            .collect()
    }))
}

/// Decides what to do. Pure: the same World and Layout give the same actions.
pub fn plan(world: &World, layout: &Layout) -> Vec<Action> {
    let mut actions = Vec::new();
    check::plan_checks(world, layout, &mut actions);
    plan_post_merge(world, layout, &mut actions);
    plan_periodic(world, layout, &mut actions);
    // Comments that only say a change entered the gate go last: after its jobs have started.
    let mut tells = Vec::new();
    let gate = gate_plan::plan_gate(world, layout, &mut actions, &mut tells);
    plan_builds(world, layout, &gate, &mut actions);
    plan_freezes(world, layout, &mut actions);
    plan_promotions(world, layout, &mut actions);
    actions.append(&mut tells);
    if let Some((head, _)) = &world.config.unreported
        && world.config_project.is_some()
    {
        actions.push(Action::ReportInvalidConfig { head: head.clone() });
    }
    actions
}

fn takes_part(layout: &Layout, project: &ProjectName, kind: PipelineKind) -> bool {
    layout
        .projects
        .get(project)
        .is_some_and(|f| f.pipelines.contains(&kind))
}

fn plan_post_merge(world: &World, layout: &Layout, actions: &mut Vec<Action>) {
    for ((project, git_ref), commit) in &world.moved {
        if !takes_part(layout, project, PipelineKind::PostMerge)
            || !branch_watched(layout, project, git_ref)
        {
            continue;
        }
        let id = post_merge_build_id(project, git_ref, commit, None);
        if known(world, &id) {
            continue;
        }
        let Some(jobs) = post_merge_jobs(world, project, commit) else {
            continue;
        };
        if jobs.as_ref().is_ok_and(Vec::is_empty) {
            continue;
        }
        let merged_by = world.merged_by.get(&(project.clone(), commit.clone()));
        if world.merges_looked_up && merged_by.is_none() {
            // Which change merged it is being looked up: the request names it.
            continue;
        }
        let mut r = request(
            world,
            layout,
            PipelineKind::PostMerge,
            id,
            Target {
                project,
                change: None,
                git_ref,
                commit,
            },
            jobs.unwrap_or_default(),
        );
        if let Some(Some((change, patchset))) = merged_by {
            r.cause = Some(crate::model::record::BuildCause::Merge {
                change: *change,
                patchset: *patchset,
            });
        }
        actions.push(Action::RequestBuild {
            request: r,
            depth: 0,
        });
    }
    // Dependents of a successful post-merge build are built next, at their own tips.
    for (upstream, b) in &world.builds {
        for d in dependents(world, layout, upstream, b) {
            let Dependent::Wanted {
                project,
                git_ref,
                commit,
                jobs,
            } = d
            else {
                continue;
            };
            let id = post_merge_build_id(project, git_ref, commit, Some(upstream));
            let mut r = request(
                world,
                layout,
                PipelineKind::PostMerge,
                id,
                Target {
                    project,
                    change: None,
                    git_ref,
                    commit,
                },
                jobs,
            );
            r.cause = Some(crate::model::record::BuildCause::Upstream {
                build_id: upstream.clone(),
                project: b.request.project.clone(),
                commit: b.request.source_commit.clone(),
            });
            actions.push(Action::RequestBuild {
                request: r,
                depth: b.depth + 1,
            });
        }
    }
}

/// Where a dependent build of an upstream post-merge build stands.
enum Dependent<'w> {
    /// Requested already (or nothing to build).
    Settled,
    /// Its pipeline file is not read yet: wait.
    Waiting,
    /// To be requested.
    Wanted {
        project: &'w ProjectName,
        git_ref: &'w RefName,
        commit: &'w CommitId,
        jobs: Vec<String>,
    },
}

/// The builds that `b`'s success asks for: every project whose `depends_on` names `b`'s
/// project, at its branch of the same name (else its first watched branch).
fn dependents<'w>(
    world: &'w World,
    layout: &'w Layout,
    upstream: &BuildId,
    b: &BuildState,
) -> Vec<Dependent<'w>> {
    let r = &b.request;
    // A landed gate build whose commit post-merge does not build again (build once) triggers
    // the dependents itself.
    let branch = match &r.cause {
        Some(crate::model::record::BuildCause::Gate { branch, .. })
            if b.landed.is_some()
                && post_merge_jobs(world, &r.project, &r.source_commit)
                    .is_some_and(|j| j.is_ok_and(|j| j.is_empty())) =>
        {
            branch
        }
        _ if r.pipeline == PipelineKind::PostMerge => &r.git_ref,
        _ => return Vec::new(),
    };
    if b.result != Some(BuildStatus::Success) || b.depth >= MAX_DEPENDENCY_DEPTH {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (name, file) in &layout.projects {
        if !file.depends_on.contains(&r.project)
            || !file.pipelines.contains(&PipelineKind::PostMerge)
        {
            continue;
        }
        let tip = world
            .tips
            .get_key_value(&(name.clone(), branch.clone()))
            .or_else(|| {
                world
                    .tips
                    .iter()
                    .find(|((p, g), _)| p == name && branch_watched(layout, p, g))
            });
        let Some(((project, git_ref), commit)) = tip else {
            out.push(Dependent::Settled);
            continue;
        };
        let id = post_merge_build_id(project, git_ref, commit, Some(upstream));
        if known(world, &id) {
            out.push(Dependent::Settled);
            continue;
        }
        out.push(
            match job_names(world, PipelineKind::PostMerge, project, commit) {
                None => Dependent::Waiting,
                Some(Ok(jobs)) if jobs.is_empty() => Dependent::Settled,
                Some(jobs) => Dependent::Wanted {
                    project,
                    git_ref,
                    commit,
                    jobs: jobs.unwrap_or_default(),
                },
            },
        );
    }
    out
}

/// The schedule's tick in the last [`SCHEDULE_WINDOW_MINUTES`], if any (the newest).
pub fn recent_tick(cron: &crate::config::cron::Cron, now: Timestamp) -> Option<Timestamp> {
    let minute = now.as_second().div_euclid(60) * 60;
    (0..SCHEDULE_WINDOW_MINUTES)
        .map(|m| minute - m * 60)
        .filter_map(|s| Timestamp::from_second(s).ok())
        .find(|t| cron.matches(*t))
}

fn plan_periodic(world: &World, layout: &Layout, actions: &mut Vec<Action>) {
    for s in &layout.schedules {
        let Ok(cron) = s.cron.parse::<crate::config::cron::Cron>() else {
            continue;
        };
        let Some(tick) = recent_tick(&cron, world.now) else {
            continue;
        };
        let Ok(git_ref) = format!("refs/heads/{}", s.branch).parse::<RefName>() else {
            continue;
        };
        let Some(commit) = world.tips.get(&(s.project.clone(), git_ref.clone())) else {
            continue;
        };
        let id = periodic_build_id(&s.name, &s.project, &git_ref, tick);
        if known(world, &id) {
            continue;
        }
        let Some(jobs) = job_names(world, PipelineKind::Periodic, &s.project, commit) else {
            continue;
        };
        if jobs.as_ref().is_ok_and(Vec::is_empty) {
            continue;
        }
        let mut r = request(
            world,
            layout,
            PipelineKind::Periodic,
            id,
            Target {
                project: &s.project,
                change: None,
                git_ref: &git_ref,
                commit,
            },
            jobs.unwrap_or_default(),
        );
        r.cause = Some(crate::model::record::BuildCause::Schedule {
            name: s.name.clone(),
            tick,
        });
        actions.push(Action::RequestBuild {
            request: r,
            depth: 0,
        });
    }
}

/// Jobs and results of the builds in flight (`gate`: the gate builds the queues want; the
/// others, and every gate build's report, are the gate's to plan).
fn plan_builds(
    world: &World,
    layout: &Layout,
    gate: &BTreeMap<BuildId, usize>,
    actions: &mut Vec<Action>,
) {
    let mut capacity = world.capacity;
    let limits = &layout.policies.limits;
    // Higher priority first (policies/limits.yaml `priorities`; a pipeline it does not list
    // comes last), then oldest first, so that a busy system drains in order.
    let rank = |pipeline: PipelineKind| {
        limits
            .priorities
            .iter()
            .position(|k| *k == pipeline)
            .unwrap_or(limits.priorities.len())
    };
    let mut order: Vec<(&BuildId, &BuildState)> = world.builds.iter().collect();
    // Gate builds by their item's place in its queue (the head's jobs first: a slot freed
    // goes to the item nearest to landing).
    order.sort_by_key(|(id, b)| {
        (
            rank(b.request.pipeline),
            gate.get(*id).copied().unwrap_or(usize::MAX),
            b.request.requested_at,
            (*id).clone(),
        )
    });
    // Jobs of one project at once (`project_concurrency`), counting those running now.
    let mut per_project: BTreeMap<&ProjectName, u32> = BTreeMap::new();
    for b in world.builds.values() {
        let running = b
            .jobs
            .values()
            .filter(|r| r.state.as_ref().is_some_and(|s| !s.is_final()))
            .count() as u32;
        *per_project.entry(&b.request.project).or_default() += running;
    }
    let project_limit = limits.project_concurrency.max(1);
    for (id, b) in order {
        let project_room = |per_project: &BTreeMap<&ProjectName, u32>| {
            per_project
                .get(&b.request.project)
                .is_none_or(|n| *n < project_limit)
        };
        if b.cancelled || (b.result.is_some() && b.reported) {
            continue;
        }
        if b.request.pipeline == PipelineKind::Gate
            && (b.result.is_some() || !gate.contains_key(id))
        {
            continue;
        }
        if b.result.is_some() {
            // A cancelled check is finished without a review (apply knows); a successful
            // post-merge build is finished once its dependents are requested, so that a
            // failure to request them is retried while it is still here.
            let waiting = dependents(world, layout, id, b)
                .iter()
                .any(|d| !matches!(d, Dependent::Settled));
            if !waiting {
                actions.push(Action::Report {
                    build_id: id.clone(),
                });
            }
            continue;
        }
        if b.request.jobs.iter().any(|j| j == CONFIG_CHECK_JOB)
            && world.config_project.as_ref() == Some(&b.request.project)
        {
            actions.push(Action::CheckConfig {
                build_id: id.clone(),
            });
            continue;
        }
        let resolved = jobs_of(world, &b.request);
        let readiness = stages::readiness(b, resolved);
        let mut ended = 0;
        for name in &b.request.jobs {
            let run = b.jobs.get(name);
            match run.and_then(|r| r.state.as_ref()) {
                Some(s) if s.is_final() => {
                    let attempt = run.map_or(1, |r| r.attempt);
                    if matches!(s, JobState::Lost { .. }) && attempt < MAX_JOB_ATTEMPTS {
                        if let Some(job) = resolved.and_then(|j| j.iter().find(|j| &j.name == name))
                            && capacity > 0
                            && project_room(&per_project)
                        {
                            capacity -= 1;
                            *per_project.entry(&b.request.project).or_default() += 1;
                            actions.push(Action::StartJob {
                                build_id: id.clone(),
                                job: job.clone(),
                                attempt: attempt + 1,
                            });
                        }
                    } else {
                        ended += 1;
                    }
                }
                Some(_) => {}
                None => {
                    match readiness.get(name) {
                        // A job it needs did not succeed: it never runs, and has ended.
                        Some(stages::Readiness::Skipped) => {
                            ended += 1;
                            continue;
                        }
                        Some(stages::Readiness::Waiting) => continue,
                        Some(stages::Readiness::Ready) | None => {}
                    }
                    let attempt = run.map_or(1, |r| r.attempt);
                    match resolved.and_then(|j| j.iter().find(|j| &j.name == name)) {
                        Some(job) if capacity > 0 && project_room(&per_project) => {
                            capacity -= 1;
                            *per_project.entry(&b.request.project).or_default() += 1;
                            actions.push(Action::StartJob {
                                build_id: id.clone(),
                                job: job.clone(),
                                attempt,
                            });
                        }
                        Some(_) => {}
                        // The pipeline file no longer names it (or is unreadable): the
                        // result records the job as an error.
                        None if world.pipelines.contains_key(&(
                            b.request.project.clone(),
                            pipeline_commit(&b.request).clone(),
                        )) =>
                        {
                            ended += 1
                        }
                        None => {}
                    }
                }
            }
        }
        if ended == b.request.jobs.len() {
            actions.push(Action::RecordResult {
                build_id: id.clone(),
            });
        }
    }
}

fn plan_freezes(world: &World, layout: &Layout, actions: &mut Vec<Action>) {
    let origin = |name: &FreezeName| {
        world.freeze_origins.get(name).cloned().unwrap_or_else(|| {
            (
                world.config.layout_commit.clone(),
                world.config.author.clone(),
            )
        })
    };
    for (name, f) in &layout.freezes {
        let active = f.is_active(world.now);
        let recorded = world.freezes.get(name).map(|r| r.state);
        let state = if active {
            FreezeState::Active
        } else {
            FreezeState::Lifted
        };
        if recorded == Some(state) || (recorded.is_none() && !active) {
            continue;
        }
        let (config_commit, author) = origin(name);
        actions.push(Action::RecordFreeze {
            freeze: Freeze {
                name: name.clone(),
                state,
                scope: f.scope.clone(),
                reason: f.reason.clone(),
                config_commit,
                author,
            },
        });
    }
    for (name, r) in &world.freezes {
        if r.state == FreezeState::Active && !layout.freezes.contains_key(name) {
            let (config_commit, author) = origin(name);
            actions.push(Action::RecordFreeze {
                freeze: Freeze {
                    name: name.clone(),
                    state: FreezeState::Lifted,
                    scope: r.scope.clone(),
                    reason: r.reason.clone(),
                    config_commit,
                    author,
                },
            });
        }
    }
}

fn plan_promotions(world: &World, layout: &Layout, actions: &mut Vec<Action>) {
    for (pos, env) in layout.environments.iter().enumerate() {
        let Some(wanted) = layout.promotions.get(&env.name) else {
            continue;
        };
        for (image, digest) in wanted {
            let current = world.deployed.get(&(env.name.clone(), image.clone()));
            if current.is_some_and(|(d, _)| d == digest) {
                continue;
            }
            let facts = world.digests.get(digest);
            let previous = pos.checked_sub(1).map(|p| &layout.environments[p].name);
            // The previous environment must run this digest as this image now, not merely
            // have run it once, or under another name.
            let in_previous_since = previous.and_then(|p| {
                let slot = (p.clone(), image.clone());
                world
                    .deployed
                    .get(&slot)
                    .filter(|(d, _)| d == digest)
                    .map(|(_, at)| {
                        facts
                            .and_then(|f| f.entered.get(&slot).copied())
                            .map_or(*at, |first| first.min(*at))
                    })
            });
            let no_images = BTreeSet::new();
            let decision = promotion::decide(&promotion::Facts {
                environment: &env.name,
                image,
                digest,
                environments: &layout.environments,
                provenance: facts.map_or(Provenance::None, |f| f.provenance),
                attested_images: facts.map_or(&no_images, |f| &f.images),
                provenance_problem: facts.and_then(|f| f.problem.as_deref()),
                in_previous_since,
                ran_here_before: facts
                    .is_some_and(|f| f.entered.contains_key(&(env.name.clone(), image.clone()))),
                freezes: &layout.freezes,
                policy: &layout.policies.promotion,
                now: world.now,
            });
            actions.push(match decision {
                Decision::Allow => Action::Promote {
                    environment: env.name.clone(),
                    image: image.clone(),
                    digest: digest.clone(),
                    from: previous.cloned(),
                },
                Decision::Hold { reason, freeze } => Action::Hold {
                    environment: env.name.clone(),
                    image: image.clone(),
                    digest: digest.clone(),
                    reason,
                    freeze,
                },
                Decision::Deny { reason } => Action::Refuse {
                    environment: env.name.clone(),
                    image: image.clone(),
                    digest: digest.clone(),
                    reason,
                },
            });
        }
    }
}

#[cfg(test)]
mod tests;
