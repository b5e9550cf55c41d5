//! `seakeeper web`: the web server alone, read-only, over a ledger on this machine (a replica,
//! or the ledger of a daemon that runs without `web:`), and the start of the web server that
//! `seakeeper serve` runs beside its loop.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::daemon::{Feed, Settings, Status};

#[derive(Debug, Args)]
pub(super) struct WebArgs {
    /// The local settings file (its `web.listen` unless `--listen` is given).
    #[arg(long, default_value = super::serve::DEFAULT_SETTINGS)]
    settings: PathBuf,
    /// `host:port` to listen on.
    #[arg(long)]
    listen: Option<String>,
}

/// Starts the web server of `settings` over `feed`, when the settings ask for one.
pub(super) fn start(
    settings: &Settings,
    listen: Option<&str>,
    feed: Arc<Feed>,
    read_only: bool,
) -> anyhow::Result<Option<crate::web::Server>> {
    let Some(listen) = listen.or(settings.web.as_ref().map(|w| w.listen.as_str())) else {
        return Ok(None);
    };
    let secrets = match &settings.secrets {
        Some(p) => crate::secrets::SecretsFile::load(p)?,
        None => crate::secrets::SecretsFile::default(),
    };
    let mut ctx = crate::web::Context::new(
        settings.ledger_dir(),
        crate::store::BlobStore::new(settings.state_dir.join("store")),
        feed,
        secrets.webhook.clone(),
        crate::apply::secret_values(&secrets),
    );
    ctx.read_only = read_only;
    let server = crate::web::start(ctx, listen)?;
    if let Some(f) = settings.web.as_ref().and_then(|w| w.address_file.as_ref()) {
        std::fs::write(f, format!("{}\n", server.addr()))
            .with_context(|| format!("writing {}", f.display()))?;
    }
    eprintln!("seakeeper: web server on http://{}/", server.addr());
    Ok(Some(server))
}

/// The keys this server trusts whatever the config says (its own, the settings' certs), and
/// those of the config repo's `keys/` at each config commit.
fn keys(settings: &Settings) -> anyhow::Result<(String, crate::ledger::verify::History)> {
    use crate::model::KeyRole;
    let mut base = crate::signing::Authority::new();
    // A replica may hold no signing key; it then trusts the settings' certs and keys/ only.
    if let Ok(key) = crate::signing::SigningKey::load(&settings.signing_key) {
        base.add(
            &key.public_cert_armored()?,
            "the server's own key",
            KeyRole::ALL,
        )?;
    }
    for path in &settings.trusted_certs {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        base.add(&bytes, &path.display().to_string(), KeyRole::ALL)?;
    }
    let repo = settings.config_repo_path();
    let branch = format!("refs/heads/{}", settings.config_branch);
    let head = crate::git::mirror::run_git(&repo, &["rev-parse", "--verify", &branch], None)
        .map_err(|e| anyhow::anyhow!("the config repo {}: {e}", repo.display()))?
        .trim()
        .to_owned();
    Ok((head, crate::daemon::key_history(repo, branch, base)))
}

/// How often `seakeeper web` reads the config branch's keys again.
const KEYS_EVERY: Duration = Duration::from_secs(30);

pub(super) fn run(a: WebArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&a.settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.listen.is_none() && settings.web.is_none() {
        anyhow::bail!(
            "{}: no `web: {{listen: ...}}` and no --listen: nowhere to serve",
            a.settings.display()
        );
    }
    crate::ledger::Ledger::open(&settings.ledger_dir())
        .with_context(|| format!("the ledger at {}", settings.ledger_dir().display()))?;
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, super::serve::STOP.clone())?;
    }
    let feed = Arc::new(Feed::new());
    match keys(&settings) {
        Ok((head, history)) => feed.publish_keys(&head, history),
        // Fail closed: without keys every signature shows as not allowed.
        Err(e) => eprintln!("seakeeper: no trusted keys ({e:#}); no signature will be allowed"),
    }
    let server = start(&settings, a.listen.as_deref(), feed.clone(), true)?;
    // A daemon on this machine rewrites status.json after its passes: show what it says.
    let status_file = settings.state_dir.join("status.json");
    let mut last = Vec::new();
    let mut keys_read = std::time::Instant::now();
    while !super::serve::STOP.load(Ordering::SeqCst) {
        // The config branch moves (a key added or retired): judge by its keys of now.
        if keys_read.elapsed() >= KEYS_EVERY {
            keys_read = std::time::Instant::now();
            match keys(&settings) {
                Ok((head, history)) if !feed.keys_are_of(&head) => {
                    feed.publish_keys(&head, history)
                }
                Ok(_) => {}
                Err(e) => eprintln!("seakeeper: trusted keys: {e:#}"),
            }
        }
        if let Ok(bytes) = std::fs::read(&status_file)
            && bytes != last
        {
            match serde_json::from_slice::<Status>(&bytes) {
                Ok(s) => feed.publish_status(s),
                Err(e) => eprintln!("seakeeper: {}: {e}", status_file.display()),
            }
            last = bytes;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if let Some(s) = server {
        s.stop();
    }
    Ok(ExitCode::SUCCESS)
}
