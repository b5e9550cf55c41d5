//! Where the reconciler reads project and config sources: bare repositories under a local
//! directory (the embedded default, `file:///srv/git`), or mirrors in the state directory that
//! are fetched from Gerrit over smart HTTP, one ref at a time, exactly when a build needs it.
//!
//! Fetching uses the `git` program: it speaks every protocol and auth scheme Gerrit does, and a
//! fetch of one ref into a mirror is a single round trip. Credentials reach it through
//! `GIT_CONFIG_*` environment variables, never through its command line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;

use crate::model::{CommitId, ProjectName};

/// Opened repositories, the most recently used last. Opening one (its object database) costs
/// far more than the reads a pass makes, so the last few are kept.
#[derive(Default)]
pub struct RepoCache {
    repos: std::sync::Mutex<std::collections::VecDeque<(PathBuf, gix::ThreadSafeRepository)>>,
}

/// How many opened repositories are kept.
const CACHED_REPOS: usize = 32;

/// The process's cache of opened source repositories.
pub static REPOS: std::sync::LazyLock<RepoCache> = std::sync::LazyLock::new(RepoCache::default);

impl std::fmt::Debug for RepoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RepoCache")
    }
}

impl RepoCache {
    /// The repository at `path`, opened once while it stays among the recently used.
    pub fn open(&self, path: &Path) -> Result<gix::Repository, String> {
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = repos.iter().position(|(p, _)| p == path) {
            let entry = repos.remove(i).expect("the position is in range");
            let repo = entry.1.to_thread_local();
            repos.push_back(entry);
            return Ok(repo);
        }
        drop(repos);
        let repo = gix::open_opts(path, gix::open::Options::isolated())
            .map_err(|e| format!("{}: {e}", path.display()))?
            .into_sync();
        let local = repo.to_thread_local();
        let mut repos = self.repos.lock().unwrap_or_else(|p| p.into_inner());
        repos.push_back((path.to_owned(), repo));
        while repos.len() > CACHED_REPOS {
            repos.pop_front();
        }
        Ok(local)
    }
}

/// Where projects' repositories are.
#[derive(Debug, Clone)]
pub enum Sources {
    /// `<root>/<project>.git` or `<root>/<project>`, read in place.
    Local(PathBuf),
    /// Mirrors under `dir`, fetched from `<url>/<project>` (`<url>/a/<project>` with an account).
    Remote {
        /// The server, e.g. `https://gerrit.example.org`.
        url: String,
        /// Its account, if any.
        credentials: Option<(String, String)>,
        /// Where the mirrors live.
        dir: PathBuf,
    },
}

/// Fetching or reading failed.
#[derive(Debug, thiserror::Error)]
#[error("{project}: {message}")]
pub struct SourceError {
    /// The project.
    pub project: String,
    /// What went wrong.
    pub message: String,
    /// Whether trying again cannot help (the content itself is refused, e.g. too large).
    pub permanent: bool,
}

fn err(project: &ProjectName, message: impl Into<String>) -> SourceError {
    SourceError {
        project: project.to_string(),
        message: message.into(),
        permanent: false,
    }
}

impl Sources {
    /// Sources for a Gerrit URL from `seakeeper.yaml`: `file://DIR` (or a path) is read in
    /// place, `http(s)://` is mirrored under `mirrors`.
    pub fn for_url(url: &str, credentials: Option<(String, String)>, mirrors: &Path) -> Sources {
        if url.starts_with("http://") || url.starts_with("https://") {
            Sources::Remote {
                url: url.trim_end_matches('/').to_owned(),
                credentials,
                dir: mirrors.to_owned(),
            }
        } else {
            Sources::Local(PathBuf::from(url.strip_prefix("file://").unwrap_or(url)))
        }
    }

    /// The repository of `project` on this machine.
    pub fn path(&self, project: &ProjectName) -> PathBuf {
        match self {
            Sources::Local(root) => {
                let bare = root.join(format!("{project}.git"));
                if bare.exists() {
                    bare
                } else {
                    root.join(project.as_str())
                }
            }
            Sources::Remote { dir, .. } => dir.join(format!("{project}.git")),
        }
    }

