//! plan() as tables: a World (and Layout) in, the actions out.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::config::pipeline;
use crate::model::record::BuildRequest;
use crate::model::{Digest, EnvironmentName, ImageName};

const C0: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";

fn commit(n: u32) -> CommitId {
    format!("{n:040x}").parse().unwrap()
}

fn digest(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

fn layout(extra: &[(&str, &str)]) -> Layout {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |p: &str, t: &str| {
        files.insert(p.to_owned(), t.as_bytes().to_vec());
    };
    put(
        "seakeeper.yaml",
        "public_url: https://ci.example.org\nregistries:\n  t: { url: \"oci:/tmp/t\" }\n  s: { url: \"oci:/tmp/s\" }\n  p: { url: \"oci:/tmp/p\" }\n",
    );
    put(
        "environments.yaml",
        "environments:\n  - {name: testing, registry: t}\n  - {name: staging, registry: s}\n  - {name: production, registry: p}\n",
    );
    put(
        "projects/api.yaml",
        "pipelines: [check, post-merge, periodic]\nimages: [api]\n",
    );
    put(
        "projects/web.yaml",
        "pipelines: [check, post-merge]\ndepends_on: [api]\n",
    );
    put("projects/docs.yaml", "pipelines: [check]\n");
    for (p, t) in extra {
        put(p, t);
    }
    crate::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

const PIPELINE: &str = "jobs:\n  unit:\n    image: x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    commands: [true]\n  lint:\n    image: x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    commands: [true]\n  build:\n    image: x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    commands: [true]\npipelines:\n  check: [unit, lint]\n  post-merge: [build]\n  periodic: [unit]\n";

fn resolved(l: &Layout, project: &str) -> Result<Arc<pipeline::ResolvedPipelines>, String> {
    let p: ProjectName = project.parse().unwrap();
    let text = if project == "docs" {
        PIPELINE.replace("  post-merge: [build]\n  periodic: [unit]\n", "")
    } else if project == "web" {
        PIPELINE.replace("  periodic: [unit]\n", "")
    } else {
        PIPELINE.to_owned()
    };
    pipeline::check(pipeline::PIPELINE_FILE, &text, Some(&p), Some(l))
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"))
}

fn world(now: &str) -> World {
    let mut w = World::new(
        now.parse().unwrap(),
        ConfigState {
            head: C0.parse().unwrap(),
            layout_commit: C0.parse().unwrap(),
            author: "RelEng <releng@example.org>".into(),
            errors: Vec::new(),
            unreported: None,
        },
    );
    w.config_project = Some("config".parse().unwrap());
    w.capacity = 10;
    w
}

const NOW: &str = "2026-12-01T10:00:30Z";

fn p(s: &str) -> ProjectName {
    s.parse().unwrap()
}

fn ps(n: u32, c: u32, rechecks: u32) -> Patchset {
    Patchset {
        patchset: u64::from(n).try_into().unwrap(),
        git_ref: format!("refs/changes/11/4711/{n}").parse().unwrap(),
        commit: commit(c),
        rechecks,
        review: None,
    }
}

fn change(n: u32) -> ChangeNumber {
    u64::from(n).try_into().unwrap()
}

fn with_change(w: &mut World, l: &Layout, project: &str, patchset: Patchset) {
    w.pipelines
        .insert((p(project), patchset.commit.clone()), resolved(l, project));
    w.changes.insert((p(project), change(4711)), patchset);
}

fn requested(actions: &[Action]) -> Vec<&BuildRequest> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestBuild { request, .. } => Some(request),
            _ => None,
        })
        .collect()
}

fn first_request(w: &World, l: &Layout) -> BuildRequest {
    requested(&plan(w, l))[0].clone()
}

fn in_flight(w: &mut World, request: BuildRequest) -> BuildId {
    let id = request.build_id.clone();
    w.builds.insert(
        id.clone(),
        BuildState {
            request,
            result: None,
            reported: false,
            cancelled: false,
            jobs: BTreeMap::new(),
            depth: 0,
            recorded: None,
            landed: None,
        },
    );
    id
}

