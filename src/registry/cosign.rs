//! Cosign-style attachments, for registries without the referrers API (such as Debian's
//! distribution 2.8): an attestation (a DSSE envelope) under the tag `sha256-<hex>.att`, and a
//! signature of the image under `sha256-<hex>.sig`, each an OCI manifest whose layers carry the
//! envelope or the signed payload, as cosign writes and reads them. A second attestation is
//! added as another layer of the same manifest.
//!
//! This module only lays out what it is given; it never signs (the registry clients do not
//! depend on `signing`). For `cosign verify --key` and `cosign verify-attestation --key` to
//! accept them, the `.sig` signature and the `.att` envelope must be ECDSA P-256 (ASN.1 DER over
//! SHA-256), as `signing::dsse::CosignKey` makes them: cosign does not verify Ed25519
//! attestations.

use serde_json::{Value, json};

use super::copy::{CopyError, Location};
use super::distribution::Manifest;
use super::layout::MANIFEST_V1;
use crate::model::Digest;

/// A DSSE envelope layer.
pub const DSSE_LAYER: &str = "application/vnd.dsse.envelope.v1+json";
/// A simple-signing payload layer.
pub const SIMPLESIGNING_LAYER: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation holding a signature (empty for attestations: the envelope is signed).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The tag of an attachment: `sha256-<hex>.att` or `.sig`.
pub fn tag(subject: &Digest, suffix: &str) -> String {
    format!("sha256-{}.{suffix}", subject.hex())
}

/// The payload a `.sig` signs (cosign's "simple signing" format).
pub fn simple_signing_payload(reference: &str, subject: &Digest) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": subject.to_string()},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .expect("json")
}

fn attach(
    dst: &Location,
    subject: &Digest,
    suffix: &str,
    layer_type: &str,
    layer_bytes: &[u8],
    annotations: Value,
) -> Result<Digest, CopyError> {
    let layer_digest = dst.put_blob(layer_bytes)?;
    let t = tag(subject, suffix);
    let mut layers: Vec<Value> = match dst.get_manifest_opt(&t)? {
        Some(m) => {
            let v: Value = serde_json::from_slice(&m.bytes)
                .map_err(|e| CopyError::Invalid(format!("{t}: {e}")))?;
            v["layers"].as_array().cloned().unwrap_or_default()
        }
        None => Vec::new(),
    };
    if !layers.iter().any(|l| l["digest"] == layer_digest.as_str()) {
        layers.push(json!({
            "mediaType": layer_type,
            "size": layer_bytes.len(),
            "digest": layer_digest.to_string(),
            "annotations": annotations,
        }));
    }
    let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "", "os": "", "config": {},
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json");
    let config_digest = dst.put_blob(&config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V1,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
        "layers": layers,
    }))
    .expect("json");
    let m = Manifest {
        media_type: MANIFEST_V1.into(),
        digest: Digest::of(&manifest),
        bytes: manifest,
    };
    dst.put_manifest(&t, &m)
}

/// Attaches a DSSE attestation to `subject` at `dst` (`sha256-<hex>.att`); `envelope_json`
/// should be signed with the P-256 key cosign is given.
pub fn attach_attestation(
    dst: &Location,
    subject: &Digest,
    envelope_json: &[u8],
    predicate_type: &str,
) -> Result<Digest, CopyError> {
    attach(
        dst,
        subject,
        "att",
        DSSE_LAYER,
        envelope_json,
        json!({SIGNATURE_ANNOTATION: "", "predicateType": predicate_type}),
    )
}

/// Attaches a signature of `subject` (`sha256-<hex>.sig`): `signature_b64` is the base64 of an
/// ASN.1 DER ECDSA P-256 signature over `payload` (a [`simple_signing_payload`]).
pub fn attach_signature(
    dst: &Location,
    subject: &Digest,
    payload: &[u8],
    signature_b64: &str,
) -> Result<Digest, CopyError> {
    attach(
        dst,
        subject,
        "sig",
        SIMPLESIGNING_LAYER,
        payload,
        json!({SIGNATURE_ANNOTATION: signature_b64}),
    )
}
