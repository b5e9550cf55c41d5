//! An image unpacked into a root filesystem a job runs in: once per manifest digest, shared
//! read-only by every job that names it (`<roots>/<manifest hex>/rootfs`, with the image's run
//! settings beside it in `image.json`).
//!
//! Layers are applied in order, each streamed from the image-layout store through its digest
//! check: plain, gzip and zstd tar; whiteouts (`.wh.<name>`) and opaque directories
//! (`.wh..wh..opq`); hard links within the root; file modes kept. Every path is resolved inside
//! the root, following the root's own symbolic links as the job would see them, so no entry
//! reaches outside it; an entry with a `..` component, a device node or a setuid or setgid file
//! refuses the whole image. A failed unpack leaves nothing behind but a temporary directory that
//! the next attempt removes; what is published is complete.
//!
//! It must not run anything from the image, and it never follows a link out of the root.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::layers::{
    Unpacker, read_in_root, real_mount_point, remove_tree, resolve_dir, set_mtime,
};
use super::layout::{INDEX_V1, OciLayout, StoreError};
use crate::model::Digest;

/// The media type of an uncompressed layer.
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// The media type of a zstd layer.
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The most a manifest or an image config may hold (both are read whole into memory).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The uid (and gid) a job runs as when its image names no other user or names root: the same
/// as the Kubernetes executor's `runAsUser`.
pub const JOB_UID: u32 = 65_532;

/// The directories and files a sandbox mounts over, made in every root (when the image has no
/// such path), since the root is mounted read-only.
const MOUNT_DIRS: &[&str] = &[
    "workspace",
    "tmp",
    "proc",
    "dev",
    "run",
    "var/tmp",
    "seakeeper",
];
const MOUNT_FILES: &[&str] = &["etc/hosts", "etc/resolv.conf"];

/// Unpacking failed; nothing was published.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layout store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The image's manifest or config is not what an image needs.
    #[error("image {image}: {message}")]
    Invalid {
        /// The manifest digest.
        image: Digest,
        /// What is wrong.
        message: String,
    },
    /// A layer holds something a root filesystem may not.
    #[error("image {image}: layer {layer}: {path}: {message}; the image is refused")]
    Refused {
        /// The manifest digest.
        image: Digest,
        /// The layer's digest.
        layer: Digest,
        /// The entry's path in the layer.
        path: String,
        /// Why.
        message: String,
    },
    /// Writing the root failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

pub(super) fn io_err(path: &Path, e: impl std::fmt::Display) -> UnpackError {
    UnpackError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// How the image says to run it (the OCI image config's `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `NAME=value` pairs.
    #[serde(default)]
    pub env: Vec<String>,
    /// The working directory.
    #[serde(default)]
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty: root.
    #[serde(default)]
    pub user: String,
    /// The entrypoint.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The command (the entrypoint's arguments).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// The TCP ports it documents (`ExposedPorts`).
    #[serde(default)]
    pub exposed_ports: Vec<u16>,
}

impl ImageConfig {
    /// The environment as pairs (entries without `=` are dropped).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The uid and gid to run as, names looked up in the root's `/etc/passwd` and
    /// `/etc/group`. Root (or no user) becomes [`JOB_UID`]: jobs never run as root, as on
    /// Kubernetes (`runAsNonRoot`).
    pub fn ids(&self, root: &Path) -> Result<(u32, u32), String> {
        let (user, group) = match self.user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (self.user.as_str(), None),
        };
        let lookup = |file: &str, name: &str, gid_field: bool| -> Result<(u32, u32), String> {
            let text = read_in_root(root, &format!("etc/{file}")).unwrap_or_default();
            for line in text.lines() {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() >= 4 && f[0] == name {
                    let id = f[2]
                        .parse::<u32>()
                        .map_err(|_| format!("/etc/{file}: {line}"))?;
                    let gid = if gid_field {
                        f[3].parse::<u32>()
                            .map_err(|_| format!("/etc/{file}: {line}"))?
                    } else {
                        id
                    };
                    return Ok((id, gid));
                }
            }
            Err(format!(
                "the image's user {:?}: no {name:?} in its /etc/{file}",
                self.user
            ))
        };
        let (mut uid, mut gid) = match user {
            "" => (0, 0),
            u => match u.parse::<u32>() {
                Ok(n) => (n, n),
                Err(_) => lookup("passwd", u, true)?,
            },
        };
        if let Some(g) = group.filter(|g| !g.is_empty()) {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => lookup("group", g, false)?.0,
            };
        }
        if uid == 0 {
            uid = JOB_UID;
            gid = JOB_UID;
        }
        Ok((uid, gid))
    }
}