#[test]
fn a_new_patchset_is_requested_once_untrusted_with_its_check_jobs() {
    let l = layout(&[]);
    let mut w = world(NOW);
    with_change(&mut w, &l, "api", ps(1, 1, 0));
    let actions = plan(&w, &l);
    let r = requested(&actions);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].pipeline.as_str(), "check");
    assert_eq!(r[0].trust, Trust::Untrusted);
    assert_eq!(r[0].jobs, ["unit", "lint"]);
    assert_eq!(r[0].change, Some(change(4711)));
    assert_eq!(r[0].config_commit.as_str(), C0);
    assert_eq!(
        plan(&w, &l),
        actions,
        "planning twice gives the same actions"
    );
    // Once the ledger holds it, it is not requested again.
    w.done.insert(r[0].build_id.clone());
    assert!(requested(&plan(&w, &l)).is_empty());
}

#[test]
fn nothing_is_requested_before_the_pipeline_file_is_read_or_for_unwatched_projects() {
    let l = layout(&[]);
    let mut w = world(NOW);
    w.changes.insert((p("api"), change(4711)), ps(1, 1, 0));
    w.changes.insert((p("unknown"), change(9)), ps(1, 2, 0));
    assert!(plan(&w, &l).is_empty());
}

#[test]
fn an_invalid_pipeline_file_gives_a_build_with_no_jobs_that_is_recorded_at_once() {
    let l = layout(&[]);
    let mut w = world(NOW);
    w.changes.insert((p("api"), change(4711)), ps(1, 1, 0));
    w.pipelines
        .insert((p("api"), commit(1)), Err("jobs.unit: no commands".into()));
    let actions = plan(&w, &l);
    let r = requested(&actions)[0].clone();
    assert!(r.jobs.is_empty());
    let id = in_flight(&mut w, r);
    assert_eq!(plan(&w, &l), vec![Action::RecordResult { build_id: id }]);
}

#[test]
fn a_newer_patchset_or_a_recheck_supersedes_the_running_build() {
    let l = layout(&[]);
    let mut w = world(NOW);
    with_change(&mut w, &l, "api", ps(1, 1, 0));
    let r = first_request(&w, &l);
    let old = in_flight(&mut w, r);
    // A recheck on the same patchset.
    with_change(&mut w, &l, "api", ps(1, 1, 1));
    let actions = plan(&w, &l);
    assert!(actions.contains(&Action::Cancel {
        build_id: old.clone(),
        reason: "superseded by a recheck".into()
    }));
    let again = requested(&actions);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].build_id, old, "a recheck is a new attempt");
    // A new patchset.
    with_change(&mut w, &l, "api", ps(2, 2, 0));
    let actions = plan(&w, &l);
    assert!(actions.contains(&Action::Cancel {
        build_id: old,
        reason: "superseded by patchset 2".into()
    }));
}

#[test]
fn jobs_start_within_capacity_and_a_lost_job_runs_once_more() {
    let l = layout(&[]);
    let mut w = world(NOW);
    with_change(&mut w, &l, "api", ps(1, 1, 0));
    let r = first_request(&w, &l);
    let id = in_flight(&mut w, r);
    w.capacity = 1;
    let starts: Vec<_> = plan(&w, &l)
        .into_iter()
        .filter(|a| matches!(a, Action::StartJob { .. }))
        .collect();
    assert_eq!(starts.len(), 1, "one slot, one start: {starts:?}");
    let lost = JobState::Lost {
        reason: "the seakeeper process that ran it stopped".into(),
    };
    let b = w.builds.get_mut(&id).unwrap();
    b.jobs.insert(
        "unit".into(),
        JobRun {
            attempt: 1,
            state: Some(lost.clone()),
        },
    );
    b.jobs.insert(
        "lint".into(),
        JobRun {
            attempt: 1,
            state: Some(JobState::Succeeded),
        },
    );
    let actions = plan(&w, &l);
    assert!(
        matches!(&actions[..], [Action::StartJob { job, attempt: 2, .. }] if job.name == "unit"),
        "{actions:?}"
    );
    w.builds.get_mut(&id).unwrap().jobs.insert(
        "unit".into(),
        JobRun {
            attempt: 2,
            state: Some(lost),
        },
    );
    assert_eq!(
        plan(&w, &l),
        vec![Action::RecordResult {
            build_id: id.clone()
        }]
    );
    assert_eq!(
        outcome([JobState::Succeeded, JobState::TimedOut]),
        BuildStatus::TimedOut
    );
    // Lost on its last attempt: the system's error, not the change's failure.
    assert_eq!(
        outcome([
            JobState::Succeeded,
            JobState::Lost {
                reason: "stopped".into()
            }
        ]),
        BuildStatus::Error
    );
}

