//! Observing: the config repo (its HEAD, the last good config, freeze origins), Gerrit (refs
//! and change details, read off the pass), pipeline files (fetched and parsed off the pass,
//! with backoff), which change merged each moved tip, and the ledger's facts for promotions.
//! Everything observed reaches the World as [`Fact`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Daemon, is_remote};
use crate::config::{Layout, SourceFile, pipeline};
use crate::gerrit::{self, ChangeStatus, RefEvent, Scope};
use crate::git::mirror::{Sources, run_git};
use crate::model::{ChangeNumber, CommitId, FreezeName, ProjectName, RefName, Timestamp};
use crate::reconcile::{self, Fact};

/// How long a pass waits for the pipeline files it asked for before moving on.
const PIPELINE_TASK_WAIT: Duration = Duration::from_millis(100);

/// How long a pass waits for its read of Gerrit before it goes on without it.
const GERRIT_READ_WAIT: Duration = Duration::from_secs(1);

/// Fetches of one source before its build is recorded as an error.
const MAX_FETCH_ATTEMPTS: u32 = 5;

/// A project's pipeline file at a commit, fetched and checked: the source could not be
/// fetched (`Err`), or the file's resolved pipelines or its errors.
pub(super) type PipelineRead =
    Result<Result<Arc<pipeline::ResolvedPipelines>, String>, crate::git::mirror::SourceError>;

impl Daemon {
    /// Fetches (when the config repo is remote) and loads the config HEAD.
    pub(super) fn observe_config(&mut self, fetch: bool) -> anyhow::Result<()> {
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
        let fact = Fact::ConfigHead {
            head: head_id.clone(),
            author: Some(author),
            errors: loaded.errors.iter().map(ToString::to_string).collect(),
            report: true,
        };
        self.world.absorb(fact.clone());
        if !loaded.errors.is_empty() {
            // HEAD is not used, but a freeze it adds holds all the same (fail closed: a freeze
            // file that cannot be read holds everything).
            if let Some(l) = &loaded.layout {
                loaded.layout = Some(Arc::new(l.with_freezes_of(&files)));
            }
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
            self.world.absorb(Fact::LayoutInUse(commit.clone()));
            self.layout_commit = Some(commit);
            self.layout = Some(layout);
        }
        // An invalid HEAD is told by the routes of the config in use.
        if let Some(l) = self.layout.clone() {
            let (world, cell) = (&self.world, &self.sources_cell);
            self.notifications
                .absorb(None, std::slice::from_ref(&fact), world, &l, cell);
        }
        self.observe_freeze_origins();
        Ok(())
    }

