//! The Gerrit connection against the stand-in (real `git http-backend`, real pushes): the
//! stand-in's wire format against the recorded samples, the REST client on every endpoint,
//! the ref watcher over smart HTTP and locally, retries, the event stream's reconnect and
//! resync, and the webhook endpoint.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use seakeeper::gerrit::{
    self, ChangeStatus, Credentials, EventStream, Hints, RefEvent, RefSource, RefWatcher, Rest,
    RetryPolicy, ReviewInput, Scope, StreamItem, StreamOptions, WebhookServer,
};
use seakeeper::model::{ChangeNumber, ProjectName};
use support::gerrit::Gerrit;
use support::gerrit::events as ev;
use support::gerrit::json::J;
use support::git;

/// The recorded samples (a copy of `../shared/reference/gerrit-samples/`, checked against it
/// by tests/gerrit_events.rs when it is there).
const SAMPLES: &str = "fixtures/gerrit-samples";

fn samples_dir() -> Option<&'static Path> {
    let p = Path::new(SAMPLES);
    assert!(p.is_dir(), "the Gerrit samples ({SAMPLES}) are missing");
    Some(p)
}

fn project(name: &str) -> ProjectName {
    name.parse().unwrap()
}

fn change(n: u32) -> ChangeNumber {
    ChangeNumber::try_from(u64::from(n)).unwrap()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    }
}

fn rest_as(g: &Gerrit, user: &str) -> Rest {
    let a = g.account(user);
    Rest::new(
        &g.url,
        Some(Credentials::new(&a.username, &a.password)),
        Duration::from_secs(10),
    )
    .unwrap()
    .with_retry(fast_retry())
}

