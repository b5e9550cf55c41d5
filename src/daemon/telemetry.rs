//! The daemon's telemetry: a `tracing` span around each reconcile pass (its number, whether it
//! was full, and its duration, recorded when it ends) with the pass's duration in the metrics,
//! and the status gauges, set from the [`Status`] each pass writes. It observes; it decides
//! nothing and changes no state of the daemon.

use std::sync::atomic::{AtomicU64, Ordering};

use super::Status;
use crate::metrics::{self, PassLabel, Timer};

/// Passes since the process started (the span's `pass` field).
static PASSES: AtomicU64 = AtomicU64::new(0);

/// A reconcile pass under way: its span is entered until it is dropped, which records the
/// pass's duration.
pub(super) struct PassScope {
    span: tracing::span::EnteredSpan,
    timer: Timer,
    scope: &'static str,
}

impl PassScope {
    /// Enters the span of a new pass: `full` for a timer's pass over every project.
    pub(super) fn enter(full: bool) -> PassScope {
        let pass = PASSES.fetch_add(1, Ordering::Relaxed) + 1;
        let scope = if full { "full" } else { "hinted" };
        let span =
            tracing::info_span!("pass", pass, scope, duration_ms = tracing::field::Empty).entered();
        PassScope {
            span,
            timer: Timer::start(),
            scope,
        }
    }
}

impl Drop for PassScope {
    fn drop(&mut self) {
        let seconds = self.timer.seconds();
        metrics::get()
            .pass_duration
            .get_or_create(&PassLabel { scope: self.scope })
            .observe(seconds);
        let ms = (seconds * 1000.0).round() as u64;
        self.span.record("duration_ms", ms);
        tracing::info!(duration_ms = ms, "pass done");
    }
}

/// Sets the gauges from the status a pass wrote.
pub(super) fn set_gauges(status: &Status) {
    let m = metrics::get();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    m.builds_in_flight.set(count(status.builds.len()));
    m.jobs_running.set(count(status.running_jobs));
    m.jobs_queued.set(count(status.queued_jobs));
    m.freezes_active.set(count(status.freezes.len()));
    let mut pending: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
    for n in &status.notifications {
        *pending.entry(n.kind.as_str()).or_default() += n.pending;
    }
    for (target, n) in pending {
        m.notifications_pending
            .get_or_create(&metrics::TargetLabel {
                target: target.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let promotions = |state: &str| {
        status
            .promotions
            .iter()
            .filter(|p| p.state == state)
            .count()
    };
    m.promotions_held.set(count(promotions("held")));
    m.promotions_refused.set(count(promotions("refused")));
    m.gate_queues(status.gate.iter().map(|q| {
        // Refused and landed items are listed by `status` but no longer queue.
        let queued = q
            .items
            .iter()
            .filter(|i| i.state != "refused" && i.state != "landed")
            .count();
        (q.name.as_str(), queued, q.window)
    }));
}
