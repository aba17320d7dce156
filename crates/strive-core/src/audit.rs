//! The audit record: one [`Event`] per accepted command, chained per subject
//! by hashes, so that anyone holding the events can check that none was
//! altered, removed or reordered.
//!
//! ## Encoding and hashing
//!
//! An event is stored as its canonical encoding: `serde_json` serialization of
//! [`Event`] with fields in declaration order, object keys inside payloads and
//! data sorted (serde_json's map is ordered), no whitespace. The stored bytes
//! are what is hashed, so a verifier never re-encodes:
//!
//! ```text
//! event_hash = SHA-256("strive/event/v1" || 0x00 || stored bytes)
//! ```
//!
//! `prev` in each event is the hash of the previous event of the same
//! subject (an instance, `@workflow/<id>` for deployments, or `@access`
//! for grants, revocations and actors' keys), or 64 zeros
//! for the first. Definitions are hashed over their canonical JSON with the
//! tag `strive/definition/v1`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::machine::{Actor, AppliedEffect};

/// The format version written in every event.
pub const EVENT_FORMAT: u32 = 1;
/// The domain tag of event hashes.
pub const EVENT_TAG: &[u8] = b"strive/event/v1\0";
/// The domain tag of definition hashes.
pub const DEFINITION_TAG: &[u8] = b"strive/definition/v1\0";
/// The `prev` of the first event of a subject.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The prefix of the subject that records a workflow's deployments.
pub const WORKFLOW_SUBJECT_PREFIX: &str = "@workflow/";

/// What kind of command an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A definition version was deployed. The payload is the definition.
    Deploy,
    /// An instance was started. The payload is `{"data": ..., "parent": ...}`.
    Start,
    /// An event was fired on an instance.
    Fire,
    /// A role was granted, in the access chain (`@access`). The payload is
    /// the [`crate::Grant`].
    Grant,
    /// A grant was revoked, in the access chain. The payload is the
    /// [`crate::Grant`].
    Revoke,
    /// A running instance moved to another version of its workflow. The
    /// payload is `{"plan": ..., "plan_hash": ...}` (a
    /// [`crate::MigrationPlan`]); `version` and `definition_hash` are the
    /// target's, `from` and `to` the stages before and after.
    Migrate,
    /// An actor's public key was registered, in the access chain. The
    /// payload is the [`crate::ActorKey`].
    RegisterKey,
    /// An actor's key was retired, in the access chain. The payload is the
    /// [`crate::ActorKey`].
    RetireKey,
    /// An instance was suspended, resumed, cancelled or terminated
    /// ([`crate::Operation`]): `event` is the operation's name, the payload
    /// `{"reason": ...}`, `from` and `to` the (unchanged) stage. A child
    /// that follows its parent has its own event, with the parent's as its
    /// `cause`.
    Lifecycle,
}

/// The event that caused this one, when one command writes several events
/// (a child started by a spawn, a parent notified by a child).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// The instance whose event caused this one.
    pub instance: String,
    /// That event's sequence number in its instance.
    pub seq: u64,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The format version ([`EVENT_FORMAT`]).
    pub v: u32,
    /// The position in the log of the event's partition, from 1, gapless.
    /// A store with one partition has one log, and this is its position.
    pub gseq: u64,
    /// The partition whose log holds the event (docs/storage.md,
    /// "Partitions"). Left out of the canonical bytes when it is 0, so the
    /// events of a one-partition store (and of format 1) are byte for byte
    /// what they were before partitions existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partition: u32,
    /// The subject: an instance id, `@workflow/<id>` for deployments, or
    /// `@access` for grants.
    pub instance: String,
    /// The position in the subject's chain, from 1.
    pub seq: u64,
    /// The hash of the subject's previous event, or [`GENESIS`].
    pub prev: String,
    /// What kind of command this records.
    pub kind: EventKind,
    /// The workflow.
    pub workflow: String,
    /// The definition version in force.
    pub version: u32,
    /// That definition's hash.
    pub definition_hash: String,
    /// The stage before (absent for deploy and start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The event's name (`deploy` and `start` for those kinds).
    pub event: String,
    /// The transition that fired, for fire events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<String>,
    /// The stage after (empty for deploy).
    pub to: String,
    /// Who did it.
    pub actor: Actor,
    /// When, from the engine's clock; never decreasing within a subject.
    pub at: Timestamp,
    /// The caller's command id, for idempotent retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The event's payload as given.
    pub payload: Value,
    /// The effects applied, evaluated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<AppliedEffect>,
    /// The event that caused this one, if another command's event did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// The actor's signature on the command, when it signed it
    /// ([`crate::signing`]). Left out of the bytes when absent, so that
    /// unsigned events are byte for byte what they were before signatures
    /// existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::CommandSignature>,
}

