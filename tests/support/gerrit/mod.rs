//! A Gerrit stand-in that follows `reference/GERRIT-PROTOCOL.md` to the byte, for tests and
//! benchmarks (Gerrit itself cannot run here). seakeeper's production client talks to it over
//! HTTP exactly as it talks to Gerrit.
//!
//! - Git over smart HTTP by the real `git http-backend` (`/<project>` anonymous,
//!   `/a/<project>` with Basic auth; pushes need auth). A push to `refs/for/<branch>` creates a
//!   change or a new patchset (matched by Change-Id) at `refs/changes/XX/N/P`; a push straight to
//!   `refs/changes/XX/N/P` adds patchset P to change N. A direct push to a branch closes every
//!   open change of that branch whose patchset commit it makes reachable, as merged by the
//!   pusher (Gerrit's auto-close). Every change has a NoteDb-style
//!   `refs/changes/XX/N/meta` commit chain that moves on every upload, vote, submit or abandon.
//! - REST under `/a/` with Basic auth (`401` with `realm="Gerrit Code Review"`): get and query
//!   changes (paging with `_more_changes`), review (labels, tag, message; unknown labels and
//!   out-of-range votes dropped unless strict), submit (fast-forward or merge, Gerrit's 409 texts),
//!   abandon and restore, list branches, server version. JSON has the `)]}'` prefix, Gson
//!   escaping and Gerrit's field names and order; errors are `text/plain`.
//! - stream-events lines, identical in form to the recorded samples, to every client connected
//!   to [`Gerrit::stream_addr`] (a plain TCP line stream, like `ssh ... gerrit stream-events`).
//! - Faults: the next N requests fail with 500, are delayed, or have their connection dropped
//!   mid-response; stream connections can be cut.

#![allow(dead_code)]

pub mod events;
pub mod http;
pub mod json;
pub mod lsrefs;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use events::{AccountAttr, ApprovalAttr, ChangeAttr, PatchSetAttr};
use json::{J, Obj};

pub const ZERO: &str = "0000000000000000000000000000000000000000";
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

#[derive(Debug, Clone)]
pub struct Account {
    pub id: u64,
    pub name: String,
    pub email: String,
    pub username: String,
    pub password: String,
}