/// A working clone of `project` for pushing changes as alice.
struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn clone(g: &Gerrit, project: &str) -> Work {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("git")
            .args(["clone", "-q", &g.git_url(project)])
            .arg(dir.path().join("w"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Work { dir }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("w")
    }

    /// Commits `file` and pushes it for review; returns the commit.
    fn upload(&self, g: &Gerrit, project: &str, file: &str, change_id: &str) -> String {
        self.upload_to(g, project, file, change_id, "refs/for/main")
    }

    fn upload_to(
        &self,
        g: &Gerrit,
        project: &str,
        file: &str,
        change_id: &str,
        target: &str,
    ) -> String {
        let w = self.path();
        std::fs::write(w.join(file), format!("{file} {change_id}\n")).unwrap();
        git(&w, &["add", file]);
        let msg = format!("Add {file}\n\nIt\u{27}s <new> & shiny.\n\nChange-Id: {change_id}\n");
        git(&w, &["commit", "-q", "-m", &msg]);
        let sha = git(&w, &["rev-parse", "HEAD"]);
        git(
            &w,
            &[
                "push",
                "-q",
                &g.push_url(project, "alice"),
                &format!("HEAD:{target}"),
            ],
        );
        sha
    }
}

fn cid(n: u32) -> String {
    format!("I{n:040x}")
}

// --- the stand-in against the recorded samples -------------------------------------------------

fn account(j: &J) -> ev::AccountAttr {
    ev::AccountAttr {
        name: j.get("name").unwrap().as_str().unwrap().into(),
        email: j.get("email").unwrap().as_str().unwrap().into(),
        username: j.get("username").unwrap().as_str().unwrap().into(),
    }
}

fn change_attr(j: &J) -> ev::ChangeAttr {
    let s = |k: &str| j.get(k).unwrap().as_str().unwrap().to_owned();
    ev::ChangeAttr {
        project: s("project"),
        branch: s("branch"),
        topic: j.get("topic").and_then(J::as_str).map(str::to_owned),
        id: s("id"),
        number: j.get("number").unwrap().as_i64().unwrap() as u32,
        subject: s("subject"),
        owner: account(j.get("owner").unwrap()),
        url: s("url"),
        commit_message: s("commitMessage"),
        hashtags: Vec::new(),
        created_on: j.get("createdOn").unwrap().as_i64().unwrap(),
        status: s("status"),
        wip: j.get("wip").is_some(),
        private: j.get("private").is_some(),
    }
}

fn ps_attr(j: &J) -> ev::PatchSetAttr {
    let s = |k: &str| j.get(k).unwrap().as_str().unwrap().to_owned();
    let i = |k: &str| j.get(k).unwrap().as_i64().unwrap();
    ev::PatchSetAttr {
        number: i("number") as u32,
        revision: s("revision"),
        parents: j
            .get("parents")
            .unwrap()
            .as_arr()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect(),
        git_ref: s("ref"),
        uploader: account(j.get("uploader").unwrap()),
        created_on: i("createdOn"),
        author: account(j.get("author").unwrap()),
        kind: s("kind"),
        size_insertions: i("sizeInsertions"),
        size_deletions: i("sizeDeletions"),
    }
}

/// Rebuilds a sample event with the stand-in's own builders from the sample's values.
fn rebuild(sample: &J) -> Option<J> {
    let at = sample.get("eventCreatedOn")?.as_i64()?;
    let kind = sample.get("type")?.as_str()?;
    let ps = || ps_attr(sample.get("patchSet").unwrap());
    let ch = || change_attr(sample.get("change").unwrap());
    Some(match kind {
        "patchset-created" => {
            ev::patchset_created(&account(sample.get("uploader")?), &ps(), &ch(), at)
        }
        "comment-added" => {
            let approvals: Option<Vec<ev::ApprovalAttr>> =
                sample.get("approvals").and_then(J::as_arr).map(|a| {
                    a.iter()
                        .map(|x| ev::ApprovalAttr {
                            label: x.get("type").unwrap().as_str().unwrap().into(),
                            value: x.get("value").unwrap().as_str().unwrap().parse().unwrap(),
                            old_value: x
                                .get("oldValue")
                                .map(|v| v.as_str().unwrap().parse().unwrap()),
                        })
                        .collect()
                });
            ev::comment_added(
                &account(sample.get("author")?),
                approvals.as_deref(),
                sample.get("comment")?.as_str()?,
                &ps(),
                &ch(),
                at,
            )
        }
        "reviewer-added" => ev::reviewer_added(
            &account(sample.get("reviewer")?),
            &account(sample.get("adder")?),
            &ps(),
            &ch(),
            at,
        ),
        "change-merged" => ev::change_merged(
            &account(sample.get("submitter")?),
            sample.get("newRev")?.as_str()?,
            &ps(),
            &ch(),
            at,
        ),
        "ref-updated" => {
            let u = sample.get("refUpdate")?;
            let s = |k: &str| u.get(k).unwrap().as_str().unwrap().to_owned();
            ev::ref_updated(
                sample.get("submitter").map(account).as_ref(),
                &s("oldRev"),
                &s("newRev"),
                &s("refName"),
                &s("project"),
                at,
            )
        }
        _ => return None,
    })
}

#[test]
fn standin_events_are_byte_identical_to_the_samples() {
    let Some(dir) = samples_dir() else { return };
    let mut lines: Vec<String> = Vec::new();
    for f in [
        "patchset-created.json",
        "comment-added.json",
        "change-merged.json",
        "ref-updated.json",
    ] {
        lines.push(
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .trim_end()
                .to_owned(),
        );
    }
    for l in std::fs::read_to_string(dir.join("stream-sample.jsonl"))
        .unwrap()
        .lines()
    {
        lines.push(l.to_owned());
    }
    let mut checked = 0;
    for line in &lines {
        let sample = J::parse(line).unwrap();
        let kind = sample.get("type").unwrap().as_str().unwrap().to_owned();
        match rebuild(&sample) {
            Some(built) => {
                assert_eq!(
                    built.to_gson(),
                    *line,
                    "{kind}: the stand-in writes it differently"
                );
                checked += 1;
            }
            None => panic!("the stand-in cannot write a {kind} event"),
        }
    }
    assert!(checked >= 8, "only {checked} sample lines checked");
    // Gson's escaping and the comment text format (§1.5).
    let mut s = String::new();
    support::gerrit::json::escape("it's <a> & b=c\u{1}", &mut s);
    assert_eq!(s, r#""it\u0027s \u003ca\u003e \u0026 b\u003dc\u0001""#);
    assert_eq!(
        ev::comment_text(
            3,
            &[("Verified".into(), 1), ("Code-Review".into(), -1)],
            None
        ),
        "Patch Set 3: Code-Review-1 Verified+1"
    );
    assert_eq!(
        ev::comment_text(2, &[], Some("  recheck \n")),
        "Patch Set 2:\n\nrecheck"
    );
}

/// Checks that `live` has the sample's form: the same keys in the same order (fields that
/// Gerrit leaves out when empty may be missing on either side), the same JSON types, recursively.
fn same_shape(path: &str, sample: &J, live: &J, optional: &[&str]) {
    assert_eq!(sample.kind(), live.kind(), "{path}: type differs");
    match (sample, live) {
        (J::Obj(_), J::Obj(_)) => {
            let sk: Vec<&str> = sample.keys();
            let lk: Vec<&str> = live.keys();
            let req = |ks: &[&str]| -> Vec<String> {
                ks.iter()
                    .filter(|k| !optional.contains(k))
                    .map(|k| k.to_string())
                    .collect()
            };
            assert_eq!(req(&sk), req(&lk), "{path}: fields differ");
            let common: Vec<&&str> = lk.iter().filter(|k| sk.contains(k)).collect();
            let in_sample: Vec<&&str> = sk.iter().filter(|k| lk.contains(k)).collect();
            assert_eq!(common, in_sample, "{path}: field order differs");
            for k in common {
                if *k == "revisions" {
                    // A map keyed by commit: compare the entries' form.
                    let first = |j: &J| match j.get(k) {
                        Some(J::Obj(f)) => f.first().map(|(_, v)| v.clone()),
                        _ => None,
                    };
                    if let (Some(s), Some(l)) = (first(sample), first(live)) {
                        same_shape(&format!("{path}.{k}.*"), &s, &l, optional);
                    }
                    continue;
                }
                same_shape(
                    &format!("{path}.{k}"),
                    sample.get(k).unwrap(),
                    live.get(k).unwrap(),
                    optional,
                );
            }
        }
        (J::Arr(s), J::Arr(l)) => {
            if let Some(first) = s.first() {
                for (i, item) in l.iter().enumerate() {
                    same_shape(&format!("{path}[{i}]"), first, item, optional);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn standin_flow_emits_events_in_the_samples_form_and_order() {
    let Some(dir) = samples_dir() else { return };
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let w = Work::clone(&g, "acme/widgets");
    w.upload_to(
        &g,
        "acme/widgets",
        "frob.rs",
        &cid(1),
        "refs/for/main%r=bob",
    );
    g.review("ci-bot", 1, &[("Verified", 1)], "Build succeeded.")
        .unwrap();
    g.review("bob", 1, &[("Code-Review", 2)], "Looks good to me, thanks!")
        .unwrap();
    let ci = rest_as(&g, "bob");
    ci.submit(&project("acme/widgets"), change(1)).unwrap();
    let lines = g.events();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            J::parse(l)
                .unwrap()
                .get("type")
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "project-created",
            "ref-updated",
            "ref-updated",
            "patchset-created",
            "reviewer-added",
            "ref-updated",
            "comment-added",
            "ref-updated",
            "comment-added",
            "ref-updated",
            "ref-updated",
            "change-merged"
        ]
    );
    for l in &lines {
        assert!(
            l.ends_with('\n') && !l.trim_end().contains('\n'),
            "one line per event"
        );
        let parsed = J::parse(l).unwrap();
        assert_eq!(parsed.to_gson(), l.trim_end(), "compact and Gson-escaped");
        assert!(!l.contains(":null"), "null fields are left out: {l}");
    }
    let optional = [
        "oldValue",
        "submitter",
        "topic",
        "hashtags",
        "wip",
        "private",
    ];
    let live = |kind: &str, nth: usize| -> J {
        let l = lines
            .iter()
            .filter(|l| l.contains(&format!("\"type\":\"{kind}\"")))
            .nth(nth)
            .unwrap();
        J::parse(l).unwrap()
    };
    for (file, kind) in [
        ("patchset-created.json", "patchset-created"),
        ("comment-added.json", "comment-added"),
        ("change-merged.json", "change-merged"),
        ("ref-updated.json", "ref-updated"),
        ("stream-sample.jsonl", "reviewer-added"),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains(&format!("\"type\":\"{kind}\"")))
            .unwrap();
        same_shape(kind, &J::parse(line).unwrap(), &live(kind, 0), &optional);
    }
    // The upload sequence: patchset ref created (zero oldRev), meta, then patchset-created.
    let ps_ref = live("ref-updated", 0);
    let u = ps_ref.get("refUpdate").unwrap();
    assert_eq!(
        u.get("oldRev").unwrap().as_str(),
        Some(support::gerrit::ZERO)
    );
    assert_eq!(
        u.get("refName").unwrap().as_str(),
        Some("refs/changes/01/1/1")
    );
    // The CI vote: every label listed, oldValue only on the changed one, comment format.
    let c = live("comment-added", 0);
    assert_eq!(
        c.get("comment").unwrap().as_str(),
        Some("Patch Set 1: Verified+1\n\nBuild succeeded.")
    );
    let approvals = c.get("approvals").unwrap().as_arr().unwrap();
    assert_eq!(approvals.len(), 2);
    for a in approvals {
        let label = a.get("type").unwrap().as_str().unwrap();
        assert_eq!(a.get("oldValue").is_some(), label == "Verified", "{label}");
    }
    // Submit: the branch ref-updated and change-merged carry the same newRev.
    let merged = live("change-merged", 0);
    let branch = live("ref-updated", 4);
    assert_eq!(
        branch
            .get("refUpdate")
            .unwrap()
            .get("refName")
            .unwrap()
            .as_str(),
        Some("refs/heads/main")
    );
    assert_eq!(
        branch.get("refUpdate").unwrap().get("newRev"),
        merged.get("newRev")
    );
    // Gson escaping of the commit message.
    assert!(lines[3].contains("It\\u0027s \\u003cnew\\u003e \\u0026 shiny."));
    // Every line also parses with seakeeper's own parser.
    for l in &lines {
        gerrit::parse_line(l.trim_end()).unwrap();
    }
}

#[test]
fn standin_rest_answers_have_the_samples_form() {
    let Some(dir) = samples_dir() else { return };
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let w = Work::clone(&g, "acme/widgets");
    w.upload(&g, "acme/widgets", "frob.rs", &cid(1));
    w.upload(&g, "acme/widgets", "frob2.rs", &cid(1));
    g.review("ci-bot", 1, &[("Verified", 1)], "ok").unwrap();
    g.review("bob", 1, &[("Code-Review", 2)], "lgtm").unwrap();
    let a = g.account("ci-bot");
    let agent = ureq::Agent::new_with_defaults();
    let get = |path: &str| -> String {
        let mut r = agent
            .get(&format!("{}/a{path}", g.url))
            .header(
                "Authorization",
                &format!(
                    "Basic {}",
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        format!("{}:{}", a.username, a.password)
                    )
                ),
            )
            .call()
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    };
    let body = get(
        // The sample shows `labels.*.all` and `values`, which Gerrit fills only with
        // DETAILED_LABELS (LabelsJson): ask for it too.
        "/changes/acme%2Fwidgets~1?o=CURRENT_REVISION&o=CURRENT_COMMIT&o=LABELS&o=DETAILED_LABELS&o=DETAILED_ACCOUNTS",
    );
    assert!(body.starts_with(")]}'\n") && body.ends_with("}\n"));
    let live = J::parse(body.strip_prefix(")]}'\n").unwrap()).unwrap();
    let sample_text = std::fs::read_to_string(dir.join(
        "rest/GET_changes_4711.o=CURRENT_REVISION+CURRENT_COMMIT+LABELS+DETAILED_ACCOUNTS.body",
    ))
    .unwrap();
    let sample = J::parse(sample_text.strip_prefix(")]}'\n").unwrap()).unwrap();
    // Label `all` entries may carry a tag; `approved` appears only with a max vote; the
    // stand-in serves git over HTTP only, so `fetch` has no `ssh` entry.
    same_shape("ChangeInfo", &sample, &live, &["tag", "approved", "ssh"]);
    let branches = get("/projects/acme%2Fwidgets/branches/");
    let live = J::parse(branches.strip_prefix(")]}'\n").unwrap()).unwrap();
    let sample_text =
        std::fs::read_to_string(dir.join("rest/GET_projects_acme%2Fwidgets_branches.body"))
            .unwrap();
    let sample = J::parse(sample_text.strip_prefix(")]}'\n").unwrap()).unwrap();
    assert_eq!(live.as_arr().unwrap()[0], sample.as_arr().unwrap()[0]);
    same_shape("branches", &sample, &live, &[]);
    // LABELS alone: the summary only.
    let summary = get("/changes/acme%2Fwidgets~1?o=LABELS");
    let summary = J::parse(summary.strip_prefix(")]}'\n").unwrap()).unwrap();
    let verified = summary.get("labels").unwrap().get("Verified").unwrap();
    assert!(verified.get("approved").is_some() && verified.get("all").is_none());
    // The review and submit answers.
    let post = |path: &str, body: &str| -> String {
        let mut r = agent
            .post(&format!("{}/a{path}", g.url))
            .header("Content-Type", "application/json")
            .header(
                "Authorization",
                &format!(
                    "Basic {}",
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        format!("{}:{}", a.username, a.password)
                    )
                ),
            )
            .send(body)
            .unwrap();
        r.body_mut().read_to_string().unwrap()
    };
    let shape_of = |file: &str, live: &str, optional: &[&str]| {
        let sample_text = std::fs::read_to_string(dir.join(file)).unwrap();
        let sample = J::parse(sample_text.strip_prefix(")]}'\n").unwrap()).unwrap();
        assert!(live.starts_with(")]}'\n"), "{file}: {live}");
        let live = J::parse(live.strip_prefix(")]}'\n").unwrap()).unwrap();
        same_shape(file, &sample, &live, optional);
    };
    let review = post(
        "/changes/acme%2Fwidgets~1/revisions/current/review",
        &std::fs::read_to_string(dir.join("rest/POST_review.request.json")).unwrap(),
    );
    shape_of("rest/POST_review.response.body", &review, &[]);
    let submitted = post("/changes/acme%2Fwidgets~1/submit", "{}");
    shape_of("rest/POST_submit.response.body", &submitted, &[]);
    // The 409 text.
    let rest = rest_as(&g, "bob");
    let other = w.upload(&g, "acme/widgets", "other.rs", &cid(2));
    let _ = other;
    let err = rest
        .submit(&project("acme/widgets"), change(2))
        .unwrap_err();
    let sample_409 =
        std::fs::read_to_string(dir.join("rest/POST_submit.409.response.txt")).unwrap();
    let sample_text = sample_409.split("\n\n").nth(1).unwrap().trim();
    assert_eq!(
        err.conflict().unwrap(),
        sample_text
            .replace("4711", "2")
            .replace("submit requirement 'Verified' is unsatisfied", "submit requirement 'Code-Review' is unsatisfied, submit requirement 'Verified' is unsatisfied")
    );
    // 401 with Gerrit's realm.
    let r = agent
        .get(&format!("{}/a/changes/1", g.url))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        "Basic realm=\"Gerrit Code Review\""
    );
}

// --- the REST client ---------------------------------------------------------------------------

#[test]
fn rest_client_covers_every_endpoint() {
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let w = Work::clone(&g, "acme/widgets");
    let p = project("acme/widgets");
    let sha1 = w.upload(&g, "acme/widgets", "a.rs", &cid(1));
    for i in 2..=5 {
        w.upload(&g, "acme/widgets", &format!("f{i}.rs"), &cid(i));
    }
    let ci = rest_as(&g, "ci-bot");
    assert_eq!(ci.server_version().unwrap(), "3.10.1");

    // Get a change: current revision, patchset, ref, owner, status.
    let c = ci.get_change(&p, change(1)).unwrap();
    assert_eq!(c.current_revision.as_ref().unwrap().as_str(), sha1);
    assert_eq!(c.current_patchset.unwrap().get(), 1);
    assert_eq!(
        c.current_ref.as_ref().unwrap().as_str(),
        "refs/changes/01/1/1"
    );
    assert_eq!(c.status, ChangeStatus::New);
    assert_eq!(c.owner.username.as_deref(), Some("alice"));
    assert_eq!(c.change_id, cid(1));
    assert!(c.meta_rev.is_some());

    // Query with paging: 5 open changes, 2 per page.
    let all = ci
        .query_changes("status:open project:acme/widgets", 2)
        .unwrap();
    let mut numbers: Vec<u32> = all.iter().map(|c| c.number.get()).collect();
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
    let pages = g
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /a/changes/?q="))
        .count();
    assert_eq!(pages, 3, "three pages of at most 2");

    // Post a review: the vote and the tag appear on the change; unknown labels are dropped.
    let mut review =
        ReviewInput::for_pipeline("check", "Build succeeded.\n\n- unit: SUCCESS", Some(1));
    review.labels.insert("No-Such-Label".into(), 1);
    let applied = ci.post_review(&p, change(1), &sha1, &review).unwrap();
    assert_eq!(applied.labels.get("Verified"), Some(&1));
    assert!(!applied.labels.contains_key("No-Such-Label"));
    let c = ci.get_change(&p, change(1)).unwrap();
    let verified = &c.labels["Verified"];
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0].value, 1);
    assert_eq!(
        verified[0].tag.as_deref(),
        Some("autogenerated:seakeeper:check")
    );
    assert_eq!(verified[0].account.username.as_deref(), Some("ci-bot"));
    assert_eq!(c.label_range("Verified"), (1, 0));
    let last = c.messages.last().unwrap();
    assert_eq!(
        last.message,
        "Patch Set 1: Verified+1\n\nBuild succeeded.\n\n- unit: SUCCESS"
    );
    assert_eq!(last.tag.as_deref(), Some("autogenerated:seakeeper:check"));

    // Submit before Code-Review+2: Gerrit's 409 text, surfaced as is.
    let err = ci.submit(&p, change(1)).unwrap_err();
    assert_eq!(err.status(), Some(409));
    assert_eq!(
        err.conflict().unwrap(),
        "Failed to submit 1 change due to the following problems:\nChange 1: Change 1 is not ready: submit requirement 'Code-Review' is unsatisfied."
    );
    assert!(err.to_string().contains("409 Conflict: Failed to submit"));
    g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    let merged = ci.submit(&p, change(1)).unwrap();
    assert_eq!(merged.status, ChangeStatus::Merged);
    assert!(merged.submission_id.is_some());
    let again = ci.submit(&p, change(1)).unwrap_err();
    assert_eq!(again.conflict(), Some("change is merged"));

    // Branches, with Gerrit's HEAD entry.
    let branches = ci.list_branches(&p).unwrap();
    assert_eq!(branches[0].git_ref, "HEAD");
    assert_eq!(branches[0].revision, "main");
    let main = branches
        .iter()
        .find(|b| b.git_ref == "refs/heads/main")
        .unwrap();
    assert_eq!(main.revision, sha1, "change 1 was a fast-forward");

    // Not found and wrong password: Gerrit's status and text, no retries.
    let before = g.requests().len();
    let err = ci.get_change(&p, change(99)).unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("Not found"), "{err}");
    assert_eq!(g.requests().len(), before + 1, "4xx is not retried");
    let bad = Rest::new(
        &g.url,
        Some(Credentials::new("ci-bot", "wrong")),
        Duration::from_secs(5),
    )
    .unwrap();
    let err = bad.get_change(&p, change(1)).unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(
        !err.to_string().contains("wrong"),
        "the password never appears: {err}"
    );

    // A merge that conflicts: a change edits a.rs while main gets another a.rs.
    let w2 = Work::clone(&g, "acme/widgets");
    std::fs::write(w2.path().join("a.rs"), "other\n").unwrap();
    git(&w2.path(), &["add", "a.rs"]);
    git(
        &w2.path(),
        &[
            "commit",
            "-q",
            "-m",
            &format!("Edit a\n\nChange-Id: {}\n", cid(9)),
        ],
    );
    git(
        &w2.path(),
        &[
            "push",
            "-q",
            &g.push_url("acme/widgets", "alice"),
            "HEAD:refs/for/main",
        ],
    );
    let w3 = Work::clone(&g, "acme/widgets");
    std::fs::write(w3.path().join("a.rs"), "conflicting\n").unwrap();
    git(&w3.path(), &["add", "a.rs"]);
    git(&w3.path(), &["commit", "-q", "-m", "Direct push"]);
    git(
        &w3.path(),
        &[
            "push",
            "-q",
            &g.push_url("acme/widgets", "alice"),
            "HEAD:refs/heads/main",
        ],
    );
    let n = g.changes().last().unwrap().number;
    g.review("ci-bot", n, &[("Verified", 1)], "").unwrap();
    g.review("bob", n, &[("Code-Review", 2)], "").unwrap();
    let err = ci.submit(&p, change(n)).unwrap_err();
    assert_eq!(
        err.conflict(),
        Some(
            "Change could not be merged due to a path conflict.\n\nPlease rebase the change locally and upload the rebased commit for review."
        )
    );
}

