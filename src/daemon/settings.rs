//! The local settings file (`/etc/seakeeper/settings.yaml`): the few things seakeeper must
//! know before it can read the config repo. Everything else comes from the config repo.
//!
//! ```yaml
//! state_dir: /var/lib/seakeeper        # mirrors, jobs, stores and the ledger live here
//! ledger_dir: /var/lib/seakeeper/ledger # optional
//! signing_key: /etc/seakeeper/ledger-key.asc
//! secrets: /etc/seakeeper/secrets.yaml # optional: Gerrit and registry accounts (mode 0600)
//! config_repo: https://gerrit.example.org/seakeeper-config   # or file:///srv/config.git
//! config_branch: main                  # optional, main by default
//! config_project: seakeeper-config     # optional: its Gerrit project, whose changes are checked
//! sandbox: auto                        # local executor: auto (bubblewrap), bubblewrap, none
//! trusted_certs: [/etc/seakeeper/old-server.asc]  # optional: trusted with every role
//! ```
//!
//! Relative paths are relative to the settings file's directory.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::ConfigError;

/// How the local executor isolates jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxSetting {
    /// bubblewrap when installed; untrusted jobs are refused without it.
    #[default]
    Auto,
    /// Always bubblewrap.
    Bubblewrap,
    /// No isolation (only for your own code on your own machine).
    None,
}

/// The settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where seakeeper keeps its state.
    pub state_dir: PathBuf,
    /// The ledger repository (default: `<state_dir>/ledger`).
    #[serde(default)]
    pub ledger_dir: Option<PathBuf>,
    /// The OpenPGP secret key that signs the ledger.
    pub signing_key: PathBuf,
    /// The secrets file.
    #[serde(default)]
    pub secrets: Option<PathBuf>,
    /// The config repo's URL (`https://`, `file://` or a path).
    pub config_repo: String,
    /// Its branch.
    #[serde(default = "main")]
    pub config_branch: String,
    /// Its Gerrit project, if it is reviewed in Gerrit.
    #[serde(default)]
    pub config_project: Option<crate::model::ProjectName>,
    /// The local executor's isolation.
    #[serde(default)]
    pub sandbox: SandboxSetting,
    /// Run local jobs with this machine's tools instead of their images (a warning at start):
    /// for a machine without bubblewrap, or for jobs whose images cannot be pulled here.
    #[serde(default)]
    pub host_tools: bool,
    /// Public certs trusted with every role, whatever the config repo's `keys/` says: the
    /// deployment's trust root for adopting a ledger from its remote (for example the previous
    /// server's key after a key change). The server's own key is always trusted.
    #[serde(default)]
    pub trusted_certs: Vec<PathBuf>,
    /// The web server (pages, live logs, `/metrics`, the Gerrit webhook); off when absent.
    #[serde(default)]
    pub web: Option<WebSettings>,
}

/// `web:` in the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// `host:port` to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Where the address actually bound is written (for tests and scripts), if anywhere.
    #[serde(default)]
    pub address_file: Option<PathBuf>,
}

fn main() -> String {
    "main".into()
}

impl Settings {
    /// Reads and checks `path`; errors name the file, line and field.
    // Config errors are data shared with the config loader; boxing would only add noise.
    #[allow(clippy::result_large_err)]
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&file, "", format!("cannot be read: {e}")))?;
        let mut s: Settings = crate::config::parse_yaml(&file, &text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        absolute(&mut s.state_dir);
        absolute(&mut s.signing_key);
        if let Some(p) = &mut s.ledger_dir {
            absolute(p);
        }
        if let Some(p) = &mut s.secrets {
            absolute(p);
        }
        for p in &mut s.trusted_certs {
            absolute(p);
        }
        if let Some(w) = &mut s.web {
            if w.listen.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::new(
                    &file,
                    "web.listen",
                    format!("{:?} is not an address like 127.0.0.1:8080", w.listen),
                )
                .located(&text, "listen"));
            }
            if let Some(p) = &mut w.address_file {
                absolute(p);
            }
        }
        if !(s.config_repo.starts_with("https://")
            || s.config_repo.starts_with("http://")
            || s.config_repo.starts_with("file://")
            || s.config_repo.starts_with('/'))
        {
            let rel = base.join(&s.config_repo);
            if rel.exists() {
                s.config_repo = rel.display().to_string();
            } else {
                return Err(ConfigError::new(
                    &file,
                    "config_repo",
                    format!(
                        "{:?} is not an https://, http:// or file:// URL, nor a path that exists",
                        s.config_repo
                    ),
                )
                .located(&text, "config_repo"));
            }
        }
        if s.config_branch.is_empty() || s.config_branch.starts_with('-') {
            return Err(
                ConfigError::new(&file, "config_branch", "is not a branch name")
                    .located(&text, "config_branch"),
            );
        }
        Ok(s)
    }

    /// The config repository on this machine: a mirror under the state directory for a remote
    /// URL, else the repository itself.
    pub fn config_repo_path(&self) -> PathBuf {
        if super::is_remote(&self.config_repo) {
            self.state_dir.join("config.git")
        } else {
            PathBuf::from(
                self.config_repo
                    .strip_prefix("file://")
                    .unwrap_or(&self.config_repo),
            )
        }
    }

    /// The high-water mark of the ledger (outside the ledger repository).
    pub fn ledger_mark(&self) -> PathBuf {
        self.state_dir.join("ledger.mark")
    }

    /// The ledger repository.
    pub fn ledger_dir(&self) -> PathBuf {
        self.ledger_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("ledger"))
    }
}
