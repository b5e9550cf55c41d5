//! The [`World`]: everything observed, at one moment, and the [`Fact`]s that change it.
//!
//! Observers (the daemon reading the config repo, Gerrit, pipeline files, the ledger and the
//! executor) and apply (carrying out the planner's actions) never change a World themselves:
//! they produce facts, and [`World::absorb`] is the only code that changes one. So what a
//! Gerrit event, a read change or a recorded result means for the planner is decided here,
//! pure and tested as tables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::files::PipelineKind;
use crate::config::pipeline::ResolvedPipelines;
use crate::gerrit::{Change, ChangeStatus, RefEvent};
use crate::model::record::{BuildRequest, BuildResult, Freeze};
use crate::model::{
    BuildId, BuildStatus, ChangeNumber, CommitId, Digest, EnvironmentName, FreezeName, ImageName,
    JobState, PatchsetNumber, ProjectName, RefName, Timestamp,
};
use crate::policy::promotion::Provenance;

use super::review::review_of;
pub use super::review::{
    Approval, GateEntry, GateEvent, GateNote, MergeOutcome, Review, depends_on_footers,
};

/// The config repo as observed.
#[derive(Debug, Clone)]
pub struct ConfigState {
    /// The commit at the config branch's HEAD.
    pub head: CommitId,
    /// The commit the Layout in use comes from (HEAD, or the last good one).
    pub layout_commit: CommitId,
    /// Who made the HEAD commit (for freeze records).
    pub author: String,
    /// HEAD's errors, one line each, when HEAD is invalid.
    pub errors: Vec<String>,
    /// An invalid HEAD (merged despite its check) whose change has not been told yet, with its
    /// errors: it stays until told, even when HEAD moves on meanwhile.
    pub unreported: Option<(CommitId, Vec<String>)>,
}

/// The newest patchset of an open change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patchset {
    /// Its number.
    pub patchset: PatchsetNumber,
    /// `refs/changes/XX/N/P`.
    pub git_ref: RefName,
    /// Its commit.
    pub commit: CommitId,
    /// How many times "recheck" was asked on this patchset.
    pub rechecks: u32,
    /// What Gerrit says of the change beyond its refs, once its details were read.
    pub review: Option<Review>,
}

/// One run of one job, as the executor reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// 1 for the first run, 2 after the executor lost the first, ...
    pub attempt: u32,
    /// Its state, `None` when the executor does not know it (not started).
    pub state: Option<JobState>,
}

/// A build seakeeper has requested and not yet finished with.
#[derive(Debug, Clone)]
pub struct BuildState {
    /// The request, as recorded in the ledger.
    pub request: BuildRequest,
    /// The build's overall outcome, once recorded.
    pub result: Option<BuildStatus>,
    /// Whether its outcome has been reported (Gerrit review, or stdout).
    pub reported: bool,
    /// Whether it was cancelled (superseded).
    pub cancelled: bool,
    /// The latest run of each job, by job name.
    pub jobs: BTreeMap<String, JobRun>,
    /// How deep in a `depends_on` chain it is (0: triggered by its own project).
    pub depth: u32,
    /// The recorded result and the ledger commit that holds it (for reports).
    pub recorded: Option<(crate::model::record::BuildResult, CommitId)>,
    /// For a gate build: the commit it landed as, once landed.
    pub landed: Option<CommitId>,
}

/// What the ledger knows about a digest a promotion asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestFacts {
    /// Its build's trust, from attestations whose signatures were checked against the
    /// builder keys (never from what a record says of itself).
    pub provenance: Provenance,
    /// The images its verified attestations name: it is promoted only as one of these.
    pub images: BTreeSet<ImageName>,
    /// Why no attestation of it verified, when none did.
    pub problem: Option<String>,
    /// When it first entered each environment, as which image.
    pub entered: BTreeMap<(EnvironmentName, ImageName), Timestamp>,
}

