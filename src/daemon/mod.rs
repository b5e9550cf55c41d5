//! The reconcile loop: observe into the [`World`], [`plan`](crate::reconcile::plan), apply,
//! and again while actions make progress. `reconcile --once` is one [`Daemon::pass`];
//! `serve` is [`Daemon::serve`]: a pass whenever Gerrit's stream hints at a change, whenever a
//! job ends, and in full on a timer.
//!
//! What survives a crash is on disk: the ledger (requests, results, promotions, freezes), the
//! ref watcher's acknowledged snapshot, the executor's job directories, and one marker file per
//! build not yet reported (`<state>/inflight/<build id>`). A restarted daemon loads the marked
//! builds from the ledger and adopts their jobs; everything else is observed again.

pub mod feed;
mod files;
pub mod job_secrets;
mod notedb;
mod notifying;
mod observe;
pub mod replicate;
mod services;
pub mod settings;
pub mod status;
mod sweep;
mod telemetry;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::apply::{self, Reporter, Services};
use crate::config::files::ExecutorKind;
use crate::config::{Layout, Loader};
use crate::gerrit::{self, Hints, RefWatcher, Scope, StreamItem};
use crate::git::mirror::Sources;
use crate::model::{ChangeNumber, CommitId, JobKey, ProjectName, Timestamp};
use crate::reconcile::{self, Action, ConfigState, Fact, World};
use crate::signing::SigningKey;
use observe::PipelineRead;
use services::is_remote;

pub use feed::Feed;
pub use services::{add_config_keys, key_history, local_images};
pub use settings::Settings;
pub use status::Status;

/// How the daemon runs.
pub struct Options {
    /// Where reports and progress lines go (stdout for the CLI).
    pub reporter: Reporter,
    /// Jobs at once (overrides `executor.concurrency`).
    pub concurrency: Option<usize>,
    /// The seakeeper binary (see [`this_program`]) local jobs run under (`job supervise`), detached, so they outlive
    /// this process and the next one adopts them; `None`: they run under this process's
    /// threads and die with it.
    pub supervisor: Option<PathBuf>,
    /// Start a new ledger when there is none here and its remote holds none (`--init-ledger`:
    /// explicit, once; refused when a ledger exists).
    pub init_ledger: bool,
}

