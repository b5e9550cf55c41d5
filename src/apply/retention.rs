//! Retention, carried out: the daemon (every `every` of `policies/retention.yaml`) and
//! `seakeeper retention run` find what the policy lets go, delete it from each store that holds
//! it, and write one `expiry` record per deletion. What an environment runs now is never
//! deleted ([`crate::policy::retention::decide`] says so first).
//!
//! What is looked at: the builds in the ledger, by the hour directory they were requested in.
//! For each rule (kind and trust) a cursor in `<state>/retention.json` says up to which hour
//! every build is decided, so a sweep reads only the hours that became old enough since the
//! last one; what was kept for a reason that ends later (an environment runs it, production
//! ran it recently, the build finished later than it was requested) is kept in the same file
//! and decided again on every sweep. A deletion is written there as an intent before it is
//! carried out and cleared after its record is in the ledger, so a crash in between is
//! finished on the next sweep: nothing is deleted without a record, and nothing twice.
//!
//! The stores: the content-addressed store of logs and job outputs (`<state>/store`, kinds
//! `log` and `file`), and, for images, the repository of the image in every environment's
//! registry (with its cosign `.sig`/`.att` tags). A blob stored again recently (an output or
//! log that a newer build shares) is not deleted: its age is that of its last storing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Services};
use crate::config::Layout;
use crate::ledger::{Snapshot, layout as ledger_layout};
use crate::model::record::Expiry;
use crate::model::{
    ArtifactKind, BuildId, Digest, EnvironmentName, ImageName, Record, Timestamp, Trust,
};
use crate::policy::retention::{Decision, Facts, decide};
use crate::registry::copy::{self, Location};

const DAY: i64 = 86_400;

/// An artifact one build made, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Item {
    /// Its digest.
    pub digest: Digest,
    /// Its kind.
    pub kind: ArtifactKind,
    /// The image name, or what the blob is (`log of <build>/<job>`, `<build>/<job>: <path>`).
    pub name: String,
    /// The trust of the build that made it.
    pub trust: Trust,
    /// When it was made (its build's end).
    pub created: Timestamp,
}

/// A deletion decided and not yet known to be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Intent {
    item: Item,
    /// The store, as the expiry record names it.
    store: String,
    rule: String,
}

/// `<state>/retention.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// When the last sweep ended.
    pub last_run: Option<Timestamp>,
    /// Per rule (`<kind>/<trust>`), the last hour directory (`yyyy/mm/dd/hh`) fully decided.
    #[serde(default)]
    cursors: BTreeMap<String, String>,
    /// Items kept for now, decided again on every sweep.
    #[serde(default)]
    pending: BTreeSet<Item>,
    /// Deletions under way.
    #[serde(default)]
    deleting: Vec<Intent>,
}

impl State {
    /// The state in `path`; a missing file is a first sweep. A file that cannot be read is
    /// an error: the sweep does nothing rather than forget a deletion under way.
    pub fn load(path: &Path) -> Result<State, Error> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    fn save(&self, path: &Path) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(self).expect("the retention state serializes");
        crate::store::write_durably(path, &bytes).map_err(|e| Error::io(path.display(), e))
    }
}

/// One deletion.
#[derive(Debug, Clone, Serialize)]
pub struct Expired {
    /// What.
    pub digest: Digest,
    /// Its name.
    pub name: String,
    /// Where from.
    pub store: String,
    /// The rule.
    pub rule: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Deletions (with `--dry-run`, those it would make).
    pub expired: Vec<Expired>,
    /// Builds read from the ledger.
    pub builds_read: usize,
    /// Items kept for now and decided again next time.
    pub pending: usize,
    /// What could not be done (retried next sweep; the cursors of the rules concerned stay).
    pub errors: Vec<String>,
    /// Dependency cache archives not used for `cache_days` (with `--dry-run`, those it would
    /// remove): path and bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches_expired: Vec<(String, u64)>,
}

/// What a sweep needs besides the services.
pub struct Sweep<'a> {
    /// The config in use.
    pub layout: &'a Layout,
    /// Now.
    pub now: Timestamp,
    /// `<state>/retention.json`.
    pub state_path: PathBuf,
    /// Decide and report only.
    pub dry_run: bool,
}

