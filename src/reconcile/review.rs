//! What Gerrit says of an open change that the gate reads (its branch, votes, readiness,
//! parents and `Depends-On:` footers) and what the gate told it before (the `Gate:` lines of
//! seakeeper's own comments), pure.

use std::collections::BTreeSet;

use crate::gerrit::Change;
use crate::model::{ChangeNumber, CommitId, PatchsetNumber, RefName, Timestamp};

/// What Gerrit says of an open change beyond its refs (from its details): where it goes, who
/// voted, whether it is ready, and what the gate told it before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The branch it is for (`refs/heads/main`).
    pub branch: RefName,
    /// The votes on its current patchset.
    pub votes: Vec<Approval>,
    /// A work in progress.
    pub wip: bool,
    /// Private.
    pub private: bool,
    /// The current patchset commit's parents (a parent that is another open change's commit
    /// makes this change depend on it).
    pub parents: Vec<CommitId>,
    /// Changes its commit message names in `Depends-On:` footers.
    pub depends_on: Vec<ChangeNumber>,
    /// What the gate told the change (the `Gate:` lines of seakeeper's own comments).
    pub notes: BTreeSet<GateNote>,
}

/// One vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The label.
    pub label: String,
    /// The value.
    pub value: i32,
    /// Who gave it (username, else name, else account id).
    pub by: String,
    /// When (Gerrit's clock), when Gerrit said.
    pub date: Option<Timestamp>,
}

/// A change's time in the gate: its patchset, when it became eligible (its last required
/// vote) and how many rechecks were asked before. A new patchset, a new vote or a recheck
/// make a new entry; what happened to an old one (it failed, say) does not hold the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct GateEntry {
    /// The patchset.
    pub patchset: PatchsetNumber,
    /// Eligible since.
    pub since: Timestamp,
    /// Rechecks asked on the patchset when it entered.
    pub rechecks: u32,
}

impl GateEntry {
    /// `<patchset>/<since, unix seconds>/<rechecks>`, as comments carry it.
    pub fn token(&self) -> String {
        format!(
            "{}/{}/{}",
            self.patchset,
            self.since.as_second(),
            self.rechecks
        )
    }

    /// The entry a `token` names.
    pub fn parse(token: &str) -> Option<GateEntry> {
        let mut parts = token.split('/');
        let patchset = parts.next()?.parse().ok()?;
        let since = Timestamp::from_second(parts.next()?.parse().ok()?).ok()?;
        let rechecks = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(GateEntry {
            patchset,
            since,
            rechecks,
        })
    }
}

/// What happened to a gate entry, as seakeeper told the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum GateEvent {
    /// It entered a queue (told with its position).
    Entered,
    /// Its gate build failed at the head of the queue: it left.
    Failed,
    /// It was refused (a merge conflict, a dependency cycle): it left.
    Refused,
    /// It passed, and a merge freeze holds its landing.
    Held,
    /// It landed.
    Landed,
}

impl GateEvent {
    /// The word in a `Gate:` line.
    pub fn as_str(self) -> &'static str {
        match self {
            GateEvent::Entered => "entered",
            GateEvent::Failed => "failed",
            GateEvent::Refused => "refused",
            GateEvent::Held => "held",
            GateEvent::Landed => "landed",
        }
    }
}

/// One `Gate: <event> <entry>` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct GateNote {
    /// What happened.
    pub event: GateEvent,
    /// To which entry.
    pub entry: GateEntry,
}

impl GateNote {
    /// The line seakeeper's comments carry.
    pub fn line(&self) -> String {
        format!("Gate: {} {}", self.event.as_str(), self.entry.token())
    }

    /// The note a comment line carries, if it is one.
    pub fn parse(line: &str) -> Option<GateNote> {
        let rest = line.trim().strip_prefix("Gate: ")?;
        let (event, token) = rest.split_once(' ')?;
        let event = match event {
            "entered" => GateEvent::Entered,
            "failed" => GateEvent::Failed,
            "refused" => GateEvent::Refused,
            "held" => GateEvent::Held,
            "landed" => GateEvent::Landed,
            _ => return None,
        };
        Some(GateNote {
            event,
            entry: GateEntry::parse(token.trim())?,
        })
    }
}

/// What merging a change onto a state gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The new state (the change's own commit when it was on top; the state itself when it
    /// already held the change).
    Merged(CommitId),
    /// It does not merge: the conflicting paths.
    Conflict(Vec<String>),
    /// Its commit's parents are not all in the state (another change it is built on is
    /// neither on the branch nor ahead of it): the parents missing.
    MissingParents(Vec<CommitId>),
}

/// The gate's view of a change's details (`None` when its branch is not a branch name).
pub(super) fn review_of(c: &Change, our_user: Option<&str>) -> Option<Review> {
    let branch = format!("refs/heads/{}", c.branch).parse().ok()?;
    let votes = c
        .labels
        .iter()
        .flat_map(|(label, votes)| {
            votes.iter().filter(|v| v.value != 0).map(|v| Approval {
                label: label.clone(),
                value: v.value,
                by: v
                    .account
                    .username
                    .clone()
                    .or_else(|| v.account.name.clone())
                    .or_else(|| v.account.id.map(|i| i.to_string()))
                    .unwrap_or_default(),
                date: v.date,
            })
        })
        .collect();
    // Only seakeeper's own gate comments carry notes it trusts.
    let notes = c
        .messages
        .iter()
        .filter(|m| {
            our_user.is_some()
                && m.author.as_ref().and_then(|a| a.username.as_deref()) == our_user
                && m.tag
                    .as_deref()
                    .is_some_and(|t| t.starts_with("autogenerated:seakeeper:gate"))
        })
        .flat_map(|m| m.message.lines().filter_map(GateNote::parse))
        .collect();
    Some(Review {
        branch,
        votes,
        wip: c.work_in_progress,
        private: c.is_private,
        parents: c.current_parents.clone(),
        depends_on: c
            .current_message
            .as_deref()
            .map(depends_on_footers)
            .unwrap_or_default(),
        notes,
    })
}

/// The changes a commit message's `Depends-On:` footers name: a change number, or a URL that
/// ends in one (`https://gerrit.example.org/c/project/+/4711`). Change-Ids are not followed.
pub fn depends_on_footers(message: &str) -> Vec<ChangeNumber> {
    let mut out = Vec::new();
    for line in message.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("depends-on") {
            continue;
        }
        let value = value.trim().trim_end_matches('/');
        let last = value.rsplit('/').next().unwrap_or(value);
        if let Ok(n) = last.parse::<ChangeNumber>()
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}
