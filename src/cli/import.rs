//! `seakeeper import zuul`: a Zuul v2 layout and Jenkins Job Builder files into a config repo
//! (or, with `--check`, a comparison of such a repo with the layout). Arguments only; the
//! work is in `crate::import`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::import::{self, images::Resolve, map::Options};

#[derive(Debug, Subcommand)]
pub(super) enum ImportCommand {
    /// Write a config repo from a Zuul v2 layout and its JJB job definitions, with a report
    /// of what was mapped exactly, approximately and not at all (see docs/import.md); or, with
    /// --check, list every (project, pipeline, job) where such a repo and the layout differ.
    Zuul(ZuulArgs),
}

#[derive(Debug, Args)]
pub(super) struct ZuulArgs {
    /// The Zuul v2 layout (`zuul/layout.yaml`).
    #[arg(long)]
    layout: PathBuf,
    /// The directory of Jenkins Job Builder files (`jjb/`), read recursively.
    #[arg(long, required_unless_present = "check")]
    jjb: Option<PathBuf>,
    /// `zuul/dependencies.yaml`: MediaWiki extensions and skins tested together.
    #[arg(long)]
    dependencies: Option<PathBuf>,
    /// The config repo to write: a new (or empty) directory; with --check, the repo to compare.
    #[arg(long)]
    out: PathBuf,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Compare the repo at --out with the layout instead of importing; exit 1 if they differ.
    #[arg(long)]
    check: bool,
    /// Ask no registry for digests: every image found by tag is marked unpinned.
    #[arg(long)]
    offline: bool,
    /// How long all registry lookups together may take, in seconds.
    #[arg(long, default_value_t = 10)]
    resolve_timeout: u64,
    /// `public_url` of the written seakeeper.yaml.
    #[arg(long, default_value = "https://ci.example.org")]
    public_url: String,
    /// The Gerrit server of the written seakeeper.yaml.
    #[arg(long)]
    gerrit_url: Option<String>,
    /// The registry of the one environment written (`production`).
    #[arg(long, default_value = "https://registry.example.org")]
    registry_url: String,
    /// The image of jobs whose builders run no `docker run` (they ran on Jenkins agents).
    #[arg(
        long,
        default_value = "docker-registry.wikimedia.org/releng/ci-bookworm:latest"
    )]
    default_image: String,
    /// The command that stands for an image's entrypoint (`docker run IMAGE` with no command).
    #[arg(long, default_value = "/run.sh")]
    entrypoint: String,
    /// The branch every project watches.
    #[arg(long, default_value = "master")]
    default_branch: String,
}

pub(super) fn run(cmd: ImportCommand) -> anyhow::Result<ExitCode> {
    let ImportCommand::Zuul(a) = cmd;
    let layout = import::zuul::read(import::yaml::load(&a.layout)?)?;
    if a.check {
        let diff = import::check::compare(&layout, &a.out)?;
        for p in &diff.without_central_file {
            println!(
                "note: {p} has no central pipeline file; its repository's own is not compared"
            );
        }
        for line in diff.lines() {
            println!("{line}");
        }
        if diff.is_empty() {
            println!("ok: {} matches {}", a.out.display(), a.layout.display());
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{} difference(s): `-` only in Zuul, `+` only in seakeeper",
            diff.only_zuul.len() + diff.only_seakeeper.len()
        );
        return Ok(ExitCode::from(1));
    }
    let jjb_dir = a.jjb.as_ref().context("--jjb is required to import")?;
    let jobs = import::jjb::read(jjb_dir)?;
    let deps = match &a.dependencies {
        Some(p) => Some(import::zuul::dependencies(&import::yaml::load(p)?)?),
        None => None,
    };
    let opts = Options {
        public_url: a.public_url,
        gerrit_url: a.gerrit_url,
        registry_url: a.registry_url,
        default_image: a.default_image,
        entrypoint: a.entrypoint,
        default_branch: a.default_branch,
        resolve: if a.offline {
            Resolve::Offline
        } else {
            Resolve::Online(Duration::from_secs(a.resolve_timeout))
        },
    };
    let imported = import::map::import(&layout, &jobs, deps.as_ref(), &opts)?;
    let json = serde_json::to_vec_pretty(&imported.report)?;
    import::write::repo(&a.out, &imported.files)?;
    if let Some(r) = &a.report {
        import::write::file(r, &json)?;
    }
    print!("{}", imported.report.summary());
    println!(
        "wrote {} files to {}",
        imported.files.len(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
