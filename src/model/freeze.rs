//! What a freeze holds: the one place where a freeze's scope strings are read and matched.
//! A scope that cannot be read holds everything (fail closed).

use super::{EnvironmentName, ProjectName};

/// One scope of a freeze file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FreezeScope {
    /// Everything: promotions to every environment and every merge.
    All,
    /// Promotions into one environment.
    Promote(EnvironmentName),
    /// Landing changes of projects matching a glob (`*` matches any run of characters), on
    /// branches matching a second glob (every branch when there is none).
    Merge {
        /// The project glob.
        project: String,
        /// The branch glob (short names: `main`, `REL1_*`).
        branch: Option<String>,
    },
}

/// What a freeze may hold.
#[derive(Debug, Clone, Copy)]
pub enum Held<'a> {
    /// A promotion (or a new image entering) into an environment.
    Promotion(&'a EnvironmentName),
    /// A change of a project landing on a branch (short name: `main`).
    Merge(&'a ProjectName, &'a str),
}

impl FreezeScope {
    /// Reads one scope string: `all`, `promote:<environment>`,
    /// `merge:<project glob>[:<branch glob>]`.
    pub fn parse(s: &str) -> Result<FreezeScope, String> {
        let s = s.trim();
        if s == "all" {
            return Ok(FreezeScope::All);
        }
        if let Some(env) = s.strip_prefix("promote:") {
            return env
                .parse()
                .map(FreezeScope::Promote)
                .map_err(|e| format!("`{s}`: {e}"));
        }
        if let Some(rest) = s.strip_prefix("merge:") {
            // Project names hold no `:`; a second one starts the branch glob.
            let (project, branch) = match rest.split_once(':') {
                Some((p, b)) => (p, Some(b)),
                None => (rest, None),
            };
            if project.is_empty() {
                return Err(format!("`{s}` names no project glob"));
            }
            if branch.is_some_and(|b| b.is_empty() || b.contains(':')) {
                return Err(format!(
                    "`{s}`: the branch glob after the second `:` is empty or holds a `:`"
                ));
            }
            return Ok(FreezeScope::Merge {
                project: project.to_owned(),
                branch: branch.map(str::to_owned),
            });
        }
        Err(format!(
            "`{s}` is not `all`, `promote:<environment>` or `merge:<project glob>[:<branch glob>]`"
        ))
    }

    /// Reads one scope string; one that cannot be read holds everything.
    pub fn parse_fail_closed(s: &str) -> FreezeScope {
        FreezeScope::parse(s).unwrap_or(FreezeScope::All)
    }

    /// Whether this scope holds `what`.
    pub fn holds(&self, what: Held<'_>) -> bool {
        match (self, what) {
            (FreezeScope::All, _) => true,
            (FreezeScope::Promote(e), Held::Promotion(env)) => e == env,
            (FreezeScope::Merge { project: p, branch }, Held::Merge(project, b)) => {
                glob_matches(p, project.as_str())
                    && branch.as_deref().is_none_or(|g| glob_matches(g, b))
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for FreezeScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FreezeScope::All => f.write_str("all"),
            FreezeScope::Promote(e) => write!(f, "promote:{e}"),
            FreezeScope::Merge {
                project,
                branch: None,
            } => write!(f, "merge:{project}"),
            FreezeScope::Merge {
                project,
                branch: Some(b),
            } => write!(f, "merge:{project}:{b}"),
        }
    }
}

/// Whether a project or branch name matches a glob (`*` matches any run of characters,
/// slashes included; see [`super::glob`]).
pub fn glob_matches(glob: &str, name: &str) -> bool {
    super::glob::matches(glob, name, super::glob::Mode::Names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_in_one_place_and_unreadable_ones_hold_everything() {
        let prod: EnvironmentName = "production".parse().unwrap();
        let staging: EnvironmentName = "staging".parse().unwrap();
        let cite: ProjectName = "mediawiki/extensions/Cite".parse().unwrap();
        let s = FreezeScope::parse("promote:production").unwrap();
        assert!(s.holds(Held::Promotion(&prod)));
        assert!(!s.holds(Held::Promotion(&staging)));
        assert!(!s.holds(Held::Merge(&cite, "master")));
        let m = FreezeScope::parse("merge:mediawiki/*").unwrap();
        assert!(m.holds(Held::Merge(&cite, "master")));
        let rel = FreezeScope::parse("merge:mediawiki/*:REL1_*").unwrap();
        assert!(rel.holds(Held::Merge(&cite, "REL1_43")));
        assert!(!rel.holds(Held::Merge(&cite, "master")));
        assert_eq!(rel.to_string(), "merge:mediawiki/*:REL1_*");
        assert!(!m.holds(Held::Promotion(&prod)));
        for bad in [
            "promote-production",
            "promote:",
            "everything",
            "merge:",
            "merge:a:",
            "merge::main",
        ] {
            assert!(FreezeScope::parse(bad).is_err(), "{bad}");
            assert_eq!(FreezeScope::parse_fail_closed(bad), FreezeScope::All);
        }
        assert!(FreezeScope::All.holds(Held::Promotion(&staging)));
        assert_eq!(s.to_string(), "promote:production");
    }
}
