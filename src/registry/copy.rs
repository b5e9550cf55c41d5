//! Copy by digest: the manifest (or index, recursing into its children) as raw bytes, never
//! re-serialized; config and layers streamed in parallel with a bound, skipping blobs the target
//! has, mounting across repositories of the same registry (copying when the registry answers
//! 202); the digest checked at the target before anything is tagged; cosign-style
//! `sha256-<hex>.sig` and `.att` tags copied along (registries such as Debian's 2.8 have no
//! referrers API).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::distribution::{Manifest, Registry, RegistryError};
use super::layout::{Descriptor, INDEX_V1, MANIFEST_V1, OciLayout, StoreError};
use crate::model::Digest;

/// One side of a copy: a repository of a registry, or an OCI image layout.
#[derive(Clone, Debug)]
pub enum Location {
    /// `docker://HOST/REPO`.
    Registry(Arc<Registry>, String),
    /// `oci:DIR`.
    Layout(OciLayout),
}

/// A copy failed; nothing was tagged at the target.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// A registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The layout failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The content is not what it claims.
    #[error("{0}")]
    Invalid(String),
}

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    /// Manifests pushed.
    pub manifests: usize,
    /// Blobs copied (bytes moved).
    pub blobs_copied: usize,
    /// Blobs the target already had.
    pub blobs_present: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Bytes moved.
    pub bytes: u64,
}

fn is_index(media_type: &str) -> bool {
    media_type == INDEX_V1
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

impl Location {
    /// Stores a small blob (a config, an attachment's layer).
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, CopyError> {
        let d = Digest::of(bytes);
        match self {
            Location::Registry(r, repo) => {
                if !r.has_blob(repo, &d)? {
                    r.push_blob(
                        repo,
                        &d,
                        bytes.len() as u64,
                        Box::new(std::io::Cursor::new(bytes.to_vec())),
                    )?;
                }
            }
            Location::Layout(l) => {
                l.put_blob(bytes)?;
            }
        }
        Ok(d)
    }

    /// Deletes a manifest by digest.
    pub fn delete_manifest(&self, digest: &Digest) -> Result<(), CopyError> {
        match self {
            Location::Registry(r, repo) => Ok(r.delete_manifest(repo, digest)?),
            Location::Layout(l) => Ok(l.delete_manifest(digest)?),
        }
    }

    /// A manifest by tag or digest, if there is one.
    pub fn get_manifest_opt(&self, reference: &str) -> Result<Option<Manifest>, CopyError> {
        if !self.has_manifest(reference)? {
            return Ok(None);
        }
        self.get_manifest(reference).map(Some)
    }

    fn get_manifest(&self, reference: &str) -> Result<Manifest, CopyError> {
        match self {
            Location::Registry(r, repo) => Ok(r.get_manifest(repo, reference)?),
            Location::Layout(l) => {
                let digest: Digest = if reference.starts_with("sha256:") {
                    reference
                        .parse()
                        .map_err(|e| CopyError::Invalid(format!("{e}")))?
                } else {
                    l.resolve(reference)?.digest
                };
                let bytes = l.read_blob(&digest)?;
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| CopyError::Invalid(format!("manifest {digest}: {e}")))?;
                let media_type = v["mediaType"].as_str().unwrap_or(MANIFEST_V1).to_owned();
                Ok(Manifest {
                    media_type,
                    bytes,
                    digest,
                })
            }
        }
    }

    fn has_manifest(&self, reference: &str) -> Result<bool, CopyError> {
        match self {
            Location::Registry(r, repo) => Ok(r.has_manifest(repo, reference)?),
            Location::Layout(l) => Ok(match reference.parse::<Digest>() {
                Ok(d) => l.has_blob(&d),
                Err(_) => l.resolve(reference).is_ok(),
            }),
        }
    }

    /// Pushes a manifest under `reference` (a tag is added to a layout's `index.json`).
    pub fn put_manifest(&self, reference: &str, m: &Manifest) -> Result<Digest, CopyError> {
        match self {
            Location::Registry(r, repo) => {
                Ok(r.put_manifest(repo, reference, &m.media_type, &m.bytes)?)
            }
            Location::Layout(l) => {
                let d = l.put_blob(&m.bytes)?;
                if !reference.starts_with("sha256:") {
                    l.tag(
                        reference,
                        &Descriptor {
                            media_type: m.media_type.clone(),
                            digest: d.clone(),
                            size: m.bytes.len() as u64,
                            annotations: Default::default(),
                            extra: Default::default(),
                        },
                    )?;
                }
                Ok(d)
            }
        }
    }

    fn has_blob(&self, d: &Digest) -> Result<bool, CopyError> {
        match self {
            Location::Registry(r, repo) => Ok(r.has_blob(repo, d)?),
            Location::Layout(l) => Ok(l.has_blob(d)),
        }
    }

    fn copy_blob_from(
        &self,
        src: &Location,
        d: &Digest,
        expected: u64,
        stats: &Progress<'_>,
    ) -> Result<(), CopyError> {
        if self.has_blob(d)? {
            stats.update(|s| s.blobs_present += 1);
            return Ok(());
        }
        if let (Location::Registry(dst, drepo), Location::Registry(s, srepo)) = (self, src)
            && dst.host() == s.host()
            && drepo != srepo
            && dst.mount_blob(drepo, d, srepo).unwrap_or(false)
        {
            stats.update(|s| s.blobs_mounted += 1);
            return Ok(());
        }
        let (reported, reader): (u64, Box<dyn std::io::Read + Send>) = match src {
            Location::Registry(r, repo) => r.get_blob(repo, d)?,
            Location::Layout(l) => {
                let path = l.dir().join("blobs/sha256").join(d.hex());
                let f = std::fs::File::open(&path)
                    .map_err(|e| CopyError::Invalid(format!("{}: {e}", path.display())))?;
                (l.blob_size(d).unwrap_or(0), Box::new(f))
            }
        };
        // The manifest says how big the blob is: a source that claims or sends more is cut
        // off (and fails its digest), so a hostile peer cannot fill the disk.
        if reported != 0 && reported != expected {
            return Err(CopyError::Invalid(format!(
                "{d}: the source sends {reported} bytes, the manifest says {expected}"
            )));
        }
        let size = expected;
        let reader: Box<dyn std::io::Read + Send> = Box::new(std::io::Read::take(reader, expected));
        match self {
            Location::Registry(r, repo) => r.push_blob(repo, d, size, reader)?,
            Location::Layout(l) => {
                let written = l.put_blob_from(d, reader)?;
                if written != expected {
                    return Err(CopyError::Invalid(format!(
                        "{d}: {written} bytes arrived, the manifest says {expected}"
                    )));
                }
            }
        }
        stats.update(|s| {
            s.blobs_copied += 1;
            s.bytes += size;
        });
        Ok(())
    }
}