/// Everything observed, at one moment.
#[derive(Debug, Clone)]
pub struct World {
    /// The moment.
    pub now: Timestamp,
    /// The config repo.
    pub config: ConfigState,
    /// The config repo's Gerrit project, whose changes are checked with `config check`.
    pub config_project: Option<ProjectName>,
    /// Open changes' newest patchsets.
    pub changes: BTreeMap<(ProjectName, ChangeNumber), Patchset>,
    /// Branch tips that moved since seakeeper first saw the project, not yet built.
    pub moved: BTreeMap<(ProjectName, RefName), CommitId>,
    /// Every known branch tip.
    pub tips: BTreeMap<(ProjectName, RefName), CommitId>,
    /// The jobs each commit's pipeline file asks for (read by the observer); an error when the
    /// file is invalid.
    pub pipelines: BTreeMap<(ProjectName, CommitId), Result<Arc<ResolvedPipelines>, String>>,
    /// Builds in flight or recently finished.
    pub builds: BTreeMap<BuildId, BuildState>,
    /// Ids of builds the ledger already holds that are done with (so they are not requested
    /// again).
    pub done: BTreeSet<BuildId>,
    /// The digest each image runs in each environment, per the ledger, and since when.
    pub deployed: BTreeMap<(EnvironmentName, ImageName), (Digest, Timestamp)>,
    /// Facts about digests that promotions ask for.
    pub digests: BTreeMap<Digest, DigestFacts>,
    /// Refusals already in the ledger: (environment, image, digest, config commit).
    pub refused: BTreeSet<(EnvironmentName, ImageName, Digest, CommitId)>,
    /// Each freeze's last recorded transition.
    pub freezes: BTreeMap<FreezeName, Freeze>,
    /// The config commit (and its author) that last changed each freeze file, when known:
    /// the commit that made a transition, which may be older than HEAD.
    pub freeze_origins: BTreeMap<FreezeName, (CommitId, String)>,
    /// Whether the executor has room for more jobs now (jobs beyond are queued by the planner).
    pub capacity: usize,
    /// Whether the observer looks up the change that merged each moved tip (Gerrit's REST
    /// API is configured): then a post-merge build waits for the answer, so that its request
    /// names the change ([`crate::model::record::BuildCause::Merge`]).
    pub merges_looked_up: bool,
    /// The change (and patchset) whose submission made each moved tip, as looked up; `None`
    /// when none did (a direct push) or Gerrit could not say.
    pub merged_by: BTreeMap<(ProjectName, CommitId), Option<(ChangeNumber, PatchsetNumber)>>,
    /// Speculative merges made: (project, state, change commit) -> the state after.
    pub merges: BTreeMap<(ProjectName, CommitId, CommitId), MergeOutcome>,
    /// Gate notes told (or to be told) that Gerrit's comments may not show yet, by change.
    pub gate_notes: BTreeMap<(ProjectName, ChangeNumber), BTreeSet<GateNote>>,
    /// Gate builds done with, with their change and outcome: a failed one means its change
    /// failed in exactly that state; a cancelled or unlanded one is run again if that state
    /// is wanted again.
    pub gate_done: BTreeMap<BuildId, (ProjectName, ChangeNumber, BuildStatus)>,
    /// Each gate queue's window, where it moved from the configured start.
    pub windows: BTreeMap<String, u32>,
    /// Commits the gate landed: the gate build, and the images it built from that commit
    /// (post-merge does not build them again).
    pub gate_landed: BTreeMap<(ProjectName, CommitId), (BuildId, BTreeSet<String>)>,
}

impl World {
    /// A World that has seen nothing yet but the config: no changes, builds or promotions.
    pub fn new(now: Timestamp, config: ConfigState) -> World {
        World {
            now,
            config,
            config_project: None,
            changes: BTreeMap::new(),
            moved: BTreeMap::new(),
            tips: BTreeMap::new(),
            pipelines: BTreeMap::new(),
            builds: BTreeMap::new(),
            done: BTreeSet::new(),
            deployed: BTreeMap::new(),
            digests: BTreeMap::new(),
            refused: BTreeSet::new(),
            freezes: BTreeMap::new(),
            freeze_origins: BTreeMap::new(),
            capacity: 0,
            merges_looked_up: false,
            merged_by: BTreeMap::new(),
            merges: BTreeMap::new(),
            gate_notes: BTreeMap::new(),
            gate_done: BTreeMap::new(),
            windows: BTreeMap::new(),
            gate_landed: BTreeMap::new(),
        }
    }
}

