//! `seakeeper bootstrap`: a fresh Debian server made a seakeeper server in one command, and
//! made so again (idempotently: what is right stays, what is missing or wrong is repaired).
//! Inputs are checked before anything is written: an unreachable config repo or an existing key
//! of the wrong kind stops it with nothing installed. A key is never overwritten, nor is a
//! secrets file; the settings and the unit are rewritten only when they differ.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;

use crate::signing;

#[derive(Debug, Args)]
pub(super) struct BootstrapArgs {
    /// The config repo (a URL or a path) the server follows.
    #[arg(long)]
    config_repo: String,
    /// Its branch.
    #[arg(long, default_value = "main")]
    config_branch: String,
    /// The remote the ledger is replicated to (named again in the config repo's
    /// `seakeeper.yaml`): when it already holds a ledger, the server continues that history
    /// instead of starting a new one.
    #[arg(long)]
    ledger_remote: Option<String>,
    /// The user id of a key generated for this server.
    #[arg(long, default_value = "seakeeper CI <ci@localhost>")]
    userid: String,
    /// Where the web server listens (pages, /healthz, /readyz, the Gerrit webhook).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Install into this directory instead of `/` (a container-like root; for tests and
    /// images): every path is under it, no user is created and nothing is started.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// Do not install Debian packages.
    #[arg(long)]
    no_packages: bool,
    /// Do not enable and start the service.
    #[arg(long)]
    no_start: bool,
    /// The Gerrit server this deployment uses: checked against the config repo's
    /// `seakeeper.yaml` (`gerrit.url`), and the change to propose printed when it differs.
    #[arg(long)]
    gerrit: Option<String>,
    /// Where seakeeper's pages are served: checked against `public_url` likewise.
    #[arg(long)]
    public_url: Option<String>,
    /// The executor (`local` or `kubernetes`): checked against `executor.kind` likewise. With
    /// `kubernetes`, the cluster's kubeconfig for seakeeper's ServiceAccount must be at
    /// /etc/seakeeper/kubeconfig first; the unit points KUBECONFIG at it.
    #[arg(long, value_parser = ["local", "kubernetes"])]
    executor: Option<String>,
}

/// Asks for seakeeper's Gerrit account at the terminal (the password without echo); `None`
/// when standard input is not a terminal or the answer is empty.
fn ask_account(gerrit: &str) -> Option<(String, String)> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let line = |prompt: &str| -> Option<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s).ok()?;
        Some(s.trim_end_matches(['\r', '\n']).to_owned())
    };
    let user = line(&format!(
        "seakeeper's Gerrit account on {gerrit} (empty: none, add it to the secrets file later): "
    ))?;
    if user.is_empty() {
        return None;
    }
    // SAFETY: termios on standard input, restored below; a failure leaves echo as it was.
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    let saved = unsafe { libc::tcgetattr(0, &mut term) } == 0;
    if saved {
        let mut quiet = term;
        quiet.c_lflag &= !libc::ECHO;
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
    }
    let password = line("its HTTP password: ");
    if saved {
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &term) };
    }
    eprintln!();
    Some((user, password?))
}

