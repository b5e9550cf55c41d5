//! `ledger verify`: replays the whole history from the first commit and checks, per commit,
//! the signature (in-process, Sequoia) against the keys the previous commit allowed, that the
//! change only appends records (pointers excepted), that every record matches its schema and
//! its path, and that the derived indexes agree with the records.

use std::collections::{HashMap, HashSet};

use crate::git::ObjectId;
use crate::git::tree::MODE_BLOB;
use crate::model::KeyRole;
use crate::model::Record;
use crate::signing::{Authority, Keyring};

use super::commit::read_commit;
use super::diff::{Change, diff_trees};
use super::layout::{self, PathClass};
use super::overlay::{Overlay, read_blob};
use super::reader::parse_record;
use super::{Ledger, LedgerError, LedgerMeta};

/// What to trust.
#[derive(Default, Clone)]
pub struct VerifyOptions {
    /// Certs that must have signed the first commit. Without them, the first commit's own
    /// `KEYS/` is trusted as given (trust on first use).
    pub pinned: Option<Keyring>,
    /// The deployment's trusted keys with their roles (the config repo's `keys/`, the
    /// settings' pinned certs, the server's own key). When given, every commit's signer must
    /// be one of them and hold every role its records need, besides being allowed by the
    /// ledger's own `LEDGER`; the first commit must be signed by one of them.
    pub authority: Option<Authority>,
    /// The trusted keys at a config commit (its `keys/`, with the settings' certs and the
    /// server's own key), when the config repo has that commit and it is valid. With it (and
    /// `authority`), each commit's signer is judged against the keys of the config commit its
    /// records name (a commit naming none: the last one named before it, else the first one
    /// named after it), so a key retired from `keys/` later still vouches for what it signed
    /// while it was trusted; a config commit it cannot resolve (unknown, invalid, or not on
    /// the config branch) is judged by `authority`, and so is the first commit.
    pub history: Option<History>,
}

/// See [`VerifyOptions::history`].
pub type History = std::sync::Arc<dyn Fn(&str) -> Option<Authority> + Send + Sync>;

/// Judges a signer's roles at a config commit (see [`VerifyOptions::history`]).
fn judge(
    options: &VerifyOptions,
    base: &Authority,
    config: Option<&str>,
    signer: &str,
    roles: &[KeyRole],
    root: bool,
) -> Result<(), String> {
    let at = config.and_then(|c| options.history.as_ref().and_then(|h| h(c)).map(|a| (c, a)));
    let (authority, whose) = match &at {
        Some((c, a)) => (a, format!(" at config commit {c}")),
        None => (base, String::new()),
    };
    for role in roles {
        authority.require(signer, *role).map_err(|e| {
            if root {
                format!(
                    "{e}{whose}: the first commit must be signed by a trusted key (the config \
                     repo's keys/, the settings' trusted_certs, or the server's own key)"
                )
            } else {
                format!("{e}{whose}")
            }
        })?;
    }
    Ok(())
}

/// What a successful verification covered.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyReport {
    /// Commits checked.
    pub commits: u64,
    /// Records checked against their schemas.
    pub records: u64,
    /// The tip that was verified.
    pub tip: String,
    /// Fingerprints allowed to sign at the tip.
    pub signers: Vec<String>,
    /// Whether the first commit was checked against pinned certs.
    pub pinned: bool,
    /// Whether every signer was checked against the deployment's keys and roles.
    pub authorized: bool,
}

/// The first bad commit and why.
#[derive(Debug, thiserror::Error)]
#[error("commit {commit}: {reason}")]
pub struct VerifyFailure {
    /// The commit (or `-` when the problem is not a commit's).
    pub commit: String,
    /// What is wrong.
    pub reason: String,
}

impl From<LedgerError> for VerifyFailure {
    fn from(e: LedgerError) -> Self {
        VerifyFailure {
            commit: "-".into(),
            reason: e.to_string(),
        }
    }
}

struct Trust {
    meta: LedgerMeta,
    keyring: Keyring,
}

fn load_trust(repo: &gix::Repository, tree: ObjectId) -> Result<Trust, String> {
    let mut overlay = Overlay::new(repo, Some(tree));
    let bytes = overlay
        .read("LEDGER")
        .map_err(|e| e.to_string())?
        .ok_or("the tree has no LEDGER file")?;
    let meta = LedgerMeta::parse(&bytes)?;
    let mut keyring = Keyring::new();
    for fpr in &meta.signers {
        let path = layout::key_path(fpr);
        let cert = overlay
            .read(&path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("LEDGER allows {fpr} but {path} is missing"))?;
        let got = keyring
            .add_cert_bytes(&cert, &path)
            .map_err(|e| e.to_string())?;
        if &got != fpr {
            return Err(format!("{path} holds the cert of {got}"));
        }
    }
    Ok(Trust { meta, keyring })
}

