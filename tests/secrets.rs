//! Issue 18: job secrets sealed in the config repo (`secrets/<NAME>.pgp`, OpenPGP messages to
//! the server's encryption subkey) with their rules in `policies/secrets.yaml`: sealed with
//! `seakeeper secret encrypt` (or GnuPG), checked by `config check --key`, rotated with
//! `secret reencrypt`, and given by the daemon to trusted jobs only, masked in their logs and
//! never written to the ledger or the state directory.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::site::{Daemon, IMAGE, Site, git, wait_for};
use support::{ok, output, seakeeper, stderr, stdout, with_stdin};

/// A value no test output could contain by chance.
const VALUE: &str = "tok-5e1f-QUOKKA-9c3d";

const POLICY: &str =
    "secrets:\n  - name: DEPLOY_TOKEN\n    projects: [\"acme/*\"]\n    pipelines: [post-merge]\n";

fn encrypt(repo: &Path, name: &str, cert: &Path, value: &str) -> std::process::Output {
    with_stdin(
        seakeeper()
            .args(["secret", "encrypt", "--name", name, "--cert"])
            .arg(cert)
            .arg("--repo")
            .arg(repo),
        value.as_bytes(),
    )
}

fn check(repo: &Path, key: Option<&Path>) -> std::process::Output {
    let mut c = seakeeper();
    c.args(["config", "check", "--repo"]).arg(repo);
    if let Some(k) = key {
        c.arg("--key").arg(k);
    }
    output(&mut c)
}

/// `config check` fails, and its output holds `want` (and never the value).
fn check_fails(repo: &Path, key: Option<&Path>, want: &str) {
    let out = check(repo, key);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(want), "wanted {want:?} in:\n{text}");
    assert!(!text.contains(VALUE), "{text}");
}

