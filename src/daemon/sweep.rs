//! Retention sweeps: every `every` of `policies/retention.yaml` off the pass, or one now
//! (`seakeeper retention run`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Daemon, status};
use crate::apply;
use crate::model::Timestamp;

impl Daemon {
    /// `<state>/retention.json`.
    pub(super) fn retention_state(&self) -> PathBuf {
        self.settings.state_dir.join("retention.json")
    }

    /// Starts a retention sweep when one is due (every `every` of `policies/retention.yaml`,
    /// counted from the last sweep's end, kept in the state directory across restarts), and
    /// takes the outcome of one that ended. Sweeps run off the pass: a slow registry holds
    /// up nothing else.
    pub(super) fn tend_retention(&mut self) {
        if !self.retention_on || self.ledger_alert.is_some() {
            return;
        }
        let (Some(layout), Some(svc)) = (self.layout.clone(), self.svc.clone()) else {
            return;
        };
        let every = Duration::from_secs(layout.policies.retention.every.as_secs().max(1));
        let state_path = self.retention_state();
        let due = *self.retention_due.get_or_insert_with(|| {
            let last = apply::retention::State::load(&state_path)
                .ok()
                .and_then(|s| s.last_run);
            let wait = last.map_or(0, |l| {
                (l.as_second() + every.as_secs() as i64 - Timestamp::now().as_second())
                    .clamp(0, every.as_secs() as i64)
            });
            Instant::now() + Duration::from_secs(wait as u64)
        });
        if !self.retention.pending() && Instant::now() < due {
            return;
        }
        let outcome = self.retention.poll_or_start(&(), move || {
            apply::retention::run(
                &svc,
                &apply::retention::Sweep {
                    layout: &layout,
                    now: Timestamp::now(),
                    state_path,
                    dry_run: false,
                },
            )
        });
        let Some(outcome) = outcome else {
            return;
        };
        self.retention_due = Some(Instant::now() + every);
        let report = outcome.unwrap_or_else(|e| apply::retention::Report {
            errors: vec![e.to_string()],
            ..Default::default()
        });
        for e in &report.expired {
            (self.reporter)(&format!(
                "retention: deleted {} {} from {}: {}",
                e.name, e.digest, e.store, e.rule
            ));
        }
        for e in &report.errors {
            tracing::warn!("retention: {e}");
        }
        self.retention_line = Some(status::RetentionLine {
            at: Timestamp::now().to_string(),
            expired: report.expired.len(),
            errors: report.errors,
        });
    }

    /// The last retention sweep, for `status`.
    pub fn retention_line(&self) -> Option<&status::RetentionLine> {
        self.retention_line.as_ref()
    }

    /// One retention sweep now, here (`seakeeper retention run`): the config and the ledger
    /// are read as a pass would, nothing else is reconciled.
    pub fn retention_now(&mut self, dry_run: bool) -> anyhow::Result<apply::retention::Report> {
        self.observe_config(true)?;
        if self.layout.is_none() {
            anyhow::bail!(
                "the config repo has never been valid at {}: fix it (seakeeper config check)",
                self.world.config.head
            );
        }
        self.ensure_services()?;
        self.check_ledger_mark()?;
        if let Some(a) = &self.ledger_alert {
            anyhow::bail!("LEDGER ALERT: {a}; nothing is deleted");
        }
        let layout = self.layout.clone().expect("checked above");
        let svc = self.svc.clone().expect("opened above");
        apply::retention::run(
            &svc,
            &apply::retention::Sweep {
                layout: &layout,
                now: Timestamp::now(),
                state_path: self.retention_state(),
                dry_run,
            },
        )
        .map_err(|e| anyhow::anyhow!(e.to_string()))
    }
}
