//! `seakeeper image build`: assemble an OCI image from a directory, deterministically.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;

use crate::registry::{self, ImageSpec, OciLayout};

#[derive(Debug, Subcommand)]
pub(super) enum ImageCommand {
    /// Build seakeeper's own runtime image (the binary, git, their libraries, CA certificates;
    /// no shell) from the inputs `bootstrap/image/inputs.lock` pins: the same inputs give the
    /// same digest on any machine. Its SLSA provenance is signed with --key and attached
    /// (`sha256-<hex>.att`); `image copy` carries both to a registry. Prints NAME@DIGEST, the
    /// value for `executor.seakeeper_image`.
    #[command(name = "self")]
    SelfImage(super::image_self::SelfArgs),
    /// Assemble an image from the files of a directory (and a base image in the same layout):
    /// the same inputs give the same digest on any machine. Prints the manifest digest.
    Build {
        /// The OCI image layout to write into (created if missing), e.g. `oci:/srv/store`.
        #[arg(long)]
        layout: PathBuf,
        /// The tag to give the image in the layout.
        #[arg(long)]
        tag: String,
        /// The directory whose files become the new layer.
        #[arg(long)]
        from_dir: PathBuf,
        /// Where the files go in the image (e.g. `srv/app`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// The base image: a tag or `sha256:` digest in the same layout (default: scratch).
        #[arg(long)]
        base: Option<String>,
        /// The entrypoint, one argument per flag.
        #[arg(long = "entrypoint")]
        entrypoint: Vec<String>,
        /// `KEY=VALUE` environment (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
        /// `KEY=VALUE` label (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The working directory.
        #[arg(long)]
        workdir: Option<String>,
    },
    /// Copy an image by digest, with everything it references (index children, config, layers,
    /// cosign `.sig`/`.att` tags), never re-serializing a manifest; the digest is checked at
    /// the target before DST's tag is set. Each side is `docker://HOST/REPO` or `oci:DIR`.
    Copy {
        /// `docker://HOST/REPO@sha256:...` or `oci:DIR@sha256:...` (or with a tag, resolved once).
        src: String,
        /// `docker://HOST/REPO[:TAG]` or `oci:DIR[:TAG]`.
        dst: String,
        /// Use plain HTTP (allowed for loopback registries only).
        #[arg(long)]
        plain_http: bool,
        /// Blobs copied at once.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// The secrets file with `registries: {HOST: {username, password}}` (mode 0600).
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Delete an image from a store and record the expiry in the ledger (the retention policy
    /// decides; this carries a decision out). The ledger record is written after the deletion.
    Expire {
        /// `docker://HOST/REPO@sha256:...` or `oci:DIR@sha256:...`.
        image: String,
        /// The artifact's name, for the record.
        #[arg(long)]
        name: String,
        /// The retention rule that expired it, in words.
        #[arg(long)]
        rule: String,
        /// The ledger.
        #[arg(long)]
        ledger: PathBuf,
        /// The key that signs ledger commits.
        #[arg(long)]
        key: PathBuf,
        /// Plain HTTP (loopback registries only).
        #[arg(long)]
        plain_http: bool,
        /// The secrets file with the registry's account.
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
}

fn pairs(flag: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => bail!("--{flag} {i:?}: expected KEY=VALUE"),
        })
        .collect()
}

pub(super) fn run(cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    if let ImageCommand::SelfImage(a) = cmd {
        return super::image_self::run(a);
    }
    if let ImageCommand::Expire {
        image,
        name,
        rule,
        ledger,
        key,
        plain_http,
        secrets,
    } = cmd
    {
        let creds = super::registry_credentials(secrets.as_deref(), &image)?;
        return expire(&image, &name, &rule, &ledger, &key, plain_http, creds);
    }
    if let ImageCommand::Copy {
        src,
        dst,
        plain_http,
        parallel,
        secrets,
    } = cmd
    {
        return copy(&src, &dst, plain_http, parallel, secrets.as_deref());
    }
    let ImageCommand::Build { .. } = &cmd else {
        unreachable!("copy and expire are handled above")
    };
    let ImageCommand::Build {
        layout,
        tag,
        from_dir,
        prefix,
        base,
        entrypoint,
        env,
        labels,
        workdir,
    } = cmd
    else {
        unreachable!("copy is handled above")
    };
    let store = OciLayout::open_or_init(&layout_dir(&layout))?;
    let base = match base {
        Some(b) => Some(
            store
                .resolve(&b)
                .with_context(|| format!("--base {b:?}"))?
                .digest,
        ),
        None => None,
    };
    let spec = ImageSpec {
        files: registry::assemble::files_under(&from_dir)?,
        prefix,
        base,
        entrypoint,
        env: pairs("env", &env)?,
        labels: pairs("label", &labels)?,
        working_dir: workdir,
    };
    if spec.files.is_empty() {
        bail!("--from-dir {}: no files", from_dir.display());
    }
    let d = registry::assemble(&store, &spec)?;
    store.tag(&tag, &d)?;
    println!("{}", d.digest);
    Ok(ExitCode::SUCCESS)
}

fn copy(
    src: &str,
    dst: &str,
    plain_http: bool,
    parallel: usize,
    secrets: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use crate::registry::copy::{self, parse_location};
    let (from, reference) =
        parse_location(src, plain_http, super::registry_credentials(secrets, src)?)?;
    let (to, tag) = parse_location(dst, plain_http, super::registry_credentials(secrets, dst)?)?;
    let reference =
        reference.with_context(|| format!("{src}: name a digest (@sha256:...) or a tag"))?;
    let digest: crate::model::Digest = if reference.starts_with("sha256:") {
        reference.parse()?
    } else {
        let d = match &from {
            copy::Location::Registry(r, repo) => r.get_manifest(repo, &reference)?.digest,
            copy::Location::Layout(l) => l.resolve(&reference)?.digest,
        };
        eprintln!("{src}: tag {reference} is {d}");
        d
    };
    if tag.as_deref().is_some_and(|t| t.starts_with("sha256:")) {
        bail!("{dst}: the target takes a tag, not a digest");
    }
    // SAFETY: isatty only inspects a file descriptor.
    let terminal = unsafe { libc::isatty(2) } == 1;
    let progress = |s: &copy::CopyStats| {
        if terminal {
            eprint!(
                "\r\x1b[Kcopying {}: {} blob(s) copied ({:.1} MB), {} already there, {} mounted",
                digest,
                s.blobs_copied,
                s.bytes as f64 / 1e6,
                s.blobs_present,
                s.blobs_mounted
            );
        }
    };
    let stats = copy::copy_with_progress(&from, &to, &digest, tag.as_deref(), parallel, &progress)?;
    if terminal {
        eprintln!();
    }
    eprintln!(
        "copied {} manifest(s); blobs: {} copied ({} bytes), {} already there, {} mounted",
        stats.manifests, stats.blobs_copied, stats.bytes, stats.blobs_present, stats.blobs_mounted
    );
    println!("{digest}");
    Ok(ExitCode::SUCCESS)
}

fn expire(
    image: &str,
    name: &str,
    rule: &str,
    ledger: &std::path::Path,
    key: &std::path::Path,
    plain_http: bool,
    creds: Option<(String, String)>,
) -> anyhow::Result<ExitCode> {
    use crate::ledger::{Writer, WriterOptions};
    use crate::model::Record;
    use crate::model::record::Expiry;
    let (location, reference) = crate::registry::copy::parse_location(image, plain_http, creds)?;
    let digest: crate::model::Digest = reference
        .filter(|r| r.starts_with("sha256:"))
        .with_context(|| format!("{image}: name the image by @sha256:..."))?
        .parse()?;
    let record = Record::Expiry(Expiry {
        digest: digest.clone(),
        name: name.to_owned(),
        store: image.split('@').next().unwrap_or(image).to_owned(),
        rule: rule.to_owned(),
        expired_at: crate::model::Timestamp::now(),
    });
    record
        .validate()
        .map_err(|e| anyhow::anyhow!("the expiry record: {e}"))?;
    // The writer checks the key before anything is deleted.
    let writer = Writer::open(
        ledger,
        crate::signing::SigningKey::load(key)?,
        WriterOptions::default(),
    )?;
    // The cosign signature and attestations go with the image (they name only it).
    for suffix in ["sig", "att"] {
        let tag = format!("sha256-{}.{suffix}", digest.hex());
        if let Some(m) = location.get_manifest_opt(&tag)? {
            location.delete_manifest(&m.digest)?;
        }
    }
    location.delete_manifest(&digest)?;
    let receipt = writer.append(record);
    writer.shutdown();
    let receipt = receipt?;
    println!("{} {}", receipt.path, receipt.commit);
    Ok(ExitCode::SUCCESS)
}

/// The directory of an `--layout` argument (`oci:DIR` or `DIR`).
pub(super) fn layout_dir(layout: &std::path::Path) -> PathBuf {
    let text = layout.to_string_lossy();
    PathBuf::from(text.strip_prefix("oci:").unwrap_or(&text))
}
