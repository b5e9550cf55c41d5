//! The gate's plan as tables: queue states in, actions out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::*;
use crate::config::pipeline;
use crate::model::record::BuildCause;
use crate::reconcile::world::{Approval, BuildState, ConfigState, Patchset, Review};
use crate::reconcile::{Action, Fact, plan};

const C0: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const NOW: &str = "2026-12-03T10:00:00Z";
const TIP: u32 = 1;

fn commit(n: u32) -> CommitId {
    format!("{n:040x}").parse().unwrap()
}

fn p(s: &str) -> ProjectName {
    s.parse().unwrap()
}

fn n(x: u32) -> ChangeNumber {
    u64::from(x).try_into().unwrap()
}

fn main() -> RefName {
    "refs/heads/main".parse().unwrap()
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_764_000_000 + second).unwrap()
}

fn layout(extra: &[(&str, &str)]) -> Layout {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |p: &str, t: &str| {
        files.insert(p.to_owned(), t.as_bytes().to_vec());
    };
    put(
        "seakeeper.yaml",
        "public_url: https://ci.example.org\nregistries:\n  t: { url: \"oci:/tmp/t\" }\ngate:\n  window: 3\n  window_floor: 1\n",
    );
    put(
        "environments.yaml",
        "environments:\n  - {name: testing, registry: t}\n",
    );
    put(
        "projects/api.yaml",
        "queue: core\npipelines: [check, gate, post-merge]\n",
    );
    put(
        "projects/ext.yaml",
        "queue: core\npipelines: [check, gate]\n",
    );
    put("projects/docs.yaml", "pipelines: [check, gate]\n");
    for (p, t) in extra {
        put(p, t);
    }
    crate::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

const PIPELINE: &str = "jobs:\n  unit:\n    image: x@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    commands: [true]\npipelines:\n  check: [unit]\n  gate: [unit]\n";

fn resolved(l: &Layout, project: &str) -> Result<Arc<pipeline::ResolvedPipelines>, String> {
    let p: ProjectName = project.parse().unwrap();
    pipeline::check(pipeline::PIPELINE_FILE, PIPELINE, Some(&p), Some(l))
        .map(Arc::new)
        .map_err(|e| format!("{e:?}"))
}

fn world() -> World {
    let mut w = World::new(
        NOW.parse().unwrap(),
        ConfigState {
            head: C0.parse().unwrap(),
            layout_commit: C0.parse().unwrap(),
            author: "RelEng <releng@example.org>".into(),
            errors: Vec::new(),
            unreported: None,
        },
    );
    w.capacity = 10;
    for project in ["api", "ext", "docs"] {
        w.tips.insert((p(project), main()), commit(TIP));
    }
    w
}

fn review(since: i64, votes: &[(&str, i32)]) -> Review {
    Review {
        branch: main(),
        votes: votes
            .iter()
            .map(|(label, value)| Approval {
                label: (*label).into(),
                value: *value,
                by: "bob".into(),
                date: Some(at(since)),
            })
            .collect(),
        wip: false,
        private: false,
        parents: vec![commit(TIP)],
        depends_on: Vec::new(),
        notes: BTreeSet::new(),
    }
}

/// Change `change` of `project` at commit `c`, voted Code-Review+2 at `since`.
fn approved(w: &mut World, l: &Layout, project: &str, change: u32, c: u32, since: i64) {
    with_review(
        w,
        l,
        project,
        change,
        c,
        review(since, &[("Code-Review", 2)]),
    );
}

fn with_review(w: &mut World, l: &Layout, project: &str, change: u32, c: u32, r: Review) {
    w.pipelines
        .insert((p(project), commit(c)), resolved(l, project));
    w.changes.insert(
        (p(project), n(change)),
        Patchset {
            patchset: 1u64.try_into().unwrap(),
            git_ref: format!("refs/changes/{:02}/{change}/1", change % 100)
                .parse()
                .unwrap(),
            commit: commit(c),
            rechecks: 0,
            review: Some(r),
        },
    );
}

fn merged(w: &mut World, project: &str, onto: u32, c: u32, state: u32) {
    w.absorb(Fact::Merged {
        project: p(project),
        onto: commit(onto),
        commit: commit(c),
        outcome: MergeOutcome::Merged(commit(state)),
    });
}

/// Every planned action of a kind, as short words (the order kept).
fn words(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter(|a| match a {
            Action::RequestBuild { request, .. } => request.pipeline == PipelineKind::Gate,
            Action::RecordFreeze { .. } => false,
            _ => true,
        })
        .map(|a| match a {
            Action::TellGate { change, note, .. } => {
                format!("tell {change} {}", note.event.as_str())
            }
            Action::Merge { onto, commit, .. } => {
                format!("merge {} onto {}", short(commit), short(onto))
            }
            Action::RequestBuild { request, .. } => format!(
                "request {} on {}",
                request.change.unwrap(),
                short(&request.source_commit)
            ),
            Action::Cancel { .. } => "cancel".into(),
            Action::Land { .. } => "land".into(),
            Action::Retire { .. } => "retire".into(),
            Action::HoldLanding { .. } => "hold".into(),
            Action::Report { .. } => "report".into(),
            Action::StartJob { .. } => "start".into(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn short(c: &CommitId) -> String {
    u32::from_str_radix(&c.as_str()[32..], 16)
        .unwrap()
        .to_string()
}

/// The gate requests of a plan, by change.
fn requests(actions: &[Action]) -> BTreeMap<u32, crate::model::record::BuildRequest> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RequestBuild { request, .. } if request.pipeline == PipelineKind::Gate => {
                Some((request.change.unwrap().get(), request.clone()))
            }
            _ => None,
        })
        .collect()
}

fn in_flight(w: &mut World, request: crate::model::record::BuildRequest) -> BuildId {
    let id = request.build_id.clone();
    w.absorb(Fact::BuildInFlight(Box::new(BuildState {
        request,
        result: None,
        reported: false,
        cancelled: false,
        jobs: BTreeMap::new(),
        depth: 0,
        recorded: None,
        landed: None,
    })));
    id
}

/// The "entered" notes, as if told.
fn told_entered(w: &mut World, actions: &[Action]) {
    for a in actions {
        if let Action::TellGate {
            project,
            change,
            note,
            ..
        } = a
        {
            w.absorb(Fact::GateNoted {
                project: project.clone(),
                change: *change,
                note: *note,
            });
        }
    }
}

#[test]
fn only_ready_approved_changes_enter_and_are_merged_then_tested_trusted() {
    let l = layout(&[]);
    // (votes, wip, private, enters)
    // (votes, wip, private, enters)
    type Case<'a> = (Vec<(&'a str, i32)>, bool, bool, bool);
    let cases: Vec<Case<'_>> = vec![
        (vec![("Code-Review", 2)], false, false, true),
        (vec![("Code-Review", 1)], false, false, false),
        (
            vec![("Code-Review", 2), ("Code-Review", -2)],
            false,
            false,
            false,
        ),
        (
            vec![("Code-Review", 2), ("Code-Review", -1)],
            false,
            false,
            true,
        ),
        (vec![("Code-Review", 2)], true, false, false),
        (vec![("Code-Review", 2)], false, true, false),
        (vec![("Verified", 1)], false, false, false),
    ];
    for (votes, wip, private, enters) in cases {
        let mut w = world();
        let mut r = review(10, &votes);
        r.wip = wip;
        r.private = private;
        with_review(&mut w, &l, "docs", 7, 70, r);
        let a = plan(&w, &l);
        let expected: Vec<String> = if enters {
            // Told it entered once its build is requested (after its jobs start).
            vec!["merge 70 onto 1".into()]
        } else {
            Vec::new()
        };
        assert_eq!(words(&a), expected, "{votes:?} wip {wip} private {private}");
    }
    // Once merged, the state is tested: trusted, on the speculative commit, with the change's
    // own gate jobs, and the request says what the state is made of.
    let mut w = world();
    approved(&mut w, &l, "docs", 7, 70, 10);
    merged(&mut w, "docs", TIP, 70, 700);
    let a = plan(&w, &l);
    let r = &requests(&a)[&7];
    assert_eq!(r.pipeline, PipelineKind::Gate);
    assert_eq!(r.trust, crate::model::Trust::Trusted);
    assert_eq!(r.jobs, vec!["unit".to_owned()]);
    assert_eq!(
        r.git_ref.as_str(),
        format!("refs/seakeeper/speculative/{}", commit(700))
    );
    let Some(BuildCause::Gate {
        base,
        change_commit,
        ahead,
        eligible_since,
        votes,
        queue,
        ..
    }) = &r.cause
    else {
        panic!("{r:?}")
    };
    assert_eq!(
        (
            base,
            change_commit,
            ahead.len(),
            *eligible_since,
            queue.as_str()
        ),
        (&commit(TIP), &commit(70), 0, at(10), "project:docs")
    );
    assert_eq!(votes, &vec!["Code-Review+2 by bob".to_owned()]);
    // Requirements are configurable per project: docs also needs Verified+1.
    let l2 = layout(&[(
        "projects/docs.yaml",
        "pipelines: [check, gate]\ngate:\n  require:\n    - {label: Code-Review, value: 2}\n    - {label: Verified, value: 1}\n",
    )]);
    let mut w = world();
    approved(&mut w, &l2, "docs", 7, 70, 10);
    assert!(words(&plan(&w, &l2)).is_empty());
    with_review(
        &mut w,
        &l2,
        "docs",
        7,
        70,
        review(20, &[("Code-Review", 2), ("Verified", 1)]),
    );
    assert_eq!(words(&plan(&w, &l2)), ["merge 70 onto 1"]);
}

