//! Deterministic image assembly into an OCI image layout, checked with skopeo (an independent
//! reader of OCI layouts).

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

fn skopeo_available() -> bool {
    let ok = Command::new("skopeo").arg("--version").output().is_ok();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "skopeo must be installed in CI"
    );
    ok
}

fn write(dir: &Path, rel: &str, text: &str, exec: bool) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    let mode = if exec { 0o755 } else { 0o640 };
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn build(layout: &Path, tag: &str, from: &Path, extra: &[&str]) -> std::process::Output {
    support::output(
        support::seakeeper()
            .args(["image", "build", "--layout"])
            .arg(layout)
            .args(["--tag", tag, "--from-dir"])
            .arg(from)
            .args(extra),
    )
}

#[test]
fn the_same_inputs_give_the_same_digest_anywhere() {
    let args = [
        "--prefix",
        "srv/app",
        "--entrypoint",
        "/srv/app/bin/run",
        "--env",
        "MODE=prod",
        "--label",
        "org.opencontainers.image.title=app",
    ];
    let mut digests = Vec::new();
    for (i, order) in [["a", "b"], ["b", "a"]].iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("out");
        for name in order {
            write(&src, &format!("{name}.txt"), &format!("{name}\n"), false);
        }
        write(&src, "bin/run", "#!/bin/sh\necho run\n", true);
        // Different mtimes and umask-ish modes on the two "machines".
        let t = std::time::SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(1_000 * (i as u64 + 1));
        std::fs::File::options()
            .write(true)
            .open(src.join("a.txt"))
            .unwrap()
            .set_modified(t)
            .unwrap();
        let out = build(&dir.path().join("store"), "app", &src, &args);
        assert!(out.status.success(), "{}", support::stderr(&out));
        digests.push(support::stdout(&out).trim().to_owned());
    }
    assert_eq!(digests[0], digests[1]);
    assert!(digests[0].starts_with("sha256:"));
}

