//! `seakeeper key generate`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::signing;

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Generate an OpenPGP v4 key: an Ed25519 signing subkey for ledger commits and the
    /// ledger's attestations, and an ECDSA P-256 signing subkey for cosign signatures on images.
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub(super) struct GenerateArgs {
    /// The user id, e.g. "seakeeper CI <ci@example.org>".
    #[arg(long)]
    userid: String,
    /// Where to write the armored secret key (created with mode 0600; never overwritten).
    #[arg(long)]
    out: PathBuf,
    /// Where to write the armored public cert.
    #[arg(long)]
    cert_out: PathBuf,
}

pub(super) fn run(cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate(a) => {
            if a.userid.trim().is_empty() {
                anyhow::bail!("--userid must not be empty");
            }
            let (secret, public) = signing::generate_key(&a.userid)?;
            signing::write_new_file(&a.out, &secret, 0o600)
                .with_context(|| format!("writing the key to {}", a.out.display()))?;
            signing::write_new_file(&a.cert_out, &public, 0o644)
                .with_context(|| format!("writing the cert to {}", a.cert_out.display()))?;
            let key = signing::SigningKey::from_bytes(&secret, "the new key")?;
            println!("{}", key.fingerprint());
            Ok(ExitCode::SUCCESS)
        }
    }
}