/// Three api changes approved in order, their states merged and builds requested.
fn three_in_flight(l: &Layout) -> (World, [BuildId; 3]) {
    let mut w = world();
    approved(&mut w, l, "api", 3, 30, 30);
    approved(&mut w, l, "api", 1, 10, 10);
    approved(&mut w, l, "api", 2, 20, 20);
    let a = plan(&w, l);
    assert_eq!(
        words(&a),
        ["merge 10 onto 1"],
        "ordered by eligibility; the items behind wait for the state ahead of them"
    );
    merged(&mut w, "api", TIP, 10, 11);
    assert_eq!(
        words(&plan(&w, l))[..2],
        ["request 1 on 11", "merge 20 onto 11"]
    );
    merged(&mut w, "api", 11, 20, 21);
    merged(&mut w, "api", 21, 30, 31);
    let reqs = requests(&plan(&w, l));
    assert_eq!(reqs.len(), 3);
    let ahead = |c: u32| match &reqs[&c].cause {
        Some(BuildCause::Gate { ahead, .. }) => {
            ahead.iter().map(|i| i.change.get()).collect::<Vec<_>>()
        }
        _ => panic!(),
    };
    assert_eq!(
        (ahead(1), ahead(2), ahead(3)),
        (vec![], vec![1], vec![1, 2])
    );
    let ids = [1, 2, 3].map(|c| in_flight(&mut w, reqs[&c].clone()));
    // Each is told it entered, at its position, once its build is under way.
    let a = plan(&w, l);
    let told: Vec<String> = words(&a)
        .into_iter()
        .filter(|x| x.ends_with("entered"))
        .collect();
    assert_eq!(told, ["tell 1 entered", "tell 2 entered", "tell 3 entered"]);
    told_entered(&mut w, &a);
    (w, ids)
}