#[test]
fn a_recorded_result_is_reported_and_a_cancelled_check_finished() {
    let l = layout(&[]);
    let mut w = world(NOW);
    with_change(&mut w, &l, "api", ps(1, 1, 0));
    let r = first_request(&w, &l);
    let id = in_flight(&mut w, r);
    w.builds.get_mut(&id).unwrap().result = Some(BuildStatus::Failure);
    assert_eq!(
        plan(&w, &l),
        vec![Action::Report {
            build_id: id.clone()
        }]
    );
    // A cancelled check is finished too (apply finishes it without a review).
    w.builds.get_mut(&id).unwrap().result = Some(BuildStatus::Cancelled);
    assert_eq!(
        plan(&w, &l),
        vec![Action::Report {
            build_id: id.clone()
        }]
    );
}

#[test]
fn a_moved_branch_is_built_trusted_and_then_its_dependents() {
    let l = layout(&[]);
    let mut w = world(NOW);
    let main: RefName = "refs/heads/main".parse().unwrap();
    w.moved.insert((p("api"), main.clone()), commit(5));
    w.tips.insert((p("api"), main.clone()), commit(5));
    w.tips.insert((p("web"), main.clone()), commit(6));
    w.pipelines
        .insert((p("api"), commit(5)), resolved(&l, "api"));
    w.pipelines
        .insert((p("web"), commit(6)), resolved(&l, "web"));
    // A branch the project does not watch.
    w.moved
        .insert((p("api"), "refs/heads/wip".parse().unwrap()), commit(7));
    let actions = plan(&w, &l);
    let r = requested(&actions);
    assert_eq!(r.len(), 1, "{actions:?}");
    assert_eq!(r[0].pipeline.as_str(), "post-merge");
    assert_eq!(r[0].trust, Trust::Trusted);
    assert_eq!(r[0].jobs, ["build"]);
    let up = in_flight(&mut w, r[0].clone());
    w.builds.get_mut(&up).unwrap().result = Some(BuildStatus::Success);
    let actions = plan(&w, &l);
    let deps: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestBuild { request, depth } => Some((request, *depth)),
            _ => None,
        })
        .collect();
    assert_eq!(deps.len(), 1, "{actions:?}");
    assert_eq!(deps[0].0.project.as_str(), "web");
    assert_eq!(deps[0].0.source_commit, commit(6));
    assert_eq!(deps[0].1, 1);
    // Issue 14: the dependent's request names the build and commit that caused it.
    assert_eq!(
        deps[0].0.cause,
        Some(crate::model::record::BuildCause::Upstream {
            build_id: up.clone(),
            project: p("api"),
            commit: commit(5),
        })
    );
    // The upstream is finished only once its dependent is requested.
    assert!(!actions.contains(&Action::Report {
        build_id: up.clone()
    }));
    let dep = deps[0].0.clone();
    in_flight(&mut w, dep);
    assert!(plan(&w, &l).contains(&Action::Report { build_id: up }));
    // A failed build triggers nothing.
    let mut w2 = w.clone();
    for b in w2.builds.values_mut() {
        b.result = Some(BuildStatus::Failure);
    }
    assert!(requested(&plan(&w2, &l)).is_empty());
}

