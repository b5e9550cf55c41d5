//! Listing a project's refs: over git's smart HTTP protocol v2 (`ls-refs` with `ref-prefix`, so
//! a project with 100,000 change refs is asked only for what is wanted), with a fallback to the
//! v0 advertisement for servers without v2, and straight from the repository with gix for
//! `file://` (local bare repositories under one directory).
//!
//! Gerrit's git URL of a project is `<base>/<project>` (`<base>/a/<project>` authenticated).
//! The capability handshake (`GET info/refs`) is made once per server, not once per project:
//! protocol v2 over HTTP is stateless and Gerrit's capabilities are server-wide.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use gix::ObjectId;

use super::http::{Endpoint, HttpError};
use crate::model::ProjectName;

/// Listing refs failed.
#[derive(Debug, thiserror::Error)]
pub enum RefsError {
    /// No answer from the server.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server answered with an error status.
    #[error("{project}: {url}: HTTP {status}: {text}")]
    Status {
        /// The project.
        project: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The body, trimmed.
        text: String,
    },
    /// The answer broke the protocol.
    #[error("{project}: {url}: {message}")]
    Protocol {
        /// The project.
        project: String,
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// A local repository could not be read.
    #[error("{project}: {path}: {message}")]
    Local {
        /// The project.
        project: String,
        /// The repository.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// One ref: its full name and the object it points at (symbolic refs are left out).
pub type Ref = (String, ObjectId);

/// Where a project's refs are read from.
pub enum RefSource {
    /// A Gerrit server over smart HTTP.
    Http(HttpRefs),
    /// Bare repositories under a directory (`<root>/<project>.git` or `<root>/<project>`).
    Local(LocalRefs),
}

impl RefSource {
    /// Lists the refs of `project` whose names start with one of `prefixes`, sorted by name.
    pub fn list(&self, project: &ProjectName, prefixes: &[&str]) -> Result<Vec<Ref>, RefsError> {
        let mut refs = match self {
            RefSource::Http(h) => h.list(project, prefixes)?,
            RefSource::Local(l) => l.list(project, prefixes)?,
        };
        refs.retain(|(name, _)| prefixes.iter().any(|p| name.starts_with(p)));
        refs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        refs.dedup_by(|a, b| a.0 == b.0);
        Ok(refs)
    }

    /// A source for `url`: `http(s)://` through `endpoint`, or `file:///dir` (or a plain path).
    pub fn for_url(url: &str, endpoint: Option<Endpoint>) -> Result<RefSource, String> {
        if url.starts_with("http://") || url.starts_with("https://") {
            let endpoint = match endpoint {
                Some(e) => e,
                None => Endpoint::new(url, None, std::time::Duration::from_secs(30))?,
            };
            Ok(RefSource::Http(HttpRefs::new(endpoint)))
        } else {
            let path = url.strip_prefix("file://").unwrap_or(url);
            if !Path::new(path).is_dir() {
                return Err(format!(
                    "{}: not a directory of repositories",
                    super::http::redact(url)
                ));
            }
            Ok(RefSource::Local(LocalRefs::new(Path::new(path))))
        }
    }
}

/// How the server answered the capability handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    V2,
    V0,
}

/// Smart HTTP ref listing.
pub struct HttpRefs {
    http: Endpoint,
    protocol: Mutex<Option<Protocol>>,
}

const UPLOAD_PACK_REQUEST: &str = "application/x-git-upload-pack-request";

impl HttpRefs {
    /// Lists through `http`.
    pub fn new(http: Endpoint) -> HttpRefs {
        HttpRefs {
            http,
            protocol: Mutex::new(None),
        }
    }

    fn project_path(project: &ProjectName) -> String {
        format!("/{}", project.as_str())
    }

    fn list(&self, project: &ProjectName, prefixes: &[&str]) -> Result<Vec<Ref>, RefsError> {
        let known = *self.protocol.lock().unwrap_or_else(|p| p.into_inner());
        if known == Some(Protocol::V2) {
            return self.ls_refs(project, prefixes);
        }
        // Unknown, or v0 last time: ask again (a server may have been upgraded to v2).
        let (protocol, refs) = self.handshake(project)?;
        *self.protocol.lock().unwrap_or_else(|p| p.into_inner()) = Some(protocol);
        match refs {
            Some(refs) => Ok(refs),
            None => self.ls_refs(project, prefixes),
        }
    }

    /// `GET info/refs?service=git-upload-pack` asking for v2; a v0 server answers with its refs.
    fn handshake(&self, project: &ProjectName) -> Result<(Protocol, Option<Vec<Ref>>), RefsError> {
        let path = format!(
            "{}/info/refs?service=git-upload-pack",
            Self::project_path(project)
        );
        let resp = self
            .http
            .send("GET", &path, &[("Git-Protocol", "version=2")], None)?;
        let url = self.http.url(&path);
        let body = self.check(project, &url, resp.status, &resp.body)?;
        let lines = pkt_lines(body).map_err(|message| RefsError::Protocol {
            project: project.to_string(),
            url: url.clone(),
            message,
        })?;
        let mut data = lines.iter().filter_map(|l| l.as_deref());
        let mut first = data.next();
        if first.is_some_and(|l| l.starts_with(b"# service=")) {
            first = data.next();
        }
        match first {
            Some(l) if trim_nl(l) == b"version 2" => {
                let caps: Vec<&[u8]> = data.map(trim_nl).collect();
                if !caps
                    .iter()
                    .any(|c| *c == b"ls-refs" || c.starts_with(b"ls-refs="))
                {
                    return Err(RefsError::Protocol {
                        project: project.to_string(),
                        url,
                        message: "the server speaks protocol v2 but offers no ls-refs".into(),
                    });
                }
                Ok((Protocol::V2, None))
            }
            first => {
                let mut refs = Vec::new();
                for line in first.into_iter().chain(data) {
                    let line = trim_nl(line);
                    let line = line.split(|b| *b == 0).next().unwrap_or(line);
                    let (oid, name) =
                        parse_ref_line(line).map_err(|message| RefsError::Protocol {
                            project: project.to_string(),
                            url: url.clone(),
                            message,
                        })?;
                    if name.ends_with("^{}") || name == "capabilities^{}" {
                        continue;
                    }
                    refs.push((name, oid));
                }
                Ok((Protocol::V0, Some(refs)))
            }
        }
    }

    fn ls_refs(&self, project: &ProjectName, prefixes: &[&str]) -> Result<Vec<Ref>, RefsError> {
        let mut body = Vec::with_capacity(128 + 32 * prefixes.len());
        let agent = concat!("agent=seakeeper/", env!("CARGO_PKG_VERSION"), "\n");
        for line in ["command=ls-refs\n", agent, "object-format=sha1\n"] {
            write_pkt(&mut body, line.as_bytes());
        }
        body.extend_from_slice(b"0001");
        for p in prefixes {
            write_pkt(&mut body, format!("ref-prefix {p}\n").as_bytes());
        }
        body.extend_from_slice(b"0000");
        let path = format!("{}/git-upload-pack", Self::project_path(project));
        let resp = self.http.send(
            "POST",
            &path,
            &[
                ("Git-Protocol", "version=2"),
                ("Accept", "application/x-git-upload-pack-result"),
            ],
            Some((UPLOAD_PACK_REQUEST, &body)),
        )?;
        let url = self.http.url(&path);
        let body = self.check(project, &url, resp.status, &resp.body)?;
        let protocol = |message: String| RefsError::Protocol {
            project: project.to_string(),
            url: url.clone(),
            message,
        };
        let lines = pkt_lines(body).map_err(protocol)?;
        let mut refs = Vec::with_capacity(lines.len());
        let mut flushed = false;
        for line in &lines {
            let Some(line) = line else {
                flushed = true;
                break;
            };
            let line = trim_nl(line);
            // `<oid> <name>[ symref-target:..][ peeled:..]`; `unborn HEAD` has no oid.
            if line.starts_with(b"unborn ") {
                continue;
            }
            let first_two = match line.iter().enumerate().filter(|(_, b)| **b == b' ').nth(1) {
                Some((i, _)) => &line[..i],
                None => line,
            };
            let (oid, name) = parse_ref_line(first_two).map_err(protocol)?;
            refs.push((name, oid));
        }
        if !flushed {
            return Err(protocol(
                "the ls-refs answer ended without a flush packet (truncated)".into(),
            ));
        }
        Ok(refs)
    }

    fn check<'b>(
        &self,
        project: &ProjectName,
        url: &str,
        status: u16,
        body: &'b [u8],
    ) -> Result<&'b [u8], RefsError> {
        if status == 200 {
            Ok(body)
        } else {
            Err(RefsError::Status {
                project: project.to_string(),
                url: url.to_owned(),
                status,
                text: String::from_utf8_lossy(body)
                    .trim()
                    .chars()
                    .take(300)
                    .collect(),
            })
        }
    }
}

