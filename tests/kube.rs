//! The Kubernetes executor against the Kubernetes API stand-in (over HTTP, with the real `kube`
//! client), and Debian's `kubectl` against the same stand-in: the proof it speaks Kubernetes.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use seakeeper::executor::Executor as _;
use seakeeper::executor::kubernetes::{KubeExecutor, KubeSettings, job_name, manifest};
use seakeeper::model::{JobSpec, JobState, Trust};
use support::kube::KubeApi;

fn spec(job: &str, env: &[(&str, &str)], timeout: u64, trust: Trust) -> JobSpec {
    JobSpec {
        build_id: format!("b-{job}").parse().unwrap(),
        job: job.into(),
        pipeline: "check".into(),
        project: "mediawiki/core".parse().unwrap(),
        change: Some((4711u64.try_into().unwrap(), 3u64.try_into().unwrap())),
        source: "https://gerrit.example.org/mediawiki/core".into(),
        commit: "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5".parse().unwrap(),
        image: "docker-registry.example.org/php:8.3".into(),
        commands: vec!["composer install".into(), "composer test".into()],
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timeout_seconds: timeout,
        cpu: Some("500m".into()),
        memory: None,
        services: Default::default(),
        secrets: vec![],
        network: false,
        outputs: vec![],
        trust,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    }
}

fn executor(api: &KubeApi) -> KubeExecutor {
    KubeExecutor::connect(&api.url, KubeSettings::default()).unwrap()
}

#[test]
fn a_job_runs_to_success_with_its_logs_and_is_adopted_after_a_restart() {
    let api = KubeApi::start();
    let e = executor(&api);
    let s = spec(
        "unit",
        &[("STANDIN_DURATION_MS", "400")],
        600,
        Trust::Untrusted,
    );
    e.start(&s).unwrap();
    e.start(&s).unwrap(); // again: AlreadyExists, adopted, not a second Job
    assert_eq!(api.jobs().len(), 1);
    let job = &api.jobs()[0];
    assert_eq!(job["metadata"]["namespace"], "seakeeper-untrusted");
    assert_eq!(
        job["metadata"]["labels"]["seakeeper.dev/project"],
        "mediawiki_core"
    );
    assert_eq!(
        job["metadata"]["annotations"]["seakeeper.dev/project"],
        "mediawiki/core"
    );
    assert_eq!(job["metadata"]["labels"]["seakeeper.dev/change"], "4711");
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 600);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["initContainers"][0]["name"], "fetch");
    assert_eq!(
        pod["containers"][0]["securityContext"]["capabilities"]["drop"][0],
        "ALL"
    );
    // Live logs, followed while it runs.
    let mut lines = Vec::new();
    e.logs(&s.key(), true, &mut |l| lines.push(l.text)).unwrap();
    assert!(
        lines.contains(&"$ composer test".to_owned()),
        "{lines:?} {:#?}",
        api.requests()
    );
    assert_eq!(
        e.wait(&s.key(), Some(Duration::from_secs(20))).unwrap(),
        JobState::Succeeded
    );

    // A new executor (a restarted daemon) finds it by label.
    let e2 = executor(&api);
    let listed = e2.list().unwrap();
    assert_eq!(listed, vec![(s.key(), JobState::Succeeded)]);
    assert_eq!(e2.state(&s.key()).unwrap(), Some(JobState::Succeeded));
}