/// Something observed or done that the World learns. See the module's documentation.
#[derive(Debug, Clone)]
pub enum Fact {
    /// The moment the next plan looks at, and how many more jobs the executor has room for.
    Tick {
        /// The moment.
        now: Timestamp,
        /// Room for more jobs.
        capacity: usize,
    },
    /// The config branch's HEAD was read.
    ConfigHead {
        /// Its commit.
        head: CommitId,
        /// Who made it (`None`: unknown, the last author stays).
        author: Option<String>,
        /// Its errors, one line each (none when it is valid).
        errors: Vec<String>,
        /// Whether the errors are to be reported on the change that merged HEAD (not when
        /// HEAD could not even be read).
        report: bool,
    },
    /// The change that made the config invalid at this HEAD was told (or nobody is to be).
    InvalidConfigReported(CommitId),
    /// The Layout in use now comes from this commit: pipeline files resolved against another
    /// one are read again.
    LayoutInUse(CommitId),
    /// The config commit (and its author) that last changed each freeze file.
    FreezeOrigins(BTreeMap<FreezeName, (CommitId, String)>),
    /// A full listing of a project's branches: the truth about its tips (a restarted daemon
    /// learns them here, without any event).
    BranchesListed {
        /// The project.
        project: ProjectName,
        /// Every `refs/heads/*` and its commit.
        tips: Vec<(RefName, CommitId)>,
    },
    /// A ref changed, as the ref watcher saw it.
    RefChanged {
        /// What changed.
        event: RefEvent,
        /// The project's first look (a baseline: nothing in it is new).
        first_sight: bool,
    },
    /// A change's details, read after its meta ref moved.
    ChangeRead {
        /// The project whose meta ref moved.
        project: ProjectName,
        /// The change whose meta ref moved.
        change: ChangeNumber,
        /// The change as Gerrit's REST API gave it.
        details: Box<Change>,
        /// seakeeper's own Gerrit account (its comments are never rechecks).
        our_user: Option<String>,
    },
    /// The pipeline files this pass needs, fetched and checked (replacing the last set); an
    /// error for a file that is invalid or a source that could not be fetched.
    PipelinesRead(BTreeMap<(ProjectName, CommitId), Result<Arc<ResolvedPipelines>, String>>),
    /// Whether the change that merged each moved tip is looked up (Gerrit's REST API is
    /// configured), and for which tips (other answers are forgotten).
    MergeLookups {
        /// Looked up at all.
        enabled: bool,
        /// The moved tips.
        wanted: BTreeSet<(ProjectName, CommitId)>,
    },
    /// The change whose submission made a moved tip (`None`: none did, or Gerrit could not say).
    MergedBy {
        /// The project.
        project: ProjectName,
        /// The tip.
        commit: CommitId,
        /// The change and patchset.
        by: Option<(ChangeNumber, PatchsetNumber)>,
    },
    /// The trusted keys changed (another config): every digest's facts are checked again.
    KeysChanged,
    /// An environment's pointer, as the ledger holds it.
    Deployed {
        /// The environment.
        environment: EnvironmentName,
        /// The image.
        image: ImageName,
        /// The digest it runs.
        digest: Digest,
        /// Since when.
        since: Timestamp,
    },
    /// What the ledger proves about a digest a promotion asks for.
    DigestChecked {
        /// The digest.
        digest: Digest,
        /// The facts.
        facts: DigestFacts,
    },
    /// A freeze's last transition, as the ledger holds it (read, or recorded now).
    FreezeRecorded(Freeze),
    /// A job's latest run, as the executor reports it (or as its start was refused).
    JobObserved {
        /// The build.
        build: BuildId,
        /// The job's name.
        job: String,
        /// The run.
        run: JobRun,
    },
    /// A build requested (now, or before: read back from the ledger) and not done with.
    BuildInFlight(Box<BuildState>),
    /// A build the ledger holds and that is done with (reported, or superseded): it leaves
    /// the builds in flight and is never requested again.
    BuildDone(BuildId),
    /// A build's result, recorded in the ledger by `commit`.
    ResultRecorded {
        /// The result.
        result: BuildResult,
        /// The ledger commit that holds it.
        commit: CommitId,
    },
    /// Images a build published, once their records are durable.
    ImagesPublished {
        /// Digests this server attested with its own builder key, as which image.
        trusted: Vec<(Digest, ImageName)>,
        /// Digests that entered the first environment, as which image, and when.
        entered: Vec<((EnvironmentName, ImageName), Digest, Timestamp)>,
    },
    /// A promotion recorded: the digest runs in the environment now.
    Promoted {
        /// The environment.
        environment: EnvironmentName,
        /// The image.
        image: ImageName,
        /// The digest.
        digest: Digest,
        /// When.
        at: Timestamp,
    },
    /// A speculative merge was made (or found impossible).
    Merged {
        /// The project.
        project: ProjectName,
        /// The state merged onto.
        onto: CommitId,
        /// The change's commit.
        commit: CommitId,
        /// What it gave.
        outcome: MergeOutcome,
    },
    /// seakeeper told a change what the gate did with it (or will, once Gerrit answers).
    GateNoted {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The note.
        note: GateNote,
    },
    /// A gate build the ledger holds and that is done with, with its outcome (read back
    /// after a restart; builds done with now are learnt from [`Fact::BuildDone`]).
    GateDone {
        /// The build.
        build: BuildId,
        /// Its project.
        project: ProjectName,
        /// Its change.
        change: ChangeNumber,
        /// Its outcome.
        status: BuildStatus,
    },
    /// A gate queue's window moved.
    GateWindow {
        /// The queue.
        queue: String,
        /// The window now.
        window: u32,
    },
    /// A gate build's tested commit landed.
    Landed {
        /// The gate build.
        build: BuildId,
        /// The project.
        project: ProjectName,
        /// The branch.
        branch: RefName,
        /// The commit (the tested one).
        commit: CommitId,
        /// The branch's tip now (the landed commit, unless the branch moved on since).
        tip: CommitId,
    },
    /// A refused promotion recorded (or found recorded) under a config commit.
    RefusalRecorded {
        /// The environment.
        environment: EnvironmentName,
        /// The image.
        image: ImageName,
        /// The digest.
        digest: Digest,
        /// The config commit that refused it.
        config_commit: CommitId,
    },
}

