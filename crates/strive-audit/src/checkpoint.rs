//! Checkpoints in the C2SP `tlog-checkpoint` text format, optionally signed
//! as a C2SP `signed-note` with Ed25519 keys in the format of Go's
//! `golang.org/x/mod/sumdb/note`, so that existing transparency-log tools
//! read them.
//!
//! ```text
//! strive.example/bureau          <- origin
//! 1234                           <- tree size (events)
//! 8ZcO3Qk...base64 root...=      <- RFC 6962 root hash, standard base64
//!                                <- blank line: end of the signed text
//! — auditor AbCd...base64(key id || signature)...
//! ```

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer;

use strive_core::keys::{NOTE_ED25519, check_name, encode_secret, parse_secret};
use strive_core::{KeyError, PartitionHead, VerifierKey, combined_head};

use crate::merkle::Hash;

/// One `partition <p> <size> <base64 root>` line's head (after the prefix).
fn parse_head(rest: &str) -> Result<PartitionHead, CheckpointError> {
    let bad = || CheckpointError::Partitions {
        message: format!("`{PARTITION_PREFIX}{rest}` is not `partition <p> <size> <base64 root>`"),
    };
    let mut parts = rest.split(' ');
    let (Some(partition), Some(size), Some(root), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let decimal = |t: &str| {
        !t.is_empty()
            && t.bytes().all(|b| b.is_ascii_digit())
            && (t.len() == 1 || !t.starts_with('0'))
    };
    if !decimal(partition) || !decimal(size) {
        return Err(bad());
    }
    let root: Hash = BASE64
        .decode(root)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    Ok(PartitionHead {
        partition: partition.parse().map_err(|_| bad())?,
        size: size.parse().map_err(|_| bad())?,
        root,
    })
}

/// What starts a signature line: an em dash and a space.
pub(crate) const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A checkpoint: the size and root of the log, under an origin that names
/// the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, such as `strive.example/bureau`.
    pub origin: String,
    /// The number of events in the log.
    pub size: u64,
    /// The RFC 6962 root hash of those events.
    pub root: Hash,
    /// Extension lines after the root, kept as given.
    pub extensions: Vec<String>,
}

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The signing key's name.
    pub name: String,
    /// The first 4 bytes of the key's hash, naming the key.
    pub key_id: [u8; 4],
    /// The signature bytes.
    pub signature: Vec<u8>,
}

/// A checkpoint as read from its text, with the signatures it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
    /// The exact signed text (the body, ending in a newline).
    pub body: String,
}

/// Why a checkpoint could not be read or trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text is not a checkpoint.
    Malformed {
        /// The 1-based line.
        line: usize,
        /// What is wrong there.
        message: String,
    },
    /// No signature by the given key is on the checkpoint.
    NotSigned {
        /// The key's name.
        key: String,
    },
    /// A signature by the given key is there but does not verify.
    BadSignature {
        /// The key's name.
        key: String,
    },
    /// An origin that is not one non-empty line (issue #17).
    Origin {
        /// What is wrong with it.
        message: &'static str,
    },
    /// The partition lines are malformed or disagree with the total.
    Partitions {
        /// What is wrong.
        message: String,
    },
}

/// The longest origin accepted, in bytes.
pub const MAX_ORIGIN_BYTES: usize = 256;