#[test]
fn schedules_fire_once_per_tick_within_the_window() {
    let l = layout(&[(
        "schedules.yaml",
        "schedules:\n  - {name: nightly, cron: \"0 10 * * *\", project: api}\n",
    )]);
    let main: RefName = "refs/heads/main".parse().unwrap();
    let mut w = world(NOW);
    w.tips.insert((p("api"), main), commit(5));
    w.pipelines
        .insert((p("api"), commit(5)), resolved(&l, "api"));
    let actions = plan(&w, &l);
    let r = requested(&actions);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].pipeline.as_str(), "periodic");
    assert_eq!(r[0].jobs, ["unit"]);
    // Issue 14: a periodic build names its schedule and tick.
    assert_eq!(
        r[0].cause,
        Some(crate::model::record::BuildCause::Schedule {
            name: "nightly".into(),
            tick: "2026-12-01T10:00:00Z".parse().unwrap(),
        })
    );
    w.done.insert(r[0].build_id.clone());
    assert!(plan(&w, &l).is_empty());
    // Long after the tick: nothing (missed ticks are skipped, not replayed).
    let mut late = w.clone();
    late.done.clear();
    late.now = "2026-12-01T11:00:00Z".parse().unwrap();
    assert!(plan(&late, &l).is_empty());
}

#[test]
fn config_changes_are_checked_in_process() {
    let l = layout(&[]);
    let mut w = world(NOW);
    w.changes.insert((p("config"), change(4711)), ps(1, 9, 0));
    let r = requested(&plan(&w, &l))[0].clone();
    assert_eq!(r.jobs, [CONFIG_CHECK_JOB]);
    let id = in_flight(&mut w, r);
    assert_eq!(plan(&w, &l), vec![Action::CheckConfig { build_id: id }]);
}

fn freeze_layout() -> Layout {
    layout(&[
        (
            "freezes/eoy.yaml",
            "scope: [\"promote:production\"]\nreason: End of year.\nticket: T1\n",
        ),
        (
            "promotions/staging.yaml",
            &format!("images:\n  api: {}\n", digest("good")),
        ),
        (
            "promotions/production.yaml",
            &format!("images:\n  api: {}\n", digest("good")),
        ),
        (
            "promotions/testing.yaml",
            &format!("images:\n  api: {}\n", digest("untrusted")),
        ),
    ])
}

#[test]
fn promotions_follow_policy_and_freezes_hold_with_their_reason() {
    let l = freeze_layout();
    let mut w = world(NOW);
    let at: Timestamp = "2026-12-01T09:00:00Z".parse().unwrap();
    w.digests.insert(
        digest("good"),
        DigestFacts {
            provenance: Provenance::Trusted,
            images: ["api".parse().unwrap()].into(),
            problem: None,
            entered: BTreeMap::from([(("testing".parse().unwrap(), "api".parse().unwrap()), at)]),
        },
    );
    w.digests.insert(
        digest("untrusted"),
        DigestFacts {
            provenance: Provenance::Untrusted,
            images: Default::default(),
            problem: None,
            entered: BTreeMap::new(),
        },
    );
    // Staging takes what testing runs now.
    w.deployed.insert(
        ("testing".parse().unwrap(), "api".parse().unwrap()),
        (digest("good"), at),
    );
    let actions = plan(&w, &l);
    assert!(actions.contains(&Action::Promote {
        environment: "staging".parse().unwrap(),
        image: "api".parse().unwrap(),
        digest: digest("good"),
        from: Some("testing".parse().unwrap()),
    }));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Hold { environment, freeze: Some(f), reason, .. }
            if environment.as_str() == "production" && f.as_str() == "eoy" && reason.contains("End of year") && reason.contains("T1"))));
    assert!(actions.iter().any(|a| matches!(a,
        Action::Refuse { environment, reason, .. }
            if environment.as_str() == "testing" && reason.contains("untrusted"))));
    // Already there: nothing to do.
    w.deployed.insert(
        ("staging".parse().unwrap(), "api".parse().unwrap()),
        (digest("good"), at),
    );
    assert!(
        !plan(&w, &l)
            .iter()
            .any(|a| matches!(a, Action::Promote { .. }))
    );
}