/// The key of a rule's cursor in the state file: `<kind>/<trust>`.
fn rule_key(kind: ArtifactKind, trust: Trust) -> String {
    format!("{}/{}", kind.as_str(), trust.as_str())
}

/// The hour directory (`yyyy/mm/dd/hh`) of a time.
fn hour_of(t: Timestamp) -> String {
    let (y, m, d, h) = t.utc_hour();
    format!("{y:04}/{m:02}/{d:02}/{h:02}")
}

/// Runs one sweep.
pub fn run(svc: &Services, sweep: &Sweep<'_>) -> Result<Report, Error> {
    let policy = &sweep.layout.policies.retention;
    let mut state = State::load(&sweep.state_path)?;
    let mut report = Report::default();
    // Deletions a crash interrupted are finished first.
    if !sweep.dry_run {
        for intent in std::mem::take(&mut state.deleting) {
            if let Err(e) = carry_out(svc, sweep, &mut state, &intent, &mut report) {
                report.errors.push(e.to_string());
                state.deleting.push(intent);
            }
        }
    }
    // Decided on one snapshot, under the read guard; carried out after it is released (the
    // writer's pack merger waits for readers, and a deletion waits for the writer).
    let mut advanced: Vec<(String, String)> = Vec::new();
    let decisions: Vec<(Item, Facts, Decision)> = {
        let _packs = crate::ledger::read_guard();
        let ledger = svc.read_ledger()?;
        let snapshot = ledger.snapshot().map_err(Error::ledger("the ledger"))?;
        let last_env = sweep.layout.environments.last().map(|e| e.name.clone());
        // What each environment runs now, from the ledger's pointers (not only the environments
        // and images the config names today: a digest something still runs is never deleted).
        let deployed = deployed(&snapshot).map_err(Error::ledger("reading what runs where"))?;
        let facts = |item: &Item| -> Result<Facts, Error> {
            let mut runs_in = None;
            let mut left_production = None;
            if item.kind == ArtifactKind::Image {
                runs_in = deployed
                    .iter()
                    .find(|(_, (d, _))| *d == item.digest)
                    .map(|((env, _), _)| env.clone());
                if let Some(last) = &last_env {
                    let dir = format!(
                        "{}/promotions/{last}",
                        ledger_layout::artifact_dir(&item.digest)
                    );
                    let reached = !snapshot
                        .list(&dir)
                        .map_err(Error::ledger(format!("reading {dir}")))?
                        .is_empty();
                    if reached && runs_in.is_none() {
                        // It left when what runs there now came (or later): kept at least as long
                        // as the rule says, never shorter.
                        let since = item
                            .name
                            .parse::<ImageName>()
                            .ok()
                            .and_then(|i| deployed.get(&(last.clone(), i)))
                            .map_or(sweep.now, |(_, at)| *at);
                        left_production = Some(since);
                    }
                }
            }
            Ok(Facts {
                kind: item.kind,
                trust: item.trust,
                created: item.created,
                runs_in,
                left_production,
                now: sweep.now,
            })
        };

        // What to decide: what was kept before, and the builds of the hours that became old
        // enough for a rule since the last sweep.
        let mut candidates: BTreeSet<Item> = std::mem::take(&mut state.pending);
        for rule in &policy.rules {
            let key = rule_key(rule.kind, rule.trust);
            let out_of_range = |e| Error::Config(format!("retention rule {key}: {e}"));
            let cutoff = Timestamp::from_second(sweep.now.as_second() - i64::from(rule.days) * DAY)
                .map_err(out_of_range)?;
            // The hour the cutoff falls in is not over yet for the rule.
            let limit =
                hour_of(Timestamp::from_second(cutoff.as_second() - 3600).map_err(out_of_range)?);
            let from = state.cursors.get(&key).cloned().unwrap_or_default();
            if from >= limit {
                continue;
            }
            let mut hours = Vec::new();
            hours_between(&snapshot, "builds", "", &from, &limit, &mut hours)
                .map_err(Error::ledger("reading the ledger's builds"))?;
            for hour in hours {
                for entry in snapshot
                    .list(&format!("builds/{hour}"))
                    .map_err(Error::ledger(format!("reading builds/{hour}")))?
                {
                    let dir = format!("builds/{hour}/{}", String::from_utf8_lossy(&entry.name));
                    report.builds_read += 1;
                    for item in build_items(svc, &snapshot, &dir)? {
                        if item.kind == rule.kind && item.trust == rule.trust {
                            candidates.insert(item);
                        }
                    }
                }
            }
            advanced.push((key, limit));
        }

        let mut decisions = Vec::new();
        for item in candidates {
            let f = facts(&item)?;
            let d = decide(&f, policy);
            decisions.push((item, f, d));
        }
        decisions
    };

    let mut failed_rules = BTreeSet::new();
    for (item, facts, decision) in decisions {
        match decision {
            Decision::Keep { .. } => {
                // Kept by a rule's age or by an environment: decided again later. Kept for
                // want of a rule: nothing will change that but a new policy, which starts
                // from the hours it has not seen.
                let has_rule = policy
                    .rules
                    .iter()
                    .any(|r| r.kind == item.kind && r.trust == item.trust);
                if has_rule || facts.runs_in.is_some() || facts.left_production.is_some() {
                    state.pending.insert(item);
                }
            }
            Decision::Expire { rule } => {
                let stores = stores_of(svc, sweep, &item)?;
                for (store, present) in stores {
                    if !present {
                        continue;
                    }
                    let intent = Intent {
                        item: item.clone(),
                        store,
                        rule: rule.clone(),
                    };
                    if sweep.dry_run {
                        report.expired.push(Expired {
                            digest: item.digest.clone(),
                            name: item.name.clone(),
                            store: intent.store,
                            rule: rule.clone(),
                        });
                        continue;
                    }
                    state.deleting.push(intent.clone());
                    state.save(&sweep.state_path)?;
                    match carry_out(svc, sweep, &mut state, &intent, &mut report) {
                        Ok(()) => {}
                        Err(e) => {
                            report.errors.push(e.to_string());
                            failed_rules.insert(rule_key(item.kind, item.trust));
                        }
                    }
                }
            }
        }
    }
    // Dependency caches are not artifacts (no ledger record): old ones simply go.
    if let Some(state_dir) = sweep.state_path.parent() {
        let max_age = std::time::Duration::from_secs(u64::from(policy.cache_days) * DAY as u64);
        match crate::executor::caches::expire(&state_dir.join("caches"), max_age, sweep.dry_run) {
            Ok(removed) => {
                report.caches_expired = removed
                    .into_iter()
                    .map(|(p, n)| (p.display().to_string(), n))
                    .collect();
            }
            Err(e) => report.errors.push(e),
        }
    }
    if sweep.dry_run {
        report.pending = state.pending.len();
        return Ok(report);
    }
    for (key, limit) in advanced {
        if !failed_rules.contains(&key) {
            state.cursors.insert(key, limit);
        }
    }
    state.last_run = Some(Timestamp::now());
    report.pending = state.pending.len();
    state.save(&sweep.state_path)?;
    Ok(report)
}