impl Account {
    fn attr(&self) -> AccountAttr {
        AccountAttr {
            name: self.name.clone(),
            email: self.email.clone(),
            username: self.username.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LabelDef {
    pub name: String,
    pub values: Vec<(i32, String)>,
}

impl LabelDef {
    fn min(&self) -> i32 {
        self.values.iter().map(|v| v.0).min().unwrap_or(0)
    }
    fn max(&self) -> i32 {
        self.values.iter().map(|v| v.0).max().unwrap_or(0)
    }
}

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// A directory of existing bare repositories to serve (`<root>/<project>.git`).
    pub root: Option<PathBuf>,
    /// `change.strictLabels`.
    pub strict_labels: bool,
    /// Submit type FAST_FORWARD_ONLY (else MERGE_IF_NECESSARY).
    pub fast_forward_only: bool,
    /// The first change number handed out.
    pub first_change: u32,
    /// Answer protocol v2 `ls-refs` in-process, as JGit does, instead of forking
    /// `git http-backend` (everything else still goes through it). For benchmarks.
    pub native_ls_refs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root: None,
            strict_labels: false,
            fast_forward_only: false,
            first_change: 1,
            native_ls_refs: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PatchSet {
    pub number: u32,
    pub revision: String,
    pub parents: Vec<String>,
    pub git_ref: String,
    pub uploader: u64,
    pub created_on: i64,
    pub author_name: String,
    pub author_email: String,
    pub insertions: i64,
    pub deletions: i64,
    pub message: String,
    pub subject: String,
    pub author_date: i64,
}

#[derive(Debug, Clone)]
pub struct Vote {
    pub value: i32,
    pub date: i64,
    pub tag: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ChangeMessage {
    pub id: String,
    pub author: Option<u64>,
    pub date: i64,
    pub message: String,
    pub tag: Option<String>,
    pub patchset: u32,
}

/// A change as the stand-in keeps it.
#[derive(Debug, Clone)]
pub struct Change {
    pub number: u32,
    pub project: String,
    pub branch: String,
    pub change_id: String,
    pub owner: u64,
    pub status: String,
    pub created: i64,
    pub updated: i64,
    pub patchsets: Vec<PatchSet>,
    /// (label, account) -> vote, for the current patchset.
    pub votes: BTreeMap<(String, u64), Vote>,
    pub messages: Vec<ChangeMessage>,
    pub meta: String,
    pub submitted: Option<(i64, u64, String)>,
    pub wip: bool,
    pub private: bool,
}

impl Change {
    pub fn current(&self) -> &PatchSet {
        self.patchsets.last().expect("a change has a patchset")
    }
    pub fn vote(&self, label: &str, account: u64) -> i32 {
        self.votes
            .get(&(label.to_owned(), account))
            .map_or(0, |v| v.value)
    }
}

#[derive(Default)]
struct Faults {
    fail: u32,
    drop: u32,
    lose: u32,
    truncate: u32,
    delay: Option<(u32, Duration)>,
}

struct State {
    changes: BTreeMap<u32, Change>,
    next_change: u32,
    events: Vec<String>,
    message_seq: u64,
}

struct Inner {
    root: PathBuf,
    url: String,
    accounts: Vec<Account>,
    labels: Vec<LabelDef>,
    options: Options,
    state: Mutex<State>,
    faults: Mutex<Faults>,
    streams: Mutex<Vec<TcpStream>>,
    requests: Mutex<Vec<String>>,
    /// Serializes pushes and their post-processing.
    push_lock: Mutex<()>,
    native: lsrefs::Repos,
    advertisement: Mutex<Option<Resp>>,
}

/// The running stand-in.
pub struct Gerrit {
    pub url: String,
    pub addr: SocketAddr,
    pub stream_addr: SocketAddr,
    pub root: PathBuf,
    inner: Arc<Inner>,
    _server: http::Server,
    _tmp: Option<tempfile::TempDir>,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn rest_date(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .expect("valid time")
        .strftime("%Y-%m-%d %H:%M:%S.000000000")
        .to_string()
}

pub fn git(repo: &Path, args: &[&str]) -> Result<String, String> {
    git_env(repo, args, &[], None)
}

fn git_env(
    repo: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("git {args:?}: {e}"))?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input)
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(format!(
            "git {args:?} in {}: {}",
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn default_accounts() -> Vec<Account> {
    let a = |id, name: &str, email: &str, user: &str| Account {
        id,
        name: name.into(),
        email: email.into(),
        username: user.into(),
        password: format!("{user}-http-token"),
    };
    vec![
        a(1000001, "Alice Example", "alice@example.org", "alice"),
        a(1000002, "Bob Reviewer", "bob@example.org", "bob"),
        a(1000042, "CI Bot", "ci-bot@example.org", "ci-bot"),
    ]
}

fn default_labels() -> Vec<LabelDef> {
    let l = |name: &str, values: &[(i32, &str)]| LabelDef {
        name: name.into(),
        values: values.iter().map(|(v, t)| (*v, t.to_string())).collect(),
    };
    vec![
        l(
            "Code-Review",
            &[
                (-2, "This shall not be submitted"),
                (-1, "I would prefer this is not submitted as is"),
                (0, "No score"),
                (1, "Looks good to me, but someone else must approve"),
                (2, "Looks good to me, approved"),
            ],
        ),
        l(
            "Verified",
            &[(-1, "Fails"), (0, "No score"), (1, "Verified")],
        ),
    ]
}

#[derive(Clone)]
struct Resp {
    status: u16,
    content_type: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn text(status: u16, msg: &str) -> Resp {
    Resp {
        status,
        content_type: "text/plain; charset=UTF-8".into(),
        headers: Vec::new(),
        body: format!("{msg}\n").into_bytes(),
    }
}

fn json(value: &J) -> Resp {
    Resp {
        status: 200,
        content_type: "application/json; charset=UTF-8".into(),
        headers: vec![("Content-Disposition".into(), "attachment".into())],
        body: format!(")]}}'\n{}\n", value.to_gson()).into_bytes(),
    }
}

fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Gerrit {
    pub fn start() -> Gerrit {
        Gerrit::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Gerrit {
        let (tmp, root) = match &options.root {
            Some(r) => (None, r.clone()),
            None => {
                let t = tempfile::tempdir().expect("temp dir");
                let root = t.path().join("git");
                std::fs::create_dir_all(&root).unwrap();
                (Some(t), root)
            }
        };
        // The address is only known once the server runs; the handler reads it from here.
        let slot: Arc<std::sync::OnceLock<Arc<Inner>>> = Arc::new(std::sync::OnceLock::new());
        let slot2 = slot.clone();
        let server = http::Server::start(Arc::new(move |req| {
            slot2.get().expect("the stand-in is ready").handle(req)
        }));
        let addr = server.addr;
        let url = format!("http://{addr}");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stream");
        let stream_addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            root: root.clone(),
            url: url.clone(),
            accounts: default_accounts(),
            labels: default_labels(),
            state: Mutex::new(State {
                changes: BTreeMap::new(),
                next_change: options.first_change,
                events: Vec::new(),
                message_seq: 0,
            }),
            options: options.clone(),
            faults: Mutex::new(Faults::default()),
            streams: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            push_lock: Mutex::new(()),
            native: lsrefs::Repos::default(),
            advertisement: Mutex::new(None),
        });
        {
            let inner = inner.clone();
            std::thread::spawn(move || {
                for s in listener.incoming().flatten() {
                    inner.streams.lock().unwrap().push(s);
                }
            });
        }
        let _ = slot.set(inner.clone());
        Gerrit {
            url,
            addr,
            stream_addr,
            root,
            inner,
            _server: server,
            _tmp: tmp,
        }
    }

    pub fn account(&self, username: &str) -> Account {
        self.inner
            .accounts
            .iter()
            .find(|a| a.username == username)
            .unwrap_or_else(|| panic!("no account {username}"))
            .clone()
    }

    /// The command that prints this server's stream-events (like `ssh ... gerrit stream-events`).
    pub fn stream_command(&self) -> String {
        format!(
            "exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/{}; exec cat <&3'",
            self.stream_addr.port()
        )
    }

    /// Anonymous git URL of a project.
    pub fn git_url(&self, project: &str) -> String {
        format!("{}/{}", self.url, project)
    }

    /// Authenticated git URL (for pushes).
    pub fn push_url(&self, project: &str, user: &str) -> String {
        let a = self.account(user);
        format!(
            "http://{}:{}@{}/a/{}",
            a.username, a.password, self.addr, project
        )
    }

    /// Sends a raw smart-HTTP request (for protocol tests): `(status, content type, body)`.
    pub fn git_request(
        &self,
        method: &str,
        path_and_query: &str,
        git_protocol: &str,
        body: &[u8],
        native: bool,
    ) -> (u16, String, Vec<u8>) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let (project, suffix) = ["/info/refs", "/git-upload-pack"]
            .iter()
            .find_map(|s| {
                path.strip_suffix(s)
                    .map(|p| (p.trim_start_matches('/'), *s))
            })
            .expect("a git path");
        let headers = HashMap::from([
            ("git-protocol".to_owned(), git_protocol.to_owned()),
            (
                "content-type".to_owned(),
                "application/x-git-upload-pack-request".to_owned(),
            ),
        ]);
        let r = if native {
            self.inner
                .native(method, project, suffix, query, &headers, body)
                .expect("a native answer")
        } else {
            self.inner
                .cgi(method, project, suffix, query, &headers, body, None)
        };
        (r.status, r.content_type, r.body)
    }

    pub fn repo(&self, project: &str) -> PathBuf {
        self.root.join(format!("{project}.git"))
    }

    /// Creates a project with one commit on `main` (a README).
    pub fn create_project(&self, project: &str) -> String {
        let repo = self.repo(project);
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "--bare", "-b", "main"]).unwrap();
        git(&repo, &["config", "http.receivepack", "true"]).unwrap();
        let blob = git_env(
            &repo,
            &["hash-object", "-w", "--stdin"],
            &[],
            Some(format!("# {project}\n").as_bytes()),
        )
        .unwrap();
        let tree = git_env(
            &repo,
            &["mktree"],
            &[],
            Some(format!("100644 blob {blob}\tREADME.md\n").as_bytes()),
        )
        .unwrap();
        git_env(&repo, &["mktree"], &[], Some(b"")).unwrap();
        let commit = git_env(
            &repo,
            &["commit-tree", &tree, "-m", "Initial empty repository"],
            &committer_env("Gerrit Code Review", "gerrit@example.org"),
            None,
        )
        .unwrap();
        git(&repo, &["update-ref", "refs/heads/main", &commit]).unwrap();
        self.inner
            .emit(events::project_created(project, "refs/heads/main", now()));
        commit
    }

    pub fn change(&self, number: u32) -> Change {
        self.inner.state.lock().unwrap().changes[&number].clone()
    }

    pub fn changes(&self) -> Vec<Change> {
        self.inner
            .state
            .lock()
            .unwrap()
            .changes
            .values()
            .cloned()
            .collect()
    }

    /// Every stream-events line emitted so far.
    pub fn events(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().events.clone()
    }

    /// `METHOD path` of every HTTP request so far.
    pub fn requests(&self) -> Vec<String> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Cuts every stream-events connection (clients must reconnect).
    pub fn drop_streams(&self) {
        for s in self.inner.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn stream_clients(&self) -> usize {
        self.inner.streams.lock().unwrap().len()
    }

    /// The next `n` HTTP requests get `500 Internal Server Error`.
    pub fn fail_next(&self, n: u32) {
        self.inner.faults.lock().unwrap().fail = n;
    }

    /// The next `n` HTTP requests lose their connection in the middle of the answer.
    pub fn drop_next(&self, n: u32) {
        self.inner.faults.lock().unwrap().drop = n;
    }

    /// The next `n` HTTP requests are carried out, then their connection is dropped without
    /// an answer (the client cannot know it worked).
    pub fn lose_answer_next(&self, n: u32) {
        self.inner.faults.lock().unwrap().lose = n;
    }

    /// The next `n` HTTP requests are carried out and answered with half a body, then the
    /// connection is dropped.
    pub fn truncate_next(&self, n: u32) {
        self.inner.faults.lock().unwrap().truncate = n;
    }

    /// The next `n` HTTP requests are answered after `delay`.
    pub fn delay_next(&self, n: u32, delay: Duration) {
        self.inner.faults.lock().unwrap().delay = Some((n, delay));
    }

    /// Submits change `number` as `user` through the same code as the REST endpoint.
    pub fn submit(&self, user: &str, number: u32) -> Result<(), String> {
        let account = self.account(user);
        let r = self.inner.submit(&account, number);
        if r.status == 200 {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&r.body).into_owned())
        }
    }

    /// Posts a review as `user` through the same code as the REST endpoint.
    pub fn review(
        &self,
        user: &str,
        number: u32,
        labels: &[(&str, i32)],
        message: &str,
    ) -> Result<(), String> {
        let account = self.account(user);
        let mut body = Obj::new().put("message", message);
        let mut l = Obj::new();
        for (k, v) in labels {
            l = l.put(k, *v);
        }
        body = body.put("labels", l);
        let r = self
            .inner
            .post_review(&account, number, "current", &body.build().to_gson());
        if r.status == 200 {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&r.body).into_owned())
        }
    }

    /// Abandons change `number` as `user`, as the REST endpoint does.
    pub fn abandon(&self, user: &str, number: u32) -> Result<(), String> {
        let account = self.account(user);
        let r = self.inner.abandon_restore(&account, number, true, "");
        if r.status == 200 {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&r.body).into_owned())
        }
    }

    /// Marks change `number` work in progress (or ready) as `user`, as the REST endpoints do.
    pub fn set_wip(&self, user: &str, number: u32, wip: bool) -> Result<(), String> {
        let account = self.account(user);
        let r = self
            .inner
            .set_state(&account, number, if wip { "wip" } else { "ready" });
        if r.status == 200 {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&r.body).into_owned())
        }
    }

    /// Emits Gerrit's `dropped-output` event.
    pub fn emit_dropped_output(&self) {
        self.inner.emit(events::dropped_output(now()));
    }
}

impl Drop for Gerrit {
    fn drop(&mut self) {
        self.drop_streams();
    }
}

