//! A plain HTTP/1.1 client for the web server's tests (GET, POST, and Server-Sent Events read
//! as they arrive), over a `TcpStream` with deadlines, so nothing here shares code with the
//! server it checks.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A response: status, headers (lower-case names), body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    (status, headers)
}

/// Sends a request and reads the whole response (`Connection: close`).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut s = connect(addr);
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r);
    let mut raw = Vec::new();
    r.read_to_end(&mut raw).unwrap();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let raw = if chunked { dechunk(&raw) } else { raw };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&raw).into_owned(),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            std::str::from_utf8(&raw[..eol])
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

pub fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"")
}

/// An event of a Server-Sent Events stream.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
    /// When it arrived.
    pub at: Option<Instant>,
}

/// A Server-Sent Events stream being read.
pub struct Sse {
    r: BufReader<TcpStream>,
    pub status: u16,
    chunk_left: usize,
    pending: Vec<u8>,
}

impl Sse {
    pub fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Sse {
        let mut s = connect(addr);
        let mut head =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let (status, _) = read_head(&mut r);
        Sse {
            r,
            status,
            chunk_left: 0,
            pending: Vec::new(),
        }
    }

    /// Reads one line of the (chunked) body; `None` at its end.
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
    pub fn next(&mut self) -> Option<SseEvent> {
        let mut e = SseEvent::default();
        let mut has = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if has {
                    e.at = Some(Instant::now());
                    if e.event.is_empty() {
                        e.event = "message".into();
                    }
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
                "id" => e.id = Some(v.to_owned()),
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
