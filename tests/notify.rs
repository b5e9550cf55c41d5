//! Notifications against real servers on 127.0.0.1: ngIRCd, an aiosmtpd SMTP server with
//! STARTTLS and AUTH, and a Phabricator Conduit stand-in. The queue is stepped by hand
//! (`retry_now`) and every wait is a condition with a deadline.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use seakeeper::config::files::NotificationsFile;
use seakeeper::notify::{self, Event, EventKind, Notifier, NotifyOptions, Secrets};
use seakeeper::secrets::{ApiToken, Credentials};
use support::phabricator::Phabricator;
use support::wait_for;

const DEADLINE: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A process this test started, killed (by its own handle) when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real ngIRCd on `port`.
fn ngircd(dir: &Path, port: u16) -> Process {
    ngircd_with(dir, port, "")
}

/// A real ngIRCd on `port`, with more configuration (`[SSL]`).
fn ngircd_with(dir: &Path, port: u16, more: &str) -> Process {
    let conf = dir.join("ngircd.conf");
    std::fs::write(
        &conf,
        format!(
            "[Global]\nName = irc.seakeeper.test\nInfo = seakeeper tests\nListen = 127.0.0.1\n\
             Ports = {port}\nMotdPhrase = test\n[Limits]\nMaxConnectionsIP = 0\nMaxJoins = 0\n\
             [Options]\nPAM = no\nIdent = no\nDNS = no\n{more}"
        ),
    )
    .expect("the config is written");
    // ngIRCd drops root for `nobody`, who must be able to read its config.
    let _ = Command::new("chmod").arg("a+rx").arg(dir).status();
    let _ = Command::new("chmod").arg("a+r").arg(&conf).status();
    let child = Command::new("/usr/sbin/ngircd")
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ngircd runs (scripts/install-deps installs it)");
    let p = Process(child);
    wait_for("ngircd to listen", DEADLINE, || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    p
}

/// A person in the channel, reading what is said there.
struct Watcher {
    reader: BufReader<TcpStream>,
    out: TcpStream,
}

impl Watcher {
    fn join(port: u16, channel: &str) -> Watcher {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut w = Watcher {
            reader: BufReader::new(s.try_clone().unwrap()),
            out: s,
        };
        w.send("NICK watcher");
        w.send("USER watcher 0 * :watcher");
        w.until(|l| l.split(' ').nth(1) == Some("001"));
        w.send(&format!("JOIN {channel}"));
        w.until(|l| l.split(' ').nth(1) == Some("366"));
        w
    }

    fn send(&mut self, line: &str) {
        self.out
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write");
    }

    /// Reads lines until one satisfies `f` (answering PINGs), and returns it.
    fn until(&mut self, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            assert!(Instant::now() < deadline, "timed out reading IRC");
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("the IRC server closed the connection"),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue;
                }
                Err(e) => panic!("reading IRC: {e}"),
            }
            let line = line.trim_end().to_owned();
            if let Some(rest) = line.strip_prefix("PING ") {
                self.send(&format!("PONG {rest}"));
                continue;
            }
            if f(&line) {
                return line;
            }
        }
    }

    /// The next message said in the channel: (nick, text).
    fn said(&mut self) -> (String, String) {
        let line = self.until(|l| l.split(' ').nth(1) == Some("PRIVMSG"));
        let nick = line[1..].split('!').next().unwrap_or_default().to_owned();
        let text = line
            .split_once(" :")
            .map(|(_, t)| t.to_owned())
            .unwrap_or_default();
        (nick, text)
    }
}

