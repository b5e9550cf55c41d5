//! Speculative states for the gate: a branch tip with changes merged onto it, one after the
//! other, made from git objects (no work tree, `git merge-tree --write-tree`) and committed by
//! hand, so that the same inputs always give the same commit ids. Each state is published under
//! `refs/seakeeper/speculative/<commit>` in the repository, so executors fetch it like any other
//! commit and git's garbage collection keeps it while it is wanted.

use std::path::Path;

use super::ObjectId;
use super::mirror::{run_git, run_git_answer};

/// Where speculative commits are kept.
pub const SPECULATIVE_REFS: &str = "refs/seakeeper/speculative/";

/// One change to merge: its commit, and how people name it (`change 4711,3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// How reports name it.
    pub label: String,
    /// Its commit.
    pub commit: ObjectId,
}

/// Why a speculative state could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The change does not merge cleanly onto what is ahead of it.
    #[error("{label} does not merge onto {onto}: conflicts in {}", paths.join(", "))]
    Conflict {
        /// The change.
        label: String,
        /// The state it was merged onto.
        onto: ObjectId,
        /// The conflicting paths.
        paths: Vec<String>,
    },
    /// git failed (a missing object, a broken repository).
    #[error("{0}")]
    Git(String),
}

/// What a step became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The change's own commit (it was on top of everything ahead of it).
    FastForward(ObjectId),
    /// A merge commit seakeeper made.
    Merge(ObjectId),
    /// Already contained in what is ahead of it (merged before).
    Contained(ObjectId),
}

impl Merged {
    /// The state after the step.
    pub fn commit(&self) -> ObjectId {
        match self {
            Merged::FastForward(c) | Merged::Merge(c) | Merged::Contained(c) => *c,
        }
    }
}

/// Whether `a` is an ancestor of (or is) `b`.
pub fn is_ancestor(repo: &Path, a: &ObjectId, b: &ObjectId) -> Result<bool, MergeError> {
    let answer = run_git_answer(
        repo,
        &[
            "merge-base",
            "--is-ancestor",
            &a.to_string(),
            &b.to_string(),
        ],
    )
    .map_err(MergeError::Git)?;
    match answer.code {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(MergeError::Git(format!(
            "git merge-base {a} {b}: {}",
            answer.stderr
        ))),
    }
}

/// A commit's parents (read in-process).
pub fn parents(repo: &Path, c: &ObjectId) -> Result<Vec<ObjectId>, MergeError> {
    let r = gix::open(repo).map_err(|e| MergeError::Git(format!("{}: {e}", repo.display())))?;
    let commit = r
        .find_commit(*c)
        .map_err(|e| MergeError::Git(format!("commit {c}: {e}")))?;
    Ok(commit.parent_ids().map(|p| p.detach()).collect())
}

/// A commit's committer time (seconds since the epoch), read in-process.
fn committer_time(r: &gix::Repository, c: &ObjectId) -> Result<i64, MergeError> {
    let commit = r
        .find_commit(*c)
        .map_err(|e| MergeError::Git(format!("commit {c}: {e}")))?;
    let time = commit
        .time()
        .map_err(|e| MergeError::Git(format!("commit {c}: {e}")))?;
    Ok(time.seconds)
}

/// The merge base of two commits (one `git merge-base`), `None` when they share no history.
fn merge_base(repo: &Path, a: &ObjectId, b: &ObjectId) -> Result<Option<ObjectId>, MergeError> {
    let answer = run_git_answer(repo, &["merge-base", &a.to_string(), &b.to_string()])
        .map_err(MergeError::Git)?;
    match answer.code {
        Some(0) => ObjectId::from_hex(answer.stdout.trim().as_bytes())
            .map(Some)
            .map_err(|e| MergeError::Git(format!("git merge-base {a} {b}: {e}"))),
        Some(1) => Ok(None),
        _ => Err(MergeError::Git(format!(
            "git merge-base {a} {b}: {}",
            answer.stderr
        ))),
    }
}

/// The merge commit of `ours` and `theirs` with `tree`: seakeeper as author and committer,
/// dated (in UTC) by the later of the two parents' committer times, so that it depends only on
/// them. (The merged tree depends on git's merge algorithm too: the same git version, or one
/// whose `merge-ort` merges the same way, gives the same commit.)
fn merge_commit(
    repo: &Path,
    tree: &str,
    ours: &ObjectId,
    theirs: &ObjectId,
    label: &str,
) -> Result<ObjectId, MergeError> {
    use gix::objs::Write as _;
    let r = gix::open(repo).map_err(|e| MergeError::Git(format!("{}: {e}", repo.display())))?;
    let when = committer_time(&r, ours)?.max(committer_time(&r, theirs)?);
    let who = format!("seakeeper <seakeeper@localhost> {when} +0000");
    let text = format!(
        "tree {tree}\nparent {ours}\nparent {theirs}\nauthor {who}\ncommitter {who}\n\n\
         Speculative merge of {label}\n"
    );
    r.objects
        .write_buf(gix::object::Kind::Commit, text.as_bytes())
        .map_err(|e| MergeError::Git(format!("writing a merge commit: {e}")))
}