#[test]
fn rest_client_retries_5xx_and_dropped_connections_but_not_4xx() {
    let g = Gerrit::start();
    g.create_project("p");
    let w = Work::clone(&g, "p");
    w.upload(&g, "p", "a", &cid(1));
    let ci = rest_as(&g, "ci-bot");
    let p = project("p");

    g.fail_next(2);
    let before = g.requests().len();
    ci.get_change(&p, change(1)).unwrap();
    assert_eq!(g.requests().len(), before + 3, "two 500s, then success");

    g.drop_next(1);
    let before = g.requests().len();
    ci.get_change(&p, change(1)).unwrap();
    assert_eq!(
        g.requests().len(),
        before + 2,
        "a dropped connection is retried"
    );

    g.truncate_next(1);
    let before = g.requests().len();
    ci.get_change(&p, change(1)).unwrap();
    assert_eq!(
        g.requests().len(),
        before + 2,
        "a truncated answer is retried"
    );

    // A submit whose answer is lost was applied: the retry's 409 "change is merged" is success.
    g.review("ci-bot", 1, &[("Verified", 1)], "").unwrap();
    g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    g.lose_answer_next(1);
    let merged = ci.submit(&p, change(1)).unwrap();
    assert_eq!(merged.status, ChangeStatus::Merged);

    g.fail_next(10);
    let err = ci.get_change(&p, change(1)).unwrap_err();
    assert_eq!(
        err.status(),
        Some(500),
        "gives up after its attempts: {err}"
    );
    g.fail_next(0);

    // A slow server hits the timeout and is retried.
    let slow = Rest::new(
        &g.url,
        Some(Credentials::new("ci-bot", &g.account("ci-bot").password)),
        Duration::from_millis(300),
    )
    .unwrap()
    .with_retry(fast_retry());
    g.delay_next(1, Duration::from_millis(800));
    slow.get_change(&p, change(1)).unwrap();
}

