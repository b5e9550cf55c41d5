//! `seakeeper status`: what the daemon is doing, from the file it rewrites after each pass
//! (`<state>/status.json`): the config in use and its errors, queued and running jobs, active
//! freezes with their reason and commit, held and refused promotions with why, replication.

use serde::{Deserialize, Serialize};

use super::Daemon;
use crate::reconcile::Action;

/// A build waiting for or running jobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildLine {
    /// The build.
    pub build_id: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its project.
    pub project: String,
    /// `change,patchset` or the ref.
    pub what: String,
    /// Jobs not started yet.
    pub queued: Vec<String>,
    /// Jobs running (or pending in the executor).
    pub running: Vec<String>,
    /// Jobs ended.
    pub ended: Vec<String>,
    /// When it was requested (RFC 3339).
    #[serde(default)]
    pub requested_at: String,
    /// Every job of it, in the request's order.
    #[serde(default)]
    pub jobs: Vec<JobLine>,
}

/// A job of a build in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLine {
    /// Its name.
    pub name: String,
    /// 1 for the first run.
    pub attempt: u32,
    /// `queued`, `pending`, `running`, or how it ended (`success`, `failure`, ...).
    pub state: String,
    /// When this daemon first saw it run (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
}

/// An active freeze.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FreezeLine {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub scope: Vec<String>,
    /// Why.
    pub reason: String,
    /// Its ticket.
    pub ticket: Option<String>,
    /// The config commit that set it.
    pub config_commit: String,
}

/// A promotion that waits or is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PromotionLine {
    /// The environment.
    pub environment: String,
    /// The image.
    pub image: String,
    /// The digest asked for.
    pub digest: String,
    /// `held` or `refused`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// The freeze holding it.
    pub freeze: Option<String>,
}

/// The whole status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// When it was written.
    #[serde(default)]
    pub updated_at: String,
    /// The daemon's process id.
    #[serde(default)]
    pub pid: u32,
    /// The config HEAD.
    pub config_head: String,
    /// The config commit in use (HEAD, or the last good one).
    pub config_in_use: String,
    /// HEAD's errors when it is invalid.
    pub config_errors: Vec<String>,
    /// Builds in flight.
    pub builds: Vec<BuildLine>,
    /// Jobs queued in all.
    pub queued_jobs: usize,
    /// Jobs running in all.
    pub running_jobs: usize,
    /// Active freezes.
    pub freezes: Vec<FreezeLine>,
    /// Promotions held or refused.
    pub promotions: Vec<PromotionLine>,
    /// Ledger replication.
    pub replication: Option<super::replicate::State>,
    /// The daemon's memory.
    #[serde(default)]
    pub memory: Option<Memory>,
    /// Why the daemon refuses to write to its ledger (rolled back, unverified remote, no
    /// ledger): nothing is recorded or promoted while this is set.
    #[serde(default)]
    pub ledger_alert: Option<String>,
    /// Gerrit as last seen: its URL and, when it could not be read, why.
    #[serde(default)]
    pub gerrit: Option<GerritLine>,
    /// The retention policy's last sweep by this daemon, if one ran.
    #[serde(default)]
    pub retention: Option<RetentionLine>,
    /// The gate's queues.
    #[serde(default)]
    pub gate: Vec<QueueLine>,
    /// Each notification target: deliveries pending, sent, failed, and the last error.
    #[serde(default)]
    pub notifications: Vec<crate::notify::TargetStatus>,
}

/// A gate queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueLine {
    /// `queue:<name>` or `project:<project>`.
    pub name: String,
    /// How many items are tested at once.
    pub window: u32,
    /// The items, head first.
    pub items: Vec<QueueItemLine>,
    /// Approved changes that cannot enter yet: `project change: why`.
    pub waiting: Vec<String>,
}

/// An item of a gate queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItemLine {
    /// 1 for the head.
    pub position: usize,
    /// The project.
    pub project: String,
    /// `change,patchset`.
    pub change: String,
    /// `waiting`, `merging`, `testing`, `passed`, `landing`, `held`, `failing`, `failed`,
    /// `refused` or `landed`.
    pub state: String,
    /// What it waits for, in words.
    pub waits_for: String,
    /// The speculative commit it is tested on (and lands as).
    #[serde(default)]
    pub speculative: Option<String>,
    /// Its gate build.
    #[serde(default)]
    pub build: Option<String>,
    /// Its jobs: `name: state`.
    #[serde(default)]
    pub jobs: Vec<String>,
}

