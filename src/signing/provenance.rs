//! in-toto Statement v1 with a SLSA provenance v1 predicate, for a trusted build's artifact, and
//! a promotion statement.

use serde_json::{Value, json};

use crate::model::{Digest, Trust};

/// The predicate type of SLSA provenance v1.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
/// seakeeper's build type.
pub const BUILD_TYPE: &str = "https://seakeeper.dev/build/v1";
/// The predicate type of a promotion.
pub const PROMOTION_V1: &str = "https://seakeeper.dev/promotion/v1";

/// The builder id for a trust level: a distinct id per level, so a verifier can demand trusted.
pub fn builder_id(trust: Trust) -> String {
    format!("https://seakeeper.dev/builders/{}", trust.as_str())
}

/// What a provenance statement says.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// The artifact's name, e.g. `registry.example.org/mediawiki`.
    pub subject_name: String,
    /// Its digest.
    pub digest: Digest,
    /// The trust level of the build.
    pub trust: Trust,
    /// The build id (the ledger's).
    pub build_id: String,
    /// The Gerrit project.
    pub project: String,
    /// The change and patchset, if the build was of a change.
    pub change: Option<(u32, u32)>,
    /// The ref built (`refs/heads/main`).
    pub git_ref: String,
    /// The source repository URL.
    pub source: String,
    /// The source commit.
    pub source_commit: String,
    /// The config repo commit the build ran under.
    pub config_commit: String,
    /// The config repo URL.
    pub config_repo: String,
    /// The base image, when the artifact is an image.
    pub base_image: Option<(String, Digest)>,
    /// Logs and other byproducts: (name, digest).
    pub byproducts: Vec<(String, Digest)>,
    /// RFC 3339 start and end.
    pub started: String,
    /// End.
    pub finished: String,
}

/// Adds to a provenance statement the upstream build a dependent build followed: its
/// source (`source` at `git_ref`), the commit it built and its build id.
pub fn add_upstream(
    statement: &mut Value,
    source: &str,
    git_ref: &str,
    commit: &str,
    build_id: &str,
) {
    if let Some(deps) =
        statement["predicate"]["buildDefinition"]["resolvedDependencies"].as_array_mut()
    {
        deps.push(json!({
            "uri": format!("{}@{}", git_uri(source), git_ref),
            "digest": {"gitCommit": commit},
            "name": "upstream",
            "annotations": {"buildId": build_id},
        }));
    }
}

/// A git source as an SPDX-style download location: `git+https://host/repo`, and for a path
/// on this machine `git+file:///path` (never `git+/path`).
pub fn git_uri(source: &str) -> String {
    if source.contains("://") {
        format!("git+{source}")
    } else if source.starts_with('/') {
        format!("git+file://{source}")
    } else {
        let absolute = std::path::absolute(source)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| source.to_owned());
        format!("git+file://{absolute}")
    }
}

fn hex_of(d: &Digest) -> Value {
    json!({"sha256": d.hex()})
}

/// The statement (JSON; keys sorted).
pub fn statement(p: &Provenance) -> Value {
    let mut external = json!({
        "project": p.project,
        "ref": p.git_ref,
        "source": p.source,
    });
    if let Some((c, ps)) = p.change {
        external["change"] = json!(c);
        external["patchset"] = json!(ps);
    }
    let mut deps = vec![
        json!({"uri": format!("{}@{}", git_uri(&p.source), p.git_ref), "digest": {"gitCommit": p.source_commit}}),
        json!({"uri": git_uri(&p.config_repo), "digest": {"gitCommit": p.config_commit}, "name": "config"}),
    ];

    if let Some((name, d)) = &p.base_image {
        deps.push(json!({"uri": name, "digest": hex_of(d), "name": "base-image"}));
    }
    let byproducts: Vec<Value> = p
        .byproducts
        .iter()
        .map(|(n, d)| json!({"name": n, "digest": hex_of(d)}))
        .collect();
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": p.subject_name, "digest": hex_of(&p.digest)}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": external,
                "internalParameters": {"trust": p.trust.as_str()},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder_id(p.trust)},
                "metadata": {"invocationId": p.build_id, "startedOn": p.started, "finishedOn": p.finished},
                "byproducts": byproducts,
            },
        },
    })
}

/// A Debian package as `name:arch version` (what `dpkg` says) as a package URL
/// (`pkg:deb/debian/name@version?arch=arch`); `None` for anything else.
fn purl(package: &str) -> Option<String> {
    let (name, version) = package.split_once(' ')?;
    let (name, arch) = name.split_once(':').unwrap_or((name, "all"));
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.~:".contains(&b))
    };
    if !plain(name) || !plain(version) || !plain(arch) || version.contains(' ') {
        return None;
    }
    let version = version.replace(':', "%3A");
    Some(format!("pkg:deb/debian/{name}@{version}?arch={arch}"))
}

/// The build type of seakeeper's own image (`seakeeper image self`).
pub const SELF_IMAGE_BUILD_TYPE: &str = "https://seakeeper.dev/image-self/v1";

