//! DSSE envelopes (<https://github.com/secure-systems-lab/dsse>) signed with the CI's keys,
//! in-toto Statement v1 with a SLSA provenance v1 predicate, and the public keys in the forms
//! other verifiers take (hex for securesystemslib, PEM for cosign and openssl).
//!
//! Two subkeys of the one OpenPGP key sign here, for two audiences:
//! - the Ed25519 signing subkey (the one that signs ledger commits) signs the envelopes the
//!   ledger records, with plain Ed25519 over the DSSE pre-authentication encoding (PAE); the
//!   promotion check and `ledger verify` accept only these;
//! - the ECDSA P-256 signing subkey ([`CosignKey`]) signs what is attached to images for cosign:
//!   the simple-signing payload of a `.sig` and the envelope of a `.att`, as ASN.1 DER ECDSA
//!   over SHA-256, which is what `cosign verify --key` and `cosign verify-attestation --key`
//!   check. Nothing that decides trust inside seakeeper reads these.

use std::path::Path;

use base64::Engine as _;
use sequoia_openpgp as openpgp;
use sha2::Digest as _;

use openpgp::cert::Cert;
use openpgp::crypto::mpi;
use openpgp::crypto::{KeyPair, Signer as _};
use openpgp::types::{Curve, HashAlgorithm};

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

/// The Ed25519 key as a PKIX (SubjectPublicKeyInfo) PEM public key, for openssl and
/// securesystemslib. cosign takes [`p256_pem`] instead: it does not verify Ed25519
/// attestations.
pub fn pem(public: &[u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(public);
    pem_block(&der)
}

fn pem_block(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    // RFC 7468: 64 characters a line. The text is base64, so every chunk is ASCII.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}

impl SigningKey {
    /// The signing subkey's raw Ed25519 public key.
    pub fn ed25519_public(&self) -> Result<[u8; 32], SigningError> {
        raw_public(self.keypair.public().mpis()).ok_or(SigningError::Openpgp {
            what: "DSSE signing",
            message: "the signing key is not an Ed25519 key".into(),
        })
    }

    /// A raw Ed25519 signature over `message` (the ledger's DSSE envelopes).
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

/// An uncompressed NIST P-256 point (`0x04 || X || Y`), as OpenPGP and SubjectPublicKeyInfo
/// both carry it.
pub type P256Point = [u8; 65];

/// What to say when a key has no P-256 subkey: which keys those are, and that the ledger is fine.
const NO_P256: &str = "no usable ECDSA P-256 signing subkey with its secret, which cosign \
     signatures need (is this the public cert instead of the key?). Keys made by `seakeeper key \
     generate` before it added that subkey have only the Ed25519 one: they still sign the ledger \
     and its attestations, but cannot make cosign signatures; generate a new key for those";

/// The P-256 point of an OpenPGP ECDSA key on NIST P-256.
fn p256_point(m: &mpi::PublicKey) -> Option<P256Point> {
    match m {
        mpi::PublicKey::ECDSA { curve, q } if *curve == Curve::NistP256 => q
            .value()
            .try_into()
            .ok()
            .filter(|p: &P256Point| p[0] == 0x04),
        _ => None,
    }
}

/// The P-256 key as a PKIX (SubjectPublicKeyInfo) PEM public key: what `cosign verify --key`
/// and `cosign verify-attestation --key` take.
pub fn p256_pem(public: &P256Point) -> String {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) point }.
    let mut der = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    der.extend_from_slice(public);
    pem_block(&der)
}

/// The ECDSA P-256 signing keys of certs (uncompressed points), for `attest public-key
/// --cosign`.
pub fn cert_p256_keys(cert_bytes: &[u8]) -> Result<Vec<P256Point>, SigningError> {
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
            if let Some(point) = p256_point(k.key().mpis()) {
                out.push(point);
            }
        }
    }
    Ok(out)
}

/// One DER INTEGER from a big-endian unsigned value: no leading zero bytes, except one when
/// the high bit is set (DER integers are signed).
fn der_integer(out: &mut Vec<u8>, be: &[u8]) {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let v = &be[start..];
    let pad = v.first().is_none_or(|b| b & 0x80 != 0);
    out.push(0x02);
    out.push((v.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// `SEQUENCE { INTEGER r, INTEGER s }`, the ECDSA signature encoding cosign and Go's
/// `ecdsa.VerifyASN1` take. For P-256, r and s are at most 32 bytes, so every length fits in one
/// byte (the whole is at most 72 bytes).
fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(70);
    der_integer(&mut body, r);
    der_integer(&mut body, s);
    let mut out = vec![0x30, body.len() as u8];
    out.extend_from_slice(&body);
    out
}

/// The ECDSA P-256 signing subkey of the CI's key: it signs what cosign verifies (`.sig`
/// simple-signing payloads and `.att` DSSE envelopes), never the ledger.
pub struct CosignKey {
    keypair: KeyPair,
    public: P256Point,
}

impl std::fmt::Debug for CosignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("CosignKey")
            .field("fingerprint", &self.keypair.public().fingerprint().to_hex())
            .finish_non_exhaustive()
    }
}