    /// See [`Daemon::observe_config`]: HEAD is reported invalid with why, and the config in
    /// use (the last good one) gets a freeze of everything.
    pub(super) fn unreadable_head(&mut self, repo: &gix::Repository, head: &CommitId, why: &str) {
        let message = format!("the config at {head} cannot be read: {why}");
        if self.layout.is_none()
            && let Some((commit, layout)) = self.last_good_in_history(repo, head)
        {
            self.world.absorb(Fact::LayoutInUse(commit.clone()));
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
        self.world.absorb(Fact::ConfigHead {
            head: head.clone(),
            author: None,
            errors: vec![message],
            report: false,
        });
        self.config_head = Some(head.clone());
        self.observe_freeze_origins();
    }

    pub(super) fn last_good_in_history(
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
    pub(super) fn observe_freeze_origins(&mut self) {
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
        self.world.absorb(Fact::FreezeOrigins(origins));
    }

    /// The projects to watch: the config's, plus the config repo's own Gerrit project.
    pub(super) fn watched(&self) -> Vec<ProjectName> {
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
    pub(super) fn observe_gerrit(
        &mut self,
        work: &[(ProjectName, Scope)],
    ) -> Vec<gerrit::Observation> {
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
            // Repositories on this machine with no REST API: changes are read from NoteDb.
            let local = match (&rest, self.svc.as_ref().map(|s| &s.sources)) {
                (None, Some(sources @ Sources::Local(_))) => Some(sources.clone()),
                _ => None,
            };
            self.gerrit_reads.poll_or_start(&(), move || {
                let mut pass = gerrit::pass(&watcher, rest.as_ref(), &work, 4);
                if let Some(sources) = local {
                    read_notedb(&sources, &mut pass);
                }
                (work.len(), pass)
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
            tracing::warn!("{project}: {e}");
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
            let (facts, unread) = facts_of(&o, &pass.changes, our_user.as_ref());
            for f in facts {
                self.world.absorb(f);
            }
            if !unread {
                keep.push(o);
            }
        }
        keep
    }

    /// The open changes the gate may take, read in full (on full passes, so a restarted
    /// daemon learns the changes approved while it was down, whose refs did not move since):
    /// one query per distinct first vote the gate projects require.
    pub(super) fn observe_gate_changes(&mut self) {
        let (Some(layout), Some(svc)) = (self.layout.clone(), &self.svc) else {
            return;
        };
        let Some(rest) = svc.gerrit.as_ref().map(|g| g.rest.clone()) else {
            return;
        };
        let gated: BTreeSet<&ProjectName> = layout
            .projects
            .iter()
            .filter(|(_, p)| {
                p.pipelines
                    .contains(&crate::config::files::PipelineKind::Gate)
            })
            .map(|(n, _)| n)
            .collect();
        let queries: BTreeSet<String> = gated
            .iter()
            .filter_map(|p| layout.gate_requirements(p).first())
            .map(|r| format!("status:open -is:wip label:{}>={}", r.label, r.value))
            .collect();
        let our_user = layout.settings.gerrit.as_ref().and_then(|g| g.user.clone());
        for q in queries {
            match rest.query_changes(&q, 100) {
                Ok(changes) => {
                    for c in changes {
                        if gated.contains(&c.project) {
                            self.world.absorb(Fact::ChangeRead {
                                project: c.project.clone(),
                                change: c.number,
                                details: Box::new(c),
                                our_user: our_user.clone(),
                            });
                        }
                    }
                }
                Err(e) => tracing::warn!("reading the changes the gate may take ({q}): {e}"),
            }
        }
    }

    /// Removes the speculative states no longer wanted from the gate projects' repositories
    /// (kept: the states of builds in flight and of remembered merges), so that
    /// `refs/seakeeper/speculative/` does not grow for ever.
    pub(super) fn prune_speculative(&self) {
        let (Some(layout), Some(svc)) = (self.layout.as_ref(), &self.svc) else {
            return;
        };
        let mut keep: BTreeMap<&ProjectName, Vec<crate::git::ObjectId>> = BTreeMap::new();
        let id = |c: &CommitId| crate::git::ObjectId::from_hex(c.as_str().as_bytes()).ok();
        for b in self.world.builds.values() {
            keep.entry(&b.request.project)
                .or_default()
                .extend(id(&b.request.source_commit));
        }
        for ((project, _, _), outcome) in &self.world.merges {
            if let reconcile::MergeOutcome::Merged(s) = outcome {
                keep.entry(project).or_default().extend(id(s));
            }
        }
        for (project, file) in &layout.projects {
            if !file
                .pipelines
                .contains(&crate::config::files::PipelineKind::Gate)
            {
                continue;
            }
            let repo = svc.sources.path(project);
            if !repo.exists() {
                continue;
            }
            let wanted = keep.get(project).map(Vec::as_slice).unwrap_or(&[]);
            match crate::git::speculative::prune_named(&repo, wanted) {
                Ok(removed) => {
                    // Published to the server for pods too: removed there as well.
                    if layout.settings.executor.kind
                        == crate::config::files::ExecutorKind::Kubernetes
                        && let Err(e) = svc.sources.unpublish_refs(project, &removed)
                    {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) => tracing::warn!("{project}: pruning speculative states: {e}"),
            }
        }
    }

    /// Reads (and caches) the pipeline file of every commit the planner may need.
    pub(super) fn observe_pipelines(&mut self) {
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
                // A gate build's jobs come from its change's commit (see `pipeline_commit`).
                let (git_ref, commit) = match (&r.cause, r.change, r.patchset) {
                    (
                        Some(
                            crate::model::record::BuildCause::Gate { change_commit, .. }
                            | crate::model::record::BuildCause::DependsOn { change_commit, .. },
                        ),
                        Some(c),
                        Some(p),
                    ) => (crate::gerrit::patchset_ref(c, p), change_commit.clone()),
                    _ => (r.git_ref.clone(), r.source_commit.clone()),
                };
                wanted.insert((r.project.clone(), git_ref, commit));
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
        self.world.absorb(Fact::PipelinesRead(fresh));
        let pipelines = &self.world.pipelines;
        self.fetch_failures
            .retain(|slot, _| !pipelines.contains_key(slot));
    }

    /// One look at every wanted pipeline file: kept, started, taken, or failed (see
    /// [`Daemon::observe_pipelines`]).
    pub(super) fn sweep_pipelines(
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
            if let Some(v) = self.world.pipelines.get(&slot) {
                fresh.insert(slot, v.clone());
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
                // Without a pipeline file of its own, its central one (if any) runs.
                let (file, text) = layout_now.pipeline_file(&p, text.as_deref());
                Ok(pipeline::check(&file, text, Some(&p), Some(&layout_now))
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
                    tracing::warn!("{e} (attempt {failures})");
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

    /// Whether source, pipeline-file or merged-by reads are still running off the pass.
    pub(super) fn reads_pending(&self) -> bool {
        self.svc.as_ref().is_some_and(|s| s.reviews.pending())
            || self.pipeline_tasks.pending()
            || self.merge_tasks.pending()
            || self.gerrit_reads.pending()
            || !self.gerrit_queue.is_empty()
    }

    /// Looks up, off the pass, which Gerrit change's submission made each moved tip, so that
    /// its post-merge build's request names the change (and the change's ledger index leads to
    /// it). Without Gerrit's REST API nothing is looked up and nothing waits.
    pub(super) fn observe_merges(&mut self) {
        let Some(svc) = self.svc.clone() else {
            return;
        };
        let wanted: BTreeSet<(ProjectName, CommitId)> = self
            .world
            .moved
            .iter()
            .map(|((p, _), c)| (p.clone(), c.clone()))
            .collect();
        self.world.absorb(Fact::MergeLookups {
            enabled: svc.gerrit.is_some(),
            wanted: wanted.clone(),
        });
        let Some(g) = &svc.gerrit else {
            return;
        };
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
                    self.world.absorb(Fact::MergedBy {
                        project: key.0.clone(),
                        commit: key.1.clone(),
                        by: found,
                    });
                }
            }
        }
    }

    /// The ledger's view of promotions the config asks for.
    pub(super) fn observe_promotions(&mut self) -> anyhow::Result<()> {
        let (Some(layout), Some(_)) = (self.layout.clone(), &self.svc) else {
            return Ok(());
        };
        // Trust comes from keys/ at the config in use: when that changes, every digest's
        // facts are checked again.
        let commit = self.world.config.layout_commit.clone();
        if self.authority.as_ref().is_none_or(|(c, _)| *c != commit) {
            let authority = self.authority(&layout)?;
            self.authority = Some((commit, authority));
            self.world.absorb(Fact::KeysChanged);
        }
        let (_, authority) = self.authority.as_ref().expect("set above");
        let builder_keys: Vec<[u8; 32]> = authority
            .dsse_keys(crate::model::KeyRole::Builder)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        let svc = self.svc.as_ref().expect("checked above");
        let _packs = crate::ledger::read_guard();
        let ledger = svc.ledger()?;
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
                        self.world.absorb(Fact::Deployed {
                            environment: slot.0,
                            image: slot.1,
                            digest: p.digest,
                            since: p.promoted_at,
                        });
                    }
                }
                let slot = (env.clone(), image.clone());
                let deployed = self.world.deployed.get(&slot).map(|(d, _)| d);
                if deployed == Some(digest) || self.world.digests.contains_key(digest) {
                    continue;
                }
                let facts = digest_facts(&snapshot, digest, &builder_keys)?;
                self.world.absorb(Fact::DigestChecked {
                    digest: digest.clone(),
                    facts,
                });
            }
        }
        Ok(())
    }
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
    if t.trust == Some(crate::model::Trust::Untrusted) {
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
            tracing::warn!(
                "which change merged {project} {commit}: {e}; its post-merge build goes on \
                 without naming the change"
            );
            None
        }
    }
}

