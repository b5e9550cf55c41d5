//! The high-water mark: the last ledger head this server verified or wrote, and its record
//! sequence, kept in a file outside the ledger repository. A ledger whose head is not that
//! commit or a descendant of it was rolled back or truncated (someone reset the repository, or
//! a restored copy is older): that is an alert and a refusal to write, never an update.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::git::{self, ObjectId};

use super::commit::read_commit;
use super::commit::read_commit_message_sequence;
use super::{LEDGER_REF, Ledger, LedgerError};

/// The last head known good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// The commit.
    pub head: String,
    /// Its `Ledger-Sequence`.
    pub sequence: u64,
}

/// How the ledger went back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the ledger was rolled back: its head is {found} (sequence {found_sequence}) but the \
     last head verified was {mark} (sequence {mark_sequence}), {how}; refusing to write until \
     the ledger is restored to a descendant of {mark}"
)]
pub struct Rollback {
    /// The mark.
    pub mark: String,
    /// Its sequence.
    pub mark_sequence: u64,
    /// The head found (`none` for an empty ledger).
    pub found: String,
    /// Its sequence.
    pub found_sequence: u64,
    /// Shorter, or a different history.
    pub how: String,
}

impl Mark {
    /// The mark of the ledger's head now, or `None` when it is empty.
    pub fn of(ledger: &Ledger) -> Result<Option<Mark>, LedgerError> {
        let Some(tip) = ledger.tip()? else {
            return Ok(None);
        };
        Ok(Some(Mark {
            head: tip.to_string(),
            sequence: read_commit_message_sequence(ledger.repo(), tip)?,
        }))
    }

    /// Reads a mark file; `None` when there is none yet.
    pub fn read(path: &Path) -> Result<Option<Mark>, LedgerError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                LedgerError::Corrupt(format!("{}: not a ledger mark: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LedgerError::Io {
                what: format!("reading {}", path.display()),
                source: e,
            }),
        }
    }

    /// Writes the mark durably.
    pub fn write(&self, path: &Path) -> Result<(), LedgerError> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a mark serializes");
        bytes.push(b'\n');
        crate::store::write_durably(path, &bytes)
            .map_err(LedgerError::io(format!("writing {}", path.display())))
    }

    /// Checks that the ledger's head is this mark or a descendant of it.
    pub fn check(&self, ledger: &Ledger) -> Result<(), CheckError> {
        let tip = git::read_ref(ledger.repo(), LEDGER_REF).map_err(LedgerError::from)?;
        self.check_tip(ledger, tip)
    }

    /// Checks that `tip` is this mark or a descendant of it.
    pub fn check_tip(&self, ledger: &Ledger, tip: Option<ObjectId>) -> Result<(), CheckError> {
        let rollback = |found: String, found_sequence: u64, how: &str| {
            CheckError::Rollback(Rollback {
                mark: self.head.clone(),
                mark_sequence: self.sequence,
                found,
                found_sequence,
                how: how.to_owned(),
            })
        };
        let Some(tip) = tip else {
            return Err(rollback("none".into(), 0, "the ledger is empty"));
        };
        if tip == self.head.as_str() {
            return Ok(());
        }
        let repo = ledger.repo();
        let mut id = tip;
        let mut sequence = read_commit_message_sequence(repo, id)?;
        let tip_sequence = sequence;
        if sequence < self.sequence {
            return Err(rollback(
                tip.to_string(),
                tip_sequence,
                "it is shorter (truncated)",
            ));
        }
        // Walk back to the mark's sequence: ledger history is linear, one commit per number.
        while sequence > self.sequence {
            let c = read_commit(repo, id)?;
            let Some(parent) = c.parents.first().copied() else {
                return Err(rollback(
                    tip.to_string(),
                    tip_sequence,
                    "its history does not reach the mark's sequence",
                ));
            };
            id = parent;
            sequence = read_commit_message_sequence(repo, id)?;
        }
        if id != self.head.as_str() {
            return Err(rollback(
                tip.to_string(),
                tip_sequence,
                "its history does not contain the mark (it was rewritten)",
            ));
        }
        Ok(())
    }
}

/// Why a ledger failed its mark.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Rolled back, truncated or rewritten.
    #[error(transparent)]
    Rollback(#[from] Rollback),
    /// The ledger could not be read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}
