//! A job's image, made ready to run: pulled by digest into the image-layout store (only what is
//! missing; the digest checked as it arrives) and unpacked once into a shared read-only root
//! (see [`super::unpack`]).
//!
//! An image is named `HOST[:PORT]/REPOSITORY@sha256:<hex>`: only a digest is pulled, never a
//! tag. The registry is the one `seakeeper.yaml` lists with that host (its URL, `http://` on
//! loopback or `oci:DIR`), else `https://HOST` (`http://` for a loopback host); its account
//! comes from the secrets file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::copy::{CopyError, Location, copy_untagged, location_for};
use super::layout::OciLayout;
use super::unpack::{MAX_CONFIG_BYTES, UnpackError, Unpacked, unpack};
use crate::config::files::RegistrySettings;
use crate::model::Digest;

/// Getting an image ready failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The image's name is not a pinned reference.
    #[error("image {image:?}: {message}")]
    Reference {
        /// The name.
        image: String,
        /// What is wrong.
        message: String,
    },
    /// Pulling failed.
    #[error("pulling {image}: {source}")]
    Copy {
        /// The name.
        image: String,
        /// Why.
        #[source]
        source: CopyError,
    },
    /// Unpacking failed.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

/// A pinned image reference, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]`.
    pub host: String,
    /// The repository in it.
    pub repository: String,
    /// The manifest (or index) digest.
    pub digest: Digest,
}

/// Splits `HOST[:PORT]/REPO@sha256:<hex>` (Docker Hub's short names too: `debian@…` is
/// `docker.io/library/debian@…`).
pub fn parse_ref(image: &str) -> Result<ImageRef, PullError> {
    let bad = |message: &str| PullError::Reference {
        image: image.to_owned(),
        message: message.to_owned(),
    };
    let (name, digest) = image
        .split_once('@')
        .ok_or_else(|| bad("not pinned by digest (name@sha256:<64 hex>)"))?;
    let digest: Digest = digest.parse().map_err(|e| bad(&format!("{e}")))?;
    // A tag before the digest is ignored, as the digest decides.
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad("no repository name"));
    }
    let (host, repository) = match name.split_once('/') {
        Some((h, r)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (h.to_owned(), r.to_owned())
        }
        Some(_) => ("docker.io".to_owned(), name.to_owned()),
        None => ("docker.io".to_owned(), format!("library/{name}")),
    };
    if repository.is_empty() || repository.split('/').any(|s| s.is_empty() || s == "..") {
        return Err(bad("not a repository name"));
    }
    Ok(ImageRef {
        host,
        repository,
        digest,
    })
}

fn loopback(host: &str) -> bool {
    let h = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The most an image's layers may hold together.
const MAX_IMAGE_BYTES: u64 = 16 << 30;

/// Where `r` is pulled from.
fn listed<'a>(
    r: &ImageRef,
    registries: &'a BTreeMap<String, RegistrySettings>,
) -> Option<&'a RegistrySettings> {
    registries.values().find(|s| {
        s.url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|h| h == r.host)
    })
}

fn source(
    r: &ImageRef,
    registries: &BTreeMap<String, RegistrySettings>,
    secrets: &crate::secrets::SecretsFile,
) -> Result<Location, CopyError> {
    let listed = listed(r, registries);
    let url = match listed {
        Some(s) => s.url.clone(),
        None if r.host == "docker.io" => "https://registry-1.docker.io".to_owned(),
        None if loopback(&r.host) => format!("http://{}", r.host),
        None => format!("https://{}", r.host),
    };
    location_for(&url, &r.repository, secrets)
}

/// What makes images ready for jobs.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// The image-layout store images are pulled into (also where seakeeper assembles its own).
    pub store: OciLayout,
    /// Where roots are unpacked.
    pub roots: PathBuf,
    /// `seakeeper.yaml`'s registries.
    pub registries: BTreeMap<String, RegistrySettings>,
    /// The secrets file (registry accounts, used for trusted jobs' images only: an untrusted
    /// change must not pull what only seakeeper's account may read).
    pub secrets: std::sync::Arc<crate::secrets::SecretsFile>,
    /// Untrusted jobs' images come only from `registries` (a server: an untrusted change must
    /// not make it fetch from anywhere it names); `job run` on a developer's machine pulls from
    /// any registry.
    pub untrusted_listed_only: bool,
}

