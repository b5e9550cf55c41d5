//! The command line: one file per subcommand, argument handling and output only. Logic lives
//! in the library modules; errors are `anyhow` here and mapped to exit codes in `main`.

mod attest;
mod bootstrap;
mod config;
mod demo;
mod doctor;
mod gerrit;
mod image;
mod image_self;
mod import;
mod init;
mod job;
mod key;
mod ledger;
mod pipeline;
mod secret;
mod serve;
mod trace;
mod web;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// seakeeper: a Git-native CI/CD reconciler with a signed ledger.
#[derive(Debug, Parser)]
#[command(name = "seakeeper", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How diagnostics are written to stderr: `text` for people (the default), `json` for one
    /// JSON object per line with its span's fields (`SEAKEEPER_LOG_FORMAT` says the same).
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
}

/// How diagnostics are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The log format asked for: `--log-format`, else `SEAKEEPER_LOG_FORMAT` (`text` or
    /// `json`), else text. An unknown value of the variable is an error, not ignored.
    pub fn log_format(&self) -> Result<LogFormat, String> {
        if let Some(f) = self.log_format {
            return Ok(f);
        }
        match std::env::var("SEAKEEPER_LOG_FORMAT") {
            Err(_) => Ok(LogFormat::Text),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!(
                    "SEAKEEPER_LOG_FORMAT={v:?}: expected `text` or `json`"
                )),
            },
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// OpenPGP keys for signing the ledger.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Job secrets sealed in the config repo: encrypt one, re-encrypt all to a new key.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// The config repo: check it, show the resolved view.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// A project's .pipeline/config.yaml: check it against the config repo.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCommand),
    /// Gerrit: normalize stream-events into domain events; poll refs.
    #[command(subcommand)]
    Gerrit(gerrit::GerritCommand),
    /// Jobs: run one locally exactly as CI would, render its Kubernetes manifest.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Attestations: signed SLSA provenance (DSSE), and checking them against the ledger.
    #[command(subcommand)]
    Attest(attest::AttestCommand),
    /// Images: assemble one deterministically into an OCI image layout.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// The signed ledger: init, import, log, show, verify, keys.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Trace an artifact digest or a build id through the ledger.
    Trace(trace::TraceArgs),
    /// Build a demo world on this machine (no servers) and walk through it.
    Demo(demo::DemoArgs),
    /// Make this (fresh Debian) machine a seakeeper server, or repair one: packages, the
    /// binary, the user, the key, the settings and secrets files, the ledger, a hardened
    /// systemd unit; then start it and wait for /healthz. Running it again changes nothing
    /// that is right.
    Bootstrap(bootstrap::BootstrapArgs),
    /// Migration: `import zuul` turns a Zuul v2 layout and its Jenkins Job Builder files into
    /// a config repo, or compares one with the layout (`--check`).
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// Check that a cluster gives seakeeper's jobs what they rely on (`--kubernetes`): Pod
    /// Security, no tokens, no Secrets, no API server for untrusted jobs, a Job that runs.
    /// One line per check; exits 1 if any fails.
    Doctor(doctor::DoctorArgs),
    /// Start something new: `init config DIR` writes a starter config repo.
    #[command(subcommand)]
    Init(init::InitCommand),
    /// Run the reconciler daemon: check, post-merge, periodic, promotion, freezes.
    Serve(serve::ServeArgs),
    /// The web server alone, read-only, over this machine's ledger (a replica's, or a daemon's
    /// that serves no pages itself).
    Web(web::WebArgs),
    /// One reconcile pass (for cron and debugging).
    Reconcile(serve::ReconcileArgs),
    /// What the daemon is doing: queues, running jobs, freezes, held promotions.
    Status(serve::StatusArgs),
    /// The retention policy: delete what it lets go now, an expiry record each (the daemon
    /// does this every `every` of policies/retention.yaml).
    #[command(subcommand)]
    Retention(RetentionCommand),
}

/// `seakeeper retention ...`
#[derive(Debug, clap::Subcommand)]
enum RetentionCommand {
    /// One sweep now.
    Run(serve::RetentionArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Key(c) => key::run(c),
        Command::Ledger(c) => ledger::run(c),
        Command::Config(c) => config::run(c),
        Command::Init(c) => init::run(c),
        Command::Import(c) => import::run(c),
        Command::Bootstrap(a) => bootstrap::run(a),
        Command::Secret(c) => secret::run(c),
        Command::Pipeline(c) => pipeline::run(c),
        Command::Gerrit(c) => gerrit::run(c),
        Command::Job(c) => job::run(c),
        Command::Image(c) => image::run(c),
        Command::Attest(c) => attest::run(c),
        Command::Trace(a) => trace::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Serve(a) => serve::serve(a),
        Command::Web(a) => web::run(a),
        Command::Reconcile(a) => serve::reconcile(a),
        Command::Status(a) => serve::status(a),
        Command::Retention(RetentionCommand::Run(a)) => serve::retention(a),
    }
}

/// The account for the registry of `location` (`docker://HOST/...`) in the secrets file.
fn registry_credentials(
    secrets: Option<&std::path::Path>,
    location: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let Some(path) = secrets else {
        return Ok(None);
    };
    let file = crate::secrets::SecretsFile::load(path)?;
    let host = location
        .strip_prefix("docker://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    Ok(file.registries.get(host).map(|c| c.pair()))
}

/// Prints a value as one line of JSON.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
