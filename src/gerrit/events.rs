//! `gerrit stream-events` lines (and the same JSON from the webhooks plugin) -> [`DomainEvent`].
//!
//! Events are hints, refs are truth: a line that cannot be read is an error for that line only,
//! event types seakeeper does not act on become [`DomainEvent::Ignored`], and Gerrit's
//! `dropped-output` becomes [`DomainEvent::DroppedOutput`] so the caller resyncs.

use serde::{Deserialize, Serialize};

use crate::model::{ChangeNumber, CommitId, PatchsetNumber, ProjectName, RefName};

/// A Gerrit account as events name it (any part may be missing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The numeric account id (REST `_account_id`; stream events rarely carry it).
    #[serde(
        default,
        rename = "accountId",
        alias = "_account_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<u64>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// User name (empty for commit authors without an account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// A label vote, as integers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The label, e.g. `Verified`, `Code-Review`.
    pub label: String,
    /// The value now.
    pub value: i32,
    /// The value before this event, when this event changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_value: Option<i32>,
}

/// What happened, in seakeeper's terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DomainEvent {
    /// A new change or a new patchset of a change.
    PatchsetCreated {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The new patchset.
        patchset: PatchsetNumber,
        /// `refs/changes/XX/N/P`.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// The patchset's commit.
        commit: CommitId,
        /// The target branch (short name).
        branch: String,
        /// Who uploaded it.
        uploader: Account,
    },
    /// A review message, with the votes it carries.
    CommentAdded {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The patchset commented on.
        patchset: PatchsetNumber,
        /// Its ref.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// Its commit.
        commit: CommitId,
        /// Who commented.
        author: Account,
        /// The message (`Patch Set N:\n\n...`).
        comment: String,
        /// Every label with its current value.
        approvals: Vec<Approval>,
    },
    /// A change was submitted.
    ChangeMerged {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The patchset that was merged.
        patchset: PatchsetNumber,
        /// The patchset's commit.
        commit: CommitId,
        /// The target branch (short name).
        branch: String,
        /// The branch tip after the submit, when Gerrit says.
        #[serde(skip_serializing_if = "Option::is_none")]
        new_rev: Option<CommitId>,
    },
    /// A change was abandoned (its builds may be cancelled).
    ChangeAbandoned {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The current patchset.
        patchset: PatchsetNumber,
    },
    /// An abandoned change was restored.
    ChangeRestored {
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
        /// The current patchset.
        patchset: PatchsetNumber,
    },
    /// A ref moved, was created (`old` absent) or deleted (`new` absent).
    RefUpdated {
        /// The project.
        project: ProjectName,
        /// The full ref name.
        #[serde(rename = "ref")]
        git_ref: RefName,
        /// The old value.
        #[serde(skip_serializing_if = "Option::is_none")]
        old_commit: Option<CommitId>,
        /// The new value.
        #[serde(skip_serializing_if = "Option::is_none")]
        commit: Option<CommitId>,
    },
    /// Several refs moved at once (`batch-ref-updated`, when Gerrit is configured to send it).
    BatchRefUpdated {
        /// Each update.
        updates: Vec<RefUpdate>,
    },
    /// Something else about a change changed (reviewers, a vote deleted, WIP or private state,
    /// topic, hashtags, deletion): seakeeper looks at the change's refs again.
    ChangeUpdated {
        /// Gerrit's event type, e.g. `vote-deleted`.
        gerrit_type: String,
        /// The project.
        project: ProjectName,
        /// The change.
        change: ChangeNumber,
    },
    /// A project was created.
    ProjectCreated {
        /// The project.
        project: ProjectName,
        /// Its HEAD, e.g. `refs/heads/main`.
        head: String,
    },
    /// Gerrit dropped events for this connection: resync every project.
    DroppedOutput,
    /// A valid event seakeeper does not act on (project-head-updated, plugin events such as
    /// ref-replicated or cache-eviction ...).
    Ignored {
        /// Gerrit's event type.
        gerrit_type: String,
    },
}

