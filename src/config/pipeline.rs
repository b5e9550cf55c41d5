//! A project's `.pipeline/config.yaml`, checked against the config repo's Layout: templates
//! resolved, enforced jobs merged in, and the policies on trust, images, timeouts and secrets
//! applied. The result is the list of jobs each pipeline runs, exactly as CI would run them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::error::{ConfigError, parse_yaml};
use super::files::{JobSpec, PipelineFile, PipelineKind};
use super::{Layout, Policies, glob_matches, policies};
use crate::model::ProjectName;

/// Where a project's pipeline file lives in its repository.
pub const PIPELINE_FILE: &str = ".pipeline/config.yaml";

/// A job ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedJob {
    /// Its name.
    pub name: String,
    /// Whether the config repo enforces it (the project cannot change it).
    pub enforced: bool,
    /// The image.
    pub image: String,
    /// The commands.
    pub commands: Vec<String>,
    /// The environment.
    pub env: BTreeMap<String, String>,
    /// The time limit in seconds.
    pub timeout_seconds: u64,
    /// Secrets by name.
    pub secrets: Vec<String>,
    /// Whether it may use the network.
    pub network: bool,
    /// Service images by name.
    pub services: BTreeMap<String, String>,
    /// Output file globs.
    pub output_files: Vec<String>,
    /// Names of images assembled from its outputs.
    pub output_images: Vec<String>,
    /// The declarations of those images (base, files, entrypoint ...).
    #[serde(skip)]
    pub image_outputs: Vec<super::files::ImageOutput>,
    /// CPU (a Kubernetes quantity), if the job asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory (a Kubernetes quantity), if the job asks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Other projects checked out beside its own (see `requires` in pipeline files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<ProjectName>,
    /// Dependency caches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<crate::model::CacheSpec>,
    /// Jobs of the same pipeline that must succeed first (see `needs` in pipeline files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// The image it runs in when a job it needs assembles it (`image: {from: <job>}`); its
    /// `name` is always set once the pipeline file is checked. `image` is empty then: the
    /// digest is known only once that job has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_from: Option<super::files::BuiltImage>,
}

/// (what, asked, maximum, parser, what it should look like)
type QuantityCheck<'a> = (
    &'static str,
    &'a Option<String>,
    &'a Option<String>,
    fn(&str) -> Option<u64>,
    &'static str,
);

/// What a run of a resolved job is about.
#[derive(Debug, Clone)]
pub struct RunContext<'a> {
    /// The build.
    pub build_id: crate::model::BuildId,
    /// The pipeline.
    pub pipeline: &'a str,
    /// The project.
    pub project: ProjectName,
    /// The change and patchset, for check and gate.
    pub change: Option<(crate::model::ChangeNumber, crate::model::PatchsetNumber)>,
    /// Where the source comes from.
    pub source: &'a str,
    /// The commit.
    pub commit: crate::model::CommitId,
    /// Trusted or not (from the pipeline's policy).
    pub trust: crate::model::Trust,
    /// The projects it requires: where each comes from and at which commit.
    pub required: Vec<crate::model::RequiredSource>,
}

impl ResolvedJob {
    /// The executor's view of this job, for one run.
    pub fn to_spec(&self, ctx: &RunContext<'_>) -> crate::model::JobSpec {
        let mut spec = crate::model::JobSpec {
            build_id: ctx.build_id.clone(),
            job: self.name.clone(),
            pipeline: ctx.pipeline.to_owned(),
            project: ctx.project.clone(),
            change: ctx.change,
            source: ctx.source.to_owned(),
            commit: ctx.commit.clone(),
            image: self.image.clone(),
            commands: self.commands.clone(),
            env: self.env.clone(),
            timeout_seconds: self.timeout_seconds,
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            services: self.services.clone(),
            secrets: self.secrets.clone(),
            network: self.network,
            outputs: self.output_files.clone(),
            trust: ctx.trust,
            required: ctx.required.clone(),
            caches: self.caches.clone(),
            inputs: Vec::new(),
        };
        // Each required project's checkout, named for the job's commands.
        for r in &ctx.required {
            spec.env.insert(r.variable(), r.path());
        }
        spec
    }
}

