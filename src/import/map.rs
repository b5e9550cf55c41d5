//! The mapping from a Zuul v2 layout and its JJB jobs to a seakeeper config repo (the table
//! is in docs/import.md):
//!
//! - pipelines: a `DependentPipelineManager` is `gate` (its `window` and `window-floor` go
//!   to `seakeeper.yaml`), a timer-triggered one is `periodic` (its times go to
//!   `schedules.yaml`), one triggered by merges (`ref-updated`, `change-merged`) or named
//!   `post`/`postmerge`/`publish`/`promote` is `post-merge`, one triggered by new patchsets
//!   is `check`; anything else (a comment-only `experimental`) is not mapped. A pipeline's
//!   branch filters become the `branches:` of the projects that use it.
//! - each project: `projects/<name>.yaml` (pipelines, branches, its gate queue: projects
//!   that share a gate job or require each other share one, as in Zuul v2), and the central
//!   pipeline file `pipelines/<name>.yaml` with every job its templates and its own lists
//!   name, a job tree's children `needs` their parent, MediaWiki jobs `requires` what
//!   `dependencies.yaml` lists;
//! - each JJB job a project runs: `templates/<job>.yaml` (image, commands, env, timeout);
//!   an image found only by tag is pinned when its registry answers, else marked in
//!   `policies/images.yaml` as unpinned.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};

use super::images::{self, Resolve};
use super::report::{Counts, Item, PipelineMapping, ProjectJobs, Report, UnpinnedImage};
use super::zuul::{self, Manager};
use super::{Fidelity, ImportError, jjb};
use crate::config::PipelineKind;
use crate::config::pipeline::is_job_name;
use crate::model::ProjectName;

/// What the config repo needs that the layout does not say.
#[derive(Debug, Clone)]
pub struct Options {
    /// `public_url` of `seakeeper.yaml`.
    pub public_url: String,
    /// The Gerrit server, if any.
    pub gerrit_url: Option<String>,
    /// The registry of the one environment written (`production`).
    pub registry_url: String,
    /// The image of a job whose builders run no `docker run`.
    pub default_image: String,
    /// The command that stands for an image's entrypoint (`docker run IMAGE` with no command).
    pub entrypoint: String,
    /// The branch every project watches (Zuul v2 projects' `master`).
    pub default_branch: String,
    /// Whether and how long to ask registries for digests.
    pub resolve: Resolve,
}

/// The config repo's files (path -> text) and the report.
#[derive(Debug)]
pub struct Imported {
    /// Files by path.
    pub files: BTreeMap<String, String>,
    /// What was done.
    pub report: Report,
}

/// How a Zuul pipeline maps: the seakeeper pipeline, or why none.
pub fn classify(p: &zuul::Pipeline) -> Result<PipelineKind, String> {
    let named = |names: &[&str]| names.contains(&p.name.as_str());
    let event = |names: &[&str]| p.events.iter().any(|e| names.contains(&e.as_str()));
    match &p.manager {
        Manager::Dependent => Ok(PipelineKind::Gate),
        Manager::Other(m) => Err(format!("pipeline manager `{m}` has no counterpart")),
        Manager::Independent if !p.timers.is_empty() => Ok(PipelineKind::Periodic),
        Manager::Independent
            if event(&["ref-updated", "change-merged"])
                || named(&["post", "postmerge", "post-merge", "publish", "promote"]) =>
        {
            Ok(PipelineKind::PostMerge)
        }
        Manager::Independent
            if event(&["patchset-created", "draft-published"])
                || named(&["check", "test", "test-prio"]) =>
        {
            Ok(PipelineKind::Check)
        }
        Manager::Independent => Err(format!(
            "triggered only by {}: seakeeper has no on-demand pipeline",
            if p.events.is_empty() {
                "nothing it names".to_owned()
            } else {
                p.events.join(", ")
            }
        )),
    }
}