/// What the config repo's `seakeeper.yaml` says that the flags also say: each differing flag
/// as the change to propose (the config repo changes only by review, never by bootstrap).
fn config_proposals(a: &BootstrapArgs) -> anyhow::Result<Vec<String>> {
    if a.gerrit.is_none() && a.public_url.is_none() && a.executor.is_none() {
        return Ok(Vec::new());
    }
    let scratch = std::env::temp_dir().join(format!("seakeeper-bootstrap-{}", std::process::id()));
    // A local path is cloned from wherever bootstrap was started.
    let repo = match std::fs::canonicalize(&a.config_repo) {
        Ok(p) if !a.config_repo.contains("://") => p.display().to_string(),
        _ => a.config_repo.clone(),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let cloned = crate::git::mirror::run_git_within(
        &std::env::temp_dir(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            "--branch",
            &a.config_branch,
            "--",
            &repo,
            &scratch.to_string_lossy(),
        ],
        None,
        Duration::from_secs(120),
    );
    let text = cloned.and_then(|_| {
        std::fs::read_to_string(scratch.join("seakeeper.yaml"))
            .map_err(|e| format!("seakeeper.yaml: {e}"))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let text = text.map_err(|e| anyhow::anyhow!("the config repo (--config-repo): {e}"))?;
    let v: yaml_serde::Value = yaml_serde::from_str(&text)
        .map_err(|e| anyhow::anyhow!("the config repo's seakeeper.yaml: {e}"))?;
    let get = |path: &[&str]| -> Option<String> {
        let mut at = &v;
        for k in path {
            at = at.get(*k)?;
        }
        at.as_str().map(str::to_owned)
    };
    let mut out = Vec::new();
    for (flag, field, want, have) in [
        ("--gerrit", "gerrit.url", &a.gerrit, get(&["gerrit", "url"])),
        (
            "--public-url",
            "public_url",
            &a.public_url,
            get(&["public_url"]),
        ),
        (
            "--executor",
            "executor.kind",
            &a.executor,
            get(&["executor", "kind"]).or(Some("local".into())),
        ),
    ] {
        if let Some(want) = want
            && have.as_deref() != Some(want.as_str())
        {
            out.push(format!(
                "seakeeper.yaml: set {field} to {want:?} ({flag}; the config repo has {})",
                have.map(|h| format!("{h:?}"))
                    .unwrap_or_else(|| "none".into())
            ));
        }
    }
    let pinned = get(&["executor", "seakeeper_image"])
        .is_some_and(|i| crate::model::job::is_pinned_image(&i));
    if a.executor.as_deref() == Some("kubernetes") && !pinned {
        out.push(
            "seakeeper.yaml: executor.seakeeper_image must name seakeeper's image by digest \
             (`seakeeper image self`, see bootstrap/README.md)"
                .into(),
        );
    }
    Ok(out)
}

/// The Debian packages a server needs at run time.
const PACKAGES: &[&str] = &[
    "git",
    "gnupg",
    "bubblewrap",
    "slirp4netns",
    "iproute2",
    "ca-certificates",
];

/// What the steps did, printed as they go (an idempotent second run reports only `ok`).
struct Report {
    changed: usize,
}

impl Report {
    fn ok(&mut self, what: String) {
        println!("ok       {what}");
    }
    fn changed(&mut self, what: String) {
        println!("changed  {what}");
        self.changed += 1;
    }
}

/// Writes `text` at `path` with `mode` unless it is there already, as it is.
fn ensure_file(r: &mut Report, path: &Path, text: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let same = std::fs::read(path).is_ok_and(|b| b == text);
    let mode_ok = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o777 == mode);
    if same && mode_ok {
        r.ok(format!("{}", path.display()));
        return Ok(());
    }
    crate::store::write_durably(path, text).with_context(|| path.display().to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| path.display().to_string())?;
    r.changed(format!("{} written (mode {mode:o})", path.display()));
    Ok(())
}

fn ensure_dir(r: &mut Report, path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let ok =
        std::fs::metadata(path).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o777 == mode);
    if ok {
        r.ok(format!("{}/", path.display()));
        return Ok(());
    }
    std::fs::create_dir_all(path).with_context(|| path.display().to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| path.display().to_string())?;
    r.changed(format!("{}/ (mode {mode:o})", path.display()));
    Ok(())
}

/// `git ls-remote` with a deadline: whether `url` answers, and whether it has `refname`.
fn ls_remote(url: &str, refname: &str) -> anyhow::Result<bool> {
    crate::git::mirror::run_git_within(
        Path::new("."),
        &["ls-remote", "--", url, refname],
        None,
        Duration::from_secs(30),
    )
    .map(|out| !out.is_empty())
    .map_err(|e| anyhow::anyhow!("{url} cannot be read: {e}"))
}

/// The systemd unit, hardened, for a binary and settings at these paths.
fn unit(binary: &Path, settings: &Path, state: &Path, kubeconfig: Option<&Path>) -> String {
    let environment = kubeconfig
        .map(|k| format!("Environment=\"KUBECONFIG={}\"\n", k.display()))
        .unwrap_or_default();
    format!(
        "# Written by `seakeeper bootstrap`; run it again to repair this file.\n\
         [Unit]\n\
         Description=seakeeper, a Git-native CI/CD reconciler\n\
         Wants=network-online.target\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         User=seakeeper\n\
         Group=seakeeper\n\
         ExecStart={bin} serve --settings {settings}\n\
         {environment}\
         # SIGTERM: the pass ends and the daemon exits; each job's supervisor outlives it and is\n\
         # adopted by the next start (KillMode=process), so a restart never repeats a job.\n\
         KillSignal=SIGTERM\n\
         KillMode=process\n\
         TimeoutStopSec=60\n\
         Restart=always\n\
         RestartSec=2\n\
         # Hardening that leaves bubblewrap its user namespaces.\n\
         NoNewPrivileges=yes\n\
         ProtectSystem=strict\n\
         ReadWritePaths={state}\n\
         ProtectHome=yes\n\
         PrivateTmp=yes\n\
         PrivateDevices=yes\n\
         ProtectKernelModules=yes\n\
         ProtectKernelLogs=yes\n\
         ProtectControlGroups=no\n\
         ProtectClock=yes\n\
         ProtectHostname=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK\n\
         UMask=0077\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        bin = binary.display(),
        settings = settings.display(),
        state = state.display(),
    )
}

pub(super) fn run(a: BootstrapArgs) -> anyhow::Result<ExitCode> {
    let root = &a.root;
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let etc = at("/etc/seakeeper");
    let state = at("/var/lib/seakeeper");
    let key_path = etc.join("ledger-key.asc");
    let cert_path = etc.join("ledger-cert.asc");
    let settings_path = etc.join("settings.yaml");
    let secrets_path = etc.join("secrets.yaml");
    let binary = at("/usr/local/bin/seakeeper");
    let unit_path = at("/etc/systemd/system/seakeeper.service");
    let in_place = root == Path::new("/");

    // Everything from outside is checked before anything is written.
    ls_remote(&a.config_repo, &format!("refs/heads/{}", a.config_branch))
        .with_context(|| "the config repo (--config-repo)".to_owned())
        .and_then(|has| {
            if has {
                Ok(())
            } else {
                bail!(
                    "the config repo {} has no branch {}",
                    a.config_repo,
                    a.config_branch
                )
            }
        })?;
    let existing_key = match std::fs::read(&key_path) {
        Ok(bytes) => {
            let key = signing::SigningKey::from_bytes(&bytes, &key_path.display().to_string())
                .with_context(|| {
                    format!(
                        "{}: an existing key that is not a usable seakeeper signing key; move it \
                         away or replace it, bootstrap never overwrites a key",
                        key_path.display()
                    )
                })?;
            if let Err(e) =
                crate::secrets::Opener::from_key_bytes(&bytes, &key_path.display().to_string())
            {
                bail!(
                    "{e}: bootstrap never changes a key; run `seakeeper key \
                     add-encryption-subkey --key {} --cert-out NEW-CERT` first",
                    key_path.display()
                );
            }
            Some(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("{}: {e}", key_path.display()),
    };
    let kubeconfig = etc.join("kubeconfig");
    // Kubernetes when asked, or (a repair run without the flag) when a kubeconfig is there.
    let kubernetes = match a.executor.as_deref() {
        Some(e) => e == "kubernetes",
        None => kubeconfig.is_file(),
    };
    if kubernetes && !kubeconfig.is_file() {
        bail!(
            "--executor kubernetes: put the cluster's kubeconfig for seakeeper's ServiceAccount \
             (bootstrap/kubernetes/rbac.yaml) at {} (mode 0600) first; nothing was installed",
            kubeconfig.display()
        );
    }
    let proposals = config_proposals(&a)?;
    // Asked (when it is) before anything is written.
    let account = match (
        std::env::var("SEAKEEPER_GERRIT_USERNAME"),
        std::env::var("SEAKEEPER_GERRIT_PASSWORD"),
    ) {
        _ if secrets_path.exists() => None,
        (Ok(u), Ok(p)) => Some((u, p)),
        _ => a.gerrit.as_deref().and_then(ask_account),
    };
    let remote_ledger = match &a.ledger_remote {
        Some(url) => ls_remote(url, crate::ledger::LEDGER_REF)
            .with_context(|| "the ledger remote (--ledger-remote)".to_owned())?,
        None => false,
    };

    let mut r = Report { changed: 0 };
    if !a.no_packages && in_place {
        let missing: Vec<&str> = PACKAGES
            .iter()
            .copied()
            .filter(|p| {
                !Command::new("dpkg-query")
                    .args(["-W", "-f=${Status}", p])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("ok installed"))
            })
            .collect();
        if missing.is_empty() {
            r.ok("Debian packages".into());
        } else {
            let st = Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()
                .context("apt-get")?;
            if !st.success() {
                bail!("apt-get install {} failed", missing.join(" "));
            }
            r.changed(format!("installed {}", missing.join(" ")));
        }
    }
    let me = std::env::current_exe().context("finding this binary")?;
    if let Some(parent) = binary.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    if std::fs::canonicalize(&me).ok() != std::fs::canonicalize(&binary).ok() {
        let bytes = std::fs::read(&me).context("reading this binary")?;
        ensure_file(&mut r, &binary, &bytes, 0o755)?;
    } else {
        r.ok(format!("{}", binary.display()));
    }
    if in_place {
        let exists = Command::new("id")
            .arg("seakeeper")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if exists {
            r.ok("user seakeeper".into());
        } else {
            let st = Command::new("useradd")
                .args(["--system", "--home-dir", "/var/lib/seakeeper", "--shell"])
                .args(["/usr/sbin/nologin", "seakeeper"])
                .status()
                .context("useradd")?;
            if !st.success() {
                bail!("useradd seakeeper failed");
            }
            r.changed("user seakeeper created".into());
        }
    }
    ensure_dir(&mut r, &etc, 0o750)?;
    ensure_dir(&mut r, &state, 0o700)?;
    let key = match existing_key {
        Some(k) => {
            r.ok(format!(
                "{} (kept: {})",
                key_path.display(),
                k.fingerprint()
            ));
            k
        }
        None => {
            let (secret, _) = signing::generate_key(&a.userid)?;
            signing::write_new_file(&key_path, &secret, 0o600)?;
            let k = signing::SigningKey::from_bytes(&secret, "the new key")?;
            r.changed(format!(
                "{} generated: {}",
                key_path.display(),
                k.fingerprint()
            ));
            k
        }
    };
    let cert = key.public_cert_armored()?;
    ensure_file(&mut r, &cert_path, &cert, 0o644)?;
    let settings = format!(
        "# Written by `seakeeper bootstrap`; run it again to repair this file.\n\
         state_dir: {state}\n\
         signing_key: {key}\n\
         secrets: {secrets}\n\
         config_repo: {config}\n\
         config_branch: {branch}\n\
         web:\n  listen: {listen}\n",
        state = state.display(),
        key = key_path.display(),
        secrets = secrets_path.display(),
        config = serde_json::to_string(&a.config_repo)?,
        branch = serde_json::to_string(&a.config_branch)?,
        listen = serde_json::to_string(&a.listen)?,
    );
    ensure_file(&mut r, &settings_path, settings.as_bytes(), 0o640)?;
    if kubernetes {
        // The cluster's credentials: readable by seakeeper alone.
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kubeconfig)
            .with_context(|| kubeconfig.display().to_string())?
            .permissions()
            .mode()
            & 0o777;
        if mode == 0o600 {
            r.ok(format!("{} (mode 600)", kubeconfig.display()));
        } else {
            std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o600))
                .with_context(|| kubeconfig.display().to_string())?;
            r.changed(format!("{} mode {mode:o} -> 600", kubeconfig.display()));
        }
    }
    if secrets_path.exists() {
        r.ok(format!("{} (kept)", secrets_path.display()));
    } else {
        // Accounts from the environment or asked at the terminal, never from the command line.
        let mut text =
            String::from("# seakeeper's own accounts (mode 0600); see docs/secrets.md.\n");
        if let Some((u, p)) = account {
            text.push_str(&format!(
                "gerrit:\n  username: {}\n  password: {}\n",
                serde_json::to_string(&u)?,
                serde_json::to_string(&p)?
            ));
        }
        signing::write_new_file(&secrets_path, text.as_bytes(), 0o600)?;
        r.changed(format!("{} written (mode 600)", secrets_path.display()));
    }
    let ledger = state.join("ledger");
    if ledger.join("HEAD").exists() {
        r.ok(format!("{} (kept)", ledger.display()));
    } else if remote_ledger {
        r.ok(format!(
            "the ledger: continued from {} on first start (every commit verified against keys/)",
            a.ledger_remote.as_deref().unwrap_or_default()
        ));
    } else {
        let mut k = key;
        let (_, commit) = crate::ledger::Ledger::init(&ledger, &mut k)?;
        r.changed(format!("{} initialized at {commit}", ledger.display()));
    }
    if in_place {
        // The state belongs to the service's user.
        let st = Command::new("chown")
            .args(["-R", "seakeeper:seakeeper"])
            .arg(&state)
            .arg(&etc)
            .status()
            .context("chown")?;
        if !st.success() {
            bail!("chown of {} failed", state.display());
        }
    }
    if let Some(parent) = unit_path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    ensure_file(
        &mut r,
        &unit_path,
        unit(
            &binary,
            &settings_path,
            &state,
            kubernetes.then_some(kubeconfig.as_path()),
        )
        .as_bytes(),
        0o644,
    )?;
    if !a.no_start && in_place {
        for args in [
            &["daemon-reload"][..],
            &["enable", "seakeeper"][..],
            &["restart", "seakeeper"][..],
        ] {
            let st = Command::new("systemctl")
                .args(args)
                .status()
                .context("systemctl")?;
            if !st.success() {
                bail!("systemctl {} failed", args.join(" "));
            }
        }
        let url = format!("http://{}/healthz", a.listen);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = ureq::get(&url)
                .config()
                .timeout_global(Some(Duration::from_secs(2)))
                .build()
                .call()
                .is_ok();
            if up {
                r.ok(format!("seakeeper answers on {url}"));
                break;
            }
            if Instant::now() >= deadline {
                bail!("seakeeper did not answer on {url} within 60 s: journalctl -u seakeeper");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    let pages = a
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/", a.listen))
        .escape_debug()
        .to_string();
    println!("\n{} change(s). Next:", r.changed);
    for p in &proposals {
        println!("- propose to the config repo: {p}");
    }
    println!(
        "- propose the server's certificate to the config repo: keys/ci.asc (from {}) and keys/ci.yaml \
         with `roles: [ledger, builder, promoter]`\n\
         - check it: seakeeper status --settings {}; the status page at {pages}\n\
         - verify the ledger: GNUPGHOME=$(mktemp -d) sh -c 'gpg -q --import {} && git -C {} verify-commit HEAD'",
        cert_path.display(),
        settings_path.display(),
        cert_path.display(),
        ledger.display(),
    );
    Ok(ExitCode::SUCCESS)
}