// --- the ref watcher ---------------------------------------------------------------------------

fn events_of(w: &RefWatcher, p: &ProjectName, scope: Scope) -> Vec<RefEvent> {
    let o = w.observe(p, scope).unwrap();
    let e = o.events.clone();
    w.acknowledge(o).unwrap();
    e
}

#[test]
fn watcher_sees_patchsets_votes_and_branches_over_smart_http_and_survives_restarts() {
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let state = tempfile::tempdir().unwrap();
    let p = project("acme/widgets");
    let rest = rest_as(&g, "ci-bot");
    let source = || RefSource::for_url(&g.url, Some(rest.endpoint().clone())).unwrap();
    let w = RefWatcher::open(source(), state.path()).unwrap();

    // First sight is the baseline.
    let o = w.observe(&p, Scope::All).unwrap();
    assert!(o.first_sight && o.events.is_empty() && o.listed == 1);
    w.acknowledge(o).unwrap();

    // A new patchset is seen within one poll (with its meta ref).
    let work = Work::clone(&g, "acme/widgets");
    let sha = work.upload(&g, "acme/widgets", "x.rs", &cid(1));
    let events = events_of(&w, &p, Scope::All);
    assert_eq!(events.len(), 2, "{events:?}");
    match &events[0] {
        RefEvent::PatchsetCreated {
            change: c,
            patchset,
            commit,
            git_ref,
            ..
        } => {
            assert_eq!((c.get(), patchset.get()), (1, 1));
            assert_eq!(commit.as_str(), sha);
            assert_eq!(git_ref.as_str(), "refs/changes/01/1/1");
        }
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        events[1],
        RefEvent::ChangeMetaUpdated { old: None, .. }
    ));

    // A vote is seen through the meta ref, and read once over REST.
    g.review("bob", 1, &[("Code-Review", 2)], "lgtm").unwrap();
    let mut hints = Hints::default();
    hints.add(p.clone(), Scope::Change(change(1)));
    let work_items = hints.take(std::slice::from_ref(&p));
    let before = g.requests().len();
    let pass = gerrit::pass(&w, Some(&rest), &work_items, 2);
    assert!(pass.errors.is_empty());
    assert_eq!(pass.observations.len(), 1);
    assert!(matches!(
        pass.observations[0].events.as_slice(),
        [RefEvent::ChangeMetaUpdated { old: Some(_), .. }]
    ));
    let details = pass.changes[&(p.clone(), change(1))].as_ref().unwrap();
    assert_eq!(details.label_range("Code-Review"), (2, 0));
    let rest_reads = g.requests()[before..]
        .iter()
        .filter(|r| r.contains("/changes/"))
        .count();
    assert_eq!(rest_reads, 1, "one REST read per moved meta ref");
    let scoped_body_prefix = g.requests()[before..]
        .iter()
        .filter(|r| r.contains("git-upload-pack"))
        .count();
    assert_eq!(
        scoped_body_prefix, 1,
        "one ls-refs request, no handshake again"
    );
    for o in pass.observations {
        w.acknowledge(o).unwrap();
    }

    // A submit moves the branch.
    g.review("ci-bot", 1, &[("Verified", 1)], "").unwrap();
    rest.submit(&p, change(1)).unwrap();
    let events = events_of(&w, &p, Scope::All);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, RefEvent::BranchMoved { commit, .. } if commit.as_str() == sha)),
        "{events:?}"
    );

    // A restart with the same state directory reports nothing again.
    drop(w);
    let w = RefWatcher::open(source(), state.path()).unwrap();
    let o = w.observe(&p, Scope::All).unwrap();
    assert!(!o.first_sight && o.events.is_empty(), "{:?}", o.events);

    // Branch created and deleted.
    let repo = g.repo("acme/widgets");
    git(&repo, &["update-ref", "refs/heads/stable", &sha]);
    let e = events_of(&w, &p, Scope::All);
    assert!(
        matches!(e.as_slice(), [RefEvent::BranchCreated { .. }]),
        "{e:?}"
    );
    git(&repo, &["update-ref", "-d", "refs/heads/stable"]);
    let e = events_of(&w, &p, Scope::Ref("refs/heads/stable".parse().unwrap()));
    assert!(
        matches!(e.as_slice(), [RefEvent::BranchDeleted { .. }]),
        "{e:?}"
    );

    // A project that does not exist is an error naming it, not a panic.
    let err = w.observe(&project("no/such"), Scope::All).unwrap_err();
    assert!(
        err.to_string().contains("no/such") && err.to_string().contains("404"),
        "{err}"
    );
}