#[test]
fn issue_14_a_digest_is_promoted_only_as_the_image_it_was_attested_as_and_from_where_it_runs() {
    let mut l = freeze_layout();
    l.freezes.clear();
    let web: ImageName = "web".parse().unwrap();
    let staging: EnvironmentName = "staging".parse().unwrap();
    let testing: EnvironmentName = "testing".parse().unwrap();
    l.promotions.clear();
    l.promotions
        .entry(staging.clone())
        .or_default()
        .insert(web.clone(), digest("good"));
    let mut w = world(NOW);
    let at: Timestamp = "2026-12-01T09:00:00Z".parse().unwrap();
    w.digests.insert(
        digest("good"),
        DigestFacts {
            provenance: Provenance::Trusted,
            images: ["api".parse().unwrap()].into(),
            problem: None,
            entered: BTreeMap::from([((testing.clone(), "api".parse().unwrap()), at)]),
        },
    );
    // `api`'s digest runs in testing as api; asked for as `web`, it is refused by name.
    w.deployed.insert(
        (testing.clone(), "api".parse().unwrap()),
        (digest("good"), at),
    );
    w.deployed
        .insert((testing.clone(), web.clone()), (digest("good"), at));
    let actions = plan(&w, &l);
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Refuse { image, reason, .. }
                if *image == web && reason.contains("attested as api, not as web"))),
        "{actions:?}"
    );
    // Attested as web but no longer running in testing: refused as not in the previous
    // environment, whatever ran there once.
    w.digests
        .get_mut(&digest("good"))
        .unwrap()
        .images
        .insert(web.clone());
    w.deployed
        .insert((testing.clone(), web.clone()), (digest("other"), at));
    let actions = plan(&w, &l);
    assert!(
        actions.iter().any(|a| matches!(a,
            Action::Refuse { reason, .. } if reason.contains("does not run in testing"))),
        "{actions:?}"
    );
    w.deployed.insert((testing, web), (digest("good"), at));
    assert!(
        plan(&w, &l)
            .iter()
            .any(|a| matches!(a, Action::Promote { .. }))
    );
}

