//! What the pass learnt, told to people: apply's facts mapped to notification
//! [`Event`]s ([`events`], pure, tested as a table) and handed to the [`Notifier`], which
//! sends them off the loop. Called where `settle` absorbs apply's facts (a fact read back from
//! the ledger after a restart is not news, and is not told), and where the config observer
//! learns that a new HEAD is invalid.
//!
//! Nothing here waits for the network; reading a commit message for `Bug:` footers reads
//! the project's local repository (or mirror) and fails soft.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::RwLock;

use super::{Daemon, Settings};
use crate::config::Layout;
use crate::git::mirror::Sources;
use crate::model::record::BuildCause;
use crate::model::{BuildStatus, CommitId, FreezeName, FreezeState, PipelineKind, ProjectName};
use crate::notify::{self, Event, EventKind, Links, Notifier, NotifyOptions, NotifyStats};
use crate::reconcile::{Action, Fact, World};

/// The daemon's notifier (started when the first delivery is due) and what it remembers.
pub(super) struct Notifications {
    /// Where delivered keys are kept.
    state_dir: PathBuf,
    /// The secrets file, read when the notifier starts.
    secrets: Option<PathBuf>,
    /// The sending thread, once there was something to send.
    notifier: Option<Notifier>,
    /// Freezes' tickets as the layouts named them: a lifted freeze's file is gone from the
    /// layout that lifts it.
    tickets: BTreeMap<FreezeName, String>,
}

impl Notifications {
    pub(super) fn new(settings: &Settings) -> Notifications {
        Notifications {
            state_dir: settings.state_dir.clone(),
            secrets: settings.secrets.clone(),
            notifier: None,
            tickets: BTreeMap::new(),
        }
    }

    /// Tells what applying `action` taught (`facts`, not yet absorbed into `world`), or what
    /// an observation taught (`action` is `None`).
    pub(super) fn absorb(
        &mut self,
        action: Option<&Action>,
        facts: &[Fact],
        world: &World,
        layout: &Layout,
        sources: &RwLock<Sources>,
    ) {
        for (name, f) in &layout.freezes {
            if let Some(t) = &f.ticket {
                self.tickets.insert(name.clone(), t.clone());
            }
        }
        if layout.notifications.routes.is_empty() {
            return;
        }
        let message = |p: &ProjectName, c: &CommitId| commit_message(sources, p, c);
        let events = events(action, facts, world, layout, &self.tickets, &message);
        let deliveries = notify::deliveries(&layout.notifications, &events);
        if deliveries.is_empty() {
            return;
        }
        let notifier = self.notifier.get_or_insert_with(|| {
            let secrets = match &self.secrets {
                None => notify::Secrets::default(),
                Some(path) => match crate::secrets::SecretsFile::load(path) {
                    Ok(s) => notify::Secrets {
                        irc: s.irc,
                        smtp: s.smtp,
                        phabricator: s.phabricator,
                    },
                    Err(e) => {
                        tracing::warn!("notifications go without accounts: {e}");
                        notify::Secrets::default()
                    }
                },
            };
            Notifier::start(NotifyOptions::new(&self.state_dir, secrets))
        });
        notifier.submit(deliveries);
    }

    /// Gives queued deliveries one attempt before the process exits (`reconcile --once`
    /// would otherwise end before its notifications are sent).
    pub(super) fn flush(&self) {
        if let Some(n) = &self.notifier
            && !n.flush(std::time::Duration::from_secs(15))
        {
            tracing::warn!("exiting with notifications not yet attempted");
        }
    }
}

impl Daemon {
    /// Notification counters by target kind (all zero before anything was sent).
    pub fn notify_stats(&self) -> NotifyStats {
        self.notifications
            .notifier
            .as_ref()
            .map(Notifier::stats)
            .unwrap_or_default()
    }

    /// Each notification target's state, for `status`.
    pub fn notify_status(&self) -> Vec<notify::TargetStatus> {
        self.notifications
            .notifier
            .as_ref()
            .map(Notifier::status)
            .unwrap_or_default()
    }
}

