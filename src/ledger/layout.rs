//! Where each record lives in the ledger tree, and what each path may hold.
//!
//! Paths are sharded so that no tree grows past about a thousand entries at ten million
//! records: builds by the hour they were requested, digests and index keys by four levels of
//! one hex digit (65,536 leaves under trees of 16 entries), changes like Gerrit's
//! `refs/changes/XX/N/P`.
//! `state-schema/README.md` documents the same table for people.

use sha2::Digest as _;

use crate::model::{
    Attestation, BuildId, BuildRequest, ChangeNumber, Digest, EnvironmentName, Freeze, FreezeName,
    ImageName, PatchsetNumber, ProjectName, Promotion, Record, Timestamp,
};

/// Directory of a build: `builds/<yyyy>/<mm>/<dd>/<hh>/<build-id>`.
pub fn build_dir(requested_at: Timestamp, build_id: &BuildId) -> String {
    let (y, m, d, h) = requested_at.utc_hour();
    format!("builds/{y:04}/{m:02}/{d:02}/{h:02}/{build_id}")
}

/// Four levels of one hex digit each: 65,536 leaves, and every tree above them has at most 16
/// entries. A commit rewrites every tree on the path of each record it adds, so narrow trees
/// keep the cost of a small commit to a few hundred bytes per level instead of the 7.7 KB of a
/// 256-entry tree.
fn shard(hex: &str) -> String {
    let b = hex.as_bytes();
    format!(
        "{}/{}/{}/{}",
        b[0] as char, b[1] as char, b[2] as char, b[3] as char
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `artifacts/sha256/<h0>/<h1>/<h2>/<h3>/<64 hex>.yaml`: the first build that produced the digest.
pub fn artifact_path(digest: &Digest) -> String {
    format!("{}.yaml", artifact_dir(digest))
}

/// `artifacts/sha256/<h0>/<h1>/<h2>/<h3>/<64 hex>`: what else is known about the digest.
pub fn artifact_dir(digest: &Digest) -> String {
    format!("artifacts/sha256/{}/{}", shard(digest.hex()), digest.hex())
}

/// A later build that produced the same digest (reproducible builds).
pub fn rebuilt_path(digest: &Digest, build_id: &BuildId) -> String {
    format!("{}/rebuilt/{build_id}.yaml", artifact_dir(digest))
}

/// `attestations/sha256/<h0>/<h1>/<h2>/<h3>/<64 hex>`.
pub fn attestation_dir(digest: &Digest) -> String {
    format!(
        "attestations/sha256/{}/{}",
        shard(digest.hex()),
        digest.hex()
    )
}

/// A short path-safe name for a predicate type:
/// `https://slsa.dev/provenance/v1` becomes `slsa.dev-provenance-v1`.
pub fn predicate_slug(predicate_type: &str) -> String {
    let rest = predicate_type
        .split_once("://")
        .map_or(predicate_type, |(_, r)| r);
    let mut slug: String = rest
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let slug = slug.trim_matches(|c| c == '-' || c == '.');
    let mut slug: String = slug.chars().take(64).collect();
    if slug.is_empty() {
        slug.push_str("predicate");
    }
    slug
}

/// `attestations/.../<64 hex>/<predicate slug>-<12 hex of the file's sha256>.json`.
pub fn attestation_path(att: &Attestation, content: &[u8]) -> String {
    format!(
        "{}/{}-{}.json",
        attestation_dir(&att.subject_digest),
        predicate_slug(&att.predicate_type),
        &sha256_hex(content)[..12]
    )
}

/// The current digest of an image in an environment (rewritten on every promotion).
pub fn promotion_pointer(environment: &EnvironmentName, image: &ImageName) -> String {
    format!("promotions/{environment}/{image}.yaml")
}

/// The immutable copy of a promotion, kept with the digest it promoted:
/// `artifacts/.../<64 hex>/promotions/<env>/<yyyymmddThhmmssZ>-<12 hex>.yaml`.
pub fn promotion_history(p: &Promotion, content: &[u8]) -> String {
    format!(
        "{}/promotions/{}/{}-{}.yaml",
        artifact_dir(&p.digest),
        p.environment,
        p.promoted_at.compact(),
        &sha256_hex(content)[..12]
    )
}

/// A refused promotion, kept with the digest: one a day per environment, image and config
/// commit (`<12 hex>` names those), so refusing the same thing again that day is a no-op:
/// `artifacts/.../<64 hex>/refusals/<env>/<yyyymmdd>-<12 hex>.yaml`.
pub fn refusal_path(r: &crate::model::record::PromotionRefusal) -> String {
    let who = format!("{}\n{}\n{}", r.environment, r.image, r.config_commit);
    format!(
        "{}/refusals/{}/{}-{}.yaml",
        artifact_dir(&r.digest),
        r.environment,
        &r.refused_at.compact()[..8],
        &sha256_hex(who.as_bytes())[..12]
    )
}

/// An expiry, kept with the digest it deleted:
/// `artifacts/.../<64 hex>/expiries/<yyyymmddThhmmssZ>-<12 hex>.yaml`.
pub fn expiry_path(e: &crate::model::record::Expiry, content: &[u8]) -> String {
    format!(
        "{}/expiries/{}-{}.yaml",
        artifact_dir(&e.digest),
        e.expired_at.compact(),
        &sha256_hex(content)[..12]
    )
}

/// The freeze's latest observed state (rewritten on every transition).
pub fn freeze_pointer(name: &FreezeName) -> String {
    format!("freezes/{name}.yaml")
}

/// The immutable record of one transition: `freezes/<name>/<config commit>-<state>.yaml`.
pub fn freeze_history(f: &Freeze) -> String {
    format!(
        "freezes/{}/{}-{}.yaml",
        f.name,
        f.config_commit,
        f.state.as_str()
    )
}

/// `index/builds/<s0>/<s1>/<s2>/<s3>/<build-id>` (s: SHA-256 of the id): holds the build's directory.
pub fn build_index_path(build_id: &BuildId) -> String {
    format!(
        "index/builds/{}/{build_id}",
        shard(&sha256_hex(build_id.as_str().as_bytes()))
    )
}

/// `index/landings/<2 hex>/<commit>`: the directory of the gate build whose tested commit
/// landed as `commit` (its `landing.yaml` is there).
pub fn landing_index_path(commit: &crate::model::CommitId) -> String {
    format!("index/landings/{}/{commit}", &commit.as_str()[..2])
}

/// `changes/<project>/<XX>/<change>/<patchset>/<build-id>`: holds the build's directory.
pub fn change_index_path(
    project: &ProjectName,
    change: ChangeNumber,
    patchset: PatchsetNumber,
    build_id: &BuildId,
) -> String {
    format!(
        "changes/{project}/{:02}/{change}/{patchset}/{build_id}",
        change.get() % 100
    )
}

/// The change index entry a build request implies, if it is for a change: a check of one of
/// its patchsets, or the post-merge build of the commit its submission made (so a change's
/// entries lead to what was built from it after it merged, too).
pub fn change_index_for(r: &BuildRequest) -> Option<String> {
    let (change, patchset) = match (&r.change, &r.patchset, &r.cause) {
        (Some(c), Some(p), _) => (*c, *p),
        (_, _, Some(crate::model::record::BuildCause::Merge { change, patchset })) => {
            (*change, *patchset)
        }
        _ => return None,
    };
    Some(change_index_path(&r.project, change, patchset, &r.build_id))
}

/// `index/chain/<n / 10000>/<n / 100 % 100>/<n % 100>`: the id of the commit with sequence
/// number `n` (the root commit is 0). Each commit writes the entry of its parent, so the chain
/// gives random access to history for bisection without walking it.
pub fn chain_path(sequence: u64) -> String {
    format!(
        "index/chain/{}/{:02}/{:02}",
        sequence / 10_000,
        (sequence / 100) % 100,
        sequence % 100
    )
}

/// The content of a chain entry: the commit and its root tree, so that bisection can look
/// paths up at that commit without reading the commit object (whose message may be large).
pub fn chain_entry(commit: &crate::git::ObjectId, tree: &crate::git::ObjectId) -> String {
    format!("commit {commit}\ntree {tree}\n")
}

/// Parses a chain entry into (commit, tree).
pub fn parse_chain_entry(bytes: &[u8]) -> Option<(crate::git::ObjectId, crate::git::ObjectId)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    let commit = lines.next()?.strip_prefix("commit ")?;
    let tree = lines.next()?.strip_prefix("tree ")?;
    if lines.next().is_some() {
        return None;
    }
    Some((
        crate::git::ObjectId::from_hex(commit.as_bytes()).ok()?,
        crate::git::ObjectId::from_hex(tree.as_bytes()).ok()?,
    ))
}

/// `KEYS/<fingerprint>.asc`.
pub fn key_path(fingerprint: &str) -> String {
    format!("KEYS/{fingerprint}.asc")
}

/// The canonical bytes of a record file: YAML, except attestations, which are JSON.
pub fn encode_record(record: &Record) -> Vec<u8> {
    match record {
        Record::Attestation(_) => {
            let mut v = serde_json::to_vec_pretty(record).expect("records always serialize");
            v.push(b'\n');
            v
        }
        _ => yaml_serde::to_string(record)
            .expect("records always serialize")
            .into_bytes(),
    }
}

/// What a path in the ledger tree is for; decides how `verify` checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathClass {
    /// `LEDGER`
    Meta,
    /// `KEYS/<fingerprint>.asc`
    Key(String),
    /// `builds/.../<id>/request.yaml`
    BuildRequest,
    /// `builds/.../<id>/result.yaml`
    BuildResult,
    /// `builds/.../<id>/landing.yaml`
    Landing,
    /// `index/landings/<2 hex>/<commit>`
    LandingIndex,
    /// `artifacts/sha256/<2>/<2>/<hex>.yaml` or `.../<hex>/rebuilt/<id>.yaml`
    Artifact,
    /// `artifacts/.../<hex>/promotions/<env>/<ts>-<h>.yaml`
    PromotionHistory,
    /// `attestations/...`
    Attestation,
    /// `artifacts/.../<hex>/refusals/<env>/<yyyymmdd>-<h>.yaml`
    Refusal,
    /// `artifacts/.../<hex>/expiries/<ts>-<h>.yaml`
    Expiry,
    /// `promotions/<env>/<image>.yaml`
    PromotionPointer,
    /// `freezes/<name>.yaml`
    FreezePointer,
    /// `freezes/<name>/<commit>-<state>.yaml`
    FreezeHistory,
    /// `index/builds/...`
    BuildIndex,
    /// `changes/...`
    ChangeIndex,
    /// `index/chain/...`
    Chain,
    /// Anything else: not allowed.
    Unknown,
}

