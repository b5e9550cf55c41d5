//! Builds: requests (write-ahead), jobs, results (with their logs and images), cancellations
//! and in-process config checks.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Applied, Error, Services, crash_point, finish, inflight_path, job_key, publish};
use crate::config::Layout;
use crate::config::pipeline::{ResolvedJob, RunContext};
use crate::executor::ExecError;
use crate::model::record::{ArtifactRef, BuildRequest, BuildResult, JobResult};
use crate::model::{BuildId, BuildStatus, CommitId, Digest, JobKey, JobState, Record, Timestamp};
use crate::reconcile::{self, BuildState, Fact, JobRun, World};

/// Loads a build the ledger already holds (after a restart, or when another process wrote
/// it): `None` when the ledger does not hold it. A gate build done with also says how it
/// ended (its change failed in that state, or the state is to be tested again).
pub fn adopt(svc: &Services, id: &BuildId, depth: u32) -> Result<Option<Vec<Fact>>, Error> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.read_ledger()?;
    let read = |source| Error::Ledger {
        what: format!("reading build {id}"),
        source,
    };
    let snapshot = ledger.snapshot().map_err(read)?;
    let Some(records) = snapshot.build(id).map_err(read)? else {
        return Ok(None);
    };
    let marked = inflight_path(svc, id).exists();
    if let Some(result) = records.result.as_ref().filter(|_| !marked) {
        let mut facts = vec![Fact::BuildDone(id.clone())];
        let r = &records.request;
        if r.pipeline == crate::config::files::PipelineKind::Gate
            && let Some(change) = r.change
        {
            let status = match (&records.landing, result.status) {
                (Some(_), _) => BuildStatus::Success,
                (None, BuildStatus::Success) => BuildStatus::Cancelled,
                (None, s) => s,
            };
            facts.push(Fact::GateDone {
                build: id.clone(),
                project: r.project.clone(),
                change,
                status,
            });
        }
        return Ok(Some(facts));
    }
    let recorded = match &records.result {
        Some(r) => snapshot
            .commit_of(&format!("{}/result.yaml", records.dir))
            .map_err(read)?
            .and_then(|c| c.to_string().parse::<CommitId>().ok())
            .map(|c| (r.clone(), c)),
        None => None,
    };
    Ok(Some(vec![Fact::BuildInFlight(Box::new(BuildState {
        request: records.request.clone(),
        result: records.result.as_ref().map(|r| r.status),
        reported: false,
        cancelled: false,
        jobs: BTreeMap::new(),
        depth,
        recorded,
        landed: records.landing.as_ref().map(|l| l.commit.clone()),
    }))]))
}

/// Records a build request (its marker first, so a crash before the record leaves a build
/// the next start looks up), or adopts the one an earlier run recorded.
pub(super) fn request(
    svc: &Services,
    request: &BuildRequest,
    depth: u32,
) -> Result<Applied, Error> {
    let id = &request.build_id;
    // Requested before (by an earlier run of seakeeper): adopt it, never request twice.
    if !inflight_path(svc, id).exists()
        && let Some(facts) = adopt(svc, id, depth)?
    {
        return Ok(Applied::progress(facts));
    }
    let marker = inflight_path(svc, id);
    std::fs::create_dir_all(&svc.inflight).map_err(|e| Error::io(svc.inflight.display(), e))?;
    crate::store::write_durably(&marker, depth.to_string().as_bytes())
        .map_err(|e| Error::io(marker.display(), e))?;
    if let Some(facts) = adopt(svc, id, depth)? {
        return Ok(Applied::progress(facts));
    }
    svc.writer
        .append(Record::BuildRequest(request.clone()))
        .map_err(|source| Error::Record {
            what: format!("recording the request of {id}"),
            source,
        })?;
    (svc.on_write)();
    crash_point("after-request");
    let what = match (request.change, request.patchset) {
        (Some(c), Some(p)) => format!("{} change {c},{p}", request.project),
        _ => format!("{} {}", request.project, request.git_ref),
    };
    (svc.reporter)(&format!(
        "[{}] {what}: build {id} requested ({} jobs: {})",
        request.pipeline,
        request.jobs.len(),
        request.jobs.join(", ")
    ));
    Ok(Applied::progress([Fact::BuildInFlight(Box::new(
        BuildState {
            request: request.clone(),
            result: None,
            reported: false,
            cancelled: false,
            jobs: BTreeMap::new(),
            depth,
            recorded: None,
            landed: None,
        },
    ))]))
}

