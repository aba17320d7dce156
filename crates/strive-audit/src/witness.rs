//! A transparency-log witness (C2SP `tlog-witness`): for each log it
//! knows, it keeps the last checkpoint it cosigned, and cosigns a new one
//! only when the log proves that it extends that one. A log restored from
//! an older backup, or forked, can then no longer get a cosignature, and
//! an auditor who requires cosignatures learns of it without keeping any
//! file of their own.
//!
//! This module is the witness's rules, with no I/O: the request and its
//! answer as text, and the state as text. Whoever runs the witness (the
//! CLI's `strive witness add`, the server's `POST /witness/add-checkpoint`)
//! reads the state, calls [`Witness::add_checkpoint`], and must persist the
//! new state before it answers; the check and the update are one step on a
//! `&mut Witness`, so a caller that holds the state under one lock cannot
//! roll a log back by answering two requests out of order.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::checkpoint::PARTITION_PREFIX;
use crate::{Checkpoint, Hash, VerifierKey, WitnessKey, verify_consistency};

/// The most consistency proof lines a request may carry (C2SP).
pub const MAX_PROOF_LINES: usize = 63;

/// The most bytes of a request a witness reads.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The body of an `add-checkpoint` request: the size of the checkpoint the
/// client believes the witness last cosigned, a consistency proof from it,
/// and the new checkpoint note, signed by the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The size of the previous checkpoint (0 when there is none).
    pub old: u64,
    /// The RFC 6962 consistency proof from `old` to the new checkpoint.
    pub proof: Vec<Hash>,
    /// The new checkpoint, as a signed note.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request as the witness reads it.
    pub fn encode(&self) -> String {
        let mut text = format!("old {}\n", self.old);
        for hash in &self.proof {
            text.push_str(&BASE64.encode(hash));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.checkpoint);
        text
    }

    /// Reads a request body.
    pub fn parse(text: &str) -> Result<AddCheckpoint, Refusal> {
        let bad = |message: String| Refusal::BadRequest { message };
        if text.len() > MAX_REQUEST_BYTES {
            return Err(bad(format!(
                "the request has {} bytes, more than the {MAX_REQUEST_BYTES} a witness reads",
                text.len()
            )));
        }
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| bad("the request has no empty line before the checkpoint".into()))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .filter(|n| is_decimal(n))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("the first line must be `old <size>`, a decimal size".into()))?;
        let mut proof = Vec::new();
        for (index, line) in lines.enumerate() {
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(format!("more than {MAX_PROOF_LINES} proof lines")));
            }
            let hash = BASE64
                .decode(line)
                .ok()
                .and_then(|b| Hash::try_from(b).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "proof line {} is not a base64 32-byte hash",
                        index + 1
                    ))
                })?;
            proof.push(hash);
        }
        Ok(AddCheckpoint {
            old,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }
}

/// A decimal without sign or leading zeros, as C2SP writes sizes.
fn is_decimal(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'))
}

/// Why a witness did not cosign, with the HTTP status C2SP gives each case
/// ([`Refusal::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The request is malformed, or its old size exceeds the new one.
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// The witness does not know the checkpoint's origin.
    UnknownLog {
        /// The origin.
        origin: String,
    },
    /// The log's key did not sign the checkpoint (or the signature is bad).
    NotSigned {
        /// The origin.
        origin: String,
    },
    /// The old size is not the size the witness last cosigned, or the
    /// sizes match and the roots do not: the log forked or was rolled back.
    Conflict {
        /// The size the witness last cosigned for the log.
        size: u64,
        /// What disagrees.
        message: String,
    },
    /// The consistency proof does not verify.
    BadProof {
        /// Why.
        message: String,
    },
}

