//! The checks of `notifications.yaml` that its types cannot express: a target is exactly one
//! kind, routes name declared targets, known environments and globs that match a project,
//! addresses look like addresses. No I/O: a CA certificate is checked to be PEM, not opened.

use std::collections::BTreeMap;

use super::ConfigError;
use super::files::{NotificationsFile, NotifyTarget, ProjectFile};
use crate::model::{ProjectName, glob_matches};

/// The file's path in the config repo.
pub const PATH: &str = "notifications.yaml";

/// What the loaders before this one learnt, to check references against (`None`: that file
/// is broken, so references to it are not checked).
pub struct Known<'a> {
    /// The environment names.
    pub environments: Option<&'a [String]>,
    /// The projects.
    pub projects: Option<&'a BTreeMap<ProjectName, ProjectFile>>,
}

/// Errors found so far, located in the file's text.
struct Sink<'t> {
    text: &'t str,
    errors: Vec<ConfigError>,
}

impl Sink<'_> {
    fn err(&mut self, field: String, message: String, needle: &str) {
        let e = ConfigError::new(PATH, field, message).located(self.text, needle);
        self.errors.push(e);
    }
}

/// Every error of a parsed `notifications.yaml` (`text` is its text, for positions).
pub fn check(f: &NotificationsFile, text: &str, known: &Known<'_>) -> Vec<ConfigError> {
    let mut s = Sink {
        text,
        errors: Vec::new(),
    };
    for (name, t) in &f.targets {
        let field = format!("targets.{name}");
        let kinds = [t.irc.is_some(), t.email.is_some(), t.phabricator.is_some()]
            .iter()
            .filter(|k| **k)
            .count();
        if kinds != 1 {
            s.err(
                field.clone(),
                "must be exactly one of `irc`, `email`, `phabricator`".into(),
                &format!("{name}:"),
            );
        }
        check_target(t, &field, &mut s);
    }
    for (i, r) in f.routes.iter().enumerate() {
        let field = format!("routes[{i}]");
        if r.events.is_empty() {
            s.err(format!("{field}.events"), "names no event".into(), "events");
        }
        if r.targets.is_empty() {
            s.err(
                format!("{field}.targets"),
                "names no target".into(),
                "targets",
            );
        }
        for (j, t) in r.targets.iter().enumerate() {
            if !f.targets.contains_key(t) {
                let e = ConfigError::new(
                    PATH,
                    format!("{field}.targets[{j}]"),
                    format!("unknown target `{t}`"),
                )
                .located(text, t)
                .suggest(t, f.targets.keys().map(String::as_str));
                s.errors.push(e);
            }
        }
        if let Some(projects) = known.projects {
            for (j, g) in r.projects.iter().enumerate() {
                if !projects.keys().any(|p| glob_matches(g, p.as_str())) {
                    s.err(
                        format!("{field}.projects[{j}]"),
                        format!("`{g}` matches no project"),
                        g,
                    );
                }
            }
        }
        if let Some(envs) = known.environments {
            for (j, e) in r.environments.iter().enumerate() {
                if !envs.iter().any(|x| x == e) {
                    let err = ConfigError::new(
                        PATH,
                        format!("{field}.environments[{j}]"),
                        format!("unknown environment `{e}`"),
                    )
                    .located(text, e)
                    .suggest(e, envs.iter().map(String::as_str));
                    s.errors.push(err);
                }
            }
        }
        if !r.environments.is_empty() && !r.events.iter().any(|e| e.is_promotion()) {
            s.err(
                format!("{field}.environments"),
                "only promotion events (`promoted`, `promotion-held`) are about an environment"
                    .into(),
                "environments",
            );
        }
    }
    s.errors
}

fn check_target(t: &NotifyTarget, field: &str, s: &mut Sink<'_>) {
    if let Some(irc) = &t.irc {
        let f = format!("{field}.irc");
        if irc.server.trim().is_empty() || irc.server.contains(char::is_whitespace) {
            s.err(
                format!("{f}.server"),
                "must be a host name".into(),
                "server",
            );
        }
        if !(irc.channel.starts_with('#') || irc.channel.starts_with('&'))
            || irc.channel.contains([' ', ',', '\x07'])
        {
            s.err(
                format!("{f}.channel"),
                "must be a channel name starting with `#` or `&`, without spaces or commas".into(),
                "channel",
            );
        }
        let nick_ok = !irc.nick.is_empty()
            && irc.nick.len() <= 30
            && irc
                .nick
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_[]{}\\|^`".contains(c))
            && !irc
                .nick
                .starts_with(|c: char| c.is_ascii_digit() || c == '-');
        if !nick_ok {
            s.err(
                format!("{f}.nick"),
                "must be an IRC nick: letters, digits and -_[]{}\\|^`, not starting with a digit"
                    .into(),
                "nick",
            );
        }
        check_pem(irc.ca_cert.as_deref(), &format!("{f}.ca_cert"), s);
    }
    if let Some(mail) = &t.email {
        let f = format!("{field}.email");
        if mail.server.trim().is_empty() || mail.server.contains(char::is_whitespace) {
            s.err(
                format!("{f}.server"),
                "must be a host name".into(),
                "server",
            );
        }
        if !is_address(&mail.from) {
            s.err(
                format!("{f}.from"),
                format!("`{}` is not an email address", mail.from),
                "from",
            );
        }
        if mail.to.is_empty() {
            s.err(format!("{f}.to"), "names no recipient".into(), "to");
        }
        for (i, a) in mail.to.iter().enumerate() {
            if !is_address(a) {
                s.err(
                    format!("{f}.to[{i}]"),
                    format!("`{a}` is not an email address"),
                    a,
                );
            }
        }
        check_pem(mail.ca_cert.as_deref(), &format!("{f}.ca_cert"), s);
    }
    if let Some(phab) = &t.phabricator {
        let u = phab.url.trim_end_matches('/');
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.contains('@')) {
            s.err(
                format!("{field}.phabricator.url"),
                "expected an http:// or https:// URL without credentials (the API token goes in \
                 the secrets file)"
                    .into(),
                "url",
            );
        }
    }
}

fn check_pem(pem: Option<&str>, field: &str, s: &mut Sink<'_>) {
    if let Some(p) = pem
        && !(p.contains("-----BEGIN CERTIFICATE-----") && p.contains("-----END CERTIFICATE-----"))
    {
        s.err(
            field.to_owned(),
            "must be a PEM certificate (-----BEGIN CERTIFICATE----- ...)".into(),
            "ca_cert",
        );
    }
}

/// A bare `local@domain` (no display name, no spaces, no angle brackets or line breaks, which
/// would let a value forge SMTP commands or headers).
pub fn is_address(a: &str) -> bool {
    let Some((local, domain)) = a.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && !domain.is_empty()
        && a.len() <= 254
        && !a
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
}
