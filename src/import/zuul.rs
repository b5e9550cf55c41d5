//! A Zuul v2 layout (`zuul/layout.yaml`): pipelines, project templates, job rules and
//! projects, read into plain data; and `zuul/dependencies.yaml`, which MediaWiki extensions
//! and skins are tested together. Each project's job lists are expanded here, templates
//! (and templates used by templates) included, exactly as Zuul v2 would: a template's job
//! names are formatted with the parameters the project passes, and `{name}` is the project's
//! short name (the part after the last `/`).

use std::collections::{BTreeMap, BTreeSet};

use yaml_serde::{Mapping, Value};

use super::yaml::{Doc, scalar, str_of, strs_of};
use super::{ImportError, format};

/// How a Zuul pipeline moves changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manager {
    /// `IndependentPipelineManager`.
    Independent,
    /// `DependentPipelineManager`: a gate.
    Dependent,
    /// Anything else (named).
    Other(String),
}

/// One Zuul pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// Its manager.
    pub manager: Manager,
    /// `window` and `window-floor` (dependent pipelines).
    pub window: Option<u32>,
    /// `window-floor`.
    pub window_floor: Option<u32>,
    /// Gerrit events that trigger it.
    pub events: Vec<String>,
    /// Branch filters (regular expressions) of its Gerrit triggers.
    pub branches: Vec<String>,
    /// Ref filters of its `ref-updated` triggers (`^refs/tags/.*$`).
    pub refs: Vec<String>,
    /// Cron expressions of its timer triggers.
    pub timers: Vec<String>,
    /// Its keys that the mapping does not read (reporters, precedence, requirements ...).
    pub other_keys: Vec<String>,
}

/// A job in a pipeline's list, with the jobs that run after it succeeds.
#[derive(Debug, Clone)]
pub struct JobTree {
    /// The job's name (unformatted when it comes from a template).
    pub name: String,
    /// Jobs that run once it succeeded.
    pub children: Vec<JobTree>,
}

/// Templates used, each with the parameters passed to it.
pub type Uses = Vec<(String, BTreeMap<String, String>)>;

/// A project template: job lists per pipeline, and the templates it uses in turn.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// Job lists by pipeline.
    pub pipelines: BTreeMap<String, Vec<JobTree>>,
    /// Templates it uses, with their parameters.
    pub uses: Uses,
}

/// A rule of the layout's `jobs:` section.
#[derive(Debug, Clone)]
pub struct JobRule {
    /// A job name, or a regular expression when it starts with `^`.
    pub name: String,
    /// The compiled expression (`Err` for one the engine cannot read, such as look-around).
    pub pattern: Option<Result<regex::Regex, String>>,
    /// The keys it sets, besides `name`.
    pub keys: Mapping,
}

/// One project.
#[derive(Debug, Clone)]
pub struct Project {
    /// Its Gerrit name.
    pub name: String,
    /// Templates it uses, with their parameters.
    pub uses: Uses,
    /// Its own job lists by pipeline.
    pub pipelines: BTreeMap<String, Vec<JobTree>>,
    /// `queue-name`, when the project names its gate queue itself.
    pub queue: Option<String>,
}

/// The layout.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The file it came from.
    pub doc: Doc,
    /// Pipelines in order.
    pub pipelines: Vec<Pipeline>,
    /// Templates by name.
    pub templates: BTreeMap<String, Template>,
    /// Job rules in order.
    pub rules: Vec<JobRule>,
    /// Projects in order.
    pub projects: Vec<Project>,
    /// `includes:` (Python files of parameter functions), as `kind: path`.
    pub includes: Vec<String>,
}

/// One job a project runs in one pipeline, once templates are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectJob {
    /// The job.
    pub name: String,
    /// The job that must succeed before it (Zuul's job tree), if any.
    pub after: Option<String>,
    /// The template it came from, if any.
    pub template: Option<String>,
}

/// `m[key]` as a list: missing or null is empty, anything but a list is an error at its line.
fn list<'a>(doc: &Doc, m: &'a Mapping, key: &str) -> Result<&'a [Value], ImportError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Sequence(s)) => Ok(s),
        Some(_) => Err(doc.error(&format!("{key}:"), format!("`{key}` must be a list"))),
    }
}

fn seq(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Sequence(s)) => s,
        _ => &[],
    }
}

