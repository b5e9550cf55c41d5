//! A change's details read from its NoteDb meta ref (`refs/changes/XX/N/meta`), as Gerrit
//! stores them in the repository itself: when the repositories are on this machine and no
//! REST API answers (a site read as `file://`, the embedded default, the demo), the gate
//! learns a change's patchset, branch, status, readiness and votes from the same commits
//! Gerrit's REST API would answer from.
//!
//! Each meta commit's author is who acted and its time is when; its footers say what changed:
//! `Patch-set:`, `Branch:`, `Change-id:`, `Subject:`, `Commit:`, `Status:`,
//! `Work-in-progress:`, `Private:`, and `Label: Code-Review=+2` (a vote by the author on the
//! commit's patch set; `Label: -Code-Review` removes it). Votes are per patch set: a new patch
//! set starts with none.

use std::collections::BTreeMap;
use std::path::Path;

use crate::gerrit::Account;
use crate::gerrit::rest::{Change, ChangeStatus, Vote};
use crate::model::{ChangeNumber, CommitId, PatchsetNumber, ProjectName, Timestamp};

/// How many meta commits a change may have before it is refused (Gerrit's own limit is
/// `change.maxUpdates`, 1000 by default).
const MAX_UPDATES: usize = 5000;

fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    crate::git::mirror::run_git(repo, args, None)
}

/// The author of a meta commit as an account: `Gerrit User 1000002 <1000002@server-id>`
/// gives the id; the name is kept as it is.
fn account(name: &str, email: &str) -> Account {
    let id = email
        .split_once('@')
        .and_then(|(local, _)| local.parse::<u64>().ok());
    Account {
        id,
        name: Some(name.to_owned()),
        email: Some(email.to_owned()),
        username: None,
    }
}

