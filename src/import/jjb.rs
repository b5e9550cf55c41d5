//! Jenkins Job Builder definitions (`jjb/*.yaml`), expanded as JJB expands them: `job`s as
//! they are; `job-template`s for every `project:` that lists them (directly or through a
//! `job-group`, groups of groups too), once per combination of the list-valued parameters
//! (a list item may be `{value: {more: params}}`); parameters from `defaults`, the template,
//! the project, the group and the project's entry, in rising precedence; `{name}`-style
//! formatting with `{{`/`}}` escapes and `{key|default}`; builder macros with parameters,
//! macros calling macros; `!include-raw:` (formatted in templates), `!include-raw-escape:`
//! and `!include-raw-verbatim:` (never formatted) and `!include:` (YAML) read relative to the
//! file. What a job does is then read from its builders ([`super::map`] decides the rest).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

use super::yaml::{self, Doc, scalar, str_of};
use super::{Fidelity, ImportError, format};

/// Parameters by name.
pub type Params = BTreeMap<String, Value>;

/// One expanded job, as its builders, wrappers and other keys say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its name.
    pub name: String,
    /// Where it is defined (file, line).
    pub file: String,
    /// The line of its definition (of the template, for an expanded one).
    pub line: Option<usize>,
    /// The image a `docker run` builder names.
    pub image: Option<String>,
    /// What runs, in order.
    pub commands: Vec<String>,
    /// Environment given to `docker run` (`-e K=V`).
    pub env: BTreeMap<String, String>,
    /// The `timeout` wrapper, in minutes.
    pub timeout_minutes: Option<u64>,
    /// What could not be carried over exactly.
    pub notes: Vec<(Fidelity, String)>,
}

/// Every job of the JJB files, by name.
#[derive(Debug, Default)]
pub struct Jobs {
    /// Jobs by name.
    pub jobs: BTreeMap<String, Job>,
    /// How many files were read.
    pub files: usize,
}

struct Def {
    doc: usize,
    body: Mapping,
}

#[derive(Default)]
struct Defs {
    docs: Vec<Doc>,
    defaults: BTreeMap<String, Def>,
    macros: BTreeMap<String, Def>,
    other_macros: BTreeMap<String, String>,
    jobs: BTreeMap<String, Def>,
    templates: BTreeMap<String, Def>,
    groups: BTreeMap<String, Def>,
    projects: Vec<Def>,
}

/// The most jobs one project entry may expand to (a guard against a parameter explosion).
const MAX_COMBINATIONS: usize = 10_000;

