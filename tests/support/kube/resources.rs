//! The stand-in's kinds and what is generic about them: the table of kinds (group, version,
//! resource, scope), discovery made from it, and the routes every kind shares (create, get,
//! list, watch, patch, delete at `/api/v1/...` and `/apis/<group>/<version>/...`), which is
//! what `kubectl apply` of `bootstrap/kubernetes` needs. Kinds with behaviour of their own
//! (Jobs, Pods, Secrets) keep their routes in `mod.rs`, which are tried first.
//!
//! Also here: the RBAC authorizer behind `SubjectAccessReview` (Roles, ClusterRoles and their
//! bindings, evaluated as kube-apiserver's RBAC authorizer does), and the controllers whose
//! effects clients read back (a `default` ServiceAccount in every new namespace, a Service's
//! cluster IP, a Namespace's `kubernetes.io/metadata.name` label).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::http::{Request, Response};
use super::{Inner, ok_json, status};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub(super) enum Kind {
    Job,
    Pod,
    Namespace,
    NetworkPolicy,
    Secret,
    ServiceAccount,
    ConfigMap,
    Service,
    Endpoints,
    PersistentVolumeClaim,
    ResourceQuota,
    LimitRange,
    StatefulSet,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
    PriorityClass,
    StorageClass,
}

/// What discovery says of a kind.
pub(super) struct Info {
    pub kind: Kind,
    pub name: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub short: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

pub(super) const KINDS: &[Info] = &[
    Info {
        kind: Kind::Namespace,
        name: "Namespace",
        group: "",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        verbs: ALL_VERBS,
        short: &["ns"],
    },
    Info {
        kind: Kind::Pod,
        name: "Pod",
        group: "",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        verbs: &["delete", "get", "list", "watch"],
        short: &["po"],
    },
    Info {
        kind: Kind::Secret,
        name: "Secret",
        group: "",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &[],
    },
    Info {
        kind: Kind::ServiceAccount,
        name: "ServiceAccount",
        group: "",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["sa"],
    },
    Info {
        kind: Kind::ConfigMap,
        name: "ConfigMap",
        group: "",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["cm"],
    },
    Info {
        kind: Kind::Service,
        name: "Service",
        group: "",
        plural: "services",
        singular: "service",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["svc"],
    },
    Info {
        kind: Kind::Endpoints,
        name: "Endpoints",
        group: "",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["ep"],
    },
    Info {
        kind: Kind::PersistentVolumeClaim,
        name: "PersistentVolumeClaim",
        group: "",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["pvc"],
    },
    Info {
        kind: Kind::ResourceQuota,
        name: "ResourceQuota",
        group: "",
        plural: "resourcequotas",
        singular: "resourcequota",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["quota"],
    },
    Info {
        kind: Kind::LimitRange,
        name: "LimitRange",
        group: "",
        plural: "limitranges",
        singular: "limitrange",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["limits"],
    },
    Info {
        kind: Kind::Job,
        name: "Job",
        group: "batch",
        plural: "jobs",
        singular: "job",
        namespaced: true,
        verbs: &["create", "delete", "get", "list", "patch", "watch"],
        short: &[],
    },
    Info {
        kind: Kind::StatefulSet,
        name: "StatefulSet",
        group: "apps",
        plural: "statefulsets",
        singular: "statefulset",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["sts"],
    },
    Info {
        kind: Kind::NetworkPolicy,
        name: "NetworkPolicy",
        group: "networking.k8s.io",
        plural: "networkpolicies",
        singular: "networkpolicy",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &["netpol"],
    },
    Info {
        kind: Kind::Role,
        name: "Role",
        group: "rbac.authorization.k8s.io",
        plural: "roles",
        singular: "role",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &[],
    },
    Info {
        kind: Kind::RoleBinding,
        name: "RoleBinding",
        group: "rbac.authorization.k8s.io",
        plural: "rolebindings",
        singular: "rolebinding",
        namespaced: true,
        verbs: ALL_VERBS,
        short: &[],
    },
    Info {
        kind: Kind::ClusterRole,
        name: "ClusterRole",
        group: "rbac.authorization.k8s.io",
        plural: "clusterroles",
        singular: "clusterrole",
        namespaced: false,
        verbs: ALL_VERBS,
        short: &[],
    },
    Info {
        kind: Kind::ClusterRoleBinding,
        name: "ClusterRoleBinding",
        group: "rbac.authorization.k8s.io",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        namespaced: false,
        verbs: ALL_VERBS,
        short: &[],
    },
    Info {
        kind: Kind::PriorityClass,
        name: "PriorityClass",
        group: "scheduling.k8s.io",
        plural: "priorityclasses",
        singular: "priorityclass",
        namespaced: false,
        verbs: ALL_VERBS,
        short: &["pc"],
    },
    Info {
        kind: Kind::StorageClass,
        name: "StorageClass",
        group: "storage.k8s.io",
        plural: "storageclasses",
        singular: "storageclass",
        namespaced: false,
        verbs: ALL_VERBS,
        short: &["sc"],
    },
];

/// The API groups other than core, in discovery order (authorization.k8s.io has only the
/// review "resources", which are not stored).
const GROUPS: &[&str] = &[
    "apps",
    "batch",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "authorization.k8s.io",
];

impl Kind {
    pub(super) fn info(self) -> &'static Info {
        KINDS
            .iter()
            .find(|i| i.kind == self)
            .expect("every kind is in the table")
    }
    pub(super) fn api_version(self) -> String {
        match self.info().group {
            "" => "v1".to_owned(),
            g => format!("{g}/v1"),
        }
    }
    pub(super) fn name(self) -> &'static str {
        self.info().name
    }
    /// The resource as named in errors (`jobs.batch`, `networkpolicies.networking.k8s.io`).
    pub(super) fn resource(self) -> String {
        match self.info().group {
            "" => self.info().plural.to_owned(),
            g => format!("{}.{g}", self.info().plural),
        }
    }
    pub(super) fn namespaced(self) -> bool {
        self.info().namespaced
    }
    fn of(group: &str, plural: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|i| i.group == group && i.plural == plural)
            .map(|i| i.kind)
    }
}

