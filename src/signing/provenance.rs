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
        json!({"uri": format!("git+{}@{}", p.source, p.git_ref), "digest": {"gitCommit": p.source_commit}}),
        json!({"uri": format!("git+{}", p.config_repo), "digest": {"gitCommit": p.config_commit}, "name": "config"}),
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
