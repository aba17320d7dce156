//! Verification of a whole store, fed as two streams: every event record
//! in key (global) order, then every instance snapshot.
//!
//! What it proves and what it cannot is in `docs/audit.md`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;
use strive_core::{
    Due, Event, GENESIS, Instance, PartitionHead, StreamingProof, WORKFLOW_SUBJECT_PREFIX,
    combined_head, event_digest,
};

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
    /// counter; over every partition): a log that ends earlier was cut.
    pub expected_size: Option<u64>,
    /// With several partitions, the number of events each partition's
    /// sequence counter says it holds, by partition (empty: unknown).
    pub expected_sizes: Vec<u64>,
}

/// One partition's Merkle log as verified.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionSummary {
    /// The partition.
    pub partition: u32,
    /// The events in its log.
    pub size: u64,
    /// Its root, in hex.
    pub root: String,
    /// Its root, raw.
    #[serde(skip)]
    pub root_hash: Hash,
}

/// The heads a checkpoint states for verified partitions.
fn heads(partitions: &[PartitionSummary]) -> Vec<PartitionHead> {
    partitions
        .iter()
        .map(|p| PartitionHead {
            partition: p.partition,
            size: p.size,
            root: p.root_hash,
        })
        .collect()
}

fn at_most_one(partitions: &[PartitionSummary]) -> bool {
    partitions.len() <= 1
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
    /// With several partitions, each one's log (`size` and `root` above
    /// are then the total and the combined root, docs/audit.md).
    #[serde(skip_serializing_if = "at_most_one")]
    pub partitions: Vec<PartitionSummary>,
}