/// Classifies a path by its shape alone; `verify` then checks the content against the path.
pub fn classify(path: &str) -> PathClass {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["LEDGER"] => PathClass::Meta,
        ["KEYS", name] => match name.strip_suffix(".asc") {
            Some(fpr) => PathClass::Key(fpr.to_owned()),
            None => PathClass::Unknown,
        },
        ["builds", _, _, _, _, _, "request.yaml"] => PathClass::BuildRequest,
        ["builds", _, _, _, _, _, "result.yaml"] => PathClass::BuildResult,
        ["builds", _, _, _, _, _, "landing.yaml"] => PathClass::Landing,
        ["index", "landings", _, _] => PathClass::LandingIndex,
        ["artifacts", "sha256", _, _, _, _, _] => PathClass::Artifact,
        ["artifacts", "sha256", _, _, _, _, _, "rebuilt", _] => PathClass::Artifact,
        ["artifacts", "sha256", _, _, _, _, _, "promotions", _, _] => PathClass::PromotionHistory,
        ["attestations", "sha256", _, _, _, _, _, _] => PathClass::Attestation,
        ["artifacts", "sha256", _, _, _, _, _, "expiries", _] => PathClass::Expiry,
        ["artifacts", "sha256", _, _, _, _, _, "refusals", _, _] => PathClass::Refusal,
        ["promotions", _, _, ..] => PathClass::PromotionPointer,
        ["freezes", _] => PathClass::FreezePointer,
        ["freezes", _, _] => PathClass::FreezeHistory,
        ["index", "builds", _, _, _, _, _] => PathClass::BuildIndex,
        ["index", "chain", _, _, _] => PathClass::Chain,
        ["changes", ..] if parts.len() >= 6 => PathClass::ChangeIndex,
        _ => PathClass::Unknown,
    }
}

