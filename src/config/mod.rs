//! The config repo -> a validated `Layout`, or every error at once.
//!
//! Input is the repository's files at one commit (read from git objects by the caller, so this
//! module does no I/O and depends only on `model`). A Layout is never half-valid: loading
//! returns either a complete Layout or all errors, each naming file, line, column and field.
//!
//! Files: `seakeeper.yaml`, `environments.yaml`, `projects/`, `promotions/`, `freezes/`,
//! `schedules.yaml`, `templates/`, `policies/` and `keys/`; a project's `.pipeline/config.yaml`
//! is checked against a Layout by [`pipeline::check`].

pub mod cron;
mod error;
pub mod files;
pub mod pipeline;
pub mod policies;

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

pub use error::{ConfigError, check_yaml_limits, closest, locate, parse_yaml};
pub use files::{
    EnvironmentSpec, FreezeFile, JobSpec, PipelineKind, ProjectFile, PromotionsFile, Schedule,
    Settings,
};
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
    /// Job templates by name.
    pub templates: BTreeMap<String, JobSpec>,
    /// Policies, defaults overridden by the config repo.
    pub policies: Policies,
    /// Public certs trusted to sign, with their roles (`keys/<name>.asc` and
    /// `keys/<name>.yaml`), by name.
    pub keys: BTreeMap<String, KeyEntry>,
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
                let view = ProjectView {
                    queue: p.queue.clone(),
                    pipelines,
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

/// [`load`] with a parse cache, over files that carry content keys.
pub fn load_with(
    files: &BTreeMap<String, SourceFile>,
    cache: &mut ParseCache,
) -> Result<Layout, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let key = |path: &str| files.get(path).map_or("", |f| f.key.as_str());
    fn text_of<'a>(
        files: &'a BTreeMap<String, SourceFile>,
        path: &str,
        errors: &mut Vec<ConfigError>,
    ) -> Option<&'a str> {
        let file = files.get(path)?;
        match std::str::from_utf8(&file.bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(ConfigError::new(
                    path,
                    "",
                    format!("is not UTF-8 text: {e}"),
                ));
                None
            }
        }
    }
    let text = |path: &str, errors: &mut Vec<ConfigError>| text_of(files, path, errors);
    // seakeeper.yaml
    let settings_text = text("seakeeper.yaml", &mut errors);
    let settings: Option<Settings> = match &settings_text {
        None if !files.contains_key("seakeeper.yaml") => {
            errors.push(ConfigError::new(
                "seakeeper.yaml",
                "",
                "is missing: every config repo needs one",
            ));
            None
        }
        None => None,
        Some(t) => cache
            .parse::<Settings>("seakeeper.yaml", key("seakeeper.yaml"), t)
            .map_err(|e| errors.push(e))
            .ok(),
    };
    if let (Some(s), Some(t)) = (&settings, &settings_text) {
        check_settings(s, t, &mut errors);
    }

    // environments.yaml
    let errors_before = errors.len();
    let env_text = text("environments.yaml", &mut errors);
    let environments: Vec<EnvironmentSpec> = match &env_text {
        None if !files.contains_key("environments.yaml") => {
            errors.push(ConfigError::new(
                "environments.yaml",
                "",
                "is missing: declare at least one environment",
            ));
            Vec::new()
        }
        None => Vec::new(),
        Some(t) => cache
            .parse::<files::EnvironmentsFile>("environments.yaml", key("environments.yaml"), t)
            .map(|f| f.environments)
            .map_err(|e| errors.push(e))
            .unwrap_or_default(),
    };
    if let Some(t) = &env_text {
        let mut seen = BTreeSet::new();
        for (i, env) in environments.iter().enumerate() {
            let field = format!("environments[{i}]");
            if !seen.insert(env.name.clone()) {
                errors.push(
                    ConfigError::new(
                        "environments.yaml",
                        format!("{field}.name"),
                        format!("environment `{}` is declared twice", env.name),
                    )
                    .located(t, &format!("name: {}", env.name)),
                );
            }
            if let Some(s) = &settings
                && !s.registries.contains_key(&env.registry)
            {
                errors.push(
                    ConfigError::new(
                        "environments.yaml",
                        format!("{field}.registry"),
                        format!(
                            "unknown registry `{}`: seakeeper.yaml declares {}",
                            env.registry,
                            list(s.registries.keys())
                        ),
                    )
                    .located(t, &format!("registry: {}", env.registry))
                    .suggest(&env.registry, s.registries.keys().map(String::as_str)),
                );
            }
        }
        if environments.is_empty() && errors.iter().all(|e| e.file != "environments.yaml") {
            errors.push(ConfigError::new(
                "environments.yaml",
                "environments",
                "declares no environment",
            ));
        }
    }
    let env_names: Vec<String> = environments.iter().map(|e| e.name.to_string()).collect();
    // When environments.yaml itself is broken, references to environments are not checked:
    // every one would be reported as unknown, burying the real error.
    let environments_known = errors.len() == errors_before && !environments.is_empty();

    // projects/
    let mut projects = BTreeMap::new();
    let mut project_texts = BTreeMap::new();
    for (path, rest, _) in under(files, "projects/") {
        let Some(name) = rest.strip_suffix(".yaml") else {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "project files end in .yaml",
            ));
            continue;
        };
        let name: ProjectName = match name.parse() {
            Ok(n) => n,
            Err(e) => {
                errors.push(ConfigError::new(
                    path.as_str(),
                    "",
                    format!("the file name is not a project: {e}"),
                ));
                continue;
            }
        };
        let Some(t) = text(path, &mut errors) else {
            continue;
        };
        match cache.parse::<ProjectFile>(path, key(path), t) {
            Ok(p) => {
                projects.insert(name.clone(), p);
                project_texts.insert(name, (path.clone(), t));
            }
            Err(e) => errors.push(e),
        }
    }
    let projects_known = !errors.iter().any(|e| e.file.starts_with("projects/"));
    if projects_known {
        check_projects(&projects, &project_texts, &mut errors);
    }
    let images: BTreeSet<&ImageName> = projects.values().flat_map(|p| p.images.iter()).collect();

    // promotions/
    let mut promotions = BTreeMap::new();
    for (path, rest, _) in under(files, "promotions/") {
        let env = rest.strip_suffix(".yaml").unwrap_or(rest);
        if !rest.ends_with(".yaml") || rest.contains('/') {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "promotion files are promotions/<environment>.yaml",
            ));
            continue;
        }
        let Some(t) = text(path, &mut errors) else {
            continue;
        };
        if environments_known && !env_names.iter().any(|e| e == env) {
            errors.push(
                ConfigError::new(
                    path.as_str(),
                    "",
                    format!(
                        "unknown environment `{env}`: environments.yaml declares {}",
                        list(env_names.iter())
                    ),
                )
                .suggest(env, env_names.iter().map(String::as_str)),
            );
            continue;
        }
        match cache.parse::<PromotionsFile>(path, key(path), t) {
            Ok(p) => {
                for image in p.images.keys() {
                    if projects_known && !images.contains(image) {
                        errors.push(
                            ConfigError::new(
                                path.as_str(),
                                format!("images.{image}"),
                                format!("no project produces image `{image}`"),
                            )
                            .located(t, &format!("{image}:"))
                            .suggest(image.as_str(), images.iter().map(|i| i.as_str())),
                        );
                    }
                }
                match env.parse::<EnvironmentName>() {
                    Ok(env) => {
                        promotions.insert(env, p.images);
                    }
                    Err(e) => errors.push(ConfigError::new(path.as_str(), "", e.to_string())),
                }
            }
            Err(e) => errors.push(e),
        }
    }

    // freezes/
    let mut freezes = BTreeMap::new();
    for (path, rest, _) in under(files, "freezes/") {
        let Some(name) = rest.strip_suffix(".yaml").filter(|n| !n.contains('/')) else {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "freeze files are freezes/<name>.yaml",
            ));
            continue;
        };
        let name: FreezeName = match name.parse() {
            Ok(n) => n,
            Err(e) => {
                errors.push(ConfigError::new(
                    path.as_str(),
                    "",
                    format!("the file name is not a freeze name: {e}"),
                ));
                continue;
            }
        };
        let Some(t) = text(path, &mut errors) else {
            continue;
        };
        match cache.parse::<FreezeFile>(path, key(path), t) {
            Ok(f) => {
                if environments_known && projects_known {
                    check_freeze(path, t, &f, &env_names, &projects, &mut errors);
                }
                freezes.insert(name, f);
            }
            Err(e) => errors.push(e),
        }
    }

    // schedules.yaml
    let mut schedules = Vec::new();
    if let Some(t) = text("schedules.yaml", &mut errors) {
        match cache.parse::<files::SchedulesFile>("schedules.yaml", key("schedules.yaml"), t) {
            Ok(f) => {
                let mut seen = BTreeSet::new();
                for (i, s) in f.schedules.iter().enumerate() {
                    if !seen.insert(s.name.clone()) {
                        errors.push(
                            ConfigError::new(
                                "schedules.yaml",
                                format!("schedules[{i}].name"),
                                format!("schedule `{}` is declared twice", s.name),
                            )
                            .located(t, &s.name),
                        );
                    }
                    if let Err(e) = s.cron.parse::<cron::Cron>() {
                        errors.push(
                            ConfigError::new(
                                "schedules.yaml",
                                format!("schedules[{i}].cron"),
                                format!("`{}`: {e}", s.cron),
                            )
                            .located(t, &s.cron),
                        );
                    }
                    if projects_known && !projects.contains_key(&s.project) {
                        errors.push(
                            ConfigError::new(
                                "schedules.yaml",
                                format!("schedules[{i}].project"),
                                format!("unknown project `{}`", s.project),
                            )
                            .located(t, s.project.as_str())
                            .suggest(s.project.as_str(), projects.keys().map(ProjectName::as_str)),
                        );
                    }
                }
                schedules = f.schedules;
            }
            Err(e) => errors.push(e),
        }
    }

    // templates/
    let mut templates = BTreeMap::new();
    for (path, rest, _) in under(files, "templates/") {
        let Some(name) = rest
            .strip_suffix(".yaml")
            .filter(|n| !n.contains('/') && !n.is_empty())
        else {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "template files are templates/<name>.yaml",
            ));
            continue;
        };
        let Some(t) = text(path, &mut errors) else {
            continue;
        };
        match cache.parse::<JobSpec>(path, key(path), t) {
            Ok(job) if job.template.is_some() => {
                errors.push(
                    ConfigError::new(
                        path.as_str(),
                        "use",
                        "a template cannot use another template",
                    )
                    .located(t, "use:"),
                );
            }
            Ok(job) => {
                templates.insert(name.to_owned(), job);
            }
            Err(e) => errors.push(e),
        }
    }

    // policies/
    let mut overrides = Vec::new();
    for (path, rest, _) in under(files, "policies/") {
        if let Some(t) = text(path, &mut errors) {
            overrides.push((rest.to_owned(), t.to_owned()));
        }
    }
    let policies = policies::resolve(&overrides, &mut errors);
    if let Some(p) = &policies {
        let enforced_text = overrides
            .iter()
            .find(|(n, _)| n == "enforced-jobs.yaml")
            .map_or("", |(_, t)| t.as_str());
        for (i, e) in p.enforced_jobs.enforced.iter().enumerate() {
            let field = format!("enforced[{i}]");
            if !pipeline::is_job_name(&e.name) {
                errors.push(
                    ConfigError::new(
                        "policies/enforced-jobs.yaml",
                        format!("{field}.name"),
                        "job names are plain identifiers: a letter or digit, then letters, \
                         digits, `-`, `_` and `.`",
                    )
                    .located(enforced_text, &e.name),
                );
            }
            if projects_known
                && !e
                    .projects
                    .iter()
                    .any(|g| projects.keys().any(|p| glob_matches(g, p.as_str())))
            {
                errors.push(ConfigError::new(
                    "policies/enforced-jobs.yaml",
                    format!("{field}.projects"),
                    format!("enforced job `{}` matches no project", e.name),
                ));
            }
            if let Some(tpl) = &e.job.template
                && !templates.contains_key(tpl)
            {
                errors.push(
                    ConfigError::new(
                        "policies/enforced-jobs.yaml",
                        format!("{field}.job.use"),
                        format!("unknown template `{tpl}`"),
                    )
                    .located(enforced_text, &format!("use: {tpl}"))
                    .suggest(tpl, templates.keys().map(String::as_str)),
                );
            }
        }
    }

    // keys/: <name>.asc (the cert) and <name>.yaml (its roles), in pairs.
    let mut keys = BTreeMap::new();
    let mut roles_files = BTreeMap::new();
    for (path, rest, bytes) in under(files, "keys/") {
        if let Some(name) = rest.strip_suffix(".yaml").filter(|n| !n.contains('/')) {
            let Some(t) = text(path, &mut errors) else {
                continue;
            };
            match cache.parse::<files::KeyRolesFile>(path, key(path), t) {
                Ok(f) => {
                    if f.roles.is_empty() {
                        errors.push(
                            ConfigError::new(path.as_str(), "roles", "names no role")
                                .located(t, "roles"),
                        );
                    }
                    roles_files.insert(name.to_owned(), f.roles);
                }
                Err(e) => errors.push(e),
            }
            continue;
        }
        let armored = bytes
            .bytes
            .starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----");
        if !rest.ends_with(".asc") || rest.contains('/') || !armored {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "keys are armored OpenPGP public certs at keys/<name>.asc, with their roles in \
                 keys/<name>.yaml",
            ));
            continue;
        }
        keys.insert(
            rest.trim_end_matches(".asc").to_owned(),
            bytes.bytes.to_vec(),
        );
    }
    let mut key_entries = BTreeMap::new();
    for (name, cert) in keys {
        match roles_files.remove(&name) {
            Some(roles) => {
                key_entries.insert(name, KeyEntry { cert, roles });
            }
            None => errors.push(ConfigError::new(
                format!("keys/{name}.asc"),
                "",
                format!(
                    "has no roles: add keys/{name}.yaml with `roles: [...]` (ledger, builder, \
                     promoter); a key without roles would be trusted for nothing"
                ),
            )),
        }
    }
    for name in roles_files.keys() {
        errors.push(ConfigError::new(
            format!("keys/{name}.yaml"),
            "",
            format!("names the roles of keys/{name}.asc, which does not exist"),
        ));
    }
    let keys = key_entries;

    match (settings, policies, errors.is_empty()) {
        (Some(settings), Some(policies), true) => Ok(Layout {
            settings,
            environments,
            projects,
            promotions,
            freezes,
            schedules,
            templates,
            policies,
            keys,
        }),
        _ => {
            errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            Err(errors)
        }
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn check_settings(s: &Settings, text: &str, errors: &mut Vec<ConfigError>) {
    let file = "seakeeper.yaml";
    if !(s.public_url.starts_with("https://") || s.public_url.starts_with("http://")) {
        errors.push(
            ConfigError::new(file, "public_url", "expected an http:// or https:// URL")
                .located(text, "public_url"),
        );
    }
    for (name, r) in &s.registries {
        let field = format!("registries.{name}.url");
        let url = r.url.as_str();
        let ok = if let Some(rest) = url.strip_prefix("http://") {
            let host = rest.split(['/', ':']).next().unwrap_or("");
            if !(host == "localhost" || host == "[::1]" || host.starts_with("127.")) {
                errors.push(
                    ConfigError::new(
                        file,
                        field.clone(),
                        "plain http:// is allowed only for loopback registries; use https://",
                    )
                    .located(text, url),
                );
            }
            true
        } else {
            url.starts_with("https://") || url.strip_prefix("oci:").is_some_and(|p| !p.is_empty())
        };
        if !ok {
            errors.push(
                ConfigError::new(
                    file,
                    field,
                    "expected https://HOST[:PORT], http://127.0.0.1:PORT or oci:DIRECTORY",
                )
                .located(text, url),
            );
        }
    }
    if s.executor.concurrency == 0 {
        errors.push(
            ConfigError::new(file, "executor.concurrency", "must be at least 1")
                .located(text, "concurrency"),
        );
    }
}

fn check_projects(
    projects: &BTreeMap<ProjectName, ProjectFile>,
    texts: &BTreeMap<ProjectName, (String, &str)>,
    errors: &mut Vec<ConfigError>,
) {
    let names: Vec<&str> = projects.keys().map(ProjectName::as_str).collect();
    for (name, p) in projects {
        let (path, text) = &texts[name];
        for (i, dep) in p.depends_on.iter().enumerate() {
            if !projects.contains_key(dep) {
                errors.push(
                    ConfigError::new(
                        path.as_str(),
                        format!("depends_on[{i}]"),
                        format!("unknown project `{dep}`"),
                    )
                    .located(text, dep.as_str())
                    .suggest(dep.as_str(), names.iter().copied()),
                );
            }
        }
        if let Some(q) = &p.queue
            && (q.is_empty()
                || !q
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')))
        {
            errors.push(
                ConfigError::new(
                    path.as_str(),
                    "queue",
                    "a queue name is letters, digits, `-`, `_`, `.` and `/`",
                )
                .located(text, "queue"),
            );
        }
        let mut seen = BTreeSet::new();
        for img in &p.images {
            if !seen.insert(img) {
                errors.push(
                    ConfigError::new(
                        path.as_str(),
                        "images",
                        format!("image `{img}` is listed twice"),
                    )
                    .located(text, img.as_str()),
                );
            }
        }
    }
    // Images are produced by exactly one project.
    let mut producers: BTreeMap<&ImageName, &ProjectName> = BTreeMap::new();
    for (name, p) in projects {
        for img in &p.images {
            if let Some(other) = producers.insert(img, name)
                && other != name
            {
                let (path, text) = &texts[name];
                errors.push(
                    ConfigError::new(
                        path.as_str(),
                        "images",
                        format!("image `{img}` is also produced by `{other}`"),
                    )
                    .located(text, img.as_str()),
                );
            }
        }
    }
    // Dependency cycles, reported once per cycle with its path.
    let mut state: BTreeMap<&ProjectName, u8> = BTreeMap::new(); // 1 visiting, 2 done
    let mut stack: Vec<&ProjectName> = Vec::new();
    fn visit<'a>(
        n: &'a ProjectName,
        projects: &'a BTreeMap<ProjectName, ProjectFile>,
        state: &mut BTreeMap<&'a ProjectName, u8>,
        stack: &mut Vec<&'a ProjectName>,
        cycles: &mut Vec<Vec<&'a ProjectName>>,
    ) {
        match state.get(n) {
            Some(2) => return,
            Some(1) => {
                let start = stack
                    .iter()
                    .position(|s| *s == n)
                    .expect("a visiting node is on the stack");
                cycles.push(stack[start..].to_vec());
                return;
            }
            _ => {}
        }
        state.insert(n, 1);
        stack.push(n);
        for dep in projects
            .get(n)
            .map(|p| p.depends_on.as_slice())
            .unwrap_or_default()
        {
            if let Some((k, _)) = projects.get_key_value(dep) {
                visit(k, projects, state, stack, cycles);
            }
        }
        stack.pop();
        state.insert(n, 2);
    }
    let mut cycles = Vec::new();
    for n in projects.keys() {
        visit(n, projects, &mut state, &mut stack, &mut cycles);
    }
    for cycle in cycles {
        let first = cycle[0];
        let (path, text) = &texts[first];
        let mut names: Vec<String> = cycle.iter().map(|n| n.to_string()).collect();
        names.push(first.to_string());
        errors.push(
            ConfigError::new(
                path.as_str(),
                "depends_on",
                format!("dependency cycle: {}", names.join(" -> ")),
            )
            .located(text, "depends_on"),
        );
    }
}

pub use crate::model::glob_matches;

fn check_freeze(
    path: &str,
    text: &str,
    f: &FreezeFile,
    envs: &[String],
    projects: &BTreeMap<ProjectName, ProjectFile>,
    errors: &mut Vec<ConfigError>,
) {
    if f.reason.trim().is_empty() {
        errors.push(
            ConfigError::new(
                path,
                "reason",
                "must say why; it is shown wherever the freeze holds something",
            )
            .located(text, "reason"),
        );
    }
    if f.scope.is_empty() {
        errors.push(ConfigError::new(path, "scope", "must name at least one scope: `all`, `promote:<environment>` or `merge:<project glob>`").located(text, "scope"));
    }
    for (i, s) in f.scope.iter().enumerate() {
        let field = format!("scope[{i}]");
        if s == "all" {
            continue;
        }
        if let Some(env) = s.strip_prefix("promote:") {
            if !envs.iter().any(|e| e == env) {
                errors.push(
                    ConfigError::new(
                        path,
                        field,
                        format!("`{s}` matches nothing: no environment `{env}`"),
                    )
                    .located(text, s)
                    .suggest(env, envs.iter().map(String::as_str)),
                );
            }
        } else if let Some(glob) = s.strip_prefix("merge:") {
            if !projects.keys().any(|p| glob_matches(glob, p.as_str())) {
                errors.push(
                    ConfigError::new(path, field, format!("`{s}` matches no project"))
                        .located(text, s),
                );
            }
        } else {
            errors.push(
                ConfigError::new(
                    path,
                    field,
                    format!(
                        "`{s}` is not `all`, `promote:<environment>` or `merge:<project glob>`"
                    ),
                )
                .located(text, s),
            );
        }
    }
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
