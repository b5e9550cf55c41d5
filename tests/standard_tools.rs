//! Standard tools agree (issue 14, item 11): an auditor must not have to trust seakeeper to
//! check seakeeper. Every ledger commit verifies with Sequoia's `sqv` (as well as with GnuPG);
//! the provenance statements parse and validate with the in-toto attestation library; and the
//! cosign `.sig` and `.att` verify as cosign checks them (ECDSA P-256 over the simple-signing
//! payload and over the DSSE PAE, with the PEM key `cosign verify --key` takes), here with
//! Python's `cryptography` because cosign itself cannot be installed on these machines.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{World, ok, output, sample_jsonl, seakeeper, stderr, stdout};

/// Whether `program --version` runs; in CI it must.
fn have(program: &str) -> bool {
    let ok = Command::new(program).arg("--version").output().is_ok();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "{program} must be installed in CI (scripts/install-deps)"
    );
    ok
}

/// Whether Python can import `module`; in CI it must.
fn have_python_module(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "the Python module {module} must be installed in CI (scripts/install-deps)"
    );
    ok
}

fn python(script: &str, args: &[&str]) -> Output {
    output(Command::new("python3").arg("-c").arg(script).args(args))
}

/// Splits a raw commit object into its armored `gpgsig` signature and the object without that
/// header: what git hands GnuPG to verify.
fn split_signed_commit(raw: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = std::str::from_utf8(raw).expect("ledger commits are UTF-8");
    let (headers, message) = text
        .split_once("\n\n")
        .expect("a commit has headers, a blank line and a message");
    let mut payload = String::new();
    let mut signature = String::new();
    let mut in_sig = false;
    for line in headers.lines() {
        if let Some(first) = line.strip_prefix("gpgsig ") {
            assert!(signature.is_empty(), "one gpgsig header");
            signature.push_str(first);
            signature.push('\n');
            in_sig = true;
        } else if let (true, Some(more)) = (in_sig, line.strip_prefix(' ')) {
            signature.push_str(more);
            signature.push('\n');
        } else {
            in_sig = false;
            payload.push_str(line);
            payload.push('\n');
        }
    }
    payload.push('\n');
    payload.push_str(message);
    (signature.into_bytes(), payload.into_bytes())
}

fn sqv(cert: &Path, sig: &Path, payload: &Path) -> Output {
    output(
        Command::new("sqv")
            .arg("--keyring")
            .arg(cert)
            .arg(sig)
            .arg(payload),
    )
}

