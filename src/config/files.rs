//! The shapes of the config repo's files, as written by people. Unknown keys and wrong types
//! are errors; rules that span files are checked in `load`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Digest, EnvironmentName, ImageName, ProjectName, Timestamp};

/// `seakeeper.yaml`: connections and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where seakeeper's pages are served; Gerrit comments link here.
    pub public_url: String,
    /// The Gerrit server, if seakeeper reports to one.
    #[serde(default)]
    pub gerrit: Option<GerritSettings>,
    /// Where the ledger is replicated.
    #[serde(default)]
    pub ledger: Option<LedgerSettings>,
    /// Registries by name, used by environments.
    #[serde(default)]
    pub registries: BTreeMap<String, RegistrySettings>,
    /// How jobs run.
    #[serde(default)]
    pub executor: ExecutorSettings,
    /// The gate: its queues' windows, the votes that admit a change, how it lands.
    #[serde(default)]
    pub gate: GateSettings,
}

/// `gate:` in `seakeeper.yaml`: Zuul's dependent pipeline defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    /// How many items of a queue are tested at once, at first: grows by one on each landing,
    /// halves on each failure.
    #[serde(default = "default_window")]
    pub window: u32,
    /// The window never shrinks below this.
    #[serde(default = "default_window_floor")]
    pub window_floor: u32,
    /// The votes a change needs to enter the gate (every one of them).
    #[serde(default = "default_require")]
    pub require: Vec<VoteRequirement>,
    /// How a tested change lands.
    #[serde(default)]
    pub land: LandMethod,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            window: default_window(),
            window_floor: default_window_floor(),
            require: default_require(),
            land: LandMethod::default(),
        }
    }
}

fn default_window() -> u32 {
    20
}

fn default_window_floor() -> u32 {
    3
}

fn default_require() -> Vec<VoteRequirement> {
    vec![VoteRequirement {
        label: "Code-Review".into(),
        value: 2,
    }]
}

/// A vote a change needs: someone gave `label` at least `value`, and nobody vetoed it (gave
/// `-value` or less), as Gerrit's `MaxWithBlock` rule reads a label.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct VoteRequirement {
    /// `Code-Review`, `Verified`, ...
    pub label: String,
    /// The least value that admits (positive).
    pub value: i32,
}

/// How the gate lands a tested change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LandMethod {
    /// seakeeper pushes the tested commit to the branch as a fast-forward, by compare-and-swap
    /// on the old tip; Gerrit closes the change as merged.
    #[default]
    Push,
    /// seakeeper submits through Gerrit's REST API (the project must be fast-forward only),
    /// then checks that the branch tip is the tested commit.
    Submit,
}

/// `gate:` in a project file: what differs from `seakeeper.yaml`'s.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectGate {
    /// The votes this project's changes need (instead of the global ones).
    #[serde(default)]
    pub require: Option<Vec<VoteRequirement>>,
    /// How this project's changes land.
    #[serde(default)]
    pub land: Option<LandMethod>,
}

/// The Gerrit connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GerritSettings {
    /// `https://gerrit.example.org`.
    pub url: String,
    /// The account seakeeper uses (credentials live in the secrets file, not here).
    #[serde(default)]
    pub user: Option<String>,
    /// The command that prints `gerrit stream-events` lines.
    #[serde(default)]
    pub stream_command: Option<String>,
    /// Whether to post reviews (off: results only on stdout and in the ledger).
    #[serde(default = "yes")]
    pub report: bool,
}

fn yes() -> bool {
    true
}

/// Ledger replication.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// The remote the ledger is pushed to after each write.
    #[serde(default)]
    pub remote: Option<String>,
}

/// One registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// `https://host[:port]`, `http://127.0.0.1:port` (plain HTTP only on loopback), or
    /// `oci:<directory>` for an OCI image layout.
    pub url: String,
}

/// Which executor runs jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    /// Locally, in a sandbox (the embedded default).
    #[default]
    Local,
    /// As Kubernetes Jobs.
    Kubernetes,
}

