//! HTTP to one Gerrit server: Basic auth behind the `/a/` prefix, timeouts, and retries with
//! backoff on 5xx and transport errors only. Credentials come from the secrets file and never
//! appear in an error, a log line or a `Debug` print.

use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use crate::secrets::{Credentials, SecretsError};

/// The `gerrit:` credentials of the secrets file (see [`crate::secrets`]).
pub fn load_gerrit_credentials(path: &Path) -> Result<Option<Credentials>, SecretsError> {
    Ok(crate::secrets::SecretsFile::load(path)?.gerrit)
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// The wait before the first retry; it doubles each time.
    pub first_delay: Duration,
    /// The longest wait between attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// An HTTP request to Gerrit failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No response (connection refused or dropped, timeout, TLS), after every attempt.
    #[error("{method} {url}: {message} (after {attempts} attempt(s))")]
    Transport {
        /// GET or POST.
        method: &'static str,
        /// The URL, without credentials.
        url: String,
        /// What the transport said.
        message: String,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, or empty.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
    /// The attempts it took (1 when the first one answered).
    pub attempts: u32,
}

/// One Gerrit server: its base URL, credentials and connection pool.
#[derive(Clone)]
pub struct Endpoint {
    base: String,
    credentials: Option<Credentials>,
    agent: ureq::Agent,
    retry: RetryPolicy,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The biggest body read (a project with 100,000 change refs lists about 8 MB).
const MAX_BODY: u64 = 512 << 20;

impl Endpoint {
    /// A server at `base` (`https://gerrit.example.org` or with a path prefix such as
    /// `https://example.org/r`). With credentials every request goes through `/a/`.
    pub fn new(
        base: &str,
        credentials: Option<Credentials>,
        timeout: Duration,
    ) -> Result<Endpoint, String> {
        let base = base.trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| format!("{:?} is not an http:// or https:// URL", redact(base)))?;
        if rest.is_empty() || rest.contains('@') {
            return Err(format!(
                "{} must name a host and carry no user or password (those go in the secrets file)",
                redact(base)
            ));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .build();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .max_idle_connections_per_host(16)
            .user_agent(concat!("seakeeper/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls)
            .build();
        Ok(Endpoint {
            base: base.to_owned(),
            credentials,
            agent: config.into(),
            retry: RetryPolicy::default(),
        })
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Endpoint {
        self.retry = retry;
        self
    }

    /// The base URL, as given (no credentials are ever in it).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether requests are authenticated.
    pub fn authenticated(&self) -> bool {
        self.credentials.is_some()
    }

    /// The full URL of `path` (which starts with `/`), under `/a/` when authenticated.
    pub fn url(&self, path: &str) -> String {
        if self.credentials.is_some() {
            format!("{}/a{}", self.base, path)
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// Sends a request, retrying on 5xx and on transport errors (with backoff) but never on
    /// 4xx. `body` is `(content type, bytes)`.
    pub fn send(
        &self,
        method: &'static str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, HttpError> {
        let url = self.url(path);
        let mut delay = self.retry.first_delay;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.attempts.max(1);
            match self.send_once(method, &url, headers, body) {
                Ok(r) if r.status >= 500 && !last => {}
                Ok(mut r) => {
                    r.attempts = attempt;
                    return Ok(r);
                }
                Err(message) if last => {
                    return Err(HttpError::Transport {
                        method,
                        url,
                        message,
                        attempts: attempt,
                    });
                }
                Err(_) => {}
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(self.retry.max_delay);
        }
    }

    fn send_once(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, String> {
        let auth = self.credentials.as_ref().map(Credentials::basic_header);
        let result = match method {
            "GET" => {
                let mut req = self.agent.get(url);
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            _ => {
                let mut req = match method {
                    "POST" => self.agent.post(url),
                    "PUT" => self.agent.put(url),
                    _ => self.agent.delete(url).force_send_body(),
                };
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                match body {
                    Some((ct, bytes)) => req.header("Content-Type", ct).send(bytes),
                    None => req.send_empty(),
                }
            }
        };
        let mut resp = result.map_err(|e| redact(&e.to_string()))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| format!("reading the response: {}", redact(&e.to_string())))?;
        Ok(Response {
            status,
            content_type,
            body,
            attempts: 1,
        })
    }
}

/// Removes `user:password@` from any URL in `text`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"')
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str("<redacted>@");
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment or query value (everything but RFC 3986 unreserved).
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let c = Credentials::new("ci", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = Endpoint::new("https://h", Some(c), Duration::from_secs(1)).unwrap();
        assert!(!format!("{e:?}").contains("s3cret"));
        assert_eq!(
            redact("GET https://ci:s3cret@h/a/x failed"),
            "GET https://<redacted>@h/a/x failed"
        );
        assert!(Endpoint::new("https://u:p@h", None, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn components_are_encoded() {
        assert_eq!(encode_component("acme/widgets"), "acme%2Fwidgets");
        assert_eq!(
            encode_component("status:open project:a"),
            "status%3Aopen%20project%3Aa"
        );
    }
}