/// The path a record must live at (for records whose path depends only on their content).
pub fn canonical_path(record: &Record, content: &[u8]) -> Option<String> {
    match record {
        Record::BuildRequest(r) => Some(format!(
            "{}/request.yaml",
            build_dir(r.requested_at, &r.build_id)
        )),
        Record::Attestation(a) => Some(attestation_path(a, content)),
        Record::Promotion(p) => Some(promotion_history(p, content)),
        Record::Freeze(f) => Some(freeze_history(f)),
        Record::Expiry(e) => Some(expiry_path(e, content)),
        Record::PromotionRefusal(r) => Some(refusal_path(r)),
        Record::BuildResult(_) | Record::Artifact(_) | Record::Landing(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_path_safe() {
        assert_eq!(
            predicate_slug("https://slsa.dev/provenance/v1"),
            "slsa.dev-provenance-v1"
        );
        assert_eq!(predicate_slug("///"), "predicate");
    }

    #[test]
    fn classification() {
        assert_eq!(classify("LEDGER"), PathClass::Meta);
        assert_eq!(
            classify("builds/2026/11/22/02/b1/request.yaml"),
            PathClass::BuildRequest
        );
        let d = format!("sha256:{}", "ab".repeat(32))
            .parse::<Digest>()
            .unwrap();
        assert_eq!(classify(&artifact_path(&d)), PathClass::Artifact);
        assert_eq!(chain_path(1_234_567), "index/chain/123/45/67");
        assert_eq!(classify(&chain_path(5)), PathClass::Chain);
        assert_eq!(
            classify("promotions/staging/releng/php.yaml"),
            PathClass::PromotionPointer
        );
        assert_eq!(classify("nonsense"), PathClass::Unknown);
        let id: BuildId = "b1".parse().unwrap();
        assert_eq!(classify(&build_index_path(&id)), PathClass::BuildIndex);
        let p: ProjectName = "mediawiki/core".parse().unwrap();
        let c = change_index_path(
            &p,
            ChangeNumber::try_from(4711).unwrap(),
            PatchsetNumber::try_from(3).unwrap(),
            &id,
        );
        assert_eq!(c, "changes/mediawiki/core/11/4711/3/b1");
        assert_eq!(classify(&c), PathClass::ChangeIndex);
    }
}
