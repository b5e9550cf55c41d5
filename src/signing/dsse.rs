//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>) signed with the CI's Ed25519
//! signing key, in-toto Statement v1 with a SLSA provenance v1 predicate, and the public key
//! in the forms other verifiers take (hex for securesystemslib, PEM for cosign).
//!
//! The signature is plain Ed25519 over the DSSE pre-authentication encoding (PAE), made with the
//! same OpenPGP key that signs ledger commits (its Ed25519 signing subkey).

use base64::Engine as _;
use sequoia_openpgp as openpgp;

use openpgp::crypto::Signer as _;
use openpgp::crypto::mpi;
use openpgp::types::HashAlgorithm;

use super::{SigningError, SigningKey};
use crate::model::record::{DsseEnvelope, DsseSignature};

/// The payload type of in-toto statements.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The raw Ed25519 public key of an OpenPGP EdDSA (or Ed25519) key.
fn raw_public(m: &mpi::PublicKey) -> Option<[u8; 32]> {
    match m {
        mpi::PublicKey::EdDSA { curve, q } if *curve == openpgp::types::Curve::Ed25519 => {
            let (x, _) = q.decode_point(curve).ok()?;
            x.try_into().ok()
        }
        mpi::PublicKey::Ed25519 { a } => Some(*a),
        _ => None,
    }
}

/// The key id seakeeper puts in envelopes: `sha256:` of the raw public key, in hex.
pub fn keyid(public: &[u8; 32]) -> String {
    crate::model::Digest::of(public).hex().to_owned()
}

/// A PKIX PEM public key, as cosign reads it (`cosign verify-attestation --key`).
pub fn pem(public: &[u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(public);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

impl SigningKey {
    /// The signing subkey's raw Ed25519 public key.
    pub fn ed25519_public(&self) -> Result<[u8; 32], SigningError> {
        raw_public(self.keypair.public().mpis()).ok_or(SigningError::Openpgp {
            what: "DSSE signing",
            message: "the signing key is not an Ed25519 key".into(),
        })
    }

    /// A raw Ed25519 signature over `message` (cosign's `.sig` for Ed25519 keys).
    pub fn sign_ed25519(&mut self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let oops = |e: anyhow::Error| SigningError::Openpgp {
            what: "Ed25519 signing",
            message: e.to_string(),
        };
        match self
            .keypair
            .sign(HashAlgorithm::SHA512, message)
            .map_err(oops)?
        {
            mpi::Signature::EdDSA { r, s } => {
                let mut v = r.value_padded(32).map_err(oops)?.to_vec();
                v.extend_from_slice(&s.value_padded(32).map_err(oops)?);
                Ok(v)
            }
            mpi::Signature::Ed25519 { s } => Ok(s.to_vec()),
            _ => Err(SigningError::Openpgp {
                what: "Ed25519 signing",
                message: "not an Ed25519 key".into(),
            }),
        }
    }

    /// Signs `payload` into a DSSE envelope.
    pub fn sign_dsse(
        &mut self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<DsseEnvelope, SigningError> {
        let public = self.ed25519_public()?;
        let raw = self.sign_ed25519(&pae(payload_type, payload))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(DsseEnvelope {
            payload_type: payload_type.to_owned(),
            payload: b64.encode(payload),
            signatures: vec![DsseSignature {
                keyid: keyid(&public),
                sig: b64.encode(raw),
            }],
        })
    }
}

/// The Ed25519 signing keys of certs (raw public keys), for verifying envelopes.
pub fn cert_ed25519_keys(cert_bytes: &[u8]) -> Result<Vec<[u8; 32]>, SigningError> {
    use openpgp::parse::Parse as _;
    let certs =
        openpgp::cert::CertParser::from_bytes(cert_bytes).map_err(|e| SigningError::Parse {
            what: "cert".into(),
            message: e.to_string(),
        })?;
    let p = super::policy();
    let mut out = Vec::new();
    for cert in certs {
        let cert = cert.map_err(|e| SigningError::Parse {
            what: "cert".into(),
            message: e.to_string(),
        })?;
        for k in cert
            .keys()
            .with_policy(&p, None)
            .alive()
            .revoked(false)
            .for_signing()
        {
            if let Some(raw) = raw_public(k.key().mpis()) {
                out.push(raw);
            }
        }
    }
    Ok(out)
}

/// Checks an envelope: some signature verifies with one of `keys` (raw Ed25519). Returns the
/// decoded payload.
pub fn verify(env: &DsseEnvelope, keys: &[[u8; 32]]) -> Result<Vec<u8>, String> {
    if env.payload_type != IN_TOTO {
        return Err(format!(
            "payloadType {:?} is not {IN_TOTO}",
            env.payload_type
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64
        .decode(&env.payload)
        .map_err(|e| format!("the payload is not base64: {e}"))?;
    let message = pae(&env.payload_type, &payload);
    for s in &env.signatures {
        let Ok(sig) = b64.decode(&s.sig) else {
            continue;
        };
        let Ok(sig): Result<[u8; 64], _> = sig.try_into() else {
            continue;
        };
        for k in keys {
            let key: openpgp::packet::Key<
                openpgp::packet::key::PublicParts,
                openpgp::packet::key::UnspecifiedRole,
            > = match openpgp::packet::key::Key4::import_public_ed25519(
                k,
                std::time::SystemTime::UNIX_EPOCH,
            ) {
                Ok(k) => k.into(),
                Err(_) => continue,
            };
            let mpi_sig = mpi::Signature::EdDSA {
                r: mpi::MPI::new(&sig[..32]),
                s: mpi::MPI::new(&sig[32..]),
            };
            if key
                .verify(&mpi_sig, HashAlgorithm::SHA512, &message)
                .is_ok()
            {
                return Ok(payload);
            }
        }
    }
    Err("no signature in the envelope verifies with the given keys".into())
}
