//! Carries out the planner's [`Action`]s through the ledger and the clients, write-ahead:
//! a build's request is in the ledger before any of its jobs starts, its result before anyone
//! is told, and every outside effect is checked for before it is repeated (a request already
//! in the ledger is adopted, a job already known to the executor is adopted, a Gerrit review
//! that carries the build id is not posted again, a digest already at the target is not copied).
//!
//! Each function updates the daemon's [`World`] to match what it did, so the planner's next
//! look sees it without another observation.

pub mod retention;
pub mod tasks;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::Layout;
use crate::config::pipeline::{ResolvedJob, RunContext};
use crate::executor::{ExecError, Executor};
use crate::gerrit::{Rest, ReviewInput};
use crate::git::mirror::Sources;
use crate::ledger::{Ledger, Writer};
use crate::model::record::{
    Artifact, ArtifactRef, Attestation, BuildResult, DsseEnvelope, Freeze, JobResult, Promotion,
};
use crate::model::{
    ArtifactKind, BuildId, BuildStatus, CommitId, Digest, EnvironmentName, FreezeState, ImageName,
    JobKey, JobState, Record, Timestamp,
};
use crate::reconcile::{self, Action, BuildState, JobRun, World};
use crate::registry::copy::{self, Location};
use crate::registry::layout::OciLayout;
use crate::signing::SigningKey;

/// Points at which a test can have the daemon kill itself with SIGKILL
/// (`SEAKEEPER_TEST_CRASH_AT=<point>`), to prove that a restart loses and repeats nothing.
pub const CRASH_POINTS: [&str; 5] = [
    "after-request",
    "after-start",
    "after-result",
    "after-review",
    "before-review",
];

/// Dies like `kill -9` when the test asked for a crash at `point`.
pub fn crash_point(point: &str) {
    if std::env::var("SEAKEEPER_TEST_CRASH_AT").is_ok_and(|p| p == point) {
        eprintln!("seakeeper: SEAKEEPER_TEST_CRASH_AT={point}: killing myself");
        // SAFETY: raising a signal at ourselves.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Where results go when they are not posted to Gerrit (and a copy of what is).
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// Gerrit, for reports.
pub struct GerritReporting {
    /// The REST client (reads, retried).
    pub rest: Rest,
    /// The same without retries, for posting reviews (a retried post whose first answer was
    /// lost would post twice).
    pub post: Rest,
    /// Whether reviews are posted (`gerrit.report` in `seakeeper.yaml`).
    pub report: bool,
}

/// Everything actions touch.
pub struct Services {
    /// The ledger's directory (read through [`Services::ledger`]).
    pub ledger_dir: PathBuf,
    /// The ledger (writes).
    pub writer: Writer,
    /// The key that signs DSSE envelopes (the ledger key's Ed25519 signing subkey).
    pub dsse_key: Mutex<SigningKey>,
    /// Runs jobs.
    pub executor: Arc<dyn Executor>,
    /// The content-addressed output and log store (`sha256/<hex>`).
    pub store_dir: PathBuf,
    /// Where images are assembled before they are pushed.
    pub images: OciLayout,
    /// Accounts.
    pub secrets: crate::secrets::SecretsFile,
    /// Project sources.
    pub sources: Sources,
    /// Gerrit, when configured with an http(s) URL.
    pub gerrit: Option<GerritReporting>,
    /// The config repo's URL (for provenance).
    pub config_url: String,
    /// `<state>/inflight`: one file per build not yet reported.
    pub inflight: PathBuf,
    /// Where reports go.
    pub reporter: Reporter,
    /// Called after every ledger write (replication).
    pub on_write: Box<dyn Fn() + Send + Sync>,
    /// Promotion copies running off the reconcile pass.
    pub copies: Copies,
    /// Reviews being posted off the reconcile pass.
    pub reviews: Reviews,
}

/// Records a refused promotion in the ledger, once per environment, image, digest and config
/// commit (and day): auditors see what was asked and why it was not done.
fn refuse(
    svc: &Services,
    world: &mut World,
    environment: &EnvironmentName,
    image: &ImageName,
    digest: &Digest,
    reason: &str,
) -> Result<Progress, String> {
    let key = (
        environment.clone(),
        image.clone(),
        digest.clone(),
        world.config.layout_commit.clone(),
    );
    if world.refused.contains(&key) {
        return Ok(false);
    }
    let record = Record::PromotionRefusal(crate::model::record::PromotionRefusal {
        environment: environment.clone(),
        image: image.clone(),
        digest: digest.clone(),
        reason: reason.to_owned(),
        config_commit: world.config.layout_commit.clone(),
        refused_at: Timestamp::now(),
    });
    match svc.writer.append(record) {
        // Refused already today (with another time): the same fact.
        Ok(_) | Err(crate::ledger::RecordError::Conflict { .. }) => {
            (svc.on_write)();
            world.refused.insert(key);
            Ok(false)
        }
        Err(e) => Err(format!(
            "recording the refusal of {image}@{digest} in {environment}: {e}"
        )),
    }
}

/// The ref an image gets in an OCI image-layout directory (`skopeo inspect oci:DIR:api`);
/// registries keep images by repository and digest, and get no tag.
fn layout_ref<'a>(target: &Location, image: &'a ImageName) -> Option<&'a str> {
    matches!(target, Location::Layout(_)).then_some(image.as_str())
}

