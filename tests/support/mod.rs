//! Helpers shared by integration tests: temp worlds, the real `seakeeper` binary, real git and
//! real GnuPG, and the Gerrit stand-in (`gerrit/`).

#![allow(dead_code)]

pub mod gerrit;
pub mod kube;
pub mod phabricator;
pub mod registry;
pub mod site;
pub mod web;

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// seakeeper's own image in tests' Kubernetes settings (the stand-in never pulls it).
#[allow(dead_code)]
pub const SEAKEEPER_IMAGE: &str = "registry.example.org/seakeeper/seakeeper@sha256:5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf5eaf";

/// Runs git in `dir` with a fixed identity (alice) and no user or system config; returns
/// trimmed stdout, failing the test when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_with(dir, args, &[])
}

/// [`git`] with more environment (fixed dates, for commit ids a test can rely on).
pub fn git_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Alice Example")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_NAME", "Alice Example")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org")
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fixed author and committer dates.
pub const FIXED_DATES: [(&str, &str); 2] = [
    ("GIT_AUTHOR_DATE", "2026-11-22T00:00:00Z"),
    ("GIT_COMMITTER_DATE", "2026-11-22T00:00:00Z"),
];

/// Waits until `f` holds, failing the test after `timeout`.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
use std::process::{Command, Output, Stdio};

/// The seakeeper binary cargo built for these tests.
pub fn seakeeper() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seakeeper"))
}

/// Runs a command, returning its output; panics with stderr if it could not start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command with `input` on stdin.
pub fn with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("writing stdin");
    child.wait_with_output().expect("waiting")
}

/// A temporary world: a directory, a signing key and its cert, and a GnuPG home that knows
/// the cert (so `git verify-commit` can check ledger commits).
pub struct World {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub cert: PathBuf,
    pub gnupghome: PathBuf,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("key.asc");
        let cert = dir.path().join("cert.asc");
        ok(seakeeper()
            .args([
                "key",
                "generate",
                "--userid",
                "seakeeper CI <ci@example.org>",
                "--out",
            ])
            .arg(&key)
            .arg("--cert-out")
            .arg(&cert));
        let gnupghome = dir.path().join("gnupg");
        std::fs::create_dir(&gnupghome).expect("gnupg home");
        std::fs::set_permissions(
            &gnupghome,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let w = World {
            dir,
            key,
            cert,
            gnupghome,
        };
        w.gpg_import(&w.cert.clone());
        w
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Generates another key in this world; returns (key, cert, fingerprint).
    pub fn another_key(&self, name: &str) -> (PathBuf, PathBuf, String) {
        let key = self.path(&format!("{name}.key.asc"));
        let cert = self.path(&format!("{name}.cert.asc"));
        let fpr = ok(seakeeper()
            .args([
                "key",
                "generate",
                "--userid",
                &format!("{name} <{name}@example.org>"),
                "--out",
            ])
            .arg(&key)
            .arg("--cert-out")
            .arg(&cert));
        (key, cert, fpr.trim().to_owned())
    }

    pub fn gpg_import(&self, file: &Path) {
        ok(Command::new("gpg")
            .env("GNUPGHOME", &self.gnupghome)
            .args(["--batch", "--quiet", "--import"])
            .arg(file));
    }

    pub fn git(&self, repo: &Path) -> Command {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(repo)
            .env("GNUPGHOME", &self.gnupghome)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.dir.path());
        c
    }

    /// Creates a ledger signed by the world's key.
    pub fn init_ledger(&self, name: &str) -> PathBuf {
        let ledger = self.path(name);
        ok(seakeeper()
            .args(["ledger", "init"])
            .arg(&ledger)
            .arg("--key")
            .arg(&self.key));
        ledger
    }

    /// Every commit of the ledger, oldest first.
    pub fn commits(&self, ledger: &Path) -> Vec<String> {
        ok(self
            .git(ledger)
            .args(["rev-list", "--reverse", "refs/heads/main"]))
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// Checks every commit with real GnuPG through `git verify-commit`.
    pub fn gpg_verify_all(&self, ledger: &Path) {
        let commits = self.commits(ledger);
        assert!(!commits.is_empty());
        for c in commits {
            let out = output(self.git(ledger).args(["verify-commit", &c]));
            assert!(
                out.status.success(),
                "GnuPG rejects {c}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    pub fn import(&self, ledger: &Path, key: &Path, jsonl: &[u8], extra: &[&str]) -> Output {
        with_stdin(
            seakeeper()
                .args(["ledger", "import"])
                .arg(ledger)
                .arg("--key")
                .arg(key)
                .args(extra),
            jsonl,
        )
    }

    /// Starts `ledger import` without waiting: `input` is fed from a thread (whose write may
    /// fail if the child is killed); stdout and stderr are piped.
    pub fn spawn_import(
        &self,
        ledger: &Path,
        input: Vec<u8>,
    ) -> (std::process::Child, std::thread::JoinHandle<()>) {
        let mut child = seakeeper()
            .args(["ledger", "import"])
            .arg(ledger)
            .arg("--key")
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning seakeeper");
        let mut stdin = child.stdin.take().expect("stdin was piped");
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        (child, feeder)
    }

    pub fn verify(&self, ledger: &Path) -> Output {
        output(
            seakeeper()
                .args(["ledger", "verify"])
                .arg(ledger)
                .arg("--cert")
                .arg(&self.cert),
        )
    }

    pub fn tip(&self, ledger: &Path) -> String {
        ok(self.git(ledger).args(["rev-parse", "refs/heads/main"]))
            .trim()
            .to_owned()
    }
}

/// Sample records as JSON lines: whole builds from build `first`, at least `count` records.
pub fn sample_jsonl(first: u64, count: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for r in seakeeper::ledger::sample::records(first, count) {
        serde_json::to_writer(&mut out, &r).expect("json");
        out.push(b'\n');
    }
    out
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