fn committer_env<'a>(name: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("GIT_AUTHOR_NAME", name),
        ("GIT_AUTHOR_EMAIL", email),
        ("GIT_COMMITTER_NAME", "Gerrit Code Review"),
        ("GIT_COMMITTER_EMAIL", "gerrit@example.org"),
    ]
}

/// What the query asked for.
#[derive(Default, Clone, Copy)]
struct Opts {
    current_revision: bool,
    all_revisions: bool,
    current_commit: bool,
    labels: bool,
    detailed_labels: bool,
    detailed_accounts: bool,
    messages: bool,
}

impl Opts {
    fn from_query(q: &[(String, String)]) -> Opts {
        let mut o = Opts::default();
        for (k, v) in q {
            if k == "o" || k == "O" {
                match v.as_str() {
                    "CURRENT_REVISION" => o.current_revision = true,
                    "ALL_REVISIONS" => o.all_revisions = true,
                    "CURRENT_COMMIT" | "ALL_COMMITS" => o.current_commit = true,
                    "LABELS" => o.labels = true,
                    "DETAILED_LABELS" => {
                        o.labels = true;
                        o.detailed_labels = true;
                    }
                    "DETAILED_ACCOUNTS" => o.detailed_accounts = true,
                    "MESSAGES" => o.messages = true,
                    _ => {}
                }
            }
        }
        o
    }
}

impl Inner {
    fn account(&self, id: u64) -> &Account {
        self.accounts
            .iter()
            .find(|a| a.id == id)
            .expect("known account")
    }

    fn emit(&self, event: J) {
        let line = format!("{}\n", event.to_gson());
        self.state.lock().unwrap().events.push(line.clone());
        let mut streams = self.streams.lock().unwrap();
        streams.retain_mut(|s| {
            s.write_all(line.as_bytes())
                .and_then(|()| s.flush())
                .is_ok()
        });
    }