/// Copies the manifest `digest` (and everything it references) from `src` to `dst`, then tags it
/// `tag` at `dst` if given. `parallel` bounds the blobs in flight.
pub fn copy(
    src: &Location,
    dst: &Location,
    digest: &Digest,
    tag: Option<&str>,
    parallel: usize,
) -> Result<CopyStats, CopyError> {
    copy_with_progress(src, dst, digest, tag, parallel, &|_| {})
}

/// Copies one manifest (or index) and what it references, without the cosign-style tags named
/// after it and without tagging: what a job's image needs.
pub fn copy_untagged(
    src: &Location,
    dst: &Location,
    digest: &Digest,
    parallel: usize,
) -> Result<CopyStats, CopyError> {
    let stats = Progress {
        stats: Mutex::new(CopyStats::default()),
        report: &|_| {},
    };
    copy_manifest(src, dst, digest, &stats, parallel)?;
    Ok(*stats.stats.lock().unwrap_or_else(|p| p.into_inner()))
}

/// [`copy`], calling `progress` after each blob (for a progress line on a terminal).
pub fn copy_with_progress(
    src: &Location,
    dst: &Location,
    digest: &Digest,
    tag: Option<&str>,
    parallel: usize,
    progress: &(dyn Fn(&CopyStats) + Sync),
) -> Result<CopyStats, CopyError> {
    let stats = Progress {
        stats: Mutex::new(CopyStats::default()),
        report: progress,
    };
    let stats = &stats;
    copy_manifest(src, dst, digest, stats, parallel)?;
    // Cosign-style signatures and attestations live under tags named after the digest.
    for suffix in ["sig", "att"] {
        let t = format!("sha256-{}.{suffix}", digest.hex());
        if src.has_manifest(&t)? {
            let m = src.get_manifest(&t)?;
            copy_manifest(src, dst, &m.digest, stats, parallel)?;
            let got = dst.put_manifest(&t, &m)?;
            if got != m.digest {
                return Err(CopyError::Invalid(format!(
                    "{t}: the target computed {got}, not {}",
                    m.digest
                )));
            }
        }
    }
    if let Some(tag) = tag {
        // Only a digest the target holds (checked when it was pushed) is tagged.
        if !dst.has_manifest(digest.as_str())? {
            return Err(CopyError::Invalid(format!(
                "{digest} is not at the target; not tagging"
            )));
        }
        let m = src.get_manifest(digest.as_str())?;
        let got = dst.put_manifest(tag, &m)?;
        if &got != digest {
            return Err(CopyError::Invalid(format!(
                "the target tagged {got}, not {digest}"
            )));
        }
    }
    Ok(*stats.stats.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The running totals and who to tell.
struct Progress<'a> {
    stats: Mutex<CopyStats>,
    report: &'a (dyn Fn(&CopyStats) + Sync),
}

impl Progress<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, CopyStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut CopyStats)) {
        let snapshot = {
            let mut s = self.lock();
            f(&mut s);
            *s
        };
        (self.report)(&snapshot);
    }
}