#[test]
fn a_failure_in_the_middle_resets_the_items_behind_and_is_final_at_the_head() {
    let l = layout(&[]);
    let (mut w, [one, two, three]) = three_in_flight(&l);
    // Item 2 fails while item 1 is still running: item 3 is merged again without it, and its
    // running build is cancelled; item 2 is not told yet (item 1 may still fail).
    w.builds.get_mut(&two).unwrap().result = Some(BuildStatus::Failure);
    let a = plan(&w, &l);
    let gate: Vec<String> = words(&a).into_iter().filter(|x| x != "start").collect();
    assert_eq!(gate, ["merge 30 onto 11", "cancel"]);
    assert!(
        a.contains(&Action::Cancel {
            build_id: three.clone(),
            reason: "reset: the state it tested is no longer wanted (an item ahead of it left the \
                 queue, its branch moved, or the window shrank)"
                .into()
        })
    );
    w.builds.get_mut(&three).unwrap().cancelled = true;
    merged(&mut w, "api", 11, 30, 32);
    let reqs = requests(&plan(&w, &l));
    assert_eq!(short(&reqs[&3].source_commit), "32");
    let three_again = in_flight(&mut w, reqs[&3].clone());
    // Item 1 passes at the head on the tip it was tested on: it lands.
    w.builds.get_mut(&one).unwrap().result = Some(BuildStatus::Success);
    let a = plan(&w, &l);
    assert!(a.contains(&Action::Land {
        build_id: one.clone()
    }));
    // Landed: the tip is its state; item 2 is at the head now and its failure is final.
    w.absorb(Fact::Landed {
        build: one.clone(),
        project: p("api"),
        branch: main(),
        commit: commit(11),
        tip: commit(11),
    });
    w.absorb(Fact::GateNoted {
        project: p("api"),
        change: n(1),
        note: GateNote {
            event: GateEvent::Landed,
            entry: GateEntry {
                patchset: 1u64.try_into().unwrap(),
                since: at(10),
                rechecks: 0,
            },
        },
    });
    let a = plan(&w, &l);
    assert!(a.contains(&Action::Report {
        build_id: two.clone()
    }));
    assert!(a.contains(&Action::Report {
        build_id: one.clone()
    }));
    // Item 3's state (tip 11 + change 3) is the same commit as before: not tested again.
    assert!(requests(&a).is_empty(), "{a:?}");
    assert!(
        !a.iter()
            .any(|x| matches!(x, Action::Cancel { build_id, .. } if *build_id == three_again))
    );
    // Once item 2 is told, it is out; item 3 is the head.
    w.absorb(Fact::GateNoted {
        project: p("api"),
        change: n(2),
        note: GateNote {
            event: GateEvent::Failed,
            entry: GateEntry {
                patchset: 1u64.try_into().unwrap(),
                since: at(20),
                rechecks: 0,
            },
        },
    });
    w.absorb(Fact::BuildDone(two.clone()));
    let q = &queues(&w, &l)[0];
    assert_eq!(
        q.items.iter().map(|i| i.change.get()).collect::<Vec<_>>(),
        vec![3]
    );
    w.builds.get_mut(&three_again).unwrap().result = Some(BuildStatus::Success);
    // The branch moved to item 1's state, which item 3 was built on: it lands.
    assert!(plan(&w, &l).contains(&Action::Land {
        build_id: three_again
    }));
}

