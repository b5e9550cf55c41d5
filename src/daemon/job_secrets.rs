//! The job secrets of the config in use, opened in memory with the server's key, and the
//! [`SecretSource`] the executor asks as each job starts: a job gets a secret only when it is
//! trusted, `policies/secrets.yaml` allows its project and pipeline, and the sealed file
//! opened. Values are never written anywhere; the executor masks them in logs.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::config::Layout;
use crate::config::files::SecretsPolicy;
use crate::model::JobSpec;
use crate::secrets::{JobSecrets, Opener, SecretSource, SecretValue, refuse_untrusted};

/// The opened secrets of one config, swapped whole when the config's secrets change.
#[derive(Default)]
struct Opened {
    /// The sealed files and policy these were opened from (to open again only on a change).
    sealed: BTreeMap<String, Vec<u8>>,
    policy: SecretsPolicy,
    /// Each secret's value, or why it could not be opened.
    values: BTreeMap<String, Result<SecretValue, String>>,
}

/// The daemon's job secrets (shared with the executor).
#[derive(Default)]
pub struct JobSecretsSource {
    opened: RwLock<Opened>,
}

impl JobSecretsSource {
    /// Opens the secrets of `layout` with the server's key (`key_bytes`) when they differ from
    /// those opened last. Returns what could not be opened, to be reported.
    pub fn update(&self, layout: &Layout, key_bytes: &[u8]) -> Vec<String> {
        {
            let opened = self.opened.read().unwrap_or_else(|p| p.into_inner());
            if opened.sealed == layout.secrets && opened.policy == layout.policies.secrets {
                return Vec::new();
            }
        }
        let opener = if layout.secrets.is_empty() {
            None
        } else {
            Some(Opener::from_key_bytes(key_bytes, "the server's key").map_err(|e| e.to_string()))
        };
        let mut problems = Vec::new();
        let values = layout
            .secrets
            .iter()
            .map(|(name, sealed)| {
                let what = format!("secrets/{name}.pgp");
                let value = match &opener {
                    Some(Ok(o)) => o.open(name, sealed, &what).map_err(|e| e.to_string()),
                    Some(Err(e)) => Err(format!("{what}: {e}")),
                    None => Err(format!("{what}: no key")),
                };
                if let Err(e) = &value {
                    problems.push(e.clone());
                }
                (name.clone(), value)
            })
            .collect();
        *self.opened.write().unwrap_or_else(|p| p.into_inner()) = Opened {
            sealed: layout.secrets.clone(),
            policy: layout.policies.secrets.clone(),
            values,
        };
        problems
    }

    /// Every opened value, to mask wherever logs are shown.
    pub fn values(&self) -> Vec<String> {
        let opened = self.opened.read().unwrap_or_else(|p| p.into_inner());
        opened
            .values
            .values()
            .filter_map(|v| v.as_ref().ok().map(|v| v.expose().to_owned()))
            .collect()
    }
}

impl SecretSource for JobSecretsSource {
    fn for_job(&self, spec: &JobSpec) -> Result<JobSecrets, String> {
        refuse_untrusted(spec)?;
        let opened = self.opened.read().unwrap_or_else(|p| p.into_inner());
        spec.secrets
            .iter()
            .map(|name| {
                let Some(rule) = opened.policy.rule(name) else {
                    return Err(format!(
                        "secret `{name}` is not in policies/secrets.yaml of the config in use"
                    ));
                };
                if !rule.allows(&spec.project, &spec.pipeline) {
                    return Err(format!(
                        "policies/secrets.yaml does not allow secret `{name}` to {} in `{}`",
                        spec.project, spec.pipeline
                    ));
                }
                match opened.values.get(name) {
                    Some(Ok(v)) => Ok((name.clone(), v.clone())),
                    Some(Err(e)) => Err(format!("secret `{name}` cannot be used: {e}")),
                    None => Err(format!(
                        "secret `{name}` has no secrets/{name}.pgp in the config in use"
                    )),
                }
            })
            .collect()
    }
}
