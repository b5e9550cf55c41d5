//! Fail closed on the ledger (issue 14, items 1-4): a server adopts a remote ledger only when
//! every commit verifies against the deployment's keys and their roles; a rolled-back,
//! rewound or truncated ledger is an alert and a refusal with both heads named; a server never
//! starts a second ledger by itself; a restored ledger's HEAD names the branch that exists.

mod support;

use std::path::{Path, PathBuf};

use support::site::{Site, git, pipeline};
use support::{World, ok, output, sample_jsonl, seakeeper, stderr, stdout};

/// A site whose ledger is replicated to a bare repository, with one checked change in it.
fn replicated_site() -> (Site, tempfile::TempDir, PathBuf) {
    let remote_dir = tempfile::tempdir().unwrap();
    let remote = remote_dir.path().join("ledger.git");
    std::fs::create_dir_all(&remote).unwrap();
    git(&remote, &["init", "-q", "--bare"]);
    let site = Site::new("", "");
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &format!("{s}ledger:\n  remote: {}\n", remote.display()),
    );
    site.commit_config("Replicate the ledger");
    site.reconcile();
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000101",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    site.reconcile();
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/main"]),
        git(&site.ledger(), &["rev-parse", "refs/heads/main"])
    );
    (site, remote_dir, remote)
}

/// A ledger signed by `key` holding sample builds, pushed over `remote`'s branch.
fn forge_remote(w: &World, key: &Path, remote: &Path, name: &str) {
    let forged = w.path(name);
    ok(seakeeper()
        .args(["ledger", "init"])
        .arg(&forged)
        .arg("--key")
        .arg(key));
    let out = w.import(&forged, key, &sample_jsonl(1, 12), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    git(
        &forged,
        &[
            "push",
            "-q",
            "--force",
            &remote.display().to_string(),
            "refs/heads/main:refs/heads/main",
        ],
    );
}

fn status_text(site: &Site) -> String {
    ok(seakeeper()
        .args(["status", "--settings"])
        .arg(&site.settings))
}

#[test]
fn a_fresh_server_refuses_a_forged_remote_ledger_and_keeps_none() {
    let (site, _keep, remote) = replicated_site();
    let (attacker, _, _) = site.w.another_key("attacker");
    forge_remote(&site.w, &attacker, &remote, "forged");
    // The server is lost; the new one must not take the forged ledger for its own.
    std::fs::remove_dir_all(site.state()).unwrap();
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("refusing the ledger of"), "{err}");
    assert!(err.contains("must be signed by a trusted key"), "{err}");
    assert!(!site.ledger().exists(), "nothing adopted");
    let status = status_text(&site);
    assert!(
        status.contains("LEDGER ALERT: refusing the ledger"),
        "{status}"
    );
    // `ledger pull` refuses it too, and exits non-zero.
    let pulled = output(
        seakeeper()
            .args(["ledger", "pull"])
            .arg(site.w.path("copy"))
            .arg(&remote)
            .arg("--cert")
            .arg(&site.w.cert),
    );
    assert_eq!(pulled.status.code(), Some(1), "{}", stdout(&pulled));
    assert!(stderr(&pulled).contains("must be signed by a trusted key"));
}