#[test]
fn the_window_limits_what_is_tested_and_grows_and_shrinks() {
    let l = layout(&[]);
    let mut w = world();
    for c in 1..=5 {
        approved(&mut w, &l, "docs", c, c * 10, i64::from(c));
    }
    let q = &queues(&w, &l)[0];
    assert_eq!(q.window, 3);
    let states: Vec<bool> = q
        .items
        .iter()
        .map(|i| matches!(i.state, ItemState::Inactive))
        .collect();
    assert_eq!(states, [false, false, false, true, true]);
    let g = &l.settings.gate;
    assert_eq!(next_window(3, true, g), 4);
    assert_eq!(next_window(3, false, g), 1);
    assert_eq!(next_window(1, false, g), 1, "never below the floor");
    w.absorb(Fact::GateWindow {
        queue: "project:docs".into(),
        window: 1,
    });
    let q = &queues(&w, &l)[0];
    assert_eq!(
        q.items
            .iter()
            .filter(|i| !matches!(i.state, ItemState::Inactive))
            .count(),
        1
    );
}

#[test]
fn a_branch_moved_underneath_retests_on_the_new_tip() {
    let l = layout(&[]);
    let (mut w, [one, ..]) = three_in_flight(&l);
    w.builds.get_mut(&one).unwrap().result = Some(BuildStatus::Success);
    // Someone pushed: main is at 99 now.
    w.tips.insert((p("api"), main()), commit(99));
    let a = plan(&w, &l);
    assert!(!a.contains(&Action::Land {
        build_id: one.clone()
    }));
    assert!(a.contains(&Action::Retire {
        build_id: one.clone()
    }));
    assert_eq!(words(&a)[0], "merge 10 onto 99");
    assert_eq!(
        a.iter()
            .filter(|x| matches!(x, Action::Cancel { .. }))
            .count(),
        2
    );
}

