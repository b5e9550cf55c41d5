//! Comments on Phabricator tasks through Conduit (`maniphest.edit`, form-encoded, with the
//! API token of the secrets file). Conduit answers HTTP 200 with `error_code` set when it
//! refuses; that is a failure like any other. The token never appears in an error.

use std::time::Duration;

use super::SendError;
use super::outbox::Timeouts;
use crate::config::files::PhabricatorTarget;
use crate::secrets::ApiToken;

/// Conduit's answer.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_info: Option<String>,
}

/// Comments `text` on task `T<task>`.
pub(super) fn comment(
    t: &PhabricatorTarget,
    token: Option<&ApiToken>,
    task: u32,
    text: &str,
    timeouts: Timeouts,
) -> Result<(), SendError> {
    let token = token.ok_or_else(|| {
        SendError::Setup(
            "the Phabricator target needs `phabricator: {token: ...}` in the secrets file".into(),
        )
    })?;
    let url = format!("{}/api/maniphest.edit", t.url.trim_end_matches('/'));
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeouts.total))
        .timeout_connect(Some(timeouts.io.min(Duration::from_secs(10))))
        .user_agent(concat!("seakeeper/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
        .into();
    let object = format!("T{task}");
    let fail = |what: &str, reply: String| SendError::Refused {
        addr: url.clone(),
        what: what.to_owned(),
        reply,
    };
    let mut response = agent
        .post(&url)
        .send_form([
            ("api.token", token.expose()),
            ("objectIdentifier", object.as_str()),
            ("transactions[0][type]", "comment"),
            ("transactions[0][value]", text),
        ])
        .map_err(|e| SendError::Io {
            addr: url.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_string()
        .map_err(|e| SendError::Io {
            addr: url.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    if status != 200 {
        return Err(fail(
            &format!("a comment on {object}"),
            format!(
                "HTTP {status}: {}",
                super::truncate(&super::one_line(&body), 200)
            ),
        ));
    }
    let answer: Answer = serde_json::from_str(&body).map_err(|e| {
        fail(
            &format!("a comment on {object}"),
            format!("not a Conduit answer: {e}"),
        )
    })?;
    if let Some(code) = answer.error_code {
        return Err(fail(
            &format!("a comment on {object}"),
            format!(
                "{code}: {}",
                super::one_line(answer.error_info.as_deref().unwrap_or_default())
            ),
        ));
    }
    Ok(())
}
