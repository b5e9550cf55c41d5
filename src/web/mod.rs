//! The web server: status, builds, logs (stored and live), ledger commits, traces, changes,
//! each as an HTML page and as JSON under `/api/`, and the Gerrit webhook. axum on its own
//! tokio runtime, on its own thread: nothing here blocks the reconcile loop, and the loop is
//! only ever told things through the daemon's [`Feed`] (a webhook event, like a stream event,
//! is a hint).
//!
//! Read-only except for the webhook, which needs the shared token from the secrets file. Reads
//! of the ledger run on blocking threads under the ledger's read guard. Names in URLs are
//! parsed into their newtypes first; what does not parse or is not there is a 404 page.

// A handler's early answer is a whole `Response`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod ansi;
mod live;
mod pages;
pub mod views;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use maud::Markup;

use crate::daemon::{Feed, Status};
use crate::gerrit::StreamItem;
use crate::ledger::Ledger;
use crate::model::{BuildId, ChangeNumber, Digest};
use crate::secrets::WebhookSecret;
use crate::store::BlobStore;

pub use live::MAX_BYTES as LIVE_MAX_BYTES;

/// The web server failed to start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The address could not be bound.
    #[error("web.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or its thread could not be made.
    #[error("web server: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What every handler reads.
pub struct Context {
    /// The ledger repository (opened afresh per request: the writer merges packs under it).
    pub ledger_dir: PathBuf,
    /// Stored logs and files.
    pub store: BlobStore,
    /// The daemon's status, trusted keys, executor and webhook intake.
    pub feed: Arc<Feed>,
    /// The webhook's token; without one the webhook refuses everything.
    pub webhook: Option<WebhookSecret>,
    /// Secret values masked in every log shown.
    pub secrets: Arc<Vec<String>>,
    /// A read-only replica (`seakeeper web`): ready when its ledger can be read; no loop,
    /// executor or Gerrit of its own to wait for.
    pub read_only: bool,
    /// Live consoles.
    live: live::Hub,
}

impl Context {
    /// A context; see the fields.
    pub fn new(
        ledger_dir: PathBuf,
        store: BlobStore,
        feed: Arc<Feed>,
        webhook: Option<WebhookSecret>,
        secrets: Vec<String>,
    ) -> Context {
        Context {
            ledger_dir,
            store,
            feed,
            webhook,
            secrets: Arc::new(secrets),
            read_only: false,
            live: live::Hub::default(),
        }
    }
}

type Ctx = Arc<Context>;

