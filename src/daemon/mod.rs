//! The reconcile loop: observe into the [`World`], [`plan`](crate::reconcile::plan), apply,
//! and again while actions make progress. `reconcile --once` is one [`Daemon::pass`];
//! `serve` is [`Daemon::serve`]: a pass whenever Gerrit's stream hints at a change, whenever a
//! job ends, and in full on a timer.
//!
//! What survives a crash is on disk: the ledger (requests, results, promotions, freezes), the
//! ref watcher's acknowledged snapshot, the executor's job directories, and one marker file per
//! build not yet reported (`<state>/inflight/<build id>`). A restarted daemon loads the marked
//! builds from the ledger and adopts their jobs; everything else is observed again.

pub mod replicate;
pub mod settings;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::apply::{self, GerritReporting, Reporter, Services};
use crate::config::files::{ExecutorKind, PipelineKind};
use crate::config::{Layout, Loader, SourceFile, pipeline};
use crate::executor::Executor;
use crate::gerrit::{self, ChangeStatus, Hints, RefEvent, RefWatcher, Scope, StreamItem};
use crate::git::mirror::{Sources, run_git};
use crate::ledger::{Ledger, Writer, WriterOptions};
use crate::model::{ChangeNumber, CommitId, FreezeName, JobKey, ProjectName, RefName, Timestamp};
use crate::reconcile::{self, Action, ConfigState, Patchset, World};
use crate::signing::SigningKey;

pub use settings::Settings;
pub use status::Status;

/// How long a pass waits for the pipeline files it asked for before moving on.
const PIPELINE_TASK_WAIT: Duration = Duration::from_millis(100);

/// How long a pass waits for its read of Gerrit before it goes on without it.
const GERRIT_READ_WAIT: Duration = Duration::from_secs(1);

/// Fetches of one source before its build is recorded as an error.
const MAX_FETCH_ATTEMPTS: u32 = 5;

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
    stream: Option<gerrit::EventStream>,
    /// Sources that could not be fetched: (failures, next attempt).
    fetch_failures: BTreeMap<(ProjectName, CommitId), (u32, Instant)>,
    /// Projects with a source not fetched this pass (their observations wait).
    unfetched: BTreeSet<ProjectName>,
    /// Shutting down: no new jobs.
    draining: bool,
    /// An invalid config HEAD not yet reported on its Gerrit change.
    invalid_head: Option<CommitId>,
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
    retention: apply::tasks::Tasks<(), Result<apply::retention::Report, String>>,
    /// When the next sweep is due (`None`: not known yet, or sweeps are off).
    retention_due: Option<Instant>,
    /// Whether this daemon sweeps (`serve` does; one-shot passes do not).
    retention_on: bool,
    /// The last sweep, for `status`.
    retention_line: Option<status::RetentionLine>,
}

/// A project's pipeline file at a commit, fetched and checked: the source could not be
/// fetched (`Err`), or the file's resolved pipelines or its errors.
type PipelineRead =
    Result<Result<Arc<pipeline::ResolvedPipelines>, String>, crate::git::mirror::SourceError>;

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
        },
    )
}

/// What the ledger proves about a digest a promotion asks for: its trust from attestations
/// whose signatures verify with a builder key (not from what the build request says), the
/// images those attestations name, and where it entered as which image.
fn digest_facts(
    snapshot: &crate::ledger::Snapshot<'_>,
    digest: &crate::model::Digest,
    builder_keys: &[[u8; 32]],
) -> anyhow::Result<reconcile::DigestFacts> {
    use crate::policy::promotion::Provenance;
    let mut facts = reconcile::DigestFacts {
        provenance: Provenance::None,
        images: BTreeSet::new(),
        problem: None,
        entered: BTreeMap::new(),
    };
    let Some(t) = snapshot.trace_digest(digest)? else {
        return Ok(facts);
    };
    if t.trust.as_deref() == Some("untrusted") {
        facts.provenance = Provenance::Untrusted;
    }
    let mut problems = Vec::new();
    for a in &t.attestations {
        let Some(crate::model::Record::Attestation(r)) = snapshot.record(&a.path)? else {
            continue;
        };
        match crate::signing::provenance::verify_build_attestation(
            &r.envelope,
            builder_keys,
            digest,
        ) {
            Ok(v) => {
                if facts.provenance == Provenance::None {
                    facts.provenance = Provenance::Trusted;
                }
                // The artifact's own name is an image only when an attestation names it.
                for name in &v.subject_names {
                    for candidate in [t.name.as_deref(), name.rsplit('/').next()]
                        .into_iter()
                        .flatten()
                    {
                        if crate::signing::provenance::subject_names_image(name, candidate)
                            && let Ok(image) = candidate.parse()
                        {
                            facts.images.insert(image);
                        }
                    }
                }
            }
            Err(e) => problems.push(format!("{}: {e}", a.path)),
        }
    }
    if facts.provenance == Provenance::None && !problems.is_empty() {
        facts.problem = Some(problems.join("; "));
    }
    for p in &t.promotions {
        if let (Ok(e), Ok(i), Ok(at)) = (
            p.environment.parse(),
            p.image.parse(),
            p.promoted_at.parse::<Timestamp>(),
        ) {
            facts.entered.entry((e, i)).or_insert(at);
        }
    }
    Ok(facts)
}

