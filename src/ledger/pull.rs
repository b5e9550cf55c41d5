//! Adopting a ledger's commits from its remote, fail closed: what is fetched lands in a
//! quarantine ref, and the ledger ref moves to it only when it descends from what this server
//! had (and from its high-water mark) and every commit of its history verifies against the
//! deployment's keys and roles. A forged, rewound or diverged remote is refused with both heads
//! named, and the ledger keeps its last verified head.

use std::path::Path;

use crate::git::mirror::{redact, run_git};
use crate::git::{self, ObjectId};

use super::mark::{CheckError, Mark};
use super::verify::{VerifyFailure, VerifyOptions, verify_tip};
use super::{LEDGER_REF, Ledger, LedgerError};

/// Where fetched commits wait until they are verified.
pub const QUARANTINE_REF: &str = "refs/seakeeper/incoming";

/// What a pull adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    /// The head before (`None` for an empty ledger).
    pub before: Option<String>,
    /// The head now.
    pub after: String,
    /// Commits verified (the whole history of the new head).
    pub commits: u64,
    /// Records verified.
    pub records: u64,
}

/// Why a pull adopted nothing.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// `ls-remote` or `fetch` failed.
    #[error("the ledger remote {remote} cannot be read: {message}")]
    Unreachable {
        /// The remote (credentials removed).
        remote: String,
        /// What git said.
        message: String,
    },
    /// The remote has no ledger branch.
    #[error("the ledger remote {remote} holds no ledger ({LEDGER_REF} does not exist there)")]
    NoLedger {
        /// The remote.
        remote: String,
    },
    /// The remote is behind what this server had.
    #[error(
        "the ledger remote {remote} was rewound: its head {remote_head} is an ancestor of this \
         server's head {local}; refusing it"
    )]
    Rewound {
        /// The remote.
        remote: String,
        /// Its head.
        remote_head: String,
        /// Ours.
        local: String,
    },
    /// The remote's history does not contain ours.
    #[error(
        "the ledger remote {remote} has another history: its head {remote_head} does not \
         descend from this server's head {local}; refusing it"
    )]
    Diverged {
        /// The remote.
        remote: String,
        /// Its head.
        remote_head: String,
        /// Ours.
        local: String,
    },
    /// A commit does not verify.
    #[error("refusing the ledger of {remote} (head {remote_head}): {failure}")]
    Unverified {
        /// The remote.
        remote: String,
        /// Its head.
        remote_head: String,
        /// The first bad commit.
        failure: VerifyFailure,
    },
    /// The remote (or the local ledger) is behind the high-water mark.
    #[error("the ledger of {remote}: {source}")]
    Mark {
        /// The remote.
        remote: String,
        /// How.
        #[source]
        source: CheckError,
    },
    /// The local ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Fetches `remote`'s ledger branch into the ledger at `dir` (an existing repository, possibly
/// without commits) and adopts it when it verifies. Nothing moves on any refusal.
pub fn pull(
    dir: &Path,
    remote: &str,
    credentials: Option<&(String, String)>,
    options: &VerifyOptions,
    mark: Option<&Mark>,
) -> Result<Pulled, PullError> {
    let shown = redact(remote);
    let unreachable = |message: String| PullError::Unreachable {
        remote: shown.clone(),
        message,
    };
    let listed =
        run_git(dir, &["ls-remote", "--", remote, LEDGER_REF], credentials).map_err(unreachable)?;
    let Some(remote_head) = listed.split_whitespace().next().map(str::to_owned) else {
        return Err(PullError::NoLedger { remote: shown });
    };
    let ledger = Ledger::open(dir)?;
    let before = ledger.tip()?;
    if before.is_some_and(|b| b == remote_head.as_str()) {
        let before = before.map(|b| b.to_string());
        return Ok(Pulled {
            after: before.clone().unwrap_or_default(),
            before,
            commits: 0,
            records: 0,
        });
    }
    let refspec = format!("+{LEDGER_REF}:{QUARANTINE_REF}");
    run_git(
        dir,
        &["fetch", "--quiet", "--no-tags", "--", remote, &refspec],
        credentials,
    )
    .map_err(unreachable)?;
    let result = adopt(&ledger, &shown, before, options, mark);
    // The quarantine ref goes either way: refused objects stay unreferenced.
    let _ = run_git(dir, &["update-ref", "-d", QUARANTINE_REF], None);
    result
}

fn adopt(
    ledger: &Ledger,
    remote: &str,
    before: Option<ObjectId>,
    options: &VerifyOptions,
    mark: Option<&Mark>,
) -> Result<Pulled, PullError> {
    // A fresh handle: the fetch wrote packs the old one does not know.
    let ledger = Ledger::open(ledger.path())?;
    let incoming = git::read_ref(ledger.repo(), QUARANTINE_REF)
        .map_err(LedgerError::from)?
        .ok_or_else(|| PullError::NoLedger {
            remote: remote.to_owned(),
        })?;
    let remote_head = incoming.to_string();
    if let Some(b) = before {
        let dir = ledger.path();
        let is_ancestor =
            |a: &str, d: &str| run_git(dir, &["merge-base", "--is-ancestor", a, d], None).is_ok();
        if !is_ancestor(&b.to_string(), &remote_head) {
            return Err(if is_ancestor(&remote_head, &b.to_string()) {
                PullError::Rewound {
                    remote: remote.to_owned(),
                    remote_head,
                    local: b.to_string(),
                }
            } else {
                PullError::Diverged {
                    remote: remote.to_owned(),
                    remote_head,
                    local: b.to_string(),
                }
            });
        }
    }
    if let Some(mark) = mark {
        mark.check_tip(&ledger, Some(incoming))
            .map_err(|source| PullError::Mark {
                remote: remote.to_owned(),
                source,
            })?;
    }
    let report =
        verify_tip(&ledger, incoming, options).map_err(|failure| PullError::Unverified {
            remote: remote.to_owned(),
            remote_head: remote_head.clone(),
            failure,
        })?;
    git::compare_and_swap_ref(
        ledger.repo(),
        LEDGER_REF,
        before,
        incoming,
        &format!("seakeeper: verified pull from {remote}"),
    )
    .map_err(LedgerError::from)?;
    Ok(Pulled {
        before: before.map(|b| b.to_string()),
        after: remote_head,
        commits: report.commits,
        records: report.records,
    })
}
