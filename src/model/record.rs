//! The ledger's record kinds: what seakeeper remembers about builds, artifacts, attestations,
//! promotions and freezes.
//!
//! Each record is a plain struct that rejects unknown fields and wrong types when read, plus
//! [`Record::validate`] for the rules a type cannot express (a patchset needs a change, job
//! names are unique ...). The JSON Schemas in `state-schema/v1/` describe the same shapes for
//! people and editors; a test keeps the two in agreement.

use std::collections::HashSet;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::ids::{
    ArtifactKind, BuildId, BuildStatus, ChangeNumber, CommitId, Digest, EnvironmentName,
    FreezeName, FreezeState, ImageName, PatchsetNumber, PipelineKind, ProjectName, RefName,
    Timestamp, Trust,
};

/// A build was requested: what will be built, from which commits, with what trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildRequest {
    /// The build's id, derived from its content by the planner.
    pub build_id: BuildId,
    /// The pipeline that asked for it (`check`, `gate`, `post-merge`, `periodic`).
    pub pipeline: PipelineKind,
    /// The Gerrit project.
    pub project: ProjectName,
    /// The Gerrit change, when the build is for a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeNumber>,
    /// The patchset of that change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patchset: Option<PatchsetNumber>,
    /// The ref that was built (`refs/changes/11/4711/3`, `refs/heads/main`).
    #[serde(rename = "ref")]
    pub git_ref: RefName,
    /// The exact commit under test.
    pub source_commit: CommitId,
    /// The config repo commit whose layout planned this build.
    pub config_commit: CommitId,
    /// Trust level of the pipeline.
    pub trust: Trust,
    /// When the build was requested.
    pub requested_at: Timestamp,
    /// The names of the jobs the build runs.
    pub jobs: Vec<String>,
    /// What caused it beyond its pipeline and ref: the upstream build a dependent build
    /// follows, or the schedule tick of a periodic build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<BuildCause>,
}

/// Why a build was requested, when its ref alone does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum BuildCause {
    /// A post-merge build of a project that depends on one just built.
    Upstream {
        /// The upstream build.
        build_id: BuildId,
        /// Its project.
        project: ProjectName,
        /// The commit it built.
        commit: CommitId,
    },
    /// A post-merge build of the commit a Gerrit change's submission put on the branch (the
    /// change's current patchset, or the merge commit Gerrit made with it).
    Merge {
        /// The change.
        change: ChangeNumber,
        /// Its patchset that was merged.
        patchset: PatchsetNumber,
    },
    /// A gate build: the change's tested state is its branch's tip with every item ahead of it
    /// in the queue merged, then the change (the request's `source_commit`).
    Gate {
        /// The queue it waits in (`queue:<name>` or `project:<project>`).
        queue: String,
        /// The branch it lands on.
        branch: RefName,
        /// The branch tip the state starts from.
        base: CommitId,
        /// The change's own commit (its patchset's).
        change_commit: CommitId,
        /// The items ahead of it that its state holds, in order.
        #[serde(default)]
        ahead: Vec<GateItem>,
        /// When the change became eligible (its last required vote), by Gerrit's clock.
        eligible_since: Timestamp,
        /// How many rechecks were asked on the patchset before it entered.
        #[serde(default)]
        rechecks: u32,
        /// The votes that admitted it (`Code-Review+2 by bob`).
        votes: Vec<String>,
        /// The other projects its jobs require, each at the queue's speculative state of that
        /// project (its tip with the items ahead of this one merged).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        required: Vec<RequiredState>,
    },
    /// A check of a change whose `Depends-On:` names open changes of its project: it is tested
    /// on its branch tip with those changes merged, then itself (the request's
    /// `source_commit`).
    DependsOn {
        /// The branch tip the state starts from.
        base: CommitId,
        /// The change's own commit.
        change_commit: CommitId,
        /// The changes it depends on, merged in this order.
        ahead: Vec<GateItem>,
        /// The other projects whose changes it depends on, each at its branch tip with those
        /// changes merged (what jobs that `requires:` them check out).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        required: Vec<RequiredState>,
    },
    /// A periodic build at a schedule's tick.
    Schedule {
        /// The schedule's name in `schedules.yaml`.
        name: String,
        /// The tick it fired for.
        tick: Timestamp,
    },
}
/// An item ahead of a gate build's change in its queue.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateItem {
    /// Its project.
    pub project: ProjectName,
    /// Its change.
    pub change: ChangeNumber,
    /// Its patchset.
    pub patchset: PatchsetNumber,
    /// The patchset's commit.
    pub commit: CommitId,
    /// The speculative state once it was merged (the state the next item is merged onto).
    pub state: CommitId,
}