    /// The URL jobs fetch `project` from (recorded as the build's source).
    pub fn url(&self, project: &ProjectName) -> String {
        match self {
            Sources::Local(_) => format!("file://{}", self.path(project).display()),
            Sources::Remote { url, .. } => format!("{url}/{project}"),
        }
    }

    /// Makes sure `commit` (reachable from `git_ref` on the server) is in the local repository.
    pub fn ensure(
        &self,
        project: &ProjectName,
        git_ref: &str,
        commit: &CommitId,
    ) -> Result<PathBuf, SourceError> {
        let path = self.path(project);
        if has_commit(&path, commit) {
            return Ok(path);
        }
        let Sources::Remote {
            url, credentials, ..
        } = self
        else {
            return Err(err(
                project,
                format!("{} does not have commit {commit}", path.display()),
            ));
        };
        {
            // Fetches of one project run on several threads (pipeline files, merges): one of
            // them makes the mirror, the others wait until it is made (two `git init`s of one
            // directory fail on each other's files, and HEAD is written before the rest).
            static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _made = INIT
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !path.join("HEAD").exists() {
                std::fs::create_dir_all(&path).map_err(|e| err(project, e.to_string()))?;
                run_git(&path, &["init", "--quiet", "--bare"], None)
                    .map_err(|e| err(project, e))?;
            }
        }
        let remote = match credentials {
            Some(_) => format!("{url}/a/{project}"),
            None => format!("{url}/{project}"),
        };
        let refspec = format!("+{git_ref}:{git_ref}");
        // git's automatic gc keeps the mirror from growing a pack per fetch; the handles that
        // read it find the objects in the new packs (tested below).
        run_git(
            &path,
            &["fetch", "--quiet", "--no-tags", "--", &remote, &refspec],
            credentials.as_ref(),
        )
        .map_err(|e| err(project, format!("fetching {git_ref}: {e}")))?;
        if has_commit(&path, commit) {
            Ok(path)
        } else {
            Err(err(
                project,
                format!("{git_ref} no longer points at {commit} (it moved on)"),
            ))
        }
    }

    /// Moves `branch` (`refs/heads/...`) of `project` on the server from `old` to `new` by
    /// compare-and-swap: nothing is forced, and a branch that is not at `old` any more is left
    /// as it is (the error says so). `new` must descend from `old` (checked by the caller).
    pub fn push_branch(
        &self,
        project: &ProjectName,
        branch: &str,
        old: &CommitId,
        new: &CommitId,
    ) -> Result<(), SourceError> {
        let path = self.path(project);
        match self {
            Sources::Local(_) => run_git(
                &path,
                &["update-ref", branch, new.as_str(), old.as_str()],
                None,
            )
            .map(|_| ())
            .map_err(|e| err(project, format!("moving {branch} from {old} to {new}: {e}"))),
            Sources::Remote {
                url, credentials, ..
            } => {
                let remote = match credentials {
                    Some(_) => format!("{url}/a/{project}"),
                    None => format!("{url}/{project}"),
                };
                let lease = format!("--force-with-lease={branch}:{old}");
                let refspec = format!("{new}:{branch}");
                run_git(
                    &path,
                    &[
                        "push",
                        "--quiet",
                        "--porcelain",
                        &lease,
                        "--",
                        &remote,
                        &refspec,
                    ],
                    credentials.as_ref(),
                )
                .map(|_| ())
                .map_err(|e| {
                    err(
                        project,
                        format!("pushing {new} to {branch} (expecting {old}): {e}"),
                    )
                })
            }
        }
    }

