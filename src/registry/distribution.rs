//! A client of the OCI distribution API (registries), blocking, over ureq: manifests fetched and
//! pushed as raw bytes (never re-serialized), blobs checked with HEAD, mounted across
//! repositories of the same registry (falling back to a copy when the registry answers 202),
//! streamed otherwise and pushed monolithically. Bearer-token and Basic authentication; plain
//! HTTP only for loopback; retries with backoff on 5xx and transport errors.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;

use crate::model::Digest;

/// Media types a manifest may have.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A registry request failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer, after retries.
    #[error("{method} {url}: {message}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The registry answered with an error.
    #[error("{method} {url}: HTTP {status}: {body}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The body (trimmed).
        body: String,
    },
    /// The registry answered something that breaks the protocol.
    #[error("{url}: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The registry's settings are not usable.
    #[error("{0}")]
    Config(String),
}

impl RegistryError {
    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How long one request or response body (a blob) may take.
pub const BODY_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// One registry.
pub struct Registry {
    base: String,
    host: String,
    agent: ureq::Agent,
    basic: Option<(String, String)>,
    tokens: Mutex<HashMap<String, String>>,
    retry: (u32, Duration),
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("base", &self.base)
            .finish()
    }
}

/// The answer to a manifest read.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Its media type (from `Content-Type`).
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// Their digest.
    pub digest: Digest,
}

enum Body<'a> {
    None,
    Bytes(&'a str, &'a [u8]),
    Reader(&'a str, u64, Box<dyn Read + Send + 'a>),
}

