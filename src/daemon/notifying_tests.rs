//! Facts -> notification events, as a table: which facts make which events, with which
//! keys, projects, links and tasks.

use std::collections::BTreeMap;

use super::*;
use crate::model::record::{BuildRequest, BuildResult, Freeze, JobResult};
use crate::model::{BuildId, Digest, Trust};
use crate::reconcile::{BuildState, ConfigState};

fn commit(n: u32) -> CommitId {
    format!("{n:040x}").parse().expect("a commit id")
}

fn layout() -> Layout {
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |p: &str, t: &str| {
        files.insert(p.to_owned(), t.as_bytes().to_vec());
    };
    put(
        "seakeeper.yaml",
        "public_url: https://ci.example.org/\nregistries:\n  t: { url: \"oci:/tmp/t\" }\n",
    );
    put(
        "environments.yaml",
        "environments:\n  - {name: production, registry: t}\n",
    );
    put(
        "projects/mediawiki/core.yaml",
        "pipelines: [check, gate, post-merge, periodic]\nimages: [core]\n",
    );
    put(
        "freezes/holidays.yaml",
        "scope: [\"promote:production\"]\nreason: Year-end\nticket: T4242\n",
    );
    crate::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"))
}

fn world() -> World {
    let mut w = World::new(
        "2026-12-01T10:00:00Z".parse().expect("a time"),
        ConfigState {
            head: commit(0xc0),
            layout_commit: commit(0xc0),
            author: "RelEng".into(),
            errors: Vec::new(),
            unreported: None,
        },
    );
    for (id, pipeline) in [
        ("pm", PipelineKind::PostMerge),
        ("per", PipelineKind::Periodic),
        ("gate", PipelineKind::Gate),
        ("chk", PipelineKind::Check),
    ] {
        let request = BuildRequest {
            build_id: id.parse().expect("a build id"),
            pipeline,
            project: "mediawiki/core".parse().expect("a project"),
            change: None,
            patchset: None,
            git_ref: "refs/heads/master".parse().expect("a ref"),
            source_commit: commit(0xabc),
            config_commit: commit(0xc0),
            trust: Trust::Trusted,
            requested_at: "2026-12-01T09:00:00Z".parse().expect("a time"),
            jobs: vec!["unit".into()],
            cause: None,
        };
        w.builds.insert(
            request.build_id.clone(),
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
    }
    w
}

fn result(id: &str, status: BuildStatus) -> Fact {
    let id: BuildId = id.parse().expect("a build id");
    Fact::ResultRecorded {
        result: BuildResult {
            build_id: id,
            status,
            started_at: "2026-12-01T09:00:00Z".parse().expect("a time"),
            finished_at: "2026-12-01T09:01:00Z".parse().expect("a time"),
            jobs: vec![JobResult {
                name: "unit".into(),
                status,
                duration_ms: 61_000,
                log_digest: Some(Digest::of(b"log")),
                needs: Vec::new(),
                image: None,
            }],
            artifacts: Vec::new(),
        },
        commit: commit(0x1ed),
    }
}

fn freeze(state: FreezeState, name: &str) -> Fact {
    Fact::FreezeRecorded(Freeze {
        name: name.parse().expect("a freeze name"),
        state,
        scope: vec!["promote:production".into()],
        reason: "Year-end".into(),
        config_commit: commit(0xf0),
        author: "RelEng".into(),
    })
}

/// What an event should be: kind, key, project, tasks, first link.
type Want<'a> = (EventKind, String, Option<&'a str>, Vec<u32>, Option<String>);

