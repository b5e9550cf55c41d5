//! What each fact means for the World, as tables.

use super::*;
use crate::gerrit::Account;
use crate::gerrit::rest::Message;

fn commit(n: u32) -> CommitId {
    format!("{n:040x}").parse().unwrap()
}

fn p(s: &str) -> ProjectName {
    s.parse().unwrap()
}

fn r(s: &str) -> RefName {
    s.parse().unwrap()
}

fn world() -> World {
    World::new(
        "2026-12-01T10:00:00Z".parse().unwrap(),
        ConfigState {
            head: commit(0),
            layout_commit: commit(0),
            author: String::new(),
            errors: Vec::new(),
            unreported: None,
        },
    )
}

fn patchset_created(change: u32, patchset: u32, c: u32) -> RefEvent {
    RefEvent::PatchsetCreated {
        project: p("api"),
        change: u64::from(change).try_into().unwrap(),
        patchset: u64::from(patchset).try_into().unwrap(),
        git_ref: r(&format!(
            "refs/changes/{:02}/{change}/{patchset}",
            change % 100
        )),
        commit: commit(c),
    }
}

fn moved(c: u32) -> RefEvent {
    RefEvent::BranchMoved {
        project: p("api"),
        git_ref: r("refs/heads/main"),
        old: commit(1),
        commit: commit(c),
    }
}

fn seen(w: &mut World, event: RefEvent, first_sight: bool) {
    w.absorb(Fact::RefChanged { event, first_sight });
}

fn change(status: ChangeStatus, patchset: u32, messages: &[(&str, u32, &str)]) -> Change {
    Change {
        project: p("api"),
        branch: "main".into(),
        change_id: format!("I{}", "1".repeat(40)),
        number: 7u64.try_into().unwrap(),
        subject: "s".into(),
        status,
        owner: Account::default(),
        current_revision: Some(commit(70 + patchset)),
        current_patchset: Some(u64::from(patchset).try_into().unwrap()),
        current_ref: Some(r(&format!("refs/changes/07/7/{patchset}"))),
        labels: BTreeMap::new(),
        messages: messages
            .iter()
            .map(|(user, ps, text)| Message {
                id: "m".into(),
                author: Some(Account {
                    username: Some((*user).into()),
                    ..Account::default()
                }),
                date: String::new(),
                message: (*text).into(),
                tag: None,
                patchset: Some(u64::from(*ps).try_into().unwrap()),
            })
            .collect(),
        meta_rev: None,
        updated: String::new(),
        submission_id: None,
        work_in_progress: false,
        is_private: false,
        current_parents: Vec::new(),
        current_message: None,
        label_values: BTreeMap::new(),
    }
}

fn read(w: &mut World, c: Change) {
    w.absorb(Fact::ChangeRead {
        project: p("api"),
        change: 7u64.try_into().unwrap(),
        details: Box::new(c),
        our_user: Some("seakeeper".into()),
    });
}

/// Events, first sight; then the change's patchset, main's tip, whether main moved.
type RefCase = (Vec<RefEvent>, bool, Option<u32>, Option<u32>, bool);

/// A change's status, patchset and messages; then its patchset and rechecks in the World.
type ChangeCase<'a> = (
    ChangeStatus,
    u32,
    Vec<(&'a str, u32, &'a str)>,
    Option<(u32, u32)>,
);

#[test]
fn ref_events_table() {
    let slot = (p("api"), 7u64.try_into().unwrap());
    let main = (p("api"), r("refs/heads/main"));
    // (events, first sight, the change's patchset after, main's tip, main moved)
    let cases: Vec<RefCase> = vec![
        // A new patchset is seen; one on the first look is the baseline, not new.
        (
            vec![patchset_created(7, 1, 71)],
            false,
            Some(1),
            None,
            false,
        ),
        (vec![patchset_created(7, 1, 71)], true, None, None, false),
        // An older patchset never replaces a newer one.
        (
            vec![patchset_created(7, 2, 72), patchset_created(7, 1, 71)],
            false,
            Some(2),
            None,
            false,
        ),
        // A branch that moves onto the change's commit merged it.
        (
            vec![patchset_created(7, 1, 71), moved(71)],
            false,
            None,
            Some(71),
            true,
        ),
        (
            vec![patchset_created(7, 1, 71), moved(99)],
            false,
            Some(1),
            Some(99),
            true,
        ),
        // On the first look a branch is a tip, not a move.
        (vec![moved(99)], true, None, Some(99), false),
        // Deleted: the change's refs, the branch.
        (
            vec![
                patchset_created(7, 1, 71),
                RefEvent::RefUpdated {
                    project: p("api"),
                    git_ref: r("refs/changes/07/7/1"),
                    old: Some(commit(71)),
                    commit: None,
                },
            ],
            false,
            None,
            None,
            false,
        ),
        (
            vec![
                moved(99),
                RefEvent::BranchDeleted {
                    project: p("api"),
                    git_ref: r("refs/heads/main"),
                    old: commit(99),
                },
            ],
            false,
            None,
            None,
            false,
        ),
    ];
    for (i, (events, first, patchset, tip, was_moved)) in cases.into_iter().enumerate() {
        let mut w = world();
        for e in events {
            seen(&mut w, e, first);
        }
        assert_eq!(
            w.changes.get(&slot).map(|c| c.patchset.get()),
            patchset,
            "case {i}"
        );
        assert_eq!(w.tips.get(&main), tip.map(commit).as_ref(), "case {i}");
        assert_eq!(w.moved.contains_key(&main), was_moved, "case {i}");
    }
}

