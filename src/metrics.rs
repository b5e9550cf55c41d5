//! Prometheus metrics: one [`Metrics`] with every family seakeeper exports, and [`render`],
//! which the web server's `/metrics` route calls.
//!
//! The families live in one process-wide instance ([`get`], a `OnceLock`). Metrics are
//! observed deep inside the clients (a Gerrit REST call, a registry request, a ledger batch),
//! far from anything that could carry a handle down, and threading a `&Metrics` through every
//! client constructor would touch every caller for no gain: a metric is write-only from the
//! code's point of view, changes no decision, and Prometheus itself expects one registry per
//! process. Tests that count series build their own [`Metrics::new`] instead of sharing it.
//!
//! Like `model`, this module is a leaf: it uses nothing but `model`, so every module may use
//! it without a cycle. It must not decide anything, read any file, or take a label whose
//! values grow without bound: build ids, commits, change numbers and digests are never labels
//! (they belong in the ledger and the logs). Labels are pipelines, results, action kinds,
//! error labels, operation names, environments and gate queues, all bounded by the code or by
//! the config. `docs/metrics.md` lists every family.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::model::record::{BuildRequest, BuildResult};
use crate::model::{PipelineKind, Timestamp};

/// The content type of the classic Prometheus text format (0.0.4), served by default:
/// `promtool check metrics` and every Prometheus version read it.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The content type of OpenMetrics 1.0 text, served when the scraper asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The process-wide metrics (see the module's doc for why there is one).
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// The process-wide metrics as the `/metrics` route serves them: `(content type, body)`.
/// `accept` is the request's `Accept` header: OpenMetrics when it asks for
/// `application/openmetrics-text` at least as much as for `text/plain`, else the classic text
/// format (0.0.4).
pub fn render(accept: Option<&str>) -> (&'static str, String) {
    get().render(accept)
}

/// Measures an operation's wall-clock time.
#[derive(Debug, Clone, Copy)]
pub struct Timer(Instant);

impl Timer {
    /// Starts now.
    pub fn start() -> Timer {
        Timer(Instant::now())
    }

    /// Seconds since the start.
    pub fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// `pipeline`: `check`, `gate`, `post-merge` or `periodic`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabel {
    /// The pipeline.
    pub pipeline: &'static str,
}

/// A pipeline and a build's or job's result (`success`, `failure`, `error`, `cancelled`,
/// `timed-out`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineResultLabels {
    /// The pipeline.
    pub pipeline: &'static str,
    /// The result.
    pub result: &'static str,
}

/// An action's kind: the `Action` variant's short name (`request-build`, `land`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: &'static str,
}

/// An action's kind and its error's label (`apply::Error::label`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindErrorLabels {
    /// The kind.
    pub kind: &'static str,
    /// The error's short label.
    pub error: &'static str,
}

/// A notification target's kind (`irc`, `email`, `phabricator`) and a delivery's outcome
/// (`sent`, `failed`, `retried`, `deduplicated`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotifyLabels {
    /// The target's kind.
    pub target: &'static str,
    /// What happened.
    pub outcome: &'static str,
}

/// A notification target's kind.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabel {
    /// `irc`, `email` or `phabricator`.
    pub target: String,
}

/// A client operation (`get_change`, `post_review`, `get_manifest`, `push_blob`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// The operation.
    pub operation: &'static str,
}

/// A client operation and how it failed (`transport`, `status`, `decode`, `protocol`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationErrorLabels {
    /// The operation.
    pub operation: &'static str,
    /// How it failed.
    pub error: &'static str,
}

/// An environment of `environments.yaml` (bounded by the config; a handful).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvironmentLabel {
    /// The environment.
    pub environment: String,
}

/// A gate queue (`queue:<name>` or `project:<project>`): only queues that hold changes have
/// series, so their number is that of the queues in use, not of the projects configured.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// The queue.
    pub queue: String,
}

/// Whether a reconcile pass was `full` (every project, on the timer) or `hinted` (an event's
/// projects, or a job's end).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PassLabel {
    /// `full` or `hinted`.
    pub scope: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// Client calls: milliseconds to a minute.