#[test]
fn failure_deadline_and_cancel_are_reported() {
    let api = KubeApi::start();
    let e = executor(&api);
    let fail = spec(
        "fail",
        &[("STANDIN_OUTCOME", "fail"), ("STANDIN_EXIT_CODE", "3")],
        600,
        Trust::Trusted,
    );
    let hang = spec("hang", &[("STANDIN_OUTCOME", "hang")], 1, Trust::Untrusted);
    let cancel = spec(
        "cancel",
        &[("STANDIN_OUTCOME", "hang")],
        600,
        Trust::Untrusted,
    );
    for s in [&fail, &hang, &cancel] {
        e.start(s).unwrap();
    }
    match e.wait(&fail.key(), Some(Duration::from_secs(20))).unwrap() {
        JobState::Failed { reason, exit_code } => {
            assert!(reason.contains("BackoffLimitExceeded"), "{reason}");
            assert_eq!(exit_code, Some(3), "the job container's own exit code");
        }
        s => panic!("{s:?}"),
    }
    assert_eq!(
        api.jobs()
            .iter()
            .filter(|j| j["metadata"]["namespace"] == "seakeeper-trusted")
            .count(),
        1
    );
    let t = Instant::now();
    assert_eq!(
        e.wait(&hang.key(), Some(Duration::from_secs(20))).unwrap(),
        JobState::TimedOut
    );
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the deadline is enforced"
    );
    // Cancel deletes with foreground propagation: pods go first, then the Job.
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.state(&cancel.key()).unwrap() != Some(JobState::Running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    e.cancel(&cancel.key()).unwrap();
    assert_eq!(
        e.wait(&cancel.key(), Some(Duration::from_secs(10)))
            .unwrap(),
        JobState::Cancelled
    );
    let name = job_name(&cancel.key());
    let deadline = Instant::now() + Duration::from_secs(10);
    while api
        .jobs()
        .iter()
        .any(|j| j["metadata"]["name"] == name.as_str())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !api.jobs()
            .iter()
            .any(|j| j["metadata"]["name"] == name.as_str())
    );
    assert!(
        !api.pods()
            .iter()
            .any(|p| p["metadata"]["labels"]["job-name"] == name.as_str())
    );
    assert!(
        api.requests()
            .iter()
            .any(|r| r.starts_with("DELETE /apis/batch/v1/namespaces/seakeeper-untrusted/jobs/"))
    );
}

#[test]
fn the_watch_survives_dropped_connections_and_410_gone() {
    let api = KubeApi::start();
    let e = executor(&api);
    let s = spec(
        "slowish",
        &[("STANDIN_DURATION_MS", "2500")],
        600,
        Trust::Untrusted,
    );
    e.start(&s).unwrap();
    let key = s.key();
    let api_ref = &api;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(600));
            api_ref.compact();
            api_ref.drop_watches();
            std::thread::sleep(Duration::from_millis(600));
            api_ref.drop_watches();
        });
        assert_eq!(
            e.wait(&key, Some(Duration::from_secs(20))).unwrap(),
            JobState::Succeeded
        );
    });
    let watches = api
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true"))
        .count();
    assert!(watches >= 2, "the watch was re-established: {watches}");
    assert!(
        api.gone_sent() >= 1,
        "a resumed watch got 410 Gone and re-listed"
    );
}

#[test]
fn outputs_come_from_the_collectors_termination_message() {
    let api = KubeApi::start();
    let e = executor(&api);
    let files = r#"[{"path":"dist/app.tar","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000001","size":9,"executable":false}]"#;
    let mut s = spec("build", &[("STANDIN_OUTPUTS", files)], 600, Trust::Trusted);
    s.outputs = vec!["dist/*.tar".into()];
    e.start(&s).unwrap();
    assert_eq!(
        e.wait(&s.key(), Some(Duration::from_secs(20))).unwrap(),
        JobState::Succeeded
    );
    let out = e.outputs(&s.key()).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path, "dist/app.tar");
    let job = manifest(&s, &KubeSettings::default());
    let containers = job.spec.unwrap().template.spec.unwrap().containers;
    let collect = containers.iter().find(|c| c.name == "collect").unwrap();
    assert!(
        collect.env_from.is_some(),
        "only the collector gets the store's credentials"
    );
    let main = containers.iter().find(|c| c.name == "job").unwrap();
    assert!(main.env_from.is_none());
}

fn kubectl(kubeconfig: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .args(args)
        .output()
        .expect("kubectl is installed (scripts/install-deps)")
}