impl World {
    /// The same World, for a deployment whose config repo is the Gerrit project `p`.
    pub fn with_config_project(mut self, p: Option<ProjectName>) -> World {
        self.config_project = p;
        self
    }

    /// Learns one fact. The only code that changes a World.
    pub fn absorb(&mut self, fact: Fact) {
        match fact {
            Fact::Tick { now, capacity } => {
                self.now = now;
                self.capacity = capacity;
            }
            Fact::ConfigHead {
                head,
                author,
                errors,
                report,
            } => {
                if let Some(a) = author {
                    self.config.author = a;
                }
                if report && !errors.is_empty() {
                    self.config.unreported = Some((head.clone(), errors.clone()));
                }
                self.config.head = head;
                self.config.errors = errors;
            }
            Fact::InvalidConfigReported(head) => {
                if self
                    .config
                    .unreported
                    .as_ref()
                    .is_some_and(|(h, _)| *h == head)
                {
                    self.config.unreported = None;
                }
            }
            Fact::LayoutInUse(commit) => {
                if self.config.layout_commit != commit {
                    // Pipelines resolve against the layout: resolve them again.
                    self.pipelines.clear();
                }
                self.config.layout_commit = commit;
            }
            Fact::FreezeOrigins(origins) => self.freeze_origins = origins,
            Fact::BranchesListed { project, tips } => {
                self.tips.retain(|(p, _), _| *p != project);
                for (r, c) in tips {
                    self.tips.insert((project.clone(), r), c);
                }
            }
            Fact::RefChanged { event, first_sight } => self.ref_changed(event, first_sight),
            Fact::ChangeRead {
                project,
                change,
                details,
                our_user,
            } => self.change_read((project, change), &details, our_user.as_deref()),
            Fact::PipelinesRead(pipelines) => self.pipelines = pipelines,
            Fact::MergeLookups { enabled, wanted } => {
                self.merges_looked_up = enabled;
                self.merged_by.retain(|k, _| wanted.contains(k));
            }
            Fact::MergedBy {
                project,
                commit,
                by,
            } => {
                self.merged_by.insert((project, commit), by);
            }
            Fact::KeysChanged => self.digests.clear(),
            Fact::Deployed {
                environment,
                image,
                digest,
                since,
            } => {
                self.deployed.insert((environment, image), (digest, since));
            }
            Fact::DigestChecked { digest, facts } => {
                self.digests.insert(digest, facts);
            }
            Fact::FreezeRecorded(f) => {
                self.freezes.insert(f.name.clone(), f);
            }
            Fact::JobObserved { build, job, run } => {
                if let Some(b) = self.builds.get_mut(&build) {
                    b.jobs.insert(job, run);
                }
            }
            Fact::BuildInFlight(state) => {
                self.remember_merges(&state.request);
                self.builds.insert(state.request.build_id.clone(), *state);
            }
            Fact::BuildDone(id) => {
                if let Some(b) = self.builds.remove(&id)
                    && b.request.pipeline == PipelineKind::Gate
                    && let Some(change) = b.request.change
                {
                    // Done with and no result: it was cancelled (its state is tested again
                    // if it is wanted again).
                    let status = b.result.unwrap_or(BuildStatus::Cancelled);
                    let status = if b.landed.is_some() {
                        BuildStatus::Success
                    } else if status == BuildStatus::Success {
                        // Passed but never landed: its state is tested again if wanted again.
                        BuildStatus::Cancelled
                    } else {
                        status
                    };
                    self.gate_done
                        .insert(id.clone(), (b.request.project, change, status));
                }
                self.done.insert(id);
            }
            Fact::ResultRecorded { result, commit } => {
                if let Some(b) = self.builds.get_mut(&result.build_id) {
                    b.result = Some(result.status);
                    b.recorded = Some((result, commit));
                }
            }
            Fact::ImagesPublished { trusted, entered } => {
                for (d, image) in trusted {
                    let f = self.digests.entry(d).or_insert(DigestFacts {
                        provenance: Provenance::Trusted,
                        images: BTreeSet::new(),
                        problem: None,
                        entered: BTreeMap::new(),
                    });
                    f.provenance = Provenance::Trusted;
                    f.problem = None;
                    f.images.insert(image);
                }
                for (slot, digest, at) in entered {
                    self.entered(slot, digest, at);
                }
            }
            Fact::Promoted {
                environment,
                image,
                digest,
                at,
            } => self.entered((environment, image), digest, at),
            Fact::Merged {
                project,
                onto,
                commit,
                outcome,
            } => {
                self.merges.insert((project, onto, commit), outcome);
            }
            Fact::GateNoted {
                project,
                change,
                note,
            } => {
                self.gate_notes
                    .entry((project, change))
                    .or_default()
                    .insert(note);
            }
            Fact::GateDone {
                build,
                project,
                change,
                status,
            } => {
                self.gate_done.insert(build, (project, change, status));
            }
            Fact::GateWindow { queue, window } => {
                self.windows.insert(queue, window);
            }
            Fact::Landed {
                build,
                project,
                branch,
                commit,
                tip,
            } => {
                if let Some(b) = self.builds.get(&build) {
                    let images = super::gate_images(self, &b.request);
                    self.gate_landed
                        .insert((project.clone(), commit.clone()), (build.clone(), images));
                }
                if tip == commit {
                    // The branch moved: post-merge builds it now, naming the change that
                    // merged it, without waiting for the ref watcher to see the move.
                    let slot = (project.clone(), branch.clone());
                    self.moved.insert(slot.clone(), commit.clone());
                    if let Some(b) = self.builds.get(&build) {
                        let by = b.request.change.zip(b.request.patchset);
                        self.merged_by.insert((project.clone(), commit.clone()), by);
                    }
                }
                self.tips.insert((project, branch), tip);
                if let Some(b) = self.builds.get_mut(&build) {
                    b.landed = Some(commit);
                }
            }
            Fact::RefusalRecorded {
                environment,
                image,
                digest,
                config_commit,
            } => {
                self.refused
                    .insert((environment, image, digest, config_commit));
            }
        }
    }