/// A project a gate build's jobs require, at the state they see it in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredState {
    /// The project.
    pub project: ProjectName,
    /// The commit.
    pub commit: CommitId,
}

/// One job's outcome in a build result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobResult {
    /// The job's name.
    pub name: String,
    /// How it ended.
    pub status: BuildStatus,
    /// How long it ran.
    pub duration_ms: u64,
    /// The digest of its log in the artifact store, when one was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_digest: Option<Digest>,
    /// The jobs of the build it needed (the build's DAG); empty for most jobs, and in results
    /// written before stages existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The image it ran in (`<repository>@sha256:...`), when a job it needed built that image
    /// in this build: the very digest the build then published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// An artifact named in a build result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactRef {
    /// Its content digest.
    pub digest: Digest,
    /// Its name (an image name or a file path).
    pub name: String,
    /// What it is.
    pub kind: ArtifactKind,
}

/// A build finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildResult {
    /// The build this is the result of; its request must already be in the ledger.
    pub build_id: BuildId,
    /// The overall outcome.
    pub status: BuildStatus,
    /// When the first job started.
    pub started_at: Timestamp,
    /// When the last job ended.
    pub finished_at: Timestamp,
    /// One entry per job.
    pub jobs: Vec<JobResult>,
    /// What the build produced.
    #[serde(default)]
    pub artifacts: Vec<ArtifactRef>,
}

/// An artifact a build produced, addressed by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Its content digest.
    pub digest: Digest,
    /// The build that produced it; its request must already be in the ledger.
    pub build_id: BuildId,
    /// Its name (an image name or a file path).
    pub name: String,
    /// What it is.
    pub kind: ArtifactKind,
    /// Its media type (`application/vnd.oci.image.manifest.v1+json`, `text/plain` ...).
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// One signature of a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsseSignature {
    /// The key id the signer names (may be empty).
    #[serde(default)]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// A DSSE envelope (<https://github.com/secure-systems-lab/dsse>).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsseEnvelope {
    /// The type of the payload, `application/vnd.in-toto+json` for in-toto statements.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload, base64.
    pub payload: String,
    /// At least one signature.
    pub signatures: Vec<DsseSignature>,
}

/// A signed statement about an artifact, for example SLSA provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attestation {
    /// The digest the statement is about.
    pub subject_digest: Digest,
    /// The in-toto predicate type, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// The signed envelope.
    pub envelope: DsseEnvelope,
}

/// An image digest entered an environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promotion {
    /// The environment it entered.
    pub environment: EnvironmentName,
    /// The image name.
    pub image: ImageName,
    /// The digest now running there.
    pub digest: Digest,
    /// The digest it replaced, if any.
    #[serde(default)]
    pub previous_digest: Option<Digest>,
    /// The registry it was copied from.
    pub from_registry: String,
    /// The registry it was copied to.
    pub to_registry: String,
    /// The config repo commit that asked for it.
    pub config_commit: CommitId,
    /// When the copy was verified at the target.
    pub promoted_at: Timestamp,
}

/// An artifact was deleted from a store by the retention policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expiry {
    /// The digest deleted.
    pub digest: Digest,
    /// The artifact's name (an image name, a file name).
    pub name: String,
    /// Where it was deleted from (`docker://host/repo`, `oci:DIR`).
    pub store: String,
    /// The retention rule that expired it, in words.
    pub rule: String,
    /// When it was deleted.
    pub expired_at: Timestamp,
}

