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
}

impl Default for ExecutorSettings {
    fn default() -> Self {
        ExecutorSettings {
            kind: ExecutorKind::Local,
            concurrency: default_concurrency(),
            namespaces: Namespaces::default(),
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

/// The pipelines a project can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineKind {
    /// Every new patchset, untrusted.
    Check,
    /// After approval, trusted, speculative merge.
    Gate,
    /// After a merge, trusted, builds promotable artifacts.
    PostMerge,
    /// From `schedules.yaml`.
    Periodic,
}

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