impl Report {
    /// Whether everything holds.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Today's checkpoint under `origin`, with a line per partition when
    /// there are several.
    pub fn checkpoint(&self, origin: &str) -> Checkpoint {
        Checkpoint::of_heads(origin, &heads(&self.partitions))
            .unwrap_or_else(|_| Checkpoint::new(origin, self.size, self.root_hash))
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

/// One partition's log as the verifier reads it.
struct PartitionLog {
    next_gseq: u64,
    /// The Merkle root recomputed from the events in O(log N) memory, with
    /// the consistency proof from the `since` checkpoint's size.
    log: StreamingProof,
}

/// A streaming verifier. Feed every event in key order with
/// [`Verifier::event`], then every snapshot with [`Verifier::snapshot`],
/// then call [`Verifier::finish`]. A store of several partitions is fed
/// partition by partition, from partition 0 (whose log holds the
/// deployments), each started with [`Verifier::partition`].
pub struct Verifier {
    options: VerifyOptions,
    /// The `since` checkpoint's partition heads, if it has readable ones.
    since_heads: Vec<PartitionHead>,
    /// Each partition's log so far, by partition.
    logs: Vec<PartitionLog>,
    /// The partition being fed.
    current: usize,
    chains: HashMap<String, Link>,
    replayer: Replayer,
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
        let mut problems = Vec::new();
        let since_heads = match options.since.as_ref().map(Checkpoint::heads) {
            None => Vec::new(),
            Some(Ok(heads)) => heads,
            Some(Err(error)) => {
                problems.push(Problem::new(
                    ProblemCode::CheckpointInconsistent,
                    error.to_string(),
                ));
                Vec::new()
            }
        };
        let mut verifier = Verifier {
            options,
            since_heads,
            logs: Vec::new(),
            current: 0,
            chains: HashMap::new(),
            replayer: Replayer::new(),
            snapshots: HashSet::new(),
            snapshots_incomplete: false,
            problems,
            events: 0,
            bytes: 0,
        };
        verifier.partition(0);
        verifier
    }

    /// Starts partition `partition`'s log: the events fed from now on are
    /// its, in order. Partitions are fed in order from 0; a store of one
    /// partition needs no call.
    pub fn partition(&mut self, partition: u32) {
        while self.logs.len() <= partition as usize {
            let index = self.logs.len();
            let since = self.since_heads.get(index).map_or(0, |head| head.size);
            self.logs.push(PartitionLog {
                next_gseq: 1,
                log: StreamingProof::new(since),
            });
        }
        self.current = partition as usize;
    }

    fn log(&mut self) -> &mut PartitionLog {
        let current = self.current;
        &mut self.logs[current]
    }

    /// "the global log", or with several partitions the current one's.
    fn log_name(&self) -> String {
        if self.logs.len() > 1 || self.current > 0 {
            format!("partition {}'s log", self.current)
        } else {
            "the global log".to_owned()
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
                let gseq = self.log().next_gseq;
                self.count(bytes);
                self.log().log.push(&event_digest(bytes));
                self.problems.push(
                    Problem::new(
                        ProblemCode::UnreadableEvent,
                        format!("the event record does not decode: {error}"),
                    )
                    .at_gseq(gseq),
                );
                self.log().next_gseq += 1;
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
        if event.partition as usize != self.current {
            self.problems.push(at(
                ProblemCode::SequenceOrder,
                format!(
                    "the event names partition {}, but it is in {}: it was moved between logs",
                    event.partition,
                    self.log_name()
                ),
            ));
        }
        // The partition's sequence: gapless from 1, each number once.
        let next = self.log().next_gseq;
        if event.gseq > next {
            let missing = if event.gseq - next == 1 {
                format!("event {next} is missing")
            } else {
                format!("events {next}..={} are missing", event.gseq - 1)
            };
            self.problems.push(at(
                ProblemCode::SequenceGap,
                format!("{missing} from {}", self.log_name()),
            ));
            self.log().next_gseq = event.gseq + 1;
        } else if event.gseq < next {
            self.problems.push(at(
                ProblemCode::SequenceOrder,
                format!(
                    "global position {} comes after {}: the log was reordered or an event duplicated",
                    event.gseq,
                    next - 1
                ),
            ));
        } else {
            self.log().next_gseq += 1;
        }
        self.log().log.push(&digest);
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
    }

    /// An event record that could not even be read from the store.
    pub fn unreadable(&mut self, what: impl fmt::Display) {
        self.problems.push(
            Problem::new(ProblemCode::UnreadableEvent, what.to_string())
                .at_gseq(self.logs[self.current].next_gseq),
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
                !self.snapshots_incomplete
                    && !id.starts_with(WORKFLOW_SUBJECT_PREFIX)
                    && !self.snapshots.contains(*id)
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
        let partitions: Vec<PartitionSummary> = (0u32..)
            .zip(&self.logs)
            .map(|(partition, log)| {
                let root = log.log.root();
                PartitionSummary {
                    partition,
                    size: log.log.size(),
                    root: hex::encode(root),
                    root_hash: root,
                }
            })
            .collect();
        let (size, root) =
            combined_head(&heads(&partitions)).unwrap_or((0, strive_core::empty_root()));
        self.check_sizes(size, &partitions);
        let consistency_proof = self.check_since(&partitions);
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
            partitions,
        }
    }

    /// Compares the log's sizes with what the store's counters say.
    fn check_sizes(&mut self, size: u64, partitions: &[PartitionSummary]) {
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
        for (partition, &expected) in self.options.expected_sizes.iter().enumerate() {
            let found = partitions.get(partition).map_or(0, |p| p.size);
            if expected != found {
                self.problems.push(Problem::new(
                    ProblemCode::LogTruncated,
                    format!(
                        "partition {partition}'s sequence counter says {expected} events, but its log holds {found}"
                    ),
                ));
            }
        }
    }

    /// Checks each partition's log against the `since` checkpoint's head of
    /// it; returns the consistency proof (with one partition) when it holds.
    fn check_since(&mut self, partitions: &[PartitionSummary]) -> Option<Vec<String>> {
        self.options.since.as_ref()?;
        let mut proofs = Vec::new();
        for old in &self.since_heads {
            let index = old.partition as usize;
            let (size, root) = partitions
                .get(index)
                .map_or((0, strive_core::empty_root()), |p| (p.size, p.root_hash));
            let name = if self.since_heads.len() > 1 {
                format!("partition {}'s log", old.partition)
            } else {
                "the log".to_owned()
            };
            if old.size > size {
                self.problems.push(Problem::new(
                    ProblemCode::CheckpointInconsistent,
                    format!(
                        "the checkpoint covers {} events, but {name} holds only {size}: events were removed (a truncation, a deleted instance or an older backup)",
                        old.size
                    ),
                ));
                continue;
            }
            let proof = self
                .logs
                .get(index)
                .and_then(|l| l.log.consistency_proof())
                .unwrap_or_default();
            match verify_consistency(old.size, &old.root, size, &root, &proof) {
                Ok(()) => proofs.push(proof),
                Err(_) => self.problems.push(Problem::new(
                    ProblemCode::CheckpointInconsistent,
                    format!(
                        "{name} is not an extension of the checkpoint ({} events, root {}): some of its first {} events were altered, removed or reordered since",
                        old.size,
                        hex::encode(old.root),
                        old.size
                    ),
                )),
            }
        }
        match proofs.as_slice() {
            [only] if self.since_heads.len() == 1 => Some(only.iter().map(hex::encode).collect()),
            _ => None,
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