#[test]
fn watcher_reads_local_repositories_and_its_state_is_checked() {
    let g = Gerrit::start();
    g.create_project("tools/lint");
    let work = Work::clone(&g, "tools/lint");
    let state = tempfile::tempdir().unwrap();
    let p = project("tools/lint");
    let src = RefSource::for_url(&format!("file://{}", g.root.display()), None).unwrap();
    let w = RefWatcher::open(src, state.path()).unwrap();
    w.acknowledge(w.observe(&p, Scope::All).unwrap()).unwrap();
    for i in 1..=3 {
        work.upload(&g, "tools/lint", &format!("f{i}"), &cid(i));
    }
    let e = events_of(&w, &p, Scope::All);
    let created = e
        .iter()
        .filter(|e| matches!(e, RefEvent::PatchsetCreated { .. }))
        .count();
    assert_eq!(created, 3, "{e:?}");
    // The journal is checked on load: a damaged line is an error naming the file and line.
    let log = state.path().join("tools%2Flint.log");
    assert!(log.exists());
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("not a ref line\n");
    std::fs::write(&log, text).unwrap();
    let src = RefSource::for_url(g.root.to_str().unwrap(), None).unwrap();
    let w2 = RefWatcher::open(src, state.path()).unwrap();
    let err = w2.observe(&p, Scope::All).unwrap_err();
    assert!(
        err.to_string().contains("tools%2Flint.log: line 8"),
        "{err}"
    );
    // A torn last line (a crash mid-append) is ignored.
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.truncate(text.len() - "not a ref line\n".len());
    text.push_str("0123");
    std::fs::write(&log, text).unwrap();
    let src = RefSource::for_url(g.root.to_str().unwrap(), None).unwrap();
    let w3 = RefWatcher::open(src, state.path()).unwrap();
    assert!(w3.observe(&p, Scope::All).unwrap().events.is_empty());
    work.upload(&g, "tools/lint", "f4", &cid(4));
    let e = events_of(&w3, &p, Scope::All);
    assert_eq!(e.len(), 2, "{e:?}");
    let src = RefSource::for_url(g.root.to_str().unwrap(), None).unwrap();
    let w4 = RefWatcher::open(src, state.path()).unwrap();
    assert!(
        w4.observe(&p, Scope::All).unwrap().events.is_empty(),
        "reloads cleanly after a torn line"
    );
    // A crash between writing a compacted snapshot and removing the old journal: the journal
    // (of the previous generation) must not be replayed over the newer snapshot.
    let snapshot = state.path().join("tools%2Flint.refs");
    assert!(
        std::fs::read_to_string(&snapshot)
            .unwrap()
            .contains("# generation 1\n")
    );
    let refs = git(
        &g.repo("tools/lint"),
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads/",
            "refs/tags/",
            "refs/changes/",
        ],
    );
    let mut lines: Vec<&str> = refs.lines().collect();
    lines.sort_by_key(|l| l.split_once(' ').unwrap().1.to_owned());
    std::fs::write(
        &snapshot,
        format!(
            "# seakeeper gerrit ref state v1\n# generation 2\n{}\n",
            lines.join("\n")
        ),
    )
    .unwrap();
    let mut journal = std::fs::read_to_string(&log).unwrap();
    assert!(journal.starts_with("# generation 1\n"), "{journal}");
    // An old value in the stale journal that would roll main back if replayed.
    journal.push_str(&format!("{} refs/heads/main\n", "1".repeat(40)));
    std::fs::write(&log, journal).unwrap();
    let src = RefSource::for_url(g.root.to_str().unwrap(), None).unwrap();
    let w5 = RefWatcher::open(src, state.path()).unwrap();
    let e = w5.observe(&p, Scope::All).unwrap().events;
    assert!(e.is_empty(), "a stale journal is ignored: {e:?}");
    assert!(!log.exists(), "and removed");
}

