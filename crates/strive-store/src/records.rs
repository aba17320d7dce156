//! Stored records and the public types queries return.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strive_core::{Due, Event, Instance};

use crate::error::StorageError;
use crate::keys;

/// The on-disk format this version reads and writes (2: blocks of events,
/// stored Merkle tiles, state written back in batches; see docs/storage.md).
/// Format 1 stores are converted by `strive upgrade`.
pub const STORE_FORMAT: u32 = 2;

/// A deployed definition version as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredDefinition {
    pub(crate) v: u32,
    pub(crate) workflow: String,
    pub(crate) version: u32,
    pub(crate) hash: String,
    pub(crate) deployed_at: Timestamp,
    pub(crate) gseq: u64,
    /// The hash of the deploy event, the head of the workflow's chain at
    /// this version (format 2).
    #[serde(default)]
    pub(crate) event_hash: String,
    pub(crate) definition: Value,
}

/// An instance snapshot as stored, with its pending deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct InstanceRecord {
    pub(crate) v: u32,
    pub(crate) instance: Instance,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) due: Option<Due>,
    /// The partition whose log holds the instance's events (that of its
    /// root ancestor).
    #[serde(default)]
    pub(crate) partition: u32,
    /// The log positions of the instance's events after the last full chain
    /// chunk (`keys::CHAIN`): event `seq` is at `chain[(seq - 1) % 64]`
    /// once the earlier chunks are counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) chain: Vec<u64>,
}

/// An idempotency record: what a command id was used for and what it
/// produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommandRecord {
    pub(crate) v: u32,
    pub(crate) digest: String,
    pub(crate) outcome: Outcome,
}

/// What an accepted start or fire produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The instance.
    pub instance: String,
    /// The event's name (`start` for a start).
    pub event: String,
    /// The stage the instance is in now.
    pub stage: String,
    /// The instance's sequence number after the event.
    pub seq: u64,
    /// The event's position in its partition's log (with one partition,
    /// the global log).
    pub gseq: u64,
    /// The partition whose log holds the event (left out of JSON when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub partition: u32,
    /// The event's hash.
    pub hash: String,
    /// Whether the instance is finished.
    pub finished: bool,
    /// Whether this outcome was returned from an earlier command with the
    /// same command id, without writing anything.
    #[serde(default)]
    pub replayed: bool,
}

fn is_zero(partition: &u32) -> bool {
    *partition == 0
}

/// A deployed definition version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefinitionInfo {
    /// The workflow.
    pub workflow: String,
    /// The version, from 1.
    pub version: u32,
    /// The definition's content hash.
    pub hash: String,
    /// When it was deployed.
    pub deployed_at: Timestamp,
    /// The deploy event's position in the global log.
    pub gseq: u64,
    /// Whether this deploy found the same content already deployed (and so
    /// wrote nothing).
    #[serde(default)]
    pub unchanged: bool,
}

/// An instance as queries return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The instance's state.
    #[serde(flatten)]
    pub instance: Instance,
    /// Its pending deadline, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Due>,
    /// Its children's ids, in id order.
    pub children: Vec<String>,
}

/// An event as stored: its hash, its exact bytes, and their decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The hash stored with the event.
    pub hash: String,
    /// The exact stored bytes (the canonical encoding).
    pub bytes: Vec<u8>,
    /// The decoded event.
    pub event: Event,
}

impl StoredEvent {
    /// An event read from a block: its stored digest and exact bytes.
    pub(crate) fn from_parts(
        digest: &[u8; 32],
        bytes: &[u8],
        position: u64,
    ) -> Result<StoredEvent, StorageError> {
        let event = Event::decode(bytes).map_err(|e| StorageError::Corrupt {
            key: format!("event {position}"),
            message: e.to_string(),
        })?;
        Ok(StoredEvent {
            hash: hex_encode(digest),
            bytes: bytes.to_vec(),
            event,
        })
    }