fn copy_manifest(
    src: &Location,
    dst: &Location,
    digest: &Digest,
    stats: &Progress<'_>,
    parallel: usize,
) -> Result<(), CopyError> {
    let m = src.get_manifest(digest.as_str())?;
    if &m.digest != digest {
        return Err(CopyError::Invalid(format!(
            "{digest}: the source returned {}",
            m.digest
        )));
    }
    let v: serde_json::Value = serde_json::from_slice(&m.bytes)
        .map_err(|e| CopyError::Invalid(format!("manifest {digest}: {e}")))?;
    let parse = |d: &serde_json::Value| -> Result<Digest, CopyError> {
        d["digest"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                CopyError::Invalid(format!(
                    "manifest {digest}: a descriptor without a valid digest"
                ))
            })
    };
    if dst.has_manifest(digest.as_str())? {
        stats.update(|s| s.blobs_present += 1);
        return Ok(());
    }
    if is_index(&m.media_type) {
        for child in v["manifests"].as_array().into_iter().flatten() {
            copy_manifest(src, dst, &parse(child)?, stats, parallel)?;
        }
    } else {
        let sized = |d: &serde_json::Value| -> Result<(Digest, u64), CopyError> {
            let size = d["size"].as_u64().ok_or_else(|| {
                CopyError::Invalid(format!("manifest {digest}: a descriptor without a size"))
            })?;
            Ok((parse(d)?, size))
        };
        let mut blobs = vec![sized(&v["config"])?];
        for l in v["layers"].as_array().into_iter().flatten() {
            blobs.push(sized(l)?);
        }
        let next = AtomicUsize::new(0);
        let errors: Mutex<Vec<CopyError>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..parallel.clamp(1, 16).min(blobs.len()) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(b) = blobs.get(i) else { break };
                        if let Err(e) = dst.copy_blob_from(src, &b.0, b.1, stats) {
                            errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = errors
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .next()
        {
            return Err(e);
        }
    }
    let got = dst.put_manifest(digest.as_str(), &m)?;
    if &got != digest {
        return Err(CopyError::Invalid(format!(
            "the target computed {got} for {digest}"
        )));
    }
    stats.update(|s| s.manifests += 1);
    Ok(())
}

/// The location of repository `repo` in a registry from `seakeeper.yaml` (`url`: `https://HOST`,
/// `http://127.0.0.1:PORT`, or `oci:DIR`), with its account from the secrets file.
pub fn location_for(
    url: &str,
    repo: &str,
    secrets: &crate::secrets::SecretsFile,
) -> Result<Location, CopyError> {
    if let Some(dir) = url.strip_prefix("oci:") {
        return Ok(Location::Layout(OciLayout::open_or_init(
            std::path::Path::new(dir),
        )?));
    }
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    let creds = secrets.registries.get(host).map(|c| c.pair());
    Ok(Location::Registry(
        Arc::new(Registry::new(url, creds)?),
        repo.to_owned(),
    ))
}

/// Parses `docker://HOST/REPO[:TAG|@DIGEST]` or `oci:DIR[:TAG|@DIGEST]` into a location and the
/// reference part.
pub fn parse_location(
    text: &str,
    plain_http: bool,
    credentials: Option<(String, String)>,
) -> Result<(Location, Option<String>), CopyError> {
    if let Some(rest) = text.strip_prefix("docker://") {
        let (name, reference) = match rest.split_once('@') {
            Some((n, d)) => (n, Some(d.to_owned())),
            None => match rest.rfind(':') {
                Some(i) if !rest[i..].contains('/') && rest[..i].contains('/') => {
                    (&rest[..i], Some(rest[i + 1..].to_owned()))
                }
                _ => (rest, None),
            },
        };
        let (host, repo) = name
            .split_once('/')
            .ok_or_else(|| CopyError::Invalid(format!("{text}: expected docker://HOST/REPO")))?;
        let scheme = if plain_http { "http" } else { "https" };
        let reg = Registry::new(&format!("{scheme}://{host}"), credentials)?;
        return Ok((
            Location::Registry(Arc::new(reg), repo.to_owned()),
            reference,
        ));
    }
    if let Some(rest) = text.strip_prefix("oci:") {
        let (dir, reference) = match rest.split_once('@') {
            Some((d, r)) => (d, Some(r.to_owned())),
            None => match rest.rsplit_once(':') {
                Some((d, t)) if !t.contains('/') => (d, Some(t.to_owned())),
                _ => (rest, None),
            },
        };
        return Ok((
            Location::Layout(OciLayout::open_or_init(std::path::Path::new(dir))?),
            reference,
        ));
    }
    Err(CopyError::Invalid(format!(
        "{text:?}: expected docker://HOST/REPO[:TAG|@DIGEST] or oci:DIR[:TAG|@DIGEST]"
    )))
}
