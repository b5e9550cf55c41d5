//! OpenPGP keys and signatures for ledger commits (Sequoia, in-process).
//!
//! Keys are OpenPGP v4 (RFC 4880) so that GnuPG 2.2, which cannot read v6 keys, verifies the
//! ledger with plain `git verify-commit`. This module knows nothing of git or the ledger: it
//! signs byte strings and checks signatures over byte strings against a set of certificates.

pub mod dsse;
pub mod provenance;

use std::collections::HashMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::model::KeyRole;

use sequoia_openpgp as openpgp;

use openpgp::Packet;
use openpgp::cert::prelude::*;
use openpgp::crypto::KeyPair;
use openpgp::packet::key::{PublicParts, UnspecifiedRole};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::parse::Parse as _;
use openpgp::policy::{HashAlgoSecurity, Policy as _, StandardPolicy};
use openpgp::serialize::{Serialize as _, SerializeInto as _};
use openpgp::types::SignatureType;

/// An error from key handling or signature checking.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// A key or cert file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A file or buffer does not hold what it should.
    #[error("{what}: {message}")]
    Parse {
        /// What was being read (a path or a description).
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The key has no secret key material usable for signing.
    #[error("{what}: no usable secret signing key (is this the public cert instead of the key?)")]
    NoSigningKey {
        /// The file or description.
        what: String,
    },
    /// Sequoia refused an operation.
    #[error("{what}: {message}")]
    Openpgp {
        /// The operation.
        what: &'static str,
        /// Sequoia's message.
        message: String,
    },
}

/// A bad or untrusted signature; the message says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The signature bytes are not an OpenPGP signature.
    #[error("the signature is not a readable OpenPGP signature: {0}")]
    Malformed(String),
    /// No cert in the keyring holds the key that made the signature.
    #[error("signed by unknown key {0}")]
    UnknownKey(String),
    /// The signature does not match the data (the data or signature was altered).
    #[error("bad signature by {fingerprint}: {message}")]
    Bad {
        /// The cert whose key was tried.
        fingerprint: String,
        /// Sequoia's reason.
        message: String,
    },
}

fn policy() -> StandardPolicy<'static> {
    StandardPolicy::new()
}

/// Generates a new v4 key bound to `userid`: an Ed25519 certification primary key, an Ed25519
/// signing subkey (ledger commits and the ledger's DSSE envelopes), an ECDSA P-256 signing
/// subkey (the cosign `.sig` and `.att` signatures, see [`dsse::CosignKey`]: cosign verifies
/// ECDSA P-256 everywhere, Ed25519 not on attestations) and a Cv25519 encryption subkey
/// (transport and storage: the job secrets sealed in the config repo, see
/// the `secrets` module). Returns the secret key and its public cert, both
/// ASCII-armored.
///
/// [`SigningKey`] takes the first signing subkey it finds; Sequoia orders subkeys by their
/// public key material, EdDSA before ECDSA, so that is the Ed25519 one (the tests check that
/// commits and envelopes are made with it).
pub fn generate_key(userid: &str) -> Result<(Vec<u8>, Vec<u8>), SigningError> {
    let oops = |what: &'static str| {
        move |e: anyhow::Error| SigningError::Openpgp {
            what,
            message: e.to_string(),
        }
    };
    let (cert, _revocation) = CertBuilder::new()
        .set_profile(openpgp::Profile::RFC4880)
        .map_err(oops("selecting the RFC 4880 profile"))?
        .set_cipher_suite(CipherSuite::Cv25519)
        .add_userid(userid)
        .add_signing_subkey()
        .add_subkey(
            openpgp::types::KeyFlags::empty().set_signing(),
            None,
            CipherSuite::P256,
        )
        .add_subkey(encryption_flags(), None, CipherSuite::Cv25519)
        .generate()
        .map_err(oops("generating the key"))?;
    let secret = cert
        .as_tsk()
        .armored()
        .to_vec()
        .map_err(oops("armoring the key"))?;
    let public = cert.armored().to_vec().map_err(oops("armoring the cert"))?;
    Ok((secret, public))
}

/// The flags of the encryption subkey: transport and storage (GnuPG encrypts to either).
fn encryption_flags() -> openpgp::types::KeyFlags {
    openpgp::types::KeyFlags::empty()
        .set_transport_encryption()
        .set_storage_encryption()
}

