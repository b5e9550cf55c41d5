//! Stages: when a job of a build may start. A job waits until every job it `needs` has
//! succeeded; when one of them ended otherwise (or was itself skipped), it is skipped: never
//! started, and recorded as `skipped`. Pure: decided from the build's job states and its
//! resolved jobs, the same way by the planner and by the result it records.

use std::collections::BTreeMap;

use super::{BuildState, MAX_JOB_ATTEMPTS};
use crate::config::pipeline::ResolvedJob;
use crate::model::JobState;

/// Whether a job of a build may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every job it needs succeeded (or it needs none).
    Ready,
    /// A job it needs has not ended yet.
    Waiting,
    /// A job it needs failed, timed out, was cancelled, was lost for good, or was skipped.
    Skipped,
}

/// The readiness of each job of the build that has not started, by name (`resolved`: the
/// build's jobs as its pipeline file declares them; a job it does not know needs nothing).
pub fn readiness(b: &BuildState, resolved: Option<&[ResolvedJob]>) -> BTreeMap<String, Readiness> {
    let needs = |name: &str| -> Vec<String> {
        resolved
            .and_then(|r| r.iter().find(|j| j.name == name))
            .map_or_else(Vec::new, |j| j.needs.clone())
    };
    let mut memo = BTreeMap::new();
    for name in &b.request.jobs {
        own(b, name, &needs, &mut memo, &mut Vec::new());
    }
    // Only jobs that have not started are asked about.
    memo.retain(|name, _| not_started(b, name));
    memo
}

fn not_started(b: &BuildState, name: &str) -> bool {
    b.jobs.get(name).and_then(|r| r.state.as_ref()).is_none()
}

/// A job's own readiness, from how each job it needs stands.
fn own(
    b: &BuildState,
    name: &str,
    needs: &dyn Fn(&str) -> Vec<String>,
    memo: &mut BTreeMap<String, Readiness>,
    visiting: &mut Vec<String>,
) -> Readiness {
    if let Some(r) = memo.get(name) {
        return *r;
    }
    // A cycle (refused by `config check`, so never seen here) never becomes ready.
    if visiting.iter().any(|v| v == name) {
        return Readiness::Waiting;
    }
    visiting.push(name.to_owned());
    let mut result = Readiness::Ready;
    for need in needs(name) {
        match standing(b, &need, needs, memo, visiting) {
            Readiness::Skipped => {
                result = Readiness::Skipped;
                break;
            }
            Readiness::Waiting => result = Readiness::Waiting,
            Readiness::Ready => {}
        }
    }
    visiting.pop();
    memo.insert(name.to_owned(), result);
    result
}

/// How a job stands as a need: `Ready` once it succeeded; `Skipped` once it ended otherwise,
/// or when it will be skipped itself; `Waiting` before.
fn standing(
    b: &BuildState,
    name: &str,
    needs: &dyn Fn(&str) -> Vec<String>,
    memo: &mut BTreeMap<String, Readiness>,
    visiting: &mut Vec<String>,
) -> Readiness {
    // A job the build does not list cannot succeed in it.
    if !b.request.jobs.iter().any(|j| j == name) {
        return Readiness::Skipped;
    }
    let run = b.jobs.get(name);
    match run.and_then(|r| r.state.as_ref()) {
        Some(JobState::Succeeded) => Readiness::Ready,
        // Run once more by the planner: not ended yet.
        Some(JobState::Lost { .. }) if run.is_some_and(|r| r.attempt < MAX_JOB_ATTEMPTS) => {
            Readiness::Waiting
        }
        Some(s) if s.is_final() => Readiness::Skipped,
        Some(_) => Readiness::Waiting,
        None => match own(b, name, needs, memo, visiting) {
            Readiness::Skipped => Readiness::Skipped,
            _ => Readiness::Waiting,
        },
    }
}
