//! Policies: the defaults shipped in this repository's `policies/` (compiled in), each of
//! which the config repo's `policies/<same name>.yaml` replaces as a whole.

use super::error::{ConfigError, parse_yaml};
use super::files::{
    EnforcedJobsPolicy, LimitsPolicy, PipelineKind, PromotionPolicy, RetentionPolicy,
    SecretsPolicy, TimeoutsPolicy, TrustPolicy,
};

/// `policies/images.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesPolicy {
    /// Whether jobs of trusted pipelines must pin images by digest.
    pub require_digest_in_trusted_pipelines: bool,
    /// Images knowingly left unpinned (an import found only a tag, and no registry answered
    /// for its digest): listed so that review sees them. `config check` accepts central
    /// pipeline files (`pipelines/`) that use them; a trusted pipeline still refuses to run
    /// them, saying they are marked here, until each is pinned by digest.
    #[serde(default)]
    pub unpinned: Vec<UnpinnedImage>,
}

/// One entry of `unpinned:` in `policies/images.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnpinnedImage {
    /// The image reference, as jobs name it (`registry/name:tag`).
    pub image: String,
    /// Why it is not pinned.
    pub reason: String,
}

impl ImagesPolicy {
    /// The entry marking `image` unpinned, if there is one.
    pub fn marked_unpinned(&self, image: &str) -> Option<&UnpinnedImage> {
        self.unpinned.iter().find(|u| u.image == image)
    }
}

/// Every policy, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    /// `enforced-jobs.yaml`
    pub enforced_jobs: EnforcedJobsPolicy,
    /// `trust.yaml`
    pub trust: TrustPolicy,
    /// `images.yaml`
    pub images: ImagesPolicy,
    /// `timeouts.yaml`
    pub timeouts: TimeoutsPolicy,
    /// `secrets.yaml`
    pub secrets: SecretsPolicy,
    /// `promotion.yaml`
    pub promotion: PromotionPolicy,
    /// `retention.yaml`
    pub retention: RetentionPolicy,
    /// `limits.yaml`
    pub limits: LimitsPolicy,
}

/// The policy files seakeeper knows, with the defaults it ships.
pub const DEFAULTS: [(&str, &str); 8] = [
    (
        "enforced-jobs.yaml",
        include_str!("../../policies/enforced-jobs.yaml"),
    ),
    ("trust.yaml", include_str!("../../policies/trust.yaml")),
    ("images.yaml", include_str!("../../policies/images.yaml")),
    (
        "timeouts.yaml",
        include_str!("../../policies/timeouts.yaml"),
    ),
    ("secrets.yaml", include_str!("../../policies/secrets.yaml")),
    (
        "promotion.yaml",
        include_str!("../../policies/promotion.yaml"),
    ),
    (
        "retention.yaml",
        include_str!("../../policies/retention.yaml"),
    ),
    ("limits.yaml", include_str!("../../policies/limits.yaml")),
];

impl Policies {
    /// Whether a pipeline runs trusted code.
    pub fn is_trusted(&self, p: PipelineKind) -> bool {
        self.trust.trusted_pipelines.contains(&p)
    }
}

/// Resolves policies: `overrides` are the config repo's `policies/*.yaml` (file name, text).
pub fn resolve(overrides: &[(String, String)], errors: &mut Vec<ConfigError>) -> Option<Policies> {
    let known: Vec<&str> = DEFAULTS.iter().map(|(n, _)| *n).collect();
    for (name, _) in overrides {
        if !known.contains(&name.as_str()) {
            errors.push(
                ConfigError::new(
                    format!("policies/{name}"),
                    "",
                    format!("is not a policy seakeeper knows ({})", known.join(", ")),
                )
                .suggest(name, known.iter().copied()),
            );
        }
    }
    let before = errors.len();
    fn one<T: serde::de::DeserializeOwned>(
        name: &str,
        overrides: &[(String, String)],
        errors: &mut Vec<ConfigError>,
    ) -> Option<T> {
        let (path, text) = match overrides.iter().find(|(n, _)| n == name) {
            Some((n, t)) => (format!("policies/{n}"), t.as_str()),
            None => {
                let (_, t) = DEFAULTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .expect("every policy has a default");
                (format!("policies/{name} (seakeeper's default)"), *t)
            }
        };
        parse_yaml(&path, text).map_err(|e| errors.push(e)).ok()
    }
    let p = Policies {
        enforced_jobs: one("enforced-jobs.yaml", overrides, errors)?,
        trust: one("trust.yaml", overrides, errors)?,
        images: one("images.yaml", overrides, errors)?,
        timeouts: one("timeouts.yaml", overrides, errors)?,
        secrets: one("secrets.yaml", overrides, errors)?,
        promotion: one("promotion.yaml", overrides, errors)?,
        retention: one("retention.yaml", overrides, errors)?,
        limits: one("limits.yaml", overrides, errors)?,
    };
    if p.timeouts.default > p.timeouts.maximum {
        errors.push(ConfigError::new(
            "policies/timeouts.yaml",
            "default",
            format!(
                "{} is above the maximum {}",
                p.timeouts.default, p.timeouts.maximum
            ),
        ));
    }
    (errors.len() == before).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_defaults_are_valid() {
        let mut errors = Vec::new();
        let p = resolve(&[], &mut errors).expect("defaults parse");
        assert!(errors.is_empty(), "{errors:?}");
        assert!(p.is_trusted(PipelineKind::Gate));
        assert!(!p.is_trusted(PipelineKind::Check));
    }

    #[test]
    fn overrides_replace_a_file_and_typos_are_named() {
        let mut errors = Vec::new();
        let p = resolve(
            &[("timeouts.yaml".into(), "default: 1m\nmaximum: 10m\n".into())],
            &mut errors,
        )
        .unwrap();
        assert_eq!(p.timeouts.maximum.as_secs(), 600);
        let mut errors = Vec::new();
        resolve(&[("timeout.yaml".into(), "x: 1\n".into())], &mut errors);
        assert_eq!(errors[0].suggestion.as_deref(), Some("timeouts.yaml"));
    }
}