impl Refusal {
    /// The HTTP status C2SP tlog-witness answers this refusal with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest { .. } => 400,
            Refusal::NotSigned { .. } => 403,
            Refusal::UnknownLog { .. } => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::BadProof { .. } => 422,
        }
    }

    /// The response body: for a conflict, the witness's size and a newline
    /// (`text/x.tlog.size`); otherwise the message.
    pub fn body(&self) -> String {
        match self {
            Refusal::Conflict { size, .. } => format!("{size}\n"),
            other => format!("{other}\n"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::BadRequest { message } => write!(f, "bad request: {message}"),
            Refusal::UnknownLog { origin } => write!(
                f,
                "this witness does not witness the log {origin:?}; add it with `strive witness \
                 add-log`"
            ),
            Refusal::NotSigned { origin } => write!(
                f,
                "the checkpoint of {origin:?} is not signed by the log key this witness trusts"
            ),
            Refusal::Conflict { message, .. } => f.write_str(message),
            Refusal::BadProof { message } => write!(
                f,
                "the consistency proof does not verify: {message}; the log does not extend \
                 the checkpoint this witness cosigned"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// What a witness keeps of one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessedLog {
    /// The log's checkpoint key (a signed-note vkey).
    pub key: String,
    /// The size of the last checkpoint cosigned (0 before the first).
    pub size: u64,
    /// Its root, base64 (empty before the first).
    pub root: String,
    /// When it was cosigned, seconds since the epoch.
    pub cosigned_at: u64,
}

/// A witness's state: the logs it witnesses, by origin. It serialises to
/// JSON ([`Witness::to_text`]) for its state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Witness {
    /// The state file's format.
    pub format: String,
    /// The logs, by origin.
    pub logs: BTreeMap<String, WitnessedLog>,
}

/// The `format` of a witness state file.
pub const WITNESS_FORMAT: &str = "strive-witness/1";

/// Why a witness state could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WitnessStateError {
    /// The state text is not a witness state.
    Malformed {
        /// What is wrong.
        message: String,
    },
    /// The log is already witnessed under another key.
    KeyChanged {
        /// The origin.
        origin: String,
    },
}

impl fmt::Display for WitnessStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WitnessStateError::Malformed { message } => {
                write!(f, "not a strive witness state file: {message}")
            }
            WitnessStateError::KeyChanged { origin } => write!(
                f,
                "the witness already trusts another key for {origin:?}; a log that changes its \
                 key is a new log: give it a new origin"
            ),
        }
    }
}

impl std::error::Error for WitnessStateError {}

impl Witness {
    /// A witness that witnesses no log yet.
    pub fn new() -> Witness {
        Witness {
            format: WITNESS_FORMAT.to_owned(),
            logs: BTreeMap::new(),
        }
    }

    /// Reads a state written by [`Witness::to_text`].
    pub fn parse(text: &str) -> Result<Witness, WitnessStateError> {
        let witness: Witness =
            serde_json::from_str(text).map_err(|e| WitnessStateError::Malformed {
                message: e.to_string(),
            })?;
        if witness.format != WITNESS_FORMAT {
            return Err(WitnessStateError::Malformed {
                message: format!("format {:?}, expected {WITNESS_FORMAT:?}", witness.format),
            });
        }
        for (origin, log) in &witness.logs {
            VerifierKey::parse(&log.key).map_err(|e| WitnessStateError::Malformed {
                message: format!("the key of {origin:?}: {e}"),
            })?;
        }
        Ok(witness)
    }

    /// The state as text, for its file.
    pub fn to_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Starts witnessing the log `origin`, whose checkpoints `key` signs.
    /// Adding a log again with the same key changes nothing.
    pub fn add_log(&mut self, origin: &str, key: &VerifierKey) -> Result<(), WitnessStateError> {
        crate::check_origin(origin).map_err(|e| WitnessStateError::Malformed {
            message: e.to_string(),
        })?;
        let encoded = key.encode();
        match self.logs.get(origin) {
            Some(log) if log.key != encoded => Err(WitnessStateError::KeyChanged {
                origin: origin.to_owned(),
            }),
            Some(_) => Ok(()),
            None => {
                self.logs.insert(
                    origin.to_owned(),
                    WitnessedLog {
                        key: encoded,
                        size: 0,
                        root: String::new(),
                        cosigned_at: 0,
                    },
                );
                Ok(())
            }
        }
    }