fn trim_nl(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

fn parse_ref_line(line: &[u8]) -> Result<(ObjectId, String), String> {
    let text = std::str::from_utf8(line).map_err(|_| "a ref line is not UTF-8".to_owned())?;
    let (hex, name) = text
        .split_once(' ')
        .ok_or_else(|| format!("bad ref line {text:?}"))?;
    let oid = ObjectId::from_hex(hex.as_bytes())
        .map_err(|_| format!("bad object id in ref line {text:?}"))?;
    if name.is_empty() || name.contains(' ') {
        return Err(format!("bad ref name in ref line {text:?}"));
    }
    Ok((oid, name.to_owned()))
}

fn write_pkt(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(format!("{:04x}", data.len() + 4).as_bytes());
    out.extend_from_slice(data);
}

/// Splits a pkt-line stream: `Some(data)` for data lines, `None` for flush/delimiter packets.
/// An `ERR` packet becomes an error with the server's message.
fn pkt_lines(mut data: &[u8]) -> Result<Vec<Option<&[u8]>>, String> {
    use gix_packetline::PacketLineRef;
    use gix_packetline::decode::{Stream, streaming};
    let mut out = Vec::new();
    while !data.is_empty() {
        match streaming(data).map_err(|e| format!("bad pkt-line: {e}"))? {
            Stream::Complete {
                line,
                bytes_consumed,
            } => {
                match line {
                    PacketLineRef::Data(d) => {
                        if let Some(err) = d.strip_prefix(b"ERR ") {
                            return Err(format!(
                                "the server said: {}",
                                String::from_utf8_lossy(trim_nl(err))
                            ));
                        }
                        out.push(Some(d));
                    }
                    _ => out.push(None),
                }
                data = &data[bytes_consumed..];
            }
            Stream::Incomplete { .. } => {
                return Err("the answer ends in the middle of a pkt-line (truncated)".into());
            }
        }
    }
    Ok(out)
}

/// Reads refs straight from bare repositories, with gix's ref store alone: no object
/// database is opened (opening one per project and pass costs far more than the listing).
pub struct LocalRefs {
    root: PathBuf,
}

impl LocalRefs {
    /// Repositories under `root`.
    pub fn new(root: &Path) -> LocalRefs {
        LocalRefs {
            root: root.to_owned(),
        }
    }

    fn path(&self, project: &ProjectName) -> PathBuf {
        let with_git = self.root.join(format!("{}.git", project.as_str()));
        if with_git.is_dir() {
            with_git
        } else {
            self.root.join(project.as_str())
        }
    }

    fn list(&self, project: &ProjectName, prefixes: &[&str]) -> Result<Vec<Ref>, RefsError> {
        let path = self.path(project);
        let err = |message: String| RefsError::Local {
            project: project.to_string(),
            path: path.clone(),
            message,
        };
        if !path.join("HEAD").is_file() {
            return Err(err("not a git repository (no HEAD)".into()));
        }
        let store = gix::refs::file::Store::at(path.clone(), gix::hash::Kind::Sha1);
        let platform = store.iter().map_err(|e| err(e.to_string()))?;
        let mut out = Vec::new();
        for prefix in prefixes {
            let rel =
                <&gix::path::RelativePath>::try_from(*prefix).map_err(|e| err(e.to_string()))?;
            // Only the directories under the prefix are read.
            let iter = platform.prefixed(rel).map_err(|e| err(e.to_string()))?;
            for r in iter {
                let r = r.map_err(|e| err(e.to_string()))?;
                if let gix::refs::Target::Object(id) = r.target {
                    out.push((r.name.as_bstr().to_string(), id));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_lines_split_and_errors_surface() {
        let mut b = Vec::new();
        write_pkt(&mut b, b"version 2\n");
        b.extend_from_slice(b"0000");
        let l = pkt_lines(&b).unwrap();
        assert_eq!(l, vec![Some(&b"version 2\n"[..]), None]);
        let mut e = Vec::new();
        write_pkt(&mut e, b"ERR access denied\n");
        assert!(pkt_lines(&e).unwrap_err().contains("access denied"));
        assert!(pkt_lines(b"00ffshort").unwrap_err().contains("truncated"));
        assert!(pkt_lines(b"zzzz").is_err());
    }

    #[test]
    fn ref_lines_are_checked() {
        let oid = "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5";
        let (o, n) = parse_ref_line(format!("{oid} refs/heads/main").as_bytes()).unwrap();
        assert_eq!(
            (o.to_string().as_str(), n.as_str()),
            (oid, "refs/heads/main")
        );
        assert!(parse_ref_line(b"nothex refs/heads/main").is_err());
        assert!(parse_ref_line(b"no-space").is_err());
    }
}