#[test]
fn keys_in_the_config_repo_are_trusted_only_for_their_roles() {
    let (site, _keep, remote) = replicated_site();
    let (other, other_cert, other_fpr) = site.w.another_key("releng");
    forge_remote(&site.w, &other, &remote, "other");
    // keys/ names the other key, but only as a promoter: its build records are refused.
    std::fs::create_dir_all(site.config.join("keys")).unwrap();
    std::fs::copy(&other_cert, site.config.join("keys/releng.asc")).unwrap();
    site.write_config("keys/releng.yaml", "roles: [ledger, promoter]\n");
    site.commit_config("Trust releng's key to promote");
    std::fs::remove_dir_all(site.state()).unwrap();
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "key {other_fpr} (keys/releng.asc) does not hold the role `builder`"
        )),
        "{err}"
    );
    assert!(!site.ledger().exists());
    // `ledger verify` applies the same keys and roles.
    let verify = output(
        seakeeper()
            .args(["ledger", "verify"])
            .arg(site.w.path("other"))
            .arg("--config-repo")
            .arg(&site.config),
    );
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stderr(&verify).contains("does not hold the role `builder`"),
        "{}",
        stderr(&verify)
    );
    // `trace` refuses to show what it cannot verify, and says when it verified nothing.
    let digest = seakeeper::model::Digest::of(b"image 1").to_string();
    let trace = |extra: &[&str]| {
        output(
            seakeeper()
                .args(["trace", &digest, "--ledger"])
                .arg(site.w.path("other"))
                .args(extra),
        )
    };
    let config = site.config.display().to_string();
    let refused = trace(&["--config-repo", &config]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("not tracing an unverified ledger"),
        "{}",
        stderr(&refused)
    );
    let unverified = trace(&[]);
    assert!(
        stdout(&unverified).starts_with("NOT VERIFIED"),
        "{}",
        stdout(&unverified)
    );
    assert!(stdout(&trace(&["--json"])).contains("\"verified\":false"));
    // Given every role it needs, the same ledger verifies.
    site.write_config("keys/releng.yaml", "roles: [ledger, builder, promoter]\n");
    site.commit_config("releng's key builds too");
    let verify = ok(seakeeper()
        .args(["ledger", "verify"])
        .arg(site.w.path("other"))
        .arg("--config-repo")
        .arg(&site.config));
    assert!(verify.contains("every signer checked"), "{verify}");
    let traced = trace(&["--config-repo", &config]);
    assert!(
        stdout(&traced).starts_with("verified ")
            && stdout(&traced).contains("each signer a trusted key"),
        "{}",
        stdout(&traced)
    );
    // A key without a roles file is a config error, not a silently trusted key.
    std::fs::remove_file(site.config.join("keys/releng.yaml")).unwrap();
    site.commit_config("Forget releng's roles");
    let check = output(
        seakeeper()
            .args(["config", "check", "--repo"])
            .arg(&site.config),
    );
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("keys/releng.asc: has no roles"),
        "{}",
        stdout(&check)
    );
}

#[test]
fn a_server_never_starts_a_second_ledger_by_itself() {
    let site = Site::new("", "");
    site.auto_init.set(false);
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("run with --init-ledger"),
        "{}",
        stderr(&out)
    );
    assert!(!site.ledger().exists());
    // Explicitly, once.
    let mut first = site.reconcile_cmd();
    first.arg("--init-ledger");
    let out = output(&mut first);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("started a new ledger"),
        "{}",
        stderr(&out)
    );
    let mut again = site.reconcile_cmd();
    again.arg("--init-ledger");
    let out = output(&mut again);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already holds one"),
        "{}",
        stderr(&out)
    );
    site.reconcile();

    // A remote that cannot be read is named, and no ledger is started beside it.
    let site = Site::new("", "");
    site.auto_init.set(false);
    let missing = site.w.path("no-such-remote.git");
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &format!("{s}ledger:\n  remote: {}\n", missing.display()),
    );
    site.commit_config("Replicate to a remote that is not there");
    let mut first = site.reconcile_cmd();
    first.arg("--init-ledger");
    let out = output(&mut first);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "the ledger remote {} cannot be read",
            missing.display()
        )),
        "{}",
        stderr(&out)
    );
    assert!(!site.ledger().exists());
    // An empty remote needs --init-ledger too.
    git(
        &site.w.path(""),
        &["init", "-q", "--bare", &missing.display().to_string()],
    );
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no ledger yet") && stderr(&out).contains("--init-ledger"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_restored_ledger_has_head_on_its_branch() {
    let (site, _keep, _remote) = replicated_site();
    let before = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    std::fs::remove_dir_all(site.state()).unwrap();
    site.auto_init.set(false);
    site.reconcile();
    assert_eq!(
        git(&site.ledger(), &["symbolic-ref", "HEAD"]),
        "refs/heads/main"
    );
    // Plain git finds the history from HEAD.
    assert!(
        git(
            &site.ledger(),
            &["merge-base", "--is-ancestor", &before, "HEAD"]
        )
        .is_empty()
    );
}