/// Whether `host[:port][/...]` names the loopback interface (by address, or `localhost`).
fn loopback(rest: &str) -> bool {
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL may receive credentials: https, or http on loopback.
fn safe_for_credentials(url: &str) -> bool {
    url.starts_with("https://") || url.strip_prefix("http://").is_some_and(loopback)
}

fn encode_query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b',')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Registry {
    /// A registry at `url` (`https://host[:port]`, or `http://127.0.0.1:port` for loopback),
    /// with optional Basic credentials (used directly or to get bearer tokens).
    pub fn new(
        url: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Registry, RegistryError> {
        let base = url.trim_end_matches('/').to_owned();
        let rest = if let Some(r) = base.strip_prefix("https://") {
            r
        } else if let Some(r) = base.strip_prefix("http://") {
            if !loopback(r) {
                return Err(RegistryError::Config(format!(
                    "{base}: plain HTTP is only allowed for loopback registries"
                )));
            }
            r
        } else {
            return Err(RegistryError::Config(format!(
                "{base:?}: a registry URL starts with https:// (or http:// on loopback)"
            )));
        };
        if rest.contains('@') {
            return Err(RegistryError::Config(
                "credentials go in the secrets file, not in the registry URL".into(),
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .build();
        // Every phase has a deadline, the bodies too: a registry that stalls mid-blob fails the
        // copy (and copies run off the reconcile pass, so a stall holds nothing else up).
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(Duration::from_secs(10)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_send_request(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_send_body(Some(BODY_DEADLINE))
            .timeout_recv_body(Some(BODY_DEADLINE))
            .max_idle_connections_per_host(16)
            .tls_config(tls)
            .build();
        Ok(Registry {
            host: rest.split('/').next().unwrap_or("").to_owned(),
            base,
            agent: config.into(),
            basic: credentials,
            tokens: Mutex::new(HashMap::new()),
            retry: (4, Duration::from_millis(300)),
        })
    }

    /// Sets the retry policy (attempts, first delay).
    pub fn with_retry(mut self, attempts: u32, first_delay: Duration) -> Registry {
        self.retry = (attempts.max(1), first_delay);
        self
    }

    /// `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn token_for(
        &self,
        challenge: &str,
        scope_hint: &str,
    ) -> Result<Option<String>, RegistryError> {
        // Bearer realm="...",service="...",scope="..."
        let params: HashMap<String, String> = challenge
            .trim_start_matches("Bearer ")
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                Some((k.to_owned(), v.trim_matches('"').to_owned()))
            })
            .collect();
        let Some(realm) = params.get("realm") else {
            return Ok(None);
        };
        if !safe_for_credentials(realm) {
            return Err(RegistryError::Config(format!(
                "{}: the registry's token server {realm:?} is neither https nor loopback; not sending credentials",
                self.base
            )));
        }
        let scope = params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| scope_hint.to_owned());
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut url = realm.clone();
        for (i, s) in scope.split(' ').filter(|s| !s.is_empty()).enumerate() {
            url.push(if i == 0 { sep } else { '&' });
            url.push_str(&format!("scope={}", encode_query(s)));
        }
        if let Some(s) = params.get("service") {
            url.push_str(&format!("&service={}", encode_query(s)));
        }
        let mut req = self.agent.get(&url);
        if let Some((u, p)) = &self.basic {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req = req.header("Authorization", &format!("Basic {b}"));
        }
        let mut resp = req.call().map_err(|e| RegistryError::Transport {
            method: "GET",
            url: realm.clone(),
            message: e.to_string(),
        })?;
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        if resp.status().as_u16() != 200 {
            return Err(RegistryError::Status {
                method: "GET",
                url: realm.clone(),
                status: resp.status().as_u16(),
                body: body.trim().chars().take(300).collect(),
            });
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| RegistryError::Protocol {
                url: realm.clone(),
                message: format!("token answer: {e}"),
            })?;
        Ok(v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .map(str::to_owned))
    }

    /// [`Registry::send_unobserved`], timed and counted in the metrics by operation.
    fn send(
        &self,
        method: &'static str,
        url: &str,
        repo: &str,
        headers: &[(&str, &str)],
        body: Body<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, RegistryError> {
        let timer = crate::metrics::Timer::start();
        let sent = self.send_unobserved(method, url, repo, headers, body);
        let error = match &sent {
            Ok(_) => None,
            Err(RegistryError::Transport { .. }) => Some("transport"),
            Err(RegistryError::Status { .. }) => Some("status"),
            Err(RegistryError::Protocol { .. }) => Some("protocol"),
            Err(RegistryError::Config(_)) => Some("config"),
        };
        crate::metrics::get().registry_call(operation(method, url), timer, error);
        sent
    }

    fn send_unobserved(
        &self,
        method: &'static str,
        url: &str,
        repo: &str,
        headers: &[(&str, &str)],
        mut body: Body<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, RegistryError> {
        let scope = format!("repository:{repo}:pull,push");
        let mut delay = self.retry.1;
        let mut attempt = 0;
        let mut authed_once = false;
        loop {
            attempt += 1;
            let auth = self
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&scope)
                .cloned();
            let result = {
                let add = |mut b: ureq::RequestBuilder<ureq::typestate::WithoutBody>| {
                    for (k, v) in headers {
                        b = b.header(*k, *v);
                    }
                    if let Some(a) = &auth {
                        b = b.header("Authorization", a);
                    }
                    b
                };
                let addb = |mut b: ureq::RequestBuilder<ureq::typestate::WithBody>| {
                    for (k, v) in headers {
                        b = b.header(*k, *v);
                    }
                    if let Some(a) = &auth {
                        b = b.header("Authorization", a);
                    }
                    b
                };
                match (method, &mut body) {
                    ("GET", _) => add(self.agent.get(url)).call(),
                    ("HEAD", _) => add(self.agent.head(url)).call(),
                    ("DELETE", _) => add(self.agent.delete(url)).call(),
                    (m, Body::None) => {
                        let b = if m == "POST" {
                            self.agent.post(url)
                        } else {
                            self.agent.put(url)
                        };
                        addb(b).send_empty()
                    }
                    (m, Body::Bytes(ct, bytes)) => {
                        let b = if m == "POST" {
                            self.agent.post(url)
                        } else {
                            self.agent.put(url)
                        };
                        addb(b).header("Content-Type", *ct).send(*bytes)
                    }
                    (m, Body::Reader(ct, size, reader)) => {
                        let b = if m == "POST" {
                            self.agent.post(url)
                        } else {
                            self.agent.put(url)
                        };
                        // A stream can be sent once: no retry after this.
                        attempt = self.retry.0;
                        addb(b)
                            .header("Content-Type", *ct)
                            .header("Content-Length", &size.to_string())
                            .send(ureq::SendBody::from_reader(&mut **reader))
                    }
                }
            };
            let last = attempt >= self.retry.0;
            match result {
                Ok(resp) if resp.status().as_u16() == 401 && !authed_once => {
                    authed_once = true;
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    let header = if challenge.starts_with("Bearer") {
                        self.token_for(&challenge, &scope)?
                            .map(|t| format!("Bearer {t}"))
                    } else {
                        self.basic.as_ref().map(|(u, p)| {
                            format!(
                                "Basic {}",
                                base64::engine::general_purpose::STANDARD
                                    .encode(format!("{u}:{p}"))
                            )
                        })
                    };
                    match header {
                        Some(h) => {
                            self.tokens
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(scope.clone(), h);
                            attempt -= 1;
                            continue;
                        }
                        None => return Ok(resp),
                    }
                }
                Ok(resp) if resp.status().as_u16() >= 500 && !last => {}
                Ok(resp) => return Ok(resp),
                Err(e) if last => {
                    return Err(RegistryError::Transport {
                        method,
                        url: url.to_owned(),
                        message: e.to_string(),
                    });
                }
                Err(_) => {}
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    fn fail(
        method: &'static str,
        url: &str,
        mut resp: ureq::http::Response<ureq::Body>,
    ) -> RegistryError {
        crate::metrics::get().registry_error(operation(method, url), "status");
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        RegistryError::Status {
            method,
            url: url.to_owned(),
            status: resp.status().as_u16(),
            body: body.trim().chars().take(300).collect(),
        }
    }

    /// Reads a manifest (by tag or digest) as raw bytes; a digest reference is checked.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let mut resp = self.send(
            "GET",
            &url,
            repo,
            &[("Accept", ACCEPT_MANIFESTS)],
            Body::None,
        )?;
        if resp.status().as_u16() != 200 {
            return Err(Self::fail("GET", &url, resp));
        }
        let media_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(|e| RegistryError::Transport {
                method: "GET",
                url: url.clone(),
                message: e.to_string(),
            })?;
        let digest = Digest::of(&bytes);
        if reference.starts_with("sha256:") && digest.as_str() != reference {
            return Err(RegistryError::Protocol {
                url,
                message: format!("the manifest's bytes hash to {digest}, not {reference}"),
            });
        }
        Ok(Manifest {
            media_type,
            bytes,
            digest,
        })
    }

    /// Whether a manifest exists (HEAD).
    pub fn has_manifest(&self, repo: &str, reference: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self.send(
            "HEAD",
            &url,
            repo,
            &[("Accept", ACCEPT_MANIFESTS)],
            Body::None,
        )?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::fail("HEAD", &url, resp)),
        }
    }

    /// Pushes a manifest's exact bytes under `reference` (a tag or its digest); returns the
    /// digest the registry computed.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let resp = self.send("PUT", &url, repo, &[], Body::Bytes(media_type, bytes))?;
        if resp.status().as_u16() != 201 {
            return Err(Self::fail("PUT", &url, resp));
        }
        let said = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| d.parse().ok());
        Ok(said.unwrap_or_else(|| Digest::of(bytes)))
    }

    /// Deletes a manifest by digest (the registry must allow deletes). A manifest already gone
    /// is not an error.
    pub fn delete_manifest(&self, repo: &str, digest: &Digest) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{repo}/manifests/{digest}", self.base);
        let resp = self.send("DELETE", &url, repo, &[], Body::None)?;
        match resp.status().as_u16() {
            200 | 202 | 404 => Ok(()),
            _ => Err(Self::fail("DELETE", &url, resp)),
        }
    }

    /// Whether a blob exists (HEAD).
    pub fn has_blob(&self, repo: &str, digest: &Digest) -> Result<bool, RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self.send("HEAD", &url, repo, &[], Body::None)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(Self::fail("HEAD", &url, resp)),
        }
    }

    /// Streams a blob.
    pub fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<(u64, Box<dyn Read + Send>), RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self.send("GET", &url, repo, &[], Body::None)?;
        if resp.status().as_u16() != 200 {
            return Err(Self::fail("GET", &url, resp));
        }
        let size = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Ok((size, Box::new(resp.into_body().into_reader())))
    }

    /// Mounts a blob from another repository of this registry. `Ok(true)`: mounted; `Ok(false)`:
    /// the registry answered 202 (it will not mount): copy it instead.
    pub fn mount_blob(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!(
            "{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}",
            self.base
        );
        let resp = self.send("POST", &url, repo, &[], Body::None)?;
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => Ok(false),
            _ => Err(Self::fail("POST", &url, resp)),
        }
    }

    /// Pushes a blob in one request (POST for an upload location, then PUT with the digest).
    pub fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        content: Box<dyn Read + Send + '_>,
    ) -> Result<(), RegistryError> {
        let url = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let resp = self.send("POST", &url, repo, &[], Body::None)?;
        if resp.status().as_u16() != 202 {
            return Err(Self::fail("POST", &url, resp));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol {
                url: url.clone(),
                message: "an upload without a Location".into(),
            })?
            .to_owned();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        // Credentials go with the upload: only to this registry.
        if !location.starts_with(&format!("{}/", self.base)) {
            return Err(RegistryError::Protocol {
                url,
                message: format!("the upload location {location:?} is not on this registry"),
            });
        }
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{sep}digest={digest}");
        let resp = self.send(
            "PUT",
            &put,
            repo,
            &[],
            // Large reads make large writes: far fewer syscalls for layers of many MB.
            Body::Reader(
                "application/octet-stream",
                size,
                Box::new(std::io::BufReader::with_capacity(1 << 20, content)),
            ),
        )?;
        if resp.status().as_u16() != 201 {
            return Err(Self::fail("PUT", &url, resp));
        }
        Ok(())
    }
}