#[test]
fn images_are_valid_oci_for_skopeo_with_a_base_and_deterministic_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let base_src = dir.path().join("base");
    write(&base_src, "usr/bin/tool", "#!/bin/sh\n", true);
    let out = build(
        &store,
        "base",
        &base_src,
        &["--env", "PATH=/usr/bin", "--label", "layer=base"],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let app_src = dir.path().join("app");
    write(&app_src, "index.html", "<h1>hi</h1>\n", false);
    let out = build(
        &store,
        "app",
        &app_src,
        &[
            "--base",
            "base",
            "--prefix",
            "srv",
            "--env",
            "MODE=prod",
            "--label",
            "layer=app",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let digest = support::stdout(&out).trim().to_owned();

    // The layer itself: sorted entries, times 0, owner 0, only 0644/0755.
    let store_l = seakeeper::registry::OciLayout::open_or_init(&store).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&store_l.read_blob(&digest.parse().unwrap()).unwrap()).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    let layer = store_l
        .read_blob(&m["layers"][1]["digest"].as_str().unwrap().parse().unwrap())
        .unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
    let entries: Vec<(String, u64, u64, u32)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                h.mode().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("srv/".to_owned(), 0, 0, 0o755),
            ("srv/index.html".to_owned(), 0, 0, 0o644),
        ]
    );
    let config: serde_json::Value = serde_json::from_slice(
        &store_l
            .read_blob(&m["config"]["digest"].as_str().unwrap().parse().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!(["MODE=prod", "PATH=/usr/bin"])
    );
    assert_eq!(config["config"]["Labels"]["layer"], "app");
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    if !skopeo_available() {
        return;
    }
    let layout = format!("oci:{}:app", store.display());
    let out = Command::new("skopeo")
        .args(["inspect", &layout])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["Digest"], digest.as_str());
    assert_eq!(info["Layers"].as_array().unwrap().len(), 2);
    // skopeo copy reads every blob and checks its digest.
    let copy = dir.path().join("copy");
    let out = Command::new("skopeo")
        .args(["copy", &layout])
        .arg(format!("dir:{}", copy.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_input_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write(&src, "f", "x", false);
    let store = dir.path().join("store");
    let out = build(&store, "t", &src, &["--env", "NOEQUALS"]);
    assert!(!out.status.success());
    assert!(support::stderr(&out).contains("--env \"NOEQUALS\": expected KEY=VALUE"));
    let out = build(&store, "t", &src, &["--base", "nope"]);
    assert!(
        support::stderr(&out).contains("--base \"nope\""),
        "{}",
        support::stderr(&out)
    );
    let out = build(&store, "t", &src, &["--prefix", "../etc"]);
    assert!(support::stderr(&out).contains("not a relative path inside the image"));
    let out = build(&store, "bad/tag", &src, &[]);
    assert!(support::stderr(&out).contains("is not a tag"));
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = build(&store, "t", &empty, &[]);
    assert!(support::stderr(&out).contains("no files"));
    // A damaged blob is detected on read.
    let out = build(&store, "ok", &src, &[]);
    let digest: seakeeper::model::Digest = support::stdout(&out).trim().parse().unwrap();
    let path = store.join("blobs/sha256").join(digest.hex());
    std::fs::write(&path, b"tampered").unwrap();
    let l = seakeeper::registry::OciLayout::open_or_init(&store).unwrap();
    assert!(
        l.read_blob(&digest)
            .unwrap_err()
            .to_string()
            .contains("does not match")
    );
}

#[test]
fn a_declared_image_is_built_from_outputs_on_a_base_fetched_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    // The base lives in another store (standing in for a registry).
    let base_store = dir.path().join("base-store");
    let base_src = dir.path().join("base");
    write(&base_src, "usr/bin/php", "#!/bin/sh\n", true);
    let out = build(&base_store, "php", &base_src, &[]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let base = support::stdout(&out).trim().to_owned();
    let ws = dir.path().join("workspace");
    write(&ws, "dist/src/index.php", "<?php echo 1;\n", false);
    write(&ws, "dist/README", "readme\n", false);
    write(&ws, "other.txt", "not an output\n", false);
    let decl: seakeeper::config::files::ImageOutput = yaml_serde::from_str(&format!(
        "{{name: mediawiki, base: \"docker.io/library/php@{base}\", files: [\"dist/**\"], entrypoint: [php, -S, \"0.0.0.0:8080\", -t, /srv/dist/src], labels: {{org.opencontainers.image.title: mediawiki}}}}"
    ))
    .unwrap();
    let store = seakeeper::registry::OciLayout::open_or_init(&dir.path().join("store")).unwrap();
    let from = seakeeper::registry::copy::Location::Layout(
        seakeeper::registry::OciLayout::open_or_init(&base_store).unwrap(),
    );
    let d = seakeeper::registry::assemble::declared_image(&store, &decl, &ws, Some(&from)).unwrap();
    assert!(
        store.has_blob(&base.parse().unwrap()),
        "the base was fetched by digest"
    );
    let m: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&d.digest).unwrap()).unwrap();
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
    let layer = store
        .read_blob(&m["layers"][1]["digest"].as_str().unwrap().parse().unwrap())
        .unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(layer.as_slice()));
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "srv/",
            "srv/dist/",
            "srv/dist/README",
            "srv/dist/src/",
            "srv/dist/src/index.php"
        ]
    );
    // The same declaration gives the same digest again.
    let again = seakeeper::registry::assemble::declared_image(&store, &decl, &ws, None).unwrap();
    assert_eq!(again.digest, d.digest);
    // An unpinned base is refused.
    let mut bad = decl.clone();
    bad.base = "docker.io/library/php:8".into();
    let err = seakeeper::registry::assemble::declared_image(&store, &bad, &ws, None).unwrap_err();
    assert!(err.to_string().contains("not pinned by digest"), "{err}");
}