/// Verifies the whole ledger. Returns the first bad commit, oldest first.
pub fn verify(ledger: &Ledger, options: &VerifyOptions) -> Result<VerifyReport, VerifyFailure> {
    let tip = ledger.tip()?.ok_or(LedgerError::Empty)?;
    verify_tip(ledger, tip, options)
}

/// Verifies the history that ends at `tip` (which need not be the ledger ref: a pull checks
/// what it fetched before adopting it).
pub fn verify_tip(
    ledger: &Ledger,
    tip: ObjectId,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyFailure> {
    verify_from(ledger, None, tip, options)
}

/// Verifies only the commits after `from` (a commit verified before, which `tip` must descend
/// from) up to `tip`, as [`verify_tip`] would check them: what a running server does with
/// commits that appeared in its ledger since it last looked.
pub fn verify_since(
    ledger: &Ledger,
    from: ObjectId,
    tip: ObjectId,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyFailure> {
    verify_from(ledger, Some(from), tip, options)
}

fn verify_from(
    ledger: &Ledger,
    from: Option<ObjectId>,
    tip: ObjectId,
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyFailure> {
    let repo = ledger.repo();
    // Collect the chain tip -> root (or -> `from`), then check it the other way.
    let mut chain = Vec::new();
    let mut next = Some(tip);
    while let Some(id) = next {
        if Some(id) == from {
            break;
        }
        let c = read_commit(repo, id)?;
        if c.parents.len() > 1 {
            return Err(VerifyFailure {
                commit: id.to_string(),
                reason: "is a merge: ledger history must be linear".into(),
            });
        }
        next = c.parents.first().copied();
        chain.push((id, c));
    }
    if let (Some(from), None) = (from, next) {
        return Err(VerifyFailure {
            commit: tip.to_string(),
            reason: format!("does not descend from {from}, the last commit verified"),
        });
    }
    chain.reverse();

    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut workers: Vec<gix::Repository> = (0..threads).map(|_| repo.clone()).collect();
    let mut trust: Option<Trust> = None;
    let mut prev_tree: Option<ObjectId> = None;
    let mut prev_id: Option<ObjectId> = None;
    let mut prev_sequence: Option<u64> = None;
    if let Some(from) = from {
        let fail = |reason: String| VerifyFailure {
            commit: from.to_string(),
            reason,
        };
        let c = read_commit(repo, from)?;
        trust = Some(load_trust(repo, c.tree).map_err(fail)?);
        prev_tree = Some(c.tree);
        prev_id = Some(from);
        prev_sequence = Some(
            super::message_sequence(&c.message)
                .ok_or_else(|| fail(format!("has no {} trailer", super::SEQUENCE_TRAILER)))?,
        );
    }
    if chain.is_empty() {
        return Ok(VerifyReport {
            commits: 0,
            records: 0,
            tip: tip.to_string(),
            signers: trust.map(|t| t.meta.signers).unwrap_or_default(),
            pinned: options.pinned.is_some(),
            authorized: options.authority.is_some(),
        });
    }
    let mut records = 0u64;
    // Commits whose signer is judged once a config commit is named (see `history`).
    let mut pending: Vec<(ObjectId, String, Vec<KeyRole>)> = Vec::new();
    let mut last_config: Option<String> = None;
    for (id, c) in &chain {
        let fail = |reason: String| VerifyFailure {
            commit: id.to_string(),
            reason,
        };
        let is_root = trust.is_none();
        let current = match trust.take() {
            Some(t) => t,
            None => load_trust(repo, c.tree).map_err(|e| fail(format!("first commit: {e}")))?,
        };
        // Signature, against the keys allowed before this commit.
        let sig = c
            .signature
            .as_ref()
            .ok_or_else(|| fail("is not signed".into()))?;
        let ring = match (&options.pinned, &options.authority, is_root) {
            (Some(pinned), _, true) => pinned,
            (None, Some(authority), true) => authority.keyring(),
            _ => &current.keyring,
        };
        let signer = ring.verify(&c.payload, sig).map_err(|e| {
            if is_root && options.pinned.is_none() && options.authority.is_some() {
                fail(format!(
                    "{e}: the first commit must be signed by a trusted key (the config repo's \
                     keys/, the settings' trusted_certs, or the server's own key)"
                ))
            } else {
                fail(e.to_string())
            }
        })?;
        if !current.meta.signers.contains(&signer) {
            return Err(fail(format!(
                "signed by {signer}, which the ledger does not allow (allowed: {})",
                current.meta.signers.join(", ")
            )));
        }
        if is_root && c.message.lines().next().is_none_or(str::is_empty) {
            return Err(fail("has no summary line".into()));
        }
        let sequence = super::message_sequence(&c.message)
            .ok_or_else(|| fail(format!("has no {} trailer", super::SEQUENCE_TRAILER)))?;
        let expected_sequence = prev_sequence.map_or(0, |p| p + 1);
        if sequence != expected_sequence {
            return Err(fail(format!(
                "has sequence number {sequence}, expected {expected_sequence}"
            )));
        }
        let changes = diff_trees(repo, prev_tree, c.tree).map_err(|e| fail(e.to_string()))?;
        let parent = prev_id
            .zip(prev_sequence)
            .zip(prev_tree)
            .map(|((id, seq), tree)| (id, seq, tree));
        let checked = check_changes(
            repo,
            &mut workers,
            c.tree,
            &changes,
            parent,
            is_root,
            &current.meta,
        )
        .map_err(fail)?;
        records += checked.records;
        if let Some(authority) = &options.authority {
            let roles: Vec<KeyRole> = std::iter::once(KeyRole::Ledger)
                .chain(checked.needs.iter().copied())
                .collect();
            // The first commit is always judged by today's keys (the config's keys/ at the
            // tip, the settings' certs): an old key cannot start a ledger of its own, even one
            // whose records name a config that trusted it.
            if options.history.is_none() || is_root {
                judge(options, authority, None, &signer, &roles, is_root).map_err(fail)?;
            } else if let Some(first) = checked.configs.iter().next() {
                for (pid, psigner, proles) in pending.drain(..) {
                    judge(options, authority, Some(first), &psigner, &proles, false).map_err(
                        |reason| VerifyFailure {
                            commit: pid.to_string(),
                            reason,
                        },
                    )?;
                }
                for config in &checked.configs {
                    judge(options, authority, Some(config), &signer, &roles, false)
                        .map_err(fail)?;
                }
                last_config = checked.configs.iter().last().cloned();
            } else if let Some(config) = &last_config {
                judge(options, authority, Some(config), &signer, &roles, false).map_err(fail)?;
            } else {
                pending.push((*id, signer.clone(), roles));
            }
        }
        trust = Some(if checked.meta_changed {
            load_trust(repo, c.tree).map_err(fail)?
        } else {
            current
        });
        prev_sequence = Some(sequence);
        prev_tree = Some(c.tree);
        prev_id = Some(*id);
    }
    if let Some(authority) = &options.authority {
        for (pid, psigner, proles) in pending {
            judge(options, authority, None, &psigner, &proles, false).map_err(|reason| {
                VerifyFailure {
                    commit: pid.to_string(),
                    reason,
                }
            })?;
        }
    }
    let trust = trust.expect("the chain is not empty");
    Ok(VerifyReport {
        commits: chain.len() as u64,
        records,
        tip: tip.to_string(),
        signers: trust.meta.signers,
        pinned: options.pinned.is_some(),
        authorized: options.authority.is_some(),
    })
}

struct Checked {
    records: u64,
    meta_changed: bool,
    /// The roles the commit's records need of its signer.
    needs: std::collections::BTreeSet<KeyRole>,
    /// The config commits its records name.
    configs: std::collections::BTreeSet<String>,
}

/// The role a key needs to add or change a file of this class.
fn role_for(class: &PathClass) -> KeyRole {
    match class {
        PathClass::BuildRequest
        | PathClass::BuildResult
        | PathClass::Landing
        | PathClass::Artifact
        | PathClass::Attestation => KeyRole::Builder,
        PathClass::PromotionHistory | PathClass::PromotionPointer | PathClass::Refusal => {
            KeyRole::Promoter
        }
        PathClass::Meta
        | PathClass::Key(_)
        | PathClass::Expiry
        | PathClass::FreezePointer
        | PathClass::FreezeHistory
        | PathClass::BuildIndex
        | PathClass::ChangeIndex
        | PathClass::LandingIndex
        | PathClass::Chain
        | PathClass::Unknown => KeyRole::Ledger,
    }
}

fn check_changes(
    repo: &gix::Repository,
    workers: &mut [gix::Repository],
    tree: ObjectId,
    changes: &[Change],
    parent: Option<(ObjectId, u64, ObjectId)>,
    is_root: bool,
    meta_before: &LedgerMeta,
) -> Result<Checked, String> {
    let mut records = 0u64;
    let mut meta_changed = false;
    let mut needs = std::collections::BTreeSet::new();
    let mut record_jobs: Vec<(String, ObjectId, PathClass)> = Vec::new();
    let mut expected_build_index: HashMap<String, String> = HashMap::new();
    let mut expected_change_index: HashMap<String, String> = HashMap::new();
    let mut seen_build_index: HashMap<String, String> = HashMap::new();
    let mut seen_change_index: HashMap<String, String> = HashMap::new();
    let mut history_blobs: HashSet<ObjectId> = HashSet::new();
    let mut pointers: Vec<(String, ObjectId, PathClass)> = Vec::new();
    let mut chain: Vec<(String, ObjectId)> = Vec::new();
    let mut result_dirs: Vec<String> = Vec::new();
    let mut landing_dirs: Vec<String> = Vec::new();
    let mut expected_landing_index = HashMap::new();
    let mut seen_landing_index = HashMap::new();
    let mut artifact_builds: Vec<(String, String)> = Vec::new();

    for change in changes {
        let (path, oid, mode, added) = match change {
            Change::Deleted { path } => {
                return Err(format!("deletes {path}: the ledger is append-only"));
            }
            Change::Added { path, oid, mode } => (path, *oid, *mode, true),
            Change::Modified { path, oid, mode } => (path, *oid, *mode, false),
        };
        if mode != MODE_BLOB {
            return Err(format!("{path} has mode {mode:o}, expected 100644"));
        }
        let class = layout::classify(path);
        needs.insert(role_for(&class));
        let mutable = matches!(
            class,
            PathClass::Meta | PathClass::PromotionPointer | PathClass::FreezePointer
        );
        if !added && !mutable {
            return Err(format!("rewrites {path}: records are immutable"));
        }
        let blob = || read_blob(repo, &oid).map_err(|e| e.to_string());
        match &class {
            PathClass::Unknown => return Err(format!("adds {path}, which is not a ledger path")),
            PathClass::Meta => {
                let meta = LedgerMeta::parse(&blob()?)?;
                if !is_root && meta.ledger_id != meta_before.ledger_id {
                    return Err("changes the ledger id".into());
                }
                meta_changed = true;
            }
            PathClass::Key(fpr) => {
                let mut ring = Keyring::new();
                let got = ring
                    .add_cert_bytes(&blob()?, path)
                    .map_err(|e| e.to_string())?;
                if &got != fpr {
                    return Err(format!("{path} holds the cert of {got}"));
                }
            }
            PathClass::BuildIndex => {
                seen_build_index
                    .insert(path.clone(), String::from_utf8_lossy(&blob()?).into_owned());
            }
            PathClass::ChangeIndex => {
                seen_change_index
                    .insert(path.clone(), String::from_utf8_lossy(&blob()?).into_owned());
            }
            PathClass::LandingIndex => {
                seen_landing_index
                    .insert(path.clone(), String::from_utf8_lossy(&blob()?).into_owned());
            }
            PathClass::Chain => chain.push((path.clone(), oid)),
            PathClass::PromotionPointer | PathClass::FreezePointer => {
                pointers.push((path.clone(), oid, class.clone()));
            }
            _ => record_jobs.push((path.clone(), oid, class.clone())),
        }
    }
    // Records are parsed and checked on every core; what they imply is then folded in order.
    let mut configs = std::collections::BTreeSet::new();
    for (facts, config) in check_records(workers, &record_jobs)? {
        records += 1;
        configs.extend(config);
        match facts {
            Facts::Request {
                dir,
                build_id,
                change_index,
            } => {
                expected_build_index
                    .insert(layout::build_index_path(&build_id), format!("{dir}\n"));
                if let Some(c) = change_index {
                    expected_change_index.insert(c, format!("{dir}\n"));
                }
            }
            Facts::Result { dir } => result_dirs.push(dir),
            Facts::Landing { dir, commit } => {
                expected_landing_index
                    .insert(layout::landing_index_path(&commit), format!("{dir}\n"));
                landing_dirs.push(dir);
            }
            Facts::Artifact { path, build_id } => artifact_builds.push((path, build_id)),
            Facts::History { oid } => {
                history_blobs.insert(oid);
            }
            Facts::Other => {}
        }
    }
    if expected_build_index != seen_build_index {
        return Err(index_mismatch(
            "index/builds",
            &expected_build_index,
            &seen_build_index,
        ));
    }
    if expected_change_index != seen_change_index {
        return Err(index_mismatch(
            "changes/",
            &expected_change_index,
            &seen_change_index,
        ));
    }
    if expected_landing_index != seen_landing_index {
        return Err(index_mismatch(
            "index/landings",
            &expected_landing_index,
            &seen_landing_index,
        ));
    }
    for (path, oid, _) in &pointers {
        if !history_blobs.contains(oid) {
            return Err(format!(
                "moves {path} to content that no record of this commit holds"
            ));
        }
    }
    // Each commit adds exactly one chain entry: its parent's id under the parent's number.
    let expected_chain: Vec<(String, ObjectId)> = parent
        .map(|(id, seq, parent_tree)| {
            let content = layout::chain_entry(&id, &parent_tree);
            let blob = crate::git::object_id(crate::git::ObjectKind::Blob, content.as_bytes());
            vec![(layout::chain_path(seq), blob)]
        })
        .unwrap_or_default();
    if chain != expected_chain {
        return Err(format!(
            "index/chain must gain exactly the parent's entry ({}), found {:?}",
            expected_chain
                .first()
                .map_or("none at the root".to_owned(), |(p, _)| p.clone()),
            chain.iter().map(|(p, _)| p).collect::<Vec<_>>()
        ));
    }
    // Results and artifacts refer to builds whose requests exist in this tree.
    if !result_dirs.is_empty() || !artifact_builds.is_empty() || !landing_dirs.is_empty() {
        let mut tree_view = Overlay::new(repo, Some(tree));
        // A landing is recorded after its gate build's (successful) result.
        for dir in landing_dirs {
            let result = match tree_view
                .get(&format!("{dir}/result.yaml"))
                .map_err(|e| e.to_string())?
            {
                Some(super::overlay::Found::Blob(oid)) => {
                    Some(read_blob(repo, &oid).map_err(|e| e.to_string())?)
                }
                _ => None,
            };
            let ok = result
                .and_then(|bytes| yaml_serde::from_slice::<Record>(&bytes).ok())
                .is_some_and(|r| {
                    matches!(r, Record::BuildResult(r) if r.status == crate::model::BuildStatus::Success)
                });
            if !ok {
                return Err(format!(
                    "{dir}/landing.yaml has no successful result.yaml beside it"
                ));
            }
        }
        for dir in result_dirs {
            if tree_view
                .get(&format!("{dir}/request.yaml"))
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("{dir}/result.yaml has no request.yaml beside it"));
            }
        }
        for (path, build) in artifact_builds {
            let id: crate::model::BuildId = build.parse().map_err(|e| format!("{path}: {e}"))?;
            if tree_view
                .get(&layout::build_index_path(&id))
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!(
                    "{path} names build {build}, which has no build-request"
                ));
            }
        }
    }
    Ok(Checked {
        records,
        meta_changed,
        needs,
        configs,
    })
}

