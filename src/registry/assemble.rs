//! Declarative image assembly: a job's output files, a base image, an entrypoint, environment
//! and labels become an OCI image, deterministically: tar entries sorted by path, every mtime 0,
//! owner 0:0 with no names, modes 0644/0755 only, gzip at a fixed level with no name or time in
//! its header, JSON with sorted keys. The same inputs give the same digest on any machine.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::Digest as _;

use super::layout::{Descriptor, MANIFEST_V1, OciLayout, StoreError};
use crate::model::Digest;

/// The media type of a gzipped layer.
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The media type of an image config.
pub const CONFIG_V1: &str = "application/vnd.oci.image.config.v1+json";

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// Files to add: path in the image (relative, `/`-separated) -> file on disk.
    pub files: BTreeMap<String, PathBuf>,
    /// Where the files go in the image, e.g. `srv` (no leading slash).
    pub prefix: String,
    /// The base image's manifest, in the same store (`None`: from scratch).
    pub base: Option<Digest>,
    /// The entrypoint (replaces the base's).
    pub entrypoint: Vec<String>,
    /// Environment, added to the base's.
    pub env: BTreeMap<String, String>,
    /// Labels, added to the base's.
    pub labels: BTreeMap<String, String>,
    /// The working directory.
    pub working_dir: Option<String>,
}

/// Assembly failed.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An input file could not be read.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The spec is not valid.
    #[error("{0}")]
    Invalid(String),
}

fn check_path(p: &str) -> Result<(), AssembleError> {
    let bad = p.is_empty()
        || p.starts_with('/')
        || p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
        || p.contains('\0');
    if bad {
        return Err(AssembleError::Invalid(format!(
            "{p:?} is not a relative path inside the image"
        )));
    }
    Ok(())
}

/// Builds the layer: a tar of the files (and their parent directories), then gzip.
/// Returns (gzipped bytes, diff id of the uncompressed tar).
fn layer(spec: &ImageSpec) -> Result<(Vec<u8>, Digest), AssembleError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut entries: BTreeMap<String, Option<(&PathBuf, u32)>> = BTreeMap::new();
    let prefix = spec.prefix.trim_matches('/');
    if !prefix.is_empty() {
        check_path(prefix)?;
    }
    for (path, src) in &spec.files {
        check_path(path)?;
        let full = if prefix.is_empty() {
            path.clone()
        } else {
            format!("{prefix}/{path}")
        };
        let meta = std::fs::symlink_metadata(src).map_err(|e| AssembleError::Input {
            path: src.clone(),
            message: e.to_string(),
        })?;
        if !meta.is_file() {
            return Err(AssembleError::Input {
                path: src.clone(),
                message: "not a regular file".into(),
            });
        }
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut parent = full.as_str();
        while let Some(i) = parent.rfind('/') {
            parent = &parent[..i];
            entries.entry(format!("{parent}/")).or_insert(None);
        }
        entries.insert(full, Some((src, mode)));
    }
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        b.mode(tar::HeaderMode::Deterministic);
        for (name, file) in &entries {
            let mut h = tar::Header::new_ustar();
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            match file {
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o755);
                    h.set_size(0);
                    b.append_data(&mut h, name, std::io::empty())
                        .map_err(|e| AssembleError::Invalid(format!("{name}: {e}")))?;
                }
                Some((src, mode)) => {
                    // Opened without following a symlink swapped in after the scan.
                    let data = {
                        use std::io::Read as _;
                        use std::os::unix::fs::OpenOptionsExt as _;
                        let err = |e: std::io::Error| AssembleError::Input {
                            path: (*src).clone(),
                            message: e.to_string(),
                        };
                        let mut f = std::fs::OpenOptions::new()
                            .read(true)
                            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                            .open(src)
                            .map_err(err)?;
                        if !f.metadata().map_err(err)?.is_file() {
                            return Err(AssembleError::Input {
                                path: (*src).clone(),
                                message: "not a regular file".into(),
                            });
                        }
                        let mut v = Vec::new();
                        f.read_to_end(&mut v).map_err(err)?;
                        v
                    };
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, data.as_slice())
                        .map_err(|e| AssembleError::Invalid(format!("{name}: {e}")))?;
                }
            }
        }
        b.finish()
            .map_err(|e| AssembleError::Invalid(format!("tar: {e}")))?;
    }
    let diff_id: Digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar_bytes)))
        .parse()
        .expect("a sha256 digest");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    gz.write_all(&tar_bytes)
        .map_err(|e| AssembleError::Invalid(format!("gzip: {e}")))?;
    let gz = gz
        .finish()
        .map_err(|e| AssembleError::Invalid(format!("gzip: {e}")))?;
    Ok((gz, diff_id))
}