fn uses(doc: &Doc, v: Option<&Value>) -> Result<Uses, ImportError> {
    let mut out = Vec::new();
    for t in seq(v) {
        match t {
            Value::Mapping(m) => {
                let Some(name) = str_of(m, "name") else {
                    return Err(doc.error("template:", "a template use has no `name`"));
                };
                let params = m
                    .iter()
                    .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                    .filter(|(k, _)| k != "name")
                    .collect();
                out.push((name, params));
            }
            other => match scalar(other) {
                Some(name) => out.push((name, BTreeMap::new())),
                None => return Err(doc.error("template:", "a template use is a name or a mapping")),
            },
        }
    }
    Ok(out)
}

fn trees(doc: &Doc, owner: &str, v: &Value) -> Result<Vec<JobTree>, ImportError> {
    let bad = || {
        doc.error(
            owner,
            format!("`{owner}`: a job list holds job names, or `job: [jobs after it]`"),
        )
    };
    let Value::Sequence(items) = v else {
        return match v {
            Value::Null => Ok(Vec::new()),
            _ => Err(bad()),
        };
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Mapping(m) if m.len() == 1 => {
                let (k, children) = m.iter().next().expect("one entry");
                let name = scalar(k).ok_or_else(bad)?;
                let children = match children {
                    Value::Sequence(_) => trees(doc, owner, children)?,
                    Value::Null => Vec::new(),
                    other => vec![JobTree {
                        name: scalar(other).ok_or_else(bad)?,
                        children: Vec::new(),
                    }],
                };
                out.push(JobTree { name, children });
            }
            other => out.push(JobTree {
                name: scalar(other).ok_or_else(bad)?,
                children: Vec::new(),
            }),
        }
    }
    Ok(out)
}