/// Discovery documents: `/api`, `/apis`, `/api/v1`, `/apis/<group>/v1`.
pub(super) fn discovery(segs: &[&str]) -> Option<Response> {
    let resources = |group: &str| -> Vec<Value> {
        let mut v: Vec<Value> = KINDS
            .iter()
            .filter(|i| i.group == group)
            .map(|i| {
                let mut r = json!({"name": i.plural, "singularName": i.singular,
                    "namespaced": i.namespaced, "kind": i.name, "verbs": i.verbs});
                if !i.short.is_empty() {
                    r["shortNames"] = json!(i.short);
                }
                if matches!(
                    i.kind,
                    Kind::Pod | Kind::Job | Kind::Service | Kind::StatefulSet
                ) {
                    r["categories"] = json!(["all"]);
                }
                r
            })
            .collect();
        match group {
            "" => v.push(
                json!({"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]}),
            ),
            "batch" => v.push(
                json!({"name":"jobs/status","singularName":"","namespaced":true,"kind":"Job","verbs":["get"]}),
            ),
            // Not SelfSubjectAccessReview: `kubectl auth can-i` sends it as protobuf, which the
            // stand-in does not read (and it checks no credentials to answer it from).
            "authorization.k8s.io" => v.push(
                json!({"name":"subjectaccessreviews","singularName":"subjectaccessreview","namespaced":false,"kind":"SubjectAccessReview","verbs":["create"]}),
            ),
            _ => {}
        }
        v
    };
    let list = |group_version: String, group: &str| {
        ok_json(
            200,
            &json!({"kind":"APIResourceList","apiVersion":"v1","groupVersion":group_version,
                "resources": resources(group)}),
        )
    };
    match segs {
        ["api"] => Some(ok_json(
            200,
            &json!({"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}),
        )),
        ["apis"] => {
            let groups: Vec<Value> = GROUPS
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
                })
                .collect();
            Some(ok_json(
                200,
                &json!({"kind":"APIGroupList","apiVersion":"v1","groups":groups}),
            ))
        }
        ["api", "v1"] => Some(list("v1".into(), "")),
        ["apis", g, "v1"] if GROUPS.contains(g) => Some(list(format!("{g}/v1"), g)),
        _ => None,
    }
}

/// A parsed resource path: `(kind, namespace or "", name, subresource)`.
type Target<'a> = (Kind, &'a str, Option<&'a str>, Option<&'a str>);

fn target<'a>(segs: &[&'a str]) -> Option<Target<'a>> {
    let (group, rest) = match segs {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, "v1", rest @ ..] => (*g, rest),
        _ => return None,
    };
    let (ns, rest) = match rest {
        // `/api/v1/namespaces/<ns>/<plural>...` (but `/api/v1/namespaces/<name>` and its
        // subresources are the Namespace itself).
        ["namespaces", ns, plural, rest @ ..]
            if !(group.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            (*ns, {
                let mut v = vec![*plural];
                v.extend_from_slice(rest);
                v
            })
        }
        rest => ("", rest.to_vec()),
    };
    let kind = Kind::of(group, rest.first()?)?;
    if kind.namespaced() == ns.is_empty() && !(kind.namespaced() && rest.len() == 1) {
        return None;
    }
    match rest.as_slice() {
        [_] => Some((kind, ns, None, None)),
        [_, name] => Some((kind, ns, Some(name), None)),
        [_, name, sub] => Some((kind, ns, Some(name), Some(sub))),
        _ => None,
    }
}

