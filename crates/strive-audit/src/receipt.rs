//! Receipts (issue #14 item 4): what a member keeps to prove, on their own
//! and offline, that one event of theirs was recorded, exactly so, and at
//! which place in the log.
//!
//! A receipt holds the event's exact stored bytes, its hash, its partition
//! and position, and an RFC 9162 inclusion proof to that partition's root in
//! a checkpoint note (signed when the store's operator gave a key). Checking
//! it needs no store: the bytes must hash to the hash, decode to the event
//! the receipt names, and the proof must lead from that hash to the root the
//! checkpoint states for the partition. A checkpoint the member later gets
//! from an auditor (or a witness) extends this one only if the event is
//! still there: `strive verify --since` and consistency proofs check that.

use std::fmt;

use serde::{Deserialize, Serialize};
use strive_core::{Event, event_digest};

use crate::VerifierKey;
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::{Hash, ProofError, verify_inclusion};

/// The format name a receipt carries.
pub const RECEIPT_FORMAT: &str = "strive-receipt/v1";

/// A receipt for one event: see the module documentation and
/// `docs/audit.md`, "Receipts".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_FORMAT`].
    pub format: String,
    /// The event's subject.
    pub instance: String,
    /// The event's place in its subject's chain.
    pub seq: u64,
    /// The partition whose log holds the event.
    pub partition: u32,
    /// The event's position in that partition's log, from 1.
    pub gseq: u64,
    /// The event's hash, hex: SHA-256 over the domain tag and the bytes.
    pub hash: String,
    /// The event's exact stored bytes (its canonical JSON, as text).
    pub event: String,
    /// The inclusion proof, hex hashes, from the event to the partition's
    /// root at the checkpoint's size for it.
    pub proof: Vec<String>,
    /// The checkpoint note the proof leads to, as `strive checkpoint`
    /// writes it (signed or not).
    pub checkpoint: String,
}

/// What a receipt that checks out proves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceiptSummary {
    /// The event, decoded from the receipt's bytes.
    pub event: Event,
    /// The checkpoint the event was proven to be in.
    pub origin: String,
    /// The partition's size in that checkpoint.
    pub partition_size: u64,
    /// The checkpoint's total size.
    pub checkpoint_size: u64,
    /// Whether a signature by the given key was checked.
    pub signed: bool,
}

/// Why a receipt does not prove what it says.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReceiptError {
    /// It names another format.
    Format {
        /// The format it names.
        found: String,
    },
    /// The bytes do not hash to the receipt's hash: the event was altered.
    Hash {
        /// The hash the receipt states.
        stated: String,
        /// The hash of its bytes.
        actual: String,
    },
    /// The bytes are not an event, or not the one the receipt names.
    Event {
        /// What does not match.
        message: String,
    },
    /// The checkpoint cannot be read, is not signed by the key, or has no
    /// head for the partition.
    Checkpoint(CheckpointError),
    /// The proof does not lead to the checkpoint's root.
    Proof(ProofError),
}

impl fmt::Display for ReceiptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptError::Format { found } => write!(
                f,
                "not a {RECEIPT_FORMAT} receipt (it says `{found}`); get one with `strive receipt`"
            ),
            ReceiptError::Hash { stated, actual } => write!(
                f,
                "the event's bytes hash to {actual}, not to the {stated} the receipt states: \
                 the event in it was altered"
            ),
            ReceiptError::Event { message } => write!(f, "the receipt's event {message}"),
            ReceiptError::Checkpoint(_) => write!(f, "the receipt's checkpoint does not hold"),
            ReceiptError::Proof(_) => write!(
                f,
                "the inclusion proof does not lead from the event to the checkpoint's root: \
                 the event is not in that log"
            ),
        }
    }
}

impl std::error::Error for ReceiptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReceiptError::Checkpoint(e) => Some(e),
            ReceiptError::Proof(e) => Some(e),
            _ => None,
        }
    }
}

fn hex_hash(text: &str) -> Option<Hash> {
    hex::decode(text).ok()?.try_into().ok()
}

