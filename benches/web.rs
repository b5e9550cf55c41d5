//! Web server benchmark (`seakeeper::web`), each figure against a baseline in the same run:
//!
//! 1. The status page `/` and `/api/status` with 500 builds in flight (3 jobs each, mixed
//!    states), 20 gate items in 4 queues, freezes and held promotions, projects drawn from
//!    2,200 names. Baseline: the same bytes served as a static file by a second, tiny axum
//!    server (the file read per request as `tokio::fs::read` does, same content type, same runtime shape). Target:
//!    p99 within 2x of the static file and under 20 ms.
//! 2. Live log latency: a real `LocalExecutor` job prints 300 lines, each the time in
//!    nanoseconds (`date +%s%N`), 10 ms apart; one SSE client of
//!    `/api/builds/{id}/jobs/{job}/live` measures arrival minus the printed time. Baseline:
//!    the same job's log followed in-process with `Executor::logs(key, follow = true)` (the
//!    floor the executor's own log file imposes). Target: p99 under 100 ms.
//! 3. 200 concurrent viewers of one live log: resident memory (VmRSS) added once they are all
//!    connected and have the whole log so far; client threads live in this process, so it is
//!    an upper bound. Baseline: the same with 1 viewer. Target: under 50 MB added.
//! 4. `/metrics` with thousands of builds recorded across pipelines and results, gate queues,
//!    Gerrit, registry and ledger calls. Baseline: the static-file server with the same bytes.
//!    Target: p99 under 10 ms.
//!
//! Targets are reported (PASS/FAIL), never asserted.
//!
//! Run: `cargo bench --bench web -- [--requests N] [--builds N] [--projects N] [--lines N]
//! [--viewers N] [--console-lines N] [--recorded N]`. Under `cargo test` (no `--bench`) it is
//! a smoke run with tiny sizes.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use seakeeper::daemon::Feed;
use seakeeper::daemon::status::{
    BuildLine, FreezeLine, JobLine, PromotionLine, QueueItemLine, QueueLine, Status,
};
use seakeeper::executor::Executor as _;
use seakeeper::executor::local::{LocalConfig, LocalExecutor, Prepare};
use seakeeper::metrics::Timer;
use seakeeper::model::record::{BuildRequest, BuildResult, JobResult};
use seakeeper::model::{BuildStatus, ChangeNumber, JobSpec, PipelineKind, Timestamp, Trust};
use seakeeper::store::BlobStore;
use seakeeper::web::{Context, start};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile (0..=1) of `v`, in the same unit.
fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mb(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

// ---- a plain HTTP/1.1 client (std only, nothing shared with the server) -----------------

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A whole response: status, content type, body (de-chunked).
struct Reply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

/// `GET path` on a new connection (`Connection: close`), read to its end.
fn get(addr: &str, path: &str) -> Reply {
    let mut s = connect(addr);
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut content_type, mut chunked) = (String::new(), false);
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-type" {
                content_type = v.trim().to_owned();
            } else if k == "transfer-encoding" && v.contains("chunked") {
                chunked = true;
            }
        }
    }
    let body = &raw[end + 4..];
    Reply {
        status,
        content_type,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_vec()
        },
    }
}

/// A Server-Sent Events stream being read.
struct Sse {
    r: BufReader<TcpStream>,
    status: u16,
    chunk_left: usize,
    pending: Vec<u8>,
}

/// One event: its name and data.
struct SseEvent {
    event: String,
    data: String,
}

impl Sse {
    fn open(addr: &str, path: &str) -> Sse {
        let mut s = connect(addr);
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut r = BufReader::with_capacity(4096, s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim_end().is_empty() {
                break;
            }
        }
        Sse {
            r,
            status,
            chunk_left: 0,
            pending: Vec::new(),
        }
    }