impl Inner {
    /// The routes every stored kind shares; `None` when the path names no kind.
    pub(super) fn route_generic(
        self: &std::sync::Arc<Self>,
        req: &Request,
        segs: &[&str],
        q: &HashMap<String, String>,
    ) -> Option<Response> {
        if req.method == "POST"
            && matches!(
                segs,
                ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"]
            )
        {
            return Some(self.subject_access_review(&req.body));
        }
        let (kind, ns, name, sub) = target(segs)?;
        // A list across namespaces of a namespaced kind: `/api/v1/<plural>`.
        let all = kind.namespaced() && ns.is_empty();
        Some(match (req.method.as_str(), name, sub) {
            ("GET", None, None) => self.list(kind, (!all).then_some(ns), q),
            ("POST", None, None) if !all => self.create(kind, ns, &req.body),
            ("GET", Some(name), None | Some("status")) => self.get(kind, ns, name),
            ("PATCH", Some(name), None) if kind != Kind::Pod => {
                self.merge_patch(kind, ns, name, req)
            }
            ("PUT", Some(name), None) if !matches!(kind, Kind::Pod | Kind::Job) => {
                self.replace(kind, ns, name, &req.body)
            }
            ("DELETE", Some(name), None) => self.delete_plain(kind, ns, name),
            _ => status(
                405,
                "MethodNotAllowed",
                &format!(
                    "the server does not allow this method on the requested resource ({} {})",
                    req.method,
                    kind.resource()
                ),
            ),
        })
    }