/// Checks that `origin` is what C2SP asks of a checkpoint's first line:
/// one non-empty line, here also without control characters or surrounding
/// spaces and at most [`MAX_ORIGIN_BYTES`] long, so that a checkpoint
/// written with it reads back as the same checkpoint.
pub fn check_origin(origin: &str) -> Result<(), CheckpointError> {
    let message = if origin.is_empty() {
        "the origin is empty"
    } else if origin.len() > MAX_ORIGIN_BYTES {
        "the origin is longer than 256 bytes"
    } else if origin.chars().any(char::is_control) {
        "the origin holds a newline or another control character; it is one line"
    } else if origin.trim() != origin {
        "the origin starts or ends with a space"
    } else {
        return Ok(());
    };
    Err(CheckpointError::Origin { message })
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Malformed { line, message } => write!(
                f,
                "not a checkpoint (line {line}: {message}); a checkpoint is the origin, the size and the base64 root on three lines"
            ),
            CheckpointError::NotSigned { key } => write!(
                f,
                "the checkpoint carries no signature by key `{key}`; check that you were given the right public key"
            ),
            CheckpointError::BadSignature { key } => write!(
                f,
                "the signature by key `{key}` does not verify: the checkpoint was altered after signing"
            ),
            CheckpointError::Origin { message } => write!(
                f,
                "{message}; give the log's name as one line, such as strive.example/bureau"
            ),
            CheckpointError::Partitions { message } => write!(
                f,
                "the checkpoint's partitions do not hold together ({message}): it was altered \
                 or written by another tool; ask its signer for the original"
            ),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// What starts the extension line of one partition's head.
pub(crate) const PARTITION_PREFIX: &str = "partition ";

impl Checkpoint {
    /// A checkpoint of a partitioned log (`strive_core::combined_head`):
    /// with one partition exactly [`Checkpoint::new`] of its size and
    /// root; with more, the total size and the combined root on lines 2
    /// and 3, then one extension line per partition,
    /// `partition <p> <size> <base64 root>`, in partition order.
    pub fn of_heads(
        origin: impl Into<String>,
        heads: &[PartitionHead],
    ) -> Result<Checkpoint, CheckpointError> {
        let (size, root) = combined_head(heads).map_err(|e| CheckpointError::Partitions {
            message: e.to_string(),
        })?;
        let mut checkpoint = Checkpoint::new(origin, size, root);
        if heads.len() > 1 {
            checkpoint.extensions = heads
                .iter()
                .map(|h| {
                    format!(
                        "{PARTITION_PREFIX}{} {} {}",
                        h.partition,
                        h.size,
                        BASE64.encode(h.root)
                    )
                })
                .collect();
        }
        Ok(checkpoint)
    }

    /// The partition heads this checkpoint states: its own size and root
    /// as partition 0 when it has no partition lines, else every
    /// partition's, checked to be partitions 0, 1, 2, ... and to add up to
    /// the total size and the combined root on lines 2 and 3.
    pub fn heads(&self) -> Result<Vec<PartitionHead>, CheckpointError> {
        let mut heads = Vec::new();
        for line in &self.extensions {
            let Some(rest) = line.strip_prefix(PARTITION_PREFIX) else {
                continue;
            };
            heads.push(parse_head(rest)?);
        }
        if heads.is_empty() {
            return Ok(vec![PartitionHead {
                partition: 0,
                size: self.size,
                root: self.root,
            }]);
        }
        let partitions = |message: String| CheckpointError::Partitions { message };
        let (size, root) = combined_head(&heads).map_err(|e| partitions(e.to_string()))?;
        if heads.len() == 1 || size != self.size || root != self.root {
            return Err(partitions(format!(
                "its partition lines give {} partitions of {size} events with combined root {}, \
                 but lines 2 and 3 say {} events and root {}",
                heads.len(),
                BASE64.encode(root),
                self.size,
                BASE64.encode(self.root)
            )));
        }
        Ok(heads)
    }

    /// A checkpoint of a log of `size` events with root `root`.
    pub fn new(origin: impl Into<String>, size: u64, root: Hash) -> Checkpoint {
        Checkpoint {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// The checkpoint's text: the note body that signatures cover.
    pub fn body(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// The checkpoint as a note: the body, a blank line, and a signature
    /// line when `key` is given.
    pub fn to_note(&self, key: Option<&SigningKey>) -> String {
        let body = self.body();
        let mut text = body.clone();
        text.push('\n');
        if let Some(key) = key {
            text.push_str(&key.signature_line(body.as_bytes()));
        }
        text
    }

    /// Reads a checkpoint note, signed or not, without checking signatures.
    pub fn parse(text: &str) -> Result<SignedCheckpoint, CheckpointError> {
        let malformed = |line: usize, message: &str| CheckpointError::Malformed {
            line,
            message: message.to_owned(),
        };
        // The body ends at the first blank line; a bare unsigned checkpoint
        // may have none.
        let (body, rest) = match text.find("\n\n") {
            Some(end) => (&text[..=end], &text[end + 2..]),
            None if text.ends_with('\n') => (text, ""),
            None => return Err(malformed(1, "the text must end with a newline")),
        };
        let lines: Vec<&str> = body.lines().collect();
        let origin = lines
            .first()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| malformed(1, "the origin line is missing"))?;
        check_origin(origin)?;
        let size = lines
            .get(1)
            .ok_or_else(|| malformed(2, "the tree size line is missing"))?;
        // A decimal without sign or leading zeros, as C2SP asks.
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(malformed(2, "the tree size must be a decimal number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| malformed(2, "the tree size is too large"))?;
        let root_text = lines
            .get(2)
            .ok_or_else(|| malformed(3, "the root hash line is missing"))?;
        let root_bytes = BASE64
            .decode(root_text)
            .map_err(|_| malformed(3, "the root hash must be standard base64"))?;
        let root: Hash = root_bytes
            .try_into()
            .map_err(|_| malformed(3, "the root hash must be 32 bytes"))?;
        let extensions = lines.iter().skip(3).map(|l| (*l).to_owned()).collect();
        let mut signatures = Vec::new();
        let first_signature_line = lines.len() + 2;
        for (offset, line) in rest.lines().enumerate() {
            let number = first_signature_line + offset;
            if line.is_empty() {
                continue;
            }
            let Some(rest) = line.strip_prefix(SIGNATURE_PREFIX) else {
                return Err(malformed(number, "a signature line must start with `— `"));
            };
            let (name, blob) = rest
                .rsplit_once(' ')
                .ok_or_else(|| malformed(number, "a signature line is `— NAME BASE64`"))?;
            let blob = BASE64
                .decode(blob)
                .map_err(|_| malformed(number, "the signature is not base64"))?;
            if blob.len() < 5 {
                return Err(malformed(number, "the signature is too short"));
            }
            let (id, signature) = blob.split_at(4);
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [id[0], id[1], id[2], id[3]],
                signature: signature.to_vec(),
            });
        }
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                origin: (*origin).to_owned(),
                size,
                root,
                extensions,
            },
            signatures,
            body: body.to_owned(),
        })
    }

    /// Reads a checkpoint note and checks its signature by `key`. Other
    /// signatures are ignored, as C2SP signed notes require.
    pub fn parse_verified(text: &str, key: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
        let signed = Checkpoint::parse(text)?;
        signed.verify(key)?;
        Ok(signed.checkpoint)
    }
}