/// The gate's queues as `status` shows them.
fn queue_lines(d: &Daemon) -> Vec<QueueLine> {
    use crate::reconcile::gate::{self, ItemState};
    let (w, Some(layout)) = (d.world(), d.layout()) else {
        return Vec::new();
    };
    let held: std::collections::BTreeMap<&crate::model::BuildId, &str> = d
        .held()
        .iter()
        .filter_map(|a| match a {
            Action::HoldLanding {
                build_id, reason, ..
            } => Some((build_id, reason.as_str())),
            _ => None,
        })
        .collect();
    gate::queues(w, layout)
        .into_iter()
        .map(|q| {
            let mut position = 0;
            let items = q
                .items
                .iter()
                .map(|it| {
                    let placed = !matches!(it.state, ItemState::Refused(_) | ItemState::Contained);
                    if placed {
                        position += 1;
                    }
                    let head = position == 1;
                    let (state, waits_for, tested) = match &it.state {
                        ItemState::Inactive => (
                            "waiting",
                            format!("room in the window ({})", q.window),
                            None,
                        ),
                        ItemState::Blocked(why) => ("waiting", why.clone(), None),
                        ItemState::Merging { onto } => {
                            ("merging", format!("its merge onto {onto}"), None)
                        }
                        ItemState::Refused(why) => ("refused", why.clone(), None),
                        ItemState::Contained => {
                            ("landed", "Gerrit to close the change".into(), None)
                        }
                        ItemState::Testing(t) => {
                            let (state, why) = match t.result {
                                None => ("testing", "its jobs".to_owned()),
                                Some(crate::model::BuildStatus::Success) if head => {
                                    match held.get(&t.build) {
                                        Some(reason) => ("held", (*reason).to_owned()),
                                        None => ("landing", "its push".to_owned()),
                                    }
                                }
                                Some(crate::model::BuildStatus::Success) => {
                                    ("passed", "the items ahead of it to land".to_owned())
                                }
                                Some(_) if t.failing() && head => {
                                    ("failed", "its report; then it leaves".to_owned())
                                }
                                Some(_) if t.failing() => (
                                    "failing",
                                    "the items ahead of it (it is tested again if one of \
                                     them fails)"
                                        .to_owned(),
                                ),
                                Some(_) => ("testing", "a new build of its state".to_owned()),
                            };
                            (state, why, Some(t))
                        }
                    };
                    let jobs = tested
                        .and_then(|t| w.builds.get(&t.build))
                        .map(|b| {
                            b.request
                                .jobs
                                .iter()
                                .map(|j| {
                                    let s = match b.jobs.get(j).and_then(|r| r.state.as_ref()) {
                                        None => "queued",
                                        Some(crate::model::JobState::Pending) => "pending",
                                        Some(crate::model::JobState::Running) => "running",
                                        Some(s) => crate::reconcile::job_status(Some(s)).as_str(),
                                    };
                                    format!("{j}: {s}")
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    QueueItemLine {
                        position: if placed { position } else { 0 },
                        project: it.project.to_string(),
                        change: format!("{},{}", it.change, it.patchset),
                        state: state.into(),
                        waits_for,
                        speculative: tested.map(|t| t.speculative.to_string()),
                        build: tested.map(|t| t.build.to_string()),
                        jobs,
                    }
                })
                .collect();
            QueueLine {
                name: q.name,
                window: q.window,
                items,
                waiting: q
                    .waiting
                    .iter()
                    .map(|(p, c, why)| format!("{p} {c}: {why}"))
                    .collect(),
            }
        })
        .collect()
}

/// The retention policy's last sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionLine {
    /// When it ended.
    pub at: String,
    /// Deletions (each an expiry record).
    pub expired: usize,
    /// What could not be done (retried next sweep).
    pub errors: Vec<String>,
}

/// Whether Gerrit answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GerritLine {
    /// The URL.
    pub url: String,
    /// Whether the last pass could read it.
    pub reachable: bool,
    /// Why not.
    pub error: Option<String>,
}

/// The daemon's memory, in KiB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Resident (what the system counts).
    pub resident_kb: u64,
    /// The highest resident so far.
    pub peak_resident_kb: u64,
    /// Allocated and in use.
    pub heap_in_use_kb: u64,
    /// Freed but kept by the allocator.
    pub heap_free_kb: u64,
}

impl Memory {
    /// This process's memory now.
    pub fn now() -> Option<Memory> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut m = Memory {
            resident_kb: field("VmRSS:"),
            peak_resident_kb: field("VmHWM:"),
            ..Memory::default()
        };
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            // SAFETY: mallinfo2 only reads the allocator's counters.
            let i = unsafe { libc::mallinfo2() };
            m.heap_in_use_kb = ((i.uordblks + i.hblkhd) / 1024) as u64;
            m.heap_free_kb = (i.fordblks / 1024) as u64;
        }
        Some(m)
    }
}