/// The registry operation a request is, for metrics: a bounded name from the method and the
/// URL's shape (never the repository or digest in it).
fn operation(method: &str, url: &str) -> &'static str {
    let path = url.split('?').next().unwrap_or(url);
    let mount = url.contains("mount=");
    match method {
        "GET" if path.contains("/manifests/") => "get_manifest",
        "HEAD" if path.contains("/manifests/") => "has_manifest",
        "PUT" if path.contains("/manifests/") => "put_manifest",
        "DELETE" if path.contains("/manifests/") => "delete_manifest",
        "POST" if path.contains("/blobs/uploads/") && mount => "mount_blob",
        "POST" if path.contains("/blobs/uploads/") => "start_upload",
        "PUT" if path.contains("/blobs/uploads/") => "push_blob",
        "HEAD" if path.contains("/blobs/") => "has_blob",
        "GET" if path.contains("/blobs/") => "get_blob",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_without_repositories_or_digests() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        for (method, url, op) in [
            (
                "GET",
                format!("http://r/v2/a/b/manifests/{d}"),
                "get_manifest",
            ),
            (
                "HEAD",
                "http://r/v2/a/manifests/latest".to_owned(),
                "has_manifest",
            ),
            (
                "PUT",
                format!("http://r/v2/a/manifests/{d}"),
                "put_manifest",
            ),
            (
                "DELETE",
                format!("http://r/v2/a/manifests/{d}"),
                "delete_manifest",
            ),
            ("HEAD", format!("http://r/v2/a/blobs/{d}"), "has_blob"),
            ("GET", format!("http://r/v2/a/blobs/{d}"), "get_blob"),
            (
                "POST",
                format!("http://r/v2/a/blobs/uploads/?mount={d}&from=b"),
                "mount_blob",
            ),
            (
                "POST",
                "http://r/v2/a/blobs/uploads/".to_owned(),
                "start_upload",
            ),
            (
                "PUT",
                format!("http://r/v2/a/blobs/uploads/u1?digest={d}"),
                "push_blob",
            ),
            ("GET", "http://r/v2/".to_owned(), "other"),
        ] {
            assert_eq!(operation(method, &url), op, "{method} {url}");
        }
    }

    #[test]
    fn plain_http_and_credentials_only_on_loopback() {
        assert!(loopback("127.0.0.1:5000/v2/"));
        assert!(loopback("[::1]:5000"));
        assert!(loopback("localhost:5000"));
        assert!(!loopback("127.0.0.1.evil.example:5000"));
        assert!(!loopback("registry.example.org"));
        assert!(Registry::new("http://127.0.0.1.evil.example:5000", None).is_err());
        assert!(safe_for_credentials("https://auth.example.org/token"));
        assert!(!safe_for_credentials("http://evil.example/token"));
        assert_eq!(
            encode_query("repository:a/b:pull push"),
            "repository:a/b:pull%20push"
        );
    }
}
