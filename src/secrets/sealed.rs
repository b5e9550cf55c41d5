//! Job secrets sealed in git: OpenPGP messages (`secrets/<name>.pgp` in the config repo)
//! encrypted to the server's encryption subkey. Anyone with the server's public cert can seal
//! a value; only the server's secret key opens it. The secret's name is sealed with its value
//! (the literal data packet's file name, integrity-protected with the rest), so a file renamed
//! to another secret's name does not open as that secret.
//!
//! This module never prints a value: [`SecretValue`] hides itself from `Debug`, and no error
//! quotes plaintext. It does not decide who may use a secret (see [`super::source`]).

use std::io::{Read as _, Write as _};

use sequoia_openpgp as openpgp;

use openpgp::cert::prelude::*;
use openpgp::crypto::SessionKey;
use openpgp::packet::{PKESK, SKESK};
use openpgp::parse::Parse as _;
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageStructure, VerificationHelper,
};
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Armorer, Encryptor, LiteralWriter, Message};
use openpgp::types::SymmetricAlgorithm;

/// How to give a key made before seakeeper sealed secrets an encryption subkey.
pub const ADD_SUBKEY_HINT: &str = "add one with `seakeeper key add-encryption-subkey --key \
     <key file> --cert-out <new cert>` (or generate a new key with `seakeeper key generate`), \
     then re-encrypt the secrets to the new cert with `seakeeper secret reencrypt`";

/// A secret could not be sealed or opened. Messages name the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    /// A cert or key could not be read.
    #[error("{what}: {message}")]
    Key {
        /// The file or description.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The cert or key has no usable encryption (sub)key.
    #[error("{what}: no usable encryption subkey; {ADD_SUBKEY_HINT}")]
    NoEncryptionKey {
        /// The file or description.
        what: String,
    },
    /// The name cannot name a secret (the message says why).
    #[error("{0}")]
    BadName(String),
    /// The value cannot be handed to a job.
    #[error("secret `{name}`: {message}")]
    BadValue {
        /// The secret.
        name: String,
        /// What is wrong (never the value).
        message: String,
    },
    /// The file is not an OpenPGP message.
    #[error("{what}: not an OpenPGP message ({message})")]
    NotAMessage {
        /// The file.
        what: String,
        /// The parser's reason.
        message: String,
    },
    /// The message is encrypted, but not to this key.
    #[error(
        "{what}: encrypted to {recipients}, not to this server's encryption key {ours}; \
         encrypt it again with `seakeeper secret encrypt --cert <the server's cert>`"
    )]
    NotForThisKey {
        /// The file.
        what: String,
        /// The key ids it is encrypted to.
        recipients: String,
        /// This key's encryption key ids.
        ours: String,
    },
    /// The message names this key but does not decrypt or its integrity check fails.
    #[error(
        "{what}: does not decrypt, or fails its integrity check (the file was altered or \
         damaged): {message}"
    )]
    Tampered {
        /// The file.
        what: String,
        /// Sequoia's reason.
        message: String,
    },
    /// The sealed name is not the file's name.
    #[error(
        "{what}: holds the secret `{inside}`, not `{expected}` (a secret file renamed or \
         copied: encrypt the value again under its own name)"
    )]
    WrongName {
        /// The file.
        what: String,
        /// The name sealed in it.
        inside: String,
        /// The name the file has.
        expected: String,
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

/// The largest value, in bytes (it becomes an environment variable).
pub const MAX_VALUE: usize = 64 << 10;

/// A secret's value, in memory only; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// A value (UTF-8, no NUL: it becomes an environment variable).
    pub fn new(name: &str, value: &str) -> Result<SecretValue, SealedError> {
        if value.contains('\0') {
            return Err(SealedError::BadValue {
                name: name.to_owned(),
                message: "the value holds a NUL byte, which no environment variable can".into(),
            });
        }
        if value.len() > MAX_VALUE {
            return Err(SealedError::BadValue {
                name: name.to_owned(),
                message: format!("the value is longer than {MAX_VALUE} bytes"),
            });
        }
        if value.chars().count() < 4 {
            return Err(SealedError::BadValue {
                name: name.to_owned(),
                message: "the value is shorter than 4 characters, too short to be masked \
                          in logs"
                    .into(),
            });
        }
        Ok(SecretValue(value.to_owned()))
    }

    /// The value, for the one place that hands it to a job or masks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Whether `name` can name a secret (and so an environment variable).
pub fn check_name(name: &str) -> Result<(), SealedError> {
    match crate::model::secret::secret_name_problem(name) {
        None => Ok(()),
        Some(message) => Err(SealedError::BadName(message)),
    }
}

fn policy() -> StandardPolicy<'static> {
    StandardPolicy::new()
}

