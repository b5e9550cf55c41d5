//! A Kubernetes API stand-in (no kube-apiserver can run offline here), speaking the real wire
//! protocol to seakeeper's `kube` client and to Debian's `kubectl`:
//!
//! - discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<group>/v1`) of every kind in
//!   `resources::KINDS`, and an OpenAPI v3 discovery document with no paths (see `openapi_v3`);
//! - every kind there: create, get, list, watch, patch (merge patch, and strategic merge
//!   patch: `resources::strategic_merge` says how faithfully), replace (PUT, with
//!   `resourceVersion` conflicts; not Jobs or Pods), delete; so
//!   `kubectl apply -k bootstrap/kubernetes` works, twice. A fresh stand-in is a fresh
//!   cluster: `default` and `kube-*` namespaces, a `default` ServiceAccount made in every new
//!   namespace, the `kubernetes` Service and Endpoints (this server's address), Services get
//!   a cluster IP. Only Jobs have a controller here (StatefulSets stay without pods);
//! - `SubjectAccessReview`, answered by RBAC from the stored Roles, ClusterRoles and bindings;
//! - namespaces (deleting one deletes what is in it); `batch/v1` Jobs: create (409 AlreadyExists), get, list and watch with label and
//!   field selectors, delete with `propagationPolicy` (Foreground: `deletionTimestamp` and the
//!   `foregroundDeletion` finalizer until the pods are gone); `core/v1` pods: get, list, watch,
//!   `log` with `follow`, `container` and `timestamps`; `core/v1` Secrets: create, get, list,
//!   merge-patch (`data` refused once `immutable`), delete;
//! - the garbage collector: NetworkPolicies and Secrets whose `ownerReferences` name a Job
//!   are deleted with it;
//! - resourceVersion semantics: one counter, list `metadata.resourceVersion`, watches from a
//!   version replay what followed it, a version older than the kept history gets an `ERROR`
//!   event with a `410 Expired` Status, `BOOKMARK` events when asked, `timeoutSeconds`;
//! - a simulated Job controller: one pod per Job (`job-name` labels), Pending -> Running ->
//!   Succeeded/Failed, the Job's `active`/`succeeded`/`failed` counts and `Complete`/`Failed`
//!   conditions, `activeDeadlineSeconds` enforced (`DeadlineExceeded`), log lines written as
//!   the "run" goes. What a run does comes from the job container's environment:
//!   `STANDIN_OUTCOME` (`succeed`, `fail`, `hang`), `STANDIN_DURATION_MS`, `STANDIN_EXIT_CODE`,
//!   and the collector's termination message from `STANDIN_OUTPUTS`. Variables from a
//!   `secretKeyRef` are resolved as the kubelet does: a missing Secret or key keeps the pod
//!   Pending (`CreateContainerConfigError`), as does an image from a registry host under
//!   `.invalid` (`ImagePullBackOff`). A command `echo <text>` writes its text, with
//!   `$NAME` expanded from the container's environment, as its output line.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::gerrit::http::{self, Request, Response};

mod resources;

use resources::Kind;

type Key = (Kind, String, String); // kind, namespace, name

struct Event {
    rv: u64,
    kind: Kind,
    ns: String,
    kind_of_change: &'static str,
    object: Value,
}

struct Sim {
    started: Instant,
    running_at: Option<Instant>,
    duration: Duration,
    outcome: String,
    exit_code: i64,
    lines: Vec<String>,
    written: usize,
}

#[derive(Default)]
struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Event>,
    /// Versions at or below this were compacted away: watching from them is 410 Gone.
    compacted: u64,
    logs: HashMap<(String, String), Vec<String>>,
    sims: HashMap<(String, String), Sim>,
    uid: u64,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    /// Bumped to cut every open watch (clients must reconnect).
    watch_epoch: std::sync::atomic::AtomicU64,
    requests: Mutex<Vec<String>>,
    history_limit: usize,
    gone: std::sync::atomic::AtomicUsize,
}

/// The running stand-in.
pub struct KubeApi {
    pub url: String,
    inner: Arc<Inner>,
    _server: http::Server,
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    Response::new(code, "application/json", body.to_string().into_bytes())
}

/// The port of `http://127.0.0.1:PORT`.
fn server_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the stand-in's URL ends with its port")
}

/// `/openapi/v3`: the OpenAPI v3 discovery document, listing no group-versions (and no
/// `/openapi/v2`: 404). kubectl reads it before `apply`: with no paths it computes its strategic
/// merge patches from its compiled-in types, which is all apply needs. With validation on,
/// kubectl looks there for the `fieldValidation` parameter and, not finding it, falls back to
/// client-side validation against `/openapi/v2`, which fails; so kubectl runs here with
/// `--validate=false` (and sends `fieldValidation=Ignore`). Serving the real schemas (and
/// validating strictly on the server) is kube-apiserver's job; the manifests are checked
/// against Kubernetes 1.32's schemas by `kubernetes-validate` in tests/bootstrap_kubernetes.rs.
fn openapi_v3() -> Response {
    ok_json(200, &json!({"paths": {}}))
}

fn ok_json(code: u16, v: &Value) -> Response {
    Response::new(code, "application/json", v.to_string().into_bytes())
}

