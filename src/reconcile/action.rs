//! What the planner asks for: an [`Action`] names its build, job, promotion or freeze by
//! content, so planning the same World twice asks for the same thing, and [`Action::key`]
//! names it across passes (for backoff).

use serde::Serialize;

use super::world::GateNote;
use crate::config::pipeline::ResolvedJob;
use crate::model::record::{BuildRequest, Freeze};
use crate::model::{
    BuildId, ChangeNumber, CommitId, Digest, EnvironmentName, FreezeName, ImageName, ProjectName,
};

/// Something to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Record a build request in the ledger (write-ahead), then start its jobs.
    RequestBuild {
        /// The request.
        request: BuildRequest,
        /// How deep in a dependency chain.
        depth: u32,
    },
    /// Start (or restart, after the executor lost it) one job of a requested build.
    StartJob {
        /// The build.
        build_id: BuildId,
        /// The job.
        job: ResolvedJob,
        /// Which run.
        attempt: u32,
    },
    /// Check a config repo change in-process (`config check`), as a build's only job.
    CheckConfig {
        /// The build.
        build_id: BuildId,
    },
    /// A newer patchset supersedes this build: cancel its jobs and record it cancelled.
    Cancel {
        /// The build.
        build_id: BuildId,
        /// Why.
        reason: String,
    },
    /// Every job has ended: collect outputs, assemble and attest images, record the result.
    RecordResult {
        /// The build.
        build_id: BuildId,
    },
    /// Tell people: a Gerrit review for a change, a line on stdout otherwise.
    Report {
        /// The build.
        build_id: BuildId,
    },
    /// Copy a digest into an environment's registry and record the promotion.
    Promote {
        /// The environment.
        environment: EnvironmentName,
        /// The image.
        image: ImageName,
        /// The digest.
        digest: Digest,
        /// The environment it comes from (none for the first).
        from: Option<EnvironmentName>,
    },
    /// A promotion that must wait (shown in status; nothing to carry out).
    Hold {
        /// The environment.
        environment: EnvironmentName,
        /// The image.
        image: ImageName,
        /// The digest.
        digest: Digest,
        /// Why, in the words of the freeze or policy.
        reason: String,
        /// The freeze holding it.
        freeze: Option<FreezeName>,
    },
    /// A promotion the policy refuses (shown in status; nothing to carry out).
    Refuse {
        /// The environment.
        environment: EnvironmentName,
        /// The image.
        image: ImageName,
        /// The digest.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// A freeze started or ended at the config HEAD: record the transition.
    RecordFreeze {
        /// The record.
        freeze: Freeze,
    },
    /// Merge a change's commit onto a speculative state of its project (the branch tip with
    /// the items ahead of it merged), deterministically, and publish the result under
    /// `refs/seakeeper/speculative/`.
    Merge {
        /// The project.
        project: ProjectName,
        /// The state.
        onto: CommitId,
        /// The change's commit.
        commit: CommitId,
        /// How reports name the change (`change 4711,3`).
        label: String,
    },
    /// Land a gate build's tested commit on its branch (push by compare-and-swap, or submit),
    /// then record the landing. A build whose commit is the tip already is only recorded.
    Land {
        /// The gate build.
        build_id: BuildId,
    },
    /// A landing the head of a queue may not make now (a merge freeze): shown in status.
    HoldLanding {
        /// The gate build.
        build_id: BuildId,
        /// Why, in the freeze's words.
        reason: String,
        /// The freeze.
        freeze: FreezeName,
    },
    /// A gate build no longer wanted that has its result (its state changed under it): done
    /// with, without a report. A successful one whose commit did land is recorded as landed.
    Retire {
        /// The gate build.
        build_id: BuildId,
    },
    /// Tell a change what the gate did with it (entered at a position, refused, held): one
    /// comment per entry and event, carrying its `Gate:` line.
    TellGate {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The patchset's commit (the review is posted on it).
        commit: CommitId,
        /// The note.
        note: GateNote,
        /// The comment.
        text: String,
    },
    /// The config HEAD is invalid (merged despite its check): tell the change that merged it,
    /// once.
    ReportInvalidConfig {
        /// The invalid HEAD.
        head: CommitId,
    },
}

