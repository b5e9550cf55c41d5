//! Watching local repositories with `notify` (inotify): the config repo and the ledger remote
//! when they are `file://` paths, and each project's repository when Gerrit is a local
//! directory (the embedded default). A ref that moves there wakes the loop at once, so a merge
//! is seen in milliseconds instead of at the next full pass. Only refs count (`refs/`,
//! `packed-refs`, `HEAD`): objects are written before the ref that names them moves.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use notify::{RecursiveMode, Watcher as _};

use super::{Daemon, Wake, is_remote};
use crate::gerrit::Scope;
use crate::git::mirror::Sources;
use crate::model::ProjectName;

/// At most this many inotify watches are taken (one per directory under a repository's
/// `refs/`, and Gerrit keeps a directory per change; the kernel's default limit is 8,192 per
/// user, shared with everything else): repositories beyond it are left to full passes.
const MAX_WATCHES: usize = 4096;

/// The directories under `dir` (itself included), counting at most to `limit`.
fn directories(dir: &Path, limit: usize) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        n += 1;
        if n > limit {
            break;
        }
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}

/// What a watched path stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Watched {
    /// A project's repository (its refs moved: look at the project).
    Project(ProjectName),
    /// The config repo or the ledger remote (read the config again, or check the ledger).
    Repo,
    /// What a wake says of a project: which of its refs moved.
    Changed(ProjectName, Scope),
}

/// What to look at after a ref of a project's repository moved: one change's refs, one branch
/// or tag, or everything (`packed-refs`, `HEAD`).
fn scope_of(rest: &str) -> Scope {
    if let Some(change) = rest
        .strip_prefix("refs/changes/")
        .and_then(|r| r.split('/').nth(1))
        .and_then(|n| n.parse().ok())
    {
        return Scope::Change(change);
    }
    if (rest.starts_with("refs/heads/") || rest.starts_with("refs/tags/"))
        && let Ok(r) = rest.parse()
    {
        return Scope::Ref(r);
    }
    Scope::All
}

/// A running watch, and the set of repositories it covers.
pub(super) struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    /// The repositories watched, to know when to start again.
    pub key: Vec<(PathBuf, Watched)>,
    /// The repositories actually watched (within the budget).
    watched: Vec<PathBuf>,
}

impl FileWatch {
    /// Whether the watched repositories grew past the budget since (notify adds a watch for
    /// every directory created under a watched `refs/`, such as a new change's): then the
    /// watch is made again, within the budget.
    fn over_budget(&self) -> bool {
        let mut left = MAX_WATCHES;
        for repo in &self.watched {
            let needed = 1 + directories(&repo.join("refs"), left);
            if needed > left {
                return true;
            }
            left -= needed;
        }
        false
    }
}

/// Whether a changed path is a ref's (not an object's, a lock's or a temporary file's).
fn is_ref(path: &Path, repo: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(repo) else {
        return false;
    };
    let rest = rest.to_string_lossy();
    // seakeeper's own speculative refs are not news.
    !rest.ends_with(".lock")
        && !rest.starts_with("refs/seakeeper/")
        && (rest.starts_with("refs/") || rest == "packed-refs" || rest == "HEAD")
}

/// Watches `repos` (bare repositories or work trees' `.git`), waking the loop with what moved.
/// `None` when nothing can be watched (no inotify, a limit reached): full passes still find
/// every change.
pub(super) fn watch(repos: Vec<(PathBuf, Watched)>, tx: Sender<Wake>) -> Option<FileWatch> {
    let key = repos.clone();
    let targets = repos.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        // A lost event (the kernel's queue overflowed, a watch could not be added): a pass
        // reads the config and the ledger; the next full pass reads every project.
        let Ok(event) = event else {
            let _ = tx.send(Wake::Files(Watched::Repo));
            return;
        };
        if event.need_rescan() {
            let _ = tx.send(Wake::Files(Watched::Repo));
            return;
        }
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in &event.paths {
            if let Some((repo, what)) = targets.iter().find(|(repo, _)| is_ref(path, repo)) {
                let what = match (what, path.strip_prefix(repo)) {
                    (Watched::Project(p), Ok(rest)) => {
                        Watched::Changed(p.clone(), scope_of(&rest.to_string_lossy()))
                    }
                    _ => what.clone(),
                };
                let _ = tx.send(Wake::Files(what));
            }
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::info!("not watching local repositories ({e}); full passes find changes");
            return None;
        }
    };
    let mut budget = MAX_WATCHES;
    let mut skipped = 0;
    let mut watching = Vec::new();
    for (repo, _) in &repos {
        let refs = repo.join("refs");
        let needed = 1 + directories(&refs, budget);
        if needed > budget {
            skipped += 1;
            continue;
        }
        budget -= needed;
        watching.push(repo.clone());
        let watched = watcher
            .watch(repo, RecursiveMode::NonRecursive)
            .and_then(|()| watcher.watch(&refs, RecursiveMode::Recursive));
        if let Err(e) = watched {
            tracing::info!(
                "not watching {} ({e}); full passes find its changes",
                repo.display()
            );
        }
    }
    if skipped > 0 {
        tracing::info!(
            "{skipped} local repositories are not watched (more than {MAX_WATCHES} directories \
             in all); full passes find their changes"
        );
    }
    Some(FileWatch {
        _watcher: watcher,
        key,
        watched: watching,
    })
}

