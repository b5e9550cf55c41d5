//! A Phabricator Conduit stand-in: `POST /api/maniphest.edit`, form-encoded, with
//! `api.token`, `objectIdentifier` and `transactions[0][type|value]`. It answers as Conduit
//! does: HTTP 200 and `{"result": …, "error_code": …, "error_info": …}`, with
//! `ERR-INVALID-AUTH` for a wrong token and `ERR-CONDUIT-CORE` for an unknown task.

use std::sync::{Arc, Mutex};

use super::gerrit::http::{Response, Server};

/// A comment a task received: (task id, text).
pub type Comment = (u32, String);

pub struct Phabricator {
    pub server: Server,
    comments: Arc<Mutex<Vec<Comment>>>,
}

/// `application/x-www-form-urlencoded` -> pairs (`+` is a space).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn answer(result: serde_json::Value, error: Option<(&str, String)>) -> Response {
    let body = serde_json::json!({
        "result": result,
        "error_code": error.as_ref().map(|e| e.0),
        "error_info": error.map(|e| e.1),
    });
    Response::new(200, "application/json", body.to_string().into_bytes())
}

impl Phabricator {
    /// A Phabricator that knows the tasks `tasks` and accepts the API token `token`.
    pub fn start(token: &str, tasks: &[u32]) -> Phabricator {
        let comments: Arc<Mutex<Vec<Comment>>> = Arc::default();
        let (token, tasks, c) = (token.to_owned(), tasks.to_vec(), comments.clone());
        let server = Server::start(Arc::new(move |req| {
            if req.method != "POST" || req.url != "/api/maniphest.edit" {
                return Some(Response::new(404, "text/plain", b"not found".to_vec()));
            }
            let form = parse_form(&req.body);
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("api.token").as_deref() != Some(token.as_str()) {
                return Some(answer(
                    serde_json::Value::Null,
                    Some((
                        "ERR-INVALID-AUTH",
                        "API token is invalid: no such token".into(),
                    )),
                ));
            }
            let object = get("objectIdentifier").unwrap_or_default();
            let Some(id) = object
                .strip_prefix('T')
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| tasks.contains(n))
            else {
                return Some(answer(
                    serde_json::Value::Null,
                    Some((
                        "ERR-CONDUIT-CORE",
                        format!("Unable to load object with identifier \"{object}\"."),
                    )),
                ));
            };
            if get("transactions[0][type]").as_deref() != Some("comment") {
                return Some(answer(
                    serde_json::Value::Null,
                    Some(("ERR-CONDUIT-CORE", "unknown transaction type".into())),
                ));
            }
            let text = get("transactions[0][value]").unwrap_or_default();
            let mut all = c.lock().unwrap();
            all.push((id, text));
            let n = all.len();
            Some(answer(
                serde_json::json!({
                    "object": {"id": id, "phid": format!("PHID-TASK-{id:020}")},
                    "transactions": [{"phid": format!("PHID-XACT-TASK-{n:016}")}],
                }),
                None,
            ))
        }));
        Phabricator { server, comments }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The comments made so far.
    pub fn comments(&self) -> Vec<Comment> {
        self.comments.lock().unwrap().clone()
    }
}
