//! The web server end to end (issue 17): `seakeeper serve` with `web:` serves the status page,
//! live consoles, builds, logs, ledger commits (signature checked server-side), traces,
//! changes, `/metrics` and the Gerrit webhook, against the Gerrit stand-in and the local
//! executor; a real headless Chromium watches the queue and a live console; `seakeeper web`
//! serves the same ledger read-only and judges signatures only by the keys it trusts.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::site::{CI_BOT, Daemon, IMAGE, Site, git, wait_for};
use support::web::{Sse, get, request};
use support::{seakeeper, stderr};

/// 32 coloured lines `$1` seconds apart, each with markup that must stay text.
const SLOW: &str = "i=0\nwhile [ $i -lt 32 ]; do\n  i=$((i+1))\n  printf '\\033[32mline %s\\033[0m <script>window.pwned=1</script><img src=x onerror=window.pwned=1>\\n' $i\n  sleep $1\ndone\n";

const TOKEN: &str = "hook-token-0123456789";

fn web_site() -> Site {
    let site = Site::new(
        "",
        "web:\n  listen: 127.0.0.1:0\n  address_file: web.addr\n",
    );
    site.write_config(
        "projects/acme/api.yaml",
        "pipelines: [check, gate, post-merge]\n",
    );
    site.commit_config("The gate for acme/api");
    let secrets = site.w.path("secrets.yaml");
    std::fs::write(
        &secrets,
        format!("gerrit:\n  username: ci-bot\n  password: ci-bot-http-token\nwebhook:\n  token: {TOKEN}\n"),
    )
    .unwrap();
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(
        w.join(".pipeline/config.yaml"),
        format!("jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"sh slow.sh 0.25\"]\n    timeout: 1m\n  slow:\n    image: {IMAGE}\n    commands: [\"sh slow.sh 0.75\"]\n    timeout: 1m\npipelines:\n  check: [unit]\n  gate: [slow]\n"),
    )
    .unwrap();
    std::fs::write(w.join("slow.sh"), SLOW).unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "The pipeline"]);
    site.merge("acme/api");
    site.reconcile();
    site
}

fn address(file: &Path) -> String {
    wait_for("the web server's address", Duration::from_secs(30), || {
        std::fs::read_to_string(file).is_ok_and(|s| s.ends_with('\n'))
    });
    std::fs::read_to_string(file).unwrap().trim().to_owned()
}

fn json(addr: &str, path: &str) -> serde_json::Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body))
}

/// The build of `pipeline` in flight, with its job running (from `/api/status`).
fn running(addr: &str, pipeline: &str) -> Option<String> {
    let s = json(addr, "/api/status");
    s["builds"].as_array()?.iter().find_map(|b| {
        (b["pipeline"] == pipeline
            && b["jobs"]
                .as_array()?
                .iter()
                .any(|j| j["state"] == "running"))
        .then(|| b["build_id"].as_str().unwrap().to_owned())
    })
}

