//! Stages: what a job that needs other jobs of its build gets from them. Their output files
//! become its inputs (listed in its spec; the executor places them under
//! `.seakeeper/inputs/<job>/`), and `image: {from: <job>}` becomes the digest of the image
//! that job declares, assembled from its outputs into seakeeper's image store. Assembly is
//! deterministic, so the result records that digest, and a build whose published image
//! differs from the one its later jobs ran in is an error, never a success.

use super::{Error, Services, job_key, publish};
use crate::config::Layout;
use crate::config::files::ExecutorKind;
use crate::config::pipeline::ResolvedJob;
use crate::model::{BuildId, Digest, JobInputs, JobSpec, Trust};
use crate::reconcile::BuildState;
use crate::registry::copy;

/// Fills in the inputs and the built image of a job that needs others (`resolved`: every job
/// of the build). Called when the planner found every job it needs succeeded.
pub(super) fn prepare(
    svc: &Services,
    layout: &Layout,
    id: &BuildId,
    b: &BuildState,
    resolved: &[ResolvedJob],
    job: &ResolvedJob,
    spec: &mut JobSpec,
) -> Result<(), Error> {
    for need in &job.needs {
        let attempt = b.jobs.get(need).map_or(1, |r| r.attempt);
        let key = job_key(id, need, attempt);
        let files = svc
            .executor
            .outputs(&key)
            .map_err(|source| Error::Executor {
                what: format!("listing the outputs of {key}, which {} needs", job.name),
                source,
            })?;
        spec.inputs.push(JobInputs {
            job: need.clone(),
            files,
        });
    }
    if job.image_from.is_some() {
        let built = built_image(svc, layout, id, b, resolved, job)?;
        if layout.settings.executor.kind == ExecutorKind::Kubernetes {
            // The cluster pulls it: by digest, untagged, from the registry the build publishes
            // to; a trusted build only, since only trusted builds' images go there.
            if b.request.trust != Trust::Trusted {
                return Err(Error::Config(format!(
                    "{} runs in an image {} built, which Kubernetes would have to pull from the \
                     first environment's registry, where only trusted builds' images go: run \
                     it with the local executor",
                    job.name,
                    job.image_from.as_ref().map_or("", |f| f.from.as_str())
                )));
            }
            copy::copy(
                &copy::Location::Layout(svc.images.clone()),
                &built.target,
                &built.digest,
                None,
                4,
            )
            .map_err(|source| Error::Registry {
                what: format!("pushing {} for {}", built.reference, job.name),
                source,
            })?;
        }
        spec.image = built.reference;
    }
    Ok(())
}

/// An image built in the build, for a job that runs in it.
pub(super) struct Built {
    /// `<registry host>/<repository>@sha256:...`, as the build will publish it.
    pub reference: String,
    /// Its digest.
    pub digest: Digest,
    /// Where the build publishes it.
    target: copy::Location,
}

/// The image a job runs in when a job it needs builds it, assembled into seakeeper's image
/// store from that job's outputs.
pub(super) fn built_image(
    svc: &Services,
    layout: &Layout,
    id: &BuildId,
    b: &BuildState,
    resolved: &[ResolvedJob],
    job: &ResolvedJob,
) -> Result<Built, Error> {
    let Some(from) = &job.image_from else {
        return Err(Error::Config(format!("job {} builds no image", job.name)));
    };
    let decl = resolved
        .iter()
        .find(|j| j.name == from.from)
        .and_then(|j| {
            j.image_outputs
                .iter()
                .find(|i| Some(&i.name) == from.name.as_ref())
        })
        .ok_or_else(|| {
            Error::Config(format!(
                "job {} runs in an image job {} does not declare",
                job.name, from.from
            ))
        })?;
    let (first, registry) = publish::first_registry(layout)?;
    let repo = format!("{}{}", first.repository_prefix, decl.name);
    let target = copy::location_for(&registry.url, &repo, &svc.secrets).map_err(|source| {
        Error::Registry {
            what: format!("image {}", decl.name),
            source,
        }
    })?;
    let attempt = b.jobs.get(&from.from).map_or(1, |r| r.attempt);
    let work = publish::stage_outputs(svc, &job_key(id, &from.from, attempt))?;
    let desc = publish::assemble(svc, layout, decl, &work, &target);
    let _ = std::fs::remove_dir_all(&work);
    let desc = desc?;
    Ok(Built {
        reference: reference(&registry.url, &repo, &desc.digest),
        digest: desc.digest,
        target,
    })
}

/// How an image is named: `host/repository@digest` for a registry, `repository@digest` for an
/// image-layout directory.
fn reference(url: &str, repo: &str, digest: &Digest) -> String {
    match url.split_once("://") {
        Some((_, host)) => format!("{}/{repo}@{digest}", host.trim_end_matches('/')),
        None => format!("{repo}@{digest}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn references_name_the_registry_host_and_the_digest() {
        let d: crate::model::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(
            super::reference("http://127.0.0.1:5000/", "acme/api", &d),
            format!("127.0.0.1:5000/acme/api@{d}")
        );
        assert_eq!(
            super::reference("oci:/srv/reg", "api", &d),
            format!("api@{d}")
        );
    }
}
