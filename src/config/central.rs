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
}