/// Merges `steps` onto `base` in order, in the repository at `repo`; returns what each step
/// became. A change that does not merge cleanly stops the chain with its conflicting paths.
pub fn merge_chain(repo: &Path, base: ObjectId, steps: &[Step]) -> Result<Vec<Merged>, MergeError> {
    let mut current = base;
    let mut out = Vec::with_capacity(steps.len());
    for s in steps {
        // One `git merge-base` tells contained (the base is the change) and fast-forward (the
        // base is the state) apart from a real merge.
        let merged = {
            // NUL-separated (`-z`): paths exactly as they are, whatever characters they hold.
            // Renames are detected as git's defaults say, whatever the host's config says.
            let answer = run_git_answer(
                repo,
                &[
                    "-c",
                    "merge.renames=true",
                    "-c",
                    "merge.directoryRenames=conflict",
                    "-c",
                    "merge.renameLimit=7000",
                    "merge-tree",
                    "--write-tree",
                    "--name-only",
                    "--no-messages",
                    "-z",
                    &current.to_string(),
                    &s.commit.to_string(),
                ],
            )
            .map_err(MergeError::Git)?;
            let mut fields = answer.stdout.split('\0');
            let tree = fields.next().unwrap_or_default().trim().to_owned();
            if matches!(answer.code, Some(0 | 1)) && ObjectId::from_hex(tree.as_bytes()).is_err() {
                return Err(MergeError::Git(format!(
                    "git merge-tree {current} {}: no tree in its answer",
                    s.commit
                )));
            }
            match answer.code {
                Some(0) => {
                    // A change already in the state merges to the state's tree, one on top of
                    // it to its own: only then is the history asked (one `git merge-base`),
                    // so a real merge costs one process.
                    let r = gix::open(repo)
                        .map_err(|e| MergeError::Git(format!("{}: {e}", repo.display())))?;
                    let tree_of = |c: &ObjectId| -> Result<String, MergeError> {
                        r.find_commit(*c)
                            .and_then(|c| c.tree_id())
                            .map(|t| t.to_string())
                            .map_err(|e| MergeError::Git(format!("commit {c}: {e}")))
                    };
                    let (ours, theirs) = (tree_of(&current)?, tree_of(&s.commit)?);
                    let base = if tree == ours || tree == theirs {
                        merge_base(repo, &current, &s.commit)?
                    } else {
                        None
                    };
                    if base == Some(s.commit) {
                        Merged::Contained(current)
                    } else if base == Some(current) {
                        Merged::FastForward(s.commit)
                    } else {
                        Merged::Merge(merge_commit(repo, &tree, &current, &s.commit, &s.label)?)
                    }
                }
                Some(1) => {
                    let mut paths: Vec<String> = fields
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect();
                    paths.dedup();
                    return Err(MergeError::Conflict {
                        label: s.label.clone(),
                        onto: current,
                        paths,
                    });
                }
                _ => {
                    return Err(MergeError::Git(format!(
                        "git merge-tree {current} {}: {}",
                        s.commit, answer.stderr
                    )));
                }
            }
        };
        current = merged.commit();
        out.push(merged);
    }
    Ok(out)
}

/// Publishes a speculative commit under [`SPECULATIVE_REFS`] (idempotent).
pub fn publish(repo: &Path, commit: &ObjectId) -> Result<String, MergeError> {
    let name = format!("{SPECULATIVE_REFS}{commit}");
    run_git(repo, &["update-ref", &name, &commit.to_string()], None).map_err(MergeError::Git)?;
    Ok(name)
}

/// Removes the speculative refs not in `keep` (the states still wanted); returns how many.
pub fn prune(repo: &Path, keep: &[ObjectId]) -> Result<usize, MergeError> {
    prune_named(repo, keep).map(|removed| removed.len())
}

