//! `seakeeper attest provenance` (a signed SLSA provenance statement in a DSSE envelope),
//! `seakeeper attest verify` (the signature, the statement and the ledger's records agree), and
//! the cosign attachments `attest attach` and `attest sign` (ECDSA P-256, see `signing::dsse`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::model::record::DsseEnvelope;
use crate::model::{Digest, Record, Trust};
use crate::signing::{SigningKey, dsse, provenance};

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(super) enum AttestCommand {
    /// Print a SLSA provenance v1 statement about an artifact, signed into a DSSE envelope with
    /// the CI key (the Ed25519 signing subkey of the ledger key).
    Provenance {
        /// The secret key.
        #[arg(long)]
        key: PathBuf,
        /// `NAME@sha256:...` of the artifact.
        #[arg(long)]
        subject: String,
        /// The build id.
        #[arg(long)]
        build_id: String,
        /// The trust level of the build (trusted, untrusted).
        #[arg(long, default_value = "trusted")]
        trust: String,
        /// The Gerrit project.
        #[arg(long)]
        project: String,
        /// The change number (for a build of a change).
        #[arg(long)]
        change: Option<u32>,
        /// The patchset number.
        #[arg(long)]
        patchset: Option<u32>,
        /// The ref built.
        #[arg(long, default_value = "refs/heads/main")]
        git_ref: String,
        /// The source repository URL.
        #[arg(long)]
        source: String,
        /// The source commit.
        #[arg(long)]
        source_commit: String,
        /// The config repo URL.
        #[arg(long)]
        config_repo: String,
        /// The config repo commit.
        #[arg(long)]
        config_commit: String,
        /// The base image, `NAME@sha256:...`.
        #[arg(long)]
        base: Option<String>,
        /// A byproduct (a log), `NAME@sha256:...` (repeatable).
        #[arg(long = "byproduct")]
        byproducts: Vec<String>,
    },
    /// Check attestations of DIGEST: every envelope's signature against the cert's keys, its
    /// statement names DIGEST and a trusted builder, and (with --envelope and --ledger) that the
    /// envelope is the one the ledger recorded.
    Verify {
        /// The artifact digest.
        digest: String,
        /// The public cert (the ledger's published key).
        #[arg(long)]
        cert: PathBuf,
        /// An envelope file to check.
        #[arg(long)]
        envelope: Option<PathBuf>,
        /// The ledger whose attestation records to check.
        #[arg(long)]
        ledger: Option<PathBuf>,
    },
    /// Attach a statement to an image as cosign does (`sha256-<hex>.att`), in a registry
    /// (`docker://HOST/REPO@sha256:...`) or a layout (`oci:DIR@sha256:...`): the statement of
    /// the envelope (which the key's Ed25519 subkey must have signed) is signed again by the
    /// key's ECDSA P-256 subkey, the signature cosign verifies, and that envelope is attached.
    Attach {
        /// The image, by digest.
        image: String,
        /// The DSSE envelope file (from `attest provenance`).
        #[arg(long)]
        envelope: PathBuf,
        /// The secret key.
        #[arg(long)]
        key: PathBuf,
        /// Plain HTTP (loopback registries only).
        #[arg(long)]
        plain_http: bool,
        /// The secrets file with the registry's account.
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Sign an image as cosign does (`sha256-<hex>.sig`: ECDSA P-256 over the simple-signing
    /// payload, by the key's P-256 subkey).
    Sign {
        /// The image, by digest.
        image: String,
        /// The secret key.
        #[arg(long)]
        key: PathBuf,
        /// Plain HTTP (loopback registries only).
        #[arg(long)]
        plain_http: bool,
        /// The secrets file with the registry's account.
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Print the CI key's Ed25519 public key (which signs the ledger's envelopes) as hex and key
    /// id (securesystemslib) or PEM; or, with --cosign, its ECDSA P-256 public key as PEM (what
    /// `cosign verify --key` takes).
    PublicKey {
        /// The public cert.
        #[arg(long)]
        cert: PathBuf,
        /// The Ed25519 key as PEM instead of hex.
        #[arg(long)]
        pem: bool,
        /// The P-256 key that signs the cosign `.sig` and `.att`, as PEM.
        #[arg(long, conflicts_with = "pem")]
        cosign: bool,
    },
}

fn named(flag: &str, text: &str) -> anyhow::Result<(String, Digest)> {
    let (name, d) = text
        .rsplit_once('@')
        .with_context(|| format!("--{flag} {text:?}: expected NAME@sha256:<hex>"))?;
    Ok((
        name.to_owned(),
        d.parse().with_context(|| format!("--{flag}"))?,
    ))
}

pub(super) fn run(cmd: AttestCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AttestCommand::Provenance {
            key,
            subject,
            build_id,
            trust,
            project,
            change,
            patchset,
            git_ref,
            source,
            source_commit,
            config_repo,
            config_commit,
            base,
            byproducts,
        } => {
            let (subject_name, digest) = named("subject", &subject)?;
            let trust = match trust.as_str() {
                "trusted" => Trust::Trusted,
                "untrusted" => Trust::Untrusted,
                t => bail!("--trust {t:?}: expected trusted or untrusted"),
            };
            let change = match (change, patchset) {
                (Some(c), Some(p)) => Some((c, p)),
                (None, None) => None,
                _ => bail!("--change and --patchset go together"),
            };
            let now = crate::model::Timestamp::now().to_string();
            let p = provenance::Provenance {
                subject_name,
                digest,
                trust,
                build_id,
                project,
                change,
                git_ref,
                source,
                source_commit,
                config_commit,
                config_repo,
                base_image: base.map(|b| named("base", &b)).transpose()?,
                byproducts: byproducts
                    .iter()
                    .map(|b| named("byproduct", b))
                    .collect::<anyhow::Result<_>>()?,
                started: now.clone(),
                finished: now,
            };
            let statement = provenance::statement(&p);
            let mut key = SigningKey::load(&key)?;
            let env = key.sign_dsse(dsse::IN_TOTO, &serde_json::to_vec(&statement)?)?;
            println!("{}", serde_json::to_string(&env)?);
            Ok(ExitCode::SUCCESS)
        }
        AttestCommand::Attach {
            image,
            envelope,
            key,
            plain_http,
            secrets,
        } => {
            // The keys first: a key that cannot sign for cosign touches no registry.
            let ledger_key = SigningKey::load(&key)?;
            let mut cosign_key = ledger_key
                .cosign_key()
                .context("cannot make a cosign attestation")?;
            let creds = super::registry_credentials(secrets.as_deref(), &image)?;
            let (loc, reference) =
                crate::registry::copy::parse_location(&image, plain_http, creds)?;
            let subject: Digest = reference
                .filter(|r| r.starts_with("sha256:"))
                .with_context(|| format!("{image}: name the image by @sha256:..."))?
                .parse()?;
            let bytes = std::fs::read(&envelope).with_context(|| envelope.display().to_string())?;
            let env: DsseEnvelope = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a DSSE envelope", envelope.display()))?;
            let payload =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &env.payload)
                    .context("the envelope's payload is not base64")?;
            let statement: serde_json::Value =
                serde_json::from_slice(&payload).context("the payload is not JSON")?;
            let (subjects, predicate) = provenance::subjects(&statement);
            if !subjects.iter().any(|s| s == subject.as_str()) {
                bail!("the envelope is not about {subject}");
            }
            // Only a statement this key made is signed again: the P-256 signature must not
            // vouch for more than the Ed25519 one does.
            dsse::verify(&env, &[ledger_key.ed25519_public()?]).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not signed by {}'s Ed25519 subkey: {e}",
                    envelope.display(),
                    key.display()
                )
            })?;
            let cosign_env = cosign_key.sign_dsse(&env.payload_type, &payload)?;
            let d = crate::registry::cosign::attach_attestation(
                &loc,
                &subject,
                &serde_json::to_vec(&cosign_env)?,
                &predicate,
            )?;
            println!("{} {d}", crate::registry::cosign::tag(&subject, "att"));
            Ok(ExitCode::SUCCESS)
        }
        AttestCommand::Sign {
            image,
            key,
            plain_http,
            secrets,
        } => {
            let mut cosign_key =
                dsse::CosignKey::load(&key).context("cannot make a cosign signature")?;
            let creds = super::registry_credentials(secrets.as_deref(), &image)?;
            let (loc, reference) =
                crate::registry::copy::parse_location(&image, plain_http, creds)?;
            let subject: Digest = reference
                .filter(|r| r.starts_with("sha256:"))
                .with_context(|| format!("{image}: name the image by @sha256:..."))?
                .parse()?;
            let name = image.split('@').next().unwrap_or_default();
            let name = name
                .strip_prefix("docker://")
                .or_else(|| name.strip_prefix("oci:"))
                .unwrap_or(name);
            let payload = crate::registry::cosign::simple_signing_payload(name, &subject);
            let sig = cosign_key.sign(&payload)?;
            let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig);
            let d = crate::registry::cosign::attach_signature(&loc, &subject, &payload, &b64)?;
            println!("{} {d}", crate::registry::cosign::tag(&subject, "sig"));
            Ok(ExitCode::SUCCESS)
        }
        AttestCommand::PublicKey { cert, pem, cosign } => {
            let bytes = std::fs::read(&cert).with_context(|| cert.display().to_string())?;
            if cosign {
                let keys = dsse::cert_p256_keys(&bytes)?;
                let k = keys.first().with_context(|| {
                    format!(
                        "{}: no ECDSA P-256 signing subkey, so no cosign signatures (keys made \
                         by `seakeeper key generate` before it added one have only Ed25519)",
                        cert.display()
                    )
                })?;
                print!("{}", dsse::p256_pem(k));
                return Ok(ExitCode::SUCCESS);
            }
            let keys = dsse::cert_ed25519_keys(&bytes)?;
            let k = keys
                .first()
                .context("the cert has no Ed25519 signing key")?;
            if pem {
                print!("{}", dsse::pem(k));
            } else {
                println!("{} {}", hex::encode(k), dsse::keyid(k));
            }
            Ok(ExitCode::SUCCESS)
        }
        AttestCommand::Verify {
            digest,
            cert,
            envelope,
            ledger,
        } => {
            let digest: Digest = digest.parse()?;
            let bytes = std::fs::read(&cert).with_context(|| cert.display().to_string())?;
            let keys = dsse::cert_ed25519_keys(&bytes)?;
            if keys.is_empty() {
                bail!("{}: no Ed25519 signing key", cert.display());
            }
            // A DSSE envelope, or the ledger's own attestation file (its record, which holds
            // the envelope under `envelope`), as `git show` or `ledger show` gives it.
            let given: Option<DsseEnvelope> = match &envelope {
                Some(p) => {
                    let bytes = std::fs::read(p).with_context(|| p.display().to_string())?;
                    let value: serde_json::Value = serde_json::from_slice(&bytes)
                        .with_context(|| format!("{}: not JSON", p.display()))?;
                    let inner = match value.get("envelope") {
                        Some(e) if value.get("record").is_some() => e.clone(),
                        _ => value,
                    };
                    Some(serde_json::from_value(inner).with_context(|| {
                        format!(
                            "{}: neither a DSSE envelope nor a ledger attestation file",
                            p.display()
                        )
                    })?)
                }
                None => None,
            };
            let mut recorded = Vec::new();
            if let Some(l) = &ledger {
                let ledger = crate::ledger::Ledger::open(l)?;
                let snap = ledger.snapshot()?;
                if let Some(trace) = snap.trace_digest(&digest)? {
                    for a in trace.attestations {
                        if let Some(Record::Attestation(r)) = snap.record(&a.path)? {
                            recorded.push((a.path, r.envelope));
                        }
                    }
                }
                if recorded.is_empty() {
                    bail!("the ledger has no attestation for {digest}");
                }
            }
            let mut all: Vec<(String, DsseEnvelope)> = recorded.clone();
            if let Some(g) = &given {
                all.push(("the envelope given".into(), g.clone()));
                if ledger.is_some() && !recorded.iter().any(|(_, e)| e == g) {
                    bail!("the envelope given is not one the ledger recorded for {digest}");
                }
            }
            if all.is_empty() {
                bail!("nothing to check: give --envelope and/or --ledger");
            }
            for (what, env) in &all {
                let payload =
                    dsse::verify(env, &keys).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                let statement: serde_json::Value = serde_json::from_slice(&payload)
                    .with_context(|| format!("{what}: the payload is not JSON"))?;
                let (subjects, predicate) = provenance::subjects(&statement);
                if !subjects.iter().any(|s| s == digest.as_str()) {
                    bail!(
                        "{what}: the statement is not about {digest} ({})",
                        subjects.join(", ")
                    );
                }
                if predicate == provenance::SLSA_PROVENANCE_V1 {
                    let builder = statement["predicate"]["runDetails"]["builder"]["id"]
                        .as_str()
                        .unwrap_or_default();
                    if builder != provenance::builder_id(Trust::Trusted) {
                        bail!("{what}: built by {builder}, not a trusted builder");
                    }
                }
                println!("{what}: signature ok, {predicate} about {digest}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
