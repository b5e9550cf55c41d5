//! The config repo -> a validated `Layout`, or every error at once.
//!
//! Input is the repository's files at one commit (read from git objects by the caller, so this
//! module does no I/O and depends only on `model`). A Layout is never half-valid: loading
//! returns either a complete Layout or all errors, each naming file, line, column and field.
//!
//! Files: `seakeeper.yaml`, `environments.yaml`, `projects/`, `promotions/`, `freezes/`,
//! `schedules.yaml`, `notifications.yaml`, `templates/`, `policies/`, `keys/`, `secrets/` and
//! `pipelines/` (central pipeline files); a project's `.pipeline/config.yaml` is checked
//! against a Layout by [`pipeline::check`].

pub mod central;
pub mod cron;
mod error;
pub mod files;
mod load;
pub mod notifications;
pub mod pipeline;
pub mod policies;
mod secrets;
pub mod stages;
pub mod starter;

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

pub use crate::model::glob_matches;
pub use error::{ConfigError, check_yaml_limits, closest, locate, parse_yaml};
pub use files::{
    EnvironmentSpec, FreezeFile, JobSpec, PipelineKind, ProjectFile, PromotionsFile, Schedule,
    Settings,
};
pub use load::load_with;
pub use policies::Policies;

use crate::model::{Digest, EnvironmentName, FreezeName, ImageName, ProjectName};

/// The validated desired state at one config commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `seakeeper.yaml`.
    pub settings: Settings,
    /// Environments in promotion order.
    pub environments: Vec<EnvironmentSpec>,
    /// Projects by Gerrit name.
    pub projects: BTreeMap<ProjectName, ProjectFile>,
    /// Desired digest per environment and image.
    pub promotions: BTreeMap<EnvironmentName, BTreeMap<ImageName, Digest>>,
    /// Active freezes by name.
    pub freezes: BTreeMap<FreezeName, FreezeFile>,
    /// Periodic builds.
    pub schedules: Vec<Schedule>,
    /// Who is told what (`notifications.yaml`; empty when there is none).
    pub notifications: files::NotificationsFile,
    /// Job templates by name.
    pub templates: BTreeMap<String, JobSpec>,
    /// Policies, defaults overridden by the config repo.
    pub policies: Policies,
    /// Public certs trusted to sign, with their roles (`keys/<name>.asc` and
    /// `keys/<name>.yaml`), by name.
    pub keys: BTreeMap<String, KeyEntry>,
    /// Job secrets, sealed (`secrets/<name>.pgp`: armored OpenPGP messages to the server's
    /// encryption subkey), by name; who may use each is in `policies.secrets`.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// Central pipeline files (`pipelines/<project>.yaml`), by project: the pipeline file of
    /// a project whose repository has none (see [`Layout::central_pipeline`]).
    pub central_pipelines: BTreeMap<ProjectName, Arc<str>>,
}

/// A trusted key of the config repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// The armored public cert.
    pub cert: Vec<u8>,
    /// What it may sign.
    pub roles: BTreeSet<crate::model::KeyRole>,
}

/// A short account of a Layout, for `config check` and `config show`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Environment names in order.
    pub environments: Vec<String>,
    /// Number of projects.
    pub projects: usize,
    /// Desired promotions per environment.
    pub promotions: BTreeMap<String, BTreeMap<String, String>>,
    /// Active freezes with their scope and reason.
    pub freezes: BTreeMap<String, (Vec<String>, String)>,
}

impl Layout {
    /// The gate queue a project's changes wait in: its `queue:` (shared with the projects that
    /// name the same), else one of its own.
    pub fn queue_of(&self, project: &ProjectName) -> String {
        match self.projects.get(project).and_then(|p| p.queue.as_ref()) {
            Some(q) => format!("queue:{q}"),
            None => format!("project:{project}"),
        }
    }

    /// The votes a project's changes need to enter the gate.
    pub fn gate_requirements(&self, project: &ProjectName) -> &[files::VoteRequirement] {
        self.projects
            .get(project)
            .and_then(|p| p.gate.require.as_deref())
            .unwrap_or(&self.settings.gate.require)
    }

