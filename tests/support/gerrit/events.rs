//! stream-events payloads exactly as Gerrit writes them (GERRIT-PROTOCOL.md §1): Gson field
//! order (the event's own fields, then `patchSet`, `change`, `project`, `refName`,
//! `changeKey`, `type`, `eventCreatedOn`), absent optional fields, strings for approval values.

use super::json::{J, Obj};

#[derive(Debug, Clone, PartialEq)]
pub struct AccountAttr {
    pub name: String,
    pub email: String,
    pub username: String,
}

impl AccountAttr {
    pub fn json(&self) -> J {
        Obj::new()
            .put("name", &self.name)
            .put("email", &self.email)
            .put("username", &self.username)
            .build()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangeAttr {
    pub project: String,
    pub branch: String,
    pub topic: Option<String>,
    pub id: String,
    pub number: u32,
    pub subject: String,
    pub owner: AccountAttr,
    pub url: String,
    pub commit_message: String,
    pub hashtags: Vec<String>,
    pub created_on: i64,
    pub status: String,
    pub wip: bool,
    pub private: bool,
}

impl ChangeAttr {
    pub fn json(&self) -> J {
        Obj::new()
            .put("project", &self.project)
            .put("branch", &self.branch)
            .opt("topic", self.topic.as_ref())
            .put("id", &self.id)
            .put("number", self.number)
            .put("subject", &self.subject)
            .put("owner", self.owner.json())
            .put("url", &self.url)
            .put("commitMessage", &self.commit_message)
            .opt(
                "hashtags",
                (!self.hashtags.is_empty()).then(|| J::from(self.hashtags.clone())),
            )
            .put("createdOn", self.created_on)
            .put("status", &self.status)
            .flag("wip", self.wip)
            .flag("private", self.private)
            .build()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PatchSetAttr {
    pub number: u32,
    pub revision: String,
    pub parents: Vec<String>,
    pub git_ref: String,
    pub uploader: AccountAttr,
    pub created_on: i64,
    pub author: AccountAttr,
    pub kind: String,
    pub size_insertions: i64,
    pub size_deletions: i64,
}

impl PatchSetAttr {
    pub fn json(&self) -> J {
        Obj::new()
            .put("number", self.number)
            .put("revision", &self.revision)
            .put("parents", self.parents.clone())
            .put("ref", &self.git_ref)
            .put("uploader", self.uploader.json())
            .put("createdOn", self.created_on)
            .put("author", self.author.json())
            .put("kind", &self.kind)
            .put("sizeInsertions", self.size_insertions)
            .put("sizeDeletions", self.size_deletions)
            .build()
    }
}

/// One entry of comment-added's `approvals`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalAttr {
    pub label: String,
    pub value: i32,
    pub old_value: Option<i32>,
}

impl ApprovalAttr {
    pub fn json(&self) -> J {
        Obj::new()
            .put("type", &self.label)
            .put("description", &self.label)
            .put("value", self.value.to_string())
            .opt("oldValue", self.old_value.map(|v| v.to_string()))
            .build()
    }
}

fn change_event(
    own: Obj,
    kind: &str,
    ps: Option<&PatchSetAttr>,
    change: &ChangeAttr,
    created_on: i64,
) -> J {
    own.opt("patchSet", ps.map(PatchSetAttr::json))
        .put("change", change.json())
        .put("project", &change.project)
        .put("refName", format!("refs/heads/{}", change.branch))
        .put("changeKey", Obj::new().put("id", &change.id))
        .put("type", kind)
        .put("eventCreatedOn", created_on)
        .build()
}

pub fn patchset_created(
    uploader: &AccountAttr,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new().put("uploader", uploader.json()),
        "patchset-created",
        Some(ps),
        change,
        at,
    )
}

pub fn comment_added(
    author: &AccountAttr,
    approvals: Option<&[ApprovalAttr]>,
    comment: &str,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new()
            .put("author", author.json())
            .opt(
                "approvals",
                approvals.map(|a| J::Arr(a.iter().map(ApprovalAttr::json).collect())),
            )
            .put("comment", comment),
        "comment-added",
        Some(ps),
        change,
        at,
    )
}

pub fn change_merged(
    submitter: &AccountAttr,
    new_rev: &str,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new()
            .put("submitter", submitter.json())
            .put("newRev", new_rev),
        "change-merged",
        Some(ps),
        change,
        at,
    )
}

pub fn reviewer_added(
    reviewer: &AccountAttr,
    adder: &AccountAttr,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new()
            .put("reviewer", reviewer.json())
            .put("adder", adder.json()),
        "reviewer-added",
        Some(ps),
        change,
        at,
    )
}

pub fn change_abandoned(
    abandoner: &AccountAttr,
    reason: &str,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new()
            .put("abandoner", abandoner.json())
            .put("reason", reason),
        "change-abandoned",
        Some(ps),
        change,
        at,
    )
}

/// `wip-state-changed` or `private-state-changed`: the new state is in `change`.
pub fn state_changed(
    changer: &AccountAttr,
    kind: &str,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new().put("changer", changer.json()),
        kind,
        Some(ps),
        change,
        at,
    )
}

pub fn change_restored(
    restorer: &AccountAttr,
    reason: &str,
    ps: &PatchSetAttr,
    change: &ChangeAttr,
    at: i64,
) -> J {
    change_event(
        Obj::new()
            .put("restorer", restorer.json())
            .put("reason", reason),
        "change-restored",
        Some(ps),
        change,
        at,
    )
}

pub fn ref_updated(
    submitter: Option<&AccountAttr>,
    old_rev: &str,
    new_rev: &str,
    ref_name: &str,
    project: &str,
    at: i64,
) -> J {
    Obj::new()
        .opt("submitter", submitter.map(AccountAttr::json))
        .put(
            "refUpdate",
            Obj::new()
                .put("oldRev", old_rev)
                .put("newRev", new_rev)
                .put("refName", ref_name)
                .put("project", project),
        )
        .put("type", "ref-updated")
        .put("eventCreatedOn", at)
        .build()
}

pub fn project_created(project: &str, head: &str, at: i64) -> J {
    Obj::new()
        .put("projectName", project)
        .put("headName", head)
        .put("type", "project-created")
        .put("eventCreatedOn", at)
        .build()
}

pub fn dropped_output(at: i64) -> J {
    Obj::new()
        .put("type", "dropped-output")
        .put("eventCreatedOn", at)
        .build()
}

/// The comment text of comment-added (§1.5): `Patch Set N:` + sorted votes + message.
pub fn comment_text(patchset: u32, votes: &[(String, i32)], message: Option<&str>) -> String {
    let mut v: Vec<&(String, i32)> = votes.iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = format!("Patch Set {patchset}:");
    for (label, value) in v {
        match value.signum() {
            1 => s.push_str(&format!(" {label}+{value}")),
            -1 => s.push_str(&format!(" {label}{value}")),
            _ => s.push_str(&format!(" -{label}")),
        }
    }
    if let Some(m) = message.map(str::trim).filter(|m| !m.is_empty()) {
        s.push_str("\n\n");
        s.push_str(m);
    }
    s
}