fn routes(yaml: &str) -> NotificationsFile {
    yaml_serde::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn event(kind: EventKind, key: &str, summary: &str, tasks: &[u32]) -> Event {
    Event {
        kind,
        key: key.into(),
        project: Some("mediawiki/core".parse().unwrap()),
        environment: None,
        summary: summary.into(),
        details: vec!["unit: failure in 61 s".into()],
        links: vec![
            ("Build".into(), "https://ci.example.org/builds/b1".into()),
            (
                "Ledger".into(),
                format!("https://ci.example.org/ledger/{}", "a".repeat(40)),
            ),
        ],
        tasks: tasks.to_vec(),
    }
}

/// Options for tests: retries wait an hour unless the test steps them with `retry_now`.
fn options(state: &Path, secrets: Secrets) -> NotifyOptions {
    let mut o = NotifyOptions::new(state, secrets);
    o.first_retry = Duration::from_secs(3600);
    o.timeouts.io = Duration::from_secs(5);
    o.timeouts.total = Duration::from_secs(15);
    o
}

#[test]
fn a_down_irc_server_is_retried_without_blocking_then_told_once_even_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let port = free_port();
    let file = routes(&format!(
        "targets:\n  releng:\n    irc: {{server: 127.0.0.1, port: {port}, channel: \"#releng\", nick: seakeeper}}\n\
         routes:\n  - events: [post-merge-failed]\n    projects: [\"mediawiki/*\"]\n    targets: [releng]\n"
    ));
    let failed = event(
        EventKind::PostMergeFailed,
        "build-failed:b1",
        "post-merge build of mediawiki/core change 4711,3 failure: unit (failure)",
        &[],
    );
    let n = Notifier::start(options(&state, Secrets::default()));
    let started = Instant::now();
    n.submit(notify::deliveries(&file, std::slice::from_ref(&failed)));
    assert!(started.elapsed() < Duration::from_secs(1), "submit waited");
    // Nobody listens yet: the attempt fails, the delivery stays pending.
    wait_for("a failed attempt", DEADLINE, || n.stats().irc.retried >= 1);
    let s = n.stats().irc;
    assert_eq!((s.pending, s.sent, s.failed), (1, 0, 0), "{s:?}");
    let status = n.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].target, "releng");
    assert!(
        status[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("Connection refused") && e.ends_with("[connect]")),
        "{status:?}"
    );
    // The server comes up; someone is in the channel; the queue is stepped.
    let irc_dir = dir.path().join("irc");
    std::fs::create_dir(&irc_dir).unwrap();
    let _server = ngircd(&irc_dir, port);
    let mut watcher = Watcher::join(port, "#releng");
    n.retry_now();
    assert_eq!(
        watcher.said(),
        (
            "seakeeper".into(),
            "post-merge build of mediawiki/core change 4711,3 failure: unit (failure) - \
             https://ci.example.org/builds/b1"
                .into()
        )
    );
    wait_for("the delivery to count", DEADLINE, || {
        n.stats().irc.sent == 1
    });
    assert_eq!(n.stats().irc.pending, 0);
    assert_eq!(n.status()[0].last_error, None);
    drop(n);

    // A restarted notifier learns the same event again: it is not told twice.
    let n = Notifier::start(options(&state, Secrets::default()));
    n.submit(notify::deliveries(&file, std::slice::from_ref(&failed)));
    let s = n.stats().irc;
    assert_eq!((s.deduplicated, s.pending, s.sent), (1, 0, 0), "{s:?}");
    // The next thing said in the channel is the next event, not the first one again.
    let next = event(
        EventKind::PostMergeFailed,
        "build-failed:b2",
        "second failure",
        &[],
    );
    n.submit(notify::deliveries(&file, &[next]));
    assert_eq!(
        watcher.said().1,
        "second failure - https://ci.example.org/builds/b1"
    );
    wait_for("the second delivery", DEADLINE, || n.stats().irc.sent == 1);
}