/// A registry URL as the ledger records it: an `oci:` layout directory given relative to where
/// seakeeper runs is made absolute, so the record names it wherever it is read.
fn recorded_url(url: &str) -> String {
    match url.strip_prefix("oci:") {
        Some(dir) if !dir.starts_with('/') => std::path::absolute(dir)
            .map_or_else(|_| url.to_owned(), |p| format!("oci:{}", p.display())),
        _ => url.to_owned(),
    }
}

/// A promotion's copy: which digest, as which image, into which environment.
pub type CopyKey = (EnvironmentName, ImageName, Digest);

/// Promotion copies, on threads of their own, so that a registry that is slow, or stalls
/// until its deadline, holds up nothing else: the pass that wants a copy starts it and moves on;
/// a later pass finds it done and records it (the record is still written only after the copy).
pub type Copies = tasks::Tasks<CopyKey, Result<(), String>>;

/// Reviews being posted to Gerrit off the reconcile pass, by build: a Gerrit that does not
/// answer holds up nothing else. The outcome: posted (or found posted before), or refused for
/// good (with why), or failed for now.
pub type Reviews = tasks::Tasks<BuildId, Result<Posted, String>>;

/// See [`Reviews`].
#[derive(Debug, Clone)]
pub enum Posted {
    /// Posted now, or found posted before.
    Yes,
    /// Gerrit refused it for good (the change is gone, ...).
    Refused(String),
}

impl Services {
    /// The ledger, opened afresh for reading. A long-lived object database handle must not be
    /// kept while the writer adds and merges packs (gix-odb 0.87 can panic on a pack set that
    /// changed under it), and opening is cheap.
    pub fn ledger(&self) -> Result<Ledger, String> {
        Ledger::open(&self.ledger_dir).map_err(|e| e.to_string())
    }
}

/// Whether an action changed anything (the loop plans again while actions make progress).
pub type Progress = bool;

/// The executor's key of a job's `attempt`-th run.
pub fn job_key(build: &BuildId, job: &str, attempt: u32) -> JobKey {
    JobKey {
        build_id: build.clone(),
        job: if attempt <= 1 {
            job.to_owned()
        } else {
            format!("{job}~{attempt}")
        },
    }
}

fn inflight_path(svc: &Services, id: &BuildId) -> PathBuf {
    svc.inflight.join(id.as_str())
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::store::write_durably(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The builds that were requested and not yet reported, by their marker files: `(id, depth)`.
pub fn inflight(dir: &Path) -> Vec<(BuildId, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<BuildId>().ok())
        else {
            continue;
        };
        let depth = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        out.push((id, depth));
    }
    out.sort();
    out
}

fn finish(svc: &Services, world: &mut World, id: &BuildId) {
    let _ = std::fs::remove_file(inflight_path(svc, id));
    world.builds.remove(id);
    world.done.insert(id.clone());
}

/// Carries out one action.
pub fn apply(
    svc: &Services,
    layout: &Layout,
    world: &mut World,
    action: &Action,
) -> Result<Progress, String> {
    match action {
        Action::RequestBuild { request, depth } => request_build(svc, world, request, *depth),
        Action::StartJob {
            build_id,
            job,
            attempt,
        } => start_job(svc, world, build_id, job, *attempt),
        Action::CheckConfig { build_id } => check_config(svc, world, build_id),
        Action::Cancel { build_id, reason } => cancel(svc, world, build_id, reason),
        Action::RecordResult { build_id } => record_result(svc, layout, world, build_id),
        Action::Report { build_id } => report(svc, world, build_id),
        Action::Promote {
            environment,
            image,
            digest,
            from,
        } => promote(
            svc,
            layout,
            world,
            environment,
            image,
            digest,
            from.as_ref(),
        ),
        Action::RecordFreeze { freeze } => record_freeze(svc, world, freeze),
        Action::Hold { .. } => Ok(false),
        Action::Refuse {
            environment,
            image,
            digest,
            reason,
        } => refuse(svc, world, environment, image, digest, reason),
    }
}

/// Loads a build the ledger already holds into the World (after a restart, or when another
/// process wrote it).
pub fn adopt(svc: &Services, world: &mut World, id: &BuildId, depth: u32) -> Result<bool, String> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.ledger()?;
    let snapshot = ledger.snapshot().map_err(|e| e.to_string())?;
    let Some(records) = snapshot.build(id).map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    let marked = inflight_path(svc, id).exists();
    match &records.result {
        Some(_) if !marked => {
            world.done.insert(id.clone());
        }
        result => {
            let recorded = match result {
                Some(r) => {
                    let path = format!("{}/result.yaml", records.dir);
                    let commit = snapshot
                        .commit_of(&path)
                        .map_err(|e| e.to_string())?
                        .map(|c| c.to_string().parse().expect("a commit id"));
                    commit.map(|c| (r.clone(), c))
                }
                None => None,
            };
            world.builds.insert(
                id.clone(),
                BuildState {
                    request: records.request.clone(),
                    result: result.as_ref().map(|r| r.status),
                    reported: false,
                    cancelled: false,
                    jobs: BTreeMap::new(),
                    depth,
                    recorded,
                },
            );
        }
    }
    Ok(true)
}