/// A promotion the config asked for was refused, with why: the promoter's decision, kept for
/// auditors (written once a day per environment, image, digest and config commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionRefusal {
    /// The environment it was to enter.
    pub environment: EnvironmentName,
    /// The image it was asked for as.
    pub image: ImageName,
    /// The digest asked for.
    pub digest: Digest,
    /// Why not.
    pub reason: String,
    /// The config commit that asked for it.
    pub config_commit: CommitId,
    /// When it was refused.
    pub refused_at: Timestamp,
}

/// How the gate landed a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandedBy {
    /// A fast-forward push of the tested commit, by compare-and-swap on the old tip.
    Push,
    /// Gerrit's REST submit, fast-forward only, with the new tip checked.
    Submit,
}

/// The gate landed a change: the tested commit is now the branch's tip, bit for bit. Kept
/// beside its gate build's request and result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Landing {
    /// The gate build that tested it.
    pub build_id: BuildId,
    /// The project.
    pub project: ProjectName,
    /// The change.
    pub change: ChangeNumber,
    /// Its patchset.
    pub patchset: PatchsetNumber,
    /// The patchset's commit.
    pub change_commit: CommitId,
    /// The branch.
    pub branch: RefName,
    /// The tip before.
    pub old_tip: CommitId,
    /// The tip after: the commit the gate build tested.
    pub commit: CommitId,
    /// The votes that admitted the change.
    pub votes: Vec<String>,
    /// The config commit that planned the gate build.
    pub config_commit: CommitId,
    /// How it landed.
    pub method: LandedBy,
    /// When.
    pub landed_at: Timestamp,
}

/// A stop-the-line freeze was seen to start or end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// The freeze's name (its file name in the config repo).
    pub name: FreezeName,
    /// Whether it now holds.
    pub state: FreezeState,
    /// What it holds: `all`, `promote:<environment>`, `merge:<project glob>`.
    pub scope: Vec<String>,
    /// Why, in the words of whoever froze.
    pub reason: String,
    /// The config repo commit that made the transition.
    pub config_commit: CommitId,
    /// Who made that commit.
    pub author: String,
}

/// Any record the ledger holds. In files and on the import stream the kind is the `record` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// See [`BuildRequest`].
    BuildRequest(BuildRequest),
    /// See [`BuildResult`].
    BuildResult(BuildResult),
    /// See [`Artifact`].
    Artifact(Artifact),
    /// See [`Attestation`].
    Attestation(Attestation),
    /// See [`Promotion`].
    Promotion(Promotion),
    /// See [`Freeze`].
    Freeze(Freeze),
    /// See [`Expiry`].
    Expiry(Expiry),
    /// See [`PromotionRefusal`].
    PromotionRefusal(PromotionRefusal),
    /// See [`Landing`].
    Landing(Landing),
}

/// The kind of a record, as named in the `record` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    /// `build-request`
    BuildRequest,
    /// `build-result`
    BuildResult,
    /// `artifact`
    Artifact,
    /// `attestation`
    Attestation,
    /// `promotion`
    Promotion,
    /// `freeze`
    Freeze,
    /// `expiry`
    Expiry,
    /// `promotion-refusal`
    PromotionRefusal,
    /// `landing`
    Landing,
}

impl RecordKind {
    /// Every kind, in the order summaries list them.
    pub const ALL: [RecordKind; 9] = [
        RecordKind::BuildRequest,
        RecordKind::BuildResult,
        RecordKind::Artifact,
        RecordKind::Attestation,
        RecordKind::Promotion,
        RecordKind::Freeze,
        RecordKind::Expiry,
        RecordKind::PromotionRefusal,
        RecordKind::Landing,
    ];