fn index_mismatch(
    what: &str,
    expected: &HashMap<String, String>,
    seen: &HashMap<String, String>,
) -> String {
    let missing = expected
        .iter()
        .find(|(k, v)| seen.get(*k) != Some(v))
        .map(|(k, _)| k);
    let extra = seen.keys().find(|k| !expected.contains_key(*k));
    format!(
        "{what} does not match the build requests of this commit (missing or wrong: {missing:?}, unexpected: {extra:?})"
    )
}

/// Whether `record` is the kind of record `path` (of `class`) holds and lives exactly where its
/// content says (public for the fuzzer, which checks records as `verify` does).
pub fn check_record_path(
    path: &str,
    class: &PathClass,
    record: &Record,
    bytes: &[u8],
) -> Result<(), String> {
    let kind_ok = matches!(
        (class, record),
        (PathClass::BuildRequest, Record::BuildRequest(_))
            | (PathClass::BuildResult, Record::BuildResult(_))
            | (PathClass::Landing, Record::Landing(_))
            | (PathClass::Artifact, Record::Artifact(_))
            | (PathClass::Attestation, Record::Attestation(_))
            | (PathClass::PromotionHistory, Record::Promotion(_))
            | (PathClass::FreezeHistory, Record::Freeze(_))
            | (PathClass::Expiry, Record::Expiry(_))
            | (PathClass::Refusal, Record::PromotionRefusal(_))
    );
    if !kind_ok {
        return Err(format!("{path} holds a {} record", record.kind().as_str()));
    }
    let expected = match record {
        Record::BuildResult(r) => {
            let dir = path.trim_end_matches("/result.yaml");
            if !dir.ends_with(&format!("/{}", r.build_id)) {
                return Err(format!("{path} holds the result of build {}", r.build_id));
            }
            return Ok(());
        }
        Record::Landing(r) => {
            let dir = path.trim_end_matches("/landing.yaml");
            if !dir.ends_with(&format!("/{}", r.build_id)) {
                return Err(format!("{path} holds the landing of build {}", r.build_id));
            }
            return Ok(());
        }
        Record::Artifact(a) => {
            if path.contains("/rebuilt/") {
                layout::rebuilt_path(&a.digest, &a.build_id)
            } else {
                layout::artifact_path(&a.digest)
            }
        }
        other => layout::canonical_path(other, bytes)
            .expect("content-addressed kinds have a canonical path"),
    };
    if expected != path {
        return Err(format!("{path} holds a record that belongs at {expected}"));
    }
    Ok(())
}