fn query(url: &str) -> HashMap<String, String> {
    let q = url.split_once('?').map(|x| x.1).unwrap_or("");
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = if b[i] == b'%' && i + 2 < b.len() {
            std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        } else {
            None
        };
        if let Some(v) = hex {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `k=v,k!=v,k` label selectors.
fn labels_match(selector: &str, obj: &Value) -> bool {
    let labels = obj["metadata"]["labels"].as_object();
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        if let Some((k, v)) = term.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else {
            get(term.trim()).is_some()
        }
    })
}

fn fields_match(selector: &str, obj: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v, neg) = match term.split_once("!=") {
            Some((k, v)) => (k, v, true),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((k, v)) => (k, v, false),
                None => return true,
            },
        };
        let got = match k.trim() {
            "metadata.name" => obj["metadata"]["name"].as_str(),
            "metadata.namespace" => obj["metadata"]["namespace"].as_str(),
            "status.phase" => obj["status"]["phase"].as_str(),
            _ => None,
        };
        (got == Some(v.trim())) != neg
    })
}

impl KubeApi {
    pub fn start() -> KubeApi {
        KubeApi::start_with_history(10_000)
    }

    /// Keeps at most `history_limit` watch events; older versions get 410 Gone.
    pub fn start_with_history(history_limit: usize) -> KubeApi {
        let api = KubeApi::launch(history_limit);
        for ns in ["seakeeper-untrusted", "seakeeper-trusted"] {
            api.create_namespace(ns);
        }
        api
    }

    /// A stand-in for a cluster where nothing of seakeeper's was applied yet (no
    /// `seakeeper-*` namespaces: `kubectl apply -k bootstrap/kubernetes` makes them).
    pub fn start_bare() -> KubeApi {
        KubeApi::launch(10_000)
    }