/// The daemon's moving parts and its World.
pub struct Daemon {
    /// When the open changes the gate may take were last read in full.
    gate_scan: Option<Instant>,
    settings: Settings,
    key_bytes: Vec<u8>,
    reporter: Reporter,
    concurrency: Option<usize>,
    supervisor: Option<PathBuf>,
    config_repo: PathBuf,
    loader: Loader,
    config_head: Option<CommitId>,
    layout: Option<Arc<Layout>>,
    layout_commit: Option<CommitId>,
    last_config_fetch: Option<Instant>,
    svc: Option<Arc<Services>>,
    watcher: Option<Arc<RefWatcher>>,
    sources_key: String,
    replicator: Option<replicate::Replicator>,
    world: World,
    held: Vec<Action>,
    status_written: Option<(Instant, String)>,
    /// What the web server reads: status, trusted keys, executor, webhook intake.
    feed: Arc<Feed>,
    /// A status write was skipped (too soon after the last one) and is still to be done.
    status_pending: bool,
    /// When each job in flight was first seen running (by job key), for elapsed times.
    job_seen: std::sync::Mutex<BTreeMap<String, String>>,
    stream: Option<gerrit::EventStream>,
    /// Sources that could not be fetched: (failures, next attempt).
    fetch_failures: BTreeMap<(ProjectName, CommitId), (u32, Instant)>,
    /// Projects with a source not fetched this pass (their observations wait).
    unfetched: BTreeSet<ProjectName>,
    /// Shutting down: no new jobs.
    draining: bool,
    /// Actions that failed, by [`Action::key`]: when they may be tried again.
    failures: BTreeMap<String, Failure>,
    /// Local repositories watched for moved refs (see [`files`]), and the config they follow.
    files: Option<(CommitId, Option<files::FileWatch>)>,
    /// Where the executor's workspaces come from (follows the Gerrit settings).
    sources_cell: Arc<std::sync::RwLock<Sources>>,
    /// The executor settings the executor was made with.
    executor_key: String,
    /// `--init-ledger` was given and not yet used.
    init_ledger: bool,
    /// Why the ledger must not be written (see [`Status::ledger_alert`]).
    ledger_alert: Option<String>,
    /// The trusted keys at a config commit (see [`Daemon::authority`]).
    authority: Option<(CommitId, crate::signing::Authority)>,
    /// When the high-water mark was last written.
    mark_written: Option<Instant>,
    /// Why Gerrit could not be read in the last pass (`None`: it could, or is not used).
    gerrit_error: Option<String>,
    /// The read of Gerrit (refs, then change details) running off the pass, with the work it
    /// was given: a Gerrit that hangs holds up neither `status` nor anything else.
    gerrit_reads: apply::tasks::Tasks<(), (usize, gerrit::Pass)>,
    /// Work hinted while a read was running, for the next one.
    gerrit_queue: Vec<(ProjectName, Scope)>,
    /// When the running read started.
    gerrit_read_since: Option<Instant>,
    /// Lookups of the change that merged a moved tip, running off the pass.
    merge_tasks: apply::tasks::Tasks<
        (ProjectName, CommitId),
        Option<(ChangeNumber, crate::model::PatchsetNumber)>,
    >,
    /// Source fetches and pipeline-file parses running off the pass, by (project, commit).
    pipeline_tasks: apply::tasks::Tasks<(ProjectName, CommitId), PipelineRead>,
    /// Promotions whose last attempt failed (copy or record), with why, for `status`.
    failed_promotions: BTreeMap<
        (crate::model::EnvironmentName, crate::model::ImageName),
        (crate::model::Digest, String),
    >,
    /// The last range (mark, head) verified by [`Daemon::verify_new_commits`].
    verified_head: Option<(gix::ObjectId, gix::ObjectId)>,
    /// The trusted keys at each config commit, for verifying new ledger commits.
    key_history: Option<crate::ledger::verify::History>,
    /// The retention sweep running off the pass (only under `serve`).
    retention: apply::tasks::Tasks<(), Result<apply::retention::Report, apply::Error>>,
    /// When the next sweep is due (`None`: not known yet, or sweeps are off).
    retention_due: Option<Instant>,
    /// Whether this daemon sweeps (`serve` does; one-shot passes do not).
    retention_on: bool,
    /// The last sweep, for `status`.
    retention_line: Option<status::RetentionLine>,
    /// Who is told what apply learnt (see [`notifying`]).
    notifications: notifying::Notifications,
    /// The config's job secrets, opened, as the executor gets them (see [`job_secrets`]).
    job_secrets: Arc<job_secrets::JobSecretsSource>,
}

/// What a pass did.
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    /// Actions carried out.
    pub applied: usize,
    /// Actions that failed, with why (they are planned again next pass).
    pub failed: Vec<String>,
    /// Whether builds are still in flight.
    pub busy: bool,
    /// Projects whose build request failed to be recorded.
    pub unrequested: BTreeSet<ProjectName>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn empty_world() -> World {
    let zero: CommitId = "0000000000000000000000000000000000000000"
        .parse()
        .expect("a commit id");
    World::new(
        now(),
        ConfigState {
            head: zero.clone(),
            layout_commit: zero,
            author: String::new(),
            errors: Vec::new(),
            unreported: None,
        },
    )
}

/// An action that failed, and when it may be tried again.
#[derive(Debug, Clone)]
struct Failure {
    /// Failures in a row.
    count: u32,
    /// Not before then.
    next: Instant,
    /// What the last one said (a permanent failure is reported once).
    message: String,
}

/// The wait after `count` failures in a row: 1 s, doubling, at most [`MAX_BACKOFF`]; a
/// permanent failure (that only a change of the config, the ledger or the world can cure)
/// waits the most at once.
fn backoff(count: u32, transient: bool) -> Duration {
    if !transient {
        return MAX_BACKOFF;
    }
    Duration::from_secs(1u64 << count.saturating_sub(1).min(5)).min(MAX_BACKOFF)
}