/// Assembles the image into `store` and returns its manifest's descriptor (tag it with
/// [`OciLayout::tag`]).
pub fn assemble(store: &OciLayout, spec: &ImageSpec) -> Result<Descriptor, AssembleError> {
    let (mut config, mut layers): (Value, Vec<Value>) = match &spec.base {
        None => (
            json!({"architecture": "amd64", "os": "linux", "config": {},
                   "rootfs": {"type": "layers", "diff_ids": []}, "history": []}),
            Vec::new(),
        ),
        Some(base) => {
            let manifest: Value = serde_json::from_slice(&store.read_blob(base)?)
                .map_err(|e| AssembleError::Invalid(format!("base manifest {base}: {e}")))?;
            if manifest["mediaType"] != MANIFEST_V1
                && manifest["mediaType"] != "application/vnd.docker.distribution.manifest.v2+json"
            {
                return Err(AssembleError::Invalid(format!(
                    "base {base} is not a single-platform image manifest (an index must be resolved to one platform first)"
                )));
            }
            let config_digest: Digest = manifest["config"]["digest"]
                .as_str()
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| AssembleError::Invalid(format!("base {base} has no config")))?;
            let config: Value = serde_json::from_slice(&store.read_blob(&config_digest)?)
                .map_err(|e| AssembleError::Invalid(format!("base config {config_digest}: {e}")))?;
            let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
            (config, layers)
        }
    };
    let (gz, diff_id) = layer(spec)?;
    let layer_digest = store.put_blob(&gz)?;
    // The config, sorted keys (serde_json's map is ordered), fixed times.
    let c = &mut config["config"];
    if !c.is_object() {
        *c = json!({});
    }
    if !spec.entrypoint.is_empty() {
        c["Entrypoint"] = json!(spec.entrypoint);
        c["Cmd"] = Value::Null;
    }
    if let Some(w) = &spec.working_dir {
        c["WorkingDir"] = json!(w);
    }
    let mut env: BTreeMap<String, String> = c["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.as_str()?
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    env.extend(spec.env.clone());
    if !env.is_empty() {
        c["Env"] = json!(
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        );
    }
    let mut labels: BTreeMap<String, String> = c["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    labels.extend(spec.labels.clone());
    if !labels.is_empty() {
        c["Labels"] = json!(labels);
    }
    if let Some(obj) = c.as_object_mut() {
        obj.retain(|_, v| !v.is_null());
    }
    config["created"] = json!("1970-01-01T00:00:00Z");
    match config["rootfs"]["diff_ids"].as_array_mut() {
        Some(ids) => ids.push(json!(diff_id.to_string())),
        None => config["rootfs"] = json!({"type": "layers", "diff_ids": [diff_id.to_string()]}),
    }
    let history =
        json!({"created": "1970-01-01T00:00:00Z", "created_by": "seakeeper image assembly"});
    match config["history"].as_array_mut() {
        Some(h) => h.push(history),
        None => config["history"] = json!([history]),
    }
    let config_bytes = serde_json::to_vec(&config).expect("json");
    let config_digest = store.put_blob(&config_bytes)?;
    layers.push(
        json!({"mediaType": LAYER_GZIP, "digest": layer_digest.to_string(), "size": gz.len()}),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V1,
        "config": {"mediaType": CONFIG_V1, "digest": config_digest.to_string(), "size": config_bytes.len()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let digest = store.put_blob(&bytes)?;
    Ok(Descriptor {
        media_type: MANIFEST_V1.into(),
        digest,
        size: bytes.len() as u64,
        annotations: BTreeMap::new(),
        extra: Default::default(),
    })
}

/// Every regular file under `dir` (not following symlinks), by relative path.
pub fn files_under(dir: &Path) -> Result<BTreeMap<String, PathBuf>, AssembleError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| AssembleError::Input {
            path: d.clone(),
            message: e.to_string(),
        })?;
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file()
                && let Ok(rel) = p.strip_prefix(dir)
            {
                out.insert(rel.to_string_lossy().into_owned(), p.clone());
            }
        }
    }
    Ok(out)
}

/// Assembles an image a pipeline declares (`outputs.images` in `.pipeline/config.yaml`): the
/// workspace files matching its globs, under `/srv`, on its pinned base image. A base that is
/// not yet in `store` is copied in by digest from `base_from` first.
pub fn declared_image(
    store: &OciLayout,
    decl: &crate::config::files::ImageOutput,
    workspace: &Path,
    base_from: Option<&super::copy::Location>,
) -> Result<Descriptor, AssembleError> {
    let base: Digest = decl
        .base
        .rsplit_once('@')
        .and_then(|(_, d)| d.parse().ok())
        .ok_or_else(|| {
            AssembleError::Invalid(format!(
                "image {}: base {:?} is not pinned by digest",
                decl.name, decl.base
            ))
        })?;
    if !store.has_blob(&base) {
        let src = base_from.ok_or_else(|| {
            AssembleError::Invalid(format!(
                "image {}: the base {base} is not in the store and no registry was given to fetch it",
                decl.name
            ))
        })?;
        super::copy::copy(
            src,
            &super::copy::Location::Layout(store.clone()),
            &base,
            None,
            4,
        )
        .map_err(|e| {
            AssembleError::Invalid(format!("image {}: fetching the base: {e}", decl.name))
        })?;
    }
    let files: BTreeMap<String, PathBuf> = files_under(workspace)?
        .into_iter()
        .filter(|(rel, _)| {
            decl.files
                .iter()
                .any(|g| crate::model::job::path_glob_matches(g, rel))
        })
        .collect();
    if files.is_empty() {
        return Err(AssembleError::Invalid(format!(
            "image {}: no workspace file matches {:?}",
            decl.name, decl.files
        )));
    }
    assemble(
        store,
        &ImageSpec {
            files,
            prefix: "srv".into(),
            base: Some(base),
            entrypoint: decl.entrypoint.clone(),
            env: decl.env.clone(),
            labels: decl.labels.clone(),
            working_dir: None,
        },
    )
}