/// Executor defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSettings {
    /// Which executor.
    #[serde(default)]
    pub kind: ExecutorKind,
    /// Jobs at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Namespace per trust level (Kubernetes).
    #[serde(default)]
    pub namespaces: Namespaces,
    /// The Kubernetes PriorityClass of each pipeline's pods (the classes are the cluster's;
    /// the order jobs are admitted in is `policies/limits.yaml`'s `priorities` on both
    /// executors).
    #[serde(default)]
    pub priority_classes: BTreeMap<PipelineKind, String>,
    /// seakeeper's own image (Kubernetes), by digest: the fetch and collect containers of every
    /// Job run it (`seakeeper image self` builds it). Required with `kind: kubernetes`; a tag
    /// is refused.
    #[serde(default)]
    pub seakeeper_image: Option<String>,
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            kind: ExecutorKind::Local,
            concurrency: default_concurrency(),
            namespaces: Namespaces::default(),
            priority_classes: BTreeMap::new(),
            seakeeper_image: None,
        }
    }
}

fn default_concurrency() -> u32 {
    4
}

/// Kubernetes namespaces per trust level.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// For trusted jobs.
    #[serde(default = "trusted_ns")]
    pub trusted: String,
    /// For untrusted jobs.
    #[serde(default = "untrusted_ns")]
    pub untrusted: String,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            trusted: trusted_ns(),
            untrusted: untrusted_ns(),
        }
    }
}

fn trusted_ns() -> String {
    "seakeeper-trusted".into()
}

fn untrusted_ns() -> String {
    "seakeeper-untrusted".into()
}

/// `environments.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentsFile {
    /// In promotion order.
    pub environments: Vec<EnvironmentSpec>,
}

/// One stage images move through.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Its name.
    pub name: EnvironmentName,
    /// The registry (a name from `seakeeper.yaml`).
    pub registry: String,
    /// Prefix of repositories in that registry, e.g. `wikimedia/`.
    #[serde(default)]
    pub repository_prefix: String,
}

pub use crate::model::PipelineKind;

fn default_pipelines() -> Vec<PipelineKind> {
    vec![
        PipelineKind::Check,
        PipelineKind::Gate,
        PipelineKind::PostMerge,
    ]
}

fn default_branches() -> Vec<String> {
    vec!["main".into()]
}

/// `projects/<gerrit project>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// The gate queue shared with related projects (a repo group).
    #[serde(default)]
    pub queue: Option<String>,
    /// Pipelines the project takes part in.
    #[serde(default = "default_pipelines")]
    pub pipelines: Vec<PipelineKind>,
    /// Projects whose merges trigger this project's post-merge builds.
    #[serde(default)]
    pub depends_on: Vec<ProjectName>,
    /// Images the project produces.
    #[serde(default)]
    pub images: Vec<ImageName>,
    /// Branches seakeeper watches.
    #[serde(default = "default_branches")]
    pub branches: Vec<String>,
    /// How the gate admits and lands this project's changes.
    #[serde(default)]
    pub gate: ProjectGate,
}

/// `promotions/<environment>.yaml`: the digest each image should have there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionsFile {
    /// Image name to digest.
    #[serde(default)]
    pub images: BTreeMap<ImageName, Digest>,
}

/// `freezes/<name>.yaml`: a stop-the-line flag, active while the file exists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeFile {
    /// `all`, `promote:<environment>` or `merge:<project glob>`.
    pub scope: Vec<String>,
    /// Why; shown wherever the freeze holds something.
    pub reason: String,
    /// A ticket, e.g. `T12345`.
    #[serde(default)]
    pub ticket: Option<String>,
    /// When the freeze stops holding on its own.
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

/// `keys/<name>.yaml`: the roles of the cert `keys/<name>.asc`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRolesFile {
    /// What the key may sign: `ledger`, `builder`, `promoter`.
    pub roles: std::collections::BTreeSet<crate::model::KeyRole>,
}

/// `schedules.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulesFile {
    /// Periodic builds.
    #[serde(default)]
    pub schedules: Vec<Schedule>,
}

/// One periodic build.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A name, unique in the file.
    pub name: String,
    /// When, in cron syntax (UTC).
    pub cron: String,
    /// Which project.
    pub project: ProjectName,
    /// Which branch.
    #[serde(default = "main_branch")]
    pub branch: String,
}

fn main_branch() -> String {
    "main".into()
}