impl Action {
    /// The variant's short name, for metrics and logs (`request-build`, `land`, ...): the
    /// first word of [`Action::key`].
    pub fn kind(&self) -> &'static str {
        match self {
            Action::RequestBuild { .. } => "request-build",
            Action::StartJob { .. } => "start-job",
            Action::CheckConfig { .. } => "check-config",
            Action::Cancel { .. } => "cancel",
            Action::RecordResult { .. } => "record-result",
            Action::Report { .. } => "report",
            Action::Promote { .. } => "promote",
            Action::Hold { .. } => "hold",
            Action::Refuse { .. } => "refuse",
            Action::RecordFreeze { .. } => "record-freeze",
            Action::ReportInvalidConfig { .. } => "report-invalid-config",
            Action::Merge { .. } => "merge",
            Action::Land { .. } => "land",
            Action::HoldLanding { .. } => "hold-landing",
            Action::Retire { .. } => "retire",
            Action::TellGate { .. } => "tell-gate",
        }
    }

    /// The build the action is for, if it is for one.
    pub fn build_id(&self) -> Option<&crate::model::BuildId> {
        match self {
            Action::RequestBuild { request, .. } => Some(&request.build_id),
            Action::StartJob { build_id, .. }
            | Action::CheckConfig { build_id }
            | Action::Cancel { build_id, .. }
            | Action::RecordResult { build_id }
            | Action::Report { build_id }
            | Action::Land { build_id }
            | Action::HoldLanding { build_id, .. }
            | Action::Retire { build_id } => Some(build_id),
            Action::Promote { .. }
            | Action::Hold { .. }
            | Action::Refuse { .. }
            | Action::RecordFreeze { .. }
            | Action::ReportInvalidConfig { .. }
            | Action::Merge { .. }
            | Action::TellGate { .. } => None,
        }
    }

    /// What the action is about, stable across passes (for backoff and reports): its kind and
    /// the build, job, promotion or freeze it is for.
    pub fn key(&self) -> String {
        match self {
            Action::RequestBuild { request, .. } => format!("request-build {}", request.build_id),
            Action::StartJob {
                build_id,
                job,
                attempt,
            } => format!("start-job {build_id}/{}~{attempt}", job.name),
            Action::CheckConfig { build_id } => format!("check-config {build_id}"),
            Action::Cancel { build_id, .. } => format!("cancel {build_id}"),
            Action::RecordResult { build_id } => format!("record-result {build_id}"),
            Action::Report { build_id } => format!("report {build_id}"),
            Action::Promote {
                environment,
                image,
                digest,
                ..
            } => format!("promote {environment} {image}@{digest}"),
            Action::Hold {
                environment,
                image,
                digest,
                ..
            } => format!("hold {environment} {image}@{digest}"),
            Action::Refuse {
                environment,
                image,
                digest,
                ..
            } => format!("refuse {environment} {image}@{digest}"),
            Action::RecordFreeze { freeze } => {
                format!("record-freeze {} {}", freeze.name, freeze.config_commit)
            }
            Action::ReportInvalidConfig { head } => format!("report-invalid-config {head}"),
            Action::Merge {
                project,
                onto,
                commit,
                ..
            } => format!("merge {project} {commit} onto {onto}"),
            Action::Land { build_id } => format!("land {build_id}"),
            Action::HoldLanding { build_id, .. } => format!("hold-landing {build_id}"),
            Action::Retire { build_id } => format!("retire {build_id}"),
            Action::TellGate {
                project,
                change,
                note,
                ..
            } => format!("tell-gate {project} {change} {}", note.line()),
        }
    }
}
