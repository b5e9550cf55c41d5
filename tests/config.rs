//! `seakeeper config check` against real git repositories made by the test.

mod support;

use std::path::Path;

use support::{FIXED_DATES, git, git_with, ok, output, seakeeper, stdout};

/// A config repo with a commit of `files`; returns its directory.
fn config_repo(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
    let repo = dir.join("config");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "--quiet", "-b", "main"]);
    for (path, content) in files {
        let p = repo.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    git(&repo, &["add", "-A"]);
    git_with(
        &repo,
        &[
            "-c",
            "user.name=RelEng",
            "-c",
            "user.email=releng@example.org",
            "commit",
            "--quiet",
            "-m",
            "config",
        ],
        &FIXED_DATES,
    );
    repo
}

const SETTINGS: &str = "public_url: https://ci.example.org\nregistries:\n  testing: { url: \"http://127.0.0.1:5000\" }\n  production: { url: \"https://registry.example.org\" }\n";
const ENVIRONMENTS: &str = "environments:\n  - name: testing\n    registry: testing\n  - name: staging\n    registry: testing\n  - name: production\n    registry: production\n    repository_prefix: wikimedia/\n";
const CORE: &str = "queue: mediawiki\nimages: [mediawiki]\n";
const CITE: &str = "queue: mediawiki\ndepends_on: [mediawiki/core]\n";
const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn valid() -> Vec<(&'static str, String)> {
    vec![
        ("seakeeper.yaml", SETTINGS.into()),
        ("environments.yaml", ENVIRONMENTS.into()),
        ("projects/mediawiki/core.yaml", CORE.into()),
        ("projects/mediawiki/extensions/Cite.yaml", CITE.into()),
        (
            "promotions/staging.yaml",
            format!("images:\n  mediawiki: {DIGEST}\n"),
        ),
        (
            "freezes/all-hands.yaml",
            "scope: [\"promote:production\"]\nreason: All-hands week\nticket: T1234\n".into(),
        ),
    ]
}

fn check(files: &[(&str, String)]) -> (bool, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let repo = config_repo(dir.path(), &borrowed);
    let out = output(
        seakeeper()
            .args(["config", "check", "--json", "--repo"])
            .arg(&repo),
    );
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
    assert_eq!(out.status.success(), v["ok"] == true);
    (out.status.success(), v)
}