/// Whether a partition number is 0, the partition left out of the bytes.
fn is_zero(partition: &u32) -> bool {
    *partition == 0
}

impl Event {
    /// The canonical encoding: the bytes that are stored and hashed.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs, strings, numbers and serde_json values
        // cannot fail: there are no maps with non-string keys.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// The hash of stored event bytes, in lowercase hex.
pub fn event_hash(bytes: &[u8]) -> String {
    hex::encode(event_digest(bytes))
}

/// The hash of stored event bytes.
pub fn event_digest(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(EVENT_TAG);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// The partition a new root instance `id` belongs to in a store of
/// `partitions` partitions: the first 4 bytes of SHA-256 over the id's
/// confusable skeleton ([`crate::id::skeleton`]), big-endian, modulo the
/// number of partitions. Hashing the skeleton, not the id, puts look-alike
/// ids in one partition, whose single writer then refuses the second one
/// without racing another writer. A child instance belongs to its root
/// ancestor's partition instead, so a parent and its children are written
/// by one writer, atomically. Deployments (`@workflow/<id>`) belong to
/// partition 0. With one partition (or none) every instance is in 0.
///
/// ```
/// use strive_core::root_partition;
/// assert_eq!(root_partition("doc-1", 1), 0);
/// assert!(root_partition("doc-1", 4) < 4);
/// // Look-alikes (a Cyrillic а) share a partition.
/// assert_eq!(root_partition("branch-7", 16), root_partition("br\u{430}nch-7", 16));
/// ```
pub fn root_partition(id: &str, partitions: u32) -> u32 {
    if partitions <= 1 {
        return 0;
    }
    let digest = Sha256::digest(crate::id::skeleton(id).as_bytes());
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    first % partitions
}

/// The canonical bytes of a definition: its JSON with sorted keys and no
/// whitespace, so that formatting changes do not make a new version.
pub fn canonical_definition(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The content hash of a definition, in lowercase hex.
pub fn definition_hash(value: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(DEFINITION_TAG);
    hasher.update(canonical_definition(value));
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Event {
        Event {
            v: EVENT_FORMAT,
            gseq: 7,
            partition: 0,
            instance: "org-1".into(),
            seq: 2,
            prev: GENESIS.into(),
            kind: EventKind::Fire,
            workflow: "org-campaign".into(),
            version: 1,
            definition_hash: "ab".into(),
            from: Some("commitment".into()),
            event: "publish_plan".into(),
            transition: Some("publish_plan".into()),
            to: "comment".into(),
            actor: Actor::new("li", &["branch_secretary"]),
            at: "2026-05-01T08:00:00Z".parse().expect("timestamp"),
            command_id: Some("c-1".into()),
            payload: json!({"plan": "学习", "a": 1}),
            effects: vec![],
            cause: None,
            signature: None,
        }
    }

    #[test]
    fn encoding_round_trips_and_is_stable() {
        let event = sample();
        let bytes = event.encode();
        assert_eq!(Event::decode(&bytes).expect("decodes"), event);
        // Keys inside payloads are sorted; fields keep declaration order.
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(
            text.starts_with(r#"{"v":1,"gseq":7,"instance":"org-1","seq":2,"#),
            "{text}"
        );
        assert!(
            text.contains(r#""payload":{"a":1,"plan":"学习"}"#),
            "{text}"
        );
        assert_eq!(event_hash(&bytes), event_hash(&event.encode()));
    }

    #[test]
    fn hash_is_domain_separated_sha256() {
        // Recomputed independently: sha256(b"strive/event/v1\0" + b"{}").
        let mut hasher = Sha256::new();
        hasher.update(b"strive/event/v1\x00{}");
        assert_eq!(event_hash(b"{}"), hex::encode(hasher.finalize()));
        assert_ne!(event_hash(b"{}"), hex::encode(Sha256::digest(b"{}")));
    }

    #[test]
    fn definition_hash_ignores_formatting() {
        let a: Value = serde_json::from_str(r#"{"id": "x", "stages": []}"#).expect("json");
        let b: Value =
            serde_json::from_str("{\n  \"stages\": [],\n  \"id\": \"x\"\n}").expect("json");
        assert_eq!(definition_hash(&a), definition_hash(&b));
    }
}
