//! Verification of a whole store, fed as two streams: every event record
//! in key (global) order, then every instance snapshot.
//!
//! What it proves and what it cannot is in `docs/audit.md`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;
use strive_core::{Due, Event, GENESIS, Instance, StreamingProof, event_digest};

use crate::checkpoint::Checkpoint;
use crate::merkle::{Hash, verify_consistency};
use crate::problem::{Problem, ProblemCode};
use crate::replay::{Replayer, differences};

/// What to check beyond the store's own consistency.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// An earlier checkpoint the log must extend.
    pub since: Option<Checkpoint>,
    /// The number of events the store says it holds (its sequence
    /// counter): a log that ends earlier was cut.
    pub expected_size: Option<u64>,
}

/// What verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Events read.
    pub events: u64,
    /// Bytes of event records read.
    pub bytes: u64,
    /// Instances replayed.
    pub instances: u64,
    /// Snapshots compared.
    pub snapshots: u64,
    /// The size of the Merkle log (events hashed).
    pub size: u64,
    /// Its root, in hex.
    pub root: String,
    /// The size of the checkpoint the log was checked against, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// The consistency proof from that checkpoint to today, in hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency_proof: Option<Vec<String>>,
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
    /// Today's root, raw.
    #[serde(skip)]
    pub root_hash: Hash,
}

impl Report {
    /// Whether everything holds.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Today's checkpoint under `origin`.
    pub fn checkpoint(&self, origin: &str) -> Checkpoint {
        Checkpoint::new(origin, self.size, self.root_hash)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events, {} instances, {} snapshots; root {} at size {}: {}",
            self.events,
            self.instances,
            self.snapshots,
            self.root,
            self.size,
            if self.ok() {
                "everything holds".to_owned()
            } else {
                format!("{} problem(s)", self.problems.len())
            }
        )
    }
}

/// The last event of a subject's chain.
struct Link {
    seq: u64,
    hash: String,
    at: Timestamp,
}