/// Whether a job is a MediaWiki job, which `dependencies.yaml` gives its `requires`.
pub fn is_mediawiki_job(name: &str) -> bool {
    name.contains("quibble")
        || ["mediawiki-", "mwext-", "mwskin-", "mwgate-", "wmf-"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// A branch filter (a regular expression) as a `branches:` glob, when it can be one.
pub fn branch_glob(re: &str) -> Option<String> {
    let s = re.strip_prefix('^').unwrap_or(re);
    let s = s.strip_suffix('$').unwrap_or(s);
    let s = s
        .replace(".*", "\u{0}")
        .replace(r"\d+", "\u{0}")
        .replace("[0-9]+", "\u{0}")
        .replace(r"\.", "\u{1}");
    if s.is_empty() || s.chars().any(|c| "()[]{}+?|\\^$.*".contains(c)) {
        return None;
    }
    Some(s.replace('\u{0}', "*").replace('\u{1}', "."))
}

/// A project's plan: jobs per seakeeper pipeline (in order), what each needs, and notes.
#[derive(Debug, Default)]
struct Plan {
    before: BTreeMap<String, Vec<String>>,
    kinds: BTreeMap<PipelineKind, Vec<String>>,
    needs: BTreeMap<String, String>,
    branches: BTreeSet<String>,
    timers: Vec<(String, String)>,
    templates: BTreeSet<String>,
    /// (fidelity, zuul pipeline, job, reason)
    notes: Vec<(Fidelity, Option<String>, Option<String>, String)>,
    /// (zuul pipeline, job, fidelity of the pipeline) for each job carried over.
    carried: Vec<(String, String, Fidelity)>,
    /// How many (Zuul pipeline, job) were not carried over at all.
    dropped: usize,
    queue_names: BTreeSet<String>,
}

/// The parameter function Wikimedia's layout uses for `dependencies.yaml`, which `requires`
/// carries over when the dependencies are given.
const DEPENDENCIES_FUNCTION: &str = "set_ext_dependencies";

fn plan(
    layout: &zuul::Layout,
    project: &zuul::Project,
    with_deps: bool,
) -> Result<Plan, ImportError> {
    let mut plan = Plan::default();
    plan.queue_names.extend(project.queue.clone());
    let jobs = layout.project_jobs(project)?;
    for (zp, list) in &jobs {
        plan.before
            .insert(zp.clone(), list.iter().map(|j| j.name.clone()).collect());
        let pipeline = layout
            .pipelines
            .iter()
            .find(|p| &p.name == zp)
            .expect("job lists name declared pipelines");
        let kind = match classify(pipeline) {
            Ok(k) => k,
            Err(why) => {
                for j in list {
                    plan.notes.push((
                        Fidelity::NotMapped,
                        Some(zp.clone()),
                        Some(j.name.clone()),
                        format!("pipeline `{zp}` is not mapped: {why}"),
                    ));
                    plan.dropped += 1;
                }
                continue;
            }
        };
        let mut pipeline_fidelity = if kind == PipelineKind::PostMerge && !pipeline.refs.is_empty()
        {
            Fidelity::Approximate
        } else {
            Fidelity::Exact
        };
        for b in &pipeline.branches {
            pipeline_fidelity = Fidelity::Approximate;
            match branch_glob(b) {
                Some(g) => {
                    plan.branches.insert(g);
                }
                None => plan.notes.push((Fidelity::Approximate, Some(zp.clone()), None, format!("branch filter `{b}` cannot be written as a branch glob; the project watches its other branches only"))),
            }
        }
        if kind == PipelineKind::Periodic && !list.is_empty() {
            for t in &pipeline.timers {
                plan.timers.push((zp.clone(), t.clone()));
            }
        }
        for j in list {
            if let Some(t) = &j.template {
                plan.templates.insert(t.clone());
            }
            // Zuul's no-op job: the pipeline runs (a gate still gates), with nothing in it.
            if j.name == "noop" {
                plan.kinds.entry(kind).or_default();
                continue;
            }
            if !is_job_name(&j.name) {
                plan.notes.push((
                    Fidelity::NotMapped,
                    Some(zp.clone()),
                    Some(j.name.clone()),
                    "not a name a seakeeper job may have (letters, digits, `-`, `_`, `.`)".into(),
                ));
                plan.dropped += 1;
                continue;
            }
            let mut fidelity = pipeline_fidelity;
            for rule in layout.rules_for(&j.name) {
                let rule = match rule {
                    Ok(r) => r,
                    Err(r) => {
                        plan.notes.push((Fidelity::Approximate, Some(zp.clone()), Some(j.name.clone()), format!("job rule `{}` is a regular expression seakeeper cannot read (look-around?); it was not applied", r.name)));
                        fidelity = Fidelity::Approximate;
                        continue;
                    }
                };
                for (k, v) in &rule.keys {
                    let k = super::yaml::scalar(k).unwrap_or_default();
                    let (f, why) = match k.as_str() {
                        "queue-name" => {
                            plan.queue_names.extend(super::yaml::scalar(v));
                            continue;
                        }
                        "voting" if v.as_bool() == Some(false) => (
                            Fidelity::Approximate,
                            "non-voting in Zuul (`voting: false`); in seakeeper every job votes"
                                .to_owned(),
                        ),
                        "voting" => continue,
                        "parameter-function"
                            if with_deps
                                && super::yaml::scalar(v).as_deref()
                                    == Some(DEPENDENCIES_FUNCTION) =>
                        {
                            continue;
                        }
                        "branch" | "skip-if" | "files" => (
                            Fidelity::Approximate,
                            format!(
                                "`{k}` of job rule `{}` has no counterpart; the job runs on every change",
                                rule.name
                            ),
                        ),
                        "parameter-function" => (
                            Fidelity::NotMapped,
                            format!(
                                "parameter function `{}`: Python run by Zuul, no counterpart",
                                super::yaml::scalar(v).unwrap_or_default()
                            ),
                        ),
                        other => (
                            Fidelity::Approximate,
                            format!("`{other}` of job rule `{}` has no counterpart", rule.name),
                        ),
                    };
                    fidelity = fidelity.max(Fidelity::Approximate);
                    plan.notes
                        .push((f, Some(zp.clone()), Some(j.name.clone()), why));
                }
            }
            let names = plan.kinds.entry(kind).or_default();
            if !names.contains(&j.name) {
                names.push(j.name.clone());
            }
            if let Some(parent) = &j.after {
                plan.needs
                    .entry(j.name.clone())
                    .or_insert_with(|| parent.clone());
            }
            plan.carried.push((zp.clone(), j.name.clone(), fidelity));
        }
    }
    // A job needs its parent only where both run (Zuul's trees are per pipeline).
    let needs = std::mem::take(&mut plan.needs);
    for (job, parent) in needs {
        let together = plan
            .kinds
            .values()
            .filter(|l| l.contains(&job))
            .all(|l| l.contains(&parent));
        if together {
            plan.needs.insert(job, parent);
        } else {
            plan.notes.push((
                Fidelity::Approximate,
                None,
                Some(job),
                format!(
                    "runs after `{parent}` in some pipelines only; it runs without waiting for it"
                ),
            ));
        }
    }
    // Two Zuul pipelines that become one seakeeper pipeline may order the same jobs both
    // ways: each edge that closes a cycle is dropped, and said so.
    for (job, parent) in super::drop_cycles(&mut plan.needs) {
        plan.notes.push((
            Fidelity::Approximate,
            None,
            Some(job),
            format!("Zuul's pipelines ran it after `{parent}` in one and before it in another; it runs without waiting"),
        ));
    }
    Ok(plan)
}

/// Every (project, seakeeper pipeline, job) the layout runs, as an import maps it.
pub fn expected(layout: &zuul::Layout) -> Result<BTreeSet<(String, String, String)>, ImportError> {
    let mut out = BTreeSet::new();
    for p in &layout.projects {
        if p.name.parse::<ProjectName>().is_err() {
            continue;
        }
        for (kind, jobs) in plan(layout, p, false)?.kinds {
            for j in jobs {
                out.insert((p.name.clone(), kind.as_str().to_owned(), j));
            }
        }
    }
    Ok(out)
}

fn yaml(v: &Json) -> String {
    yaml_serde::to_string(v).expect("JSON values are YAML")
}

struct UnionFind(BTreeMap<String, String>);

impl UnionFind {
    fn find(&mut self, x: &str) -> String {
        let parent = self
            .0
            .entry(x.to_owned())
            .or_insert_with(|| x.to_owned())
            .clone();
        if parent == x {
            return parent;
        }
        let root = self.find(&parent);
        self.0.insert(x.to_owned(), root.clone());
        root
    }
    fn union(&mut self, a: &str, b: &str) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.0.insert(hi, lo);
        }
    }
}