fn check_ok(repo: &Path, key: Option<&Path>) {
    let out = check(repo, key);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn issue_18_secrets_are_sealed_checked_by_config_check_and_rotated() {
    let site = Site::new("", "");
    let (key, cert, config) = (&site.w.key, &site.w.cert, &site.config);
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &site.w.gnupghome)
            .args(["--batch", "--quiet"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", stderr(&out));
        out.stdout
    };
    // GnuPG reads the server's cert, encryption subkey included (World imported it).
    let listed = String::from_utf8(gpg(&["--with-colons", "--list-keys"])).unwrap();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("sub:") && l.split(':').nth(11).is_some_and(|c| c.contains('e'))),
        "{listed}"
    );
    // `key export` gives the same public cert as `key generate` wrote.
    let exported = ok(seakeeper().args(["key", "export", "--key"]).arg(key));
    assert!(exported.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));
    assert!(!exported.contains("PRIVATE"));

    // Sealed, but no rule says who may use it: an error naming the file.
    let out = encrypt(config, "DEPLOY_TOKEN", cert, &format!("{VALUE}\n"));
    assert!(out.status.success(), "{}", stderr(&out));
    let path = config.join("secrets/DEPLOY_TOKEN.pgp");
    let sealed = std::fs::read_to_string(&path).unwrap();
    assert!(
        sealed.starts_with("-----BEGIN PGP MESSAGE-----"),
        "{sealed}"
    );
    assert!(!sealed.contains(VALUE));
    check_fails(
        config,
        None,
        "secrets/DEPLOY_TOKEN.pgp: no rule in policies/secrets.yaml",
    );

    // With its rule it is valid, and opens with the server's key.
    site.write_config("policies/secrets.yaml", POLICY);
    check_ok(config, None);
    check_ok(config, Some(key));

    // A rule naming an untrusted pipeline, or a secret with no file.
    site.write_config(
        "policies/secrets.yaml",
        "secrets:\n  - {name: DEPLOY_TOKEN, projects: [\"acme/*\"], pipelines: [check]}\n  - {name: OTHER_TOKEN, projects: [\"*\"], pipelines: [gate]}\n",
    );
    check_fails(config, None, "`check` is untrusted");
    check_fails(config, None, "secret `OTHER_TOKEN` has no sealed value");
    // A bare name (the old form) says what to write.
    site.write_config("policies/secrets.yaml", "secrets: [DEPLOY_TOKEN]\n");
    check_fails(config, None, "say who may use it");
    site.write_config("policies/secrets.yaml", POLICY);

    // Tampered: one character of the armored body changed.
    let mut lines: Vec<String> = sealed.lines().map(str::to_owned).collect();
    let body = lines
        .iter()
        .position(|l| l.is_empty())
        .map(|i| i + 2)
        .unwrap();
    let flipped: String = lines[body]
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 20 {
                if c == 'A' { 'B' } else { 'A' }
            } else {
                c
            }
        })
        .collect();
    lines[body] = flipped;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    check_ok(config, None); // the structure is fine: only the key can tell
    check_fails(config, Some(key), "secrets/DEPLOY_TOKEN.pgp");
    let out = check(config, Some(key));
    let text = stdout(&out);
    assert!(
        text.contains("altered") || text.contains("not an OpenPGP message"),
        "{text}"
    );

    // Encrypted to another key.
    let (other_key, other_cert, _) = site.w.another_key("other");
    assert!(
        encrypt(config, "DEPLOY_TOKEN", &other_cert, VALUE)
            .status
            .success()
    );
    check_fails(config, Some(key), "not to this server's encryption key");

    // A file renamed to another secret's name does not open as that secret.
    assert!(
        encrypt(config, "DEPLOY_TOKEN", cert, VALUE)
            .status
            .success()
    );
    std::fs::rename(&path, config.join("secrets/RENAMED.pgp")).unwrap();
    site.write_config(
        "policies/secrets.yaml",
        "secrets:\n  - {name: RENAMED, projects: [\"acme/*\"], pipelines: [post-merge]}\n",
    );
    check_fails(
        config,
        Some(key),
        "holds the secret `DEPLOY_TOKEN`, not `RENAMED`",
    );
    std::fs::remove_file(config.join("secrets/RENAMED.pgp")).unwrap();
    site.write_config("policies/secrets.yaml", POLICY);

    // GnuPG can seal for the server too (with the name seakeeper expects).
    let sealed_by_gpg = {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &site.w.gnupghome).args([
            "--batch",
            "--quiet",
            "--trust-model",
            "always",
            "--armor",
            "--encrypt",
            "--set-filename",
            "DEPLOY_TOKEN",
            "--recipient",
            "ci@example.org",
        ]);
        let out = with_stdin(&mut c, VALUE.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    std::fs::write(&path, &sealed_by_gpg).unwrap();
    check_ok(config, Some(key));

    // Rotation: everything re-encrypted to a new key, all or nothing.
    let out = output(
        seakeeper()
            .args(["secret", "reencrypt", "--key"])
            .arg(key)
            .arg("--cert")
            .arg(&other_cert)
            .arg("--repo")
            .arg(config),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 secret(s) encrypted to"),
        "{}",
        stderr(&out)
    );
    check_ok(config, Some(&other_key));
    check_fails(config, Some(key), "not to this server's encryption key");
}