/// A streaming verifier. Feed every event in key order with
/// [`Verifier::event`], then every snapshot with [`Verifier::snapshot`],
/// then call [`Verifier::finish`].
pub struct Verifier {
    options: VerifyOptions,
    next_gseq: u64,
    chains: HashMap<String, Link>,
    replayer: Replayer,
    access: crate::access::AccessCheck,
    /// The Merkle root recomputed from the events in O(log N) memory, with
    /// the consistency proof from the `since` checkpoint's size.
    log: StreamingProof,
    snapshots: HashSet<String>,
    /// Set when a snapshot could not be read: which instances lack one is
    /// then unknown.
    snapshots_incomplete: bool,
    problems: Vec<Problem>,
    events: u64,
    bytes: u64,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("events", &self.events)
            .field("problems", &self.problems.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `options`.
    pub fn new(options: VerifyOptions) -> Verifier {
        let since = options.since.as_ref().map_or(0, |since| since.size);
        Verifier {
            options,
            next_gseq: 1,
            chains: HashMap::new(),
            replayer: Replayer::new(),
            access: Default::default(),
            log: StreamingProof::new(since),
            snapshots: HashSet::new(),
            snapshots_incomplete: false,
            problems: Vec::new(),
            events: 0,
            bytes: 0,
        }
    }

    /// Problems found so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Events read so far.
    pub fn events_read(&self) -> u64 {
        self.events
    }

    /// The next event record, as stored: its hash (hex) and exact bytes.
    pub fn event(&mut self, stored_hash: &str, bytes: &[u8]) {
        match Event::decode(bytes) {
            Ok(event) => self.decoded_event(stored_hash, bytes, &event),
            Err(error) => {
                let gseq = self.next_gseq;
                self.count(bytes);
                self.log.push(&event_digest(bytes));
                self.problems.push(
                    Problem::new(
                        ProblemCode::UnreadableEvent,
                        format!("the event record does not decode: {error}"),
                    )
                    .at_gseq(gseq),
                );
                self.next_gseq += 1;
            }
        }
    }

    /// The next event record when the caller has already decoded `bytes`
    /// into `event` (the store does).
    pub fn decoded_event(&mut self, stored_hash: &str, bytes: &[u8], event: &Event) {
        self.count(bytes);
        let digest = event_digest(bytes);
        let hash = hex::encode(digest);
        let at = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        if hash != stored_hash {
            self.problems.push(at(
                ProblemCode::HashMismatch,
                format!(
                    "the stored hash is {stored_hash}, but the stored bytes hash to {hash}: the event was altered"
                ),
            ));
        }
        // The global sequence: gapless from 1, each number once.
        if event.gseq > self.next_gseq {
            let missing = if event.gseq - self.next_gseq == 1 {
                format!("event {} is missing", self.next_gseq)
            } else {
                format!("events {}..={} are missing", self.next_gseq, event.gseq - 1)
            };
            self.problems.push(at(
                ProblemCode::SequenceGap,
                format!("{missing} from the global log"),
            ));
            self.next_gseq = event.gseq + 1;
        } else if event.gseq < self.next_gseq {
            self.problems.push(at(
                ProblemCode::SequenceOrder,
                format!(
                    "global position {} comes after {}: the log was reordered or an event duplicated",
                    event.gseq,
                    self.next_gseq - 1
                ),
            ));
        } else {
            self.next_gseq += 1;
        }
        self.log.push(&digest);
        // The subject's chain.
        match self.chains.get(&event.instance) {
            None => {
                if event.seq != 1 {
                    self.problems.push(at(
                        ProblemCode::ChainBroken,
                        format!(
                            "the chain starts at #{}: events #1..#{} are missing",
                            event.seq,
                            event.seq - 1
                        ),
                    ));
                } else if event.prev != GENESIS {
                    self.problems.push(at(
                        ProblemCode::ChainBroken,
                        "the first event's prev must be 64 zeros".to_owned(),
                    ));
                }
            }
            Some(link) => {
                if event.seq != link.seq + 1 {
                    self.problems.push(at(
                        ProblemCode::ChainBroken,
                        format!("#{} follows #{} in the chain", event.seq, link.seq),
                    ));
                }
                if event.prev != link.hash {
                    self.problems.push(at(
                        ProblemCode::ChainBroken,
                        format!(
                            "prev is {}, but #{} hashes to {}",
                            event.prev, link.seq, link.hash
                        ),
                    ));
                }
                if event.at < link.at {
                    self.problems.push(at(
                        ProblemCode::TimeBackwards,
                        format!("dated {}, before #{} at {}", event.at, link.seq, link.at),
                    ));
                }
            }
        }
        self.chains.insert(
            event.instance.clone(),
            Link {
                seq: event.seq,
                hash: hash.clone(),
                at: event.at,
            },
        );
        let found = self.replayer.apply(&hash, event);
        self.problems.extend(found);
        self.problems.extend(self.access.event(event));
    }

    /// An event record that could not even be read from the store.
    pub fn unreadable(&mut self, what: impl fmt::Display) {
        self.problems.push(
            Problem::new(ProblemCode::UnreadableEvent, what.to_string()).at_gseq(self.next_gseq),
        );
        // The record is not in the log we can hash; the sequence check
        // reports the gap it leaves.
    }

    fn count(&mut self, bytes: &[u8]) {
        self.events += 1;
        self.bytes += bytes.len() as u64 + 32;
    }

    /// The next instance snapshot and its pending deadline (call after the
    /// last event).
    pub fn snapshot(&mut self, stored: &Instance, due: Option<&Due>) {
        self.snapshots.insert(stored.id.clone());
        let Some(link) = self.chains.get(&stored.id) else {
            self.problems.push(
                Problem::new(
                    ProblemCode::SnapshotWithoutHistory,
                    "the store holds this instance but the log has none of its events".to_owned(),
                )
                .on(&stored.id),
            );
            return;
        };
        if link.seq != stored.seq || link.hash != stored.head {
            self.problems.push(
                Problem::new(
                    ProblemCode::HeadMismatch,
                    format!(
                        "the snapshot's head is #{} {}, but the chain ends at #{} {}",
                        stored.seq, stored.head, link.seq, link.hash
                    ),
                )
                .on(&stored.id),
            );
        }
        if let Some(replayed) = self.replayer.instance(&stored.id) {
            let mut found = differences(replayed, stored);
            let expected = self.replayer.due(&stored.id);
            if expected != due {
                let show = |due: Option<&Due>| {
                    due.map_or_else(
                        || "none".to_owned(),
                        |d| format!("`{}` at {}", d.event, d.at),
                    )
                };
                found.push(format!(
                    "due: replayed {}, stored {} (a deadline the engine fired and the definition refused leaves no event, only this)",
                    show(expected),
                    show(due)
                ));
            }
            if !found.is_empty() {
                self.problems.push(
                    Problem::new(ProblemCode::SnapshotMismatch, found.join("; ")).on(&stored.id),
                );
            }
        }
    }

    /// An instance snapshot that could not be read.
    pub fn unreadable_snapshot(&mut self, what: impl fmt::Display) {
        self.snapshots_incomplete = true;
        self.problems.push(Problem::new(
            ProblemCode::SnapshotMismatch,
            format!(
                "a snapshot cannot be read, and the snapshots after it are not checked: {what}"
            ),
        ));
    }

    /// Runs the checks that need the whole log and returns the report.
    pub fn finish(mut self) -> Report {
        let mut missing: Vec<&String> = self
            .chains
            .keys()
            .filter(|id| {
                !self.snapshots_incomplete && !id.starts_with('@') && !self.snapshots.contains(*id)
            })
            .collect();
        missing.sort();
        for id in missing {
            self.problems.push(
                Problem::new(
                    ProblemCode::MissingSnapshot,
                    "the log holds events of this instance but the store has no snapshot of it"
                        .to_owned(),
                )
                .on(id),
            );
        }
        self.problems.extend(self.replayer.unmet());
        let size = self.log.size();
        let root = self.log.root();
        if let Some(expected) = self.options.expected_size
            && expected != size
        {
            self.problems.push(Problem::new(
                ProblemCode::LogTruncated,
                format!(
                    "the store's sequence counter says {expected} events, but the log holds {size}"
                ),
            ));
        }
        let mut consistency_proof = None;
        if let Some(since) = &self.options.since {
            if since.size > size {
                self.problems.push(Problem::new(
                    ProblemCode::CheckpointInconsistent,
                    format!(
                        "the checkpoint covers {} events, but the log holds only {size}: events were removed (a truncation, a deleted instance or an older backup)",
                        since.size
                    ),
                ));
            } else {
                let proof = self.log.consistency_proof().unwrap_or_default();
                match verify_consistency(since.size, &since.root, size, &root, &proof) {
                    Ok(()) => {
                        consistency_proof = Some(proof.iter().map(hex::encode).collect());
                    }
                    Err(_) => self.problems.push(Problem::new(
                        ProblemCode::CheckpointInconsistent,
                        format!(
                            "the log is not an extension of the checkpoint ({} events, root {}): some of its first {} events were altered, removed or reordered since",
                            since.size,
                            hex::encode(since.root),
                            since.size
                        ),
                    )),
                }
            }
        }
        Report {
            events: self.events,
            bytes: self.bytes,
            instances: self.replayer.instance_ids().count() as u64,
            snapshots: self.snapshots.len() as u64,
            size,
            root: hex::encode(root),
            since: self.options.since.as_ref().map(|c| c.size),
            consistency_proof,
            problems: self.problems,
            root_hash: root,
        }
    }
}

/// Verifies a store given as its event records (stored hash, bytes) in key
/// order and its snapshots: the convenience form of [`Verifier`].
pub fn verify<E, S, X, Y>(events: E, snapshots: S, options: VerifyOptions) -> Report
where
    E: IntoIterator<Item = Result<(String, Vec<u8>), X>>,
    S: IntoIterator<Item = Result<(Instance, Option<Due>), Y>>,
    X: fmt::Display,
    Y: fmt::Display,
{
    let mut verifier = Verifier::new(options);
    for item in events {
        match item {
            Ok((hash, bytes)) => verifier.event(&hash, &bytes),
            Err(error) => verifier.unreadable(error),
        }
    }
    for item in snapshots {
        match item {
            Ok((snapshot, due)) => verifier.snapshot(&snapshot, due.as_ref()),
            Err(error) => verifier.unreadable_snapshot(error),
        }
    }
    verifier.finish()
}