/// Adds a Cv25519 encryption subkey to a secret key made before seakeeper sealed secrets
/// (`what` names it in errors). Returns the new secret key and its public cert, armored; a key
/// that already has a usable encryption subkey is refused (nothing to do).
pub fn add_encryption_subkey(
    secret_key: &[u8],
    what: &str,
) -> Result<(Vec<u8>, Vec<u8>), SigningError> {
    let parse = |message: String| SigningError::Parse {
        what: what.to_owned(),
        message,
    };
    let cert =
        Cert::from_bytes(secret_key).map_err(|e| parse(format!("not an OpenPGP key: {e}")))?;
    if !cert.is_tsk() {
        return Err(parse(
            "this is a public cert: the secret key is needed to add a subkey".into(),
        ));
    }
    let p = policy();
    let vc = cert
        .with_policy(&p, None)
        .map_err(|e| parse(format!("the key is not valid: {e}")))?;
    if vc
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_storage_encryption()
        .next()
        .is_some()
    {
        return Err(parse("the key already has an encryption subkey".into()));
    }
    let oops = |e: anyhow::Error| SigningError::Openpgp {
        what: "adding the encryption subkey",
        message: e.to_string(),
    };
    // Sequoia backdates a new subkey a little; never before its primary key (a key made a
    // moment ago), which would make the subkey invalid.
    let created = std::cmp::max(
        vc.primary_key().key().creation_time(),
        std::time::SystemTime::now() - std::time::Duration::from_secs(60),
    );
    let cert = KeyBuilder::new(encryption_flags())
        .set_creation_time(created)
        .set_cipher_suite(CipherSuite::Cv25519)
        .subkey(vc)
        .map_err(oops)?
        .attach_cert()
        .map_err(oops)?;
    let secret = cert.as_tsk().armored().to_vec().map_err(oops)?;
    let public = cert.armored().to_vec().map_err(oops)?;
    Ok((secret, public))
}

/// Writes `bytes` to a new file with the given mode; refuses to overwrite.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SigningError> {
    let io = |source| SigningError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// A secret signing key, ready to sign.
pub struct SigningKey {
    cert: Cert,
    keypair: KeyPair,
    fingerprint: String,
    userid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads an armored (or binary) secret key from `path`.
    pub fn load(path: &Path) -> Result<SigningKey, SigningError> {
        let bytes = fs::read(path).map_err(|source| SigningError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Reads a secret key from bytes; `what` names the source in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<SigningKey, SigningError> {
        let cert = Cert::from_bytes(bytes).map_err(|e| SigningError::Parse {
            what: what.to_owned(),
            message: format!("not an OpenPGP key: {e}"),
        })?;
        let p = policy();
        let key = cert
            .keys()
            .with_policy(&p, None)
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .secret()
            .next()
            .ok_or_else(|| SigningError::NoSigningKey {
                what: what.to_owned(),
            })?;
        let keypair = key
            .key()
            .clone()
            .into_keypair()
            .map_err(|e| SigningError::Parse {
                what: what.to_owned(),
                message: format!("the signing key is not usable (is it password-protected?): {e}"),
            })?;
        let userid = cert
            .userids()
            .next()
            .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
            .unwrap_or_else(|| "seakeeper".to_owned());
        Ok(SigningKey {
            fingerprint: cert.fingerprint().to_hex(),
            cert,
            keypair,
            userid,
        })
    }

    /// The cert's (primary key's) fingerprint, 40 uppercase hex digits.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The first user id, e.g. `seakeeper CI <ci@example.org>`.
    pub fn userid(&self) -> &str {
        &self.userid
    }

    /// The public cert, ASCII-armored.
    pub fn public_cert_armored(&self) -> Result<Vec<u8>, SigningError> {
        self.cert
            .armored()
            .to_vec()
            .map_err(|e| SigningError::Openpgp {
                what: "armoring the cert",
                message: e.to_string(),
            })
    }

    /// A detached binary signature over `payload`, ASCII-armored as git's `gpgsig` expects.
    pub fn sign_detached(&mut self, payload: &[u8]) -> Result<String, SigningError> {
        let oops = |e: anyhow::Error| SigningError::Openpgp {
            what: "signing",
            message: e.to_string(),
        };
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut self.keypair, payload)
            .map_err(oops)?;
        let mut w = openpgp::armor::Writer::new(Vec::new(), openpgp::armor::Kind::Signature)
            .map_err(|e| oops(e.into()))?;
        Packet::from(sig).serialize(&mut w).map_err(oops)?;
        let bytes = w.finalize().map_err(|e| oops(e.into()))?;
        String::from_utf8(bytes).map_err(|e| oops(e.into()))
    }
}

/// A set of public certs against which signatures are checked.
#[derive(Default, Clone)]
pub struct Keyring {
    /// Signing-capable keys by their fingerprint and key id (uppercase hex), with the
    /// fingerprint of the cert they belong to.
    keys: HashMap<String, (String, openpgp::packet::Key<PublicParts, UnspecifiedRole>)>,
    certs: HashMap<String, Cert>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Parses a public cert; returns its fingerprint (40 uppercase hex digits).
    pub fn add_cert_bytes(&mut self, bytes: &[u8], what: &str) -> Result<String, SigningError> {
        let cert = Cert::from_bytes(bytes).map_err(|e| SigningError::Parse {
            what: what.to_owned(),
            message: format!("not an OpenPGP cert: {e}"),
        })?;
        let fpr = cert.fingerprint().to_hex();
        let p = policy();
        let valid = cert
            .with_policy(&p, None)
            .map_err(|e| SigningError::Parse {
                what: what.to_owned(),
                message: format!("the cert is not valid: {e}"),
            })?;
        for ka in valid.keys().supported().for_signing() {
            let key = ka.key().clone().role_into_unspecified();
            let key = key.parts_into_public();
            self.keys
                .insert(key.fingerprint().to_hex(), (fpr.clone(), key.clone()));
            self.keys.insert(key.keyid().to_hex(), (fpr.clone(), key));
        }
        self.certs
            .insert(fpr.clone(), cert.strip_secret_key_material());
        Ok(fpr)
    }