/// Seals `value` as the secret `name` to the encryption subkeys of the public cert `cert`
/// (armored or binary; `what` names it in errors). Returns the armored message, the content
/// of `secrets/<name>.pgp`.
pub fn seal(name: &str, value: &str, cert: &[u8], what: &str) -> Result<Vec<u8>, SealedError> {
    check_name(name)?;
    let value = SecretValue::new(name, value)?;
    let cert = Cert::from_bytes(cert).map_err(|e| SealedError::Key {
        what: what.to_owned(),
        message: format!("not an OpenPGP cert: {e}"),
    })?;
    let p = policy();
    let valid = cert.with_policy(&p, None).map_err(|e| SealedError::Key {
        what: what.to_owned(),
        message: format!("the cert is not valid: {e}"),
    })?;
    let recipients: Vec<_> = valid
        .keys()
        .supported()
        .alive()
        .revoked(false)
        .for_storage_encryption()
        .collect();
    if recipients.is_empty() {
        return Err(SealedError::NoEncryptionKey {
            what: what.to_owned(),
        });
    }
    let oops = |e: anyhow::Error| SealedError::Openpgp {
        what: "encrypting",
        message: e.to_string(),
    };
    let mut out = Vec::new();
    let message = Message::new(&mut out);
    let message = Armorer::new(message)
        .kind(openpgp::armor::Kind::Message)
        .build()
        .map_err(oops)?;
    let message = Encryptor::for_recipients(message, recipients)
        .build()
        .map_err(oops)?;
    let mut literal = LiteralWriter::new(message)
        .filename(name)
        .map_err(oops)?
        .build()
        .map_err(oops)?;
    literal
        .write_all(value.expose().as_bytes())
        .map_err(|e| oops(e.into()))?;
    literal.finalize().map_err(oops)?;
    Ok(out)
}

/// The server's secret key, able to open sealed secrets.
pub struct Opener {
    cert: Cert,
    /// Key ids (uppercase hex) of the encryption subkeys, for messages.
    ids: Vec<String>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("keys", &self.ids)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// Reads the server's secret key (armored or binary); `what` names it in errors. A key
    /// without an unencrypted secret encryption subkey is refused, saying how to add one.
    pub fn from_key_bytes(bytes: &[u8], what: &str) -> Result<Opener, SealedError> {
        let cert = Cert::from_bytes(bytes).map_err(|e| SealedError::Key {
            what: what.to_owned(),
            message: format!("not an OpenPGP key: {e}"),
        })?;
        let p = policy();
        let ids: Vec<String> = cert
            .keys()
            .with_policy(&p, None)
            .supported()
            .alive()
            .revoked(false)
            .for_storage_encryption()
            .unencrypted_secret()
            .map(|k| k.key().keyid().to_hex())
            .collect();
        if ids.is_empty() {
            return Err(SealedError::NoEncryptionKey {
                what: what.to_owned(),
            });
        }
        Ok(Opener { cert, ids })
    }

    /// The key ids of the encryption subkeys, uppercase hex.
    pub fn key_ids(&self) -> &[String] {
        &self.ids
    }

    /// Opens `sealed` (the content of `secrets/<name>.pgp`, named `what` in errors) as the
    /// secret `name`.
    pub fn open(&self, name: &str, sealed: &[u8], what: &str) -> Result<SecretValue, SealedError> {
        check_name(name)?;
        let p = policy();
        let helper = Helper {
            cert: &self.cert,
            recipients: Vec::new(),
            tried: false,
            filename: None,
        };
        let not_a_message = |e: anyhow::Error| SealedError::NotAMessage {
            what: what.to_owned(),
            message: e.to_string(),
        };
        starts_encrypted(sealed).map_err(not_a_message)?;
        let builder = DecryptorBuilder::from_bytes(sealed).map_err(not_a_message)?;
        let mut decryptor = match builder.with_policy(&p, None, helper) {
            Ok(d) => d,
            Err(e) => return Err(classify(&e, what, &self.ids)),
        };
        let mut plain = Vec::new();
        let read = (&mut decryptor)
            .take(1 << 20)
            .read_to_end(&mut plain)
            .map_err(|e| SealedError::Tampered {
                what: what.to_owned(),
                message: e.to_string(),
            });
        if let Err(e) = read {
            zero(&mut plain);
            return Err(e);
        }
        if !decryptor.message_processed() {
            zero(&mut plain);
            return Err(SealedError::Tampered {
                what: what.to_owned(),
                message: "the message is incomplete or longer than 1 MiB".into(),
            });
        }
        let helper = decryptor.into_helper();
        let inside = helper
            .filename
            .map(|f| String::from_utf8_lossy(&f).into_owned())
            .unwrap_or_default();
        if inside != name {
            zero(&mut plain);
            return Err(SealedError::WrongName {
                what: what.to_owned(),
                inside: if inside.is_empty() {
                    "(no name)".into()
                } else {
                    inside
                },
                expected: name.to_owned(),
            });
        }
        let text = match String::from_utf8(plain) {
            Ok(t) => t,
            Err(e) => {
                let mut b = e.into_bytes();
                zero(&mut b);
                return Err(SealedError::BadValue {
                    name: name.to_owned(),
                    message: "the value is not UTF-8 text".into(),
                });
            }
        };
        SecretValue::new(name, &text)
    }
}