#[test]
fn issue_18_a_key_without_an_encryption_subkey_is_told_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let out = Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "gpg {args:?}: {}", stderr(&out));
        out.stdout
    };
    // A key as older seakeeper versions made them: signing only (made here by GnuPG).
    gpg(&[
        "--quick-gen-key",
        "Old CI <old@example.org>",
        "ed25519",
        "sign",
        "never",
    ]);
    let old = dir.path().join("old.asc");
    std::fs::write(
        &old,
        gpg(&["--armor", "--export-secret-keys", "old@example.org"]),
    )
    .unwrap();
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let old_cert = dir.path().join("old-cert.asc");
    std::fs::write(&old_cert, gpg(&["--armor", "--export", "old@example.org"])).unwrap();
    let repo = dir.path().join("config");
    let out = encrypt(&repo, "DEPLOY_TOKEN", &old_cert, VALUE);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no usable encryption subkey")
            && stderr(&out).contains("seakeeper key add-encryption-subkey"),
        "{}",
        stderr(&out)
    );
    // Added: same fingerprint, and GnuPG reads the new cert.
    let new_cert = dir.path().join("new-cert.asc");
    ok(seakeeper()
        .args(["key", "add-encryption-subkey", "--key"])
        .arg(&old)
        .arg("--cert-out")
        .arg(&new_cert));
    let imported = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args(["--batch", "--import"])
        .arg(&new_cert)
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", stderr(&imported));
    let out = encrypt(&repo, "DEPLOY_TOKEN", &new_cert, VALUE);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&old).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn issue_18_the_daemon_gives_a_trusted_job_its_secret_masked_and_refuses_untrusted_ones() {
    let site = Site::new("", "");
    let out = encrypt(&site.config, "DEPLOY_TOKEN", &site.w.cert, VALUE);
    assert!(out.status.success(), "{}", stderr(&out));
    site.write_config("policies/secrets.yaml", POLICY);
    site.commit_config("A deploy token for acme");
    site.reconcile(); // the baseline, and the ledger

    // Untrusted: a check job naming the secret is refused before anything runs.
    let untrusted = format!(
        "jobs:\n  leak:\n    image: {IMAGE}\n    commands: [\"echo $DEPLOY_TOKEN\"]\n    timeout: 1m\n    secrets: [DEPLOY_TOKEN]\npipelines:\n  check: [leak]\n"
    );
    site.upload(
        "acme/api",
        "I0000000000000000000000000000000000000018",
        &[(".pipeline/config.yaml", &untrusted)],
        false,
    );
    site.reconcile();
    let reviews = site.reviews(1);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert!(
        reviews[0].contains("only trusted pipelines may use secrets")
            && reviews[0].contains("Verified-1"),
        "{}",
        reviews[0]
    );
    assert!(!site.state().join("jobs").exists() || !has_job_named(&site.state(), "leak"));

    // Trusted: the post-merge job gets it, as an environment variable, and its log shows ***.
    let trusted = format!(
        "jobs:\n  deploy:\n    image: {IMAGE}\n    commands: [\"echo token=$DEPLOY_TOKEN\", \"printf %s \\\"$DEPLOY_TOKEN\\\" | sha256sum\", \"echo length=${{#DEPLOY_TOKEN}}\", \"echo file-sha=$(sha256sum < $SEAKEEPER_SECRETS_DIR/DEPLOY_TOKEN)\", \"echo fs=$(stat -f -c %T $SEAKEEPER_SECRETS_DIR)\"]\n    timeout: 1m\n    secrets: [DEPLOY_TOKEN]\npipelines:\n  post-merge: [deploy]\n"
    );
    let w = site.clone("acme/api");
    git(&w, &["reset", "-q", "--hard", "origin/main"]);
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(w.join(".pipeline/config.yaml"), trusted).unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "Deploy with a token"]);
    site.merge("acme/api");
    let daemon = Daemon::start(&site);
    let result = || {
        let tree = git(
            &site.ledger(),
            &["ls-tree", "-r", "--name-only", "refs/heads/main"],
        );
        tree.lines()
            .find(|p| p.contains("/post-merge-") && p.ends_with("/result.yaml"))
            .map(|p| git(&site.ledger(), &["show", &format!("refs/heads/main:{p}")]))
    };
    wait_for("the post-merge result", Duration::from_secs(60), || {
        result().is_some()
    });
    let out = daemon.term();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let result = result().unwrap();
    assert!(result.contains("status: success"), "{result}\n{said}");
    let digest = result
        .split("sha256:")
        .nth(1)
        .and_then(|t| t.get(..64))
        .expect("a log digest");
    let log = std::fs::read_to_string(site.state().join("store/sha256").join(digest)).unwrap();
    assert!(log.contains("token=***"), "{log}");
    assert!(log.contains(&format!("length={}", VALUE.len())), "{log}");
    let sha = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(VALUE.as_bytes()))
    };
    assert!(log.contains(&sha), "the job got exactly the value: {log}");
    // ...and as a file on a tmpfs.
    assert!(log.contains(&format!("file-sha={sha}")), "{log}");
    assert!(log.contains("fs=tmpfs"), "{log}");
    assert!(!log.contains(VALUE), "{log}");
    assert!(!said.contains(VALUE), "{said}");

    // Nowhere on disk: not the state directory (logs, job directories, launch files, the
    // ledger's objects as git shows them), nor the ledger's history.
    let grep = Command::new("grep")
        .args(["-r", "-l", "-a", "-F", VALUE])
        .arg(site.state())
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "the value is in: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    let history = git(&site.ledger(), &["log", "-p", "--all", "--format=%B"]);
    assert!(history.contains("post-merge"), "{history}");
    assert!(!history.contains(VALUE));
    site.verify_ledger();
}