#[test]
fn a_rolled_back_ledger_is_an_alert_and_nothing_is_written() {
    let site = Site::new("", "");
    site.reconcile();
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000102",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    site.reconcile();
    let head = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    let older = git(&site.ledger(), &["rev-parse", "refs/heads/main~2"]);
    // Someone resets the ledger under the server.
    git(&site.ledger(), &["update-ref", "refs/heads/main", &older]);
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000103",
        &[("msg.txt", "again\n")],
        false,
    );
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("the ledger was rolled back"), "{err}");
    assert!(err.contains(&head) && err.contains(&older), "{err}");
    assert_eq!(
        git(&site.ledger(), &["rev-parse", "refs/heads/main"]),
        older,
        "nothing was written onto the rolled-back ledger"
    );
    let status = status_text(&site);
    assert!(
        status.contains("LEDGER ALERT: the ledger was rolled back"),
        "{status}"
    );
    // `ledger verify --mark` says so, with both heads.
    let verify = output(
        seakeeper()
            .args(["ledger", "verify"])
            .arg(site.ledger())
            .arg("--mark")
            .arg(site.state().join("ledger.mark")),
    );
    assert_eq!(verify.status.code(), Some(1));
    let err = stderr(&verify);
    assert!(err.contains(&head) && err.contains(&older), "{err}");
    // Restored, the server goes on, and the change is checked once.
    git(&site.ledger(), &["update-ref", "refs/heads/main", &head]);
    site.reconcile();
    assert_eq!(site.reviews(2).len(), 1);
    site.verify_ledger();
}

#[test]
fn the_writer_refuses_a_ledger_reset_under_it() {
    let w = World::new();
    let ledger = w.init_ledger("ledger");
    let key = seakeeper::signing::SigningKey::load(&w.key).unwrap();
    let writer =
        seakeeper::ledger::Writer::open(&ledger, key, seakeeper::ledger::WriterOptions::default())
            .unwrap();
    let records = seakeeper::ledger::sample::records(1, 8);
    let (first, rest) = records.split_at(4);
    for r in writer.append_all(first.to_vec()) {
        r.unwrap();
    }
    let root = ok(w
        .git(&ledger)
        .args(["rev-list", "--max-parents=0", "refs/heads/main"]));
    ok(w.git(&ledger)
        .args(["update-ref", "refs/heads/main", root.trim()]));
    let results = writer.append_all(rest.to_vec());
    assert!(
        results.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.to_string().contains("moved back"))),
        "{results:?}"
    );
    assert_eq!(w.tip(&ledger), root.trim(), "nothing was written");
    writer.shutdown();
}

#[test]
fn ledger_pull_adopts_a_verified_extension_and_refuses_a_rewound_remote() {
    let w = World::new();
    let upstream = w.init_ledger("upstream");
    assert!(
        w.import(&upstream, &w.key, &sample_jsonl(1, 10), &[])
            .status
            .success()
    );
    let copy = w.path("copy");
    let pull = |extra: &[&str]| {
        output(
            seakeeper()
                .args(["ledger", "pull"])
                .arg(&copy)
                .arg(&upstream)
                .arg("--cert")
                .arg(&w.cert)
                .args(extra),
        )
    };
    let out = pull(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("adopted"), "{}", stdout(&out));
    let first = w.tip(&copy);
    assert!(
        w.import(&upstream, &w.key, &sample_jsonl(100, 10), &[])
            .status
            .success()
    );
    let out = pull(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = w.tip(&copy);
    assert_eq!(second, w.tip(&upstream));
    // The remote is rewound to what we had before: refused, both heads named.
    ok(w.git(&upstream)
        .args(["update-ref", "refs/heads/main", &first]));
    let out = pull(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("was rewound"), "{err}");
    assert!(err.contains(&first) && err.contains(&second), "{err}");
    assert_eq!(w.tip(&copy), second, "nothing moved");
    // Another history altogether (signed by a key we trust, even) is refused as such.
    let other = w.init_ledger("other");
    assert!(
        w.import(&other, &w.key, &sample_jsonl(1, 4), &[])
            .status
            .success()
    );
    let out = output(
        seakeeper()
            .args(["ledger", "pull"])
            .arg(&copy)
            .arg(&other)
            .arg("--cert")
            .arg(&w.cert),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has another history"),
        "{}",
        stderr(&out)
    );
    // A pull needs to be told whom to trust.
    let out = output(
        seakeeper()
            .args(["ledger", "pull"])
            .arg(&copy)
            .arg(&upstream),
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs the keys to trust"));
}

#[test]
fn replication_refuses_a_remote_that_was_rewound_or_written_by_someone_else() {
    let (site, _keep, remote) = replicated_site();
    let pushed = git(&remote, &["rev-parse", "refs/heads/main"]);
    let older = git(&remote, &["rev-parse", "refs/heads/main~1"]);
    // Someone rewinds the remote: the next push must not silently restore it.
    git(&remote, &["update-ref", "refs/heads/main", &older]);
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000104",
        &[("msg.txt", "more\n")],
        false,
    );
    let out = output(&mut site.reconcile_cmd());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(&remote, &["rev-parse", "refs/heads/main"]), older);
    let status = status_text(&site);
    assert!(
        status.contains(&format!(
            "REFUSED: the remote was rewound from {pushed} to {older}"
        )),
        "{status}"
    );
    // A mark that cannot be read is no licence to push over the remote either.
    let mark = site.state().join("ledger.remote-mark");
    let kept = std::fs::read(&mark).unwrap();
    std::fs::write(&mark, "{not json").unwrap();
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000104",
        &[("msg.txt", "more still\n")],
        true,
    );
    let out = output(&mut site.reconcile_cmd());
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(git(&remote, &["rev-parse", "refs/heads/main"]), older);
    let status = status_text(&site);
    assert!(status.contains("ledger.remote-mark is corrupt"), "{status}");
    std::fs::write(&mark, kept).unwrap();
    // Put back where this server left it, replication goes on.
    git(&remote, &["update-ref", "refs/heads/main", &pushed]);
    site.reconcile();
    assert_eq!(
        git(&remote, &["rev-parse", "refs/heads/main"]),
        git(&site.ledger(), &["rev-parse", "refs/heads/main"])
    );
}