// --- the event stream and webhooks -------------------------------------------------------------

fn next_item(rx: &mpsc::Receiver<StreamItem>) -> StreamItem {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a stream item within 10 s")
}

#[test]
fn stream_reconnects_after_a_break_and_the_resync_finds_what_was_missed() {
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let p = project("acme/widgets");
    let state = tempfile::tempdir().unwrap();
    let rest = rest_as(&g, "ci-bot");
    let w = RefWatcher::open(
        RefSource::for_url(&g.url, Some(rest.endpoint().clone())).unwrap(),
        state.path(),
    )
    .unwrap();
    w.acknowledge(w.observe(&p, Scope::All).unwrap()).unwrap();

    let (tx, rx) = mpsc::channel();
    let mut options = StreamOptions::new(&g.stream_command());
    options.initial_backoff = Duration::from_secs(1);
    options.connected_after = Duration::from_millis(100);
    let stream = EventStream::spawn(options, tx);
    assert_eq!(next_item(&rx), StreamItem::Connected { attempt: 1 });
    while g.stream_clients() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let work = Work::clone(&g, "acme/widgets");
    work.upload(&g, "acme/widgets", "a", &cid(1));
    // ref-updated (patchset), ref-updated (meta), patchset-created: each a hint for change 1.
    let mut hints = Hints::default();
    let mut seen_patchset = false;
    while !seen_patchset {
        if let StreamItem::Event(e) = next_item(&rx) {
            seen_patchset = matches!(e, gerrit::DomainEvent::PatchsetCreated { .. });
            hints.add_event(&e);
        }
    }
    let work_items = hints.take(std::slice::from_ref(&p));
    assert_eq!(work_items, vec![(p.clone(), Scope::Change(change(1)))]);
    let pass = gerrit::pass(&w, None, &work_items, 1);
    assert!(matches!(
        pass.observations[0].events[0],
        RefEvent::PatchsetCreated { .. }
    ));
    for o in pass.observations {
        w.acknowledge(o).unwrap();
    }

    // The stream breaks; an upload happens while it is down; it reconnects and we resync.
    g.drop_streams();
    work.upload(&g, "acme/widgets", "b", &cid(2));
    let mut reconnected = false;
    while !reconnected {
        match next_item(&rx) {
            StreamItem::Disconnected { retry_in, .. } => {
                assert_eq!(retry_in, Duration::from_secs(1));
            }
            StreamItem::Connected { attempt } => {
                assert_eq!(attempt, 2);
                hints.resync_all();
                reconnected = true;
            }
            // Normally nothing arrives while the stream is down; a late event is just a hint.
            StreamItem::Event(e) => hints.add_event(&e),
            StreamItem::Malformed { .. } => {}
        }
    }
    let work_items = hints.take(std::slice::from_ref(&p));
    assert_eq!(work_items, vec![(p.clone(), Scope::All)]);
    let pass = gerrit::pass(&w, None, &work_items, 1);
    assert!(
        pass.observations[0]
            .events
            .iter()
            .any(|e| matches!(e, RefEvent::PatchsetCreated { change: c, .. } if c.get() == 2)),
        "the resync finds the change uploaded while the stream was down"
    );

    // dropped-output asks for a full resync.
    while g.stream_clients() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    g.emit_dropped_output();
    loop {
        if let StreamItem::Event(e) = next_item(&rx) {
            hints.add_event(&e);
            if e == gerrit::DomainEvent::DroppedOutput {
                break;
            }
        }
    }
    assert_eq!(
        hints.take(std::slice::from_ref(&p)),
        vec![(p.clone(), Scope::All)]
    );
    stream.stop();
}