pub(super) fn start_job(
    svc: &Services,
    layout: &Layout,
    world: &World,
    id: &BuildId,
    job: &ResolvedJob,
    attempt: u32,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let r = &b.request;
    let fetched = svc
        .sources
        .ensure(&r.project, r.git_ref.as_str(), &r.source_commit)
        .map_err(|e| Error::Git {
            what: "the source could not be fetched".into(),
            message: e.to_string(),
            transient: !e.permanent,
        })
        .and_then(|_| required_sources(svc, world, r, job));
    let state = match fetched {
        Err(e) => JobState::Failed {
            exit_code: None,
            reason: e.to_string(),
        },
        Ok(required) => {
            let mut spec = job.to_spec(&RunContext {
                build_id: id.clone(),
                pipeline: r.pipeline.as_str(),
                project: r.project.clone(),
                change: r.change.zip(r.patchset),
                source: &svc.sources.url(&r.project),
                commit: r.source_commit.clone(),
                trust: r.trust,
                required,
            });
            spec.job = job_key(id, &job.name, attempt).job;
            let resolved = reconcile::jobs_of(world, r).unwrap_or_default();
            let staged = super::stages::prepare(svc, layout, id, b, resolved, job, &mut spec);
            match staged.map(|()| svc.executor.start(&spec)) {
                // The executor could not list a needed job's outputs: tried again next pass.
                Err(e @ Error::Executor { .. }) => return Err(e),
                Err(e) => JobState::Failed {
                    exit_code: None,
                    reason: e.to_string(),
                },
                Ok(started) => match started {
                    Ok(()) => JobState::Pending,
                    Err(ExecError::Invalid { message, .. }) => JobState::Failed {
                        exit_code: None,
                        reason: message,
                    },
                    Err(source) => {
                        return Err(Error::Executor {
                            what: format!("starting {id}/{}", job.name),
                            source,
                        });
                    }
                },
            }
        }
    };
    if std::env::var("SEAKEEPER_TEST_CRASH_AT").is_ok_and(|p| p == "after-start") {
        // Die while the job runs, not before it has started.
        let key = job_key(id, &job.name, attempt);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < until
            && matches!(svc.executor.state(&key), Ok(Some(JobState::Pending)))
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    crash_point("after-start");
    Ok(Applied::progress([Fact::JobObserved {
        build: id.clone(),
        job: job.name.clone(),
        run: JobRun {
            attempt,
            state: Some(state),
        },
    }]))
}

/// The projects a job requires, fetched: in a gate build, at the queue's state of each (as
/// its request says); otherwise at the tip of the branch of the same name (the change's
/// target branch for a check), else of the project's first watched branch.
fn required_sources(
    svc: &Services,
    world: &World,
    r: &BuildRequest,
    job: &ResolvedJob,
) -> Result<Vec<crate::model::RequiredSource>, Error> {
    let mut out = Vec::new();
    let gate = match &r.cause {
        Some(crate::model::record::BuildCause::Gate {
            required, branch, ..
        }) => Some((required, Some(branch))),
        // A check's Depends-On in other projects: those projects' states.
        Some(crate::model::record::BuildCause::DependsOn { required, .. }) => {
            Some((required, None))
        }
        _ => None,
    };
    let branch = match (gate.and_then(|(_, b)| b), r.change) {
        (Some(b), _) => b.clone(),
        (None, Some(c)) => world
            .changes
            .get(&(r.project.clone(), c))
            .and_then(|p| p.review.as_ref())
            .map(|rv| rv.branch.clone())
            .unwrap_or_else(|| "refs/heads/main".parse().expect("a branch name")),
        (None, None) => r.git_ref.clone(),
    };
    for p in &job.requires {
        let tip = world
            .tips
            .get(&(p.clone(), branch.clone()))
            .or_else(|| world.tips.iter().find(|((q, _), _)| q == p).map(|(_, c)| c));
        let (commit, git_ref) = match gate.and_then(|(req, _)| req.iter().find(|s| s.project == *p))
        {
            Some(s) if Some(&s.commit) == tip => (s.commit.clone(), branch.to_string()),
            Some(s) => (
                s.commit.clone(),
                format!("{}{}", reconcile::gate::SPECULATIVE_REFS, s.commit),
            ),
            None => match tip {
                Some(c) => (c.clone(), branch.to_string()),
                None => {
                    return Err(Error::Git {
                        what: format!("{p}, which {} requires", job.name),
                        message: "it has no branch seakeeper knows".into(),
                        transient: false,
                    });
                }
            },
        };
        svc.sources
            .ensure(p, &git_ref, &commit)
            .map_err(|e| Error::Git {
                what: format!("{p}, which {} requires, could not be fetched", job.name),
                message: e.to_string(),
                transient: !e.permanent,
            })?;
        out.push(crate::model::RequiredSource {
            project: p.clone(),
            source: svc.sources.url(p),
            commit,
        });
    }
    Ok(out)
}

/// The job states the executor reports for the builds in flight, as facts.
pub fn refresh_jobs(svc: &Services, world: &World) -> Vec<Fact> {
    let mut facts = Vec::new();
    for (id, b) in &world.builds {
        if b.result.is_some() || b.cancelled {
            continue;
        }
        for name in &b.request.jobs {
            if name == reconcile::CONFIG_CHECK_JOB {
                continue;
            }
            let current = b.jobs.get(name);
            if current
                .and_then(|r| r.state.as_ref())
                .is_some_and(|s| s.is_final() && !matches!(s, JobState::Lost { .. }))
            {
                continue;
            }
            let mut attempt = current.map_or(1, |r| r.attempt);
            let mut state = match svc.executor.state(&job_key(id, name, attempt)) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("{id}/{name}: {e}");
                    continue;
                }
            };
            // A restarted run of a lost job carries the next attempt number.
            while matches!(state, Some(JobState::Lost { .. }))
                && attempt < reconcile::MAX_JOB_ATTEMPTS
            {
                match svc.executor.state(&job_key(id, name, attempt + 1)) {
                    Ok(Some(next)) => {
                        attempt += 1;
                        state = Some(next);
                    }
                    _ => break,
                }
            }
            // A refusal recorded by start_job stays; nothing known stays unknown.
            if let Some(s) = state {
                let run = JobRun {
                    attempt,
                    state: Some(s),
                };
                if current != Some(&run) {
                    facts.push(Fact::JobObserved {
                        build: id.clone(),
                        job: name.clone(),
                        run,
                    });
                }
            }
        }
    }
    facts
}

