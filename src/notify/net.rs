//! TCP with deadlines, and TLS over it (the system's roots plus an optional configured CA):
//! what the IRC and SMTP clients share. Every read and write has a timeout, and line reads
//! stop at an overall deadline, so a server that trickles bytes cannot hold the sender.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use super::SendError;

/// A connection, plain or TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A line-oriented conversation with one server, under one deadline.
pub(super) struct Conn {
    /// `host:port`, for errors.
    pub addr: String,
    host: String,
    io: Duration,
    deadline: Instant,
    reader: BufReader<Stream>,
}

impl Conn {
    /// Connects to `host:port` (each address in turn) within `io`; the whole conversation
    /// must end within `total`.
    pub fn connect(
        host: &str,
        port: u16,
        io: Duration,
        total: Duration,
    ) -> Result<Conn, SendError> {
        let addr = format!("{host}:{port}");
        let deadline = Instant::now() + total;
        let addrs = (host, port)
            .to_socket_addrs()
            .map_err(|source| SendError::Connect {
                addr: addr.clone(),
                source,
            })?;
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, io) {
                Ok(s) => {
                    let io_err = |source| SendError::Io {
                        addr: addr.clone(),
                        source,
                    };
                    s.set_read_timeout(Some(io)).map_err(io_err)?;
                    s.set_write_timeout(Some(io)).map_err(io_err)?;
                    s.set_nodelay(true).map_err(io_err)?;
                    return Ok(Conn {
                        addr: addr.clone(),
                        host: host.to_owned(),
                        io,
                        deadline,
                        reader: BufReader::new(Stream::Plain(s)),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(SendError::Connect { addr, source: last })
    }

    /// Starts TLS (at once, or after `STARTTLS`), trusting `ca_pem` besides the system's roots.
    pub fn start_tls(self, ca_pem: Option<&str>) -> Result<Conn, SendError> {
        let tls_err = |message: String| SendError::Tls {
            host: self.host.clone(),
            message,
        };
        let mut b = native_tls::TlsConnector::builder();
        if let Some(pem) = ca_pem {
            let cert = native_tls::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| tls_err(format!("the configured CA certificate: {e}")))?;
            b.add_root_certificate(cert);
        }
        let connector = b.build().map_err(|e| tls_err(e.to_string()))?;
        let Stream::Plain(tcp) = self.reader.into_inner() else {
            return Err(SendError::Setup("TLS is already on".into()));
        };
        let host = self.host.clone();
        let tls = connector.connect(&host, tcp).map_err(|e| SendError::Tls {
            host: host.clone(),
            message: e.to_string(),
        })?;
        Ok(Conn {
            addr: self.addr,
            host,
            io: self.io,
            deadline: self.deadline,
            reader: BufReader::new(Stream::Tls(Box::new(tls))),
        })
    }

    fn io_err(&self, source: std::io::Error) -> SendError {
        SendError::Io {
            addr: self.addr.clone(),
            source,
        }
    }

    /// Writes `line` and CRLF.
    pub fn send(&mut self, line: &str) -> Result<(), SendError> {
        let mut bytes = Vec::with_capacity(line.len() + 2);
        bytes.extend_from_slice(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.write_raw(&bytes)
    }

    /// Writes bytes as they are.
    pub fn write_raw(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.check_deadline()?;
        let s = self.reader.get_mut();
        s.write_all(bytes)
            .and_then(|()| s.flush())
            .map_err(|e| self.io_err(e))
    }

    fn check_deadline(&self) -> Result<(), SendError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.io_err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the conversation took too long",
            )));
        }
        let t = left.min(self.io);
        let tcp = self.reader.get_ref().tcp();
        tcp.set_read_timeout(Some(t))
            .and_then(|()| tcp.set_write_timeout(Some(t)))
            .map_err(|e| self.io_err(e))
    }

    /// The next line, without its line end; `None` when the server closed the connection.
    /// Lines are at most 8 KiB.
    pub fn line(&mut self) -> Result<Option<String>, SendError> {
        self.check_deadline()?;
        let mut buf = Vec::new();
        let n = (&mut self.reader)
            .take(8192)
            .read_until(b'\n', &mut buf)
            .map_err(|e| self.io_err(e))?;
        if n == 0 {
            return Ok(None);
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }
}
