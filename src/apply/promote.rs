//! Promotions (copied by digest off the pass, recorded once checked at the target), refused
//! promotions and freeze transitions, each a ledger record.

use super::publish::recorded_url;
use super::{Applied, Error, Services};
use crate::config::Layout;
use crate::model::record::{Freeze, Promotion, PromotionRefusal};
use crate::model::{Digest, EnvironmentName, FreezeState, ImageName, Record, Timestamp};
use crate::reconcile::{Fact, World};
use crate::registry::copy::{self, Location};

/// A promotion's copy: which digest, as which image, into which environment.
pub type CopyKey = (EnvironmentName, ImageName, Digest);

/// Promotion copies, on threads of their own, so that a registry that is slow, or stalls
/// until its deadline, holds up nothing else: the pass that wants a copy starts it and moves on;
/// a later pass finds it done and records it (the record is still written only after the copy).
pub type Copies = super::tasks::Tasks<CopyKey, Result<(), Error>>;

/// Records a refused promotion in the ledger, once per environment, image, digest and config
/// commit (and day): auditors see what was asked and why it was not done.
pub(super) fn refuse(
    svc: &Services,
    world: &World,
    environment: &EnvironmentName,
    image: &ImageName,
    digest: &Digest,
    reason: &str,
) -> Result<Applied, Error> {
    let config_commit = world.config.layout_commit.clone();
    let key = (
        environment.clone(),
        image.clone(),
        digest.clone(),
        config_commit.clone(),
    );
    if world.refused.contains(&key) {
        return Ok(Applied::nothing());
    }
    let record = Record::PromotionRefusal(PromotionRefusal {
        environment: environment.clone(),
        image: image.clone(),
        digest: digest.clone(),
        reason: reason.to_owned(),
        config_commit: config_commit.clone(),
        refused_at: Timestamp::now(),
    });
    match svc.writer.append(record) {
        // Refused already today (with another time): the same fact.
        Ok(_) | Err(crate::ledger::RecordError::Conflict { .. }) => {
            (svc.on_write)();
            Ok(Applied::learnt([Fact::RefusalRecorded {
                environment: environment.clone(),
                image: image.clone(),
                digest: digest.clone(),
                config_commit,
            }]))
        }
        Err(source) => Err(Error::Record {
            what: format!("recording the refusal of {image}@{digest} in {environment}"),
            source,
        }),
    }
}

/// Where an environment's registry keeps `image`, and its URL.
fn location(
    svc: &Services,
    layout: &Layout,
    env: &EnvironmentName,
    image: &ImageName,
) -> Result<(Location, String), Error> {
    let spec = layout
        .environments
        .iter()
        .find(|e| &e.name == env)
        .ok_or_else(|| Error::Config(format!("no environment {env}")))?;
    let registry = layout
        .settings
        .registries
        .get(&spec.registry)
        .ok_or_else(|| {
            Error::Config(format!(
                "registry {} is not in seakeeper.yaml",
                spec.registry
            ))
        })?;
    let repo = format!("{}{image}", spec.repository_prefix);
    let location = copy::location_for(&registry.url, &repo, &svc.secrets).map_err(|source| {
        Error::Registry {
            what: format!("the registry of {env}"),
            source,
        }
    })?;
    Ok((location, registry.url.clone()))
}

pub(super) fn promote(
    svc: &Services,
    layout: &Layout,
    world: &World,
    environment: &EnvironmentName,
    image: &ImageName,
    digest: &Digest,
    from: Option<&EnvironmentName>,
) -> Result<Applied, Error> {
    let (target, to_url) = location(svc, layout, environment, image)?;
    let (source, from_url) = match from {
        Some(env) => location(svc, layout, env, image)?,
        None => (
            Location::Layout(svc.images.clone()),
            format!("oci:{}", svc.images.dir().display()),
        ),
    };
    let key = (environment.clone(), image.clone(), digest.clone());
    let (d, what) = (
        digest.clone(),
        format!("promoting {image}@{digest} to {environment}"),
    );
    match svc.copies.poll_or_start(&key, move || {
        copy::copy(&source, &target, &d, None, 4)
            .map(|_| ())
            .map_err(|source| Error::Registry { what, source })
    }) {
        None => return Ok(Applied::nothing()),
        Some(Err(e)) => return Err(e),
        Some(Ok(())) => {}
    }
    let now = Timestamp::now();
    let slot = (environment.clone(), image.clone());
    let promotion = Promotion {
        environment: environment.clone(),
        image: image.clone(),
        digest: digest.clone(),
        previous_digest: world.deployed.get(&slot).map(|(d, _)| d.clone()),
        from_registry: recorded_url(&from_url),
        to_registry: recorded_url(&to_url),
        config_commit: world.config.layout_commit.clone(),
        promoted_at: now,
    };
    svc.writer
        .append(Record::Promotion(promotion))
        .map_err(|source| Error::Record {
            what: format!("recording the promotion of {image}@{digest}"),
            source,
        })?;
    (svc.on_write)();
    if let Some(landed) = landed_at(svc, digest) {
        crate::metrics::get().entered(environment.as_str(), landed, now);
    }
    (svc.reporter)(&format!(
        "[promote] {image}@{digest} now runs in {environment} (config {})",
        world.config.layout_commit
    ));
    Ok(Applied::progress([Fact::Promoted {
        environment: environment.clone(),
        image: image.clone(),
        digest: digest.clone(),
        at: now,
    }]))
}

/// When the commit `digest` was built from landed, as the ledger says (for the cycle-time
/// metric): its gate build's landing (images are built once, at landing), else the landing of
/// its build's source commit. `None` when the ledger does not say (a commit that was not
/// landed by the gate).
fn landed_at(svc: &Services, digest: &Digest) -> Option<Timestamp> {
    let _packs = crate::ledger::read_guard();
    let ledger = svc.ledger().ok()?;
    let ledger = ledger.snapshot().ok()?;
    let artifact = ledger.artifact(digest).ok()??;
    let build = ledger.build(&artifact.build_id).ok()??;
    if let Some(landing) = build.landing {
        return Some(landing.landed_at);
    }
    let dir = ledger.landed_as(&build.request.source_commit).ok()??;
    match ledger.record(&format!("{dir}/landing.yaml")).ok()?? {
        Record::Landing(landing) => Some(landing.landed_at),
        _ => None,
    }
}

pub(super) fn record_freeze(svc: &Services, freeze: &Freeze) -> Result<Applied, Error> {
    svc.writer
        .append(Record::Freeze(freeze.clone()))
        .map_err(|source| Error::Record {
            what: format!("recording freeze {}", freeze.name),
            source,
        })?;
    (svc.on_write)();
    let verb = match freeze.state {
        FreezeState::Active => "is ACTIVE",
        FreezeState::Lifted => "was lifted",
    };
    (svc.reporter)(&format!(
        "[freeze] {} {verb} ({}) by config commit {}: {}",
        freeze.name,
        freeze.scope.join(", "),
        freeze.config_commit,
        freeze.reason.trim()
    ));
    Ok(Applied::progress([Fact::FreezeRecorded(freeze.clone())]))
}