/// The message of `commit` in `project`'s local repository (or mirror), if it is there.
fn commit_message(
    sources: &RwLock<Sources>,
    project: &ProjectName,
    commit: &CommitId,
) -> Option<String> {
    let path = sources.read().ok()?.path(project);
    let found = (|| {
        let repo = gix::open_opts(&path, gix::open::Options::isolated()).ok()?;
        let id = gix::ObjectId::from_hex(commit.as_str().as_bytes()).ok()?;
        let (kind, bytes) = crate::git::read_object(&repo, &id).ok()??;
        if kind != gix::object::Kind::Commit {
            return None;
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        text.split_once("\n\n").map(|(_, m)| m.to_owned())
    })();
    if found.is_none() {
        tracing::info!(
            "commit {commit} of {project} is not in {}: no Bug: footers read",
            path.display()
        );
    }
    found
}

fn short(c: &CommitId) -> &str {
    &c.as_str()[..12]
}

/// The events that applying `action` (or an observation, `None`) makes known through `facts`
/// (read against the World before it absorbs them), and a promotion that `action` holds by a
/// freeze. `message` gives a commit's message, for `Bug:` footers.
pub(super) fn events(
    action: Option<&Action>,
    facts: &[Fact],
    world: &World,
    layout: &Layout,
    tickets: &BTreeMap<FreezeName, String>,
    message: &dyn Fn(&ProjectName, &CommitId) -> Option<String>,
) -> Vec<Event> {
    let links = Links::new(&layout.settings.public_url);
    let mut out = Vec::new();
    for f in facts {
        match f {
            Fact::ResultRecorded { result, commit } => {
                let Some(b) = world.builds.get(&result.build_id) else {
                    continue;
                };
                let r = &b.request;
                if !matches!(
                    result.status,
                    BuildStatus::Failure | BuildStatus::Error | BuildStatus::TimedOut
                ) {
                    continue;
                }
                let kind = match r.pipeline {
                    PipelineKind::PostMerge => EventKind::PostMergeFailed,
                    PipelineKind::Periodic => EventKind::PeriodicFailed,
                    PipelineKind::Gate => EventKind::GateFailed,
                    PipelineKind::Check => continue,
                };
                let merged = match &r.cause {
                    Some(BuildCause::Merge { change, patchset }) => Some((*change, *patchset)),
                    _ => None,
                };
                let what = match (r.change.zip(r.patchset).or(merged), &r.cause) {
                    (Some((c, p)), _) => format!("change {c},{p}"),
                    (None, Some(BuildCause::Schedule { name, .. })) => {
                        format!("{} (schedule {name})", r.git_ref)
                    }
                    _ => format!("{} at {}", r.git_ref, short(&r.source_commit)),
                };
                let failed: Vec<String> = result
                    .jobs
                    .iter()
                    .filter(|j| j.status != BuildStatus::Success)
                    .map(|j| format!("{} ({})", j.name, j.status.as_str()))
                    .collect();
                let mut links_out = vec![
                    ("Build".to_owned(), links.build(&r.build_id)),
                    ("Ledger".to_owned(), links.ledger(commit)),
                ];
                if let Some(d) = result
                    .jobs
                    .iter()
                    .filter(|j| j.status != BuildStatus::Success)
                    .find_map(|j| j.log_digest.as_ref())
                {
                    links_out.push(("Log".to_owned(), links.log(d)));
                }
                let tasks = if kind == EventKind::PostMergeFailed {
                    message(&r.project, &r.source_commit)
                        .map(|m| notify::bug_footers(&m))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                out.push(Event {
                    kind,
                    key: format!("build-failed:{}", r.build_id),
                    project: Some(r.project.clone()),
                    environment: None,
                    summary: format!(
                        "{} build of {} {what} {}: {}",
                        r.pipeline,
                        r.project,
                        result.status.as_str(),
                        failed.join(", ")
                    ),
                    details: result
                        .jobs
                        .iter()
                        .map(|j| {
                            format!(
                                "{}: {} in {} s",
                                j.name,
                                j.status.as_str(),
                                j.duration_ms / 1000
                            )
                        })
                        .collect(),
                    links: links_out,
                    tasks,
                });
            }
            Fact::FreezeRecorded(fr) => {
                let (kind, verb) = match fr.state {
                    FreezeState::Active => (EventKind::FreezeStarted, "started"),
                    FreezeState::Lifted => (EventKind::FreezeEnded, "ended"),
                };
                let ticket = layout
                    .freezes
                    .get(&fr.name)
                    .and_then(|f| f.ticket.as_ref())
                    .or_else(|| tickets.get(&fr.name));
                out.push(Event {
                    kind,
                    key: format!("{}:{}:{}", kind.as_str(), fr.name, fr.config_commit),
                    project: None,
                    environment: None,
                    summary: format!(
                        "freeze {} {verb} [{}]: {} (by {}, config {})",
                        fr.name,
                        fr.scope.join(", "),
                        notify::one_line(&fr.reason),
                        fr.author,
                        short(&fr.config_commit)
                    ),
                    details: ticket.map(|t| format!("Ticket: {t}")).into_iter().collect(),
                    links: Vec::new(),
                    tasks: ticket
                        .and_then(|t| notify::task_id(t))
                        .into_iter()
                        .collect(),
                });
            }
            Fact::Promoted {
                environment,
                image,
                digest,
                ..
            } => out.push(Event {
                kind: EventKind::Promoted,
                key: format!("promoted:{environment}:{image}:{digest}"),
                project: project_of(layout, image),
                environment: Some(environment.clone()),
                summary: format!(
                    "{image}@{digest} promoted to {environment} (config {})",
                    short(&world.config.layout_commit)
                ),
                details: Vec::new(),
                links: vec![("Trace".to_owned(), links.trace(digest))],
                tasks: Vec::new(),
            }),
            Fact::RefusalRecorded {
                environment,
                image,
                digest,
                config_commit,
            } => {
                let reason = match action {
                    Some(Action::Refuse { reason, .. }) => {
                        format!(": {}", notify::one_line(reason))
                    }
                    _ => String::new(),
                };
                out.push(Event {
                    kind: EventKind::PromotionHeld,
                    key: format!("promotion-held:{environment}:{image}:{digest}:{config_commit}"),
                    project: project_of(layout, image),
                    environment: Some(environment.clone()),
                    summary: format!(
                        "promotion of {image}@{digest} to {environment} refused (config {}){reason}",
                        short(config_commit)
                    ),
                    details: Vec::new(),
                    links: vec![("Trace".to_owned(), links.trace(digest))],
                    tasks: Vec::new(),
                });
            }
            Fact::ConfigHead { head, errors, .. } if !errors.is_empty() => {
                out.push(Event {
                    kind: EventKind::ConfigInvalid,
                    key: format!("config-invalid:{head}"),
                    project: None,
                    environment: None,
                    summary: format!(
                        "config HEAD {} is invalid ({} error{}); still running config {}{}",
                        short(head),
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" },
                        short(&world.config.layout_commit),
                        errors
                            .first()
                            .map(|e| format!(": {}", notify::one_line(e)))
                            .unwrap_or_default()
                    ),
                    details: errors.clone(),
                    links: Vec::new(),
                    tasks: Vec::new(),
                });
            }
            _ => {}
        }
    }
    // A promotion a freeze holds: planned (and "applied") every pass, told once per freeze
    // transition.
    if let Some(Action::Hold {
        environment,
        image,
        digest,
        reason,
        freeze: Some(freeze),
    }) = action
    {
        let since = world.freezes.get(freeze).map_or_else(
            || world.config.layout_commit.clone(),
            |f| f.config_commit.clone(),
        );
        out.push(Event {
            kind: EventKind::PromotionHeld,
            key: format!("promotion-held:{environment}:{image}:{digest}:{freeze}:{since}"),
            project: project_of(layout, image),
            environment: Some(environment.clone()),
            summary: format!(
                "promotion of {image}@{digest} to {environment} held by freeze {freeze}: {}",
                notify::one_line(reason)
            ),
            details: Vec::new(),
            links: vec![("Trace".to_owned(), links.trace(digest))],
            tasks: Vec::new(),
        });
    }
    out
}

/// The project that produces `image`, for routing by project glob.
fn project_of(layout: &Layout, image: &crate::model::ImageName) -> Option<ProjectName> {
    layout
        .projects
        .iter()
        .find(|(_, p)| p.images.contains(image))
        .map(|(n, _)| n.clone())
}

#[cfg(test)]
#[path = "notifying_tests.rs"]
mod tests;