/// A job, as written in a project's `.pipeline/config.yaml` or in `templates/<name>.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A template from the config repo whose fields this job starts from.
    #[serde(default, rename = "use")]
    pub template: Option<String>,
    /// The image the steps run in: a reference (pinned by digest in trusted pipelines), or
    /// `{from: <job>}`, an image a job it `needs` assembled in the same build.
    #[serde(default)]
    pub image: Option<JobImage>,
    /// Shell commands, run in order.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Hard time limit.
    #[serde(default)]
    pub timeout: Option<crate::model::Duration>,
    /// Resources requested.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Services started beside the job (databases for tests).
    #[serde(default)]
    pub services: Vec<Service>,
    /// Secrets by name (trusted pipelines only).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Whether the job needs the network (untrusted jobs have none unless they say so).
    #[serde(default)]
    pub network: bool,
    /// What the job leaves behind.
    #[serde(default)]
    pub outputs: Option<Outputs>,
    /// Other projects the job needs beside its own: each is checked out under
    /// `.seakeeper/required/<project>` in the workspace, at its branch's tip (check) or at the
    /// gate queue's speculative state of that project (gate).
    #[serde(default)]
    pub requires: Vec<ProjectName>,
    /// Dependency caches: a workspace directory restored before the job and saved after it
    /// succeeds, keyed by the content of the files named.
    #[serde(default)]
    pub caches: Vec<Cache>,
    /// Jobs of the same pipeline that must succeed before this one starts; their output files
    /// are its inputs, under `.seakeeper/inputs/<job>/` in its workspace.
    #[serde(default)]
    pub needs: Vec<String>,
}

/// A dependency cache (`caches:` in a job).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// The directory, relative to the workspace.
    pub path: String,
    /// The files whose content keys it, relative to the workspace.
    pub key: Vec<String>,
}

/// A job's `image:`: a reference such as `registry.example.org/ci@sha256:...`, or
/// `{from: <job>, name: <image>}`, an image that a job it needs assembled from its outputs in
/// the same build (`name` may be left out when that job declares one image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobImage {
    /// An image reference.
    Reference(String),
    /// An image built by another job of the build.
    Built(BuiltImage),
}

/// `image: {from: <job>, name: <image>}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltImage {
    /// The job whose declared image it is (one it `needs`).
    pub from: String,
    /// Which of its images; may be left out when it declares one.
    #[serde(default)]
    pub name: Option<ImageName>,
}

impl JobImage {
    /// The reference, when the image is one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            JobImage::Reference(r) => Some(r),
            JobImage::Built(_) => None,
        }
    }
}

impl<'de> Deserialize<'de> for JobImage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JobImage, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JobImage;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an image reference, or {from: <job>, name: <image>}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JobImage, E> {
                Ok(JobImage::Reference(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<JobImage, A::Error> {
                BuiltImage::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(JobImage::Built)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// CPU and memory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Kubernetes quantity, e.g. `2` or `500m`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Kubernetes quantity, e.g. `4Gi`.
    #[serde(default)]
    pub memory: Option<String>,
}

/// A service container for tests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its host name inside the job.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Outputs of a job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// File globs, relative to the workspace.
    #[serde(default)]
    pub files: Vec<String>,
    /// Images assembled by seakeeper from output files.
    #[serde(default)]
    pub images: Vec<ImageOutput>,
}

/// A declarative image: output files on a base image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageOutput {
    /// The image name.
    pub name: ImageName,
    /// The base image, pinned by digest (`...@sha256:<hex>`).
    pub base: String,
    /// Which output files go in (globs).
    pub files: Vec<String>,
    /// The entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// Environment of the image.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// OCI labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A project's `.pipeline/config.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Jobs by name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobSpec>,
    /// Which jobs each pipeline runs.
    #[serde(default)]
    pub pipelines: BTreeMap<PipelineKind, Vec<String>>,
}

/// `policies/enforced-jobs.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforcedJobsPolicy {
    /// Jobs added to every matching project's pipelines; projects cannot remove or redefine them.
    #[serde(default)]
    pub enforced: Vec<EnforcedJob>,
}

/// One enforced job.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnforcedJob {
    /// The job's name.
    pub name: String,
    /// Project globs it applies to.
    pub projects: Vec<String>,
    /// Pipelines it runs in.
    pub pipelines: Vec<PipelineKind>,
    /// The job.
    pub job: JobSpec,
}