#[test]
fn freeze_transitions_are_recorded_with_the_config_commit() {
    let l = freeze_layout();
    let mut w = world(NOW);
    let actions = plan(&w, &l);
    let recorded: Vec<Freeze> = actions
        .iter()
        .filter_map(|a| match a {
            Action::RecordFreeze { freeze } => Some(freeze.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].state, FreezeState::Active);
    assert_eq!(recorded[0].config_commit.as_str(), C0);
    assert_eq!(recorded[0].author, "RelEng <releng@example.org>");
    w.freezes
        .insert("eoy".parse().unwrap(), recorded[0].clone());
    assert!(
        !plan(&w, &l)
            .iter()
            .any(|a| matches!(a, Action::RecordFreeze { .. }))
    );
    // The revert removes the file: lifted, by the commit that removed it.
    let lifted = layout(&[]);
    w.freeze_origins
        .insert("eoy".parse().unwrap(), (commit(77), "Rel <r@e.org>".into()));
    let actions = plan(&w, &lifted);
    assert!(actions.iter().any(|a| matches!(a,
        Action::RecordFreeze { freeze } if freeze.state == FreezeState::Lifted
            && freeze.name.as_str() == "eoy"
            && freeze.scope == ["promote:production"]
            && freeze.config_commit == commit(77))));
}

#[test]
fn a_pipeline_with_no_jobs_for_the_pipeline_gives_no_build() {
    let l = layout(&[]);
    let mut w = world(NOW);
    let main: RefName = "refs/heads/main".parse().unwrap();
    w.moved.insert((p("api"), main.clone()), commit(5));
    // docs' file has no post-merge jobs; read as api's, api has nothing to build after a merge.
    w.pipelines
        .insert((p("api"), commit(5)), resolved(&l, "docs"));
    assert!(plan(&w, &l).is_empty());
    // The same for a check of a file with no check jobs.
    let empty = pipeline::check(pipeline::PIPELINE_FILE, "{}\n", Some(&p("api")), Some(&l))
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"));
    w.changes.insert((p("api"), change(4711)), ps(1, 6, 0));
    w.pipelines.insert((p("api"), commit(6)), empty);
    assert!(plan(&w, &l).is_empty());
}

#[test]
fn issue_14_priorities_order_the_queue_and_project_concurrency_caps_each_project() {
    // post-merge before check, one job of a project at a time.
    let l = layout(&[(
        "policies/limits.yaml",
        "priorities: [post-merge, check, gate, periodic]\nproject_concurrency: 1\n",
    )]);
    let mut w = world(NOW);
    with_change(&mut w, &l, "api", ps(1, 1, 0));
    let mut check = first_request(&w, &l);
    check.requested_at = "2026-12-01T09:00:00Z".parse().unwrap();
    let check = in_flight(&mut w, check);
    // A post-merge build of web, requested later than the check.
    let mut merge = BuildRequest {
        build_id: "post-merge-web-1".parse().unwrap(),
        pipeline: "post-merge".parse().unwrap(),
        project: p("web"),
        change: None,
        patchset: None,
        git_ref: "refs/heads/main".parse().unwrap(),
        source_commit: commit(9),
        config_commit: C0.parse().unwrap(),
        trust: Trust::Trusted,
        requested_at: "2026-12-01T09:30:00Z".parse().unwrap(),
        jobs: vec!["build".into()],
        cause: None,
    };
    w.pipelines
        .insert((p("web"), commit(9)), resolved(&l, "web"));
    merge.requested_at = "2026-12-01T09:30:00Z".parse().unwrap();
    let merge = in_flight(&mut w, merge);
    let starts = |w: &World| -> Vec<(BuildId, String)> {
        plan(w, &l)
            .into_iter()
            .filter_map(|a| match a {
                Action::StartJob { build_id, job, .. } => Some((build_id, job.name.clone())),
                _ => None,
            })
            .collect()
    };
    // One slot: the later post-merge goes first, by priority.
    w.capacity = 1;
    assert_eq!(starts(&w), vec![(merge.clone(), "build".to_owned())]);
    // Plenty of slots: still one job of api (two queued), one of web.
    w.capacity = 10;
    let s = starts(&w);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s.iter().filter(|(b, _)| *b == check).count(), 1, "{s:?}");
    // With api's first job running, none of its others starts.
    w.builds.get_mut(&check).unwrap().jobs.insert(
        "unit".into(),
        JobRun {
            attempt: 1,
            state: Some(JobState::Running),
        },
    );
    assert!(starts(&w).iter().all(|(b, _)| *b != check));
}

#[test]
fn an_actions_kind_is_its_keys_first_word_and_names_no_build() {
    let id: crate::model::BuildId = "b00000001".parse().unwrap();
    let actions = [
        Action::CheckConfig {
            build_id: id.clone(),
        },
        Action::Cancel {
            build_id: id.clone(),
            reason: "superseded".into(),
        },
        Action::RecordResult {
            build_id: id.clone(),
        },
        Action::Report {
            build_id: id.clone(),
        },
        Action::Land {
            build_id: id.clone(),
        },
        Action::HoldLanding {
            build_id: id.clone(),
            reason: "frozen".into(),
            freeze: "eoy".parse().unwrap(),
        },
        Action::Retire {
            build_id: id.clone(),
        },
        Action::ReportInvalidConfig { head: commit(1) },
    ];
    for a in &actions {
        assert_eq!(a.key().split(' ').next(), Some(a.kind()), "{a:?}");
        assert!(!a.kind().contains(id.as_str()));
    }
    assert!(actions[..7].iter().all(|a| a.build_id() == Some(&id)));
    assert_eq!(actions[7].build_id(), None);
}

