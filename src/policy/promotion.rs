//! May a digest enter an environment? Only if the ledger holds a trusted build attestation for
//! it, it runs in the previous environment (long enough, when the policy asks for a soak), and
//! no freeze holds the environment. A rollback (a digest that ran in the environment before) is
//! just a promotion of a digest that is already known there.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::files::{EnvironmentSpec, FreezeFile, PromotionPolicy};
use crate::model::{Digest, EnvironmentName, FreezeName, ImageName, Timestamp};

/// What the ledger says about the digest's build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// No attestation at all.
    None,
    /// Built by an untrusted pipeline (a check of proposed code): never promotable.
    Untrusted,
    /// A trusted (post-merge) build attestation.
    Trusted,
}

/// The facts about one wanted promotion.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The environment it should enter.
    pub environment: &'a EnvironmentName,
    /// The image.
    pub image: &'a ImageName,
    /// The digest.
    pub digest: &'a Digest,
    /// The environments, in promotion order.
    pub environments: &'a [EnvironmentSpec],
    /// The ledger's attestation for the digest (checked signatures only).
    pub provenance: Provenance,
    /// The images the digest's verified attestations name.
    pub attested_images: &'a std::collections::BTreeSet<ImageName>,
    /// Why no attestation of the digest verified, if none did.
    pub provenance_problem: Option<&'a str>,
    /// Since when the digest runs as this image in the previous environment, if it runs
    /// there now.
    pub in_previous_since: Option<Timestamp>,
    /// Whether the digest ran in this environment before (a rollback).
    pub ran_here_before: bool,
    /// The freezes at the config commit.
    pub freezes: &'a BTreeMap<FreezeName, FreezeFile>,
    /// The promotion policy.
    pub policy: &'a PromotionPolicy,
    /// Now.
    pub now: Timestamp,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Not now: a freeze or a soak holds it; it goes ahead by itself once that ends.
    Hold {
        /// Why, for people.
        reason: String,
        /// The freeze holding it, if one does.
        #[serde(skip_serializing_if = "Option::is_none")]
        freeze: Option<FreezeName>,
    },
    /// Never, as things are: the promotion line is wrong.
    Deny {
        /// Why, for people.
        reason: String,
    },
}

/// The first freeze (by name) of the layout that holds `what` now: the one place where
/// promotions, and images entering the first environment, ask.
pub fn freeze_holding<'l>(
    layout: &'l crate::config::Layout,
    what: crate::model::Held<'_>,
    now: Timestamp,
) -> Option<(&'l FreezeName, &'l FreezeFile)> {
    first_freeze_holding(&layout.freezes, what, now)
}

fn first_freeze_holding<'f>(
    freezes: &'f BTreeMap<FreezeName, FreezeFile>,
    what: crate::model::Held<'_>,
    now: Timestamp,
) -> Option<(&'f FreezeName, &'f FreezeFile)> {
    freezes.iter().find(|(_, f)| f.holds(what, now))
}