/// Deletes what an intent names (again, if a crash came after), records it, forgets the intent.
fn carry_out(
    svc: &Services,
    sweep: &Sweep<'_>,
    state: &mut State,
    intent: &Intent,
    report: &mut Report,
) -> Result<(), Error> {
    let item = &intent.item;
    match item.kind {
        ArtifactKind::Image => {
            let location = image_location(sweep.layout, &svc.secrets, &intent.store)?;
            for suffix in ["sig", "att"] {
                let tag = format!("sha256-{}.{suffix}", item.digest.hex());
                if let Some(m) = location
                    .get_manifest_opt(&tag)
                    .map_err(Error::registry(&intent.store))?
                {
                    location
                        .delete_manifest(&m.digest)
                        .map_err(Error::registry(format!(
                            "deleting {tag} from {}",
                            intent.store
                        )))?;
                }
            }
            location
                .delete_manifest(&item.digest)
                .map_err(Error::registry(format!(
                    "deleting {} from {}",
                    item.digest, intent.store
                )))?;
        }
        ArtifactKind::File | ArtifactKind::Log => {
            let path = svc.store.path(&item.digest);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(path.display(), e)),
            }
        }
    }
    let expiry = Expiry {
        digest: item.digest.clone(),
        name: item.name.clone(),
        store: intent.store.clone(),
        rule: intent.rule.clone(),
        expired_at: Timestamp::now(),
    };
    if !already_recorded(svc, &expiry)? {
        svc.writer
            .append(Record::Expiry(expiry))
            .map_err(|source| Error::Record {
                what: format!("recording the expiry of {}", item.digest),
                source,
            })?;
        (svc.on_write)();
    }
    state.deleting.retain(|i| i != intent);
    state.save(&sweep.state_path)?;
    report.expired.push(Expired {
        digest: item.digest.clone(),
        name: item.name.clone(),
        store: intent.store.clone(),
        rule: intent.rule.clone(),
    });
    Ok(())
}

