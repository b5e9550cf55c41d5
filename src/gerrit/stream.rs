//! Events are hints: `gerrit stream-events` read from a command (by default
//! `ssh -p 29418 USER@HOST gerrit stream-events`), restarted with backoff whenever it ends, and
//! the same JSON accepted from Gerrit's webhooks plugin over HTTP. A malformed line is reported
//! and skipped; it never stops the stream. After a reconnect (events may have been missed) and
//! on `dropped-output` the consumer resyncs from refs.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::events::{DomainEvent, parse_line};

/// Something the event stream reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem {
    /// The stream (re)started. Anything may have happened while it was down: resync.
    Connected {
        /// 1 for the first connection, then counting reconnects.
        attempt: u64,
    },
    /// An event.
    Event(DomainEvent),
    /// A line that could not be read; the stream goes on.
    Malformed {
        /// Its line number within this connection (1-based), or 0 for a webhook body.
        line: u64,
        /// Why.
        error: String,
    },
    /// The stream ended; it is restarted after `retry_in`.
    Disconnected {
        /// Why it ended.
        reason: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
}

/// How the stream is run.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The command, run with `sh -c`.
    pub command: String,
    /// The first wait after a failure; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// A connection that lived this long resets the backoff.
    pub healthy_after: Duration,
    /// The stream counts as connected (and [`StreamItem::Connected`] is sent) at its first
    /// line or once it has stayed up this long, so a command that fails at once (bad
    /// credentials) does not trigger a resync each time.
    pub connected_after: Duration,
}

impl StreamOptions {
    /// Defaults for `command`: 1 s doubling to 60 s, reset after 30 s of health.
    pub fn new(command: &str) -> StreamOptions {
        StreamOptions {
            command: command.to_owned(),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            healthy_after: Duration::from_secs(30),
            connected_after: Duration::from_secs(2),
        }
    }
}

/// The default command for a Gerrit at `url` and account `user`:
/// `ssh -p 29418 USER@HOST gerrit stream-events`.
pub fn default_command(url: &str, user: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', ':']).next().filter(|h| !h.is_empty())?;
    let safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    (safe(host) && safe(user) && !user.is_empty()).then(|| {
        format!(
            "ssh -o BatchMode=yes -o ServerAliveInterval=15 -p 29418 {user}@{host} gerrit stream-events"
        )
    })
}

/// A running stream reader. Dropping it does not stop it; call [`EventStream::stop`].
pub struct EventStream {
    stop: Arc<AtomicBool>,
    child: Arc<Mutex<Option<Child>>>,
    thread: Option<JoinHandle<()>>,
}

impl EventStream {
    /// Starts reading; everything goes to `tx` until [`EventStream::stop`] or until the
    /// receiver is gone.
    pub fn spawn(options: StreamOptions, tx: Sender<StreamItem>) -> EventStream {
        let stop = Arc::new(AtomicBool::new(false));
        let child: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let (stop2, child2) = (stop.clone(), child.clone());
        let thread = std::thread::Builder::new()
            .name("gerrit-stream".into())
            .spawn(move || run(options, tx, stop2, child2))
            .expect("spawning the stream thread");
        EventStream {
            stop,
            child,
            thread: Some(thread),
        }
    }

