//! The one text form of Ed25519 keys (issue #11): the format of Go's
//! `golang.org/x/mod/sumdb/note`, which C2SP signed notes use. A public key
//! (a *vkey*) is `NAME+KEYID+BASE64(algorithm || 32 bytes)`, a secret key
//! `PRIVATE+KEY+NAME+KEYID+BASE64(algorithm || seed)`. Algorithm 0x01 is an
//! Ed25519 note key: a log's checkpoint key, and an actor's command key
//! ([`crate::signing`]); 0x04 a witness's `cosignature/v1` key.
//!
//! It lives in the core, not in the auditor's toolkit, because the
//! engine's writer checks actors' signatures too and must read their keys
//! exactly as the verifier does. Making keys (randomness) and writing
//! notes stay in `strive-audit`; this module is pure.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

/// The algorithm byte of Ed25519 keys in signed notes.
pub const NOTE_ED25519: u8 = 0x01;
/// The algorithm byte of Ed25519 `cosignature/v1` keys (C2SP
/// tlog-cosignature).
pub const COSIGNATURE_V1: u8 = 0x04;
/// What starts a secret key, as in Go's note package.
pub const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The key text is not a key of the expected kind.
    Malformed {
        /// What is wrong.
        message: String,
    },
    /// The operating system gave no randomness.
    Randomness {
        /// The system's error.
        message: String,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Malformed { message } => write!(f, "not a strive key: {message}"),
            KeyError::Randomness { message } => {
                write!(f, "no randomness for a new key: {message}")
            }
        }
    }
}

impl std::error::Error for KeyError {}

/// An Ed25519 public key with its name, for checking signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

/// Checks a key name: non-empty, without white space or `+`.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(KeyError::Malformed {
            message: format!("key name {name:?} must be non-empty, without spaces or `+`"),
        });
    }
    Ok(())
}

/// The signed-note key id: the first 4 bytes of
/// `SHA-256(name || "\n" || algorithm || public key)`, where the algorithm
/// byte is 0x01 for a log's Ed25519 note key and 0x04 for a witness's
/// `cosignature/v1` key.
pub fn key_id(name: &str, algorithm: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([algorithm]);
    hasher.update(public);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Splits `NAME+KEYID+BASE64(algorithm || 32 bytes)` into its name, its id
/// and its 32 key bytes, refusing any other algorithm byte.
pub fn parse_key_parts(text: &str, algorithm: u8) -> Result<(String, String, [u8; 32]), KeyError> {
    let malformed = |message: &str| KeyError::Malformed {
        message: message.to_owned(),
    };
    // Standard base64 uses `+` too, so only the first two `+` separate
    // fields: names may not contain one and the id is hex.
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(blob)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed("expected NAME+KEYID+BASE64"));
    };
    check_name(name)?;
    if id.len() != 8 || hex::decode(id).is_err() {
        return Err(malformed("the key id must be 8 hex digits"));
    }
    let blob = BASE64
        .decode(blob)
        .map_err(|_| malformed("the key is not base64"))?;
    if blob.len() != 33 || blob[0] != algorithm {
        return Err(KeyError::Malformed {
            message: match algorithm {
                NOTE_ED25519 => "not a note key: only Ed25519 note keys (algorithm 1, 32 \
                                 bytes) sign checkpoints and commands"
                    .to_owned(),
                _ => format!(
                    "not a witness key: only Ed25519 cosignature/v1 keys (algorithm \
                     {algorithm}, 32 bytes) cosign checkpoints"
                ),
            },
        });
    }
    let mut bytes = [0; 32];
    bytes.copy_from_slice(&blob[1..]);
    Ok((name.to_owned(), id.to_owned(), bytes))
}

/// A secret key as text: `PRIVATE+KEY+NAME+KEYID+BASE64(algorithm ||
/// seed)`, the format of Go's note package.
pub fn encode_secret(name: &str, algorithm: u8, key: &ed25519_dalek::SigningKey) -> String {
    let mut blob = vec![algorithm];
    blob.extend_from_slice(&key.to_bytes());
    let id = key_id(name, algorithm, key.verifying_key().as_bytes());
    format!(
        "{PRIVATE_PREFIX}{name}+{}+{}",
        hex::encode(id),
        BASE64.encode(blob)
    )
}

/// A public key as text (a vkey): `NAME+KEYID+BASE64(algorithm || key)`.
pub fn encode_public(name: &str, algorithm: u8, key: &ed25519_dalek::VerifyingKey) -> String {
    let mut blob = vec![algorithm];
    blob.extend_from_slice(key.as_bytes());
    let id = key_id(name, algorithm, key.as_bytes());
    format!("{name}+{}+{}", hex::encode(id), BASE64.encode(blob))
}

fn mismatched_id() -> KeyError {
    KeyError::Malformed {
        message: "the key id does not match the key".to_owned(),
    }
}

/// Reads a secret key written by [`encode_secret`] for `algorithm`.
pub fn parse_secret(
    text: &str,
    algorithm: u8,
) -> Result<(String, ed25519_dalek::SigningKey), KeyError> {
    let rest = text
        .trim()
        .strip_prefix(PRIVATE_PREFIX)
        .ok_or_else(|| KeyError::Malformed {
            message: "a signing key starts with PRIVATE+KEY+".to_owned(),
        })?;
    let (name, id, seed) = parse_key_parts(rest, algorithm)?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    if id != hex::encode(key_id(&name, algorithm, key.verifying_key().as_bytes())) {
        return Err(mismatched_id());
    }
    Ok((name, key))
}

/// Reads a vkey written by [`encode_public`] for `algorithm`.
pub fn parse_public(
    text: &str,
    algorithm: u8,
) -> Result<(String, ed25519_dalek::VerifyingKey), KeyError> {
    let (name, id, bytes) = parse_key_parts(text, algorithm)?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::Malformed {
        message: "not a valid Ed25519 public key".to_owned(),
    })?;
    if id != hex::encode(key_id(&name, algorithm, key.as_bytes())) {
        return Err(mismatched_id());
    }
    Ok((name, key))
}

impl VerifierKey {
    /// Reads a verifier key (`NAME+KEYID+BASE64`).
    pub fn parse(text: &str) -> Result<VerifierKey, KeyError> {
        let (name, key) = parse_public(text, NOTE_ED25519)?;
        Ok(VerifierKey { name, key })
    }

    /// The key as text: `NAME+KEYID+BASE64(0x01 || public key)`.
    pub fn encode(&self) -> String {
        encode_public(&self.name, NOTE_ED25519, &self.key)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte id signatures name the key by.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, NOTE_ED25519, self.key.as_bytes())
    }

    /// The key named `name` with the public half `key`.
    pub fn new(name: &str, key: ed25519_dalek::VerifyingKey) -> Result<VerifierKey, KeyError> {
        check_name(name)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key,
        })
    }

    /// The 32 bytes of the public key.
    pub fn public_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`,
    /// checked strictly (`verify_strict`: no small-order keys, no
    /// malleable signatures), so that one message has one valid signature
    /// per key and a signature cannot be altered into another valid one.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(message, &signature).is_ok()
    }
}
