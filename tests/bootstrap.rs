//! Issue 19 (in part): `seakeeper bootstrap` into a fresh root, twice (the second run changes
//! nothing), then the server starts from what it wrote; a replacement server continues the same
//! ledger from its remote; bad input stops it with nothing installed.

mod support;

use std::path::Path;

fn bootstrap(root: &Path, config: &Path, extra: &[&str]) -> std::process::Output {
    support::output(
        support::seakeeper()
            .args(["bootstrap", "--no-packages", "--no-start", "--root"])
            .arg(root)
            .arg("--config-repo")
            .arg(config)
            .args(extra),
    )
}

/// A starter config repo, committed.
fn config_repo(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("config");
    let out = support::output(support::seakeeper().args(["init", "config"]).arg(&config));
    assert!(out.status.success(), "{}", support::stderr(&out));
    config
}

fn reconcile(root: &Path) -> std::process::Output {
    support::output(
        support::seakeeper()
            .args(["reconcile", "--once", "--settings"])
            .arg(root.join("etc/seakeeper/settings.yaml")),
    )
}

fn ledger_root_commit(root: &Path) -> String {
    support::git(
        &root.join("var/lib/seakeeper/ledger"),
        &["rev-list", "--max-parents=0", "HEAD"],
    )
}

#[test]
fn issue_19_bootstrap_twice_changes_nothing_the_second_time_and_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_repo(dir.path());
    let root = dir.path().join("root");
    let out = bootstrap(&root, &config, &[]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let first = support::stdout(&out);
    assert!(first.contains("ledger-key.asc generated"), "{first}");
    let out = bootstrap(&root, &config, &[]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let second = support::stdout(&out);
    assert!(!second.contains("changed "), "{second}");
    assert!(second.contains("0 change(s)"), "{second}");
    // Modes as the server requires them.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &str| {
        std::fs::metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("etc/seakeeper/ledger-key.asc"), 0o600);
    assert_eq!(mode("etc/seakeeper/secrets.yaml"), 0o600);
    assert_eq!(mode("var/lib/seakeeper"), 0o700);
    // A file made wrong is repaired.
    std::fs::write(root.join("etc/seakeeper/settings.yaml"), "broken: true\n").unwrap();
    let out = bootstrap(&root, &config, &[]);
    assert!(
        support::stdout(&out).contains("settings.yaml written"),
        "{}",
        support::stdout(&out)
    );
    // The server starts from what it wrote, and its ledger verifies with GnuPG.
    let out = reconcile(&root);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let gnupg = dir.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::fs::Permissions::from_mode(0o700)).unwrap();
    let import = std::process::Command::new("gpg")
        .args(["-q", "--import"])
        .arg(root.join("etc/seakeeper/ledger-cert.asc"))
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    assert!(import.status.success());
    let verify = std::process::Command::new("git")
        .arg("-C")
        .arg(root.join("var/lib/seakeeper/ledger"))
        .args(["verify-commit", "HEAD"])
        .env("GNUPGHOME", &gnupg)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    // systemd accepts the unit.
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(root.join("etc/systemd/system/seakeeper.service"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn issue_19_a_replacement_server_continues_the_same_ledger_from_its_remote() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_repo(dir.path());
    let remote = dir.path().join("ledger-remote.git");
    support::git(
        dir.path(),
        &["init", "-q", "--bare", remote.to_str().unwrap()],
    );
    let settings = std::fs::read_to_string(config.join("seakeeper.yaml")).unwrap();
    std::fs::write(
        config.join("seakeeper.yaml"),
        format!("{settings}ledger:\n  remote: {}\n", remote.display()),
    )
    .unwrap();
    support::git_with(
        &config,
        &["commit", "-qam", "Replicate the ledger"],
        &[
            ("GIT_AUTHOR_NAME", "RelEng"),
            ("GIT_AUTHOR_EMAIL", "releng@example.org"),
            ("GIT_COMMITTER_NAME", "RelEng"),
            ("GIT_COMMITTER_EMAIL", "releng@example.org"),
        ],
    );
    let root = dir.path().join("root");
    let remote_arg = remote.to_str().unwrap();
    let out = bootstrap(&root, &config, &["--ledger-remote", remote_arg]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let out = reconcile(&root);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let history = ledger_root_commit(&root);
    // The server is lost; a new one with the same key (kept in /etc) and remote takes over.
    std::fs::remove_dir_all(root.join("var/lib/seakeeper")).unwrap();
    let out = bootstrap(&root, &config, &["--ledger-remote", remote_arg]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).contains("continued from"),
        "{}",
        support::stdout(&out)
    );
    let out = reconcile(&root);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(ledger_root_commit(&root), history);
}

#[test]
fn issue_19_bad_input_stops_bootstrap_with_nothing_installed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = bootstrap(&root, &dir.path().join("no-such-repo"), &[]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("config repo"),
        "{}",
        support::stderr(&out)
    );
    assert!(!root.exists(), "something was installed");
    // An existing key of the wrong kind: refused, never overwritten, nothing else written.
    let config = config_repo(dir.path());
    std::fs::create_dir_all(root.join("etc/seakeeper")).unwrap();
    std::fs::write(root.join("etc/seakeeper/ledger-key.asc"), "not a key").unwrap();
    let out = bootstrap(&root, &config, &[]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("ledger-key.asc"),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(
        std::fs::read(root.join("etc/seakeeper/ledger-key.asc")).unwrap(),
        b"not a key"
    );
    assert!(!root.join("etc/seakeeper/settings.yaml").exists());
    assert!(!root.join("var").exists());
}

/// `--gerrit`, `--public-url` and `--executor` are checked against the config repo (which only
/// review changes): each that differs is printed as the change to propose. `--executor
/// kubernetes` needs the cluster's kubeconfig first, and the unit then names it.
#[test]
fn issue_19_flags_that_differ_from_the_config_repo_become_proposals() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_repo(dir.path());
    let root = dir.path().join("root");
    let out = bootstrap(
        &root,
        &config,
        &[
            "--gerrit",
            "https://gerrit.example.org",
            "--public-url",
            "https://ci.wikimedia.example",
            "--executor",
            "kubernetes",
        ],
    );
    assert!(!out.status.success());
    let e = support::stderr(&out);
    assert!(
        e.contains("kubeconfig") && e.contains("nothing was installed"),
        "{e}"
    );
    assert!(!root.join("etc/seakeeper/settings.yaml").exists());
    assert!(!root.join("var").exists());

    std::fs::create_dir_all(root.join("etc/seakeeper")).unwrap();
    std::fs::write(root.join("etc/seakeeper/kubeconfig"), "apiVersion: v1\n").unwrap();
    let out = bootstrap(
        &root,
        &config,
        &[
            "--gerrit",
            "https://gerrit.example.org",
            "--public-url",
            "https://ci.wikimedia.example",
            "--executor",
            "kubernetes",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "set gerrit.url to \"https://gerrit.example.org\"",
        "set public_url to \"https://ci.wikimedia.example\"",
        "set executor.kind to \"kubernetes\"",
        "executor.seakeeper_image",
        "the status page at https://ci.wikimedia.example",
    ] {
        assert!(stdout.contains(want), "{want}:\n{stdout}");
    }
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/seakeeper.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "Environment=\"KUBECONFIG={}\"",
            root.join("etc/seakeeper/kubeconfig").display()
        )),
        "{unit}"
    );
    // The cluster's credentials are made seakeeper's alone.
    use std::os::unix::fs::PermissionsExt as _;
    let kubeconfig = root.join("etc/seakeeper/kubeconfig");
    assert_eq!(
        std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A repair run without the flag keeps the Kubernetes deployment as it is.
    let out = bootstrap(&root, &config, &[]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("0 change(s)"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/systemd/system/seakeeper.service")).unwrap(),
        unit
    );

    // Flags that agree with the config repo propose nothing.
    let settings = std::fs::read_to_string(config.join("seakeeper.yaml")).unwrap();
    let public = settings
        .lines()
        .find_map(|l| l.strip_prefix("public_url: "))
        .unwrap()
        .trim()
        .to_owned();
    let out = bootstrap(
        &root,
        &config,
        &["--public-url", &public, "--executor", "local"],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!stdout.contains("propose to the config repo"), "{stdout}");
}

/// With `--gerrit` and no account in the environment, bootstrap asks for it at the terminal
/// (before writing anything) and writes it to the secrets file (0600).
#[test]
fn issue_19_the_gerrit_account_is_asked_at_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_repo(dir.path());
    let root = dir.path().join("root");
    // A pseudo-terminal, as SRE's shell is: Python's pty answers the two prompts.
    let script = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
def until(word):
    global out
    end = time.time() + 30
    while word not in out and time.time() < end:
        out += os.read(fd, 4096)
until(b'later): '); os.write(fd, b'ci-bot\n')
until(b'password: '); os.write(fd, b's3cret\n')
try:
    while True:
        d = os.read(fd, 4096)
        if not d: break
        out += d
except OSError:
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = support::output(
        std::process::Command::new("python3")
            .args(["-c", script, env!("CARGO_BIN_EXE_seakeeper")])
            .args(["bootstrap", "--no-packages", "--no-start", "--root"])
            .arg(&root)
            .arg("--config-repo")
            .arg(&config)
            .args(["--gerrit", "https://gerrit.example.org"])
            .env_remove("SEAKEEPER_GERRIT_USERNAME")
            .env_remove("SEAKEEPER_GERRIT_PASSWORD"),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(
        !text.contains("s3cret"),
        "the password is not echoed: {text}"
    );
    let secrets = root.join("etc/seakeeper/secrets.yaml");
    let written = std::fs::read_to_string(&secrets).unwrap();
    assert!(
        written.contains("username: \"ci-bot\"") && written.contains("password: \"s3cret\""),
        "{written}"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