/// Whether the ledger already holds an expiry of this digest from this store.
fn already_recorded(svc: &Services, e: &Expiry) -> Result<bool, Error> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.read_ledger()?;
    let dir = format!("{}/expiries", ledger_layout::artifact_dir(&e.digest));
    let read = Error::ledger(format!("reading {dir}"));
    let found = (|| {
        let snapshot = ledger.snapshot()?;
        for entry in snapshot.list(&dir)? {
            let path = format!("{dir}/{}", String::from_utf8_lossy(&entry.name));
            if let Some(Record::Expiry(r)) = snapshot.record(&path)?
                && r.store == e.store
                && r.name == e.name
            {
                return Ok(true);
            }
        }
        Ok(false)
    })();
    found.map_err(read)
}

/// The stores that may hold an item, and whether each does now (and, for a blob, was not
/// stored again since the item was made).
fn stores_of(svc: &Services, sweep: &Sweep<'_>, item: &Item) -> Result<Vec<(String, bool)>, Error> {
    match item.kind {
        ArtifactKind::Image => {
            let mut out: Vec<(String, bool)> = Vec::new();
            for env in &sweep.layout.environments {
                let Some(reg) = sweep.layout.settings.registries.get(&env.registry) else {
                    continue;
                };
                let store =
                    image_store(&reg.url, &format!("{}{}", env.repository_prefix, item.name));
                if out.iter().any(|(s, _)| *s == store) {
                    continue;
                }
                let location = image_location(sweep.layout, &svc.secrets, &store)?;
                let present = location
                    .get_manifest_opt(item.digest.as_str())
                    .map_err(Error::registry(&store))?
                    .is_some();
                out.push((store, present));
            }
            Ok(out)
        }
        ArtifactKind::File | ArtifactKind::Log => {
            let path = svc.store.path(&item.digest);
            let present = match std::fs::metadata(&path) {
                Ok(m) => {
                    // Stored again after this item was made: someone newer shares it.
                    let stored = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(i64::MAX, |d| d.as_secs() as i64);
                    stored <= item.created.as_second() + 60
                }
                Err(_) => false,
            };
            Ok(vec![(
                format!("dir:{}", svc.store.root().display()),
                present,
            )])
        }
    }
}

/// How an expiry names an image's store: `oci:DIR` for a layout, `URL/REPO` for a registry.
fn image_store(url: &str, repo: &str) -> String {
    if url.starts_with("oci:") {
        url.to_owned()
    } else {
        format!("{}/{repo}", url.trim_end_matches('/'))
    }
}

/// The location an image store names (one of the environments' registries).
fn image_location(
    layout: &Layout,
    secrets: &crate::secrets::SecretsFile,
    store: &str,
) -> Result<Location, Error> {
    for env in &layout.environments {
        let Some(reg) = layout.settings.registries.get(&env.registry) else {
            continue;
        };
        if let Some(repo) = store
            .strip_prefix(reg.url.trim_end_matches('/'))
            .and_then(|r| r.strip_prefix('/'))
            .or_else(|| (reg.url.starts_with("oci:") && store == reg.url).then_some(""))
        {
            return copy::location_for(&reg.url, repo, secrets).map_err(Error::registry(store));
        }
    }
    Err(Error::Config(format!(
        "{store} is no longer an environment's registry"
    )))
}

