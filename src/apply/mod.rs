//! Carries out the planner's [`Action`]s through the ledger and the clients, write-ahead:
//! a build's request is in the ledger before any of its jobs starts, its result before anyone
//! is told, and every outside effect is checked for before it is repeated (a request already
//! in the ledger is adopted, a job already known to the executor is adopted, a Gerrit review
//! that carries the build id is not posted again, a digest already at the target is not copied).
//!
//! Apply reads the daemon's [`World`] but never changes it: each action returns the
//! [`Fact`]s of what it did, which the daemon gives to [`World::absorb`], so the planner's next
//! look sees them without another observation.
//!
//! - `build`: requests, jobs, results, cancellations, config checks;
//! - `publish`: images assembled from a job's outputs, pushed and attested;
//! - `stages`: what a job gets from the jobs it needs (inputs, the image one of them built);
//! - `report`: report text and Gerrit reviews;
//! - `promote`: promotions, refusals and freezes;
//! - here: the services, the dispatch and the in-flight journal (`<state>/inflight`).

mod build;
mod error;
mod gate;
mod promote;
mod publish;
mod report;
pub mod retention;
mod stages;
pub mod tasks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::Layout;
use crate::executor::Executor;
use crate::gerrit::Rest;
use crate::git::mirror::Sources;
use crate::ledger::{Ledger, LedgerError, Writer};
use crate::model::{BuildId, JobKey};
use crate::reconcile::{Action, Fact, World};
use crate::registry::layout::OciLayout;
use crate::signing::SigningKey;
use crate::store::BlobStore;

pub use build::{adopt, load_config_at, refresh_jobs};
pub use error::{Error, final_refusal};
pub use promote::{Copies, CopyKey};
pub use report::{
    FAILURE_TAIL, Posted, Reviews, masked as mask_secrets, report_text, secret_values,
};

/// Points at which a test can have the daemon kill itself with SIGKILL
/// (`SEAKEEPER_TEST_CRASH_AT=<point>`), to prove that a restart loses and repeats nothing.
pub const CRASH_POINTS: [&str; 6] = [
    "after-request",
    "after-land",
    "after-start",
    "after-result",
    "after-review",
    "before-review",
];

/// Dies like `kill -9` when the test asked for a crash at `point`.
pub fn crash_point(point: &str) {
    if std::env::var("SEAKEEPER_TEST_CRASH_AT").is_ok_and(|p| p == point) {
        tracing::error!("SEAKEEPER_TEST_CRASH_AT={point}: killing myself");
        // SAFETY: raising a signal at ourselves.
        unsafe {
            libc::raise(libc::SIGKILL);
        }
    }
}

/// Where results go when they are not posted to Gerrit (and a copy of what is).
pub type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// Gerrit, for reports.
pub struct GerritReporting {
    /// The REST client (reads, retried).
    pub rest: Rest,
    /// The same without retries, for posting reviews (a retried post whose first answer was
    /// lost would post twice).
    pub post: Rest,
    /// Whether reviews are posted (`gerrit.report` in `seakeeper.yaml`).
    pub report: bool,
}

/// Everything actions touch.
pub struct Services {
    /// The ledger's directory (read through [`Services::ledger`]).
    pub ledger_dir: PathBuf,
    /// The ledger (writes).
    pub writer: Writer,
    /// The key that signs DSSE envelopes (the ledger key's Ed25519 signing subkey).
    pub dsse_key: Mutex<SigningKey>,
    /// Runs jobs.
    pub executor: Arc<dyn Executor>,
    /// The content-addressed output and log store.
    pub store: BlobStore,
    /// Where images are assembled before they are pushed.
    pub images: OciLayout,
    /// Accounts.
    pub secrets: crate::secrets::SecretsFile,
    /// Project sources.
    pub sources: Sources,
    /// Gerrit, when configured with an http(s) URL.
    pub gerrit: Option<GerritReporting>,
    /// The config repo's URL (for provenance).
    pub config_url: String,
    /// `<state>/inflight`: one file per build not yet reported.
    pub inflight: PathBuf,
    /// Where reports go.
    pub reporter: Reporter,
    /// Called after every ledger write (replication).
    pub on_write: Box<dyn Fn() + Send + Sync>,
    /// Promotion copies running off the reconcile pass.
    pub copies: Copies,
    /// Reviews being posted off the reconcile pass.
    pub reviews: Reviews,
    /// Whether this server serves the pages under `public_url` (the settings' `web:`), so
    /// reports link them; without it a link would lead nowhere.
    pub pages: bool,
}

impl Services {
    /// The ledger, opened afresh for reading. A long-lived object database handle must not be
    /// kept while the writer adds and merges packs (gix-odb 0.87 can panic on a pack set that
    /// changed under it), and opening is cheap.
    pub fn ledger(&self) -> Result<Ledger, LedgerError> {
        Ledger::open(&self.ledger_dir)
    }

