//! When may an artifact leave the stores? The first retention rule matching its kind and trust
//! gives its age limit; anything that reached production is kept `production_days` after it
//! last ran there; what any environment runs now is never expired.

use serde::Serialize;

use crate::config::files::RetentionPolicy;
use crate::model::{ArtifactKind, Timestamp, Trust};

/// The facts about one artifact.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Its kind.
    pub kind: ArtifactKind,
    /// The trust of the build that made it.
    pub trust: Trust,
    /// When it was built.
    pub created: Timestamp,
    /// The environment that runs it now, if one does.
    pub runs_in: Option<crate::model::EnvironmentName>,
    /// When it last ran in production (it was replaced then), if it ever did.
    pub left_production: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Keep it, and why.
    Keep {
        /// Why.
        reason: String,
    },
    /// Delete it; the rule, in words, goes into the ledger's expiry record.
    Expire {
        /// The rule.
        rule: String,
    },
}

const DAY: i64 = 86_400;

/// Decides.
pub fn decide(f: &Facts, policy: &RetentionPolicy) -> Decision {
    if let Some(env) = &f.runs_in {
        return Decision::Keep {
            reason: format!("{env} runs it"),
        };
    }
    if let Some(left) = f.left_production {
        let until = left.as_second() + i64::from(policy.production_days) * DAY;
        if f.now.as_second() < until {
            return Decision::Keep {
                reason: format!(
                    "it ran in production until {left}; kept {} days after",
                    policy.production_days
                ),
            };
        }
        return Decision::Expire {
            rule: format!(
                "left production {} days ago (production_days: {})",
                (f.now.as_second() - left.as_second()) / DAY,
                policy.production_days
            ),
        };
    }
    let Some(rule) = policy
        .rules
        .iter()
        .find(|r| r.kind == f.kind && r.trust == f.trust)
    else {
        return Decision::Keep {
            reason: format!(
                "no retention rule for {} {} artifacts",
                f.trust.as_str(),
                f.kind.as_str()
            ),
        };
    };
    let age_days = (f.now.as_second() - f.created.as_second()) / DAY;
    if age_days >= i64::from(rule.days) {
        Decision::Expire {
            rule: format!(
                "{}, {}: {} days (it is {age_days} days old)",
                f.kind.as_str(),
                f.trust.as_str(),
                rule.days
            ),
        }
    } else {
        Decision::Keep {
            reason: format!("{age_days} of {} days", rule.days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(days: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + days * DAY).unwrap()
    }

    #[test]
    fn the_rules_as_a_table() {
        let policy: RetentionPolicy =
            yaml_serde::from_str(include_str!("../../policies/retention.yaml")).unwrap();
        let base = Facts {
            kind: ArtifactKind::Image,
            trust: Trust::Untrusted,
            created: t(0),
            runs_in: None,
            left_production: None,
            now: t(10),
        };
        let kind = |d: Decision| match d {
            Decision::Keep { .. } => "keep",
            Decision::Expire { .. } => "expire",
        };
        let cases: Vec<(&str, Facts, &str)> = vec![
            ("untrusted image, 10 of 7 days", base.clone(), "expire"),
            (
                "untrusted image, 3 days",
                Facts {
                    now: t(3),
                    ..base.clone()
                },
                "keep",
            ),
            (
                "trusted image, 10 of 90 days",
                Facts {
                    trust: Trust::Trusted,
                    ..base.clone()
                },
                "keep",
            ),
            (
                "untrusted log, 10 of 30 days",
                Facts {
                    kind: ArtifactKind::Log,
                    ..base.clone()
                },
                "keep",
            ),
            (
                "an environment runs it, however old",
                Facts {
                    runs_in: Some("production".parse().unwrap()),
                    now: t(5000),
                    ..base.clone()
                },
                "keep",
            ),
            (
                "left production 100 days ago",
                Facts {
                    left_production: Some(t(0)),
                    now: t(100),
                    ..base.clone()
                },
                "keep",
            ),
            (
                "left production 400 days ago",
                Facts {
                    left_production: Some(t(0)),
                    now: t(400),
                    ..base.clone()
                },
                "expire",
            ),
        ];
        for (name, f, want) in cases {
            assert_eq!(kind(decide(&f, &policy)), want, "{name}");
        }
        match decide(&base, &policy) {
            Decision::Expire { rule } => {
                assert_eq!(rule, "image, untrusted: 7 days (it is 10 days old)")
            }
            d => panic!("{d:?}"),
        }
    }
}