#[test]
fn a_hanging_server_holds_neither_submit_nor_stats() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel's backlog) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let file = routes(&format!(
        "targets:\n  t:\n    irc: {{server: 127.0.0.1, port: {port}, channel: \"#c\", nick: bot}}\n\
         routes:\n  - events: [freeze-started]\n    targets: [t]\n"
    ));
    let mut o = options(dir.path(), Secrets::default());
    o.timeouts.io = Duration::from_millis(300);
    o.timeouts.total = Duration::from_secs(2);
    let n = Notifier::start(o);
    let e = event(
        EventKind::FreezeStarted,
        "freeze-started:x:c",
        "freeze x started",
        &[],
    );
    n.submit(notify::deliveries(&file, &[e]));
    let started = Instant::now();
    for _ in 0..10 {
        assert_eq!(n.stats().irc.pending, 1);
        n.submit(Vec::new());
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the caller waited"
    );
    // The attempt ends at its deadline, and is tried again later.
    wait_for("the read deadline", DEADLINE, || n.stats().irc.retried == 1);
    let err = n.status()[0].last_error.clone().unwrap_or_default();
    assert!(err.ends_with("[io]"), "{err}");
    drop(silent);
}

fn openssl_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    support::ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=127.0.0.1"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (cert, key)
}

/// aiosmtpd with STARTTLS and AUTH required, writing messages into `maildir`.
fn smtp_server(dir: &Path, port: u16, cert: &Path, key: &Path, maildir: &Path) -> Process {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_server.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(port.to_string())
        .arg(cert)
        .arg(key)
        .args(["ci@example.org", "s3cret"])
        .arg(maildir)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with aiosmtpd (scripts/install-deps installs it)");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let p = Process(child);
    assert_eq!(ready.trim(), "ready");
    p
}

fn mails(maildir: &Path) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(maildir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn email_goes_through_starttls_and_auth_with_the_links() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(dir.path());
    let maildir = dir.path().join("mail");
    std::fs::create_dir(&maildir).unwrap();
    let port = free_port();
    let _server = smtp_server(dir.path(), port, &cert, &key, &maildir);
    let pem = std::fs::read_to_string(&cert).unwrap();
    let indented: String = pem.lines().map(|l| format!("        {l}\n")).collect();
    let file = routes(&format!(
        "targets:\n  ops:\n    email:\n      server: 127.0.0.1\n      port: {port}\n      \
         from: ci@example.org\n      to: [ops@example.org, releng@example.org]\n      \
         ca_cert: |\n{indented}\
         routes:\n  - events: [post-merge-failed]\n    targets: [ops]\n"
    ));
    let secrets = |password: &str| Secrets {
        smtp: Some(Credentials::new("ci@example.org", password)),
        ..Secrets::default()
    };

    // A wrong password is refused; the delivery waits.
    let wrong = Notifier::start(options(&dir.path().join("s1"), secrets("wrong")));
    let e = event(
        EventKind::PostMergeFailed,
        "build-failed:b1",
        "post-merge build failed",
        &[],
    );
    wrong.submit(notify::deliveries(&file, std::slice::from_ref(&e)));
    wait_for("the refusal", DEADLINE, || wrong.stats().email.retried == 1);
    let err = wrong.status()[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("AUTH PLAIN: 535"), "{err}");
    assert!(!err.contains("wrong"), "the password is never shown: {err}");
    assert!(mails(&maildir).is_empty());

    let n = Notifier::start(options(&dir.path().join("s2"), secrets("s3cret")));
    n.submit(notify::deliveries(&file, std::slice::from_ref(&e)));
    wait_for("the email", DEADLINE, || n.stats().email.sent == 1);
    let got = mails(&maildir);
    assert_eq!(got.len(), 1);
    let m = got[0].replace("\r\n", "\n");
    for want in [
        "X-Envelope-From: ci@example.org\n",
        "X-Envelope-To: ops@example.org, releng@example.org\n",
        "X-Authenticated-As: ci@example.org\n",
        "Subject: [seakeeper] post-merge build failed\n",
        "To: ops@example.org, releng@example.org\n",
        "\n\npost-merge build failed\n\nunit: failure in 61 s\n\n\
         Build: https://ci.example.org/builds/b1\nLedger: https://ci.example.org/ledger/",
    ] {
        assert!(m.contains(want), "{want:?} in:\n{m}");
    }
    // Without the CA, the server's certificate is not trusted.
    let untrusted = routes(&format!(
        "targets:\n  ops:\n    email: {{server: 127.0.0.1, port: {port}, from: ci@example.org, to: [ops@example.org]}}\n\
         routes:\n  - events: [post-merge-failed]\n    targets: [ops]\n"
    ));
    let n = Notifier::start(options(&dir.path().join("s3"), secrets("s3cret")));
    n.submit(notify::deliveries(&untrusted, std::slice::from_ref(&e)));
    wait_for("the TLS failure", DEADLINE, || n.stats().email.retried == 1);
    let err = n.status()[0].last_error.clone().unwrap_or_default();
    assert!(err.ends_with("[tls]"), "{err}");
}

