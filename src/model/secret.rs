//! Job secrets as the config names them: the rule for a secret's name (it becomes the job's
//! environment variable) and a policy rule saying which projects and pipelines may use one.
//! Values are never here (they are opened by the `secrets` module).

use serde::{Deserialize, Serialize};

use super::{PipelineKind, ProjectName, glob_matches};

/// Why `name` cannot name a secret, if it cannot: 1 to 64 characters `A-Z`, `0-9` and `_`,
/// not starting with a digit, and none of the variables seakeeper sets itself.
pub fn secret_name_problem(name: &str) -> Option<String> {
    let shape = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !shape {
        return Some(format!(
            "secret name `{name}`: use 1 to 64 characters A-Z, 0-9 and `_`, not starting with a \
             digit (it becomes the job's environment variable)"
        ));
    }
    if name.starts_with("SEAKEEPER") || matches!(name, "PATH" | "HOME" | "LANG" | "TMPDIR" | "CI") {
        return Some(format!(
            "secret name `{name}`: seakeeper sets this variable itself; choose another name"
        ));
    }
    None
}

/// One entry of `policies/secrets.yaml`: the secret `name` (sealed at `secrets/<name>.pgp` in
/// the config repo) may be used by jobs of `projects` (globs) in `pipelines` (trusted ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRule {
    /// The secret.
    pub name: String,
    /// Project globs (`mediawiki/*`, `acme/api`).
    pub projects: Vec<String>,
    /// The pipelines whose jobs may use it.
    pub pipelines: Vec<PipelineKind>,
}

impl SecretRule {
    /// Whether a job of `project` in `pipeline` may use the secret.
    pub fn allows(&self, project: &ProjectName, pipeline: &str) -> bool {
        self.pipelines.iter().any(|p| p.as_str() == pipeline)
            && self
                .projects
                .iter()
                .any(|g| glob_matches(g, project.as_str()))
    }
}

/// The mapping form, with every field required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Full {
    name: String,
    projects: Vec<String>,
    pipelines: Vec<PipelineKind>,
}

impl<'de> Deserialize<'de> for SecretRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SecretRule, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretRule;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`{name: NAME, projects: [globs], pipelines: [trusted pipelines]}`")
            }

            // A bare name (the form before secrets were sealed in git) says nothing of who may
            // use the secret: refused, saying what to write.
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<SecretRule, E> {
                Err(E::custom(format!(
                    "secret `{name}`: say who may use it: \
                     `- {{name: {name}, projects: [\"<glob>\"], pipelines: [gate, post-merge]}}`"
                )))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<SecretRule, A::Error> {
                let f = Full::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(SecretRule {
                    name: f.name,
                    projects: f.projects,
                    pipelines: f.pipelines,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_rules() {
        assert!(secret_name_problem("DEPLOY_TOKEN").is_none());
        for bad in ["", "lower", "1A", "A-B", "SEAKEEPER_X", "PATH"] {
            assert!(secret_name_problem(bad).is_some(), "{bad}");
        }
        let r: Vec<SecretRule> = yaml_serde::from_str(
            "- {name: T, projects: [\"acme/*\"], pipelines: [gate, post-merge]}\n",
        )
        .unwrap();
        let api: ProjectName = "acme/api".parse().unwrap();
        let other: ProjectName = "other/api".parse().unwrap();
        assert!(r[0].allows(&api, "gate"));
        assert!(!r[0].allows(&api, "check"));
        assert!(!r[0].allows(&other, "gate"));
        let e = yaml_serde::from_str::<Vec<SecretRule>>("- T\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("say who may use it"), "{e}");
        let e =
            yaml_serde::from_str::<Vec<SecretRule>>("- {name: T, projects: [], pipeline: []}\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }
}
