//! Unit tests of the doctor: image pinning, CIDRs and egress rules, the probe Job.

use super::*;

#[test]
fn an_image_must_be_pinned_by_digest() {
    let d = format!("sha256:{}", "a".repeat(64));
    assert!(check_image(&format!("registry.example.org/seakeeper@{d}")).is_ok());
    assert!(check_image(&format!("registry.example.org/seakeeper:1.0@{d}")).is_ok());
    for bad in [
        "registry.example.org/seakeeper:latest",
        "registry.example.org/seakeeper",
        "registry.example.org/seakeeper@sha256:abc",
        &format!("@{d}"),
    ] {
        assert!(check_image(bad).is_err(), "{bad}");
    }
}

#[test]
fn cidrs_and_rules() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(in_cidr(ip("10.96.0.1"), "10.0.0.0/8"));
    assert!(!in_cidr(ip("10.96.0.1"), "192.0.2.10/32"));
    assert!(in_cidr(ip("10.96.0.1"), "0.0.0.0/0"));
    assert!(in_cidr(ip("fd00::1"), "fc00::/7"));
    assert!(!in_cidr(ip("10.96.0.1"), "::/0"));
    let rule: NetworkPolicyEgressRule = serde_json::from_value(serde_json::json!(
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    ))
    .unwrap();
    assert!(!allows(&rule, ip("10.96.0.1"), 443));
    assert!(allows(&rule, ip("10.96.0.1"), 53));
    let rule: NetworkPolicyEgressRule = serde_json::from_value(serde_json::json!(
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}
    ))
    .unwrap();
    assert!(!allows(&rule, ip("10.96.0.1"), 443));
    assert!(allows(&rule, ip("203.0.113.5"), 443));
}

#[test]
fn the_doctors_pod_is_seakeepers_own_with_one_probe_container() {
    let s = DoctorSettings {
        trusted_namespace: "t".into(),
        untrusted_namespace: "u".into(),
        seakeeper_namespace: "seakeeper".into(),
        image: format!("r.example.org/seakeeper@sha256:{}", "b".repeat(64)),
        job_timeout: Duration::from_secs(60),
        call_timeout: Duration::from_secs(10),
    };
    let job = doctor_job(&s, Trust::Untrusted, "u", "seakeeper-doctor-1", vec![]);
    let v = serde_json::to_value(&job).unwrap();
    let pod = &v["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["initContainers"].is_null());
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    let c = &pod["containers"][0];
    assert_eq!(c["image"], s.image);
    assert_eq!(c["args"], serde_json::json!(["doctor", "probe"]));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(v["metadata"]["labels"][MANAGED_BY], DOCTOR);
    assert_eq!(v["metadata"]["namespace"], "u");
}