    /// Whether a cert with this fingerprint is in the ring.
    pub fn contains(&self, fingerprint: &str) -> bool {
        self.certs.contains_key(fingerprint)
    }

    /// The fingerprints of every cert in the ring.
    pub fn fingerprints(&self) -> impl Iterator<Item = &str> {
        self.certs.keys().map(String::as_str)
    }

    /// Checks an armored detached signature over `payload`; returns the fingerprint of the cert
    /// that made it.
    pub fn verify(&self, payload: &[u8], armored_signature: &[u8]) -> Result<String, VerifyError> {
        let packet = Packet::from_bytes(armored_signature)
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let Packet::Signature(sig) = packet else {
            return Err(VerifyError::Malformed(format!(
                "expected a signature packet, found {}",
                packet.tag()
            )));
        };
        let issuers = sig.get_issuers();
        let Some((cert_fpr, key)) = issuers.iter().find_map(|h| self.keys.get(&h.to_hex())) else {
            let named = issuers
                .first()
                .map(|h| h.to_hex())
                .unwrap_or_else(|| "(no issuer named)".into());
            return Err(VerifyError::UnknownKey(named));
        };
        let bad = |message: String| VerifyError::Bad {
            fingerprint: cert_fpr.clone(),
            message,
        };
        policy()
            .signature(&sig, HashAlgoSecurity::CollisionResistance)
            .map_err(|e| bad(e.to_string()))?;
        sig.verify_message(key, payload)
            .map_err(|e| bad(e.to_string()))?;
        Ok(cert_fpr.clone())
    }
}

/// The keys a deployment trusts, each with its roles: the certs of the config repo's `keys/`
/// (with `keys/<name>.yaml`), the certs the server's settings pin, and the server's own key.
/// Every decision about whose signature counts is taken against one of these.
#[derive(Default, Clone)]
pub struct Authority {
    ring: Keyring,
    roles: HashMap<String, std::collections::BTreeSet<KeyRole>>,
    /// Where each key came from, for messages.
    sources: HashMap<String, String>,
    /// The Ed25519 keys of each cert, which sign DSSE envelopes.
    dsse: HashMap<String, Vec<[u8; 32]>>,
}

impl Authority {
    /// An authority that trusts nothing.
    pub fn new() -> Authority {
        Authority::default()
    }

    /// Trusts the armored or binary cert `bytes` (named `what` in errors) with `roles`
    /// (added to any roles the same cert already has). Returns its fingerprint.
    pub fn add(
        &mut self,
        bytes: &[u8],
        what: &str,
        roles: impl IntoIterator<Item = KeyRole>,
    ) -> Result<String, SigningError> {
        let fpr = self.ring.add_cert_bytes(bytes, what)?;
        self.roles.entry(fpr.clone()).or_default().extend(roles);
        self.sources
            .entry(fpr.clone())
            .or_insert_with(|| what.to_owned());
        let dsse = dsse::cert_ed25519_keys(bytes).unwrap_or_default();
        self.dsse.insert(fpr.clone(), dsse);
        Ok(fpr)
    }

    /// The certs, as a keyring (roles aside).
    pub fn keyring(&self) -> &Keyring {
        &self.ring
    }

    /// Whether `fingerprint` holds `role`.
    pub fn allows(&self, fingerprint: &str, role: KeyRole) -> bool {
        self.roles
            .get(fingerprint)
            .is_some_and(|r| r.contains(&role))
    }