impl SignedCheckpoint {
    /// Checks that `key` signed this checkpoint.
    pub fn verify(&self, key: &VerifierKey) -> Result<(), CheckpointError> {
        let mine: Vec<&NoteSignature> = self
            .signatures
            .iter()
            .filter(|s| s.name == key.name() && s.key_id == key.key_id())
            .collect();
        if mine.is_empty() {
            return Err(CheckpointError::NotSigned {
                key: key.name().to_owned(),
            });
        }
        for signature in mine {
            if !key.verifies(self.body.as_bytes(), &signature.signature) {
                return Err(CheckpointError::BadSignature {
                    key: key.name().to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// An Ed25519 signing key with its name. Keep it outside the store: whoever
/// holds the store must not be able to sign checkpoints.
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
    /// The public half, made once (its name is checked with the key's).
    public: VerifierKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key named `name` (usually the log's origin or the
    /// signer's identity).
    pub fn generate(name: &str) -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Randomness {
            message: e.to_string(),
        })?;
        SigningKey::from_seed(name, seed)
    }

    /// The key with the 32-byte secret `seed`.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SigningKey, KeyError> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok(SigningKey {
            name: name.to_owned(),
            public: VerifierKey::new(name, key.verifying_key())?,
            key,
        })
    }

    /// The same key under another name (key ids depend on the name).
    pub fn renamed(&self, name: &str) -> Result<SigningKey, KeyError> {
        SigningKey::from_seed(name, self.key.to_bytes())
    }

    /// Reads a key written by [`SigningKey::encode`]
    /// (`PRIVATE+KEY+NAME+KEYID+BASE64`).
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let (name, key) = parse_secret(text, NOTE_ED25519)?;
        Ok(SigningKey {
            public: VerifierKey::new(&name, key.verifying_key())?,
            name,
            key,
        })
    }

    /// The key as text, in the format of Go's note package.
    pub fn encode(&self) -> String {
        encode_secret(&self.name, NOTE_ED25519, &self.key)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to hand to auditors.
    pub fn verifier(&self) -> VerifierKey {
        self.public.clone()
    }

    /// The Ed25519 signature of `message`. For messages that carry their
    /// own domain tag, such as an actor's command
    /// ([`strive_core::Claim::message`]); a checkpoint is
    /// signed as a note ([`Checkpoint::to_note`]).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The signature line for `body`.
    fn signature_line(&self, body: &[u8]) -> String {
        let signature = self.key.sign(body);
        let mut blob = self.verifier().key_id().to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(blob))
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed("auditor", [7; 32]).expect("a key")
    }