#[test]
fn facts_to_events() {
    let l = layout();
    let w = world();
    let remembered: BTreeMap<FreezeName, String> =
        [("old".parse().expect("a name"), "T7".to_owned())].into();
    let message = |_: &ProjectName, c: &CommitId| {
        (c == &commit(0xabc)).then(|| "Fix it\n\nBug: T100\nBug: T101\n".to_owned())
    };
    let none = Action::RecordFreeze {
        freeze: match freeze(FreezeState::Active, "x") {
            Fact::FreezeRecorded(f) => f,
            _ => unreachable!("a freeze fact"),
        },
    };
    let digest = Digest::of(b"image");
    let log = Digest::of(b"log");
    // (fact, action, kind, key, project, tasks, first link)
    #[rustfmt::skip]
    let table: Vec<(Fact, Action, Option<Want>)> = vec![
        (result("pm", BuildStatus::Failure), none.clone(), Some((EventKind::PostMergeFailed, "build-failed:pm".into(), Some("mediawiki/core"), vec![100, 101], Some("https://ci.example.org/builds/pm".into())))),
        (result("per", BuildStatus::TimedOut), none.clone(), Some((EventKind::PeriodicFailed, "build-failed:per".into(), Some("mediawiki/core"), vec![], Some("https://ci.example.org/builds/per".into())))),
        (result("gate", BuildStatus::Error), none.clone(), Some((EventKind::GateFailed, "build-failed:gate".into(), Some("mediawiki/core"), vec![], Some("https://ci.example.org/builds/gate".into())))),
        (result("pm", BuildStatus::Success), none.clone(), None),
        (result("pm", BuildStatus::Cancelled), none.clone(), None),
        (result("chk", BuildStatus::Failure), none.clone(), None),
        (result("unknown", BuildStatus::Failure), none.clone(), None),
        (freeze(FreezeState::Active, "holidays"), none.clone(), Some((EventKind::FreezeStarted, format!("freeze-started:holidays:{}", commit(0xf0)), None, vec![4242], None))),
        (freeze(FreezeState::Lifted, "old"), none.clone(), Some((EventKind::FreezeEnded, format!("freeze-ended:old:{}", commit(0xf0)), None, vec![7], None))),
        (freeze(FreezeState::Lifted, "forgotten"), none.clone(), Some((EventKind::FreezeEnded, format!("freeze-ended:forgotten:{}", commit(0xf0)), None, vec![], None))),
        (Fact::Promoted { environment: "production".parse().expect("env"), image: "core".parse().expect("image"), digest: digest.clone(), at: "2026-12-01T10:00:00Z".parse().expect("a time") }, none.clone(),
         Some((EventKind::Promoted, format!("promoted:production:core:{digest}"), Some("mediawiki/core"), vec![], Some(format!("https://ci.example.org/trace/{digest}"))))),
        (Fact::RefusalRecorded { environment: "production".parse().expect("env"), image: "core".parse().expect("image"), digest: digest.clone(), config_commit: commit(0xc0) },
         Action::Refuse { environment: "production".parse().expect("env"), image: "core".parse().expect("image"), digest: digest.clone(), reason: "no attestation".into() },
         Some((EventKind::PromotionHeld, format!("promotion-held:production:core:{digest}:{}", commit(0xc0)), Some("mediawiki/core"), vec![], Some(format!("https://ci.example.org/trace/{digest}"))))),
        (Fact::ConfigHead { head: commit(0xbad), author: None, errors: vec!["seakeeper.yaml: broken".into()], report: true }, none.clone(), Some((EventKind::ConfigInvalid, format!("config-invalid:{}", commit(0xbad)), None, vec![], None))),
        (Fact::ConfigHead { head: commit(0x600d), author: None, errors: vec![], report: true }, none.clone(), None),
        (Fact::InvalidConfigReported(commit(0xbad)), none.clone(), None),
        (Fact::KeysChanged, none.clone(), None),
        (Fact::KeysChanged, Action::Hold { environment: "production".parse().expect("env"), image: "core".parse().expect("image"), digest: digest.clone(), reason: "production is frozen by holidays (T4242): Year-end".into(), freeze: Some("holidays".parse().expect("a name")) },
         Some((EventKind::PromotionHeld, format!("promotion-held:production:core:{digest}:holidays:{}", commit(0xc0)), Some("mediawiki/core"), vec![], Some(format!("https://ci.example.org/trace/{digest}"))))),
        (Fact::KeysChanged, Action::Hold { environment: "production".parse().expect("env"), image: "core".parse().expect("image"), digest: digest.clone(), reason: "waiting".into(), freeze: None }, None),
    ];
    for (fact, action, want) in table {
        let got = events(
            Some(&action),
            std::slice::from_ref(&fact),
            &w,
            &l,
            &remembered,
            &message,
        );
        let got: Option<_> = got.first().map(|e| {
            (
                e.kind,
                e.key.clone(),
                e.project.as_ref().map(|p| p.as_str().to_owned()),
                e.tasks.clone(),
                e.links.first().map(|(_, u)| u.clone()),
            )
        });
        let want = want.map(|(k, key, p, t, link)| (k, key, p.map(str::to_owned), t, link));
        assert_eq!(got, want, "{fact:?}");
    }
    // What people read.
    let e = &events(
        Some(&none),
        &[result("pm", BuildStatus::Failure)],
        &w,
        &l,
        &remembered,
        &message,
    )[0];
    assert_eq!(
        e.line(),
        format!(
            "post-merge build of mediawiki/core refs/heads/master at {} failure: unit (failure) - \
             https://ci.example.org/builds/pm",
            &commit(0xabc).as_str()[..12]
        )
    );
    assert_eq!(
        e.links[2],
        ("Log".into(), format!("https://ci.example.org/logs/{log}"))
    );
    let refusal = Fact::RefusalRecorded {
        environment: "production".parse().expect("env"),
        image: "core".parse().expect("image"),
        digest: digest.clone(),
        config_commit: commit(0xc0),
    };
    let refuse = Action::Refuse {
        environment: "production".parse().expect("env"),
        image: "core".parse().expect("image"),
        digest,
        reason: "no attestation".into(),
    };
    let e = &events(Some(&refuse), &[refusal], &w, &l, &remembered, &message)[0];
    assert!(e.summary.ends_with(": no attestation"), "{}", e.summary);
    let e = &events(
        Some(&none),
        &[Fact::ConfigHead {
            head: commit(0xbad),
            author: None,
            errors: vec!["seakeeper.yaml: broken".into()],
            report: true,
        }],
        &w,
        &l,
        &remembered,
        &message,
    )[0];
    assert!(
        e.summary
            .ends_with("(1 error); still running config 000000000000: seakeeper.yaml: broken"),
        "{}",
        e.summary
    );
}

#[test]
fn bug_footers_are_read_from_the_projects_repository_and_a_missing_commit_is_none() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let repo = dir.path().join("mediawiki/core.git");
    std::fs::create_dir_all(&repo).expect("mkdir");
    let git = |args: &[&str]| crate::git::testing::git(&repo, args, None);
    git(&["init", "-q", "--bare"]);
    let tree = String::from_utf8(git(&["mktree"])).expect("utf-8");
    let id = crate::git::testing::git(
        &repo,
        &["commit-tree", tree.trim()],
        Some(b"Fix the parser\n\nBug: T100\nChange-Id: I1\n"),
    );
    let id: CommitId = String::from_utf8(id)
        .expect("utf-8")
        .trim()
        .parse()
        .expect("a commit id");
    let sources = RwLock::new(Sources::Local(dir.path().to_owned()));
    let project: ProjectName = "mediawiki/core".parse().expect("a project");
    let message = commit_message(&sources, &project, &id).expect("the message");
    assert_eq!(notify::bug_footers(&message), [100]);
    assert_eq!(commit_message(&sources, &project, &commit(0x999)), None);
    let other: ProjectName = "no/such".parse().expect("a project");
    assert_eq!(commit_message(&sources, &other, &id), None);
}