impl Status {
    /// The status of `d` now.
    pub fn of(d: &Daemon) -> Status {
        let w = d.world();
        let mut builds = Vec::new();
        let (mut queued_jobs, mut running_jobs) = (0, 0);
        let mut in_flight = std::collections::BTreeSet::new();
        for (id, b) in &w.builds {
            let r = &b.request;
            let mut line = BuildLine {
                build_id: id.to_string(),
                pipeline: r.pipeline.to_string(),
                project: r.project.to_string(),
                what: match (r.change, r.patchset) {
                    (Some(c), Some(p)) => format!("{c},{p}"),
                    _ => r.git_ref.to_string(),
                },
                queued: Vec::new(),
                running: Vec::new(),
                ended: Vec::new(),
                requested_at: r.requested_at.to_string(),
                jobs: Vec::new(),
            };
            for name in &r.jobs {
                let run = b.jobs.get(name);
                let state = run.and_then(|j| j.state.as_ref());
                match state {
                    None => line.queued.push(name.clone()),
                    Some(s) if s.is_final() => line.ended.push(name.clone()),
                    Some(_) => line.running.push(name.clone()),
                }
                let attempt = run.map_or(1, |j| j.attempt);
                let key = crate::apply::job_key(id, name, attempt).to_string();
                in_flight.insert(key.clone());
                line.jobs.push(JobLine {
                    name: name.clone(),
                    attempt,
                    state: match state {
                        None => "queued".into(),
                        Some(crate::model::JobState::Pending) => "pending".into(),
                        Some(crate::model::JobState::Running) => "running".into(),
                        Some(s) => crate::reconcile::job_status(Some(s)).as_str().into(),
                    },
                    started_at: d.job_seen_running(&key, state),
                });
            }
            queued_jobs += line.queued.len();
            running_jobs += line.running.len();
            builds.push(line);
        }
        d.job_seen_retain(&in_flight);
        let now = w.now;
        let freezes = d
            .layout()
            .map(|l| {
                l.freezes
                    .iter()
                    .filter(|(_, f)| f.is_active(now))
                    .map(|(n, f)| FreezeLine {
                        name: n.to_string(),
                        scope: f.scope.clone(),
                        reason: f.reason.trim().to_owned(),
                        ticket: f.ticket.clone(),
                        // The commit that set the freeze (or, when unknown, the one in use).
                        config_commit: w.freeze_origins.get(n).map_or_else(
                            || w.config.layout_commit.to_string(),
                            |(c, _)| c.to_string(),
                        ),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let promotions = d
            .held()
            .iter()
            .filter_map(|a| match a {
                Action::Hold {
                    environment,
                    image,
                    digest,
                    reason,
                    freeze,
                } => Some(PromotionLine {
                    environment: environment.to_string(),
                    image: image.to_string(),
                    digest: digest.to_string(),
                    state: "held".into(),
                    reason: reason.clone(),
                    freeze: freeze.as_ref().map(ToString::to_string),
                }),
                Action::Refuse {
                    environment,
                    image,
                    digest,
                    reason,
                } => Some(PromotionLine {
                    environment: environment.to_string(),
                    image: image.to_string(),
                    digest: digest.to_string(),
                    state: "refused".into(),
                    reason: reason.clone(),
                    freeze: None,
                }),
                _ => None,
            })
            .chain(
                d.copies_running()
                    .into_iter()
                    .map(|(env, image, digest)| PromotionLine {
                        environment: env.to_string(),
                        image: image.to_string(),
                        digest: digest.to_string(),
                        state: "copying".into(),
                        reason: "copying to the environment's registry".into(),
                        freeze: None,
                    }),
            )
            .chain(
                d.failed_promotions()
                    .iter()
                    .map(|((env, image), (digest, error))| PromotionLine {
                        environment: env.to_string(),
                        image: image.to_string(),
                        digest: digest.to_string(),
                        state: "failed".into(),
                        reason: error.clone(),
                        freeze: None,
                    }),
            )
            .collect();
        Status {
            updated_at: crate::model::Timestamp::now().to_string(),
            pid: std::process::id(),
            config_head: w.config.head.to_string(),
            config_in_use: w.config.layout_commit.to_string(),
            config_errors: w.config.errors.clone(),
            builds,
            queued_jobs,
            running_jobs,
            freezes,
            promotions,
            replication: d.replication(),
            memory: Memory::now(),
            ledger_alert: d.ledger_alert().map(str::to_owned),
            gerrit: d
                .layout()
                .and_then(|l| l.settings.gerrit.as_ref())
                .map(|g| GerritLine {
                    url: g.url.clone(),
                    reachable: d.gerrit_error().is_none(),
                    error: d.gerrit_error().map(str::to_owned),
                }),
            retention: d.retention_line().cloned(),
            gate: queue_lines(d),
            notifications: d.notify_status(),
        }
    }

    /// A status before the first pass.
    pub fn empty() -> Status {
        Status {
            updated_at: String::new(),
            pid: std::process::id(),
            config_head: String::new(),
            config_in_use: String::new(),
            config_errors: Vec::new(),
            builds: Vec::new(),
            queued_jobs: 0,
            running_jobs: 0,
            freezes: Vec::new(),
            promotions: Vec::new(),
            replication: None,
            memory: None,
            ledger_alert: None,
            gerrit: None,
            retention: None,
            gate: Vec::new(),
            notifications: Vec::new(),
        }
    }

    /// The same without the time (to tell whether anything changed).
    pub fn without_time(&self) -> Status {
        Status {
            updated_at: String::new(),
            memory: None,
            ..self.clone()
        }
    }

    /// For people.
    pub fn render(&self) -> String {
        let mut t = String::new();
        t.push_str(&format!("updated {} (pid {})\n", self.updated_at, self.pid));
        if let Some(a) = &self.ledger_alert {
            t.push_str(&format!("LEDGER ALERT: {a}\n"));
        }
        if let Some(g) = &self.gerrit {
            match &g.error {
                None => t.push_str(&format!("gerrit: {} reachable\n", g.url)),
                Some(e) => t.push_str(&format!("gerrit: {} UNREACHABLE: {e}\n", g.url)),
            }
        }
        if let Some(r) = &self.retention {
            t.push_str(&format!(
                "retention: last sweep {}, {} deleted{}\n",
                r.at,
                r.expired,
                if r.errors.is_empty() {
                    String::new()
                } else {
                    format!(", {} FAILED: {}", r.errors.len(), r.errors.join("; "))
                }
            ));
        }
        if self.config_head == self.config_in_use {
            t.push_str(&format!("config: {}\n", self.config_in_use));
        } else {
            t.push_str(&format!(
                "config: HEAD {} is INVALID; running with {}\n",
                self.config_head, self.config_in_use
            ));
        }
        for e in &self.config_errors {
            t.push_str(&format!("  {e}\n"));
        }
        t.push_str(&format!(
            "jobs: {} running, {} queued\n",
            self.running_jobs, self.queued_jobs
        ));
        for b in &self.builds {
            t.push_str(&format!(
                "  {} [{}] {} {}: running {:?} queued {:?} ended {:?}\n",
                b.build_id, b.pipeline, b.project, b.what, b.running, b.queued, b.ended
            ));
        }
        for q in &self.gate {
            t.push_str(&format!(
                "gate queue {} (window {}): {} items\n",
                q.name,
                q.window,
                q.items.len()
            ));
            for i in &q.items {
                let at = i
                    .speculative
                    .as_deref()
                    .map(|s| format!(" on {s}"))
                    .unwrap_or_default();
                let jobs = if i.jobs.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", i.jobs.join(", "))
                };
                t.push_str(&format!(
                    "  {}. {} {} {}{at}{jobs}: waits for {}\n",
                    i.position, i.project, i.change, i.state, i.waits_for
                ));
            }
            for w in &q.waiting {
                t.push_str(&format!("  not yet: {w}\n"));
            }
        }
        if self.freezes.is_empty() {
            t.push_str("freezes: none\n");
        } else {
            t.push_str("freezes:\n");
            for f in &self.freezes {
                let ticket = f
                    .ticket
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default();
                t.push_str(&format!(
                    "  {} [{}]{ticket}: {} (config {})\n",
                    f.name,
                    f.scope.join(", "),
                    f.reason,
                    f.config_commit
                ));
            }
        }
        if self.promotions.is_empty() {
            t.push_str("promotions: nothing waiting\n");
        } else {
            t.push_str("promotions:\n");
            for p in &self.promotions {
                t.push_str(&format!(
                    "  {} {}@{} {}: {}\n",
                    p.environment, p.image, p.digest, p.state, p.reason
                ));
            }
        }
        for n in &self.notifications {
            t.push_str(&format!(
                "notifications to {} ({}): {} pending, {} sent, {} failed{}\n",
                n.target,
                n.kind,
                n.pending,
                n.sent,
                n.failed,
                n.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(m) = &self.memory {
            t.push_str(&format!(
                "memory: {:.1} MB resident (peak {:.1} MB); heap {:.1} MB in use, {:.1} MB free\n",
                m.resident_kb as f64 / 1024.0,
                m.peak_resident_kb as f64 / 1024.0,
                m.heap_in_use_kb as f64 / 1024.0,
                m.heap_free_kb as f64 / 1024.0
            ));
        }
        if let Some(r) = &self.replication {
            match &r.error {
                None => t.push_str(&format!(
                    "replication: {} at {}\n",
                    r.remote,
                    r.pushed.as_deref().unwrap_or("(nothing yet)")
                )),
                Some(e) => t.push_str(&format!(
                    "replication: {} FAILING ({} attempts): {e}\n",
                    r.remote, r.failures
                )),
            }
        }
        t
    }
}

/// `seakeeper status` as people read it, pinned as snapshots.
#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        Status {
            updated_at: "2026-12-03T10:00:00Z".into(),
            pid: 4242,
            config_head: "c0f".repeat(13) + "c",
            config_in_use: "c0f".repeat(13) + "c",
            config_errors: Vec::new(),
            builds: vec![BuildLine {
                build_id: "check-0123456789abcdef".into(),
                pipeline: "check".into(),
                project: "mediawiki/core".into(),
                what: "change 4711,3".into(),
                queued: vec!["lint".into()],
                running: vec!["unit".into()],
                ended: vec![],
                requested_at: "2026-12-03T09:59:00Z".into(),
                jobs: Vec::new(),
            }],
            queued_jobs: 1,
            running_jobs: 1,
            freezes: Vec::new(),
            promotions: Vec::new(),
            replication: None,
            memory: None,
            ledger_alert: None,
            gerrit: Some(GerritLine {
                url: "https://gerrit.example.org".into(),
                reachable: true,
                error: None,
            }),
            retention: None,
            gate: Vec::new(),
            notifications: Vec::new(),
        }
    }

    #[test]
    fn a_quiet_server() {
        insta::assert_snapshot!(status().render());
    }

    #[test]
    fn a_server_with_everything_to_say() {
        let mut s = status();
        s.config_head = "bad".repeat(13) + "b";
        s.config_errors = vec![
            "environments.yaml:4:15: environments[0].registry: unknown registry `prod`".into(),
        ];
        s.ledger_alert = Some(
            "ledger commit 1234 is signed by a key not trusted at config c0f: refusing to write \
             or act on it until a person has looked"
                .into(),
        );
        s.gerrit = Some(GerritLine {
            url: "https://gerrit.example.org".into(),
            reachable: false,
            error: Some("no answer for 12 s (the read goes on; everything else does too)".into()),
        });
        s.retention = Some(RetentionLine {
            at: "2026-12-03T09:00:00Z".into(),
            expired: 3,
            errors: vec!["registry.example.org/core: HTTP 503".into()],
        });
        s.freezes = vec![FreezeLine {
            name: "holidays".into(),
            scope: vec!["promote:production".into()],
            reason: "Year-end freeze".into(),
            ticket: Some("T12345".into()),
            config_commit: "f2e".repeat(13) + "f",
        }];
        s.promotions = vec![PromotionLine {
            environment: "production".into(),
            image: "core".into(),
            digest: format!("sha256:{}", "ab".repeat(32)),
            state: "held".into(),
            reason: "production is frozen by holidays (T12345): Year-end freeze".into(),
            freeze: Some("holidays".into()),
        }];
        s.notifications = vec![crate::notify::TargetStatus {
            target: "releng-irc".into(),
            kind: "irc".into(),
            pending: 2,
            sent: 5,
            failed: 1,
            last_error: Some(
                "connecting to irc.example.org:6697: Connection refused (os error 111) [connect]"
                    .into(),
            ),
        }];
        s.memory = Some(Memory {
            resident_kb: 40_960,
            peak_resident_kb: 51_200,
            heap_in_use_kb: 8_192,
            heap_free_kb: 1_024,
        });
        s.replication = Some(super::super::replicate::State {
            remote: "https://git.example.org/ledger.git".into(),
            pushed: None,
            pushed_at: None,
            error: Some("HTTP 502".into()),
            failures: 4,
        });
        insta::assert_snapshot!(s.render());
    }
}
