//! Why an action could not be carried out, with the client's error as its source: whether
//! trying again can help ([`Error::is_transient`]) and a short stable label per kind (the label
//! metrics and `status` use).

use crate::executor::ExecError;
use crate::gerrit::RestError;
use crate::ledger::{LedgerError, RecordError};
use crate::registry::assemble::AssembleError;
use crate::registry::copy::CopyError;
use crate::registry::distribution::RegistryError;
use crate::signing::SigningError;

/// An action failed. `what` says what was being done, in the words of the report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A record was not written to the ledger.
    #[error("{what}: {source}")]
    Record {
        /// What was being recorded.
        what: String,
        /// The writer's answer.
        #[source]
        source: RecordError,
    },
    /// The ledger could not be read.
    #[error("{what}: {source}")]
    Ledger {
        /// What was being read.
        what: String,
        /// Why.
        #[source]
        source: LedgerError,
    },
    /// The executor failed (not the job: that is a job state).
    #[error("{what}: {source}")]
    Executor {
        /// What was asked of it.
        what: String,
        /// Its answer.
        #[source]
        source: ExecError,
    },
    /// A registry copy failed.
    #[error("{what}: {source}")]
    Registry {
        /// What was being copied.
        what: String,
        /// Why.
        #[source]
        source: CopyError,
    },
    /// An image could not be assembled from a job's outputs.
    #[error("{what}: {source}")]
    Assemble {
        /// The image.
        what: String,
        /// Why.
        #[source]
        source: AssembleError,
    },
    /// Gerrit's REST API failed or refused.
    #[error("{what}: {source}")]
    Gerrit {
        /// What was asked of it.
        what: String,
        /// Its answer.
        #[source]
        source: RestError,
    },
    /// Signing failed.
    #[error("{what}: {source}")]
    Signing {
        /// What was being signed.
        what: String,
        /// Why.
        #[source]
        source: SigningError,
    },
    /// A file of the state directory or the store could not be read or written.
    #[error("{what}: {source}")]
    Io {
        /// The file, or what was being done.
        what: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A state file of this server holds what cannot be read: a person must repair or remove
    /// it (nothing is decided on a guess).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The config asks for something that cannot be done (an image with no environment to go
    /// to, a registry not in `seakeeper.yaml`): a person must change it.
    #[error("{0}")]
    Config(String),
    /// git failed on a project's repository (a fetch, a merge, a push the server refused).
    #[error("{what}: {message}")]
    Git {
        /// What was being done.
        what: String,
        /// What git said.
        message: String,
        /// Whether trying again may succeed.
        transient: bool,
    },
}

impl Error {
    /// An I/O error, with what was being done.
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Error {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }

    /// A failure reading the ledger, with what was being read.
    pub fn ledger(what: impl std::fmt::Display) -> impl FnOnce(LedgerError) -> Error {
        let what = what.to_string();
        move |source| Error::Ledger { what, source }
    }

    /// A registry's failure, with what was being done.
    pub fn registry(what: impl std::fmt::Display) -> impl FnOnce(CopyError) -> Error {
        let what = what.to_string();
        move |source| Error::Registry { what, source }
    }

    /// Whether trying the same action again later can succeed (a server down, a disk briefly
    /// full), as opposed to an answer that will not change (a refused record, an invalid spec,
    /// a 4xx).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Record { source, .. } => matches!(source, RecordError::Ledger(_)),
            Error::Ledger { source, .. } => !matches!(
                source,
                LedgerError::Corrupt(_) | LedgerError::KeyNotAllowed { .. }
            ),
            Error::Executor { source, .. } => matches!(source, ExecError::Backend(_)),
            Error::Registry { source, .. } => match source {
                CopyError::Registry(r) => registry_transient(r),
                CopyError::Store(_) => true,
                CopyError::Invalid(_) => false,
            },
            Error::Assemble { source, .. } => matches!(source, AssembleError::Store(_)),
            Error::Gerrit { source, .. } => gerrit_transient(source),
            Error::Signing { .. } | Error::Config(_) | Error::Corrupt { .. } => false,
            Error::Io { .. } => true,
            Error::Git { transient, .. } => *transient,
        }
    }

    /// A short, stable name of the kind of failure (for metrics and `status`).
    pub fn label(&self) -> &'static str {
        match self {
            Error::Record { .. } => "ledger-write",
            Error::Ledger { .. } => "ledger-read",
            Error::Executor { .. } => "executor",
            Error::Registry { .. } => "registry",
            Error::Assemble { .. } => "image-assembly",
            Error::Gerrit { .. } => "gerrit",
            Error::Signing { .. } => "signing",
            Error::Io { .. } => "io",
            Error::Config(_) => "config",
            Error::Corrupt { .. } => "state",
            Error::Git { .. } => "git",
        }
    }
}

/// Whether a registry's failure may pass: no answer, or a 5xx, 408 or 429.
fn registry_transient(e: &RegistryError) -> bool {
    match e {
        RegistryError::Transport { .. } => true,
        RegistryError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        RegistryError::Protocol { .. } | RegistryError::Config(_) => false,
    }
}

/// Whether Gerrit's failure may pass: no answer, or anything but a final 4xx (see
/// [`final_refusal`]).
fn gerrit_transient(e: &RestError) -> bool {
    match e {
        RestError::Http(_) => true,
        RestError::Status { .. } => !final_refusal(e),
        RestError::Decode { .. } => false,
    }
}

/// Whether Gerrit's answer is final: a 4xx other than 408 (timeout) and 429 (slow down).
pub fn final_refusal(e: &RestError) -> bool {
    e.status()
        .is_some_and(|s| (400..500).contains(&s) && s != 408 && s != 429)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_and_permanent_failures_are_told_apart() {
        let gerrit = |status: u16| Error::Gerrit {
            what: "posting".into(),
            source: RestError::Status {
                method: "POST",
                path: "/changes/1/revisions/x/review".into(),
                status,
                text: String::new(),
            },
        };
        assert!(gerrit(503).is_transient());
        assert!(gerrit(429).is_transient());
        assert!(!gerrit(404).is_transient());
        assert!(!gerrit(409).is_transient());
        let record = |source| Error::Record {
            what: "recording".into(),
            source,
        };
        assert!(record(RecordError::Ledger("disk full".into())).is_transient());
        assert!(
            !record(RecordError::Conflict {
                path: "builds/x".into(),
                message: "differs".into()
            })
            .is_transient()
        );
        let registry = |source| Error::Registry {
            what: "copying".into(),
            source: CopyError::Registry(source),
        };
        assert!(
            registry(RegistryError::Transport {
                method: "GET",
                url: "http://r/v2/".into(),
                message: "timed out".into()
            })
            .is_transient()
        );
        assert!(
            !registry(RegistryError::Status {
                method: "PUT",
                url: "http://r/v2/x/manifests/y".into(),
                status: 400,
                body: "MANIFEST_INVALID".into()
            })
            .is_transient()
        );
        assert!(!Error::Config("no environment".into()).is_transient());
        assert_eq!(gerrit(500).label(), "gerrit");
        assert_eq!(Error::Config(String::new()).label(), "config");
    }
}