    /// The ledger, opened for reading by apply (see [`Services::ledger`]).
    fn read_ledger(&self) -> Result<Ledger, Error> {
        self.ledger().map_err(Error::ledger("opening the ledger"))
    }
}

/// What carrying out an action did: whether it changed anything (the loop plans again while
/// actions make progress), and the facts the World learns from it.
#[derive(Debug, Default)]
pub struct Applied {
    /// Whether anything changed.
    pub progress: bool,
    /// What the World learns.
    pub facts: Vec<Fact>,
}

impl Applied {
    /// Nothing changed, nothing learnt.
    fn nothing() -> Applied {
        Applied::default()
    }

    /// Progress, with what was learnt.
    fn progress(facts: impl IntoIterator<Item = Fact>) -> Applied {
        Applied {
            progress: true,
            facts: facts.into_iter().collect(),
        }
    }

    /// No progress, but something learnt.
    fn learnt(facts: impl IntoIterator<Item = Fact>) -> Applied {
        Applied {
            progress: false,
            facts: facts.into_iter().collect(),
        }
    }
}

/// The executor's key of a job's `attempt`-th run.
pub fn job_key(build: &BuildId, job: &str, attempt: u32) -> JobKey {
    JobKey {
        build_id: build.clone(),
        job: if attempt <= 1 {
            job.to_owned()
        } else {
            format!("{job}~{attempt}")
        },
    }
}

fn inflight_path(svc: &Services, id: &BuildId) -> PathBuf {
    svc.inflight.join(id.as_str())
}

/// The builds that were requested and not yet reported, by their marker files: `(id, depth)`.
pub fn inflight(dir: &Path) -> Vec<(BuildId, u32)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Some(id) = e
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<BuildId>().ok())
        else {
            continue;
        };
        let depth = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        out.push((id, depth));
    }
    out.sort();
    out
}

/// Done with a build: its marker goes, and it leaves the World's builds in flight.
fn finish(svc: &Services, id: &BuildId) -> Fact {
    let _ = std::fs::remove_file(inflight_path(svc, id));
    Fact::BuildDone(id.clone())
}

/// Carries out one action, reading (never changing) the World, in a span named `action` with
/// its kind and build id; counted in the metrics by kind (and error label).
pub fn apply(
    svc: &Services,
    layout: &Layout,
    world: &World,
    action: &Action,
) -> Result<Applied, Error> {
    let kind = action.kind();
    let _span = tracing::info_span!(
        "action",
        kind,
        build_id = action.build_id().map(|b| b.as_str())
    )
    .entered();
    let result = dispatch(svc, layout, world, action);
    let progress = result.as_ref().is_ok_and(|a| a.progress);
    crate::metrics::get().action(kind, progress, result.as_ref().err().map(Error::label));
    if progress {
        tracing::info!("action done");
    }
    result
}

fn dispatch(
    svc: &Services,
    layout: &Layout,
    world: &World,
    action: &Action,
) -> Result<Applied, Error> {
    match action {
        Action::RequestBuild { request, depth } => build::request(svc, request, *depth),
        Action::StartJob {
            build_id,
            job,
            attempt,
        } => build::start_job(svc, layout, world, build_id, job, *attempt),
        Action::CheckConfig { build_id } => build::check_config(svc, world, build_id),
        Action::Cancel { build_id, reason } => build::cancel(svc, world, build_id, reason),
        Action::RecordResult { build_id } => build::record_result(svc, layout, world, build_id),
        Action::Report { build_id } => report::report(svc, layout, world, build_id),
        Action::Merge {
            project,
            onto,
            commit,
            label,
        } => gate::merge(svc, layout, world, project, onto, commit, label),
        Action::Land { build_id } => gate::land(svc, layout, world, build_id),
        Action::HoldLanding { .. } => Ok(Applied::nothing()),
        Action::Retire { build_id } => gate::retire(svc, layout, world, build_id),
        Action::TellGate {
            project,
            change,
            commit,
            note,
            text,
        } => gate::tell(svc, project, *change, commit, note, text),
        Action::ReportInvalidConfig { head } => report::invalid_config(svc, world, head),
        Action::Promote {
            environment,
            image,
            digest,
            from,
        } => promote::promote(
            svc,
            layout,
            world,
            environment,
            image,
            digest,
            from.as_ref(),
        ),
        Action::RecordFreeze { freeze } => promote::record_freeze(svc, freeze),
        Action::Hold { .. } => Ok(Applied::nothing()),
        Action::Refuse {
            environment,
            image,
            digest,
            reason,
        } => promote::refuse(svc, world, environment, image, digest, reason),
    }
}
