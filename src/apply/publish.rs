//! Images a trusted build declares: assembled from its job's outputs, pushed to the first
//! environment's registry, attested (in the ledger, and as a cosign attachment), and, unless a
//! freeze holds it, entered into that environment.

use std::path::{Path, PathBuf};

use super::{Error, Services};
use crate::config::Layout;
use crate::config::pipeline::ResolvedJob;
use crate::model::record::{Artifact, Attestation, BuildRequest, Promotion};
use crate::model::{ArtifactKind, Digest, EnvironmentName, ImageName, JobKey, Record, Timestamp};
use crate::reconcile::{Fact, World};
use crate::registry::copy::{self, Location};

/// What publishing images recorded, and what the World learns once that is durable.
#[derive(Default)]
pub(super) struct Published {
    /// Artifact, attestation and promotion records.
    pub records: Vec<Record>,
    /// Digests that entered the first environment, as which image, and when.
    entered: Vec<((EnvironmentName, ImageName), Digest, Timestamp)>,
    /// Digests this server just attested (with its own builder key), as which image.
    trusted: Vec<(Digest, ImageName)>,
}

impl Published {
    /// Adds another job's images.
    pub fn append(&mut self, other: &mut Published) {
        self.records.append(&mut other.records);
        self.entered.append(&mut other.entered);
        self.trusted.append(&mut other.trusted);
    }

    /// What the World learns once the records are durable.
    pub fn fact(self) -> Fact {
        Fact::ImagesPublished {
            trusted: self.trusted,
            entered: self.entered,
        }
    }
}

/// The ref an image gets in an OCI image-layout directory (`skopeo inspect oci:DIR:api`);
/// registries keep images by repository and digest, and get no tag.
pub(super) fn layout_ref<'a>(target: &Location, image: &'a ImageName) -> Option<&'a str> {
    matches!(target, Location::Layout(_)).then_some(image.as_str())
}

/// A registry URL as the ledger records it: an `oci:` layout directory given relative to where
/// seakeeper runs is made absolute, so the record names it wherever it is read.
pub(super) fn recorded_url(url: &str) -> String {
    match url.strip_prefix("oci:") {
        Some(dir) if !dir.starts_with('/') => std::path::absolute(dir)
            .map_or_else(|_| url.to_owned(), |p| format!("oci:{}", p.display())),
        _ => url.to_owned(),
    }
}

