//! Issue 18: the local executor runs a job in its own image. Images are built here from files
//! (seakeeper's deterministic assembly, and hand-made layers for the hostile cases), pushed to a
//! real `docker-registry`, then pulled, unpacked and run by `seakeeper job run` under bubblewrap.

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use seakeeper::model::Digest;
use seakeeper::registry::copy::{Location, copy};
use seakeeper::registry::distribution::Registry;
use seakeeper::registry::{ImageSpec, OciLayout, assemble};
use support::registry::DockerRegistry;

fn tools_available() -> bool {
    let found = std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok()
        && Path::new("/bin/busybox").is_file();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "bubblewrap and busybox-static must be installed in CI (scripts/install-deps)"
    );
    found
}

/// A project whose pipeline has one job per (name, image, commands).
fn project(dir: &Path, jobs: &[(&str, &str, &[&str])]) -> PathBuf {
    project_with(dir, jobs, "")
}

/// [`project`], with `extra` YAML added to every job.
fn project_with(dir: &Path, jobs: &[(&str, &str, &[&str])], extra: &str) -> PathBuf {
    let repo = dir.join("widgets");
    std::fs::create_dir_all(repo.join(".pipeline")).unwrap();
    support::git(&repo, &["init", "-q", "-b", "main"]);
    let mut yaml = String::from("jobs:\n");
    for (name, image, commands) in jobs {
        yaml += &format!("  {name}:\n    image: {image}\n    timeout: 60s\n{extra}    commands:\n");
        for c in *commands {
            yaml += &format!("      - {}\n", serde_json::to_string(c).unwrap());
        }
    }
    let names: Vec<&str> = jobs.iter().map(|j| j.0).collect();
    yaml += &format!("pipelines:\n  check: [{}]\n", names.join(", "));
    std::fs::write(repo.join(".pipeline/config.yaml"), yaml).unwrap();
    std::fs::write(repo.join("a.txt"), "from the commit\n").unwrap();
    support::git(&repo, &["add", "."]);
    support::git_with(
        &repo,
        &["commit", "-q", "-m", "Initial"],
        &[
            ("GIT_AUTHOR_NAME", "Dev"),
            ("GIT_AUTHOR_EMAIL", "dev@example.org"),
            ("GIT_COMMITTER_NAME", "Dev"),
            ("GIT_COMMITTER_EMAIL", "dev@example.org"),
        ],
    );
    repo
}

fn job_run(repo: &Path, state: &Path, job: &str) -> std::process::Output {
    support::output(
        support::seakeeper()
            .args(["job", "run", job, "--repo"])
            .arg(repo)
            .arg("--state")
            .arg(state),
    )
}

/// Pushes the image `digest` of `layout` to `registry` as `repo`; returns its pinned name.
fn push(layout: &OciLayout, registry: &DockerRegistry, repo: &str, digest: &Digest) -> String {
    let dst = Location::Registry(
        Arc::new(Registry::new(&format!("http://{}", registry.host), None).unwrap()),
        repo.to_owned(),
    );
    copy(&Location::Layout(layout.clone()), &dst, digest, None, 2).unwrap();
    format!("{}/{repo}@{digest}", registry.host)
}

