//! The job secrets of the config repo: `secrets/<name>.pgp` (armored OpenPGP messages sealed
//! to the server's encryption subkey by `seakeeper secret encrypt`) and their rules in
//! `policies/secrets.yaml`. This module only checks that the two agree and that each file looks
//! like a sealed secret; it cannot open one (the server's key is not config, and this module
//! does no cryptography): `config check --key` and the daemon do that.

use std::collections::BTreeMap;

use super::files::SecretsPolicy;
use super::{ConfigError, Policies, SourceFile};
use crate::model::secret::secret_name_problem;

/// The sealed secrets by name; every disagreement with the policy is an error.
pub(super) fn load(
    files: &BTreeMap<String, SourceFile>,
    policies: Option<&Policies>,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, Vec<u8>> {
    let mut sealed = BTreeMap::new();
    for (path, rest, file) in super::under(files, "secrets/") {
        let Some(name) = rest.strip_suffix(".pgp").filter(|n| !n.contains('/')) else {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "secrets/ holds only sealed secrets, `secrets/<NAME>.pgp` (made by `seakeeper \
                 secret encrypt`); their rules are in policies/secrets.yaml",
            ));
            continue;
        };
        if let Some(problem) = secret_name_problem(name) {
            errors.push(ConfigError::new(path.as_str(), "", problem));
            continue;
        }
        if !file.bytes.starts_with(b"-----BEGIN PGP MESSAGE-----") {
            errors.push(ConfigError::new(
                path.as_str(),
                "",
                "not an armored OpenPGP message: make it with `seakeeper secret encrypt --name \
                 NAME --cert <the server's cert>`",
            ));
            continue;
        }
        sealed.insert(name.to_owned(), file.bytes.to_vec());
    }
    if let Some(p) = policies {
        check_policy(&p.secrets, p, &sealed, files, errors);
    }
    sealed
}

fn check_policy(
    policy: &SecretsPolicy,
    policies: &Policies,
    sealed: &BTreeMap<String, Vec<u8>>,
    files: &BTreeMap<String, SourceFile>,
    errors: &mut Vec<ConfigError>,
) {
    const FILE: &str = "policies/secrets.yaml";
    let text = files
        .get(FILE)
        .and_then(|f| std::str::from_utf8(&f.bytes).ok())
        .unwrap_or("");
    let mut seen = std::collections::BTreeSet::new();
    for (i, rule) in policy.secrets.iter().enumerate() {
        let field = format!("secrets[{i}]");
        let located = |e: ConfigError| e.located(text, &rule.name);
        if !seen.insert(rule.name.as_str()) {
            errors.push(located(ConfigError::new(
                FILE,
                format!("{field}.name"),
                format!("secret `{}` has two rules; keep one", rule.name),
            )));
        }
        if let Some(problem) = secret_name_problem(&rule.name) {
            errors.push(located(ConfigError::new(
                FILE,
                format!("{field}.name"),
                problem,
            )));
            continue;
        }
        if !sealed.contains_key(&rule.name) {
            errors.push(
                located(ConfigError::new(
                    FILE,
                    format!("{field}.name"),
                    format!(
                        "secret `{}` has no sealed value: add secrets/{}.pgp with `seakeeper \
                         secret encrypt --name {} --cert <the server's cert>`",
                        rule.name, rule.name, rule.name
                    ),
                ))
                .suggest(&rule.name, sealed.keys().map(String::as_str)),
            );
        }
        if rule.projects.is_empty() || rule.pipelines.is_empty() {
            errors.push(located(ConfigError::new(
                FILE,
                field.clone(),
                format!(
                    "secret `{}` names no {}: no job could use it",
                    rule.name,
                    if rule.projects.is_empty() {
                        "project"
                    } else {
                        "pipeline"
                    }
                ),
            )));
        }
        for p in &rule.pipelines {
            if !policies.is_trusted(*p) {
                errors.push(located(ConfigError::new(
                    FILE,
                    format!("{field}.pipelines"),
                    format!(
                        "secret `{}`: `{}` is untrusted (policies/trust.yaml) and untrusted jobs \
                         never get secrets",
                        rule.name,
                        p.as_str()
                    ),
                )));
            }
        }
    }
    for name in sealed.keys() {
        if policy.rule(name).is_none() {
            errors.push(ConfigError::new(
                format!("secrets/{name}.pgp"),
                "",
                format!(
                    "no rule in policies/secrets.yaml allows any job to use it: add \
                     `- {{name: {name}, projects: [...], pipelines: [...]}}` there, or remove \
                     the file"
                ),
            ));
        }
    }
}