/// Issue 18: `build -> test -> publish` beside `lint`: a job starts once every job it needs
/// succeeded; when one did not, the jobs after it are skipped and the build ends.
#[test]
fn issue_18_jobs_start_in_dag_order_and_a_failed_need_skips_the_rest() {
    let l = layout(&[]);
    let mut w = world(NOW);
    let img = "x@sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let text = format!(
        "jobs:\n  publish:\n    image: {img}\n    commands: [true]\n    needs: [test]\n  test:\n    image: {img}\n    commands: [true]\n    needs: [build]\n  build:\n    image: {img}\n    commands: [true]\n  lint:\n    image: {img}\n    commands: [true]\npipelines:\n  check: [publish, test, build, lint]\n"
    );
    let patchset = ps(1, 1, 0);
    let jobs = pipeline::check(pipeline::PIPELINE_FILE, &text, Some(&p("api")), Some(&l))
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"));
    w.pipelines
        .insert((p("api"), patchset.commit.clone()), jobs);
    w.changes.insert((p("api"), change(4711)), patchset);
    let r = first_request(&w, &l);
    assert_eq!(r.jobs, ["build", "test", "publish", "lint"], "DAG order");
    let id = in_flight(&mut w, r);
    let run = |state: JobState| JobRun {
        attempt: 1,
        state: Some(state),
    };
    let failed = || JobState::Failed {
        exit_code: Some(1),
        reason: "exit 1".into(),
    };
    let lost = || JobState::Lost {
        reason: "gone".into(),
    };
    // (job states, jobs started, whether the result is recorded)
    type Row<'a> = (Vec<(&'a str, JobRun)>, Vec<(&'a str, u32)>, bool);
    let table: Vec<Row<'_>> = vec![
        (vec![], vec![("build", 1), ("lint", 1)], false),
        (
            vec![
                ("build", run(JobState::Running)),
                ("lint", run(JobState::Succeeded)),
            ],
            vec![],
            false,
        ),
        (
            vec![
                ("build", run(JobState::Succeeded)),
                ("lint", run(JobState::Running)),
            ],
            vec![("test", 1)],
            false,
        ),
        (
            vec![
                ("build", run(JobState::Succeeded)),
                ("test", run(JobState::Succeeded)),
                ("lint", run(JobState::Succeeded)),
            ],
            vec![("publish", 1)],
            false,
        ),
        // A failing test skips publish: nothing more runs, and the build ends.
        (
            vec![
                ("build", run(JobState::Succeeded)),
                ("test", run(failed())),
                ("lint", run(JobState::Succeeded)),
            ],
            vec![],
            true,
        ),
        // A failing build skips test and, through it, publish.
        (
            vec![("build", run(failed())), ("lint", run(JobState::Succeeded))],
            vec![],
            true,
        ),
        // ... but not while lint still runs.
        (
            vec![
                ("build", run(JobState::TimedOut)),
                ("lint", run(JobState::Running)),
            ],
            vec![],
            false,
        ),
        // A lost build runs once more; what needs it waits for that run.
        (
            vec![("build", run(lost())), ("lint", run(JobState::Succeeded))],
            vec![("build", 2)],
            false,
        ),
        (
            vec![
                (
                    "build",
                    JobRun {
                        attempt: 2,
                        state: Some(lost()),
                    },
                ),
                ("lint", run(JobState::Succeeded)),
            ],
            vec![],
            true,
        ),
        // A cancelled need skips too.
        (
            vec![
                ("build", run(JobState::Succeeded)),
                ("test", run(JobState::Cancelled)),
                ("lint", run(JobState::Succeeded)),
            ],
            vec![],
            true,
        ),
    ];
    for (states, starts, recorded) in table {
        let b = w.builds.get_mut(&id).unwrap();
        b.jobs = states
            .iter()
            .map(|(n, r)| ((*n).to_owned(), r.clone()))
            .collect();
        let actions = plan(&w, &l);
        let got: Vec<(&str, u32)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::StartJob { job, attempt, .. } => Some((job.name.as_str(), *attempt)),
                _ => None,
            })
            .collect();
        assert_eq!(got, starts, "{states:?}: {actions:?}");
        assert_eq!(
            actions.contains(&Action::RecordResult {
                build_id: id.clone()
            }),
            recorded,
            "{states:?}: {actions:?}"
        );
    }
}