    /// How a project's tested changes land.
    pub fn land_method(&self, project: &ProjectName) -> files::LandMethod {
        self.projects
            .get(project)
            .and_then(|p| p.gate.land)
            .unwrap_or(self.settings.gate.land)
    }

    /// What the layout holds, briefly.
    pub fn summary(&self) -> Summary {
        Summary {
            environments: self
                .environments
                .iter()
                .map(|e| e.name.to_string())
                .collect(),
            projects: self.projects.len(),
            promotions: self
                .promotions
                .iter()
                .map(|(e, m)| {
                    (
                        e.to_string(),
                        m.iter()
                            .map(|(i, d)| (i.to_string(), d.to_string()))
                            .collect(),
                    )
                })
                .collect(),
            freezes: self
                .freezes
                .iter()
                .map(|(n, f)| (n.to_string(), (f.scope.clone(), f.reason.clone())))
                .collect(),
        }
    }
}

/// The resolved view `config show` prints.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Environments in order.
    pub environments: Vec<String>,
    /// Projects.
    pub projects: BTreeMap<String, ProjectView>,
    /// Desired promotions.
    pub promotions: BTreeMap<String, BTreeMap<String, String>>,
    /// Active freezes.
    pub freezes: BTreeMap<String, FreezeView>,
    /// Periodic builds.
    pub schedules: Vec<ScheduleView>,
}

/// One project in the view.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectView {
    /// Its gate queue.
    pub queue: Option<String>,
    /// Each pipeline it takes part in, with the enforced jobs added to it.
    pub pipelines: BTreeMap<String, Vec<String>>,
    /// The jobs of each pipeline its central pipeline file (`pipelines/<project>.yaml`) names,
    /// when the config repo keeps one.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub central: BTreeMap<String, Vec<String>>,
    /// What it depends on.
    pub depends_on: Vec<String>,
    /// Images it produces.
    pub images: Vec<String>,
}

/// A freeze in the view.
#[derive(Debug, Clone, Serialize)]
pub struct FreezeView {
    /// What it holds.
    pub scope: Vec<String>,
    /// Why.
    pub reason: String,
    /// Ticket.
    pub ticket: Option<String>,
    /// When it ends on its own.
    pub expires: Option<String>,
    /// Whether it holds at the time the view was made (false once `expires` has passed).
    pub active: bool,
}

/// A schedule in the view.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Project.
    pub project: String,
    /// Branch.
    pub branch: String,
}

impl FreezeFile {
    /// Whether the freeze holds at `now` (a freeze file holds until its `expires`, if any).
    pub fn is_active(&self, now: crate::model::Timestamp) -> bool {
        self.expires.is_none_or(|e| now < e)
    }

    /// Its scopes; one that cannot be read (or none at all) holds everything.
    pub fn scopes(&self) -> Vec<crate::model::FreezeScope> {
        if self.scope.is_empty() {
            return vec![crate::model::FreezeScope::All];
        }
        self.scope
            .iter()
            .map(|s| crate::model::FreezeScope::parse_fail_closed(s))
            .collect()
    }

    /// Whether the freeze holds `what` at `now`: the only place freezes are matched.
    pub fn holds(&self, what: crate::model::Held<'_>, now: crate::model::Timestamp) -> bool {
        self.is_active(now) && self.scopes().iter().any(|s| s.holds(what))
    }
}

