//! `seakeeper key generate|export|add-encryption-subkey`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::signing;

#[derive(Debug, Subcommand)]
pub(super) enum KeyCommand {
    /// Generate an OpenPGP v4 key: an Ed25519 signing subkey for ledger commits and the
    /// ledger's attestations, an ECDSA P-256 signing subkey for cosign signatures on images,
    /// and a Cv25519 encryption subkey for the job secrets sealed in the config repo. The
    /// public cert (`--cert-out`) is all users need to seal secrets to the server.
    Generate(GenerateArgs),
    /// Print the public cert of a secret key (armored), e.g. for `secret encrypt --cert`.
    Export {
        /// The secret key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Give a key made before secrets were sealed in git a Cv25519 encryption subkey; the
    /// signing keys and the fingerprint stay the same.
    AddEncryptionSubkey {
        /// The secret key, rewritten in place (mode 0600).
        #[arg(long)]
        key: PathBuf,
        /// Where to write the new public cert (never overwritten).
        #[arg(long)]
        cert_out: PathBuf,
    },
    /// (In a container's init step.) Copy files (a key, the secrets file) from a mounted
    /// Secret into DIR, owned by this user with mode 0600 as the server requires, replacing
    /// what is there (the Secret is the truth).
    #[command(hide = true)]
    Install {
        /// A file to copy (repeatable).
        #[arg(long = "from", required = true)]
        from: Vec<PathBuf>,
        /// The directory (made with mode 0700).
        #[arg(long)]
        into: PathBuf,
    },
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
        KeyCommand::Install { from, into } => {
            use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&into)
                .with_context(|| into.display().to_string())?;
            std::fs::set_permissions(&into, std::fs::Permissions::from_mode(0o700))
                .with_context(|| into.display().to_string())?;
            for f in &from {
                let name = f
                    .file_name()
                    .with_context(|| format!("{}: not a file", f.display()))?;
                // Kubernetes mounts a Secret's keys as links into a timestamped directory.
                let bytes = std::fs::read(f).with_context(|| f.display().to_string())?;
                let dest = into.join(name);
                let tmp = into.join(format!(".{}.tmp", name.to_string_lossy()));
                let _ = std::fs::remove_file(&tmp);
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .with_context(|| tmp.display().to_string())?;
                std::io::Write::write_all(&mut out, &bytes)
                    .and_then(|()| out.sync_all())
                    .with_context(|| tmp.display().to_string())?;
                std::fs::rename(&tmp, &dest).with_context(|| dest.display().to_string())?;
                println!("installed {} (mode 0600)", dest.display());
            }
            Ok(ExitCode::SUCCESS)
        }
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
        KeyCommand::Export { key } => {
            let what = key.display().to_string();
            let bytes = std::fs::read(&key).with_context(|| format!("reading {what}"))?;
            let key = signing::SigningKey::from_bytes(&bytes, &what)?;
            let cert = key.public_cert_armored()?;
            print!("{}", String::from_utf8_lossy(&cert));
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::AddEncryptionSubkey { key, cert_out } => {
            let what = key.display().to_string();
            let bytes = std::fs::read(&key).with_context(|| format!("reading {what}"))?;
            let (secret, public) = signing::add_encryption_subkey(&bytes, &what)?;
            signing::write_new_file(&cert_out, &public, 0o644)
                .with_context(|| format!("writing the cert to {}", cert_out.display()))?;
            // Replaced atomically: a crash leaves the old key or the new one, never half.
            let tmp = key.with_extension("new-subkey.tmp");
            let _ = std::fs::remove_file(&tmp);
            signing::write_new_file(&tmp, &secret, 0o600)
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &key).with_context(|| format!("replacing {what}"))?;
            eprintln!(
                "{what}: added an encryption subkey; publish {} and seal secrets to it",
                cert_out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