/// The job's log (stored by digest) and how long it ran, from the log's first and last times.
/// The log is streamed into the store, never held whole.
fn job_log(svc: &Services, key: &JobKey) -> (Option<Digest>, u64, Option<Timestamp>) {
    let mut first: Option<jiff::Timestamp> = None;
    let mut last = None;
    let mut store = match svc.store.writer() {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("storing the log of {key}: {e}");
            None
        }
    };
    let mut failed = None;
    let _ = svc.executor.logs(key, false, &mut |line| {
        if let Ok(t) = line.time.parse::<jiff::Timestamp>() {
            first.get_or_insert(t);
            last = Some(t);
        }
        if let Some(w) = store.as_mut()
            && failed.is_none()
        {
            let written = w
                .write(line.time.as_bytes())
                .and_then(|()| w.write(b" "))
                .and_then(|()| w.write(line.text.as_bytes()))
                .and_then(|()| w.write(b"\n"));
            if let Err(e) = written {
                failed = Some(e.to_string());
            }
        }
    });
    let duration = match (first, last) {
        (Some(a), Some(b)) => u64::try_from(b.duration_since(a).as_millis()).unwrap_or(0),
        _ => 0,
    };
    let started = first.and_then(|t| t.to_string().parse::<Timestamp>().ok());
    let digest = match (store, failed) {
        (Some(w), None) => w.finish().unwrap_or_else(|e| {
            tracing::warn!("storing the log of {key}: {e}");
            None
        }),
        (Some(w), Some(e)) => {
            tracing::warn!("storing the log of {key}: {e}");
            let _ = w.finish();
            None
        }
        (None, _) => None,
    };
    (digest, duration, started)
}