    /// PUT: the object replaced whole (what `kubectl replace` sends), keeping what the server
    /// owns (uid, creation time); a stale `resourceVersion` is a 409 Conflict.
    fn replace(&self, kind: Kind, ns: &str, name: &str, body: &[u8]) -> Response {
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
        if obj["kind"].as_str() != Some(kind.name()) || obj["metadata"]["name"] != json!(name) {
            return status(
                400,
                "BadRequest",
                &format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    obj["metadata"]["name"]
                ),
            );
        }
        let mut st = self.state.lock().unwrap();
        let Some(current) = st
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
        let given = obj["metadata"]["resourceVersion"].clone();
        if !given.is_null() && given != current["metadata"]["resourceVersion"] {
            return status(
                409,
                "Conflict",
                &format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    kind.resource()
                ),
            );
        }
        for owned in ["uid", "creationTimestamp", "generation", "namespace"] {
            if !current["metadata"][owned].is_null() {
                obj["metadata"][owned] = current["metadata"][owned].clone();
            }
        }
        let stored = self.put(&mut st, kind, ns, name, obj, "MODIFIED");
        ok_json(200, &stored)
    }

    /// `authorization.k8s.io/v1` SubjectAccessReview, answered by RBAC from the stored Roles,
    /// ClusterRoles and bindings (nothing else is stored here, so nothing else can allow: a
    /// real cluster's default ClusterRoles grant no Secrets to service accounts either).
    fn subject_access_review(&self, body: &[u8]) -> Response {
        let Ok(mut review) = serde_json::from_slice::<Value>(body) else {
            return status(
                400,
                "BadRequest",
                "the body of the request was in an unknown format",
            );
        };
        let spec = review["spec"].clone();
        let user = spec["user"].as_str().unwrap_or("");
        let groups: Vec<&str> = spec["groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let attrs = &spec["resourceAttributes"];
        if user.is_empty() && groups.is_empty() {
            return status(
                422,
                "Invalid",
                "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified",
            );
        }
        let ns = attrs["namespace"].as_str().unwrap_or("");
        let verb = attrs["verb"].as_str().unwrap_or("");
        let group = attrs["group"].as_str().unwrap_or("");
        let resource = match attrs["subresource"].as_str().filter(|s| !s.is_empty()) {
            Some(sub) => format!("{}/{sub}", attrs["resource"].as_str().unwrap_or("")),
            None => attrs["resource"].as_str().unwrap_or("").to_owned(),
        };
        let name = attrs["name"].as_str().unwrap_or("");
        let st = self.state.lock().unwrap();
        let subject_matches = |s: &Value| match s["kind"].as_str() {
            Some("ServiceAccount") => {
                let sa_ns = s["namespace"].as_str().unwrap_or("");
                user == format!(
                    "system:serviceaccount:{sa_ns}:{}",
                    s["name"].as_str().unwrap_or("")
                )
            }
            Some("User") => s["name"].as_str() == Some(user),
            Some("Group") => s["name"].as_str().is_some_and(|g| groups.contains(&g)),
            _ => false,
        };
        let has = |list: &Value, want: &str| {
            list.as_array()
                .is_some_and(|l| l.iter().any(|x| x == "*" || x == want))
        };
        let rule_allows = |r: &Value| {
            has(&r["verbs"], verb)
                && has(&r["apiGroups"], group)
                && has(&r["resources"], &resource)
                && (r["resourceNames"].as_array().is_none_or(|n| n.is_empty())
                    || has(&r["resourceNames"], name))
        };
        let mut allowed_by = None;
        for ((k, bns, bname), b) in &st.objects {
            let applies = match k {
                Kind::RoleBinding => !ns.is_empty() && bns == ns,
                Kind::ClusterRoleBinding => true,
                _ => false,
            };
            if !applies
                || !b["subjects"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(subject_matches))
            {
                continue;
            }
            let role_name = b["roleRef"]["name"].as_str().unwrap_or("").to_owned();
            let role = match b["roleRef"]["kind"].as_str() {
                Some("Role") => st.objects.get(&(Kind::Role, bns.clone(), role_name)),
                Some("ClusterRole") => {
                    st.objects
                        .get(&(Kind::ClusterRole, String::new(), role_name))
                }
                _ => None,
            };
            if role
                .and_then(|r| r["rules"].as_array())
                .is_some_and(|rules| rules.iter().any(rule_allows))
            {
                allowed_by = Some(format!(
                    "RBAC: allowed by {} \"{bname}\" of {} \"{}\" to {}",
                    k.name(),
                    b["roleRef"]["kind"].as_str().unwrap_or(""),
                    b["roleRef"]["name"].as_str().unwrap_or(""),
                    user
                ));
                break;
            }
        }
        review["status"] = match allowed_by {
            Some(reason) => json!({"allowed": true, "reason": reason}),
            None => json!({"allowed": false}),
        };
        review["metadata"] = json!({"creationTimestamp": null});
        ok_json(201, &review)
    }
}

