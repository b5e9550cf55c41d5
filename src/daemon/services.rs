//! The daemon's services: the ledger (restored from its remote on a fresh server, guarded by
//! its high-water mark, its new commits verified against the keys of their config), the
//! executor, Gerrit's clients, and the state a restart loads back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Daemon, replicate, settings};
use crate::apply::{self, GerritReporting, Services};
use crate::config::Layout;
use crate::config::files::ExecutorKind;
use crate::executor::Executor;
use crate::gerrit::{self, RefWatcher};
use crate::git::mirror::{Sources, run_git};
use crate::ledger::{Ledger, Writer, WriterOptions};
use crate::model::{CommitId, FreezeName};
use crate::reconcile::Fact;
use crate::signing::SigningKey;

impl Daemon {
    pub(super) fn secrets(&self) -> anyhow::Result<crate::secrets::SecretsFile> {
        Ok(match &self.settings.secrets {
            Some(p) => crate::secrets::SecretsFile::load(p)?,
            None => crate::secrets::SecretsFile::default(),
        })
    }

    /// Opens the ledger (from its remote on a fresh server), the executor and Gerrit once a
    /// layout is known.
    pub(super) fn ensure_services(&mut self) -> anyhow::Result<()> {
        let Some(layout) = self.layout.clone() else {
            return Ok(());
        };
        let secrets = self.secrets()?;
        // Opened again only when the config's sealed secrets or their policy changed.
        for problem in self.job_secrets.update(&layout, &self.key_bytes) {
            (self.reporter)(&format!("[secrets] {problem}"));
        }
        let gerrit_creds = secrets.gerrit.as_ref().map(|c| c.pair());
        let sources_key = format!("{:?}", layout.settings.gerrit);
        if self.svc.is_some() && self.sources_key == sources_key {
            return Ok(());
        }
        let ledger_dir = self.settings.ledger_dir();
        let remote = layout
            .settings
            .ledger
            .as_ref()
            .and_then(|l| l.remote.clone());
        let mut key = SigningKey::from_bytes(&self.key_bytes, "the signing key")?;
        if !ledger_dir.exists() {
            let authority = self.authority(&layout)?;
            let history = self.key_history()?;
            let made = replicate::bootstrap(
                &ledger_dir,
                remote.as_deref(),
                gerrit_creds.as_ref(),
                &mut key,
                &authority,
                Some(history),
                self.init_ledger,
            );
            if let Err(e) = made {
                self.ledger_alert = Some(format!("{e:#}"));
                self.write_status(true);
                return Err(e);
            }
            self.init_ledger = false;
            let ledger = Ledger::open(&ledger_dir)?;
            if let Some(m) = crate::ledger::mark::Mark::of(&ledger)? {
                m.write(&self.settings.ledger_mark())?;
                // Restored from the remote: that is where the remote is.
                if let Some(r) = &remote
                    && remote_holds(r, gerrit_creds.as_ref(), &m.head)
                {
                    replicate::RemoteMark {
                        remote: crate::git::mirror::redact(r),
                        head: m.head.clone(),
                    }
                    .write(&self.settings.state_dir.join("ledger.remote-mark"))?;
                }
            }
        }
        // Checked now (format, keys, the high-water mark); read afresh by each pass.
        Ledger::open(&ledger_dir)?;
        self.check_ledger_mark()?;
        // The writer and the executor (with its running jobs) carry over when only the Gerrit
        // settings changed; a new executor would not know the jobs the old one runs.
        let executor_key = format!("{:?}", layout.settings.executor);
        let (writer, old_executor) = match self.svc.take() {
            Some(old) => (
                old.writer.clone(),
                (self.executor_key == executor_key).then(|| old.executor.clone()),
            ),
            None => (
                Writer::open(&ledger_dir, key, WriterOptions::default())?,
                None,
            ),
        };
        let replicator = remote.as_ref().map(|r| {
            replicate::Replicator::start(
                &ledger_dir,
                r,
                gerrit_creds.clone(),
                self.settings.state_dir.join("ledger.remote-mark"),
            )
        });
        let notify = replicator.as_ref().map(replicate::Replicator::notifier);
        let state = &self.settings.state_dir;
        let (sources, gerrit_reporting, watcher) = match &layout.settings.gerrit {
            None => (Sources::Local(state.join("no-gerrit")), None, None),
            Some(g) => {
                let sources =
                    Sources::for_url(&g.url, gerrit_creds.clone(), &state.join("mirrors"));
                let client = || {
                    gerrit::Rest::new(&g.url, secrets.gerrit.clone(), Duration::from_secs(30))
                        .map_err(|e| anyhow::anyhow!("gerrit.url: {e}"))
                };
                let (rest, post) = if is_remote(&g.url) {
                    let once = gerrit::RetryPolicy {
                        attempts: 1,
                        ..gerrit::RetryPolicy::default()
                    };
                    (Some(client()?), Some(client()?.with_retry(once)))
                } else {
                    (None, None)
                };
                let source =
                    gerrit::RefSource::for_url(&g.url, rest.as_ref().map(|r| r.endpoint().clone()))
                        .map_err(|e| anyhow::anyhow!("gerrit.url: {e}"))?;
                let watcher = RefWatcher::open(source, &state.join("watch"))?;
                (
                    sources,
                    rest.zip(post).map(|(rest, post)| GerritReporting {
                        rest,
                        post,
                        report: g.report,
                    }),
                    Some(watcher),
                )
            }
        };
        *self.sources_cell.write().unwrap_or_else(|p| p.into_inner()) = sources.clone();
        let executor = match old_executor {
            Some(e) => e,
            None => self.executor(&layout)?,
        };
        self.executor_key = executor_key;
        let dsse_key = SigningKey::from_bytes(&self.key_bytes, "the signing key")?;
        let images = crate::registry::layout::OciLayout::open_or_init(&state.join("images"))?;
        let copies = self
            .svc
            .as_ref()
            .map(|s| s.copies.clone())
            .unwrap_or_else(|| apply::Copies::new("copy"));
        let reviews = self
            .svc
            .as_ref()
            .map(|s| s.reviews.clone())
            .unwrap_or_else(|| apply::Reviews::new("review"));
        self.svc = Some(Arc::new(Services {
            ledger_dir: ledger_dir.clone(),
            writer,
            dsse_key: Mutex::new(dsse_key),
            executor,
            store: crate::store::BlobStore::new(state.join("store")),
            images,
            secrets,
            sources,
            gerrit: gerrit_reporting,
            config_url: self.settings.config_repo.clone(),
            inflight: state.join("inflight"),
            reporter: self.reporter.clone(),
            on_write: Box::new(move || {
                if let Some(n) = &notify {
                    n();
                }
            }),
            copies,
            reviews,
            pages: self.settings.web.is_some(),
        }));
        self.watcher = watcher.map(Arc::new);
        self.replicator = replicator;
        self.sources_key = sources_key;
        self.load_state()?;
        self.observe_freeze_origins();
        Ok(())
    }