/// Reads a layout.
pub fn read(doc: Doc) -> Result<Layout, ImportError> {
    let Value::Mapping(top) = &doc.value else {
        return Err(doc.error(
            "",
            "a Zuul layout is a mapping (pipelines, project-templates, jobs, projects)",
        ));
    };
    const KEYS: [&str; 5] = [
        "includes",
        "pipelines",
        "project-templates",
        "jobs",
        "projects",
    ];
    if let Some(k) = top
        .keys()
        .filter_map(scalar)
        .find(|k| !KEYS.contains(&k.as_str()))
    {
        return Err(doc.error(
            &format!("{k}:"),
            format!(
                "unknown top-level key `{k}` (a Zuul v2 layout has {})",
                KEYS.join(", ")
            ),
        ));
    }
    let includes = list(&doc, top, "includes")?
        .iter()
        .filter_map(Value::as_mapping)
        .flat_map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some(format!("{}: {}", scalar(k)?, scalar(v)?)))
        })
        .collect();
    let mut pipelines = Vec::new();
    for p in list(&doc, top, "pipelines")? {
        let Some(m) = p.as_mapping() else {
            return Err(doc.error("pipelines:", "each pipeline is a mapping"));
        };
        let Some(name) = str_of(m, "name") else {
            return Err(doc.error("pipelines:", "a pipeline has no `name`"));
        };
        let manager = match str_of(m, "manager").as_deref() {
            Some("IndependentPipelineManager") | None => Manager::Independent,
            Some("DependentPipelineManager") => Manager::Dependent,
            Some(other) => Manager::Other(other.to_owned()),
        };
        let number = |key: &str| -> Result<Option<u32>, ImportError> {
            match m.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| {
                        doc.error(
                            &format!("{key}:"),
                            format!("pipeline `{name}`: `{key}` is a whole number"),
                        )
                    }),
            }
        };
        let (window, window_floor) = (number("window")?, number("window-floor")?);
        let trigger = m.get("trigger").and_then(Value::as_mapping);
        let (mut events, mut branches, mut timers, mut refs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        if let Some(t) = trigger {
            for g in seq(t.get("gerrit")) {
                if let Some(g) = g.as_mapping() {
                    events.extend(strs_of(g, "event"));
                    branches.extend(strs_of(g, "branch"));
                    refs.extend(strs_of(g, "ref"));
                }
            }
            for tm in seq(t.get("timer")) {
                if let Some(tm) = tm.as_mapping() {
                    timers.extend(strs_of(tm, "time"));
                }
            }
        }
        const READ: [&str; 6] = [
            "name",
            "manager",
            "window",
            "window-floor",
            "trigger",
            "description",
        ];
        let other_keys = m
            .keys()
            .filter_map(scalar)
            .filter(|k| !READ.contains(&k.as_str()))
            .collect();
        pipelines.push(Pipeline {
            other_keys,
            refs,
            name,
            manager,
            window,
            window_floor,
            events,
            branches,
            timers,
        });
    }
    let names: BTreeSet<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
    let job_lists = |m: &Mapping,
                     what: &str,
                     skip: &[&str]|
     -> Result<BTreeMap<String, Vec<JobTree>>, ImportError> {
        let mut out = BTreeMap::new();
        for (k, v) in m {
            let Some(k) = scalar(k) else { continue };
            if skip.contains(&k.as_str()) {
                continue;
            }
            if !names.contains(k.as_str()) {
                let known: Vec<&str> = names.iter().copied().collect();
                return Err(doc.error(
                    &format!("{k}:"),
                    format!(
                        "{what}: unknown pipeline `{k}` (the layout declares {})",
                        known.join(", ")
                    ),
                ));
            }
            out.insert(k.clone(), trees(&doc, &k, v)?);
        }
        Ok(out)
    };
    let mut templates = BTreeMap::new();
    for t in list(&doc, top, "project-templates")? {
        let Some(m) = t.as_mapping() else {
            return Err(doc.error("project-templates:", "each project template is a mapping"));
        };
        let Some(name) = str_of(m, "name") else {
            return Err(doc.error("project-templates:", "a project template has no `name`"));
        };
        let tpl = Template {
            pipelines: job_lists(
                m,
                &format!("project template `{name}`"),
                &["name", "template"],
            )?,
            uses: uses(&doc, m.get("template"))?,
        };
        if templates.insert(name.clone(), tpl).is_some() {
            return Err(doc.error(
                &format!("name: {name}"),
                format!("project template `{name}` is declared twice"),
            ));
        }
    }
    let mut rules = Vec::new();
    for j in list(&doc, top, "jobs")? {
        let Some(m) = j.as_mapping() else {
            return Err(doc.error("jobs:", "each job rule is a mapping"));
        };
        let Some(name) = str_of(m, "name") else {
            return Err(doc.error("jobs:", "a job rule has no `name`"));
        };
        let mut keys = m.clone();
        keys.remove("name");
        let pattern = name
            .starts_with('^')
            .then(|| regex::Regex::new(&name).map_err(|e| e.to_string()));
        rules.push(JobRule {
            name,
            pattern,
            keys,
        });
    }
    let mut projects = Vec::new();
    let mut seen = BTreeSet::new();
    for p in list(&doc, top, "projects")? {
        let Some(m) = p.as_mapping() else {
            return Err(doc.error("projects:", "each project is a mapping"));
        };
        let Some(name) = str_of(m, "name") else {
            return Err(doc.error("projects:", "a project has no `name`"));
        };
        if !seen.insert(name.clone()) {
            return Err(doc.error(
                &format!("name: {name}"),
                format!("project `{name}` is listed twice"),
            ));
        }
        let what = format!("project `{name}`");
        projects.push(Project {
            queue: str_of(m, "queue-name"),
            uses: uses(&doc, m.get("template"))?,
            pipelines: job_lists(m, &what, &["name", "template", "queue-name"])?,
            name,
        });
    }
    let layout = Layout {
        includes,
        doc,
        pipelines,
        templates,
        rules,
        projects,
    };
    // Every template a project or template uses exists (reported where it is used).
    for p in &layout.projects {
        for (t, _) in &p.uses {
            layout.template(t, &p.name)?;
        }
    }
    Ok(layout)
}

impl Layout {
    fn template(&self, name: &str, user: &str) -> Result<&Template, ImportError> {
        self.templates.get(name).ok_or_else(|| {
            let near = crate::config::closest(name, self.templates.keys().map(String::as_str))
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            self.doc.error(&format!("name: {name}"), format!("`{user}` uses project template `{name}`, which the layout does not declare{near}"))
        })
    }

    /// Each pipeline's jobs for `project`: its templates' (in order, recursively), then its
    /// own; a job listed twice in a pipeline counts once.
    pub fn project_jobs(
        &self,
        project: &Project,
    ) -> Result<BTreeMap<String, Vec<ProjectJob>>, ImportError> {
        let mut out: BTreeMap<String, Vec<ProjectJob>> = BTreeMap::new();
        let short = project
            .name
            .rsplit('/')
            .next()
            .unwrap_or(&project.name)
            .to_owned();
        let (mut stack, mut seen) = (Vec::new(), BTreeSet::new());
        for (t, params) in &project.uses {
            let mut params = params.clone();
            params.entry("name".into()).or_insert_with(|| short.clone());
            self.expand_template(t, &project.name, &params, &mut stack, &mut seen, &mut out)?;
        }
        for (pipeline, trees) in &project.pipelines {
            let list = out.entry(pipeline.clone()).or_default();
            flatten(trees, None, None, &|s: &str| Ok(s.to_owned()), list)?;
        }
        Ok(out)
    }

