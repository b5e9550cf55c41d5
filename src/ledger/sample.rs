//! Deterministic sample records, for the demo, tests and benchmarks: builds of a few
//! Wikimedia-like projects, each with a request, a result, an image and a log artifact and a
//! provenance attestation, and a promotion of every tenth image.
//!
//! The attestations' DSSE signatures are placeholders (sample data is not signed by a CI key);
//! everything else is shaped exactly like real records.

use base64::Engine as _;

use crate::model::{
    Artifact, ArtifactKind, ArtifactRef, Attestation, BuildRequest, BuildResult, BuildStatus,
    Digest, JobResult, Promotion, Record, Timestamp, Trust,
    record::{DsseEnvelope, DsseSignature, IN_TOTO_PAYLOAD_TYPE},
};

const PROJECTS: [&str; 5] = [
    "mediawiki/core",
    "mediawiki/extensions/Cite",
    "mediawiki/extensions/ParserFunctions",
    "operations/software/thumbor",
    "releng/blubber",
];

fn commit_of(seed: &str) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(seed.as_bytes()))
}

/// The records of build number `n` (0-based), in the order they must be written.
pub fn build_records(n: u64) -> Vec<Record> {
    let project = PROJECTS[(n % PROJECTS.len() as u64) as usize];
    let build_id = format!("b{n:08}");
    let base = 1_795_000_000 + (n as i64) * 10;
    let at = |s: i64| Timestamp::from_second(base + s).expect("sample times are in range");
    let change = 100_000 + n / 3;
    let patchset = n % 3 + 1;
    let trusted = n.is_multiple_of(4);
    let pipeline = if trusted { "post-merge" } else { "check" };
    let git_ref = if trusted {
        "refs/heads/main".to_owned()
    } else {
        format!("refs/changes/{:02}/{change}/{patchset}", change % 100)
    };
    let image = Digest::of(format!("image {n}").as_bytes());
    let log = Digest::of(format!("log {n}").as_bytes());
    let image_name = project.rsplit('/').next().unwrap_or(project).to_lowercase();
    let request = BuildRequest {
        build_id: build_id.parse().expect("sample ids are valid"),
        pipeline: crate::model::PipelineKind::from_name(pipeline).expect("a pipeline"),
        project: project.parse().expect("valid"),
        change: (!trusted).then(|| change.try_into().expect("valid")),
        patchset: (!trusted).then(|| patchset.try_into().expect("valid")),
        git_ref: git_ref.parse().expect("valid"),
        source_commit: commit_of(&format!("source {n}")).parse().expect("valid"),
        config_commit: commit_of(&format!("config {}", n / 1000))
            .parse()
            .expect("valid"),
        trust: if trusted {
            Trust::Trusted
        } else {
            Trust::Untrusted
        },
        requested_at: at(0),
        jobs: vec!["lint".into(), "test".into(), "build".into()],
        cause: None,
    };
    let status = if n % 17 == 5 {
        BuildStatus::Failure
    } else {
        BuildStatus::Success
    };
    let result = BuildResult {
        build_id: request.build_id.clone(),
        status,
        started_at: at(1),
        finished_at: at(9),
        jobs: ["lint", "test", "build"]
            .iter()
            .map(|j| JobResult {
                name: (*j).to_owned(),
                status: if *j == "test" {
                    status
                } else {
                    BuildStatus::Success
                },
                duration_ms: 1000 + (n % 997) * 3,
                log_digest: Some(log.clone()),
                needs: Vec::new(),
                image: None,
            })
            .collect(),
        artifacts: vec![
            ArtifactRef {
                digest: image.clone(),
                name: image_name.clone(),
                kind: ArtifactKind::Image,
            },
            ArtifactRef {
                digest: log.clone(),
                name: "build.log".into(),
                kind: ArtifactKind::Log,
            },
        ],
    };
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": image_name, "digest": {"sha256": image.hex()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://seakeeper.dev/build/v1",
                "externalParameters": {"project": project, "ref": git_ref},
                "resolvedDependencies": [{"uri": format!("git+https://gerrit.example.org/{project}"), "digest": {"gitCommit": request.source_commit.to_string()}}]
            },
            "runDetails": {"builder": {"id": format!("https://seakeeper.dev/builder/{}", request.trust.as_str())}}
        }
    });
    let b64 = base64::engine::general_purpose::STANDARD;
    let attestation = Attestation {
        subject_digest: image.clone(),
        predicate_type: "https://slsa.dev/provenance/v1".into(),
        envelope: DsseEnvelope {
            payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
            payload: b64.encode(statement.to_string()),
            signatures: vec![DsseSignature {
                keyid: "sample".into(),
                sig: b64.encode([n as u8; 64]),
            }],
        },
    };
    let mut out = vec![
        Record::BuildRequest(request.clone()),
        Record::BuildResult(result),
        Record::Artifact(Artifact {
            digest: image.clone(),
            build_id: request.build_id.clone(),
            name: image_name.clone(),
            kind: ArtifactKind::Image,
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1500 + n % 1000,
        }),
        Record::Artifact(Artifact {
            digest: log,
            build_id: request.build_id.clone(),
            name: "build.log".into(),
            kind: ArtifactKind::Log,
            media_type: "text/plain".into(),
            size: 20_000 + n % 5000,
        }),
        Record::Attestation(attestation),
    ];
    if trusted && n.is_multiple_of(20) {
        out.push(Record::Promotion(Promotion {
            environment: "staging".parse().expect("valid"),
            image: image_name.parse().expect("valid"),
            digest: image,
            previous_digest: (n >= 20).then(|| Digest::of(format!("image {}", n - 20).as_bytes())),
            from_registry: "registry.testing.example.org".into(),
            to_registry: "registry.staging.example.org".into(),
            config_commit: request.config_commit.clone(),
            promoted_at: at(30),
        }));
    }
    out
}

/// At least `count` records: whole builds from build `first` on.
pub fn records(first: u64, count: usize) -> Vec<Record> {
    let mut out = Vec::with_capacity(count + 8);
    let mut n = first;
    while out.len() < count {
        out.extend(build_records(n));
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_records_are_valid() {
        for r in records(0, 200) {
            r.validate().unwrap_or_else(|e| panic!("{r:?}: {e}"));
        }
    }
}