fn has_job_named(state: &Path, job: &str) -> bool {
    let Ok(builds) = std::fs::read_dir(state.join("jobs")) else {
        return false;
    };
    builds.flatten().any(|b| {
        std::fs::read_dir(b.path()).is_ok_and(|mut js| {
            js.any(|j| j.is_ok_and(|j| j.file_name().to_string_lossy().starts_with(job)))
        })
    })
}

fn kube_spec(job: &str, trust: seakeeper::model::Trust) -> seakeeper::model::JobSpec {
    seakeeper::model::JobSpec {
        build_id: format!("post-merge-{job}").parse().unwrap(),
        job: job.into(),
        pipeline: "post-merge".into(),
        project: "acme/api".parse().unwrap(),
        change: None,
        source: "https://gerrit.example.org/acme/api".into(),
        commit: "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5".parse().unwrap(),
        image: IMAGE.into(),
        commands: vec!["echo token=$DEPLOY_TOKEN".into(), "deploy".into()],
        env: [("STANDIN_DURATION_MS".to_owned(), "300".to_owned())].into(),
        timeout_seconds: 600,
        cpu: None,
        memory: None,
        services: Default::default(),
        secrets: vec!["DEPLOY_TOKEN".into()],
        network: false,
        outputs: vec![],
        trust,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    }
}

#[test]
fn issue_18_a_kubernetes_job_gets_a_secret_of_its_own_that_goes_with_it_and_is_masked() {
    use seakeeper::executor::Executor as _;
    use seakeeper::executor::kubernetes::{KubeExecutor, KubeSettings, job_name};
    use seakeeper::model::{JobState, Trust};
    use seakeeper::secrets::{FixedSecrets, SecretValue};
    let api = support::kube::KubeApi::start();
    let values = [(
        "DEPLOY_TOKEN".to_owned(),
        SecretValue::new("DEPLOY_TOKEN", VALUE).unwrap(),
    )]
    .into();
    let e = KubeExecutor::connect(&api.url, KubeSettings::default())
        .unwrap()
        .with_secrets(std::sync::Arc::new(FixedSecrets::new(values)));

    // Untrusted: refused before anything is created.
    let untrusted = kube_spec("leak", Trust::Untrusted);
    let err = e.start(&untrusted).unwrap_err().to_string();
    assert!(err.contains("untrusted jobs get no secrets"), "{err}");
    assert!(api.jobs().is_empty() && api.secrets().is_empty());
    assert!(api.network_policies().is_empty());
    // A secret the source does not have: refused too.
    let mut unknown = kube_spec("unknown", Trust::Trusted);
    unknown.secrets = vec!["OTHER".into()];
    let err = e.start(&unknown).unwrap_err().to_string();
    assert!(err.contains("OTHER"), "{err}");
    assert!(api.jobs().is_empty() && api.secrets().is_empty());

    // Trusted: a Secret named as its Job, made first, then owned by the Job.
    let s = kube_spec("deploy", Trust::Trusted);
    e.start(&s).unwrap();
    e.start(&s).unwrap(); // again: adopted, nothing made twice
    let name = job_name(&s.key());
    let (jobs, secrets) = (api.jobs(), api.secrets());
    assert_eq!((jobs.len(), secrets.len()), (1, 1));
    let (job, secret) = (&jobs[0], &secrets[0]);
    assert_eq!(secret["metadata"]["name"], name.as_str());
    assert_eq!(secret["metadata"]["namespace"], "seakeeper-trusted");
    assert_eq!(secret["immutable"], true);
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Job");
    assert_eq!(owner["uid"], job["metadata"]["uid"]);
    assert_eq!(owner["name"], name.as_str());
    let env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone();
    let from = env.iter().find(|v| v["name"] == "DEPLOY_TOKEN").unwrap();
    assert_eq!(from["valueFrom"]["secretKeyRef"]["name"], name.as_str());
    assert!(
        !job.to_string().contains(VALUE),
        "the Job never holds the value"
    );
    let pod = &job["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "secrets")
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], name.as_str());
    assert!(
        pod["containers"][0]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/run/secrets" && m["readOnly"] == true)
    );

    // Its log, as collected, shows *** where the job printed the value.
    assert_eq!(
        e.wait(&s.key(), Some(Duration::from_secs(20))).unwrap(),
        JobState::Succeeded
    );
    let mut lines = Vec::new();
    e.logs(&s.key(), false, &mut |l| lines.push(l.text))
        .unwrap();
    assert!(lines.iter().any(|l| l == "token=***"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains(VALUE)), "{lines:?}");

    // Deleted with its Job (Kubernetes' garbage collector).
    e.cancel(&s.key()).unwrap();
    wait_for(
        "the Job and its Secret to go",
        Duration::from_secs(20),
        || api.jobs().is_empty() && api.secrets().is_empty(),
    );
}