/// A strategic merge patch (what `kubectl apply` and `kubectl patch` send for built-in kinds):
/// maps merge, `null` deletes, the lists the Kubernetes types give a `patchMergeKey` (see
/// [`merge_key`]) merge element by element on that key (`$patch: delete` removes one,
/// `$setElementOrder/<field>` orders them), every other list is replaced whole; `$patch:
/// replace` and `$retainKeys` are honoured. Simplified from kube-apiserver: the merge keys are
/// a table of the common fields rather than read from the types' schema, and
/// `$deleteFromPrimitiveList` (only for the few primitive lists that merge, e.g. finalizers)
/// is dropped.
pub(super) fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut whole = patch.clone();
        strip_directives(&mut whole);
        *target = whole;
        return;
    }
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("just made an object");
    if let Some(keep) = p.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| keep.iter().any(|x| x == k.as_str()));
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Array(items) => match merge_key(k, items) {
                Some(key) => {
                    let order = p.get(&format!("$setElementOrder/{k}"));
                    merge_list(t.entry(k.clone()).or_insert(json!([])), items, key, order);
                }
                None => {
                    let mut whole = v.clone();
                    strip_directives(&mut whole);
                    t.insert(k.clone(), whole);
                }
            },
            Value::Object(_) => strategic_merge(t.entry(k.clone()).or_insert(json!({})), v),
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The `patchMergeKey` of a list field in the Kubernetes types (the common ones).
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "hostAliases" => Some("ip"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        // A container's ports merge on containerPort, a Service's on port.
        "ports" if items.iter().any(|i| i.get("containerPort").is_some()) => Some("containerPort"),
        "ports" => Some("port"),
        _ => None,
    }
}

fn merge_list(target: &mut Value, items: &[Value], key: &str, order: Option<&Value>) {
    let mut list: Vec<Value> = target.as_array().cloned().unwrap_or_default();
    for item in items {
        let at = list.iter().position(|e| e.get(key) == item.get(key));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = at {
                list.remove(i);
            }
            continue;
        }
        match at {
            Some(i) => strategic_merge(&mut list[i], item),
            None => {
                let mut new = item.clone();
                strip_directives(&mut new);
                list.push(new);
            }
        }
    }
    if let Some(order) = order.and_then(Value::as_array) {
        // Those named in the order first, in it; the rest after, as they were.
        list.sort_by_key(|e| {
            order
                .iter()
                .position(|o| o.get(key) == e.get(key))
                .unwrap_or(usize::MAX)
        });
    }
    *target = Value::Array(list);
}

/// Drops the `$`-directives of a strategic merge patch from a value stored whole.
fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// What the API server and its controllers add to a new object of `kind`.
pub(super) fn defaults(kind: Kind, obj: &mut Value, name: &str, next_ip: u64) {
    match kind {
        Kind::Namespace => {
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        Kind::Service => {
            let spec = &mut obj["spec"];
            if spec["type"].is_null() {
                spec["type"] = json!("ClusterIP");
            }
            if spec["clusterIP"].is_null() {
                let ip = format!("10.96.{}.{}", (next_ip >> 8) & 0xff, next_ip & 0xff);
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            }
            if spec["sessionAffinity"].is_null() {
                spec["sessionAffinity"] = json!("None");
            }
        }
        Kind::PersistentVolumeClaim => {
            obj["status"] = json!({"phase": "Pending"});
        }
        _ => {}
    }
}

/// Whether `name` is a valid name for `kind`: an RFC 1123 label for namespaces, services and
/// jobs, a path segment for RBAC objects, a DNS subdomain for the rest.
pub(super) fn valid_name(kind: Kind, name: &str) -> bool {
    let label = |n: &str| {
        !n.is_empty()
            && n.len() <= 63
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !n.starts_with('-')
            && !n.ends_with('-')
    };
    match kind {
        Kind::Namespace | Kind::Service | Kind::Job => label(name),
        Kind::Role | Kind::RoleBinding | Kind::ClusterRole | Kind::ClusterRoleBinding => {
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
        }
        _ => name.len() <= 253 && name.split('.').all(label),
    }
}
