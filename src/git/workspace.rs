//! One commit from a remote into a workspace, as a Kubernetes Job's fetch container does it
//! (`seakeeper job fetch`): git fetches exactly that commit (depth 1) into a scratch bare
//! repository, the commit is checked to be there under its own id, and its files are written
//! by [`super::checkout::checkout`] (every name checked, no `.git`, nothing from a working
//! tree). No shell runs: git is started directly, with a deadline.

use std::path::Path;
use std::time::Duration;

use super::checkout::{CheckoutStats, checkout};
use crate::model::CommitId;

/// How long one fetch may take.
pub const FETCH_DEADLINE: Duration = Duration::from_secs(600);

/// Fetches `commit` from `source` and writes its files into `dest` (an existing, empty
/// directory), using a bare repository under `scratch` that is removed afterwards.
pub fn fetch_into(
    source: &str,
    commit: &CommitId,
    dest: &Path,
    scratch: &Path,
) -> Result<CheckoutStats, String> {
    // Never an option to git, and never a transport that runs a command.
    // `<transport>::<address>` (git's remote helpers, `ext::` among them) is never taken; an
    // IPv6 address (`git://[::1]/x`) is not one.
    let helper = source.split_once("::").is_some_and(|(t, _)| {
        t.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))
    });
    if source.starts_with('-') || helper || source.is_empty() {
        return Err(format!("refusing to fetch from {source:?}: not a git URL"));
    }
    let oid = gix::ObjectId::from_hex(commit.as_str().as_bytes())
        .map_err(|e| format!("{commit}: {e}"))?;
    let bare = scratch.join(format!(
        "seakeeper-fetch-{}-{}",
        std::process::id(),
        commit.as_str()
    ));
    if bare.exists() {
        std::fs::remove_dir_all(&bare).map_err(|e| format!("{}: {e}", bare.display()))?;
    }
    std::fs::create_dir_all(&bare).map_err(|e| format!("{}: {e}", bare.display()))?;
    let result = (|| {
        let b = bare.to_string_lossy().into_owned();
        super::mirror::run_git_within(&bare, &["init", "--bare", "-q", &b], None, FETCH_DEADLINE)?;
        super::mirror::run_git_within(
            &bare,
            &[
                "fetch",
                "-q",
                "--no-tags",
                "--no-write-fetch-head",
                "--depth",
                "1",
                source,
                &format!("{}:refs/seakeeper/fetched", commit.as_str()),
            ],
            None,
            FETCH_DEADLINE,
        )
        .map_err(|e| format!("fetching {commit} from {source}: {e}"))?;
        let repo = gix::open(&bare).map_err(|e| format!("{}: {e}", bare.display()))?;
        // The commit must be there under its own id (objects are named by their content:
        // finding it is checking it).
        let kind = repo
            .find_object(oid)
            .map_err(|_| format!("{source} did not send commit {commit}"))?
            .kind;
        if kind != gix::object::Kind::Commit {
            return Err(format!("{commit} from {source} is not a commit"));
        }
        checkout(&repo.into_sync(), &oid, dest, 2).map_err(|e| format!("{commit}: {e}"))
    })();
    let _ = std::fs::remove_dir_all(&bare);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::testing::git;

    #[test]
    fn a_commit_is_fetched_and_checked_out_without_its_history_or_git_dir() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"], None);
        std::fs::write(src.join("a.txt"), "one\n").unwrap();
        git(&src, &["add", "."], None);
        git(&src, &["commit", "-q", "-m", "one"], None);
        let first = String::from_utf8(git(&src, &["rev-parse", "HEAD"], None)).unwrap();
        let first: CommitId = first.trim().parse().unwrap();
        std::fs::write(src.join("a.txt"), "two\n").unwrap();
        git(&src, &["commit", "-q", "-am", "two"], None);
        // git serves only advertised commits unless allowed: let the old one be fetched.
        git(
            &src,
            &["config", "uploadpack.allowAnySHA1InWant", "true"],
            None,
        );
        let dest = t.path().join("ws");
        std::fs::create_dir_all(&dest).unwrap();
        let url = format!("file://{}", src.display());
        let stats = fetch_into(&url, &first, &dest, t.path()).unwrap();
        assert_eq!(stats.files, 1);
        assert_eq!(
            std::fs::read_to_string(dest.join("a.txt")).unwrap(),
            "one\n"
        );
        assert!(!dest.join(".git").exists());
        // The scratch repository is gone.
        let left: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("seakeeper-fetch-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");

        let missing: CommitId = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let e = fetch_into(&url, &missing, &t.path().join("x"), t.path()).unwrap_err();
        assert!(e.contains("fetching 0123456789"), "{e}");
        for bad in ["--upload-pack=touch /tmp/x", "ext::sh -c x", ""] {
            let e = fetch_into(bad, &first, &dest, t.path()).unwrap_err();
            assert!(e.contains("not a git URL"), "{e}");
        }
    }
}
