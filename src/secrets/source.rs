//! Where executors get a job's secret values: a [`SecretSource`] asked once per job, just
//! before it starts. Executors never see the config repo or the server's key; the daemon gives
//! them a source that opens the sealed secrets and applies the policy, and `seakeeper job run`
//! a [`FixedSecrets`] of values given on its command line. Values are never part of a
//! [`JobSpec`], which is recorded.

use std::collections::BTreeMap;

use super::sealed::SecretValue;
use crate::model::{JobSpec, Trust};

/// The values of a job's secrets, by name (the job's environment variables).
pub type JobSecrets = Vec<(String, SecretValue)>;

/// Hands each job the values of the secrets it names, or refuses it.
pub trait SecretSource: Send + Sync {
    /// The values of `spec.secrets`, in order; an error (naming the secret, never a value)
    /// refuses the job before anything of it runs.
    fn for_job(&self, spec: &JobSpec) -> Result<JobSecrets, String>;
}

/// A fixed set of values, for any trusted job that names them (`seakeeper job run`, tests).
#[derive(Debug, Default, Clone)]
pub struct FixedSecrets {
    values: BTreeMap<String, SecretValue>,
}

impl FixedSecrets {
    /// No secrets at all: a job that names one is refused.
    pub fn none() -> FixedSecrets {
        FixedSecrets::default()
    }

    /// These values.
    pub fn new(values: BTreeMap<String, SecretValue>) -> FixedSecrets {
        FixedSecrets { values }
    }
}

impl SecretSource for FixedSecrets {
    fn for_job(&self, spec: &JobSpec) -> Result<JobSecrets, String> {
        refuse_untrusted(spec)?;
        spec.secrets
            .iter()
            .map(|name| {
                self.values
                    .get(name)
                    .map(|v| (name.clone(), v.clone()))
                    .ok_or_else(|| format!("secret {name:?} is not available to this executor"))
            })
            .collect()
    }
}

/// Refuses an untrusted job that names any secret (whatever any policy says).
pub fn refuse_untrusted(spec: &JobSpec) -> Result<(), String> {
    if spec.trust == Trust::Untrusted && !spec.secrets.is_empty() {
        return Err(format!(
            "untrusted jobs get no secrets (this job names {})",
            spec.secrets.join(", ")
        ));
    }
    Ok(())
}

/// `text` with every secret value (of 4 characters or more) replaced by `***`, the longest
/// first, so that a secret that starts with another is not left half shown.
/// A value of several lines is also masked line by line (logs are read a line at a time).
pub fn mask(text: &str, secrets: &[String]) -> String {
    let mut by_length: Vec<&str> = secrets
        .iter()
        .flat_map(|s| std::iter::once(s.as_str()).chain(s.lines().filter(|_| s.contains('\n'))))
        .map(|s| s.trim_end_matches('\r'))
        .filter(|s| s.len() >= 4)
        .collect();
    by_length.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for s in by_length {
        if out.contains(s) {
            out = out.replace(s, "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn masking_takes_the_longest_value_first_and_lines_of_long_values() {
        let secrets = vec![
            "abcd".to_owned(),
            "abcdefgh".to_owned(),
            "line-one\nline-two".to_owned(),
            "ab".to_owned(),
        ];
        assert_eq!(super::mask("x abcdefgh y abcd", &secrets), "x *** y ***");
        assert_eq!(super::mask("got line-two here", &secrets), "got *** here");
        // Too short to mask without mangling every log.
        assert_eq!(super::mask("ab", &secrets), "ab");
    }
}
