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
            extra: Default::default(),
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

#[test]
fn attestations_and_signatures_travel_with_the_image() {
    let (Some(a), Some(b)) = (DockerRegistry::start(), DockerRegistry::start()) else {
        return;
    };
    let w = support::World::new();
    let (_base, app) = images(w.dir.path());
    let store = w.dir.path().join("store");
    let src = format!("docker://{}/w/app", a.host);
    let out = copy(
        &format!("oci:{}@{app}", store.display()),
        &format!("{src}:1"),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    // Provenance about the image, attached as cosign does, and a signature.
    let out = sk(&[
        "attest",
        "provenance",
        "--key",
        w.key.to_str().unwrap(),
        "--subject",
        &format!("{}/w/app@{app}", a.host),
        "--build-id",
        "b-1",
        "--project",
        "w/app",
        "--source",
        "https://gerrit.example.org/w/app",
        "--source-commit",
        "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5",
        "--config-repo",
        "https://gerrit.example.org/config",
        "--config-commit",
        "757722a6e1c4b1d2e3f4a5b6c7d8e9f0a1b2c3d4",
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let envelope = support::stdout(&out).trim().to_owned();
    let env_file = w.path("env.json");
    std::fs::write(&env_file, &envelope).unwrap();
    let out = sk(&[
        "attest",
        "attach",
        "--plain-http",
        &format!("{src}@{app}"),
        "--envelope",
        env_file.to_str().unwrap(),
        "--key",
        w.key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let out = sk(&[
        "attest",
        "sign",
        "--plain-http",
        &format!("{src}@{app}"),
        "--key",
        w.key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));

    // Promote A -> B: the .att and .sig tags come along.
    let out = copy(
        &format!("{src}@{app}"),
        &format!("docker://{}/prod/app:live", b.host),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let hex = &app["sha256:".len()..];
    let raw = |tag: &str| -> serde_json::Value {
        let out = Command::new("skopeo")
            .args([
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{}/prod/app:sha256-{hex}.{tag}", b.host),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let att = raw("att");
    let layer = &att["layers"][0];
    assert_eq!(layer["mediaType"], "application/vnd.dsse.envelope.v1+json");
    assert_eq!(
        layer["annotations"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    let reg = seakeeper::registry::distribution::Registry::new(&format!("http://{}", b.host), None)
        .unwrap();
    let fetch = |d: &str| {
        let (_, mut r) = reg.get_blob("prod/app", &d.parse().unwrap()).unwrap();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut v).unwrap();
        v
    };
    // The attached envelope carries the same statement, signed again for cosign.
    let attached: serde_json::Value =
        serde_json::from_slice(&fetch(layer["digest"].as_str().unwrap())).unwrap();
    let given: serde_json::Value = serde_json::from_str(&envelope).unwrap();
    assert_eq!(attached["payload"], given["payload"]);
    // The signature verifies with the published key (independently, with Python's cryptography).
    let sig = raw("sig");
    let sl = &sig["layers"][0];
    assert_eq!(
        sl["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload = fetch(sl["digest"].as_str().unwrap());
    assert!(String::from_utf8_lossy(&payload).contains(&app));
    let signature = sl["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap()
        .to_owned();
    // As cosign verify --key checks it: ECDSA P-256 with SHA-256 over the payload.
    let out = support::output(
        support::seakeeper()
            .args(["attest", "public-key", "--cosign", "--cert"])
            .arg(&w.cert),
    );
    let pem = w.path("cosign.pub");
    std::fs::write(&pem, support::stdout(&out)).unwrap();
    let payload_file = w.path("payload.json");
    std::fs::write(&payload_file, &payload).unwrap();
    let py = Command::new("python3")
        .args([
            "-c",
            "import sys,base64\nfrom cryptography.hazmat.primitives import hashes, serialization\nfrom cryptography.hazmat.primitives.asymmetric import ec\nkey = serialization.load_pem_public_key(open(sys.argv[1],'rb').read())\nkey.verify(base64.b64decode(sys.argv[2]), open(sys.argv[3],'rb').read(), ec.ECDSA(hashes.SHA256()))\nprint('ok')",
            pem.to_str().unwrap(),
            &signature,
            payload_file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
}

#[test]
fn a_registry_stopped_in_the_middle_of_a_copy_leaves_no_tag_and_a_retry_finishes() {
    use seakeeper::registry::copy::{Location, copy};
    use seakeeper::registry::distribution::Registry;
    use std::sync::Arc;
    let (Some(a), Some(mut b)) = (DockerRegistry::start(), DockerRegistry::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = seakeeper::registry::OciLayout::open_or_init(&dir.path().join("store")).unwrap();
    // Three layers of 40 MB that do not compress: long enough to stop B in the middle.
    let mut base = None;
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for i in 0..3 {
        let src = dir.path().join(format!("l{i}"));
        std::fs::create_dir_all(&src).unwrap();
        let mut data = vec![0u8; 40 << 20];
        for c in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        std::fs::write(src.join("blob.bin"), &data).unwrap();
        let spec = seakeeper::registry::ImageSpec {
            files: seakeeper::registry::assemble::files_under(&src).unwrap(),
            base: base.clone(),
            ..Default::default()
        };
        base = Some(seakeeper::registry::assemble(&store, &spec).unwrap().digest);
    }
    let digest = base.unwrap();
    let ra = Arc::new(Registry::new(&format!("http://{}", a.host), None).unwrap());
    let rb = Arc::new(
        Registry::new(&format!("http://{}", b.host), None)
            .unwrap()
            .with_retry(1, std::time::Duration::from_millis(10)),
    );
    let src = Location::Registry(ra.clone(), "w/big".into());
    copy(
        &Location::Layout(store.clone()),
        &src,
        &digest,
        Some("1"),
        4,
    )
    .unwrap();
    let dst = Location::Registry(rb.clone(), "w/big".into());
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| copy(&src, &dst, &digest, Some("prod"), 1));
        std::thread::sleep(std::time::Duration::from_millis(150));
        b.stop();
        h.join().unwrap()
    });
    assert!(
        result.is_err(),
        "the copy must fail when the target goes away"
    );
    b.resume();
    assert!(
        !rb.has_manifest("w/big", "prod").unwrap(),
        "nothing was tagged"
    );
    let stats = copy(&src, &dst, &digest, Some("prod"), 4).unwrap();
    assert!(stats.blobs_copied >= 1, "{stats:?}");
    assert_eq!(rb.get_manifest("w/big", "prod").unwrap().digest, digest);
}

#[test]
fn an_expired_image_is_deleted_and_recorded_in_the_ledger() {
    let Some(a) = DockerRegistry::start() else {
        return;
    };
    let w = support::World::new();
    let ledger = w.init_ledger("ledger.git");
    let (_base, app) = images(w.dir.path());
    let store = w.dir.path().join("store");
    let image = format!("docker://{}/w/app", a.host);
    let out = copy(
        &format!("oci:{}@{app}", store.display()),
        &format!("{image}:1"),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    // Signed as cosign does: the signature goes with the image (issue 14, item 13).
    let out = sk(&[
        "attest",
        "sign",
        "--plain-http",
        &format!("{image}@{app}"),
        "--key",
        w.key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let sig_tag = format!("{image}:sha256-{}.sig", &app["sha256:".len()..]);
    let inspect = |reference: &str| {
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--raw", reference])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(inspect(&sig_tag));
    let out = sk(&[
        "image",
        "expire",
        "--plain-http",
        &format!("{image}@{app}"),
        "--name",
        "w/app",
        "--rule",
        "image, untrusted: 7 days (it is 10 days old)",
        "--ledger",
        ledger.to_str().unwrap(),
        "--key",
        w.key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).contains("/expiries/"),
        "{}",
        support::stdout(&out)
    );
    let gone = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("{image}@{app}")])
        .output()
        .unwrap();
    assert!(
        !gone.status.success(),
        "the manifest is gone from the registry"
    );
    assert!(!inspect(&sig_tag), "its cosign signature is gone too");
    // The ledger says so, verifies, and the trace shows it.
    let out = w.verify(&ledger);
    assert!(out.status.success(), "{}", support::stderr(&out));
    w.gpg_verify_all(&ledger);
    let out = sk(&[
        "trace",
        &app,
        "--ledger",
        ledger.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).contains("\"expiry\""),
        "{}",
        support::stdout(&out)
    );
    let log = support::ok(w.git(&ledger).args(["log", "-1", "--format=%B"]));
    assert!(
        log.contains(&format!("Expire w/app@{app}")) && log.contains("Artifact-Digest:"),
        "{log}"
    );
    // A layout store too.
    let out = sk(&[
        "image",
        "expire",
        &format!("oci:{}@{app}", store.display()),
        "--name",
        "w/app",
        "--rule",
        "test",
        "--ledger",
        ledger.to_str().unwrap(),
        "--key",
        w.key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let l = seakeeper::registry::OciLayout::open_or_init(&store).unwrap();
    assert!(l.resolve("app").is_err() && !l.has_blob(&app.parse().unwrap()));
}