/// Which jobs each pipeline runs.
pub type ResolvedPipelines = BTreeMap<PipelineKind, Vec<ResolvedJob>>;

/// At most this many caches per job, and key files per cache.
const MAX_CACHES: usize = 8;
const MAX_CACHE_KEYS: usize = 16;

/// A workspace path a cache may use: relative, plain segments, not seakeeper's own directory.
fn cache_path_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() || p.len() > 1024 {
        return Some("an empty or over-long path");
    }
    if p.starts_with('/') {
        return Some("an absolute path; name a directory of the workspace");
    }
    if p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return Some("a path with an empty, `.` or `..` segment");
    }
    if p == ".git" || p.starts_with(".git/") || p.starts_with(".seakeeper") {
        return Some("seakeeper's own directory");
    }
    None
}

fn check_caches(
    file: &str,
    text: &str,
    field: &str,
    caches: &[super::files::Cache],
    errors: &mut Vec<ConfigError>,
) {
    if caches.len() > MAX_CACHES {
        errors.push(
            ConfigError::new(
                file,
                format!("{field}.caches"),
                format!("{} caches; at most {MAX_CACHES}", caches.len()),
            )
            .located(text, "caches:"),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in caches.iter().enumerate() {
        let f = format!("{field}.caches[{i}]");
        if let Some(problem) = cache_path_problem(&c.path) {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{f}.path"),
                    format!("{:?}: {problem}", c.path),
                )
                .located(text, &c.path),
            );
        } else if !seen.insert(c.path.as_str()) {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{f}.path"),
                    format!("{:?} is cached twice", c.path),
                )
                .located(text, &c.path),
            );
        }
        if c.key.is_empty() || c.key.len() > MAX_CACHE_KEYS {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{f}.key"),
                    format!(
                        "name 1 to {MAX_CACHE_KEYS} files whose content keys the cache \
                         (a lock file such as composer.lock)"
                    ),
                )
                .located(text, "key"),
            );
        }
        for (j, k) in c.key.iter().enumerate() {
            if let Some(problem) = cache_path_problem(k) {
                errors.push(
                    ConfigError::new(file, format!("{f}.key[{j}]"), format!("{k:?}: {problem}"))
                        .located(text, k),
                );
            }
        }
    }
}

/// Starts from the template's fields; the job's own fields win.
fn merge(template: &JobSpec, job: &JobSpec) -> JobSpec {
    let mut env = template.env.clone();
    env.extend(job.env.clone());
    let mut secrets = template.secrets.clone();
    for s in &job.secrets {
        if !secrets.contains(s) {
            secrets.push(s.clone());
        }
    }
    JobSpec {
        template: None,
        image: job.image.clone().or_else(|| template.image.clone()),
        needs: if job.needs.is_empty() {
            template.needs.clone()
        } else {
            job.needs.clone()
        },
        commands: if job.commands.is_empty() {
            template.commands.clone()
        } else {
            job.commands.clone()
        },
        env,
        timeout: job.timeout.or(template.timeout),
        resources: job.resources.clone().or_else(|| template.resources.clone()),
        services: if job.services.is_empty() {
            template.services.clone()
        } else {
            job.services.clone()
        },
        secrets,
        network: job.network || template.network,
        outputs: job.outputs.clone().or_else(|| template.outputs.clone()),
        caches: if job.caches.is_empty() {
            template.caches.clone()
        } else {
            job.caches.clone()
        },
        requires: {
            let mut r = template.requires.clone();
            for p in &job.requires {
                if !r.contains(p) {
                    r.push(p.clone());
                }
            }
            r
        },
    }
}

fn pinned(image: &str) -> bool {
    crate::model::job::is_pinned_image(image)
}

/// How an error about an image that `policies/images.yaml` marks unpinned says so.
pub const MARKED_UNPINNED: &str = "marked unpinned";