    /// Handles one `add-checkpoint` request at time `now` (seconds since
    /// the epoch): checks it as C2SP tlog-witness asks, records the new
    /// checkpoint, and returns the cosignature line. The caller persists
    /// the changed state before it answers.
    pub fn add_checkpoint(
        &mut self,
        key: &WitnessKey,
        request: &AddCheckpoint,
        now: u64,
    ) -> Result<String, Refusal> {
        let signed = Checkpoint::parse(&request.checkpoint).map_err(|e| Refusal::BadRequest {
            message: format!("the checkpoint: {e}"),
        })?;
        let checkpoint = &signed.checkpoint;
        let origin = checkpoint.origin.clone();
        let log = self
            .logs
            .get_mut(&origin)
            .ok_or_else(|| Refusal::UnknownLog {
                origin: origin.clone(),
            })?;
        let log_key = VerifierKey::parse(&log.key).map_err(|_| Refusal::NotSigned {
            origin: origin.clone(),
        })?;
        signed.verify(&log_key).map_err(|_| Refusal::NotSigned {
            origin: origin.clone(),
        })?;
        if checkpoint
            .extensions
            .iter()
            .any(|l| l.starts_with(PARTITION_PREFIX))
        {
            return Err(Refusal::BadRequest {
                message: "the checkpoint is of a store of several partitions, whose combined \
                          root has no RFC 6962 consistency proof; witnessing such stores is not \
                          supported yet"
                    .to_owned(),
            });
        }
        if request.old > checkpoint.size {
            return Err(Refusal::BadRequest {
                message: format!(
                    "the old size {} is larger than the checkpoint's {}",
                    request.old, checkpoint.size
                ),
            });
        }
        check_extends(log, request, checkpoint)?;
        log.size = checkpoint.size;
        log.root = BASE64.encode(checkpoint.root);
        log.cosigned_at = now;
        Ok(key.cosign(&signed.body, now))
    }
}

