//! Stages: the `needs:` of a pipeline's jobs form a DAG. Checks that every job a job needs is
//! in the same pipeline, that no job needs itself through a cycle, and that an
//! `image: {from: <job>}` names an image that a job it needs declares; then puts each
//! pipeline's jobs in DAG order (a job after every job it needs; jobs that do not depend on
//! each other keep the pipeline file's order), which is the order builds record and report.
//! Pure: it reads the resolved jobs and the file's text (for lines), nothing else.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{ConfigError, locate_path};
use super::files::PipelineKind;
use super::pipeline::{ResolvedJob, ResolvedPipelines};

/// An error about job `job`'s key `key`, at that key's line when it can be found.
fn at(file: &str, text: &str, job: &str, key: &str, field: String, message: String) -> ConfigError {
    let e = ConfigError::new(file, field, message);
    match locate_path(text, &["jobs", job, key]).or_else(|| locate_path(text, &["jobs", job])) {
        Some((line, column)) => e.at(line, column),
        None => e,
    }
}

/// Checks the `needs` and built images of every pipeline (`defined`: the jobs the file
/// defines; `broken`: those that could not be read, about which nothing more is said), fills
/// in the name of each built image, and orders each pipeline's jobs.
pub fn check(
    file: &str,
    text: &str,
    pipelines: &mut ResolvedPipelines,
    defined: &BTreeSet<&str>,
    broken: &BTreeSet<String>,
    errors: &mut Vec<ConfigError>,
) {
    for (kind, jobs) in pipelines.iter_mut() {
        check_pipeline(file, text, *kind, jobs, defined, broken, errors);
    }
}

