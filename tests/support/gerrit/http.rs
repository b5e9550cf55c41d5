//! A small HTTP/1.1 server for the stand-in: keep-alive, `Content-Length` and chunked request
//! bodies, `Expect: 100-continue`, TCP_NODELAY and one write per response (so no Nagle stalls),
//! and the ability to drop a connection without answering (a fault).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub struct Request {
    pub method: String,
    pub url: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes a streamed body.
pub type StreamFn = Box<dyn FnOnce(&mut TcpStream) -> std::io::Result<()> + Send>;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// A fault: send only this many body bytes (with the full Content-Length), then close.
    pub truncate: Option<usize>,
    /// A streamed body instead (chunked): the function writes chunks with [`write_chunk`]
    /// until it returns; the connection then closes.
    pub stream: Option<StreamFn>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            truncate: None,
            stream: None,
        }
    }
}

/// Writes one chunk of a chunked body (and flushes it).
pub fn write_chunk(out: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut b = format!("{:x}\r\n", data.len()).into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(b"\r\n");
    out.write_all(&b)?;
    out.flush()
}

pub type Handler = Arc<dyn Fn(Request) -> Option<Response> + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, handler);
                });
            }
        });
        Server { addr, stop }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

fn serve(conn: TcpStream, handler: Handler) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(method), Some(url)) = (parts.next(), parts.next()) else {
            return Ok(());
        };
        let (method, url) = (method.to_owned(), url.to_owned());
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        if get("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
            out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        let mut body = Vec::new();
        if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size)?;
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                if size == 0 {
                    let mut trailer = String::new();
                    while reader.read_line(&mut trailer)? > 2 {
                        trailer.clear();
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                reader.read_exact(&mut body[start..])?;
                let mut crlf = [0u8; 2];
                reader.read_exact(&mut crlf)?;
            }
        } else if let Some(n) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            body.resize(n, 0);
            reader.read_exact(&mut body)?;
        }
        let close = get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let Some(resp) = handler(Request {
            method,
            url,
            headers,
            body,
        }) else {
            // A fault: drop the connection without an answer.
            let _ = out.shutdown(std::net::Shutdown::Both);
            return Ok(());
        };
        let mut bytes =
            format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).into_bytes();
        for (k, v) in &resp.headers {
            bytes.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if let Some(stream) = resp.stream {
            bytes.extend_from_slice(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            out.write_all(&bytes)?;
            let mut conn = out.try_clone()?;
            let _ = stream(&mut conn);
            let _ = out.write_all(b"0\r\n\r\n");
            let _ = out.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        bytes.extend_from_slice(format!("Content-Length: {}\r\n", resp.body.len()).as_bytes());
        if close {
            bytes.extend_from_slice(b"Connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        if let Some(n) = resp.truncate {
            bytes.extend_from_slice(&resp.body[..n.min(resp.body.len())]);
            out.write_all(&bytes)?;
            let _ = out.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }
        bytes.extend_from_slice(&resp.body);
        out.write_all(&bytes)?;
        if close {
            return Ok(());
        }
    }
}