/// Decides.
pub fn decide(f: &Facts<'_>) -> Decision {
    let what = format!("{}@{}", f.image, f.digest);
    let Some(pos) = f.environments.iter().position(|e| &e.name == f.environment) else {
        return Decision::Deny {
            reason: format!(
                "{} is not an environment in environments.yaml",
                f.environment
            ),
        };
    };
    // Freezes first: a held promotion shows the freeze's own words.
    if let Some((name, freeze)) = first_freeze_holding(
        f.freezes,
        crate::model::Held::Promotion(f.environment),
        f.now,
    ) {
        let ticket = freeze
            .ticket
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        return Decision::Hold {
            reason: format!(
                "{} is frozen by {name}{ticket}: {}",
                f.environment,
                freeze.reason.trim()
            ),
            freeze: Some(name.clone()),
        };
    }
    if f.policy.require_trusted_attestation {
        match f.provenance {
            Provenance::Trusted => {}
            Provenance::Untrusted => {
                return Decision::Deny {
                    reason: format!(
                        "{what} was built by an untrusted pipeline (proposed code); only trusted post-merge builds are promoted"
                    ),
                };
            }
            Provenance::None => {
                return Decision::Deny {
                    reason: match f.provenance_problem {
                        Some(p) => format!(
                            "the ledger holds no verified trusted build attestation for {what}: {p}"
                        ),
                        None => format!("the ledger holds no trusted build attestation for {what}"),
                    },
                };
            }
        }
        if !f.attested_images.contains(f.image) {
            let names: Vec<String> = f.attested_images.iter().map(ToString::to_string).collect();
            return Decision::Deny {
                reason: format!(
                    "{} was built and attested as {}, not as {}: an image is promoted only under \
                     the name it was built as",
                    f.digest,
                    if names.is_empty() {
                        "nothing".to_owned()
                    } else {
                        names.join(", ")
                    },
                    f.image
                ),
            };
        }
    }
    if pos == 0 || f.ran_here_before {
        return Decision::Allow;
    }
    let previous = &f.environments[pos - 1].name;
    let Some(since) = f.in_previous_since else {
        return Decision::Deny {
            reason: format!("{what} does not run in {previous}; promote it there first"),
        };
    };
    if let Some(soak) = f.policy.soak.get(previous) {
        let ready = since
            .as_second()
            .saturating_add(i64::try_from(soak.as_secs()).unwrap_or(i64::MAX));
        if f.now.as_second() < ready {
            let at = Timestamp::from_second(ready)
                .map(|t| t.to_string())
                .unwrap_or_default();
            return Decision::Hold {
                reason: format!("{what} soaks in {previous} for {soak} (until {at})"),
                freeze: None,
            };
        }
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> EnvironmentSpec {
        yaml_serde::from_str(&format!("{{name: {name}, registry: r}}")).unwrap()
    }

    struct World {
        envs: Vec<EnvironmentSpec>,
        freezes: BTreeMap<FreezeName, FreezeFile>,
        policy: PromotionPolicy,
        image: ImageName,
        digest: Digest,
        images: std::collections::BTreeSet<ImageName>,
    }

    fn world() -> World {
        World {
            envs: vec![env("staging"), env("production")],
            freezes: BTreeMap::new(),
            policy: yaml_serde::from_str(
                "{require_trusted_attestation: true, soak: {staging: 1h}}",
            )
            .unwrap(),
            image: "mediawiki".parse().unwrap(),
            digest: format!("sha256:{}", "a".repeat(64)).parse().unwrap(),
            images: ["mediawiki".parse().unwrap()].into(),
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn facts<'a>(w: &'a World, env: &'a EnvironmentName) -> Facts<'a> {
        Facts {
            environment: env,
            image: &w.image,
            digest: &w.digest,
            environments: &w.envs,
            provenance: Provenance::Trusted,
            attested_images: &w.images,
            provenance_problem: None,
            in_previous_since: Some(t(0)),
            ran_here_before: false,
            freezes: &w.freezes,
            policy: &w.policy,
            now: t(7200),
        }
    }

    #[test]
    fn the_rules_as_a_table() {
        let mut w = world();
        let staging: EnvironmentName = "staging".parse().unwrap();
        let prod: EnvironmentName = "production".parse().unwrap();
        let nowhere: EnvironmentName = "qa".parse().unwrap();
        let kind = |d: Decision| match d {
            Decision::Allow => "allow".to_owned(),
            Decision::Hold { reason, .. } => format!("hold: {reason}"),
            Decision::Deny { reason } => format!("deny: {reason}"),
        };
        // (case, decision starts with)
        let mut cases: Vec<(&str, Facts<'_>, &str)> = Vec::new();
        cases.push(("first environment, trusted", facts(&w, &staging), "allow"));
        cases.push(("next environment after the soak", facts(&w, &prod), "allow"));
        let mut f = facts(&w, &prod);
        f.now = t(600);
        cases.push(("still soaking", f, "hold: mediawiki@sha256:aaaa"));
        let mut f = facts(&w, &prod);
        f.in_previous_since = None;
        cases.push((
            "not in the previous environment",
            f,
            "deny: mediawiki@sha256:aaaa",
        ));
        let mut f = facts(&w, &prod);
        f.in_previous_since = None;
        f.ran_here_before = true;
        cases.push(("rollback to a digest that ran here", f, "allow"));
        let mut f = facts(&w, &staging);
        f.provenance = Provenance::Untrusted;
        cases.push(("untrusted build", f, "deny: mediawiki@sha256:aaaa"));
        let mut f = facts(&w, &staging);
        f.provenance = Provenance::None;
        cases.push((
            "no attestation",
            f,
            "deny: the ledger holds no trusted build attestation",
        ));
        let other_images: std::collections::BTreeSet<ImageName> = ["api".parse().unwrap()].into();
        let mut f = facts(&w, &staging);
        f.attested_images = &other_images;
        cases.push((
            "issue 14: a digest attested as another image",
            f,
            "deny: sha256:aaaa",
        ));
        let mut f = facts(&w, &staging);
        f.provenance = Provenance::None;
        f.provenance_problem = Some("its signature does not verify with a builder key");
        cases.push((
            "issue 14: an attestation whose signature does not verify",
            f,
            "deny: the ledger holds no verified trusted build attestation",
        ));
        cases.push((
            "unknown environment",
            facts(&w, &nowhere),
            "deny: qa is not an environment",
        ));
        for (name, f, want) in cases {
            let got = kind(decide(&f));
            assert!(got.starts_with(want), "{name}: {got}");
        }
        // A freeze holds production only, with its reason and ticket; expired, it holds nothing.
        w.freezes.insert(
            "deploy-freeze".parse().unwrap(),
            yaml_serde::from_str(
                "{scope: [promote:production], reason: Holiday freeze, ticket: T123}",
            )
            .unwrap(),
        );
        assert_eq!(
            decide(&facts(&w, &prod)),
            Decision::Hold {
                reason: "production is frozen by deploy-freeze (T123): Holiday freeze".into(),
                freeze: Some("deploy-freeze".parse().unwrap()),
            }
        );
        assert_eq!(decide(&facts(&w, &staging)), Decision::Allow);
        let mut expired = w.freezes.clone();
        expired.values_mut().for_each(|f| f.expires = Some(t(100)));
        let mut f = facts(&w, &prod);
        f.freezes = &expired;
        assert_eq!(decide(&f), Decision::Allow);
        // Issue 14: a scope that cannot be read holds everything.
        let mut typo = BTreeMap::new();
        typo.insert(
            "typo".parse().unwrap(),
            yaml_serde::from_str("{scope: [promote-production], reason: Typo}").unwrap(),
        );
        let mut f = facts(&w, &staging);
        f.freezes = &typo;
        assert!(matches!(decide(&f), Decision::Hold { .. }));
    }
}