    fn expand_template(
        &self,
        name: &str,
        user: &str,
        params: &BTreeMap<String, String>,
        stack: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
        out: &mut BTreeMap<String, Vec<ProjectJob>>,
    ) -> Result<(), ImportError> {
        if stack.iter().any(|s| s == name) {
            return Err(self.doc.error(
                &format!("name: {name}"),
                format!(
                    "project templates use each other in a cycle: {} -> {name}",
                    stack.join(" -> ")
                ),
            ));
        }
        if stack.len() > 32 {
            return Err(self.doc.error(
                &format!("name: {name}"),
                "project templates nest deeper than 32",
            ));
        }
        // A template used again with the same parameters adds nothing (and templates that
        // use one another twice over would otherwise expand exponentially).
        if !seen.insert(format!("{name}\u{0}{params:?}")) {
            return Ok(());
        }
        let tpl = self.template(name, user)?;
        stack.push(name.to_owned());
        for (inner, inner_params) in &tpl.uses {
            let mut p = params.clone();
            p.extend(inner_params.clone());
            self.expand_template(inner, name, &p, stack, seen, out)?;
        }
        stack.pop();
        let fmt = |s: &str| {
            format(s, &|k| params.get(k).cloned()).map_err(|missing| {
                self.doc.error(s, format!("project template `{name}` (used by `{user}`): job `{s}` names parameter `{missing}`, which is not given"))
            })
        };
        for (pipeline, trees) in &tpl.pipelines {
            let list = out.entry(pipeline.clone()).or_default();
            flatten(trees, None, Some(name), &fmt, list)?;
        }
        Ok(())
    }

    /// The rules of the `jobs:` section that apply to `job`, in order (a name that starts
    /// with `^` is a regular expression; one the engine cannot read is `Err` with it).
    pub fn rules_for(&self, job: &str) -> Vec<Result<&JobRule, &JobRule>> {
        self.rules
            .iter()
            .filter_map(|r| match &r.pattern {
                Some(Ok(re)) => re.is_match(job).then_some(Ok(r)),
                Some(Err(_)) => Some(Err(r)),
                None => (r.name == job).then_some(Ok(r)),
            })
            .collect()
    }
}

type Fmt<'a> = dyn Fn(&str) -> Result<String, ImportError> + 'a;

fn flatten(
    trees: &[JobTree],
    after: Option<&str>,
    template: Option<&str>,
    fmt: &Fmt<'_>,
    out: &mut Vec<ProjectJob>,
) -> Result<(), ImportError> {
    for t in trees {
        let name = fmt(&t.name)?;
        if !out.iter().any(|j| j.name == name) {
            out.push(ProjectJob {
                name: name.clone(),
                after: after.map(str::to_owned),
                template: template.map(str::to_owned),
            });
        }
        flatten(&t.children, Some(&name), template, fmt, out)?;
    }
    Ok(())
}

/// `zuul/dependencies.yaml`: for each extension or skin (`Name` is
/// `mediawiki/extensions/Name`, `skins/Name` is `mediawiki/skins/Name`, a name with two or
/// more `/` is a Gerrit project as it is), the ones it must be tested with. An entry is a list
/// (whose dependencies' dependencies count too, as Wikimedia's parameter function recursed),
/// or `{dependencies: [...], recurse: false}` for exactly the ones listed.
pub fn dependencies(doc: &Doc) -> Result<BTreeMap<String, BTreeSet<String>>, ImportError> {
    let Value::Mapping(top) = &doc.value else {
        return Err(doc.error(
            "",
            "dependencies are a mapping of extension or skin to the ones it needs",
        ));
    };
    let mut direct: BTreeMap<String, (Vec<String>, bool)> = BTreeMap::new();
    for (k, v) in top {
        let Some(k) = scalar(k) else {
            return Err(doc.error("", "a dependency key is a name"));
        };
        let entry = match v {
            Value::Sequence(_) | Value::Null => {
                (seq(Some(v)).iter().filter_map(scalar).collect(), true)
            }
            Value::Mapping(m) => {
                if let Some(bad) = m
                    .keys()
                    .filter_map(scalar)
                    .find(|x| x != "dependencies" && x != "recurse")
                {
                    return Err(doc.error(
                        &format!("{bad}:"),
                        format!(
                            "`{k}`: unknown key `{bad}` (expected `dependencies` and `recurse`)"
                        ),
                    ));
                }
                let recurse = match m.get("recurse") {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => {
                        return Err(
                            doc.error("recurse:", format!("`{k}`: `recurse` is true or false"))
                        );
                    }
                };
                (strs_of(m, "dependencies"), recurse)
            }
            _ => {
                return Err(doc.error(&format!("{k}:"), format!("`{k}`: expected a list of names")));
            }
        };
        direct.insert(
            gerrit_name(&k),
            (entry.0.iter().map(|d| gerrit_name(d)).collect(), entry.1),
        );
    }
    let mut out = BTreeMap::new();
    for (name, (deps, recurse)) in &direct {
        let mut all: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = deps.clone();
        while let Some(d) = todo.pop() {
            if d == *name || !all.insert(d.clone()) {
                continue;
            }
            if *recurse && let Some((more, _)) = direct.get(&d) {
                todo.extend(more.iter().cloned());
            }
        }
        out.insert(name.clone(), all);
    }
    Ok(out)
}