/// Why the build's pipeline file could not be used, when it could not.
pub(super) fn pipeline_error(world: &World, r: &BuildRequest) -> Option<String> {
    world
        .pipelines
        .get(&(r.project.clone(), reconcile::pipeline_commit(r).clone()))
        .and_then(|p| p.as_ref().err().cloned())
}

pub(super) fn record_result(
    svc: &Services,
    layout: &Layout,
    world: &World,
    id: &BuildId,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let request = &b.request;
    let pipeline_error = pipeline_error(world, request);
    let resolved: Vec<ResolvedJob> = reconcile::jobs_of(world, request)
        .map(<[ResolvedJob]>::to_vec)
        .unwrap_or_default();
    let mut jobs = Vec::new();
    let mut states = Vec::new();
    // When its first job started (its log's first line), not when it was requested.
    let mut first_start: Option<Timestamp> = None;
    let mut starts = Vec::new();
    let readiness = reconcile::stages::readiness(b, Some(&resolved));
    // The image each job built in the build ran in, to be checked against what is published.
    let mut ran_in: Vec<(String, String, Digest)> = Vec::new();
    for name in &request.jobs {
        let declared = resolved.iter().find(|j| &j.name == name);
        let needs = declared.map(|j| j.needs.clone()).unwrap_or_default();
        if readiness.get(name) == Some(&reconcile::stages::Readiness::Skipped) {
            starts.push(None);
            jobs.push(JobResult {
                name: name.clone(),
                status: BuildStatus::Skipped,
                duration_ms: 0,
                log_digest: None,
                needs,
                image: None,
            });
            continue;
        }
        let mut image = None;
        if let Some(job) = declared.filter(|j| j.image_from.is_some())
            && b.jobs.get(name).is_some_and(|r| r.state.is_some())
        {
            match super::stages::built_image(svc, layout, id, b, &resolved, job) {
                Ok(built) => {
                    if let Some(from) = &job.image_from {
                        let image_name = from.name.as_ref().map(|n| n.to_string());
                        ran_in.push((name.clone(), image_name.unwrap_or_default(), built.digest));
                    }
                    image = Some(built.reference);
                }
                Err(e) => tracing::warn!("the image {id}/{name} ran in: {e}"),
            }
        }
        let run = b.jobs.get(name);
        let state = run.and_then(|r| r.state.clone());
        let attempt = run.map_or(1, |r| r.attempt);
        let key = job_key(id, name, attempt);
        let (log_digest, duration_ms, started) = match &state {
            Some(_) => job_log(svc, &key),
            None => (None, 0, None),
        };
        if let Some(s) = started {
            first_start = Some(first_start.map_or(s, |f| f.min(s)));
        }
        starts.push(started);
        jobs.push(JobResult {
            name: name.clone(),
            status: reconcile::job_status(state.as_ref()),
            duration_ms,
            log_digest,
            needs,
            image,
        });
        states.push(state.unwrap_or(JobState::Failed {
            exit_code: None,
            reason: "the pipeline file no longer names this job".into(),
        }));
    }
    let mut status = reconcile::outcome(states);
    if pipeline_error.is_some() {
        status = BuildStatus::Failure;
    }
    let started_at = first_start.map_or(request.requested_at, |s| s.max(request.requested_at));
    let mut records = Vec::new();
    let mut artifacts = Vec::new();
    let mut published = publish::Published::default();
    if reconcile::publishes_images(request, status) {
        for job in &resolved {
            if job.image_outputs.is_empty() {
                continue;
            }
            let attempt = b.jobs.get(&job.name).map_or(1, |r| r.attempt);
            let key = job_key(id, &job.name, attempt);
            match publish::images(svc, layout, world, request, job, &key, started_at) {
                Ok(mut p) => {
                    for rec in &p.records {
                        if let Record::Artifact(a) = rec {
                            artifacts.push(ArtifactRef {
                                digest: a.digest.clone(),
                                name: a.name.clone(),
                                kind: a.kind,
                            });
                        }
                    }
                    published.append(&mut p);
                }
                Err(e) => {
                    (svc.reporter)(&format!("[{}] {id}: {e}", request.pipeline));
                    status = BuildStatus::Error;
                    if let Some(j) = jobs.iter_mut().find(|j| j.name == job.name) {
                        j.status = BuildStatus::Error;
                    }
                    artifacts.clear();
                    published = publish::Published::default();
                    break;
                }
            }
        }
    }
    // A later job ran in an image the build built: the build publishes exactly that digest.
    for (job, image, digest) in &ran_in {
        let other = published.records.iter().find_map(|r| match r {
            Record::Artifact(a) if a.name == *image && a.digest != *digest => Some(&a.digest),
            _ => None,
        });
        if let Some(other) = other {
            (svc.reporter)(&format!(
                "[{}] {id}: image {image} was published as {other}, but {job} ran in {digest}",
                request.pipeline
            ));
            status = BuildStatus::Error;
            artifacts.clear();
            published = publish::Published::default();
            break;
        }
    }
    records.append(&mut published.records);
    let result = BuildResult {
        build_id: id.clone(),
        status,
        started_at,
        finished_at: Timestamp::now().max(started_at),
        jobs,
        artifacts,
    };
    records.push(Record::BuildResult(result.clone()));
    let mut receipts = svc.writer.append_all(records);
    (svc.on_write)();
    // The result is last. Other records may be refused on their own (an artifact another
    // build recorded differently): that is worth a warning, not a build stuck forever.
    let result_receipt = receipts.pop().expect("the result was submitted");
    for r in receipts {
        if let Err(e) = r {
            tracing::warn!("recording an output of {id}: {e}");
        }
    }
    let (result, commit) = match result_receipt {
        Ok(receipt) => (result, receipt.commit),
        // Recorded before (by a run that died before it could say so): adopt that one.
        Err(source) => match recorded_result(svc, id)? {
            Some(existing) => existing,
            None => {
                return Err(Error::Record {
                    what: format!("recording the result of {id}"),
                    source,
                });
            }
        },
    };
    crate::metrics::get().build_recorded(request, &result, &starts);
    crash_point("after-result");
    Ok(Applied::progress([
        published.fact(),
        Fact::ResultRecorded { result, commit },
    ]))
}

