//! `seakeeper pipeline check`: validates a project's `.pipeline/config.yaml` (as it is on disk,
//! so developers can check before pushing) against the config repo.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use crate::config::{self, pipeline};
use crate::git::files;
use crate::model::ProjectName;

use super::print_json;

#[derive(Debug, Subcommand)]
pub(super) enum PipelineCommand {
    /// Validate DIR/.pipeline/config.yaml; print every error; exit 1 if there is any. On
    /// success, print the jobs each pipeline runs (enforced jobs included).
    Check {
        /// The project's checkout.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The config repo, for templates, policies and enforced jobs.
        #[arg(long)]
        config_repo: Option<PathBuf>,
        /// Revision of the config repo.
        #[arg(long, default_value = "HEAD")]
        rev: String,
        /// The Gerrit project name (for enforced jobs and the project's declared pipelines).
        #[arg(long)]
        project: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A temporary directory removed when dropped (for clones of remote config repos).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<TempDir> {
            let base = std::env::temp_dir();
            for n in 0..1000u32 {
                let p = base.join(format!("seakeeper-{}-{n}", std::process::id()));
                match std::fs::create_dir(&p) {
                    Ok(()) => return Ok(TempDir(p)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(std::io::Error::other("no free temporary directory name"))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A Layout with the commit it was loaded from, or that commit and every error.
pub(super) type Loaded = Result<(String, config::Layout), (String, Vec<config::ConfigError>)>;

/// Opens the config repo: a local repository, or a URL (`https://`, `ssh://`, `git://`,
/// `file://`), which is cloned bare into a temporary directory with the git CLI first.
fn open_config_repo(
    repo: &std::path::Path,
) -> anyhow::Result<(gix::Repository, Option<tempfile_dir::TempDir>)> {
    let text = repo.to_string_lossy();
    if text.contains("://") {
        let tmp = tempfile_dir::TempDir::new()?;
        let dest = tmp.path().join("config.git");
        let out = std::process::Command::new("git")
            .args(["clone", "--bare", "--quiet", "--no-tags", "--", &text])
            .arg(&dest)
            .output()
            .context("running git clone (is git installed?)")?;
        if !out.status.success() {
            anyhow::bail!(
                "cloning {text}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let r = gix::open_opts(&dest, gix::open::Options::isolated())
            .with_context(|| format!("opening the clone of {text}"))?;
        return Ok((r, Some(tmp)));
    }
    let r = gix::open_opts(repo, gix::open::Options::isolated())
        .with_context(|| format!("{} is not a git repository", repo.display()))?;
    Ok((r, None))
}

/// Loads the config from a working tree as it is on disk (`.git` aside), with the same size
/// limits as files read from git.
pub(super) fn load_layout_worktree(dir: &std::path::Path) -> anyhow::Result<Loaded> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        depth: usize,
        total: &mut u64,
        out: &mut BTreeMap<String, Vec<u8>>,
    ) -> anyhow::Result<()> {
        if depth > files::MAX_DEPTH {
            anyhow::bail!("{}: directories nest too deep", dir.display());
        }
        for e in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
            let e = e?;
            let path = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let kind = e.file_type()?;
            if kind.is_dir() {
                walk(root, &path, depth + 1, total, out)?;
            } else if kind.is_file() {
                let size = e.metadata()?.len();
                if size > files::MAX_FILE {
                    anyhow::bail!(
                        "{} is {size} bytes, over the limit of {}",
                        path.display(),
                        files::MAX_FILE
                    );
                }
                *total += size;
                if *total > files::MAX_TREE {
                    anyhow::bail!("the files come to more than {} bytes", files::MAX_TREE);
                }
                let rel = path
                    .strip_prefix(root)
                    .expect("under the root")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(&path)?);
            }
        }
        Ok(())
    }
    let mut bytes = BTreeMap::new();
    walk(dir, dir, 0, &mut 0, &mut bytes)?;
    let what = format!("the working tree {}", dir.display());
    Ok(config::load(&bytes)
        .map(|l| (what.clone(), l))
        .map_err(|e| (what, e)))
}

/// Loads the config repo's Layout at `rev`, or explains why not.
pub(super) fn load_layout(repo: &std::path::Path, rev: &str) -> anyhow::Result<Loaded> {
    let (r, _clone) = open_config_repo(repo)?;
    let commit = match files::resolve(&r, rev) {
        Ok(c) => c,
        // Any revision expression git knows (`HEAD~1`, `main@{yesterday}`, `v1^{}`).
        Err(e) => {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(r.git_dir())
                .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
                .arg(format!("{rev}^{{commit}}"))
                .output()
                .context("running git rev-parse")?;
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            match gix::ObjectId::from_hex(text.as_bytes()) {
                Ok(id) if out.status.success() => id,
                _ => return Err(e.into()),
            }
        }
    };
    let all = files::read_all(&r, &commit)?;
    let bytes: BTreeMap<String, Vec<u8>> = all.into_iter().map(|(p, f)| (p, f.bytes)).collect();
    Ok(config::load(&bytes)
        .map(|l| (commit.to_string(), l))
        .map_err(|e| (commit.to_string(), e)))
}

pub(super) fn run(cmd: PipelineCommand) -> anyhow::Result<ExitCode> {
    let PipelineCommand::Check {
        dir,
        config_repo,
        rev,
        project,
        json,
    } = cmd;
    let project: Option<ProjectName> = project.map(|p| p.parse()).transpose()?;
    let layout = match &config_repo {
        None => None,
        Some(repo) => match load_layout(repo, &rev)? {
            Ok((_, l)) => Some(l),
            Err((commit, errors)) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                anyhow::bail!(
                    "the config repo at {commit} is invalid ({} errors); run `seakeeper config check`",
                    errors.len()
                );
            }
        },
    };
    let path = dir.join(pipeline::PIPELINE_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    match pipeline::check(
        pipeline::PIPELINE_FILE,
        &text,
        project.as_ref(),
        layout.as_ref(),
    ) {
        Ok(resolved) => {
            if json {
                print_json(&serde_json::json!({"ok": true, "errors": [], "pipelines": resolved}))?;
            } else {
                println!("ok: {} is valid", pipeline::PIPELINE_FILE);
                for (kind, jobs) in &resolved {
                    let names: Vec<String> = jobs
                        .iter()
                        .map(|j| {
                            if j.enforced {
                                format!("{} (enforced)", j.name)
                            } else {
                                j.name.clone()
                            }
                        })
                        .collect();
                    println!(
                        "  {}: {}",
                        serde_json::to_value(kind)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        names.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            if json {
                print_json(&serde_json::json!({"ok": false, "errors": errors}))?;
            } else {
                for e in &errors {
                    println!("{e}");
                }
                eprintln!("{} error(s) in {}", errors.len(), pipeline::PIPELINE_FILE);
            }
            Ok(ExitCode::from(1))
        }
    }
}