/// Checks that `checkpoint` extends what the witness cosigned last.
fn check_extends(
    log: &WitnessedLog,
    request: &AddCheckpoint,
    checkpoint: &Checkpoint,
) -> Result<(), Refusal> {
    if request.old != log.size {
        let message = if checkpoint.size < log.size {
            format!(
                "this witness cosigned {} events of the log, and the checkpoint has only {}: \
                 the log was rolled back (restored from an older backup?) or forked",
                log.size, checkpoint.size
            )
        } else {
            format!(
                "the request proves consistency from size {}, but this witness last cosigned \
                 size {}: ask again with `old {}`",
                request.old, log.size, log.size
            )
        };
        return Err(Refusal::Conflict {
            size: log.size,
            message,
        });
    }
    if log.size == 0 {
        return if request.proof.is_empty() {
            Ok(())
        } else {
            Err(Refusal::BadRequest {
                message: "a request from size 0 carries no proof".to_owned(),
            })
        };
    }
    let old_root: Hash = BASE64
        .decode(&log.root)
        .ok()
        .and_then(|b| Hash::try_from(b).ok())
        .ok_or_else(|| Refusal::BadProof {
            message: "the witness's own record of the root is damaged".to_owned(),
        })?;
    if checkpoint.size == log.size {
        return if checkpoint.root == old_root {
            Ok(())
        } else {
            Err(Refusal::Conflict {
                size: log.size,
                message: format!(
                    "this witness cosigned another root at size {}: the log forked",
                    log.size
                ),
            })
        };
    }
    verify_consistency(
        log.size,
        &old_root,
        checkpoint.size,
        &checkpoint.root,
        &request.proof,
    )
    .map_err(|e| Refusal::BadProof {
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MerkleLog, SigningKey};

    fn digest(text: &str) -> Hash {
        use sha2::Digest as _;
        sha2::Sha256::digest(text.as_bytes()).into()
    }

    fn log_of(n: u64) -> MerkleLog {
        let mut log = MerkleLog::new();
        for i in 0..n {
            log.push(digest(&format!("event {i}")));
        }
        log
    }

    struct Setup {
        log_key: SigningKey,
        witness_key: WitnessKey,
        witness: Witness,
    }

    fn setup() -> Setup {
        let log_key = SigningKey::from_seed("strive", [1; 32]).expect("a key");
        let witness_key = WitnessKey::from_seed("w1", [2; 32]).expect("a key");
        let mut witness = Witness::new();
        witness
            .add_log("strive", &log_key.verifier())
            .expect("added");
        Setup {
            log_key,
            witness_key,
            witness,
        }
    }

    fn request(setup: &Setup, log: &MerkleLog, old: u64) -> AddCheckpoint {
        let checkpoint = Checkpoint::new("strive", log.size(), log.root());
        AddCheckpoint {
            old,
            proof: if old == 0 {
                Vec::new()
            } else {
                log.prove_consistency(old).expect("a proof")
            },
            checkpoint: checkpoint.to_note(Some(&setup.log_key)),
        }
    }

    #[test]
    fn a_witness_cosigns_only_checkpoints_that_extend_the_last() {
        let mut s = setup();
        let key = s.witness_key.verifier();
        let first = request(&s, &log_of(5), 0);
        let line = s
            .witness
            .add_checkpoint(&s.witness_key, &first, 100)
            .expect("cosigned");
        let cosigned = Checkpoint::parse(&format!("{}{line}", first.checkpoint)).expect("parses");
        assert_eq!(key.verify(&cosigned), Ok(100));
        // The same request again (old 0) conflicts and names the size.
        let again = s.witness.add_checkpoint(&s.witness_key, &first, 101);
        assert_eq!(again.as_ref().map_err(Refusal::status), Err(409));
        assert_eq!(again.map_err(|r| r.body()), Err("5\n".to_owned()));
        // Growing with a proof from 5 works.
        let grown = request(&s, &log_of(9), 5);
        assert_eq!(
            AddCheckpoint::parse(&grown.encode()).as_ref(),
            Ok(&grown),
            "the request round-trips"
        );
        s.witness
            .add_checkpoint(&s.witness_key, &grown, 102)
            .expect("cosigned");
        // A rolled-back log (7 events) cannot prove anything from 9.
        let mut rolled = request(&s, &log_of(7), 0);
        rolled.old = 9;
        let refused = s.witness.add_checkpoint(&s.witness_key, &rolled, 103);
        assert_eq!(refused.as_ref().map_err(Refusal::status), Err(400));
        rolled.old = 0;
        let refused = s
            .witness
            .add_checkpoint(&s.witness_key, &rolled, 103)
            .expect_err("refused");
        assert_eq!(refused.status(), 409);
        assert!(refused.to_string().contains("rolled back"), "{refused}");
        // A fork: 12 other events, with a proof that cannot verify.
        let mut fork = MerkleLog::new();
        for i in 0..12 {
            fork.push(digest(&format!("forged {i}")));
        }
        let forked = request(&s, &fork, 9);
        let refused = s.witness.add_checkpoint(&s.witness_key, &forked, 104);
        assert_eq!(refused.map_err(|r| r.status()), Err(422));
        // Nothing refused changed the state.
        assert_eq!(s.witness.logs["strive"].size, 9);
        let text = s.witness.to_text();
        assert_eq!(Witness::parse(&text), Ok(s.witness.clone()));
    }

    #[test]
    fn a_witness_refuses_unknown_logs_and_foreign_signatures() {
        let mut s = setup();
        let log = log_of(3);
        let mut unknown = request(&s, &log, 0);
        unknown.checkpoint = Checkpoint::new("other", 3, log.root()).to_note(Some(&s.log_key));
        let refused = s.witness.add_checkpoint(&s.witness_key, &unknown, 1);
        assert_eq!(refused.map_err(|r| r.status()), Err(404));
        let stranger = SigningKey::from_seed("strive", [9; 32]).expect("a key");
        let mut forged = request(&s, &log, 0);
        forged.checkpoint = Checkpoint::new("strive", 3, log.root()).to_note(Some(&stranger));
        let refused = s.witness.add_checkpoint(&s.witness_key, &forged, 1);
        assert_eq!(refused.map_err(|r| r.status()), Err(403));
        for bad in ["", "old 1\n", "old 01\n\nx", "new 1\n\nx", "old 1\n!!\n\nx"] {
            assert!(AddCheckpoint::parse(bad).is_err(), "{bad:?}");
        }
    }
}