/// The result the ledger already holds for `id`, with the commit that added it.
fn recorded_result(svc: &Services, id: &BuildId) -> Result<Option<(BuildResult, CommitId)>, Error> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.read_ledger()?;
    let read = |source| Error::Ledger {
        what: format!("reading the result of {id}"),
        source,
    };
    let snapshot = ledger.snapshot().map_err(read)?;
    let Some(records) = snapshot.build(id).map_err(read)? else {
        return Ok(None);
    };
    let Some(result) = records.result else {
        return Ok(None);
    };
    let commit = snapshot
        .commit_of(&format!("{}/result.yaml", records.dir))
        .map_err(read)?
        .and_then(|c| c.to_string().parse().ok());
    Ok(commit.map(|c| (result, c)))
}

pub(super) fn check_config(svc: &Services, world: &World, id: &BuildId) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let r = &b.request;
    let started = std::time::Instant::now();
    let (ok, text) = match svc
        .sources
        .ensure(&r.project, r.git_ref.as_str(), &r.source_commit)
    {
        Err(e) => (false, format!("the change could not be fetched: {e}\n")),
        Ok(path) => match load_config_at(&path, &r.source_commit) {
            Err(e) => (false, format!("{e}\n")),
            Ok(Ok(layout)) => (
                true,
                format!(
                    "config check: OK ({} environments, {} projects, {} freezes)\n",
                    layout.environments.len(),
                    layout.projects.len(),
                    layout.freezes.len()
                ),
            ),
            Ok(Err(errors)) => {
                let mut t = format!("config check: {} errors\n", errors.len());
                for e in errors {
                    t.push_str(&format!("{e}\n"));
                }
                (false, t)
            }
        },
    };
    let log = svc
        .store
        .put(text.as_bytes())
        .map_err(|e| Error::io(format!("storing the config check's log of {id}"), e))?;
    let status = if ok {
        BuildStatus::Success
    } else {
        BuildStatus::Failure
    };
    let result = BuildResult {
        build_id: id.clone(),
        status,
        started_at: r.requested_at,
        finished_at: Timestamp::now().max(r.requested_at),
        jobs: vec![JobResult {
            name: reconcile::CONFIG_CHECK_JOB.to_owned(),
            status,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            log_digest: Some(log),
            needs: Vec::new(),
            image: None,
        }],
        artifacts: Vec::new(),
    };
    let receipt = svc
        .writer
        .append(Record::BuildResult(result.clone()))
        .map_err(|source| Error::Record {
            what: format!("recording the result of {id}"),
            source,
        })?;
    (svc.on_write)();
    Ok(Applied::progress([Fact::ResultRecorded {
        result,
        commit: receipt.commit,
    }]))
}