#[test]
fn a_malformed_line_never_stops_the_stream() {
    let Some(dir) = samples_dir() else { return };
    let good = std::fs::read_to_string(dir.join("patchset-created.json")).unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "{}\nnot json\n{{\"no\":\"type\"}}\n{}\n",
            good.trim(),
            good.trim()
        ),
    )
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let mut options = StreamOptions::new(&format!("cat {}", file.path().display()));
    options.initial_backoff = Duration::from_secs(60);
    let stream = EventStream::spawn(options, tx);
    let mut items = Vec::new();
    loop {
        let item = next_item(&rx);
        let end = matches!(item, StreamItem::Disconnected { .. });
        items.push(item);
        if end {
            break;
        }
    }
    stream.stop();
    let kinds: Vec<String> = items
        .iter()
        .map(|i| match i {
            StreamItem::Connected { .. } => "connected".to_owned(),
            StreamItem::Event(_) => "event".to_owned(),
            StreamItem::Malformed { line, .. } => format!("malformed:{line}"),
            StreamItem::Disconnected { .. } => "disconnected".to_owned(),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "connected",
            "event",
            "malformed:2",
            "malformed:3",
            "event",
            "disconnected"
        ]
    );
}

#[test]
fn webhooks_deliver_the_same_events() {
    let Some(dir) = samples_dir() else { return };
    let (tx, rx) = mpsc::channel();
    let server = WebhookServer::bind("127.0.0.1:0", tx).unwrap();
    let url = format!("http://{}/gerrit/events", server.addr());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = std::fs::read_to_string(dir.join("patchset-created.json")).unwrap();
    let r = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(&body)
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(matches!(
        next_item(&rx),
        StreamItem::Event(gerrit::DomainEvent::PatchsetCreated { .. })
    ));
    // Some webhooks-plugin versions send `project` as an object.
    let variant = body.replace(
        "\"project\":\"acme/widgets\",\"refName\"",
        "\"project\":{\"name\":\"acme/widgets\"},\"refName\"",
    );
    assert_ne!(variant, body);
    let r = agent.post(&url).send(&variant).unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(matches!(
        next_item(&rx),
        StreamItem::Event(gerrit::DomainEvent::PatchsetCreated { .. })
    ));
    let mut r = agent.post(&url).send("{not json").unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.body_mut().read_to_string().unwrap().contains("JSON"));
    assert!(matches!(
        next_item(&rx),
        StreamItem::Malformed { line: 0, .. }
    ));
    let r = agent.get(&url).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    server.stop();
}

#[test]
fn secrets_file_is_private_and_checked() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secrets.yaml");
    std::fs::write(
        &f,
        "gerrit:\n  username: ci-bot\n  password: hunter2\nregistries: {}\n",
    )
    .unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = gerrit::load_gerrit_credentials(&f).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = gerrit::load_gerrit_credentials(&f).unwrap().unwrap();
    assert_eq!(c.username, "ci-bot");
    assert!(!format!("{c:?}").contains("hunter2"));
    std::fs::write(&f, "gerrit:\n  username: ci-bot\n  passwd: hunter2\n").unwrap();
    let err = gerrit::load_gerrit_credentials(&f).unwrap_err().to_string();
    assert!(err.contains("line 3") && !err.contains("hunter2"), "{err}");
}

#[test]
fn native_ls_refs_answers_exactly_like_git_http_backend() {
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let work = Work::clone(&g, "acme/widgets");
    for i in 1..=3 {
        work.upload(&g, "acme/widgets", &format!("f{i}"), &cid(i));
    }
    let repo = g.repo("acme/widgets");
    let head = git(&repo, &["rev-parse", "refs/heads/main"]);
    git(&repo, &["tag", "-a", "-m", "release", "v1", &head]);
    git(&repo, &["tag", "light", &head]);
    git(&repo, &["update-ref", "refs/heads/stable", &head]);
    git(&repo, &["pack-refs", "--all"]);
    git(&repo, &["update-ref", "refs/heads/loose", &head]);
    // An empty project: HEAD is unborn.
    let empty = g.repo("empty");
    std::fs::create_dir_all(&empty).unwrap();
    git(&empty, &["init", "-q", "--bare", "-b", "main"]);

    let pkt = |lines: &[&str]| -> Vec<u8> {
        let mut b = Vec::new();
        for l in lines {
            match *l {
                "DELIM" => b.extend_from_slice(b"0001"),
                l => {
                    b.extend_from_slice(format!("{:04x}", l.len() + 5).as_bytes());
                    b.extend_from_slice(l.as_bytes());
                    b.push(b'\n');
                }
            }
        }
        b.extend_from_slice(b"0000");
        b
    };
    let head_lines = [
        "command=ls-refs",
        "agent=git/2.47.3",
        "object-format=sha1",
        "DELIM",
    ];
    let bodies = [
        // What `git ls-remote` sends.
        [&head_lines[..], &["peel", "symrefs", "unborn"]].concat(),
        // What seakeeper's watcher sends.
        [
            &head_lines[..],
            &[
                "ref-prefix refs/heads/",
                "ref-prefix refs/tags/",
                "ref-prefix refs/changes/",
            ],
        ]
        .concat(),
        [&head_lines[..], &["ref-prefix refs/changes/02/2/"]].concat(),
        [
            &head_lines[..],
            &["peel", "ref-prefix refs/tags/v", "ref-prefix HEAD"],
        ]
        .concat(),
    ];
    for project in ["acme/widgets", "empty"] {
        for body in &bodies {
            let body = pkt(body);
            let path = format!("/{project}/git-upload-pack");
            let cgi = g.git_request("POST", &path, "version=2", &body, false);
            let native = g.git_request("POST", &path, "version=2", &body, true);
            assert_eq!(cgi.0, 200);
            assert_eq!(
                String::from_utf8_lossy(&native.2),
                String::from_utf8_lossy(&cgi.2),
                "{project}: {}",
                String::from_utf8_lossy(&body)
            );
            assert_eq!(native.1, cgi.1);
        }
        let path = format!("/{project}/info/refs?service=git-upload-pack");
        let cgi = g.git_request("GET", &path, "version=2", b"", false);
        let native = g.git_request("GET", &path, "version=2", b"", true);
        assert_eq!(native, cgi);
    }
}