    /// Makes `commit` (in this machine's repository) fetchable from the server as `name`
    /// (pushed; for local repositories it is there already). Executors that fetch from the
    /// server (Kubernetes pods) then find seakeeper's speculative states.
    pub fn publish_ref(
        &self,
        project: &ProjectName,
        name: &str,
        commit: &CommitId,
    ) -> Result<(), SourceError> {
        let Sources::Remote {
            url, credentials, ..
        } = self
        else {
            return Ok(());
        };
        let remote = match credentials {
            Some(_) => format!("{url}/a/{project}"),
            None => format!("{url}/{project}"),
        };
        run_git(
            &self.path(project),
            &[
                "push",
                "--quiet",
                "--",
                &remote,
                &format!("{commit}:{name}"),
            ],
            credentials.as_ref(),
        )
        .map(|_| ())
        .map_err(|e| err(project, format!("publishing {commit} as {name}: {e}")))
    }

    /// Removes `names` from the server (the speculative states no longer wanted); for local
    /// repositories, nothing.
    pub fn unpublish_refs(
        &self,
        project: &ProjectName,
        names: &[String],
    ) -> Result<(), SourceError> {
        let Sources::Remote {
            url, credentials, ..
        } = self
        else {
            return Ok(());
        };
        if names.is_empty() {
            return Ok(());
        }
        let remote = match credentials {
            Some(_) => format!("{url}/a/{project}"),
            None => format!("{url}/{project}"),
        };
        let mut args = vec!["push".to_owned(), "--quiet".into(), "--".into(), remote];
        args.extend(names.iter().map(|n| format!(":{n}")));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_git(&self.path(project), &args, credentials.as_ref())
            .map(|_| ())
            .map_err(|e| {
                err(
                    project,
                    format!("removing {} speculative refs: {e}", names.len()),
                )
            })
    }

    /// The bytes of `path` at `commit`, `None` when the commit has no such file.
    pub fn read_file(
        &self,
        project: &ProjectName,
        commit: &CommitId,
        path: &str,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let repo = REPOS
            .open(&self.path(project))
            .map_err(|e| err(project, e))?;
        let id = gix::ObjectId::from_hex(commit.as_str().as_bytes())
            .map_err(|e| err(project, e.to_string()))?;
        super::files::read_file(&repo, &id, path).map_err(|e| SourceError {
            permanent: matches!(e, super::files::FilesError::TooLarge(_)),
            ..err(project, e.to_string())
        })
    }
}

/// Whether the repository at `path` has the commit (cheap: one object lookup).
pub fn has_commit(path: &Path, commit: &CommitId) -> bool {
    if !path.join("HEAD").exists() && !path.join(".git").exists() {
        return false;
    }
    let Ok(repo) = REPOS.open(path) else {
        return false;
    };
    let Ok(id) = gix::ObjectId::from_hex(commit.as_str().as_bytes()) else {
        return false;
    };
    repo.find_object(id).is_ok()
}

/// How long one `git` command may take before it is killed.
pub const GIT_DEADLINE: Duration = Duration::from_secs(600);

/// Runs `git` in `dir`, with an optional HTTP account passed through the environment, killed
/// after [`GIT_DEADLINE`]; an HTTP transfer slower than 1 KiB/s for 60 s is abandoned by git.
pub fn run_git(
    dir: &Path,
    args: &[&str],
    credentials: Option<&(String, String)>,
) -> Result<String, String> {
    run_git_within(dir, args, credentials, GIT_DEADLINE)
}