#[test]
fn every_ledger_commit_verifies_with_sqv() {
    let w = World::new();
    let ledger = w.init_ledger("ledger.git");
    // Three imports, three commits (an import is one commit), on top of init's.
    for first in [0, 10, 20] {
        let out = w.import(&ledger, &w.key, &sample_jsonl(first, 6), &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let commits = w.commits(&ledger);
    assert!(commits.len() >= 4, "{commits:?}");
    w.gpg_verify_all(&ledger);
    if !have("sqv") {
        return;
    }
    // sqv names the cert; the signature's issuer must be its Ed25519 signing subkey (the P-256
    // one is only for cosign).
    let (cert_fpr, ed25519_subkey) = {
        use sequoia_openpgp::parse::Parse as _;
        let cert = sequoia_openpgp::Cert::from_bytes(&std::fs::read(&w.cert).unwrap()).unwrap();
        let p = sequoia_openpgp::policy::StandardPolicy::new();
        let keys: Vec<_> = cert
            .keys()
            .subkeys()
            .with_policy(&p, None)
            .for_signing()
            .filter(|k| k.key().pk_algo() == sequoia_openpgp::types::PublicKeyAlgorithm::EdDSA)
            .map(|k| k.key().fingerprint())
            .collect();
        assert_eq!(keys.len(), 1, "{keys:?}");
        (cert.fingerprint().to_hex(), keys[0].clone())
    };
    let issuer = |sig: &[u8]| {
        use sequoia_openpgp::parse::Parse as _;
        match sequoia_openpgp::Packet::from_bytes(sig).unwrap() {
            sequoia_openpgp::Packet::Signature(s) => s.issuer_fingerprints().next().cloned(),
            p => panic!("not a signature: {p:?}"),
        }
    };
    let sig_file = w.path("commit.sig");
    let payload_file = w.path("commit.payload");
    for c in &commits {
        let raw = ok(w.git(&ledger).args(["cat-file", "commit", c]));
        let (sig, payload) = split_signed_commit(raw.as_bytes());
        assert!(
            sig.starts_with(b"-----BEGIN PGP SIGNATURE-----\n"),
            "{c}: {}",
            String::from_utf8_lossy(&sig)
        );
        std::fs::write(&sig_file, &sig).unwrap();
        std::fs::write(&payload_file, &payload).unwrap();
        let out = sqv(&w.cert, &sig_file, &payload_file);
        assert!(out.status.success(), "sqv rejects {c}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), cert_fpr, "{c}");
        assert_eq!(issuer(&sig).as_ref(), Some(&ed25519_subkey), "{c}");
    }
    // A changed payload (one letter of the last commit's message) fails.
    let tip = commits.last().unwrap();
    let raw = ok(w.git(&ledger).args(["cat-file", "commit", tip]));
    let (sig, payload) = split_signed_commit(raw.as_bytes());
    let mut tampered = payload.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    std::fs::write(&sig_file, &sig).unwrap();
    std::fs::write(&payload_file, &tampered).unwrap();
    let out = sqv(&w.cert, &sig_file, &payload_file);
    assert!(!out.status.success(), "sqv accepts a tampered payload");
    // And another key's cert does not vouch for it.
    let (_, other_cert, _) = w.another_key("other");
    std::fs::write(&payload_file, &payload).unwrap();
    let out = sqv(&other_cert, &sig_file, &payload_file);
    assert!(
        !out.status.success(),
        "sqv accepts a commit with a foreign cert"
    );
}

const DIGEST: &str = "sha256:3d0a4a8b5ef6c0d1e2f3a4b5c6d7e8f90123456789abcdef0123456789abcdef";

fn provenance(w: &World, subject: &str) -> String {
    let out = output(
        seakeeper()
            .args(["attest", "provenance", "--key"])
            .arg(&w.key)
            .args([
                "--subject",
                subject,
                "--build-id",
                "b-2026-11-22-1",
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

/// Parses a Statement with the in-toto attestation library (its protobuf JSON mapping refuses
/// unknown fields and wrong types), runs its `validate()`, and the SLSA provenance v1 predicate
/// likewise: parsed into the library's `Provenance` message, with the checks the library's Go
/// `Provenance.Validate` makes (the Python package ships only the message there) and
/// `ResourceDescriptor.validate()` on every dependency and byproduct.
const IN_TOTO_CHECK: &str = r#"
import json, sys
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

raw = open(sys.argv[1], "rb").read()
st = Statement.copy_from_pb(json_format.Parse(raw, statement_pb2.Statement()))
st.validate()
for s in st.pb.subject:
    ResourceDescriptor.copy_from_pb(s).validate()
if st.pb.predicate_type != "https://slsa.dev/provenance/v1":
    raise ValueError("not SLSA provenance v1: " + st.pb.predicate_type)
prov = json_format.ParseDict(json.loads(raw)["predicate"], provenance_pb2.Provenance())
bd, rd = prov.build_definition, prov.run_details
if not bd.build_type:
    raise ValueError("buildDefinition.buildType required")
if len(bd.external_parameters.fields) == 0:
    raise ValueError("buildDefinition.externalParameters required")
if not rd.builder.id:
    raise ValueError("runDetails.builder.id required")
for r in list(bd.resolved_dependencies) + list(rd.byproducts):
    ResourceDescriptor.copy_from_pb(r).validate()
print(st.pb.subject[0].digest["sha256"], rd.builder.id, len(bd.resolved_dependencies),
      rd.metadata.started_on.seconds > 0)
"#;

#[test]
fn provenance_is_valid_for_the_in_toto_attestation_library() {
    let w = World::new();
    let env: serde_json::Value = serde_json::from_str(&provenance(
        &w,
        &format!("registry.example.org/mediawiki@{DIGEST}"),
    ))
    .unwrap();
    let payload = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        env["payload"].as_str().unwrap(),
    )
    .unwrap();
    if !have_python_module("in_toto_attestation") {
        return;
    }
    let file = w.path("statement.json");
    std::fs::write(&file, &payload).unwrap();
    let out = python(IN_TOTO_CHECK, &[file.to_str().unwrap()]);
    assert!(out.status.success(), "in-toto: {}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "{} https://seakeeper.dev/builders/trusted 3 True",
            &DIGEST["sha256:".len()..]
        )
    );

    // The checks are not vacuous: each of these breaks the statement for the library.
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    /// What is broken, what the library says, how to break it.
    type Breakage = (&'static str, &'static str, fn(&mut serde_json::Value));
    let broken: [Breakage; 4] = [
        (
            "a subject without digest",
            "At least one digest required",
            |s| {
                s["subject"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("digest")
                    .unwrap();
            },
        ),
        (
            "an unknown predicate field",
            "has no field named \"name\"",
            |s| s["predicate"]["runDetails"]["builder"]["name"] = "x".into(),
        ),
        (
            "a start time that is not RFC 3339",
            "Failed to parse startedOn",
            |s| s["predicate"]["runDetails"]["metadata"]["startedOn"] = "yesterday".into(),
        ),
        ("no builder id", "runDetails.builder.id required", |s| {
            s["predicate"]["runDetails"]["builder"]["id"] = "".into()
        }),
    ];
    for (what, why, breaks) in broken {
        let mut s = statement.clone();
        breaks(&mut s);
        std::fs::write(&file, s.to_string()).unwrap();
        let out = python(IN_TOTO_CHECK, &[file.to_str().unwrap()]);
        assert!(
            !out.status.success() && stderr(&out).contains(why),
            "{what}: expected {why:?}, got {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

/// Verifies as cosign does with `--key cosign.pub`: the PEM key must be ECDSA P-256, and the
/// signature ASN.1 DER ECDSA with SHA-256, over the simple-signing payload (`sig`) or over the
/// DSSE PAE of the envelope (`att`). Then what cosign checks of the content: the payload names
/// the image's digest (cosign verify), the statement's subject does (verify-attestation).
const COSIGN_CHECK: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

key = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
assert isinstance(key, ec.EllipticCurvePublicKey), type(key)
assert key.curve.name == "secp256r1", key.curve.name
kind, digest = sys.argv[2], sys.argv[3]
if kind == "sig":
    payload = open(sys.argv[4], "rb").read()
    key.verify(base64.b64decode(sys.argv[5]), payload, ec.ECDSA(hashes.SHA256()))
    critical = json.loads(payload)["critical"]
    assert critical["type"] == "cosign container image signature", critical
    assert critical["image"]["docker-manifest-digest"] == digest, critical
else:
    env = json.load(open(sys.argv[4]))
    ptype = env["payloadType"].encode()
    payload = base64.b64decode(env["payload"])
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
    assert env["signatures"], "unsigned"
    for s in env["signatures"]:
        key.verify(base64.b64decode(s["sig"]), pae, ec.ECDSA(hashes.SHA256()))
    st = json.loads(payload)
    assert st["predicateType"] == "https://slsa.dev/provenance/v1", st["predicateType"]
    assert any(s["digest"]["sha256"] == digest.split(":")[1] for s in st["subject"]), st
print("ok")
"#;

#[test]
fn cosign_signatures_and_attestations_verify_as_cosign_checks_them() {
    let w = World::new();
    let src = w.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("index.html"), "<h1>hi</h1>\n").unwrap();
    let store = w.path("store");
    let digest = ok(seakeeper()
        .args(["image", "build", "--layout"])
        .arg(&store)
        .args(["--tag", "app", "--from-dir"])
        .arg(&src))
    .trim()
    .to_owned();
    let image = format!("oci:{}@{digest}", store.display());
    let envelope = provenance(&w, &format!("registry.example.org/app@{digest}"));
    let env_file = w.path("env.json");
    std::fs::write(&env_file, &envelope).unwrap();
    ok(seakeeper()
        .args(["attest", "attach", &image, "--envelope"])
        .arg(&env_file)
        .arg("--key")
        .arg(&w.key));
    ok(seakeeper()
        .args(["attest", "sign", &image, "--key"])
        .arg(&w.key));
    let pem = ok(seakeeper()
        .args(["attest", "public-key", "--cosign", "--cert"])
        .arg(&w.cert));
    assert!(
        pem.starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
        "a P-256 SubjectPublicKeyInfo: {pem}"
    );
    let cosign_pub = w.path("cosign.pub");
    std::fs::write(&cosign_pub, &pem).unwrap();

    // Read the attachments back from the layout, as a registry would serve them.
    let layout = seakeeper::registry::OciLayout::open_or_init(&store).unwrap();
    let hex = &digest["sha256:".len()..];
    let layer_of = |suffix: &str| -> (serde_json::Value, Vec<u8>) {
        let d = layout.resolve(&format!("sha256-{hex}.{suffix}")).unwrap();
        let m: serde_json::Value =
            serde_json::from_slice(&layout.read_blob(&d.digest).unwrap()).unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{m}");
        let blob = layout
            .read_blob(&layers[0]["digest"].as_str().unwrap().parse().unwrap())
            .unwrap();
        (layers[0].clone(), blob)
    };
    let (sig_layer, sig_payload) = layer_of("sig");
    assert_eq!(
        sig_layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let signature = sig_layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let (att_layer, att_envelope) = layer_of("att");
    assert_eq!(
        att_layer["mediaType"],
        "application/vnd.dsse.envelope.v1+json"
    );
    assert_eq!(
        att_layer["annotations"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    // The attached envelope carries the very statement the ledger's envelope does.
    let att: serde_json::Value = serde_json::from_slice(&att_envelope).unwrap();
    let ledger_env: serde_json::Value = serde_json::from_str(&envelope).unwrap();
    assert_eq!(att["payload"], ledger_env["payload"]);
    assert_eq!(att["payloadType"], ledger_env["payloadType"]);

    if !have_python_module("cryptography") {
        return;
    }
    let payload_file = w.path("sig-payload.json");
    std::fs::write(&payload_file, &sig_payload).unwrap();
    let att_file = w.path("att.json");
    std::fs::write(&att_file, &att_envelope).unwrap();
    let pub_s = cosign_pub.to_str().unwrap();
    let out = python(
        COSIGN_CHECK,
        &[
            pub_s,
            "sig",
            &digest,
            payload_file.to_str().unwrap(),
            &signature,
        ],
    );
    assert!(out.status.success(), ".sig: {}", stderr(&out));
    let out = python(
        COSIGN_CHECK,
        &[pub_s, "att", &digest, att_file.to_str().unwrap()],
    );
    assert!(out.status.success(), ".att: {}", stderr(&out));

    // What cosign would refuse, refused: a changed payload, another image's digest, and the
    // ledger's own (Ed25519) envelope, which is not signed by the cosign key.
    let mut tampered = sig_payload.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 0x01;
    let tampered_file = w.path("tampered.json");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let out = python(
        COSIGN_CHECK,
        &[
            pub_s,
            "sig",
            &digest,
            tampered_file.to_str().unwrap(),
            &signature,
        ],
    );
    assert!(!out.status.success(), "a tampered .sig payload verifies");
    let other = format!("sha256:{}", "d".repeat(64));
    let out = python(
        COSIGN_CHECK,
        &[pub_s, "att", &other, att_file.to_str().unwrap()],
    );
    assert!(!out.status.success(), "the .att is about {other}");
    let out = python(
        COSIGN_CHECK,
        &[pub_s, "att", &digest, env_file.to_str().unwrap()],
    );
    assert!(
        !out.status.success() && stderr(&out).contains("InvalidSignature"),
        "the Ed25519 envelope verifies with the P-256 key: {}",
        stderr(&out)
    );
}