/// The Gerrit project a dependencies.yaml name means.
pub fn gerrit_name(n: &str) -> String {
    match n.split_once('/') {
        None => format!("mediawiki/extensions/{n}"),
        Some(("skins", rest)) if !rest.contains('/') => format!("mediawiki/skins/{rest}"),
        Some(("extensions", rest)) if !rest.contains('/') => format!("mediawiki/extensions/{rest}"),
        _ => n.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINES: &str = "pipelines:\n  - name: test\n    manager: IndependentPipelineManager\n";

    fn layout(rest: &str) -> Result<Layout, ImportError> {
        read(super::super::yaml::parse(
            "layout.yaml",
            format!("{PIPELINES}{rest}"),
        )?)
    }

    fn jobs(l: &Layout, project: usize) -> Vec<String> {
        l.project_jobs(&l.projects[project]).unwrap()["test"]
            .iter()
            .map(|j| j.name.clone())
            .collect()
    }

    #[test]
    fn templates_of_templates_with_parameters() {
        let l = layout(
            "project-templates:\n  - name: inner\n    test: ['{name}-{lang}-lint']\n\
             \x20 - name: outer\n    template:\n      - name: inner\n        lang: php\n    test: ['{name}-unit', '{name}-unit']\n\
             projects:\n  - name: mediawiki/extensions/Cite\n    template:\n      - name: outer\n      - name: inner\n        lang: php\n",
        )
        .unwrap();
        assert_eq!(jobs(&l, 0), ["Cite-php-lint", "Cite-unit"]);
    }

    #[test]
    fn a_template_cycle_is_an_error_at_its_line() {
        let l = layout(
            "project-templates:\n  - name: a\n    template: [b]\n  - name: b\n    template: [a]\n\
             projects:\n  - name: x/y\n    template: [a]\n",
        )
        .unwrap();
        let e = l.project_jobs(&l.projects[0]).unwrap_err().to_string();
        assert!(
            e.starts_with("layout.yaml:") && e.contains("cycle: a -> b -> a"),
            "{e}"
        );
    }

    #[test]
    fn a_section_that_is_not_a_list_is_an_error_not_nothing() {
        let e = layout("projects:\n  name: x/y\n").unwrap_err().to_string();
        assert!(
            e.contains("layout.yaml:4: `projects` must be a list"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_parameter_is_an_error() {
        let l = layout(
            "project-templates:\n  - name: t\n    test: ['{name}-{lang}']\nprojects:\n  - name: x/y\n    template: [t]\n",
        )
        .unwrap();
        let e = l.project_jobs(&l.projects[0]).unwrap_err().to_string();
        assert!(
            e.contains("names parameter `lang`, which is not given"),
            "{e}"
        );
    }

    #[test]
    fn dependencies_recurse_unless_told_not_to() {
        let d = super::super::yaml::parse(
            "d.yaml",
            "A: [B]\nB: [C]\nskins/S:\n  dependencies: [A]\n  recurse: false\n".into(),
        )
        .unwrap();
        let deps = dependencies(&d).unwrap();
        let a: Vec<&str> = deps["mediawiki/extensions/A"]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(a, ["mediawiki/extensions/B", "mediawiki/extensions/C"]);
        let s: Vec<&str> = deps["mediawiki/skins/S"]
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(s, ["mediawiki/extensions/A"]);
    }
}
