//! One loader per file kind of the config repo (as Zuul has one parser per object):
//! `seakeeper.yaml`, `environments.yaml`, `projects/`, `promotions/`, `freezes/`,
//! `schedules.yaml`, `notifications.yaml`, `templates/`, `policies/` and `keys/`. Each reads
//! its files through one [`Reader`] (UTF-8, the parse cache, every error kept), and checks
//! what it can against what the loaders before it read; [`load_with`] runs them in order and
//! makes the Layout.

use std::collections::{BTreeMap, BTreeSet};

use super::files::{self, EnvironmentSpec, FreezeFile, JobSpec, ProjectFile, PromotionsFile};
use super::{
    ConfigError, KeyEntry, Layout, ParseCache, Policies, Settings, SourceFile, cron, glob_matches,
    pipeline, policies,
};
use crate::model::{EnvironmentName, FreezeName, ImageName, ProjectName};

/// The config files of one commit, read once each, with the errors found so far.
struct Reader<'a> {
    files: &'a BTreeMap<String, SourceFile>,
    cache: &'a mut ParseCache,
    errors: Vec<ConfigError>,
}

impl<'a> Reader<'a> {
    fn error(&mut self, e: ConfigError) {
        self.errors.push(e);
    }

    /// Whether any error so far is in a file under `prefix` (or is that file).
    fn failed(&self, prefix: &str) -> bool {
        self.errors.iter().any(|e| e.file.starts_with(prefix))
    }

    /// A file's text; `None` when it is missing or not UTF-8 (an error).
    fn text(&mut self, path: &str) -> Option<&'a str> {
        let file = self.files.get(path)?;
        match std::str::from_utf8(&file.bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(ConfigError::new(
                    path,
                    "",
                    format!("is not UTF-8 text: {e}"),
                ));
                None
            }
        }
    }

    /// A file parsed as `T` (from the cache when its content was parsed before).
    fn parse<T>(&mut self, path: &str, text: &str) -> Option<T>
    where
        T: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let key = self.files.get(path).map_or("", |f| f.key.as_str());
        match self.cache.parse::<T>(path, key, text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(e);
                None
            }
        }
    }

    /// A file that every config repo has: missing is an error saying `why`.
    fn required(&mut self, path: &str, why: &str) -> Option<&'a str> {
        if !self.files.contains_key(path) {
            self.error(ConfigError::new(path, "", why));
            return None;
        }
        self.text(path)
    }

    /// The files under `dir` (which ends in `/`), with their paths relative to it.
    fn under(
        &self,
        dir: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a str, &'a SourceFile)> + 'a {
        super::under(self.files, dir)
    }
}

/// `seakeeper.yaml`.
fn settings(r: &mut Reader<'_>) -> Option<Settings> {
    let text = r.required("seakeeper.yaml", "is missing: every config repo needs one")?;
    let settings = r.parse::<Settings>("seakeeper.yaml", text)?;
    check_settings(&settings, text, &mut r.errors);
    Some(settings)
}

