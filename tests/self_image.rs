//! Issue 19: seakeeper's own image (`seakeeper image self`), built from the inputs a lock pins:
//! the same digest from two directories, its SLSA provenance signed and attached, a file that
//! is not the pinned one refused; and the image runs the fetch step (git over smart HTTP,
//! from the Gerrit stand-in) with no shell in it.

mod support;

use std::path::{Path, PathBuf};

use support::gerrit::Gerrit;
use support::{output, seakeeper, stderr};

fn build(dir: &Path, lock: &Path, binary: &Path, extra: &[&str]) -> (String, std::process::Output) {
    let layout = dir.join("layout");
    let out = output(
        seakeeper()
            .current_dir(dir)
            .args(["image", "self", "--binary"])
            .arg(binary)
            .arg("--lock")
            .arg(lock)
            .arg("--layout")
            .arg(format!("oci:{}", layout.display()))
            .args(["--name", "registry.example.org/seakeeper/seakeeper"])
            .arg("--provenance")
            .arg(dir.join("provenance.json"))
            .args(extra),
    );
    (String::from_utf8_lossy(&out.stdout).trim().to_owned(), out)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The image's files, unpacked from the layout (layers in order; this image has one).
fn unpack(layout: &Path, digest: &str, root: &Path) {
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest = json(&blob(digest));
    std::fs::create_dir_all(root).unwrap();
    for l in manifest["layers"].as_array().unwrap() {
        support::ok(
            std::process::Command::new("tar")
                .arg("-xzf")
                .arg(blob(l["digest"].as_str().unwrap()))
                .arg("-C")
                .arg(root),
        );
    }
}

#[test]
fn issue_19_seakeepers_image_is_reproducible_attested_and_runs_the_fetch_without_a_shell() {
    let t = tempfile::tempdir().unwrap();
    // A copy of the binary, as a release would hand it over.
    let binary = t.path().join("seakeeper");
    std::fs::copy(env!("CARGO_BIN_EXE_seakeeper"), &binary).unwrap();
    let lock = t.path().join("inputs.lock");
    let out = output(
        seakeeper()
            .args(["image", "self", "--update-lock", "--binary"])
            .arg(&binary)
            .arg("--lock")
            .arg(&lock),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&lock).unwrap();
    for pinned in [
        "usr/bin/git",
        "usr/lib/git-core/git-remote-http",
        "usr/lib/git-core/git-remote-https",
        "libc.so.6",
        "libcurl",
    ] {
        assert!(text.contains(pinned), "{pinned} is pinned:\n{text}");
    }

    // Twice, from different directories and layouts: the same digest.
    let key = t.path().join("key.asc");
    support::ok(
        seakeeper()
            .args([
                "key",
                "generate",
                "--userid",
                "ci <ci@example.org>",
                "--out",
            ])
            .arg(&key)
            .arg("--cert-out")
            .arg(t.path().join("cert.asc")),
    );
    let (a, b) = (t.path().join("a"), t.path().join("elsewhere/b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (first, out) = build(&a, &lock, &binary, &["--key", key.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (second, out) = build(&b, &lock, &binary, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(first, second, "the same inputs give the same digest");
    let digest = first.rsplit_once('@').unwrap().1.to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{first}"
    );
    assert_eq!(
        std::fs::read(a.join("provenance.json")).unwrap(),
        std::fs::read(b.join("provenance.json")).unwrap(),
        "the provenance is as reproducible as the image"
    );

    // Its provenance: SLSA v1 about exactly this digest, every input named with its digest,
    // signed and attached as cosign's `.att` tag in the layout.
    let statement = json(&a.join("provenance.json"));
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert!(deps.iter().any(|d| d["name"] == "usr/local/bin/seakeeper"));
    assert!(deps.iter().any(|d| {
        d["name"] == "usr/bin/git"
            && d["uri"]
                .as_str()
                .unwrap()
                .starts_with("pkg:deb/debian/git@")
    }));
    let index = json(&a.join("layout/index.json"));
    let att = format!("sha256-{}.att", digest.trim_start_matches("sha256:"));
    assert!(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["annotations"]["org.opencontainers.image.ref.name"] == att.as_str()),
        "{index}"
    );

    // A file that is not the one the lock pins is refused, naming it; nothing is tagged.
    let tampered = t.path().join("tampered.lock");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = lines
        .iter()
        .position(|l| l.contains("path: usr/bin/git"))
        .unwrap();
    lines[at + 2] = format!("    sha256: {}", "0".repeat(64));
    std::fs::write(&tampered, lines.join("\n")).unwrap();
    let c = t.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    let (_, out) = build(&c, &tampered, &binary, &[]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("usr/bin/git") && e.contains("--update-lock"),
        "{e}"
    );

    // The image has no shell, and its fetch step works: git over smart HTTP (curl and its
    // libraries from the image), the commit checked out without `.git`.
    let root = t.path().join("root");
    unpack(&a.join("layout"), &digest, &root);
    assert!(!root.join("bin/sh").exists() && !root.join("usr/bin/sh").exists());
    if std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "bubblewrap is installed in CI"
        );
        return;
    }
    let gerrit = Gerrit::start();
    let commit = gerrit.create_project("acme/app");
    for d in ["proc", "dev", "tmp", "workspace"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let ws: PathBuf = t.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let plan = serde_json::json!({"source": gerrit.git_url("acme/app"), "commit": commit});
    let out = output(
        std::process::Command::new("bwrap")
            .arg("--ro-bind")
            .arg(&root)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
            .arg("--bind")
            .arg(&ws)
            .arg("/workspace")
            .args(["--unshare-pid", "--die-with-parent", "--clearenv"])
            .args([
                "--setenv",
                "HOME",
                "/tmp",
                "--setenv",
                "PATH",
                "/usr/local/bin:/usr/bin",
            ])
            .args(["--setenv", "SEAKEEPER_FETCH", &plan.to_string()])
            .args([
                "/usr/local/bin/seakeeper",
                "job",
                "fetch",
                "--workspace",
                "/workspace",
            ]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(ws.join("README.md")).unwrap(),
        "# acme/app\n"
    );
    assert!(!ws.join(".git").exists());
    // https:// too: git's helper for it is there (Debian's is a link to the http one), and it
    // fails only because nothing listens there.
    let out = output(
        std::process::Command::new("bwrap")
            .arg("--ro-bind")
            .arg(&root)
            .arg("/")
            .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
            .args(["--unshare-pid", "--die-with-parent", "--clearenv"])
            .args(["--setenv", "HOME", "/tmp"])
            .args(["/usr/bin/git", "ls-remote", "https://127.0.0.1:9/acme/app"]),
    );
    let e = stderr(&out);
    assert!(!out.status.success());
    assert!(
        !e.contains("not a git command") && e.contains("127.0.0.1"),
        "{e}"
    );
}