    /// The roles of `fingerprint` (empty when unknown).
    pub fn roles(&self, fingerprint: &str) -> Vec<KeyRole> {
        self.roles
            .get(fingerprint)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The DSSE (Ed25519) public keys of every cert holding `role`, with the cert's
    /// fingerprint.
    pub fn dsse_keys(&self, role: KeyRole) -> Vec<(String, [u8; 32])> {
        let mut out = Vec::new();
        for (fpr, keys) in &self.dsse {
            if self.allows(fpr, role) {
                out.extend(keys.iter().map(|k| (fpr.clone(), *k)));
            }
        }
        out.sort();
        out
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }

    /// Each trusted fingerprint with where it came from and its roles, for `status` and logs.
    pub fn describe(&self) -> Vec<(String, String, Vec<KeyRole>)> {
        let mut out: Vec<_> = self
            .roles
            .iter()
            .map(|(f, r)| {
                (
                    f.clone(),
                    self.sources.get(f).cloned().unwrap_or_default(),
                    r.iter().copied().collect(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Refuses `fingerprint` unless it holds `role`, saying which roles it has.
    pub fn require(&self, fingerprint: &str, role: KeyRole) -> Result<(), String> {
        if self.allows(fingerprint, role) {
            return Ok(());
        }
        match self.roles.get(fingerprint) {
            None => Err(format!(
                "key {fingerprint} is not a trusted key (not in the config repo's keys/, the \
                 settings' trusted_certs, nor the server's own)"
            )),
            Some(r) => Err(format!(
                "key {fingerprint} ({}) does not hold the role `{role}` (it has: {})",
                self.sources.get(fingerprint).map_or("", String::as_str),
                if r.is_empty() {
                    "none".to_owned()
                } else {
                    r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
                }
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let (secret, public) = generate_key("Test <test@example.org>").unwrap();
        let mut key = SigningKey::from_bytes(&secret, "test key").unwrap();
        let sig = key.sign_detached(b"hello").unwrap();
        assert!(sig.starts_with("-----BEGIN PGP SIGNATURE-----"));
        let mut ring = Keyring::new();
        let fpr = ring.add_cert_bytes(&public, "cert").unwrap();
        assert_eq!(fpr, key.fingerprint());
        assert_eq!(ring.verify(b"hello", sig.as_bytes()).unwrap(), fpr);
        assert!(matches!(
            ring.verify(b"hellO", sig.as_bytes()),
            Err(VerifyError::Bad { .. })
        ));
        assert!(matches!(
            Keyring::new().verify(b"hello", sig.as_bytes()),
            Err(VerifyError::UnknownKey(_))
        ));
        assert!(SigningKey::from_bytes(&public, "cert").is_err());
    }

    #[test]
    fn new_keys_seal_secrets_and_old_keys_get_an_encryption_subkey() {
        // (Sealing and opening with these keys is tested where both modules meet: the
        // `secret` and `config check` commands in tests/secrets.rs.)
        let encryption = |bytes: &[u8]| {
            let cert = Cert::from_bytes(bytes).unwrap();
            let p = policy();
            cert.keys()
                .with_policy(&p, None)
                .for_storage_encryption()
                .for_transport_encryption()
                .count()
        };
        let (secret, public) = generate_key("Test <test@example.org>").unwrap();
        assert_eq!(encryption(&public), 1);
        // The signing subkey is still the Ed25519 one.
        let mut key = SigningKey::from_bytes(&secret, "key").unwrap();
        let sig = key.sign_detached(b"x").unwrap();
        let mut ring = Keyring::new();
        ring.add_cert_bytes(&public, "cert").unwrap();
        ring.verify(b"x", sig.as_bytes()).unwrap();
        assert!(add_encryption_subkey(&secret, "key").is_err());

        // A key of before: no encryption subkey, then one.
        let (old, _) = CertBuilder::new()
            .set_profile(openpgp::Profile::RFC4880)
            .unwrap()
            .set_cipher_suite(CipherSuite::Cv25519)
            .add_userid("old")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let old = old.as_tsk().armored().to_vec().unwrap();
        assert_eq!(encryption(&old), 0);
        let (new, new_public) = add_encryption_subkey(&old, "old").unwrap();
        assert_eq!(encryption(&new), 1);
        assert_eq!(encryption(&new_public), 1);
        assert!(!Cert::from_bytes(&new_public).unwrap().is_tsk());
        // The same identity: the primary key did not change.
        assert_eq!(
            SigningKey::from_bytes(&new, "new").unwrap().fingerprint(),
            SigningKey::from_bytes(&old, "old").unwrap().fingerprint()
        );
    }
}
