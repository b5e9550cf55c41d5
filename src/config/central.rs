//! Central pipeline files: `pipelines/<gerrit project>.yaml` in the config repo, a project's
//! `.pipeline/config.yaml` kept by the config repo for a project whose repository has none of
//! its own (as Zuul v2 kept every project's jobs in one central layout; `seakeeper import zuul`
//! writes them). The format is exactly that of `.pipeline/config.yaml`, so a project takes its
//! jobs over by committing the file to its repository as it is; its own file then wins, and
//! the central one can be deleted.
//!
//! Read with the rest of the config repo and checked against the finished Layout, as the
//! project's own file would be; one difference: an image that `policies/images.yaml` marks
//! unpinned passes `config check` here (the mark is the reviewed record of it), while a
//! trusted pipeline still refuses to run it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{ConfigError, Layout, ProjectFile, SourceFile, pipeline};
use crate::model::ProjectName;

/// Where central pipeline files live.
pub const DIR: &str = "pipelines/";

/// The central pipeline files, by project; a file for no declared project, or that is not
/// UTF-8, is an error.
pub(super) fn read(
    files: &BTreeMap<String, SourceFile>,
    projects: &BTreeMap<ProjectName, ProjectFile>,
    projects_known: bool,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<ProjectName, Arc<str>> {
    let mut out = BTreeMap::new();
    for (path, rest, file) in super::under(files, DIR) {
        let project = match rest.strip_suffix(".yaml").map(str::parse::<ProjectName>) {
            Some(Ok(p)) => p,
            _ => {
                errors.push(ConfigError::new(
                    path.as_str(),
                    "",
                    "central pipeline files are pipelines/<gerrit project>.yaml",
                ));
                continue;
            }
        };
        if projects_known && !projects.contains_key(&project) {
            errors.push(
                ConfigError::new(
                    path.as_str(),
                    "",
                    format!("project `{project}` has no projects/{project}.yaml"),
                )
                .suggest(project.as_str(), projects.keys().map(ProjectName::as_str)),
            );
            continue;
        }
        match std::str::from_utf8(&file.bytes) {
            Ok(t) => {
                out.insert(project, Arc::from(t));
            }
            Err(e) => errors.push(ConfigError::new(
                path.as_str(),
                "",
                format!("is not UTF-8 text: {e}"),
            )),
        }
    }
    out
}

/// Checks every central pipeline file against the Layout it belongs to.
pub(super) fn check(layout: &Layout) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (project, text) in &layout.central_pipelines {
        let path = format!("{DIR}{project}.yaml");
        if let Err(e) = pipeline::check(&path, text, Some(project), Some(layout)) {
            errors.extend(
                e.into_iter()
                    .filter(|e| !e.message.contains(pipeline::MARKED_UNPINNED)),
            );
        }
    }
    errors
}

impl Layout {
    /// The pipeline file a project's builds use when its repository has none: its central
    /// one (`pipelines/<project>.yaml`), if the config repo keeps one.
    pub fn central_pipeline(&self, project: &ProjectName) -> Option<&str> {
        self.central_pipelines.get(project).map(|t| &**t)
    }

    /// The pipeline file a project's build reads, with the name its errors give: the
    /// repository's own (`own`), else its central one, else an empty one (enforced jobs only).
    pub fn pipeline_file<'a>(
        &'a self,
        project: &ProjectName,
        own: Option<&'a str>,
    ) -> (String, &'a str) {
        match (own, self.central_pipeline(project)) {
            (Some(t), _) => (pipeline::PIPELINE_FILE.to_owned(), t),
            (None, Some(t)) => (format!("{DIR}{project}.yaml"), t),
            (None, None) => (pipeline::PIPELINE_FILE.to_owned(), "{}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    const SETTINGS: &str = "public_url: https://ci.example.org\nregistries:\n  r: { url: \"https://r.example.org\" }\n";
    const ENVS: &str = "environments:\n  - name: production\n    registry: r\n";
    const TEMPLATE: &str = "image: registry.example.org/ci/tox:1.0\ncommands: [tox]\n";
    const CENTRAL: &str =
        "jobs:\n  tox:\n    use: tox\npipelines:\n  check: [tox]\n  gate: [tox]\n";

    fn load(extra: &[(&str, &str)]) -> Result<super::Layout, Vec<super::ConfigError>> {
        let mut files: BTreeMap<String, Vec<u8>> = [
            ("seakeeper.yaml", SETTINGS),
            ("environments.yaml", ENVS),
            ("projects/tools/lint.yaml", "pipelines: [check, gate]\n"),
            ("templates/tox.yaml", TEMPLATE),
        ]
        .iter()
        .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
        .collect();
        for (p, t) in extra {
            files.insert(p.to_string(), t.as_bytes().to_vec());
        }
        crate::config::load(&files)
    }

    #[test]
    fn a_central_file_is_checked_like_a_projects_own() {
        // The gate is trusted: an unpinned image is an error at its line...
        let errors = load(&[("pipelines/tools/lint.yaml", CENTRAL)]).unwrap_err();
        assert!(
            errors.iter().any(|e| e.file == "pipelines/tools/lint.yaml"
                && e.message.contains("pin the image by digest")),
            "{errors:?}"
        );
        // ...unless policies/images.yaml marks it unpinned, which config check accepts and a
        // trusted pipeline still refuses.
        let images = "require_digest_in_trusted_pipelines: true\nunpinned:\n  - image: registry.example.org/ci/tox:1.0\n    reason: no registry answered\n";
        let layout = load(&[
            ("pipelines/tools/lint.yaml", CENTRAL),
            ("policies/images.yaml", images),
        ])
        .expect("marked images pass config check");
        let project = "tools/lint".parse().unwrap();
        let central = layout.central_pipeline(&project).expect("kept");
        // The repository's own file wins; without one, the central one runs.
        assert_eq!(
            layout.pipeline_file(&project, Some("own")),
            (".pipeline/config.yaml".to_owned(), "own")
        );
        assert_eq!(
            layout.pipeline_file(&project, None),
            ("pipelines/tools/lint.yaml".to_owned(), central)
        );
        let errors = crate::config::pipeline::check("p", central, Some(&project), Some(&layout))
            .unwrap_err();
        assert!(
            errors[0]
                .message
                .contains("marked unpinned in policies/images.yaml: no registry answered"),
            "{errors:?}"
        );
    }

    #[test]
    fn a_central_file_needs_a_declared_project() {
        let errors = load(&[("pipelines/tools/lnit.yaml", "{}\n")]).unwrap_err();
        assert!(
            errors[0].message.contains("no projects/tools/lnit.yaml")
                && errors[0].suggestion.as_deref() == Some("tools/lint"),
            "{errors:?}"
        );
    }
}