/// An unpacked image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The manifest it came from (an index resolves to this platform's manifest).
    pub manifest: Digest,
    /// The root filesystem (read-only for jobs).
    pub root: PathBuf,
    /// How to run it.
    pub config: ImageConfig,
}

/// What `roots/<hex>/image.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Published {
    manifest: Digest,
    config: ImageConfig,
}

/// This machine's architecture as OCI names it.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The manifest of an index for this platform (`linux/<arch>`).
pub fn platform_child(index: &serde_json::Value) -> Option<Digest> {
    index["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == oci_arch())
        .and_then(|m| m["digest"].as_str())
        .and_then(|d| d.parse().ok())
}

/// Unpacks the image `digest` (a manifest, or an index holding one for this platform) from
/// `store` under `roots`, or finds it unpacked already.
pub fn unpack(store: &OciLayout, digest: &Digest, roots: &Path) -> Result<Unpacked, UnpackError> {
    let invalid = |message: String| UnpackError::Invalid {
        image: digest.clone(),
        message,
    };
    // Manifests and configs are small; a big one is refused before it is read into memory.
    if store
        .blob_size(digest)
        .is_some_and(|n| n > MAX_CONFIG_BYTES)
    {
        return Err(invalid("a manifest of over 4 MiB".into()));
    }
    let bytes = store.read_blob(digest)?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(format!("the manifest: {e}")))?;
    let media = manifest["mediaType"].as_str().unwrap_or_default();
    if media == INDEX_V1
        || media == "application/vnd.docker.distribution.manifest.list.v2+json"
        || manifest.get("manifests").is_some()
    {
        let child = manifest["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == oci_arch())
            .and_then(|m| m["digest"].as_str())
            .ok_or_else(|| invalid(format!("the index has no image for linux/{}", oci_arch())))?;
        let child: Digest = child
            .parse()
            .map_err(|e| invalid(format!("the index: {e}")))?;
        if &child == digest {
            return Err(invalid("the index names itself".into()));
        }
        // One level only: an index of indexes is refused (no unbounded recursion).
        let inner: serde_json::Value = serde_json::from_slice(&store.read_blob(&child)?)
            .map_err(|e| invalid(format!("the index's manifest {child}: {e}")))?;
        if inner.get("manifests").is_some() {
            return Err(invalid("an index inside an index".into()));
        }
        return unpack(store, &child, roots);
    }
    std::fs::create_dir_all(roots).map_err(|e| io_err(roots, e))?;
    // Images may hold what only trusted jobs should read: the roots are seakeeper's alone.
    let _ = std::fs::set_permissions(roots, std::fs::Permissions::from_mode(0o700));
    let dir = roots.join(digest.hex());
    let lock_path = roots.join(format!("{}.lock", digest.hex()));
    let _lock = lock(&lock_path)?;
    if let Some(found) = published(&dir)? {
        return Ok(found);
    }
    // What an attempt that died left behind.
    let prefix = format!(".{}.", digest.hex());
    if let Ok(entries) = std::fs::read_dir(roots) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = remove_tree(&e.path());
            }
        }
    }
    let tmp = roots.join(format!(".{}.{}.tmp", digest.hex(), std::process::id()));
    let result = build(store, digest, &manifest, &tmp).and_then(|config| {
        let published = Published {
            manifest: digest.clone(),
            config,
        };
        let json = serde_json::to_vec_pretty(&published).expect("an image config serializes");
        crate::store::write_durably(&tmp.join("image.json"), &json).map_err(|e| io_err(&tmp, e))?;
        // Every file of the root on disk before it is published (one syncfs of its filesystem).
        if let Ok(d) = std::fs::File::open(&tmp) {
            use std::os::fd::AsRawFd as _;
            // SAFETY: syncfs on a descriptor this function owns.
            unsafe {
                libc::syncfs(d.as_raw_fd());
            }
        }
        std::fs::rename(&tmp, &dir).map_err(|e| io_err(&dir, e))?;
        Ok(Unpacked {
            manifest: digest.clone(),
            root: dir.join("rootfs"),
            config: published.config,
        })
    });
    if result.is_err() {
        let _ = remove_tree(&tmp);
    }
    result
}