    /// Stops the command and the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(c) = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            kill_group(c);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Kills the command and everything it started (it runs in its own process group).
fn kill_group(c: &mut Child) {
    // SAFETY: signals the process group of a child we started with process_group(0).
    unsafe {
        libc::killpg(c.id() as i32, libc::SIGKILL);
    }
    let _ = c.kill();
}

/// The longest line read (a longer one is reported as malformed and skipped).
const MAX_LINE: usize = 16 << 20;

fn run(
    options: StreamOptions,
    tx: Sender<StreamItem>,
    stop: Arc<AtomicBool>,
    slot: Arc<Mutex<Option<Child>>>,
) {
    let mut backoff = options.initial_backoff;
    let mut attempt = 0u64;
    while !stop.load(Ordering::SeqCst) {
        attempt += 1;
        let started = Instant::now();
        let reason = match Command::new("sh")
            .args(["-c", &options.command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
        {
            Err(e) => format!("could not start {:?}: {e}", options.command),
            Ok(mut child) => {
                let stdout = child.stdout.take().expect("stdout is piped");
                let stderr = child.stderr.take().expect("stderr is piped");
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
                if stop.load(Ordering::SeqCst) {
                    // stop() may have run before the child was in the slot.
                    if let Some(c) = slot.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                        kill_group(c);
                    }
                }
                let err_thread = std::thread::spawn(move || {
                    let mut s = String::new();
                    let _ = stderr.take(1 << 20).read_to_string(&mut s);
                    s
                });
                // Connected: at the first line, or after `connected_after` of staying up.
                let announced = Arc::new(AtomicBool::new(false));
                let (a2, tx2, alive) = (
                    announced.clone(),
                    tx.clone(),
                    Arc::new(AtomicBool::new(true)),
                );
                let alive2 = alive.clone();
                let wait = options.connected_after;
                std::thread::spawn(move || {
                    std::thread::sleep(wait);
                    if alive2.load(Ordering::SeqCst) && !a2.swap(true, Ordering::SeqCst) {
                        let _ = tx2.send(StreamItem::Connected { attempt });
                    }
                });
                let mut reader = BufReader::new(stdout);
                let mut line = Vec::new();
                let mut n = 0u64;
                let mut read_error = None;
                let mut gone = false;
                loop {
                    line.clear();
                    match (&mut reader)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut line)
                    {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => {
                            read_error = Some(e.to_string());
                            break;
                        }
                    }
                    n += 1;
                    if !announced.swap(true, Ordering::SeqCst)
                        && tx.send(StreamItem::Connected { attempt }).is_err()
                    {
                        gone = true;
                        break;
                    }
                    if line.len() >= MAX_LINE && !line.ends_with(b"\n") {
                        // Skip the rest of an overlong line.
                        let mut rest = Vec::new();
                        let _ = reader.read_until(b'\n', &mut rest);
                        let item = StreamItem::Malformed {
                            line: n,
                            error: format!("a line longer than {MAX_LINE} bytes"),
                        };
                        if tx.send(item).is_err() {
                            gone = true;
                            break;
                        }
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line);
                    if text.trim().is_empty() {
                        continue;
                    }
                    let item = match parse_line(text.trim_end()) {
                        Ok(DomainEvent::Ignored { gerrit_type }) => {
                            tracing::debug!(
                                "gerrit stream: skipping a {gerrit_type} event (not acted on)"
                            );
                            continue;
                        }
                        Ok(e) => StreamItem::Event(e),
                        Err(e) => StreamItem::Malformed {
                            line: n,
                            error: e.to_string(),
                        },
                    };
                    if tx.send(item).is_err() {
                        gone = true;
                        break;
                    }
                }
                alive.store(false, Ordering::SeqCst);
                let status = slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .map(|mut c| {
                        kill_group(&mut c);
                        c.wait()
                    });
                if gone {
                    return;
                }
                let stderr = err_thread.join().unwrap_or_default();
                let stderr = stderr.trim();
                let mut reason = match (read_error, status) {
                    (Some(e), _) => format!("reading the stream: {e}"),
                    (None, Some(Ok(s))) => format!("the stream command ended ({s})"),
                    (None, _) => "the stream command ended".to_owned(),
                };
                if !stderr.is_empty() {
                    let tail: String = stderr
                        .lines()
                        .last()
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect();
                    reason.push_str(&format!(": {}", super::http::redact(&tail)));
                }
                reason
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if started.elapsed() >= options.healthy_after {
            backoff = options.initial_backoff;
        }
        let retry_in = backoff;
        if tx
            .send(StreamItem::Disconnected { reason, retry_in })
            .is_err()
        {
            return;
        }
        let until = Instant::now() + retry_in;
        while Instant::now() < until && !stop.load(Ordering::SeqCst) {
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

/// An HTTP endpoint for Gerrit's webhooks plugin: every `POST` body is one event, in the same
/// JSON as stream-events (both project encodings are accepted).
pub struct WebhookServer {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl WebhookServer {
    /// Listens on `addr` (port 0 picks a free one) and sends what arrives to `tx`.
    pub fn bind(addr: &str, tx: Sender<StreamItem>) -> Result<WebhookServer, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| format!("{addr}: {e}"))?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| format!("{addr}: not an IP address"))?;
        let server = Arc::new(server);
        let s2 = server.clone();
        let thread = std::thread::Builder::new()
            .name("gerrit-webhook".into())
            .spawn(move || {
                for mut req in s2.incoming_requests() {
                    let (status, text) = if *req.method() != tiny_http::Method::Post {
                        (405, "only POST is accepted\n".to_owned())
                    } else {
                        let mut body = String::new();
                        match req.as_reader().take(16 << 20).read_to_string(&mut body) {
                            Err(e) => (400, format!("unreadable body: {e}\n")),
                            Ok(_) => match parse_line(body.trim()) {
                                Ok(e) => {
                                    let _ = tx.send(StreamItem::Event(e));
                                    (204, String::new())
                                }
                                Err(e) => {
                                    let _ = tx.send(StreamItem::Malformed {
                                        line: 0,
                                        error: e.to_string(),
                                    });
                                    (400, format!("{e}\n"))
                                }
                            },
                        }
                    };
                    let _ = req
                        .respond(tiny_http::Response::from_string(text).with_status_code(status));
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(WebhookServer {
            server,
            thread: Some(thread),
            addr: local,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_command_is_ssh_stream_events() {
        assert_eq!(
            default_command("https://review.example.org/r", "seakeeper").unwrap(),
            "ssh -o BatchMode=yes -o ServerAliveInterval=15 -p 29418 seakeeper@review.example.org gerrit stream-events"
        );
        assert!(default_command("https://h", "a;rm -rf /").is_none());
        assert!(default_command("ftp://h", "a").is_none());
    }
}