/// Whether the message starts as an encrypted message does (a session key packet), so that
/// what is no OpenPGP message at all is told apart from a damaged one.
fn starts_encrypted(bytes: &[u8]) -> anyhow::Result<()> {
    use openpgp::parse::{PacketParserBuilder, PacketParserResult};
    let ppr = PacketParserBuilder::from_bytes(bytes)?.build()?;
    match ppr {
        PacketParserResult::Some(pp) => match &pp.packet {
            openpgp::Packet::PKESK(_) | openpgp::Packet::SKESK(_) => Ok(()),
            other => Err(anyhow::anyhow!(
                "it starts with a {} packet, not an encrypted session key",
                other.tag()
            )),
        },
        PacketParserResult::EOF(_) => Err(anyhow::anyhow!("it is empty")),
    }
}

/// Overwrites a buffer that held plaintext before it is dropped.
fn zero(b: &mut [u8]) {
    b.iter_mut().for_each(|x| *x = 0);
}

/// Why a message could not be opened, from what the helper saw.
fn classify(e: &anyhow::Error, what: &str, ours: &[String]) -> SealedError {
    let text = e.to_string();
    if let Some(recipients) = text.strip_prefix(NOT_OURS) {
        return SealedError::NotForThisKey {
            what: what.to_owned(),
            recipients: recipients.to_owned(),
            ours: ours.join(", "),
        };
    }
    if text.starts_with(NOT_ENCRYPTED) {
        return SealedError::NotAMessage {
            what: what.to_owned(),
            message: "it is not encrypted to any key".into(),
        };
    }
    SealedError::Tampered {
        what: what.to_owned(),
        message: text,
    }
}

const NOT_OURS: &str = "seakeeper: not encrypted to this key: ";
const NOT_ENCRYPTED: &str = "seakeeper: not encrypted";

struct Helper<'a> {
    cert: &'a Cert,
    /// The key ids the message is encrypted to.
    recipients: Vec<String>,
    /// Whether one of them is ours.
    tried: bool,
    /// The literal data packet's file name: the secret's sealed name.
    filename: Option<Vec<u8>>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, _: &[openpgp::KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        Ok(Vec::new())
    }

    fn check(&mut self, structure: MessageStructure) -> openpgp::Result<()> {
        use openpgp::parse::stream::MessageLayer;
        // Only encrypted data counts: a plain or merely compressed literal is refused.
        if !structure
            .iter()
            .any(|l| matches!(l, MessageLayer::Encryption { .. }))
        {
            return Err(anyhow::anyhow!("{NOT_ENCRYPTED}"));
        }
        Ok(())
    }

    fn inspect(&mut self, pp: &openpgp::parse::PacketParser<'_>) -> openpgp::Result<()> {
        if let openpgp::Packet::Literal(l) = &pp.packet {
            self.filename = l.filename().map(<[u8]>::to_vec);
        }
        Ok(())
    }
}