/// The freezes of a config commit, read on their own and fail closed, for a commit that is
/// invalid as a whole (its Layout is not used, but a freeze it adds must hold): a freeze file
/// that cannot be read or parsed, or whose scope names nothing known, becomes a freeze of
/// everything (`all`), with the reason saying why and where; it never expires.
pub fn freezes_fail_closed(
    files: &BTreeMap<String, SourceFile>,
    environments: &[EnvironmentSpec],
) -> BTreeMap<FreezeName, FreezeFile> {
    let mut out = BTreeMap::new();
    let mut unnamed = 0;
    for (path, rest, file) in under(files, "freezes/") {
        let name = rest
            .strip_suffix(".yaml")
            .filter(|n| !n.contains('/'))
            .and_then(|n| n.parse::<FreezeName>().ok())
            .unwrap_or_else(|| {
                unnamed += 1;
                format!("unreadable-freeze-{unnamed}")
                    .parse()
                    .expect("a valid freeze name")
            });
        let broken = |why: String| FreezeFile {
            scope: vec!["all".into()],
            reason: format!("{path} cannot be read ({why}); it holds everything until it is fixed"),
            ticket: None,
            expires: None,
        };
        let parsed = std::str::from_utf8(&file.bytes)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|t| parse_yaml::<FreezeFile>(path, t).map_err(|e| e.to_string()));
        let freeze = match parsed {
            Err(why) => broken(why),
            Ok(mut f) => {
                let known = |s: &str| match crate::model::FreezeScope::parse(s) {
                    Ok(crate::model::FreezeScope::Promote(e)) => {
                        environments.iter().any(|x| x.name == e)
                    }
                    Ok(_) => true,
                    Err(_) => false,
                };
                let unknown: Vec<String> = f.scope.iter().filter(|s| !known(s)).cloned().collect();
                if f.scope.is_empty() || !unknown.is_empty() {
                    f.reason = format!(
                        "{} (held as `all`: {path} names no scope it could mean for sure: {})",
                        f.reason.trim(),
                        if unknown.is_empty() {
                            "none given".to_owned()
                        } else {
                            unknown.join(", ")
                        }
                    );
                    f.scope = vec!["all".into()];
                }
                f
            }
        };
        out.insert(name, freeze);
    }
    out
}

impl Layout {
    /// This Layout with the freezes of another (invalid) commit's files added, fail closed
    /// (see [`freezes_fail_closed`]); a freeze of the same name is replaced.
    pub fn with_freezes_of(&self, files: &BTreeMap<String, SourceFile>) -> Layout {
        let mut l = self.clone();
        l.freezes
            .extend(freezes_fail_closed(files, &self.environments));
        l
    }
}

/// The resolved view of a Layout at time `now` (which decides whether freezes have expired).
pub fn show(layout: &Layout, now: crate::model::Timestamp) -> View {
    let kind_name = |k: &PipelineKind| {
        serde_json::to_value(k)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    View {
        environments: layout
            .environments
            .iter()
            .map(|e| e.name.to_string())
            .collect(),
        projects: layout
            .projects
            .iter()
            .map(|(name, p)| {
                let pipelines = p
                    .pipelines
                    .iter()
                    .map(|k| {
                        let enforced = layout
                            .policies
                            .enforced_jobs
                            .enforced
                            .iter()
                            .filter(|e| {
                                e.pipelines.contains(k)
                                    && e.projects.iter().any(|g| glob_matches(g, name.as_str()))
                            })
                            .map(|e| e.name.clone())
                            .collect();
                        (kind_name(k), enforced)
                    })
                    .collect();
                let central = layout
                    .central_pipeline(name)
                    .and_then(|t| parse_yaml::<files::PipelineFile>("", t).ok())
                    .map(|f| {
                        f.pipelines
                            .into_iter()
                            .map(|(k, jobs)| (kind_name(&k), jobs))
                            .collect()
                    })
                    .unwrap_or_default();
                let view = ProjectView {
                    queue: p.queue.clone(),
                    pipelines,
                    central,
                    depends_on: p.depends_on.iter().map(ToString::to_string).collect(),
                    images: p.images.iter().map(ToString::to_string).collect(),
                };
                (name.to_string(), view)
            })
            .collect(),
        promotions: layout.summary().promotions,
        freezes: layout
            .freezes
            .iter()
            .map(|(n, f)| {
                let view = FreezeView {
                    scope: f.scope.clone(),
                    reason: f.reason.clone(),
                    ticket: f.ticket.clone(),
                    expires: f.expires.map(|e| e.to_string()),
                    active: f.is_active(now),
                };
                (n.to_string(), view)
            })
            .collect(),
        schedules: layout
            .schedules
            .iter()
            .map(|s| ScheduleView {
                name: s.name.clone(),
                cron: s.cron.clone(),
                project: s.project.to_string(),
                branch: s.branch.clone(),
            })
            .collect(),
    }
}

/// One file of the config repo: a key that changes whenever the content does (the git blob
/// id, or a content hash) and the content.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The blob id or another content key.
    pub key: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
}