fn with(
    mut files: Vec<(&'static str, String)>,
    path: &'static str,
    content: &str,
) -> Vec<(&'static str, String)> {
    files.retain(|(p, _)| *p != path);
    files.push((path, content.to_owned()));
    files
}

#[test]
fn a_valid_config_checks_and_summarizes() {
    let (ok, v) = check(&valid());
    assert!(ok, "{v}");
    assert_eq!(
        v["summary"]["environments"],
        serde_json::json!(["testing", "staging", "production"])
    );
    assert_eq!(v["summary"]["projects"], 2);
    assert_eq!(v["summary"]["promotions"]["staging"]["mediawiki"], DIGEST);
}

fn expect_error(
    files: Vec<(&'static str, String)>,
    file: &str,
    field: &str,
    message: &str,
    suggestion: Option<&str>,
) {
    let (ok, v) = check(&files);
    assert!(!ok, "expected an error in {file}");
    let errors = v["errors"].as_array().unwrap();
    let found = errors.iter().find(|e| {
        e["file"] == file && e["field"] == field && e["message"].as_str().unwrap().contains(message)
    });
    let e = found.unwrap_or_else(|| panic!("no error {file} {field} {message:?} in {v:#}"));
    assert!(e["line"].as_u64().is_some(), "no line in {e}");
    assert_eq!(e["suggestion"].as_str(), suggestion, "{e}");
}

#[test]
fn typos_in_keys_are_found_with_suggestions() {
    let files = with(
        valid(),
        "environments.yaml",
        "environments:\n  - name: testing\n    registyr: testing\n",
    );
    expect_error(
        files,
        "environments.yaml",
        "environments[0].registyr",
        "unknown field `registyr`",
        Some("registry"),
    );
}

#[test]
fn unknown_registry_environment_project_and_image_are_errors() {
    let files = with(
        valid(),
        "environments.yaml",
        "environments:\n  - name: testing\n    registry: testng\n",
    );
    expect_error(
        files,
        "environments.yaml",
        "environments[0].registry",
        "unknown registry `testng`",
        Some("testing"),
    );
    let files = with(
        valid(),
        "promotions/stagign.yaml",
        &format!("images:\n  mediawiki: {DIGEST}\n"),
    );
    let (ok, v) = check(&files);
    assert!(!ok);
    let e = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == "promotions/stagign.yaml")
        .unwrap()
        .clone();
    assert_eq!(e["suggestion"], "staging", "{e}");
    let files = with(
        valid(),
        "projects/mediawiki/extensions/Cite.yaml",
        "depends_on: [mediawiki/cor]\n",
    );
    expect_error(
        files,
        "projects/mediawiki/extensions/Cite.yaml",
        "depends_on[0]",
        "unknown project",
        Some("mediawiki/core"),
    );
    let files = with(
        valid(),
        "promotions/staging.yaml",
        &format!("images:\n  mediawik: {DIGEST}\n"),
    );
    expect_error(
        files,
        "promotions/staging.yaml",
        "images.mediawik",
        "no project produces",
        Some("mediawiki"),
    );
}

#[test]
fn malformed_digests_cycles_and_empty_freezes_are_errors() {
    let files = with(
        valid(),
        "promotions/staging.yaml",
        "images:\n  mediawiki: sha256:abc\n",
    );
    expect_error(
        files,
        "promotions/staging.yaml",
        "images.mediawiki",
        "invalid digest",
        None,
    );
    let files = with(
        valid(),
        "projects/mediawiki/core.yaml",
        "images: [mediawiki]\ndepends_on: [mediawiki/extensions/Cite]\n",
    );
    expect_error(
        files,
        "projects/mediawiki/core.yaml",
        "depends_on",
        "dependency cycle",
        None,
    );
    let files = with(
        valid(),
        "freezes/all-hands.yaml",
        "scope: [\"promote:prod\"]\nreason: x\n",
    );
    expect_error(
        files,
        "freezes/all-hands.yaml",
        "scope[0]",
        "matches nothing",
        Some("production"),
    );
    let files = with(
        valid(),
        "freezes/all-hands.yaml",
        "scope: [\"merge:operations/*\"]\nreason: x\n",
    );
    expect_error(
        files,
        "freezes/all-hands.yaml",
        "scope[0]",
        "matches no project",
        None,
    );
    let files = with(
        valid(),
        "seakeeper.yaml",
        "public_url: https://ci.example.org\nregistries:\n  testing: { url: \"http://registry.example.org\" }\n  production: { url: \"https://r\" }\n",
    );
    expect_error(
        files,
        "seakeeper.yaml",
        "registries.testing.url",
        "only for loopback",
        None,
    );
}

#[test]
fn every_error_is_reported_at_once_in_text() {
    let files = with(
        with(
            valid(),
            "environments.yaml",
            "environments:\n  - name: testing\n    registyr: testing\n",
        ),
        "promotions/staging.yaml",
        "images:\n  mediawiki: sha256:abc\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let repo = config_repo(dir.path(), &borrowed);
    let out = output(seakeeper().args(["config", "check", "--repo"]).arg(&repo));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("environments.yaml:3:5: environments[0].registyr: unknown field `registyr`"),
        "{text}"
    );
    assert!(text.contains("(did you mean `registry`?)"), "{text}");
    assert!(text.contains("promotions/staging.yaml:2:"), "{text}");
    // An unknown revision is a clear error too.
    let out = output(
        seakeeper()
            .args(["config", "check", "--rev", "nope", "--repo"])
            .arg(&repo),
    );
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("\"nope\" is neither a commit id nor a branch"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn a_config_repo_can_be_checked_by_url() {
    let files = valid();
    let dir = tempfile::tempdir().unwrap();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let repo = config_repo(dir.path(), &borrowed);
    let url = format!("file://{}", repo.display());
    let out = ok(seakeeper().args(["config", "check", "--json", "--repo", &url, "--rev", "main"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let out = output(seakeeper().args(["config", "check", "--repo", "file:///nonexistent/config"]));
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("cloning file:///nonexistent/config"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn config_show_marks_expired_freezes() {
    let files = with(
        valid(),
        "freezes/old.yaml",
        "scope: [all]\nreason: Long gone\nexpires: 2020-01-01T00:00:00Z\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let repo = config_repo(dir.path(), &borrowed);
    let out = ok(seakeeper()
        .args(["config", "show", "--json", "--repo"])
        .arg(&repo));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["view"]["freezes"]["old"]["active"], false, "{v}");
    assert_eq!(v["view"]["freezes"]["all-hands"]["active"], true, "{v}");
    assert_eq!(
        v["view"]["projects"]["mediawiki/core"]["pipelines"]["check"],
        serde_json::json!([])
    );
    let text = ok(seakeeper().args(["config", "show", "--repo"]).arg(&repo));
    assert!(
        text.contains("freeze old (expired): all — Long gone"),
        "{text}"
    );
}

/// Issue 14, item 10: the working tree is what is checked by default (what you are about to
/// commit), and `--rev` takes any revision expression.
#[test]
fn config_check_reads_the_working_tree_by_default_and_any_revision_with_rev() {
    let dir = tempfile::tempdir().unwrap();
    let files = valid();
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
    let repo = config_repo(dir.path(), &refs);
    // A second commit that breaks environments.yaml, then a working tree that fixes it again.
    std::fs::write(repo.join("environments.yaml"), "environments: [oops\n").unwrap();
    git(&repo, &["commit", "-qam", "break"]);
    let fixed = files
        .iter()
        .find(|(p, _)| *p == "environments.yaml")
        .map(|(_, t)| t.clone())
        .unwrap();
    std::fs::write(repo.join("environments.yaml"), &fixed).unwrap();
    let check = |extra: &[&str]| {
        output(
            seakeeper()
                .args(["config", "check", "--repo"])
                .arg(&repo)
                .args(extra),
        )
    };
    let tree = check(&[]);
    assert!(tree.status.success(), "{}", stdout(&tree));
    assert!(
        stdout(&tree).contains("the working tree"),
        "{}",
        stdout(&tree)
    );
    let head = check(&["--rev", "HEAD"]);
    assert_eq!(head.status.code(), Some(1));
    assert!(
        stdout(&head).contains("environments.yaml:1:"),
        "{}",
        stdout(&head)
    );
    let before = check(&["--rev", "HEAD~1"]);
    assert!(before.status.success(), "{}", stdout(&before));
    let nonsense = check(&["--rev", "no-such-thing~3"]);
    assert!(!nonsense.status.success());
}

/// Issue 19 (in part): `seakeeper init config` writes a starter config repo that passes
/// `config check`, with the server's key when given; it never writes over a directory's files.
#[test]
fn issue_19_init_config_writes_a_starter_that_passes_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ci-key.asc");
    let cert = dir.path().join("ci-cert.asc");
    let out = support::output(
        support::seakeeper()
            .args([
                "key",
                "generate",
                "--userid",
                "ci <ci@example.org>",
                "--out",
            ])
            .arg(&key)
            .arg("--cert-out")
            .arg(&cert),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let repo = dir.path().join("config");
    let out = support::output(
        support::seakeeper()
            .args(["init", "config"])
            .arg(&repo)
            .args([
                "--gerrit",
                "https://gerrit.example.org",
                "--project",
                "acme/api",
            ])
            .args(["--environment", "staging=https://registry.example.org"])
            .args(["--environment", "production=https://registry.example.org"])
            .arg("--cert")
            .arg(&cert),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    for f in [
        "seakeeper.yaml",
        "projects/acme/api.yaml",
        "keys/ci.asc",
        "keys/ci.yaml",
        "policies/trust.yaml",
    ] {
        assert!(repo.join(f).is_file(), "{f}");
    }
    assert!(
        std::fs::read_to_string(repo.join("seakeeper.yaml"))
            .unwrap()
            .contains("$schema=")
    );
    // Committed, and valid at HEAD as in the working tree.
    let out = support::output(
        support::seakeeper()
            .args(["config", "check", "--rev", "HEAD", "--repo"])
            .arg(&repo),
    );
    assert!(
        out.status.success(),
        "{}{}",
        support::stdout(&out),
        support::stderr(&out)
    );
    assert!(
        support::stdout(&out).contains("2 environments"),
        "{}",
        support::stdout(&out)
    );
    // Never over existing files; an unpinned image is refused.
    let out = support::output(support::seakeeper().args(["init", "config"]).arg(&repo));
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("not empty"),
        "{}",
        support::stderr(&out)
    );
    let out = support::output(
        support::seakeeper()
            .args(["init", "config"])
            .arg(dir.path().join("other"))
            .args(["--image", "debian:bookworm"]),
    );
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("pin it by digest"),
        "{}",
        support::stderr(&out)
    );
}