/// What [`is_job_name`] asks, in words.
const JOB_NAME_RULE: &str = "job names are plain identifiers: a letter or digit, then letters, \
                             digits, `-`, `_` and `.` (at most 128)";

/// Whether `name` is a plain identifier a job may have: it names directories, Kubernetes
/// objects and ledger paths, so `.`, `..`, leading dots or dashes, and separators never pass.
pub fn is_job_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Checks a project's pipeline file. `layout` is the config repo (templates, policies,
/// enforced jobs, the project's declared pipelines); without one, seakeeper's default policies
/// apply and templates cannot be used.
pub fn check(
    file: &str,
    text: &str,
    project: Option<&ProjectName>,
    layout: Option<&Layout>,
) -> Result<ResolvedPipelines, Vec<ConfigError>> {
    let (parsed, mut errors, broken) = parse_every_job(file, text)?;
    let default_policies;
    let policies: &Policies = match layout {
        Some(l) => &l.policies,
        None => {
            default_policies =
                policies::resolve(&[], &mut errors).expect("the shipped policies are valid");
            &default_policies
        }
    };
    let no_templates = BTreeMap::new();
    let templates = layout.map_or(&no_templates, |l| &l.templates);
    let declared = project.and_then(|p| layout.and_then(|l| l.projects.get(p)));
    if let (Some(p), Some(l)) = (project, layout)
        && !l.projects.contains_key(p)
    {
        errors.push(
            ConfigError::new(
                file,
                "",
                format!("project `{p}` has no projects/{p}.yaml in the config repo"),
            )
            .suggest(p.as_str(), l.projects.keys().map(ProjectName::as_str)),
        );
    }

    // Resolve each job through its template.
    let mut jobs: BTreeMap<&str, JobSpec> = BTreeMap::new();
    for (name, job) in &parsed.jobs {
        let field = format!("jobs.{name}");
        if !is_job_name(name) {
            errors.push(ConfigError::new(file, field.clone(), JOB_NAME_RULE).located(text, name));
        }
        let resolved = match &job.template {
            None => job.clone(),
            Some(t) => match templates.get(t) {
                Some(tpl) => merge(tpl, job),
                None => {
                    let why = if layout.is_some() {
                        ""
                    } else {
                        " (no config repo given: pass --config-repo)"
                    };
                    errors.push(
                        ConfigError::new(
                            file,
                            format!("{field}.use"),
                            format!("unknown template `{t}`{why}"),
                        )
                        .located(text, &format!("use: {t}"))
                        .suggest(t, templates.keys().map(String::as_str)),
                    );
                    continue;
                }
            },
        };
        if resolved
            .image
            .as_ref()
            .is_none_or(|i| i.reference().is_some_and(str::is_empty))
        {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{field}.image"),
                    "no image: name one, or `use:` a template that does",
                )
                .located(text, &format!("{name}:")),
            );
        }
        if resolved.commands.is_empty() {
            errors.push(
                ConfigError::new(file, format!("{field}.commands"), "no commands to run")
                    .located(text, &format!("{name}:")),
            );
        }
        if let Some(t) = resolved.timeout
            && t > policies.timeouts.maximum
        {
            errors.push(
                ConfigError::new(
                    file,
                    format!("{field}.timeout"),
                    format!(
                        "{t} is above the maximum of {} (policies/timeouts.yaml)",
                        policies.timeouts.maximum
                    ),
                )
                .located(text, "timeout"),
            );
        }
        if let Some(r) = &resolved.resources {
            let max = &policies.limits.resources.maximum;
            let checks: [QuantityCheck<'_>; 2] = [
                (
                    "cpu",
                    &r.cpu,
                    &max.cpu,
                    super::files::cpu_millis,
                    "a CPU quantity such as 2, 1.5 or 500m",
                ),
                (
                    "memory",
                    &r.memory,
                    &max.memory,
                    super::files::memory_bytes,
                    "a memory quantity such as 512Mi or 4Gi",
                ),
            ];
            for (what, asked, limit, parse, expected) in checks {
                let Some(asked) = asked else { continue };
                let f = format!("{field}.resources.{what}");
                match (parse(asked), limit.as_deref().and_then(parse)) {
                    (None, _) => errors.push(
                        ConfigError::new(file, f, format!("{asked:?} is not {expected}"))
                            .located(text, what),
                    ),
                    (Some(a), Some(m)) if a > m => errors.push(
                        ConfigError::new(
                            file,
                            f,
                            format!(
                                "{asked} is above the maximum of {} (policies/limits.yaml)",
                                limit.as_deref().unwrap_or_default()
                            ),
                        )
                        .located(text, what),
                    ),
                    _ => {}
                }
            }
        }
        check_caches(file, text, &field, &resolved.caches, &mut errors);
        for (i, p) in resolved.requires.iter().enumerate() {
            let known = layout.is_none_or(|l| l.projects.contains_key(p));
            if !known || project == Some(p) {
                errors.push(
                    ConfigError::new(
                        file,
                        format!("{field}.requires[{i}]"),
                        if known {
                            format!("`{p}` is this project: its own checkout is the workspace")
                        } else {
                            format!(
                                "unknown project `{p}` (no projects/{p}.yaml in the config repo)"
                            )
                        },
                    )
                    .located(text, p.as_str()),
                );
            }
        }
        for (i, s) in resolved.secrets.iter().enumerate() {
            if policies.secrets.rule(s).is_none() {
                let names: Vec<&str> = policies.secrets.names().collect();
                errors.push(
                    ConfigError::new(
                        file,
                        format!("{field}.secrets[{i}]"),
                        format!(
                            "unknown secret `{s}` (policies/secrets.yaml declares {})",
                            if names.is_empty() {
                                "none".to_owned()
                            } else {
                                names.join(", ")
                            }
                        ),
                    )
                    .located(text, s)
                    .suggest(s, names.iter().copied()),
                );
            }
        }
        if let Some(out) = &resolved.outputs {
            for (i, img) in out.images.iter().enumerate() {
                if !pinned(&img.base) {
                    errors.push(
                        ConfigError::new(
                            file,
                            format!("{field}.outputs.images[{i}].base"),
                            "the base image must be pinned by digest (name@sha256:<64 hex>)",
                        )
                        .located(text, &img.base),
                    );
                }
            }
        }
        jobs.insert(name.as_str(), resolved);
    }

    // Enforced jobs that apply to this project.
    let enforced: Vec<_> = policies
        .enforced_jobs
        .enforced
        .iter()
        .filter(|e| project.is_some_and(|p| e.projects.iter().any(|g| glob_matches(g, p.as_str()))))
        .collect();
    for e in &enforced {
        if parsed.jobs.contains_key(&e.name) {
            errors.push(
                ConfigError::new(file, format!("jobs.{}", e.name), format!("job `{}` is enforced by the config repo (policies/enforced-jobs.yaml); a project cannot redefine or weaken it", e.name))
                    .located(text, &format!("{}:", e.name)),
            );
        }
    }

    let mut out: ResolvedPipelines = BTreeMap::new();
    for (kind, names) in &parsed.pipelines {
        let pname = kind.as_str();
        if let Some(d) = declared
            && !d.pipelines.contains(kind)
        {
            errors.push(
                ConfigError::new(file, format!("pipelines.{pname}"), format!("the project does not take part in `{pname}` (see its projects/ file in the config repo)"))
                    .located(text, &format!("{pname}:")),
            );
        }
        let trusted = policies.is_trusted(*kind);
        let mut list = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (i, n) in names.iter().enumerate() {
            let field = format!("pipelines.{pname}[{i}]");
            if !seen.insert(n) {
                errors.push(
                    ConfigError::new(file, field.clone(), format!("job `{n}` is listed twice"))
                        .located(text, n),
                );
                continue;
            }
            let Some(job) = jobs.get(n.as_str()) else {
                if !parsed.jobs.contains_key(n) {
                    errors.push(
                        ConfigError::new(file, field, format!("unknown job `{n}`"))
                            .located(text, n)
                            .suggest(n, parsed.jobs.keys().map(String::as_str)),
                    );
                }
                continue;
            };
            if !trusted
                && job.network
                && !project.is_some_and(|p| {
                    policies
                        .trust
                        .untrusted_network
                        .iter()
                        .any(|g| glob_matches(g, p.as_str()))
                })
            {
                errors.push(
                    ConfigError::new(file, field.clone(), format!("job `{n}` asks for the network but `{pname}` is untrusted: only projects that policies/trust.yaml names in `untrusted_network` get it there"))
                        .located(text, n),
                );
            }
            if !trusted && !job.secrets.is_empty() {
                errors.push(
                    ConfigError::new(file, field.clone(), format!("job `{n}` names secrets but `{pname}` is untrusted: only trusted pipelines may use secrets"))
                        .located(text, n),
                );
            } else if let Some(p) = project {
                for s in &job.secrets {
                    if let Some(rule) = policies.secrets.rule(s)
                        && !rule.allows(p, pname)
                    {
                        errors.push(
                            ConfigError::new(file, field.clone(), format!("job `{n}` names secret `{s}`, which policies/secrets.yaml does not allow to `{p}` in `{pname}` (it allows projects {} in {})", rule.projects.join(", "), rule.pipelines.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")))
                                .located(text, n),
                        );
                    }
                }
            }
            if trusted && policies.images.require_digest_in_trusted_pipelines {
                // An image built in the same build is named by its digest when the job starts.
                let image = job
                    .image
                    .as_ref()
                    .and_then(super::files::JobImage::reference)
                    .unwrap_or_default();
                if !image.is_empty() && !pinned(image) {
                    let marked = policies
                        .images
                        .marked_unpinned(image)
                        .map_or(String::new(), |u| {
                            format!(" ({MARKED_UNPINNED} in policies/images.yaml: {})", u.reason)
                        });
                    errors.push(
                        ConfigError::new(file, format!("jobs.{n}.image"), format!("`{pname}` is trusted: pin the image by digest (name@sha256:<64 hex>){marked}"))
                            .located(text, image),
                    );
                }
                for s in &job.services {
                    if !pinned(&s.image) {
                        errors.push(
                            ConfigError::new(
                                file,
                                format!("jobs.{n}.services"),
                                format!("`{pname}` is trusted: pin service `{}` by digest", s.name),
                            )
                            .located(text, &s.image),
                        );
                    }
                }
            }
            list.push(resolve(n, job, false, policies));
        }
        out.insert(*kind, list);
    }
    for e in &enforced {
        let job = match &e.job.template {
            Some(t) => match templates.get(t) {
                Some(tpl) => merge(tpl, &e.job),
                None => continue, // reported when the Layout was loaded
            },
            None => e.job.clone(),
        };
        for kind in &e.pipelines {
            out.entry(*kind)
                .or_default()
                .push(resolve(&e.name, &job, true, policies));
        }
    }
    let defined: BTreeSet<&str> = parsed
        .jobs
        .keys()
        .map(String::as_str)
        .chain(enforced.iter().map(|e| e.name.as_str()))
        .collect();
    super::stages::check(file, text, &mut out, &defined, &broken, &mut errors);
    // A pipeline naming a job that could not be read is not a second error about that job.
    errors.retain(|e| {
        !(e.field.starts_with("pipelines")
            && broken.iter().any(|b| e.message.contains(&format!("`{b}`"))))
    });
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup_by(|a, b| a.field == b.field && a.message == b.message);
        Err(errors)
    }
}