/// Assembles the images a job declares from its outputs, pushes them to the first
/// environment's registry, and returns the records: artifact, attestation, promotion.
pub(super) fn images(
    svc: &Services,
    layout: &Layout,
    world: &World,
    request: &BuildRequest,
    job: &ResolvedJob,
    key: &JobKey,
    started_at: Timestamp,
) -> Result<Published, Error> {
    let work = stage_outputs(svc, key)?;
    let (first, registry) = match first_registry(layout) {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let mut records = Vec::new();
    let mut effects = Vec::new();
    let mut trusted = Vec::new();
    let result = (|| {
        for decl in &job.image_outputs {
            let repo = format!("{}{}", first.repository_prefix, decl.name);
            let target =
                copy::location_for(&registry.url, &repo, &svc.secrets).map_err(|source| {
                    Error::Registry {
                        what: format!("image {}", decl.name),
                        source,
                    }
                })?;
            let desc = assemble(svc, layout, decl, &work, &target)?;
            copy::copy(
                &Location::Layout(svc.images.clone()),
                &target,
                &desc.digest,
                layout_ref(&target, &decl.name),
                4,
            )
            .map_err(|source| Error::Registry {
                what: format!("pushing {} to {}", decl.name, registry.url),
                source,
            })?;
            let now = Timestamp::now();
            let provenance = crate::signing::provenance::Provenance {
                subject_name: repo.clone(),
                digest: desc.digest.clone(),
                trust: request.trust,
                build_id: request.build_id.to_string(),
                project: request.project.to_string(),
                // A post-merge image names the change whose merge it was built from; a gate
                // image the change it tested (and that landed as this very commit).
                change: match &request.cause {
                    Some(crate::model::record::BuildCause::Merge { change, patchset }) => {
                        Some((change.get(), patchset.get()))
                    }
                    Some(crate::model::record::BuildCause::Gate { .. }) => request
                        .change
                        .zip(request.patchset)
                        .map(|(c, p)| (c.get(), p.get())),
                    _ => None,
                },
                git_ref: request.git_ref.to_string(),
                source: svc.sources.url(&request.project),
                source_commit: request.source_commit.to_string(),
                config_commit: request.config_commit.to_string(),
                config_repo: svc.config_url.clone(),
                base_image: decl
                    .base
                    .rsplit_once('@')
                    .and_then(|(n, d)| d.parse().ok().map(|d| (n.to_owned(), d))),
                byproducts: Vec::new(),
                started: started_at.to_string(),
                finished: now.to_string(),
            };
            let mut statement = crate::signing::provenance::statement(&provenance);
            if let Some(crate::model::record::BuildCause::Upstream {
                build_id,
                project,
                commit,
            }) = &request.cause
            {
                crate::signing::provenance::add_upstream(
                    &mut statement,
                    &svc.sources.url(project),
                    request.git_ref.as_str(),
                    commit.as_str(),
                    build_id.as_str(),
                );
            }
            let statement_bytes = serde_json::to_vec(&statement).expect("a JSON value");
            // The ledger's envelope is signed with the Ed25519 subkey (what ledger verify and
            // promotion check); the one attached to the image for cosign with the P-256 subkey
            // (cosign does not verify Ed25519 attestations under its defaults).
            let (envelope, attached) = {
                let mut key = svc.dsse_key.lock().unwrap_or_else(|p| p.into_inner());
                let envelope = key
                    .sign_dsse(crate::signing::dsse::IN_TOTO, &statement_bytes)
                    .map_err(|source| Error::Signing {
                        what: format!("the provenance of {}", desc.digest),
                        source,
                    })?;
                let attached = key
                    .cosign_key()
                    .and_then(|mut c| c.sign_dsse(crate::signing::dsse::IN_TOTO, &statement_bytes));
                (envelope, attached)
            };
            // Best effort: the ledger's attestation is the one promotions rely on.
            let attached = attached.map_err(|e| e.to_string()).and_then(|a| {
                let json = serde_json::to_vec(&a).expect("a JSON value");
                crate::registry::cosign::attach_attestation(
                    &target,
                    &desc.digest,
                    &json,
                    crate::signing::provenance::SLSA_PROVENANCE_V1,
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            if let Err(e) = attached {
                tracing::warn!("attaching a cosign attestation to {}: {e}", desc.digest);
            }
            records.push(Record::Artifact(Artifact {
                digest: desc.digest.clone(),
                build_id: request.build_id.clone(),
                name: decl.name.to_string(),
                kind: ArtifactKind::Image,
                media_type: desc.media_type.clone(),
                size: desc.size,
            }));
            records.push(Record::Attestation(Attestation {
                subject_digest: desc.digest.clone(),
                predicate_type: crate::signing::provenance::SLSA_PROVENANCE_V1.to_owned(),
                envelope,
            }));
            // The image enters the first environment, unless a freeze holds it: then it is
            // only pushed and recorded, and enters once named in promotions/<first>.yaml.
            let frozen = crate::policy::promotion::freeze_holding(
                layout,
                crate::model::Held::Promotion(&first.name),
                now,
            );
            let slot = (first.name.clone(), decl.name.clone());
            match frozen {
                Some((name, f)) => (svc.reporter)(&format!(
                    "[{}] {}: image {} {} pushed to {} but held out of it by freeze {name}: {}",
                    request.pipeline,
                    request.build_id,
                    decl.name,
                    desc.digest,
                    first.name,
                    f.reason.trim()
                )),
                None => {
                    let previous = world.deployed.get(&slot).map(|(d, _)| d.clone());
                    records.push(Record::Promotion(Promotion {
                        environment: first.name.clone(),
                        image: decl.name.clone(),
                        digest: desc.digest.clone(),
                        previous_digest: previous.filter(|p| *p != desc.digest),
                        from_registry: format!("oci:{}", svc.images.dir().display()),
                        to_registry: recorded_url(&registry.url),
                        config_commit: request.config_commit.clone(),
                        promoted_at: now,
                    }));
                    effects.push((slot, desc.digest.clone(), now));
                    (svc.reporter)(&format!(
                        "[{}] {}: image {} {} pushed to {} ({})",
                        request.pipeline,
                        request.build_id,
                        decl.name,
                        desc.digest,
                        first.name,
                        registry.url
                    ));
                }
            }
            trusted.push((desc.digest.clone(), decl.name.clone()));
        }
        Ok::<(), Error>(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| Published {
        records,
        entered: effects,
        trusted,
    })
}

/// A job's output files, copied out of the store into a fresh directory at their paths in
/// its workspace (the caller removes it).
pub(super) fn stage_outputs(svc: &Services, key: &JobKey) -> Result<PathBuf, Error> {
    let outputs = svc
        .executor
        .outputs(key)
        .map_err(|source| Error::Executor {
            what: format!("listing the outputs of {key}"),
            source,
        })?;
    let work = tempfile_dir(svc.store.root())?;
    let copied = (|| {
        for o in &outputs {
            let src = svc.store.path(&o.digest);
            let dst = work.join(&o.path);
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
            }
            std::fs::copy(&src, &dst).map_err(|e| Error::io(src.display(), e))?;
            if o.executable {
                use std::os::unix::fs::PermissionsExt as _;
                let _ = std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755));
            }
        }
        Ok(())
    })();
    match copied {
        Ok(()) => Ok(work),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

/// The first environment and its registry: where a build's images go.
pub(super) fn first_registry(
    layout: &Layout,
) -> Result<
    (
        &crate::config::EnvironmentSpec,
        &crate::config::files::RegistrySettings,
    ),
    Error,
> {
    let first = layout.environments.first().ok_or_else(|| {
        Error::Config("images need an environment to go to: environments.yaml is empty".into())
    })?;
    let registry = layout
        .settings
        .registries
        .get(&first.registry)
        .ok_or_else(|| {
            Error::Config(format!(
                "registry {} is not in seakeeper.yaml",
                first.registry
            ))
        })?;
    Ok((first, registry))
}

/// Assembles a declared image from staged outputs into seakeeper's image store, its base
/// fetched by digest (from its registry in `seakeeper.yaml`, else from `target`). Assembly is
/// deterministic: the same outputs give the same digest, which is what lets a later job of the
/// build run in the very image the build then publishes.
pub(super) fn assemble(
    svc: &Services,
    layout: &Layout,
    decl: &crate::config::files::ImageOutput,
    work: &Path,
    target: &Location,
) -> Result<crate::registry::layout::Descriptor, Error> {
    let base_from = base_location(layout, &svc.secrets, &decl.base);
    crate::registry::assemble::declared_image(
        &svc.images,
        decl,
        work,
        base_from.as_ref().or(Some(target)),
    )
    .map_err(|source| Error::Assemble {
        what: format!("image {}", decl.name),
        source,
    })
}

/// Where a base image named `HOST[:PORT]/REPO@sha256:...` can be fetched: the registry of
/// `seakeeper.yaml` on that host, with its account.
fn base_location(
    layout: &Layout,
    secrets: &crate::secrets::SecretsFile,
    base: &str,
) -> Option<Location> {
    let (name, _) = base.rsplit_once('@')?;
    let (host, repo) = name.split_once('/')?;
    layout.settings.registries.values().find_map(|r| {
        let url_host = r.url.split("://").nth(1)?.split('/').next()?;
        (url_host == host)
            .then(|| copy::location_for(&r.url, repo, secrets).ok())
            .flatten()
    })
}

fn tempfile_dir(store: &Path) -> Result<PathBuf, Error> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = store.join("tmp").join(format!(
        "assemble-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir)
}