#[test]
fn kubectl_creates_gets_watches_waits_for_and_deletes_jobs() {
    if Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubectl must be installed in CI"
        );
        return;
    }
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let s = spec(
        "kubectl",
        &[("STANDIN_DURATION_MS", "1500")],
        600,
        Trust::Untrusted,
    );
    let yaml = seakeeper::executor::kubernetes::render_yaml(&s, &KubeSettings::default()).unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, yaml).unwrap();
    let name = job_name(&s.key());
    let ns = ["-n", "seakeeper-untrusted"];

    let out = kubectl(
        &kubeconfig,
        dir.path(),
        &[
            // The stand-in serves no OpenAPI schema, so client-side validation is off.
            &["create", "--validate=false", "-f", file.to_str().unwrap()][..],
            &ns,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("job.batch/{name} created")));

    let out = kubectl(
        &kubeconfig,
        dir.path(),
        &[&["get", "jobs"][..], &ns].concat(),
    );
    assert!(
        out.status.success(),
        "get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name));

    // Watch in the background while it runs.
    let mut watch = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .args([
            "get",
            "job",
            &name,
            "-w",
            "-o",
            "name",
            "-n",
            "seakeeper-untrusted",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let out = kubectl(
        &kubeconfig,
        dir.path(),
        &[
            &[
                "wait",
                "--for=condition=complete",
                &format!("job/{name}"),
                "--timeout=30s",
            ][..],
            &ns,
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "wait: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));

    let out = kubectl(
        &kubeconfig,
        dir.path(),
        &[
            &["get", "job", &name, "-o", "jsonpath={.status.succeeded}"][..],
            &ns,
        ]
        .concat(),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1");

    let _ = watch.kill();
    let watched = watch.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&watched.stdout);
    assert!(
        seen.lines().filter(|l| l.contains(&name)).count() >= 2,
        "watch saw the changes: {seen}"
    );

    let out = kubectl(
        &kubeconfig,
        dir.path(),
        &[&["delete", "job", &name][..], &ns].concat(),
    );
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted"));
    let out = kubectl(
        &kubeconfig,
        dir.path(),
        &[&["get", "job", &name][..], &ns].concat(),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound")
            || String::from_utf8_lossy(&out.stderr).contains("not found")
    );
}

#[test]
fn services_run_beside_the_job_and_resolve_by_name() {
    let mut s = spec("db", &[], 600, Trust::Untrusted);
    s.services
        .insert("mariadb".into(), "docker.io/library/mariadb:11".into());
    let job = manifest(&s, &KubeSettings::default());
    let pod = job.spec.unwrap().template.spec.unwrap();
    // A native sidecar: an init container that keeps running, so the pod ends with the job.
    let sidecar = pod
        .init_containers
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name == "service-mariadb")
        .expect("the service is a sidecar");
    assert_eq!(
        sidecar.image.as_deref(),
        Some("docker.io/library/mariadb:11")
    );
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    let aliases = pod.host_aliases.unwrap();
    assert_eq!(
        aliases[0].hostnames.as_deref(),
        Some(&["mariadb".to_owned()][..])
    );
}

#[test]
fn a_followed_log_that_breaks_reconnects_without_losing_or_repeating_lines() {
    let api = KubeApi::start();
    let e = executor(&api);
    let mut s = spec(
        "chatty",
        &[("STANDIN_DURATION_MS", "1500")],
        600,
        Trust::Untrusted,
    );
    s.commands = (0..10).map(|i| format!("echo step {i}")).collect();
    e.start(&s).unwrap();
    let mut lines = Vec::new();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            api.drop_watches();
        });
        e.logs(&s.key(), true, &mut |l| lines.push(l.text)).unwrap();
    });
    let steps: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("$ echo step"))
        .collect();
    assert_eq!(steps.len(), 10, "every line once: {lines:#?}");
    let log_requests = api
        .requests()
        .iter()
        .filter(|r| r.contains("/log?"))
        .count();
    assert!(
        log_requests >= 2,
        "the stream was re-opened: {log_requests}"
    );
}