/// One ref update of a `batch-ref-updated` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefUpdate {
    /// The project.
    pub project: ProjectName,
    /// The full ref name.
    #[serde(rename = "ref")]
    pub git_ref: RefName,
    /// The old value (absent: created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_commit: Option<CommitId>,
    /// The new value (absent: deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitId>,
}

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a JSON object.
    #[error("not a JSON event: {0}")]
    Json(String),
    /// A JSON object without a string `type`.
    #[error("the event has no \"type\"")]
    NoType,
    /// A field seakeeper needs is missing or malformed.
    #[error("{event}: {field}: {message}")]
    Field {
        /// The event type.
        event: String,
        /// The field path.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Gerrit numbers: integers, or strings in Gerrit 2.13 and older.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Num {
    Int(i64),
    Text(String),
}

impl Num {
    fn value(&self) -> Option<i64> {
        match self {
            Num::Int(n) => Some(*n),
            Num::Text(t) => t.trim().trim_start_matches('+').parse().ok(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawChange {
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    number: Option<Num>,
}

#[derive(Debug, Deserialize)]
struct RawPatchSet {
    #[serde(default)]
    number: Option<Num>,
    #[serde(default)]
    revision: Option<String>,
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawApproval {
    #[serde(rename = "type")]
    label: String,
    value: Num,
    #[serde(default, rename = "oldValue")]
    old_value: Option<Num>,
}

#[derive(Debug, Deserialize)]
struct RawRefUpdate {
    #[serde(default, rename = "oldRev")]
    old_rev: Option<String>,
    #[serde(default, rename = "newRev")]
    new_rev: Option<String>,
    #[serde(default, rename = "refName")]
    ref_name: Option<String>,
    #[serde(default)]
    project: Option<String>,
}

/// `"project":"a/b"` (stream-events), or `"project":{"name":"a/b"}` (some webhooks-plugin
/// versions).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawProject {
    Name(String),
    Object { name: String },
}

impl RawProject {
    fn as_str(&self) -> &str {
        match self {
            RawProject::Name(n) | RawProject::Object { name: n } => n,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawEvent {
    #[serde(default)]
    change: Option<RawChange>,
    #[serde(default, rename = "patchSet")]
    patch_set: Option<RawPatchSet>,
    #[serde(default)]
    project: Option<RawProject>,
    #[serde(default)]
    uploader: Option<Account>,
    #[serde(default)]
    author: Option<Account>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    approvals: Option<Vec<RawApproval>>,
    #[serde(default, rename = "newRev")]
    new_rev: Option<String>,
    #[serde(default, rename = "refUpdate")]
    ref_update: Option<RawRefUpdate>,
    #[serde(default, rename = "refUpdates")]
    ref_updates: Option<Vec<RawRefUpdate>>,
    #[serde(default, rename = "projectName")]
    project_name: Option<String>,
    #[serde(default, rename = "headName")]
    head_name: Option<String>,
}

fn parse_ref_update(
    u: &RawRefUpdate,
    field: &dyn Fn(&'static str, String) -> ParseError,
) -> Result<RefUpdate, ParseError> {
    let project: ProjectName = u
        .project
        .as_deref()
        .ok_or_else(|| field("refUpdate.project", "missing".into()))?
        .parse()
        .map_err(|e: crate::model::InvalidId| field("refUpdate.project", e.to_string()))?;
    let name = u
        .ref_name
        .as_deref()
        .ok_or_else(|| field("refUpdate.refName", "missing".into()))?;
    // Gerrit before 2.12 sent short branch names.
    let full = if name.starts_with("refs/") {
        name.to_owned()
    } else {
        format!("refs/heads/{name}")
    };
    let rev = |r: &Option<String>, f: &'static str| -> Result<Option<CommitId>, ParseError> {
        match r.as_deref() {
            None | Some(ZERO) => Ok(None),
            Some(r) => r
                .parse()
                .map(Some)
                .map_err(|e: crate::model::InvalidId| field(f, e.to_string())),
        }
    };
    Ok(RefUpdate {
        project,
        git_ref: full
            .parse()
            .map_err(|e: crate::model::InvalidId| field("refUpdate.refName", e.to_string()))?,
        old_commit: rev(&u.old_rev, "refUpdate.oldRev")?,
        commit: rev(&u.new_rev, "refUpdate.newRev")?,
    })
}

const ZERO: &str = "0000000000000000000000000000000000000000";

/// Parses one line of `gerrit stream-events` (or one webhooks-plugin body).
pub fn parse_line(line: &str) -> Result<DomainEvent, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| ParseError::Json(e.to_string()))?;
    let kind = value
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or(ParseError::NoType)?
        .to_owned();
    // Only the types acted on are read field by field; anything else (plugins' events with
    // their own shapes) is skipped whatever its fields look like.
    const KNOWN: &[&str] = &[
        "patchset-created",
        "comment-added",
        "change-merged",
        "change-abandoned",
        "change-restored",
        "ref-updated",
        "batch-ref-updated",
        "project-created",
        "dropped-output",
        "reviewer-added",
        "reviewer-deleted",
        "vote-deleted",
        "wip-state-changed",
        "private-state-changed",
        "topic-changed",
        "hashtags-changed",
        "change-deleted",
        "assignee-changed",
    ];
    if !KNOWN.contains(&kind.as_str()) {
        return Ok(DomainEvent::Ignored { gerrit_type: kind });
    }
    let raw: RawEvent = serde_json::from_value(value).map_err(|e| ParseError::Field {
        event: kind.clone(),
        field: "(event)",
        message: e.to_string(),
    })?;
    let field = |field: &'static str, message: String| ParseError::Field {
        event: kind.clone(),
        field,
        message,
    };
    let project = || -> Result<ProjectName, ParseError> {
        let p = raw
            .project
            .as_ref()
            .map(RawProject::as_str)
            .or(raw.change.as_ref().and_then(|c| c.project.as_deref()))
            .ok_or_else(|| field("project", "missing".into()))?;
        p.parse()
            .map_err(|e: crate::model::InvalidId| field("project", e.to_string()))
    };
    let change = || -> Result<ChangeNumber, ParseError> {
        let n = raw
            .change
            .as_ref()
            .and_then(|c| c.number.as_ref())
            .and_then(Num::value)
            .ok_or_else(|| field("change.number", "missing or not a number".into()))?;
        ChangeNumber::try_from(n.max(0) as u64).map_err(|e| field("change.number", e.to_string()))
    };
    let patchset = || -> Result<PatchsetNumber, ParseError> {
        let n = raw
            .patch_set
            .as_ref()
            .and_then(|p| p.number.as_ref())
            .and_then(Num::value)
            .ok_or_else(|| field("patchSet.number", "missing or not a number".into()))?;
        PatchsetNumber::try_from(n.max(0) as u64)
            .map_err(|e| field("patchSet.number", e.to_string()))
    };
    let commit = || -> Result<CommitId, ParseError> {
        let r = raw
            .patch_set
            .as_ref()
            .and_then(|p| p.revision.as_deref())
            .ok_or_else(|| field("patchSet.revision", "missing".into()))?;
        r.parse()
            .map_err(|e: crate::model::InvalidId| field("patchSet.revision", e.to_string()))
    };
    let ps_ref = || -> Result<RefName, ParseError> {
        let r = raw
            .patch_set
            .as_ref()
            .and_then(|p| p.git_ref.as_deref())
            .ok_or_else(|| field("patchSet.ref", "missing".into()))?;
        r.parse()
            .map_err(|e: crate::model::InvalidId| field("patchSet.ref", e.to_string()))
    };
    let branch = || {
        raw.change
            .as_ref()
            .and_then(|c| c.branch.clone())
            .unwrap_or_default()
    };
    Ok(match kind.as_str() {
        "patchset-created" => DomainEvent::PatchsetCreated {
            project: project()?,
            change: change()?,
            patchset: patchset()?,
            git_ref: ps_ref()?,
            commit: commit()?,
            branch: branch(),
            uploader: raw.uploader.clone().unwrap_or_default(),
        },
        "comment-added" => {
            let mut approvals = Vec::new();
            for a in raw.approvals.iter().flatten() {
                let value = a.value.value().ok_or_else(|| {
                    field(
                        "approvals[].value",
                        format!("{:?} is not a number", a.value),
                    )
                })?;
                approvals.push(Approval {
                    label: a.label.clone(),
                    value: i32::try_from(value)
                        .map_err(|_| field("approvals[].value", "out of range".into()))?,
                    old_value: a
                        .old_value
                        .as_ref()
                        .and_then(Num::value)
                        .and_then(|v| i32::try_from(v).ok()),
                });
            }
            approvals.sort_by(|a, b| a.label.cmp(&b.label));
            DomainEvent::CommentAdded {
                project: project()?,
                change: change()?,
                patchset: patchset()?,
                git_ref: ps_ref()?,
                commit: commit()?,
                author: raw.author.clone().unwrap_or_default(),
                comment: raw.comment.clone().unwrap_or_default(),
                approvals,
            }
        }
        "change-merged" => DomainEvent::ChangeMerged {
            project: project()?,
            change: change()?,
            patchset: patchset()?,
            commit: commit()?,
            branch: branch(),
            new_rev: raw.new_rev.as_deref().and_then(|r| r.parse().ok()),
        },
        "change-abandoned" => DomainEvent::ChangeAbandoned {
            project: project()?,
            change: change()?,
            patchset: patchset()?,
        },
        "change-restored" => DomainEvent::ChangeRestored {
            project: project()?,
            change: change()?,
            patchset: patchset()?,
        },
        "ref-updated" => {
            let u = raw
                .ref_update
                .as_ref()
                .ok_or_else(|| field("refUpdate", "missing".into()))?;
            let u = parse_ref_update(u, &field)?;
            DomainEvent::RefUpdated {
                project: u.project,
                git_ref: u.git_ref,
                old_commit: u.old_commit,
                commit: u.commit,
            }
        }
        "batch-ref-updated" => {
            let list = raw
                .ref_updates
                .as_ref()
                .ok_or_else(|| field("refUpdates", "missing".into()))?;
            let mut updates = Vec::with_capacity(list.len());
            for u in list {
                updates.push(parse_ref_update(u, &field)?);
            }
            DomainEvent::BatchRefUpdated { updates }
        }
        "project-created" => DomainEvent::ProjectCreated {
            project: raw
                .project_name
                .as_deref()
                .ok_or_else(|| field("projectName", "missing".into()))?
                .parse()
                .map_err(|e: crate::model::InvalidId| field("projectName", e.to_string()))?,
            head: raw.head_name.clone().unwrap_or_default(),
        },
        kind @ ("reviewer-added"
        | "reviewer-deleted"
        | "vote-deleted"
        | "wip-state-changed"
        | "private-state-changed"
        | "topic-changed"
        | "hashtags-changed"
        | "change-deleted"
        | "assignee-changed") => DomainEvent::ChangeUpdated {
            gerrit_type: kind.to_owned(),
            project: project()?,
            change: change()?,
        },
        "dropped-output" => DomainEvent::DroppedOutput,
        other => DomainEvent::Ignored {
            gerrit_type: other.to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_and_integer_numbers_map_to_one_model() {
        let old = r#"{"type":"comment-added","change":{"project":"a/b","number":"7","branch":"main"},"patchSet":{"number":"2","revision":"1111111111111111111111111111111111111111","ref":"refs/changes/07/7/2"},"approvals":[{"type":"Verified","value":"-1","oldValue":"0"},{"type":"Code-Review","value":"+2"}],"comment":"x"}"#;
        let DomainEvent::CommentAdded {
            change,
            patchset,
            approvals,
            ..
        } = parse_line(old).unwrap()
        else {
            panic!()
        };
        assert_eq!((change.get(), patchset.get()), (7, 2));
        assert_eq!(
            approvals[0],
            Approval {
                label: "Code-Review".into(),
                value: 2,
                old_value: None
            }
        );
        assert_eq!(
            approvals[1],
            Approval {
                label: "Verified".into(),
                value: -1,
                old_value: Some(0)
            }
        );
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        assert!(matches!(parse_line("not json"), Err(ParseError::Json(_))));
        assert!(matches!(parse_line("{}"), Err(ParseError::NoType)));
        assert!(matches!(
            parse_line(r#"{"type":"patchset-created"}"#),
            Err(ParseError::Field { .. })
        ));
        assert_eq!(
            parse_line(r#"{"type":"cache-eviction"}"#).unwrap(),
            DomainEvent::Ignored {
                gerrit_type: "cache-eviction".into()
            }
        );
        let short = r#"{"refUpdate":{"oldRev":"0000000000000000000000000000000000000000","newRev":"1111111111111111111111111111111111111111","refName":"master","project":"p"},"type":"ref-updated"}"#;
        let DomainEvent::RefUpdated {
            git_ref,
            old_commit,
            ..
        } = parse_line(short).unwrap()
        else {
            panic!()
        };
        assert_eq!(git_ref.as_str(), "refs/heads/master");
        assert_eq!(old_commit, None);
    }
}