#[test]
fn issue_18_job_run_takes_a_secret_from_the_callers_environment_and_masks_it() {
    let site = Site::new("", "");
    assert!(
        encrypt(&site.config, "DEPLOY_TOKEN", &site.w.cert, VALUE)
            .status
            .success()
    );
    site.write_config("policies/secrets.yaml", POLICY);
    site.commit_config("A deploy token for acme");
    let repo = site.w.path("api");
    std::fs::create_dir_all(repo.join(".pipeline")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(
        repo.join(".pipeline/config.yaml"),
        format!(
            "jobs:\n  deploy:\n    image: {IMAGE}\n    commands: [\"echo token=$DEPLOY_TOKEN\", \"echo dir=$SEAKEEPER_SECRETS_DIR\", \"echo file=$(cat $SEAKEEPER_SECRETS_DIR/DEPLOY_TOKEN)\", \"echo fs=$(stat -f -c %T $SEAKEEPER_SECRETS_DIR)\"]\n    timeout: 1m\n    secrets: [DEPLOY_TOKEN]\npipelines:\n  post-merge: [deploy]\n"
        ),
    )
    .unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "Deploy"]);
    let state = site.w.path("local-state");
    let run = |secret: bool, sandbox: bool| {
        let mut c = seakeeper();
        c.args([
            "job",
            "run",
            "deploy",
            "--pipeline",
            "post-merge",
            "--project",
            "acme/api",
        ])
        .arg("--repo")
        .arg(&repo)
        .arg("--config-repo")
        .arg(&site.config)
        .arg("--state")
        .arg(&state)
        .env("DEPLOY_TOKEN", VALUE);
        if secret {
            c.args(["--secret", "DEPLOY_TOKEN"]);
        }
        if !sandbox {
            c.arg("--no-sandbox");
        }
        // The host's tools: the job's image is not in any registry here.
        c.arg("--host-tools");
        // A build of its own each time (the default id has a one-second clock).
        c.args(["--build-id", &format!("local-{secret}-{sandbox}")]);
        output(&mut c)
    };
    // Not given: refused before it runs.
    let out = run(false, true);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("DEPLOY_TOKEN"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("token="), "{}", stdout(&out));
    // Given from the environment: the job gets it, the log masks it.
    // Given from the environment: the job gets it (a variable, and a file on a tmpfs, in the
    // sandbox and without one), the log masks it, the file goes with the job.
    for sandbox in [true, false] {
        let out = run(true, sandbox);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "{all}");
        assert!(
            all.contains("token=***") && all.contains("file=***"),
            "{all}"
        );
        assert!(all.contains("fs=tmpfs"), "{all}");
        assert!(!all.contains(VALUE), "{all}");
        let dir = all
            .lines()
            .filter(|l| !l.contains("echo dir="))
            .find_map(|l| l.split("dir=").nth(1))
            .expect("the secrets directory")
            .trim()
            .to_owned();
        if sandbox {
            assert_eq!(dir, "/run/secrets");
        } else {
            assert!(dir.starts_with("/dev/shm/"), "{dir}");
            assert!(!Path::new(&dir).exists(), "{dir} outlived the job");
        }
    }
    let grep = Command::new("grep")
        .args(["-r", "-l", "-a", "-F", VALUE])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&grep.stdout)
    );
}
