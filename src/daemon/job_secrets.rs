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
        let values = open_all(layout, key_bytes, "the server's key");
        let problems = values
            .values()
            .filter_map(|v| v.as_ref().err().cloned())
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

/// Opens every secret of `layout` with the secret key `key_bytes` (named `what`): each value,
/// or why it does not open (naming its file).
pub fn open_all(
    layout: &Layout,
    key_bytes: &[u8],
    what: &str,
) -> BTreeMap<String, Result<SecretValue, String>> {
    if layout.secrets.is_empty() {
        return BTreeMap::new();
    }
    let opener = Opener::from_key_bytes(key_bytes, what).map_err(|e| e.to_string());
    layout
        .secrets
        .iter()
        .map(|(name, sealed)| {
            let file = format!("secrets/{name}.pgp");
            let value = match &opener {
                Ok(o) => o.open(name, sealed, &file).map_err(|e| e.to_string()),
                Err(e) => Err(format!("{file}: {e}")),
            };
            (name.clone(), value)
        })
        .collect()
}

/// `config check --key`: an error for each secret of `layout` that does not open with the
/// server's key `key_bytes` (named `what`).
pub fn check(layout: &Layout, key_bytes: &[u8], what: &str) -> Vec<crate::config::ConfigError> {
    open_all(layout, key_bytes, what)
        .into_iter()
        .filter_map(|(name, v)| {
            let message = v.err()?;
            let file = format!("secrets/{name}.pgp");
            // The message starts with the file's name; the error names it already.
            let message = message
                .strip_prefix(&format!("{file}: "))
                .map_or(message.clone(), str::to_owned);
            Some(crate::config::ConfigError::new(file, "", message))
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Trust;

    fn layout(sealed: &[u8]) -> Layout {
        let mut files = BTreeMap::new();
        let mut put = |p: &str, t: &[u8]| {
            files.insert(p.to_owned(), t.to_vec());
        };
        put(
            "seakeeper.yaml",
            b"public_url: https://ci.example.org\nregistries:\n  t: { url: \"oci:/tmp/t\" }\n",
        );
        put(
            "environments.yaml",
            b"environments:\n  - {name: testing, registry: t}\n",
        );
        put(
            "projects/acme/api.yaml",
            b"pipelines: [check, post-merge]\n",
        );
        put(
            "policies/secrets.yaml",
            b"secrets:\n  - {name: TOKEN, projects: [\"acme/*\"], pipelines: [post-merge]}\n",
        );
        put("secrets/TOKEN.pgp", sealed);
        crate::config::load(&files).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn spec(project: &str, pipeline: &str, trust: Trust) -> JobSpec {
        JobSpec {
            build_id: "b1".parse().unwrap(),
            job: "deploy".into(),
            pipeline: pipeline.into(),
            project: project.parse().unwrap(),
            change: None,
            source: "/src".into(),
            commit: "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5".parse().unwrap(),
            image: "x".into(),
            commands: vec![],
            env: Default::default(),
            timeout_seconds: 60,
            cpu: None,
            memory: None,
            services: Default::default(),
            secrets: vec!["TOKEN".into()],
            network: false,
            outputs: vec![],
            trust,
            required: vec![],
            caches: vec![],
            inputs: vec![],
        }
    }

    #[test]
    fn a_job_gets_a_secret_only_where_the_policy_allows_it_and_only_if_it_opens() {
        let (key, cert) = crate::signing::generate_key("CI <ci@example.org>").unwrap();
        let sealed = crate::secrets::seal("TOKEN", "value-1234", &cert, "cert").unwrap();
        let source = JobSecretsSource::default();
        assert!(source.update(&layout(&sealed), &key).is_empty());
        let got = source
            .for_job(&spec("acme/api", "post-merge", Trust::Trusted))
            .unwrap();
        assert_eq!(got[0].0, "TOKEN");
        assert_eq!(got[0].1.expose(), "value-1234");
        assert_eq!(source.values(), vec!["value-1234".to_owned()]);
        for (project, pipeline, trust, why) in [
            ("acme/api", "gate", Trust::Trusted, "does not allow"),
            ("other/api", "post-merge", Trust::Trusted, "does not allow"),
            ("acme/api", "post-merge", Trust::Untrusted, "untrusted"),
        ] {
            let e = source.for_job(&spec(project, pipeline, trust)).unwrap_err();
            assert!(e.contains(why), "{project} {pipeline}: {e}");
        }
        // Sealed to another key: reported once, and the job is refused naming the file.
        let (_, other) = crate::signing::generate_key("Other <o@example.org>").unwrap();
        let foreign = crate::secrets::seal("TOKEN", "value-1234", &other, "other").unwrap();
        let problems = source.update(&layout(&foreign), &key);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            source.update(&layout(&foreign), &key).is_empty(),
            "only once"
        );
        let e = source
            .for_job(&spec("acme/api", "post-merge", Trust::Trusted))
            .unwrap_err();
        assert!(
            e.contains("secrets/TOKEN.pgp") && !e.contains("value-1234"),
            "{e}"
        );
        assert!(source.values().is_empty());
    }
}