    pub(super) fn executor(&self, layout: &Layout) -> anyhow::Result<Arc<dyn Executor>> {
        let state = &self.settings.state_dir;
        let concurrency = self
            .concurrency
            .unwrap_or(layout.settings.executor.concurrency as usize)
            .max(1);
        Ok(match layout.settings.executor.kind {
            ExecutorKind::Local => {
                let mut config = crate::executor::local::LocalConfig::new(state);
                config.store_dir = state.join("store");
                config.max_concurrent = concurrency;
                config.supervisor = self.supervisor.clone();
                config.sandbox = match self.settings.sandbox {
                    settings::SandboxSetting::Auto => crate::executor::local::Sandbox::Auto,
                    settings::SandboxSetting::Bubblewrap => {
                        crate::executor::local::Sandbox::Bubblewrap("bwrap".into())
                    }
                    settings::SandboxSetting::None => crate::executor::local::Sandbox::None,
                };
                config.secrets = self.job_secrets.clone();
                let sources = self.sources_cell.clone();
                let prepare: crate::executor::local::Prepare = Arc::new(move |spec, dir| {
                    let path = sources
                        .read()
                        .unwrap_or_else(|p| p.into_inner())
                        .path(&spec.project);
                    let repo = crate::git::mirror::REPOS.open(&path)?.into_sync();
                    let commit = gix::ObjectId::from_hex(spec.commit.as_str().as_bytes())
                        .map_err(|e| e.to_string())?;
                    crate::git::checkout::checkout(&repo, &commit, dir, 2)
                        .map(|_| ())
                        .map_err(|e| e.to_string())?;
                    // The projects it requires, each under `.seakeeper/required/<project>`.
                    // Parents first: a project whose path is inside another's goes after it.
                    let mut required: Vec<_> = spec.required.iter().collect();
                    required.sort_by_key(|r| r.path());
                    for r in required {
                        let path = sources
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .path(&r.project);
                        let repo = crate::git::mirror::REPOS.open(&path)?.into_sync();
                        let commit = gix::ObjectId::from_hex(r.commit.as_str().as_bytes())
                            .map_err(|e| e.to_string())?;
                        // A new directory: none the checked-out tree placed (a link
                        // out of the workspace) is written into.
                        let into = crate::store::place::create_new_dir_within(dir, &r.path())?;
                        crate::git::checkout::checkout(&repo, &commit, &into, 2)
                            .map_err(|e| format!("{} at {}: {e}", r.project, r.commit))?;
                    }
                    Ok(())
                });
                let mut exec = crate::executor::local::LocalExecutor::new(config, prepare)?;
                if let Some(w) = exec.warning() {
                    tracing::warn!("{}", w);
                }
                if self.settings.host_tools {
                    tracing::warn!(
                        "host_tools: jobs run with this machine's tools, not in their images; \
                         results may differ from CI's"
                    );
                } else {
                    let mut source = crate::registry::pull::ImageSource::under(state)?;
                    source.registries = layout.settings.registries.clone();
                    source.secrets = Arc::new(self.secrets()?);
                    source.untrusted_listed_only = true;
                    exec = exec.with_images(local_images(source));
                }
                Arc::new(exec)
            }
            ExecutorKind::Kubernetes => {
                let ns = &layout.settings.executor.namespaces;
                let settings = crate::executor::kubernetes::KubeSettings {
                    trusted_namespace: ns.trusted.clone(),
                    untrusted_namespace: ns.untrusted.clone(),
                    // `config check` makes it required with this executor; an empty one is
                    // refused by the executor below.
                    seakeeper_image: layout
                        .settings
                        .executor
                        .seakeeper_image
                        .clone()
                        .unwrap_or_default(),
                    priority_classes: layout
                        .settings
                        .executor
                        .priority_classes
                        .iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                        .collect(),
                    ..Default::default()
                };
                Arc::new(
                    crate::executor::kubernetes::KubeExecutor::infer(settings)?
                        .with_secrets(self.job_secrets.clone()),
                )
            }
        })
    }