/// Issue 14, item 9: a job's pod is fenced by a NetworkPolicy made before it, owned by its Job.
#[test]
fn issue_14_every_job_is_fenced_by_a_network_policy_that_goes_with_it() {
    let api = KubeApi::start();
    let settings = KubeSettings {
        infrastructure_cidrs: vec!["203.0.113.10/32".into()],
        ..KubeSettings::default()
    };
    let e = KubeExecutor::connect(&api.url, settings).unwrap();
    let closed = spec(
        "closed",
        &[("STANDIN_DURATION_MS", "60000")],
        600,
        Trust::Untrusted,
    );
    let mut open = spec(
        "open",
        &[("STANDIN_DURATION_MS", "60000")],
        600,
        Trust::Trusted,
    );
    open.network = true;
    e.start(&closed).unwrap();
    e.start(&open).unwrap();
    let policies = api.network_policies();
    assert_eq!(policies.len(), 2, "{policies:?}");
    let by_name = |n: &str| {
        policies
            .iter()
            .find(|p| p["metadata"]["name"] == n)
            .unwrap_or_else(|| panic!("no policy {n}: {policies:?}"))
            .clone()
    };
    let jobs = api.jobs();
    for (s, p) in [
        (&closed, by_name(&job_name(&closed.key()))),
        (&open, by_name(&job_name(&open.key()))),
    ] {
        let job = jobs
            .iter()
            .find(|j| j["metadata"]["name"] == job_name(&s.key()))
            .unwrap();
        assert_eq!(p["metadata"]["namespace"], job["metadata"]["namespace"]);
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["uid"],
            job["metadata"]["uid"]
        );
        // It selects the job's pod by labels the pod template carries.
        for (k, v) in p["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&job["spec"]["template"]["metadata"]["labels"][k], v, "{k}");
        }
        assert_eq!(
            p["spec"]["policyTypes"],
            serde_json::json!(["Ingress", "Egress"])
        );
        assert_eq!(p["spec"]["ingress"], serde_json::json!([]));
    }
    let egress = |p: &serde_json::Value| p["spec"]["egress"].to_string();
    let closed_egress = egress(&by_name(&job_name(&closed.key())));
    assert!(closed_egress.contains("\"port\":53") && closed_egress.contains("203.0.113.10/32"));
    assert!(!closed_egress.contains("0.0.0.0/0"), "{closed_egress}");
    let open_egress = egress(&by_name(&job_name(&open.key())));
    assert!(open_egress.contains("0.0.0.0/0"), "{open_egress}");
    for private in [
        "10.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "192.168.0.0/16",
    ] {
        assert!(
            open_egress.contains(private),
            "{private} is excepted: {open_egress}"
        );
    }
    // Cancelled, the Job goes and its policy with it.
    e.cancel(&closed.key()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while api.network_policies().len() != 1 {
        assert!(Instant::now() < deadline, "{:?}", api.network_policies());
        std::thread::sleep(Duration::from_millis(20));
    }
    // `job render` shows the policy before the Job.
    let yaml =
        seakeeper::executor::kubernetes::render_yaml(&closed, &KubeSettings::default()).unwrap();
    let policy_at = yaml.find("kind: NetworkPolicy").unwrap();
    let job_at = yaml.find("kind: Job").unwrap();
    assert!(policy_at < job_at, "{yaml}");
}

/// A Job deleted while it runs, not by seakeeper (by hand, or its namespace cleaned up), is
/// lost (and so run once more), never left running for ever; one seakeeper cancelled is
/// cancelled.
#[test]
fn a_job_deleted_behind_seakeepers_back_is_lost() {
    let api = KubeApi::start();
    let e = executor(&api);
    let run = spec(
        "deleted",
        &[("STANDIN_OUTCOME", "hang")],
        600,
        Trust::Untrusted,
    );
    e.start(&run).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.state(&run.key()).unwrap() != Some(JobState::Running) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!(
        "{}/apis/batch/v1/namespaces/seakeeper-untrusted/jobs/{}",
        api.url,
        job_name(&run.key())
    );
    ureq::delete(&url).call().unwrap();
    match e.wait(&run.key(), Some(Duration::from_secs(20))).unwrap() {
        JobState::Lost { reason } => assert!(reason.contains("deleted"), "{reason}"),
        s => panic!("{s:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut state = e.state(&run.key()).unwrap();
    while !matches!(state, Some(JobState::Lost { .. })) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        state = e.state(&run.key()).unwrap();
    }
    assert!(matches!(state, Some(JobState::Lost { .. })), "{state:?}");
}