    /// One line of the (chunked) body; `None` at its end.
    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(p) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=p).collect();
                return Some(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned(),
                );
            }
            if self.chunk_left == 0 {
                let mut size = String::new();
                if self.r.read_line(&mut size).ok()? == 0 {
                    return None;
                }
                if size.trim().is_empty() {
                    continue;
                }
                self.chunk_left = usize::from_str_radix(size.trim(), 16).ok()?;
                if self.chunk_left == 0 {
                    return None;
                }
            }
            let mut buf = vec![0u8; self.chunk_left];
            self.r.read_exact(&mut buf).ok()?;
            self.chunk_left = 0;
            self.pending.extend_from_slice(&buf);
        }
    }

    /// The next event (comments and keep-alives skipped); `None` when the stream ended.
    fn next(&mut self) -> Option<SseEvent> {
        let mut e = SseEvent {
            event: String::new(),
            data: String::new(),
        };
        let mut has = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if has {
                    return Some(e);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            has = true;
            let (k, v) = line.split_once(':').unwrap_or((&line, ""));
            let v = v.strip_prefix(' ').unwrap_or(v);
            match k {
                "event" => e.event = v.to_owned(),
                "data" => {
                    if !e.data.is_empty() {
                        e.data.push('\n');
                    }
                    e.data.push_str(v);
                }
                _ => {}
            }
        }
    }
}

// ---- the baseline: a tiny static-file server -------------------------------------------