    /// The keys this deployment trusts: the server's own (every role), the settings'
    /// `trusted_certs` (every role), and the config repo's `keys/` with their roles.
    pub fn authority(&self, layout: &Layout) -> anyhow::Result<crate::signing::Authority> {
        let mut authority = self.base_authority()?;
        add_config_keys(&mut authority, layout)?;
        Ok(authority)
    }

    /// The trusted keys at each config commit of the config branch (see [`key_history`]), made
    /// once.
    pub(super) fn key_history(&mut self) -> anyhow::Result<crate::ledger::verify::History> {
        if let Some(h) = &self.key_history {
            return Ok(h.clone());
        }
        let h = key_history(
            self.config_repo.clone(),
            format!("refs/heads/{}", self.settings.config_branch),
            self.base_authority()?,
        );
        self.key_history = Some(h.clone());
        Ok(h)
    }

    /// The keys trusted whatever the config says: the server's own, the settings' certs.
    pub(super) fn base_authority(&self) -> anyhow::Result<crate::signing::Authority> {
        use crate::model::KeyRole;
        let mut authority = crate::signing::Authority::new();
        let own = SigningKey::from_bytes(&self.key_bytes, "the signing key")?;
        authority.add(
            &own.public_cert_armored()?,
            "the server's own key",
            KeyRole::ALL,
        )?;
        for path in &self.settings.trusted_certs {
            let bytes = std::fs::read(path)
                .map_err(|e| anyhow::anyhow!("trusted_certs: {}: {e}", path.display()))?;
            authority.add(
                &bytes,
                &format!("trusted_certs: {}", path.display()),
                KeyRole::ALL,
            )?;
        }
        Ok(authority)
    }