#[test]
fn pages_live_consoles_metrics_and_the_webhook_of_a_serving_daemon() {
    let site = web_site();
    let daemon = Daemon::start(&site);
    let addr = address(&site.w.path("web.addr"));
    assert_eq!(get(&addr, "/healthz").body, "ok\n");
    // Ready once a pass ran with a valid config, a writable ledger, Gerrit and the executor.
    wait_for("/readyz to say ready", Duration::from_secs(30), || {
        get(&addr, "/readyz").status == 200
    });
    assert_eq!(get(&addr, "/readyz").body, "ready\n");

    site.upload(
        "acme/api",
        "I2000000000000000000000000000000000000001",
        &[("one.txt", "1\n")],
        false,
    );
    site.g.review("bob", 1, &[("Code-Review", 2)], "").unwrap();
    let (mut check, mut gate) = (None, None);
    wait_for(
        "the check and gate jobs to run",
        Duration::from_secs(60),
        || {
            check = check.clone().or_else(|| running(&addr, "check"));
            gate = gate.clone().or_else(|| running(&addr, "gate"));
            check.is_some() && gate.is_some()
        },
    );
    let (check, gate) = (check.unwrap(), gate.unwrap());

    // A real browser watches the queue and the gate job's console, while this test reads the
    // check job's console as a plain event stream.
    let browser = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/browser.py"))
        .args([&format!("http://{addr}"), &gate, "slow"])
        .args(std::env::var("SEAKEEPER_SCREENSHOTS").ok())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/install-deps installs python3-selenium)");
    let mut sse = Sse::open(&addr, &format!("/api/builds/{check}/jobs/unit/live"), &[]);
    assert_eq!(sse.status, 200);
    let mut events = Vec::new();
    while let Some(e) = sse.next() {
        let end = e.event == "end";
        events.push(e);
        if end {
            break;
        }
    }
    let end = events.last().expect("events");
    assert_eq!(end.event, "end", "{events:?}");
    assert!(end.data.contains("\"state\":\"success\""), "{}", end.data);
    // The command, 32 lines, the executor's summary.
    let all: Vec<_> = events.iter().filter(|e| e.event == "line").collect();
    assert_eq!(all.len(), 34, "{events:?}");
    assert_eq!(all[0].data, "$ sh slow.sh 0.25");
    let lines = &all[1..33];
    // Live: the first line came long before the end (the job takes 8 s).
    let early = end.at.unwrap() - lines[0].at.unwrap();
    assert!(
        early > Duration::from_secs(2),
        "first line only {early:?} before the end"
    );
    assert!(
        lines[0].data.contains("<span class=\"fg2\">line 1</span>"),
        "{}",
        lines[0].data
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.data.contains("<script") && !l.data.contains("<img"))
    );
    assert!(
        lines[0]
            .data
            .contains("&lt;script&gt;window.pwned=1&lt;/script&gt;")
    );
    // A late viewer reconnecting after line 29 gets the rest, then the end.
    let mut late = Sse::open(
        &addr,
        &format!("/api/builds/{check}/jobs/unit/live"),
        &[("Last-Event-ID", "1:29")],
    );
    let rest: Vec<_> = std::iter::from_fn(|| late.next()).collect();
    if late.status == 200 {
        assert_eq!(
            rest.iter().filter(|e| e.event == "line").count(),
            4,
            "{rest:?}"
        );
        assert_eq!(rest.last().unwrap().event, "end");
    } else {
        // The build was recorded and left the daemon's hands in the meantime.
        assert_eq!(late.status, 404);
    }

    let out = browser.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "browser: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["queue"], "project:acme/api", "{seen}");
    assert!(seen["updates"].as_i64().unwrap() >= 2, "{seen}");
    assert!(seen["ended_while_counting"].is_null(), "{seen}");
    assert_eq!(seen["ended"], "success", "{seen}");
    assert_eq!(seen["lines"], 34, "{seen}");
    assert!(seen["pwned"].is_null(), "a log line ran script: {seen}");
    assert_eq!(seen["scripts_in_log"], 0, "{seen}");
    assert_eq!(seen["text_has_script"], true, "{seen}");
    assert!(seen["coloured"].as_i64().unwrap() >= 32, "{seen}");

    // The gate lands the change; both reports link the pages.
    wait_for("the change to land", Duration::from_secs(60), || {
        site.g.change(1).status == "MERGED"
    });
    wait_for("the check's report", Duration::from_secs(60), || {
        site.reviews(1)
            .iter()
            .any(|r| r.contains("seakeeper check: SUCCESS"))
    });
    let reviews = site.reviews(1);
    let report = reviews
        .iter()
        .find(|r| r.contains("seakeeper check:"))
        .unwrap();
    assert!(
        report.contains(&format!("Build: https://ci.example.org/builds/{check}")),
        "{report}"
    );
    assert!(
        report.contains(", log https://ci.example.org/logs/sha256:"),
        "{report}"
    );
    assert!(
        report.contains("Ledger commit: https://ci.example.org/ledger/"),
        "{report}"
    );
    let _ = CI_BOT;

    // The build page and its JSON twin.
    wait_for(
        "the check's result in the ledger",
        Duration::from_secs(30),
        || json(&addr, &format!("/api/builds/{check}"))["result"]["status"] == "success",
    );
    let b = json(&addr, &format!("/api/builds/{check}"));
    assert_eq!(b["request"]["project"], "acme/api");
    assert_eq!(b["jobs"][0]["name"], "unit");
    let log = b["jobs"][0]["log"].as_str().unwrap().to_owned();
    let page = get(&addr, &format!("/builds/{check}"));
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for want in [
        format!("/logs/{log}"),
        "/ledger/".into(),
        "/changes/1".into(),
        format!("/trace/{check}"),
    ] {
        assert!(page.body.contains(&want), "{want} not on the build page");
    }

    // The stored log: rendered with colours and escaped; raw as text/plain.
    let page = get(&addr, &format!("/logs/{log}"));
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<span class=\"fg2\">line 32</span>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>window") && page.body.contains("&lt;script&gt;"));
    let raw = get(&addr, &format!("/api/logs/{log}"));
    assert!(
        raw.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(raw.header("x-content-type-options"), Some("nosniff"));
    assert!(raw.body.contains("<script>window.pwned=1</script>"));

    // A ledger commit, its signature checked by the server against the trusted keys.
    let commit = b["ledger_commits"][0]["commit"]
        .as_str()
        .unwrap()
        .to_owned();
    let c = json(&addr, &format!("/api/ledger/{commit}"));
    assert_eq!(c["signature"]["allowed"], true, "{c}");
    assert!(
        c["signature"]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "ledger"),
        "{c}"
    );
    let signer = c["signature"]["signer"].as_str().unwrap();
    assert!(
        signer.len() == 40 && signer.bytes().all(|b| b.is_ascii_hexdigit()),
        "{c}"
    );
    assert_eq!(c["on_history"], true);
    assert!(
        c["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"].as_str().unwrap().ends_with("request.yaml"))
    );
    assert!(
        c["verify_command"]
            .as_str()
            .unwrap()
            .contains("verify-commit")
    );
    let page = get(&addr, &format!("/ledger/{commit}"));
    assert!(page.body.contains("good signature by"), "{}", page.body);

    // Trace and change.
    let t = json(&addr, &format!("/api/trace/{check}"));
    assert_eq!(t["build_id"], check.as_str());
    assert_eq!(get(&addr, &format!("/trace/{check}")).status, 200);
    let ch = json(&addr, "/api/changes/1");
    let ids: Vec<&str> = ch[0]["patchsets"][0]["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["build_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&check.as_str()) && ids.contains(&gate.as_str()),
        "{ch}"
    );
    assert!(get(&addr, "/changes/1").body.contains(&check[..12]));

    // Bad input: 404 pages, never a panic.
    for path in [
        "/builds/not-a-build",
        "/builds/b-0000000000000000",
        "/api/builds/..%2F..%2Fetc",
        "/logs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "/logs/../../etc/passwd",
        "/api/logs/md5:abc",
        "/ledger/zzz",
        "/ledger/0000000000000000000000000000000000000000",
        "/changes/999999",
        "/changes/-1",
        "/trace/nothing",
        "/builds/b/jobs/x/live",
        "/nowhere",
    ] {
        let r = get(&addr, path);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body.contains("Not found"), "{path}");
    }

    // The webhook: the token or nothing.
    let event = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/gerrit-samples/patchset-created.json"),
    )
    .unwrap_or_else(|_| br#"{"type":"ref-updated","refUpdate":{"oldRev":"0000000000000000000000000000000000000000","newRev":"1111111111111111111111111111111111111111","refName":"refs/heads/main","project":"acme/api"},"eventCreatedOn":1718000000}"#.to_vec());
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        request(&addr, "POST", "/webhook/gerrit", headers, body).status
    };
    assert_eq!(post(&[], &event), 401);
    assert_eq!(
        post(
            &[("Authorization", "Bearer wrong-token-0123456789")],
            &event
        ),
        401
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(post(&[("Authorization", &bearer)], b"{not json"), 400);
    assert_eq!(post(&[("Authorization", &bearer)], &event), 204);
    assert_eq!(
        request(
            &addr,
            "POST",
            &format!("/webhook/gerrit?token={TOKEN}"),
            &[],
            &event
        )
        .status,
        204
    );
    assert_eq!(
        request(&addr, "GET", "/webhook/gerrit", &[], b"").status,
        405
    );

    // /metrics: Prometheus' text format, as promtool reads it.
    let m = get(&addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().contains("version=0.0.4"));
    assert!(m.body.contains("seakeeper_builds_total"));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    std::io::Write::write_all(promtool.stdin.as_mut().unwrap(), m.body.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );

    let out = daemon.term();
    assert!(out.status.success(), "{}", stderr(&out));

    // `seakeeper web` alone serves the same ledger read-only: no live consoles, no webhook
    // without a loop, and signatures judged by the keys it trusts: with another server key
    // (and the config's keys/ naming none), the daemon's signatures are not allowed.
    let (other_key, _, _) = site.w.another_key("replica");
    let replica = site.w.path("replica.yaml");
    std::fs::write(
        &replica,
        format!(
            "state_dir: state\nsigning_key: {}\nconfig_repo: {}\nweb:\n  listen: 127.0.0.1:0\n  address_file: replica.addr\n",
            other_key.display(),
            site.config.display()
        ),
    )
    .unwrap();
    let mut web = seakeeper()
        .args(["web", "--settings"])
        .arg(&replica)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let raddr = address(&site.w.path("replica.addr"));
    // A replica is ready when it can read its ledger (it has no loop or executor to wait for).
    assert_eq!(get(&raddr, "/readyz").body, "ready\n");
    let started = Instant::now();
    let b = json(&raddr, &format!("/api/builds/{check}"));
    assert_eq!(b["result"]["status"], "success");
    let c = json(&raddr, &format!("/api/ledger/{commit}"));
    assert_eq!(c["signature"]["allowed"], false, "{c}");
    assert!(
        c["signature"]["verdict"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{c}"
    );
    assert!(
        get(&raddr, &format!("/ledger/{commit}"))
            .body
            .contains("class=\"alert\"")
    );
    assert_eq!(
        request(
            &raddr,
            "POST",
            "/webhook/gerrit",
            &[("Authorization", &bearer)],
            &event
        )
        .status,
        403,
        "the replica's settings name no secrets file, so no webhook token"
    );
    assert_eq!(
        get(&raddr, &format!("/api/builds/{check}/jobs/unit/live")).status,
        404
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = web.kill();
    let _ = web.wait();
}

#[test]
fn a_settings_file_with_a_bad_web_address_names_the_field() {
    let site = Site::new("", "web:\n  listen: not-an-address\n");
    let out = site.reconcile_cmd().output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("web.listen") && err.contains("settings.yaml"),
        "{err}"
    );
}

#[test]
fn a_live_console_streams_a_kubernetes_job_too() {
    // The Kubernetes API stand-in "runs" each command over STANDIN_DURATION_MS, writing its
    // log lines as it goes; the console follows the pod's log through the same client.
    let api = support::kube::KubeApi::start();
    let site = Site::new(
        "",
        "web:\n  listen: 127.0.0.1:0\n  address_file: web.addr\n",
    );
    let s = std::fs::read_to_string(site.config.join("seakeeper.yaml")).unwrap();
    site.write_config(
        "seakeeper.yaml",
        &s.replace(
            "executor:\n  kind: local",
            &format!(
                "executor:\n  kind: kubernetes\n  seakeeper_image: {}",
                support::SEAKEEPER_IMAGE
            ),
        ),
    );
    site.commit_config("Run jobs on Kubernetes");
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(
        w.join(".pipeline/config.yaml"),
        format!("jobs:\n  unit:\n    image: {IMAGE}\n    commands: [\"echo one\", \"echo two\", \"echo three\", \"echo four\"]\n    env: {{STANDIN_DURATION_MS: \"4000\"}}\n    timeout: 1m\npipelines:\n  check: [unit]\n"),
    )
    .unwrap();
    git(&w, &["add", "-A"]);
    git(&w, &["commit", "-q", "-m", "The pipeline"]);
    site.merge("acme/api");
    let kubeconfig = api.kubeconfig(site.w.dir.path());
    let daemon = Daemon(
        seakeeper()
            .args(["serve", "--full-every", "1", "--settings"])
            .arg(&site.settings)
            .arg("--init-ledger")
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = address(&site.w.path("web.addr"));
    site.upload(
        "acme/api",
        "I3000000000000000000000000000000000000001",
        &[("k.txt", "k\n")],
        false,
    );
    let mut check = None;
    wait_for(
        "the check job to run on Kubernetes",
        Duration::from_secs(60),
        || {
            check = running(&addr, "check");
            check.is_some()
        },
    );
    let check = check.unwrap();
    let mut sse = Sse::open(&addr, &format!("/api/builds/{check}/jobs/unit/live"), &[]);
    assert_eq!(sse.status, 200);
    let events: Vec<_> = std::iter::from_fn(|| sse.next()).collect();
    let end = events.last().expect("events");
    assert_eq!(end.event, "end", "{events:?}");
    assert!(end.data.contains("\"state\":\"success\""), "{}", end.data);
    let lines: Vec<_> = events.iter().filter(|e| e.event == "line").collect();
    assert!(
        lines.iter().any(|l| l.data.contains("echo four")),
        "{events:?}"
    );
    let early = end.at.unwrap() - lines[0].at.unwrap();
    assert!(
        early > Duration::from_secs(1),
        "first line only {early:?} before the end: {events:?}"
    );
    let out = daemon.term();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `/readyz` says why a daemon is not ready, one reason a line (what a probe logs).
#[test]
fn readyz_names_every_reason_a_daemon_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = seakeeper::web::Context::new(
        dir.path().join("no-ledger-here"),
        seakeeper::store::BlobStore::new(dir.path().join("store")),
        std::sync::Arc::new(seakeeper::daemon::Feed::new()),
        None,
        Vec::new(),
    );
    let server = seakeeper::web::start(ctx, "127.0.0.1:0").unwrap();
    let r = get(&server.addr().to_string(), "/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    for why in [
        "no reconcile pass has run yet",
        "no valid config is loaded",
        "no executor",
        "is not writable",
    ] {
        assert!(r.body.contains(why), "{why:?} missing: {}", r.body);
    }
}