    /// The speculative merges a gate build's request says its state was made of (after a
    /// restart, the same states are known again without merging).
    fn remember_merges(&mut self, r: &BuildRequest) {
        let (base, change_commit, ahead) = match &r.cause {
            Some(crate::model::record::BuildCause::Gate {
                base,
                change_commit,
                ahead,
                ..
            })
            | Some(crate::model::record::BuildCause::DependsOn {
                base,
                change_commit,
                ahead,
                ..
            }) => (base, change_commit, ahead),
            _ => return,
        };
        if base == change_commit && ahead.is_empty() {
            // Checked as it is (only other projects' states were merged).
            return;
        }
        let mut onto = base.clone();
        for a in ahead {
            self.merges.insert(
                (r.project.clone(), onto.clone(), a.commit.clone()),
                MergeOutcome::Merged(a.state.clone()),
            );
            onto = a.state.clone();
        }
        self.merges.insert(
            (r.project.clone(), onto, change_commit.clone()),
            MergeOutcome::Merged(r.source_commit.clone()),
        );
    }

    /// A digest now runs in an environment, as an image.
    fn entered(&mut self, slot: (EnvironmentName, ImageName), digest: Digest, at: Timestamp) {
        if let Some(f) = self.digests.get_mut(&digest) {
            f.entered.entry(slot.clone()).or_insert(at);
        }
        self.deployed.insert(slot, (digest, at));
    }