#[test]
fn changes_read_from_gerrit_table() {
    let slot = (p("api"), 7u64.try_into().unwrap());
    // (status, patchset, messages, the change's patchset and rechecks after)
    let cases: Vec<ChangeCase<'_>> = vec![
        (ChangeStatus::New, 2, vec![], Some((2, 0))),
        // Rechecks: people's, on the current patchset, not seakeeper's own.
        (
            ChangeStatus::New,
            2,
            vec![
                ("alice", 2, "Patch Set 2:\n\nrecheck"),
                ("alice", 1, "recheck"),
                ("seakeeper", 2, "recheck"),
                ("bob", 2, "please recheck"),
                ("bob", 2, "Patch Set 2: Code-Review+1\n\nRecheck"),
            ],
            Some((2, 2)),
        ),
        // Merged or abandoned: the change leaves the World.
        (ChangeStatus::Merged, 2, vec![], None),
        (ChangeStatus::Abandoned, 2, vec![], None),
    ];
    for (i, (status, ps, messages, after)) in cases.into_iter().enumerate() {
        let mut w = world();
        seen(&mut w, patchset_created(7, 1, 71), false);
        read(&mut w, change(status, ps, &messages));
        assert_eq!(
            w.changes.get(&slot).map(|c| (c.patchset.get(), c.rechecks)),
            after,
            "case {i}"
        );
    }
    // A read that is older than what the ref watcher saw since changes nothing.
    let mut w = world();
    seen(&mut w, patchset_created(7, 3, 73), false);
    read(&mut w, change(ChangeStatus::New, 2, &[]));
    assert_eq!(w.changes[&slot].patchset.get(), 3);
}

#[test]
fn config_facts_and_builds() {
    let mut w = world();
    w.absorb(Fact::PipelinesRead(
        [((p("api"), commit(5)), Err("invalid".to_owned()))].into(),
    ));
    // Another layout: pipeline files resolve again.
    w.absorb(Fact::LayoutInUse(commit(0)));
    assert_eq!(w.pipelines.len(), 1);
    w.absorb(Fact::LayoutInUse(commit(1)));
    assert!(w.pipelines.is_empty());
    // An invalid HEAD is reported once; an unreadable one is not reported on a change.
    w.absorb(Fact::ConfigHead {
        head: commit(2),
        author: Some("a <a@x>".into()),
        errors: vec!["bad".into()],
        report: true,
    });
    let pending = Some((commit(2), vec!["bad".to_owned()]));
    assert_eq!(w.config.unreported, pending);
    w.absorb(Fact::InvalidConfigReported(commit(9)));
    assert_eq!(
        w.config.unreported, pending,
        "another head's report changes nothing"
    );
    // HEAD moves on (fixed, or unreadable) before the report went out: it still goes out.
    w.absorb(Fact::ConfigHead {
        head: commit(3),
        author: None,
        errors: vec!["unreadable".into()],
        report: false,
    });
    assert_eq!(w.config.unreported, pending);
    w.absorb(Fact::InvalidConfigReported(commit(2)));
    assert_eq!(w.config.unreported, None);
    assert_eq!(w.config.author, "a <a@x>");
    // A build done leaves the builds in flight and is never requested again.
    let id: BuildId = "check-0123456789abcdef".parse().unwrap();
    w.absorb(Fact::BuildDone(id.clone()));
    assert!(w.done.contains(&id) && !w.builds.contains_key(&id));
}

#[test]
fn recheck_comments() {
    assert!(is_recheck("Patch Set 3:\n\nrecheck"));
    assert!(is_recheck("recheck"));
    assert!(is_recheck("Patch Set 2: Code-Review+1\n\n  Recheck  "));
    assert!(!is_recheck("Patch Set 3:\n\nplease recheck this"));
    assert!(!is_recheck("Patch Set 3: recheckx"));
}
