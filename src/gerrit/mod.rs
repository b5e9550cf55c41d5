//! Gerrit: the ref watcher (refs are truth), the REST client, the stream-events reader and
//! webhook endpoint (events are hints), and one domain model for all of them.
//!
//! Gerrit speaks two encodings (stream-events strings such as `"value":"2"`, REST integers) and
//! has changed some fields over the years (numbers sent as strings before 2.14, short branch
//! names in `refName` before 2.12, `project` as an object in some webhooks). This module maps all
//! of them to one domain model, so that nothing above it knows Gerrit's quirks. It must not talk
//! to the ledger, registries or executors.

pub mod events;
pub mod http;
pub mod refs;
pub mod rest;
pub mod stream;
pub mod watch;

use std::collections::BTreeMap;

pub use events::{Account, Approval, DomainEvent, ParseError, RefUpdate, parse_line};
pub use http::{Credentials, Endpoint, RetryPolicy, load_gerrit_credentials};
pub use refs::RefSource;
pub use rest::{Change, ChangeStatus, Notify, Rest, RestError, ReviewInput};
pub use stream::{EventStream, StreamItem, StreamOptions, WebhookServer};
pub use watch::{Hints, Observation, RefEvent, RefWatcher, Scope, WatchError};

use crate::model::{ChangeNumber, ProjectName};

/// What one pass over Gerrit saw.
#[derive(Debug, Default)]
pub struct Pass {
    /// One observation per project and scope looked at (acknowledge them once handled).
    pub observations: Vec<Observation>,
    /// The details of every change whose meta ref moved, read once each over REST.
    pub changes: BTreeMap<(ProjectName, ChangeNumber), Result<Change, RestError>>,
    /// Projects that could not be looked at, with why.
    pub errors: Vec<(ProjectName, WatchError)>,
}

impl Pass {
    /// Every change whose meta ref moved in this pass, once each.
    pub fn changes_updated(&self) -> std::collections::BTreeSet<(ProjectName, ChangeNumber)> {
        self.observations
            .iter()
            .flat_map(|o| &o.events)
            .filter_map(|e| match e {
                RefEvent::ChangeMetaUpdated {
                    project, change, ..
                } => Some((project.clone(), *change)),
                _ => None,
            })
            .collect()
    }
}

/// One pass: observe `work` (from [`Hints::take`]) on `threads` threads, then read over REST,
/// once per change, the details of every change whose meta ref moved.
pub fn pass(
    watcher: &RefWatcher,
    rest: Option<&Rest>,
    work: &[(ProjectName, Scope)],
    threads: usize,
) -> Pass {
    let mut out = Pass::default();
    for (r, (project, _)) in watcher.observe_all(work, threads).into_iter().zip(work) {
        match r {
            Ok(o) => out.observations.push(o),
            Err(e) => out.errors.push((project.clone(), e)),
        }
    }
    if let Some(rest) = rest {
        for (project, change) in out.changes_updated() {
            let details = rest.get_change(&project, change);
            out.changes.insert((project, change), details);
        }
    }
    out
}

/// A patchset's ref: `refs/changes/<last two digits>/<change>/<patchset>`.
pub fn patchset_ref(
    change: crate::model::ChangeNumber,
    patchset: crate::model::PatchsetNumber,
) -> crate::model::RefName {
    format!("refs/changes/{:02}/{change}/{patchset}", change.get() % 100)
        .parse()
        .expect("numbers make a valid ref name")
}