    #[test]
    fn a_checkpoint_round_trips_in_the_c2sp_text_format() {
        let cp = Checkpoint::new("strive.example/bureau", 42, [9; 32]);
        let text = cp.to_note(None);
        assert_eq!(
            text,
            "strive.example/bureau\n42\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n\n"
        );
        assert_eq!(Checkpoint::parse(&text).expect("parses").checkpoint, cp);
        // A bare body, as other tools print it, reads too.
        assert_eq!(
            Checkpoint::parse(&cp.body()).expect("parses").checkpoint,
            cp
        );
        for bad in [
            "",
            "o\n",
            "o\n01\nAA==\n",
            "o\n-1\n",
            "o\n1\nAA==\n",
            "o\n1\n!!\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_partitioned_checkpoint_round_trips_and_catches_a_changed_partition() {
        let heads = [
            PartitionHead {
                partition: 0,
                size: 3,
                root: [1; 32],
            },
            PartitionHead {
                partition: 1,
                size: 5,
                root: [2; 32],
            },
        ];
        let checkpoint = Checkpoint::of_heads("strive.example/p", &heads).expect("heads");
        assert_eq!(checkpoint.size, 8);
        assert_eq!(checkpoint.extensions.len(), 2);
        assert!(checkpoint.extensions[1].starts_with("partition 1 5 "));
        let read = Checkpoint::parse(&checkpoint.to_note(None))
            .expect("parse")
            .checkpoint;
        assert_eq!(read.heads().expect("heads"), heads.to_vec());
        // One partition's root changed, the combined root not: refused.
        let mut altered = read.clone();
        altered.extensions[1] = format!("partition 1 5 {}", BASE64.encode([3u8; 32]));
        assert!(matches!(
            altered.heads(),
            Err(CheckpointError::Partitions { .. })
        ));
        // One partition is today's checkpoint, byte for byte.
        let one = Checkpoint::of_heads("o", &heads[..1]).expect("one");
        assert_eq!(one, Checkpoint::new("o", 3, [1; 32]));
        assert_eq!(one.heads().expect("heads"), heads[..1].to_vec());
    }

    #[test]
    fn signatures_verify_and_catch_any_change() {
        let key = key();
        let cp = Checkpoint::new("strive.example/bureau", 42, [9; 32]);
        let note = cp.to_note(Some(&key));
        assert!(note.contains("\n\n\u{2014} auditor "), "{note}");
        let verifier = key.verifier();
        assert_eq!(
            Checkpoint::parse_verified(&note, &verifier).expect("verifies"),
            cp
        );
        let altered = note.replace("\n42\n", "\n43\n");
        assert!(matches!(
            Checkpoint::parse_verified(&altered, &verifier),
            Err(CheckpointError::BadSignature { .. })
        ));
        let other = SigningKey::from_seed("auditor", [8; 32]).expect("a key");
        assert!(matches!(
            Checkpoint::parse_verified(&note, &other.verifier()),
            Err(CheckpointError::NotSigned { .. })
        ));
        assert!(matches!(
            Checkpoint::parse_verified(&cp.to_note(None), &verifier),
            Err(CheckpointError::NotSigned { .. })
        ));
    }

    #[test]
    fn keys_round_trip_in_the_go_note_format() {
        let key = key();
        let text = key.encode();
        assert!(text.starts_with("PRIVATE+KEY+auditor+"), "{text}");
        let back = SigningKey::parse(&text).expect("parses");
        assert_eq!(back.verifier(), key.verifier());
        let public = key.verifier().encode();
        assert!(public.starts_with("auditor+"), "{public}");
        assert_eq!(VerifierKey::parse(&public).expect("parses"), key.verifier());
        assert!(VerifierKey::parse(&public.replace("auditor", "other")).is_err());
        assert!(SigningKey::parse(&public).is_err());
        assert!(SigningKey::from_seed("two words", [1; 32]).is_err());
        // Base64 keys often hold a `+`, which also separates the fields.
        let mut with_plus = 0;
        for seed in 0..64u8 {
            let key = SigningKey::from_seed("k", [seed; 32]).expect("a key");
            let text = key.encode();
            with_plus += usize::from(text.matches('+').count() > 4);
            let back = SigningKey::parse(&text).expect("a key with `+` in its base64 parses");
            assert_eq!(back.verifier(), key.verifier());
            let public = key.verifier().encode();
            assert_eq!(VerifierKey::parse(&public).expect("parses"), key.verifier());
        }
        assert!(with_plus > 0, "some of the keys tried hold a `+`");
        let fresh = SigningKey::generate("k").expect("randomness");
        assert_ne!(
            fresh.verifier(),
            SigningKey::generate("k").expect("randomness").verifier()
        );
    }

    /// The key id and signature layout of the Go note package, recomputed
    /// independently from the C2SP signed-note definition.
    #[test]
    fn key_ids_follow_the_signed_note_definition() {
        let key = key();
        let public = key.verifier();
        let mut h = Sha256::new();
        h.update(b"auditor\n\x01");
        h.update(public.public_bytes());
        let digest = h.finalize();
        assert_eq!(
            public.key_id(),
            [digest[0], digest[1], digest[2], digest[3]]
        );
    }
}
