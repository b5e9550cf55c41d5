//! A whole site for end-to-end tests of the reconciler: the Gerrit stand-in, a config repo,
//! settings, a state directory, and the real `seakeeper` binary run against them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::gerrit::Gerrit;
use super::{ok, seakeeper, stderr};

#[allow(unused_imports)]
pub use super::{git, wait_for};

pub const CI_BOT: u64 = 1000042;
pub const IMAGE: &str = "registry.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A Gerrit stand-in, a config repo, settings and a state directory.
pub struct Site {
    pub w: super::World,
    pub g: Gerrit,
    pub config: PathBuf,
    pub settings: PathBuf,
    /// Whether `reconcile_cmd` and `Daemon::start` pass `--init-ledger` to a server without
    /// a ledger.
    pub auto_init: std::cell::Cell<bool>,
}

impl Site {
    pub fn new(registries: &str, extra_settings: &str) -> Site {
        let w = super::World::new();
        let g = Gerrit::start();
        let config = w.path("config");
        std::fs::create_dir_all(&config).unwrap();
        git(&config, &["init", "-q", "-b", "main"]);
        let d = w.dir.path().display().to_string();
        let oci = format!(
            "registries:\n  testing: {{ url: \"oci:{d}/reg/testing\" }}\n  staging: {{ url: \"oci:{d}/reg/staging\" }}\n"
        );
        let registries = if registries.is_empty() {
            oci.as_str()
        } else {
            registries
        };
        let site = Site {
            w,
            g,
            config,
            settings: PathBuf::new(),
            auto_init: std::cell::Cell::new(true),
        };
        site.write_config(
            "seakeeper.yaml",
            &format!(
                "public_url: https://ci.example.org\ngerrit:\n  url: {}\n  user: ci-bot\n  report: true\n{registries}executor:\n  kind: local\n  concurrency: 4\n",
                site.g.url
            ),
        );
        site.write_config(
            "environments.yaml",
            "environments:\n  - {name: testing, registry: testing}\n  - {name: staging, registry: staging}\n",
        );
        site.write_config(
            "projects/acme/api.yaml",
            "pipelines: [check, post-merge]\nimages: [api]\n",
        );
        site.commit_config("Initial configuration");
        let secrets = site.w.path("secrets.yaml");
        std::fs::write(
            &secrets,
            "gerrit:\n  username: ci-bot\n  password: ci-bot-http-token\n",
        )
        .unwrap();
        std::fs::set_permissions(
            &secrets,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let settings = site.w.path("settings.yaml");
        std::fs::write(
            &settings,
            format!(
                "state_dir: state\nsigning_key: {}\nsecrets: secrets.yaml\nconfig_repo: {}\nhost_tools: true\n{extra_settings}",
                site.w.key.display(),
                site.config.display()
            ),
        )
        .unwrap();
        site.g.create_project("acme/api");
        Site { settings, ..site }
    }

    pub fn write_config(&self, path: &str, text: &str) {
        let p = self.config.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    pub fn commit_config(&self, message: &str) -> String {
        git(&self.config, &["add", "-A"]);
        git(&self.config, &["commit", "-q", "-m", message]);
        git(&self.config, &["rev-parse", "HEAD"])
    }

    pub fn state(&self) -> PathBuf {
        self.w.path("state")
    }

    pub fn ledger(&self) -> PathBuf {
        self.state().join("ledger")
    }

    /// `reconcile --once --wait`; with `--init-ledger` while the server has no ledger yet and
    /// `auto_init` is on (the default: most tests are about a new deployment).
    pub fn reconcile_cmd(&self) -> Command {
        let mut c = seakeeper();
        c.args(["reconcile", "--once", "--wait", "--settings"])
            .arg(&self.settings);
        if self.auto_init.get() && !self.ledger().exists() {
            c.arg("--init-ledger");
        }
        c
    }

    pub fn reconcile(&self) -> String {
        ok(&mut self.reconcile_cmd())
    }

    /// A clone of a project to make changes in.
    pub fn clone(&self, project: &str) -> PathBuf {
        let dir = self.w.path(&format!("work-{}", project.replace('/', "-")));
        if !dir.exists() {
            let out = Command::new("git")
                .args(["clone", "-q", &self.g.git_url(project)])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    }

    /// Uploads a patchset: `files` written, committed with `change_id`, pushed for review.
    pub fn upload(
        &self,
        project: &str,
        change_id: &str,
        files: &[(&str, &str)],
        amend: bool,
    ) -> String {
        let w = self.clone(project);
        for (p, t) in files {
            let path = w.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        git(&w, &["add", "-A"]);
        let msg = format!("Change {change_id}\n\nChange-Id: {change_id}\n");
        if amend {
            git(&w, &["commit", "-q", "--amend", "-m", &msg]);
        } else {
            git(&w, &["commit", "-q", "-m", &msg]);
        }
        // The stand-in may have been told to fail requests (for the daemon): try again.
        let url = self.g.push_url(project, "alice");
        let mut tries = 0;
        loop {
            tries += 1;
            let out = Command::new("git")
                .arg("-C")
                .arg(&w)
                .args(["push", "-q", &url, "HEAD:refs/for/main"])
                .env("GIT_TERMINAL_PROMPT", "0")
                .output()
                .unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                tries < 20,
                "git push: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        git(&w, &["rev-parse", "HEAD"])
    }

    /// Pushes the clone's HEAD straight to main (a merge).
    pub fn merge(&self, project: &str) {
        let w = self.clone(project);
        git(
            &w,
            &[
                "push",
                "-q",
                &self.g.push_url(project, "alice"),
                "HEAD:refs/heads/main",
            ],
        );
    }

    pub fn reviews(&self, change: u32) -> Vec<String> {
        self.g
            .change(change)
            .messages
            .iter()
            .filter(|m| m.author == Some(CI_BOT))
            .map(|m| m.message.clone())
            .collect()
    }

    pub fn verify_ledger(&self) {
        ok(seakeeper()
            .args(["ledger", "verify"])
            .arg(self.ledger())
            .arg("--cert")
            .arg(&self.w.cert));
        self.w.gpg_verify_all(&self.ledger());
    }

    pub fn ledger_log(&self) -> String {
        git(
            &self.ledger(),
            &["log", "--format=%s%n%b", "refs/heads/main"],
        )
    }
}

/// A pipeline file: `unit` runs `test` on check, `build` copies msg.txt on post-merge.
pub fn pipeline(test: &str) -> String {
    format!(
        "jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"{test}\"]\n    timeout: 1m\n  build:\n    image: {IMAGE}\n    commands: [mkdir -p dist, cp msg.txt dist/]\n    timeout: 1m\n    outputs:\n      files: [\"dist/**\"]\npipelines:\n  check: [unit]\n  post-merge: [build]\n"
    )
}

/// The `Build-Id:` lines of a text.
pub fn build_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Build-Id: "))
        .map(str::to_owned)
        .collect()
}

pub struct Daemon(pub std::process::Child);

impl Daemon {
    pub fn start(site: &Site) -> Daemon {
        Daemon(
            seakeeper()
                .args(["serve", "--full-every", "1", "--grace", "5", "--settings"])
                .arg(&site.settings)
                .args((site.auto_init.get() && !site.ledger().exists()).then_some("--init-ledger"))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    }

    pub fn term(mut self) -> Output {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Ledger data for promotion tests: an image in the testing layout, an attestation of it
// signed by a given key, and the records of a trusted build that made it.

use seakeeper::model::{
    Artifact, ArtifactKind, ArtifactRef, Attestation, BuildRequest, BuildResult, BuildStatus,
    Digest, JobResult, Promotion, Record, Timestamp, Trust,
};

pub const COMMIT: &str = "1111111111111111111111111111111111111111";

/// An image in the testing registry's layout; returns its digest.
pub fn image_in_testing(site: &Site) -> Digest {
    image_in_layout(
        &site.w.path("image-root"),
        &site.w.path("reg/testing"),
        "api v1\n",
    )
}

/// An image of one file (`/srv/app` holding `content`, built under `root`) in the OCI layout
/// `layout`, tagged `api`; returns its digest.
pub fn image_in_layout(root: &Path, layout: &Path, content: &str) -> Digest {
    std::fs::create_dir_all(root.join("srv")).unwrap();
    std::fs::write(root.join("srv/app"), content).unwrap();
    let out = ok(seakeeper()
        .args(["image", "build", "--from-dir"])
        .arg(root)
        .arg("--layout")
        .arg(layout)
        .args(["--tag", "api"]));
    out.trim().parse().unwrap()
}

/// A DSSE envelope of SLSA provenance about `api@digest`, signed with `key`.
pub fn envelope(key: &Path, digest: &Digest) -> seakeeper::model::record::DsseEnvelope {
    let out = ok(seakeeper()
        .args(["attest", "provenance", "--key"])
        .arg(key)
        .args([
            "--subject",
            &format!("api@{digest}"),
            "--build-id",
            "post-merge-api-1",
            "--project",
            "acme/api",
            "--source",
            "https://gerrit.example.org/acme/api",
            "--source-commit",
            COMMIT,
            "--config-repo",
            "https://gerrit.example.org/config",
            "--config-commit",
            COMMIT,
        ]));
    serde_json::from_str(out.trim()).unwrap()
}

/// Records a trusted build of `api` that made `digest`, attested with `envelope`, in testing.
pub fn record_build(
    site: &Site,
    digest: &Digest,
    envelope: seakeeper::model::record::DsseEnvelope,
) {
    let at: Timestamp = "2026-12-01T09:00:00Z".parse().unwrap();
    let build_id = "post-merge-api-1".parse().unwrap();
    let records = vec![
        Record::BuildRequest(BuildRequest {
            build_id: "post-merge-api-1".parse().unwrap(),
            pipeline: "post-merge".parse().unwrap(),
            project: "acme/api".parse().unwrap(),
            change: None,
            patchset: None,
            git_ref: "refs/heads/main".parse().unwrap(),
            source_commit: COMMIT.parse().unwrap(),
            config_commit: COMMIT.parse().unwrap(),
            trust: Trust::Trusted,
            requested_at: at,
            jobs: vec!["build".into()],
            cause: None,
        }),
        Record::BuildResult(BuildResult {
            build_id: "post-merge-api-1".parse().unwrap(),
            status: BuildStatus::Success,
            started_at: at,
            finished_at: at,
            jobs: vec![JobResult {
                name: "build".into(),
                status: BuildStatus::Success,
                duration_ms: 10,
                log_digest: None,
                needs: Vec::new(),
                image: None,
            }],
            artifacts: vec![ArtifactRef {
                digest: digest.clone(),
                name: "api".into(),
                kind: ArtifactKind::Image,
            }],
        }),
        Record::Artifact(Artifact {
            digest: digest.clone(),
            build_id,
            name: "api".into(),
            kind: ArtifactKind::Image,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 500,
        }),
        Record::Attestation(Attestation {
            subject_digest: digest.clone(),
            predicate_type: "https://slsa.dev/provenance/v1".into(),
            envelope,
        }),
        Record::Promotion(Promotion {
            environment: "testing".parse().unwrap(),
            image: "api".parse().unwrap(),
            digest: digest.clone(),
            previous_digest: None,
            from_registry: "oci:build".into(),
            to_registry: "oci:testing".into(),
            config_commit: COMMIT.parse().unwrap(),
            promoted_at: at,
        }),
    ];
    import(site, &records);
}

/// A site whose testing environment is the registry at `host` (plain HTTP) and staging the
/// OCI layout `staging`, with a trusted build of `digest` recorded and attested and
/// `promotions/staging.yaml` asking for it (committed with `message`).
pub fn promoting_from(host: &str, staging: &Path, digest: &Digest, message: &str) -> Site {
    let site = Site::new(
        &format!(
            "registries:\n  testing: {{ url: \"http://{host}\" }}\n  staging: {{ url: \"oci:{}\" }}\n",
            staging.display()
        ),
        "",
    );
    site.reconcile();
    record_build(&site, digest, envelope(&site.w.key, digest));
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    site.commit_config(message);
    site
}

pub fn import(site: &Site, records: &[Record]) {
    let mut jsonl = Vec::new();
    for r in records {
        serde_json::to_writer(&mut jsonl, r).unwrap();
        jsonl.push(b'\n');
    }
    let out = site.w.import(&site.ledger(), &site.w.key, &jsonl, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

pub fn in_staging(site: &Site, digest: &Digest) -> bool {
    site.w
        .path(&format!("reg/staging/blobs/sha256/{}", digest.hex()))
        .exists()
}
