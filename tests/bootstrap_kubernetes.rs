//! Issue 19 (in part): the cluster side in `bootstrap/kubernetes/` is valid for a current
//! Kubernetes (PyPI's `kubernetes-validate`, strict), and every Pod template there and in the
//! Jobs seakeeper renders satisfies Pod Security `restricted` (checked here from the published
//! profile's rules).

mod support;

use std::path::Path;

use seakeeper::executor::kubernetes::{KubeSettings, manifest};
use seakeeper::model::{CacheSpec, JobInputs, JobSpec, OutputFile, Trust};

const FILES: &[&str] = &[
    "namespaces.yaml",
    "priorityclasses.yaml",
    "rbac.yaml",
    "networkpolicies.yaml",
    "quotas.yaml",
    "storage.yaml",
    "seakeeper.yaml",
];

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bootstrap/kubernetes")
}

/// Every document of a YAML file.
fn documents(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| yaml_serde::from_str(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

#[test]
fn the_manifests_are_valid_for_kubernetes_1_32_and_kustomize_lists_them_all() {
    let kustomization = std::fs::read_to_string(dir().join("kustomization.yaml")).unwrap();
    for f in FILES {
        assert!(
            kustomization.contains(&format!("- {f}")),
            "{f} not in kustomization.yaml"
        );
        assert!(!documents(&dir().join(f)).is_empty());
    }
    let found = std::process::Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate must be installed in CI (scripts/install-deps)"
        );
        return;
    }
    let out = support::output(
        std::process::Command::new("kubernetes-validate")
            .args(["--strict", "-k", "1.32.0"])
            .current_dir(dir())
            .args(FILES),
    );
    assert!(
        out.status.success(),
        "{}{}",
        support::stdout(&out),
        support::stderr(&out)
    );
}

/// Pod Security Standards, `restricted` (Kubernetes 1.32): what a pod spec violates.
fn restricted(pod: &serde_json::Value) -> Vec<String> {
    let mut v = Vec::new();
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[host] == true {
            v.push(format!("{host} is set"));
        }
    }
    let psc = &pod["securityContext"];
    let allowed_volumes = [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    for vol in pod["volumes"].as_array().into_iter().flatten() {
        let kinds: Vec<&String> = vol
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "name")
            .collect();
        for k in kinds {
            if !allowed_volumes.contains(&k.as_str()) {
                v.push(format!("volume {} is of type {k}", vol["name"]));
            }
        }
    }
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| pod[*k].as_array().cloned().unwrap_or_default());
    for c in containers {
        let name = c["name"].as_str().unwrap_or("?").to_owned();
        let sc = &c["securityContext"];
        if sc["privileged"] == true {
            v.push(format!("{name}: privileged"));
        }
        if sc["allowPrivilegeEscalation"] != false {
            v.push(format!("{name}: allowPrivilegeEscalation is not false"));
        }
        let non_root = sc["runAsNonRoot"] == true
            || (sc["runAsNonRoot"].is_null() && psc["runAsNonRoot"] == true);
        if !non_root {
            v.push(format!("{name}: runAsNonRoot is not true"));
        }
        if sc["runAsUser"] == 0 || (sc["runAsUser"].is_null() && psc["runAsUser"] == 0) {
            v.push(format!("{name}: runAsUser is 0"));
        }
        let seccomp = if sc["seccompProfile"].is_null() {
            &psc["seccompProfile"]
        } else {
            &sc["seccompProfile"]
        };
        if !matches!(
            seccomp["type"].as_str(),
            Some("RuntimeDefault" | "Localhost")
        ) {
            v.push(format!(
                "{name}: no RuntimeDefault or Localhost seccomp profile"
            ));
        }
        let drops = sc["capabilities"]["drop"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !drops.iter().any(|d| d == "ALL") {
            v.push(format!("{name}: capabilities are not dropped (ALL)"));
        }
        for add in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if add != "NET_BIND_SERVICE" {
                v.push(format!("{name}: adds capability {add}"));
            }
        }
        for p in c["ports"].as_array().into_iter().flatten() {
            if !p["hostPort"].is_null() && p["hostPort"] != 0 {
                v.push(format!("{name}: a hostPort"));
            }
        }
    }
    v
}

