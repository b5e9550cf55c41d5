//! Issue 19: `kubectl apply -k bootstrap/kubernetes` against the Kubernetes API stand-in (twice:
//! the second run changes nothing), then `seakeeper doctor --kubernetes`, the conformance check
//! SRE runs after applying the manifests, passes against it, and fails, naming the namespace,
//! object and field, when the cluster is not what seakeeper needs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::kube::KubeApi;

fn kubectl_found() -> bool {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl must be installed in CI (scripts/install-deps)"
        );
    }
    found
}

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    support::output(
        Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", home)
            .args(args),
    )
}

fn bootstrap_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap/kubernetes")
}

/// A stand-in with `bootstrap/kubernetes` applied by kubectl, its kubeconfig and a home.
struct Applied {
    api: KubeApi,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Applied {
    fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig, self.dir.path(), args)
    }
    fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}{}",
            support::stdout(&out),
            support::stderr(&out)
        );
        support::stdout(&out)
    }
}

/// `kubectl apply -k bootstrap/kubernetes`. The stand-in serves no OpenAPI schemas, so
/// kubectl's validation is off (`--validate=false`; see `openapi_v3` in support/kube); the
/// manifests are validated against Kubernetes 1.32's schemas in tests/bootstrap_kubernetes.rs.
fn apply(a: &Applied) -> String {
    a.kubectl_ok(&[
        "apply",
        "--validate=false",
        "-k",
        bootstrap_dir().to_str().unwrap(),
    ])
}

fn applied() -> Applied {
    let api = KubeApi::start_bare();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let a = Applied {
        api,
        dir,
        kubeconfig,
    };
    apply(&a);
    a
}