/// `policies/trust.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// Pipelines that run reviewed code and may use secrets.
    pub trusted_pipelines: Vec<PipelineKind>,
    /// Projects (globs) whose jobs in untrusted pipelines may ask for the network; by default
    /// none may: a patchset cannot grant itself the network.
    #[serde(default)]
    pub untrusted_network: Vec<String>,
}

pub use super::policies::{ImagesPolicy, UnpinnedImage};

/// `policies/timeouts.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsPolicy {
    /// For jobs that name none.
    pub default: crate::model::Duration,
    /// No job may ask for more.
    pub maximum: crate::model::Duration,
}

/// `policies/secrets.yaml`: which projects and pipelines may use each secret sealed in the
/// config repo (`secrets/<name>.pgp`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsPolicy {
    /// One rule per secret.
    #[serde(default)]
    pub secrets: Vec<crate::model::secret::SecretRule>,
}

impl SecretsPolicy {
    /// The rule of the secret `name`.
    pub fn rule(&self, name: &str) -> Option<&crate::model::secret::SecretRule> {
        self.secrets.iter().find(|r| r.name == name)
    }

    /// The names of every secret.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|r| r.name.as_str())
    }
}

/// `policies/promotion.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionPolicy {
    /// Only digests with a trusted build attestation may be promoted.
    pub require_trusted_attestation: bool,
    /// How long a digest must have run in an environment before it may leave it.
    #[serde(default)]
    pub soak: BTreeMap<EnvironmentName, crate::model::Duration>,
}

/// `policies/retention.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Rules, first match wins.
    pub rules: Vec<RetentionRule>,
    /// Days to keep anything that reached the last environment.
    pub production_days: u32,
    /// Days to keep a dependency cache archive after it was last used (default 14).
    #[serde(default = "default_cache_days")]
    pub cache_days: u32,
    /// How often the daemon applies the policy (default one hour).
    #[serde(default = "default_retention_every")]
    pub every: crate::model::Duration,
}

fn default_cache_days() -> u32 {
    14
}

fn default_retention_every() -> crate::model::Duration {
    crate::model::Duration::from_secs(3600)
}

/// One retention rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Artifact kind.
    pub kind: crate::model::ArtifactKind,
    /// Trust of the build that made it.
    pub trust: crate::model::Trust,
    /// Days to keep it.
    pub days: u32,
}

/// `policies/limits.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPolicy {
    /// Pipelines by priority, highest first.
    pub priorities: Vec<PipelineKind>,
    /// Jobs of one project at once.
    pub project_concurrency: u32,
    /// CPU and memory of jobs: what a job gets when it does not say, and the most it may ask.
    #[serde(default)]
    pub resources: ResourcePolicy,
}

/// `resources:` of `policies/limits.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourcePolicy {
    /// What a job gets when it does not say.
    pub default: Resources,
    /// The most a job may ask for.
    pub maximum: Resources,
}

impl Default for ResourcePolicy {
    fn default() -> Self {
        ResourcePolicy {
            default: Resources {
                cpu: Some("1".into()),
                memory: Some("2Gi".into()),
            },
            maximum: Resources {
                cpu: Some("8".into()),
                memory: Some("32Gi".into()),
            },
        }
    }
}

/// A Kubernetes CPU quantity (`2`, `1.5`, `500m`) in millicores.
pub fn cpu_millis(q: &str) -> Option<u64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse().ok();
    }
    let v: f64 = q.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1000.0).round() as u64)
}

/// A Kubernetes memory quantity (`512Mi`, `2Gi`, `1G`, `1000`) in bytes.
pub fn memory_bytes(q: &str) -> Option<u64> {
    let q = q.trim();
    let units: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("", 1),
    ];
    for (suffix, mul) in units {
        if let Some(n) = q.strip_suffix(suffix) {
            if let Ok(n) = n.parse::<u64>() {
                return n.checked_mul(mul);
            }
            if suffix.is_empty() {
                return None;
            }
        }
    }
    None
}

/// `notifications.yaml`: who is told what (see `docs/notifications.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsFile {
    /// Where notifications go, by a name that routes refer to.
    #[serde(default)]
    pub targets: BTreeMap<String, NotifyTarget>,
    /// Which events go to which targets.
    #[serde(default)]
    pub routes: Vec<NotifyRoute>,
}