/// A running web server.
pub struct Server {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it (open streams are closed).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How long open responses get to end when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Starts serving `ctx` on `listen` (`127.0.0.1:0` picks a free port).
pub fn start(ctx: Context, listen: &str) -> Result<Server, WebError> {
    let bind = |source| WebError::Bind {
        addr: listen.to_owned(),
        source,
    };
    let std_listener = std::net::TcpListener::bind(listen).map_err(bind)?;
    std_listener.set_nonblocking(true).map_err(bind)?;
    let addr = std_listener.local_addr().map_err(bind)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("web")
        .enable_all()
        .build()
        .map_err(WebError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(Arc::new(ctx));
    let thread = std::thread::Builder::new()
        .name("web".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!("web server: {e}");
                        return;
                    }
                };
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    let _ = rx.await;
                    let _ = stop_tx.send(true);
                });
                let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                    let _ = rx.wait_for(|s| *s).await;
                };
                // A graceful shutdown waits for every response to end, and an event stream
                // (a status page left open) never does: after a short grace, stop anyway.
                let served =
                    axum::serve(listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
                let grace = async {
                    stopped(stop_rx).await;
                    tokio::time::sleep(SHUTDOWN_GRACE).await;
                };
                tokio::select! {
                    r = served => if let Err(e) = r {
                        tracing::error!("web server: {e}");
                    },
                    () = grace => {}
                }
            });
            // Open streams (live consoles, status) end with the runtime.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(WebError::Runtime)?;
    tracing::info!("web server on http://{addr}/");
    Ok(Server {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

/// Every route.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status_json))
        .route("/api/status/events", get(status_events))
        .route("/builds/{id}", get(build_page))
        .route("/api/builds/{id}", get(build_json))
        .route("/builds/{id}/jobs/{job}/live", get(live_page))
        .route("/api/builds/{id}/jobs/{job}/live", get(live_events))
        .route("/logs/{digest}", get(log_page))
        .route("/api/logs/{digest}", get(log_raw))
        .route("/ledger/{commit}", get(commit_page))
        .route("/api/ledger/{commit}", get(commit_json))
        .route("/trace/{what}", get(trace_page))
        .route("/api/trace/{what}", get(trace_json))
        .route("/changes/{number}", get(change_page))
        .route("/api/changes/{number}", get(change_json))
        .route("/webhook/gerrit", post(webhook))
        .fallback(|| async { not_found("There is no such page.") })
        .with_state(ctx)
}

/// How old the daemon's last pass may be for it to count as ready.
const READY_PASS_AGE: Duration = Duration::from_secs(300);

/// Ready: a valid config in use, a recent pass, a ledger it may write (no alert, its
/// directory writable), Gerrit readable, an executor. `200 ready`, or `503` with each reason
/// on a line (what a load balancer or Kubernetes' readiness probe reads).
async fn readyz(State(ctx): State<Ctx>) -> Response {
    if ctx.read_only {
        return match read_ledger(&ctx, |_, _| Ok(())).await {
            Ok(()) => (StatusCode::OK, "ready\n").into_response(),
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "not ready:\nthe ledger at {} cannot be read\n",
                    ctx.ledger_dir.display()
                ),
            )
                .into_response(),
        };
    }
    let status = ctx.feed.status();
    let mut problems: Vec<String> = Vec::new();
    if status.updated_at.is_empty() {
        problems.push("no reconcile pass has run yet".into());
    } else {
        // A time that does not read is no proof of a recent pass.
        match status.updated_at.parse::<jiff::Timestamp>() {
            Ok(at) => {
                let age = jiff::Timestamp::now().duration_since(at);
                if age.as_secs() > READY_PASS_AGE.as_secs() as i64 {
                    problems.push(format!(
                        "the last reconcile pass was at {}",
                        status.updated_at
                    ));
                }
            }
            Err(_) => problems.push(format!(
                "the last reconcile pass has an unreadable time: {:?}",
                status.updated_at
            )),
        }
    }
    if status.config_in_use.is_empty() {
        problems.push("no valid config is loaded".into());
    }
    if let Some(alert) = &status.ledger_alert {
        problems.push(format!("the ledger is not written: {alert}"));
    }
    if let Some(g) = status.gerrit.as_ref().filter(|g| !g.reachable) {
        problems.push(format!(
            "Gerrit at {} cannot be read: {}",
            g.url,
            g.error.as_deref().unwrap_or("no answer")
        ));
    }
    if ctx.feed.executor().is_none() {
        problems.push("no executor".into());
    }
    let dir = ctx.ledger_dir.clone();
    let writable = tokio::task::spawn_blocking(move || {
        use std::os::unix::ffi::OsStrExt as _;
        std::ffi::CString::new(dir.as_os_str().as_bytes())
            // SAFETY: access only reads the NUL-terminated path it is given.
            .is_ok_and(|c| unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0)
    })
    .await
    .unwrap_or(false);
    if !writable {
        problems.push(format!(
            "the ledger directory {} is not writable",
            ctx.ledger_dir.display()
        ));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", problems.join("\n")),
        )
            .into_response()
    }
}

/// The largest webhook body read (a Gerrit event is a few kB).
const WEBHOOK_LIMIT: usize = 1 << 20;

fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, pages::not_found(what)).into_response()
}

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::warn!("web: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::page(
            "error",
            maud::html! { h1 { "Error" } p { (e.to_string()) } },
        ),
    )
        .into_response()
}