    /// Decodes the value stored under a format-1 event key: 32 bytes of
    /// hash, then the event's bytes.
    pub(crate) fn decode_v1(gseq: u64, value: &[u8]) -> Result<StoredEvent, StorageError> {
        let corrupt = |message: String| StorageError::Corrupt {
            key: keys::show(&keys::event_v1(gseq)),
            message,
        };
        if value.len() < 32 {
            return Err(corrupt("shorter than a hash".to_owned()));
        }
        let (hash, bytes) = value.split_at(32);
        let event = Event::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
        Ok(StoredEvent {
            hash: hex_encode(hash),
            bytes: bytes.to_vec(),
            event,
        })
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// How durable an acknowledged write is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every command returns only after its write is flushed. Concurrent
    /// commands share flushes (group commit).
    #[default]
    Flushed,
    /// Commands return once applied; sled flushes in the background every
    /// 500 ms and on shutdown. A crash may lose the last half second of
    /// acknowledged commands. For bulk imports only.
    Buffered,
}

/// Where the engine's time comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// Whether this clock is set by hand (a simulation or a test) rather
    /// than following the world's time. A store opened for writing with
    /// such a clock records that it did, for good (issue #17), and only
    /// such a store lets `tick --now` name a time ahead of the world's.
    fn is_manual(&self) -> bool {
        false
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that reads a settable time, for tests and replays.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock at `at`.
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock {
            micros: std::sync::atomic::AtomicI64::new(at.as_microsecond()),
        }
    }

    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.micros
            .store(at.as_microsecond(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros
            .fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let micros = self.micros.load(std::sync::atomic::Ordering::SeqCst);
        Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn is_manual(&self) -> bool {
        true
    }
}

/// How an engine is opened.
#[derive(Clone)]
pub struct Options {
    /// How durable an acknowledged command is.
    pub durability: Durability,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// The most commands written in one group commit.
    pub max_batch: usize,
    /// How many partitions a **new** store gets, 1 to [`MAX_PARTITIONS`]
    /// (docs/storage.md, "Partitions"). A store keeps the number it was
    /// created with: opening an existing store ignores this.
    pub partitions: u32,
    /// Refuse a command whose actor does not hold a grant (recorded with
    /// [`crate::Engine::grant`]) for every role it claims, globally or on
    /// the instance or one of its ancestors: `CommandError::NotGranted`,
    /// `DeployError::NotGranted`. Off by default: the embedding service's
    /// word on an actor's roles is taken as it is (issue #11).
    pub enforce_grants: bool,
    /// Refuse an unsigned start or fire by an actor that holds a
    /// registered key ([`crate::Engine::register_key`]):
    /// `CommandError::Signature` with `signature_required`. A signature
    /// that is given is checked whether or not this is set. Off by
    /// default.
    pub require_signatures: bool,
}

/// The most partitions a store may have. Each has its own writer thread,
/// so far more than the machine's cores buys nothing; the bound keeps a
/// typo from starting thousands of threads.
pub const MAX_PARTITIONS: u32 = 256;

impl Default for Options {
    fn default() -> Options {
        Options {
            durability: Durability::Flushed,
            clock: Arc::new(SystemClock),
            max_batch: 1024,
            partitions: default_partitions(),
            enforce_grants: false,
            require_signatures: false,
        }
    }
}

/// The environment variable that sets [`Options::partitions`]' default.
pub const PARTITIONS_VAR: &str = "STRIVE_PARTITIONS";

/// How many partitions a new store gets by default: 1, or the number in
/// `STRIVE_PARTITIONS`. The variable is how the whole test suite runs
/// against stores of 4 partitions (`STRIVE_PARTITIONS=4 cargo test`), and
/// how an operator makes every store a tool creates partitioned. A value
/// that is not a number becomes 0, which creating a store refuses with
/// the allowed range, rather than being silently ignored.
fn default_partitions() -> u32 {
    match std::env::var(PARTITIONS_VAR) {
        Ok(text) => text.trim().parse().unwrap_or(0),
        Err(_) => 1,
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("durability", &self.durability)
            .field("max_batch", &self.max_batch)
            .field("partitions", &self.partitions)
            .field("enforce_grants", &self.enforce_grants)
            .field("require_signatures", &self.require_signatures)
            .finish_non_exhaustive()
    }
}

/// Options of one command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOptions {
    /// Refuse the command unless the instance is at this sequence number
    /// (optimistic concurrency). For a start, 0 means "must not exist".
    pub expected_seq: Option<u64>,
    /// An idempotency key: a retried command with the same id returns the
    /// original outcome without writing, also after a reopen.
    pub command_id: Option<String>,
    /// The actor's signature on the command
    /// ([`strive_core::signing`]), checked before anything is written and
    /// kept with the event. Its `expected_seq` is taken from
    /// `expected_seq` above.
    pub signature: Option<strive_core::CommandSignature>,
}

/// Which instances to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this stage (requires `workflow`).
    pub stage: Option<String>,
    /// Only children of this instance.
    pub parent: Option<String>,
    /// Start after this instance id (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many (default 100).
    pub limit: Option<usize>,
}

/// A page of instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The instances, in id order.
    pub items: Vec<Snapshot>,
    /// The id to pass as `after` for the next page, if there is one.
    pub next: Option<String>,
}

/// A deadline that `fire_due` handled.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlineFired {
    /// The instance.
    pub instance: String,
    /// The deadline event.
    pub event: String,
    /// When it was due.
    pub due: Timestamp,
    /// What firing it produced: an outcome, or the rejection (the deadline
    /// is consumed either way, so it fires at most once).
    pub result: Result<Outcome, crate::error::CommandError>,
}