impl DecryptionHelper for Helper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let p = policy();
        let ours: Vec<_> = self
            .cert
            .keys()
            .with_policy(&p, None)
            .supported()
            .for_storage_encryption()
            .unencrypted_secret()
            .map(|k| k.key().clone())
            .collect();
        for pkesk in pkesks {
            let recipient = pkesk.recipient();
            self.recipients.push(
                recipient
                    .as_ref()
                    .map_or_else(|| "an anonymous key".to_owned(), |h| h.to_hex()),
            );
            for key in &ours {
                if recipient
                    .as_ref()
                    .is_some_and(|h| !h.aliases(openpgp::KeyHandle::from(key.keyid())))
                {
                    continue;
                }
                self.tried = true;
                let Ok(mut pair) = key.clone().into_keypair() else {
                    continue;
                };
                if pkesk
                    .decrypt(&mut pair, sym_algo)
                    .is_some_and(|(algo, sk)| decrypt(algo, &sk))
                {
                    return Ok(Some(self.cert.clone()));
                }
            }
        }
        if !self.tried {
            if self.recipients.is_empty() {
                return Err(anyhow::anyhow!("{NOT_ENCRYPTED}"));
            }
            return Err(anyhow::anyhow!("{NOT_OURS}{}", self.recipients.join(", ")));
        }
        Err(anyhow::anyhow!(
            "the session key does not decrypt with this server's key"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key like `seakeeper key generate` makes (signing/ cannot be used from here).
    fn key() -> (Vec<u8>, Vec<u8>) {
        use openpgp::serialize::SerializeInto as _;
        let (cert, _) = CertBuilder::new()
            .set_profile(openpgp::Profile::RFC4880)
            .unwrap()
            .set_cipher_suite(CipherSuite::Cv25519)
            .add_userid("Test <t@example.org>")
            .add_signing_subkey()
            .add_subkey(
                openpgp::types::KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                None,
                None,
            )
            .generate()
            .unwrap();
        (
            cert.as_tsk().armored().to_vec().unwrap(),
            cert.armored().to_vec().unwrap(),
        )
    }

    #[test]
    fn a_sealed_secret_opens_only_with_the_key_and_only_under_its_name() {
        let (secret, public) = key();
        let sealed = seal("DEPLOY_TOKEN", "s3cr3t-value", &public, "ci.asc").unwrap();
        assert!(sealed.starts_with(b"-----BEGIN PGP MESSAGE-----"));
        let shown = String::from_utf8_lossy(&sealed);
        assert!(!shown.contains("s3cr3t-value"));
        let opener = Opener::from_key_bytes(&secret, "key.asc").unwrap();
        let v = opener.open("DEPLOY_TOKEN", &sealed, "x.pgp").unwrap();
        assert_eq!(v.expose(), "s3cr3t-value");
        assert!(!format!("{v:?}").contains("s3cr3t"));

        // Renamed: refused.
        let e = opener
            .open("OTHER", &sealed, "secrets/OTHER.pgp")
            .unwrap_err();
        assert!(matches!(e, SealedError::WrongName { .. }), "{e}");
        assert!(
            e.to_string().contains("holds the secret `DEPLOY_TOKEN`"),
            "{e}"
        );

        // Another server's key: says to whom it is encrypted.
        let (other, _) = key();
        let e = Opener::from_key_bytes(&other, "other.asc")
            .unwrap()
            .open("DEPLOY_TOKEN", &sealed, "secrets/DEPLOY_TOKEN.pgp")
            .unwrap_err();
        assert!(matches!(e, SealedError::NotForThisKey { .. }), "{e}");

        // Tampered: one byte of the ciphertext changed.
        let mut bytes = Vec::new();
        let mut r =
            openpgp::armor::Reader::from_bytes(&sealed, openpgp::armor::ReaderMode::Tolerant(None));
        r.read_to_end(&mut bytes).unwrap();
        let n = bytes.len();
        bytes[n - 30] ^= 0x55;
        let e = opener
            .open("DEPLOY_TOKEN", &bytes, "secrets/DEPLOY_TOKEN.pgp")
            .unwrap_err();
        assert!(matches!(e, SealedError::Tampered { .. }), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");

        // Not a message at all.
        let e = opener
            .open("DEPLOY_TOKEN", b"hello", "secrets/DEPLOY_TOKEN.pgp")
            .unwrap_err();
        assert!(matches!(e, SealedError::NotAMessage { .. }), "{e}");
    }

    #[test]
    fn names_and_keys_without_encryption_subkeys_are_refused_clearly() {
        for bad in ["", "lower", "1ABC", "A-B", "SEAKEEPER_X", "PATH"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        check_name("DEPLOY_TOKEN_2").unwrap();
        let (cert, _) = CertBuilder::new()
            .set_cipher_suite(CipherSuite::Cv25519)
            .add_userid("old")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let old = openpgp::serialize::SerializeInto::to_vec(&cert.as_tsk()).unwrap();
        let e = Opener::from_key_bytes(&old, "old.asc").unwrap_err();
        assert!(
            e.to_string()
                .contains("seakeeper key add-encryption-subkey"),
            "{e}"
        );
        let public = openpgp::serialize::SerializeInto::to_vec(&cert).unwrap();
        let e = seal("X", "value", &public, "old-cert.asc").unwrap_err();
        assert!(matches!(e, SealedError::NoEncryptionKey { .. }), "{e}");
    }
}
