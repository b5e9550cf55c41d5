//! `seakeeper init config DIR`: writes a starter config repo (see `config::starter`) and
//! commits it; never over an existing directory's files.

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::config::starter::Starter;

#[derive(Debug, Subcommand)]
pub(super) enum InitCommand {
    /// Write a starter config repo in DIR (new or empty) that passes `config check`: settings,
    /// environments, a project, a job template, the default policies and, with --cert, the
    /// server's key; then `git init` and commit it.
    Config {
        /// The directory (created; it must be empty if it exists).
        dir: PathBuf,
        /// Where seakeeper's pages will be served.
        #[arg(long, default_value = "https://ci.example.org")]
        public_url: String,
        /// The Gerrit server's URL.
        #[arg(long)]
        gerrit: Option<String>,
        /// An environment and its registry, in promotion order (repeatable):
        /// `testing=https://registry.example.org`. Default: testing, staging and production as
        /// image layouts under /var/lib/seakeeper/registries.
        #[arg(long = "environment", value_name = "NAME=URL")]
        environments: Vec<String>,
        /// The first project's name.
        #[arg(long, default_value = "example")]
        project: String,
        /// The server's public certificate (`seakeeper key export`), added to keys/ with every
        /// role.
        #[arg(long)]
        cert: Option<PathBuf>,
        /// The name the certificate goes under in keys/.
        #[arg(long, default_value = "ci")]
        key_name: String,
        /// The image the job template runs in, pinned by digest.
        #[arg(
            long,
            default_value = "registry.example.org/ci/base@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )]
        image: String,
        /// Write the files only (no `git init`, no commit).
        #[arg(long)]
        no_commit: bool,
    },
}

pub(super) fn run(cmd: InitCommand) -> anyhow::Result<ExitCode> {
    let InitCommand::Config {
        dir,
        public_url,
        gerrit,
        environments,
        project,
        cert,
        key_name,
        image,
        no_commit,
    } = cmd;
    if dir.exists()
        && std::fs::read_dir(&dir)
            .with_context(|| dir.display().to_string())?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty: `init config` writes a new config repo and never overwrites one",
            dir.display()
        );
    }
    let registries = if environments.is_empty() {
        ["testing", "staging", "production"]
            .map(|e| {
                (
                    e.to_owned(),
                    format!("oci:/var/lib/seakeeper/registries/{e}"),
                )
            })
            .to_vec()
    } else {
        environments
            .iter()
            .map(|e| {
                e.split_once('=')
                    .map(|(n, u)| (n.to_owned(), u.to_owned()))
                    .with_context(|| format!("--environment {e:?}: expected NAME=URL"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    if !image.contains("@sha256:") {
        bail!("--image {image:?}: pin it by digest (name@sha256:<64 hex>)");
    }
    let key = match &cert {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--cert {}", path.display()))?;
            if !text.contains("-----BEGIN PGP PUBLIC KEY BLOCK-----") {
                bail!(
                    "--cert {}: not an armored OpenPGP public certificate (`seakeeper key export`)",
                    path.display()
                );
            }
            Some((key_name.clone(), text))
        }
        None => None,
    };
    let starter = Starter {
        public_url,
        gerrit,
        registries,
        project: project
            .parse()
            .with_context(|| format!("--project {project:?}"))?,
        key,
        image,
    };
    for (path, text) in starter.files() {
        let p = dir.join(&path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        std::fs::write(&p, text).with_context(|| p.display().to_string())?;
        println!("wrote {path}");
    }
    if !no_commit {
        let git = |args: &[&str]| -> anyhow::Result<()> {
            let st = Command::new("git")
                .arg("-C")
                .arg(&dir)
                .args(args)
                .status()
                .context("running git")?;
            if !st.success() {
                bail!("git {} failed", args.join(" "));
            }
            Ok(())
        };
        git(&["init", "--quiet", "-b", "main"])?;
        git(&["add", "."])?;
        git(&[
            "-c",
            "user.name=seakeeper init",
            "-c",
            "user.email=seakeeper@localhost",
            "commit",
            "--quiet",
            "-m",
            "Starter configuration (seakeeper init config)",
        ])?;
        println!("committed on main in {}", dir.display());
    }
    if cert.is_none() {
        println!(
            "note: no --cert: add the server's certificate as keys/<name>.asc with keys/<name>.yaml \
             (roles) before a server adopts this repo"
        );
    }
    println!("check it: seakeeper config check --repo {}", dir.display());
    Ok(ExitCode::SUCCESS)
}