impl Daemon {
    /// Watches the local repositories (see [`files`]) the config in use names, again when it
    /// changes.
    /// `recheck`: look again even if the config did not change (on full passes: a project's
    /// repository created after the config named it, a watch that could not be made).
    pub(super) fn watch_files(&mut self, tx: &std::sync::mpsc::Sender<Wake>, recheck: bool) {
        let commit = self.world.config.layout_commit.clone();
        if !recheck && self.files.as_ref().is_some_and(|(c, _)| *c == commit) {
            return;
        }
        let Some(layout) = self.layout.clone() else {
            return;
        };
        let mut repos = Vec::new();
        if !is_remote(&self.settings.config_repo) {
            repos.push((git_dir(&self.config_repo), Watched::Repo));
        }
        if let Some(dir) = layout
            .settings
            .ledger
            .as_ref()
            .and_then(|l| l.remote.as_deref())
            .and_then(|r| r.strip_prefix("file://"))
        {
            repos.push((git_dir(Path::new(dir)), Watched::Repo));
        }
        let sources = self
            .sources_cell
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if matches!(sources, Sources::Local(_)) {
            for p in self.watched() {
                repos.push((git_dir(&sources.path(&p)), Watched::Project(p)));
            }
        }
        repos.retain(|(dir, _)| dir.join("refs").is_dir());
        let same = self
            .files
            .as_ref()
            .and_then(|(_, w)| w.as_ref())
            .is_some_and(|w| w.key == repos && !(recheck && w.over_budget()));
        if same {
            if let Some((c, _)) = &mut self.files {
                *c = commit;
            }
            return;
        }
        let watch = (!repos.is_empty())
            .then(|| watch(repos, tx.clone()))
            .flatten();
        self.files = Some((commit, watch));
    }
}

/// The git directory of a local repository path (`DIR` for a bare one, `DIR/.git` otherwise).
pub(super) fn git_dir(path: &Path) -> PathBuf {
    let dotgit = path.join(".git");
    if dotgit.is_dir() {
        dotgit
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_ref_wakes_the_loop_with_what_moved_and_growth_past_the_budget_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("api.git");
        std::fs::create_dir_all(repo.join("refs/heads")).unwrap();
        std::fs::create_dir_all(repo.join("refs/changes/01/1")).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let project: ProjectName = "api".parse().unwrap();
        let w = watch(vec![(repo.clone(), Watched::Project(project.clone()))], tx).unwrap();
        assert!(!w.over_budget());
        std::fs::write(repo.join("refs/changes/01/1/1"), "x\n").unwrap();
        let wake = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        match wake {
            Wake::Files(Watched::Changed(p, Scope::Change(c))) => {
                assert_eq!(p, project);
                assert_eq!(c.get(), 1);
            }
            other => panic!("{:?}", std::mem::discriminant(&other)),
        }
        // Objects are not news.
        std::fs::create_dir_all(repo.join("objects/ab")).unwrap();
        std::fs::write(repo.join("objects/ab/cd"), "x").unwrap();
        while let Ok(w) = rx.recv_timeout(std::time::Duration::from_millis(300)) {
            assert!(
                !matches!(w, Wake::Files(Watched::Changed(_, Scope::All))),
                "an object woke the loop"
            );
        }
        for n in 0..MAX_WATCHES {
            std::fs::create_dir_all(repo.join(format!("refs/changes/{:02}/{n}", n % 100))).unwrap();
        }
        assert!(w.over_budget());
    }

    #[test]
    fn only_refs_wake_the_loop() {
        let repo = Path::new("/srv/git/api.git");
        assert!(is_ref(&repo.join("refs/heads/main"), repo));
        assert!(is_ref(&repo.join("refs/changes/01/1/1"), repo));
        assert!(is_ref(&repo.join("packed-refs"), repo));
        assert!(!is_ref(&repo.join("refs/heads/main.lock"), repo));
        assert!(!is_ref(&repo.join("objects/ab/cdef"), repo));
        assert!(!is_ref(&repo.join("refs/seakeeper/speculative/ab12"), repo));
        assert_eq!(
            scope_of("refs/changes/01/1/meta"),
            Scope::Change(1u64.try_into().unwrap())
        );
        assert_eq!(
            scope_of("refs/heads/main"),
            Scope::Ref("refs/heads/main".parse().unwrap())
        );
        assert_eq!(scope_of("packed-refs"), Scope::All);
        assert!(!is_ref(Path::new("/srv/git/web.git/refs/heads/main"), repo));
    }
}
