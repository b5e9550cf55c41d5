//! An OCI image-layout directory (the embedded default artifact store): `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>`, as the OCI image-layout specification describes and
//! as `skopeo` reads with `oci:DIR[:TAG]`. Blobs are written to a temporary file, fsynced and
//! renamed; every read checks the digest.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::model::Digest;

/// The media type of an OCI image manifest.
pub const MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of an OCI image index.
pub const INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";
/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A blob's content does not match its digest (damaged store).
    #[error("{path}: content does not match {digest}")]
    Corrupt {
        /// The blob file.
        path: PathBuf,
        /// The digest it should have.
        digest: Digest,
    },
    /// Not there.
    #[error("{0} is not in the store")]
    Missing(String),
    /// A file of the layout is not what the specification says.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the content.
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations (a tag name in `index.json`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// Other fields (`platform`, `artifactType`, `urls` ...), kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    /// Other fields (`annotations` ...), kept as they were.
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

/// An OCI image layout on disk.
/// Whether `tag` may name a manifest in a layout's `index.json`.
pub fn is_tag(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 128 && !tag.contains(['/', ':', '@', ' '])
}

#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
}

fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::store::write_durably(path, bytes).map_err(|e| io(path, e))
}

impl OciLayout {
    /// Opens the layout at `dir`, creating an empty one if the directory is empty or missing.
    pub fn open_or_init(dir: &Path) -> Result<OciLayout, StoreError> {
        std::fs::create_dir_all(dir.join("blobs/sha256")).map_err(|e| io(dir, e))?;
        let marker = dir.join("oci-layout");
        match std::fs::read(&marker) {
            Ok(b) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&b).map_err(|e| StoreError::Invalid {
                        path: marker.clone(),
                        message: e.to_string(),
                    })?;
                if v["imageLayoutVersion"] != "1.0.0" {
                    return Err(StoreError::Invalid {
                        path: marker,
                        message: "imageLayoutVersion is not 1.0.0".into(),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                write_durably(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            Err(e) => return Err(io(&marker, e)),
        }
        let index = dir.join("index.json");
        if !index.exists() {
            write_durably(&index, br#"{"schemaVersion":2,"manifests":[]}"#)?;
        }
        Ok(OciLayout {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// Whether a blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Stores bytes; returns their digest. Storing the same bytes twice is a no-op.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if !path.exists() {
            write_durably(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Stores a stream that must hash to `digest` (checked before it becomes visible).
    pub fn put_blob_from(
        &self,
        digest: &Digest,
        mut content: impl std::io::Read,
    ) -> Result<u64, StoreError> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0));
        }
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = path.with_file_name(format!(
            ".{}.{}.{}.tmp",
            digest.hex(),
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = content.read(&mut buf).map_err(|e| io(&tmp, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            f.write_all(&buf[..n]).map_err(|e| io(&tmp, e))?;
            size += n as u64;
        }
        if hex::encode(hasher.finalize()) != digest.hex() {
            let _ = std::fs::remove_file(&tmp);
            return Err(StoreError::Corrupt {
                path,
                digest: digest.clone(),
            });
        }
        f.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        Ok(size)
    }

    /// Opens a blob to stream it (the reader does not check the digest: hash what is read).
    pub fn open_blob(&self, digest: &Digest) -> Result<std::fs::File, StoreError> {
        let path = self.blob_path(digest);
        std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::Missing(digest.to_string()),
            _ => io(&path, e),
        })
    }

    /// The size of a blob, if present.
    pub fn blob_size(&self, digest: &Digest) -> Option<u64> {
        std::fs::metadata(self.blob_path(digest))
            .ok()
            .map(|m| m.len())
    }

    /// Reads a blob, checking its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::Missing(digest.to_string()));
            }
            Err(e) => return Err(io(&path, e)),
        };
        if hex::encode(sha2::Sha256::digest(&bytes)) != digest.hex() {
            return Err(StoreError::Corrupt {
                path,
                digest: digest.clone(),
            });
        }
        Ok(bytes)
    }

    fn read_index(&self) -> Result<Index, StoreError> {
        let path = self.dir.join("index.json");
        let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Invalid {
            path,
            message: e.to_string(),
        })
    }

    /// Names a manifest `tag` in `index.json` (replacing what the tag named before).
    pub fn tag(&self, tag: &str, manifest: &Descriptor) -> Result<(), StoreError> {
        if !is_tag(tag) {
            return Err(StoreError::Invalid {
                path: self.dir.join("index.json"),
                message: format!("{tag:?} is not a tag"),
            });
        }
        let mut index = self.read_index()?;
        index
            .manifests
            .retain(|d| d.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
        let mut d = manifest.clone();
        d.annotations.insert(REF_NAME.into(), tag.into());
        index.manifests.push(d);
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        write_durably(&self.dir.join("index.json"), &bytes)
    }

    /// The manifest a tag (or a `sha256:` digest) names.
    pub fn resolve(&self, reference: &str) -> Result<Descriptor, StoreError> {
        let index = self.read_index()?;
        index
            .manifests
            .into_iter()
            .find(|d| {
                d.annotations.get(REF_NAME).map(String::as_str) == Some(reference)
                    || d.digest.as_str() == reference
            })
            .ok_or_else(|| StoreError::Missing(reference.to_owned()))
    }

    /// Removes a manifest: its tags in `index.json` and its blob (layers and configs, which
    /// other images may share, stay).
    pub fn delete_manifest(&self, digest: &Digest) -> Result<(), StoreError> {
        let mut index = self.read_index()?;
        index.manifests.retain(|d| &d.digest != digest);
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        write_durably(&self.dir.join("index.json"), &bytes)?;
        match std::fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&self.blob_path(digest), e)),
        }
    }

    /// Every tagged manifest.
    pub fn list(&self) -> Result<Vec<Descriptor>, StoreError> {
        Ok(self.read_index()?.manifests)
    }
}
