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
///
/// The name is checked as the OCI distribution grammar has it: an optional registry host
/// (`[A-Za-z0-9-.]` components, an optional port) and `/`-separated lowercase path components
/// (`[a-z0-9]` runs joined by `.`, `_`, `__` or dashes), then an optional tag (`\w[\w.-]{0,127}`).
pub fn is_pinned_image(image: &str) -> bool {
    let Some((name, hex)) = image.rsplit_once("@sha256:") else {
        return false;
    };
    let digest_ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    digest_ok && is_image_name(name)
}

/// `name[:tag]` as [`is_pinned_image`] describes it.
fn is_image_name(name: &str) -> bool {
    // The tag: after the last `:` that follows the last `/`.
    let (name, tag) = match name.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (name, None),
    };
    if let Some(t) = tag {
        let mut b = t.bytes();
        let first_ok = b
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !first_ok
            || t.len() > 128
            || !t
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            return false;
        }
    }
    if name.is_empty() || name.len() > 255 {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first component with a `.` or `:`, or `localhost`, is the registry host.
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let host_ok = !h.is_empty()
            && h.split('.').all(|c| {
                !c.is_empty()
                    && !c.starts_with('-')
                    && !c.ends_with('-')
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        let port_ok = port
            .is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return false;
        }
    }
    !parts.is_empty()
        && parts.iter().all(|p| {
            let b = p.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
                && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c))
                && !p.contains("..")
                && !p.contains("___")
                && !p.contains("._")
                && !p.contains("_.")
        })
}

#[cfg(test)]
mod image_ref_tests {
    use super::is_pinned_image;

    #[test]
    fn only_a_well_formed_name_pinned_by_a_lowercase_digest_is_pinned() {
        let d = "0123456789abcdef".repeat(4);
        for ok in [
            format!("registry.example.org/seakeeper/seakeeper@sha256:{d}"),
            format!("127.0.0.1:5000/ci/php@sha256:{d}"),
            format!("localhost/a@sha256:{d}"),
            format!("api@sha256:{d}"),
            format!("docker.io/library/debian:bookworm@sha256:{d}"),
            format!("r.example.org/a_b/c-d/e.f@sha256:{d}"),
        ] {
            assert!(is_pinned_image(&ok), "{ok}");
        }
        for bad in [
            "registry.example.org/seakeeper/seakeeper:latest".to_owned(),
            format!("@sha256:{d}"),
            format!("a b@sha256:{d}"),
            format!("x@y@sha256:{d}"),
            format!(":tag@sha256:{d}"),
            format!("--privileged@sha256:{d}"),
            format!("docker://reg/sk@sha256:{d}"),
            format!("reg/sk\n@sha256:{d}"),
            format!("Registry/UPPER@sha256:{d}"),
            format!("r.example.org/a@sha256:{}", d.to_uppercase()),
            format!(" r.example.org/a@sha256:{d}"),
            format!("r.example.org/a@sha256:{d}0"),
            format!("r.example.org:port/a@sha256:{d}"),
        ] {
            assert!(!is_pinned_image(&bad), "{bad:?}");
        }
    }
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
    /// The plan for `spec`. Required projects come in the order of their paths, so one
    /// whose path is inside another's (`a` and `a/b`) is placed after it.
    pub fn of(spec: &JobSpec) -> FetchPlan {
        let mut required = spec.required.clone();
        required.sort_by_key(|r| r.path());
        FetchPlan {
            source: spec.source.clone(),
            commit: spec.commit.clone(),
            required,
            inputs: spec.inputs.clone(),
        }
    }

    /// Checks what a plan names before anything is fetched: job names (one plain path
    /// segment), input paths (plain relative paths), no job or project twice.
    pub fn validate(&self) -> Result<(), String> {
        let mut projects = std::collections::BTreeSet::new();
        for r in &self.required {
            if !projects.insert(r.project.as_str()) {
                return Err(format!("required project {} is listed twice", r.project));
            }
        }
        let mut jobs = std::collections::BTreeSet::new();
        for input in &self.inputs {
            let name_ok = is_safe_relative_path(&input.job)
                && !input.job.contains('/')
                && !input.job.starts_with(['-', '.'])
                && input
                    .job
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(format!("inputs of {:?}: not a job name", input.job));
            }
            if !jobs.insert(input.job.as_str()) {
                return Err(format!("inputs of {} are listed twice", input.job));
            }
            for f in &input.files {
                if !is_safe_relative_path(&f.path) {
                    return Err(format!(
                        "input {:?} of {}: not a plain relative path",
                        f.path, input.job
                    ));
                }
            }
        }
        Ok(())
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