/// The SLSA provenance of seakeeper's own image: `name@digest` was assembled by seakeeper
/// `version` from `inputs` (path in the image, where it comes from, SHA-256 hex), as the lock
/// whose SHA-256 is `lock` pinned them. No time or host is recorded, so the statement is as
/// reproducible as the image.
pub fn self_image_statement(
    name: &str,
    digest: &Digest,
    inputs: &[(String, String, String)],
    lock: &str,
    version: &str,
) -> Value {
    let deps: Vec<Value> = inputs
        .iter()
        .map(|(path, from, sha)| match purl(from) {
            Some(uri) => json!({"name": path, "uri": uri, "digest": {"sha256": sha},
                "annotations": {"source": from}}),
            None => {
                json!({"name": path, "digest": {"sha256": sha}, "annotations": {"source": from}})
            }
        })
        .collect();
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": name, "digest": hex_of(digest)}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": SELF_IMAGE_BUILD_TYPE,
                "externalParameters": {"lock": {"sha256": lock}, "name": name},
                "internalParameters": {"seakeeper": version},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder_id(Trust::Trusted), "version": {"seakeeper": version}},
                "metadata": {"invocationId": format!("image-self:{}", digest.hex())},
            },
        },
    })
}

/// What a verified build attestation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBuild {
    /// The names of the subjects that carry the digest (e.g. `registry.example.org/api`).
    pub subject_names: Vec<String>,
}

/// Checks a build attestation before anything is promoted on its word: the envelope is
/// signed by one of `builder_keys` (the Ed25519 keys of certs holding the builder role), its
/// statement is SLSA provenance v1 about `digest`, made by the trusted builder. Returns the
/// subject names given to `digest`.
pub fn verify_build_attestation(
    envelope: &crate::model::record::DsseEnvelope,
    builder_keys: &[[u8; 32]],
    digest: &Digest,
) -> Result<VerifiedBuild, String> {
    if builder_keys.is_empty() {
        return Err("no trusted key holds the builder role".into());
    }
    let payload = super::dsse::verify(envelope, builder_keys)
        .map_err(|e| format!("its signature does not verify with a builder key: {e}"))?;
    let statement: Value =
        serde_json::from_slice(&payload).map_err(|e| format!("its payload is not JSON: {e}"))?;
    if statement["predicateType"].as_str() != Some(SLSA_PROVENANCE_V1) {
        return Err(format!(
            "its predicate is {}, not SLSA provenance v1",
            statement["predicateType"]
        ));
    }
    let builder = statement["predicate"]["runDetails"]["builder"]["id"]
        .as_str()
        .unwrap_or_default();
    if builder != builder_id(Trust::Trusted) {
        return Err(format!(
            "it was built by {builder:?}, not the trusted builder"
        ));
    }
    let subject_names: Vec<String> = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["digest"]["sha256"].as_str() == Some(digest.hex()))
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    if subject_names.is_empty() {
        return Err(format!("its statement is not about {digest}"));
    }
    Ok(VerifiedBuild { subject_names })
}

/// Whether an attestation subject name is the image `image`: the name itself, or a registry
/// repository ending in `/<image>` (subjects carry `<repository prefix><image>`).
pub fn subject_names_image(subject: &str, image: &str) -> bool {
    subject == image
        || subject
            .strip_suffix(image)
            .is_some_and(|head| head.ends_with('/'))
}

/// The subjects' digests of a statement, and its predicate type.
pub fn subjects(statement: &Value) -> (Vec<String>, String) {
    let digests = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| {
            s["digest"]["sha256"]
                .as_str()
                .map(|h| format!("sha256:{h}"))
        })
        .collect();
    (
        digests,
        statement["predicateType"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// What a promotion statement says.
#[derive(Debug, Clone)]
pub struct PromotionFacts {
    /// The image name.
    pub image: String,
    /// Its digest.
    pub digest: Digest,
    /// The environment it left (none: straight from the build).
    pub from_environment: Option<String>,
    /// The environment it entered.
    pub to_environment: String,
    /// Where it was copied from and to (`host/repo`).
    pub from_registry: String,
    /// To.
    pub to_registry: String,
    /// The config repo commit whose `promotions/` asked for it.
    pub config_commit: String,
    /// The ledger commit holding the build attestation it relied on.
    pub ledger_commit: String,
    /// When (RFC 3339).
    pub at: String,
}

/// A promotion statement (in-toto Statement v1, seakeeper's promotion predicate).
pub fn promotion_statement(p: &PromotionFacts) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": p.image, "digest": hex_of(&p.digest)}],
        "predicateType": PROMOTION_V1,
        "predicate": {
            "from": {"environment": p.from_environment, "registry": p.from_registry},
            "to": {"environment": p.to_environment, "registry": p.to_registry},
            "configCommit": p.config_commit,
            "ledgerCommit": p.ledger_commit,
            "promotedOn": p.at,
            "promoter": {"id": builder_id(Trust::Trusted)},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_statements_name_both_sides_and_the_commits() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let s = promotion_statement(&PromotionFacts {
            image: "mediawiki".into(),
            digest: d.clone(),
            from_environment: Some("staging".into()),
            to_environment: "production".into(),
            from_registry: "staging.example.org/mw".into(),
            to_registry: "prod.example.org/mw".into(),
            config_commit: "1".repeat(40),
            ledger_commit: "2".repeat(40),
            at: "2026-11-22T06:00:00Z".into(),
        });
        let (subjects, predicate) = subjects(&s);
        assert_eq!(subjects, vec![d.to_string()]);
        assert_eq!(predicate, PROMOTION_V1);
        assert_eq!(s["predicate"]["to"]["environment"], "production");
        assert_eq!(s["predicate"]["ledgerCommit"], "2".repeat(40));
    }
}