/// A notification target: exactly one of `irc`, `email`, `phabricator`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// An IRC channel.
    #[serde(default)]
    pub irc: Option<IrcTarget>,
    /// Email through an SMTP server.
    #[serde(default)]
    pub email: Option<EmailTarget>,
    /// Comments on Phabricator tasks.
    #[serde(default)]
    pub phabricator: Option<PhabricatorTarget>,
}

/// An IRC channel; the SASL account, if any, is `irc:` in the secrets file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrcTarget {
    /// The server's host name.
    pub server: String,
    /// Its port (6697 with TLS, 6667 without, when not given).
    #[serde(default)]
    pub port: Option<u16>,
    /// The channel, e.g. `#wikimedia-releng`.
    pub channel: String,
    /// The nick seakeeper uses.
    pub nick: String,
    /// Whether to connect over TLS.
    #[serde(default)]
    pub tls: bool,
    /// Whether to log in with SASL PLAIN (the account of the secrets file's `irc:`).
    #[serde(default)]
    pub sasl: bool,
    /// A PEM CA certificate trusted for this server besides the system's.
    #[serde(default)]
    pub ca_cert: Option<String>,
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmtpTls {
    /// Plain TCP, then `STARTTLS` (required).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS at all (refused when the secrets file has SMTP credentials).
    None,
}

/// Email through an SMTP server; its account, if any, is `smtp:` in the secrets file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    /// The SMTP server's host name.
    pub server: String,
    /// Its port (587, or 465 with implicit TLS, when not given).
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is protected.
    #[serde(default)]
    pub tls: SmtpTls,
    /// A PEM CA certificate trusted for this server besides the system's.
    #[serde(default)]
    pub ca_cert: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

/// Comments on Phabricator tasks named by freezes' tickets and changes' `Bug:` footers; the
/// Conduit API token is `phabricator:` in the secrets file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhabricatorTarget {
    /// The Phabricator's base URL, e.g. `https://phabricator.wikimedia.org`.
    pub url: String,
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A post-merge build failed.
    PostMergeFailed,
    /// A periodic build failed.
    PeriodicFailed,
    /// A gate build failed.
    GateFailed,
    /// A freeze began to hold.
    FreezeStarted,
    /// A freeze was lifted.
    FreezeEnded,
    /// A digest was promoted to an environment.
    Promoted,
    /// A promotion was refused.
    PromotionHeld,
    /// The config repo's HEAD is invalid.
    ConfigInvalid,
}

impl EventKind {
    /// Every kind, in order.
    pub const ALL: [EventKind; 8] = [
        EventKind::PostMergeFailed,
        EventKind::PeriodicFailed,
        EventKind::GateFailed,
        EventKind::FreezeStarted,
        EventKind::FreezeEnded,
        EventKind::Promoted,
        EventKind::PromotionHeld,
        EventKind::ConfigInvalid,
    ];

    /// Its name in `notifications.yaml`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PostMergeFailed => "post-merge-failed",
            EventKind::PeriodicFailed => "periodic-failed",
            EventKind::GateFailed => "gate-failed",
            EventKind::FreezeStarted => "freeze-started",
            EventKind::FreezeEnded => "freeze-ended",
            EventKind::Promoted => "promoted",
            EventKind::PromotionHeld => "promotion-held",
            EventKind::ConfigInvalid => "config-invalid",
        }
    }

    /// Whether the event is about a promotion (an `environments` filter applies to it).
    pub fn is_promotion(self) -> bool {
        matches!(self, EventKind::Promoted | EventKind::PromotionHeld)
    }
}

/// One route: events of these kinds (and projects, and environments) go to these targets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyRoute {
    /// The event kinds.
    pub events: Vec<EventKind>,
    /// Project globs (`model::glob`); an event about a project matches only when one of them
    /// matches it. Empty: every project. Events about no project (freezes, promotions, the
    /// config) are not filtered by project.
    #[serde(default)]
    pub projects: Vec<String>,
    /// Environments a promotion event must be about. Empty: every environment.
    #[serde(default)]
    pub environments: Vec<String>,
    /// The target names.
    pub targets: Vec<String>,
}
