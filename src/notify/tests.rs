//! Routing as a table: event kind x project glob x environment -> targets; and what a
//! delivery says.

use super::*;
use crate::config::files::{NotificationsFile, NotifyRoute, NotifyTarget, PhabricatorTarget};

fn target(kind: &str) -> NotifyTarget {
    let yaml = match kind {
        "irc" => "irc: {server: irc.example.org, channel: \"#ci\", nick: bot}",
        "email" => "email: {server: smtp.example.org, from: ci@example.org, to: [a@example.org]}",
        _ => "phabricator: {url: https://phabricator.example.org}",
    };
    yaml_serde::from_str(yaml).expect("a valid target")
}

fn file() -> NotificationsFile {
    let route =
        |events: &[EventKind], projects: &[&str], envs: &[&str], targets: &[&str]| NotifyRoute {
            events: events.to_vec(),
            projects: projects.iter().map(|s| s.to_string()).collect(),
            environments: envs.iter().map(|s| s.to_string()).collect(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
        };
    NotificationsFile {
        targets: [
            ("mw-irc".to_owned(), target("irc")),
            ("ops-mail".to_owned(), target("email")),
            ("phab".to_owned(), target("phabricator")),
        ]
        .into_iter()
        .collect(),
        routes: vec![
            route(
                &[EventKind::PostMergeFailed, EventKind::GateFailed],
                &["mediawiki/*"],
                &[],
                &["mw-irc", "phab"],
            ),
            route(
                &[EventKind::Promoted, EventKind::PromotionHeld],
                &[],
                &["production"],
                &["ops-mail", "mw-irc"],
            ),
            route(
                &[EventKind::FreezeStarted, EventKind::FreezeEnded],
                &["operations/*"],
                &[],
                &["ops-mail", "phab"],
            ),
            route(&[EventKind::PostMergeFailed], &["*"], &[], &["ops-mail"]),
        ],
    }
}

fn event(kind: EventKind, project: Option<&str>, env: Option<&str>) -> Event {
    Event {
        kind,
        key: format!("{}:x", kind.as_str()),
        project: project.map(|p| p.parse().expect("a project name")),
        environment: env.map(|e| e.parse().expect("an environment name")),
        summary: "something happened".into(),
        details: vec![],
        links: vec![("Build".into(), "https://ci.example.org/builds/b".into())],
        tasks: vec![],
    }
}

/// (event kind, project, environment, the targets it goes to).
type Row<'a> = (EventKind, Option<&'a str>, Option<&'a str>, &'a [&'a str]);

#[test]
fn routing_table() {
    use EventKind::*;
    let f = file();
    #[rustfmt::skip]
    let table: &[Row] = &[
        (PostMergeFailed, Some("mediawiki/core"), None, &["mw-irc", "phab", "ops-mail"]),
        (PostMergeFailed, Some("operations/puppet"), None, &["ops-mail"]),
        (GateFailed, Some("mediawiki/extensions/Cite"), None, &["mw-irc", "phab"]),
        (GateFailed, Some("operations/puppet"), None, &[]),
        (PeriodicFailed, Some("mediawiki/core"), None, &[]),
        (Promoted, Some("mediawiki/core"), Some("production"), &["ops-mail", "mw-irc"]),
        (Promoted, Some("mediawiki/core"), Some("staging"), &[]),
        (PromotionHeld, None, Some("production"), &["ops-mail", "mw-irc"]),
        // Events about no project are not filtered by project globs.
        (FreezeStarted, None, None, &["ops-mail", "phab"]),
        (FreezeEnded, None, None, &["ops-mail", "phab"]),
        (ConfigInvalid, None, None, &[]),
    ];
    for (kind, project, env, want) in table {
        let e = event(*kind, *project, *env);
        assert_eq!(&targets_for(&f, &e), want, "{kind:?} {project:?} {env:?}");
    }
}

#[test]
fn deliveries_name_each_target_once_and_phabricator_only_with_tasks() {
    let f = file();
    let mut e = event(EventKind::PostMergeFailed, Some("mediawiki/core"), None);
    let d = deliveries(&f, std::slice::from_ref(&e));
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        ["post-merge-failed:x|mw-irc", "post-merge-failed:x|ops-mail"]
    );
    assert_eq!(
        d[0].message,
        Message::Irc("something happened - https://ci.example.org/builds/b".into())
    );
    e.tasks = vec![12, 34];
    let d = deliveries(&f, &[e.clone(), e]);
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "post-merge-failed:x|mw-irc",
            "post-merge-failed:x|phab|T12",
            "post-merge-failed:x|phab|T34",
            "post-merge-failed:x|ops-mail"
        ]
    );
    let Message::Email { subject, body } = &d[3].message else {
        panic!("an email: {:?}", d[3]);
    };
    assert_eq!(subject, "[seakeeper] something happened");
    assert_eq!(
        body,
        "something happened\n\nBuild: https://ci.example.org/builds/b\n"
    );
    assert!(
        d[1].spec.phabricator
            == Some(PhabricatorTarget {
                url: "https://phabricator.example.org".into()
            })
    );
}

#[test]
fn tasks_come_from_bug_footers_and_tickets() {
    assert_eq!(task_id("T123"), Some(123));
    assert_eq!(task_id(" T7 "), Some(7));
    for bad in ["123", "T", "T0", "Tx1", "T12345678901", "t12"] {
        assert_eq!(task_id(bad), None, "{bad}");
    }
    let message = "Fix the parser\n\nBug: T1 is mentioned in the body\n\n\
                   Change-Id: I0123\nBug: T100\nbug: T200\nBug: T100\nBug: nonsense\n";
    assert_eq!(bug_footers(message), [100, 200]);
    assert_eq!(bug_footers("No footers"), Vec::<u32>::new());
}

#[test]
fn lines_are_one_line_and_cut_at_character_boundaries() {
    let mut e = event(EventKind::FreezeStarted, None, None);
    e.summary = "freeze\r\nPRIVMSG #other :spam".into();
    e.links.clear();
    assert_eq!(e.line(), "freeze  PRIVMSG #other :spam");
    assert_eq!(truncate("ééé", 5), "é…");
    assert_eq!(truncate("abc", 3), "abc");
}

#[test]
fn links_follow_public_url() {
    let l = Links::new("https://ci.example.org/");
    let id: BuildId = "b-1".parse().unwrap_or_else(|_| panic!("a build id"));
    assert_eq!(l.build(&id), "https://ci.example.org/builds/b-1");
}