/// Reads every `*.yaml` and `*.yml` under `dir` and expands every job.
pub fn read(dir: &Path) -> Result<Jobs, ImportError> {
    let mut paths = Vec::new();
    collect(dir, 0, &mut paths)?;
    paths.sort();
    let mut defs = Defs::default();
    for path in &paths {
        let doc = yaml::load(path)?;
        let n = defs.docs.len();
        add(&mut defs, &doc, n)?;
        defs.docs.push(doc);
    }
    let mut out = Jobs {
        files: paths.len(),
        ..Jobs::default()
    };
    for (name, def) in &defs.jobs {
        let body = render(&defs, def.doc, &Value::Mapping(def.body.clone()), None, 0)?;
        let job = job(&defs, def.doc, name, as_map(body), &BTreeMap::new())?;
        out.jobs.insert(name.clone(), job);
    }
    for p in &defs.projects {
        expand_project(&defs, p, &mut out.jobs)?;
    }
    Ok(out)
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    let io = |e| ImportError::Io {
        path: dir.display().to_string(),
        source: e,
    };
    if depth > 16 {
        return Err(ImportError::Output(format!(
            "{}: directories nest too deep",
            dir.display()
        )));
    }
    for e in std::fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let path = e.path();
        let kind = e.file_type().map_err(io)?;
        if kind.is_dir() {
            collect(&path, depth + 1, out)?;
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn as_map(v: Value) -> Mapping {
    match v {
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    }
}

fn add(defs: &mut Defs, doc: &Doc, n: usize) -> Result<(), ImportError> {
    let items = match &doc.value {
        Value::Sequence(s) => s.as_slice(),
        Value::Null => &[],
        _ => return Err(doc.error(
            "",
            "a JJB file is a list of definitions (`- job:`, `- job-template:`, `- project:` ...)",
        )),
    };
    for item in items {
        let Some((kind, body)) = item
            .as_mapping()
            .filter(|m| m.len() == 1)
            .and_then(|m| m.iter().next())
        else {
            return Err(doc.error("- ", "each definition is a mapping with one key: its kind"));
        };
        let kind = scalar(kind).unwrap_or_default();
        let Some(body) = body.as_mapping() else {
            return Err(doc.error(&format!("{kind}:"), format!("`{kind}`: expected a mapping")));
        };
        let name = str_of(body, "name");
        let def = Def {
            doc: n,
            body: body.clone(),
        };
        let Some(name) = name else {
            return Err(doc.error(&format!("{kind}:"), format!("a `{kind}` has no `name`")));
        };
        let slot = match kind.as_str() {
            "job" => &mut defs.jobs,
            "job-template" => &mut defs.templates,
            "job-group" => &mut defs.groups,
            "defaults" => &mut defs.defaults,
            "builder" => &mut defs.macros,
            "project" => {
                defs.projects.push(def);
                continue;
            }
            "publisher" | "wrapper" | "trigger" | "scm" | "property" | "parameter" | "reporter" | "view" | "view-template" => {
                defs.other_macros.insert(name, kind);
                continue;
            }
            other => return Err(doc.error(&format!("{other}:"), format!("unknown JJB definition `{other}` (expected job, job-template, job-group, project, defaults or a macro)"))),
        };
        if slot.insert(name.clone(), def).is_some() && kind != "defaults" {
            return Err(doc.error(
                &format!("name: {name}"),
                format!("{kind} `{name}` is defined twice"),
            ));
        }
    }
    Ok(())
}

/// A copy of `v` with includes read and, when `params` are given, every string formatted.
fn render(
    defs: &Defs,
    doc: usize,
    v: &Value,
    params: Option<&Params>,
    depth: usize,
) -> Result<Value, ImportError> {
    let d = &defs.docs[doc];
    if depth > 64 {
        return Err(d.error("", "definitions nest deeper than 64 levels"));
    }
    let fmt = |s: &str| -> Result<String, ImportError> {
        match params {
            None => Ok(s.to_owned()),
            Some(p) => format(s, &|k| lookup(p, k)).map_err(|missing| {
                d.error(
                    s.lines().next().unwrap_or(s),
                    format!(
                        "`{}` names parameter `{missing}`, which is not given",
                        s.lines().next().unwrap_or(s)
                    ),
                )
            }),
        }
    };
    Ok(match v {
        Value::String(s) => Value::String(fmt(s)?),
        Value::Sequence(s) => Value::Sequence(
            s.iter()
                .map(|x| render(defs, doc, x, params, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(m) => {
            let mut out = Mapping::new();
            for (k, x) in m {
                let k = match k {
                    Value::String(s) => Value::String(fmt(s)?),
                    other => other.clone(),
                };
                out.insert(k, render(defs, doc, x, params, depth + 1)?);
            }
            Value::Mapping(out)
        }
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!').trim_end_matches(':');
            let names: Vec<String> = match &t.value {
                Value::Sequence(s) => s.iter().filter_map(scalar).collect(),
                other => scalar(other).into_iter().collect(),
            };
            match tag {
                "include-raw"
                | "include-raw-escape"
                | "include-raw-verbatim"
                | "include-raw-expand" => {
                    let mut text = String::new();
                    for n in &names {
                        let path = include_path(d, n)?;
                        let raw = yaml::read_text(&path)
                            .map_err(|e| d.error(n, format!("`!{tag}: {n}`: {e}")))?;
                        text.push_str(&raw);
                    }
                    let expand = matches!(tag, "include-raw" | "include-raw-expand");
                    Value::String(if expand { fmt(&text)? } else { text })
                }
                "include" => {
                    let n = names.first().cloned().unwrap_or_default();
                    let path = include_path(d, &n)?;
                    let inc = yaml::load(&path)
                        .map_err(|e| d.error(&n, format!("`!include: {n}`: {e}")))?;
                    render(defs, doc, &inc.value, params, depth + 1)?
                }
                _ => v.clone(),
            }
        }
        other => other.clone(),
    })
}

fn include_path(d: &Doc, name: &str) -> Result<PathBuf, ImportError> {
    if name.is_empty() {
        return Err(d.error("!include", "an include names no file"));
    }
    let base = Path::new(&d.file).parent().unwrap_or(Path::new("."));
    Ok(base.join(name))
}

/// A parameter as text, formatted with the others (JJB lets values name other parameters).
fn lookup(p: &Params, key: &str) -> Option<String> {
    let v = scalar(p.get(key)?)?;
    let mut s = v;
    for _ in 0..4 {
        if !s.contains('{') {
            break;
        }
        match format(&s, &|k| {
            if k == key {
                None
            } else {
                p.get(k).and_then(scalar)
            }
        }) {
            Ok(next) if next != s => s = next,
            _ => break,
        }
    }
    Some(s)
}

fn params_of(m: &Mapping, skip: &[&str]) -> Params {
    m.iter()
        .filter_map(|(k, v)| Some((scalar(k)?, v.clone())))
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .collect()
}

/// An entry of a `jobs:` list: a name, or `{name: {params}}`.
fn entry(v: &Value) -> Option<(String, Params)> {
    match v {
        Value::Mapping(m) if m.len() == 1 => {
            let (k, p) = m.iter().next()?;
            Some((
                scalar(k)?,
                p.as_mapping()
                    .map(|p| params_of(p, &[]))
                    .unwrap_or_default(),
            ))
        }
        other => Some((scalar(other)?, Params::new())),
    }
}

fn expand_project(
    defs: &Defs,
    p: &Def,
    out: &mut BTreeMap<String, Job>,
) -> Result<(), ImportError> {
    let d = &defs.docs[p.doc];
    let pname = str_of(&p.body, "name").unwrap_or_default();
    let params = params_of(&p.body, &["jobs"]);
    let jobs = match p.body.get("jobs") {
        Some(Value::Sequence(jobs)) => jobs,
        None | Some(Value::Null) => return Ok(()),
        Some(_) => {
            return Err(d.error(
                &format!("name: {pname}"),
                format!("project `{pname}`: `jobs` must be a list"),
            ));
        }
    };
    for j in jobs {
        let Some((name, entry_params)) = entry(j) else {
            return Err(d.error(
                &format!("name: {pname}"),
                format!("project `{pname}`: a `jobs` entry is a name or `name: {{params}}`"),
            ));
        };
        expand_entry(
            defs,
            p.doc,
            &pname,
            &name,
            &params,
            &entry_params,
            &mut Vec::new(),
            out,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn expand_entry(
    defs: &Defs,
    doc: usize,
    project: &str,
    name: &str,
    outer: &Params,
    entry_params: &Params,
    groups: &mut Vec<String>,
    out: &mut BTreeMap<String, Job>,
) -> Result<(), ImportError> {
    let d = &defs.docs[doc];
    if let Some(g) = defs.groups.get(name) {
        if groups.iter().any(|x| x == name) || groups.len() > 16 {
            return Err(d.error(
                name,
                format!(
                    "job-groups contain each other in a cycle: {} -> {name}",
                    groups.join(" -> ")
                ),
            ));
        }
        let mut params = outer.clone();
        params.extend(params_of(&g.body, &["name", "jobs"]));
        params.extend(entry_params.clone());
        groups.push(name.to_owned());
        if let Some(Value::Sequence(items)) = g.body.get("jobs") {
            for item in items {
                let Some((n, p)) = entry(item) else { continue };
                expand_entry(defs, g.doc, project, &n, &params, &p, groups, out)?;
            }
        }
        groups.pop();
        return Ok(());
    }
    if let Some(t) = defs.templates.get(name) {
        let mut params = defaults_of(defs, &t.body);
        params.extend(params_of(&t.body, &["name"]).into_iter().filter(|(_, v)| {
            !matches!(v, Value::Mapping(_) | Value::Sequence(_) | Value::Tagged(_))
        }));
        params.extend(outer.clone());
        params.extend(entry_params.clone());
        let combos = combinations(&params);
        if combos.len() > MAX_COMBINATIONS {
            return Err(d.error(project, format!("project `{project}`: `{name}` expands to {} jobs, over the limit of {MAX_COMBINATIONS}", combos.len())));
        }
        for combo in combos {
            let td = &defs.docs[t.doc];
            let job_name = format(name, &|k| lookup(&combo, k)).map_err(|missing| d.error(project, format!("project `{project}`: job template `{name}` names parameter `{missing}`, which neither the project nor the template gives (template at {})", td.file)))?;
            let body = render(
                defs,
                t.doc,
                &Value::Mapping(t.body.clone()),
                Some(&combo),
                0,
            )
            .map_err(|e| match e {
                ImportError::Input {
                    file,
                    line,
                    message,
                } => ImportError::Input {
                    file,
                    line,
                    message: format!("{message} (expanding `{name}` for project `{project}`)"),
                },
                other => other,
            })?;
            let job = job(defs, t.doc, &job_name, as_map(body), &combo)?;
            if let Some(prev) = out.get(&job_name)
                && (prev.commands != job.commands || prev.image != job.image)
            {
                return Err(d.error(project, format!("job `{job_name}` is defined twice, differently (project `{project}` expands `{name}` to a job that already exists)")));
            }
            out.insert(job_name, job);
        }
        return Ok(());
    }
    if defs.jobs.contains_key(name) {
        return Ok(());
    }
    let known = defs
        .templates
        .keys()
        .chain(defs.groups.keys())
        .chain(defs.jobs.keys());
    let near = crate::config::closest(name, known.map(String::as_str))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    Err(d.error(
        name,
        format!(
            "project `{project}` lists `{name}`, which is no job-template, job-group or job{near}"
        ),
    ))
}

fn defaults_of(defs: &Defs, body: &Mapping) -> Params {
    let name = str_of(body, "defaults").unwrap_or_else(|| "global".into());
    defs.defaults
        .get(&name)
        .map(|d| params_of(&d.body, &["name"]))
        .unwrap_or_default()
}

/// Every combination of the list-valued parameters (a list item `{value: {k: v}}` is the
/// value `value` with `k: v` added).
fn combinations(params: &Params) -> Vec<Params> {
    // Each combination with the parameters its list entries add, which win over the
    // project's own (JJB: `{php74: {tag: 0.0.7}}` gives that entry its tag).
    let mut out: Vec<(Params, Params)> = vec![(Params::new(), Params::new())];
    for (k, v) in params {
        let choices: Vec<(Value, Params)> = match v {
            Value::Sequence(items) => items
                .iter()
                .map(|i| match i {
                    Value::Mapping(m) if m.len() == 1 => {
                        let (val, extra) = m.iter().next().expect("one entry");
                        (
                            val.clone(),
                            extra
                                .as_mapping()
                                .map(|e| params_of(e, &[]))
                                .unwrap_or_default(),
                        )
                    }
                    other => (other.clone(), Params::new()),
                })
                .collect(),
            other => vec![(other.clone(), Params::new())],
        };
        let mut next = Vec::with_capacity(out.len() * choices.len().max(1));
        for (base, added) in &out {
            for (val, extra) in &choices {
                let mut p = base.clone();
                p.insert(k.clone(), val.clone());
                let mut a = added.clone();
                for (ek, ev) in extra {
                    a.insert(ek.clone(), ev.clone());
                }
                next.push((p, a));
            }
            if next.len() > MAX_COMBINATIONS {
                break;
            }
        }
        out = next;
        if out.len() > MAX_COMBINATIONS {
            break;
        }
    }
    out.into_iter()
        .map(|(mut p, added)| {
            p.extend(added);
            p
        })
        .collect()
}

/// Keys JJB jobs carry that say nothing about what runs.
/// (`concurrent`: seakeeper runs builds of one job side by side anyway.)
const COSMETIC: [&str; 7] = [
    "name",
    "description",
    "display-name",
    "defaults",
    "project-type",
    "id",
    "concurrent",
];

/// Reads an expanded job: its builders into commands and an image, its `timeout` wrapper,
/// and a note for everything else.
fn job(
    defs: &Defs,
    doc: usize,
    name: &str,
    mut body: Mapping,
    params: &Params,
) -> Result<Job, ImportError> {
    let d = &defs.docs[doc];
    // Defaults fill what the job does not say.
    let defaults = str_of(&body, "defaults").unwrap_or_else(|| "global".into());
    if let Some(def) = defs.defaults.get(&defaults) {
        let def_body = render(
            defs,
            def.doc,
            &Value::Mapping(def.body.clone()),
            (!params.is_empty()).then_some(params),
            0,
        )?;
        for (k, v) in as_map(def_body) {
            if k.as_str() != Some("name") && !body.contains_key(&k) {
                body.insert(k, v);
            }
        }
    }
    let mut job = Job {
        name: name.to_owned(),
        file: d.file.clone(),
        line: crate::config::locate(
            &d.text,
            &format!("name: {}", str_of(&body, "name").unwrap_or_default()),
        )
        .or_else(|| crate::config::locate(&d.text, name))
        .map(|(l, _)| l),
        image: None,
        commands: Vec::new(),
        env: BTreeMap::new(),
        timeout_minutes: None,
        notes: Vec::new(),
    };
    let mut builders = Vec::new();
    match body.get("builders") {
        Some(Value::Sequence(bs)) => {
            for b in bs {
                expand_builder(defs, doc, b, &mut Vec::new(), &mut builders)?;
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(d.error(name, format!("job `{name}`: `builders` must be a list"))),
    }
    // Where a job runs `docker run`, its other shell steps ran on the Jenkins host.
    let containerised = builders
        .iter()
        .any(|(k, v)| k == "shell" && v.as_str().is_some_and(super::builders::has_docker_run));
    for (kind, value) in builders {
        match (kind.as_str(), &value) {
            ("shell", Value::String(script)) if containerised && !super::builders::has_docker_run(script) => job.notes.push((
                Fidelity::Approximate,
                format!("a shell step ran on the Jenkins host beside `docker run` and is left out (`{}`)", script.lines().find(|l| !l.trim().is_empty()).unwrap_or_default().trim()),
            )),
            ("shell", Value::String(script)) => super::builders::shell_builder(&mut job, script),
            ("shell", _) => job.notes.push((Fidelity::NotMapped, "a `shell` builder whose script is not text (an unknown tag?)".into())),
            ("system-groovy" | "groovy", _) => job.notes.push((Fidelity::NotMapped, format!("`{kind}` builder: Groovy runs inside Jenkins and has no counterpart"))),
            _ => job.notes.push((Fidelity::NotMapped, format!("`{kind}` builder: a Jenkins plugin with no counterpart"))),
        }
    }
    for (k, v) in &body {
        let Some(k) = scalar(k) else { continue };
        match k.as_str() {
            "builders" => {}
            key if COSMETIC.contains(&key) => {
                if key == "project-type" && scalar(v).as_deref() != Some("freestyle") {
                    job.notes.push((Fidelity::NotMapped, format!("project-type `{}`: only freestyle jobs are read", scalar(v).unwrap_or_default())));
                }
            }
            "wrappers" => {
                for w in v.as_sequence().map(Vec::as_slice).unwrap_or_default() {
                    let (wname, wval) = match w {
                        Value::Mapping(m) if m.len() == 1 => {
                            let (a, b) = m.iter().next().expect("one entry");
                            (scalar(a).unwrap_or_default(), b.clone())
                        }
                        other => (scalar(other).unwrap_or_default(), Value::Null),
                    };
                    let minutes = wval.as_mapping().and_then(|m| m.get("timeout")).and_then(|t| t.as_u64().or_else(|| scalar(t)?.parse().ok()));
                    match (wname.as_str(), minutes) {
                        ("timeout", Some(m)) => job.timeout_minutes = Some(m),
                        _ if defs.other_macros.get(&wname).map(String::as_str) == Some("wrapper") => job.notes.push((Fidelity::NotMapped, format!("wrapper macro `{wname}` (defined in these files): wrapper macros are not expanded, so what it wraps (a timeout too) is not carried over"))),
                        _ => job.notes.push((Fidelity::NotMapped, format!("wrapper `{wname}`: a Jenkins plugin with no counterpart"))),
                    }
                }
            }
            // An agent label matters only to a job that ran on the agent itself: one that ran
            // in a container only needed a host with Docker.
            "node" if job.image.is_some() => {}
            "node" => job.notes.push((Fidelity::Approximate, format!("node `{}`: Jenkins agent labels have no counterpart; the job runs on seakeeper's executor", scalar(v).unwrap_or_default()))),
            // Zuul started the job: the pipeline mapping carries that over.
            "triggers" => {
                for t in v.as_sequence().map(Vec::as_slice).unwrap_or_default() {
                    let name = match t {
                        Value::Mapping(m) => m.keys().next().and_then(scalar).unwrap_or_default(),
                        other => scalar(other).unwrap_or_default(),
                    };
                    if name != "zuul" {
                        job.notes.push((Fidelity::NotMapped, format!("trigger `{name}`: Jenkins starts the job itself; seakeeper runs jobs from pipelines and schedules.yaml")));
                    }
                }
            }
            "scm" => job.notes.push((Fidelity::Approximate, "`scm`: seakeeper checks out the change under test itself".into())),
            // A disabled Jenkins job never ran: it must not pass here either.
            "disabled" if v.as_bool() == Some(true) => {
                job.commands.clear();
                job.notes.push((Fidelity::NotMapped, "`disabled: true` in Jenkins: the job never ran there; here it fails until it is enabled by hand".into()));
            }
            "disabled" => {}
            "dsl" | "pipeline-scm" => job.notes.push((Fidelity::NotMapped, format!("`{k}`: a Jenkins Pipeline (Groovy) script has no counterpart"))),
            // A template's own keys that JJB does not know are its parameters' defaults.
            key if params.contains_key(key) => {}
            "parameters" => job.notes.push((Fidelity::NotMapped, "`parameters`: Jenkins build parameters have no counterpart (Zuul set them)".into())),
            other => job.notes.push((Fidelity::NotMapped, format!("`{other}`: Jenkins-only, no counterpart"))),
        }
    }
    Ok(job)
}

/// Expands a builder (a macro call or a plain builder) into plain builders.
fn expand_builder(
    defs: &Defs,
    doc: usize,
    b: &Value,
    stack: &mut Vec<String>,
    out: &mut Vec<(String, Value)>,
) -> Result<(), ImportError> {
    let d = &defs.docs[doc];
    let (kind, value) = match b {
        Value::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().expect("one entry");
            (scalar(k).unwrap_or_default(), v.clone())
        }
        other => (scalar(other).unwrap_or_default(), Value::Null),
    };
    let Some(m) = defs.macros.get(&kind) else {
        // A name one typo away from a builder macro the files define is that macro misspelt
        // (JJB fails on it too), not a plugin: an error, never a job that does nothing.
        if !["shell", "system-groovy", "groovy"].contains(&kind.as_str())
            && let Some(near) =
                crate::config::closest(&kind, defs.macros.keys().map(String::as_str))
        {
            return Err(d.error(
                &kind,
                format!("builder `{kind}` is no macro these files define: did you mean `{near}`?"),
            ));
        }
        if defs.other_macros.contains_key(&kind) {
            out.push((format!("{} macro {kind}", defs.other_macros[&kind]), value));
        } else {
            out.push((kind, value));
        }
        return Ok(());
    };
    if stack.contains(&kind) || stack.len() > 16 {
        return Err(d.error(
            &kind,
            format!(
                "builder macros call each other in a cycle: {} -> {kind}",
                stack.join(" -> ")
            ),
        ));
    }
    let params = value.as_mapping().map(|p| params_of(p, &[]));
    let mut all = defaults_of(defs, &m.body);
    all.extend(
        params_of(&m.body, &["name", "builders"])
            .into_iter()
            .filter(|(_, v)| scalar(v).is_some()),
    );
    let with = match params {
        Some(p) => {
            all.extend(p);
            Some(&all)
        }
        None => None,
    };
    let body = render(
        defs,
        m.doc,
        m.body.get("builders").unwrap_or(&Value::Null),
        with,
        0,
    )?;
    stack.push(kind.clone());
    for inner in body.as_sequence().map(Vec::as_slice).unwrap_or_default() {
        expand_builder(defs, m.doc, inner, stack, out)?;
    }
    stack.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jobs(files: &[(&str, &str)]) -> Result<Jobs, ImportError> {
        let dir = tempfile::tempdir().expect("temp dir");
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, t).expect("write");
        }
        read(dir.path())
    }

    #[test]
    fn a_list_entrys_own_parameters_win_and_a_misspelt_macro_is_an_error() {
        let j = jobs(&[(
            "jjb/php.yaml",
            "- job-template:\n    name: 'composer-{phpver}'\n    builders:\n      - shell: 'docker run --rm r.example.org/composer-{phpver}:{tag}'\n\
             - project:\n    name: p\n    tag: 0.1.0\n    phpver:\n      - php74: {tag: 0.0.7}\n      - php81\n    jobs: ['composer-{phpver}']\n",
        )])
        .unwrap();
        assert_eq!(
            j.jobs["composer-php74"].image.as_deref(),
            Some("r.example.org/composer-php74:0.0.7")
        );
        assert_eq!(
            j.jobs["composer-php81"].image.as_deref(),
            Some("r.example.org/composer-php81:0.1.0")
        );
        let e = jobs(&[(
            "jjb/m.yaml",
            "- builder:\n    name: outer\n    builders:\n      - shell: make\n\
             - job:\n    name: j\n    builders:\n      - outr\n",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("did you mean `outer`") && e.contains("m.yaml"),
            "{e}"
        );
    }

    #[test]
    fn groups_of_groups_lists_and_nested_dicts() {
        let j = jobs(&[(
            "a.yaml",
            "- job-template:\n    name: '{name}-{php}-{db}'\n    image: base\n    builders:\n      - shell: docker run --rm reg.example.org/{image}:1 run --db {db}\n\
             - job-group:\n    name: inner\n    jobs: ['{name}-{php}-{db}']\n\
             - job-group:\n    name: outer\n    db: mysql\n    jobs: [inner]\n\
             - project:\n    name: ext\n    php:\n      - php74\n      - php81:\n          image: next\n    jobs: [outer]\n\
             - job:\n    name: timed\n    triggers: [zuul, {timed: '@daily'}]\n    builders: [{shell: make}]\n",
        )])
        .unwrap();
        let timed = &j.jobs["timed"];
        assert_eq!(timed.notes.len(), 1, "{:?}", timed.notes);
        assert!(timed.notes[0].1.contains("trigger `timed`"));
        let names: Vec<&str> = j.jobs.keys().map(String::as_str).collect();
        assert_eq!(names, ["ext-php74-mysql", "ext-php81-mysql", "timed"]);
        assert_eq!(
            j.jobs["ext-php74-mysql"].image.as_deref(),
            Some("reg.example.org/base:1")
        );
        assert_eq!(
            j.jobs["ext-php81-mysql"].image.as_deref(),
            Some("reg.example.org/next:1")
        );
        assert_eq!(j.jobs["ext-php81-mysql"].commands, ["run --db mysql"]);
    }

    #[test]
    fn macros_that_call_each_other_in_a_cycle_are_an_error() {
        let e = jobs(&[(
            "m.yaml",
            "- builder:\n    name: a\n    builders: [b]\n- builder:\n    name: b\n    builders: [a]\n\
             - job:\n    name: j\n    builders: [a]\n",
        )])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.yaml:") && e.contains("cycle: a -> b -> a"),
            "{e}"
        );
    }

    #[test]
    fn a_malformed_file_names_its_line() {
        let e = jobs(&[("bad.yaml", "- job:\n    name: j\n  builders: [\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml:"), "{e}");
        let e = jobs(&[("k.yaml", "- jbo:\n    name: j\n")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("k.yaml:1: unknown JJB definition `jbo`"), "{e}");
    }
}