impl ImageSource {
    /// An image source storing under `state` (`images/` and `roots/`).
    pub fn under(state: &Path) -> Result<ImageSource, super::StoreError> {
        Ok(ImageSource {
            store: OciLayout::open_or_init(&state.join("images"))?,
            roots: state.join("roots"),
            registries: BTreeMap::new(),
            secrets: Default::default(),
            untrusted_listed_only: false,
        })
    }

    /// Pulls `image` for a job (`trusted` or not) if the store lacks it, and unpacks it if not
    /// yet unpacked. Of an index only this platform's image is pulled.
    pub fn prepare(&self, image: &str, trusted: bool) -> Result<Unpacked, PullError> {
        let r = parse_ref(image)?;
        if !self.store.has_blob(&r.digest) {
            if !trusted && self.untrusted_listed_only && listed(&r, &self.registries).is_none() {
                return Err(PullError::Reference {
                    image: image.to_owned(),
                    message: format!(
                        "an untrusted job's image comes only from a registry seakeeper.yaml \
                         lists (registries:), and none is {}",
                        r.host
                    ),
                });
            }
            let none = crate::secrets::SecretsFile::default();
            let secrets = if trusted { &*self.secrets } else { &none };
            self.pull(image, &r, secrets)
                .map_err(|source| PullError::Copy {
                    image: image.to_owned(),
                    source,
                })?;
        }
        Ok(unpack(&self.store, &r.digest, &self.roots)?)
    }

    /// Pulls the manifest `r` names (of an index, this platform's only), its config and
    /// layers, within the size limits.
    fn pull(
        &self,
        image: &str,
        r: &ImageRef,
        secrets: &crate::secrets::SecretsFile,
    ) -> Result<(), CopyError> {
        let src = source(r, &self.registries, secrets)?;
        let dst = Location::Layout(self.store.clone());
        let fetch = |digest: &Digest| -> Result<(Vec<u8>, serde_json::Value), CopyError> {
            let m = src
                .get_manifest_opt(digest.as_str())?
                .ok_or_else(|| CopyError::Invalid(format!("{image}: no manifest {digest}")))?;
            if &Digest::of(&m.bytes) != digest {
                return Err(CopyError::Invalid(format!(
                    "{image}: the registry's manifest is not {digest}"
                )));
            }
            let v: serde_json::Value = serde_json::from_slice(&m.bytes)
                .map_err(|e| CopyError::Invalid(format!("{image}: the manifest: {e}")))?;
            Ok((m.bytes, v))
        };
        let (top_bytes, top) = fetch(&r.digest)?;
        let (target, m) = if top.get("manifests").is_some() {
            let child = super::unpack::platform_child(&top).ok_or_else(|| {
                CopyError::Invalid(format!("{image}: the index has no image for this platform"))
            })?;
            let (_, m) = fetch(&child)?;
            (child, m)
        } else {
            (r.digest.clone(), top)
        };
        if m.get("manifests").is_some() {
            return Err(CopyError::Invalid(format!(
                "{image}: an index inside an index is not pulled"
            )));
        }
        let size = |d: &serde_json::Value| d["size"].as_u64().unwrap_or(u64::MAX);
        if size(&m["config"]) > MAX_CONFIG_BYTES {
            return Err(CopyError::Invalid(format!(
                "{image}: a config of over {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let total = m["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(size)
            .fold(0u64, u64::saturating_add);
        if total > MAX_IMAGE_BYTES {
            return Err(CopyError::Invalid(format!(
                "{image}: layers of {total} bytes, over {MAX_IMAGE_BYTES}"
            )));
        }
        copy_untagged(&src, &dst, &target, 4)?;
        if target != r.digest {
            // The index too, so the name resolves here next time without the registry.
            dst.put_blob(&top_bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_ref(&format!("127.0.0.1:5000/ci/base@{d}")).expect("ref");
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "ci/base")
        );
        let r = parse_ref(&format!("debian:12@{d}")).expect("ref");
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("docker.io", "library/debian")
        );
        let r = parse_ref(&format!("registry.example.org/a/b:v1@{d}")).expect("ref");
        assert_eq!(r.repository, "a/b");
        for bad in [
            "debian:12",
            "x@sha256:12",
            "host.org/@sha256:aa",
            "host.org/../x@sha256:",
        ] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
        assert!(loopback("127.0.0.1:5000") && loopback("localhost") && !loopback("example.org"));
    }
}