/// The unpacked image in `dir`, if it was published.
fn published(dir: &Path) -> Result<Option<Unpacked>, UnpackError> {
    let path = dir.join("image.json");
    match std::fs::read(&path) {
        Ok(b) => {
            let p: Published = serde_json::from_slice(&b).map_err(|e| io_err(&path, e))?;
            Ok(Some(Unpacked {
                manifest: p.manifest,
                root: dir.join("rootfs"),
                config: p.config,
            }))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

/// An exclusive lock on `path`, held until the file is closed.
fn lock(path: &Path) -> Result<std::fs::File, UnpackError> {
    use std::os::fd::AsRawFd as _;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(path, std::io::Error::last_os_error()));
    }
    Ok(f)
}

/// Unpacks every layer of `manifest` into `tmp/rootfs`; returns the image's run settings.
fn build(
    store: &OciLayout,
    digest: &Digest,
    manifest: &serde_json::Value,
    tmp: &Path,
) -> Result<ImageConfig, UnpackError> {
    let invalid = |message: String| UnpackError::Invalid {
        image: digest.clone(),
        message,
    };
    let descriptor = |d: &serde_json::Value, what: &str| -> Result<(Digest, String), UnpackError> {
        let dg = d["digest"]
            .as_str()
            .and_then(|s| s.parse::<Digest>().ok())
            .ok_or_else(|| invalid(format!("{what}: no valid digest")))?;
        Ok((dg, d["mediaType"].as_str().unwrap_or_default().to_owned()))
    };
    let (config_digest, _) = descriptor(&manifest["config"], "config")?;
    if store
        .blob_size(&config_digest)
        .is_some_and(|n| n > MAX_CONFIG_BYTES)
    {
        return Err(invalid(format!("the config {config_digest}: over 4 MiB")));
    }
    let config_bytes = store.read_blob(&config_digest)?;
    let config: serde_json::Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| invalid(format!("the config {config_digest}: {e}")))?;
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let c = &config["config"];
    let image_config = ImageConfig {
        env: strings(&c["Env"]),
        working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_owned(),
        user: c["User"].as_str().unwrap_or_default().to_owned(),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        exposed_ports: c["ExposedPorts"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| {
                let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                (proto == "tcp").then(|| port.parse::<u16>().ok()).flatten()
            })
            .collect(),
    };
    let root = tmp.join("rootfs");
    std::fs::create_dir_all(&root).map_err(|e| io_err(&root, e))?;
    let mut state = Unpacker {
        root: root.clone(),
        image: digest.clone(),
        layer: config_digest.clone(),
        dir_modes: BTreeMap::new(),
        written: HashSet::new(),
        buf: vec![0u8; 256 << 10],
        total_bytes: 0,
        total_entries: 0,
    };
    for l in manifest["layers"].as_array().into_iter().flatten() {
        let (layer, media) = descriptor(l, "a layer")?;
        let file = store.open_blob(&layer)?;
        state.layer = layer.clone();
        state.written.clear();
        let mut hashing = Hashing {
            inner: std::io::BufReader::with_capacity(256 << 10, file),
            hasher: sha2::Sha256::new(),
        };
        let compressed: &mut dyn Read = &mut hashing;
        if media.ends_with("tar+gzip") || media.ends_with(".tar.gzip") {
            state.apply(flate2::read::MultiGzDecoder::new(compressed))?;
        } else if media.ends_with("tar+zstd") {
            let d = zstd::stream::read::Decoder::with_buffer(std::io::BufReader::new(compressed))
                .map_err(|e| state.refuse("", format!("zstd: {e}")))?;
            state.apply(d)?;
        } else if media.ends_with(".tar") || media == LAYER_TAR {
            state.apply(compressed)?;
        } else {
            return Err(invalid(format!(
                "layer {layer}: media type {media:?} is not a tar, gzip or zstd layer"
            )));
        }
        // The digest covers the whole blob, also what the tar reader did not need.
        std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| io_err(&root, e))?;
        if hex::encode(hashing.hasher.finalize()) != layer.hex() {
            return Err(invalid(format!(
                "layer {layer}: the stored blob does not match its digest"
            )));
        }
    }
    for d in MOUNT_DIRS {
        real_mount_point(&root, d, false).map_err(|e| invalid(format!("/{d}: {e}")))?;
    }
    for f in MOUNT_FILES {
        real_mount_point(&root, f, true).map_err(|e| invalid(format!("/{f}: {e}")))?;
    }
    // Directory modes last and deepest first: a read-only directory is still filled above.
    let mut dirs: Vec<(PathBuf, (u32, u64))> =
        std::mem::take(&mut state.dir_modes).into_iter().collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, (mode, mtime)) in dirs {
        // Resolved again inside the root: a later entry may have turned a parent into a link
        // (`a -> /`), which a host path would follow out of it.
        let Ok(rel) = path.strip_prefix(&root) else {
            continue;
        };
        let comps: Vec<OsString> = rel.iter().map(|c| c.to_owned()).collect();
        let Ok(path) = resolve_dir(&root, &comps, false) else {
            continue;
        };
        if let Ok(m) = std::fs::symlink_metadata(&path)
            && m.is_dir()
        {
            let _ = set_mtime(&path, mtime);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_err(&path, e))?;
        }
    }
    Ok(image_config)
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