/// A base image made by seakeeper's assembly: a static busybox as `/bin/sh`, a marker file,
/// an environment variable, a user named in its /etc/passwd.
fn base_image(dir: &Path, layout: &OciLayout) -> Digest {
    let files = dir.join("base-files");
    std::fs::create_dir_all(files.join("etc")).unwrap();
    std::fs::write(files.join("etc/marker"), "inside the image\n").unwrap();
    std::fs::write(
        files.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1234:1234::/home/builder:/bin/sh\n",
    )
    .unwrap();
    assemble(
        layout,
        &ImageSpec {
            files: BTreeMap::from([
                ("bin/sh".to_owned(), PathBuf::from("/bin/busybox")),
                ("etc/marker".to_owned(), files.join("etc/marker")),
                ("etc/passwd".to_owned(), files.join("etc/passwd")),
            ]),
            env: BTreeMap::from([
                ("FOO".to_owned(), "from-the-image".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ]),
            ..ImageSpec::default()
        },
    )
    .unwrap()
    .digest
}

type Entry<'a> = (&'a str, tar::EntryType, u32, &'a [u8]);

/// A tar layer with raw paths (`..` included, as a hostile layer has them).
fn tar_layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_size(0);
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An image by hand: `layers` are (media type, blob) on top of `base`'s layers.
fn image_of(layout: &OciLayout, base: &Digest, layers: &[(&str, Vec<u8>)]) -> Digest {
    image_with(layout, base, layers, |_| {})
}

/// [`image_of`], with its config changed by `patch`.
fn image_with(
    layout: &OciLayout,
    base: &Digest,
    layers: &[(&str, Vec<u8>)],
    patch: impl FnOnce(&mut serde_json::Value),
) -> Digest {
    let base_manifest: serde_json::Value =
        serde_json::from_slice(&layout.read_blob(base).unwrap()).unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(
        &layout
            .read_blob(
                &base_manifest["config"]["digest"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap(),
            )
            .unwrap(),
    )
    .unwrap();
    let mut descs = base_manifest["layers"].as_array().unwrap().clone();
    for (media, blob) in layers {
        let d = layout.put_blob(blob).unwrap();
        descs.push(
            serde_json::json!({"mediaType": media, "digest": d.to_string(), "size": blob.len()}),
        );
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(Digest::of(blob).to_string()));
    }
    patch(&mut config);
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = layout.put_blob(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    layout.put_blob(&manifest).unwrap()
}

#[test]
fn issue_18_a_job_runs_in_its_image_not_with_the_hosts_tools() {
    if !tools_available() {
        return;
    }
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open_or_init(&dir.path().join("build")).unwrap();
    let base = base_image(dir.path(), &layout);
    let image = push(&layout, &registry, "ci/base", &base);
    let repo = project(
        dir.path(),
        &[
            (
                "inside",
                &image,
                &[
                    "cat /etc/marker",
                    "echo \"FOO=$FOO HOME=$HOME\"",
                    "echo \"uid=$(id -u) pwd=$(pwd)\"",
                    "cat a.txt",
                    "if [ -e /usr/bin/git ]; then echo HOST-TOOLS-\"VISIBLE\"; fi",
                    "echo scratch > /tmp/x && cat /tmp/x",
                    "if touch /etc/written 2>/dev/null; then echo ROOT-\"WRITABLE\"; fi",
                ],
            ),
            ("again", &image, &["cat /etc/marker"]),
        ],
    );
    let state = dir.path().join("state");
    let out = job_run(&repo, &state, "inside");
    let log = support::stdout(&out);
    assert!(out.status.success(), "{log}\n{}", support::stderr(&out));
    for want in [
        "inside the image",
        "FOO=from-the-image HOME=/workspace",
        "uid=65532 pwd=/workspace",
        "from the commit",
        "scratch",
    ] {
        assert!(log.contains(want), "{want:?} missing from:\n{log}");
    }
    assert!(
        !log.contains("HOST-TOOLS-VISIBLE") && !log.contains("ROOT-WRITABLE"),
        "{log}"
    );
    // The same digest is pulled and unpacked once, shared by every job that names it.
    let out = job_run(&repo, &state, "again");
    assert!(out.status.success(), "{}", support::stderr(&out));
    let roots: Vec<_> = std::fs::read_dir(state.join("roots"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:?}");
    assert!(roots[0].path().join("rootfs/etc/marker").is_file());
}

#[test]
fn issue_18_zstd_layers_whiteouts_and_opaque_directories_apply_in_order() {
    if !tools_available() {
        return;
    }
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open_or_init(&dir.path().join("build")).unwrap();
    let base = base_image(dir.path(), &layout);
    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};
    let lower = tar_layer(&[
        ("opt/", D, 0o755, b""),
        ("opt/old", F, 0o644, b"old\n"),
        ("srv/", D, 0o555, b""),
        ("srv/data", F, 0o644, b"data\n"),
    ]);
    let upper = tar_layer(&[
        ("etc/.wh.marker", F, 0o644, b""),
        ("opt/.wh..wh..opq", F, 0o644, b""),
        ("opt/new", F, 0o755, b"#!/bin/sh\necho new tool\n"),
        ("srv/again", H, 0o644, b"srv/data"),
        ("lnk", S, 0o777, b"/srv/data"),
    ]);
    let zstd_layer = zstd::encode_all(&upper[..], 3).unwrap();
    let digest = image_of(
        &layout,
        &base,
        &[
            ("application/vnd.oci.image.layer.v1.tar+gzip", gzip(&lower)),
            ("application/vnd.oci.image.layer.v1.tar+zstd", zstd_layer),
        ],
    );
    let image = push(&layout, &registry, "ci/layered", &digest);
    let repo = project(
        dir.path(),
        &[(
            "layered",
            &image,
            &[
                "if [ -e /etc/marker ]; then echo MARKER-NOT-WHITED-\"OUT\"; fi",
                "if [ -e /opt/old ]; then echo OPAQUE-\"IGNORED\"; fi",
                "/opt/new",
                "cat /srv/again /lnk",
            ],
        )],
    );
    let out = job_run(&repo, &dir.path().join("state"), "layered");
    let log = support::stdout(&out);
    assert!(out.status.success(), "{log}\n{}", support::stderr(&out));
    assert!(
        log.contains("new tool") && log.matches("data").count() >= 2,
        "{log}"
    );
    assert!(
        !log.contains("NOT-WHITED-OUT") && !log.contains("OPAQUE-IGNORED"),
        "{log}"
    );
}

#[test]
fn issue_18_a_layer_escaping_the_root_or_holding_a_device_or_setuid_file_is_refused() {
    if !tools_available() {
        return;
    }
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open_or_init(&dir.path().join("build")).unwrap();
    let base = base_image(dir.path(), &layout);
    let cases: [(&str, Entry<'_>, &str); 4] = [
        (
            "escape",
            (
                "../../../../tmp/escaped-by-layer",
                tar::EntryType::Regular,
                0o644,
                b"x",
            ),
            "`..`",
        ),
        (
            "device",
            ("dev/sda", tar::EntryType::Block, 0o600, b""),
            "device nodes",
        ),
        (
            "setuid",
            ("bin/su", tar::EntryType::Regular, 0o4755, b"x"),
            "setuid",
        ),
        (
            "hardlink",
            (
                "bin/pw",
                tar::EntryType::Link,
                0o644,
                b"../../../etc/shadow",
            ),
            "`..`",
        ),
    ];
    let mut jobs = Vec::new();
    for (name, entry, _) in &cases {
        let d = image_of(
            &layout,
            &base,
            &[(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&tar_layer(&[*entry])),
            )],
        );
        jobs.push((*name, push(&layout, &registry, &format!("bad/{name}"), &d)));
    }
    let job_list: Vec<(&str, &str, &[&str])> = jobs
        .iter()
        .map(|(n, i)| (*n, i.as_str(), &["echo RAN"][..]))
        .collect();
    let repo = project(dir.path(), &job_list);
    let state = dir.path().join("state");
    for (name, _, why) in &cases {
        let out = job_run(&repo, &state, name);
        let (log, err) = (support::stdout(&out), support::stderr(&out));
        assert!(!out.status.success(), "{name}: {log}");
        assert!(!log.contains("RAN"), "{name}: {log}");
        assert!(
            err.contains("refused") && err.contains(why),
            "{name}: {err}"
        );
    }
    assert!(!Path::new("/tmp/escaped-by-layer").exists());
    // Nothing half-unpacked is published.
    let published = std::fs::read_dir(state.join("roots"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("image.json").exists())
        .count();
    assert_eq!(published, 0);
}

#[test]
fn issue_18_host_tools_is_asked_for_and_warned_about() {
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = project(
        dir.path(),
        &[(
            "host",
            "registry.invalid/none@sha256:1111111111111111111111111111111111111111111111111111111111111111",
            &["test -x /usr/bin/git && echo HOST-GIT"],
        )],
    );
    let state = dir.path().join("state");
    // Without --host-tools the image is pulled, and a registry that cannot be reached fails it.
    let out = job_run(&repo, &state, "host");
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("registry.invalid"),
        "{}",
        support::stderr(&out)
    );
    let out = support::output(
        support::seakeeper()
            .args(["job", "run", "host", "--host-tools", "--repo"])
            .arg(&repo)
            .arg("--state")
            .arg(&state),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(support::stdout(&out).contains("HOST-GIT"));
    assert!(support::stderr(&out).contains("warning: --host-tools"));
}

/// The pids of processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn issue_18_a_service_from_its_image_is_reached_on_loopback_and_by_name_then_stopped() {
    if !tools_available() {
        return;
    }
    // SAFETY: geteuid only reads this process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        // Joining the job's network namespace needs root (CI runs as root).
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        return;
    }
    let Some(registry) = DockerRegistry::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let layout = OciLayout::open_or_init(&dir.path().join("build")).unwrap();
    let base = base_image(dir.path(), &layout);
    let port = 18_000 + (std::process::id() % 1000) as u16;
    let serve = format!(
        "mkdir -p /tmp/www && echo hello-from-the-service > /tmp/www/index.html && echo serving && exec httpd -f -v -p {port} -h /tmp/www"
    );
    let service = image_with(&layout, &base, &[], |c| {
        c["config"]["Entrypoint"] = serde_json::json!(["/bin/sh", "-c", serve]);
        c["config"]["ExposedPorts"] = serde_json::json!({ format!("{port}/tcp"): {} });
    });
    let service = push(&layout, &registry, "ci/web", &service);
    let image = push(&layout, &registry, "ci/base", &base);
    let repo = project_with(
        dir.path(),
        &[(
            "with-service",
            &image,
            &[
                &format!("wget -q -O - http://127.0.0.1:{port}/"),
                &format!("wget -q -O - http://web:{port}/"),
            ],
        )],
        &format!("    services:\n      - name: web\n        image: {service}\n"),
    );
    let out = job_run(&repo, &dir.path().join("state"), "with-service");
    let log = support::stdout(&out);
    assert!(out.status.success(), "{log}\n{}", support::stderr(&out));
    assert_eq!(log.matches("hello-from-the-service").count(), 2, "{log}");
    // Its output is in the job's log, and it is gone once the job ended.
    assert!(log.contains("[web] serving"), "{log}");
    assert!(log.contains("seakeeper: services stopped"), "{log}");
    assert!(processes_with(&format!("httpd -f -v -p {port}")).is_empty());
}

/// A trusted job in its image gets its secret as a variable and as a file on a tmpfs (mounted
/// after the image's root, which would otherwise hide it), masked in the log.
#[test]
fn issue_18_a_job_in_its_image_gets_its_secret_masked() {
    use seakeeper::executor::Executor as _;
    if !tools_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let source = seakeeper::registry::pull::ImageSource::under(&state).unwrap();
    let base = base_image(dir.path(), &source.store);
    let mut config = seakeeper::executor::local::LocalConfig::new(&state);
    config.secrets = Arc::new(seakeeper::secrets::FixedSecrets::new(BTreeMap::from([(
        "TOKEN".to_owned(),
        seakeeper::secrets::SecretValue::new("TOKEN", "hunter2-in-image").unwrap(),
    )])));
    let prepare: seakeeper::executor::local::Prepare = Arc::new(|_, _| Ok(()));
    let exec = seakeeper::executor::local::LocalExecutor::new(config, prepare)
        .unwrap()
        .with_images(seakeeper::daemon::local_images(source));
    let spec = seakeeper::model::JobSpec {
        build_id: "b-secret".parse().unwrap(),
        job: "deploy".into(),
        pipeline: "post-merge".into(),
        project: "acme/api".parse().unwrap(),
        change: None,
        source: String::new(),
        commit: "0".repeat(40).parse().unwrap(),
        image: format!("registry.example.org/ci/base@{base}"),
        commands: vec![
            "echo \"var=$TOKEN\"".into(),
            "echo \"file=$(cat \"$SEAKEEPER_SECRETS_DIR/TOKEN\")\"".into(),
            "cat /etc/marker".into(),
        ],
        env: Default::default(),
        timeout_seconds: 60,
        cpu: None,
        memory: None,
        services: Default::default(),
        secrets: vec!["TOKEN".into()],
        network: false,
        outputs: vec![],
        trust: seakeeper::model::Trust::Trusted,
        required: vec![],
        caches: vec![],
        inputs: vec![],
    };
    exec.start(&spec).unwrap();
    let state_now = exec
        .wait(&spec.key(), Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut log = String::new();
    exec.logs(&spec.key(), false, &mut |l| {
        log.push_str(&l.text);
        log.push('\n');
    })
    .unwrap();
    assert_eq!(state_now, seakeeper::model::JobState::Succeeded, "{log}");
    assert!(log.contains("var=***") && log.contains("file=***"), "{log}");
    assert!(
        log.contains("inside the image") && !log.contains("hunter2"),
        "{log}"
    );
}
