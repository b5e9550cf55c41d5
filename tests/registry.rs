//! Copy by digest against real registries (Debian's docker-registry on 127.0.0.1), checked
//! with skopeo: registry to registry, layout to registry, an image index, blobs already there,
//! a same-registry mount, cosign tags, and a stopped registry (nothing tagged, a retry works).

mod support;

use std::path::Path;
use std::process::Command;

use support::registry::DockerRegistry;

fn sk(args: &[&str]) -> std::process::Output {
    support::output(support::seakeeper().args(args))
}

fn skopeo_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--format",
            "{{.Digest}}",
            reference,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A layout holding `base` and `app` (app on base: two layers).
fn images(dir: &Path) -> (String, String) {
    let store = dir.join("store");
    let mk = |name: &str, text: &str| {
        let src = dir.join(format!("src-{name}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(format!("{name}.txt")), text.repeat(5000)).unwrap();
        src
    };
    let base_src = mk("base", "base layer ");
    let out = sk(&[
        "image",
        "build",
        "--layout",
        store.to_str().unwrap(),
        "--tag",
        "base",
        "--from-dir",
        base_src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let base = support::stdout(&out).trim().to_owned();
    let app_src = mk("app", "app layer ");
    let out = sk(&[
        "image",
        "build",
        "--layout",
        store.to_str().unwrap(),
        "--tag",
        "app",
        "--base",
        "base",
        "--from-dir",
        app_src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    (base, support::stdout(&out).trim().to_owned())
}

fn copy(src: &str, dst: &str) -> std::process::Output {
    sk(&["image", "copy", "--plain-http", src, dst])
}

#[test]
fn copies_keep_the_digest_skip_present_blobs_and_mount_within_a_registry() {
    let (Some(a), Some(b)) = (DockerRegistry::start(), DockerRegistry::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_base, app) = images(dir.path());
    let store = dir.path().join("store");

    // Layout -> registry A.
    let out = copy(
        &format!("oci:{}@{app}", store.display()),
        &format!("docker://{}/widgets/app:1", a.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("3 copied"),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{}/widgets/app:1", a.host)),
        app
    );

    // A -> B by digest: the digest at the target equals the source.
    let out = copy(
        &format!("docker://{}/widgets/app@{app}", a.host),
        &format!("docker://{}/prod/app:live", b.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(
        skopeo_digest(&format!("docker://{}/prod/app:live", b.host)),
        app
    );

    // Again: nothing to move.
    let out = copy(
        &format!("docker://{}/widgets/app@{app}", a.host),
        &format!("docker://{}/prod/app:live", b.host),
    );
    assert!(
        support::stderr(&out).contains("0 copied"),
        "{}",
        support::stderr(&out)
    );

    // The base alone into B: its layer and config are... the base's own config differs, but its
    // only layer is already there.
    let base_digest = skopeo_digest(&format!("oci:{}:base", store.display()));
    let out = copy(
        &format!("oci:{}@{base_digest}", store.display()),
        &format!("docker://{}/prod/base:1", b.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let err = support::stderr(&out);
    assert!(
        err.contains("2 copied") || err.contains("1 already there") || err.contains("1 mounted"),
        "{err}"
    );

    // Same registry, another repository: blobs are mounted, not copied.
    let out = copy(
        &format!("docker://{}/widgets/app@{app}", a.host),
        &format!("docker://{}/staging/app:1", a.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stderr(&out).contains("3 mounted"),
        "{}",
        support::stderr(&out)
    );
    assert_eq!(
        skopeo_digest(&format!("docker://{}/staging/app:1", a.host)),
        app
    );
}

#[test]
fn an_index_and_cosign_tags_are_copied_whole() {
    let (Some(a), Some(b)) = (DockerRegistry::start(), DockerRegistry::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (base, app) = images(dir.path());
    let store = dir.path().join("store");
    let l = seakeeper::registry::OciLayout::open_or_init(&store).unwrap();
    let size = |d: &str| l.blob_size(&d.parse().unwrap()).unwrap();
    // An index of two platforms, written as exact bytes.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{app}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{base}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        size(&app),
        size(&base)
    );
    let idx = l.put_blob(index.as_bytes()).unwrap();
    l.tag(
        "multi",
        &seakeeper::registry::Descriptor {
            media_type: "application/vnd.oci.image.index.v1+json".into(),
            digest: idx.clone(),
            size: index.len() as u64,
            annotations: Default::default(),
        },
    )
    .unwrap();
    let out = copy(
        &format!("oci:{}@{idx}", store.display()),
        &format!("docker://{}/multi/app:1", a.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    // A cosign-style signature tag next to the index in A.
    let sig_tag = format!("sha256-{}.sig", idx.hex());
    let out = copy(
        &format!("oci:{}@{base}", store.display()),
        &format!("docker://{}/multi/app:{sig_tag}", a.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    // A -> B.
    let out = copy(
        &format!("docker://{}/multi/app@{idx}", a.host),
        &format!("docker://{}/multi/app:1", b.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{}/multi/app:1", b.host),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&raw.stdout),
        index,
        "the index bytes are never re-serialized"
    );
    for child in [&app, &base] {
        assert_eq!(
            skopeo_digest(&format!("docker://{}/multi/app@{child}", b.host)),
            *child
        );
    }
    assert_eq!(
        skopeo_digest(&format!("docker://{}/multi/app:{sig_tag}", b.host)),
        base
    );
}

#[test]
fn a_stopped_registry_fails_the_copy_without_a_tag_and_a_retry_succeeds() {
    let (Some(a), Some(mut b)) = (DockerRegistry::start(), DockerRegistry::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_base, app) = images(dir.path());
    let store = dir.path().join("store");
    let out = copy(
        &format!("oci:{}@{app}", store.display()),
        &format!("docker://{}/w/app:1", a.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    b.stop();
    let out = copy(
        &format!("docker://{}/w/app@{app}", a.host),
        &format!("docker://{}/w/app:prod", b.host),
    );
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains(&b.host),
        "{}",
        support::stderr(&out)
    );
    b.resume();
    let tags = Command::new("skopeo")
        .args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/w/app", b.host),
        ])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&tags.stdout).contains("prod"),
        "nothing was tagged"
    );
    let out = copy(
        &format!("docker://{}/w/app@{app}", a.host),
        &format!("docker://{}/w/app:prod", b.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(
        skopeo_digest(&format!("docker://{}/w/app:prod", b.host)),
        app
    );
    // Plain HTTP only for loopback.
    let out = copy(
        &format!("docker://registry.example.org/w/app@{app}"),
        "oci:/tmp/x:y",
    );
    assert!(
        support::stderr(&out).contains("only allowed for loopback"),
        "{}",
        support::stderr(&out)
    );
}