#[test]
fn phabricator_tasks_get_a_comment_each_and_a_wrong_token_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let phab = Phabricator::start("api-goodtoken", &[100, 4242]);
    let file = routes(&format!(
        "targets:\n  phab:\n    phabricator: {{url: \"{}\"}}\n\
         routes:\n  - events: [post-merge-failed, freeze-started]\n    targets: [phab]\n",
        phab.url()
    ));
    let token = |t: &str| Secrets {
        phabricator: Some(ApiToken::new(t)),
        ..Secrets::default()
    };
    let failed = event(
        EventKind::PostMergeFailed,
        "build-failed:b1",
        "post-merge build failed",
        &[100],
    );
    let wrong = Notifier::start(options(&dir.path().join("s1"), token("api-badtoken")));
    wrong.submit(notify::deliveries(&file, std::slice::from_ref(&failed)));
    wait_for("the refusal", DEADLINE, || {
        wrong.stats().phabricator.retried == 1
    });
    let err = wrong.status()[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("ERR-INVALID-AUTH"), "{err}");
    assert!(!err.contains("badtoken"), "the token is never shown: {err}");
    assert!(phab.comments().is_empty());

    let n = Notifier::start(options(&dir.path().join("s2"), token("api-goodtoken")));
    let freeze = event(
        EventKind::FreezeStarted,
        "freeze-started:holidays:c",
        "freeze holidays started",
        &[4242],
    );
    let no_task = event(
        EventKind::FreezeStarted,
        "freeze-started:other:c",
        "no ticket",
        &[],
    );
    n.submit(notify::deliveries(&file, &[failed, freeze, no_task]));
    wait_for("two comments", DEADLINE, || n.stats().phabricator.sent == 2);
    let comments = phab.comments();
    assert_eq!(
        comments.iter().map(|c| c.0).collect::<Vec<_>>(),
        [100, 4242]
    );
    assert!(
        comments[0]
            .1
            .starts_with("post-merge build failed\n\nunit: failure in 61 s\n\nBuild: "),
        "{comments:?}"
    );
    // An unknown task is Conduit's error too.
    let unknown = event(EventKind::PostMergeFailed, "build-failed:b9", "x", &[999]);
    n.submit(notify::deliveries(&file, &[unknown]));
    wait_for("the refusal", DEADLINE, || {
        n.stats().phabricator.retried == 1
    });
    let err = n.status()[0].last_error.clone().unwrap_or_default();
    assert!(err.contains("ERR-CONDUIT-CORE"), "{err}");
}

