//! Notifications: events the reconcile pass learnt (a post-merge build failed, a freeze
//! started, a digest was promoted ...) told to IRC channels, email recipients and Phabricator
//! tasks, as `notifications.yaml` routes them.
//!
//! Routing ([`deliveries`]) is pure. Sending happens on one thread of the [`Notifier`]: a
//! bounded queue, retries with exponential backoff, deadlines on every network operation, and
//! the keys of delivered messages kept under the state directory so that a restart does not
//! send them again. Nothing here may block the caller: [`Notifier::submit`] only queues.
//!
//! This module knows nothing of the World or of facts (the daemon maps those to [`Event`]s);
//! it must not print a credential.

mod irc;
mod net;
mod outbox;
mod phabricator;
mod smtp;

use std::collections::BTreeSet;

pub use crate::config::files::EventKind;
use crate::config::files::{NotificationsFile, NotifyTarget};
use crate::model::{BuildId, CommitId, Digest, EnvironmentName, ProjectName, glob_matches};
pub use outbox::{KindStats, Notifier, NotifyOptions, NotifyStats, Secrets, TargetStatus};

/// Links to seakeeper's pages, from `public_url` in `seakeeper.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    base: String,
}

impl Links {
    /// Links under `public_url`.
    pub fn new(public_url: &str) -> Links {
        Links {
            base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A build's page.
    pub fn build(&self, id: &BuildId) -> String {
        format!("{}/builds/{id}", self.base)
    }

    /// A ledger commit's page.
    pub fn ledger(&self, commit: &CommitId) -> String {
        format!("{}/ledger/{commit}", self.base)
    }

    /// A log, by its digest.
    pub fn log(&self, digest: &Digest) -> String {
        format!("{}/logs/{digest}", self.base)
    }

    /// An artifact's trace, by its digest.
    pub fn trace(&self, digest: &Digest) -> String {
        format!("{}/trace/{digest}", self.base)
    }
}

/// Something to tell people about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Derived from its content (`build-failed:<build id>`, `freeze-started:<name>:<config
    /// commit>` ...): the same event learnt twice has the same key, and is told once.
    pub key: String,
    /// The project it is about, if any (routes filter on it).
    pub project: Option<ProjectName>,
    /// The environment a promotion event is about.
    pub environment: Option<EnvironmentName>,
    /// One line saying what happened, without links.
    pub summary: String,
    /// More lines, for email and Phabricator.
    pub details: Vec<String>,
    /// Links, the most useful first, as (what, URL).
    pub links: Vec<(String, String)>,
    /// Phabricator tasks to comment on (a freeze's ticket, a change's `Bug:` footers).
    pub tasks: Vec<u32>,
}

impl Event {
    /// The one IRC line: the summary and the first link.
    pub fn line(&self) -> String {
        let mut line = one_line(&self.summary);
        if let Some((_, url)) = self.links.first() {
            line.push_str(" - ");
            line.push_str(url);
        }
        line
    }

    /// The email (subject, body) and the Phabricator comment's text share this body.
    pub fn body(&self) -> String {
        let mut b = format!("{}\n", self.summary.trim());
        if !self.details.is_empty() {
            b.push('\n');
            for d in &self.details {
                b.push_str(d.trim_end());
                b.push('\n');
            }
        }
        if !self.links.is_empty() {
            b.push('\n');
            for (what, url) in &self.links {
                b.push_str(&format!("{what}: {url}\n"));
            }
        }
        b
    }
}

/// `T123` -> 123: a Phabricator task id (a freeze's `ticket`, a `Bug:` footer's value).
pub fn task_id(text: &str) -> Option<u32> {
    let n = text.trim().strip_prefix('T')?;
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok().filter(|n| *n > 0)
}

/// The tasks named by `Bug: T<n>` footers in the last paragraph of a commit message.
pub fn bug_footers(message: &str) -> Vec<u32> {
    let last = message.trim_end().rsplit("\n\n").next().unwrap_or_default();
    let mut tasks = Vec::new();
    for line in last.lines() {
        if let Some((key, value)) = line.split_once(':')
            && key.trim().eq_ignore_ascii_case("bug")
            && let Some(t) = task_id(value)
            && !tasks.contains(&t)
        {
            tasks.push(t);
        }
    }
    tasks
}

/// The names of the targets `event` goes to, each once, in the order routes name them.
pub fn targets_for<'f>(file: &'f NotificationsFile, event: &Event) -> Vec<&'f str> {
    let mut out: Vec<&str> = Vec::new();
    for r in &file.routes {
        if !r.events.contains(&event.kind) {
            continue;
        }
        if let Some(p) = &event.project
            && !r.projects.is_empty()
            && !r.projects.iter().any(|g| glob_matches(g, p.as_str()))
        {
            continue;
        }
        if event.kind.is_promotion()
            && let Some(e) = &event.environment
            && !r.environments.is_empty()
            && !r.environments.iter().any(|x| x == e.as_str())
        {
            continue;
        }
        for t in &r.targets {
            if !out.contains(&t.as_str()) {
                out.push(t);
            }
        }
    }
    out
}

