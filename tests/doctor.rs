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
        "registry.example.org/seakeeper/seakeeper@sha256:0000000000000000000000000000000000000000000000000000000000000000",
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
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
    let role = a
        .api
        .object("Role", "seakeeper-trusted", "seakeeper-jobs")
        .unwrap();
    assert_eq!(role["rules"].as_array().unwrap().len(), 5);
}
