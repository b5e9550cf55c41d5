//! `seakeeper image self`: seakeeper's own runtime image from pinned inputs, reproducibly, with
//! its SLSA provenance signed by the server's key and attached as cosign does (`.att`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use crate::registry::{self, OciLayout, selfimage};
use crate::signing::{SigningKey, dsse, provenance};

/// The arguments of `image self`.
#[derive(Debug, Args)]
pub(super) struct SelfArgs {
    /// The release binary to put in the image (default: this one).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The lock pinning every other file of the image.
    #[arg(long, default_value = "bootstrap/image/inputs.lock")]
    lock: PathBuf,
    /// Write the lock from what this system has (the libraries `ldd` finds for git and the
    /// binary), for review, and build nothing.
    #[arg(long)]
    update_lock: bool,
    /// The OCI image layout to write the image into (created if missing).
    #[arg(long, required_unless_present = "update_lock")]
    layout: Option<PathBuf>,
    /// The image's name, as its provenance names it and Jobs pull it
    /// (`executor.seakeeper_image` is NAME@sha256:...).
    #[arg(long, default_value = "registry.example.org/seakeeper/seakeeper")]
    name: String,
    /// The tag to give it in the layout.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    tag: String,
    /// Where the files are read from (the lock's paths are relative to it).
    #[arg(long, default_value = "/")]
    sysroot: PathBuf,
    /// The server's secret key: signs the provenance (its P-256 subkey, as cosign verifies)
    /// and attaches it to the image in the layout as `sha256-<hex>.att`.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Also write the provenance statement (unsigned JSON) here.
    #[arg(long)]
    provenance: Option<PathBuf>,
}

pub(super) fn run(a: SelfArgs) -> anyhow::Result<ExitCode> {
    let binary = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding this binary")?,
    };
    if a.update_lock {
        let lock = selfimage::make_lock(&binary, &a.sysroot)?;
        if let Some(parent) = a.lock.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
        }
        std::fs::write(&a.lock, selfimage::render_lock(&lock))
            .with_context(|| a.lock.display().to_string())?;
        println!(
            "wrote {} ({} files); review and commit it",
            a.lock.display(),
            lock.files.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The key first: one that cannot sign touches nothing.
    let mut cosign_key = match &a.key {
        Some(k) => Some(
            SigningKey::load(k)?
                .cosign_key()
                .context("cannot sign the image's provenance")?,
        ),
        None => None,
    };
    let lock = selfimage::load_lock(&a.lock)?;
    let lock_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        std::fs::read(&a.lock).with_context(|| a.lock.display().to_string())?,
    ));
    let dir = super::image::layout_dir(&a.layout.expect("clap requires --layout"));
    if !registry::layout::is_tag(&a.tag) {
        bail!("--tag {:?} is not a tag", a.tag);
    }
    if !crate::model::job::is_pinned_image(&format!("{}@sha256:{}", a.name, "0".repeat(64))) {
        bail!(
            "--name {:?} is not an image name (host[:port]/path, lowercase)",
            a.name
        );
    }
    // Every input is checked before the layout is touched.
    let scratch = std::env::temp_dir().join(format!("seakeeper-image-self-{}", std::process::id()));
    let built = selfimage::image_spec(&lock, &binary, &a.sysroot, &scratch)
        .map_err(anyhow::Error::from)
        .and_then(|(spec, inputs)| {
            let store = OciLayout::open_or_init(&dir)?;
            Ok((registry::assemble(&store, &spec)?, inputs, store))
        });
    let _ = std::fs::remove_dir_all(&scratch);
    let (d, inputs, store) = built?;
    let statement = provenance::self_image_statement(
        &a.name,
        &d.digest,
        &inputs
            .iter()
            .map(|i| (i.path.clone(), i.package.clone(), i.sha256.clone()))
            .collect::<Vec<_>>(),
        &lock_sha,
        env!("CARGO_PKG_VERSION"),
    );
    let payload = serde_json::to_vec(&statement)?;
    if let Some(p) = &a.provenance {
        write(p, &payload)?;
    }
    // Tagged once its provenance is written: a tag always has one.
    store.tag(&a.tag, &d)?;
    if let Some(key) = cosign_key.as_mut() {
        let env = key.sign_dsse(dsse::IN_TOTO, &payload)?;
        registry::cosign::attach_attestation(
            &registry::copy::Location::Layout(store.clone()),
            &d.digest,
            &serde_json::to_vec(&env)?,
            provenance::SLSA_PROVENANCE_V1,
        )?;
    } else {
        eprintln!(
            "note: no --key: the image has no signed provenance attached (Jobs may run it, \
             promotions of it cannot be verified)"
        );
    }
    println!("{}@{}", a.name, d.digest);
    eprintln!(
        "{} files from {} ({} pinned); tagged {} in {}; set executor.seakeeper_image to the \
         line above once it is copied to {}",
        inputs.len(),
        a.lock.display(),
        lock.files.len(),
        a.tag,
        dir.display(),
        a.name
    );
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| path.display().to_string())
}