/// What a checked record implies for the rest of its commit.
enum Facts {
    Request {
        dir: String,
        build_id: crate::model::BuildId,
        change_index: Option<String>,
    },
    Result {
        dir: String,
    },
    Landing {
        dir: String,
        commit: crate::model::CommitId,
    },
    Artifact {
        path: String,
        build_id: String,
    },
    History {
        oid: ObjectId,
    },
    Other,
}

/// A record's facts and the config commit it names.
type RecordFacts = (Facts, Option<String>);

fn check_record(
    repo: &gix::Repository,
    path: &str,
    oid: ObjectId,
    class: &PathClass,
) -> Result<RecordFacts, String> {
    let bytes = read_blob(repo, &oid).map_err(|e| e.to_string())?;
    let record = parse_record(path, &bytes).map_err(|e| e.to_string())?;
    record.validate().map_err(|e| format!("{path}: {e}"))?;
    check_record_path(path, class, &record, &bytes)?;
    let config = match &record {
        Record::BuildRequest(r) => Some(r.config_commit.to_string()),
        Record::Promotion(p) => Some(p.config_commit.to_string()),
        Record::PromotionRefusal(r) => Some(r.config_commit.to_string()),
        Record::Landing(l) => Some(l.config_commit.to_string()),
        _ => None,
    };
    let facts = match record {
        Record::BuildRequest(r) => Facts::Request {
            dir: path.trim_end_matches("/request.yaml").to_owned(),
            change_index: layout::change_index_for(&r),
            build_id: r.build_id,
        },
        Record::BuildResult(_) => Facts::Result {
            dir: path.trim_end_matches("/result.yaml").to_owned(),
        },
        Record::Landing(l) => Facts::Landing {
            dir: path.trim_end_matches("/landing.yaml").to_owned(),
            commit: l.commit,
        },
        Record::Artifact(a) => Facts::Artifact {
            path: path.to_owned(),
            build_id: a.build_id.to_string(),
        },
        Record::Promotion(_)
        | Record::Freeze(_)
        | Record::Expiry(_)
        | Record::PromotionRefusal(_) => Facts::History { oid },
        Record::Attestation(_) => Facts::Other,
    };
    Ok((facts, config))
}

/// Checks records in parallel, one repository handle per thread; results keep the input order.
fn check_records(
    workers: &mut [gix::Repository],
    jobs: &[(String, ObjectId, PathClass)],
) -> Result<Vec<RecordFacts>, String> {
    let run = |repo: &gix::Repository, part: &[(String, ObjectId, PathClass)]| {
        part.iter()
            .map(|(p, o, c)| check_record(repo, p, *o, c))
            .collect::<Result<Vec<_>, _>>()
    };
    if jobs.len() < 64 || workers.len() < 2 {
        return run(&workers[0], jobs);
    }
    let chunk = jobs.len().div_ceil(workers.len());
    let parts: Vec<Result<Vec<RecordFacts>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(jobs.chunks(chunk))
            .map(|(repo, part)| s.spawn(move || run(repo, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("record checks do not panic"))
            .collect()
    });
    let mut out = Vec::with_capacity(jobs.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}