/// The longest wait before a failed action is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Daemon {
    /// Opens the state directory (creating it), but reads nothing remote yet.
    pub fn open(settings: Settings, options: Options) -> anyhow::Result<Daemon> {
        // glibc raises its mmap threshold as large buffers (ledger trees, logs) come and go,
        // after which they fragment the heap of a long-running process: keep it fixed, so
        // that they are mapped and returned on free (measured: a fifth less peak memory).
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes an allocator parameter.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        }
        if options.init_ledger && settings.ledger_dir().exists() {
            anyhow::bail!(
                "--init-ledger starts a new ledger, but {} already holds one: leave the flag out",
                settings.ledger_dir().display()
            );
        }
        std::fs::create_dir_all(&settings.state_dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", settings.state_dir.display()))?;
        // The key signs the ledger: readable by anyone else, it is no proof of anything.
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&settings.signing_key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", settings.signing_key.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{}: the signing key is readable or writable by others (mode {:o}); it must be \
                     0600 (chmod 600 {})",
                    settings.signing_key.display(),
                    mode & 0o777,
                    settings.signing_key.display()
                );
            }
        }
        let key_bytes = std::fs::read(&settings.signing_key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", settings.signing_key.display()))?;
        // Checked now, so a bad key is reported before anything runs.
        SigningKey::from_bytes(&key_bytes, &settings.signing_key.display().to_string())?;
        let config_repo = settings.config_repo_path();
        let world = empty_world().with_config_project(settings.config_project.clone());
        Ok(Daemon {
            notifications: notifying::Notifications::new(&settings),
            settings,
            key_bytes,
            reporter: options.reporter,
            concurrency: options.concurrency,
            supervisor: options.supervisor,
            config_repo,
            loader: Loader::new(),
            config_head: None,
            layout: None,
            layout_commit: None,
            last_config_fetch: None,
            gate_scan: None,
            svc: None,
            watcher: None,
            sources_key: String::new(),
            replicator: None,
            world,
            held: Vec::new(),
            status_written: None,
            feed: Arc::new(Feed::new()),
            job_seen: std::sync::Mutex::new(BTreeMap::new()),
            status_pending: false,
            stream: None,
            fetch_failures: BTreeMap::new(),
            unfetched: BTreeSet::new(),
            draining: false,
            failures: BTreeMap::new(),
            files: None,
            sources_cell: Arc::new(std::sync::RwLock::new(Sources::Local(PathBuf::new()))),
            executor_key: String::new(),
            init_ledger: options.init_ledger,
            ledger_alert: None,
            authority: None,
            gerrit_error: None,
            mark_written: None,
            pipeline_tasks: apply::tasks::Tasks::new("pipeline-file"),
            merge_tasks: apply::tasks::Tasks::new("merged-by"),
            gerrit_reads: apply::tasks::Tasks::new("gerrit-read"),
            gerrit_queue: Vec::new(),
            gerrit_read_since: None,
            failed_promotions: BTreeMap::new(),
            verified_head: None,
            key_history: None,
            retention: apply::tasks::Tasks::new("retention"),
            retention_due: None,
            retention_on: false,
            retention_line: None,
            job_secrets: Arc::default(),
        })
    }

    /// The World as last observed.
    pub fn world(&self) -> &World {
        &self.world
    }

    /// The Layout in use.
    pub fn layout(&self) -> Option<&Arc<Layout>> {
        self.layout.as_ref()
    }

    /// Whether a copy runs or has an outcome no pass has taken yet.
    pub fn copies_pending(&self) -> bool {
        self.svc.as_ref().is_some_and(|s| s.copies.pending())
    }

    /// Promotion copies running now.
    pub fn copies_running(&self) -> Vec<apply::CopyKey> {
        self.svc
            .as_ref()
            .map(|s| s.copies.running())
            .unwrap_or_default()
    }

    /// Why Gerrit could not be read in the last pass, if it could not.
    pub fn gerrit_error(&self) -> Option<&str> {
        self.gerrit_error.as_deref()
    }

    /// Promotions whose last attempt failed, with why.
    pub fn failed_promotions(
        &self,
    ) -> &BTreeMap<
        (crate::model::EnvironmentName, crate::model::ImageName),
        (crate::model::Digest, String),
    > {
        &self.failed_promotions
    }

    /// Why the ledger is not written to, if it is not.
    pub fn ledger_alert(&self) -> Option<&str> {
        self.ledger_alert.as_deref()
    }

    /// One pass. `work`: what Gerrit hinted at; `None` for a full pass (every watched project,
    /// the config repo fetched).
    pub fn pass(&mut self, work: Option<Vec<(ProjectName, Scope)>>) -> anyhow::Result<PassReport> {
        let _pass = telemetry::PassScope::enter(work.is_none());
        let full = work.is_none();
        let config_hinted = work.as_ref().is_some_and(|w| {
            w.iter()
                .any(|(p, _)| Some(p) == self.settings.config_project.as_ref())
        });
        let stale = self
            .last_config_fetch
            .is_none_or(|t| t.elapsed() > Duration::from_secs(30));
        if let Err(e) = self.observe_config(full || config_hinted || stale) {
            if self.layout.is_none() {
                return Err(e);
            }
            // Carry on with the config we have; try again later.
            tracing::warn!(
                "{e:#}; going on with config {}",
                self.world.config.layout_commit
            );
            self.last_config_fetch = Some(Instant::now());
        }
        if self.layout.is_none() {
            anyhow::bail!(
                "the config repo has never been valid at {}: fix it (seakeeper config check)",
                self.world.config.head
            );
        }
        self.ensure_services()?;
        if self.ledger_alert.is_some() || self.svc.is_some() {
            self.check_ledger_mark()?;
        }
        self.world.absorb(Fact::Tick {
            now: now(),
            capacity: self.world.capacity,
        });
        let watched = self.watched();
        let work: Vec<(ProjectName, Scope)> = match work {
            None => watched.iter().map(|p| (p.clone(), Scope::All)).collect(),
            Some(w) => w,
        };
        let observations = if work.is_empty() && !self.reads_pending() {
            Vec::new()
        } else {
            self.observe_gerrit(&work)
        };
        // At the start, then every 10 minutes (events and meta refs carry the rest).
        if full
            && self
                .gate_scan
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(600))
        {
            self.gate_scan = Some(Instant::now());
            self.observe_gate_changes();
            self.prune_speculative();
        }
        // A pass woken only by a job's end learns nothing new about sources or promotions.
        if full || !work.is_empty() || self.world.pipelines.is_empty() || self.reads_pending() {
            self.observe_pipelines();
            self.observe_merges();
            self.observe_promotions()?;
        }
        let report = self.settle();
        self.tend_retention();
        // Acknowledge only what the ledger now accounts for: not a project whose source could
        // not be read (its builds are not requested yet) nor one whose request failed.
        if let Some(w) = &self.watcher {
            for o in observations {
                if self.unfetched.contains(&o.project) || report.unrequested.contains(&o.project) {
                    continue;
                }
                if let Err(e) = w.acknowledge(o) {
                    tracing::warn!("acknowledging: {e}");
                }
            }
        }
        self.world.prune();
        // At most once a second (two fsyncs on the way of the next event otherwise): while
        // the daemon runs, its writer itself refuses a ledger that went back; the mark is for
        // what happens while it does not, and shutdown writes it last.
        if self
            .mark_written
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.advance_ledger_mark();
            self.mark_written = Some(Instant::now());
        }
        self.write_status(false);
        Ok(report)
    }

    /// Plans and applies until nothing more happens. Apply's facts are absorbed into the
    /// World after each action; a failed action waits (see [`backoff`]) before it is tried
    /// again, and a permanent failure is reported once.
    fn settle(&mut self) -> PassReport {
        let mut report = PassReport::default();
        let layout = self.layout.clone().expect("a layout");
        let svc = self.svc.clone().expect("services are open");
        for _ in 0..32 {
            for f in apply::refresh_jobs(&svc, &self.world) {
                self.world.absorb(f);
            }
            self.world.absorb(Fact::Tick {
                now: now(),
                capacity: self.capacity(),
            });
            let actions = reconcile::plan(&self.world, &layout);
            self.held = actions
                .iter()
                .filter(|a| {
                    matches!(
                        a,
                        Action::Hold { .. } | Action::Refuse { .. } | Action::HoldLanding { .. }
                    )
                })
                .cloned()
                .collect();
            let mut progressed = false;
            for a in &actions {
                let key = a.key();
                // Waiting out its backoff: still a failure (a one-shot pass must not pass).
                if let Some(f) = self.failures.get(&key).filter(|f| Instant::now() < f.next) {
                    if let Action::RequestBuild { request, .. } = a {
                        report.unrequested.insert(request.project.clone());
                    }
                    if !report.failed.contains(&f.message) {
                        report.failed.push(f.message.clone());
                    }
                    continue;
                }
                let promotion = match a {
                    Action::Promote {
                        environment,
                        image,
                        digest,
                        ..
                    } => Some(((environment.clone(), image.clone()), digest.clone())),
                    _ => None,
                };
                match apply::apply(&svc, &layout, &self.world, a) {
                    Ok(applied) => {
                        let (world, cell) = (&self.world, &self.sources_cell);
                        self.notifications
                            .absorb(Some(a), &applied.facts, world, &layout, cell);
                        for f in applied.facts {
                            self.world.absorb(f);
                        }
                        if applied.progress {
                            report.applied += 1;
                        }
                        progressed |= applied.progress;
                        // Only done counts as success: an action that only started (or is
                        // still waiting for) work off the pass keeps its failure count.
                        if applied.progress {
                            self.failures.remove(&key);
                            if let Some((slot, _)) = promotion {
                                self.failed_promotions.remove(&slot);
                            }
                        }
                    }
                    Err(e) => {
                        let message = format!("{e} [{}]", e.label());
                        let transient = e.is_transient();
                        let count = self.failures.get(&key).map_or(0, |f| f.count) + 1;
                        let wait = backoff(count, transient);
                        let repeated = self
                            .failures
                            .get(&key)
                            .is_some_and(|f| f.message == message);
                        if transient || !repeated {
                            tracing::warn!(
                                "{message}; {} again in {} s",
                                if transient {
                                    "trying"
                                } else {
                                    "a permanent failure: trying"
                                },
                                wait.as_secs()
                            );
                        }
                        if let Some((slot, digest)) = promotion {
                            self.failed_promotions.insert(slot, (digest, e.to_string()));
                        }
                        if let Action::RequestBuild { request, .. } = a {
                            report.unrequested.insert(request.project.clone());
                        }
                        self.failures.insert(
                            key,
                            Failure {
                                count,
                                next: Instant::now() + wait,
                                message: message.clone(),
                            },
                        );
                        report.failed.push(message);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        // A failure long past (its action no longer planned, or done since without a
        // progress of its own) is forgotten: a later failure starts its backoff afresh.
        let now = Instant::now();
        self.failures.retain(|_, f| f.next + 2 * MAX_BACKOFF > now);
        // A gate build whose landing a freeze holds waits for people, not for work.
        let held: BTreeSet<&crate::model::BuildId> = self
            .held
            .iter()
            .filter_map(|a| match a {
                Action::HoldLanding { build_id, .. } => Some(build_id),
                _ => None,
            })
            .collect();
        report.busy = self.world.builds.keys().any(|id| !held.contains(id))
            || !self.copies_running().is_empty()
            || self.reads_pending();
        report
    }

    fn capacity(&self) -> usize {
        if self.draining {
            return 0;
        }
        let limit = self
            .concurrency
            .or_else(|| {
                self.layout
                    .as_ref()
                    .map(|l| l.settings.executor.concurrency as usize)
            })
            .unwrap_or(4)
            .max(1);
        limit.saturating_sub(self.world.jobs_running())
    }

    /// Runs until `stop` is set: passes on hints, on job ends and on a timer; then waits up to
    /// `grace` for running jobs, flushes the ledger and returns.
    pub fn serve(
        &mut self,
        stop: &AtomicBool,
        full_every: Duration,
        grace: Duration,
    ) -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::channel::<Wake>();
        self.retention_on = true;
        // A first pass that fails (a config repo never valid, a ledger remote down) is retried
        // by the loop's full passes rather than ending the daemon.
        if let Err(e) = self.pass(None) {
            tracing::warn!("pass: {e:#}");
        }
        self.start_stream(&tx)?;
        self.listen_to_webhooks(&tx)?;
        self.watch_files(&tx, true);
        let mut hints = Hints::default();
        let mut last_full = Instant::now();
        let mut watching: BTreeSet<JobKey> = BTreeSet::new();
        let mut last_trim = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            self.write_pending_status();
            self.watch_jobs(&mut watching, &tx);
            let busy = !self.world.builds.is_empty()
                || !self.copies_running().is_empty()
                || self.reads_pending();
            // Job ends and Gerrit events wake the loop; the timer is only a safety net.
            let mut job_ended = false;
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(first) => {
                    for w in std::iter::once(first).chain(rx.try_iter()) {
                        match w {
                            Wake::Gerrit(item) => hint(&mut hints, *item),
                            Wake::JobEnded => job_ended = true,
                            Wake::Files(files::Watched::Changed(p, scope)) => hints.add(p, scope),
                            Wake::Files(files::Watched::Project(p)) => hints.add(p, Scope::All),
                            // A pass reads the config HEAD and checks the ledger.
                            Wake::Files(files::Watched::Repo) => job_ended = true,
                        }
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => job_ended = busy,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let full = last_full.elapsed() >= full_every;
            let result = if full {
                hints = Hints::default();
                last_full = Instant::now();
                self.pass(None)
            } else {
                let watched = self.watched();
                let work = hints.take(&watched);
                if work.is_empty() && !job_ended {
                    continue;
                }
                self.pass(Some(work))
            };
            if let Err(e) = result {
                tracing::warn!("pass: {e:#}");
            }
            // Once a config is known (the first pass may have failed), listen to Gerrit.
            self.start_stream(&tx)?;
            self.watch_files(&tx, full);
            // Give freed memory back: under a steady churn of builds glibc keeps freed pages
            // inside its heaps, and the resident size only grows (measured on the simulated
            // day; the live heap stays small).
            if last_trim.elapsed() >= Duration::from_secs(1) {
                last_trim = Instant::now();
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only returns free memory to the system.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        }
        if let Some(s) = self.stream.take() {
            s.stop();
        }
        self.feed.set_hints(None);
        // Graceful: no new jobs; wait up to `grace` for running jobs to end and be recorded.
        // Jobs that die with this process get at least 30 s; supervised and Kubernetes jobs
        // keep running after it and the next start adopts them.
        let grace = if self.jobs_die_with_process() {
            grace.max(Duration::from_secs(30))
        } else {
            grace
        };
        let deadline = Instant::now() + grace;
        self.draining = true;
        while !self.world.builds.is_empty() && Instant::now() < deadline {
            if self.world.jobs_running() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            let _ = self.pass(Some(Vec::new()));
        }
        self.write_status(true);
        self.shutdown();
        Ok(())
    }

    /// Starts reading Gerrit's event stream, once, when the config names a stream command.
    fn start_stream(&mut self, tx: &std::sync::mpsc::Sender<Wake>) -> anyhow::Result<()> {
        if self.stream.is_some() {
            return Ok(());
        }
        let Some(c) = self
            .layout
            .as_ref()
            .and_then(|l| l.settings.gerrit.as_ref())
            .and_then(|g| g.stream_command.clone())
        else {
            return Ok(());
        };
        let (stx, srx) = std::sync::mpsc::channel::<StreamItem>();
        let forward = tx.clone();
        std::thread::Builder::new()
            .name("gerrit-hints".into())
            .spawn(move || {
                for item in srx {
                    if forward.send(Wake::Gerrit(Box::new(item))).is_err() {
                        break;
                    }
                }
            })?;
        self.stream = Some(gerrit::EventStream::spawn(
            gerrit::StreamOptions::new(&c),
            stx,
        ));
        Ok(())
    }

    /// Starts a waiter for every running job not yet watched: it wakes the loop when the job
    /// ends, so that results are recorded and reported at once, without polling.
    fn watch_jobs(&self, watching: &mut BTreeSet<JobKey>, tx: &std::sync::mpsc::Sender<Wake>) {
        let Some(svc) = &self.svc else {
            return;
        };
        let mut running = BTreeSet::new();
        for (id, b) in &self.world.builds {
            for (name, run) in &b.jobs {
                if run.state.as_ref().is_some_and(|s| !s.is_final()) {
                    running.insert(apply::job_key(id, name, run.attempt));
                }
            }
        }
        watching.retain(|k| running.contains(k));
        for key in running {
            if watching.contains(&key) {
                continue;
            }
            let executor = svc.executor.clone();
            let tx = tx.clone();
            let k = key.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("wait {k}"))
                .spawn(move || {
                    let _ = executor.wait(&k, None);
                    let _ = tx.send(Wake::JobEnded);
                });
            if spawned.is_ok() {
                watching.insert(key);
            }
        }
    }

    /// Flushes the ledger writer, stops replication, gives notifications a last attempt.
    pub fn shutdown(&mut self) {
        if let Some(svc) = self.svc.take() {
            // A retention sweep still running holds its own handle; its records wait for
            // nothing (each append is durable before it returns).
            svc.writer.clone().shutdown();
            self.advance_ledger_mark();
        }
        if let Some(r) = self.replicator.take() {
            r.stop();
        }
        self.notifications.flush();
    }

    /// The ledger's directory.
    pub fn ledger_dir(&self) -> PathBuf {
        self.settings.ledger_dir()
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.settings.state_dir
    }

    /// Replication's state, if a remote is configured.
    pub fn replication(&self) -> Option<replicate::State> {
        self.replicator.as_ref().map(replicate::Replicator::state)
    }

    /// The promotions being held or refused, from the last plan.
    pub fn held(&self) -> &[Action] {
        &self.held
    }

    /// Whether jobs run on this machine (the local executor): a single pass waits for the jobs
    /// it starts (jobs still queued in this process when it exits would only start with the
    /// next pass).
    pub fn local_jobs(&self) -> bool {
        self.layout
            .as_ref()
            .is_some_and(|l| l.settings.executor.kind == ExecutorKind::Local)
    }

    /// Whether jobs die with this process (the local executor without supervisors): then
    /// SIGTERM drains them.
    pub fn jobs_die_with_process(&self) -> bool {
        self.supervisor.is_none()
            && self
                .layout
                .as_ref()
                .is_some_and(|l| l.settings.executor.kind == ExecutorKind::Local)
    }

    /// Waits for replication to catch up (for `reconcile --once`), at most `timeout`.
    pub fn flush_replication(&self, timeout: Duration) -> bool {
        self.replicator
            .as_ref()
            .is_none_or(|r| r.wait_idle(timeout))
    }
}

/// This program, to run job supervisors with: `/proc/self/exe`, which still names the running
/// binary after a package upgrade replaced the file (the path would name the new one, or
/// nothing for a moment).
pub fn this_program() -> Option<PathBuf> {
    let proc = PathBuf::from("/proc/self/exe");
    if proc.exists() {
        Some(proc)
    } else {
        std::env::current_exe().ok()
    }
}

/// What wakes the loop.
enum Wake {
    /// A Gerrit event (a hint).
    Gerrit(Box<StreamItem>),
    /// A job ended.
    JobEnded,
    /// A watched local repository's refs moved.
    Files(files::Watched),
}

/// What a line of Gerrit's stream hints at.
fn hint(hints: &mut Hints, item: StreamItem) {
    match item {
        StreamItem::Event(e) => hints.add_event(&e),
        StreamItem::Connected { .. } => hints.resync_all(),
        StreamItem::Malformed { line, error } => {
            tracing::debug!("stream line {line}: {error}")
        }
        StreamItem::Disconnected { reason, .. } => {
            tracing::debug!("stream: {reason}")
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(s) = self.stream.take() {
            s.stop();
        }
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_BACKOFF, backoff};
    use std::time::Duration;

    #[test]
    fn failed_actions_back_off_and_permanent_ones_wait_the_most() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n, true).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(1, false), MAX_BACKOFF);
        assert!(MAX_BACKOFF <= Duration::from_secs(30));
    }
}