impl CosignKey {
    /// Reads the P-256 subkey of the armored (or binary) secret key at `path`.
    pub fn load(path: &Path) -> Result<CosignKey, SigningError> {
        let bytes = std::fs::read(path).map_err(|source| SigningError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads the P-256 subkey of a secret key in `bytes`; `what` names the source in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<CosignKey, SigningError> {
        use openpgp::parse::Parse as _;
        let cert = Cert::from_bytes(bytes).map_err(|e| SigningError::Parse {
            what: what.to_owned(),
            message: format!("not an OpenPGP key: {e}"),
        })?;
        Self::from_cert(&cert, what)
    }

    fn from_cert(cert: &Cert, what: &str) -> Result<CosignKey, SigningError> {
        let p = super::policy();
        let no_key = || SigningError::Parse {
            what: what.to_owned(),
            message: NO_P256.to_owned(),
        };
        let (key, public) = cert
            .keys()
            .with_policy(&p, None)
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .secret()
            .find_map(|k| p256_point(k.key().mpis()).map(|point| (k, point)))
            .ok_or_else(no_key)?;
        let keypair = key
            .key()
            .clone()
            .into_keypair()
            .map_err(|e| SigningError::Parse {
                what: what.to_owned(),
                message: format!(
                    "the P-256 signing key is not usable (is it password-protected?): {e}"
                ),
            })?;
        Ok(CosignKey { keypair, public })
    }

    /// The public key, an uncompressed point.
    pub fn public(&self) -> &P256Point {
        &self.public
    }

    /// An ECDSA P-256 signature over SHA-256 of `message`, ASN.1 DER encoded (cosign's `.sig`
    /// annotation holds it in base64).
    pub fn sign(&mut self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let digest = sha2::Sha256::digest(message);
        match self
            .keypair
            .sign(HashAlgorithm::SHA256, &digest)
            .map_err(|e| SigningError::Openpgp {
                what: "ECDSA P-256 signing",
                message: e.to_string(),
            })? {
            mpi::Signature::ECDSA { r, s } => Ok(der_signature(r.value(), s.value())),
            _ => Err(SigningError::Openpgp {
                what: "ECDSA P-256 signing",
                message: "the key did not make an ECDSA signature".into(),
            }),
        }
    }

    /// Signs `payload` into a DSSE envelope for a cosign `.att`. The key id is empty, as cosign
    /// writes it: the verifier is told the key (`--key`).
    pub fn sign_dsse(
        &mut self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<DsseEnvelope, SigningError> {
        let sig = self.sign(&pae(payload_type, payload))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(DsseEnvelope {
            payload_type: payload_type.to_owned(),
            payload: b64.encode(payload),
            signatures: vec![DsseSignature {
                keyid: String::new(),
                sig: b64.encode(sig),
            }],
        })
    }
}

impl SigningKey {
    /// The P-256 subkey of the same key, for cosign signatures; an error that says so when the
    /// key has none (keys made before `key generate` added one).
    pub fn cosign_key(&self) -> Result<CosignKey, SigningError> {
        CosignKey::from_cert(&self.cert, self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back what [`der_signature`] wrote (a strict DER reader for this one shape).
    fn der_parse(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        assert_eq!(der[0], 0x30);
        assert_eq!(der[1] as usize, der.len() - 2);
        let mut rest = &der[2..];
        let mut ints = Vec::new();
        for _ in 0..2 {
            assert_eq!(rest[0], 0x02);
            let n = rest[1] as usize;
            let v = &rest[2..2 + n];
            assert!(!v.is_empty());
            assert!(v[0] & 0x80 == 0, "a DER integer here is never negative");
            assert!(
                !(v.len() > 1 && v[0] == 0 && v[1] & 0x80 == 0),
                "no needless leading zero"
            );
            ints.push(v.to_vec());
            rest = &rest[2 + n..];
        }
        assert!(rest.is_empty());
        (ints[0].clone(), ints[1].clone())
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        let mut out = Vec::new();
        der_integer(&mut out, &[0, 0, 0x7f]);
        der_integer(&mut out, &[0x80]);
        der_integer(&mut out, &[0, 0]);
        assert_eq!(out, [2, 1, 0x7f, 2, 2, 0, 0x80, 2, 1, 0]);
    }

    #[test]
    fn p256_signatures_verify_over_sha256_and_the_subkeys_keep_their_jobs() {
        let (secret, public) = super::super::generate_key("Test <test@example.org>").unwrap();
        // The ledger key is the Ed25519 subkey; the cosign key is the P-256 one.
        let mut ledger_key = SigningKey::from_bytes(&secret, "key").unwrap();
        assert_eq!(
            cert_ed25519_keys(&public).unwrap(),
            [ledger_key.ed25519_public().unwrap()]
        );
        let env = ledger_key.sign_dsse(IN_TOTO, b"{}").unwrap();
        assert_eq!(
            verify(&env, &cert_ed25519_keys(&public).unwrap()).unwrap(),
            b"{}"
        );
        let mut key = ledger_key.cosign_key().unwrap();
        assert_eq!(cert_p256_keys(&public).unwrap(), [*key.public()]);
        assert!(
            p256_pem(key.public())
                .starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")
        );
        let verifier: openpgp::packet::Key<
            openpgp::packet::key::PublicParts,
            openpgp::packet::key::UnspecifiedRole,
        > = key.keypair.public().clone();
        // Enough signatures that r or s has its high bit set in some (a DER pad byte).
        for i in 0..32u8 {
            let message = [b'm', i];
            let (r, s) = der_parse(&key.sign(&message).unwrap());
            let sig = mpi::Signature::ECDSA {
                r: mpi::MPI::new(&r),
                s: mpi::MPI::new(&s),
            };
            let digest = sha2::Sha256::digest(message);
            verifier
                .verify(&sig, HashAlgorithm::SHA256, &digest)
                .expect("the signature verifies");
            let other = sha2::Sha256::digest([b'x', i]);
            assert!(
                verifier
                    .verify(&sig, HashAlgorithm::SHA256, &other)
                    .is_err()
            );
        }
        // A cert is not a key.
        let err = CosignKey::from_bytes(&public, "cert").unwrap_err();
        assert!(err.to_string().contains("no usable ECDSA P-256"), "{err}");
    }
}