#[test]
fn gerrit_poll_cli_reports_each_change_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.yaml");
    let ci = g.account("ci-bot");
    std::fs::write(
        &secrets,
        format!(
            "gerrit:\n  username: {}\n  password: {}\n",
            ci.username, ci.password
        ),
    )
    .unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    let state = dir.path().join("state");
    let poll = |extra: &[&str]| {
        support::output(
            support::seakeeper()
                .args([
                    "gerrit",
                    "poll",
                    "--url",
                    &g.url,
                    "--project",
                    "acme/widgets",
                ])
                .arg("--state")
                .arg(&state)
                .arg("--secrets")
                .arg(&secrets)
                .args(extra),
        )
    };
    let first = poll(&[]);
    assert!(first.status.success(), "{}", support::stderr(&first));
    assert!(support::stderr(&first).contains("acme/widgets: first sight, 1 refs"));
    assert_eq!(support::stdout(&first), "");

    let work = Work::clone(&g, "acme/widgets");
    work.upload(&g, "acme/widgets", "a", &cid(1));
    let second = poll(&["--details"]);
    assert!(second.status.success(), "{}", support::stderr(&second));
    let lines: Vec<serde_json::Value> = support::stdout(&second)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["patchset-created", "change-meta-updated", "change-details"]
    );
    assert_eq!(lines[0]["change"], 1);
    assert_eq!(lines[0]["patchset"], 1);
    assert_eq!(lines[2]["change"]["status"], "NEW");
    assert!(
        g.requests()
            .iter()
            .any(|r| r.starts_with("GET /a/changes/acme%2Fwidgets~1?"))
    );

    let third = poll(&[]);
    assert_eq!(support::stdout(&third), "", "nothing is reported twice");

    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = poll(&[]);
    assert!(!refused.status.success());
    assert!(support::stderr(&refused).contains("chmod 600"));
    assert!(!support::stderr(&refused).contains(&ci.password));
}

#[test]
fn a_push_to_a_change_ref_adds_a_patchset_and_resets_votes() {
    let g = Gerrit::start();
    g.create_project("p");
    let work = Work::clone(&g, "p");
    work.upload(&g, "p", "a", &cid(1));
    g.review("ci-bot", 1, &[("Verified", 1)], "").unwrap();
    assert_eq!(g.change(1).vote("Verified", g.account("ci-bot").id), 1);
    let w = work.path();
    git(
        &w,
        &[
            "commit",
            "-q",
            "--amend",
            "-m",
            &format!("Add a, take 2\n\nChange-Id: {}\n", cid(1)),
        ],
    );
    let sha = git(&w, &["rev-parse", "HEAD"]);
    git(
        &w,
        &[
            "push",
            "-q",
            &g.push_url("p", "alice"),
            "HEAD:refs/changes/01/1/2",
        ],
    );
    let c = g.change(1);
    assert_eq!(c.patchsets.len(), 2);
    assert_eq!(c.current().revision, sha);
    assert_eq!(
        c.vote("Verified", g.account("ci-bot").id),
        0,
        "a new patchset drops votes"
    );
    let rest = rest_as(&g, "ci-bot");
    let info = rest.get_change(&project("p"), change(1)).unwrap();
    assert_eq!(info.current_patchset.unwrap().get(), 2);
    assert_eq!(info.current_ref.unwrap().as_str(), "refs/changes/01/1/2");
    let last = g.events().last().unwrap().clone();
    assert!(last.contains("\"type\":\"patchset-created\"") && last.contains("\"number\":2"));
    // Pushing needs authentication, as on Gerrit.
    let out = Command::new("git")
        .arg("-C")
        .arg(&w)
        .args(["push", "-q", &g.git_url("p"), "HEAD:refs/for/main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Issue 16, item 6: as real Gerrit does, a direct push that makes a change's commit reachable
/// from its branch closes the change as merged (by the pusher), with Gerrit's message and
/// events; a change of another branch, or one whose commit the push does not contain, stays
/// open.
#[test]
fn a_direct_push_of_a_changes_commit_closes_it_as_merged() {
    let g = Gerrit::start();
    g.create_project("acme/widgets");
    let w = Work::clone(&g, "acme/widgets");
    let p = project("acme/widgets");
    let first = w.upload(&g, "acme/widgets", "a.rs", &cid(1));
    let second = w.upload(&g, "acme/widgets", "b.rs", &cid(2));
    let ci = rest_as(&g, "ci-bot");
    assert_eq!(
        ci.get_change(&p, change(1)).unwrap().status,
        ChangeStatus::New
    );
    let events_before = g.events().len();
    // Push only the first change's commit straight to main.
    git(
        &w.path(),
        &[
            "push",
            "-q",
            &g.push_url("acme/widgets", "alice"),
            &format!("{first}:refs/heads/main"),
        ],
    );
    let c1 = ci.get_change(&p, change(1)).unwrap();
    assert_eq!(c1.status, ChangeStatus::Merged);
    assert!(c1.submission_id.is_some());
    assert!(
        c1.messages
            .iter()
            .any(|m| m.message == "Change has been successfully pushed."),
        "{:?}",
        c1.messages
    );
    assert_eq!(
        ci.get_change(&p, change(2)).unwrap().status,
        ChangeStatus::New,
        "the second change's commit was not pushed"
    );
    let new: Vec<String> = g.events()[events_before..].to_vec();
    assert!(
        new.iter().any(|e| e.contains("\"type\":\"change-merged\"")
            && e.contains(&format!("\"newRev\":\"{first}\""))),
        "{new:#?}"
    );
    assert!(
        new.iter()
            .any(|e| e.contains("\"type\":\"ref-updated\"") && e.contains("/1/meta")),
        "{new:#?}"
    );
    // Then the second: now both are merged, and the first stays merged once.
    git(
        &w.path(),
        &[
            "push",
            "-q",
            &g.push_url("acme/widgets", "alice"),
            &format!("{second}:refs/heads/main"),
        ],
    );
    assert_eq!(
        ci.get_change(&p, change(2)).unwrap().status,
        ChangeStatus::Merged
    );
    let merged = g.events()[events_before..]
        .iter()
        .filter(|e| e.contains("\"type\":\"change-merged\""))
        .count();
    assert_eq!(merged, 2);
}