/// Runs a ledger read on a blocking thread, under the ledger's read guard.
async fn read_ledger<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&Ledger, &Context) -> Result<T, crate::ledger::LedgerError> + Send + 'static,
) -> Result<T, Response> {
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = crate::ledger::read_guard();
        let ledger = Ledger::open(&ctx.ledger_dir)?;
        f(&ledger, &ctx)
    })
    .await
    .map_err(failed)?
    .map_err(failed)
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}

/// `/metrics`: Prometheus' text format, OpenMetrics when the scraper asks for it.
async fn metrics(headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = crate::metrics::render(accept);
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

// --- status ---

async fn status_page(State(ctx): State<Ctx>) -> Markup {
    pages::status_page(&ctx.feed.status())
}

async fn status_json(State(ctx): State<Ctx>) -> Response {
    json(&*ctx.feed.status())
}

/// The status fragment, again whenever the daemon publishes a status that differs.
async fn status_events(
    State(ctx): State<Ctx>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = ctx.feed.subscribe();
    let stream = futures_util::stream::unfold((rx, true), |(mut rx, first)| async move {
        if !first && rx.changed().await.is_err() {
            return None;
        }
        let status: Arc<Status> = rx.borrow_and_update().clone();
        let html = pages::status_fragment(&status).into_string();
        Some((Ok(Event::default().event("status").data(html)), (rx, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// --- builds ---

fn parse_build(id: &str) -> Result<BuildId, Response> {
    id.parse::<BuildId>()
        .map_err(|_| not_found(&format!("{id:?} is not a build id.")))
}

async fn build_view(ctx: &Ctx, id: &str) -> Result<views::BuildView, Response> {
    let id = parse_build(id)?;
    let status = ctx.feed.status();
    let missing = format!("The ledger has no build {id}.");
    read_ledger(ctx, move |l, _| views::build(l, &id, &status))
        .await?
        .ok_or_else(|| not_found(&missing))
}

async fn build_page(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match build_view(&ctx, &id).await {
        Ok(v) => pages::build_page(&v).into_response(),
        Err(r) => r,
    }
}

async fn build_json(State(ctx): State<Ctx>, Path(id): Path<String>) -> Response {
    match build_view(&ctx, &id).await {
        Ok(v) => json(&v),
        Err(r) => r,
    }
}

// --- live consoles ---

/// The key of a job of a build in flight (its latest attempt), when the daemon runs it.
fn live_key(ctx: &Ctx, id: &BuildId, job: &str) -> Option<crate::model::JobKey> {
    let status = ctx.feed.status();
    let line = status.builds.iter().find(|b| b.build_id == id.as_str())?;
    let j = line.jobs.iter().find(|j| j.name == job)?;
    Some(crate::apply::job_key(id, job, j.attempt))
}

/// How long a live console waits for a queued job to start.
const QUEUED_WAIT: Duration = Duration::from_secs(600);

/// The key and attempt of job `job` of build `id` once the executor has it (not `queued`);
/// `None` when the build leaves the daemon's hands or `QUEUED_WAIT` passes first.
async fn started(ctx: &Ctx, id: &BuildId, job: &str) -> Option<(crate::model::JobKey, u32)> {
    let mut rx = ctx.feed.subscribe();
    let deadline = tokio::time::Instant::now() + QUEUED_WAIT;
    loop {
        let status = rx.borrow_and_update().clone();
        let line = status.builds.iter().find(|b| b.build_id == id.as_str())?;
        let j = line.jobs.iter().find(|j| j.name == job)?;
        if j.state != "queued" {
            return Some((crate::apply::job_key(id, job, j.attempt), j.attempt));
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            _ => return None,
        }
    }
}

async fn live_page(State(ctx): State<Ctx>, Path((id, job)): Path<(String, String)>) -> Response {
    let id = match parse_build(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    if live_key(&ctx, &id, &job).is_none() {
        // Ended (or never ran here): the build page links its stored log.
        return match build_view(&ctx, id.as_str()).await {
            Ok(_) => axum::response::Redirect::to(&format!("/builds/{id}")).into_response(),
            Err(r) => r,
        };
    }
    let status = ctx.feed.status();
    let state = status
        .builds
        .iter()
        .find(|b| b.build_id == id.as_str())
        .and_then(|b| b.jobs.iter().find(|j| j.name == job))
        .map_or("running", |j| j.state.as_str());
    pages::live_page(
        id.as_str(),
        &job,
        state,
        &format!("/api/builds/{id}/jobs/{job}/live"),
    )
    .into_response()
}

/// A job's console as Server-Sent Events: `line` events (rendered HTML; `id` is
/// `<attempt>:<line>`, so a reconnecting browser resumes with `Last-Event-ID` where it was, and
/// a new attempt starts over), `skipped`, and one `end`. A job still queued is waited for
/// inside the stream (keep-alives flow meanwhile).
async fn live_events(
    State(ctx): State<Ctx>,
    Path((id, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let id = match parse_build(&id) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let (Some(_), Some(executor)) = (live_key(&ctx, &id, &job), ctx.feed.executor()) else {
        return not_found(&format!(
            "Job {job} of build {id} is not running on this server; its log is on the build's \
             page once it ends."
        ));
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(':'))
        .and_then(|(a, n)| Some((a.parse::<u32>().ok()?, n.parse::<usize>().ok()?)));
    struct S {
        ctx: Ctx,
        executor: Arc<dyn crate::executor::Executor>,
        id: BuildId,
        job: String,
        resume: Option<(u32, usize)>,
        console: Option<(
            u32,
            Arc<live::Console>,
            tokio::sync::watch::Receiver<live::Progress>,
        )>,
        next: usize,
        skipped_told: usize,
        pending: std::collections::VecDeque<Event>,
        done: bool,
    }
    let state = S {
        ctx: ctx.clone(),
        executor,
        id,
        job,
        resume,
        console: None,
        next: 0,
        skipped_told: 0,
        pending: Default::default(),
        done: false,
    };
    let end = |state: &str, detail: &str| {
        Event::default()
            .event("end")
            .data(serde_json::json!({"state": state, "detail": detail}).to_string())
    };
    let stream = futures_util::stream::unfold(state, move |mut s| async move {
        loop {
            if let Some(e) = s.pending.pop_front() {
                return Some((Ok::<_, Infallible>(e), s));
            }
            if s.done {
                return None;
            }
            if s.console.is_none() {
                let Some((key, attempt)) = started(&s.ctx, &s.id, &s.job).await else {
                    s.pending.push_back(end(
                        "error",
                        "the job did not start in time, or left this server",
                    ));
                    s.done = true;
                    continue;
                };
                let Some(console) =
                    s.ctx
                        .live
                        .console(s.executor.clone(), &key, s.ctx.secrets.clone())
                else {
                    s.pending.push_back(end(
                        "error",
                        "too many live consoles are open on this server; try again later",
                    ));
                    s.done = true;
                    continue;
                };
                s.next = match s.resume {
                    Some((a, n)) if a == attempt => n.saturating_add(1),
                    _ => 0,
                };
                let rx = console.watch();
                s.console = Some((attempt, console, rx));
            }
            let (attempt, console, rx) = s.console.as_mut().expect("set above");
            let progress = rx.borrow_and_update().clone();
            // A bounded batch at a time: a late viewer of a long log does not copy all of it.
            for line in console.lines_from(s.next, LIVE_BATCH) {
                // An event without data is dropped by browsers: a blank line is a space.
                let data = if line.is_empty() { " " } else { &*line };
                s.pending.push_back(
                    Event::default()
                        .event("line")
                        .id(format!("{attempt}:{}", s.next))
                        .data(data),
                );
                s.next += 1;
            }
            if !s.pending.is_empty() {
                continue;
            }
            if progress.skipped > s.skipped_told {
                s.skipped_told = progress.skipped;
                s.pending.push_back(
                    Event::default()
                        .event("skipped")
                        .data(progress.skipped.to_string()),
                );
                continue;
            }
            if let Some(ended) = &progress.ended
                && s.next >= progress.lines
            {
                let state = ended.split(':').next().unwrap_or("error").to_owned();
                s.pending.push_back(end(&state, ended));
                s.done = true;
                continue;
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Lines of a live console sent per step.
const LIVE_BATCH: usize = 256;

// --- stored logs ---

/// Lines of a stored log rendered on its page (the raw log has all of them).
const PAGE_LINES: usize = 20_000;

fn parse_digest(d: &str) -> Result<Digest, Response> {
    d.parse::<Digest>()
        .map_err(|_| not_found(&format!("{d:?} is not a sha256 digest.")))
}

/// Stored logs read and rendered at once (each may be tens of MB).
static LOG_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Reads a stored log on a blocking thread (at most [`LOG_READS`] at once) and hands its
/// text to `f` there.
async fn with_log<T: Send + 'static>(
    ctx: &Ctx,
    d: &str,
    f: impl FnOnce(&Digest, &str, &[String]) -> T + Send + 'static,
) -> Result<T, Response> {
    let digest = parse_digest(d)?;
    let _permit = LOG_READS.acquire().await.map_err(failed)?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let bytes = ctx
            .store
            .read(&digest)
            .map_err(|_| not_found(&format!("No log {digest} is stored here.")))?;
        Ok(f(&digest, &String::from_utf8_lossy(&bytes), &ctx.secrets))
    })
    .await
    .map_err(failed)?
}

async fn log_page(State(ctx): State<Ctx>, Path(d): Path<String>) -> Response {
    let rendered = with_log(&ctx, &d, |digest, text, secrets| {
        let mut style = ansi::Style::default();
        let mut lines = Vec::new();
        let mut truncated = false;
        for (i, l) in text.lines().enumerate() {
            if i >= PAGE_LINES {
                truncated = true;
                break;
            }
            // Stored lines are `<time> <text>` as the executor wrote them.
            let l = l.split_once(' ').map_or(l, |(t, rest)| {
                if t.len() >= 20 && t.as_bytes().get(4) == Some(&b'-') {
                    rest
                } else {
                    l
                }
            });
            let (m, next) = ansi::line(&crate::apply::mask_secrets(l, secrets), style);
            style = next;
            lines.push(m.into_string());
        }
        pages::log_page(digest.as_str(), &lines, truncated)
    })
    .await;
    match rendered {
        Ok(m) => m.into_response(),
        Err(r) => r,
    }
}

async fn log_raw(State(ctx): State<Ctx>, Path(d): Path<String>) -> Response {
    match with_log(&ctx, &d, |_, text, secrets| {
        crate::apply::mask_secrets(text, secrets)
    })
    .await
    {
        Ok(text) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            text,
        )
            .into_response(),
        Err(r) => r,
    }
}

// --- ledger commits ---

async fn commit_view(ctx: &Ctx, c: &str) -> Result<views::CommitView, Response> {
    let id = (c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| gix::ObjectId::from_hex(c.as_bytes()).ok())
        .flatten()
        .ok_or_else(|| not_found(&format!("{c:?} is not a commit id (40 hex digits).")))?;
    let keys = ctx.feed.keys();
    let missing = format!("The ledger has no commit {c}.");
    read_ledger(ctx, move |l, ctx| {
        views::commit(l, &ctx.ledger_dir, id, keys.as_ref())
    })
    .await?
    .ok_or_else(|| not_found(&missing))
}

async fn commit_page(State(ctx): State<Ctx>, Path(c): Path<String>) -> Response {
    match commit_view(&ctx, &c).await {
        Ok(v) => pages::commit_page(&v).into_response(),
        Err(r) => r,
    }
}

async fn commit_json(State(ctx): State<Ctx>, Path(c): Path<String>) -> Response {
    match commit_view(&ctx, &c).await {
        Ok(v) => json(&v),
        Err(r) => r,
    }
}

// --- traces and changes ---

async fn trace_of(ctx: &Ctx, what: &str) -> Result<crate::ledger::Trace, Response> {
    let w = what.to_owned();
    let missing = format!("The ledger knows no digest or build {what:?}.");
    read_ledger(ctx, move |l, _| views::trace(l, &w))
        .await?
        .ok_or_else(|| not_found(&missing))
}

async fn trace_page(State(ctx): State<Ctx>, Path(what): Path<String>) -> Response {
    match trace_of(&ctx, &what).await {
        Ok(t) => pages::trace_page(&what, &t).into_response(),
        Err(r) => r,
    }
}

async fn trace_json(State(ctx): State<Ctx>, Path(what): Path<String>) -> Response {
    match trace_of(&ctx, &what).await {
        Ok(t) => json(&t),
        Err(r) => r,
    }
}

async fn change_views(ctx: &Ctx, n: &str) -> Result<(u32, Vec<views::ChangeView>), Response> {
    let number = n
        .parse::<u32>()
        .ok()
        .and_then(|n| ChangeNumber::try_from(u64::from(n)).ok())
        .ok_or_else(|| not_found(&format!("{n:?} is not a change number.")))?;
    let v = read_ledger(ctx, move |l, _| views::change(l, number)).await?;
    if v.is_empty() {
        return Err(not_found(&format!(
            "The ledger has no build of change {n}."
        )));
    }
    Ok((number.get(), v))
}

async fn change_page(State(ctx): State<Ctx>, Path(n): Path<String>) -> Response {
    match change_views(&ctx, &n).await {
        Ok((n, v)) => pages::change_page(n, &v).into_response(),
        Err(r) => r,
    }
}

async fn change_json(State(ctx): State<Ctx>, Path(n): Path<String>) -> Response {
    match change_views(&ctx, &n).await {
        Ok((_, v)) => json(&v),
        Err(r) => r,
    }
}

// --- the webhook ---

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The token a request presents: `Authorization: Bearer …`, the password of
/// `Authorization: Basic …`, or `?token=…` (for webhook plugins that only take a URL).
fn presented(headers: &HeaderMap, query: &TokenQuery) -> Option<String> {
    use base64::Engine as _;
    if let Some(h) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = h.strip_prefix("Bearer ") {
            return Some(t.trim().to_owned());
        }
        if let Some(b) = h.strip_prefix("Basic ") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()?;
            let s = String::from_utf8(raw).ok()?;
            return s.split_once(':').map(|(_, p)| p.to_owned());
        }
    }
    query.token.clone()
}

/// `POST /webhook/gerrit`: one event (stream-events JSON, either project encoding); a hint
/// to the loop, never a decision.
async fn webhook(
    State(ctx): State<Ctx>,
    Query(q): Query<TokenQuery>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(secret) = &ctx.webhook else {
        return (
            StatusCode::FORBIDDEN,
            "the webhook is off: no webhook token in the secrets file\n",
        )
            .into_response();
    };
    if !presented(&headers, &q).is_some_and(|t| secret.matches(&t)) {
        tracing::warn!("webhook: refused a request without the right token");
        return (StatusCode::UNAUTHORIZED, "wrong or missing token\n").into_response();
    }
    // The body is read only once the token is known good, and only so far.
    let Ok(body) = axum::body::to_bytes(body, WEBHOOK_LIMIT).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is over 1 MB or broken\n",
        )
            .into_response();
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return (StatusCode::BAD_REQUEST, "the body is not UTF-8\n").into_response();
    };
    match crate::gerrit::parse_line(text.trim()) {
        Ok(e) => {
            if ctx.feed.hint(StreamItem::Event(e)) {
                StatusCode::NO_CONTENT.into_response()
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no reconcile loop runs here\n",
                )
                    .into_response()
            }
        }
        Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    }
}