/// Parsed files by (type, content key), so that a reload re-parses only what changed.
#[derive(Default)]
pub struct ParseCache {
    entries: HashMap<(TypeId, String), Arc<dyn Any + Send + Sync>>,
    used: HashSet<(TypeId, String)>,
}

impl ParseCache {
    /// Parses `text` as `T`, or returns the result of an earlier parse of the same content.
    // Config errors are data that callers collect into lists; boxing each would only add noise.
    #[allow(clippy::result_large_err)]
    pub fn parse<T>(&mut self, file: &str, key: &str, text: &str) -> Result<T, ConfigError>
    where
        T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        // Keyed by content alone: the same content parses to the same value wherever it lives
        // (errors are re-labelled with the file that asked).
        let id = (TypeId::of::<T>(), key.to_owned());
        if let Some(hit) = self.entries.get(&id)
            && let Some(r) = hit.downcast_ref::<Result<T, ConfigError>>()
        {
            let r = r.clone().map_err(|mut e| {
                e.file = file.to_owned();
                e
            });
            self.used.insert(id);
            return r;
        }
        let r = parse_yaml::<T>(file, text);
        self.entries.insert(id.clone(), Arc::new(r.clone()));
        self.used.insert(id);
        r
    }

    /// Forgets every entry the last load did not use.
    fn sweep(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.entries.retain(|k, _| used.contains(k));
    }
}

/// Builds a Layout from the config repo's files (path -> bytes), or returns every error.
pub fn load(files: &BTreeMap<String, Vec<u8>>) -> Result<Layout, Vec<ConfigError>> {
    use sha2::Digest as _;
    let source = files
        .iter()
        .map(|(p, b)| {
            let key = hex::encode(sha2::Sha256::digest(b));
            (
                p.clone(),
                SourceFile {
                    key,
                    bytes: Arc::from(b.as_slice()),
                },
            )
        })
        .collect();
    load_with(&source, &mut ParseCache::default())
}

/// The outcome of loading a config commit: the Layout to use and the errors to report.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The commit that was asked for.
    pub commit: String,
    /// The Layout to run with: this commit's, or (when it is invalid) the last good one.
    pub layout: Option<Arc<Layout>>,
    /// The commit `layout` comes from.
    pub layout_commit: Option<String>,
    /// This commit's errors (empty when it is valid).
    pub errors: Vec<ConfigError>,
}

/// Loads config commits one after another, re-parsing only files whose content changed, and
/// keeping the last good Layout when a commit is invalid (so a bad config never stops CI).
#[derive(Default)]
pub struct Loader {
    cache: ParseCache,
    last_good: Option<(String, Arc<Layout>)>,
}

impl Loader {
    /// A loader with nothing loaded yet.
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Loads `commit`, whose files are `files`.
    pub fn load(&mut self, commit: &str, files: &BTreeMap<String, SourceFile>) -> Loaded {
        let result = load_with(files, &mut self.cache);
        self.cache.sweep();
        match result {
            Ok(layout) => {
                let layout = Arc::new(layout);
                self.last_good = Some((commit.to_owned(), layout.clone()));
                Loaded {
                    commit: commit.to_owned(),
                    layout: Some(layout),
                    layout_commit: Some(commit.to_owned()),
                    errors: Vec::new(),
                }
            }
            Err(errors) => Loaded {
                commit: commit.to_owned(),
                layout: self.last_good.as_ref().map(|(_, l)| l.clone()),
                layout_commit: self.last_good.as_ref().map(|(c, _)| c.clone()),
                errors,
            },
        }
    }