#[test]
fn a_malformed_notifications_file_names_file_line_and_field() {
    let settings =
        "public_url: https://ci.example.org\nregistries:\n  t: { url: \"oci:/tmp/t\" }\n";
    let load = |notifications: &str| {
        let files: std::collections::BTreeMap<String, Vec<u8>> = [
            ("seakeeper.yaml", settings),
            (
                "environments.yaml",
                "environments:\n  - {name: production, registry: t}\n",
            ),
            ("projects/mediawiki/core.yaml", "pipelines: [check]\n"),
            ("notifications.yaml", notifications),
        ]
        .into_iter()
        .map(|(p, t)| (p.to_owned(), t.as_bytes().to_vec()))
        .collect();
        match seakeeper::config::load(&files) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    };
    let ok = "targets:\n  irc:\n    irc: {server: irc.example.org, channel: \"#ci\", nick: bot}\n\
              routes:\n  - events: [promoted]\n    projects: [\"mediawiki/*\"]\n    environments: [production]\n    targets: [irc]\n";
    assert_eq!(load(ok), Vec::<String>::new());
    #[rustfmt::skip]
    let cases = [
        (ok.replace("events: [promoted]", "events: [promotd]"), "notifications.yaml:5:"),
        (ok.replace("targets: [irc]", "targets: [ircc]"), "notifications.yaml:8:15: routes[0].targets[0]: unknown target `ircc`"),
        (ok.replace("mediawiki/*", "operations/*"), "notifications.yaml:6:17: routes[0].projects[0]: `operations/*` matches no project"),
        (ok.replace("[production]", "[prod]"), "notifications.yaml:7:20: routes[0].environments[0]: unknown environment `prod`"),
        (ok.replace("nick: bot", "nick: 1bot"), "routes"),
        (ok.replace("channel: \"#ci\"", "channel: ci"), "notifications.yaml:3:36: targets.irc.irc.channel"),
        (ok.replace("    irc: {", "    irk: {"), "notifications.yaml:3:5"),
    ];
    for (text, want) in &cases[..4] {
        let got = load(text);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{want} in {got:#?}"
        );
    }
    let got = load(&cases[4].0);
    assert!(
        got.iter().any(|e| e.contains("targets.irc.irc.nick")),
        "{got:#?}"
    );
    for (text, want) in &cases[5..] {
        let got = load(text);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "{want} in {got:#?}"
        );
    }
}

/// The whole way: `reconcile --once` records a freeze that holds a promotion, and its
/// notifications reach the IRC channel and the freeze's Phabricator ticket (given their
/// attempt before the process exits); a second pass tells nothing again; the freeze's end and
/// the promotion it let through are told too.
#[test]
fn a_freeze_and_the_promotion_it_holds_are_told_by_the_daemon_on_irc_and_on_the_ticket() {
    use support::site::{envelope, image_in_testing, record_build};
    let site = support::site::Site::new("", "");
    site.reconcile();
    let digest = image_in_testing(&site);
    record_build(&site, &digest, envelope(&site.w.key, &digest));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _irc = ngircd(dir.path(), port);
    let mut watcher = Watcher::join(port, "#releng");
    let phab = Phabricator::start("api-goodtoken", &[42]);
    let secrets = site.w.path("secrets.yaml");
    let mut text = std::fs::read_to_string(&secrets).unwrap();
    text.push_str("phabricator:\n  token: api-goodtoken\n");
    std::fs::write(&secrets, text).unwrap();
    site.write_config(
        "notifications.yaml",
        &format!(
            "targets:\n  releng:\n    irc: {{server: 127.0.0.1, port: {port}, channel: \"#releng\", nick: seakeeper}}\n\
             \x20 phab:\n    phabricator: {{url: \"{}\"}}\n\
             routes:\n  - events: [freeze-started, freeze-ended, promotion-held, promoted]\n    \
             projects: [\"acme/*\"]\n    targets: [releng, phab]\n",
            phab.url()
        ),
    );
    site.write_config(
        "freezes/eoy.yaml",
        "scope: [\"promote:staging\"]\nreason: End of year.\nticket: T42\n",
    );
    site.write_config(
        "promotions/staging.yaml",
        &format!("images:\n  api: {digest}\n"),
    );
    let freeze = site.commit_config("Freeze staging, and ask for api there");
    let out = site.reconcile();
    assert!(out.contains("eoy is ACTIVE"), "{out}");
    let mut said = vec![watcher.said(), watcher.said()];
    said.sort();
    let trace = format!("https://ci.example.org/trace/{digest}");
    assert_eq!(
        said,
        [
            (
                "seakeeper".to_owned(),
                format!(
                    "freeze eoy started [promote:staging]: End of year. (by Alice Example \
                     <alice@example.org>, config {})",
                    &freeze[..12]
                )
            ),
            (
                "seakeeper".to_owned(),
                format!(
                    "promotion of api@{digest} to staging held by freeze eoy: staging is frozen \
                     by eoy (T42): End of year. - {trace}"
                )
            ),
        ]
    );
    wait_for("the comment on T42", DEADLINE, || {
        phab.comments().len() == 1
    });
    assert!(
        phab.comments()[0].1.contains("Ticket: T42"),
        "{:?}",
        phab.comments()
    );

    // The same pass again: nothing new, nothing told.
    site.reconcile();
    std::fs::remove_file(site.config.join("freezes/eoy.yaml")).unwrap();
    let lift = site.commit_config("Lift the freeze");
    let out = site.reconcile();
    assert!(out.contains("eoy was lifted"), "{out}");
    let mut said = vec![watcher.said().1, watcher.said().1];
    said.sort();
    assert!(
        said[0].starts_with(&format!("api@{digest} promoted to staging (config ")),
        "{said:?}"
    );
    assert!(said[0].ends_with(&trace), "{said:?}");
    assert!(
        said[1].starts_with("freeze eoy ended [promote:staging]") && said[1].contains(&lift[..12]),
        "{said:?}"
    );
}