    /// Refuses to go on when the ledger's head is not the high-water mark or a descendant of
    /// it (someone reset or truncated it); records the mark when there is none yet.
    pub(super) fn check_ledger_mark(&mut self) -> anyhow::Result<()> {
        use crate::ledger::mark::Mark;
        let path = self.settings.ledger_mark();
        let ledger = Ledger::open(&self.settings.ledger_dir())?;
        // A mark that cannot be read is no proof of anything: refuse, and say why.
        let mark = match Mark::read(&path) {
            Ok(m) => m,
            Err(e) => {
                let alert = format!("{e}: refusing to write until it is repaired or removed");
                tracing::warn!("{}", alert);
                self.ledger_alert = Some(alert.clone());
                self.write_status(true);
                anyhow::bail!(alert);
            }
        };
        match mark {
            Some(mark) => {
                if let Err(e) = mark.check(&ledger) {
                    let alert = format!("{e} (mark: {})", path.display());
                    tracing::warn!("{}", alert);
                    self.ledger_alert = Some(alert.clone());
                    self.write_status(true);
                    anyhow::bail!(alert);
                }
                // Commits since the last one verified (this server's own, or another
                // process's) are checked as a replica would check them before anything is
                // decided on them.
                if let Err(alert) = self.verify_new_commits(&ledger, &mark.head) {
                    tracing::warn!("{}", alert);
                    self.ledger_alert = Some(alert.clone());
                    self.write_status(true);
                    anyhow::bail!(alert);
                }
            }
            None => {
                if let Some(m) = Mark::of(&ledger)? {
                    m.write(&path)?;
                }
            }
        }
        self.ledger_alert = None;
        Ok(())
    }

    /// Verifies the ledger's commits after `mark` against the deployment's keys at the config
    /// commits they name.
    pub(super) fn verify_new_commits(&mut self, ledger: &Ledger, mark: &str) -> Result<(), String> {
        let Some(layout) = self.layout.clone() else {
            return Ok(());
        };
        let Some(head) = ledger.tip().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        // From the mark every time (the mark moves up at least once a second): a head
        // verified before but no longer an ancestor could hide what replaced it.
        let from = gix::ObjectId::from_hex(mark.as_bytes()).map_err(|e| e.to_string())?;
        if head == from || self.verified_head == Some((from, head)) {
            return Ok(());
        }
        // The keys at the config in use, as promotions use them (parsed once per config).
        let authority = match &self.authority {
            Some((c, a)) if *c == self.world.config.layout_commit => a.clone(),
            _ => self.authority(&layout).map_err(|e| format!("{e:#}"))?,
        };
        let history = self.key_history().map_err(|e| format!("{e:#}"))?;
        let options = crate::ledger::VerifyOptions {
            pinned: None,
            authority: Some(authority),
            history: Some(history),
        };
        let _packs = crate::ledger::read_guard();
        match crate::ledger::verify_since(ledger, from, head, &options) {
            Ok(_) => {
                self.verified_head = Some((from, head));
                Ok(())
            }
            Err(f) => Err(format!(
                "ledger commit {} {}: refusing to write or act on it until a person has looked",
                f.commit, f.reason
            )),
        }
    }