/// Maps the layout and its jobs to a config repo and a report; checks the result with the
/// config loader, so that what is returned passes `config check`.
pub fn import(
    layout: &zuul::Layout,
    jobs: &jjb::Jobs,
    deps: Option<&BTreeMap<String, BTreeSet<String>>>,
    opts: &Options,
) -> Result<Imported, ImportError> {
    let mut report = Report {
        layout: layout.doc.file.clone(),
        jjb_files: jobs.files,
        jjb_jobs: jobs.jobs.len(),
        ..Report::default()
    };
    // Pipelines; the gate's window from the first gate without a branch filter.
    let gates: Vec<&zuul::Pipeline> = layout
        .pipelines
        .iter()
        .filter(|p| p.manager == Manager::Dependent)
        .collect();
    let primary = gates
        .iter()
        .find(|p| p.branches.is_empty())
        .or(gates.first())
        .copied();
    // Zuul's `window: 0` is no limit: seakeeper's window is at least 1, so a large one.
    let (window, floor) = primary.map_or((20, 3), |p| {
        let w = match p.window.unwrap_or(20) {
            0 => UNLIMITED_WINDOW,
            w => w,
        };
        (w, p.window_floor.unwrap_or(3).min(w).max(1))
    });
    for p in &layout.pipelines {
        let (seakeeper, fidelity, reason) = match classify(p) {
            Err(why) => (None, Fidelity::NotMapped, why),
            Ok(k) => {
                let mut why = Vec::new();
                if k == PipelineKind::PostMerge && !p.refs.is_empty() {
                    why.push(format!(
                        "it ran on refs {}; post-merge runs on every merge",
                        p.refs.join(", ")
                    ));
                }
                if !p.branches.is_empty() {
                    why.push(format!("branch filter {} becomes the `branches:` of its projects; its jobs run on all their branches", p.branches.join(", ")));
                }
                if k == PipelineKind::Gate
                    && (
                        match p.window.unwrap_or(20) {
                            0 => UNLIMITED_WINDOW,
                            w => w,
                        },
                        p.window_floor.unwrap_or(3).min(window).max(1),
                    ) != (window, floor)
                {
                    why.push(format!(
                        "its window {}/{} differs from the gate's {window}/{floor}",
                        p.window.unwrap_or(20),
                        p.window_floor.unwrap_or(3)
                    ));
                }
                if k == PipelineKind::Gate && primary.is_some_and(|x| x.name == p.name) {
                    why.push(format!("window {window}, floor {floor}"));
                }
                let f = if why.iter().any(|w| !w.starts_with("window ")) {
                    Fidelity::Approximate
                } else {
                    Fidelity::Exact
                };
                (Some(k.as_str().to_owned()), f, why.join("; "))
            }
        };
        report.pipelines.push(PipelineMapping {
            zuul: p.name.clone(),
            seakeeper,
            fidelity,
            reason,
        });
    }

    for p in &layout.pipelines {
        for k in &p.other_keys {
            let (fidelity, why) = match k.as_str() {
                "start" | "success" | "failure" | "merge-failure" => (
                    Fidelity::Approximate,
                    "Gerrit reporting is seakeeper's own: a comment and a Verified vote per build",
                ),
                "precedence" => (
                    Fidelity::Approximate,
                    "the order pipelines are served in is `priorities` of policies/limits.yaml",
                ),
                "require" | "reject" => (
                    Fidelity::Approximate,
                    "the votes a change needs to enter the gate are `gate.require` of seakeeper.yaml (Code-Review+2)",
                ),
                _ => (Fidelity::NotMapped, "no counterpart"),
            };
            report.items.push(Item {
                fidelity,
                project: None,
                pipeline: Some(p.name.clone()),
                job: None,
                projects: Vec::new(),
                reason: format!("pipeline key `{k}`: {why}"),
            });
        }
    }
    for inc in &layout.includes {
        report.items.push(Item { fidelity: Fidelity::NotMapped, project: None, pipeline: None, job: None, projects: Vec::new(), reason: format!("`includes` {inc}: Python run by Zuul, no counterpart (its functions are listed where jobs use them)") });
    }
    // Each project's plan, and every job a project runs.
    let mut plans: BTreeMap<ProjectName, (Plan, &zuul::Project)> = BTreeMap::new();
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &layout.projects {
        let mut pl = plan(layout, p, deps.is_some())?;
        let name: ProjectName = match p.name.parse() {
            Ok(n) => n,
            Err(e) => {
                report.items.push(Item {
                    fidelity: Fidelity::NotMapped,
                    project: Some(p.name.clone()),
                    pipeline: None,
                    job: None,
                    projects: Vec::new(),
                    reason: format!("not a Gerrit project name seakeeper accepts: {e}"),
                });
                continue;
            }
        };
        for (zp, names) in &pl.before {
            for j in names {
                if j == "noop" || !is_job_name(j) || pl.kinds.values().all(|l| !l.contains(j)) {
                    continue;
                }
                if !jobs.jobs.contains_key(j) {
                    let near = crate::config::closest(j, jobs.jobs.keys().map(String::as_str))
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    return Err(layout.doc.error(j, format!("project `{}`, pipeline `{zp}`: unknown job `{j}`: no JJB file defines it{near}", p.name)));
                }
                users.entry(j.clone()).or_default().insert(p.name.clone());
            }
        }
        pl.notes.retain(|n| n.0 != Fidelity::Exact);
        plans.insert(name, (pl, p));
    }
    report.projects = plans.len();

    // Images: pinned where a registry answers.
    let image_of = |j: &jjb::Job| {
        j.image
            .clone()
            .unwrap_or_else(|| opts.default_image.clone())
    };
    let wanted: BTreeSet<String> = users
        .keys()
        .filter_map(|j| jobs.jobs.get(j))
        .map(image_of)
        .collect();
    let pins = images::resolve(&wanted, opts.resolve);
    let mut unpinned: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();

    // Templates: one per job a project runs.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut job_fidelity: BTreeMap<String, Fidelity> = BTreeMap::new();
    // The longest a job may run: the maximum of seakeeper's default timeouts policy (the one
    // the imported repo has).
    let max_minutes = crate::config::policies::resolve(&[], &mut Vec::new())
        .map_or(180, |p| p.timeouts.maximum.as_secs() / 60);
    for (name, projects) in &users {
        let j = &jobs.jobs[name];
        let mut notes = j.notes.clone();
        let image = image_of(j);
        if j.image.is_none() {
            notes.push((
                Fidelity::Approximate,
                format!(
                    "no `docker run`: it ran on a Jenkins agent; it runs in the default image `{}`",
                    opts.default_image
                ),
            ));
        }
        let image = match &pins[&image] {
            Ok(pinned) => {
                if *pinned != image {
                    report.pinned_images.insert(image.clone(), pinned.clone());
                }
                pinned.clone()
            }
            Err(why) => {
                unpinned
                    .entry(image.clone())
                    .or_insert_with(|| (why.clone(), Vec::new()))
                    .1
                    .push(name.clone());
                image
            }
        };
        let commands: Vec<String> = j
            .commands
            .iter()
            .map(|c| c.replace(super::builders::ENTRYPOINT, &opts.entrypoint))
            .collect();
        let mut spec = serde_json::Map::new();
        spec.insert("image".into(), json!(image));
        if commands.is_empty() {
            // Fail closed: a job none of whose builders could be carried over fails, saying
            // so, rather than passing having done nothing.
            notes.push((
                Fidelity::NotMapped,
                "no builder could be carried over: the job fails, saying so, until it is written by hand".into(),
            ));
            spec.insert(
                "commands".into(),
                json!([format!(
                    "echo 'not imported: {} could not be carried over from Jenkins (see IMPORTED.md)' >&2; exit 1",
                    name.replace('\'', "")
                )]),
            );
        } else {
            spec.insert("commands".into(), json!(commands));
        }
        if !j.env.is_empty() {
            spec.insert("env".into(), json!(j.env));
        }
        if let Some(m) = j.timeout_minutes {
            if m > max_minutes {
                notes.push((
                    Fidelity::Approximate,
                    format!("timeout {m}m is above seakeeper's maximum; it is {max_minutes}m"),
                ));
            }
            spec.insert(
                "timeout".into(),
                json!(format!("{}m", m.clamp(1, max_minutes))),
            );
        }
        let f = notes.iter().map(|n| n.0).max().unwrap_or(Fidelity::Exact);
        job_fidelity.insert(
            name.clone(),
            if f == Fidelity::Exact {
                f
            } else {
                Fidelity::Approximate
            },
        );
        for (fidelity, reason) in notes {
            report.items.push(Item {
                fidelity,
                project: None,
                pipeline: None,
                job: Some(name.clone()),
                projects: projects.iter().cloned().collect(),
                reason,
            });
        }
        let header = format!(
            "# JJB job `{name}` ({}{}), imported by `seakeeper import zuul`.\n",
            j.file,
            j.line.map(|l| format!(":{l}")).unwrap_or_default()
        );
        files.insert(
            format!("templates/{name}.yaml"),
            header + &yaml(&Json::Object(spec)),
        );
    }
    for (image, (reason, jobs)) in &unpinned {
        report.unpinned_images.push(UnpinnedImage {
            image: image.clone(),
            reason: reason.clone(),
            jobs: jobs.clone(),
        });
    }

    // Queues: projects that share a gate job, or require one another, share a gate queue.
    let mut uf = UnionFind(BTreeMap::new());
    let mut by_gate_job: BTreeMap<&str, &ProjectName> = BTreeMap::new();
    let requires_of = |p: &ProjectName| -> Vec<String> {
        deps.and_then(|d| d.get(p.as_str()))
            .map(|s| {
                s.iter()
                    .filter(|x| layout.projects.iter().any(|lp| &lp.name == *x))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    for (name, (pl, _)) in &plans {
        uf.find(name.as_str());
        for j in pl
            .kinds
            .get(&PipelineKind::Gate)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            match by_gate_job.get(j.as_str()) {
                Some(first) => uf.union(first.as_str(), name.as_str()),
                None => {
                    by_gate_job.insert(j, name);
                }
            }
        }
        if pl.kinds.contains_key(&PipelineKind::Gate) {
            for r in requires_of(name) {
                if r.parse::<ProjectName>().is_ok_and(|r| {
                    plans
                        .get(&r)
                        .is_some_and(|(o, _)| o.kinds.contains_key(&PipelineKind::Gate))
                }) {
                    uf.union(name.as_str(), &r);
                }
            }
        }
    }
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in plans.keys() {
        members
            .entry(uf.find(name.as_str()))
            .or_default()
            .push(name.to_string());
    }
    let queue_name = |root: &str| -> Option<String> {
        let m = &members[root];
        let named = m
            .iter()
            .filter_map(|p| plans.get(&p.parse::<ProjectName>().ok()?))
            .flat_map(|(pl, _)| pl.queue_names.iter())
            .next()
            .cloned();
        if m.len() < 2 && named.is_none() {
            return None;
        }
        let raw = named.unwrap_or_else(|| root.to_owned());
        Some(
            raw.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect(),
        )
    };

    // Projects, central pipeline files, schedules.
    let mut schedules = Vec::new();
    for (name, (pl, zp)) in &plans {
        let mut pj = ProjectJobs {
            before: pl.before.clone(),
            ..ProjectJobs::default()
        };
        let mut project = serde_json::Map::new();
        if let Some(q) = queue_name(&uf.find(name.as_str())) {
            project.insert("queue".into(), json!(q));
        }
        project.insert(
            "pipelines".into(),
            json!(pl.kinds.keys().map(|k| k.as_str()).collect::<Vec<_>>()),
        );
        let mut branches = vec![opts.default_branch.clone()];
        branches.extend(
            pl.branches
                .iter()
                .filter(|b| **b != opts.default_branch)
                .cloned(),
        );
        project.insert("branches".into(), json!(branches));
        let mut header = format!(
            "# Imported from Zuul project `{}` ({}).\n",
            zp.name, layout.doc.file
        );
        if !pl.templates.is_empty() {
            header.push_str(&format!(
                "# Zuul project templates: {}.\n",
                pl.templates.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        files.insert(
            format!("projects/{name}.yaml"),
            header + &yaml(&Json::Object(project)),
        );

        let requires = requires_of(name);
        if let Some(all) = deps.and_then(|d| d.get(name.as_str())) {
            for missing in all.iter().filter(|d| !requires.contains(d)) {
                report.items.push(Item {
                    fidelity: Fidelity::NotMapped,
                    project: Some(name.to_string()),
                    pipeline: None,
                    job: None,
                    projects: Vec::new(),
                    reason: format!(
                        "dependency `{missing}` (dependencies.yaml) is not a project of the layout"
                    ),
                });
            }
        }
        let mut job_entries = serde_json::Map::new();
        let mut pipelines = serde_json::Map::new();
        for (kind, list) in &pl.kinds {
            pipelines.insert(kind.as_str().into(), json!(list));
            pj.after.insert(kind.as_str().into(), list.clone());
            for j in list {
                let mut e = serde_json::Map::new();
                e.insert("use".into(), json!(j));
                if let Some(parent) = pl.needs.get(j) {
                    e.insert("needs".into(), json!([parent]));
                }
                if is_mediawiki_job(j) && !requires.is_empty() {
                    e.insert("requires".into(), json!(requires));
                }
                job_entries.insert(j.clone(), Json::Object(e));
            }
        }
        if !pl.kinds.is_empty() {
            let text = format!(
                "# The jobs Zuul ran for {name}, kept centrally as they were in Zuul's layout.\n\
                 # The project takes them over by committing this file as .pipeline/config.yaml.\n"
            ) + &yaml(&json!({"jobs": job_entries, "pipelines": pipelines}));
            files.insert(format!("{}{name}.yaml", crate::config::central::DIR), text);
        }
        for (i, (zpipe, cron)) in pl.timers.iter().enumerate() {
            if cron.parse::<crate::config::cron::Cron>().is_err() {
                report.items.push(Item {
                    fidelity: Fidelity::NotMapped,
                    project: Some(name.to_string()),
                    pipeline: Some(zpipe.clone()),
                    job: None,
                    projects: Vec::new(),
                    reason: format!("timer `{cron}` is not a cron expression seakeeper reads"),
                });
                continue;
            }
            schedules.push(json!({"name": format!("{zpipe}:{name}:{i}"), "cron": cron, "project": name.as_str(), "branch": opts.default_branch}));
        }
        for (f, pipeline, job, reason) in &pl.notes {
            report.items.push(Item {
                fidelity: *f,
                project: Some(name.to_string()),
                pipeline: pipeline.clone(),
                job: job.clone(),
                projects: Vec::new(),
                reason: reason.clone(),
            });
        }
        let mut counts = Counts::default();
        for (_, job, f) in &pl.carried {
            counts.add((*f).max(job_fidelity.get(job).copied().unwrap_or(Fidelity::Exact)));
        }
        counts.not_mapped += pl.dropped;
        report.counts.exact += counts.exact;
        report.counts.approximate += counts.approximate;
        report.counts.not_mapped += counts.not_mapped;
        report.jobs.insert(name.to_string(), pj);
    }
    report.items.sort();
    fixed_files(&mut files, layout, opts, window, floor, &report, schedules);
    let bytes: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(p, t)| (p.clone(), t.clone().into_bytes()))
        .collect();
    if let Err(errors) = crate::config::load(&bytes) {
        let shown: Vec<String> = errors.iter().take(50).map(ToString::to_string).collect();
        return Err(ImportError::Invalid(shown.join("\n")));
    }
    Ok(Imported { files, report })
}

/// `seakeeper.yaml`, `environments.yaml`, the policies that differ from the defaults,
/// `schedules.yaml` and a README with the summary.
fn fixed_files(
    files: &mut BTreeMap<String, String>,
    layout: &zuul::Layout,
    opts: &Options,
    window: u32,
    floor: u32,
    report: &Report,
    schedules: Vec<Json>,
) {
    let mut settings = json!({
        "public_url": opts.public_url,
        "registries": {"production": {"url": opts.registry_url}},
        "gate": {"window": window, "window_floor": floor.min(window).max(1)},
    });
    if let Some(g) = &opts.gerrit_url {
        settings["gerrit"] = json!({"url": g});
    }
    let from = format!(
        "# Imported from {} by `seakeeper import zuul`.\n",
        layout.doc.file
    );
    files.insert(
        "seakeeper.yaml".into(),
        from.clone()
            + "# Set public_url, gerrit and registries for this deployment.\n"
            + &yaml(&settings),
    );
    files.insert(
        "environments.yaml".into(),
        from.clone()
            + &yaml(&json!({"environments": [{"name": "production", "registry": "production"}]})),
    );
    let unpinned: Vec<Json> = report
        .unpinned_images
        .iter()
        .map(|u| json!({"image": u.image, "reason": u.reason}))
        .collect();
    files.insert(
        "policies/images.yaml".into(),
        from.clone()
            + "# `unpinned`: images kept as tags because no registry gave their digest at import.\n\
               # Trusted pipelines refuse to run them until each is pinned by digest.\n"
            + &yaml(&json!({"require_digest_in_trusted_pipelines": true, "unpinned": unpinned})),
    );
    if !schedules.is_empty() {
        files.insert(
            "schedules.yaml".into(),
            from.clone() + &yaml(&json!({"schedules": schedules})),
        );
    }
    files.insert(
        "IMPORTED.md".into(),
        format!("# Imported from Zuul\n\n```\n{}```\n", report.full()),
    );
}

/// The gate's window for Zuul's `window: 0` (no limit).
const UNLIMITED_WINDOW: u32 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_filters_as_globs() {
        assert_eq!(branch_glob("^wmf/.*$").as_deref(), Some("wmf/*"));
        assert_eq!(branch_glob(r"^REL1_\d+$").as_deref(), Some("REL1_*"));
        assert_eq!(branch_glob("^master$").as_deref(), Some("master"));
        assert_eq!(branch_glob("^(?!REL1_27).*$"), None);
    }
}