/// [`prune`], returning the names of the refs removed.
pub fn prune_named(repo: &Path, keep: &[ObjectId]) -> Result<Vec<String>, MergeError> {
    let list = run_git(
        repo,
        &[
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            SPECULATIVE_REFS,
        ],
        None,
    )
    .map_err(MergeError::Git)?;
    let mut removed = Vec::new();
    for line in list.lines() {
        let Some((old, name)) = line.split_once(' ') else {
            continue;
        };
        let wanted = name
            .strip_prefix(SPECULATIVE_REFS)
            .and_then(|h| ObjectId::from_hex(h.as_bytes()).ok())
            .is_some_and(|id| keep.contains(&id));
        if !wanted {
            // Only if it still names what was listed (a state published meanwhile stays).
            run_git(repo, &["update-ref", "-d", name, old], None).map_err(MergeError::Git)?;
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = super::super::testing::git(dir, args, None);
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    fn id(s: &str) -> ObjectId {
        ObjectId::from_hex(s.as_bytes()).unwrap()
    }

    /// A repository with `main` and three changes on it: two that touch different files and
    /// one that conflicts with the first.
    fn world() -> (tempfile::TempDir, ObjectId, [ObjectId; 3]) {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        git(w, &["init", "-q", "-b", "main"]);
        git(w, &["config", "user.name", "T"]);
        git(w, &["config", "user.email", "t@example.org"]);
        std::fs::write(w.join("a"), "a\n").unwrap();
        std::fs::write(w.join("b"), "b\n").unwrap();
        git(w, &["add", "."]);
        git(w, &["commit", "-q", "-m", "base"]);
        let base = id(&git(w, &["rev-parse", "HEAD"]));
        let change = |file: &str, text: &str, n: u32| {
            git(w, &["checkout", "-q", "--detach", &base.to_string()]);
            std::fs::write(w.join(file), text).unwrap();
            git(w, &["commit", "-q", "-am", &format!("change {n}")]);
            id(&git(w, &["rev-parse", "HEAD"]))
        };
        let one = change("a", "one\n", 1);
        let two = change("b", "two\n", 2);
        let three = change("a", "three\n", 3);
        (dir, base, [one, two, three])
    }

    fn step(label: &str, commit: ObjectId) -> Step {
        Step {
            label: label.into(),
            commit,
        }
    }

    #[test]
    fn the_planner_names_the_same_refs() {
        assert_eq!(SPECULATIVE_REFS, crate::reconcile::gate::SPECULATIVE_REFS);
    }

    #[test]
    fn changes_merge_in_order_into_the_same_commits_every_time() {
        let (dir, base, [one, two, three]) = world();
        let repo = dir.path();
        let steps = [step("change 1,1", one), step("change 2,1", two)];
        let first = merge_chain(repo, base, &steps).unwrap();
        assert_eq!(
            first[0],
            Merged::FastForward(one),
            "on top of the tip: taken as is"
        );
        let Merged::Merge(m) = first[1] else {
            panic!("{first:?}");
        };
        // Both changes are in the merged tree, and the parents are in order.
        assert_eq!(git(repo, &["show", &format!("{m}:a")]), "one");
        assert_eq!(git(repo, &["show", &format!("{m}:b")]), "two");
        assert_eq!(
            git(repo, &["rev-parse", &format!("{m}^1"), &format!("{m}^2")]),
            format!("{one}\n{two}")
        );
        git(repo, &["fsck", "--no-dangling"]);
        // The same inputs give the same commit, in another clone too.
        let again = merge_chain(repo, base, &steps).unwrap();
        assert_eq!(first, again);
        let other = tempfile::tempdir().unwrap();
        git(
            other.path(),
            &["clone", "-q", &repo.display().to_string(), "."],
        );
        git(
            other.path(),
            &["fetch", "-q", "origin", &one.to_string(), &two.to_string()],
        );
        let there = merge_chain(other.path(), base, &steps).unwrap();
        assert_eq!(first, there);
        // A change already in what is ahead of it changes nothing.
        let contained = merge_chain(repo, two, &[step("change 2,1", two)]).unwrap();
        assert_eq!(contained, vec![Merged::Contained(two)]);
        // Published under its own ref, and pruned when no longer wanted.
        let name = publish(repo, &m).unwrap();
        assert_eq!(git(repo, &["rev-parse", &name]), m.to_string());
        assert_eq!(prune(repo, &[m]).unwrap(), 0);
        assert_eq!(prune(repo, &[]).unwrap(), 1);
        let _ = three;
    }

    #[test]
    fn a_conflict_names_the_change_and_its_paths_and_stops_the_chain() {
        let (dir, base, [one, two, three]) = world();
        let steps = [
            step("change 1,1", one),
            step("change 3,1", three),
            step("change 2,1", two),
        ];
        let err = merge_chain(dir.path(), base, &steps).unwrap_err();
        assert_eq!(
            err,
            MergeError::Conflict {
                label: "change 3,1".into(),
                onto: one,
                paths: vec!["a".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            format!("change 3,1 does not merge onto {one}: conflicts in a")
        );
        // A commit the repository does not have is an error, not a panic.
        let missing = id("1234567890123456789012345678901234567890");
        assert!(matches!(
            merge_chain(dir.path(), base, &[step("change 9,1", missing)]),
            Err(MergeError::Git(_))
        ));
    }
}