/// What each environment runs now: `promotions/<env>/<image>.yaml`.
#[allow(clippy::type_complexity)]
fn deployed(
    snapshot: &Snapshot<'_>,
) -> Result<BTreeMap<(EnvironmentName, ImageName), (Digest, Timestamp)>, crate::ledger::LedgerError>
{
    fn walk(
        snapshot: &Snapshot<'_>,
        dir: &str,
        out: &mut BTreeMap<(EnvironmentName, ImageName), (Digest, Timestamp)>,
    ) -> Result<(), crate::ledger::LedgerError> {
        for entry in snapshot.list(dir)? {
            let path = format!("{dir}/{}", String::from_utf8_lossy(&entry.name));
            if entry.mode == crate::git::tree::MODE_TREE {
                walk(snapshot, &path, out)?;
            } else if let Some(Record::Promotion(p)) = snapshot.record(&path)? {
                out.insert((p.environment, p.image), (p.digest, p.promoted_at));
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(snapshot, "promotions", &mut out)?;
    Ok(out)
}

/// The hour directories under `builds/` after `from` and up to `limit` (both `yyyy/mm/dd/hh`),
/// skipping whole years, months and days outside that range.
fn hours_between(
    snapshot: &Snapshot<'_>,
    root: &str,
    prefix: &str,
    from: &str,
    limit: &str,
    out: &mut Vec<String>,
) -> Result<(), crate::ledger::LedgerError> {
    let depth = prefix.matches('/').count() + usize::from(!prefix.is_empty());
    let path = if prefix.is_empty() {
        root.to_owned()
    } else {
        format!("{root}/{prefix}")
    };
    for entry in snapshot.list(&path)? {
        let name = String::from_utf8_lossy(&entry.name).into_owned();
        let here = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let n = here.len();
        // Entirely before the cursor, or entirely after the limit.
        if (!from.is_empty() && here.as_str() < &from[..n.min(from.len())])
            || here.as_str() > &limit[..n.min(limit.len())]
        {
            continue;
        }
        if depth == 3 {
            if here.as_str() > from && here.as_str() <= limit {
                out.push(here);
            }
        } else {
            hours_between(snapshot, root, &here, from, limit, out)?;
        }
    }
    Ok(())
}

/// The logs, file outputs and images a build made.
fn build_items(svc: &Services, snapshot: &Snapshot<'_>, dir: &str) -> Result<Vec<Item>, Error> {
    let request = match snapshot
        .record(&format!("{dir}/request.yaml"))
        .map_err(Error::ledger(format!("reading {dir}")))?
    {
        Some(Record::BuildRequest(r)) => r,
        _ => return Ok(Vec::new()),
    };
    let Some(Record::BuildResult(result)) = snapshot
        .record(&format!("{dir}/result.yaml"))
        .map_err(Error::ledger(format!("reading {dir}")))?
    else {
        // Not finished: nothing of it may go yet (its hour is decided again only through
        // what it makes, once finished, if a later sweep sees it; see `pending`).
        return Ok(Vec::new());
    };
    let made = |digest: Digest, kind, name: String| Item {
        digest,
        kind,
        name,
        trust: request.trust,
        created: result.finished_at,
    };
    let mut items = Vec::new();
    for job in &result.jobs {
        if let Some(d) = &job.log_digest {
            items.push(made(
                d.clone(),
                ArtifactKind::Log,
                format!("log of {}/{}", request.build_id, job.name),
            ));
        }
        items.extend(
            job_outputs(svc, &request.build_id, &job.name)
                .into_iter()
                .map(|(path, d)| {
                    made(
                        d,
                        ArtifactKind::File,
                        format!("{}/{}: {path}", request.build_id, job.name),
                    )
                }),
        );
    }
    for a in &result.artifacts {
        items.push(made(a.digest.clone(), a.kind, a.name.clone()));
    }
    Ok(items)
}

/// The output files the executor still knows for a job, of every attempt.
fn job_outputs(svc: &Services, build: &BuildId, job: &str) -> Vec<(String, Digest)> {
    let mut out = Vec::new();
    for attempt in 1..=10 {
        match svc.executor.outputs(&super::job_key(build, job, attempt)) {
            Ok(files) => out.extend(files.into_iter().map(|f| (f.path, f.digest))),
            Err(_) => break,
        }
    }
    out
}