#[test]
fn irc_over_tls_trusts_the_configured_ca_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(dir.path());
    // ngIRCd reads them as `nobody`.
    let _ = Command::new("chmod")
        .arg("a+r")
        .arg(&cert)
        .arg(&key)
        .status();
    let (port, tls_port) = (free_port(), free_port());
    let _server = ngircd_with(
        dir.path(),
        port,
        &format!(
            "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {tls_port}\n",
            cert.display(),
            key.display()
        ),
    );
    wait_for("the TLS port", DEADLINE, || {
        TcpStream::connect(("127.0.0.1", tls_port)).is_ok()
    });
    let mut watcher = Watcher::join(port, "#releng");
    let pem = std::fs::read_to_string(&cert).unwrap();
    let indented: String = pem.lines().map(|l| format!("        {l}\n")).collect();
    let target = |ca: &str| {
        routes(&format!(
            "targets:\n  releng:\n    irc:\n      server: 127.0.0.1\n      port: {tls_port}\n      \
             channel: \"#releng\"\n      nick: seakeeper\n      tls: true\n{ca}\
             routes:\n  - events: [config-invalid]\n    targets: [releng]\n"
        ))
    };
    let e = event(
        EventKind::ConfigInvalid,
        "config-invalid:c",
        "config HEAD c is invalid",
        &[],
    );
    let untrusted = Notifier::start(options(&dir.path().join("s1"), Secrets::default()));
    untrusted.submit(notify::deliveries(&target(""), std::slice::from_ref(&e)));
    wait_for("the TLS failure", DEADLINE, || {
        untrusted.stats().irc.retried == 1
    });
    let err = untrusted.status()[0].last_error.clone().unwrap_or_default();
    assert!(err.ends_with("[tls]"), "{err}");

    let trusted = target(&format!("      ca_cert: |\n{indented}"));
    let n = Notifier::start(options(&dir.path().join("s2"), Secrets::default()));
    n.submit(notify::deliveries(&trusted, &[e]));
    assert_eq!(
        watcher.said(),
        (
            "seakeeper".into(),
            "config HEAD c is invalid - https://ci.example.org/builds/b1".into()
        )
    );
    wait_for("the delivery to count", DEADLINE, || {
        n.stats().irc.sent == 1
    });
}