    fn handle(&self, req: http::Request) -> Option<http::Response> {
        self.requests
            .lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.url));
        let (fail, drop, lose, truncate, delay) = {
            let mut f = self.faults.lock().unwrap();
            let take = |n: &mut u32| {
                let hit = *n > 0;
                if hit {
                    *n -= 1;
                }
                hit
            };
            let fail = take(&mut f.fail);
            let drop = !fail && take(&mut f.drop);
            let lose = !fail && !drop && take(&mut f.lose);
            let truncate = !fail && !drop && !lose && take(&mut f.truncate);
            let delay = match &mut f.delay {
                Some((n, d)) if *n > 0 => {
                    *n -= 1;
                    Some(*d)
                }
                _ => None,
            };
            (fail, drop, lose, truncate, delay)
        };
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        if drop {
            return None;
        }
        let resp = if fail {
            text(500, "Internal server error")
        } else {
            let headers: HashMap<String, String> = req.headers.iter().cloned().collect();
            self.route(&req.method, &req.url, &headers, &req.body)
        };
        if lose {
            return None;
        }
        let mut headers = vec![("Content-Type".to_owned(), resp.content_type)];
        headers.extend(resp.headers);
        Some(http::Response {
            status: resp.status,
            headers,
            truncate: truncate.then_some(resp.body.len() / 2),
            body: resp.body,
            stream: None,
        })
    }

    fn authenticate(&self, headers: &HashMap<String, String>) -> Option<&Account> {
        let value = headers.get("authorization")?;
        let b64 = value.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (user, pass) = raw.split_once(':')?;
        self.accounts
            .iter()
            .find(|a| a.username == user && a.password == pass)
    }

    fn route(
        &self,
        method: &str,
        url: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Resp {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let (user, path) = match path.strip_prefix("/a/") {
            Some(rest) => match self.authenticate(headers) {
                Some(a) => (Some(a.clone()), format!("/{rest}")),
                None => {
                    let mut r = text(401, "Unauthorized");
                    r.headers.push((
                        "WWW-Authenticate".into(),
                        "Basic realm=\"Gerrit Code Review\"".into(),
                    ));
                    return r;
                }
            },
            None => (None, path.to_owned()),
        };
        // Git over smart HTTP.
        for suffix in ["/info/refs", "/git-upload-pack", "/git-receive-pack"] {
            if let Some(project) = path.strip_suffix(suffix) {
                let project = project.trim_start_matches('/');
                if !self.root.join(format!("{project}.git")).is_dir() {
                    return text(404, "Not Found");
                }
                let receive =
                    suffix == "/git-receive-pack" || query.contains("service=git-receive-pack");
                if receive && user.is_none() {
                    let mut r = text(401, "Unauthorized");
                    r.headers.push((
                        "WWW-Authenticate".into(),
                        "Basic realm=\"Gerrit Code Review\"".into(),
                    ));
                    return r;
                }
                if suffix == "/git-receive-pack" && method == "POST" {
                    let user = user.expect("checked above");
                    return self.receive_pack(project, query, headers, body, &user);
                }
                let v2 = headers
                    .get("git-protocol")
                    .is_some_and(|p| p.contains("version=2"));
                let native = (self.options.native_ls_refs && v2 && !receive)
                    .then(|| self.native(method, project, suffix, query, headers, body))
                    .flatten();
                if let Some(r) = native {
                    return r;
                }
                return self.cgi(method, project, suffix, query, headers, body, None);
            }
        }
        let q: Vec<(String, String)> = query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_decode(k, true), percent_decode(v, true))
            })
            .collect();
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let caller = user.clone();
        match (method, segs.as_slice()) {
            ("GET", ["config", "server", "version"]) => json(&J::from("3.10.1")),
            ("GET", ["projects", name, "branches"])
            | ("GET", ["projects", name, "branches", ""]) => {
                self.branches(&percent_decode(name, false))
            }
            ("GET", ["changes", ""]) | ("GET", ["changes"]) => self.query(&q),
            ("GET", ["changes", id]) => match self.find(id) {
                Some(n) => {
                    let st = self.state.lock().unwrap();
                    json(&self.change_info(&st.changes[&n], Opts::from_query(&q)))
                }
                None => text(404, &format!("Not found: {}", percent_decode(id, false))),
            },
            ("POST", ["changes", id, "revisions", rev, "review"]) => {
                let Some(n) = self.find(id) else {
                    return text(404, &format!("Not found: {}", percent_decode(id, false)));
                };
                let Some(caller) = caller else {
                    return text(401, "Unauthorized");
                };
                if !headers
                    .get("content-type")
                    .is_some_and(|c| c.starts_with("application/json"))
                {
                    return text(400, "Content-Type must be application/json");
                }
                self.post_review(&caller, n, rev, &String::from_utf8_lossy(body))
            }
            ("POST", ["changes", id, "submit"])
            | ("POST", ["changes", id, "revisions", _, "submit"]) => {
                let Some(n) = self.find(id) else {
                    return text(404, &format!("Not found: {}", percent_decode(id, false)));
                };
                let Some(caller) = caller else {
                    return text(401, "Unauthorized");
                };
                self.submit(&caller, n)
            }
            (
                "POST",
                [
                    "changes",
                    id,
                    action @ ("wip" | "ready" | "private" | "private.delete"),
                ],
            ) => {
                let Some(n) = self.find(id) else {
                    return text(404, &format!("Not found: {}", percent_decode(id, false)));
                };
                let Some(caller) = caller else {
                    return text(401, "Unauthorized");
                };
                self.set_state(&caller, n, action)
            }
            ("POST", ["changes", id, action @ ("abandon" | "restore")]) => {
                let Some(n) = self.find(id) else {
                    return text(404, &format!("Not found: {}", percent_decode(id, false)));
                };
                let Some(caller) = caller else {
                    return text(401, "Unauthorized");
                };
                let message = J::parse(&String::from_utf8_lossy(body))
                    .ok()
                    .and_then(|j| j.get("message").and_then(J::as_str).map(str::to_owned))
                    .unwrap_or_default();
                self.abandon_restore(&caller, n, *action == "abandon", &message)
            }
            _ => text(404, "Not Found"),
        }
    }

    /// `project~number`, `project~branch~Change-Id`, a number or a Change-Id.
    fn find(&self, id: &str) -> Option<u32> {
        let id = percent_decode(id, false);
        let st = self.state.lock().unwrap();
        let parts: Vec<&str> = id.split('~').collect();
        match parts.as_slice() {
            [project, number] => {
                let n: u32 = number.parse().ok()?;
                st.changes
                    .get(&n)
                    .filter(|c| c.project == *project)
                    .map(|c| c.number)
            }
            [project, branch, cid] => st
                .changes
                .values()
                .find(|c| {
                    c.project == *project
                        && (c.branch == *branch || format!("refs/heads/{}", c.branch) == *branch)
                        && c.change_id == *cid
                })
                .map(|c| c.number),
            [one] => match one.parse::<u32>() {
                Ok(n) => st.changes.get(&n).map(|c| c.number),
                Err(_) => st
                    .changes
                    .values()
                    .find(|c| c.change_id == *one)
                    .map(|c| c.number),
            },
            _ => None,
        }
    }

    fn rest_account(&self, id: u64, detailed: bool) -> Obj {
        let a = self.account(id);
        let o = Obj::new().put("_account_id", a.id);
        if detailed {
            o.put("name", &a.name)
                .put("email", &a.email)
                .put("username", &a.username)
        } else {
            o
        }
    }

    fn change_info(&self, c: &Change, opts: Opts) -> J {
        let ps = c.current();
        let open = c.status == "NEW";
        let mut o = Obj::new()
            .put("id", format!("{}~{}", encode(&c.project), c.number))
            .put(
                "triplet_id",
                format!(
                    "{}~{}~{}",
                    encode(&c.project),
                    encode(&c.branch),
                    c.change_id
                ),
            )
            .put("project", &c.project)
            .put("branch", &c.branch)
            .put("full_branch", format!("refs/heads/{}", c.branch))
            .put("hashtags", J::Arr(Vec::new()))
            .put("change_id", &c.change_id)
            .put("subject", &ps.subject)
            .put("status", &c.status)
            .put("created", rest_date(c.created))
            .put("updated", rest_date(c.updated));
        if open {
            o = o
                .put(
                    "submit_type",
                    if self.options.fast_forward_only {
                        "FAST_FORWARD_ONLY"
                    } else {
                        "MERGE_IF_NECESSARY"
                    },
                )
                .put("mergeable", true);
        }
        o = o
            .put("insertions", ps.insertions)
            .put("deletions", ps.deletions)
            .put("total_comment_count", 0i64)
            .put("unresolved_comment_count", 0i64)
            .flag("has_review_started", true)
            .put("meta_rev_id", &c.meta)
            .put("_number", c.number)
            .put("virtual_id_number", c.number)
            .put("owner", self.rest_account(c.owner, opts.detailed_accounts))
            // Only present when true, as in Gerrit's ChangeInfo.
            .flag("work_in_progress", c.wip)
            .flag("is_private", c.private);
        if opts.labels {
            let mut labels = Obj::new();
            for l in &self.labels {
                let votes: Vec<(&u64, &Vote)> = c
                    .votes
                    .iter()
                    .filter(|((name, _), v)| name == &l.name && v.value != 0)
                    .map(|((_, a), v)| (a, v))
                    .collect();
                let pick = |pred: &dyn Fn(i32) -> bool| {
                    votes
                        .iter()
                        .find(|(_, v)| pred(v.value))
                        .map(|(a, _)| self.rest_account(**a, opts.detailed_accounts))
                };
                let (min, max) = (l.min(), l.max());
                let mut lo = Obj::new()
                    .opt("approved", pick(&|v| v == max))
                    .opt("rejected", pick(&|v| v == min))
                    .opt("recommended", pick(&|v| v > 0 && v < max))
                    .opt("disliked", pick(&|v| v < 0 && v > min));
                let all: Vec<J> = votes
                    .iter()
                    .map(|(a, v)| {
                        let mut e = Obj::new()
                            .put("value", v.value)
                            .put("date", rest_date(v.date));
                        if let Some(t) = &v.tag {
                            e = e.put("tag", t);
                        }
                        let acct = self.rest_account(**a, opts.detailed_accounts).build();
                        if let J::Obj(fields) = acct {
                            for (k, v) in fields {
                                e = e.put(&k, v);
                            }
                        }
                        e.build()
                    })
                    .collect();
                // `all`, `values` and `default_value` only with DETAILED_LABELS, as in Gerrit's
                // LabelsJson (the recorded sample shows them; it was taken with both options).
                if opts.detailed_labels {
                    lo = lo.opt("all", (!all.is_empty()).then_some(J::Arr(all)));
                    let mut values = Obj::new();
                    for (v, t) in &l.values {
                        let key = match v.signum() {
                            1 => format!("+{v}"),
                            0 => " 0".to_owned(),
                            _ => v.to_string(),
                        };
                        values = values.put(&key, t);
                    }
                    lo = lo.put("values", values).put("default_value", 0i64);
                }
                labels = labels.put(&l.name, lo);
            }
            o = o.put("labels", labels);
        }
        if opts.messages {
            let msgs: Vec<J> = c
                .messages
                .iter()
                .map(|m| {
                    Obj::new()
                        .put("id", &m.id)
                        .opt(
                            "author",
                            m.author
                                .map(|a| self.rest_account(a, opts.detailed_accounts)),
                        )
                        .put("date", rest_date(m.date))
                        .put("message", &m.message)
                        .opt("tag", m.tag.as_ref())
                        .put("_revision_number", m.patchset)
                        .build()
                })
                .collect();
            o = o.put("messages", J::Arr(msgs));
        }
        o = o.put("current_revision_number", ps.number);
        if opts.current_revision || opts.all_revisions {
            o = o.put("current_revision", &ps.revision);
            let mut revs = Obj::new();
            let list: Vec<&PatchSet> = if opts.all_revisions {
                c.patchsets.iter().rev().collect()
            } else {
                vec![ps]
            };
            for p in list {
                let mut r = Obj::new()
                    .put("kind", "REWORK")
                    .put("_number", p.number)
                    .put("created", rest_date(p.created_on))
                    .put(
                        "uploader",
                        self.rest_account(p.uploader, opts.detailed_accounts),
                    )
                    .put("ref", &p.git_ref)
                    .put(
                        "fetch",
                        Obj::new().put(
                            "http",
                            Obj::new()
                                .put("url", format!("{}/{}", self.url, c.project))
                                .put("ref", &p.git_ref),
                        ),
                    );
                if opts.current_commit && p.number == ps.number {
                    let person = |name: &str, email: &str, date: i64| {
                        Obj::new()
                            .put("name", name)
                            .put("email", email)
                            .put("date", rest_date(date))
                            .put("tz", 0i64)
                    };
                    let parents: Vec<J> = p
                        .parents
                        .iter()
                        .map(|sha| {
                            let repo = self.root.join(format!("{}.git", c.project));
                            let subject =
                                git(&repo, &["log", "-1", "--format=%s", sha]).unwrap_or_default();
                            Obj::new()
                                .put("commit", sha)
                                .put("subject", subject)
                                .build()
                        })
                        .collect();
                    r = r.put(
                        "commit",
                        Obj::new()
                            .put("parents", J::Arr(parents))
                            .put(
                                "author",
                                person(&p.author_name, &p.author_email, p.author_date),
                            )
                            .put(
                                "committer",
                                person(&p.author_name, &p.author_email, p.author_date),
                            )
                            .put("subject", &p.subject)
                            .put("message", &p.message),
                    );
                }
                r = r.put("branch", format!("refs/heads/{}", c.branch));
                revs = revs.put(&p.revision, r);
            }
            o = o.put("revisions", revs);
        }
        if let Some((at, by, id)) = &c.submitted {
            o = o
                .put("submitted", rest_date(*at))
                .put("submitter", self.rest_account(*by, opts.detailed_accounts))
                .put("submission_id", id);
        }
        o.build()
    }

    fn query(&self, q: &[(String, String)]) -> Resp {
        let query = q
            .iter()
            .find(|(k, _)| k == "q")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let limit: usize = q
            .iter()
            .find(|(k, _)| k == "n")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(500);
        let skip: usize = q
            .iter()
            .find(|(k, _)| k == "S" || k == "start")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let opts = Opts::from_query(q);
        let st = self.state.lock().unwrap();
        let mut matched: Vec<&Change> = Vec::new();
        'changes: for c in st.changes.values() {
            for term in query.split_whitespace() {
                let (negated, term) = match term.strip_prefix('-') {
                    Some(t) => (true, t),
                    None => (false, term),
                };
                let ok = match term.split_once(':') {
                    Some(("is", "wip")) => c.wip,
                    Some(("is", "private")) => c.private,
                    // `label:Code-Review>=2`, `label:Code-Review=2`, `label:Code-Review=+2`.
                    Some(("label", spec)) => {
                        let (name, at_least, value) = match spec.split_once(">=") {
                            Some((n, v)) => (n, true, v),
                            None => match spec.split_once('=') {
                                Some((n, v)) => (n, false, v),
                                None => return text(400, &format!("Unsupported query: {term}")),
                            },
                        };
                        let Ok(value) = value.trim_start_matches('+').parse::<i32>() else {
                            return text(400, &format!("Unsupported query: {term}"));
                        };
                        c.votes.iter().any(|((l, _), v)| {
                            l == name
                                && if at_least {
                                    v.value >= value
                                } else {
                                    v.value == value
                                }
                        })
                    }
                    Some(("status", "open")) | Some(("is", "open")) => c.status == "NEW",
                    Some(("status", "merged")) => c.status == "MERGED",
                    Some(("status", "abandoned")) => c.status == "ABANDONED",
                    Some(("status", "closed")) | Some(("is", "closed")) => c.status != "NEW",
                    Some(("project", p)) => c.project == p,
                    Some(("branch", b)) => c.branch == b,
                    Some(("change", n)) => n == c.number.to_string() || n == c.change_id,
                    Some(("commit", sha)) if sha.len() >= 4 => {
                        c.patchsets.iter().any(|p| p.revision.starts_with(sha))
                    }
                    _ => return text(400, &format!("Unsupported query: {term}")),
                };
                if ok == negated {
                    continue 'changes;
                }
            }
            matched.push(c);
        }
        matched.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.number.cmp(&a.number)));
        let total = matched.len();
        let page: Vec<&Change> = matched.into_iter().skip(skip).take(limit).collect();
        let more = skip + page.len() < total;
        let n = page.len();
        let items: Vec<J> = page
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let info = self.change_info(c, opts);
                match (more && i + 1 == n, info) {
                    (true, J::Obj(mut f)) => {
                        f.push(("_more_changes".into(), J::Bool(true)));
                        J::Obj(f)
                    }
                    (_, info) => info,
                }
            })
            .collect();
        json(&J::Arr(items))
    }

    fn branches(&self, project: &str) -> Resp {
        let repo = self.root.join(format!("{project}.git"));
        if !repo.is_dir() {
            return text(404, &format!("Not found: {project}"));
        }
        let head = git(&repo, &["symbolic-ref", "HEAD"]).unwrap_or_default();
        let mut items = vec![
            Obj::new()
                .put("ref", "HEAD")
                .put("revision", head.trim_start_matches("refs/heads/"))
                .build(),
        ];
        for pattern in ["refs/meta/config", "refs/heads/"] {
            let list = git(
                &repo,
                &["for-each-ref", "--format=%(refname) %(objectname)", pattern],
            )
            .unwrap_or_default();
            for line in list.lines() {
                if let Some((r, sha)) = line.split_once(' ') {
                    items.push(Obj::new().put("ref", r).put("revision", sha).build());
                }
            }
        }
        json(&J::Arr(items))
    }

    /// The in-process answers of [`Options::native_ls_refs`]: the v2 capability advertisement
    /// (server-wide, taken once from `git http-backend`) and `ls-refs`.
    fn native(
        &self,
        method: &str,
        project: &str,
        suffix: &str,
        query: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> Option<Resp> {
        let repo = self.root.join(format!("{project}.git"));
        match (method, suffix) {
            ("GET", "/info/refs") if query == "service=git-upload-pack" => {
                let mut cached = self.advertisement.lock().unwrap();
                if cached.is_none() {
                    let r = self.cgi(method, project, suffix, query, headers, body, None);
                    if r.status != 200 {
                        return Some(r);
                    }
                    *cached = Some(r);
                }
                cached.clone()
            }
            ("POST", "/git-upload-pack") => {
                let req = lsrefs::parse(body)?;
                let answer = self.native.answer(&repo, &req)?;
                Some(Resp {
                    status: 200,
                    content_type: "application/x-git-upload-pack-result".into(),
                    headers: vec![
                        ("Expires".into(), "Fri, 01 Jan 1980 00:00:00 GMT".into()),
                        ("Pragma".into(), "no-cache".into()),
                        (
                            "Cache-Control".into(),
                            "no-cache, max-age=0, must-revalidate".into(),
                        ),
                    ],
                    body: answer,
                })
            }
            _ => None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cgi(
        &self,
        method: &str,
        project: &str,
        suffix: &str,
        query: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        remote_user: Option<&str>,
    ) -> Resp {
        let mut cmd = Command::new("git");
        cmd.arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", format!("/{project}.git{suffix}"))
            .env("REQUEST_METHOD", method)
            .env("QUERY_STRING", query)
            .env("REMOTE_ADDR", "127.0.0.1")
            .env("CONTENT_LENGTH", body.len().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(ct) = headers.get("content-type") {
            cmd.env("CONTENT_TYPE", ct);
        }
        if let Some(p) = headers.get("git-protocol") {
            cmd.env("GIT_PROTOCOL", p);
        }
        if let Some(e) = headers.get("content-encoding") {
            cmd.env("HTTP_CONTENT_ENCODING", e);
        }
        if let Some(u) = remote_user {
            cmd.env("REMOTE_USER", u);
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return text(500, &format!("git http-backend: {e}")),
        };
        let mut stdin = child.stdin.take().unwrap();
        let input = body.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("http-backend");
        let _ = writer.join();
        let raw = out.stdout;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
        let Some((i, skip)) = split else {
            return text(
                500,
                &format!(
                    "git http-backend failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
        };
        let head = String::from_utf8_lossy(&raw[..i]).into_owned();
        let mut resp = Resp {
            status: 200,
            content_type: String::new(),
            headers: Vec::new(),
            body: raw[i + skip..].to_vec(),
        };
        for line in head.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                match k.to_ascii_lowercase().as_str() {
                    "status" => {
                        resp.status = v
                            .split_whitespace()
                            .next()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(500)
                    }
                    "content-type" => resp.content_type = v.to_owned(),
                    _ => resp.headers.push((k.to_owned(), v.to_owned())),
                }
            }
        }
        resp
    }

    fn receive_pack(
        &self,
        project: &str,
        query: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
        user: &Account,
    ) -> Resp {
        let _guard = self.push_lock.lock().unwrap();
        let commands = parse_push_commands(body);
        let resp = self.cgi(
            "POST",
            project,
            "/git-receive-pack",
            query,
            headers,
            body,
            Some(&user.username),
        );
        if resp.status != 200 {
            return resp;
        }
        let repo = self.root.join(format!("{project}.git"));
        for (old, new, name) in commands {
            let now_at = git(&repo, &["rev-parse", "-q", "--verify", &name]).unwrap_or_default();
            if new != ZERO && now_at != new {
                continue; // rejected by receive-pack
            }
            if let Some(target) = name.strip_prefix("refs/for/") {
                let (branch, opts) = target.split_once('%').unwrap_or((target, ""));
                let reviewers: Vec<Account> = opts
                    .split(',')
                    .filter_map(|o| o.strip_prefix("r="))
                    .filter_map(|u| self.accounts.iter().find(|a| a.username == u).cloned())
                    .collect();
                let _ = git(&repo, &["update-ref", "-d", &name]);
                self.upload(project, branch, &new, user, None, &reviewers);
            } else if let Some((n, p)) = parse_change_ref(&name) {
                let _ = git(&repo, &["update-ref", "-d", &name]);
                let branch = git(&repo, &["symbolic-ref", "--short", "HEAD"])
                    .unwrap_or_else(|_| "main".into());
                self.upload(project, &branch, &new, user, Some((n, p)), &[]);
            } else {
                self.emit(events::ref_updated(
                    Some(&user.attr()),
                    &old,
                    &new,
                    &name,
                    project,
                    now(),
                ));
                // A new branch cannot contain a change (Gerrit skips it too).
                if let Some(branch) = name.strip_prefix("refs/heads/")
                    && new != ZERO
                    && old != ZERO
                {
                    self.close_merged_by_push(project, branch, &old, &new, user);
                }
            }
        }
        resp
    }

    /// What Gerrit does after a direct push to a branch (ReceiveCommits' auto-close, then
    /// MergedByPushOp): every open change of that branch with a patchset whose commit the push
    /// made reachable is closed as merged by the pusher, with the message "Change has been
    /// successfully pushed.", a meta commit, `ref-updated` for the meta ref and
    /// `change-merged`. (Gerrit also closes a change matched only by its Change-Id footer,
    /// after adding the pushed commit as a new patchset; the stand-in leaves that out.)
    fn close_merged_by_push(
        &self,
        project: &str,
        branch: &str,
        old: &str,
        new: &str,
        user: &Account,
    ) {
        let repo = self.root.join(format!("{project}.git"));
        let range = ["rev-list", "--max-count=10000", new, "--not", old];
        let pushed: std::collections::HashSet<String> = git(&repo, &range)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        let closing: Vec<(u32, u32)> = {
            let st = self.state.lock().unwrap();
            st.changes
                .values()
                // Abandoned changes too: Gerrit closes every change not merged yet.
                .filter(|c| c.project == project && c.branch == branch && c.status != "MERGED")
                .filter_map(|c| {
                    c.patchsets
                        .iter()
                        .rev()
                        .find(|ps| pushed.contains(&ps.revision))
                        .map(|ps| (c.number, ps.number))
                })
                .collect()
        };
        for (number, ps_number) in closing {
            let at = now();
            let submission = format!("{number}-{at}");
            let mut st = self.state.lock().unwrap();
            st.message_seq += 1;
            let mid = format!("{:040x}", st.message_seq);
            let cm = st.changes.get_mut(&number).unwrap();
            cm.status = "MERGED".into();
            cm.updated = at;
            cm.submitted = Some((at, user.id, submission.clone()));
            cm.messages.push(ChangeMessage {
                id: mid,
                author: Some(user.id),
                date: at,
                message: "Change has been successfully pushed.".into(),
                tag: Some("autogenerated:gerrit:merged".into()),
                patchset: ps_number,
            });
            let note = format!(
                "Update patch set {ps_number}\n\nChange has been successfully pushed.\n\nPatch-set: {ps_number}\nStatus: merged\nSubmission-id: {submission}\n"
            );
            let old_meta = cm.meta.clone();
            let meta = self.meta_commit(&repo, cm, user.id, &note);
            cm.meta = meta.clone();
            let c = cm.clone();
            drop(st);
            let ps = c
                .patchsets
                .iter()
                .find(|p| p.number == ps_number)
                .expect("the matched patchset")
                .clone();
            let meta_ref = format!("refs/changes/{:02}/{}/meta", number % 100, number);
            self.emit(events::ref_updated(
                Some(&user.attr()),
                &old_meta,
                &meta,
                &meta_ref,
                project,
                at,
            ));
            self.emit(events::change_merged(
                &user.attr(),
                new,
                &self.ps_attr(&ps),
                &self.change_attr(&c),
                at,
            ));
        }
    }

    fn meta_commit(&self, repo: &Path, c: &Change, by: u64, message: &str) -> String {
        let a = self.account(by);
        let email = format!("{}@gerrit", a.id);
        let mut args = vec!["commit-tree", EMPTY_TREE, "-m", message];
        if !c.meta.is_empty() {
            args.push("-p");
            args.push(&c.meta);
        }
        let sha = git_env(repo, &args, &committer_env(&a.name, &email), None).expect("meta commit");
        let meta_ref = format!("refs/changes/{:02}/{}/meta", c.number % 100, c.number);
        let old = if c.meta.is_empty() { ZERO } else { &c.meta };
        git(repo, &["update-ref", &meta_ref, &sha, old]).expect("meta ref");
        sha
    }

    fn change_attr(&self, c: &Change) -> ChangeAttr {
        let ps = c.current();
        ChangeAttr {
            project: c.project.clone(),
            branch: c.branch.clone(),
            topic: None,
            id: c.change_id.clone(),
            number: c.number,
            subject: ps.subject.clone(),
            owner: self.account(c.owner).attr(),
            url: format!("{}/c/{}/+/{}", self.url, c.project, c.number),
            commit_message: ps.message.clone(),
            hashtags: Vec::new(),
            created_on: c.created,
            status: c.status.clone(),
            wip: c.wip,
            private: c.private,
        }
    }

    fn ps_attr(&self, ps: &PatchSet) -> PatchSetAttr {
        PatchSetAttr {
            number: ps.number,
            revision: ps.revision.clone(),
            parents: ps.parents.clone(),
            git_ref: ps.git_ref.clone(),
            uploader: self.account(ps.uploader).attr(),
            created_on: ps.created_on,
            author: {
                let known = self.accounts.iter().find(|a| a.email == ps.author_email);
                match known {
                    Some(a) => a.attr(),
                    None => AccountAttr {
                        name: ps.author_name.clone(),
                        email: ps.author_email.clone(),
                        username: String::new(),
                    },
                }
            },
            kind: "REWORK".into(),
            size_insertions: ps.insertions,
            size_deletions: ps.deletions,
        }
    }

    /// A new change or patchset from a pushed commit.
    fn upload(
        &self,
        project: &str,
        branch: &str,
        sha: &str,
        user: &Account,
        explicit: Option<(u32, u32)>,
        reviewers: &[Account],
    ) {
        let repo = self.root.join(format!("{project}.git"));
        let raw = git(&repo, &["cat-file", "commit", sha]).expect("pushed commit");
        let (headers, message) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let message = format!("{}\n", message.trim_end());
        let parents: Vec<String> = headers
            .lines()
            .filter_map(|l| l.strip_prefix("parent "))
            .map(str::to_owned)
            .collect();
        let author = headers
            .lines()
            .find_map(|l| l.strip_prefix("author "))
            .unwrap_or("Unknown <unknown> 0 +0000");
        let (author_name, rest) = author.split_once(" <").unwrap_or((author, ""));
        let (author_email, rest) = rest.split_once("> ").unwrap_or((rest, "0"));
        let author_date: i64 = rest
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let change_id = message
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("Change-Id: "))
            .map(str::trim)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("I{sha}"));
        let subject = message.lines().next().unwrap_or_default().to_owned();
        let base = parents.first().map(String::as_str).unwrap_or(EMPTY_TREE);
        let numstat = git(&repo, &["diff", "--numstat", base, sha]).unwrap_or_default();
        let (mut ins, mut del) = (0i64, 0i64);
        for l in numstat.lines() {
            let mut f = l.split_whitespace();
            ins += f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            del += f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        }
        let at = now();
        let mut st = self.state.lock().unwrap();
        let existing = match explicit {
            Some((n, _)) => st.changes.get(&n).map(|c| c.number),
            None => st
                .changes
                .values()
                .find(|c| {
                    c.project == project
                        && c.branch == branch
                        && c.change_id == change_id
                        && c.status == "NEW"
                })
                .map(|c| c.number),
        };
        let number = match existing {
            Some(n) => n,
            None => {
                let n = explicit.map_or(st.next_change, |(n, _)| n);
                st.next_change = st.next_change.max(n + 1);
                st.changes.insert(
                    n,
                    Change {
                        number: n,
                        project: project.to_owned(),
                        branch: branch.to_owned(),
                        change_id: change_id.clone(),
                        owner: user.id,
                        status: "NEW".into(),
                        created: at,
                        updated: at,
                        patchsets: Vec::new(),
                        votes: BTreeMap::new(),
                        messages: Vec::new(),
                        meta: String::new(),
                        submitted: None,
                        wip: false,
                        private: false,
                    },
                );
                n
            }
        };
        let c = st.changes.get_mut(&number).unwrap();
        let ps_number = c.patchsets.len() as u32 + 1;
        let ps_ref = format!("refs/changes/{:02}/{}/{}", number % 100, number, ps_number);
        git(&repo, &["update-ref", &ps_ref, sha, ZERO]).expect("patchset ref");
        c.patchsets.push(PatchSet {
            number: ps_number,
            revision: sha.to_owned(),
            parents: parents.clone(),
            git_ref: ps_ref.clone(),
            uploader: user.id,
            created_on: at,
            author_name: author_name.to_owned(),
            author_email: author_email.to_owned(),
            insertions: ins,
            deletions: del,
            message: message.clone(),
            subject: subject.clone(),
            author_date,
        });
        c.votes.clear();
        c.updated = at;
        let first = ps_number == 1;
        let note = if first {
            format!(
                "Create change\n\nUploaded patch set 1.\n\nPatch-set: 1\nChange-id: {change_id}\nSubject: {subject}\nBranch: refs/heads/{branch}\nStatus: new\nCommit: {sha}\n"
            )
        } else {
            format!(
                "Update patch set {ps_number}\n\nUploaded patch set {ps_number}.\n\nPatch-set: {ps_number}\nSubject: {subject}\nCommit: {sha}\n"
            )
        };
        st.message_seq += 1;
        let mid = format!("{:040x}", st.message_seq);
        let c = st.changes.get_mut(&number).unwrap();
        c.messages.push(ChangeMessage {
            id: mid,
            author: Some(user.id),
            date: at,
            message: format!("Uploaded patch set {ps_number}."),
            tag: Some("autogenerated:gerrit:newPatchSet".into()),
            patchset: ps_number,
        });
        let old_meta = if c.meta.is_empty() {
            ZERO.to_owned()
        } else {
            c.meta.clone()
        };
        let meta = self.meta_commit(&repo, c, user.id, &note);
        c.meta = meta.clone();
        let c = c.clone();
        drop(st);
        let uploader = user.attr();
        self.emit(events::ref_updated(
            Some(&uploader),
            ZERO,
            sha,
            &ps_ref,
            project,
            at,
        ));
        let meta_ref = format!("refs/changes/{:02}/{}/meta", number % 100, number);
        self.emit(events::ref_updated(
            Some(&uploader),
            &old_meta,
            &meta,
            &meta_ref,
            project,
            at,
        ));
        self.emit(events::patchset_created(
            &uploader,
            &self.ps_attr(c.current()),
            &self.change_attr(&c),
            at,
        ));
        for r in reviewers {
            self.emit(events::reviewer_added(
                &r.attr(),
                &uploader,
                &self.ps_attr(c.current()),
                &self.change_attr(&c),
                at,
            ));
        }
    }

    fn post_review(&self, caller: &Account, number: u32, rev: &str, body: &str) -> Resp {
        let input = match J::parse(body) {
            Ok(j @ J::Obj(_)) => j,
            _ => return text(400, "Invalid JSON"),
        };
        let mut st = self.state.lock().unwrap();
        let c = st.changes.get(&number).unwrap().clone();
        let rev = percent_decode(rev, false);
        let target = if rev == "current" {
            Some(c.current().clone())
        } else if let Ok(n) = rev.parse::<u32>() {
            c.patchsets.iter().find(|p| p.number == n).cloned()
        } else {
            c.patchsets
                .iter()
                .find(|p| rev.len() >= 4 && p.revision.starts_with(&rev))
                .cloned()
        };
        let Some(target) = target else {
            return text(404, &format!("Not found: {rev}"));
        };
        let message = input.get("message").and_then(J::as_str).map(str::to_owned);
        let tag = input.get("tag").and_then(J::as_str).map(str::to_owned);
        let mut asked: Vec<(String, i32)> = Vec::new();
        if let Some(J::Obj(fields)) = input.get("labels") {
            for (k, v) in fields {
                let Some(v) = v.as_i64() else {
                    return text(400, &format!("label \"{k}\": not a number"));
                };
                asked.push((k.clone(), v as i32));
            }
        }
        let mut applied: Vec<(String, i32)> = Vec::new();
        for (label, value) in &asked {
            match self.labels.iter().find(|l| &l.name == label) {
                None if self.options.strict_labels => {
                    return text(400, &format!("label \"{label}\" is not a configured label"));
                }
                None => {}
                Some(l) if (*value < l.min() || *value > l.max()) && self.options.strict_labels => {
                    return text(
                        400,
                        &format!("label \"{label}\": {value} is not a valid value"),
                    );
                }
                Some(l) if *value < l.min() || *value > l.max() => {}
                Some(_) => applied.push((label.clone(), *value)),
            }
        }
        if c.status == "ABANDONED" && !applied.is_empty() {
            return text(409, "change is closed");
        }
        if c.status == "MERGED" && !applied.is_empty() {
            let names: Vec<&str> = applied.iter().map(|(l, _)| l.as_str()).collect();
            return text(
                409,
                &format!(
                    "Voting on labels disallowed after submit: {}",
                    names.join(", ")
                ),
            );
        }
        let current = target.number == c.current().number;
        if !current {
            applied.clear();
        }
        let at = now();
        let mut changed: Vec<(String, i32, i32)> = Vec::new();
        for (label, value) in &applied {
            let old = c.vote(label, caller.id);
            if old != *value {
                changed.push((label.clone(), *value, old));
            }
        }
        let votes_text: Vec<(String, i32)> =
            changed.iter().map(|(l, v, _)| (l.clone(), *v)).collect();
        let has_message = message.as_deref().is_some_and(|m| !m.trim().is_empty());
        let labels_json = {
            let mut o = Obj::new();
            for (l, v) in &applied {
                o = o.put(l, *v);
            }
            o.build()
        };
        if changed.is_empty() && !has_message {
            drop(st);
            let ci = self.change_info(
                &self.state.lock().unwrap().changes[&number],
                Opts {
                    detailed_accounts: true,
                    ..Opts::default()
                },
            );
            return json(
                &Obj::new()
                    .put("labels", labels_json)
                    .put("change_info", ci)
                    .build(),
            );
        }
        let comment = events::comment_text(target.number, &votes_text, message.as_deref());
        st.message_seq += 1;
        let mid = format!("{:040x}", st.message_seq);
        let repo = self.root.join(format!("{}.git", c.project));
        let mut note = format!(
            "Update patch set {}\n\n{}\n\nPatch-set: {}\n",
            target.number, comment, target.number
        );
        for (l, v, _) in &changed {
            if *v == 0 {
                note.push_str(&format!("Label: -{l}\n"));
            } else {
                note.push_str(&format!("Label: {l}={v:+}\n"));
            }
        }
        if let Some(t) = &tag {
            note.push_str(&format!("Tag: {t}\n"));
        }
        let old_meta = c.meta.clone();
        let cm = st.changes.get_mut(&number).unwrap();
        for (l, v, _) in &changed {
            cm.votes.insert(
                (l.clone(), caller.id),
                Vote {
                    value: *v,
                    date: at,
                    tag: tag.clone(),
                },
            );
        }
        cm.messages.push(ChangeMessage {
            id: mid,
            author: Some(caller.id),
            date: at,
            message: comment.clone(),
            tag: tag.clone(),
            patchset: target.number,
        });
        cm.updated = at;
        let meta = self.meta_commit(&repo, cm, caller.id, &note);
        cm.meta = meta.clone();
        let c = cm.clone();
        drop(st);
        let meta_ref = format!("refs/changes/{:02}/{}/meta", number % 100, number);
        self.emit(events::ref_updated(
            Some(&caller.attr()),
            &old_meta,
            &meta,
            &meta_ref,
            &c.project,
            at,
        ));
        // Every project label with the author's current value; oldValue where it changed.
        let approvals: Vec<ApprovalAttr> = if c.status != "NEW" && changed.is_empty() {
            Vec::new()
        } else {
            self.labels
                .iter()
                .map(|l| ApprovalAttr {
                    label: l.name.clone(),
                    value: c.vote(&l.name, caller.id),
                    old_value: changed
                        .iter()
                        .find(|(n, _, _)| n == &l.name)
                        .map(|(_, _, old)| *old),
                })
                .collect()
        };
        self.emit(events::comment_added(
            &caller.attr(),
            (!approvals.is_empty()).then_some(approvals.as_slice()),
            &comment,
            &self.ps_attr(&target),
            &self.change_attr(&c),
            at,
        ));
        let ci = self.change_info(
            &c,
            Opts {
                detailed_accounts: true,
                ..Opts::default()
            },
        );
        json(
            &Obj::new()
                .put("labels", labels_json)
                .put("change_info", ci)
                .build(),
        )
    }

    fn submit(&self, caller: &Account, number: u32) -> Resp {
        let _guard = self.push_lock.lock().unwrap();
        let c = self.state.lock().unwrap().changes[&number].clone();
        match c.status.as_str() {
            "MERGED" => return text(409, "change is merged"),
            "ABANDONED" => return text(409, "change is abandoned"),
            _ => {}
        }
        let mut unsatisfied = Vec::new();
        for l in &self.labels {
            let values: Vec<i32> = c
                .votes
                .iter()
                .filter(|((n, _), _)| n == &l.name)
                .map(|(_, v)| v.value)
                .collect();
            let ok = values.contains(&l.max()) && !values.contains(&l.min());
            if !ok {
                unsatisfied.push(format!("submit requirement '{}' is unsatisfied", l.name));
            }
        }
        if !unsatisfied.is_empty() {
            return text(
                409,
                &format!(
                    "Failed to submit 1 change due to the following problems:\nChange {n}: Change {n} is not ready: {}.",
                    unsatisfied.join(", "),
                    n = number
                ),
            );
        }
        let repo = self.root.join(format!("{}.git", c.project));
        let branch_ref = format!("refs/heads/{}", c.branch);
        let Ok(tip) = git(&repo, &["rev-parse", "-q", "--verify", &branch_ref]) else {
            return text(
                409,
                &format!("destination branch \"{branch_ref}\" not found."),
            );
        };
        let ps = c.current().clone();
        let ff = git(&repo, &["merge-base", "--is-ancestor", &tip, &ps.revision]).is_ok();
        let new_tip = if ff {
            ps.revision.clone()
        } else if self.options.fast_forward_only {
            return text(
                409,
                "Project policy requires all submissions to be a fast-forward.\n\nPlease rebase the change locally and upload again for review.",
            );
        } else {
            match git(&repo, &["merge-tree", "--write-tree", &tip, &ps.revision]) {
                Ok(out) => {
                    let tree = out.lines().next().unwrap_or_default().to_owned();
                    let msg = format!("Merge \"{}\"", ps.subject);
                    git_env(
                        &repo,
                        &[
                            "commit-tree",
                            &tree,
                            "-p",
                            &tip,
                            "-p",
                            &ps.revision,
                            "-m",
                            &msg,
                        ],
                        &committer_env(&caller.name, &caller.email),
                        None,
                    )
                    .expect("merge commit")
                }
                Err(_) => {
                    return text(
                        409,
                        "Change could not be merged due to a path conflict.\n\nPlease rebase the change locally and upload the rebased commit for review.",
                    );
                }
            }
        };
        git(&repo, &["update-ref", &branch_ref, &new_tip, &tip]).expect("branch update");
        let at = now();
        let submission = format!("{number}-{at}");
        let mut st = self.state.lock().unwrap();
        let cm = st.changes.get_mut(&number).unwrap();
        cm.status = "MERGED".into();
        cm.updated = at;
        cm.submitted = Some((at, caller.id, submission.clone()));
        let note = format!(
            "Update patch set {}\n\nChange has been successfully merged\n\nPatch-set: {}\nStatus: merged\nSubmission-id: {}\n",
            ps.number, ps.number, submission
        );
        let old_meta = cm.meta.clone();
        let meta = self.meta_commit(&repo, cm, caller.id, &note);
        cm.meta = meta.clone();
        let c = cm.clone();
        drop(st);
        let who = caller.attr();
        self.emit(events::ref_updated(
            Some(&who),
            &tip,
            &new_tip,
            &branch_ref,
            &c.project,
            at,
        ));
        let meta_ref = format!("refs/changes/{:02}/{}/meta", number % 100, number);
        self.emit(events::ref_updated(
            Some(&who),
            &old_meta,
            &meta,
            &meta_ref,
            &c.project,
            at,
        ));
        self.emit(events::change_merged(
            &who,
            &new_tip,
            &self.ps_attr(&ps),
            &self.change_attr(&c),
            at,
        ));
        json(&self.change_info(
            &c,
            Opts {
                detailed_accounts: true,
                ..Opts::default()
            },
        ))
    }

    /// `wip`, `ready`, `private`, `private.delete`: a NoteDb update, its `ref-updated`, and
    /// `wip-state-changed` or `private-state-changed`.
    fn set_state(&self, caller: &Account, number: u32, action: &str) -> Resp {
        let mut st = self.state.lock().unwrap();
        let c = st.changes.get_mut(&number).unwrap();
        if c.status != "NEW" {
            return text(409, &format!("change is {}", c.status.to_lowercase()));
        }
        let (wip, footer) = match action {
            "wip" => (true, "Work-in-progress: true"),
            "ready" => (true, "Work-in-progress: false"),
            "private" => (false, "Private: true"),
            _ => (false, "Private: false"),
        };
        let on = !footer.ends_with("false");
        let current = if wip { c.wip } else { c.private };
        if current == on {
            return text(409, "no change");
        }
        if wip {
            c.wip = on;
        } else {
            c.private = on;
        }
        let at = now();
        c.updated = at;
        let ps = c.current().clone();
        let repo = self.root.join(format!("{}.git", c.project));
        let note = format!(
            "Update patch set {}\n\nPatch-set: {}\n{footer}\n",
            ps.number, ps.number
        );
        let old_meta = c.meta.clone();
        let meta = self.meta_commit(&repo, c, caller.id, &note);
        c.meta = meta.clone();
        let c = c.clone();
        drop(st);
        let meta_ref = format!("refs/changes/{:02}/{}/meta", number % 100, number);
        self.emit(events::ref_updated(
            Some(&caller.attr()),
            &old_meta,
            &meta,
            &meta_ref,
            &c.project,
            at,
        ));
        self.emit(events::state_changed(
            &caller.attr(),
            if wip {
                "wip-state-changed"
            } else {
                "private-state-changed"
            },
            &self.ps_attr(&ps),
            &self.change_attr(&c),
            at,
        ));
        text(200, "")
    }

    fn abandon_restore(&self, caller: &Account, number: u32, abandon: bool, reason: &str) -> Resp {
        let mut st = self.state.lock().unwrap();
        let c = st.changes.get_mut(&number).unwrap();
        match (abandon, c.status.as_str()) {
            (_, "MERGED") => return text(409, "change is merged"),
            (true, "ABANDONED") => return text(409, "change is abandoned"),
            (false, "NEW") => return text(409, "change is new"),
            _ => {}
        }
        let at = now();
        c.status = if abandon { "ABANDONED" } else { "NEW" }.into();
        c.updated = at;
        let ps = c.current().clone();
        let repo = self.root.join(format!("{}.git", c.project));
        let note = format!(
            "Update patch set {}\n\n{}\n\nPatch-set: {}\nStatus: {}\n",
            ps.number,
            if abandon { "Abandoned" } else { "Restored" },
            ps.number,
            if abandon { "abandoned" } else { "new" }
        );
        let old_meta = c.meta.clone();
        let meta = self.meta_commit(&repo, c, caller.id, &note);
        c.meta = meta.clone();
        let c = c.clone();
        drop(st);
        let meta_ref = format!("refs/changes/{:02}/{}/meta", number % 100, number);
        self.emit(events::ref_updated(
            Some(&caller.attr()),
            &old_meta,
            &meta,
            &meta_ref,
            &c.project,
            at,
        ));
        let ev = if abandon {
            events::change_abandoned(
                &caller.attr(),
                reason,
                &self.ps_attr(&ps),
                &self.change_attr(&c),
                at,
            )
        } else {
            events::change_restored(
                &caller.attr(),
                reason,
                &self.ps_attr(&ps),
                &self.change_attr(&c),
                at,
            )
        };
        self.emit(ev);
        json(&self.change_info(&c, Opts::default()))
    }
}

/// `refs/changes/XX/N/P` -> (N, P).
fn parse_change_ref(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("refs/changes/")?;
    let mut it = rest.split('/');
    let (shard, n, p) = (it.next()?, it.next()?, it.next()?);
    let n: u32 = n.parse().ok()?;
    let p: u32 = p.parse().ok()?;
    (it.next().is_none() && shard == format!("{:02}", n % 100)).then_some((n, p))
}

/// The ref updates at the start of a receive-pack request: `old new ref[\0caps]` pkt-lines.
fn parse_push_commands(body: &[u8]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= body.len() {
        let Ok(len) = usize::from_str_radix(&String::from_utf8_lossy(&body[i..i + 4]), 16) else {
            break;
        };
        if len == 0 || len < 4 || i + len > body.len() {
            break;
        }
        let line = &body[i + 4..i + len];
        let line = line.split(|b| *b == 0).next().unwrap_or(line);
        let line = String::from_utf8_lossy(line).trim_end().to_owned();
        let mut f = line.splitn(3, ' ');
        if let (Some(o), Some(n), Some(r)) = (f.next(), f.next(), f.next()) {
            out.push((o.to_owned(), n.to_owned(), r.to_owned()));
        }
        i += len;
    }
    out
}
