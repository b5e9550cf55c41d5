//! Signed SLSA provenance in DSSE envelopes: made with the ledger's key, verified by seakeeper,
//! by an independent implementation (Python's securesystemslib), and against the ledger.

mod support;

use std::process::Command;

use support::{World, ok, output, seakeeper, stderr, stdout};

const DIGEST: &str = "sha256:3d0a4a8b5ef6c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef";

fn provenance(w: &World, trust: &str) -> String {
    provenance_of(w, trust, "b-2026-11-22-1")
}

fn provenance_of(w: &World, trust: &str, build: &str) -> String {
    let out = output(
        seakeeper()
            .args(["attest", "provenance", "--key"])
            .arg(&w.key)
            .args([
                "--subject",
                &format!("registry.example.org/mediawiki@{DIGEST}"),
                "--build-id",
                build,
                "--trust",
                trust,
                "--project",
                "mediawiki/core",
                "--change",
                "4711",
                "--patchset",
                "2",
                "--source",
                "https://gerrit.example.org/mediawiki/core",
                "--source-commit",
                "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5",
                "--config-repo",
                "https://gerrit.example.org/seakeeper/config",
                "--config-commit",
                "757722a6e1c4b1d2e3f4a5b6c7d8e9f0a1b2c3d4",
                "--base",
                &format!("docker.io/library/php@sha256:{}", "b".repeat(64)),
                "--byproduct",
                &format!("build.log@sha256:{}", "c".repeat(64)),
            ]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn provenance_is_signed_and_verifies_here_and_in_securesystemslib() {
    let w = World::new();
    let env = provenance(&w, "trusted");
    let file = w.path("env.json");
    std::fs::write(&file, &env).unwrap();
    let verify = |extra: &[&str], digest: &str| {
        output(
            seakeeper()
                .args(["attest", "verify", digest, "--cert"])
                .arg(&w.cert)
                .args(extra),
        )
    };
    let out = verify(&["--envelope", file.to_str().unwrap()], DIGEST);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("signature ok, https://slsa.dev/provenance/v1"));

    // The statement's shape.
    let v: serde_json::Value = serde_json::from_str(&env).unwrap();
    assert_eq!(v["payloadType"], "application/vnd.in-toto+json");
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        v["payload"].as_str().unwrap(),
    )
    .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(st["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(st["subject"][0]["digest"]["sha256"], &DIGEST[7..]);
    let def = &st["predicate"]["buildDefinition"];
    assert_eq!(def["externalParameters"]["change"], 4711);
    assert_eq!(def["resolvedDependencies"].as_array().unwrap().len(), 3);
    assert_eq!(
        st["predicate"]["runDetails"]["builder"]["id"],
        "https://seakeeper.dev/builders/trusted"
    );

    // Wrong digest, tampered payload, untrusted builder: refused.
    let out = verify(
        &["--envelope", file.to_str().unwrap()],
        &format!("sha256:{}", "d".repeat(64)),
    );
    assert!(!out.status.success() && stderr(&out).contains("is not about"));
    let mut t: serde_json::Value = v.clone();
    let tampered = String::from_utf8(payload.clone())
        .unwrap()
        .replace("4711", "4712");
    t["payload"] =
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, tampered).into();
    let tfile = w.path("tampered.json");
    std::fs::write(&tfile, t.to_string()).unwrap();
    let out = verify(&["--envelope", tfile.to_str().unwrap()], DIGEST);
    assert!(
        !out.status.success() && stderr(&out).contains("no signature"),
        "{}",
        stderr(&out)
    );
    let ufile = w.path("untrusted.json");
    std::fs::write(&ufile, provenance(&w, "untrusted")).unwrap();
    let out = verify(&["--envelope", ufile.to_str().unwrap()], DIGEST);
    assert!(
        stderr(&out).contains("not a trusted builder"),
        "{}",
        stderr(&out)
    );

    // An independent verifier: securesystemslib, with the public key in hex.
    let out = output(
        seakeeper()
            .args(["attest", "public-key", "--cert"])
            .arg(&w.cert),
    );
    let text = stdout(&out);
    let (public, keyid) = text.trim().split_once(' ').unwrap();
    let script = r#"
import json, sys
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey
env = Envelope.from_dict(json.load(open(sys.argv[1])))
key = SSlibKey(sys.argv[3], "ed25519", "ed25519", {"public": sys.argv[2]})
verified = env.verify([key], 1)
print("verified", sorted(verified))
"#;
    let py = Command::new("python3")
        .args(["-c", script, file.to_str().unwrap(), public, keyid])
        .output()
        .unwrap();
    let have = Command::new("python3")
        .args(["-c", "import securesystemslib"])
        .status()
        .unwrap()
        .success();
    if have {
        assert!(
            py.status.success(),
            "securesystemslib: {}",
            String::from_utf8_lossy(&py.stderr)
        );
        assert!(String::from_utf8_lossy(&py.stdout).contains(keyid));
        let py = Command::new("python3")
            .args(["-c", script, tfile.to_str().unwrap(), public, keyid])
            .output()
            .unwrap();
        assert!(
            !py.status.success(),
            "securesystemslib rejects the tampered envelope"
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "securesystemslib must be installed in CI"
        );
    }
    // The same Ed25519 key as PEM (for openssl and securesystemslib; not what cosign takes).
    let out = output(
        seakeeper()
            .args(["attest", "public-key", "--pem", "--cert"])
            .arg(&w.cert),
    );
    assert!(stdout(&out).starts_with("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA"));
    // cosign's key is the P-256 subkey (tests/standard_tools.rs verifies with it).
    let out = output(
        seakeeper()
            .args(["attest", "public-key", "--cosign", "--cert"])
            .arg(&w.cert),
    );
    assert!(
        stdout(&out)
            .starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        "{}",
        stderr(&out)
    );
}

/// A key made before `key generate` added the P-256 subkey: Ed25519 only.
fn ed25519_only_key(w: &World) -> (std::path::PathBuf, std::path::PathBuf) {
    use openpgp::serialize::SerializeInto as _;
    use sequoia_openpgp as openpgp;
    let (cert, _) = openpgp::cert::CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .unwrap()
        .set_cipher_suite(openpgp::cert::CipherSuite::Cv25519)
        .add_userid("old CI <old@example.org>")
        .add_signing_subkey()
        .generate()
        .unwrap();
    let key = w.path("old.key.asc");
    let public = w.path("old.cert.asc");
    std::fs::write(&key, cert.as_tsk().armored().to_vec().unwrap()).unwrap();
    std::fs::write(&public, cert.armored().to_vec().unwrap()).unwrap();
    (key, public)
}

#[test]
fn a_key_without_a_p256_subkey_keeps_the_ledger_and_says_it_cannot_sign_for_cosign() {
    let w = World::new();
    let (key, cert) = ed25519_only_key(&w);
    // The ledger and its attestations work as before.
    let ledger = w.path("ledger.git");
    let out = output(
        seakeeper()
            .args(["ledger", "init"])
            .arg(&ledger)
            .arg("--key")
            .arg(&key),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = w.import(&ledger, &key, &support::sample_jsonl(0, 6), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = output(
        seakeeper()
            .args(["ledger", "verify"])
            .arg(&ledger)
            .arg("--cert")
            .arg(&cert),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = output(
        seakeeper()
            .args(["attest", "provenance", "--key"])
            .arg(&key)
            .args([
                "--subject",
                &format!("registry.example.org/app@{DIGEST}"),
                "--build-id",
                "b-1",
                "--project",
                "app",
                "--source",
                "https://gerrit.example.org/app",
                "--source-commit",
                "3b9f2e7c41d05a8e6f1c2b3d4e5f60718293a4b5",
                "--config-repo",
                "https://gerrit.example.org/config",
                "--config-commit",
                "757722a6e1c4b1d2e3f4a5b6c7d8e9f0a1b2c3d4",
            ]),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env = w.path("env.json");
    std::fs::write(&env, stdout(&out)).unwrap();

    // cosign signatures: refused, saying why, before the image store is touched.
    let store = w.path("store");
    let image = format!("oci:{}@{DIGEST}", store.display());
    for args in [
        vec!["attest", "sign", &image, "--key", key.to_str().unwrap()],
        vec![
            "attest",
            "attach",
            &image,
            "--envelope",
            env.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    ] {
        let out = output(seakeeper().args(&args));
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("cannot make a cosign") && err.contains("no usable ECDSA P-256"),
            "{args:?}: {err}"
        );
        assert!(err.contains("still sign the ledger"), "{err}");
    }
    assert!(!store.exists(), "nothing was written");
    let out = output(
        seakeeper()
            .args(["attest", "public-key", "--cosign", "--cert"])
            .arg(&cert),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("no ECDSA P-256 signing subkey"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn attach_only_signs_again_what_the_key_signed() {
    let w = World::new();
    let (other_key, _, _) = w.another_key("other");
    let env = w.path("env.json");
    std::fs::write(&env, provenance(&w, "trusted")).unwrap();
    let store = w.path("store");
    let out = output(
        seakeeper()
            .args(["attest", "attach"])
            .arg(format!("oci:{}@{DIGEST}", store.display()))
            .arg("--envelope")
            .arg(&env)
            .arg("--key")
            .arg(&other_key),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("not signed by"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_envelope_must_be_the_one_the_ledger_recorded() {
    let w = World::new();
    let ledger = w.init_ledger("ledger.git");
    let env = provenance(&w, "trusted");
    let record = format!(
        "{{\"record\":\"attestation\",\"subject_digest\":\"{DIGEST}\",\"predicate_type\":\"https://slsa.dev/provenance/v1\",\"envelope\":{env}}}\n"
    );
    let out = w.import(&ledger, &w.key, record.as_bytes(), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = w.path("env.json");
    std::fs::write(&file, &env).unwrap();
    let out = output(
        seakeeper()
            .args(["attest", "verify", DIGEST, "--cert"])
            .arg(&w.cert)
            .arg("--ledger")
            .arg(&ledger)
            .arg("--envelope")
            .arg(&file),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().count(),
        2,
        "the ledger's record and the envelope"
    );
    // Issue 14, item 10: the ledger's own attestation file, as git shows it, is accepted.
    let path = ok(w.git(&ledger).args([
        "ls-tree",
        "-r",
        "--name-only",
        "refs/heads/main",
        "attestations/",
    ]))
    .trim()
    .to_owned();
    let stored = ok(w
        .git(&ledger)
        .args(["show", &format!("refs/heads/main:{path}")]));
    let ledger_file = w.path("from-ledger.json");
    std::fs::write(&ledger_file, stored).unwrap();
    let out = output(
        seakeeper()
            .args(["attest", "verify", DIGEST, "--cert"])
            .arg(&w.cert)
            .arg("--envelope")
            .arg(&ledger_file),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Another (validly signed) envelope is not the recorded one.
    let other = w.path("other.json");
    std::fs::write(&other, provenance_of(&w, "trusted", "b-another")).unwrap();
    let out = output(
        seakeeper()
            .args(["attest", "verify", DIGEST, "--cert"])
            .arg(&w.cert)
            .arg("--ledger")
            .arg(&ledger)
            .arg("--envelope")
            .arg(&other),
    );
    assert!(
        stderr(&out).contains("not one the ledger recorded"),
        "{}",
        stderr(&out)
    );
}
