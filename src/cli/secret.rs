//! `seakeeper secret encrypt|reencrypt`: job secrets sealed in the config repo
//! (`secrets/<name>.pgp`), encrypted to the server's public cert.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use crate::secrets;

#[derive(Debug, Subcommand)]
pub(super) enum SecretCommand {
    /// Seal the value on standard input (one trailing newline dropped) as the secret NAME,
    /// encrypted to the server's cert: writes `<repo>/secrets/NAME.pgp`, to be committed and
    /// reviewed. Which projects and pipelines may use it is said in `policies/secrets.yaml`.
    Encrypt {
        /// The secret's name, which is also the job's environment variable (A-Z, 0-9, `_`).
        #[arg(long)]
        name: String,
        /// The server's public cert (`seakeeper key export`, or `--cert-out` of
        /// `key generate`).
        #[arg(long)]
        cert: PathBuf,
        /// The config repo's working tree.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
        /// Write here instead of `<repo>/secrets/NAME.pgp`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Rotation: open every `secrets/*.pgp` of the config repo with the current key and seal
    /// it again to a new cert, in place (commit the result, then switch the server's key).
    Reencrypt {
        /// The server's current secret key.
        #[arg(long)]
        key: PathBuf,
        /// The new public cert.
        #[arg(long)]
        cert: PathBuf,
        /// The config repo's working tree.
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
}

pub(super) fn run(cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretCommand::Encrypt {
            name,
            cert,
            repo,
            out,
        } => {
            secrets::sealed::check_name(&name)?;
            let cert_bytes =
                std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
            let mut value = String::new();
            std::io::stdin()
                .take(secrets::sealed::MAX_VALUE as u64 + 2)
                .read_to_string(&mut value)
                .context("reading the value from standard input (it must be UTF-8 text)")?;
            let value = value
                .strip_suffix("\r\n")
                .or_else(|| value.strip_suffix('\n'))
                .unwrap_or(&value);
            let sealed = secrets::seal(&name, value, &cert_bytes, &cert.display().to_string())?;
            let path = out.unwrap_or_else(|| repo.join("secrets").join(format!("{name}.pgp")));
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&path, &sealed)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Reencrypt { key, cert, repo } => {
            let key_bytes =
                std::fs::read(&key).with_context(|| format!("reading {}", key.display()))?;
            let opener = secrets::Opener::from_key_bytes(&key_bytes, &key.display().to_string())?;
            let cert_bytes =
                std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
            let dir = repo.join("secrets");
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pgp"))
                .collect();
            files.sort();
            // Every file is opened before any is written: a rotation is all or nothing.
            let mut resealed = Vec::new();
            for path in &files {
                let what = path.display().to_string();
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .with_context(|| format!("{what}: not a UTF-8 name"))?;
                let sealed = std::fs::read(path).with_context(|| format!("reading {what}"))?;
                let value = opener.open(name, &sealed, &what)?;
                resealed.push((
                    path,
                    secrets::seal(
                        name,
                        value.expose(),
                        &cert_bytes,
                        &cert.display().to_string(),
                    )?,
                ));
            }
            for (path, bytes) in &resealed {
                std::fs::write(path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("{}", path.display());
            }
            eprintln!(
                "{} secret(s) encrypted to {}",
                resealed.len(),
                cert.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