#[test]
fn the_checker_catches_what_restricted_forbids() {
    let bad = serde_json::json!({
        "hostNetwork": true,
        "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
        "containers": [{"name": "c", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]
    });
    let found = restricted(&bad).join("\n");
    for why in [
        "hostNetwork",
        "hostPath",
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccomp",
        "SYS_ADMIN",
        "dropped",
    ] {
        assert!(found.contains(why), "{why}: {found}");
    }
}

#[test]
fn every_pod_is_restricted_the_statefulset_and_rendered_jobs() {
    for doc in documents(&dir().join("seakeeper.yaml")) {
        if doc["kind"] == "StatefulSet" {
            let v = restricted(&doc["spec"]["template"]["spec"]);
            assert!(v.is_empty(), "the StatefulSet: {v:?}");
        }
    }
    let digest: seakeeper::model::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let base = |trust: Trust| JobSpec {
        build_id: "b-1".parse().unwrap(),
        job: "unit".into(),
        pipeline: if trust == Trust::Trusted {
            "gate"
        } else {
            "check"
        }
        .into(),
        project: "acme/api".parse().unwrap(),
        change: None,
        source: "https://gerrit.example.org/acme/api".into(),
        commit: "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5".parse().unwrap(),
        image: format!("registry.example.org/ci@{digest}"),
        commands: vec!["make test".into()],
        env: Default::default(),
        timeout_seconds: 600,
        cpu: None,
        memory: None,
        services: Default::default(),
        secrets: vec![],
        network: false,
        outputs: vec![],
        trust,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    };
    let everything = |trust: Trust| JobSpec {
        services: [("db".to_owned(), format!("registry.example.org/db@{digest}"))].into(),
        secrets: if trust == Trust::Trusted {
            vec!["TOKEN".into()]
        } else {
            vec![]
        },
        outputs: vec!["dist/**".into()],
        caches: vec![CacheSpec {
            path: "vendor".into(),
            key: vec!["composer.lock".into()],
        }],
        inputs: vec![JobInputs {
            job: "build".into(),
            files: vec![OutputFile {
                path: "dist/app".into(),
                digest: digest.clone(),
                size: 1,
                executable: true,
            }],
        }],
        ..base(trust)
    };
    for (what, spec) in [
        ("untrusted plain", base(Trust::Untrusted)),
        ("trusted plain", base(Trust::Trusted)),
        ("untrusted, everything", everything(Trust::Untrusted)),
        ("trusted, everything", everything(Trust::Trusted)),
    ] {
        let job = serde_json::to_value(manifest(&spec, &KubeSettings::default())).unwrap();
        let v = restricted(&job["spec"]["template"]["spec"]);
        assert!(v.is_empty(), "{what}: {v:?}");
        assert_eq!(
            job["spec"]["template"]["spec"]["automountServiceAccountToken"], false,
            "{what}: a job pod mounts no token"
        );
    }
}

#[test]
fn key_install_copies_a_mounted_secret_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("ledger-key.asc");
    std::fs::write(&src, "key material").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o444)).unwrap();
    let into = dir.path().join("state/keys");
    for _ in 0..2 {
        let out = support::output(
            support::seakeeper()
                .args(["key", "install", "--from"])
                .arg(&src)
                .arg("--into")
                .arg(&into),
        );
        assert!(out.status.success(), "{}", support::stderr(&out));
    }
    let dest = into.join("ledger-key.asc");
    assert_eq!(std::fs::read(&dest).unwrap(), b"key material");
    assert_eq!(
        std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&into).unwrap().permissions().mode() & 0o777,
        0o700
    );
}