    /// What a ref event means: a newer patchset, a moved (and so merged-into) branch, a change
    /// whose refs were deleted.
    fn ref_changed(&mut self, event: RefEvent, first_sight: bool) {
        match event {
            RefEvent::PatchsetCreated {
                project,
                change,
                patchset,
                git_ref,
                commit,
            } => {
                if first_sight {
                    return;
                }
                let slot = (project, change);
                if self
                    .changes
                    .get(&slot)
                    .is_none_or(|p| p.patchset < patchset)
                {
                    self.changes.insert(
                        slot,
                        Patchset {
                            patchset,
                            git_ref,
                            commit,
                            rechecks: 0,
                            review: None,
                        },
                    );
                }
            }
            // Read from Gerrit by the observer; the answer comes as [`Fact::ChangeRead`].
            RefEvent::ChangeMetaUpdated { .. } => {}
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
                let slot = (project.clone(), git_ref);
                self.tips.insert(slot.clone(), commit.clone());
                if !first_sight {
                    // A change whose commit is now on the branch has merged.
                    self.changes
                        .retain(|(p, _), ps| !(*p == project && ps.commit == commit));
                    self.moved.insert(slot, commit);
                }
            }
            RefEvent::BranchDeleted {
                project, git_ref, ..
            } => {
                let slot = (project, git_ref);
                self.tips.remove(&slot);
                self.moved.remove(&slot);
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
                    self.changes.remove(&(project, n));
                }
            }
            RefEvent::RefUpdated { .. } => {}
        }
    }

    /// What a change read from Gerrit means: closed, or its current patchset and how many
    /// times people asked for a recheck on it.
    fn change_read(
        &mut self,
        slot: (ProjectName, ChangeNumber),
        c: &Change,
        our_user: Option<&str>,
    ) {
        if c.status != ChangeStatus::New {
            self.changes.remove(&slot);
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
        if self.changes.get(&slot).is_some_and(|p| p.patchset > ps) {
            return;
        }
        let review = review_of(c, our_user);
        self.changes.insert(
            slot,
            Patchset {
                patchset: ps,
                git_ref,
                commit: rev,
                rechecks,
                review,
            },
        );
    }

    /// Forgets what no longer matters: moved tips whose build is done (or that have nothing
    /// to build), finished builds' ids that nothing can ask for again.
    pub fn prune(&mut self) {
        let keep: BTreeSet<(ProjectName, RefName)> = self
            .moved
            .iter()
            .filter(|((p, r), c)| {
                let id = super::post_merge_build_id(p, r, c, None);
                let nothing_to_build = super::post_merge_jobs(self, p, c)
                    .is_some_and(|j| j.is_ok_and(|j| j.is_empty()));
                !nothing_to_build && (!self.done.contains(&id) || self.builds.contains_key(&id))
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.moved.retain(|k, _| keep.contains(k));
        // What the gate landed is remembered while its branch is still there to build.
        let tips: BTreeSet<(&ProjectName, &CommitId)> =
            self.tips.iter().map(|((p, _), c)| (p, c)).collect();
        self.gate_landed.retain(|(p, c), _| tips.contains(&(p, c)));
        // Gate memory of changes no longer open is dropped.
        let open: BTreeSet<(&ProjectName, ChangeNumber)> =
            self.changes.keys().map(|(p, c)| (p, *c)).collect();
        let commits: BTreeSet<&CommitId> = self.changes.values().map(|p| &p.commit).collect();
        self.gate_notes.retain(|(p, c), _| open.contains(&(p, *c)));
        self.gate_done
            .retain(|_, (p, c, _)| open.contains(&(&*p, *c)));
        self.merges.retain(|(_, _, c), _| commits.contains(c));
        if self.done.len() > 100_000 {
            // Every id the World can still produce is recomputed; the rest is dropped.
            let mut keep = BTreeSet::new();
            for ((p, c), ps) in &self.changes {
                keep.insert(super::check_build_id(p, *c, ps));
            }
            self.done.retain(|id| keep.contains(id));
        }
    }

    /// How many jobs of builds in flight are still running.
    pub fn jobs_running(&self) -> usize {
        self.builds
            .values()
            .flat_map(|b| b.jobs.values())
            .filter(|r| r.state.as_ref().is_some_and(|s| !s.is_final()))
            .count()
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

#[cfg(test)]
#[path = "world_tests.rs"]
mod tests;