impl Receipt {
    /// Checks the receipt offline: the bytes, the event they decode to, the
    /// checkpoint (and its signature by `key`, when given) and the proof.
    pub fn verify(&self, key: Option<&VerifierKey>) -> Result<ReceiptSummary, ReceiptError> {
        if self.format != RECEIPT_FORMAT {
            return Err(ReceiptError::Format {
                found: self.format.clone(),
            });
        }
        let digest = event_digest(self.event.as_bytes());
        let actual = hex::encode(digest);
        if actual != self.hash {
            return Err(ReceiptError::Hash {
                stated: self.hash.clone(),
                actual,
            });
        }
        let event = self.decoded()?;
        let signed = Checkpoint::parse(&self.checkpoint).map_err(ReceiptError::Checkpoint)?;
        if let Some(key) = key {
            signed.verify(key).map_err(ReceiptError::Checkpoint)?;
        }
        let checkpoint = signed.checkpoint;
        let heads = checkpoint.heads().map_err(ReceiptError::Checkpoint)?;
        let head = heads
            .iter()
            .find(|h| h.partition == self.partition)
            .ok_or_else(|| {
                ReceiptError::Checkpoint(CheckpointError::Partitions {
                    message: format!(
                        "it states {} partitions and none is partition {}",
                        heads.len(),
                        self.partition
                    ),
                })
            })?;
        let proof: Vec<Hash> = self
            .proof
            .iter()
            .map(|h| hex_hash(h))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                ReceiptError::Proof(ProofError::Mismatch {
                    what: "a proof hash that is not 64 hex digits".to_owned(),
                })
            })?;
        // Positions count from 1; the tree's leaves from 0.
        let index = self.gseq.saturating_sub(1);
        verify_inclusion(&head.root, head.size, index, &digest, &proof)
            .map_err(ReceiptError::Proof)?;
        Ok(ReceiptSummary {
            event,
            origin: checkpoint.origin.clone(),
            partition_size: head.size,
            checkpoint_size: checkpoint.size,
            signed: key.is_some(),
        })
    }

    /// The event the bytes decode to, checked against the receipt's fields
    /// and to be the bytes' own canonical encoding.
    fn decoded(&self) -> Result<Event, ReceiptError> {
        let bad = |message: String| ReceiptError::Event { message };
        let event: Event = serde_json::from_str(&self.event)
            .map_err(|e| bad(format!("is not a strive event ({e})")))?;
        if event.encode() != self.event.as_bytes() {
            return Err(bad(
                "is not in its canonical encoding, so it is not the stored bytes".to_owned(),
            ));
        }
        let stated = (&self.instance, self.seq, self.partition, self.gseq);
        let actual = (&event.instance, event.seq, event.partition, event.gseq);
        if stated != actual {
            return Err(bad(format!(
                "is {}#{} at {}:{}, but the receipt says {}#{} at {}:{}",
                actual.0, actual.1, actual.2, actual.3, stated.0, stated.1, stated.2, stated.3
            )));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::MerkleLog;
    use serde_json::json;
    use strive_core::{Actor, EventKind, GENESIS};

    fn event(seq: u64) -> Event {
        Event {
            v: 1,
            gseq: seq,
            partition: 0,
            instance: "m-1".into(),
            seq,
            prev: GENESIS.into(),
            kind: EventKind::Fire,
            workflow: "w".into(),
            version: 1,
            definition_hash: "00".into(),
            from: Some("a".into()),
            event: "go".into(),
            transition: None,
            to: "a".into(),
            actor: Actor::new("m-1", &["member"]),
            at: "2026-05-01T08:00:00Z".parse().expect("a time"),
            command_id: None,
            payload: json!({"pledge": "学习"}),
            effects: vec![],
            cause: None,
            signature: None,
        }
    }

    /// A log of three events and a receipt for the second.
    fn receipt() -> Receipt {
        let mut log = MerkleLog::new();
        let events: Vec<Vec<u8>> = (1..=3).map(|s| event(s).encode()).collect();
        for bytes in &events {
            log.push(event_digest(bytes));
        }
        let checkpoint = Checkpoint::new("test", log.size(), log.root());
        Receipt {
            format: RECEIPT_FORMAT.into(),
            instance: "m-1".into(),
            seq: 2,
            partition: 0,
            gseq: 2,
            hash: hex::encode(event_digest(&events[1])),
            event: String::from_utf8(events[1].clone()).expect("utf-8"),
            proof: log
                .prove_inclusion(1)
                .expect("a proof")
                .iter()
                .map(hex::encode)
                .collect(),
            checkpoint: checkpoint.to_note(None),
        }
    }

    #[test]
    fn a_receipt_proves_its_event_and_every_alteration_is_caught() {
        let summary = receipt().verify(None).expect("the receipt holds");
        assert_eq!(summary.event.seq, 2);
        assert_eq!(summary.partition_size, 3);
        let mut altered = receipt();
        altered.event = altered.event.replace("学习", "学好");
        assert!(matches!(
            altered.verify(None),
            Err(ReceiptError::Hash { .. })
        ));
        let mut renamed = receipt();
        renamed.seq = 3;
        assert!(matches!(
            renamed.verify(None),
            Err(ReceiptError::Event { .. })
        ));
        let mut moved = receipt();
        moved.gseq = 1;
        assert!(matches!(
            moved.verify(None),
            Err(ReceiptError::Event { .. })
        ));
        let mut short = receipt();
        short.proof.pop();
        assert!(matches!(short.verify(None), Err(ReceiptError::Proof(_))));
        let mut other = receipt();
        other.checkpoint = Checkpoint::new("test", 3, [7; 32]).to_note(None);
        assert!(matches!(other.verify(None), Err(ReceiptError::Proof(_))));
        let mut partition = receipt();
        partition.partition = 1;
        assert!(partition.verify(None).is_err());
    }
}