#[test]
fn kubectl_applies_the_bootstrap_manifests_twice_and_reads_them_back() {
    if !kubectl_found() {
        return;
    }
    let api = KubeApi::start_bare();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let a = Applied {
        api,
        dir,
        kubeconfig,
    };
    let first = apply(&a);
    for line in [
        "namespace/seakeeper created",
        "namespace/seakeeper-trusted created",
        "namespace/seakeeper-untrusted created",
        "priorityclass.scheduling.k8s.io/seakeeper-gate created",
        "serviceaccount/seakeeper created",
        // The service-account controller made it with the namespace: apply patches it.
        "serviceaccount/default configured",
        "role.rbac.authorization.k8s.io/seakeeper-jobs created",
        "rolebinding.rbac.authorization.k8s.io/seakeeper-jobs created",
        "configmap/seakeeper-settings created",
        "service/seakeeper created",
        "persistentvolumeclaim/seakeeper-caches created",
        "resourcequota/seakeeper-jobs created",
        "limitrange/seakeeper-jobs created",
        "statefulset.apps/seakeeper created",
        "networkpolicy.networking.k8s.io/default-deny created",
    ] {
        assert!(first.contains(line), "{line:?} in:\n{first}");
    }
    let second = apply(&a);
    let lines: Vec<&str> = second.lines().collect();
    assert_eq!(lines.len(), first.lines().count(), "{second}");
    assert!(
        lines.iter().all(|l| l.ends_with(" unchanged")),
        "the second apply changes nothing:\n{second}"
    );

    // A new image by digest (what SRE does with `kustomize edit set image`), applied again:
    // only the StatefulSet changes, and only its images (kubectl sends a strategic merge
    // patch naming each container by its merge key).
    let copy = a.dir.path().join("kubernetes");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(bootstrap_dir()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let digest = format!("sha256:{}", "2".repeat(64));
    let kustomization = std::fs::read_to_string(copy.join("kustomization.yaml")).unwrap();
    let zero = format!("digest: sha256:{}", "0".repeat(64));
    assert!(kustomization.contains(&zero));
    std::fs::write(
        copy.join("kustomization.yaml"),
        kustomization.replace(&zero, &format!("digest: {digest}")),
    )
    .unwrap();
    let before = a
        .api
        .object("StatefulSet", "seakeeper", "seakeeper")
        .unwrap();
    let third = a.kubectl_ok(&["apply", "--validate=false", "-k", copy.to_str().unwrap()]);
    let changed: Vec<&str> = third
        .lines()
        .filter(|l| !l.ends_with(" unchanged"))
        .collect();
    assert_eq!(
        changed,
        ["statefulset.apps/seakeeper configured"],
        "{third}"
    );
    let after = a
        .api
        .object("StatefulSet", "seakeeper", "seakeeper")
        .unwrap();
    let mut expected = before["spec"]["template"].clone();
    let image = format!("registry.example.org/seakeeper/seakeeper@{digest}");
    expected["spec"]["containers"][0]["image"] = serde_json::json!(image);
    expected["spec"]["initContainers"][0]["image"] = serde_json::json!(image);
    assert_eq!(after["spec"]["template"], expected);

    // `kubectl replace` (a PUT) of a ConfigMap read back: the new data, the same object.
    let cm = a.kubectl_ok(&[
        "get",
        "configmap",
        "seakeeper-settings",
        "-n",
        "seakeeper",
        "-o",
        "json",
    ]);
    let mut cm: serde_json::Value = serde_json::from_str(&cm).unwrap();
    let uid = cm["metadata"]["uid"].clone();
    cm["data"]["extra"] = serde_json::json!("1");
    let file = a.dir.path().join("cm.json");
    std::fs::write(&file, cm.to_string()).unwrap();
    let out = a.kubectl_ok(&["replace", "--validate=false", "-f", file.to_str().unwrap()]);
    assert_eq!(out.trim(), "configmap/seakeeper-settings replaced");
    let stored = a
        .api
        .object("ConfigMap", "seakeeper", "seakeeper-settings")
        .unwrap();
    assert_eq!(
        (&stored["data"]["extra"], &stored["metadata"]["uid"]),
        (&serde_json::json!("1"), &uid)
    );
    // Replacing from the same (now stale) version again is a conflict.
    let out = a.kubectl(&["replace", "--validate=false", "-f", file.to_str().unwrap()]);
    assert!(
        !out.status.success() && support::stderr(&out).contains("the object has been modified"),
        "{}",
        support::stderr(&out)
    );

    // Read back with kubectl, as applied.
    let ns: serde_json::Value = serde_json::from_str(&a.kubectl_ok(&[
        "get",
        "namespace",
        "seakeeper-untrusted",
        "-o",
        "json",
    ]))
    .unwrap();
    let labels = &ns["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["seakeeper.dev/trust"], "untrusted");
    assert_eq!(labels["kubernetes.io/metadata.name"], "seakeeper-untrusted");
    assert!(
        ns["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    let sa: serde_json::Value = serde_json::from_str(&a.kubectl_ok(&[
        "get",
        "serviceaccount",
        "default",
        "-n",
        "seakeeper-untrusted",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(sa["automountServiceAccountToken"], false);
    let sts: serde_json::Value = serde_json::from_str(&a.kubectl_ok(&[
        "get",
        "statefulset",
        "seakeeper",
        "-n",
        "seakeeper",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        sts["spec"]["template"]["spec"]["containers"][0]["image"],
        format!("registry.example.org/seakeeper/seakeeper@{digest}"),
        "kustomize set the image by digest"
    );
    let pcs = a.kubectl_ok(&["get", "priorityclasses", "-o", "name"]);
    for pc in ["gate", "post-merge", "check", "periodic"] {
        assert!(
            pcs.contains(&format!("priorityclass.scheduling.k8s.io/seakeeper-{pc}")),
            "{pcs}"
        );
    }
    let policy = a
        .api
        .object("NetworkPolicy", "seakeeper-untrusted", "default-deny")
        .expect("the untrusted namespace's policy");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    let role = a
        .api
        .object("Role", "seakeeper-trusted", "seakeeper-jobs")
        .unwrap();
    assert_eq!(role["rules"].as_array().unwrap().len(), 5);
}

const IMAGE: &str = "registry.example.org/seakeeper/seakeeper@sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// `seakeeper doctor --kubernetes` against the stand-in, through its kubeconfig.
fn doctor(a: &Applied, image: &str) -> Output {
    support::output(
        support::seakeeper()
            .env("KUBECONFIG", &a.kubeconfig)
            .env("HOME", a.dir.path())
            .args([
                "doctor",
                "--kubernetes",
                "--image",
                image,
                "--job-timeout",
                "20",
            ]),
    )
}

/// The stand-in's port, as it appears in addresses.
fn api_port(api: &KubeApi) -> String {
    api.url.rsplit(':').next().unwrap().to_owned()
}

/// `text` with the run of letters, digits and dots after each `marker` replaced by `<...>`
/// (a Job's name suffix, a duration).
fn redact_after(text: &str, marker: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
            .unwrap_or(rest.len());
        out.push_str("<...>");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The lines of the doctor's output that failed.
fn failures(out: &Output) -> Vec<String> {
    support::stdout(out)
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_doctor_passes_on_the_applied_manifests() {
    if !kubectl_found() {
        return;
    }
    let a = applied();
    let out = doctor(&a, IMAGE);
    let text = support::stdout(&out);
    assert!(out.status.success(), "{text}{}", support::stderr(&out));
    // What SRE reads, as a snapshot (the port, the Jobs' names and times redacted).
    let port = api_port(&a.api);
    let mut shown = text.replace(&port, "<port>");
    for marker in ["seakeeper-doctor-", "completion in "] {
        shown = redact_after(&shown, marker);
    }
    let snapshot = Path::new("tests/snapshots/doctor-passes.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(snapshot, &shown).unwrap();
    }
    let want = std::fs::read_to_string(snapshot).expect("run with UPDATE_SNAPSHOTS=1 once");
    assert_eq!(
        shown, want,
        "the doctor's report changed (UPDATE_SNAPSHOTS=1 to accept)"
    );
    // A Job in each namespace ran, as locked down as seakeeper's, and is gone.
    let ran = text
        .lines()
        .filter(|l| l.starts_with("ok") && l.contains("ran to completion"))
        .count();
    assert_eq!(ran, 2, "{text}");
    assert!(a.api.jobs().is_empty(), "the doctor deleted its Jobs");
    let creates: Vec<String> = a
        .api
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST") && r.contains("/jobs"))
        .collect();
    assert_eq!(creates.len(), 2, "{creates:?}");
}

#[test]
fn the_doctor_fails_naming_a_namespace_without_its_pod_security_label() {
    if !kubectl_found() {
        return;
    }
    let a = applied();
    a.kubectl_ok(&[
        "label",
        "namespace",
        "seakeeper-untrusted",
        "pod-security.kubernetes.io/enforce-",
    ]);
    let out = doctor(&a, IMAGE);
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    assert_eq!(
        failures(&out),
        vec![
            "FAIL namespace seakeeper-untrusted: label pod-security.kubernetes.io/enforce is missing (must be \"restricted\")"
        ],
        "{}",
        support::stdout(&out)
    );
}

#[test]
fn the_doctor_fails_naming_an_account_whose_pods_could_mount_a_token() {
    if !kubectl_found() {
        return;
    }
    let a = applied();
    a.kubectl_ok(&[
        "patch",
        "serviceaccount",
        "default",
        "-n",
        "seakeeper-untrusted",
        "-p",
        r#"{"automountServiceAccountToken": true}"#,
    ]);
    let out = doctor(&a, IMAGE);
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    assert_eq!(
        failures(&out),
        vec![
            "FAIL namespace seakeeper-untrusted: ServiceAccount default: automountServiceAccountToken is true (must be false: a pod there that does not say otherwise mounts its token)"
        ],
        "{}",
        support::stdout(&out)
    );
}

#[test]
fn the_doctor_fails_when_an_untrusted_account_may_read_secrets_or_reach_the_api_server() {
    if !kubectl_found() {
        return;
    }
    let a = applied();
    // A binding that gives the untrusted jobs' account seakeeper's own Role (Secrets in the
    // trusted namespace), and a policy that opens egress to everything.
    let file = a.dir.path().join("holes.yaml");
    std::fs::write(
        &file,
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: oops
  namespace: seakeeper-trusted
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: seakeeper-jobs
subjects:
  - kind: ServiceAccount
    name: default
    namespace: seakeeper-untrusted
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: open
  namespace: seakeeper-untrusted
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to:
        - ipBlock: { cidr: 10.0.0.0/8 }
"#,
    )
    .unwrap();
    a.kubectl_ok(&["apply", "--validate=false", "-f", file.to_str().unwrap()]);
    let out = doctor(&a, IMAGE);
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    let failed = failures(&out);
    assert_eq!(failed.len(), 2, "{}", support::stdout(&out));
    assert!(
        failed[0].starts_with(
            "FAIL namespace seakeeper-untrusted: ServiceAccount default: RBAC lets it get secrets in seakeeper-trusted (RBAC: allowed by RoleBinding \"oops\""
        ),
        "{failed:?}"
    );
    assert_eq!(
        failed[1],
        "FAIL namespace seakeeper-untrusted: the API server is reachable: NetworkPolicy open: spec.egress[0] allows 10.96.0.1:443"
    );
}

#[test]
fn the_doctor_refuses_an_image_by_tag_before_calling_the_cluster() {
    let api = KubeApi::start_bare();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let out = support::output(support::seakeeper().env("KUBECONFIG", &kubeconfig).args([
        "doctor",
        "--kubernetes",
        "--image",
        "registry.example.org/seakeeper/seakeeper:latest",
    ]));
    assert!(!out.status.success());
    let err = support::stderr(&out);
    assert!(
        err.contains("--image \"registry.example.org/seakeeper/seakeeper:latest\" is not pinned by digest: give NAME@sha256:<64 hex digits>"),
        "{err}"
    );
    assert!(api.requests().is_empty(), "{:?}", api.requests());
}

#[test]
fn the_probe_finds_no_token_here_and_fails_when_an_address_answers() {
    // The probe as its Job runs it (here, outside a pod: no token file on this machine).
    let out = support::output(support::seakeeper().args(["doctor", "probe"]));
    assert!(out.status.success(), "{}", support::stdout(&out));
    assert!(support::stdout(&out).contains(
        "ok   /var/run/secrets/kubernetes.io/serviceaccount/token: no service-account token"
    ));
    // An address that answers (the stand-in, as if it were the API server) fails it.
    let api = KubeApi::start_bare();
    let addr = api.url.trim_start_matches("http://").to_owned();
    let out = support::output(
        support::seakeeper()
            .env_remove("KUBERNETES_SERVICE_HOST")
            .args(["doctor", "probe", "--unreachable", &addr]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    assert!(
        support::stdout(&out).contains(&format!("FAIL {addr}: the API server answered at {addr}")),
        "{}",
        support::stdout(&out)
    );
}

#[test]
fn subject_access_reviews_answer_from_the_applied_rbac() {
    if !kubectl_found() {
        return;
    }
    let a = applied();
    let review = |user: &str, verb: &str, resource: &str, group: &str, ns: &str| {
        let file = a.dir.path().join("review.yaml");
        std::fs::write(
            &file,
            format!(
                "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: {user}\n  resourceAttributes:\n    namespace: {ns}\n    verb: {verb}\n    group: \"{group}\"\n    resource: {resource}\n"
            ),
        )
        .unwrap();
        a.kubectl_ok(&[
            "create",
            "--validate=false",
            "-f",
            file.to_str().unwrap(),
            "-o",
            "jsonpath={.status.allowed}",
        ])
    };
    // seakeeper's account manages Jobs in the jobs namespaces and Secrets only in the trusted one.
    let seakeeper = "system:serviceaccount:seakeeper:seakeeper";
    assert_eq!(
        review(seakeeper, "create", "jobs", "batch", "seakeeper-untrusted"),
        "true"
    );
    assert_eq!(
        review(seakeeper, "patch", "secrets", "", "seakeeper-trusted"),
        "true"
    );
    assert_eq!(
        review(seakeeper, "get", "secrets", "", "seakeeper-untrusted"),
        "false"
    );
    assert_eq!(
        review(seakeeper, "delete", "jobs", "batch", "default"),
        "false"
    );
    assert_eq!(
        review(seakeeper, "create", "jobs", "", "seakeeper-trusted"),
        "false"
    );
    // The jobs' own accounts: nothing.
    let untrusted = "system:serviceaccount:seakeeper-untrusted:default";
    assert_eq!(
        review(untrusted, "get", "secrets", "", "seakeeper-untrusted"),
        "false"
    );
    assert_eq!(
        review(untrusted, "list", "pods", "", "seakeeper-untrusted"),
        "false"
    );
}

#[test]
fn the_doctor_fails_naming_the_pod_when_its_job_does_not_finish_and_still_deletes_it() {
    if !kubectl_found() {
        return;
    }
    let a = applied();
    // An image that cannot be pulled: the pods stay Pending until the Jobs' deadline.
    let out = support::output(
        support::seakeeper()
            .env("KUBECONFIG", &a.kubeconfig)
            .env("HOME", a.dir.path())
            .args([
                "doctor",
                "--kubernetes",
                "--image",
                &format!(
                    "registry.example.invalid/seakeeper@sha256:{}",
                    "3".repeat(64)
                ),
                "--job-timeout",
                "1",
            ]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", support::stdout(&out));
    let failed = failures(&out);
    assert_eq!(failed.len(), 2, "{}", support::stdout(&out));
    for (f, ns) in failed
        .iter()
        .zip(["seakeeper-trusted", "seakeeper-untrusted"])
    {
        assert!(
            f.starts_with(&format!("FAIL namespace {ns}: Job seakeeper-doctor-"))
                && f.contains(": not finished after 1s (pod seakeeper-doctor-")
                && f.contains(
                    " Pending; probe: ImagePullBackOff Back-off pulling image \"registry.example.invalid/seakeeper@sha256:"
                ),
            "{f}"
        );
    }
    assert!(
        support::stdout(&out)
            .lines()
            .filter(|l| l.starts_with("ok") && l.ends_with(": deleted"))
            .count()
            == 2,
        "{}",
        support::stdout(&out)
    );
    assert!(a.api.jobs().is_empty(), "the doctor deleted its Jobs");
}

#[test]
fn the_doctor_stops_with_one_error_when_the_api_server_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: gone\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\ncurrent-context: gone\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let out = support::output(
        support::seakeeper()
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .args([
                "doctor",
                "--kubernetes",
                "--image",
                IMAGE,
                "--call-timeout",
                "5",
            ]),
    );
    assert!(!out.status.success());
    assert_eq!(support::stdout(&out), "");
    let err = support::stderr(&out);
    assert!(
        err.contains(&format!(
            "the API server at http://127.0.0.1:{port}/ does not answer: get /version:"
        )),
        "{err}"
    );
}

#[test]
fn the_doctor_on_a_cluster_where_nothing_was_applied_names_the_missing_namespaces() {
    let api = KubeApi::start_bare();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let out = support::output(
        support::seakeeper()
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .args(["doctor", "--kubernetes", "--image", IMAGE]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", support::stderr(&out));
    assert_eq!(
        failures(&out),
        ["seakeeper-trusted", "seakeeper-untrusted"].map(|ns| format!(
            "FAIL namespace {ns}: not found (kubectl apply -k bootstrap/kubernetes makes it); nothing checked in it"
        )),
        "{}",
        support::stdout(&out)
    );
    assert!(api.jobs().is_empty());
}