/// [`run_git`] with another deadline.
pub fn run_git_within(
    dir: &Path,
    args: &[&str],
    credentials: Option<&(String, String)>,
    deadline: Duration,
) -> Result<String, String> {
    let out = git_output(dir, args, credentials, deadline)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(redact(String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Runs git in `dir` with `args`, killing it (and its process group) at `deadline`.
fn git_output(
    dir: &Path,
    args: &[&str],
    credentials: Option<&(String, String)>,
    deadline: Duration,
) -> Result<std::process::Output, String> {
    use std::os::unix::process::CommandExt as _;
    let mut c = Command::new("git");
    c.args(["-c", "http.lowSpeedLimit=1024", "-c", "http.lowSpeedTime=60"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4");
    if let Some((user, password)) = credentials {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        c.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {token}"),
            );
    }
    let child = c.spawn().map_err(|e| format!("running git: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("git-wait".into())
        .spawn(move || {
            let _ = tx.send(child.wait_with_output());
        })
        .map_err(|e| format!("running git: {e}"))?;
    let out = match rx.recv_timeout(deadline) {
        Ok(out) => out.map_err(|e| format!("running git: {e}"))?,
        Err(_) => {
            // SAFETY: kill(2) on the process group git leads (process_group(0) above); a
            // stale group id only makes the call fail.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            let _ = rx.recv();
            return Err(format!(
                "git {} did not finish within {} s and was killed",
                args.first().copied().unwrap_or(""),
                deadline.as_secs()
            ));
        }
    };
    Ok(out)
}

/// How a git command ended that may fail as an answer (`merge-tree` exits 1 on a conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitAnswer {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// What it printed, trimmed at the end.
    pub stdout: String,
    /// Its errors (credentials redacted).
    pub stderr: String,
}

/// [`run_git`] for a command whose failure is an answer: the exit code and both outputs,
/// `Err` only when git could not run or missed its deadline.
pub fn run_git_answer(dir: &Path, args: &[&str]) -> Result<GitAnswer, String> {
    let out = git_output(dir, args, None, GIT_DEADLINE)?;
    Ok(GitAnswer {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).trim_end().to_owned(),
        stderr: redact(String::from_utf8_lossy(&out.stderr).trim()),
    })
}

/// `scheme://user:password@host` -> `scheme://***@host`, wherever it appears in `text`.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = super::super::testing::git(dir, args, None);
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    /// Adds a commit with `n` new files and packs it on its own.
    fn commit(dir: &Path, round: usize) -> String {
        for i in 0..50 {
            std::fs::write(dir.join(format!("f{round}-{i}")), format!("{round} {i}\n")).unwrap();
        }
        git(dir, &["add", "."]);
        git(dir, &["commit", "-q", "-m", &format!("round {round}")]);
        git(dir, &["repack", "-q", "-d"]);
        git(dir, &["rev-parse", "HEAD"])
    }

    /// `file://` sources are gc'd by their owners while seakeeper holds them open. Between
    /// reads, an open handle finds every object in the new packs, and fails cleanly (never
    /// panics) on objects that are gone.
    #[test]
    fn a_cached_repository_reads_on_after_git_gc_replaces_its_packs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        git(dir, &["init", "-q"]);
        let cache = RepoCache::default();
        let mut commits = Vec::new();
        for round in 0..6 {
            commits.push(commit(dir, round));
        }
        let read = |cache: &RepoCache, c: &str, round: usize| {
            let repo = cache.open(dir).unwrap();
            let id = gix::ObjectId::from_hex(c.as_bytes()).unwrap();
            let f = super::super::files::read_file(&repo, &id, &format!("f{round}-7"));
            f.map_err(|e| e.to_string())
        };
        for (r, c) in commits.iter().enumerate() {
            assert!(read(&cache, c, r).unwrap().is_some());
        }
        git(dir, &["gc", "-q", "--prune=now"]);
        for (r, c) in commits.iter().enumerate() {
            assert!(read(&cache, c, r).unwrap().is_some());
        }
        for round in 6..9 {
            commits.push(commit(dir, round));
            git(dir, &["gc", "-q", "--prune=now"]);
            for (r, c) in commits.iter().enumerate() {
                assert!(read(&cache, c, r).unwrap().is_some(), "round {round}");
            }
        }
        // Objects gone for good: an error, not a panic.
        let last = commits.last().unwrap().clone();
        git(dir, &["update-ref", "-d", "HEAD"]);
        git(dir, &["checkout", "-q", "--orphan", "empty"]);
        git(dir, &["rm", "-q", "-r", "--cached", "."]);
        git(dir, &["reflog", "expire", "--expire=now", "--all"]);
        git(dir, &["gc", "-q", "--prune=now"]);
        let present = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["cat-file", "-e", &last])
            .status()
            .unwrap();
        assert!(!present.success(), "the commit is gone");
        // The handle still has the deleted pack mapped, and may answer from it: objects never
        // change, so that is right too.
        let _ = read(&cache, &last, 8);
        assert!(read(&RepoCache::default(), &last, 8).is_err());
    }
}