/// Why a commit of the config repo could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigReadError {
    /// The repository could not be opened.
    #[error("{path}: {message}")]
    Open {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        message: String,
    },
    /// Not a commit id.
    #[error("{0}: not a commit id")]
    Commit(String),
    /// Its files could not be read.
    #[error(transparent)]
    Files(#[from] crate::git::files::FilesError),
}

/// The config repo at `commit` in the repository at `path`, loaded: `Err` when it cannot be
/// read, `Ok(Err)` with every error when it is invalid.
pub fn load_config_at(
    path: &Path,
    commit: &CommitId,
) -> Result<Result<Layout, Vec<crate::config::ConfigError>>, ConfigReadError> {
    let repo = gix::open(path).map_err(|e| ConfigReadError::Open {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let id = gix::ObjectId::from_hex(commit.as_str().as_bytes())
        .map_err(|_| ConfigReadError::Commit(commit.to_string()))?;
    let files = crate::git::files::read_all(&repo, &id)?;
    let bytes: BTreeMap<String, Vec<u8>> = files.into_iter().map(|(p, f)| (p, f.bytes)).collect();
    Ok(crate::config::load(&bytes))
}

pub(super) fn cancel(
    svc: &Services,
    world: &World,
    id: &BuildId,
    reason: &str,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let mut jobs = Vec::new();
    for name in &b.request.jobs {
        let run = b.jobs.get(name);
        if let Some(run) = run
            && run.state.as_ref().is_some_and(|s| !s.is_final())
        {
            let key = job_key(id, name, run.attempt);
            if let Err(e) = svc.executor.cancel(&key) {
                tracing::warn!("cancelling {key}: {e}");
            }
        }
        let state = run.and_then(|r| r.state.as_ref());
        let status = match state {
            Some(s) if s.is_final() => reconcile::job_status(Some(s)),
            _ => BuildStatus::Cancelled,
        };
        jobs.push(JobResult {
            name: name.clone(),
            status,
            duration_ms: 0,
            log_digest: None,
            needs: Vec::new(),
            image: None,
        });
    }
    let result = BuildResult {
        build_id: id.clone(),
        status: BuildStatus::Cancelled,
        started_at: b.request.requested_at,
        finished_at: Timestamp::now().max(b.request.requested_at),
        jobs,
        artifacts: Vec::new(),
    };
    svc.writer
        .append(Record::BuildResult(result))
        .map_err(|source| Error::Record {
            what: format!("recording the cancellation of {id}"),
            source,
        })?;
    (svc.on_write)();
    (svc.reporter)(&format!(
        "[{}] {id}: cancelled, {reason}",
        b.request.pipeline
    ));
    Ok(Applied::progress([finish(svc, id)]))
}