/// A post-merge build that fails is told on IRC with its build link, and commented on the
/// tasks its commit's `Bug:` footers name (the commit read from the daemon's mirror).
#[test]
fn a_failed_post_merge_build_is_told_with_its_links_and_on_its_bug_footers_tasks() {
    let site = support::site::Site::new("", "");
    site.reconcile();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _irc = ngircd(dir.path(), port);
    let mut watcher = Watcher::join(port, "#releng");
    let phab = Phabricator::start("api-goodtoken", &[100, 200]);
    let secrets = site.w.path("secrets.yaml");
    let mut text = std::fs::read_to_string(&secrets).unwrap();
    text.push_str("phabricator:\n  token: api-goodtoken\n");
    std::fs::write(&secrets, text).unwrap();
    site.write_config(
        "notifications.yaml",
        &format!(
            "targets:\n  releng:\n    irc: {{server: 127.0.0.1, port: {port}, channel: \"#releng\", nick: seakeeper}}\n\
             \x20 phab:\n    phabricator: {{url: \"{}\"}}\n\
             routes:\n  - events: [post-merge-failed]\n    projects: [\"acme/*\"]\n    targets: [releng, phab]\n",
            phab.url()
        ),
    );
    site.commit_config("Tell RelEng about broken post-merge builds");
    // The post-merge job copies msg.txt, which this commit lacks.
    let w = site.clone("acme/api");
    std::fs::create_dir_all(w.join(".pipeline")).unwrap();
    std::fs::write(
        w.join(".pipeline/config.yaml"),
        support::site::pipeline("true"),
    )
    .unwrap();
    support::git(&w, &["add", "-A"]);
    support::git(
        &w,
        &[
            "commit",
            "-q",
            "-m",
            "Add the pipeline\n\nIt forgets msg.txt.\n\nBug: T100\nBug: T200\n",
        ],
    );
    site.merge("acme/api");
    let out = support::output(&mut site.reconcile_cmd());
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = support::site::build_ids(&out)
        .into_iter()
        .find(|i| i.starts_with("post-merge"))
        .unwrap_or_else(|| panic!("no post-merge build: {out}"));
    let (nick, line) = watcher.said();
    assert_eq!(nick, "seakeeper");
    assert!(
        line.starts_with("post-merge build of acme/api refs/heads/main at ")
            && line.ends_with(&format!(
                ": build (failure) - https://ci.example.org/builds/{id}"
            )),
        "{line}"
    );
    wait_for("two comments", DEADLINE, || phab.comments().len() == 2);
    let comments = phab.comments();
    assert_eq!(comments.iter().map(|c| c.0).collect::<Vec<_>>(), [100, 200]);
    for (_, text) in &comments {
        assert!(
            text.contains(&format!("Build: https://ci.example.org/builds/{id}\n"))
                && text.contains("Ledger: https://ci.example.org/ledger/")
                && text.contains("Log: https://ci.example.org/logs/sha256:"),
            "{text}"
        );
    }
}

/// An invalid config HEAD is told (by the last good config's routes), once.
#[test]
fn an_invalid_config_head_is_told_once() {
    let site = support::site::Site::new("", "");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _irc = ngircd(dir.path(), port);
    let mut watcher = Watcher::join(port, "#releng");
    site.write_config(
        "notifications.yaml",
        &format!(
            "targets:\n  releng:\n    irc: {{server: 127.0.0.1, port: {port}, channel: \"#releng\", nick: seakeeper}}\n\
             routes:\n  - events: [config-invalid, freeze-started]\n    targets: [releng]\n"
        ),
    );
    let good = site.commit_config("Tell RelEng");
    site.reconcile();
    site.write_config(
        "environments.yaml",
        "environments:\n  - {name: testing, registry: nowhere}\n",
    );
    let bad = site.commit_config("Break the config");
    let out = support::output(&mut site.reconcile_cmd());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is invalid"),
        "{}",
        support::stdout(&out)
    );
    let (_, line) = watcher.said();
    assert_eq!(
        line,
        format!(
            "config HEAD {} is invalid (1 error); still running config {}: environments.yaml:2:21: \
             environments[0].registry: unknown registry `nowhere`: seakeeper.yaml declares \
             `staging`, `testing`",
            &bad[..12],
            &good[..12]
        )
    );
    // A restart reads the same HEAD: not told again (the next line is the next event).
    support::output(&mut site.reconcile_cmd());
    site.write_config("freezes/now.yaml", "scope: [all]\nreason: Broken config.\n");
    site.commit_config("Freeze while the config is broken");
    support::output(&mut site.reconcile_cmd());
    let (_, line) = watcher.said();
    assert!(
        line.starts_with("config HEAD ") && !line.contains(&bad[..12]),
        "{line}"
    );
}