fn request_build(
    svc: &Services,
    world: &mut World,
    request: &crate::model::record::BuildRequest,
    depth: u32,
) -> Result<Progress, String> {
    let id = &request.build_id;
    // Requested before (by an earlier run of seakeeper): adopt it, never request twice.
    if !inflight_path(svc, id).exists() && adopt(svc, world, id, depth)? {
        return Ok(true);
    }
    std::fs::create_dir_all(&svc.inflight).map_err(|e| e.to_string())?;
    write_durably(&inflight_path(svc, id), depth.to_string().as_bytes())?;
    if adopt(svc, world, id, depth)? {
        return Ok(true);
    }
    svc.writer
        .append(Record::BuildRequest(request.clone()))
        .map_err(|e| format!("recording the request of {id}: {e}"))?;
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
    world.builds.insert(
        id.clone(),
        BuildState {
            request: request.clone(),
            result: None,
            reported: false,
            cancelled: false,
            jobs: BTreeMap::new(),
            depth,
            recorded: None,
        },
    );
    Ok(true)
}

fn start_job(
    svc: &Services,
    world: &mut World,
    id: &BuildId,
    job: &ResolvedJob,
    attempt: u32,
) -> Result<Progress, String> {
    let Some(b) = world.builds.get(id) else {
        return Ok(false);
    };
    let r = &b.request;
    let state = match svc
        .sources
        .ensure(&r.project, r.git_ref.as_str(), &r.source_commit)
    {
        Err(e) => JobState::Failed {
            exit_code: None,
            reason: format!("the source could not be fetched: {e}"),
        },
        Ok(_) => {
            let mut spec = job.to_spec(&RunContext {
                build_id: id.clone(),
                pipeline: r.pipeline.as_str(),
                project: r.project.clone(),
                change: r.change.zip(r.patchset),
                source: &svc.sources.url(&r.project),
                commit: r.source_commit.clone(),
                trust: r.trust,
            });
            spec.job = job_key(id, &job.name, attempt).job;
            match svc.executor.start(&spec) {
                Ok(()) => JobState::Pending,
                Err(ExecError::Invalid { message, .. }) => JobState::Failed {
                    exit_code: None,
                    reason: message,
                },
                Err(e) => return Err(format!("starting {id}/{}: {e}", job.name)),
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
    if let Some(b) = world.builds.get_mut(id) {
        b.jobs.insert(
            job.name.clone(),
            JobRun {
                attempt,
                state: Some(state),
            },
        );
    }
    Ok(true)
}

/// Refreshes the World's job states from the executor.
pub fn refresh_jobs(svc: &Services, world: &mut World) {
    for (id, b) in world.builds.iter_mut() {
        if b.result.is_some() || b.cancelled {
            continue;
        }
        for name in &b.request.jobs {
            if name == reconcile::CONFIG_CHECK_JOB {
                continue;
            }
            let current = b.jobs.get(name).cloned();
            if current
                .as_ref()
                .and_then(|r| r.state.as_ref())
                .is_some_and(|s| s.is_final() && !reconcile::is_lost(s))
            {
                continue;
            }
            let mut attempt = current.as_ref().map_or(1, |r| r.attempt);
            let mut state = match svc.executor.state(&job_key(id, name, attempt)) {
                Ok(s) => s,
                Err(e) => {
                    crate::telemetry::warn(&format!("{id}/{name}: {e}"));
                    continue;
                }
            };
            // A restarted run of a lost job carries the next attempt number.
            while state.as_ref().is_some_and(reconcile::is_lost)
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
            match (state, current) {
                (Some(s), _) => {
                    b.jobs.insert(
                        name.clone(),
                        JobRun {
                            attempt,
                            state: Some(s),
                        },
                    );
                }
                // A refusal recorded by start_job stays; nothing known stays unknown.
                (None, Some(_)) => {}
                (None, None) => {}
            }
        }
    }
}

fn store_blob(store: &Path, bytes: &[u8]) -> Result<Digest, String> {
    let digest = Digest::of(bytes);
    let dir = crate::store::blob_dir(store);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = crate::store::blob_path(store, &digest);
    if path.exists() {
        crate::store::touch(&path);
    } else {
        write_durably(&path, bytes)?;
    }
    Ok(digest)
}

/// A stored log's text (for reports).
pub fn read_log(store: &Path, digest: &Digest) -> Option<String> {
    std::fs::read(crate::store::blob_path(store, digest))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// A blob written into the store as it comes (hashed on the way), so a large job log never
/// has to be in memory whole.
struct StoreWriter {
    dir: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    hash: sha2::Sha256,
    len: u64,
}

impl StoreWriter {
    fn create(store: &Path) -> Result<StoreWriter, String> {
        use sha2::Digest as _;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let dir = crate::store::blob_dir(store);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!(
            ".log.{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok(StoreWriter {
            dir,
            tmp,
            out: std::io::BufWriter::new(f),
            hash: sha2::Sha256::new(),
            len: 0,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use sha2::Digest as _;
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    /// Stores what was written (durably) and returns its digest; `None` if nothing was.
    fn finish(self) -> Result<Option<Digest>, String> {
        use sha2::Digest as _;
        let StoreWriter {
            dir,
            tmp,
            out,
            hash,
            len,
        } = self;
        let result = (|| {
            let f = out.into_inner().map_err(|e| e.into_error().to_string())?;
            if len == 0 {
                return Ok(None);
            }
            let digest: Digest = format!("sha256:{}", hex::encode(hash.finalize()))
                .parse()
                .expect("a sha256 digest");
            let path = dir.join(digest.hex());
            if path.exists() {
                crate::store::touch(&path);
            } else {
                f.sync_all()
                    .map_err(|e| format!("{}: {e}", tmp.display()))?;
                std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
                let _ = crate::git::sync_dir(&dir);
            }
            Ok(Some(digest))
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

/// The job's log (stored by digest) and how long it ran, from the log's first and last times.
/// The log is streamed into the store, never held whole.
fn job_log(svc: &Services, key: &JobKey) -> (Option<Digest>, u64, Option<Timestamp>) {
    let mut first = None;
    let mut last = None;
    let mut store = match StoreWriter::create(&svc.store_dir) {
        Ok(w) => Some(w),
        Err(e) => {
            crate::telemetry::warn(&format!("storing the log of {key}: {e}"));
            None
        }
    };
    let mut failed = None;
    let _ = svc.executor.logs(key, false, &mut |line| {
        if let Some(t) = parse_time(&line.time) {
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
            crate::telemetry::warn(&format!("storing the log of {key}: {e}"));
            None
        }),
        (Some(w), Some(e)) => {
            crate::telemetry::warn(&format!("storing the log of {key}: {e}"));
            let _ = w.finish();
            None
        }
        (None, _) => None,
    };
    (digest, duration, started)
}

/// Why the build's pipeline file could not be used, when it could not.
fn pipeline_error(world: &World, r: &crate::model::record::BuildRequest) -> Option<String> {
    world
        .pipelines
        .get(&(r.project.clone(), r.source_commit.clone()))
        .and_then(|p| p.as_ref().err().cloned())
}

fn record_result(
    svc: &Services,
    layout: &Layout,
    world: &mut World,
    id: &BuildId,
) -> Result<Progress, String> {
    let Some(b) = world.builds.get(id).cloned() else {
        return Ok(false);
    };
    let request = b.request.clone();
    let pipeline_error = pipeline_error(world, &request);
    let resolved: Vec<ResolvedJob> = reconcile::jobs_of(world, &request)
        .map(<[ResolvedJob]>::to_vec)
        .unwrap_or_default();
    let mut jobs = Vec::new();
    let mut states = Vec::new();
    // When its first job started (its log's first line), not when it was requested.
    let mut first_start: Option<Timestamp> = None;
    for name in &request.jobs {
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
        jobs.push(JobResult {
            name: name.clone(),
            status: reconcile::job_status(state.as_ref()),
            duration_ms,
            log_digest,
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
    let mut published = Published::default();
    let trusted_output = status == BuildStatus::Success
        && request.trust == crate::model::Trust::Trusted
        && matches!(request.pipeline.as_str(), "post-merge" | "periodic");
    if trusted_output {
        for job in &resolved {
            if job.image_outputs.is_empty() {
                continue;
            }
            let attempt = b.jobs.get(&job.name).map_or(1, |r| r.attempt);
            let key = job_key(id, &job.name, attempt);
            match publish_images(svc, layout, world, &request, job, &key, started_at) {
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
                    records.append(&mut p.records);
                    published.entered.append(&mut p.entered);
                    published.trusted.append(&mut p.trusted);
                }
                Err(e) => {
                    (svc.reporter)(&format!("[{}] {id}: {e}", request.pipeline));
                    status = BuildStatus::Error;
                    if let Some(j) = jobs.iter_mut().find(|j| j.name == job.name) {
                        j.status = BuildStatus::Error;
                    }
                    records.clear();
                    artifacts.clear();
                    published = Published::default();
                    break;
                }
            }
        }
    }
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
            crate::telemetry::warn(&format!("recording an output of {id}: {e}"));
        }
    }
    let (result, commit) = match result_receipt {
        Ok(receipt) => (result, receipt.commit),
        // Recorded before (by a run that died before it could say so): adopt that one.
        Err(e) => match recorded_result(svc, id)? {
            Some(existing) => existing,
            None => return Err(format!("recording the result of {id}: {e}")),
        },
    };
    crash_point("after-result");
    published.apply_to(world);
    if let Some(b) = world.builds.get_mut(id) {
        b.result = Some(result.status);
        b.recorded = Some((result, commit));
    }
    Ok(true)
}

/// The result the ledger already holds for `id`, with the commit that added it.
fn recorded_result(
    svc: &Services,
    id: &BuildId,
) -> Result<Option<(BuildResult, CommitId)>, String> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.ledger()?;
    let snapshot = ledger.snapshot().map_err(|e| e.to_string())?;
    let Some(records) = snapshot.build(id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let Some(result) = records.result else {
        return Ok(None);
    };
    let commit = snapshot
        .commit_of(&format!("{}/result.yaml", records.dir))
        .map_err(|e| e.to_string())?
        .and_then(|c| c.to_string().parse().ok());
    Ok(commit.map(|c| (result, c)))
}

/// What publishing images changes in the World once its records are durable: digests that
/// entered the first environment, and digests with a trusted attestation.
#[derive(Default)]
struct Published {
    records: Vec<Record>,
    entered: Vec<((EnvironmentName, ImageName), Digest, Timestamp)>,
    /// Digests this server just attested (with its own builder key), as which image.
    trusted: Vec<(Digest, ImageName)>,
}

impl Published {
    fn apply_to(self, world: &mut World) {
        for (d, image) in self.trusted {
            let f = world.digests.entry(d).or_insert(reconcile::DigestFacts {
                provenance: crate::policy::promotion::Provenance::Trusted,
                images: Default::default(),
                problem: None,
                entered: BTreeMap::new(),
            });
            f.provenance = crate::policy::promotion::Provenance::Trusted;
            f.problem = None;
            f.images.insert(image);
        }
        for (slot, digest, at) in self.entered {
            if let Some(f) = world.digests.get_mut(&digest) {
                f.entered.entry(slot.clone()).or_insert(at);
            }
            world.deployed.insert(slot, (digest, at));
        }
    }
}

/// Assembles the images a job declares from its outputs, pushes them to the first
/// environment's registry, and returns the records: artifact, attestation, promotion.
fn publish_images(
    svc: &Services,
    layout: &Layout,
    world: &World,
    request: &crate::model::record::BuildRequest,
    job: &ResolvedJob,
    key: &JobKey,
    started_at: Timestamp,
) -> Result<Published, String> {
    let outputs = svc.executor.outputs(key).map_err(|e| e.to_string())?;
    let work = tempfile_dir(&svc.store_dir)?;
    for o in &outputs {
        let src = crate::store::blob_path(&svc.store_dir, &o.digest);
        let dst = work.join(&o.path);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
        if o.executable {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755));
        }
    }
    let first = layout
        .environments
        .first()
        .ok_or("images need an environment to go to: environments.yaml is empty")?;
    let registry = layout
        .settings
        .registries
        .get(&first.registry)
        .ok_or_else(|| format!("registry {} is not in seakeeper.yaml", first.registry))?;
    let mut records = Vec::new();
    let mut effects = Vec::new();
    let mut trusted = Vec::new();
    let result = (|| {
        for decl in &job.image_outputs {
            let repo = format!("{}{}", first.repository_prefix, decl.name);
            let target = copy::location_for(&registry.url, &repo, &svc.secrets)
                .map_err(|e| e.to_string())?;
            let base_from = base_location(layout, &svc.secrets, &decl.base);
            let desc = crate::registry::assemble::declared_image(
                &svc.images,
                decl,
                &work,
                base_from.as_ref().or(Some(&target)),
            )
            .map_err(|e| format!("image {}: {e}", decl.name))?;
            copy::copy(
                &Location::Layout(svc.images.clone()),
                &target,
                &desc.digest,
                layout_ref(&target, &decl.name),
                4,
            )
            .map_err(|e| format!("pushing {} to {}: {e}", decl.name, registry.url))?;
            let now = Timestamp::now();
            let provenance = crate::signing::provenance::Provenance {
                subject_name: repo.clone(),
                digest: desc.digest.clone(),
                trust: request.trust,
                build_id: request.build_id.to_string(),
                project: request.project.to_string(),
                // A post-merge image names the change whose merge it was built from.
                change: match &request.cause {
                    Some(crate::model::record::BuildCause::Merge { change, patchset }) => {
                        Some((change.get(), patchset.get()))
                    }
                    _ => None,
                },
                git_ref: request.git_ref.to_string(),
                source: svc.sources.url(&request.project),
                source_commit: request.source_commit.to_string(),
                config_commit: request.config_commit.to_string(),
                config_repo: svc.config_url.clone(),
                base_image: decl
                    .base
                    .rsplit_once('@')
                    .and_then(|(n, d)| d.parse().ok().map(|d| (n.to_owned(), d))),
                byproducts: Vec::new(),
                started: started_at.to_string(),
                finished: now.to_string(),
            };
            let mut statement = crate::signing::provenance::statement(&provenance);
            if let Some(crate::model::record::BuildCause::Upstream {
                build_id,
                project,
                commit,
            }) = &request.cause
            {
                crate::signing::provenance::add_upstream(
                    &mut statement,
                    &svc.sources.url(project),
                    request.git_ref.as_str(),
                    commit.as_str(),
                    build_id.as_str(),
                );
            }
            let statement_bytes = serde_json::to_vec(&statement).map_err(|e| e.to_string())?;
            // The ledger's envelope is signed with the Ed25519 subkey (what ledger verify and
            // promotion check); the one attached to the image for cosign with the P-256 subkey
            // (cosign does not verify Ed25519 attestations under its defaults).
            let (envelope, attached): (DsseEnvelope, Result<DsseEnvelope, String>) = {
                let mut key = svc.dsse_key.lock().unwrap_or_else(|p| p.into_inner());
                let envelope = key
                    .sign_dsse(crate::signing::dsse::IN_TOTO, &statement_bytes)
                    .map_err(|e| e.to_string())?;
                let attached = key
                    .cosign_key()
                    .and_then(|mut c| c.sign_dsse(crate::signing::dsse::IN_TOTO, &statement_bytes))
                    .map_err(|e| e.to_string());
                (envelope, attached)
            };
            let attached = attached.and_then(|a| {
                let json = serde_json::to_vec(&a).map_err(|e| e.to_string())?;
                crate::registry::cosign::attach_attestation(
                    &target,
                    &desc.digest,
                    &json,
                    crate::signing::provenance::SLSA_PROVENANCE_V1,
                )
                .map_err(|e| e.to_string())
            });
            if let Err(e) = attached {
                crate::telemetry::warn(&format!(
                    "attaching a cosign attestation to {}: {e}",
                    desc.digest
                ));
            }
            records.push(Record::Artifact(Artifact {
                digest: desc.digest.clone(),
                build_id: request.build_id.clone(),
                name: decl.name.to_string(),
                kind: ArtifactKind::Image,
                media_type: desc.media_type.clone(),
                size: desc.size,
            }));
            records.push(Record::Attestation(Attestation {
                subject_digest: desc.digest.clone(),
                predicate_type: crate::signing::provenance::SLSA_PROVENANCE_V1.to_owned(),
                envelope,
            }));
            // The image enters the first environment, unless a freeze holds it: then it is
            // only pushed and recorded, and enters once named in promotions/<first>.yaml.
            let frozen = layout
                .freezes
                .iter()
                .find(|(_, f)| f.holds(crate::model::Held::Promotion(&first.name), now));
            let slot = (first.name.clone(), decl.name.clone());
            match frozen {
                Some((name, f)) => (svc.reporter)(&format!(
                    "[{}] {}: image {} {} pushed to {} but held out of it by freeze {name}: {}",
                    request.pipeline,
                    request.build_id,
                    decl.name,
                    desc.digest,
                    first.name,
                    f.reason.trim()
                )),
                None => {
                    let previous = world.deployed.get(&slot).map(|(d, _)| d.clone());
                    records.push(Record::Promotion(Promotion {
                        environment: first.name.clone(),
                        image: decl.name.clone(),
                        digest: desc.digest.clone(),
                        previous_digest: previous.filter(|p| *p != desc.digest),
                        from_registry: format!("oci:{}", svc.images.dir().display()),
                        to_registry: recorded_url(&registry.url),
                        config_commit: request.config_commit.clone(),
                        promoted_at: now,
                    }));
                    effects.push((slot, desc.digest.clone(), now));
                    (svc.reporter)(&format!(
                        "[{}] {}: image {} {} pushed to {} ({})",
                        request.pipeline,
                        request.build_id,
                        decl.name,
                        desc.digest,
                        first.name,
                        registry.url
                    ));
                }
            }
            trusted.push((desc.digest.clone(), decl.name.clone()));
        }
        Ok::<(), String>(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| Published {
        records,
        entered: effects,
        trusted,
    })
}

/// Where a base image named `HOST[:PORT]/REPO@sha256:...` can be fetched: the registry of
/// `seakeeper.yaml` on that host, with its account.
fn base_location(
    layout: &Layout,
    secrets: &crate::secrets::SecretsFile,
    base: &str,
) -> Option<Location> {
    let (name, _) = base.rsplit_once('@')?;
    let (host, repo) = name.split_once('/')?;
    layout.settings.registries.values().find_map(|r| {
        let url_host = r.url.split("://").nth(1)?.split('/').next()?;
        (url_host == host)
            .then(|| copy::location_for(&r.url, repo, secrets).ok())
            .flatten()
    })
}

fn tempfile_dir(store: &Path) -> Result<PathBuf, String> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = store.join("tmp").join(format!(
        "assemble-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn check_config(svc: &Services, world: &mut World, id: &BuildId) -> Result<Progress, String> {
    let Some(b) = world.builds.get(id) else {
        return Ok(false);
    };
    let r = b.request.clone();
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
    let log = store_blob(&svc.store_dir, text.as_bytes())?;
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
        }],
        artifacts: Vec::new(),
    };
    let receipt = svc
        .writer
        .append(Record::BuildResult(result.clone()))
        .map_err(|e| format!("recording the result of {id}: {e}"))?;
    (svc.on_write)();
    if let Some(b) = world.builds.get_mut(id) {
        b.result = Some(status);
        b.recorded = Some((result, receipt.commit));
    }
    Ok(true)
}

/// The config repo at `commit` in the repository at `path`, loaded: `Err` when it cannot be
/// read, `Ok(Err)` with every error when it is invalid.
pub fn load_config_at(
    path: &Path,
    commit: &CommitId,
) -> Result<Result<Layout, Vec<crate::config::ConfigError>>, String> {
    let repo = gix::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let id = gix::ObjectId::from_hex(commit.as_str().as_bytes()).map_err(|e| e.to_string())?;
    let files = crate::git::files::read_all(&repo, &id).map_err(|e| e.to_string())?;
    let bytes: BTreeMap<String, Vec<u8>> = files.into_iter().map(|(p, f)| (p, f.bytes)).collect();
    Ok(crate::config::load(&bytes))
}

fn cancel(
    svc: &Services,
    world: &mut World,
    id: &BuildId,
    reason: &str,
) -> Result<Progress, String> {
    let Some(b) = world.builds.get(id) else {
        return Ok(false);
    };
    let mut jobs = Vec::new();
    for name in &b.request.jobs {
        let run = b.jobs.get(name);
        if let Some(run) = run
            && run.state.as_ref().is_some_and(|s| !s.is_final())
        {
            let key = job_key(id, name, run.attempt);
            if let Err(e) = svc.executor.cancel(&key) {
                crate::telemetry::warn(&format!("cancelling {key}: {e}"));
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
        .map_err(|e| format!("recording the cancellation of {id}: {e}"))?;
    (svc.on_write)();
    (svc.reporter)(&format!(
        "[{}] {id}: cancelled, {reason}",
        b.request.pipeline
    ));
    finish(svc, world, id);
    Ok(true)
}

fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Lines of a failing job's log shown in its report.
pub const FAILURE_TAIL: usize = 30;

/// The text of a build's report: a headline, a line per job (with its log's digest), for each
/// failed job its exit code, the last lines of its log (secrets masked) and the command that
/// runs it locally, the ledger commit and the build id. No link is printed: nothing serves
/// pages yet (the web module), and a link that leads nowhere is worse than none.
pub fn report_text(
    svc_store: &Path,
    b: &BuildState,
    pipeline_error: Option<&str>,
    mask: &[String],
) -> String {
    let r = &b.request;
    let status = b.result.map_or("UNKNOWN", |s| s.as_str());
    let mut t = format!(
        "seakeeper {}: {} (build {})\n\n",
        r.pipeline,
        status.to_uppercase(),
        r.build_id
    );
    if let Some(e) = pipeline_error {
        t.push_str(".pipeline/config.yaml is invalid:\n");
        for line in e.lines().take(20) {
            t.push_str(&format!("  {line}\n"));
        }
        t.push('\n');
    }
    let exit_code = |name: &str| match b.jobs.get(name).and_then(|j| j.state.as_ref()) {
        Some(crate::model::JobState::Failed { exit_code, reason }) => {
            Some((*exit_code, reason.clone()))
        }
        _ => None,
    };
    let mut failures = String::new();
    if let Some((result, _)) = &b.recorded {
        for j in &result.jobs {
            let log = j
                .log_digest
                .as_ref()
                .map(|d| format!(", log {d}"))
                .unwrap_or_default();
            let how = match exit_code(&j.name) {
                Some((Some(c), _)) => format!(" (exit code {c})"),
                Some((None, reason)) => format!(" ({reason})"),
                None => String::new(),
            };
            t.push_str(&format!(
                "- {}: {} in {}{how}{log}\n",
                j.name,
                j.status.as_str().to_uppercase(),
                seconds(j.duration_ms)
            ));
            if j.name == reconcile::CONFIG_CHECK_JOB
                && j.status != BuildStatus::Success
                && let Some(text) = j.log_digest.as_ref().and_then(|d| read_log(svc_store, d))
            {
                for line in text.lines().skip(1).take(20) {
                    t.push_str(&format!("    {line}\n"));
                }
                continue;
            }
            if matches!(j.status, BuildStatus::Failure | BuildStatus::Error)
                && let Some(text) = j.log_digest.as_ref().and_then(|d| read_log(svc_store, d))
            {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(FAILURE_TAIL)..];
                failures.push_str(&format!(
                    "\n{} failed{how}; the last {} lines of its log:\n",
                    j.name,
                    tail.len()
                ));
                for line in tail {
                    // The log's own timestamps are dropped: the text is what people read.
                    let text = line.split_once(' ').map_or(*line, |(_, rest)| rest);
                    failures.push_str(&format!("    {}\n", masked(text, mask)));
                }
                failures.push_str(&format!(
                    "Run it yourself, in a clone of {}: seakeeper job run {} --rev {} --pipeline {}\n",
                    r.project, j.name, r.source_commit, r.pipeline
                ));
            }
        }
        for a in &result.artifacts {
            t.push_str(&format!("- produced {} {}\n", a.name, a.digest));
        }
    }
    t.push_str(&failures);
    if let Some((_, commit)) = &b.recorded {
        t.push_str(&format!("\nLedger commit: {commit}\n"));
    }
    t.push_str(&format!("Build-Id: {}\n", r.build_id));
    t
}

/// `text` with every secret value (of 4 characters or more) replaced by `***`.
fn masked(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// The secret values seakeeper holds, to be masked wherever logs are shown.
fn secret_values(secrets: &crate::secrets::SecretsFile) -> Vec<String> {
    secrets
        .gerrit
        .iter()
        .chain(secrets.registries.values())
        .map(|c| c.pair().1)
        .collect()
}

/// Whether Gerrit's answer is final: a 4xx other than 408 (timeout) and 429 (slow down).
fn final_refusal(e: &crate::gerrit::RestError) -> bool {
    e.status()
        .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
}

/// Whether the change already carries the review of build `id` (its `Build-Id:` line).
fn already_posted(
    rest: &Rest,
    project: &crate::model::ProjectName,
    change: crate::model::ChangeNumber,
    id: &BuildId,
) -> Result<bool, crate::gerrit::RestError> {
    let line = format!("Build-Id: {id}");
    Ok(rest
        .get_change(project, change)?
        .messages
        .iter()
        .any(|m| m.message.lines().any(|l| l.trim() == line)))
}

fn report(svc: &Services, world: &mut World, id: &BuildId) -> Result<Progress, String> {
    let Some(b) = world.builds.get(id).cloned() else {
        return Ok(false);
    };
    let r = &b.request;
    let pipeline_error = pipeline_error(world, r);
    let text = report_text(
        &svc.store_dir,
        &b,
        pipeline_error.as_deref(),
        &secret_values(&svc.secrets),
    );
    // A superseded check is not reported: the newer patchset's build will be.
    if b.result == Some(BuildStatus::Cancelled) && r.change.is_some() {
        finish(svc, world, id);
        return Ok(true);
    }
    let gerrit = svc.gerrit.as_ref().filter(|g| g.report);
    let (Some(g), Some(change)) = (gerrit, r.change) else {
        (svc.reporter)(&text);
        finish(svc, world, id);
        return Ok(true);
    };
    let refused = |svc: &Services, world: &mut World, e: &dyn std::fmt::Display| {
        (svc.reporter)(&format!(
            "[{}] {} change {change}: Gerrit refused the review ({e}); the result was:\n{text}",
            r.pipeline, r.project
        ));
        finish(svc, world, id);
        Ok(true)
    };
    // Posted on a thread of its own; this pass (or a later one) takes the outcome.
    let (rest, post) = (g.rest.clone(), g.post.clone());
    let (project, commit, pipeline) = (
        r.project.clone(),
        r.source_commit.clone(),
        r.pipeline.to_string(),
    );
    let (build, review_text) = (id.clone(), text.clone());
    let verified = match b.result {
        Some(BuildStatus::Success) => Some(1),
        _ => Some(-1),
    };
    let was_running = svc.reviews.running().contains(id);
    let outcome = svc.reviews.poll_or_start(id, move || {
        crash_point("before-review");
        // Reviews carry the build id: a review already posted (before a crash, or whose
        // answer was lost) is not posted again.
        match already_posted(&rest, &project, change, &build) {
            Ok(true) => Ok(Posted::Yes),
            Err(e) if final_refusal(&e) => Ok(Posted::Refused(e.to_string())),
            Err(e) => Err(format!("reading change {change} before reporting: {e}")),
            Ok(false) => {
                // One attempt only: a retry after a lost answer would post the review twice.
                // After a failure, the next pass looks for the Build-Id line first.
                match post.post_review(
                    &project,
                    change,
                    commit.as_str(),
                    &ReviewInput::for_pipeline(&pipeline, &review_text, verified),
                ) {
                    Ok(_) => {
                        crash_point("after-review");
                        Ok(Posted::Yes)
                    }
                    Err(e) if final_refusal(&e) => Ok(Posted::Refused(e.to_string())),
                    Err(e) => Err(format!(
                        "posting the review of {build} on change {change}: {e}"
                    )),
                }
            }
        }
    });
    // Most posts take milliseconds: wait for one just started a little before moving on
    // (not again for one that is already slow).
    let outcome = match outcome {
        Some(o) => o,
        None if was_running => return Ok(false),
        None => {
            svc.reviews.settle(std::time::Duration::from_millis(200));
            match svc.reviews.take(id) {
                Some(o) => o,
                None => return Ok(false),
            }
        }
    };
    match outcome? {
        Posted::Yes => {}
        Posted::Refused(e) => return refused(svc, world, &e),
    }
    (svc.reporter)(&format!(
        "[{}] {} change {change}: {} reported to Gerrit (build {id})",
        r.pipeline,
        r.project,
        b.result.map_or("unknown", |s| s.as_str())
    ));
    finish(svc, world, id);
    Ok(true)
}

fn promote(
    svc: &Services,
    layout: &Layout,
    world: &mut World,
    environment: &EnvironmentName,
    image: &ImageName,
    digest: &Digest,
    from: Option<&EnvironmentName>,
) -> Result<Progress, String> {
    let location = |env: &EnvironmentName| -> Result<(Location, String), String> {
        let spec = layout
            .environments
            .iter()
            .find(|e| &e.name == env)
            .ok_or_else(|| format!("no environment {env}"))?;
        let registry = layout
            .settings
            .registries
            .get(&spec.registry)
            .ok_or_else(|| format!("registry {} is not in seakeeper.yaml", spec.registry))?;
        let repo = format!("{}{image}", spec.repository_prefix);
        Ok((
            copy::location_for(&registry.url, &repo, &svc.secrets).map_err(|e| e.to_string())?,
            registry.url.clone(),
        ))
    };
    let (target, to_url) = location(environment)?;
    let (source, from_url) = match from {
        Some(env) => location(env)?,
        None => (
            Location::Layout(svc.images.clone()),
            format!("oci:{}", svc.images.dir().display()),
        ),
    };
    let key = (environment.clone(), image.clone(), digest.clone());
    let (d, what) = (
        digest.clone(),
        format!("promoting {image}@{digest} to {environment}"),
    );
    match svc.copies.poll_or_start(&key, move || {
        copy::copy(&source, &target, &d, None, 4)
            .map(|_| ())
            .map_err(|e| format!("{what}: {e}"))
    }) {
        None => return Ok(false),
        Some(Err(e)) => return Err(e),
        Some(Ok(())) => {}
    }
    let now = Timestamp::now();
    let slot = (environment.clone(), image.clone());
    let promotion = Promotion {
        environment: environment.clone(),
        image: image.clone(),
        digest: digest.clone(),
        previous_digest: world.deployed.get(&slot).map(|(d, _)| d.clone()),
        from_registry: recorded_url(&from_url),
        to_registry: recorded_url(&to_url),
        config_commit: world.config.layout_commit.clone(),
        promoted_at: now,
    };
    svc.writer
        .append(Record::Promotion(promotion))
        .map_err(|e| format!("recording the promotion of {image}@{digest}: {e}"))?;
    (svc.on_write)();
    world.deployed.insert(slot.clone(), (digest.clone(), now));
    if let Some(f) = world.digests.get_mut(digest) {
        f.entered.entry(slot).or_insert(now);
    }
    (svc.reporter)(&format!(
        "[promote] {image}@{digest} now runs in {environment} (config {})",
        world.config.layout_commit
    ));
    Ok(true)
}

fn record_freeze(svc: &Services, world: &mut World, freeze: &Freeze) -> Result<Progress, String> {
    svc.writer
        .append(Record::Freeze(freeze.clone()))
        .map_err(|e| format!("recording freeze {}: {e}", freeze.name))?;
    (svc.on_write)();
    world.freezes.insert(freeze.name.clone(), freeze.clone());
    let verb = match freeze.state {
        FreezeState::Active => "is ACTIVE",
        FreezeState::Lifted => "was lifted",
    };
    (svc.reporter)(&format!(
        "[freeze] {} {verb} ({}) by config commit {}: {}",
        freeze.name,
        freeze.scope.join(", "),
        freeze.config_commit,
        freeze.reason.trim()
    ));
    Ok(true)
}
