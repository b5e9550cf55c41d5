//! What the planner asks for: an [`Action`] names its build, job, promotion or freeze by
//! content, so planning the same World twice asks for the same thing, and [`Action::key`]
//! names it across passes (for backoff).

use serde::Serialize;

use crate::config::pipeline::ResolvedJob;
use crate::model::record::{BuildRequest, Freeze};
use crate::model::{BuildId, CommitId, Digest, EnvironmentName, FreezeName, ImageName};

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
    /// The config HEAD is invalid (merged despite its check): tell the change that merged it,
    /// once.
    ReportInvalidConfig {
        /// The invalid HEAD.
        head: CommitId,
    },
}

impl Action {
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
        }
    }
}
