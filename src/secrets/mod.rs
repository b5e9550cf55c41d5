//! Secrets, which never appear in errors, logs or `Debug` output: the secrets file (seakeeper's
//! own credentials: YAML outside git, mode 0600, refused otherwise), and the job secrets sealed
//! in the config repo ([`sealed`]) that executors get per job from a [`SecretSource`].
//!
//! ```yaml
//! gerrit:
//!   username: seakeeper
//!   password: the-http-credentials-token
//! registries:
//!   registry.example.org:          # by host[:port]
//!     username: robot
//!     password: token
//! irc:                             # the SASL PLAIN account of IRC notifications
//!   username: seakeeper-bot
//!   password: nickserv-password
//! smtp:                            # the SMTP AUTH account of email notifications
//!   username: ci@example.org
//!   password: smtp-password
//! phabricator:                     # a Conduit API token, for comments on tasks
//!   token: api-abcdefghijklmnopqrstuvwxyz12
//! ```

pub mod sealed;
pub mod source;

pub use sealed::{Opener, SealedError, SecretValue, seal};
pub use source::{FixedSecrets, JobSecrets, SecretSource, mask, refuse_untrusted};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

/// What the secrets file holds.
#[derive(Debug, Default, Deserialize)]
pub struct SecretsFile {
    /// The Gerrit account.
    #[serde(default)]
    pub gerrit: Option<Credentials>,
    /// Registry accounts by `host[:port]`.
    #[serde(default)]
    pub registries: BTreeMap<String, Credentials>,
    /// The IRC account (SASL PLAIN) of IRC notifications.
    #[serde(default)]
    pub irc: Option<Credentials>,
    /// The SMTP account (AUTH PLAIN) of email notifications.
    #[serde(default)]
    pub smtp: Option<Credentials>,
    /// The Conduit API token for Phabricator comments.
    #[serde(default)]
    pub phabricator: Option<ApiToken>,
    /// The token Gerrit's webhooks plugin presents to the web server.
    #[serde(default)]
    pub webhook: Option<WebhookSecret>,
}

/// The shared secret of the Gerrit webhook (`webhook: {token: ...}`), never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSecret {
    token: String,
}

impl WebhookSecret {
    /// A secret from its token.
    pub fn new(token: &str) -> WebhookSecret {
        WebhookSecret {
            token: token.to_owned(),
        }
    }

    /// The token, to be masked in logs.
    pub fn expose(&self) -> &str {
        &self.token
    }

    /// Whether `presented` is the token, compared in time independent of where they differ.
    /// An empty token matches nothing.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), presented.as_bytes());
        if a.is_empty() || a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret { token: <redacted> }")
    }
}

/// An API token (Phabricator's Conduit), never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    token: String,
}

impl ApiToken {
    /// A token from its text.
    pub fn new(token: &str) -> ApiToken {
        ApiToken {
            token: token.to_owned(),
        }
    }

    /// The token, for the one client that sends it.
    pub fn expose(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl SecretsFile {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<SecretsFile, SecretsError> {
        load_file(path)
    }
}

/// The account seakeeper uses for Gerrit's REST API and authenticated git over HTTP.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// The Gerrit user name.
    pub username: String,
    /// The HTTP password ("HTTP credentials" token), never printed.
    password: String,
}

impl Credentials {
    /// Credentials from a user name and password.
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// `(username, password)`, for clients that build their own headers.
    pub fn pair(&self) -> (String, String) {
        (self.username.clone(), self.password.clone())
    }

    /// The password, for the clients that send it themselves (SASL, SMTP AUTH).
    pub fn password(&self) -> &str {
        &self.password
    }

    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

/// The secrets file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// It could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Other users may read it.
    #[error(
        "{path}: the secrets file is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// Its content is not what seakeeper expects (the message never quotes a value).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, by field and line.
        message: String,
    },
}

/// The secrets file (YAML, outside git, mode 0600); see the module's documentation for
/// every section.
///
/// ```yaml
/// gerrit:
///   username: seakeeper
///   password: the-http-credentials-token
/// ```
pub fn load_file(path: &Path) -> Result<SecretsFile, SecretsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|e| SecretsError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| SecretsError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // Errors name the field and position; yaml_serde never quotes scalar values in them
    // for these types, but be strict anyway and keep only the location part.
    let file: SecretsFile = yaml_serde::from_str(&text).map_err(|e| {
        let location = e
            .location()
            .map(|l| format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or_default();
        let what = if e.to_string().contains("missing field `password`") {
            "missing field `password`".to_owned()
        } else if e.to_string().contains("missing field `username`") {
            "missing field `username`".to_owned()
        } else if e.to_string().contains("missing field `token`") {
            "missing field `token`".to_owned()
        } else if e.to_string().contains("unknown field") {
            "unknown field (expected `username` and `password`, or `token` under `phabricator:`)"
                .to_owned()
        } else {
            "not a YAML mapping with `gerrit:`, `registries:`, `irc:`, `smtp:` and \
             `phabricator:` sections"
                .to_owned()
        };
        SecretsError::Invalid {
            path: path.to_owned(),
            message: format!("{what}{location}"),
        }
    })?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    fn load(text: &str) -> Result<super::SecretsFile, super::SecretsError> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("secrets.yaml");
        std::fs::write(&path, text).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        super::load_file(&path)
    }

    #[test]
    fn notification_accounts_are_read_and_never_printed() {
        let s = load(
            "irc:\n  username: bot\n  password: irc-pass\nsmtp:\n  username: ci@example.org\n  \
             password: smtp-pass\nphabricator:\n  token: api-secret-token\n",
        )
        .expect("a valid file");
        let irc = s.irc.as_ref().expect("irc");
        assert_eq!((irc.username.as_str(), irc.password()), ("bot", "irc-pass"));
        assert_eq!(s.smtp.as_ref().map(|c| c.password()), Some("smtp-pass"));
        assert_eq!(
            s.phabricator.as_ref().map(|t| t.expose()),
            Some("api-secret-token")
        );
        let shown = format!("{s:?}");
        for secret in ["irc-pass", "smtp-pass", "api-secret-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let e = load("phabricator:\n  token: api-x\n  tokn: api-y\n")
            .expect_err("an unknown field")
            .to_string();
        assert!(e.contains("unknown field") && !e.contains("api-"), "{e}");
        let e = load("phabricator: {}\n").expect_err("no token").to_string();
        assert!(e.contains("missing field `token`"), "{e}");
    }
}
