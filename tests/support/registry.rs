//! Debian's `docker-registry` (distribution 2.8), started on 127.0.0.1 with its own config file
//! and storage directory; it can be stopped and started again on the same port and storage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DockerRegistry {
    pub host: String,
    config: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    /// `None` when docker-registry is not installed (outside CI).
    pub fn start() -> Option<DockerRegistry> {
        if Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var_os("CI").is_none(),
                "docker-registry must be installed in CI"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let mut r = DockerRegistry {
            host: format!("127.0.0.1:{port}"),
            config,
            child: None,
            _dir: dir,
        };
        r.resume();
        Some(r)
    }

    /// Stops the registry (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage, and waits until it answers.
    pub fn resume(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(&self.host) {
                use std::io::{Read as _, Write as _};
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut b = [0u8; 12];
                if s.read_exact(&mut b).is_ok() && b.starts_with(b"HTTP/1.") {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A registry that serves manifests from an OCI layout but stalls every blob download halfway
/// (headers and half the bytes, then nothing), as a broken proxy or overloaded registry does.
/// Connections are held until the registry is dropped.
#[allow(dead_code)]
pub struct StallingRegistry {
    pub host: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Blob downloads that reached the stall.
    pub stalled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// How a misbehaving registry misbehaves.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Blob downloads stop halfway and hang.
    Stall,
    /// Manifests come back with bytes that are not the digest asked for.
    Lie,
    /// Blob downloads stop halfway and the connection is reset.
    Reset,
}

#[allow(dead_code)]
impl StallingRegistry {
    pub fn start(layout: PathBuf) -> StallingRegistry {
        StallingRegistry::start_with(layout, Misbehaviour::Stall)
    }

    pub fn start_with(layout: PathBuf, mode: Misbehaviour) -> StallingRegistry {
        use std::io::{BufRead as _, BufReader, Write as _};
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stalled = std::sync::Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), stalled.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let (s, n, layout) = (s.clone(), n.clone(), layout.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let (method, path) = (
                            parts.next().unwrap_or("").to_owned(),
                            parts.next().unwrap_or("").to_owned(),
                        );
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                                break;
                            }
                        }
                        let hex = path.rsplit("sha256:").next().unwrap_or("").to_owned();
                        let blob = std::fs::read(layout.join("blobs/sha256").join(&hex)).ok();
                        let respond = |conn: &mut std::net::TcpStream,
                                       status: &str,
                                       headers: &str,
                                       body: &[u8]| {
                            let _ = write!(
                                conn,
                                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{headers}\r\n",
                                body.len()
                            );
                            if method != "HEAD" {
                                let _ = conn.write_all(body);
                            }
                        };
                        if path == "/v2/" {
                            respond(
                                &mut conn,
                                "200 OK",
                                "Content-Type: application/json\r\n",
                                b"{}",
                            );
                        } else if let (true, Some(body)) = (path.contains("/manifests/"), &blob) {
                            let mut body = body.clone();
                            if mode == Misbehaviour::Lie {
                                // Other bytes under the same name.
                                body.push(b' ');
                            }
                            let media = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| {
                                    "application/vnd.oci.image.manifest.v1+json".into()
                                });
                            respond(
                                &mut conn,
                                "200 OK",
                                &format!(
                                    "Content-Type: {media}\r\nDocker-Content-Digest: sha256:{hex}\r\n"
                                ),
                                &body,
                            );
                        } else if let (true, Some(body)) =
                            (path.contains("/blobs/") && method == "GET", &blob)
                        {
                            let _ = write!(
                                conn,
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
                                body.len()
                            );
                            let _ = conn.write_all(&body[..body.len() / 2]);
                            let _ = conn.flush();
                            n.fetch_add(1, Ordering::SeqCst);
                            if mode == Misbehaviour::Reset {
                                let _ = conn.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            while !s.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            return;
                        } else {
                            respond(
                                &mut conn,
                                "404 Not Found",
                                "Content-Type: application/json\r\n",
                                br#"{"errors":[{"code":"NOT_FOUND"}]}"#,
                            );
                        }
                    }
                });
            }
        });
        StallingRegistry {
            host,
            stop,
            stalled,
        }
    }
}

impl Drop for StallingRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(&self.host);
    }
}
