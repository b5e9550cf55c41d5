//! A job as executors run it: everything needed, nothing more. The same spec runs in the local
//! sandbox and as a Kubernetes Job; `seakeeper job run` builds it exactly as CI does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BuildId, ChangeNumber, CommitId, PatchsetNumber, ProjectName, Trust};

/// One job of one build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The build it belongs to.
    pub build_id: BuildId,
    /// The job's name within the pipeline (`unit`, `lint` ...).
    pub job: String,
    /// The pipeline (`check`, `gate`, `post-merge`, `periodic`).
    pub pipeline: String,
    /// The Gerrit project.
    pub project: ProjectName,
    /// The change and patchset under test, for check and gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<(ChangeNumber, PatchsetNumber)>,
    /// Where the source comes from (a git URL, or a local repository path).
    pub source: String,
    /// Exactly the commit under test.
    pub commit: CommitId,
    /// The image the commands run in.
    pub image: String,
    /// Shell commands, run in order by `sh -e`.
    pub commands: Vec<String>,
    /// The only environment the job gets, besides `SEAKEEPER_*`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Hard time limit in seconds.
    pub timeout_seconds: u64,
    /// CPU request/limit (a Kubernetes quantity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory request/limit (a Kubernetes quantity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Service images by host name.
    #[serde(default)]
    pub services: BTreeMap<String, String>,
    /// Secrets by name (trusted jobs only).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Whether the job may use the network.
    #[serde(default)]
    pub network: bool,
    /// Output globs, relative to the workspace.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Trusted (reviewed code) or untrusted.
    pub trust: Trust,
    /// Other projects checked out in the workspace beside the job's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<RequiredSource>,
    /// Dependency caches, restored before the job and saved after it succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<CacheSpec>,
    /// The output files of the jobs it needs, placed under `.seakeeper/inputs/<job>/` in its
    /// workspace before its commands run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<JobInputs>,
}

/// A dependency cache: a directory of the workspace, keyed by the content of some of its files
/// (`composer.lock`, `package-lock.json` ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// The cached directory, relative to the workspace (`vendor`, `node_modules`).
    pub path: String,
    /// The files whose content keys it, relative to the workspace.
    pub key: Vec<String>,
}

/// The output files of one job a job needs (see [`JobInputs::path`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInputs {
    /// The job that left them (one of the same build).
    pub job: String,
    /// Its output files, by content.
    pub files: Vec<OutputFile>,
}

impl JobInputs {
    /// Where they are placed, relative to the workspace: `.seakeeper/inputs/<job>`, each file
    /// at its path in that job's workspace below it.
    pub fn path(&self) -> String {
        format!("{INPUTS_DIR}/{}", self.job)
    }
}

/// Where the inputs of a job are placed, relative to its workspace.
pub const INPUTS_DIR: &str = ".seakeeper/inputs";

/// Whether an image reference is pinned by digest: `name@sha256:<64 hex>` (a tag beside the
/// digest is ignored by registries, so `name:tag@sha256:...` is pinned too).
pub fn is_pinned_image(image: &str) -> bool {
    image.rsplit_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty()
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Whether a path an output file was recorded at may be written below an inputs directory:
/// relative, `/`-separated, with no empty, `.` or `..` segment.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// A project a job requires, checked out under [`RequiredSource::path`] in its workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequiredSource {
    /// The project.
    pub project: ProjectName,
    /// Where it comes from (a git URL, or a local repository path).
    pub source: String,
    /// The commit.
    pub commit: CommitId,
}

impl RequiredSource {
    /// Where it is checked out, relative to the workspace: `.seakeeper/required/<project>`.
    pub fn path(&self) -> String {
        format!(".seakeeper/required/{}", self.project)
    }

    /// The variable that names its checkout: `SEAKEEPER_REQUIRED_` and the project's name in
    /// capitals with every other character an underscore (`acme/app` ->
    /// `SEAKEEPER_REQUIRED_ACME_APP`).
    pub fn variable(&self) -> String {
        let name: String = self
            .project
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("SEAKEEPER_REQUIRED_{name}")
    }
}

/// What a Kubernetes Job's fetch container (`seakeeper job fetch`) places in the workspace
/// before the job's commands run: the job's commit, the projects it requires, the inputs from
/// the jobs it needs. Handed to it as JSON in `SEAKEEPER_FETCH`, so no shell and no variable
/// expansion stands between a name and its use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchPlan {
    /// Where the job's own commit comes from (a git URL).
    pub source: String,
    /// The commit.
    pub commit: CommitId,
    /// The projects it requires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<RequiredSource>,
    /// The output files of the jobs it needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<JobInputs>,
}

impl FetchPlan {
    /// The plan for `spec`.
    pub fn of(spec: &JobSpec) -> FetchPlan {
        FetchPlan {
            source: spec.source.clone(),
            commit: spec.commit.clone(),
            required: spec.required.clone(),
            inputs: spec.inputs.clone(),
        }
    }
}

impl JobSpec {
    /// The job's key: `<build id>/<job>`, unique per executor.
    pub fn key(&self) -> JobKey {
        JobKey {
            build_id: self.build_id.clone(),
            job: self.job.clone(),
        }
    }
}

/// Names one job of one build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobKey {
    /// The build.
    pub build_id: BuildId,
    /// The job.
    pub job: String,
}

impl std::fmt::Display for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.build_id, self.job)
    }
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum JobState {
    /// Accepted, waiting for a slot or being scheduled.
    Pending,
    /// Running.
    Running,
    /// Ended with exit status 0.
    Succeeded,
    /// Ended otherwise.
    Failed {
        /// The exit code, when there was one.
        exit_code: Option<i32>,
        /// Why, for people.
        reason: String,
    },
    /// Killed at its time limit.
    TimedOut,
    /// The process that ran it (its seakeeper, or its supervisor) stopped before it ended: it
    /// may have run partly, so it is run once more (see `MAX_JOB_ATTEMPTS`), never passed or
    /// failed on a guess.
    Lost {
        /// What happened, for people.
        reason: String,
    },
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Whether the job has ended.
    pub fn is_final(&self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

/// A file a job left behind, stored by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Its path in the workspace.
    pub path: String,
    /// `sha256:<hex>` of its content.
    pub digest: super::Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it is executable.
    pub executable: bool,
}

/// Whether `path` (relative, `/`-separated) matches an output glob: `*` matches within one path
/// segment, `**` any number of segments, `?` one character (see [`super::glob`]).
pub fn path_glob_matches(glob: &str, path: &str) -> bool {
    super::glob::matches(glob, path, super::glob::Mode::Paths)
}