fn check_pipeline(
    file: &str,
    text: &str,
    kind: PipelineKind,
    jobs: &mut Vec<ResolvedJob>,
    defined: &BTreeSet<&str>,
    broken: &BTreeSet<String>,
    errors: &mut Vec<ConfigError>,
) {
    let pname = kind.as_str();
    let listed: BTreeMap<String, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.clone(), i))
        .collect();
    let mut sound = true;
    for j in jobs.iter() {
        for (i, need) in j.needs.iter().enumerate() {
            let field = format!("jobs.{}.needs[{i}]", j.name);
            if broken.contains(need) {
                sound = false;
                continue;
            }
            let message = if *need == j.name {
                format!("job `{need}` cannot need itself")
            } else if listed.contains_key(need) {
                continue;
            } else if defined.contains(need.as_str()) {
                format!(
                    "job `{need}` is not in pipeline `{pname}`: a job only needs jobs of the same pipeline"
                )
            } else {
                format!("unknown job `{need}`")
            };
            sound = false;
            errors.push(
                at(file, text, &j.name, "needs", field, message)
                    .suggest(need, listed.keys().map(String::as_str)),
            );
        }
    }
    // Built images: the job must need the job that builds it, which must declare it.
    let declared: BTreeMap<String, Vec<crate::model::ImageName>> = jobs
        .iter()
        .map(|j| {
            (
                j.name.clone(),
                j.image_outputs.iter().map(|i| i.name.clone()).collect(),
            )
        })
        .collect();
    for j in jobs.iter_mut() {
        let Some(built) = j.image_from.as_mut() else {
            continue;
        };
        let field = format!("jobs.{}.image.from", j.name);
        if !j.needs.contains(&built.from) {
            errors.push(at(
                file,
                text,
                &j.name,
                "image",
                field,
                format!(
                    "`image: {{from: {}}}` names a job this job does not need: add `{}` to its `needs`",
                    built.from, built.from
                ),
            ));
            continue;
        }
        let Some(images) = declared.get(&built.from) else {
            continue; // reported above: not in this pipeline
        };
        let problem = match (&built.name, images.as_slice()) {
            (_, []) => Some(format!(
                "job `{}` declares no images (`outputs.images`)",
                built.from
            )),
            (None, [only]) => {
                built.name = Some(only.clone());
                None
            }
            (None, several) => Some(format!(
                "job `{}` declares several images ({}): say which with `name:`",
                built.from,
                several
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            (Some(n), all) if all.contains(n) => None,
            (Some(n), all) => Some(format!(
                "job `{}` declares no image `{n}` (it declares {})",
                built.from,
                all.iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        };
        if let Some(message) = problem {
            errors.push(at(file, text, &j.name, "image", field, message));
        }
    }
    if !sound {
        return;
    }
    match order(jobs) {
        Ok(sorted) => {
            let mut slots: Vec<Option<ResolvedJob>> = jobs.drain(..).map(Some).collect();
            for i in sorted {
                if let Some(j) = slots[i].take() {
                    jobs.push(j);
                }
            }
        }
        Err(cycle) => {
            let first = &cycle[0];
            errors.push(at(
                file,
                text,
                first,
                "needs",
                format!("jobs.{first}.needs"),
                format!(
                    "the `needs` of pipeline `{pname}` form a cycle: {}",
                    cycle.join(" -> ")
                ),
            ));
        }
    }
}

/// The jobs' indices in DAG order (each after all it needs; otherwise in the given order), or
/// a cycle (`a -> b -> a`, starting at its smallest name) when there is one. Needs that name
/// no job of the list are ignored.
pub fn order(jobs: &[ResolvedJob]) -> Result<Vec<usize>, Vec<String>> {
    let index: BTreeMap<&str, usize> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.name.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = jobs
        .iter()
        .map(|j| {
            j.needs
                .iter()
                .filter_map(|n| index.get(n.as_str()).copied())
                .collect()
        })
        .collect();
    let mut placed = vec![false; jobs.len()];
    let mut out = Vec::with_capacity(jobs.len());
    while out.len() < jobs.len() {
        // The first job, in the given order, whose needs are all placed.
        let next = (0..jobs.len()).find(|&i| !placed[i] && needs[i].iter().all(|&n| placed[n]));
        match next {
            Some(i) => {
                placed[i] = true;
                out.push(i);
            }
            None => return Err(cycle(jobs, &needs, &placed)),
        }
    }
    Ok(out)
}

/// A cycle among the jobs not placed (each of which needs another one not placed).
fn cycle(jobs: &[ResolvedJob], needs: &[Vec<usize>], placed: &[bool]) -> Vec<String> {
    let start = (0..jobs.len())
        .filter(|&i| !placed[i])
        .min_by_key(|&i| &jobs[i].name)
        .expect("a job is not placed, because the sort stopped early");
    // Walk needs that are not placed until a job comes round again.
    let mut path = vec![start];
    loop {
        let here = *path.last().expect("the path starts with a job");
        let next = needs[here]
            .iter()
            .copied()
            .filter(|&n| !placed[n])
            .min_by_key(|&n| &jobs[n].name)
            .expect("an unplaced job needs an unplaced job, or it would have been placed");
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let ring = &path[pos..];
            // Start at the smallest name, so the message does not depend on where the walk began.
            let least = (0..ring.len())
                .min_by_key(|&k| &jobs[ring[k]].name)
                .expect("a cycle has a job");
            let mut names: Vec<String> = (0..=ring.len())
                .map(|k| jobs[ring[(least + k) % ring.len()]].name.clone())
                .collect();
            names.dedup();
            if names.len() == 1 {
                names.push(names[0].clone());
            }
            return names;
        }
        path.push(next);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::files::PipelineKind;

    const IMAGE: &str =
        "r.example.org/ci@sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn file(jobs: &[(&str, &str)], check: &str) -> String {
        let mut t = String::from("jobs:\n");
        for (name, extra) in jobs {
            t.push_str(&format!(
                "  {name}:\n    image: {IMAGE}\n    commands: [make {name}]\n{extra}"
            ));
        }
        t.push_str(&format!("pipelines:\n  check: [{check}]\n"));
        t
    }

    fn errors(text: &str) -> Vec<String> {
        super::super::pipeline::check(".pipeline/config.yaml", text, None, None)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn issue_18_jobs_are_in_dag_order_ties_in_the_files_order() {
        let text = file(
            &[
                ("publish", "    needs: [test]\n"),
                ("test", "    needs: [build]\n"),
                ("lint", ""),
                ("build", ""),
            ],
            "publish, test, lint, build",
        );
        let p = super::super::pipeline::check(".pipeline/config.yaml", &text, None, None).unwrap();
        let names: Vec<&str> = p[&PipelineKind::Check]
            .iter()
            .map(|j| j.name.as_str())
            .collect();
        assert_eq!(names, ["lint", "build", "test", "publish"]);
        assert_eq!(p[&PipelineKind::Check][2].needs, ["build"]);
    }

    #[test]
    fn issue_18_a_cycle_is_a_config_error_at_its_line() {
        let text = file(
            &[
                ("build", "    needs: [publish]\n"),
                ("publish", "    needs: [test]\n"),
                ("test", "    needs: [build]\n"),
            ],
            "build, test, publish",
        );
        assert_eq!(
            errors(&text),
            [
                ".pipeline/config.yaml:5:5: jobs.build.needs: the `needs` of pipeline `check` form \
              a cycle: build -> publish -> test -> build"
            ]
        );
    }

    #[test]
    fn issue_18_unknown_needs_and_self_needs_are_config_errors_at_their_lines() {
        let text = file(
            &[
                ("build", "    needs: [biuld]\n"),
                ("test", "    needs: [test]\n"),
                ("other", "    needs: [lint]\n"),
                ("lint", ""),
            ],
            "build, test, other",
        );
        let got = errors(&text);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[0]
                .starts_with(".pipeline/config.yaml:5:5: jobs.build.needs[0]: unknown job `biuld`"),
            "{got:#?}"
        );
        assert!(got[0].contains("build"), "a suggestion: {got:#?}");
        assert!(
            got[1].starts_with(
                ".pipeline/config.yaml:9:5: jobs.test.needs[0]: job `test` cannot need itself"
            ),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with(
                ".pipeline/config.yaml:13:5: jobs.other.needs[0]: job `lint` is not in pipeline \
                 `check`"
            ),
            "{got:#?}"
        );
    }

    fn images(names: &[&str]) -> String {
        let mut t = String::from("    outputs:\n      files: [\"dist/**\"]\n      images:\n");
        for n in names {
            t.push_str(&format!(
                "        - {{name: {n}, base: \"{IMAGE}\", files: [\"dist/**\"]}}\n"
            ));
        }
        t
    }

    #[test]
    fn issue_18_an_image_from_a_job_resolves_to_the_image_it_declares() {
        let build = images(&["api"]);
        let text = format!(
            "jobs:\n  build:\n    image: {IMAGE}\n    commands: [make]\n{build}  test:\n    image: {{from: build}}\n    needs: [build]\n    commands: [make test]\npipelines:\n  check: [build, test]\n"
        );
        let p = super::super::pipeline::check(".pipeline/config.yaml", &text, None, None).unwrap();
        let test = &p[&PipelineKind::Check][1];
        let from = test.image_from.as_ref().unwrap();
        assert_eq!(
            (from.from.as_str(), from.name.as_ref().unwrap().as_str()),
            ("build", "api")
        );
        assert_eq!(test.image, "");
    }

    #[test]
    fn issue_18_an_image_from_a_job_must_be_needed_and_declared() {
        let two = images(&["api", "web"]);
        let text = format!(
            "jobs:\n  build:\n    image: {IMAGE}\n    commands: [make]\n{two}  lint:\n    image: {IMAGE}\n    commands: [make]\n  a:\n    image: {{from: build}}\n    commands: [x]\n  b:\n    image: {{from: build}}\n    needs: [build]\n    commands: [x]\n  c:\n    image: {{from: build, name: cli}}\n    needs: [build]\n    commands: [x]\n  d:\n    image: {{from: lint}}\n    needs: [lint]\n    commands: [x]\n  e:\n    image: {{form: build}}\n    commands: [x]\npipelines:\n  check: [build, lint, a, b, c, d]\n"
        );
        let got = errors(&text);
        let want = [
            ":14:5: jobs.a.image.from: `image: {from: build}` names a job this job does not need",
            ":17:5: jobs.b.image.from: job `build` declares several images (api, web)",
            ":21:5: jobs.c.image.from: job `build` declares no image `cli` (it declares api, web)",
            ":25:5: jobs.d.image.from: job `lint` declares no images",
            ":29:",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.contains(w), "{got:#?} / {w}");
        }
        assert!(got[4].contains("unknown field `form`"), "{got:#?}");
    }
}