/// What one delivery says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A line in a channel.
    Irc(String),
    /// An email.
    Email {
        /// The subject.
        subject: String,
        /// The plain-text body.
        body: String,
    },
    /// A comment on a task.
    Comment {
        /// The task (`T<n>`).
        task: u32,
        /// The comment.
        text: String,
    },
}

/// One message to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The event's key, the target's name (and the task): sent once.
    pub key: String,
    /// The target's name in `notifications.yaml`.
    pub target: String,
    /// Where and how.
    pub spec: NotifyTarget,
    /// What.
    pub message: Message,
}

impl Delivery {
    /// `irc`, `email` or `phabricator`.
    pub fn kind(&self) -> &'static str {
        target_kind(&self.spec)
    }
}

/// `irc`, `email` or `phabricator`.
pub fn target_kind(t: &NotifyTarget) -> &'static str {
    if t.irc.is_some() {
        "irc"
    } else if t.email.is_some() {
        "email"
    } else {
        "phabricator"
    }
}

/// Every delivery `events` make under `file`: one per (event, target), and for a Phabricator
/// target one per task the event names (none when it names none).
pub fn deliveries(file: &NotificationsFile, events: &[Event]) -> Vec<Delivery> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for e in events {
        for name in targets_for(file, e) {
            let Some(spec) = file.targets.get(name) else {
                continue;
            };
            let mut push = |key: String, message: Message| {
                if seen.insert(key.clone()) {
                    out.push(Delivery {
                        key,
                        target: name.to_owned(),
                        spec: spec.clone(),
                        message,
                    });
                }
            };
            if spec.irc.is_some() {
                push(format!("{}|{name}", e.key), Message::Irc(e.line()));
            } else if spec.email.is_some() {
                let subject = format!("[seakeeper] {}", truncate(&one_line(&e.summary), 150));
                push(
                    format!("{}|{name}", e.key),
                    Message::Email {
                        subject,
                        body: e.body(),
                    },
                );
            } else if spec.phabricator.is_some() {
                for t in &e.tasks {
                    push(
                        format!("{}|{name}|T{t}", e.key),
                        Message::Comment {
                            task: *t,
                            text: e.body(),
                        },
                    );
                }
            }
        }
    }
    out
}

/// `text` on one line: control characters (line breaks above all, which would end an IRC
/// command or an email header) become spaces.
pub fn one_line(text: &str) -> String {
    text.trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed.
    #[error("TLS with {host}: {message}")]
    Tls {
        /// The host.
        host: String,
        /// What the TLS library said.
        message: String,
    },
    /// Reading or writing failed (a deadline passed, the peer closed).
    #[error("{addr}: {source}")]
    Io {
        /// host:port.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server refused something.
    #[error("{addr} refused {what}: {reply}")]
    Refused {
        /// host:port, or the URL.
        addr: String,
        /// What was asked.
        what: String,
        /// Its reply.
        reply: String,
    },
    /// The delivery cannot be made as configured (a missing account, credentials in clear).
    #[error("{0}")]
    Setup(String),
}

impl SendError {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            SendError::Connect { .. } => "connect",
            SendError::Tls { .. } => "tls",
            SendError::Io { .. } => "io",
            SendError::Refused { .. } => "refused",
            SendError::Setup(_) => "setup",
        }
    }
}

#[cfg(test)]
mod tests;