/// `environments.yaml`: the environments in promotion order, and whether they are known
/// (when the file itself is broken, references to environments are not checked: every one
/// would be reported as unknown, burying the real error).
fn environments(r: &mut Reader<'_>, settings: Option<&Settings>) -> (Vec<EnvironmentSpec>, bool) {
    let errors_before = r.errors.len();
    let Some(t) = r.required(
        "environments.yaml",
        "is missing: declare at least one environment",
    ) else {
        return (Vec::new(), false);
    };
    let environments: Vec<EnvironmentSpec> = r
        .parse::<files::EnvironmentsFile>("environments.yaml", t)
        .map(|f| f.environments)
        .unwrap_or_default();
    let mut seen = BTreeSet::new();
    for (i, env) in environments.iter().enumerate() {
        let field = format!("environments[{i}]");
        if !seen.insert(env.name.clone()) {
            r.error(
                ConfigError::new(
                    "environments.yaml",
                    format!("{field}.name"),
                    format!("environment `{}` is declared twice", env.name),
                )
                .located(t, &format!("name: {}", env.name)),
            );
        }
        if let Some(s) = settings
            && !s.registries.contains_key(&env.registry)
        {
            r.error(
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
    if environments.is_empty() && !r.failed("environments.yaml") {
        r.error(ConfigError::new(
            "environments.yaml",
            "environments",
            "declares no environment",
        ));
    }
    let known = r.errors.len() == errors_before && !environments.is_empty();
    (environments, known)
}

/// `projects/<name>.yaml`: the projects, and whether they are known (every file read).
fn projects(r: &mut Reader<'_>) -> (BTreeMap<ProjectName, ProjectFile>, bool) {
    let mut projects = BTreeMap::new();
    let mut texts = BTreeMap::new();
    for (path, rest, _) in r.under("projects/") {
        let Some(name) = rest.strip_suffix(".yaml") else {
            r.error(ConfigError::new(
                path.as_str(),
                "",
                "project files end in .yaml",
            ));
            continue;
        };
        let name: ProjectName = match name.parse() {
            Ok(n) => n,
            Err(e) => {
                r.error(ConfigError::new(
                    path.as_str(),
                    "",
                    format!("the file name is not a project: {e}"),
                ));
                continue;
            }
        };
        let Some(t) = r.text(path) else {
            continue;
        };
        if let Some(p) = r.parse::<ProjectFile>(path, t) {
            projects.insert(name.clone(), p);
            texts.insert(name, (path.clone(), t));
        }
    }
    let known = !r.failed("projects/");
    if known {
        check_projects(&projects, &texts, &mut r.errors);
    }
    (projects, known)
}

/// What the loaders before promotions, freezes, schedules and policies found, to check
/// references against.
struct Known<'l> {
    env_names: Vec<String>,
    environments_known: bool,
    projects: &'l BTreeMap<ProjectName, ProjectFile>,
    projects_known: bool,
}

/// `promotions/<environment>.yaml`: which digest each image should run in each environment.
fn promotions(
    r: &mut Reader<'_>,
    known: &Known<'_>,
) -> BTreeMap<EnvironmentName, BTreeMap<ImageName, crate::model::Digest>> {
    let images: BTreeSet<&ImageName> = known
        .projects
        .values()
        .flat_map(|p| p.images.iter())
        .collect();
    let env_names = &known.env_names;
    let mut promotions = BTreeMap::new();
    for (path, rest, _) in r.under("promotions/") {
        let env = rest.strip_suffix(".yaml").unwrap_or(rest);
        if !rest.ends_with(".yaml") || rest.contains('/') {
            r.error(ConfigError::new(
                path.as_str(),
                "",
                "promotion files are promotions/<environment>.yaml",
            ));
            continue;
        }
        let Some(t) = r.text(path) else {
            continue;
        };
        if known.environments_known && !env_names.iter().any(|e| e == env) {
            r.error(
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
        let Some(p) = r.parse::<PromotionsFile>(path, t) else {
            continue;
        };
        for image in p.images.keys() {
            if known.projects_known && !images.contains(image) {
                r.error(
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
            Err(e) => r.error(ConfigError::new(path.as_str(), "", e.to_string())),
        }
    }
    promotions
}

/// `freezes/<name>.yaml`.
fn freezes(r: &mut Reader<'_>, known: &Known<'_>) -> BTreeMap<FreezeName, FreezeFile> {
    let mut freezes = BTreeMap::new();
    for (path, rest, _) in r.under("freezes/") {
        let Some(name) = rest.strip_suffix(".yaml").filter(|n| !n.contains('/')) else {
            r.error(ConfigError::new(
                path.as_str(),
                "",
                "freeze files are freezes/<name>.yaml",
            ));
            continue;
        };
        let name: FreezeName = match name.parse() {
            Ok(n) => n,
            Err(e) => {
                r.error(ConfigError::new(
                    path.as_str(),
                    "",
                    format!("the file name is not a freeze name: {e}"),
                ));
                continue;
            }
        };
        let Some(t) = r.text(path) else {
            continue;
        };
        if let Some(f) = r.parse::<FreezeFile>(path, t) {
            if known.environments_known && known.projects_known {
                check_freeze(path, t, &f, &known.env_names, known.projects, &mut r.errors);
            }
            freezes.insert(name, f);
        }
    }
    freezes
}

/// `schedules.yaml`.
fn schedules(r: &mut Reader<'_>, known: &Known<'_>) -> Vec<files::Schedule> {
    let Some(t) = r.text("schedules.yaml") else {
        return Vec::new();
    };
    let Some(f) = r.parse::<files::SchedulesFile>("schedules.yaml", t) else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    for (i, s) in f.schedules.iter().enumerate() {
        if !seen.insert(s.name.clone()) {
            r.error(
                ConfigError::new(
                    "schedules.yaml",
                    format!("schedules[{i}].name"),
                    format!("schedule `{}` is declared twice", s.name),
                )
                .located(t, &s.name),
            );
        }
        if let Err(e) = s.cron.parse::<cron::Cron>() {
            r.error(
                ConfigError::new(
                    "schedules.yaml",
                    format!("schedules[{i}].cron"),
                    format!("`{}`: {e}", s.cron),
                )
                .located(t, &s.cron),
            );
        }
        if known.projects_known && !known.projects.contains_key(&s.project) {
            r.error(
                ConfigError::new(
                    "schedules.yaml",
                    format!("schedules[{i}].project"),
                    format!("unknown project `{}`", s.project),
                )
                .located(t, s.project.as_str())
                .suggest(
                    s.project.as_str(),
                    known.projects.keys().map(ProjectName::as_str),
                ),
            );
        }
    }
    f.schedules
}

/// `notifications.yaml` (see [`super::notifications`]).
fn notifications(r: &mut Reader<'_>, known: &Known<'_>) -> files::NotificationsFile {
    let path = super::notifications::PATH;
    let Some(t) = r.text(path) else {
        return files::NotificationsFile::default();
    };
    let Some(f) = r.parse::<files::NotificationsFile>(path, t) else {
        return files::NotificationsFile::default();
    };
    let known = super::notifications::Known {
        environments: known.environments_known.then_some(&known.env_names[..]),
        projects: known.projects_known.then_some(known.projects),
    };
    r.errors.extend(super::notifications::check(&f, t, &known));
    f
}

/// `templates/<name>.yaml`: jobs that pipeline files `use`.
fn templates(r: &mut Reader<'_>) -> BTreeMap<String, JobSpec> {
    let mut templates = BTreeMap::new();
    for (path, rest, _) in r.under("templates/") {
        let Some(name) = rest
            .strip_suffix(".yaml")
            .filter(|n| !n.contains('/') && !n.is_empty())
        else {
            r.error(ConfigError::new(
                path.as_str(),
                "",
                "template files are templates/<name>.yaml",
            ));
            continue;
        };
        let Some(t) = r.text(path) else {
            continue;
        };
        match r.parse::<JobSpec>(path, t) {
            Some(job) if job.template.is_some() => {
                r.error(
                    ConfigError::new(
                        path.as_str(),
                        "use",
                        "a template cannot use another template",
                    )
                    .located(t, "use:"),
                );
            }
            Some(job) => {
                templates.insert(name.to_owned(), job);
            }
            None => {}
        }
    }
    templates
}

/// `policies/`: the defaults with the repo's overrides, and the enforced jobs checked.
fn policies(
    r: &mut Reader<'_>,
    known: &Known<'_>,
    templates: &BTreeMap<String, JobSpec>,
) -> Option<Policies> {
    let mut overrides = Vec::new();
    for (path, rest, _) in r.under("policies/") {
        if let Some(t) = r.text(path) {
            overrides.push((rest.to_owned(), t.to_owned()));
        }
    }
    let p = policies::resolve(&overrides, &mut r.errors)?;
    let enforced_text = overrides
        .iter()
        .find(|(n, _)| n == "enforced-jobs.yaml")
        .map_or("", |(_, t)| t.as_str());
    for (i, e) in p.enforced_jobs.enforced.iter().enumerate() {
        let field = format!("enforced[{i}]");
        if !pipeline::is_job_name(&e.name) {
            r.error(
                ConfigError::new(
                    "policies/enforced-jobs.yaml",
                    format!("{field}.name"),
                    "job names are plain identifiers: a letter or digit, then letters, \
                     digits, `-`, `_` and `.`",
                )
                .located(enforced_text, &e.name),
            );
        }
        if known.projects_known
            && !e
                .projects
                .iter()
                .any(|g| known.projects.keys().any(|p| glob_matches(g, p.as_str())))
        {
            r.error(ConfigError::new(
                "policies/enforced-jobs.yaml",
                format!("{field}.projects"),
                format!("enforced job `{}` matches no project", e.name),
            ));
        }
        if let Some(tpl) = &e.job.template
            && !templates.contains_key(tpl)
        {
            r.error(
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
    Some(p)
}

/// `keys/`: `<name>.asc` (the cert) and `<name>.yaml` (its roles), in pairs.
fn keys(r: &mut Reader<'_>) -> BTreeMap<String, KeyEntry> {
    let mut keys = BTreeMap::new();
    let mut roles_files = BTreeMap::new();
    for (path, rest, bytes) in r.under("keys/") {
        if let Some(name) = rest.strip_suffix(".yaml").filter(|n| !n.contains('/')) {
            let Some(t) = r.text(path) else {
                continue;
            };
            if let Some(f) = r.parse::<files::KeyRolesFile>(path, t) {
                if f.roles.is_empty() {
                    r.error(
                        ConfigError::new(path.as_str(), "roles", "names no role")
                            .located(t, "roles"),
                    );
                }
                roles_files.insert(name.to_owned(), f.roles);
            }
            continue;
        }
        let armored = bytes
            .bytes
            .starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----");
        if !rest.ends_with(".asc") || rest.contains('/') || !armored {
            r.error(ConfigError::new(
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
    let mut entries = BTreeMap::new();
    for (name, cert) in keys {
        match roles_files.remove(&name) {
            Some(roles) => {
                entries.insert(name, KeyEntry { cert, roles });
            }
            None => r.error(ConfigError::new(
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
        r.error(ConfigError::new(
            format!("keys/{name}.yaml"),
            "",
            format!("names the roles of keys/{name}.asc, which does not exist"),
        ));
    }
    entries
}

/// [`super::load`] with a parse cache, over files that carry content keys: every loader in
/// turn, then the Layout, or every error sorted by file and position.
pub fn load_with(
    files: &BTreeMap<String, SourceFile>,
    cache: &mut ParseCache,
) -> Result<Layout, Vec<ConfigError>> {
    let mut r = Reader {
        files,
        cache,
        errors: Vec::new(),
    };
    let settings = settings(&mut r);
    let (environments, environments_known) = environments(&mut r, settings.as_ref());
    let (projects, projects_known) = projects(&mut r);
    let known = Known {
        env_names: environments.iter().map(|e| e.name.to_string()).collect(),
        environments_known,
        projects: &projects,
        projects_known,
    };
    let promotions = promotions(&mut r, &known);
    let freezes = freezes(&mut r, &known);
    let schedules = schedules(&mut r, &known);
    let notifications = notifications(&mut r, &known);
    let templates = templates(&mut r);
    let policies = policies(&mut r, &known, &templates);
    let keys = keys(&mut r);
    let secrets = super::secrets::load(r.files, policies.as_ref(), &mut r.errors);
    let central_pipelines = super::central::read(r.files, &projects, projects_known, &mut r.errors);
    let mut errors = r.errors;
    if let (Some(settings), Some(policies), true) = (settings, policies, errors.is_empty()) {
        let layout = Layout {
            settings,
            environments,
            projects,
            promotions,
            freezes,
            schedules,
            notifications,
            templates,
            policies,
            keys,
            secrets,
            central_pipelines,
        };
        errors = super::central::check(&layout);
        if errors.is_empty() {
            return Ok(layout);
        }
    }
    errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    Err(errors)
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() {
        return "none".into();
    }
    names.join(", ")
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
    let (image, kind) = (&s.executor.seakeeper_image, s.executor.kind);
    let why = match image {
        Some(i) if !crate::model::job::is_pinned_image(i) => Some((
            "seakeeper_image",
            "must be pinned by digest (name@sha256:<64 lowercase hex>); a tag is refused: every job's fetch and collect steps run it",
        )),
        None if kind == files::ExecutorKind::Kubernetes => Some((
            "kind",
            "required with `kind: kubernetes`: seakeeper's own image by digest, for the fetch and collect containers (`seakeeper image self` builds it)",
        )),
        _ => None,
    };
    if let Some((at, why)) = why {
        errors.push(ConfigError::new(file, "executor.seakeeper_image", why).located(text, at));
    }
    if s.executor.concurrency == 0 {
        errors.push(
            ConfigError::new(file, "executor.concurrency", "must be at least 1")
                .located(text, "concurrency"),
        );
    }
    let g = &s.gate;
    if g.window == 0 {
        errors.push(
            ConfigError::new(file, "gate.window", "must be at least 1").located(text, "window"),
        );
    }
    if g.window_floor == 0 || g.window_floor > g.window.max(1) {
        errors.push(
            ConfigError::new(
                file,
                "gate.window_floor",
                format!("must be between 1 and the window ({})", g.window),
            )
            .located(text, "window_floor"),
        );
    }
    check_requirements(file, "gate.require", &g.require, text, errors);
}

/// Votes the gate asks for: at least one, each a label and a positive value, no label twice.
fn check_requirements(
    file: &str,
    field: &str,
    require: &[crate::config::files::VoteRequirement],
    text: &str,
    errors: &mut Vec<ConfigError>,
) {
    if require.is_empty() {
        errors.push(
            ConfigError::new(
                file,
                field,
                "name at least one vote (a gate that admits every change is no gate)",
            )
            .located(text, "require"),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, r) in require.iter().enumerate() {
        if r.label.is_empty()
            || !r
                .label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{field}[{i}].label"),
                    "a Gerrit label name (letters, digits, `-`, `_`)",
                )
                .located(text, "label"),
            );
        }
        if r.value <= 0 {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{field}[{i}].value"),
                    "must be positive (the least vote that admits)",
                )
                .located(text, "value"),
            );
        }
        if !seen.insert(&r.label) {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{field}[{i}].label"),
                    format!("`{}` is required twice", r.label),
                )
                .located(text, &r.label),
            );
        }
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
        if let Some(req) = &p.gate.require {
            check_requirements(path, "gate.require", req, text, errors);
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
        match crate::model::FreezeScope::parse(s) {
            Ok(crate::model::FreezeScope::All) => {}
            Ok(crate::model::FreezeScope::Promote(env))
                if !envs.iter().any(|e| e == env.as_str()) =>
            {
                let env = env.as_str();
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
            Ok(crate::model::FreezeScope::Promote(_)) => {}
            Ok(crate::model::FreezeScope::Merge { project, .. })
                if !projects.keys().any(|p| glob_matches(&project, p.as_str())) =>
            {
                errors.push(
                    ConfigError::new(path, field, format!("`{s}` matches no project"))
                        .located(text, s),
                );
            }
            Ok(crate::model::FreezeScope::Merge { .. }) => {}
            Err(why) => errors.push(ConfigError::new(path, field, why).located(text, s)),
        }
    }
}
