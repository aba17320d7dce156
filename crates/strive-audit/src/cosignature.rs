//! Witness cosignatures in the C2SP `tlog-cosignature` format
//! (`cosignature/v1`, Ed25519): a witness's statement that, as of a time,
//! the largest checkpoint of a log it has verified to be consistent with
//! every earlier one has this root.
//!
//! A cosignature is a signed-note signature line
//! `— NAME base64(key id || timestamp || signature)` whose key id hashes the
//! algorithm byte 0x04, and whose signature covers
//! `"cosignature/v1\ntime <timestamp>\n"` followed by the checkpoint's body.
//! So it sits on a checkpoint note beside the log's own signature, and
//! tools that do not know the witness ignore it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer;

use strive_core::KeyError;
use strive_core::keys::{
    COSIGNATURE_V1, check_name, encode_public, encode_secret, key_id, parse_public, parse_secret,
};

use crate::checkpoint::SIGNATURE_PREFIX;
use crate::{CheckpointError, NoteSignature, SignedCheckpoint};

/// The length of a `cosignature/v1` signature after its key id: an 8-byte
/// timestamp and a 64-byte Ed25519 signature.
const TIMESTAMPED_SIGNATURE_BYTES: usize = 8 + 64;

/// A witness's Ed25519 `cosignature/v1` signing key with its name (a
/// schema-less URL such as `witness.example/w1`). Keep it with the
/// witness, never with the log it witnesses.
pub struct WitnessKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for WitnessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("WitnessKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A witness's public key with its name, for checking its cosignatures:
/// `NAME+KEYID+BASE64(0x04 || public key)`, a C2SP vkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessVerifier {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

/// The message a `cosignature/v1` signature covers.
fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

impl WitnessKey {
    /// A new random witness key named `name`.
    pub fn generate(name: &str) -> Result<WitnessKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Randomness {
            message: e.to_string(),
        })?;
        WitnessKey::from_seed(name, seed)
    }

    /// The witness key with the 32-byte secret `seed`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<WitnessKey, KeyError> {
        check_name(name)?;
        Ok(WitnessKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a key written by [`WitnessKey::encode`].
    pub fn parse(text: &str) -> Result<WitnessKey, KeyError> {
        let (name, key) = parse_secret(text, COSIGNATURE_V1)?;
        Ok(WitnessKey { name, key })
    }

    /// The key as text: `PRIVATE+KEY+NAME+KEYID+BASE64(0x04 || seed)`.
    pub fn encode(&self) -> String {
        encode_secret(&self.name, COSIGNATURE_V1, &self.key)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, for the policies of those who trust the witness.
    pub fn verifier(&self) -> WitnessVerifier {
        WitnessVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line (ending in a newline) on the checkpoint whose
    /// note body is `body`, made at `timestamp` (seconds since the epoch).
    pub fn cosign(&self, body: &str, timestamp: u64) -> String {
        let signature = self.key.sign(cosigned_message(body, timestamp).as_bytes());
        let mut blob = self.verifier().key_id().to_vec();
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(blob))
    }
}

impl WitnessVerifier {
    /// Reads a witness's vkey (`NAME+KEYID+BASE64(0x04 || public key)`).
    pub fn parse(text: &str) -> Result<WitnessVerifier, KeyError> {
        let (name, key) = parse_public(text, COSIGNATURE_V1)?;
        Ok(WitnessVerifier { name, key })
    }

    /// The key as a vkey.
    pub fn encode(&self) -> String {
        encode_public(&self.name, COSIGNATURE_V1, &self.key)
    }

    /// The witness's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte id cosignature lines name the key by.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, COSIGNATURE_V1, self.key.as_bytes())
    }

    /// Checks this witness's cosignature on `checkpoint` and returns when
    /// it was made (seconds since the epoch). Signature lines of other
    /// keys are ignored, as signed notes require; a line with this key's
    /// name and id that does not verify is an error, never skipped.
    pub fn verify(&self, checkpoint: &SignedCheckpoint) -> Result<u64, CheckpointError> {
        let mine: Vec<&NoteSignature> = checkpoint
            .signatures
            .iter()
            .filter(|s| s.name == self.name && s.key_id == self.key_id())
            .collect();
        if mine.is_empty() {
            return Err(CheckpointError::NotSigned {
                key: self.name.clone(),
            });
        }
        let mut latest = 0;
        for line in mine {
            let bad = || CheckpointError::BadSignature {
                key: self.name.clone(),
            };
            if line.signature.len() != TIMESTAMPED_SIGNATURE_BYTES {
                return Err(bad());
            }
            let (time, signature) = line.signature.split_at(8);
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(time);
            let timestamp = u64::from_be_bytes(stamp);
            // C2SP: the timestamp must not exceed 2^63 - 1.
            if timestamp > i64::MAX as u64 {
                return Err(bad());
            }
            let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad())?;
            self.key
                .verify_strict(
                    cosigned_message(&checkpoint.body, timestamp).as_bytes(),
                    &signature,
                )
                .map_err(|_| bad())?;
            latest = latest.max(timestamp);
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, SigningKey};

    fn witness() -> WitnessKey {
        WitnessKey::from_seed("witness.example/w1", [3; 32]).expect("a key")
    }

    #[test]
    fn a_cosignature_verifies_and_carries_its_time() {
        let log = SigningKey::from_seed("strive", [1; 32]).expect("a key");
        let note = Checkpoint::new("strive", 7, [5; 32]).to_note(Some(&log));
        let signed = Checkpoint::parse(&note).expect("parses");
        let line = witness().cosign(&signed.body, 1_700_000_000);
        let cosigned = Checkpoint::parse(&format!("{note}{line}")).expect("parses");
        let verifier = witness().verifier();
        assert_eq!(verifier.verify(&cosigned), Ok(1_700_000_000));
        // The log's own signature still verifies beside it.
        assert_eq!(cosigned.verify(&log.verifier()), Ok(()));
        // Without the line, the witness did not cosign.
        assert!(matches!(
            verifier.verify(&signed),
            Err(CheckpointError::NotSigned { .. })
        ));
        // On another checkpoint the same line does not verify.
        let other = Checkpoint::new("strive", 8, [5; 32]).to_note(Some(&log));
        let forged = Checkpoint::parse(&format!("{other}{line}")).expect("parses");
        assert!(matches!(
            verifier.verify(&forged),
            Err(CheckpointError::BadSignature { .. })
        ));
    }

    #[test]
    fn witness_keys_round_trip_and_are_not_log_keys() {
        let key = witness();
        let again = WitnessKey::parse(&key.encode()).expect("parses");
        assert_eq!(again.verifier(), key.verifier());
        let vkey = key.verifier().encode();
        assert_eq!(WitnessVerifier::parse(&vkey), Ok(key.verifier()));
        // A witness's vkey is refused as a log key, and the reverse.
        assert!(crate::VerifierKey::parse(&vkey).is_err());
        let log = SigningKey::from_seed("strive", [1; 32]).expect("a key");
        assert!(WitnessVerifier::parse(&log.verifier().encode()).is_err());
    }

    #[test]
    fn the_signed_message_is_the_one_c2sp_gives() {
        assert_eq!(
            cosigned_message("example.com/behind-the-sofa\n20852163\nCsUY=\n", 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUY=\n"
        );
    }
}