#[test]
fn a_merge_freeze_holds_the_head_and_says_why_once() {
    let l = layout(&[(
        "freezes/branch-cut.yaml",
        "scope: [\"merge:api:main\"]\nreason: Branch cut for 1.43.\nticket: T123\n",
    )]);
    let (mut w, [one, ..]) = three_in_flight(&l);
    w.builds.get_mut(&one).unwrap().result = Some(BuildStatus::Success);
    let a = plan(&w, &l);
    assert!(!a.iter().any(|x| matches!(x, Action::Land { .. })));
    let held: Vec<&Action> = a
        .iter()
        .filter(|x| matches!(x, Action::HoldLanding { .. }))
        .collect();
    let Action::HoldLanding { reason, .. } = held[0] else {
        panic!()
    };
    assert!(
        reason.contains("branch-cut (T123): Branch cut for 1.43."),
        "{reason}"
    );
    assert!(words(&a).contains(&"tell 1 held".to_owned()));
    told_entered(&mut w, &a);
    assert!(!words(&plan(&w, &l)).contains(&"tell 1 held".to_owned()));
    // Another branch is not held.
    let l = layout(&[(
        "freezes/branch-cut.yaml",
        "scope: [\"merge:api:REL1_*\"]\nreason: Branch cut.\n",
    )]);
    assert!(plan(&w, &l).contains(&Action::Land { build_id: one }));
}