/// The change whose submission made `commit` the tip: the merged change whose current patchset
/// is that commit, or, for a merge commit Gerrit made, one of its other parents. `None` for a
/// direct push, or when Gerrit could not be asked (then the build goes on without the link,
/// with a warning: the link is for people, nothing is decided on it).
fn merged_by(
    rest: &gerrit::Rest,
    sources: &Sources,
    project: &ProjectName,
    commit: &CommitId,
) -> Option<(ChangeNumber, crate::model::PatchsetNumber)> {
    let ask = |c: &str| -> Result<Option<(ChangeNumber, crate::model::PatchsetNumber)>, String> {
        let changes = rest
            .query_changes(&format!("commit:{c} project:{project} status:merged"), 10)
            .map_err(|e| e.to_string())?;
        Ok(changes.into_iter().find_map(|ch| {
            (ch.current_revision.as_ref().map(CommitId::as_str) == Some(c)
                && ch.status == ChangeStatus::Merged)
                .then_some(ch.current_patchset.map(|p| (ch.number, p)))
                .flatten()
        }))
    };
    let attempt = || -> Result<Option<(ChangeNumber, crate::model::PatchsetNumber)>, String> {
        if let Some(found) = ask(commit.as_str())? {
            return Ok(Some(found));
        }
        let parents = run_git(
            &sources.path(project),
            &["rev-list", "--parents", "-n", "1", commit.as_str()],
            None,
        )
        .unwrap_or_default();
        for parent in parents.split_whitespace().skip(2) {
            if let Some(found) = ask(parent)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    };
    match attempt() {
        Ok(found) => found,
        Err(e) => {
            crate::telemetry::warn(&format!(
                "which change merged {project} {commit}: {e}; its post-merge build goes on \
                 without naming the change"
            ));
            None
        }
    }
}

/// The trusted keys at any config commit: `base` (the server's own key, the settings'
/// certs) and the `keys/` of the config repo at `config_repo` at that commit, when the commit
/// is in the history of `tip` (the config branch) and valid there (cached per commit). See [`crate::ledger::VerifyOptions::history`].
pub fn key_history(
    config_repo: PathBuf,
    tip: String,
    base: crate::signing::Authority,
) -> crate::ledger::verify::History {
    let cache: Mutex<BTreeMap<String, Option<crate::signing::Authority>>> =
        Mutex::new(BTreeMap::new());
    Arc::new(move |commit: &str| {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = cache.get(commit) {
            return a.clone();
        }
        let found = commit.parse::<CommitId>().ok().and_then(|c| {
            // Only a commit of the config branch's history counts: not one of an unmerged
            // change, nor anything else the repository happens to hold.
            run_git(
                &config_repo,
                &["merge-base", "--is-ancestor", c.as_str(), &tip],
                None,
            )
            .ok()?;
            let layout = apply::load_config_at(&config_repo, &c).ok()?.ok()?;
            let mut a = base.clone();
            for (name, entry) in &layout.keys {
                a.add(
                    &entry.cert,
                    &format!("keys/{name}.asc"),
                    entry.roles.iter().copied(),
                )
                .ok()?;
            }
            Some(a)
        });
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(commit.to_owned(), found.clone());
        found
    })
}

/// Whether the ledger remote's branch is at `head`.
fn remote_holds(remote: &str, credentials: Option<&(String, String)>, head: &str) -> bool {
    run_git(
        Path::new("/"),
        &["ls-remote", "--", remote, crate::ledger::LEDGER_REF],
        credentials,
    )
    .is_ok_and(|l| l.split_whitespace().next() == Some(head))
}

fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

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
        let config_repo = if is_remote(&settings.config_repo) {
            settings.state_dir.join("config.git")
        } else {
            PathBuf::from(
                settings
                    .config_repo
                    .strip_prefix("file://")
                    .unwrap_or(&settings.config_repo),
            )
        };
        let mut world = empty_world();
        world.config_project = settings.config_project.clone();
        Ok(Daemon {
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
            svc: None,
            watcher: None,
            sources_key: String::new(),
            replicator: None,
            world,
            held: Vec::new(),
            status_written: None,
            stream: None,
            fetch_failures: BTreeMap::new(),
            unfetched: BTreeSet::new(),
            draining: false,
            invalid_head: None,
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

    fn secrets(&self) -> anyhow::Result<crate::secrets::SecretsFile> {
        Ok(match &self.settings.secrets {
            Some(p) => crate::secrets::SecretsFile::load(p)?,
            None => crate::secrets::SecretsFile::default(),
        })
    }

    /// Fetches (when the config repo is remote) and loads the config HEAD.
    fn observe_config(&mut self, fetch: bool) -> anyhow::Result<()> {
        let branch = format!("refs/heads/{}", self.settings.config_branch);
        if is_remote(&self.settings.config_repo) && (fetch || self.last_config_fetch.is_none()) {
            if !self.config_repo.join("HEAD").exists() {
                std::fs::create_dir_all(&self.config_repo)?;
                run_git(&self.config_repo, &["init", "--quiet", "--bare"], None)
                    .map_err(|e| anyhow::anyhow!("config mirror: {e}"))?;
            }
            let creds = self.secrets()?.gerrit.map(|c| c.pair());
            let refspec = format!("+{branch}:{branch}");
            run_git(
                &self.config_repo,
                &[
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--",
                    &self.settings.config_repo,
                    &refspec,
                ],
                creds.as_ref(),
            )
            .map_err(|e| anyhow::anyhow!("fetching the config repo: {e}"))?;
            self.last_config_fetch = Some(Instant::now());
        }
        let repo = gix::open(&self.config_repo)
            .map_err(|e| anyhow::anyhow!("config repo {}: {e}", self.config_repo.display()))?;
        let head = crate::git::files::resolve(&repo, &branch)
            .map_err(|e| anyhow::anyhow!("config repo {}: {e}", self.config_repo.display()))?;
        let head_id: CommitId = head.to_string().parse()?;
        if self.config_head.as_ref() == Some(&head_id) {
            return Ok(());
        }
        let mut cache = crate::git::files::BlobCache::new();
        let files = match crate::git::files::read_all_cached(&repo, &head, &mut cache) {
            Ok(files) => files,
            Err(e) => {
                // HEAD cannot even be read (too large, too deep, a missing object): whatever
                // freeze it adds cannot be seen, so everything is held (fail closed) on the
                // last good config until a readable HEAD comes.
                self.unreadable_head(&repo, &head_id, &e.to_string());
                return Ok(());
            }
        };
        let files: BTreeMap<String, SourceFile> = files
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
            .collect();
        let mut loaded = self.loader.load(head_id.as_str(), &files);
        if loaded.layout.is_none() {
            // A fresh process with an invalid HEAD: the last good config is the newest valid
            // commit on the branch's first-parent history.
            if let Some((commit, layout)) = self.last_good_in_history(&repo, &head_id) {
                loaded.layout = Some(Arc::new(layout));
                loaded.layout_commit = Some(commit.to_string());
            }
        }
        let author = repo
            .find_commit(head)
            .ok()
            .and_then(|c| c.author().ok().map(|a| format!("{} <{}>", a.name, a.email)))
            .unwrap_or_default();
        self.world.config.head = head_id.clone();
        self.world.config.author = author;
        self.world.config.errors = loaded.errors.iter().map(ToString::to_string).collect();
        if !loaded.errors.is_empty() {
            // HEAD is not used, but a freeze it adds holds all the same (fail closed: a freeze
            // file that cannot be read holds everything).
            if let Some(l) = &loaded.layout {
                loaded.layout = Some(Arc::new(l.with_freezes_of(&files)));
            }
            self.invalid_head = Some(head_id.clone());
            (self.reporter)(&format!(
                "[config] {head_id} is invalid ({} errors); running with the last good config {}",
                loaded.errors.len(),
                loaded.layout_commit.as_deref().unwrap_or("(none)")
            ));
            for e in &loaded.errors {
                (self.reporter)(&format!("[config]   {e}"));
            }
        }
        self.config_head = Some(head_id);
        if let (Some(layout), Some(commit)) = (loaded.layout, loaded.layout_commit) {
            let commit: CommitId = commit.parse()?;
            if self.layout_commit.as_ref() != Some(&commit) {
                // Pipelines resolve against the layout: resolve them again.
                self.world.pipelines.clear();
            }
            self.world.config.layout_commit = commit.clone();
            self.layout_commit = Some(commit);
            self.layout = Some(layout);
        }
        self.observe_freeze_origins();
        Ok(())
    }

    /// See [`Daemon::observe_config`]: HEAD is reported invalid with why, and the config in
    /// use (the last good one) gets a freeze of everything.
    fn unreadable_head(&mut self, repo: &gix::Repository, head: &CommitId, why: &str) {
        let message = format!("the config at {head} cannot be read: {why}");
        if self.layout.is_none()
            && let Some((commit, layout)) = self.last_good_in_history(repo, head)
        {
            self.world.config.layout_commit = commit.clone();
            self.layout_commit = Some(commit);
            self.layout = Some(Arc::new(layout));
        }
        if let Some(layout) = &self.layout {
            let text = format!(
                "scope: [all]\nreason: {}\n",
                serde_json::to_string(&format!(
                    "{message}; everything is held until HEAD can be read"
                ))
                .expect("a string")
            );
            let freeze: BTreeMap<String, SourceFile> = [(
                "freezes/config-head-unreadable.yaml".to_owned(),
                SourceFile {
                    key: format!("unreadable-{head}"),
                    bytes: Arc::from(text.as_bytes()),
                },
            )]
            .into();
            self.layout = Some(Arc::new(layout.with_freezes_of(&freeze)));
        }
        if self.config_head.as_ref() != Some(head) {
            (self.reporter)(&format!(
                "[config] {message}; running with {} and holding every promotion",
                self.world.config.layout_commit
            ));
        }
        self.world.config.head = head.clone();
        self.world.config.errors = vec![message];
        self.config_head = Some(head.clone());
        self.observe_freeze_origins();
    }

    fn last_good_in_history(
        &self,
        repo: &gix::Repository,
        head: &CommitId,
    ) -> Option<(CommitId, Layout)> {
        let list = run_git(
            &self.config_repo,
            &[
                "rev-list",
                "--first-parent",
                "--max-count=200",
                head.as_str(),
            ],
            None,
        )
        .ok()?;
        for line in list.lines().skip(1) {
            let Ok(id) = gix::ObjectId::from_hex(line.trim().as_bytes()) else {
                continue;
            };
            // An unreadable commit is not a good one; older ones may be.
            let Ok(files) = crate::git::files::read_all(repo, &id) else {
                continue;
            };
            let bytes: BTreeMap<String, Vec<u8>> =
                files.into_iter().map(|(p, f)| (p, f.bytes)).collect();
            if let Ok(layout) = crate::config::load(&bytes) {
                return Some((line.trim().parse().ok()?, layout));
            }
        }
        None
    }

    /// The config commit that last changed each freeze file (the one that made its
    /// transition), and its author.
    fn observe_freeze_origins(&mut self) {
        let Some(layout) = &self.layout else {
            return;
        };
        let mut names: BTreeSet<FreezeName> = layout.freezes.keys().cloned().collect();
        names.extend(self.world.freezes.keys().cloned());
        let rev = self.world.config.layout_commit.to_string();
        let mut origins = BTreeMap::new();
        for name in names {
            let path = format!("freezes/{name}.yaml");
            if let Ok(line) = run_git(
                &self.config_repo,
                &["log", "-1", "--format=%H%x09%an <%ae>", &rev, "--", &path],
                None,
            ) && let Some((c, author)) = line.split_once('\t')
                && let Ok(c) = c.parse::<CommitId>()
            {
                origins.insert(name, (c, author.to_owned()));
            }
        }
        self.world.freeze_origins = origins;
    }

    /// Opens the ledger (from its remote on a fresh server), the executor and Gerrit once a
    /// layout is known.
    fn ensure_services(&mut self) -> anyhow::Result<()> {
        let Some(layout) = self.layout.clone() else {
            return Ok(());
        };
        let secrets = self.secrets()?;
        let gerrit_creds = secrets.gerrit.as_ref().map(|c| c.pair());
        let sources_key = format!("{:?}", layout.settings.gerrit);
        if self.svc.is_some() && self.sources_key == sources_key {
            return Ok(());
        }
        let ledger_dir = self.settings.ledger_dir();
        let remote = layout
            .settings
            .ledger
            .as_ref()
            .and_then(|l| l.remote.clone());
        let mut key = SigningKey::from_bytes(&self.key_bytes, "the signing key")?;
        if !ledger_dir.exists() {
            let authority = self.authority(&layout)?;
            let history = self.key_history()?;
            let made = replicate::bootstrap(
                &ledger_dir,
                remote.as_deref(),
                gerrit_creds.as_ref(),
                &mut key,
                &authority,
                Some(history),
                self.init_ledger,
            );
            if let Err(e) = made {
                self.ledger_alert = Some(format!("{e:#}"));
                self.write_status(true);
                return Err(e);
            }
            self.init_ledger = false;
            let ledger = Ledger::open(&ledger_dir)?;
            if let Some(m) = crate::ledger::mark::Mark::of(&ledger)? {
                m.write(&self.settings.ledger_mark())?;
                // Restored from the remote: that is where the remote is.
                if let Some(r) = &remote
                    && remote_holds(r, gerrit_creds.as_ref(), &m.head)
                {
                    replicate::RemoteMark {
                        remote: crate::git::mirror::redact(r),
                        head: m.head.clone(),
                    }
                    .write(&self.settings.state_dir.join("ledger.remote-mark"))?;
                }
            }
        }
        // Checked now (format, keys, the high-water mark); read afresh by each pass.
        Ledger::open(&ledger_dir)?;
        self.check_ledger_mark()?;
        // The writer and the executor (with its running jobs) carry over when only the Gerrit
        // settings changed; a new executor would not know the jobs the old one runs.
        let executor_key = format!("{:?}", layout.settings.executor);
        let (writer, old_executor) = match self.svc.take() {
            Some(old) => (
                old.writer.clone(),
                (self.executor_key == executor_key).then(|| old.executor.clone()),
            ),
            None => (
                Writer::open(&ledger_dir, key, WriterOptions::default())?,
                None,
            ),
        };
        let replicator = remote.as_ref().map(|r| {
            replicate::Replicator::start(
                &ledger_dir,
                r,
                gerrit_creds.clone(),
                self.settings.state_dir.join("ledger.remote-mark"),
            )
        });
        let notify = replicator.as_ref().map(replicate::Replicator::notifier);
        let state = &self.settings.state_dir;
        let (sources, gerrit_reporting, watcher) = match &layout.settings.gerrit {
            None => (Sources::Local(state.join("no-gerrit")), None, None),
            Some(g) => {
                let sources =
                    Sources::for_url(&g.url, gerrit_creds.clone(), &state.join("mirrors"));
                let client = || {
                    gerrit::Rest::new(&g.url, secrets.gerrit.clone(), Duration::from_secs(30))
                        .map_err(|e| anyhow::anyhow!("gerrit.url: {e}"))
                };
                let (rest, post) = if is_remote(&g.url) {
                    let once = gerrit::RetryPolicy {
                        attempts: 1,
                        ..gerrit::RetryPolicy::default()
                    };
                    (Some(client()?), Some(client()?.with_retry(once)))
                } else {
                    (None, None)
                };
                let source =
                    gerrit::RefSource::for_url(&g.url, rest.as_ref().map(|r| r.endpoint().clone()))
                        .map_err(|e| anyhow::anyhow!("gerrit.url: {e}"))?;
                let watcher = RefWatcher::open(source, &state.join("watch"))?;
                (
                    sources,
                    rest.zip(post).map(|(rest, post)| GerritReporting {
                        rest,
                        post,
                        report: g.report,
                    }),
                    Some(watcher),
                )
            }
        };
        *self.sources_cell.write().unwrap_or_else(|p| p.into_inner()) = sources.clone();
        let executor = match old_executor {
            Some(e) => e,
            None => self.executor(&layout, &secrets)?,
        };
        self.executor_key = executor_key;
        let dsse_key = SigningKey::from_bytes(&self.key_bytes, "the signing key")?;
        let images = crate::registry::layout::OciLayout::open_or_init(&state.join("images"))?;
        let copies = self
            .svc
            .as_ref()
            .map(|s| s.copies.clone())
            .unwrap_or_else(|| apply::Copies::new("copy"));
        let reviews = self
            .svc
            .as_ref()
            .map(|s| s.reviews.clone())
            .unwrap_or_else(|| apply::Reviews::new("review"));
        self.svc = Some(Arc::new(Services {
            ledger_dir: ledger_dir.clone(),
            writer,
            dsse_key: Mutex::new(dsse_key),
            executor,
            store_dir: state.join("store"),
            images,
            secrets,
            sources,
            gerrit: gerrit_reporting,
            config_url: self.settings.config_repo.clone(),
            inflight: state.join("inflight"),
            reporter: self.reporter.clone(),
            on_write: Box::new(move || {
                if let Some(n) = &notify {
                    n();
                }
            }),
            copies,
            reviews,
        }));
        self.watcher = watcher.map(Arc::new);
        self.replicator = replicator;
        self.sources_key = sources_key;
        self.load_state()?;
        self.observe_freeze_origins();
        Ok(())
    }

    /// The keys this deployment trusts: the server's own (every role), the settings'
    /// `trusted_certs` (every role), and the config repo's `keys/` with their roles.
    pub fn authority(&self, layout: &Layout) -> anyhow::Result<crate::signing::Authority> {
        let mut authority = self.base_authority()?;
        for (name, entry) in &layout.keys {
            authority.add(
                &entry.cert,
                &format!("keys/{name}.asc"),
                entry.roles.iter().copied(),
            )?;
        }
        Ok(authority)
    }

    /// The trusted keys at each config commit of the config branch (see [`key_history`]), made
    /// once.
    fn key_history(&mut self) -> anyhow::Result<crate::ledger::verify::History> {
        if let Some(h) = &self.key_history {
            return Ok(h.clone());
        }
        let h = key_history(
            self.config_repo.clone(),
            format!("refs/heads/{}", self.settings.config_branch),
            self.base_authority()?,
        );
        self.key_history = Some(h.clone());
        Ok(h)
    }

    /// The keys trusted whatever the config says: the server's own, the settings' certs.
    fn base_authority(&self) -> anyhow::Result<crate::signing::Authority> {
        use crate::model::KeyRole;
        let mut authority = crate::signing::Authority::new();
        let own = SigningKey::from_bytes(&self.key_bytes, "the signing key")?;
        authority.add(
            &own.public_cert_armored()?,
            "the server's own key",
            KeyRole::ALL,
        )?;
        for path in &self.settings.trusted_certs {
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("trusted_certs: {}: {e}", path.display()))?;
            authority.add(
                &bytes,
                &format!("trusted_certs: {}", path.display()),
                KeyRole::ALL,
            )?;
        }
        Ok(authority)
    }

    /// Refuses to go on when the ledger's head is not the high-water mark or a descendant of
    /// it (someone reset or truncated it); records the mark when there is none yet.
    fn check_ledger_mark(&mut self) -> anyhow::Result<()> {
        use crate::ledger::mark::Mark;
        let path = self.settings.ledger_mark();
        let ledger = Ledger::open(&self.settings.ledger_dir())?;
        // A mark that cannot be read is no proof of anything: refuse, and say why.
        let mark = match Mark::read(&path) {
            Ok(m) => m,
            Err(e) => {
                let alert = format!("{e}: refusing to write until it is repaired or removed");
                crate::telemetry::warn(&alert);
                self.ledger_alert = Some(alert.clone());
                self.write_status(true);
                anyhow::bail!(alert);
            }
        };
        match mark {
            Some(mark) => {
                if let Err(e) = mark.check(&ledger) {
                    let alert = format!("{e} (mark: {})", path.display());
                    crate::telemetry::warn(&alert);
                    self.ledger_alert = Some(alert.clone());
                    self.write_status(true);
                    anyhow::bail!(alert);
                }
                // Commits since the last one verified (this server's own, or another
                // process's) are checked as a replica would check them before anything is
                // decided on them.
                if let Err(alert) = self.verify_new_commits(&ledger, &mark.head) {
                    crate::telemetry::warn(&alert);
                    self.ledger_alert = Some(alert.clone());
                    self.write_status(true);
                    anyhow::bail!(alert);
                }
            }
            None => {
                if let Some(m) = Mark::of(&ledger)? {
                    m.write(&path)?;
                }
            }
        }
        self.ledger_alert = None;
        Ok(())
    }

    /// Verifies the ledger's commits after `mark` against the deployment's keys at the config
    /// commits they name.
    fn verify_new_commits(&mut self, ledger: &Ledger, mark: &str) -> Result<(), String> {
        let Some(layout) = self.layout.clone() else {
            return Ok(());
        };
        let Some(head) = ledger.tip().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        // From the mark every time (the mark moves up at least once a second): a head
        // verified before but no longer an ancestor could hide what replaced it.
        let from = gix::ObjectId::from_hex(mark.as_bytes()).map_err(|e| e.to_string())?;
        if head == from || self.verified_head == Some((from, head)) {
            return Ok(());
        }
        // The keys at the config in use, as promotions use them (parsed once per config).
        let authority = match &self.authority {
            Some((c, a)) if *c == self.world.config.layout_commit => a.clone(),
            _ => self.authority(&layout).map_err(|e| format!("{e:#}"))?,
        };
        let history = self.key_history().map_err(|e| format!("{e:#}"))?;
        let options = crate::ledger::VerifyOptions {
            pinned: None,
            authority: Some(authority),
            history: Some(history),
        };
        let _packs = crate::ledger::read_guard();
        match crate::ledger::verify_since(ledger, from, head, &options) {
            Ok(_) => {
                self.verified_head = Some((from, head));
                Ok(())
            }
            Err(f) => Err(format!(
                "ledger commit {} {}: refusing to write or act on it until a person has looked",
                f.commit, f.reason
            )),
        }
    }

    /// Moves the high-water mark to the ledger's head (after a pass wrote to it).
    fn advance_ledger_mark(&mut self) {
        use crate::ledger::mark::Mark;
        let path = self.settings.ledger_mark();
        let Ok(ledger) = Ledger::open(&self.settings.ledger_dir()) else {
            return;
        };
        let Ok(Some(now)) = Mark::of(&ledger) else {
            return;
        };
        match Mark::read(&path) {
            Ok(Some(old)) if old == now => {}
            Ok(Some(old)) => {
                // Only forward: a head that went back keeps the old mark (and the alert).
                if let Err(e) = old.check(&ledger) {
                    let alert = format!("{e} (mark: {})", path.display());
                    crate::telemetry::warn(&alert);
                    self.ledger_alert = Some(alert);
                } else if let Err(e) = now.write(&path) {
                    crate::telemetry::warn(&format!("{e}"));
                }
            }
            _ => {
                if let Err(e) = now.write(&path) {
                    crate::telemetry::warn(&format!("{e}"));
                }
            }
        }
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

    fn executor(
        &self,
        layout: &Layout,
        secrets: &crate::secrets::SecretsFile,
    ) -> anyhow::Result<Arc<dyn Executor>> {
        let state = &self.settings.state_dir;
        let concurrency = self
            .concurrency
            .unwrap_or(layout.settings.executor.concurrency as usize)
            .max(1);
        Ok(match layout.settings.executor.kind {
            ExecutorKind::Local => {
                let mut config = crate::executor::local::LocalConfig::new(state);
                config.store_dir = state.join("store");
                config.max_concurrent = concurrency;
                config.supervisor = self.supervisor.clone();
                config.sandbox = match self.settings.sandbox {
                    settings::SandboxSetting::Auto => crate::executor::local::Sandbox::Auto,
                    settings::SandboxSetting::Bubblewrap => {
                        crate::executor::local::Sandbox::Bubblewrap("bwrap".into())
                    }
                    settings::SandboxSetting::None => crate::executor::local::Sandbox::None,
                };
                let _ = secrets;
                let sources = self.sources_cell.clone();
                let prepare: crate::executor::local::Prepare = Arc::new(move |spec, dir| {
                    let path = sources
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .path(&spec.project);
                    let repo = crate::git::mirror::REPOS.open(&path)?.into_sync();
                    let commit = gix::ObjectId::from_hex(spec.commit.as_str().as_bytes())
                        .map_err(|e| e.to_string())?;
                    crate::git::checkout::checkout(&repo, &commit, dir, 2)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
                let exec = crate::executor::local::LocalExecutor::new(config, prepare)?;
                if let Some(w) = exec.warning() {
                    crate::telemetry::warn(w);
                }
                Arc::new(exec)
            }
            ExecutorKind::Kubernetes => {
                let ns = &layout.settings.executor.namespaces;
                let settings = crate::executor::kubernetes::KubeSettings {
                    trusted_namespace: ns.trusted.clone(),
                    untrusted_namespace: ns.untrusted.clone(),
                    priority_classes: layout
                        .settings
                        .executor
                        .priority_classes
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect(),
                    ..Default::default()
                };
                Arc::new(crate::executor::kubernetes::KubeExecutor::infer(settings)?)
            }
        })
    }

    /// After a (re)start: the builds not yet reported, and the freezes the ledger holds.
    fn load_state(&mut self) -> anyhow::Result<()> {
        let svc = self.svc.as_ref().expect("services are open");
        for (id, depth) in apply::inflight(&svc.inflight) {
            if self.world.builds.contains_key(&id) {
                continue;
            }
            match apply::adopt(svc, &mut self.world, &id, depth) {
                Ok(true) => {}
                // Marked but never requested: the planner requests it again if still wanted.
                Ok(false) => {
                    let _ = std::fs::remove_file(svc.inflight.join(id.as_str()));
                }
                Err(e) => crate::telemetry::warn(&format!("adopting {id}: {e}")),
            }
        }
        let _packs = crate::ledger::read_guard();
        let ledger = svc.ledger().map_err(|e| anyhow::anyhow!(e))?;
        let snapshot = ledger.snapshot()?;
        for entry in snapshot.list("freezes")? {
            let name = String::from_utf8_lossy(&entry.name).into_owned();
            let Some(stem) = name.strip_suffix(".yaml") else {
                continue;
            };
            let Ok(freeze) = stem.parse::<FreezeName>() else {
                continue;
            };
            if let Some(crate::model::Record::Freeze(f)) =
                snapshot.record(&format!("freezes/{name}"))?
            {
                self.world.freezes.insert(freeze, f);
            }
        }
        Ok(())
    }

    /// The projects to watch: the config's, plus the config repo's own Gerrit project.
    fn watched(&self) -> Vec<ProjectName> {
        let mut v: Vec<ProjectName> = self
            .layout
            .as_ref()
            .map(|l| l.projects.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(p) = &self.settings.config_project
            && !v.contains(p)
        {
            v.push(p.clone());
        }
        v
    }

    /// Observes Gerrit (`work`: which projects and scopes), updating the World. Returns the
    /// observations to acknowledge once their builds are requested.
    fn observe_gerrit(&mut self, work: &[(ProjectName, Scope)]) -> Vec<gerrit::Observation> {
        let Some(watcher) = self.watcher.clone() else {
            return Vec::new();
        };
        for w in work {
            if !self.gerrit_queue.contains(w) {
                self.gerrit_queue.push(w.clone());
            }
        }
        // The read runs on a thread of its own; the pass waits for it a little (it usually
        // takes milliseconds) and otherwise goes on, taking the outcome in a later pass.
        if !self.gerrit_reads.pending() && !self.gerrit_queue.is_empty() {
            let work = std::mem::take(&mut self.gerrit_queue);
            let rest = self
                .svc
                .as_ref()
                .and_then(|svc| svc.gerrit.as_ref().map(|g| g.rest.clone()));
            self.gerrit_reads.poll_or_start(&(), move || {
                (work.len(), gerrit::pass(&watcher, rest.as_ref(), &work, 4))
            });
            self.gerrit_read_since = Some(Instant::now());
        }
        // Waited for only while young: a read that has already kept passes waiting is polled.
        if let Some(since) = self.gerrit_read_since {
            self.gerrit_reads
                .settle(GERRIT_READ_WAIT.saturating_sub(since.elapsed()));
        }
        let Some((asked, mut pass)) = self.gerrit_reads.take(&()) else {
            if let Some(since) = self.gerrit_read_since
                && since.elapsed() >= Duration::from_secs(10)
            {
                self.gerrit_error = Some(format!(
                    "no answer for {} s (the read goes on; everything else does too)",
                    since.elapsed().as_secs()
                ));
            }
            return Vec::new();
        };
        self.gerrit_read_since = None;
        for (project, e) in &pass.errors {
            crate::telemetry::warn(&format!("{project}: {e}"));
        }
        // Gerrit is unreachable when nothing of what was asked could be read.
        self.gerrit_error = if !pass.errors.is_empty() && pass.observations.is_empty() {
            let (project, e) = &pass.errors[0];
            Some(format!(
                "{} of {} projects could not be read ({project}: {e})",
                pass.errors.len(),
                asked
            ))
        } else {
            None
        };
        let our_user = self
            .layout
            .as_ref()
            .and_then(|l| l.settings.gerrit.as_ref())
            .and_then(|g| g.user.clone());
        let mut keep = Vec::new();
        for o in std::mem::take(&mut pass.observations) {
            let mut unread = false;
            // A full listing is the truth about branch tips (a restarted daemon learns them
            // here, without any event).
            if o.scope == Scope::All {
                let project = &o.project;
                self.world.tips.retain(|(p, _), _| p != project);
                for (name, id) in o.refs() {
                    if let (true, Ok(r), Ok(c)) = (
                        name.starts_with("refs/heads/"),
                        name.parse::<RefName>(),
                        id.to_string().parse::<CommitId>(),
                    ) {
                        self.world.tips.insert((project.clone(), r), c);
                    }
                }
            }
            for e in &o.events {
                match e {
                    RefEvent::PatchsetCreated {
                        project,
                        change,
                        patchset,
                        git_ref,
                        commit,
                    } => {
                        if o.first_sight {
                            continue;
                        }
                        let slot = (project.clone(), *change);
                        let newer = self
                            .world
                            .changes
                            .get(&slot)
                            .is_none_or(|p| p.patchset < *patchset);
                        if newer {
                            self.world.changes.insert(
                                slot,
                                Patchset {
                                    patchset: *patchset,
                                    git_ref: git_ref.clone(),
                                    commit: commit.clone(),
                                    rechecks: 0,
                                },
                            );
                        }
                    }
                    RefEvent::ChangeMetaUpdated {
                        project, change, ..
                    } => match pass.changes.get(&(project.clone(), *change)) {
                        Some(Ok(c)) => {
                            self.apply_change_details(project, *change, c, our_user.as_deref())
                        }
                        Some(Err(e)) => {
                            crate::telemetry::warn(&format!("{project} change {change}: {e}"));
                            unread = true;
                        }
                        None => {}
                    },
                    RefEvent::BranchCreated {
                        project,
                        git_ref,
                        commit,
                    }
                    | RefEvent::BranchMoved {
                        project,
                        git_ref,
                        commit,
                        ..
                    } => {
                        let slot = (project.clone(), git_ref.clone());
                        self.world.tips.insert(slot.clone(), commit.clone());
                        if !o.first_sight {
                            self.world.moved.insert(slot, commit.clone());
                            // A change whose commit is now on the branch has merged.
                            self.world
                                .changes
                                .retain(|(p, _), ps| !(p == project && ps.commit == *commit));
                        }
                    }
                    RefEvent::BranchDeleted {
                        project, git_ref, ..
                    } => {
                        let slot = (project.clone(), git_ref.clone());
                        self.world.tips.remove(&slot);
                        self.world.moved.remove(&slot);
                    }
                    RefEvent::RefUpdated {
                        project,
                        git_ref,
                        commit: None,
                        ..
                    } => {
                        // A change's patchset ref deleted: the change is gone.
                        if let Some(n) = git_ref
                            .as_str()
                            .strip_prefix("refs/changes/")
                            .and_then(|r| r.split('/').nth(1))
                            .and_then(|n| n.parse::<ChangeNumber>().ok())
                        {
                            self.world.changes.remove(&(project.clone(), n));
                        }
                    }
                    RefEvent::RefUpdated { .. } => {}
                }
            }
            if !unread {
                keep.push(o);
            }
        }
        keep
    }

    fn apply_change_details(
        &mut self,
        project: &ProjectName,
        change: ChangeNumber,
        c: &gerrit::Change,
        our_user: Option<&str>,
    ) {
        let slot = (project.clone(), change);
        if c.status != ChangeStatus::New {
            self.world.changes.remove(&slot);
            return;
        }
        let (Some(ps), Some(rev), Some(git_ref)) = (
            c.current_patchset,
            c.current_revision.clone(),
            c.current_ref.clone(),
        ) else {
            return;
        };
        let rechecks = c
            .messages
            .iter()
            .filter(|m| m.patchset == Some(ps))
            .filter(|m| {
                m.author
                    .as_ref()
                    .and_then(|a| a.username.as_deref())
                    .is_none_or(|u| Some(u) != our_user)
            })
            .filter(|m| {
                m.tag
                    .as_deref()
                    .is_none_or(|t| !t.starts_with("autogenerated:"))
            })
            .filter(|m| is_recheck(&m.message))
            .count() as u32;
        let entry = self.world.changes.get(&slot);
        if entry.is_some_and(|p| p.patchset > ps) {
            return;
        }
        self.world.changes.insert(
            slot,
            Patchset {
                patchset: ps,
                git_ref,
                commit: rev,
                rechecks,
            },
        );
    }

    /// Reads (and caches) the pipeline file of every commit the planner may need.
    fn observe_pipelines(&mut self) {
        self.unfetched.clear();
        let (Some(layout), Some(svc)) = (self.layout.clone(), &self.svc) else {
            return;
        };
        let layout = &layout;
        let sources = svc.sources.clone();
        let mut wanted: BTreeSet<(ProjectName, RefName, CommitId)> = BTreeSet::new();
        for ((project, _), p) in &self.world.changes {
            if Some(project) != self.settings.config_project.as_ref() {
                wanted.insert((project.clone(), p.git_ref.clone(), p.commit.clone()));
            }
        }
        for ((project, r), c) in &self.world.moved {
            wanted.insert((project.clone(), r.clone(), c.clone()));
        }
        for b in self.world.builds.values() {
            let r = &b.request;
            if r.jobs.iter().all(|j| j != reconcile::CONFIG_CHECK_JOB) {
                wanted.insert((
                    r.project.clone(),
                    r.git_ref.clone(),
                    r.source_commit.clone(),
                ));
            }
        }
        // Tips the planner may build: dependents and schedules.
        let scheduled: BTreeSet<&ProjectName> =
            layout.schedules.iter().map(|s| &s.project).collect();
        for ((project, r), c) in &self.world.tips {
            let dependent = layout
                .projects
                .get(project)
                .is_some_and(|f| !f.depends_on.is_empty());
            if dependent || scheduled.contains(project) {
                wanted.insert((project.clone(), r.clone(), c.clone()));
            }
        }
        // Start what is missing, give it a moment (local sources take milliseconds), then
        // take what has ended; what has not is taken by a later pass.
        let mut fresh = BTreeMap::new();
        for sweep in 0..2 {
            if sweep == 1 {
                self.pipeline_tasks.settle(PIPELINE_TASK_WAIT);
                self.unfetched.clear();
            }
            self.sweep_pipelines(&wanted, &mut fresh, layout, &sources);
        }
        self.world.pipelines = fresh;
        let pipelines = &self.world.pipelines;
        self.fetch_failures
            .retain(|slot, _| !pipelines.contains_key(slot));
    }

    /// Whether source, pipeline-file or merged-by reads are still running off the pass.
    fn reads_pending(&self) -> bool {
        self.svc.as_ref().is_some_and(|s| s.reviews.pending())
            || self.pipeline_tasks.pending()
            || self.merge_tasks.pending()
            || self.gerrit_reads.pending()
            || !self.gerrit_queue.is_empty()
    }

    /// Looks up, off the pass, which Gerrit change's submission made each moved tip, so that
    /// its post-merge build's request names the change (and the change's ledger index leads to
    /// it). Without Gerrit's REST API nothing is looked up and nothing waits.
    fn observe_merges(&mut self) {
        let Some(svc) = self.svc.clone() else {
            return;
        };
        let Some(g) = &svc.gerrit else {
            self.world.merges_looked_up = false;
            return;
        };
        self.world.merges_looked_up = true;
        let wanted: BTreeSet<(ProjectName, CommitId)> = self
            .world
            .moved
            .iter()
            .map(|((p, _), c)| (p.clone(), c.clone()))
            .collect();
        self.world.merged_by.retain(|k, _| wanted.contains(k));
        for sweep in 0..2 {
            if sweep == 1 {
                self.merge_tasks.settle(PIPELINE_TASK_WAIT);
            }
            for key in &wanted {
                // After its source is fetched (a merge commit's parents are read from it).
                if self.world.merged_by.contains_key(key) || !self.world.pipelines.contains_key(key)
                {
                    continue;
                }
                let (rest, sources, k) = (g.rest.clone(), svc.sources.clone(), key.clone());
                if let Some(found) = self
                    .merge_tasks
                    .poll_or_start(key, move || merged_by(&rest, &sources, &k.0, &k.1))
                {
                    self.world.merged_by.insert(key.clone(), found);
                }
            }
        }
    }

    /// One look at every wanted pipeline file: kept, started, taken, or failed (see
    /// [`Daemon::observe_pipelines`]).
    fn sweep_pipelines(
        &mut self,
        wanted: &BTreeSet<(ProjectName, RefName, CommitId)>,
        fresh: &mut BTreeMap<
            (ProjectName, CommitId),
            Result<Arc<pipeline::ResolvedPipelines>, String>,
        >,
        layout: &Arc<Layout>,
        sources: &Sources,
    ) {
        for item in wanted {
            let (project, git_ref, commit) = item.clone();
            let slot = (project.clone(), commit.clone());
            if fresh.contains_key(&slot) {
                continue;
            }
            if let Some(v) = self.world.pipelines.remove(&slot) {
                fresh.insert(slot, v);
                continue;
            }
            // A source that keeps failing is retried with backoff, then given up on: the build
            // records why, rather than waiting forever.
            if let Some((_, next)) = self.fetch_failures.get(&slot)
                && Instant::now() < *next
            {
                self.unfetched.insert(project.clone());
                continue;
            }
            // Fetching the source and parsing its (untrusted) pipeline file run on a thread
            // of their own: a slow server or a large file holds up no other work.
            let (sources, layout_now) = (sources.clone(), layout.clone());
            let (p, r, c) = (project.clone(), git_ref.clone(), commit.clone());
            let Some(read) = self.pipeline_tasks.poll_or_start(&slot, move || {
                let read = sources
                    .ensure(&p, r.as_str(), &c)
                    .and_then(|_| sources.read_file(&p, &c, pipeline::PIPELINE_FILE))?;
                let text = read.map(|b| String::from_utf8_lossy(&b).into_owned());
                Ok(pipeline::check(
                    pipeline::PIPELINE_FILE,
                    text.as_deref().unwrap_or("{}\n"),
                    Some(&p),
                    Some(&layout_now),
                )
                .map(Arc::new)
                .map_err(|errors| {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                }))
            }) else {
                self.unfetched.insert(project.clone());
                continue;
            };
            let resolved = match read {
                Err(e) if e.permanent => {
                    self.fetch_failures.remove(&slot);
                    fresh.insert(slot, Err(format!("{}: {e}", pipeline::PIPELINE_FILE)));
                    continue;
                }
                Err(e) => {
                    let failures = self.fetch_failures.get(&slot).map_or(0, |f| f.0) + 1;
                    crate::telemetry::warn(&format!("{e} (attempt {failures})"));
                    if failures < MAX_FETCH_ATTEMPTS {
                        let wait = Duration::from_secs(1 << failures.min(8));
                        self.fetch_failures
                            .insert(slot, (failures, Instant::now() + wait));
                        self.unfetched.insert(project.clone());
                        continue;
                    }
                    self.fetch_failures.remove(&slot);
                    fresh.insert(
                        slot,
                        Err(format!(
                            "the source could not be fetched after {failures} attempts: {e}"
                        )),
                    );
                    continue;
                }
                Ok(resolved) => resolved,
            };
            fresh.insert(slot, resolved);
        }
    }

    /// The ledger's view of promotions the config asks for.
    fn observe_promotions(&mut self) -> anyhow::Result<()> {
        let (Some(layout), Some(_)) = (self.layout.clone(), &self.svc) else {
            return Ok(());
        };
        // Trust comes from keys/ at the config in use: when that changes, every digest's
        // facts are checked again.
        let commit = self.world.config.layout_commit.clone();
        if self.authority.as_ref().is_none_or(|(c, _)| *c != commit) {
            let authority = self.authority(&layout)?;
            self.authority = Some((commit, authority));
            self.world.digests.clear();
        }
        let (_, authority) = self.authority.as_ref().expect("set above");
        let builder_keys: Vec<[u8; 32]> = authority
            .dsse_keys(crate::model::KeyRole::Builder)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        let svc = self.svc.as_ref().expect("checked above");
        let _packs = crate::ledger::read_guard();
        let ledger = svc.ledger().map_err(|e| anyhow::anyhow!(e))?;
        let snapshot = ledger.snapshot()?;
        for (env, images) in &layout.promotions {
            // The previous environment's pointer too: a promotion needs its source to run the
            // digest now.
            let previous = layout
                .environments
                .iter()
                .position(|e| &e.name == env)
                .and_then(|p| p.checked_sub(1))
                .map(|p| layout.environments[p].name.clone());
            for (image, digest) in images {
                for slot in std::iter::once((env.clone(), image.clone()))
                    .chain(previous.clone().map(|p| (p, image.clone())))
                {
                    if !self.world.deployed.contains_key(&slot)
                        && let Some(crate::model::Record::Promotion(p)) = snapshot
                            .record(&crate::ledger::layout::promotion_pointer(&slot.0, &slot.1))?
                    {
                        self.world
                            .deployed
                            .insert(slot.clone(), (p.digest, p.promoted_at));
                    }
                }
                let slot = (env.clone(), image.clone());
                let deployed = self.world.deployed.get(&slot).map(|(d, _)| d);
                if deployed == Some(digest) || self.world.digests.contains_key(digest) {
                    continue;
                }
                let facts = digest_facts(&snapshot, digest, &builder_keys)?;
                self.world.digests.insert(digest.clone(), facts);
            }
        }
        Ok(())
    }

    /// One pass. `work`: what Gerrit hinted at; `None` for a full pass (every watched project,
    /// the config repo fetched).
    pub fn pass(&mut self, work: Option<Vec<(ProjectName, Scope)>>) -> anyhow::Result<PassReport> {
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
            crate::telemetry::warn(&format!(
                "{e:#}; going on with config {}",
                self.world.config.layout_commit
            ));
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
        self.world.now = now();
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
        // A pass woken only by a job's end learns nothing new about sources or promotions.
        if full || !work.is_empty() || self.world.pipelines.is_empty() || self.reads_pending() {
            self.observe_pipelines();
            self.observe_merges();
            self.observe_promotions()?;
        }
        self.report_invalid_head();
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
                    crate::telemetry::warn(&format!("acknowledging: {e}"));
                }
            }
        }
        self.prune();
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

    /// Plans and applies until nothing more happens.
    fn settle(&mut self) -> PassReport {
        let mut report = PassReport::default();
        let layout = self.layout.clone().expect("a layout");
        let svc = self.svc.as_ref().expect("services are open");
        for _ in 0..32 {
            apply::refresh_jobs(svc, &mut self.world);
            self.world.capacity = self.capacity();
            self.world.now = now();
            let actions = reconcile::plan(&self.world, &layout);
            self.held = actions
                .iter()
                .filter(|a| matches!(a, Action::Hold { .. } | Action::Refuse { .. }))
                .cloned()
                .collect();
            let mut progressed = false;
            for a in &actions {
                let promotion = match a {
                    Action::Promote {
                        environment,
                        image,
                        digest,
                        ..
                    } => Some(((environment.clone(), image.clone()), digest.clone())),
                    _ => None,
                };
                match apply::apply(svc, &layout, &mut self.world, a) {
                    Ok(p) => {
                        if p {
                            report.applied += 1;
                        }
                        progressed |= p;
                        if let Some((slot, _)) = promotion {
                            self.failed_promotions.remove(&slot);
                        }
                    }
                    Err(e) => {
                        crate::telemetry::warn(&e);
                        if let Some((slot, digest)) = promotion {
                            self.failed_promotions.insert(slot, (digest, e.clone()));
                        }
                        if let Action::RequestBuild { request, .. } = a {
                            report.unrequested.insert(request.project.clone());
                        }
                        report.failed.push(e);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        report.busy = !self.world.builds.is_empty()
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
        let running = self
            .world
            .builds
            .values()
            .flat_map(|b| b.jobs.values())
            .filter(|r| r.state.as_ref().is_some_and(|s| !s.is_final()))
            .count();
        limit.saturating_sub(running)
    }

    /// Forgets what no longer matters: moved tips whose build is done, finished builds'
    /// ids that nothing can ask for again.
    fn prune(&mut self) {
        let done = &self.world.done;
        let builds = &self.world.builds;
        let pipelines = &self.world.pipelines;
        self.world.moved.retain(|(p, r), c| {
            let id = reconcile::post_merge_build_id(p, r, c, None);
            let nothing_to_build = pipelines
                .get(&(p.clone(), c.clone()))
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|r| r.get(&PipelineKind::PostMerge).is_none_or(Vec::is_empty));
            !nothing_to_build && (!done.contains(&id) || builds.contains_key(&id))
        });
        if self.world.done.len() > 100_000 {
            // Every id the World can still produce is recomputed; the rest is dropped.
            let mut keep = BTreeSet::new();
            for ((p, c), ps) in &self.world.changes {
                keep.insert(reconcile::check_build_id(p, *c, ps));
            }
            self.world.done.retain(|id| keep.contains(id));
        }
    }

    /// The status as of the last pass.
    pub fn status(&self) -> Status {
        status::Status::of(self)
    }

    /// Writes `<state>/status.json` now.
    pub fn flush_status(&mut self) {
        self.write_status(true);
    }

    fn write_status(&mut self, force: bool) {
        if !force
            && self
                .status_written
                .as_ref()
                .is_some_and(|(at, _)| at.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        let status = self.status();
        let Ok(text) = serde_json::to_string_pretty(&status.without_time()) else {
            return;
        };
        // Only when something changed (at most five times a second), or every 10 s.
        let due = match &self.status_written {
            None => true,
            Some((at, last)) => *last != text || at.elapsed() > Duration::from_secs(10),
        };
        if force || due {
            let path = self.settings.state_dir.join("status.json");
            if let Ok(full) = serde_json::to_vec_pretty(&status) {
                let tmp = path.with_extension("json.tmp");
                if std::fs::write(&tmp, &full).is_ok() {
                    let _ = std::fs::rename(&tmp, &path);
                }
            }
            self.status_written = Some((Instant::now(), text));
        }
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
            crate::telemetry::warn(&format!("pass: {e:#}"));
        }
        self.start_stream(&tx)?;
        let mut hints = Hints::default();
        let mut last_full = Instant::now();
        let mut watching: BTreeSet<JobKey> = BTreeSet::new();
        let mut last_trim = Instant::now();
        while !stop.load(Ordering::SeqCst) {
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
                            Wake::Gerrit(item) => absorb(&mut hints, *item),
                            Wake::JobEnded => job_ended = true,
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
                crate::telemetry::warn(&format!("pass: {e:#}"));
            }
            // Once a config is known (the first pass may have failed), listen to Gerrit.
            self.start_stream(&tx)?;
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
            let running = self
                .world
                .builds
                .values()
                .flat_map(|b| b.jobs.values())
                .any(|r| r.state.as_ref().is_some_and(|s| !s.is_final()));
            if !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            let _ = self.pass(Some(Vec::new()));
        }
        self.write_status(true);
        self.shutdown();
        Ok(())
    }

    /// `<state>/retention.json`.
    fn retention_state(&self) -> PathBuf {
        self.settings.state_dir.join("retention.json")
    }

    /// Starts a retention sweep when one is due (every `every` of `policies/retention.yaml`,
    /// counted from the last sweep's end, kept in the state directory across restarts), and
    /// takes the outcome of one that ended. Sweeps run off the pass: a slow registry holds
    /// up nothing else.
    fn tend_retention(&mut self) {
        if !self.retention_on || self.ledger_alert.is_some() {
            return;
        }
        let (Some(layout), Some(svc)) = (self.layout.clone(), self.svc.clone()) else {
            return;
        };
        let every = Duration::from_secs(layout.policies.retention.every.as_secs().max(1));
        let state_path = self.retention_state();
        let due = *self.retention_due.get_or_insert_with(|| {
            let last = apply::retention::State::load(&state_path)
                .ok()
                .and_then(|s| s.last_run);
            let wait = last.map_or(0, |l| {
                (l.as_second() + every.as_secs() as i64 - Timestamp::now().as_second())
                    .clamp(0, every.as_secs() as i64)
            });
            Instant::now() + Duration::from_secs(wait as u64)
        });
        if !self.retention.pending() && Instant::now() < due {
            return;
        }
        let outcome = self.retention.poll_or_start(&(), move || {
            apply::retention::run(
                &svc,
                &apply::retention::Sweep {
                    layout: &layout,
                    now: Timestamp::now(),
                    state_path,
                    dry_run: false,
                },
            )
        });
        let Some(outcome) = outcome else {
            return;
        };
        self.retention_due = Some(Instant::now() + every);
        let report = outcome.unwrap_or_else(|e| apply::retention::Report {
            errors: vec![e],
            ..Default::default()
        });
        for e in &report.expired {
            (self.reporter)(&format!(
                "retention: deleted {} {} from {}: {}",
                e.name, e.digest, e.store, e.rule
            ));
        }
        for e in &report.errors {
            crate::telemetry::warn(&format!("retention: {e}"));
        }
        self.retention_line = Some(status::RetentionLine {
            at: Timestamp::now().to_string(),
            expired: report.expired.len(),
            errors: report.errors,
        });
    }

    /// The last retention sweep, for `status`.
    pub fn retention_line(&self) -> Option<&status::RetentionLine> {
        self.retention_line.as_ref()
    }

    /// One retention sweep now, here (`seakeeper retention run`): the config and the ledger
    /// are read as a pass would, nothing else is reconciled.
    pub fn retention_now(&mut self, dry_run: bool) -> anyhow::Result<apply::retention::Report> {
        self.observe_config(true)?;
        if self.layout.is_none() {
            anyhow::bail!(
                "the config repo has never been valid at {}: fix it (seakeeper config check)",
                self.world.config.head
            );
        }
        self.ensure_services()?;
        self.check_ledger_mark()?;
        if let Some(a) = &self.ledger_alert {
            anyhow::bail!("LEDGER ALERT: {a}; nothing is deleted");
        }
        let layout = self.layout.clone().expect("checked above");
        let svc = self.svc.clone().expect("opened above");
        apply::retention::run(
            &svc,
            &apply::retention::Sweep {
                layout: &layout,
                now: Timestamp::now(),
                state_path: self.retention_state(),
                dry_run,
            },
        )
        .map_err(|e| anyhow::anyhow!(e))
    }

    /// An invalid config at HEAD (merged despite its check) is reported on the Gerrit change
    /// that merged it, once: a comment with every error and the commit still in use.
    fn report_invalid_head(&mut self) {
        let Some(head) = self.invalid_head.clone() else {
            return;
        };
        let (Some(project), Some(svc)) = (self.settings.config_project.clone(), &self.svc) else {
            self.invalid_head = None;
            return;
        };
        let Some(g) = svc.gerrit.as_ref().filter(|g| g.report) else {
            self.invalid_head = None;
            return;
        };
        let query = format!("commit:{head} project:{project}");
        let changes = match g.rest.query_changes(&query, 10) {
            Ok(c) => c,
            Err(e) => {
                crate::telemetry::warn(&format!("finding the change of config {head}: {e}"));
                return;
            }
        };
        let marker = format!("Config-Head-Invalid: {head}");
        for c in changes {
            let posted = g.rest.get_change(&project, c.number).is_ok_and(|d| {
                d.messages
                    .iter()
                    .any(|m| m.message.lines().any(|l| l.trim() == marker))
            });
            if posted {
                continue;
            }
            let mut text = format!(
                "seakeeper: this change made the config repo invalid at {head}; seakeeper keeps \
                 running with the last good config, {}. Fix it with a follow-up change.\n\n",
                self.world.config.layout_commit
            );
            for e in &self.world.config.errors {
                text.push_str(&format!("- {e}\n"));
            }
            text.push_str(&format!("\n{marker}\n"));
            let review = crate::gerrit::ReviewInput::for_pipeline("config", &text, None);
            if let Err(e) = g
                .post
                .post_review(&project, c.number, head.as_str(), &review)
            {
                crate::telemetry::warn(&format!(
                    "reporting the invalid config on change {}: {e}",
                    c.number
                ));
                return;
            }
        }
        self.invalid_head = None;
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

    /// Flushes the ledger writer and stops replication.
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
}

fn absorb(hints: &mut Hints, item: StreamItem) {
    match item {
        StreamItem::Event(e) => hints.add_event(&e),
        StreamItem::Connected { .. } => hints.resync_all(),
        StreamItem::Malformed { line, error } => {
            crate::telemetry::debug(&format!("stream line {line}: {error}"))
        }
        StreamItem::Disconnected { reason, .. } => {
            crate::telemetry::debug(&format!("stream: {reason}"))
        }
    }
}

/// Whether a Gerrit comment asks for a recheck: a line that is just `recheck`, after Gerrit's
/// `Patch Set N:` header.
pub fn is_recheck(message: &str) -> bool {
    message.lines().any(|l| {
        let l = l.trim();
        let l = match l.strip_prefix("Patch Set ") {
            Some(rest) => rest.split_once(':').map_or("", |(_, t)| t).trim(),
            None => l,
        };
        l.eq_ignore_ascii_case("recheck")
    })
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
    use super::is_recheck;

    #[test]
    fn recheck_comments() {
        assert!(is_recheck("Patch Set 3:\n\nrecheck"));
        assert!(is_recheck("recheck"));
        assert!(is_recheck("Patch Set 2: Code-Review+1\n\n  Recheck  "));
        assert!(!is_recheck("Patch Set 3:\n\nplease recheck this"));
        assert!(!is_recheck("Patch Set 3: recheckx"));
    }
}