    /// Moves the high-water mark to the ledger's head (after a pass wrote to it).
    pub(super) fn advance_ledger_mark(&mut self) {
        use crate::ledger::mark::Mark;
        let path = self.settings.ledger_mark();
        let Ok(ledger) = Ledger::open(&self.settings.ledger_dir()) else {
            return;
        };
        let Ok(Some(now)) = Mark::of(&ledger) else {
            return;
        };
        match Mark::read(&path) {
            Ok(Some(old)) if old == now => {}
            Ok(Some(old)) => {
                // Only forward: a head that went back keeps the old mark (and the alert).
                if let Err(e) = old.check(&ledger) {
                    let alert = format!("{e} (mark: {})", path.display());
                    tracing::warn!("{}", alert);
                    self.ledger_alert = Some(alert);
                } else if let Err(e) = now.write(&path) {
                    tracing::warn!("{e}");
                }
            }
            _ => {
                if let Err(e) = now.write(&path) {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    /// After a (re)start: the builds not yet reported, and the freezes the ledger holds.
    pub(super) fn load_state(&mut self) -> anyhow::Result<()> {
        let svc = self.svc.clone().expect("services are open");
        for (id, depth) in apply::inflight(&svc.inflight) {
            if self.world.builds.contains_key(&id) {
                continue;
            }
            match apply::adopt(&svc, &id, depth) {
                Ok(Some(facts)) => facts.into_iter().for_each(|f| self.world.absorb(f)),
                // Marked but never requested: the planner requests it again if still wanted.
                Ok(None) => {
                    let _ = std::fs::remove_file(svc.inflight.join(id.as_str()));
                }
                Err(e) => tracing::warn!("adopting {id}: {e}"),
            }
        }
        let _packs = crate::ledger::read_guard();
        let ledger = svc.ledger()?;
        let snapshot = ledger.snapshot()?;
        for entry in snapshot.list("freezes")? {
            let name = String::from_utf8_lossy(&entry.name).into_owned();
            let Some(stem) = name.strip_suffix(".yaml") else {
                continue;
            };
            let Ok(freeze) = stem.parse::<FreezeName>() else {
                continue;
            };
            if let Some(crate::model::Record::Freeze(f)) =
                snapshot.record(&format!("freezes/{name}"))?
            {
                if f.name == freeze {
                    self.world.absorb(Fact::FreezeRecorded(f));
                } else {
                    tracing::warn!(
                        "ledger freezes/{name} holds freeze {}: not loaded (its transition is \
                         recorded again)",
                        f.name
                    );
                }
            }
        }
        Ok(())
    }
}

/// Adds the config repo's `keys/<name>.asc` certs, each with the roles of its
/// `keys/<name>.yaml`.
pub fn add_config_keys(
    authority: &mut crate::signing::Authority,
    layout: &Layout,
) -> Result<(), crate::signing::SigningError> {
    for (name, entry) in &layout.keys {
        authority.add(
            &entry.cert,
            &format!("keys/{name}.asc"),
            entry.roles.iter().copied(),
        )?;
    }
    Ok(())
}

/// The trusted keys at any config commit: `base` (the server's own key, the settings'
/// certs) and the `keys/` of the config repo at `config_repo` at that commit, when the commit
/// is in the history of `tip` (the config branch) and valid there (cached per commit). See [`crate::ledger::VerifyOptions::history`].
pub fn key_history(
    config_repo: PathBuf,
    tip: String,
    base: crate::signing::Authority,
) -> crate::ledger::verify::History {
    let cache: Mutex<BTreeMap<String, Option<crate::signing::Authority>>> =
        Mutex::new(BTreeMap::new());
    Arc::new(move |commit: &str| {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = cache.get(commit) {
            return a.clone();
        }
        let found = commit.parse::<CommitId>().ok().and_then(|c| {
            // Only a commit of the config branch's history counts: not one of an unmerged
            // change, nor anything else the repository happens to hold.
            run_git(
                &config_repo,
                &["merge-base", "--is-ancestor", c.as_str(), &tip],
                None,
            )
            .ok()?;
            let layout = apply::load_config_at(&config_repo, &c).ok()?.ok()?;
            let mut a = base.clone();
            add_config_keys(&mut a, &layout).ok()?;
            Some(a)
        });
        if cache.len() > 1024 {
            cache.clear();
        }
        cache.insert(commit.to_owned(), found.clone());
        found
    })
}

/// Whether the ledger remote's branch is at `head`.
fn remote_holds(remote: &str, credentials: Option<&(String, String)>, head: &str) -> bool {
    run_git(
        Path::new("/"),
        &["ls-remote", "--", remote, crate::ledger::LEDGER_REF],
        credentials,
    )
    .is_ok_and(|l| l.split_whitespace().next() == Some(head))
}

pub(super) fn is_remote(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// The local executor's images: pulled by digest into `<state>/images` (only what is missing),
/// unpacked once under `<state>/roots`, run as the image's user (never root).
pub fn local_images(source: crate::registry::pull::ImageSource) -> crate::executor::local::Images {
    Arc::new(move |image: &str, trust: crate::model::Trust| {
        let u = source
            .prepare(image, trust == crate::model::Trust::Trusted)
            .map_err(|e| e.to_string())?;
        let (uid, gid) = u.config.ids(&u.root)?;
        Ok(crate::executor::local::Rootfs {
            env: u.config.env_pairs(),
            working_dir: u.config.working_dir,
            uid,
            gid,
            entrypoint: u.config.entrypoint,
            cmd: u.config.cmd,
            ports: u.config.exposed_ports,
            root: u.root,
        })
    })
}