/// Reads change `change` of `project` from the repository at `repo` (its meta ref).
pub fn read_change(
    repo: &Path,
    project: &ProjectName,
    change: ChangeNumber,
) -> Result<Change, String> {
    let meta = format!("refs/changes/{:02}/{change}/meta", change.get() % 100);
    let tip = git(
        repo,
        &["rev-parse", "--verify", "-q", &format!("{meta}^{{commit}}")],
    )
    .map_err(|e| format!("{meta}: {e}"))?;
    let log = git(
        repo,
        &[
            "log",
            "--reverse",
            "--format=%an%x00%ae%x00%ct%x00%B%x1e",
            &meta,
        ],
    )
    .map_err(|e| format!("{meta}: {e}"))?;
    let mut status = ChangeStatus::New;
    let (mut branch, mut change_id, mut subject) = (String::new(), String::new(), String::new());
    let (mut wip, mut private) = (false, false);
    let mut owner = None;
    let mut patchset: Option<PatchsetNumber> = None;
    let mut commits: BTreeMap<PatchsetNumber, CommitId> = BTreeMap::new();
    // (patch set, label, account id or name) -> vote.
    let mut votes: BTreeMap<(PatchsetNumber, String, String), Vote> = BTreeMap::new();
    let mut updated = String::new();
    for (n, record) in log
        .split('\u{1e}')
        .filter(|r| !r.trim().is_empty())
        .enumerate()
    {
        if n >= MAX_UPDATES {
            return Err(format!("{meta}: more than {MAX_UPDATES} updates"));
        }
        let mut parts = record.trim_start_matches('\n').splitn(4, '\0');
        let (Some(name), Some(email), Some(time), Some(body)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("{meta}: an update without author, time or message"));
        };
        let who = account(name, email);
        owner.get_or_insert_with(|| who.clone());
        let when = time
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .ok_or_else(|| format!("{meta}: update time {time:?}"))?;
        updated = when.to_string();
        // Footers: the lines of the last paragraph.
        let footers = body.trim_end().rsplit("\n\n").next().unwrap_or_default();
        let mut this_ps = patchset;
        for line in footers.lines() {
            let Some((key, value)) = line.split_once(": ") else {
                continue;
            };
            let value = value.trim();
            match key {
                "Patch-set" => {
                    let ps: PatchsetNumber = value
                        .parse()
                        .map_err(|e| format!("{meta}: Patch-set: {e}"))?;
                    this_ps = Some(ps);
                    if patchset.is_none_or(|p| p < ps) {
                        patchset = Some(ps);
                    }
                }
                "Branch" => branch = value.trim_start_matches("refs/heads/").to_owned(),
                "Change-id" => change_id = value.to_owned(),
                "Subject" => subject = value.to_owned(),
                "Status" => {
                    status = match value {
                        "new" => ChangeStatus::New,
                        "merged" => ChangeStatus::Merged,
                        "abandoned" => ChangeStatus::Abandoned,
                        other => return Err(format!("{meta}: Status: {other:?}")),
                    }
                }
                // Anything but an explicit `false` holds the change out (fail closed).
                "Work-in-progress" => wip = value != "false",
                "Private" => private = value != "false",
                "Commit" => {
                    let c: CommitId = value.parse().map_err(|e| format!("{meta}: Commit: {e}"))?;
                    if let Some(ps) = this_ps {
                        commits.insert(ps, c);
                    }
                }
                "Label" => {
                    let Some(ps) = this_ps else { continue };
                    // `Code-Review=+2`, `-Code-Review` (removed), each optionally followed by
                    // `, <uuid>` (Gerrit 3.7 and later) and by the ident of the account it is
                    // for when that is not the author (`Gerrit User 1000002 <1000002@id>`).
                    let (vote, rest) = match value.split_once([' ', ',']) {
                        Some((v, rest)) => (v, rest.trim_start_matches(',').trim()),
                        None => (value, ""),
                    };
                    let rest = if value[vote.len()..].starts_with(',') {
                        // Skip the uuid.
                        rest.split_once(' ').map_or("", |(_, r)| r).trim()
                    } else {
                        rest
                    };
                    let voter_account = match rest.rsplit_once(" <") {
                        Some((n, e)) => account(n, e.trim_end_matches('>')),
                        None => who.clone(),
                    };
                    let voter = voter_account.id.map_or_else(
                        || voter_account.name.clone().unwrap_or_default(),
                        |i| i.to_string(),
                    );
                    if let Some(label) = vote.strip_prefix('-') {
                        votes.remove(&(ps, label.to_owned(), voter));
                    } else if let Some((label, v)) = vote.split_once('=') {
                        let value: i32 = v
                            .trim_start_matches('+')
                            .parse()
                            .map_err(|_| format!("{meta}: Label: {value:?}"))?;
                        votes.insert(
                            (ps, label.to_owned(), voter),
                            Vote {
                                account: voter_account,
                                value,
                                tag: None,
                                date: Some(when),
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    }
    let ps = patchset.ok_or_else(|| format!("{meta}: no patch set"))?;
    // The branch decides what the change may land on: none named, nothing is assumed.
    if branch.is_empty() {
        return Err(format!("{meta}: no Branch footer"));
    }
    let revision = commits
        .get(&ps)
        .cloned()
        .or_else(|| {
            git(
                repo,
                &[
                    "rev-parse",
                    "--verify",
                    "-q",
                    crate::gerrit::patchset_ref(change, ps).as_str(),
                ],
            )
            .ok()
            .and_then(|s| s.trim().parse().ok())
        })
        .ok_or_else(|| format!("{meta}: patch set {ps} has no commit"))?;
    let mut labels: BTreeMap<String, Vec<Vote>> = BTreeMap::new();
    for ((p, label, _), v) in votes {
        if p == ps && v.value != 0 {
            labels.entry(label).or_default().push(v);
        }
    }
    let raw = git(repo, &["cat-file", "commit", revision.as_str()])
        .map_err(|e| format!("patch set {ps} commit {revision}: {e}"))?;
    let (header, message) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let current_parents = header
        .lines()
        .filter_map(|l| l.strip_prefix("parent "))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    Ok(Change {
        project: project.clone(),
        branch,
        change_id,
        number: change,
        subject,
        status,
        owner: owner.unwrap_or_default(),
        current_revision: Some(revision),
        current_patchset: Some(ps),
        current_ref: Some(crate::gerrit::patchset_ref(change, ps)),
        labels,
        messages: Vec::new(),
        meta_rev: tip.trim().parse().ok(),
        updated,
        submission_id: None,
        work_in_progress: wip,
        is_private: private,
        current_parents,
        current_message: Some(message.to_owned()),
        label_values: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(repo: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .envs(env.iter().copied())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_COMMITTER_NAME", "Gerrit Code Review")
            .env("GIT_COMMITTER_EMAIL", "gerrit@example.org")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Votes as Gerrit writes them: by the author, for another account, with a uuid, and
    /// removed by someone else.
    #[test]
    fn votes_are_read_as_gerrit_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        git(repo, &["init", "-q", "--bare"], &[]);
        let empty = git(repo, &["hash-object", "-t", "tree", "-w", "--stdin"], &[]);
        let patch = git(
            repo,
            &["commit-tree", &empty, "-m", "the change"],
            &[("GIT_AUTHOR_NAME", "A"), ("GIT_AUTHOR_EMAIL", "a@x")],
        );
        let mut parent: Option<String> = None;
        let mut note = |author: &str, email: &str, footers: &str| {
            let msg = format!("Update patch set 1\n\n{footers}");
            let mut args = vec!["commit-tree", &empty, "-m", &msg];
            let p;
            if let Some(x) = &parent {
                p = x.clone();
                args.push("-p");
                args.push(&p);
            }
            let id = git(
                repo,
                &args,
                &[("GIT_AUTHOR_NAME", author), ("GIT_AUTHOR_EMAIL", email)],
            );
            git(repo, &["update-ref", "refs/changes/07/7/meta", &id], &[]);
            parent = Some(id);
        };
        note(
            "Alice",
            "1000001@srv",
            &format!("Patch-set: 1\nBranch: refs/heads/main\nStatus: new\nCommit: {patch}\n"),
        );
        note(
            "Bob",
            "1000002@srv",
            "Patch-set: 1\nLabel: Code-Review=+2\n",
        );
        note(
            "Carol",
            "1000003@srv",
            "Patch-set: 1\nLabel: Verified=+1, 6b5d3b0e-9b0a-4c1e-a7f3-1b2c3d4e5f60\n",
        );
        note(
            "Admin",
            "1000009@srv",
            "Patch-set: 1\nLabel: Code-Review=-2 Gerrit User 1000004 <1000004@srv>\n",
        );
        let p: ProjectName = "acme/api".parse().unwrap();
        let n: ChangeNumber = 7u64.try_into().unwrap();
        let c = read_change(repo, &p, n).unwrap();
        let range = |l: &str| c.label_range(l);
        assert_eq!(range("Code-Review"), (2, -2), "{:?}", c.labels);
        assert_eq!(range("Verified"), (1, 0));
        let veto = &c.labels["Code-Review"]
            .iter()
            .find(|v| v.value == -2)
            .unwrap()
            .account;
        assert_eq!(
            veto.id,
            Some(1000004),
            "the vote is the named account's, not the author's"
        );
        // Someone else removes the veto it gave on another's behalf; Bob's +2 stays.
        note(
            "Admin",
            "1000009@srv",
            "Patch-set: 1\nLabel: -Code-Review Gerrit User 1000004 <1000004@srv>\n",
        );
        let c = read_change(repo, &p, n).unwrap();
        assert_eq!(c.label_range("Code-Review"), (2, 0));
        // Bob's own vote removed by the admin: nothing admits it any more.
        note(
            "Admin",
            "1000009@srv",
            "Patch-set: 1\nLabel: -Code-Review Gerrit User 1000002 <1000002@srv>\n",
        );
        let c = read_change(repo, &p, n).unwrap();
        assert_eq!(c.label_range("Code-Review"), (0, 0));
        assert_eq!(c.current_revision.unwrap().as_str(), patch);
    }
}