/// Reads a pipeline file so that every error in it is reported at once, each at its line: the
/// file is read whole first (exact positions); when that fails, each job and each pipeline is
/// read on its own, so one bad job does not hide the next, and the jobs that are fine are still
/// checked. Returns the jobs and pipelines that could be read, the errors, and the names of
/// the jobs that could not. A file that is not YAML at all has only its first error.
#[allow(clippy::type_complexity)]
fn parse_every_job(
    file: &str,
    text: &str,
) -> Result<(PipelineFile, Vec<ConfigError>, BTreeSet<String>), Vec<ConfigError>> {
    use yaml_serde::Value;
    let first = match parse_yaml::<PipelineFile>(file, text) {
        Ok(p) => return Ok((p, Vec::new(), BTreeSet::new())),
        Err(e) => e,
    };
    let Ok(Value::Mapping(top)) = yaml_serde::from_str::<Value>(text) else {
        return Err(vec![first]);
    };
    let mut errors = vec![first];
    let mut broken = BTreeSet::new();
    let mut parsed = PipelineFile::default();
    let at = |path: &[&str]| crate::config::error::locate_path(text, path);
    for (key, value) in &top {
        match key.as_str() {
            Some("jobs") => {
                let Value::Mapping(jobs) = value else {
                    let mut e =
                        ConfigError::new(file, "jobs", "expected a mapping of jobs by name");
                    if let Some((l, c)) = at(&["jobs"]) {
                        e = e.at(l, c);
                    }
                    errors.push(e);
                    continue;
                };
                for (name, job) in jobs {
                    let name = match name {
                        Value::String(s) => s.clone(),
                        other => yaml_serde::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    match serde_path_to_error::deserialize::<_, JobSpec>(job.clone()) {
                        Ok(j) => {
                            parsed.jobs.insert(name, j);
                        }
                        Err(err) => {
                            let inner = err.path().to_string();
                            let message = err.into_inner().to_string();
                            let mut segments = vec!["jobs", name.as_str()];
                            // The key serde could not take is named in the message, not the path.
                            let unknown = super::error::unknown_key(&message)
                                .filter(|_| message.starts_with("unknown field"));
                            let wrong = unknown.as_ref().map(|(w, _)| w.clone());
                            let inner_segments: Vec<&str> = inner
                                .split('.')
                                .filter(|s| !s.is_empty() && *s != "?")
                                .map(|s| s.split('[').next().unwrap_or(s))
                                .collect();
                            segments.extend(inner_segments.iter().copied());
                            if let Some(w) = &wrong
                                && segments.last() != Some(&w.as_str())
                            {
                                segments.push(w);
                            }
                            let field = segments.join(".");
                            let mut e = ConfigError::new(file, field, message.clone());
                            if let Some((l, c)) = at(&segments) {
                                e = e.at(l, c);
                            }
                            if let Some((w, expected)) = &unknown {
                                e = e.suggest(w, expected.iter().map(String::as_str));
                            }
                            errors.push(e);
                            if !is_job_name(&name) {
                                errors.push(
                                    ConfigError::new(file, format!("jobs.{name}"), JOB_NAME_RULE)
                                        .located(text, &name),
                                );
                            }
                            broken.insert(name);
                        }
                    }
                }
            }
            Some("pipelines") => {
                let Value::Mapping(pipelines) = value else {
                    continue;
                };
                for (kind, jobs) in pipelines {
                    let name = kind.as_str().unwrap_or_default();
                    let read = yaml_serde::from_value::<PipelineKind>(kind.clone())
                        .map_err(|e| e.to_string())
                        .and_then(|k| {
                            yaml_serde::from_value::<Vec<String>>(jobs.clone())
                                .map(|j| (k, j))
                                .map_err(|e| e.to_string())
                        });
                    match read {
                        Ok((k, j)) => {
                            parsed.pipelines.insert(k, j);
                        }
                        Err(message) => {
                            let mut e =
                                ConfigError::new(file, format!("pipelines.{name}"), message);
                            if let Some((l, c)) = at(&["pipelines", name]) {
                                e = e.at(l, c);
                            }
                            errors
                                .push(e.suggest(name, ["check", "gate", "post-merge", "periodic"]));
                        }
                    }
                }
            }
            _ => {} // reported by the whole-file read, which found it first
        }
    }
    // The whole-file error is the precise one; the same error found again is dropped.
    let first_field = errors[0].field.clone();
    let mut seen_first = false;
    errors.retain(|e| {
        if e.field == first_field {
            let keep = !seen_first;
            seen_first = true;
            keep
        } else {
            true
        }
    });
    Ok((parsed, errors, broken))
}

fn resolve(name: &str, job: &JobSpec, enforced: bool, policies: &Policies) -> ResolvedJob {
    ResolvedJob {
        name: name.to_owned(),
        enforced,
        cpu: job
            .resources
            .as_ref()
            .and_then(|r| r.cpu.clone())
            .or_else(|| policies.limits.resources.default.cpu.clone()),
        memory: job
            .resources
            .as_ref()
            .and_then(|r| r.memory.clone())
            .or_else(|| policies.limits.resources.default.memory.clone()),
        image: job
            .image
            .as_ref()
            .and_then(super::files::JobImage::reference)
            .unwrap_or_default()
            .to_owned(),
        needs: job.needs.clone(),
        image_from: match &job.image {
            Some(super::files::JobImage::Built(b)) => Some(b.clone()),
            _ => None,
        },
        commands: job.commands.clone(),
        env: job.env.clone(),
        timeout_seconds: job.timeout.unwrap_or(policies.timeouts.default).as_secs(),
        secrets: job.secrets.clone(),
        network: job.network,
        services: job
            .services
            .iter()
            .map(|s| (s.name.clone(), s.image.clone()))
            .collect(),
        requires: job.requires.clone(),
        caches: job
            .caches
            .iter()
            .map(|c| crate::model::CacheSpec {
                path: c.path.clone(),
                key: c.key.clone(),
            })
            .collect(),
        output_files: job
            .outputs
            .as_ref()
            .map(|o| o.files.clone())
            .unwrap_or_default(),
        output_images: job
            .outputs
            .as_ref()
            .map(|o| o.images.iter().map(|i| i.name.to_string()).collect())
            .unwrap_or_default(),
        image_outputs: job
            .outputs
            .as_ref()
            .map(|o| o.images.clone())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn issue_14_job_names_are_plain_identifiers() {
        for bad in [
            ".",
            "..",
            "../x",
            "x/y",
            "-rf",
            ".hidden",
            "",
            "a b",
            &"x".repeat(129),
        ] {
            assert!(!super::is_job_name(bad), "{bad:?}");
        }
        for good in ["unit", "build.2", "lint-php_8", "0day"] {
            assert!(super::is_job_name(good), "{good:?}");
        }
    }

    #[test]
    fn issue_14_every_error_in_a_pipeline_file_at_once_each_at_its_line() {
        let text = "jobs:\n  unit:\n    image: r.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111\n    commands: [make test]\n    timout: 1m\n  lint:\n    image: r.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111\n    commands: make lint\n  ../x:\n    commands: [true]\n  fine:\n    commands: [make]\npipelines:\n  check: [unit, lint, missing, fine]\n  gaet: [unit]\n";
        let errors = super::check(".pipeline/config.yaml", text, None, None).unwrap_err();
        let got: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{} {}", e.line.unwrap_or(0), e.field, e.message))
            .collect();
        let want = [
            "5:jobs.unit.timout unknown field `timout`",
            "8:jobs.lint.commands invalid type: string \"make lint\", expected a sequence",
            "9:jobs.../x job names are plain identifiers",
            "10:jobs.../x.commands invalid type: boolean `true`",
            // A job that reads fine is still checked.
            "11:jobs.fine.image no image",
            "14:pipelines.check[2] unknown job `missing`",
            "15:pipelines.gaet unknown variant `gaet`",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g} / {w}");
        }
        // Jobs that could not be read are not also "unknown" to the pipelines naming them.
        assert!(
            !got.iter().any(|g| g.contains("unknown job `lint`")),
            "{got:#?}"
        );
    }
}