    /// The name used in the `record` field and the schema file names.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::BuildRequest => "build-request",
            RecordKind::BuildResult => "build-result",
            RecordKind::Artifact => "artifact",
            RecordKind::Attestation => "attestation",
            RecordKind::Promotion => "promotion",
            RecordKind::Freeze => "freeze",
            RecordKind::Expiry => "expiry",
            RecordKind::PromotionRefusal => "promotion-refusal",
            RecordKind::Landing => "landing",
        }
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("`{field}` must not be empty"));
    }
    if value.len() > max {
        return Err(format!("`{field}` is longer than {max} bytes"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!("`{field}` contains control characters"));
    }
    Ok(())
}

fn check_token(field: &str, value: &str, max: usize) -> Result<(), String> {
    check_text(field, value, max)?;
    if value.chars().any(char::is_whitespace) {
        return Err(format!("`{field}` must not contain white space"));
    }
    Ok(())
}

fn check_job_names<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = HashSet::new();
    for name in names {
        check_token("jobs[].name", name, 128)?;
        if !seen.insert(name) {
            return Err(format!("job `{name}` is listed twice"));
        }
    }
    Ok(())
}

impl Record {
    /// The kind of this record.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::BuildRequest(_) => RecordKind::BuildRequest,
            Record::BuildResult(_) => RecordKind::BuildResult,
            Record::Artifact(_) => RecordKind::Artifact,
            Record::Attestation(_) => RecordKind::Attestation,
            Record::Promotion(_) => RecordKind::Promotion,
            Record::Freeze(_) => RecordKind::Freeze,
            Record::Expiry(_) => RecordKind::Expiry,
            Record::PromotionRefusal(_) => RecordKind::PromotionRefusal,
            Record::Landing(_) => RecordKind::Landing,
        }
    }

    /// The build this record belongs to, if any.
    pub fn build_id(&self) -> Option<&BuildId> {
        match self {
            Record::BuildRequest(r) => Some(&r.build_id),
            Record::BuildResult(r) => Some(&r.build_id),
            Record::Artifact(r) => Some(&r.build_id),
            Record::Landing(r) => Some(&r.build_id),
            _ => None,
        }
    }

    /// Checks the rules that the types alone do not express. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Record::BuildRequest(r) => {
                if r.patchset.is_some() && r.change.is_none() {
                    return Err("`patchset` is given without `change`".into());
                }
                check_job_names(r.jobs.iter().map(String::as_str))
            }
            Record::BuildResult(r) => {
                if r.finished_at < r.started_at {
                    return Err("`finished_at` is before `started_at`".into());
                }
                check_job_names(r.jobs.iter().map(|j| j.name.as_str()))?;
                for a in &r.artifacts {
                    check_text("artifacts[].name", &a.name, 1024)?;
                }
                Ok(())
            }
            Record::Artifact(r) => {
                check_text("name", &r.name, 1024)?;
                check_token("media_type", &r.media_type, 255)
            }
            Record::Attestation(r) => {
                check_token("predicate_type", &r.predicate_type, 1024)?;
                check_envelope(r)
            }
            Record::Promotion(r) => {
                check_token("from_registry", &r.from_registry, 512)?;
                check_token("to_registry", &r.to_registry, 512)?;
                if r.previous_digest.as_ref() == Some(&r.digest) {
                    return Err("`previous_digest` equals `digest`: nothing was promoted".into());
                }
                Ok(())
            }
            Record::PromotionRefusal(r) => check_text("reason", &r.reason, 64 * 1024),
            Record::Landing(r) => {
                if r.old_tip == r.commit {
                    return Err("`commit` equals `old_tip`: nothing landed".into());
                }
                if !r.branch.as_str().starts_with("refs/heads/") {
                    return Err("`branch` must be a `refs/heads/` branch".into());
                }
                for v in &r.votes {
                    check_text("votes[]", v, 1024)?;
                }
                Ok(())
            }
            Record::Expiry(r) => {
                check_text("name", &r.name, 1024)?;
                check_token("store", &r.store, 1024)?;
                check_text("rule", &r.rule, 1024)
            }
            Record::Freeze(r) => {
                check_text("reason", &r.reason, 64 * 1024)?;
                check_text("author", &r.author, 1024)?;
                if r.scope.is_empty() {
                    return Err("`scope` must name at least one scope".into());
                }
                for s in &r.scope {
                    let ok = s.trim() == s
                        && match super::FreezeScope::parse(s) {
                            Ok(super::FreezeScope::All) => true,
                            Ok(super::FreezeScope::Promote(_)) => true,
                            Ok(super::FreezeScope::Merge { project, branch }) => {
                                check_token("scope[]", &project, 255).is_ok()
                                    && branch
                                        .is_none_or(|b| check_token("scope[]", &b, 255).is_ok())
                            }
                            Err(_) => false,
                        };
                    if !ok {
                        return Err(format!(
                            "scope `{s}` is not `all`, `promote:<environment>` or `merge:<project glob>`"
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

/// The in-toto Statement v1 fields that must agree with the attestation record.
#[derive(Deserialize)]
struct StatementHead {
    #[serde(rename = "_type")]
    kind: String,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    subject: Vec<StatementSubject>,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// The payload type of in-toto statements in DSSE envelopes.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

fn check_envelope(r: &Attestation) -> Result<(), String> {
    let env = &r.envelope;
    if env.signatures.is_empty() {
        return Err("`envelope.signatures` is empty: the envelope is not signed".into());
    }
    let engine = base64::engine::general_purpose::STANDARD;
    for s in &env.signatures {
        engine
            .decode(&s.sig)
            .map_err(|e| format!("`envelope.signatures[].sig` is not base64: {e}"))?;
    }
    let payload = engine
        .decode(&env.payload)
        .map_err(|e| format!("`envelope.payload` is not base64: {e}"))?;
    if env.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Ok(());
    }
    let head: StatementHead = serde_json::from_slice(&payload)
        .map_err(|e| format!("`envelope.payload` is not an in-toto statement: {e}"))?;
    if !head.kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!(
            "`envelope.payload` has `_type` {:?}, not an in-toto Statement",
            head.kind
        ));
    }
    if head.predicate_type != r.predicate_type {
        return Err(format!(
            "`predicate_type` is {:?} but the statement says {:?}",
            r.predicate_type, head.predicate_type
        ));
    }
    let hex = r.subject_digest.hex();
    if !head
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").is_some_and(|d| d == hex))
    {
        return Err("the statement's subjects do not include `subject_digest`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_json() -> serde_json::Value {
        serde_json::json!({
            "record": "build-request",
            "build_id": "b1",
            "pipeline": "check",
            "project": "mediawiki/core",
            "change": 4711,
            "patchset": 3,
            "ref": "refs/changes/11/4711/3",
            "source_commit": "1".repeat(40),
            "config_commit": "2".repeat(40),
            "trust": "untrusted",
            "requested_at": "2026-11-22T02:30:00Z",
            "jobs": ["lint", "unit"]
        })
    }

    #[test]
    fn request_round_trips_through_yaml() {
        let r: Record = serde_json::from_value(request_json()).unwrap();
        r.validate().unwrap();
        let yaml = yaml_serde::to_string(&r).unwrap();
        assert!(yaml.starts_with("record: build-request\n"), "{yaml}");
        let back: Record = yaml_serde::from_str(&yaml).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_errors() {
        let mut v = request_json();
        v["colour"] = "blue".into();
        let err = serde_json::from_value::<Record>(v).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let mut v = request_json();
        v["change"] = "4711".into();
        assert!(serde_json::from_value::<Record>(v).is_err());
        let mut v = request_json();
        v["record"] = "build-requestx".into();
        assert!(serde_json::from_value::<Record>(v).is_err());
    }

    #[test]
    fn patchset_needs_change() {
        let mut v = request_json();
        v.as_object_mut().unwrap().remove("change");
        let r: Record = serde_json::from_value(v).unwrap();
        assert!(r.validate().unwrap_err().contains("patchset"));
    }
}
