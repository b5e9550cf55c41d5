//! Telling people: the text of a build's report, posted as a Gerrit review on its change (off
//! the pass, once: the review carries the build id), or printed; and an invalid config HEAD
//! reported on the change that merged it.

use super::build::pipeline_error;
use super::{Applied, Error, Services, crash_point, final_refusal, finish};
use crate::gerrit::{Rest, ReviewInput};
use crate::model::{BuildId, BuildStatus, CommitId, Digest, JobState};
use crate::reconcile::{self, BuildState, Fact, World};
use crate::store::BlobStore;

/// Reviews being posted to Gerrit off the reconcile pass, by build: a Gerrit that does not
/// answer holds up nothing else. The outcome: posted (or found posted before), or refused for
/// good (with why), or failed for now.
pub type Reviews = super::tasks::Tasks<BuildId, Result<Posted, Error>>;

/// See [`Reviews`].
#[derive(Debug, Clone)]
pub enum Posted {
    /// Posted now, or found posted before.
    Yes,
    /// Gerrit refused it for good (the change is gone, ...).
    Refused(String),
}

/// A stored log's text (for reports).
fn read_log(store: &BlobStore, digest: &Digest) -> Option<String> {
    store
        .read(digest)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn seconds(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Lines of a failing job's log shown in its report.
pub const FAILURE_TAIL: usize = 30;

/// The text of a build's report: a headline, a line per job (with its log's digest), for each
/// failed job its exit code, the last lines of its log (secrets masked) and the command that
/// runs it locally, the ledger commit and the build id. With `pages` (the `public_url` this
/// server serves pages under) the build, each log and the ledger commit are links; without,
/// no link is printed, because a link that leads nowhere is worse than none.
pub fn report_text(
    store: &BlobStore,
    b: &BuildState,
    pipeline_error: Option<&str>,
    mask: &[String],
    pages: Option<&str>,
) -> String {
    let pages = pages.map(|u| u.trim_end_matches('/'));
    let r = &b.request;
    let status = b.result.map_or("UNKNOWN", |s| s.as_str());
    let mut t = format!(
        "seakeeper {}: {} (build {})\n\n",
        r.pipeline,
        status.to_uppercase(),
        r.build_id
    );
    if let Some(e) = pipeline_error {
        t.push_str(".pipeline/config.yaml is invalid:\n");
        for line in e.lines().take(20) {
            t.push_str(&format!("  {line}\n"));
        }
        t.push('\n');
    }
    let exit_code = |name: &str| match b.jobs.get(name).and_then(|j| j.state.as_ref()) {
        Some(JobState::Failed { exit_code, reason }) => Some((*exit_code, reason.clone())),
        Some(JobState::Lost { reason }) => Some((None, format!("lost: {reason}"))),
        _ => None,
    };
    let mut failures = String::new();
    if let Some((result, _)) = &b.recorded {
        for j in &result.jobs {
            let log = j
                .log_digest
                .as_ref()
                .map(|d| match pages {
                    Some(u) => format!(", log {u}/logs/{d}"),
                    None => format!(", log {d}"),
                })
                .unwrap_or_default();
            if j.status == BuildStatus::Skipped {
                t.push_str(&format!(
                    "- {}: SKIPPED (needs {}, which did not succeed)\n",
                    j.name,
                    j.needs.join(", ")
                ));
                continue;
            }
            let how = match exit_code(&j.name) {
                Some((Some(c), _)) => format!(" (exit code {c})"),
                Some((None, reason)) => format!(" ({reason})"),
                None => String::new(),
            };
            t.push_str(&format!(
                "- {}: {} in {}{how}{log}\n",
                j.name,
                j.status.as_str().to_uppercase(),
                seconds(j.duration_ms)
            ));
            if j.name == reconcile::CONFIG_CHECK_JOB
                && j.status != BuildStatus::Success
                && let Some(text) = j.log_digest.as_ref().and_then(|d| read_log(store, d))
            {
                for line in text.lines().skip(1).take(20) {
                    t.push_str(&format!("    {line}\n"));
                }
                continue;
            }
            if matches!(j.status, BuildStatus::Failure | BuildStatus::Error)
                && let Some(text) = j.log_digest.as_ref().and_then(|d| read_log(store, d))
            {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(FAILURE_TAIL)..];
                failures.push_str(&format!(
                    "\n{} failed{how}; the last {} lines of its log:\n",
                    j.name,
                    tail.len()
                ));
                for line in tail {
                    // The log's own timestamps are dropped: the text is what people read.
                    let text = line.split_once(' ').map_or(*line, |(_, rest)| rest);
                    failures.push_str(&format!("    {}\n", masked(text, mask)));
                }
                failures.push_str(&format!(
                    "Run it yourself, in a clone of {}: seakeeper job run {} --rev {} --pipeline {}\n",
                    r.project, j.name, reconcile::pipeline_commit(r), r.pipeline
                ));
            }
        }
        for a in &result.artifacts {
            t.push_str(&format!("- produced {} {}\n", a.name, a.digest));
        }
    }
    t.push_str(&failures);
    if let Some(u) = pages {
        t.push_str(&format!("\nBuild: {u}/builds/{}\n", r.build_id));
    }
    if let Some((_, commit)) = &b.recorded {
        let sep = if pages.is_some() { "" } else { "\n" };
        match pages {
            Some(u) => t.push_str(&format!("{sep}Ledger commit: {u}/ledger/{commit}\n")),
            None => t.push_str(&format!("{sep}Ledger commit: {commit}\n")),
        }
    }
    t.push_str(&format!("Build-Id: {}\n", r.build_id));
    t
}

/// `text` with every secret value masked (see [`crate::secrets::mask`]).
pub fn masked(text: &str, secrets: &[String]) -> String {
    crate::secrets::mask(text, secrets)
}

/// Every secret value of the secrets file, to be masked wherever logs are shown.
pub fn secret_values(secrets: &crate::secrets::SecretsFile) -> Vec<String> {
    let mut v: Vec<String> = secrets
        .gerrit
        .iter()
        .chain(secrets.registries.values())
        .chain(secrets.irc.iter())
        .chain(secrets.smtp.iter())
        .map(|c| c.pair().1)
        .collect();
    v.extend(secrets.phabricator.iter().map(|t| t.expose().to_owned()));
    v.extend(secrets.webhook.iter().map(|t| t.expose().to_owned()));
    v
}

/// Whether the change already carries the review of build `id` (its `Build-Id:` line).
fn already_posted(
    rest: &Rest,
    project: &crate::model::ProjectName,
    change: crate::model::ChangeNumber,
    id: &BuildId,
) -> Result<bool, crate::gerrit::RestError> {
    let line = format!("Build-Id: {id}");
    Ok(rest
        .get_change(project, change)?
        .messages
        .iter()
        .any(|m| m.message.lines().any(|l| l.trim() == line)))
}

pub(super) fn report(
    svc: &Services,
    layout: &crate::config::Layout,
    world: &World,
    id: &BuildId,
) -> Result<Applied, Error> {
    let Some(b) = world.builds.get(id) else {
        return Ok(Applied::nothing());
    };
    let r = &b.request;
    let pipeline_error = pipeline_error(world, r);
    let mut text = report_text(
        &svc.store,
        b,
        pipeline_error.as_deref(),
        &secret_values(&svc.secrets),
        svc.pages.then_some(layout.settings.public_url.as_str()),
    );
    let gate_lines = super::gate::report_lines(r, b);
    if !gate_lines.is_empty() {
        // Before the Build-Id line, which ends every report.
        let at = text.rfind("Build-Id:").unwrap_or(text.len());
        text.insert_str(at, &format!("{}\n", gate_lines.trim_start()));
    }
    let done = || {
        if r.change.is_some() && b.result != Some(BuildStatus::Cancelled) {
            crate::metrics::get().reported(r.pipeline, r.requested_at);
        }
        let mut facts = super::gate::reported(layout, world, r, b.result, b.landed.is_some());
        facts.push(finish(svc, id));
        Applied::progress(facts)
    };
    // A superseded check is not reported: the newer patchset's build will be.
    if b.result == Some(BuildStatus::Cancelled) && r.change.is_some() {
        return Ok(done());
    }
    let gerrit = svc.gerrit.as_ref().filter(|g| g.report);
    let (Some(g), Some(change)) = (gerrit, r.change) else {
        (svc.reporter)(&text);
        return Ok(done());
    };
    // Posted on a thread of its own; this pass (or a later one) takes the outcome.
    let (rest, post) = (g.rest.clone(), g.post.clone());
    let (project, commit, pipeline) = (
        r.project.clone(),
        reconcile::pipeline_commit(r).clone(),
        r.pipeline.to_string(),
    );
    let (build, review_text) = (id.clone(), text.clone());
    let verified = match b.result {
        // A landed change is merged: Gerrit takes no votes on it any more.
        _ if b.landed.is_some() => None,
        Some(BuildStatus::Success) => Some(1),
        _ => Some(-1),
    };
    let was_running = svc.reviews.running().contains(id);
    let outcome = svc.reviews.poll_or_start(id, move || {
        crash_point("before-review");
        // Reviews carry the build id: a review already posted (before a crash, or whose
        // answer was lost) is not posted again.
        match already_posted(&rest, &project, change, &build) {
            Ok(true) => Ok(Posted::Yes),
            Err(e) if final_refusal(&e) => Ok(Posted::Refused(e.to_string())),
            Err(source) => Err(Error::Gerrit {
                what: format!("reading change {change} before reporting"),
                source,
            }),
            Ok(false) => {
                // One attempt only: a retry after a lost answer would post the review twice.
                // After a failure, the next pass looks for the Build-Id line first.
                match post.post_review(
                    &project,
                    change,
                    commit.as_str(),
                    &ReviewInput::for_pipeline(&pipeline, &review_text, verified),
                ) {
                    Ok(_) => {
                        crash_point("after-review");
                        Ok(Posted::Yes)
                    }
                    Err(e) if final_refusal(&e) => Ok(Posted::Refused(e.to_string())),
                    Err(source) => Err(Error::Gerrit {
                        what: format!("posting the review of {build} on change {change}"),
                        source,
                    }),
                }
            }
        }
    });
    // Most posts take milliseconds: wait for one just started a little before moving on
    // (not again for one that is already slow).
    let outcome = match outcome {
        Some(o) => o,
        None if was_running => return Ok(Applied::nothing()),
        None => {
            svc.reviews.settle(std::time::Duration::from_millis(200));
            match svc.reviews.take(id) {
                Some(o) => o,
                None => return Ok(Applied::nothing()),
            }
        }
    };
    if let Posted::Refused(e) = outcome? {
        (svc.reporter)(&format!(
            "[{}] {} change {change}: Gerrit refused the review ({e}); the result was:\n{text}",
            r.pipeline, r.project
        ));
        return Ok(done());
    }
    (svc.reporter)(&format!(
        "[{}] {} change {change}: {} reported to Gerrit (build {id})",
        r.pipeline,
        r.project,
        b.result.map_or("unknown", |s| s.as_str())
    ));
    Ok(done())
}

/// An invalid config at HEAD (merged despite its check) is reported on the Gerrit change that
/// merged it, once: a comment with every error and the commit still in use.
pub(super) fn invalid_config(
    svc: &Services,
    world: &World,
    head: &CommitId,
) -> Result<Applied, Error> {
    let reported = Fact::InvalidConfigReported(head.clone());
    let (Some(project), Some(g), Some((_, errors))) = (
        world.config_project.as_ref(),
        svc.gerrit.as_ref().filter(|g| g.report),
        world.config.unreported.as_ref().filter(|(h, _)| h == head),
    ) else {
        return Ok(Applied::learnt([reported]));
    };
    let query = format!("commit:{head} project:{project}");
    let changes = g
        .rest
        .query_changes(&query, 10)
        .map_err(|source| Error::Gerrit {
            what: format!("finding the change of config {head}"),
            source,
        })?;
    let marker = format!("Config-Head-Invalid: {head}");
    for c in changes {
        let posted = g.rest.get_change(project, c.number).is_ok_and(|d| {
            d.messages
                .iter()
                .any(|m| m.message.lines().any(|l| l.trim() == marker))
        });
        if posted {
            continue;
        }
        let text = invalid_config_text(head, errors, &world.config.layout_commit, &marker);
        let review = ReviewInput::for_pipeline("config", &text, None);
        g.post
            .post_review(project, c.number, head.as_str(), &review)
            .map_err(|source| Error::Gerrit {
                what: format!("reporting the invalid config on change {}", c.number),
                source,
            })?;
    }
    Ok(Applied::progress([reported]))
}

/// The comment on the change that made the config invalid at `head` (`in_use`: the last good
/// config, which seakeeper runs with).
pub fn invalid_config_text(
    head: &CommitId,
    errors: &[String],
    in_use: &CommitId,
    marker: &str,
) -> String {
    let mut text = format!(
        "seakeeper: this change made the config repo invalid at {head}; seakeeper keeps \
         running with the last good config, {in_use}. Fix it with a follow-up change.\n\n"
    );
    for e in errors {
        text.push_str(&format!("- {e}\n"));
    }
    text.push_str(&format!("\n{marker}\n"));
    text
}

/// Every kind of comment seakeeper posts on a Gerrit change, as people read it, pinned as
/// snapshots (`cargo insta review` after a deliberate change of wording).
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::record::{ArtifactRef, BuildRequest, BuildResult, JobResult};
    use crate::model::{ArtifactKind, PipelineKind, Trust};
    use crate::reconcile::JobRun;

    fn commit(n: u32) -> CommitId {
        format!("{n:040x}").parse().unwrap()
    }

    /// A job of a test build: its name, status, duration, state and log.
    type Job<'a> = (
        &'a str,
        BuildStatus,
        u64,
        Option<JobState>,
        Option<&'a Digest>,
    );

    fn build(pipeline: PipelineKind, status: BuildStatus, jobs: &[Job<'_>]) -> BuildState {
        let change = (pipeline == PipelineKind::Check).then(|| 4711u64.try_into().unwrap());
        let request = BuildRequest {
            build_id: format!("{pipeline}-0123456789abcdef").parse().unwrap(),
            pipeline,
            project: "mediawiki/core".parse().unwrap(),
            change,
            patchset: change.map(|_| 3u64.try_into().unwrap()),
            git_ref: if change.is_some() {
                "refs/changes/11/4711/3"
            } else {
                "refs/heads/main"
            }
            .parse()
            .unwrap(),
            source_commit: commit(0xabc),
            config_commit: commit(0xc0f),
            trust: if change.is_some() {
                Trust::Untrusted
            } else {
                Trust::Trusted
            },
            requested_at: "2026-12-03T10:00:00Z".parse().unwrap(),
            jobs: jobs.iter().map(|j| j.0.to_owned()).collect(),
            cause: None,
        };
        let result = BuildResult {
            build_id: request.build_id.clone(),
            status,
            started_at: request.requested_at,
            finished_at: "2026-12-03T10:01:30Z".parse().unwrap(),
            jobs: jobs
                .iter()
                .map(|(name, status, ms, _, log)| JobResult {
                    name: (*name).to_owned(),
                    status: *status,
                    duration_ms: *ms,
                    log_digest: log.cloned(),
                    needs: Vec::new(),
                    image: None,
                })
                .collect(),
            artifacts: Vec::new(),
        };
        BuildState {
            request,
            result: Some(status),
            reported: false,
            cancelled: false,
            jobs: jobs
                .iter()
                .map(|(name, _, _, state, _)| {
                    (
                        (*name).to_owned(),
                        JobRun {
                            attempt: 1,
                            state: state.clone(),
                        },
                    )
                })
                .collect(),
            depth: 0,
            recorded: Some((result, commit(0x1ed))),
            landed: None,
        }
    }

    /// Issue 18: jobs in DAG order; a job skipped because a job it needs failed says so.
    #[test]
    fn a_failed_stage_skips_the_jobs_after_it() {
        let store = BlobStore::new(tempfile::tempdir().unwrap().path());
        let mut b = build(
            PipelineKind::PostMerge,
            BuildStatus::Failure,
            &[
                (
                    "build",
                    BuildStatus::Success,
                    12_000,
                    Some(JobState::Succeeded),
                    None,
                ),
                (
                    "test",
                    BuildStatus::Failure,
                    3_000,
                    Some(JobState::Failed {
                        exit_code: Some(1),
                        reason: "exit status 1".into(),
                    }),
                    None,
                ),
                ("publish", BuildStatus::Skipped, 0, None, None),
            ],
        );
        if let Some((result, _)) = b.recorded.as_mut() {
            result.jobs[1].needs = vec!["build".into()];
            result.jobs[2].needs = vec!["test".into()];
        }
        insta::assert_snapshot!(report_text(&store, &b, None, &[], None));
    }

    #[test]
    fn a_passing_check() {
        let store = BlobStore::new(tempfile::tempdir().unwrap().path());
        let b = build(
            PipelineKind::Check,
            BuildStatus::Success,
            &[
                (
                    "lint",
                    BuildStatus::Success,
                    800,
                    Some(JobState::Succeeded),
                    None,
                ),
                (
                    "unit",
                    BuildStatus::Success,
                    75_500,
                    Some(JobState::Succeeded),
                    None,
                ),
            ],
        );
        insta::assert_snapshot!(report_text(&store, &b, None, &[], None));
    }

    #[test]
    fn a_failing_check_shows_the_log_tail_masked_and_how_to_run_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let mut log = String::new();
        for i in 1..=40 {
            log.push_str(&format!("2026-12-03T10:00:{:02}.000Z line {i}\n", i % 60));
        }
        log.push_str("2026-12-03T10:00:59.000Z token=s3cr3t-value rejected\n");
        let d = store.put(log.as_bytes()).unwrap();
        let b = build(
            PipelineKind::Check,
            BuildStatus::Failure,
            &[
                (
                    "lint",
                    BuildStatus::Success,
                    800,
                    Some(JobState::Succeeded),
                    None,
                ),
                (
                    "unit",
                    BuildStatus::Failure,
                    61_000,
                    Some(JobState::Failed {
                        exit_code: Some(2),
                        reason: "exited with 2".into(),
                    }),
                    Some(&d),
                ),
            ],
        );
        insta::assert_snapshot!(report_text(
            &store,
            &b,
            None,
            &["s3cr3t-value".into()],
            None
        ));
        // Served pages: the build, each log and the ledger commit are links.
        insta::assert_snapshot!(
            "with_pages",
            report_text(
                &store,
                &b,
                None,
                &["s3cr3t-value".into()],
                Some("https://ci.example.org/")
            )
        );
    }

    #[test]
    fn a_lost_job_and_an_invalid_pipeline_file() {
        let store = BlobStore::new(tempfile::tempdir().unwrap().path());
        let b = build(
            PipelineKind::Check,
            BuildStatus::Error,
            &[(
                "unit",
                BuildStatus::Error,
                0,
                Some(JobState::Lost {
                    reason: "the seakeeper process that ran it stopped".into(),
                }),
                None,
            )],
        );
        insta::assert_snapshot!("lost", report_text(&store, &b, None, &[], None));
        let b = build(PipelineKind::Check, BuildStatus::Failure, &[]);
        let error = ".pipeline/config.yaml:3:5: jobs.unit.run: expected a list of commands";
        insta::assert_snapshot!(
            "invalid_pipeline",
            report_text(&store, &b, Some(error), &[], None)
        );
    }

    #[test]
    fn a_config_check_and_a_post_merge_build_with_an_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let log = "config check: 2 errors\nenvironments.yaml:4:15: environments[0].registry: \
                   unknown registry `prod`\nfreezes/x.yaml:1:1: reason: is empty\n";
        let d = store.put(log.as_bytes()).unwrap();
        let mut b = build(
            PipelineKind::Check,
            BuildStatus::Failure,
            &[(
                crate::reconcile::CONFIG_CHECK_JOB,
                BuildStatus::Failure,
                12,
                None,
                Some(&d),
            )],
        );
        b.request.project = "config".parse().unwrap();
        insta::assert_snapshot!("config_check", report_text(&store, &b, None, &[], None));
        let mut b = build(
            PipelineKind::PostMerge,
            BuildStatus::Success,
            &[(
                "image",
                BuildStatus::Success,
                4_200,
                Some(JobState::Succeeded),
                None,
            )],
        );
        if let Some((r, _)) = &mut b.recorded {
            r.artifacts.push(ArtifactRef {
                digest: Digest::of(b"image"),
                name: "core".into(),
                kind: ArtifactKind::Image,
            });
        }
        insta::assert_snapshot!("post_merge", report_text(&store, &b, None, &[], None));
    }

    #[test]
    fn the_invalid_config_comment_and_the_review_bodies() {
        let errors = vec![
            "environments.yaml:4:15: environments[0].registry: unknown registry `prod`".into(),
            "freezes/x.yaml: reason: is empty".into(),
        ];
        let head = commit(0xbad);
        let marker = format!("Config-Head-Invalid: {head}");
        insta::assert_snapshot!(
            "invalid_config",
            invalid_config_text(&head, &errors, &commit(0x900d), &marker)
        );
        let bodies: BTreeMap<&str, serde_json::Value> = [
            (
                "check passed",
                ReviewInput::for_pipeline("check", "seakeeper check: SUCCESS", Some(1)),
            ),
            (
                "check failed",
                ReviewInput::for_pipeline("check", "seakeeper check: FAILURE", Some(-1)),
            ),
            (
                "invalid config",
                ReviewInput::for_pipeline("config", "seakeeper: ...", None),
            ),
        ]
        .into_iter()
        .map(|(k, r)| (k, serde_json::to_value(r).unwrap()))
        .collect();
        insta::assert_snapshot!(
            "review_bodies",
            serde_json::to_string_pretty(&bodies).unwrap()
        );
    }
}