const CALL_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Jobs and their waits: a second to four hours.
const JOB_BUCKETS: [f64; 13] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];
/// Cycle times: a minute to a week.
const CYCLE_BUCKETS: [f64; 12] = [
    60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 345600.0,
    604800.0,
];
/// Records per ledger batch.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}
fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}
fn cycle_histogram() -> Histogram {
    Histogram::new(CYCLE_BUCKETS)
}

/// Every metric family seakeeper exports (names without the `seakeeper_` prefix and the
/// `_total`/unit suffixes the encoder adds; `docs/metrics.md` has the full names).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// When the oldest ledger write not yet on the replication remote was made (Unix
    /// milliseconds; 0: none). The lag is computed from it when metrics are rendered, so it
    /// grows while a remote is down, without anyone setting it.
    replication_behind_since: AtomicI64,

    /// `builds_total{pipeline,result}`: build results recorded in the ledger.
    pub builds: Family<PipelineResultLabels, Counter>,
    /// `jobs_total{pipeline,result}`: job results recorded (as part of their build's result).
    pub jobs: Family<PipelineResultLabels, Counter>,
    /// `job_duration_seconds{pipeline}`: how long jobs ran (their log's first to last line).
    pub job_duration: Histograms<PipelineLabel>,
    /// `job_queue_wait_seconds{pipeline}`: from the build's request to the job's first line.
    pub job_queue_wait: Histograms<PipelineLabel>,
    /// `cycle_patchset_reported_seconds{pipeline}`: from a change's build request (seakeeper
    /// seeing the patchset, or a recheck) to its result being reported.
    pub cycle_patchset_reported: Histograms<PipelineLabel>,
    /// `cycle_approved_landed_seconds`: from a change becoming eligible for the gate (the
    /// latest first vote its requirements needed, i.e. the +2) to its landing.
    pub cycle_approved_landed: Histogram,
    /// `cycle_landed_environment_seconds{environment}`: from a commit's landing to an image
    /// built from it entering each environment.
    pub cycle_landed_environment: Histograms<EnvironmentLabel>,
    /// `gate_queue_length{queue}`: changes in each gate queue.
    pub gate_queue_length: Family<QueueLabel, Gauge>,
    /// `gate_queue_window{queue}`: how many items each gate queue tests at once.
    pub gate_queue_window: Family<QueueLabel, Gauge>,
    /// `reconcile_pass_duration_seconds{scope}`: how long a reconcile pass took.
    pub pass_duration: Histograms<PassLabel>,
    /// `actions_total{kind}`: actions carried out that made progress.
    pub actions: Family<KindLabel, Counter>,
    /// `action_errors_total{kind,error}`: actions that failed, by `apply::Error::label`.
    pub action_errors: Family<KindErrorLabels, Counter>,
    /// `notifications_total{target,outcome}`: notification deliveries by target kind and
    /// outcome (`sent`, `failed` for good, `retried`, `deduplicated`).
    pub notifications: Family<NotifyLabels, Counter>,
    /// `notifications_pending{target}`: deliveries waiting, by target kind.
    pub notifications_pending: Family<TargetLabel, Gauge>,
    /// `ledger_write_duration_seconds`: from submitting records to the writer to their being
    /// durable (batching, signing, compare-and-swap included).
    pub ledger_write: Histogram,
    /// `ledger_batch_records`: records per ledger commit.
    pub ledger_batch: Histogram,
    /// `ledger_replication_lag_seconds`: age of the oldest ledger write the remote lacks.
    pub replication_lag: FloatGauge,
    /// `ledger_replication_failures_total`: failed pushes to the ledger's remote.
    pub replication_failures: Counter,
    /// `gerrit_request_duration_seconds{operation}`: Gerrit REST calls, retries included.
    pub gerrit_duration: Histograms<OperationLabel>,
    /// `gerrit_request_errors_total{operation,error}`: Gerrit REST calls that failed.
    pub gerrit_errors: Family<OperationErrorLabels, Counter>,
    /// `registry_request_duration_seconds{operation}`: OCI registry requests (to the answer's
    /// headers), retries included.
    pub registry_duration: Histograms<OperationLabel>,
    /// `registry_request_errors_total{operation,error}`: OCI registry requests that failed.
    pub registry_errors: Family<OperationErrorLabels, Counter>,
    /// `freezes_active`: freezes in force.
    pub freezes_active: Gauge,
    /// `promotions_held`: promotions a freeze holds.
    pub promotions_held: Gauge,
    /// `promotions_refused`: promotions refused (no trusted attestation, not in the previous
    /// environment, ...).
    pub promotions_refused: Gauge,
    /// `builds_in_flight`: builds requested and not yet reported.
    pub builds_in_flight: Gauge,
    /// `jobs_running`: jobs running or pending in the executor.
    pub jobs_running: Gauge,
    /// `jobs_queued`: jobs of builds in flight not started yet.
    pub jobs_queued: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every family, registered, with no series yet.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("seakeeper"),
            replication_behind_since: AtomicI64::new(0),
            builds: Family::default(),
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(job_histogram),
            job_queue_wait: Family::new_with_constructor(job_histogram),
            cycle_patchset_reported: Family::new_with_constructor(cycle_histogram),
            cycle_approved_landed: cycle_histogram(),
            cycle_landed_environment: Family::new_with_constructor(cycle_histogram),
            gate_queue_length: Family::default(),
            gate_queue_window: Family::default(),
            pass_duration: Family::new_with_constructor(call_histogram),
            actions: Family::default(),
            action_errors: Family::default(),
            notifications: Family::default(),
            notifications_pending: Family::default(),
            ledger_write: call_histogram(),
            ledger_batch: Histogram::new(BATCH_BUCKETS),
            replication_lag: FloatGauge::default(),
            replication_failures: Counter::default(),
            gerrit_duration: Family::new_with_constructor(call_histogram),
            gerrit_errors: Family::default(),
            registry_duration: Family::new_with_constructor(call_histogram),
            registry_errors: Family::default(),
            freezes_active: Gauge::default(),
            promotions_held: Gauge::default(),
            promotions_refused: Gauge::default(),
            builds_in_flight: Gauge::default(),
            jobs_running: Gauge::default(),
            jobs_queued: Gauge::default(),
        };
        let r = &mut m.registry;
        let s = Unit::Seconds;
        r.register(
            "builds",
            "Build results recorded in the ledger",
            m.builds.clone(),
        );
        r.register("jobs", "Job results recorded in the ledger", m.jobs.clone());
        r.register_with_unit(
            "job_duration",
            "How long jobs ran, from their log's first line to its last",
            s.clone(),
            m.job_duration.clone(),
        );
        r.register_with_unit(
            "job_queue_wait",
            "From a build's request to its job's first log line",
            s.clone(),
            m.job_queue_wait.clone(),
        );
        r.register_with_unit(
            "cycle_patchset_reported",
            "From a change's build request (a new patchset or a recheck) to its report",
            s.clone(),
            m.cycle_patchset_reported.clone(),
        );
        r.register_with_unit(
            "cycle_approved_landed",
            "From a change becoming eligible for the gate (its +2) to its landing",
            s.clone(),
            m.cycle_approved_landed.clone(),
        );
        r.register_with_unit(
            "cycle_landed_environment",
            "From a commit's landing to an image built from it entering an environment",
            s.clone(),
            m.cycle_landed_environment.clone(),
        );
        r.register(
            "gate_queue_length",
            "Changes in each gate queue",
            m.gate_queue_length.clone(),
        );
        r.register(
            "gate_queue_window",
            "How many items each gate queue tests at once",
            m.gate_queue_window.clone(),
        );
        r.register_with_unit(
            "reconcile_pass_duration",
            "How long a reconcile pass took",
            s.clone(),
            m.pass_duration.clone(),
        );
        r.register(
            "actions",
            "Actions carried out that made progress",
            m.actions.clone(),
        );
        r.register(
            "action_errors",
            "Actions that failed",
            m.action_errors.clone(),
        );
        r.register(
            "notifications",
            "Notification deliveries by target kind and outcome",
            m.notifications.clone(),
        );
        r.register(
            "notifications_pending",
            "Notification deliveries waiting, by target kind",
            m.notifications_pending.clone(),
        );
        r.register_with_unit(
            "ledger_write_duration",
            "From submitting records to the ledger writer to their being durable",
            s.clone(),
            m.ledger_write.clone(),
        );
        r.register(
            "ledger_batch_records",
            "Records per ledger commit",
            m.ledger_batch.clone(),
        );
        r.register_with_unit(
            "ledger_replication_lag",
            "Age of the oldest ledger write the replication remote lacks (0 when in sync)",
            s.clone(),
            m.replication_lag.clone(),
        );
        r.register(
            "ledger_replication_failures",
            "Failed pushes of the ledger to its remote",
            m.replication_failures.clone(),
        );
        r.register_with_unit(
            "gerrit_request_duration",
            "Gerrit REST calls, retries included",
            s.clone(),
            m.gerrit_duration.clone(),
        );
        r.register(
            "gerrit_request_errors",
            "Gerrit REST calls that failed",
            m.gerrit_errors.clone(),
        );
        r.register_with_unit(
            "registry_request_duration",
            "OCI registry requests until the answer's headers, retries included",
            s,
            m.registry_duration.clone(),
        );
        r.register(
            "registry_request_errors",
            "OCI registry requests that failed",
            m.registry_errors.clone(),
        );
        r.register(
            "freezes_active",
            "Freezes in force",
            m.freezes_active.clone(),
        );
        r.register(
            "promotions_held",
            "Promotions a freeze holds",
            m.promotions_held.clone(),
        );
        r.register(
            "promotions_refused",
            "Promotions refused by policy",
            m.promotions_refused.clone(),
        );
        r.register(
            "builds_in_flight",
            "Builds requested and not yet reported",
            m.builds_in_flight.clone(),
        );
        r.register(
            "jobs_running",
            "Jobs running or pending in the executor",
            m.jobs_running.clone(),
        );
        r.register(
            "jobs_queued",
            "Jobs of builds in flight not started yet",
            m.jobs_queued.clone(),
        );
        m
    }

    /// `(content type, body)`: see [`render`].
    pub fn render(&self, accept: Option<&str>) -> (&'static str, String) {
        let since = self.replication_behind_since.load(Ordering::Relaxed);
        let lag = if since == 0 {
            0.0
        } else {
            (now_millis() - since).max(0) as f64 / 1000.0
        };
        self.replication_lag.set(lag);
        let openmetrics = wants_openmetrics(accept);
        let mut out = String::new();
        let written = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        };
        // Writing to a String fails only if a metric's own encoding does, which ours never
        // do; the scraper then gets a comment saying so, not half a body.
        if let Err(e) = written {
            out.clear();
            let _ = writeln!(out, "# encoding the metrics failed: {e}");
            return (TEXT_CONTENT_TYPE, out);
        }
        let content_type = if openmetrics {
            OPENMETRICS_CONTENT_TYPE
        } else {
            TEXT_CONTENT_TYPE
        };
        (content_type, out)
    }

    /// A build's result was recorded: the build, each job, and each started job's duration
    /// and wait. `starts` holds each job's first log time, in `result.jobs`' order.
    pub fn build_recorded(
        &self,
        request: &BuildRequest,
        result: &BuildResult,
        starts: &[Option<Timestamp>],
    ) {
        let pipeline = request.pipeline.as_str();
        self.builds
            .get_or_create(&PipelineResultLabels {
                pipeline,
                result: result.status.as_str(),
            })
            .inc();
        let label = PipelineLabel { pipeline };
        for (i, job) in result.jobs.iter().enumerate() {
            self.jobs
                .get_or_create(&PipelineResultLabels {
                    pipeline,
                    result: job.status.as_str(),
                })
                .inc();
            // A job that never started (cancelled before, or refused) has no duration or wait.
            if let Some(Some(start)) = starts.get(i) {
                self.job_duration
                    .get_or_create(&label)
                    .observe(job.duration_ms as f64 / 1000.0);
                self.job_queue_wait
                    .get_or_create(&label)
                    .observe(seconds_between(request.requested_at, *start));
            }
        }
    }

    /// A change's build was reported, `requested_at` being its request's time.
    pub fn reported(&self, pipeline: PipelineKind, requested_at: Timestamp) {
        self.cycle_patchset_reported
            .get_or_create(&PipelineLabel {
                pipeline: pipeline.as_str(),
            })
            .observe(seconds_between(requested_at, Timestamp::now()));
    }

    /// A change landed, eligible for the gate `since`.
    pub fn landed(&self, since: Timestamp, landed_at: Timestamp) {
        // A vote without a date counts from the epoch: no cycle to speak of.
        if since.as_second() > 0 {
            self.cycle_approved_landed
                .observe(seconds_between(since, landed_at));
        }
    }

    /// An image of a commit that landed at `landed_at` entered `environment` at `at`.
    pub fn entered(&self, environment: &str, landed_at: Timestamp, at: Timestamp) {
        self.cycle_landed_environment
            .get_or_create(&EnvironmentLabel {
                environment: environment.to_owned(),
            })
            .observe(seconds_between(landed_at, at));
    }

    /// An action of `kind` was carried out: progress made, or an error with its label.
    pub fn action(&self, kind: &'static str, progress: bool, error: Option<&'static str>) {
        match error {
            Some(error) => {
                self.action_errors
                    .get_or_create(&KindErrorLabels { kind, error })
                    .inc();
            }
            None if progress => {
                self.actions.get_or_create(&KindLabel { kind }).inc();
            }
            None => {}
        }
    }

    /// A notification delivery to a target of kind `target` ended as `outcome`.
    pub fn notification(&self, target: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotifyLabels { target, outcome })
            .inc();
    }

    /// A Gerrit REST call ended (`error`: how it failed, if it did).
    pub fn gerrit_call(&self, operation: &'static str, timer: Timer, error: Option<&'static str>) {
        self.gerrit_duration
            .get_or_create(&OperationLabel { operation })
            .observe(timer.seconds());
        if let Some(error) = error {
            self.gerrit_error(operation, error);
        }
    }

    /// A Gerrit REST call failed after its answer came (a status or an undecodable body).
    pub fn gerrit_error(&self, operation: &'static str, error: &'static str) {
        self.gerrit_errors
            .get_or_create(&OperationErrorLabels { operation, error })
            .inc();
    }

    /// A registry request got its answer, or failed in transport.
    pub fn registry_call(
        &self,
        operation: &'static str,
        timer: Timer,
        error: Option<&'static str>,
    ) {
        self.registry_duration
            .get_or_create(&OperationLabel { operation })
            .observe(timer.seconds());
        if let Some(error) = error {
            self.registry_error(operation, error);
        }
    }

    /// A registry request failed after its answer came.
    pub fn registry_error(&self, operation: &'static str, error: &'static str) {
        self.registry_errors
            .get_or_create(&OperationErrorLabels { operation, error })
            .inc();
    }

    /// Records were written to the ledger (durable, or refused) after `timer`.
    pub fn ledger_written(&self, timer: Timer) {
        self.ledger_write.observe(timer.seconds());
    }

    /// The ledger has a write its replication remote lacks (the first one sets the time).
    pub fn replication_behind(&self) {
        let _ = self.replication_behind_since.compare_exchange(
            0,
            now_millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// The remote has every write; lag 0.
    pub fn replication_caught_up(&self) {
        self.replication_behind_since.store(0, Ordering::Relaxed);
    }

    /// Sets the gate's queues: `(queue, items, window)`. Queues not named lose their series.
    pub fn gate_queues<'a>(&self, queues: impl IntoIterator<Item = (&'a str, usize, u32)>) {
        self.gate_queue_length.clear();
        self.gate_queue_window.clear();
        for (queue, items, window) in queues {
            let label = QueueLabel {
                queue: queue.to_owned(),
            };
            self.gate_queue_length
                .get_or_create(&label)
                .set(i64::try_from(items).unwrap_or(i64::MAX));
            self.gate_queue_window
                .get_or_create(&label)
                .set(i64::from(window));
        }
    }
}

/// Whether `accept` asks for OpenMetrics at least as much as for the classic text format.
fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let (mut openmetrics, mut text) = (0.0f64, 0.0f64);
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f64>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" | "text/*" | "*/*" => text = text.max(q),
            _ => {}
        }
    }
    openmetrics > 0.0 && openmetrics >= text
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_second() - from.as_second()).max(0) as f64
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