/// The details of every change whose meta ref moved, read from NoteDb in its repository.
fn read_notedb(sources: &Sources, pass: &mut gerrit::Pass) {
    for (project, change) in pass.changes_updated() {
        let read = super::notedb::read_change(&sources.path(&project), &project, change).map_err(
            |message| gerrit::RestError::Decode {
                method: "GET",
                path: format!("NoteDb of change {change} of {project}"),
                message,
            },
        );
        pass.changes.insert((project, change), read);
    }
}

/// What one observation of the ref watcher tells the World, and whether a change in it could
/// not be read (then the observation is not acknowledged, and is seen again).
fn facts_of(
    o: &gerrit::Observation,
    changes: &BTreeMap<(ProjectName, ChangeNumber), Result<gerrit::Change, gerrit::RestError>>,
    our_user: Option<&String>,
) -> (Vec<Fact>, bool) {
    let mut facts = Vec::new();
    let mut unread = false;
    if o.scope == Scope::All {
        let tips = o
            .refs()
            .iter()
            .filter_map(|(name, id)| {
                let r = name
                    .starts_with("refs/heads/")
                    .then(|| name.parse::<RefName>().ok())??;
                Some((r, id.to_string().parse::<CommitId>().ok()?))
            })
            .collect();
        facts.push(Fact::BranchesListed {
            project: o.project.clone(),
            tips,
        });
    }
    for e in &o.events {
        if let RefEvent::ChangeMetaUpdated {
            project, change, ..
        } = e
        {
            // Every observation with this event sees the same read (one pass may hold two
            // observations of a project: a change's and a full listing).
            match changes.get(&(project.clone(), *change)) {
                Some(Ok(c)) => facts.push(Fact::ChangeRead {
                    project: project.clone(),
                    change: *change,
                    details: Box::new(c.clone()),
                    our_user: our_user.cloned(),
                }),
                Some(Err(e)) => {
                    tracing::warn!("{project} change {change}: {e}");
                    unread = true;
                }
                None => {}
            }
            continue;
        }
        facts.push(Fact::RefChanged {
            event: e.clone(),
            first_sight: o.first_sight,
        });
    }
    (facts, unread)
}