#[test]
fn conflicts_missing_parents_and_dependency_cycles_are_refused_with_why() {
    let l = layout(&[]);
    let mut w = world();
    approved(&mut w, &l, "docs", 1, 10, 1);
    approved(&mut w, &l, "docs", 2, 20, 2);
    merged(&mut w, "docs", TIP, 10, 11);
    w.absorb(Fact::Merged {
        project: p("docs"),
        onto: commit(11),
        commit: commit(20),
        outcome: MergeOutcome::Conflict(vec!["README".into()]),
    });
    // A conflict with a change ahead is not final (that change may still fail and leave):
    // it waits, and the items behind it go on without it.
    let refused = |a: &[Action]| {
        a.iter().find_map(|x| match x {
            Action::TellGate { note, text, .. } if note.event == GateEvent::Refused => {
                Some(text.clone())
            }
            _ => None,
        })
    };
    assert_eq!(refused(&plan(&w, &l)), None);
    let q = &queues(&w, &l)[0];
    assert!(
        matches!(&q.items[1].state, ItemState::Blocked(why) if why.contains("conflicts with change 1,1 ahead of it (in README)")),
        "{q:?}"
    );
    // Change 1 landed: change 2 conflicts with the tip itself, and that is final.
    w.tips.insert((p("docs"), main()), commit(11));
    w.changes.remove(&(p("docs"), n(1)));
    w.absorb(Fact::Merged {
        project: p("docs"),
        onto: commit(11),
        commit: commit(20),
        outcome: MergeOutcome::Conflict(vec!["README".into()]),
    });
    let refusal = refused(&plan(&w, &l)).unwrap();
    assert!(refusal.contains("conflicts in README"), "{refusal}");
    // Depends-On both ways: both refused, naming the cycle.
    let mut w = world();
    let mut r1 = review(1, &[("Code-Review", 2)]);
    r1.depends_on = vec![n(2)];
    let mut r2 = review(2, &[("Code-Review", 2)]);
    r2.depends_on = vec![n(1)];
    with_review(&mut w, &l, "docs", 1, 10, r1);
    with_review(&mut w, &l, "ext", 2, 20, r2);
    let a = plan(&w, &l);
    let texts: Vec<&String> = a
        .iter()
        .filter_map(|x| match x {
            Action::TellGate { note, text, .. } if note.event == GateEvent::Refused => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(texts.len(), 2, "{a:?}");
    assert!(
        texts[0].contains("cycle: change 1 -> change 2 -> change 1"),
        "{}",
        texts[0]
    );
    // A missing parent (an outdated patchset of another change) is refused too.
    let mut w = world();
    approved(&mut w, &l, "docs", 1, 10, 1);
    w.absorb(Fact::Merged {
        project: p("docs"),
        onto: commit(TIP),
        commit: commit(10),
        outcome: MergeOutcome::MissingParents(vec![commit(5)]),
    });
    assert_eq!(words(&plan(&w, &l)), ["tell 1 refused"]);
}

#[test]
fn dependencies_wait_for_what_they_depend_on_and_land_after_it() {
    let l = layout(&[]);
    let mut w = world();
    // Change 2 is built on change 1 (its git parent), voted first; change 1 is not approved.
    let mut r2 = review(1, &[("Code-Review", 2)]);
    r2.parents = vec![commit(10)];
    with_review(&mut w, &l, "docs", 2, 20, r2.clone());
    with_review(&mut w, &l, "docs", 1, 10, review(0, &[("Code-Review", 1)]));
    let q = &queues(&w, &l)[0];
    assert!(q.items.is_empty());
    assert!(q.waiting[0].2.contains("depends on change 1"), "{q:?}");
    // Change 1 approved after it: it goes ahead of change 2 all the same.
    with_review(&mut w, &l, "docs", 1, 10, review(5, &[("Code-Review", 2)]));
    let q = &queues(&w, &l)[0];
    assert_eq!(
        q.items.iter().map(|i| i.change.get()).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // A change in another queue it depends on: it waits.
    let mut r = review(1, &[("Code-Review", 2)]);
    r.depends_on = vec![n(1)];
    let mut w = world();
    with_review(&mut w, &l, "api", 3, 30, r);
    approved(&mut w, &l, "docs", 1, 10, 5);
    let core = queues(&w, &l)
        .into_iter()
        .find(|q| q.name == "queue:core")
        .unwrap();
    assert!(core.items.is_empty());
    assert!(core.waiting[0].2.contains("another queue"), "{core:?}");
}

#[test]
fn a_new_patchset_or_a_removed_vote_takes_a_change_out_and_cancels_its_build() {
    let l = layout(&[]);
    let (mut w, [one, two, _]) = three_in_flight(&l);
    // Change 1's vote is removed: out, its build cancelled, the others merged again.
    with_review(&mut w, &l, "api", 1, 10, review(10, &[]));
    let a = plan(&w, &l);
    assert!(
        a.contains(&Action::Cancel {
            build_id: one.clone(),
            reason: "reset: the state it tested is no longer wanted (an item ahead of it left the \
                 queue, its branch moved, or the window shrank)"
                .into()
        })
    );
    assert!(words(&a).contains(&"merge 20 onto 1".to_owned()));
    // A new patchset of change 2 (its votes reset) takes it out too.
    w.absorb(Fact::RefChanged {
        event: crate::gerrit::RefEvent::PatchsetCreated {
            project: p("api"),
            change: n(2),
            patchset: 2u64.try_into().unwrap(),
            git_ref: "refs/changes/02/2/2".parse().unwrap(),
            commit: commit(22),
        },
        first_sight: false,
    });
    assert!(
        plan(&w, &l).contains(&Action::Cancel {
            build_id: two,
            reason: "reset: the state it tested is no longer wanted (an item ahead of it left the \
                 queue, its branch moved, or the window shrank)"
                .into()
        })
    );
}

#[test]
fn a_shared_queue_lands_in_order_across_projects() {
    let l = layout(&[]);
    let mut w = world();
    approved(&mut w, &l, "api", 1, 10, 1);
    approved(&mut w, &l, "ext", 2, 20, 2);
    let q = &queues(&w, &l);
    assert_eq!(q.len(), 1, "api and ext share queue core");
    merged(&mut w, "api", TIP, 10, 11);
    merged(&mut w, "ext", TIP, 20, 21);
    let reqs = requests(&plan(&w, &l));
    // ext's state is its own tip with its change (api's change is in another repository).
    assert_eq!(short(&reqs[&2].source_commit), "21");
    let one = in_flight(&mut w, reqs[&1].clone());
    let two = in_flight(&mut w, reqs[&2].clone());
    // ext passed first: it waits for api's change ahead of it.
    w.builds.get_mut(&two).unwrap().result = Some(BuildStatus::Success);
    assert!(
        !plan(&w, &l)
            .iter()
            .any(|x| matches!(x, Action::Land { .. }))
    );
    w.builds.get_mut(&one).unwrap().result = Some(BuildStatus::Success);
    let lands: Vec<Action> = plan(&w, &l)
        .into_iter()
        .filter(|x| matches!(x, Action::Land { .. }))
        .collect();
    assert_eq!(lands, vec![Action::Land { build_id: one }]);
}

#[test]
fn a_landed_change_is_not_enqueued_again_and_a_crash_after_the_push_is_recorded() {
    let l = layout(&[]);
    let (mut w, [one, ..]) = three_in_flight(&l);
    w.builds.get_mut(&one).unwrap().result = Some(BuildStatus::Success);
    // The push happened, the record did not (a crash): the tip is the tested commit, the
    // change is closed. The build is recorded as landed, not retired.
    w.tips.insert((p("api"), main()), commit(11));
    w.changes.remove(&(p("api"), n(1)));
    let a = plan(&w, &l);
    assert!(a.contains(&Action::Land {
        build_id: one.clone()
    }));
    assert!(!a.contains(&Action::Retire { build_id: one }));
}

#[test]
fn gate_notes_round_trip_through_comment_lines() {
    let note = GateNote {
        event: GateEvent::Failed,
        entry: GateEntry {
            patchset: 3u64.try_into().unwrap(),
            since: at(5),
            rechecks: 2,
        },
    };
    assert_eq!(GateNote::parse(&note.line()), Some(note));
    assert_eq!(GateNote::parse("Gate: exploded 3/1/2"), None);
    assert_eq!(GateNote::parse("Gate: failed 3/x/2"), None);
    assert_eq!(
        crate::reconcile::depends_on_footers(
            "Fix\n\nDepends-On: https://gerrit.example.org/c/mediawiki/core/+/4711\ndepends-on: 12\nDepends-On: I0123456789abcdef\n"
        ),
        vec![n(4711), n(12)]
    );
}

#[test]
fn a_check_with_depends_on_is_tested_with_what_it_depends_on_merged() {
    let l = layout(&[]);
    let mut w = world();
    // Change 2 (docs) says Depends-On: 1, an open change of docs; neither is approved.
    let mut r2 = review(2, &[]);
    r2.depends_on = vec![n(1)];
    with_review(&mut w, &l, "docs", 1, 10, review(1, &[]));
    with_review(&mut w, &l, "docs", 2, 20, r2);
    let checks = |a: &[Action]| -> Vec<(u32, String)> {
        a.iter()
            .filter_map(|x| match x {
                Action::RequestBuild { request, .. } if request.pipeline == PipelineKind::Check => {
                    Some((request.change.unwrap().get(), short(&request.source_commit)))
                }
                _ => None,
            })
            .collect()
    };
    let a = plan(&w, &l);
    // Change 1 is checked as it is; change 2 waits for its state: tip + change 1, then itself.
    assert_eq!(checks(&a), [(1, "10".to_owned())]);
    assert!(
        words(&a).contains(&"merge 10 onto 1".to_owned()),
        "{:?}",
        words(&a)
    );
    merged(&mut w, "docs", TIP, 10, 11);
    assert!(words(&plan(&w, &l)).contains(&"merge 20 onto 11".to_owned()));
    merged(&mut w, "docs", 11, 20, 21);
    let a = plan(&w, &l);
    assert_eq!(checks(&a), [(1, "10".to_owned()), (2, "21".to_owned())]);
    let r = a
        .iter()
        .find_map(|x| match x {
            Action::RequestBuild { request, .. } if request.change == Some(n(2)) => Some(request),
            _ => None,
        })
        .unwrap();
    // Untrusted as any check, its jobs from its own commit, its state said in the request.
    assert_eq!(r.trust, crate::model::Trust::Untrusted);
    assert_eq!(crate::reconcile::pipeline_commit(r), &commit(20));
    let Some(BuildCause::DependsOn { base, ahead, .. }) = &r.cause else {
        panic!("{r:?}")
    };
    assert_eq!(
        (base, ahead.len(), ahead[0].change),
        (&commit(TIP), 1, n(1))
    );
    // A dependency that does not merge: checked alone.
    w.merges.clear();
    w.absorb(Fact::Merged {
        project: p("docs"),
        onto: commit(TIP),
        commit: commit(10),
        outcome: MergeOutcome::Conflict(vec!["x".into()]),
    });
    assert_eq!(
        checks(&plan(&w, &l)),
        [(1, "10".to_owned()), (2, "20".to_owned())]
    );
}

#[test]
fn a_check_with_depends_on_in_another_project_sees_that_projects_state_with_it_merged() {
    let l = layout(&[]);
    let mut w = world();
    // docs change 2 says Depends-On: 1, an open change of ext.
    let mut r2 = review(2, &[]);
    r2.depends_on = vec![n(1)];
    with_review(&mut w, &l, "ext", 1, 10, review(1, &[]));
    with_review(&mut w, &l, "docs", 2, 20, r2);
    let docs_check = |a: &[Action]| {
        a.iter().find_map(|x| match x {
            Action::RequestBuild { request, .. }
                if request.pipeline == PipelineKind::Check && request.change == Some(n(2)) =>
            {
                Some(request.clone())
            }
            _ => None,
        })
    };
    // First ext's state is made: its tip with change 1 merged.
    let a = plan(&w, &l);
    assert!(docs_check(&a).is_none());
    assert!(
        words(&a).contains(&"merge 10 onto 1".to_owned()),
        "{:?}",
        words(&a)
    );
    merged(&mut w, "ext", TIP, 10, 11);
    let r = docs_check(&plan(&w, &l)).expect("the check is requested");
    // docs itself is checked as it is; its jobs that require ext see ext's state.
    assert_eq!(r.source_commit, commit(20));
    let Some(BuildCause::DependsOn {
        required, ahead, ..
    }) = &r.cause
    else {
        panic!("{r:?}")
    };
    assert!(ahead.is_empty());
    assert_eq!(
        (required[0].project.as_str(), &required[0].commit),
        ("ext", &commit(11))
    );
    // The build is not superseded by itself (its id includes ext's state).
    let id = r.build_id.clone();
    let mut w2 = w.clone();
    w2.absorb(Fact::BuildInFlight(Box::new(BuildState {
        request: r,
        result: None,
        reported: false,
        cancelled: false,
        jobs: BTreeMap::new(),
        depth: 0,
        recorded: None,
        landed: None,
    })));
    assert!(
        !plan(&w2, &l)
            .iter()
            .any(|x| matches!(x, Action::Cancel { build_id, .. } if *build_id == id)),
    );
}
