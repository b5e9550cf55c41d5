//! The import report: what was imported, each project's jobs per pipeline before (Zuul) and
//! after (seakeeper), counts of what was mapped exactly, approximately and not at all, every
//! approximation and omission with its project, job and reason, and the images left unpinned.
//! Written as JSON (`--report FILE`) and summed up for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::Fidelity;

/// The whole report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The Zuul layout read.
    pub layout: String,
    /// How many JJB files were read.
    pub jjb_files: usize,
    /// How many JJB jobs they define, once expanded.
    pub jjb_jobs: usize,
    /// How many projects were imported.
    pub projects: usize,
    /// How each Zuul pipeline was mapped.
    pub pipelines: Vec<PipelineMapping>,
    /// Counts over every (project, Zuul pipeline, job).
    pub counts: Counts,
    /// Each project's jobs: per Zuul pipeline before, per seakeeper pipeline after.
    pub jobs: BTreeMap<String, ProjectJobs>,
    /// Every approximation and omission.
    pub items: Vec<Item>,
    /// Images kept as tags, with why and which jobs use them.
    pub unpinned_images: Vec<UnpinnedImage>,
    /// Images resolved to a digest: tag -> pinned reference.
    pub pinned_images: BTreeMap<String, String>,
}

/// One Zuul pipeline's mapping.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineMapping {
    /// Its Zuul name.
    pub zuul: String,
    /// The seakeeper pipeline it became, if any.
    pub seakeeper: Option<String>,
    /// How faithfully.
    pub fidelity: Fidelity,
    /// What differs, or why not.
    pub reason: String,
}

/// Counts by fidelity.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Mapped exactly.
    pub exact: usize,
    /// Mapped approximately.
    pub approximate: usize,
    /// Not mapped.
    pub not_mapped: usize,
}

impl Counts {
    /// Counts one.
    pub fn add(&mut self, f: Fidelity) {
        match f {
            Fidelity::Exact => self.exact += 1,
            Fidelity::Approximate => self.approximate += 1,
            Fidelity::NotMapped => self.not_mapped += 1,
        }
    }
}

/// A project's jobs before and after.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectJobs {
    /// Zuul pipeline -> jobs.
    pub before: BTreeMap<String, Vec<String>>,
    /// seakeeper pipeline -> jobs.
    pub after: BTreeMap<String, Vec<String>>,
}

/// One approximation or omission.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Item {
    /// Approximate or not mapped.
    pub fidelity: Fidelity,
    /// The project, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The Zuul pipeline, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The job, when it is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The projects that run the job, for what is about a job's definition.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// What differs, or why it was not mapped.
    pub reason: String,
}

/// An image kept as a tag.
#[derive(Debug, Clone, Serialize)]
pub struct UnpinnedImage {
    /// The reference, as written.
    pub image: String,
    /// Why it was not pinned.
    pub reason: String,
    /// The jobs that use it.
    pub jobs: Vec<String>,
}

impl Report {
    /// A summary for people: totals, the pipeline mapping, the unpinned images, and the first
    /// approximations and omissions (the JSON report has them all).
    pub fn summary(&self) -> String {
        self.summary_with(Some(20))
    }

    /// The summary with every item (the config repo's `IMPORTED.md`: nothing is left out).
    pub fn full(&self) -> String {
        self.summary_with(None)
    }

    fn summary_with(&self, limit: Option<usize>) -> String {
        let limit = limit.unwrap_or(usize::MAX);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "imported {} projects from {} ({} JJB files, {} jobs)",
            self.projects, self.layout, self.jjb_files, self.jjb_jobs
        );
        let _ = writeln!(s, "pipelines:");
        for p in &self.pipelines {
            let target = p.seakeeper.as_deref().unwrap_or("(none)");
            let why = if p.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", p.reason)
            };
            let _ = writeln!(s, "  {} -> {target} ({}{why})", p.zuul, p.fidelity);
        }
        let c = &self.counts;
        let _ = writeln!(
            s,
            "jobs (project, pipeline, job): {} exact, {} approximate, {} not mapped",
            c.exact, c.approximate, c.not_mapped
        );
        let _ = writeln!(s, "unpinned images: {}", self.unpinned_images.len());
        for u in &self.unpinned_images {
            let _ = writeln!(
                s,
                "  UNPINNED {} ({}; {} job(s))",
                u.image,
                u.reason,
                u.jobs.len()
            );
        }
        for f in [Fidelity::Approximate, Fidelity::NotMapped] {
            let items: Vec<&Item> = self.items.iter().filter(|i| i.fidelity == f).collect();
            let _ = writeln!(s, "{f}: {}", items.len());
            for i in items.iter().take(limit) {
                let _ = writeln!(s, "  {}", i.describe());
            }
            if items.len() > limit {
                let _ = writeln!(
                    s,
                    "  ... {} more in the imported repo's IMPORTED.md (and --report)",
                    items.len() - limit
                );
            }
        }
        s
    }
}

impl Item {
    /// One line: where, then why.
    pub fn describe(&self) -> String {
        let mut at = Vec::new();
        if let Some(p) = &self.project {
            at.push(format!("project {p}"));
        }
        if let Some(p) = &self.pipeline {
            at.push(format!("pipeline {p}"));
        }
        if let Some(j) = &self.job {
            at.push(format!("job {j}"));
        }
        if !self.projects.is_empty() {
            at.push(format!("{} project(s)", self.projects.len()));
        }
        if at.is_empty() {
            at.push("layout".to_owned());
        }
        format!("{}: {}", at.join(", "), self.reason)
    }
}