/// Serves files of one directory, read from disk on every request (as `tokio::fs::read` does), each with a
/// fixed content type; on its own 2-thread runtime like the web server.
struct StaticServer {
    addr: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

type Files = Arc<(PathBuf, HashMap<String, String>)>;

async fn serve_file(
    State(files): State<Files>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let (dir, types) = &*files;
    let Some(content_type) = types.get(&name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // What `tokio::fs::read` does (the crate's tokio has no `fs` feature): a blocking read on
    // the blocking pool.
    let path = dir.join(&name);
    match tokio::task::spawn_blocking(move || std::fs::read(path))
        .await
        .unwrap()
    {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type.clone())], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

impl StaticServer {
    fn start(dir: &Path, types: HashMap<String, String>) -> StaticServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let files: Files = Arc::new((dir.to_owned(), types));
        let app = axum::Router::new()
            .route("/{name}", axum::routing::get(serve_file))
            .with_state(files);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        StaticServer {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- the status -----------------------------------------------------------------------

fn hex40(n: usize) -> String {
    format!("{:040x}", n * 2_654_435_761 + 17)
}

fn project_names(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 5 {
            0 => format!("mediawiki/extensions/Extension{i:04}"),
            1 => format!("mediawiki/skins/Skin{i:04}"),
            2 => format!("operations/software/tool-{i:04}"),
            3 => format!("integration/config-{i:04}"),
            _ => format!("analytics/pipelines/job{i:04}"),
        })
        .collect()
}

/// A busy daemon's status: `builds` builds in flight (3 jobs each, mixed states) over
/// projects drawn from `projects` names, 20 gate items in 4 queues, 3 freezes, 8 promotions.
fn big_status(builds: usize, projects: usize) -> Status {
    let names = project_names(projects.max(1));
    let now = Timestamp::now();
    let at = |ago: i64| {
        Timestamp::from_second(now.as_second() - ago)
            .unwrap()
            .to_string()
    };
    let mut s = Status::empty();
    s.updated_at = now.to_string();
    s.config_head = hex40(1);
    s.config_in_use = hex40(1);
    const STATES: [&str; 8] = [
        "queued", "pending", "running", "running", "running", "success", "failure", "queued",
    ];
    const PIPELINES: [&str; 5] = ["check", "check", "check", "gate", "post-merge"];
    for i in 0..builds {
        let pipeline = PIPELINES[i % PIPELINES.len()];
        let project = &names[(i * projects / builds.max(1)) % names.len()];
        let mut b = BuildLine {
            build_id: format!("{pipeline}-{:016x}", i * 7_919 + 3),
            pipeline: pipeline.to_owned(),
            project: project.clone(),
            what: if pipeline == "post-merge" {
                "refs/heads/master".to_owned()
            } else {
                format!("{},{}", 1_000_000 + i, 1 + i % 7)
            },
            queued: Vec::new(),
            running: Vec::new(),
            ended: Vec::new(),
            requested_at: at(600 + (i % 300) as i64),
            jobs: Vec::new(),
        };
        for (k, job) in ["lint", "unit-tests", "integration-tests"]
            .iter()
            .enumerate()
        {
            let state = STATES[(i + 3 * k) % STATES.len()];
            let started = !matches!(state, "queued");
            match state {
                "queued" => b.queued.push((*job).to_owned()),
                "pending" | "running" => b.running.push((*job).to_owned()),
                _ => b.ended.push((*job).to_owned()),
            }
            if state == "queued" {
                s.queued_jobs += 1;
            } else if state == "running" || state == "pending" {
                s.running_jobs += 1;
            }
            b.jobs.push(JobLine {
                name: (*job).to_owned(),
                attempt: 1 + u32::from(i % 23 == 0),
                state: state.to_owned(),
                started_at: started.then(|| at(10 + ((i * 13 + k) % 500) as i64)),
            });
        }
        s.builds.push(b);
    }
    const ITEM_STATES: [&str; 7] = [
        "testing", "testing", "passed", "merging", "waiting", "failing", "landing",
    ];
    let mut item = 0;
    for (q, (queue, window, items)) in [
        ("queue:mediawiki", 5u32, 8usize),
        ("queue:operations", 3, 6),
        ("project:analytics/pipelines/job0004", 2, 4),
        ("project:integration/config-0003", 2, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let mut line = QueueLine {
            name: queue.to_owned(),
            window,
            items: Vec::new(),
            waiting: vec![format!(
                "{} 2000{q}: depends on an unmerged change",
                names[(q * 97) % names.len()]
            )],
        };
        for p in 0..items {
            let state = ITEM_STATES[item % ITEM_STATES.len()];
            line.items.push(QueueItemLine {
                position: p + 1,
                project: names[(item * 131) % names.len()].clone(),
                change: format!("{},{}", 1_100_000 + item, 1 + item % 3),
                state: state.to_owned(),
                waits_for: if p == 0 {
                    "its jobs".to_owned()
                } else {
                    format!("the {} item(s) ahead", p)
                },
                speculative: Some(hex40(100 + item)),
                build: Some(format!("gate-{:016x}", 900 + item)),
                jobs: vec![
                    "lint: success".into(),
                    "unit-tests: running".into(),
                    "integration-tests: queued".into(),
                ],
            });
            item += 1;
        }
        s.gate.push(line);
    }
    for (i, (name, scope)) in [
        ("eoy", vec!["promote:production".to_owned()]),
        ("dc-switchover", vec!["land:operations/*".to_owned()]),
        (
            "train",
            vec![
                "promote:staging".to_owned(),
                "land:mediawiki/core".to_owned(),
            ],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        s.freezes.push(FreezeLine {
            name: name.to_owned(),
            scope,
            reason: "Reduced staffing; deploy only with an exception.".to_owned(),
            ticket: Some(format!("T{}", 350_000 + i)),
            config_commit: hex40(50 + i),
        });
    }
    for i in 0..8 {
        s.promotions.push(PromotionLine {
            environment: ["staging", "production"][i % 2].to_owned(),
            image: format!("docker-registry.example.org/service-{i}"),
            digest: format!("sha256:{:064x}", i * 1_000_003 + 5),
            state: if i < 6 { "held" } else { "refused" }.to_owned(),
            reason: if i < 6 {
                "frozen".to_owned()
            } else {
                "no trusted provenance".to_owned()
            },
            freeze: (i < 6).then(|| "eoy".to_owned()),
        });
    }
    s
}

/// The status plus builds listing the bench's own jobs (job `j`, attempt 1, running).
fn with_jobs(base: &Status, ids: &[&str]) -> Status {
    let mut s = base.clone();
    for id in ids {
        s.builds.push(BuildLine {
            build_id: (*id).to_owned(),
            pipeline: "check".into(),
            project: "bench".into(),
            what: "1,1".into(),
            queued: vec![],
            running: vec!["j".into()],
            ended: vec![],
            requested_at: Timestamp::now().to_string(),
            jobs: vec![JobLine {
                name: "j".into(),
                attempt: 1,
                state: "running".into(),
                started_at: Some(Timestamp::now().to_string()),
            }],
        });
    }
    s
}

// ---- metrics ----------------------------------------------------------------------------

/// Records `builds` builds (3 jobs each) across pipelines and results, plus gate queues,
/// actions, Gerrit, registry and ledger calls, as a daemon that ran for a while would.
fn populate_metrics(builds: usize) {
    let m = seakeeper::metrics::get();
    let now = Timestamp::now().as_second();
    const RESULTS: [BuildStatus; 10] = [
        BuildStatus::Success,
        BuildStatus::Success,
        BuildStatus::Success,
        BuildStatus::Success,
        BuildStatus::Success,
        BuildStatus::Failure,
        BuildStatus::Failure,
        BuildStatus::Error,
        BuildStatus::Cancelled,
        BuildStatus::TimedOut,
    ];
    let zero = hex40(0);
    for i in 0..builds {
        let pipeline = PipelineKind::ALL[i % PipelineKind::ALL.len()];
        let requested = Timestamp::from_second(now - 3_600 + (i % 3_000) as i64).unwrap();
        let n = ChangeNumber::try_from(10_000 + i as u64).unwrap();
        let request = BuildRequest {
            build_id: format!("check-{:016x}", i + 1).parse().unwrap(),
            pipeline,
            project: format!("p{:04}", i % 2_200).parse().unwrap(),
            change: Some(n),
            patchset: Some(1u64.try_into().unwrap()),
            git_ref: format!("refs/changes/{:02}/{n}/1", n.get() % 100)
                .parse()
                .unwrap(),
            source_commit: hex40(i + 2).parse().unwrap(),
            config_commit: zero.parse().unwrap(),
            trust: Trust::Untrusted,
            requested_at: requested,
            jobs: vec!["lint".into(), "unit".into(), "integration".into()],
            cause: None,
        };
        let status = RESULTS[i % RESULTS.len()];
        let started = Timestamp::from_second(requested.as_second() + (i % 90) as i64).unwrap();
        let result = BuildResult {
            build_id: request.build_id.clone(),
            status,
            started_at: started,
            finished_at: Timestamp::from_second(started.as_second() + 300).unwrap(),
            jobs: ["lint", "unit", "integration"]
                .iter()
                .enumerate()
                .map(|(k, name)| JobResult {
                    name: (*name).to_owned(),
                    status: if k == 2 { status } else { BuildStatus::Success },
                    duration_ms: 1_000 + ((i * 7_919 + k * 104_729) % 900_000) as u64,
                    log_digest: None,
                    needs: Vec::new(),
                    image: None,
                })
                .collect(),
            artifacts: vec![],
        };
        let starts = vec![
            Some(started),
            Some(started),
            (status != BuildStatus::Cancelled).then_some(started),
        ];
        m.build_recorded(&request, &result, &starts);
        if matches!(pipeline, PipelineKind::Check | PipelineKind::Gate) {
            m.reported(pipeline, requested);
        }
        if pipeline == PipelineKind::Gate {
            m.landed(
                requested,
                Timestamp::from_second(now - (i % 600) as i64).unwrap(),
            );
        }
        if pipeline == PipelineKind::PostMerge {
            for env in ["testing", "staging", "production"] {
                m.entered(
                    env,
                    requested,
                    Timestamp::from_second(now - (i % 60) as i64).unwrap(),
                );
            }
        }
        const KINDS: [&str; 7] = [
            "start_job",
            "cancel_job",
            "record",
            "report",
            "promote",
            "land",
            "sweep",
        ];
        let kind = KINDS[i % KINDS.len()];
        m.action(kind, true, None);
        if i % 97 == 0 {
            m.action(
                kind,
                false,
                Some(["transport", "refused", "conflict"][i % 3]),
            );
        }
        const GERRIT: [&str; 5] = ["query_changes", "review", "submit", "get_account", "stream"];
        m.gerrit_call(
            GERRIT[i % GERRIT.len()],
            Timer::start(),
            (i % 211 == 0).then_some(["status", "transport"][i % 2]),
        );
        const REGISTRY: [&str; 5] = [
            "manifest_get",
            "manifest_put",
            "blob_head",
            "blob_mount",
            "tags",
        ];
        m.registry_call(
            REGISTRY[i % REGISTRY.len()],
            Timer::start(),
            (i % 307 == 0).then_some(["status", "transport"][i % 2]),
        );
        m.ledger_written(Timer::start());
    }
    m.gate_queues([
        ("queue:mediawiki", 8usize, 5u32),
        ("queue:operations", 6, 3),
        ("project:analytics/pipelines/job0004", 4, 2),
        ("project:integration/config-0003", 2, 2),
    ]);
}

// ---- jobs -------------------------------------------------------------------------------

fn spec(id: &str, commands: Vec<String>, timeout_seconds: u64) -> JobSpec {
    JobSpec {
        build_id: id.parse().unwrap(),
        job: "j".into(),
        pipeline: "check".into(),
        project: "bench".parse().unwrap(),
        change: None,
        source: "bench".into(),
        commit: hex40(7).parse().unwrap(),
        image: "debian:bookworm".into(),
        commands,
        env: Default::default(),
        timeout_seconds,
        cpu: None,
        memory: None,
        services: Default::default(),
        secrets: vec![],
        network: false,
        outputs: vec![],
        trust: Trust::Untrusted,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    }
}

/// The first run of 16 or more digits in `s` (the nanosecond time a line holds).
fn stamp(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let j = i + b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if j - i >= 16 {
                return s[i..j].parse().ok();
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

/// Timed requests, alternating between ours and the baseline: `(ours ms, baseline ms)`.
fn timed(addr: &str, path: &str, base: &str, base_path: &str, n: usize) -> (Vec<f64>, Vec<f64>) {
    for _ in 0..n.clamp(2, 20) {
        get(addr, path);
        get(base, base_path);
    }
    let (mut ours, mut baseline) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        let r = get(addr, path);
        ours.push(ms(t.elapsed()));
        assert_eq!(r.status, 200, "{path}");
        let t = Instant::now();
        let r = get(base, base_path);
        baseline.push(ms(t.elapsed()));
        assert_eq!(r.status, 200, "{base_path}");
    }
    (ours, baseline)
}

/// Viewers of one live console: RSS added once all have every one of `lines` lines, and how
/// long that took. The viewers stay connected until the job is cancelled.
fn viewers_memory(
    addr: &str,
    exec: &LocalExecutor,
    s: &JobSpec,
    viewers: usize,
    lines: usize,
) -> (i64, Duration) {
    // The job has printed its lines before anyone watches (the log "so far").
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut n = 0;
        exec.logs(&s.key(), false, &mut |_| n += 1).unwrap();
        if n >= lines || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let before = rss();
    let t = Instant::now();
    let have_all = Arc::new(AtomicUsize::new(0));
    let path = format!("/api/builds/{}/jobs/j/live", s.build_id);
    let clients: Vec<JoinHandle<usize>> = (0..viewers)
        .map(|_| {
            let (addr, path, have_all) = (addr.to_owned(), path.clone(), have_all.clone());
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut sse = Sse::open(&addr, &path);
                    assert_eq!(sse.status, 200);
                    let mut got = 0;
                    let mut told = false;
                    while let Some(e) = sse.next() {
                        match e.event.as_str() {
                            "line" => got += 1,
                            "end" => break,
                            _ => {}
                        }
                        if got >= lines && !told {
                            told = true;
                            have_all.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    if !told {
                        have_all.fetch_add(1, Ordering::SeqCst);
                    }
                    got
                })
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while have_all.load(Ordering::SeqCst) < viewers && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss();
    exec.cancel(&s.key()).unwrap();
    for c in clients {
        let got = c.join().unwrap();
        assert!(got >= lines, "a viewer got {got} of {lines} lines");
    }
    (after as i64 - before as i64, took)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let requests = arg(&args, "--requests", if bench { 300 } else { 5 });
    let builds = arg(&args, "--builds", if bench { 500 } else { 10 });
    let projects = arg(&args, "--projects", if bench { 2_200 } else { 40 });
    let lines = arg(&args, "--lines", if bench { 300 } else { 5 });
    let viewers = arg(&args, "--viewers", if bench { 200 } else { 3 });
    let console_lines = arg(&args, "--console-lines", if bench { 2_000 } else { 20 });
    let recorded = arg(&args, "--recorded", if bench { 5_000 } else { 50 });

    let dir = tempfile::tempdir().unwrap();
    let prepare: Prepare = Arc::new(|_, _| Ok(()));
    let mut config = LocalConfig::new(&dir.path().join("state"));
    config.max_concurrent = 4;
    let exec = Arc::new(LocalExecutor::new(config, prepare).unwrap());
    let sandbox = if exec.isolated() {
        "bubblewrap"
    } else {
        "none"
    };
    let feed = Arc::new(Feed::new());
    feed.publish_executor(exec.clone());
    let ctx = Context::new(
        dir.path().join("ledger"),
        BlobStore::new(dir.path().join("store")),
        feed.clone(),
        None,
        vec![],
    );
    let server = start(ctx, "127.0.0.1:0").unwrap();
    let addr = server.addr().to_string();

    // ---- 1 and 4: the status page and /metrics against the same bytes as static files.
    let status = big_status(builds, projects);
    let distinct: std::collections::BTreeSet<&str> =
        status.builds.iter().map(|b| b.project.as_str()).collect();
    let distinct = distinct.len();
    let gate_items: usize = status.gate.iter().map(|q| q.items.len()).sum();
    feed.publish_status(status.clone());
    populate_metrics(recorded);
    let files = dir.path().join("static");
    std::fs::create_dir_all(&files).unwrap();
    let mut types = HashMap::new();
    let mut sizes = HashMap::new();
    for (path, file) in [
        ("/", "status.html"),
        ("/api/status", "status.json"),
        ("/metrics", "metrics.txt"),
    ] {
        let r = get(&addr, path);
        assert_eq!(r.status, 200, "{path}");
        std::fs::write(files.join(file), &r.body).unwrap();
        types.insert(file.to_owned(), r.content_type.clone());
        sizes.insert(path, r.body.len());
    }
    let statics = StaticServer::start(&files, types);
    for (path, file) in [
        ("/", "status.html"),
        ("/api/status", "status.json"),
        ("/metrics", "metrics.txt"),
    ] {
        let (a, b) = (get(&addr, path), get(&statics.addr, &format!("/{file}")));
        assert_eq!(a.content_type, b.content_type);
        // /metrics may differ between scrapes (histogram sums as text); the status does not.
        assert!(
            a.body.len().abs_diff(b.body.len()) <= a.body.len() / 100
                && (path == "/metrics" || a.body == b.body),
            "the static server serves the same bytes as {path}"
        );
    }
    let (page, page_base) = timed(&addr, "/", &statics.addr, "/status.html", requests);
    let (json, json_base) = timed(
        &addr,
        "/api/status",
        &statics.addr,
        "/status.json",
        requests,
    );
    let (metrics, metrics_base) = timed(&addr, "/metrics", &statics.addr, "/metrics.txt", requests);
    drop(statics);

    // ---- 2. Live log latency: SSE client vs following the log file in-process.
    let live = spec(
        "bench-live",
        vec![format!(
            "sleep 1; i=0; while [ $i -lt {lines} ]; do date +%s%N; sleep 0.01; i=$((i+1)); done"
        )],
        120,
    );
    exec.start(&live).unwrap();
    feed.publish_status(with_jobs(&status, &["bench-live"]));
    let floor = {
        let (exec, key) = (exec.clone(), live.key());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            exec.logs(&key, true, &mut |l| {
                let now = now_ns();
                if let Some(t) = stamp(&l.text) {
                    lat.push((now - t) as f64 / 1e6);
                }
            })
            .unwrap();
            lat
        })
    };
    let web = {
        let path = format!("/api/builds/{}/jobs/j/live", live.build_id);
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut sse = Sse::open(&addr, &path);
            assert_eq!(sse.status, 200, "{path}");
            let (mut lat, mut end) = (Vec::new(), String::new());
            while let Some(e) = sse.next() {
                let now = now_ns();
                match e.event.as_str() {
                    "line" => {
                        if let Some(t) = stamp(&e.data) {
                            lat.push((now - t) as f64 / 1e6);
                        }
                    }
                    "end" => {
                        end = e.data;
                        break;
                    }
                    _ => {}
                }
            }
            (lat, end)
        })
    };
    exec.wait(&live.key(), Some(Duration::from_secs(120)))
        .unwrap();
    let floor = floor.join().unwrap();
    let (web_lat, end) = web.join().unwrap();
    assert_eq!(web_lat.len(), lines, "lines over SSE (end: {end})");
    assert_eq!(floor.len(), lines, "lines followed in-process");

    // ---- 3. Memory of N viewers of one console vs 1 viewer (each its own job).
    let console_job = |id: &str| {
        spec(
            id,
            vec![format!(
                "i=0; while [ $i -lt {console_lines} ]; do echo \"$i building module $i of \
                 {console_lines}: compiling src/lib/module_$i.rs with the release profile\"; \
                 i=$((i+1)); done; sleep 600"
            )],
            900,
        )
    };
    let one = console_job("bench-mem-1");
    let many = console_job("bench-mem-n");
    exec.start(&one).unwrap();
    exec.start(&many).unwrap();
    feed.publish_status(with_jobs(&status, &["bench-mem-1", "bench-mem-n"]));
    let (one_delta, one_took) = viewers_memory(&addr, &exec, &one, 1, console_lines);
    let (many_delta, many_took) = viewers_memory(&addr, &exec, &many, viewers, console_lines);
    server.stop();

    // ---- Report.
    println!(
        "seakeeper web (axum, 2 worker threads), local executor sandbox: {sandbox}; {requests} \
         requests per route, alternating with the baseline; whole request times \
         (connect, request, response read to its end)\n"
    );
    println!(
        "status: {builds} builds in flight x 3 jobs ({} running, {} queued), {gate_items} gate \
         items in {} queues, {} freezes, {} promotions held or refused; projects from {projects} \
         names, {distinct} of them with a build (the status page lists projects only through \
         their builds in flight: idle projects are not on it)",
        status.running_jobs,
        status.queued_jobs,
        status.gate.len(),
        status.freezes.len(),
        status.promotions.len(),
    );
    println!(
        "sizes: / {} kB, /api/status {} kB, /metrics {} kB ({recorded} builds recorded)\n",
        sizes["/"] / 1024,
        sizes["/api/status"] / 1024,
        sizes["/metrics"] / 1024
    );
    println!(
        "{:<44} {:>9} {:>9} {:>11} {:>11} {:>9}",
        "request", "p50 ms", "p99 ms", "static p50", "static p99", "p99 ratio"
    );
    let row = |what: &str, ours: &[f64], base: &[f64]| {
        let (p99, b99) = (percentile(ours, 0.99), percentile(base, 0.99));
        println!(
            "{:<44} {:>9.2} {:>9.2} {:>11.2} {:>11.2} {:>8.2}x",
            what,
            percentile(ours, 0.5),
            p99,
            percentile(base, 0.5),
            b99,
            p99 / b99
        );
        (p99, b99)
    };
    let (page99, page_b99) = row("GET / (render + serve)", &page, &page_base);
    let (json99, json_b99) = row("GET /api/status (serialize + serve)", &json, &json_base);
    let (metrics99, metrics_b99) = row("GET /metrics (encode + serve)", &metrics, &metrics_base);

    let (w50, w99) = (percentile(&web_lat, 0.5), percentile(&web_lat, 0.99));
    let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
    println!("\nlive log latency, {lines} lines 10 ms apart (printed time to arrival), end: {end}");
    println!("{:<44} {:>9} {:>9} {:>9}", "", "p50 ms", "p99 ms", "max ms");
    println!(
        "{:<44} {:>9.2} {:>9.2} {:>9.2}",
        "SSE client of /api/builds/…/live",
        w50,
        w99,
        percentile(&web_lat, 1.0)
    );
    println!(
        "{:<44} {:>9.2} {:>9.2} {:>9.2}",
        "Executor::logs(follow) in-process (floor)",
        f50,
        f99,
        percentile(&floor, 1.0)
    );
    println!(
        "{:<44} {:>9.2} {:>9.2}",
        "added by the web layer",
        w50 - f50,
        w99 - f99
    );

    println!(
        "\nlive console viewers, {console_lines} lines already in the log (VmRSS of this \
         process, client threads included: an upper bound)"
    );
    println!(
        "{:<44} {:>10.1} MB added, all lines after {:.0} ms",
        "1 viewer (baseline)",
        mb(one_delta),
        ms(one_took)
    );
    println!(
        "{:<44} {:>10.1} MB added, all lines after {:.0} ms ({:.1} kB a viewer over the one)",
        format!("{viewers} viewers"),
        mb(many_delta),
        ms(many_took),
        (many_delta - one_delta) as f64 / 1024.0 / (viewers.saturating_sub(1).max(1)) as f64
    );

    println!("\nsummary");
    println!(
        "{:<50} {:>16} {:>32} {:>6}",
        "what", "measured", "target", ""
    );
    println!(
        "{:<50} {:>13.2} ms {:>32} {:>6}",
        "1. GET / p99",
        page99,
        format!("< 20 ms, <= 2x static ({:.2})", page99 / page_b99),
        pass(page99 < 20.0 && page99 <= 2.0 * page_b99)
    );
    println!(
        "{:<50} {:>13.2} ms {:>32} {:>6}",
        "1. GET /api/status p99",
        json99,
        format!("< 20 ms, <= 2x static ({:.2})", json99 / json_b99),
        pass(json99 < 20.0 && json99 <= 2.0 * json_b99)
    );
    println!(
        "{:<50} {:>13.2} ms {:>32} {:>6}",
        format!("2. live log p99 (floor {f99:.1} ms)"),
        w99,
        "< 100 ms",
        pass(w99 < 100.0)
    );
    println!(
        "{:<50} {:>13.1} MB {:>32} {:>6}",
        format!(
            "3. {viewers} viewers, RSS added (1 viewer: {:.1} MB)",
            mb(one_delta)
        ),
        mb(many_delta),
        "< 50 MB",
        pass(mb(many_delta) < 50.0)
    );
    println!(
        "{:<50} {:>13.2} ms {:>32} {:>6}",
        format!("4. GET /metrics p99 (static {metrics_b99:.2} ms)"),
        metrics99,
        "< 10 ms",
        pass(metrics99 < 10.0)
    );
}
