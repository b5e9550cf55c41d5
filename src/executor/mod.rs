//! Running jobs: one [`Executor`] trait, two implementations that behave the same from the same
//! [`JobSpec`]: [`local`] (the embedded default: a sandbox on this machine) and [`kubernetes`]
//! (one `batch/v1` Job per job). Jobs are named by [`JobKey`] (build id and job name), so starting
//! a job twice never runs it twice, and a restarted daemon finds its jobs again with
//! [`Executor::list`].
//!
//! Executors do not fetch source themselves: the local executor is given a `prepare` function
//! (the caller checks the commit out from git objects), the Kubernetes executor's init container
//! fetches the commit inside the cluster.

pub mod caches;
pub mod kubernetes;
pub mod limits;
pub mod local;
pub mod netns;

/// Addresses a job never reaches, with or without the network: loopback, link-local (cloud
/// metadata), and the private ranges where the cluster's and the server's own services live
/// (the Kubernetes NetworkPolicy and the local executor's fenced namespace both refuse them).
pub const NEVER_REACHED: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "100.64.0.0/10",
];

use std::time::Duration;

use crate::model::{JobKey, JobSpec, JobState, OutputFile};

/// An executor failed to do what was asked (not: the job failed; that is a [`JobState`]).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// No such job.
    #[error("no job {0}")]
    Unknown(JobKey),
    /// The spec cannot run here.
    #[error("{key}: {message}")]
    Invalid {
        /// The job.
        key: JobKey,
        /// Why.
        message: String,
    },
    /// The executor's own machinery failed (files, processes, the Kubernetes API).
    #[error("{0}")]
    Backend(String),
}

/// A line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// RFC 3339 UTC with milliseconds, when the line was read.
    pub time: String,
    /// The line, without its newline.
    pub text: String,
}

/// Runs jobs.
pub trait Executor: Send + Sync {
    /// Starts a job, or does nothing if a job with the same key exists (running or ended).
    fn start(&self, spec: &JobSpec) -> Result<(), ExecError>;
    /// Where a job is; `None` if the executor has never seen it.
    fn state(&self, key: &JobKey) -> Result<Option<JobState>, ExecError>;
    /// Waits until the job ends (or `timeout` passes) and returns its state.
    fn wait(&self, key: &JobKey, timeout: Option<Duration>) -> Result<JobState, ExecError>;
    /// Calls `sink` with each log line; with `follow`, keeps going until the job ends.
    fn logs(
        &self,
        key: &JobKey,
        follow: bool,
        sink: &mut dyn FnMut(LogLine),
    ) -> Result<(), ExecError>;
    /// Stops a job (kills its processes); its state becomes `Cancelled`.
    fn cancel(&self, key: &JobKey) -> Result<(), ExecError>;
    /// Every job the executor knows, with its state (how a restarted daemon adopts jobs).
    fn list(&self) -> Result<Vec<(JobKey, JobState)>, ExecError>;
    /// The files the job left behind, stored by content.
    fn outputs(&self, key: &JobKey) -> Result<Vec<OutputFile>, ExecError>;
}

/// The variables every job gets (on top of its declared `env`).
pub fn seakeeper_env(spec: &JobSpec, workspace: &str) -> Vec<(String, String)> {
    let mut v = vec![
        ("CI".to_owned(), "true".to_owned()),
        ("SEAKEEPER".to_owned(), "true".to_owned()),
        ("SEAKEEPER_BUILD_ID".to_owned(), spec.build_id.to_string()),
        ("SEAKEEPER_JOB".to_owned(), spec.job.clone()),
        ("SEAKEEPER_PIPELINE".to_owned(), spec.pipeline.clone()),
        ("SEAKEEPER_PROJECT".to_owned(), spec.project.to_string()),
        ("SEAKEEPER_COMMIT".to_owned(), spec.commit.to_string()),
        ("SEAKEEPER_TRUST".to_owned(), spec.trust.as_str().to_owned()),
        ("SEAKEEPER_WORKSPACE".to_owned(), workspace.to_owned()),
    ];
    if let Some((c, p)) = spec.change {
        v.push(("SEAKEEPER_CHANGE".to_owned(), c.to_string()));
        v.push(("SEAKEEPER_PATCHSET".to_owned(), p.to_string()));
    }
    v
}

/// The shell script a job runs: each command echoed (`$ command`), then run; the first failing
/// command ends the job (`sh -e`).
pub fn script(spec: &JobSpec) -> String {
    let mut s = String::from("set -e\n");
    for c in &spec.commands {
        let quoted = c.replace('\'', "'\\''");
        s.push_str(&format!("printf '%s\\n' '$ {quoted}'\n{c}\n"));
    }
    s
}

/// Whether `path` matches an output glob (see [`crate::model::job::path_glob_matches`]).
pub fn output_glob_matches(glob: &str, path: &str) -> bool {
    crate::model::job::path_glob_matches(glob, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_globs() {
        assert!(output_glob_matches("dist/*.tar.gz", "dist/a.tar.gz"));
        assert!(!output_glob_matches("dist/*.tar.gz", "dist/x/a.tar.gz"));
        assert!(output_glob_matches("dist/**", "dist/x/a.tar.gz"));
        assert!(output_glob_matches("**/*.whl", "a/b/c.whl"));
        assert!(output_glob_matches("**/*.whl", "c.whl"));
        assert!(output_glob_matches("report.?ml", "report.xml"));
        assert!(!output_glob_matches("report.xml", "other.xml"));
    }
}