    /// The last good Layout and its commit.
    pub fn last_good(&self) -> Option<(&str, &Arc<Layout>)> {
        self.last_good.as_ref().map(|(c, l)| (c.as_str(), l))
    }
}

/// The files under `dir` (which ends in `/`), with their paths relative to it.
fn under<'a>(
    files: &'a BTreeMap<String, SourceFile>,
    dir: &'a str,
) -> impl Iterator<Item = (&'a String, &'a str, &'a SourceFile)> + 'a {
    files
        .range(dir.to_owned()..)
        .map_while(move |(path, file)| path.strip_prefix(dir).map(|rest| (path, rest, file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("mediawiki/*", "mediawiki/extensions/Cite"));
        assert!(glob_matches("*", "x"));
        assert!(glob_matches("a*c*e", "abcde"));
        assert!(!glob_matches("mediawiki/*", "operations/puppet"));
        assert!(glob_matches("releng/blubber", "releng/blubber"));
        assert!(!glob_matches("a*a", "a"));
    }
}

#[cfg(test)]
mod loader_tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, SourceFile> {
        pairs
            .iter()
            .map(|(p, t)| {
                (
                    p.to_string(),
                    SourceFile {
                        key: format!(
                            "{:x}",
                            t.len() * 31 + t.bytes().map(usize::from).sum::<usize>()
                        ),
                        bytes: Arc::from(t.as_bytes()),
                    },
                )
            })
            .collect()
    }

    const SETTINGS: &str = "public_url: https://ci.example.org\nregistries:\n  r: { url: \"https://r.example.org\" }\n";
    const ENVS: &str = "environments:\n  - name: staging\n    registry: r\n";

    #[test]
    fn an_invalid_commit_keeps_the_last_good_layout() {
        let mut loader = Loader::new();
        let good = loader.load(
            "c1",
            &files(&[("seakeeper.yaml", SETTINGS), ("environments.yaml", ENVS)]),
        );
        assert!(good.errors.is_empty(), "{:?}", good.errors);
        assert_eq!(good.layout_commit.as_deref(), Some("c1"));
        let bad = loader.load(
            "c2",
            &files(&[
                ("seakeeper.yaml", SETTINGS),
                ("environments.yaml", "environments: [\n"),
            ]),
        );
        assert!(!bad.errors.is_empty());
        assert_eq!(bad.commit, "c2");
        assert_eq!(
            bad.layout_commit.as_deref(),
            Some("c1"),
            "the last good layout keeps running"
        );
        assert!(Arc::ptr_eq(
            bad.layout.as_ref().unwrap(),
            good.layout.as_ref().unwrap()
        ));
        let fixed = loader.load(
            "c3",
            &files(&[("seakeeper.yaml", SETTINGS), ("environments.yaml", ENVS)]),
        );
        assert_eq!(fixed.layout_commit.as_deref(), Some("c3"));
        // A loader that never saw a good commit has nothing to run with.
        let mut fresh = Loader::new();
        let none = fresh.load("c2", &files(&[("environments.yaml", ENVS)]));
        assert!(none.layout.is_none() && !none.errors.is_empty());
    }

    #[test]
    fn the_cache_only_keeps_what_the_last_load_used() {
        let mut loader = Loader::new();
        loader.load(
            "c1",
            &files(&[("seakeeper.yaml", SETTINGS), ("environments.yaml", ENVS)]),
        );
        let n = loader.cache.entries.len();
        loader.load(
            "c2",
            &files(&[
                ("seakeeper.yaml", SETTINGS),
                ("environments.yaml", ENVS),
                ("projects/a.yaml", "queue: q\n"),
            ]),
        );
        assert_eq!(loader.cache.entries.len(), n + 1);
        loader.load(
            "c3",
            &files(&[("seakeeper.yaml", SETTINGS), ("environments.yaml", ENVS)]),
        );
        assert_eq!(loader.cache.entries.len(), n);
    }
}