/// Issue 14, item 1: each record is judged by the keys of the config commit it names, so a key
/// retired from keys/ still vouches for what it signed while it was trusted, and never for a
/// record naming a config where it was not.
#[test]
fn issue_14_records_are_judged_by_the_keys_of_the_config_commit_they_name() {
    let site = Site::new("", "");
    let (old, old_cert, old_fpr) = site.w.another_key("old");
    let (_, new_cert, _) = site.w.another_key("new");
    // The deployment's own key (which started the ledger) stays trusted throughout.
    std::fs::create_dir_all(site.config.join("keys")).unwrap();
    std::fs::copy(&site.w.cert, site.config.join("keys/ci.asc")).unwrap();
    site.write_config("keys/ci.yaml", "roles: [ledger, builder, promoter]\n");
    std::fs::copy(&old_cert, site.config.join("keys/old.asc")).unwrap();
    site.write_config("keys/old.yaml", "roles: [ledger, builder, promoter]\n");
    let then = site.commit_config("Trust the old key");
    let ledger = site.w.path("history");
    ok(seakeeper()
        .args(["ledger", "init"])
        .arg(&ledger)
        .arg("--key")
        .arg(&site.w.key));
    ok(seakeeper()
        .args(["ledger", "keys", "add"])
        .arg(&ledger)
        .arg("--key")
        .arg(&site.w.key)
        .arg("--cert")
        .arg(&old_cert));
    let naming = |config: &str, first: u64| {
        let jsonl = String::from_utf8(sample_jsonl(first, 6)).unwrap();
        let mut out = String::new();
        for line in jsonl.lines() {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v.get("config_commit").is_some() {
                v["config_commit"] = serde_json::json!(config);
            }
            out.push_str(&v.to_string());
            out.push('\n');
        }
        out.into_bytes()
    };
    let out = site.w.import(&ledger, &old, &naming(&then, 1), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The old key is retired: keys/ now holds another.
    std::fs::remove_file(site.config.join("keys/old.asc")).unwrap();
    std::fs::remove_file(site.config.join("keys/old.yaml")).unwrap();
    std::fs::copy(&new_cert, site.config.join("keys/new.asc")).unwrap();
    site.write_config("keys/new.yaml", "roles: [ledger, builder, promoter]\n");
    let now = site.commit_config("Rotate to the new key");
    let verify = || {
        output(
            seakeeper()
                .args(["ledger", "verify"])
                .arg(&ledger)
                .arg("--config-repo")
                .arg(&site.config),
        )
    };
    let out = verify();
    assert!(out.status.success(), "{}", stderr(&out));
    // What the retired key signs naming the config that retired it is refused.
    let out = site.w.import(&ledger, &old, &naming(&now, 7), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("key {old_fpr} is not a trusted key"))
            && stderr(&out).contains(&format!("at config commit {now}")),
        "{}",
        stderr(&out)
    );

    // The retired key cannot start a ledger of its own, even one whose records name the
    // config that trusted it: the first commit is judged by today's keys.
    let forged = site.w.path("forged");
    ok(seakeeper()
        .args(["ledger", "init"])
        .arg(&forged)
        .arg("--key")
        .arg(&old));
    let out = site.w.import(&forged, &old, &naming(&then, 1), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = output(
        seakeeper()
            .args(["ledger", "verify"])
            .arg(&forged)
            .arg("--config-repo")
            .arg(&site.config),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("the first commit must be signed by a trusted key"),
        "{}",
        stderr(&out)
    );

    // Nor does a config commit off the config branch (an unmerged change) vouch for a key.
    let trusted = site.w.path("trusted");
    ok(seakeeper()
        .args(["ledger", "init"])
        .arg(&trusted)
        .arg("--key")
        .arg(&site.w.key));
    git(&site.config, &["checkout", "-q", "-b", "proposal"]);
    std::fs::copy(&old_cert, site.config.join("keys/old.asc")).unwrap();
    site.write_config("keys/old.yaml", "roles: [ledger, builder, promoter]\n");
    let proposal = site.commit_config("Trust the old key again (not merged)");
    git(&site.config, &["checkout", "-q", "main"]);
    // The old key is allowed by the ledger itself, so only keys/ can refuse it.
    ok(seakeeper()
        .args(["ledger", "keys", "add"])
        .arg(&trusted)
        .arg("--key")
        .arg(&site.w.key)
        .arg("--cert")
        .arg(&old_cert));
    let out = site.w.import(&trusted, &old, &naming(&proposal, 1), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = output(
        seakeeper()
            .args(["ledger", "verify"])
            .arg(&trusted)
            .arg("--config-repo")
            .arg(&site.config),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("key {old_fpr} is not a trusted key")),
        "{}",
        stderr(&out)
    );
}

/// Issue 14, item 9: a signing key others can read is no proof of anything: the server
/// refuses to start with it.
#[test]
fn issue_14_the_server_refuses_a_signing_key_others_can_read() {
    use std::os::unix::fs::PermissionsExt as _;
    let site = Site::new("", "");
    std::fs::set_permissions(&site.w.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("it must be 0600"), "{}", stderr(&out));
    assert!(!site.ledger().exists(), "nothing started");
    std::fs::set_permissions(&site.w.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    site.reconcile();
}

/// Issue 14, item 2 ("the reconciler alike"): commits another process appends to a server's
/// own ledger are verified before the server acts on them: one by a key keys/ does not trust
/// is a LEDGER ALERT, and nothing more is written.
#[test]
fn issue_14_the_server_verifies_commits_others_append_to_its_ledger() {
    let site = Site::new("", "");
    site.reconcile();
    let (other, other_cert, other_fpr) = site.w.another_key("intruder");
    // Allowed by the ledger's own LEDGER (someone with the server's key let it in), but not
    // by the deployment's keys/.
    ok(seakeeper()
        .args(["ledger", "keys", "add"])
        .arg(site.ledger())
        .arg("--key")
        .arg(&site.w.key)
        .arg("--cert")
        .arg(&other_cert));
    site.reconcile();
    let before = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    let out = site
        .w
        .import(&site.ledger(), &other, &sample_jsonl(1, 3), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let forged = git(&site.ledger(), &["rev-parse", "refs/heads/main"]);
    assert_ne!(before, forged);
    let out = output(&mut site.reconcile_cmd());
    assert!(!out.status.success());
    let status = status_text(&site);
    assert!(
        status.contains("LEDGER ALERT")
            && status.contains(&format!("key {other_fpr} is not a trusted key")),
        "{status}"
    );
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000301",
        &[
            (".pipeline/config.yaml", &pipeline("true")),
            ("msg.txt", "ok\n"),
        ],
        false,
    );
    let _ = output(&mut site.reconcile_cmd());
    assert_eq!(
        git(&site.ledger(), &["rev-parse", "refs/heads/main"]),
        forged,
        "nothing written after the alert"
    );
}