    fn launch(history_limit: usize) -> KubeApi {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            watch_epoch: std::sync::atomic::AtomicU64::new(0),
            requests: Mutex::new(Vec::new()),
            history_limit,
            gone: std::sync::atomic::AtomicUsize::new(0),
        });
        let i2 = inner.clone();
        let server = http::Server::start(Arc::new(move |req| Some(i2.route(req))));
        let url = format!("http://{}", server.addr);
        let i3 = inner.clone();
        std::thread::spawn(move || {
            while !i3.stop.load(Ordering::SeqCst) {
                i3.reconcile();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let api = KubeApi {
            url,
            inner,
            _server: server,
        };
        api.fresh_cluster(server_port(&api.url));
        api
    }

    /// What a new cluster has before anyone applies anything: the `default` and `kube-*`
    /// namespaces (each with its `default` ServiceAccount) and the `kubernetes` Service in
    /// `default`, whose Endpoints are this stand-in's own address.
    fn fresh_cluster(&self, port: u16) {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            self.create_namespace(ns);
        }
        let service = json!({"apiVersion":"v1","kind":"Service",
            "metadata":{"name":"kubernetes","labels":{"component":"apiserver","provider":"kubernetes"}},
            "spec":{"clusterIP":"10.96.0.1","clusterIPs":["10.96.0.1"],"type":"ClusterIP",
                "ports":[{"name":"https","port":443,"protocol":"TCP","targetPort":port}]}});
        let endpoints = json!({"apiVersion":"v1","kind":"Endpoints",
            "metadata":{"name":"kubernetes","labels":{"endpointslice.kubernetes.io/skip-mirror":"true"}},
            "subsets":[{"addresses":[{"ip":"127.0.0.1"}],"ports":[{"name":"https","port":port,"protocol":"TCP"}]}]});
        for (kind, obj) in [(Kind::Service, service), (Kind::Endpoints, endpoints)] {
            let r = self
                .inner
                .create(kind, "default", obj.to_string().as_bytes());
            assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
        }
    }

    /// Creates a namespace (with its `default` ServiceAccount, as the controller does).
    pub fn create_namespace(&self, ns: &str) {
        let obj = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}});
        let r = self
            .inner
            .create(Kind::Namespace, "", obj.to_string().as_bytes());
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }

    /// A stored object, as JSON (`ns` is `""` for a cluster-scoped kind).
    pub fn object(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let kind = resources::KINDS.iter().find(|i| i.name == kind)?.kind;
        let st = self.inner.state.lock().unwrap();
        st.objects
            .get(&(kind, ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Cuts every open watch and followed log connection.
    pub fn drop_watches(&self) {
        self.inner.watch_epoch.fetch_add(1, Ordering::SeqCst);
        self.inner.changed.notify_all();
    }

    /// Changes something, then forgets the watch history up to now: a watch resuming from
    /// any version seen so far gets 410 Gone.
    pub fn compact(&self) {
        let mut st = self.inner.state.lock().unwrap();
        let key = (Kind::Namespace, String::new(), "default".to_owned());
        if let Some(mut ns) = st.objects.get(&key).cloned() {
            ns["metadata"]["annotations"] = json!({"standin/compacted": st.rv.to_string()});
            self.inner
                .put(&mut st, Kind::Namespace, "", "default", ns, "MODIFIED");
        }
        st.compacted = st.rv;
        st.history.clear();
    }

    /// How many watches were answered with 410 Gone.
    pub fn gone_sent(&self) -> usize {
        self.inner.gone.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<String> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// Every object of a kind, as JSON.
    pub fn jobs(&self) -> Vec<Value> {
        self.objects(Kind::Job)
    }

    pub fn pods(&self) -> Vec<Value> {
        self.objects(Kind::Pod)
    }

    pub fn network_policies(&self) -> Vec<Value> {
        self.objects(Kind::NetworkPolicy)
    }

    pub fn secrets(&self) -> Vec<Value> {
        self.objects(Kind::Secret)
    }

    fn objects(&self, kind: Kind) -> Vec<Value> {
        let st = self.inner.state.lock().unwrap();
        st.objects
            .iter()
            .filter(|(k, _)| k.0 == kind)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A kubeconfig file for kubectl.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: standin\n  cluster:\n    server: {}\ncontexts:\n- name: standin\n  context:\n    cluster: standin\n    user: tester\n    namespace: default\ncurrent-context: standin\nusers:\n- name: tester\n  user:\n    token: test-token\n",
                self.url
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        self.drop_watches();
    }
}

impl Inner {
    /// Stores an object under a new resourceVersion and records the watch event.
    fn put(
        &self,
        st: &mut State,
        kind: Kind,
        ns: &str,
        name: &str,
        mut obj: Value,
        change: &'static str,
    ) -> Value {
        st.rv += 1;
        let rv = st.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (kind, ns.to_owned(), name.to_owned());
        if change == "DELETED" {
            st.objects.remove(&key);
        } else {
            st.objects.insert(key, obj.clone());
        }
        st.history.push_back(Event {
            rv,
            kind,
            ns: ns.to_owned(),
            kind_of_change: change,
            object: obj.clone(),
        });
        while st.history.len() > self.history_limit {
            let e = st.history.pop_front().unwrap();
            st.compacted = e.rv;
        }
        self.changed.notify_all();
        obj
    }

    fn new_meta(st: &mut State, obj: &mut Value, ns: &str) {
        st.uid += 1;
        let m = &mut obj["metadata"];
        if ns.is_empty() {
            if let Some(map) = m.as_object_mut() {
                map.remove("namespace");
            }
        } else {
            m["namespace"] = json!(ns);
        }
        m["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", st.uid));
        m["creationTimestamp"] = json!(now_rfc3339());
        m["generation"] = json!(1);
    }

    fn route(self: &Arc<Self>, req: Request) -> Response {
        self.requests
            .lock()
            .unwrap()
            .push(format!("{} {}", req.method, req.url));
        let path = req.url.split('?').next().unwrap_or("").to_owned();
        let q = query(&req.url);
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), segs.as_slice()) {
            ("GET", ["version"]) => ok_json(
                200,
                &json!({"major":"1","minor":"32","gitVersion":"v1.32.0","gitCommit":"standin","gitTreeState":"clean","buildDate":"2026-01-01T00:00:00Z","goVersion":"go1.23","compiler":"gc","platform":"linux/amd64"}),
            ),
            ("GET", _) if resources::discovery(&segs).is_some() => {
                resources::discovery(&segs).expect("just matched")
            }
            (
                "POST",
                [
                    "apis",
                    "networking.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "networkpolicies",
                ],
            ) => self.create(Kind::NetworkPolicy, ns, &req.body),
            (
                "GET",
                [
                    "apis",
                    "networking.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "networkpolicies",
                ],
            ) => self.list(Kind::NetworkPolicy, Some(ns), &q),
            (
                "GET",
                [
                    "apis",
                    "networking.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "networkpolicies",
                    name,
                ],
            ) => self.get(Kind::NetworkPolicy, ns, name),
            (
                "PATCH",
                [
                    "apis",
                    "networking.k8s.io",
                    "v1",
                    "namespaces",
                    ns,
                    "networkpolicies",
                    name,
                ],
            ) => self.merge_patch(Kind::NetworkPolicy, ns, name, &req),
            ("GET", ["api", "v1", "namespaces"]) => self.list(Kind::Namespace, None, &q),
            ("GET", ["api", "v1", "namespaces", ns]) => self.get(Kind::Namespace, "", ns),
            ("POST", ["api", "v1", "namespaces"]) => self.create(Kind::Namespace, "", &req.body),
            ("GET", ["apis", "batch", "v1", "jobs"]) => self.list(Kind::Job, None, &q),
            ("GET", ["apis", "batch", "v1", "namespaces", ns, "jobs"]) => {
                self.list(Kind::Job, Some(ns), &q)
            }
            ("POST", ["apis", "batch", "v1", "namespaces", ns, "jobs"]) => {
                self.create(Kind::Job, ns, &req.body)
            }
            ("GET", ["apis", "batch", "v1", "namespaces", ns, "jobs", name]) => {
                self.get(Kind::Job, ns, name)
            }
            (
                "GET",
                [
                    "apis",
                    "batch",
                    "v1",
                    "namespaces",
                    ns,
                    "jobs",
                    name,
                    "status",
                ],
            ) => self.get(Kind::Job, ns, name),
            ("DELETE", ["apis", "batch", "v1", "namespaces", ns, "jobs", name]) => {
                self.delete_job(ns, name, &q, &req.body)
            }
            ("GET", ["api", "v1", "pods"]) => self.list(Kind::Pod, None, &q),
            ("GET", ["api", "v1", "namespaces", ns, "pods"]) => self.list(Kind::Pod, Some(ns), &q),
            ("GET", ["api", "v1", "namespaces", ns, "pods", name]) => self.get(Kind::Pod, ns, name),
            ("GET", ["api", "v1", "namespaces", ns, "pods", name, "log"]) => self.log(ns, name, &q),
            ("POST", ["api", "v1", "namespaces", ns, "secrets"]) => {
                self.create(Kind::Secret, ns, &req.body)
            }
            ("GET", ["api", "v1", "namespaces", ns, "secrets"]) => {
                self.list(Kind::Secret, Some(ns), &q)
            }
            ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.get(Kind::Secret, ns, name)
            }
            ("PATCH", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.merge_patch(Kind::Secret, ns, name, &req)
            }
            ("DELETE", ["api", "v1", "namespaces", ns, "secrets", name]) => {
                self.delete_plain(Kind::Secret, ns, name)
            }
            // kubectl's client-side validation and apply read the OpenAPI documents: see
            // `openapi` for what is served.
            ("GET", ["openapi", "v3"]) => openapi_v3(),
            _ => match self.route_generic(&req, &segs, &q) {
                Some(r) => r,
                None => status(
                    404,
                    "NotFound",
                    &format!(
                        "the server could not find the requested resource ({} {})",
                        req.method, path
                    ),
                ),
            },
        }
    }

    fn get(&self, kind: Kind, ns: &str, name: &str) -> Response {
        let st = self.state.lock().unwrap();
        match st.objects.get(&(kind, ns.to_owned(), name.to_owned())) {
            Some(o) => ok_json(200, o),
            None => status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", kind.resource()),
            ),
        }
    }

    fn create(&self, kind: Kind, ns: &str, body: &[u8]) -> Response {
        let mut obj: Value = match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return status(
                    400,
                    "BadRequest",
                    "the body of the request was in an unknown format",
                );
            }
        };
        if obj["kind"].as_str() != Some(kind.name()) {
            return status(400, "BadRequest", &format!("expected kind {}", kind.name()));
        }
        let Some(name) = obj["metadata"]["name"].as_str().map(str::to_owned) else {
            return status(
                422,
                "Invalid",
                &format!(
                    "{} is invalid: metadata.name: Required value: name or generateName is required",
                    kind.name()
                ),
            );
        };
        let valid = resources::valid_name(kind, &name);
        if !valid {
            return status(
                422,
                "Invalid",
                &format!(
                    "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 name must consist of lower case alphanumeric characters, '-' or '.'",
                    kind.name()
                ),
            );
        }
        let mut st = self.state.lock().unwrap();
        if kind.namespaced()
            && !st
                .objects
                .contains_key(&(Kind::Namespace, String::new(), ns.to_owned()))
        {
            return status(404, "NotFound", &format!("namespaces \"{ns}\" not found"));
        }
        if st
            .objects
            .contains_key(&(kind, ns.to_owned(), name.clone()))
        {
            let mut r = status(
                409,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", kind.resource()),
            );
            r.headers.push(("X-Standin".into(), "conflict".into()));
            return r;
        }
        Self::new_meta(&mut st, &mut obj, ns);
        if kind == Kind::Job {
            obj["status"] = json!({});
            let uid = obj["metadata"]["uid"].clone();
            let labels = &mut obj["spec"]["template"]["metadata"]["labels"];
            if !labels.is_object() {
                *labels = json!({});
            }
            labels["batch.kubernetes.io/controller-uid"] = uid.clone();
            labels["batch.kubernetes.io/job-name"] = json!(name);
            labels["controller-uid"] = uid;
            labels["job-name"] = json!(name);
        }
        resources::defaults(kind, &mut obj, &name, st.uid);
        let stored = self.put(&mut st, kind, ns, &name, obj, "ADDED");
        // The service-account controller: every namespace gets its `default` account (which
        // mounts its token unless it says otherwise).
        if kind == Kind::Namespace {
            let mut sa =
                json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}});
            Self::new_meta(&mut st, &mut sa, &name);
            self.put(&mut st, Kind::ServiceAccount, &name, "default", sa, "ADDED");
        }
        ok_json(201, &stored)
    }

    /// Deletes an object that has no dependents of its own (a Secret).
    fn delete_plain(&self, kind: Kind, ns: &str, name: &str) -> Response {
        let mut st = self.state.lock().unwrap();
        let Some(obj) = st
            .objects
            .get(&(kind, ns.to_owned(), name.to_owned()))
            .cloned()
        else {
            return status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", kind.resource()),
            );
        };
        let stored = self.put(&mut st, kind, ns, name, obj, "DELETED");
        // A namespace takes everything in it along (at once: no `Terminating` phase here).
        if kind == Kind::Namespace {
            let inside: Vec<Key> = st.objects.keys().filter(|k| k.1 == name).cloned().collect();
            for k in inside {
                let o = st.objects[&k].clone();
                st.sims.remove(&(k.1.clone(), k.2.clone()));
                self.put(&mut st, k.0, &k.1, &k.2, o, "DELETED");
            }
        }
        ok_json(200, &stored)
    }

    /// The garbage collector: objects owned by `uid` (network policies, secrets) go with
    /// their owner.
    fn collect_garbage(&self, st: &mut State, ns: &str, uid: &Value) {
        let owned: Vec<Key> = st
            .objects
            .iter()
            .filter(|((k, n, _), o)| {
                matches!(*k, Kind::NetworkPolicy | Kind::Secret)
                    && n == ns
                    && o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| &r["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (k, n, name) in owned {
            if let Some(o) = st.objects.get(&(k, n.clone(), name.clone())).cloned() {
                self.put(st, k, &n, &name, o, "DELETED");
            }
        }
    }

    /// A JSON merge patch (RFC 7386), or a strategic merge patch.
    fn merge_patch(&self, kind: Kind, ns: &str, name: &str, req: &Request) -> Response {
        let content_type = req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        // A strategic merge patch (see `resources::strategic_merge` for how faithfully).
        let strategic = content_type.starts_with("application/strategic-merge-patch+json");
        if !content_type.starts_with("application/merge-patch+json") && !strategic {
            return status(
                415,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})"
                ),
            );
        }
        let Ok(patch) = serde_json::from_slice::<Value>(&req.body) else {
            return status(
                400,
                "BadRequest",
                "the body of the request was in an unknown format",
            );
        };
        fn merge(target: &mut Value, patch: &Value) {
            match patch {
                Value::Object(p) => {
                    if !target.is_object() {
                        *target = json!({});
                    }
                    for (k, v) in p {
                        if v.is_null() {
                            target.as_object_mut().expect("an object").remove(k);
                        } else {
                            merge(&mut target[k.as_str()], v);
                        }
                    }
                }
                other => *target = other.clone(),
            }
        }
        let mut st = self.state.lock().unwrap();
        let key = (kind, ns.to_owned(), name.to_owned());
        let Some(mut obj) = st.objects.get(&key).cloned() else {
            return status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", kind.resource()),
            );
        };
        // An immutable Secret's data cannot change (only its metadata).
        if kind == Kind::Secret
            && obj["immutable"] == json!(true)
            && (patch.get("data").is_some() || patch.get("stringData").is_some())
        {
            return status(
                422,
                "Invalid",
                &format!(
                    "Secret \"{name}\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
                ),
            );
        }
        if strategic {
            resources::strategic_merge(&mut obj, &patch);
        } else {
            merge(&mut obj, &patch);
        }
        let stored = self.put(&mut st, kind, ns, name, obj, "MODIFIED");
        ok_json(200, &stored)
    }

    fn delete_job(
        &self,
        ns: &str,
        name: &str,
        q: &HashMap<String, String>,
        body: &[u8],
    ) -> Response {
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let policy = q
            .get("propagationPolicy")
            .cloned()
            .or_else(|| body["propagationPolicy"].as_str().map(str::to_owned))
            // batch/v1 Jobs default to orphaning their pods (kubectl asks for Background).
            .unwrap_or_else(|| "Orphan".into());
        let mut st = self.state.lock().unwrap();
        let key = (Kind::Job, ns.to_owned(), name.to_owned());
        let Some(mut job) = st.objects.get(&key).cloned() else {
            return status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
        };
        match policy.as_str() {
            "Foreground" => {
                job["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                job["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
                let stored = self.put(&mut st, Kind::Job, ns, name, job, "MODIFIED");
                ok_json(200, &stored)
            }
            _ => {
                let uid = job["metadata"]["uid"].clone();
                let stored = self.put(&mut st, Kind::Job, ns, name, job, "DELETED");
                if policy != "Orphan" {
                    self.delete_pods_of(&mut st, ns, name);
                }
                self.collect_garbage(&mut st, ns, &uid);
                ok_json(200, &stored)
            }
        }
    }

    fn delete_pods_of(&self, st: &mut State, ns: &str, job: &str) {
        let pods: Vec<Key> = st
            .objects
            .iter()
            .filter(|(k, v)| {
                k.0 == Kind::Pod && k.1 == ns && v["metadata"]["labels"]["job-name"] == json!(job)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in pods {
            let obj = st.objects[&k].clone();
            st.sims.remove(&(k.1.clone(), k.2.clone()));
            self.put(st, Kind::Pod, &k.1, &k.2, obj, "DELETED");
        }
    }

    fn list(
        self: &Arc<Self>,
        kind: Kind,
        ns: Option<&str>,
        q: &HashMap<String, String>,
    ) -> Response {
        let labels = q.get("labelSelector").cloned().unwrap_or_default();
        let fields = q.get("fieldSelector").cloned().unwrap_or_default();
        let matches = move |k: &Key, v: &Value| {
            k.0 == kind
                && ns.is_none_or(|n| k.1 == n)
                && labels_match(&labels, v)
                && fields_match(&fields, v)
        };
        let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
        if !watch {
            let st = self.state.lock().unwrap();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(k, v)| matches(k, v))
                .map(|(_, v)| v.clone())
                .collect();
            let list = json!({
                "kind": format!("{}List", kind.name()),
                "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": st.rv.to_string()},
                "items": items,
            });
            return ok_json(200, &list);
        }
        // A watch.
        let from: Option<u64> = q
            .get("resourceVersion")
            .filter(|s| !s.is_empty())
            .and_then(|s| s.parse().ok());
        let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
        let timeout = q
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(1800));
        let inner = self.clone();
        let ns = ns.map(str::to_owned);
        let labels = q.get("labelSelector").cloned().unwrap_or_default();
        let fields = q.get("fieldSelector").cloned().unwrap_or_default();
        let mut resp = Response::new(200, "application/json", Vec::new());
        resp.stream = Some(Box::new(move |out: &mut TcpStream| {
            inner.stream_watch(out, kind, ns, labels, fields, from, bookmarks, timeout)
        }));
        resp
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_watch(
        &self,
        out: &mut TcpStream,
        kind: Kind,
        ns: Option<String>,
        labels: String,
        fields: String,
        from: Option<u64>,
        bookmarks: bool,
        timeout: Duration,
    ) -> std::io::Result<()> {
        let epoch = self.watch_epoch.load(Ordering::SeqCst);
        let deadline = Instant::now() + timeout;
        let matches = |k: Kind, n: &str, v: &Value| {
            k == kind
                && ns.as_deref().is_none_or(|x| x == n)
                && labels_match(&labels, v)
                && fields_match(&fields, v)
        };
        let send = |out: &mut TcpStream, kind_of: &str, obj: &Value| {
            let mut line = json!({"type": kind_of, "object": obj}).to_string();
            line.push('\n');
            http::write_chunk(out, line.as_bytes())
        };
        let mut st = self.state.lock().unwrap();
        let mut last = match from {
            None | Some(0) => {
                // Start at the current state: every matching object as ADDED.
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, v)| matches(k.0, &k.1, v))
                    .map(|(_, v)| v.clone())
                    .collect();
                let rv = st.rv;
                drop(st);
                for o in &items {
                    send(out, "ADDED", o)?;
                }
                st = self.state.lock().unwrap();
                rv
            }
            Some(v) if v < st.compacted => {
                drop(st);
                self.gone.fetch_add(1, Ordering::SeqCst);
                let gone = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                    "message": format!("too old resource version: {v} ({})", v + 1),
                    "reason":"Expired","code":410});
                return send(out, "ERROR", &gone);
            }
            Some(v) => v,
        };
        let mut last_bookmark = Instant::now();
        loop {
            if self.stop.load(Ordering::SeqCst) || self.watch_epoch.load(Ordering::SeqCst) != epoch
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            if last < st.compacted {
                drop(st);
                self.gone.fetch_add(1, Ordering::SeqCst);
                let gone = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                    "message": format!("too old resource version: {last}"), "reason":"Expired","code":410});
                return send(out, "ERROR", &gone);
            }
            let pending: Vec<(u64, &'static str, Value)> = st
                .history
                .iter()
                .filter(|e| e.rv > last && matches(e.kind, &e.ns, &e.object))
                .map(|e| (e.rv, e.kind_of_change, e.object.clone()))
                .collect();
            let top = st.rv;
            drop(st);
            for (rv, change, obj) in &pending {
                send(out, change, obj)?;
                last = *rv;
            }
            last = last.max(top);
            if bookmarks && last_bookmark.elapsed() > Duration::from_millis(500) {
                let b = json!({"kind": kind.name(), "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": last.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                send(out, "BOOKMARK", &b)?;
                last_bookmark = Instant::now();
            }
            st = self.state.lock().unwrap();
            if st.rv == top {
                st = self
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .unwrap()
                    .0;
            }
        }
    }

    fn log(self: &Arc<Self>, ns: &str, name: &str, q: &HashMap<String, String>) -> Response {
        let follow = q.get("follow").is_some_and(|f| f == "true");
        let timestamps = q.get("timestamps").is_some_and(|f| f == "true");
        {
            let st = self.state.lock().unwrap();
            if !st
                .objects
                .contains_key(&(Kind::Pod, ns.to_owned(), name.to_owned()))
            {
                return status(404, "NotFound", &format!("pods \"{name}\" not found"));
            }
        }
        let key = (ns.to_owned(), name.to_owned());
        let inner = self.clone();
        let mut resp = Response::new(200, "text/plain", Vec::new());
        resp.stream = Some(Box::new(move |out: &mut TcpStream| {
            let epoch = inner.watch_epoch.load(Ordering::SeqCst);
            let mut sent = 0;
            loop {
                let (lines, done) = {
                    let st = inner.state.lock().unwrap();
                    let lines = st.logs.get(&key).cloned().unwrap_or_default();
                    let phase = st
                        .objects
                        .get(&(Kind::Pod, key.0.clone(), key.1.clone()))
                        .map(|p| p["status"]["phase"].as_str().unwrap_or("").to_owned());
                    let done =
                        matches!(phase.as_deref(), None | Some("Succeeded") | Some("Failed"));
                    (lines, done)
                };
                for l in &lines[sent..] {
                    let text = if timestamps {
                        l.clone()
                    } else {
                        l.split_once(' ')
                            .map(|x| x.1.to_owned())
                            .unwrap_or_default()
                    };
                    http::write_chunk(out, format!("{text}\n").as_bytes())?;
                }
                sent = lines.len();
                if !follow
                    || done
                    || inner.stop.load(Ordering::SeqCst)
                    || inner.watch_epoch.load(Ordering::SeqCst) != epoch
                {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }));
        resp
    }

    /// The simulated Job controller and kubelet.
    fn reconcile(&self) {
        let mut st = self.state.lock().unwrap();
        let jobs: Vec<(Key, Value)> = st
            .objects
            .iter()
            .filter(|(k, _)| k.0 == Kind::Job)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((_, ns, name), job) in jobs {
            let pods: Vec<(Key, Value)> = st
                .objects
                .iter()
                .filter(|(k, v)| {
                    k.0 == Kind::Pod
                        && k.1 == ns
                        && v["metadata"]["labels"]["job-name"] == json!(name)
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            // Foreground deletion: pods first, then the Job.
            if job["metadata"]["deletionTimestamp"].is_string() {
                self.delete_pods_of(&mut st, &ns, &name);
                let uid = job["metadata"]["uid"].clone();
                self.put(&mut st, Kind::Job, &ns, &name, job, "DELETED");
                self.collect_garbage(&mut st, &ns, &uid);
                continue;
            }
            let finished = job["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
                })
            });
            if finished {
                continue;
            }
            if pods.is_empty() {
                st.uid += 1;
                let pod_name = format!("{name}-{:05x}", st.uid & 0xfffff);
                let spec = job["spec"]["template"]["spec"].clone();
                let labels = job["spec"]["template"]["metadata"]["labels"].clone();
                let mut pod = json!({"apiVersion":"v1","kind":"Pod",
                    "metadata":{"name": pod_name, "labels": labels,
                        "ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":name,"uid":job["metadata"]["uid"],"controller":true,"blockOwnerDeletion":true}]},
                    "spec": spec, "status":{"phase":"Pending"}});
                Self::new_meta(&mut st, &mut pod, &ns);
                self.put(&mut st, Kind::Pod, &ns, &pod_name, pod, "ADDED");
                let main = job["spec"]["template"]["spec"]["containers"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["name"] == "job").or(c.first()))
                    .cloned()
                    .unwrap_or(Value::Null);
                // The container's environment as the kubelet makes it: values, and values
                // from the keys of Secrets (a missing one keeps the pod from starting).
                let mut resolved: BTreeMap<String, String> = BTreeMap::new();
                let mut unresolved = None;
                for v in main["env"].as_array().cloned().unwrap_or_default() {
                    let name = v["name"].as_str().unwrap_or("").to_owned();
                    if let Some(value) = v["value"].as_str() {
                        resolved.insert(name, value.to_owned());
                    } else if let Some(r) = v["valueFrom"]["secretKeyRef"].as_object() {
                        let secret = r["name"].as_str().unwrap_or("");
                        let key = r["key"].as_str().unwrap_or("");
                        let value = st
                            .objects
                            .get(&(Kind::Secret, ns.clone(), secret.to_owned()))
                            .and_then(|o| o["data"][key].as_str())
                            .and_then(|b| {
                                use base64::Engine as _;
                                base64::engine::general_purpose::STANDARD.decode(b).ok()
                            });
                        match value {
                            Some(b) => {
                                resolved.insert(name, String::from_utf8_lossy(&b).into_owned());
                            }
                            None => {
                                unresolved = Some(format!(
                                    "secret \"{secret}\" not found or has no key \"{key}\""
                                ));
                            }
                        }
                    }
                }
                // Secret volumes, likewise (FailedMount until the Secret exists).
                for v in spec["volumes"].as_array().cloned().unwrap_or_default() {
                    if let Some(secret) = v["secret"]["secretName"].as_str()
                        && !st
                            .objects
                            .contains_key(&(Kind::Secret, ns.clone(), secret.to_owned()))
                    {
                        unresolved = Some(format!("secret \"{secret}\" not found"));
                    }
                }
                let mut waiting = unresolved.map(|m| ("CreateContainerConfigError", m));
                // An image from a registry under `.invalid` (RFC 2606: never resolves) cannot
                // be pulled: the pod stays Pending, backing off, as the kubelet leaves it.
                let image = main["image"].as_str().unwrap_or("");
                if image
                    .split('/')
                    .next()
                    .is_some_and(|host| host.ends_with(".invalid"))
                {
                    waiting = Some((
                        "ImagePullBackOff",
                        format!("Back-off pulling image \"{image}\""),
                    ));
                }
                if let Some((reason, message)) = waiting {
                    let mut p = st.objects[&(Kind::Pod, ns.clone(), pod_name.clone())].clone();
                    p["status"]["containerStatuses"] = json!([{"name":main["name"],"ready":false,"restartCount":0,
                        "state":{"waiting":{"reason":reason,"message":message}}}]);
                    self.put(&mut st, Kind::Pod, &ns, &pod_name, p, "MODIFIED");
                    let mut j = job.clone();
                    j["status"]["active"] = json!(1);
                    self.put(&mut st, Kind::Job, &ns, &name, j, "MODIFIED");
                    continue;
                }
                let env = |k: &str| resolved.get(k).cloned();
                let expand = |text: &str| {
                    let mut out = text.to_owned();
                    // Longest names first, so `$AB` is not taken for `$A` followed by `B`.
                    let mut names: Vec<&String> = resolved.keys().collect();
                    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
                    for n in names {
                        out = out.replace(&format!("${n}"), &resolved[n]);
                    }
                    out
                };
                let script = main["args"][0].as_str().unwrap_or("").to_owned();
                let lines: Vec<String> = script
                    .lines()
                    .filter_map(|l| l.strip_prefix("printf '%s\\n' '"))
                    .map(|l| l.trim_end_matches('\'').replace("'\\''", "'"))
                    .flat_map(|cmd| {
                        let output = match cmd.strip_prefix("$ echo ") {
                            Some(text) => expand(text),
                            None => "(simulated by the Kubernetes API stand-in)".to_owned(),
                        };
                        [cmd, output]
                    })
                    .collect();
                st.sims.insert(
                    (ns.clone(), pod_name.clone()),
                    Sim {
                        started: Instant::now(),
                        running_at: None,
                        duration: Duration::from_millis(
                            env("STANDIN_DURATION_MS")
                                .and_then(|d| d.parse().ok())
                                .unwrap_or(300),
                        ),
                        outcome: env("STANDIN_OUTCOME").unwrap_or_else(|| "succeed".into()),
                        exit_code: env("STANDIN_EXIT_CODE")
                            .and_then(|d| d.parse().ok())
                            .unwrap_or(1),
                        lines,
                        written: 0,
                    },
                );
                let mut j = job.clone();
                j["status"]["active"] = json!(1);
                j["status"]["startTime"] = json!(now_rfc3339());
                j["status"]["ready"] = json!(0);
                self.put(&mut st, Kind::Job, &ns, &name, j, "MODIFIED");
                continue;
            }
            // Deadline.
            #[allow(clippy::collapsible_if)]
            if let (Some(deadline), Some(sim)) = (
                job["spec"]["activeDeadlineSeconds"].as_u64(),
                pods.first()
                    .and_then(|(k, _)| st.sims.get(&(k.1.clone(), k.2.clone()))),
            ) {
                if sim.started.elapsed() >= Duration::from_secs(deadline) {
                    let (pk, pod) = pods[0].clone();
                    let mut p = pod;
                    p["status"]["phase"] = json!("Failed");
                    p["status"]["reason"] = json!("DeadlineExceeded");
                    p["status"]["message"] =
                        json!("Pod was active on the node longer than the specified deadline");
                    st.sims.remove(&(pk.1.clone(), pk.2.clone()));
                    self.put(&mut st, Kind::Pod, &pk.1, &pk.2, p, "MODIFIED");
                    let mut j = job.clone();
                    j["status"]["active"] = json!(0);
                    j["status"]["failed"] = json!(1);
                    j["status"]["conditions"] = json!([{"type":"Failed","status":"True","reason":"DeadlineExceeded",
                        "message":"Job was active longer than specified deadline","lastProbeTime":now_rfc3339(),"lastTransitionTime":now_rfc3339()}]);
                    self.put(&mut st, Kind::Job, &ns, &name, j, "MODIFIED");
                    continue;
                }
            }
            let (pk, pod) = pods[0].clone();
            let simkey = (pk.1.clone(), pk.2.clone());
            // The container that runs: seakeeper's `job`, else the first (the doctor's probe).
            let main_name = pod["spec"]["containers"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "job").or(c.first()))
                .map(|c| c["name"].clone())
                .unwrap_or(json!("job"));
            let Some(sim) = st.sims.get_mut(&simkey) else {
                continue;
            };
            // Pending -> Running after the init container's "fetch".
            if sim.running_at.is_none() {
                if sim.started.elapsed() >= Duration::from_millis(80) {
                    sim.running_at = Some(Instant::now());
                    let mut p = pod;
                    p["status"] = json!({"phase":"Running","startTime":now_rfc3339(),
                        "containerStatuses":[{"name":main_name,"ready":true,"restartCount":0,"state":{"running":{"startedAt":now_rfc3339()}}}]});
                    self.put(&mut st, Kind::Pod, &pk.1, &pk.2, p, "MODIFIED");
                    let mut j = job.clone();
                    j["status"]["ready"] = json!(1);
                    self.put(&mut st, Kind::Job, &ns, &name, j, "MODIFIED");
                }
                continue;
            }
            let ran = sim.running_at.unwrap().elapsed();
            let total = sim.lines.len().max(1);
            let due = if sim.outcome == "hang" {
                total
            } else {
                ((ran.as_millis() as usize * total) / sim.duration.as_millis().max(1) as usize)
                    .min(total)
            };
            let fresh: Vec<String> =
                sim.lines[sim.written.min(sim.lines.len())..due.min(sim.lines.len())].to_vec();
            sim.written = due;
            let (outcome, exit_code) = (sim.outcome.clone(), sim.exit_code);
            let done = outcome != "hang" && ran >= sim.duration;
            for l in fresh {
                st.logs.entry(simkey.clone()).or_default().push(format!(
                    "{} {l}",
                    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.9fZ")
                ));
            }
            if !done {
                continue;
            }
            st.sims.remove(&simkey);
            let failed = outcome == "fail";
            let code = if failed { exit_code } else { 0 };
            let outputs = pod["spec"]["containers"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["name"] == "collect"))
                .map(|_| {
                    pod["spec"]["containers"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["name"] == "job"))
                        .and_then(|c| c["env"].as_array())
                        .and_then(|e| e.iter().find(|v| v["name"] == "STANDIN_OUTPUTS"))
                        .and_then(|v| v["value"].as_str())
                        .unwrap_or("[]")
                        .to_owned()
                });
            let mut statuses = vec![json!({"name":main_name,"ready":false,"restartCount":0,
                "state":{"terminated":{"exitCode":code,"reason": if failed {"Error"} else {"Completed"},"startedAt":now_rfc3339(),"finishedAt":now_rfc3339()}}})];
            if let Some(msg) = outputs {
                statuses.push(json!({"name":"collect","ready":false,"restartCount":0,
                    "state":{"terminated":{"exitCode":0,"reason":"Completed","message":msg,"startedAt":now_rfc3339(),"finishedAt":now_rfc3339()}}}));
            }
            let mut p = pod;
            p["status"]["phase"] = json!(if failed { "Failed" } else { "Succeeded" });
            p["status"]["containerStatuses"] = json!(statuses);
            self.put(&mut st, Kind::Pod, &pk.1, &pk.2, p, "MODIFIED");
            let mut j = job.clone();
            j["status"]["active"] = json!(0);
            j["status"]["ready"] = json!(0);
            j["status"]["completionTime"] = json!(now_rfc3339());
            if failed {
                j["status"]["failed"] = json!(1);
                j["status"]["conditions"] = json!([{"type":"Failed","status":"True","reason":"BackoffLimitExceeded",
                    "message":"Job has reached the specified backoff limit","lastProbeTime":now_rfc3339(),"lastTransitionTime":now_rfc3339()}]);
            } else {
                j["status"]["succeeded"] = json!(1);
                j["status"]["conditions"] = json!([{"type":"Complete","status":"True","lastProbeTime":now_rfc3339(),"lastTransitionTime":now_rfc3339()}]);
            }
            self.put(&mut st, Kind::Job, &ns, &name, j, "MODIFIED");
        }
    }
}
