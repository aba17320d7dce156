//! Verification of a whole store, fed as two streams: every event record
//! in key (global) order, then every instance snapshot.
//!
//! What it proves and what it cannot is in `docs/audit.md`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Range;

use jiff::Timestamp;
use serde::Serialize;
use strive_core::{
    Due, Event, GENESIS, Instance, PartitionHead, StreamingProof, combined_head, event_digest,
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
    /// The threads [`crate::verify_runs`] checks on: 0 for one per core,
    /// 1 to verify sequentially on the caller's thread. The report is the
    /// same either way.
    pub jobs: usize,
    /// Report an actor's start or fire that carries no signature while
    /// the actor held a registered key (`unsigned`): for a store that
    /// requires signatures (`Options::require_signatures`), which the log
    /// does not record. Signatures that are there are checked either way.
    pub require_signatures: bool,
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

fn is_zero(n: &u64) -> bool {
    *n == 0
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
    /// Of those, the snapshots written after the log was read (on a store
    /// being written while it is verified), each checked against its own
    /// history at its own sequence number instead of against the log read
    /// (`store::verify`).
    #[serde(skip_serializing_if = "is_zero")]
    pub rechecked: u64,
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
    /// The threads the events were checked on: 1 when verified
    /// sequentially (asked for, or because the log holds a reference across
    /// families of instances, see [`crate::verify_runs`]).
    #[serde(skip)]
    pub jobs: usize,
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
            "{} events, {} instances, {} snapshots{}; root {} at size {}: {}",
            self.events,
            self.instances,
            self.snapshots,
            if self.rechecked > 0 {
                format!(
                    " ({} written meanwhile, each checked against its own history)",
                    self.rechecked
                )
            } else {
                String::new()
            },
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

/// Consecutive event records as a store holds them (one block of its
/// log): each event's stored digest and its exact bytes, in one buffer.
/// [`verify_runs`](crate::verify_runs) reads a log as a sequence of these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRun {
    digests: Vec<Hash>,
    data: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl EventRun {
    /// An empty run.
    pub fn new() -> EventRun {
        EventRun::default()
    }

    /// A run from its parts: one stored digest per event, and where in
    /// `data` each event's bytes are. A digest without bytes (or bytes
    /// without a digest, or a range outside `data`) is reported as an
    /// unreadable event, never trusted.
    pub fn from_parts(digests: Vec<Hash>, data: Vec<u8>, spans: Vec<Range<usize>>) -> EventRun {
        EventRun {
            digests,
            data,
            spans,
        }
    }

    /// Appends an event record: its stored digest and exact bytes.
    pub fn push(&mut self, digest: Hash, bytes: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(bytes);
        self.digests.push(digest);
        self.spans.push(start..self.data.len());
    }

    /// The number of event records in the run.
    pub fn len(&self) -> usize {
        self.digests.len().max(self.spans.len())
    }

    /// Whether the run holds no event record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored digest and exact bytes of the `index`th event, or why
    /// they cannot be had.
    pub(crate) fn get(&self, index: usize) -> Result<(&Hash, &[u8]), String> {
        let digest = self.digests.get(index);
        let bytes = self
            .spans
            .get(index)
            .and_then(|span| self.data.get(span.clone()));
        match (digest, bytes) {
            (Some(digest), Some(bytes)) => Ok((digest, bytes)),
            _ => Err(format!(
                "event record {index} of a block of {} has no digest or no bytes",
                self.len()
            )),
        }
    }
}

/// One event of a run as [`decode_run`] gives it: the digest of its bytes
/// and the event, or the digest and why the bytes do not decode.
#[cfg(feature = "store")]
pub(crate) type DecodedEvent = Result<(Hash, Event), (Hash, String)>;

/// Hashes and decodes every event of `run`, for [`Verifier::decoded_run`]:
/// the part of verification that needs no order, so it can run on other
/// threads. Only the store's verification of several partitions uses it.
#[cfg(feature = "store")]
pub(crate) fn decode_run(run: &EventRun) -> Vec<DecodedEvent> {
    (0..run.len())
        .map_while(|index| run.get(index).ok())
        .map(|(_, bytes)| {
            let computed = event_digest(bytes);
            Event::decode(bytes)
                .map(|event| (computed, event))
                .map_err(|error| (computed, error.to_string()))
        })
        .collect()
}

/// The hash stored with an event: hex from a caller, raw from a block.
#[derive(Clone, Copy)]
pub(crate) enum Stored<'a> {
    Hex(&'a str),
    Digest(&'a Hash),
}

impl Stored<'_> {
    fn matches(self, computed: &Hash, computed_hex: &str) -> bool {
        match self {
            Stored::Hex(hex) => hex == computed_hex,
            Stored::Digest(digest) => digest == computed,
        }
    }

    fn hex(self) -> String {
        match self {
            Stored::Hex(hex) => hex.to_owned(),
            Stored::Digest(digest) => hex::encode(digest),
        }
    }
}

/// The last event of a subject's chain.
pub(crate) struct Link {
    seq: u64,
    hash: String,
    at: Timestamp,
    /// The partition whose log holds the chain.
    partition: u32,
}

/// Where an instance's start put it: the partition whose log holds it and
/// its parent, for the routing check ([`check_routing`]).
struct Home {
    partition: u32,
    parent: Option<String>,
}

/// The checks of one log stream (a partition's log) that need every event
/// in order: the global sequence, the Merkle log, the counts. Cheap; the
/// parallel verifier runs them on one thread.
pub(crate) struct Stream {
    /// The partition whose log this is, and whether the store has others
    /// (then messages name it).
    partition: u32,
    several: bool,
    /// Whether the stream is fed every event of its log (a store, a
    /// complete bundle): then the sequence must be gapless from 1, and the
    /// access chain is checked. An extract only keeps the order.
    whole: bool,
    next_gseq: u64,
    /// The grants as replayed so far: the access check needs every event
    /// in log order, so it runs with the stream, not in a shard.
    access: crate::access::AccessCheck,
    /// The Merkle root recomputed from the events in O(log N) memory, with
    /// the consistency proof from the `since` checkpoint's size.
    log: StreamingProof,
    events: u64,
    bytes: u64,
}

impl Stream {
    /// The stream of a store of one partition.
    pub(crate) fn new(options: &VerifyOptions) -> Stream {
        let since = options.since.as_ref().map_or(0, |since| since.size);
        let mut stream = Stream::of_partition(0, false, since);
        stream.access.require_signatures = options.require_signatures;
        stream
    }

    /// Partition `partition`'s stream; `since` is the size the `since`
    /// checkpoint states for it.
    pub(crate) fn of_partition(partition: u32, several: bool, since: u64) -> Stream {
        Stream {
            partition,
            several,
            whole: true,
            next_gseq: 1,
            access: Default::default(),
            log: StreamingProof::new(since),
            events: 0,
            bytes: 0,
        }
    }

    /// A decoded event: its stored hash against the hash of its bytes
    /// (`computed`, in hex `hash`), then its global position; then it
    /// enters the Merkle log. Problems go to `out`, in that order.
    pub(crate) fn event(
        &mut self,
        stored: Stored<'_>,
        (computed, hash): (&Hash, &str),
        len: usize,
        event: &Event,
        out: &mut Vec<Problem>,
    ) {
        self.count(len);
        let at = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        if !stored.matches(computed, hash) {
            out.push(at(
                ProblemCode::HashMismatch,
                format!(
                    "the stored hash is {}, but the stored bytes hash to {hash}: the event was altered",
                    stored.hex()
                ),
            ));
        }
        if event.partition != self.partition {
            out.push(at(
                ProblemCode::SequenceOrder,
                format!(
                    "the event names partition {}, but it is in {}: it was moved between logs",
                    event.partition,
                    self.name()
                ),
            ));
        }
        // The partition's sequence: gapless from 1, each number once (an
        // extract's: increasing).
        if event.gseq > self.next_gseq && !self.whole {
            self.next_gseq = event.gseq.saturating_add(1);
        } else if event.gseq > self.next_gseq {
            let missing = if event.gseq - self.next_gseq == 1 {
                format!("event {} is missing", self.next_gseq)
            } else {
                format!("events {}..={} are missing", self.next_gseq, event.gseq - 1)
            };
            out.push(at(
                ProblemCode::SequenceGap,
                format!("{missing} from {}", self.name()),
            ));
            self.next_gseq = event.gseq.saturating_add(1);
        } else if event.gseq < self.next_gseq {
            out.push(at(
                ProblemCode::SequenceOrder,
                format!(
                    "global position {} comes after {}: the log was reordered or an event duplicated",
                    event.gseq,
                    self.next_gseq - 1
                ),
            ));
        } else {
            self.next_gseq = self.next_gseq.saturating_add(1);
        }
        self.log.push(computed);
        // Only a whole log has every grant and every ancestor's start
        // event that an instance grant is checked through.
        if self.whole {
            out.extend(self.access.event(event));
        }
    }

    /// An event record whose bytes do not decode: it is in the log (it is
    /// hashed and takes a position), but nothing else can be checked.
    pub(crate) fn undecodable(&mut self, computed: &Hash, len: usize, error: &str) -> Problem {
        let gseq = self.next_gseq;
        self.count(len);
        self.log.push(computed);
        self.next_gseq = self.next_gseq.saturating_add(1);
        Problem::new(
            ProblemCode::UnreadableEvent,
            format!("the event record does not decode: {error}"),
        )
        .at_gseq(gseq)
    }

    /// An event record that could not even be read from the store. It is
    /// not in the log we can hash; the sequence check reports the gap it
    /// leaves.
    pub(crate) fn unreadable(&self, what: impl fmt::Display) -> Problem {
        Problem::new(ProblemCode::UnreadableEvent, what.to_string()).at_gseq(self.next_gseq)
    }

    /// "the global log", or with several partitions this one's.
    fn name(&self) -> String {
        if self.several {
            format!("partition {}'s log", self.partition)
        } else {
            "the global log".to_owned()
        }
    }

    fn count(&mut self, len: usize) {
        self.events += 1;
        self.bytes += len as u64 + 32;
    }

    /// An event that replay alone reads: counted and given the next
    /// position, unchecked.
    pub(crate) fn pass(&mut self, len: usize) {
        self.count(len);
        self.next_gseq = self.next_gseq.saturating_add(1);
    }

    /// Events read so far.
    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    /// The partition whose log this is.
    pub(crate) fn partition(&self) -> u32 {
        self.partition
    }

    /// The highest position read so far.
    pub(crate) fn last_gseq(&self) -> u64 {
        self.next_gseq - 1
    }

    /// The head of the log of the events read: their size and root.
    pub(crate) fn head(&self) -> PartitionHead {
        PartitionHead {
            partition: self.partition,
            size: self.log.size(),
            root: self.log.root(),
        }
    }

    /// The consistency proof from the `since` size given at the start to
    /// the events read (`None` from 0, or when fewer were read).
    pub(crate) fn consistency_proof(&self) -> Option<Vec<Hash>> {
        self.log.consistency_proof()
    }
}

/// The checks that follow subjects rather than the log's order: each
/// subject's chain, and replay. The sequential verifier has one; the
/// parallel one has a shard per worker, each with whole families of
/// instances (an instance, its parent and its children together).
pub(crate) struct Shard {
    chains: HashMap<String, Link>,
    /// Each started instance's partition and parent.
    homes: HashMap<String, Home>,
    pub(crate) replayer: Replayer,
    /// Whether each subject is fed from its first event (not a bundle
    /// exported `--since`): then chains start at #1, and replay runs.
    from_start: bool,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            chains: HashMap::new(),
            homes: HashMap::new(),
            replayer: Replayer::new(),
            from_start: true,
        }
    }
}

impl Shard {
    /// The shard of an extract (a filtered bundle), whose instances'
    /// parents may be left out, fed from each subject's first event or not.
    pub(crate) fn extract(from_start: bool) -> Shard {
        Shard {
            replayer: Replayer::extract(),
            from_start,
            ..Shard::default()
        }
    }

    /// The event (decoded, its hash in hex) in its subject's chain, then
    /// replayed. Problems go to `out`, in that order.
    pub(crate) fn event(&mut self, hash: &str, event: &Event, out: &mut Vec<Problem>) {
        if event.kind == strive_core::EventKind::Start {
            let parent = event.payload.get("parent").and_then(|p| p.as_str());
            self.homes.insert(
                event.instance.clone(),
                Home {
                    partition: event.partition,
                    parent: parent.map(str::to_owned),
                },
            );
        }
        match self.chains.get_mut(&event.instance) {
            None => {
                first_link(event, self.from_start, out);
                self.chains.insert(
                    event.instance.clone(),
                    Link {
                        seq: event.seq,
                        hash: hash.to_owned(),
                        at: event.at,
                        partition: event.partition,
                    },
                );
            }
            Some(link) => next_link(link, hash, event, out),
        }
        if self.from_start {
            out.extend(self.replayer.apply(hash, event));
        }
    }
}

/// A problem at `event`.
fn at_event(event: &Event, code: ProblemCode, message: String) -> Problem {
    Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
}

/// The checks of a chain's first event: #1 with the genesis `prev`. An
/// extract from a later position (`from_start` false) starts chains late.
fn first_link(event: &Event, from_start: bool, out: &mut Vec<Problem>) {
    if event.seq != 1 {
        if from_start {
            out.push(at_event(
                event,
                ProblemCode::ChainBroken,
                format!(
                    "the chain starts at #{}: events #1..#{} are missing",
                    event.seq,
                    event.seq.saturating_sub(1)
                ),
            ));
        }
    } else if event.prev != GENESIS {
        out.push(at_event(
            event,
            ProblemCode::ChainBroken,
            "the first event's prev must be 64 zeros".to_owned(),
        ));
    }
}

/// The checks of an event against its chain's last one, `link`, which it
/// then becomes: the same partition, the next number, `prev` its hash, and
/// time never going backwards.
fn next_link(link: &mut Link, hash: &str, event: &Event, out: &mut Vec<Problem>) {
    if event.partition != link.partition {
        out.push(at_event(
            event,
            ProblemCode::WrongPartition,
            format!(
                "the event is in partition {}, but its chain is in partition {}: an instance's \
                 events are all in one partition's log",
                event.partition, link.partition
            ),
        ));
    }
    if Some(event.seq) != link.seq.checked_add(1) {
        out.push(at_event(
            event,
            ProblemCode::ChainBroken,
            format!("#{} follows #{} in the chain", event.seq, link.seq),
        ));
    }
    if event.prev != link.hash {
        out.push(at_event(
            event,
            ProblemCode::ChainBroken,
            format!(
                "prev is {}, but #{} hashes to {}",
                event.prev, link.seq, link.hash
            ),
        ));
    }
    if event.at < link.at {
        out.push(at_event(
            event,
            ProblemCode::TimeBackwards,
            format!("dated {}, before #{} at {}", event.at, link.seq, link.at),
        ));
    }
    link.seq = event.seq;
    hash.clone_into(&mut link.hash);
    link.at = event.at;
}

/// The snapshot checks, run after the last event: which snapshots were
/// seen, and whether one could not be read.
#[derive(Default)]
pub(crate) struct Snapshots {
    seen: HashSet<String>,
    /// Set when a snapshot could not be read: which instances lack one is
    /// then unknown.
    incomplete: bool,
}

impl Snapshots {
    /// Checks a stored snapshot against `shard`, the one holding its
    /// instance's events (`None` when no shard has any).
    pub(crate) fn check(
        &mut self,
        shard: Option<&Shard>,
        stored: &Instance,
        due: Option<&Due>,
        out: &mut Vec<Problem>,
    ) {
        self.seen.insert(stored.id.clone());
        let Some((link, shard)) =
            shard.and_then(|shard| shard.chains.get(&stored.id).map(|link| (link, shard)))
        else {
            out.push(
                Problem::new(
                    ProblemCode::SnapshotWithoutHistory,
                    "the store holds this instance but the log has none of its events".to_owned(),
                )
                .on(&stored.id),
            );
            return;
        };
        if link.seq != stored.seq || link.hash != stored.head {
            out.push(
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
        if let Some(replayed) = shard.replayer.instance(&stored.id) {
            let mut found = differences(replayed, stored);
            let expected = shard.replayer.due(&stored.id);
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
                out.push(
                    Problem::new(ProblemCode::SnapshotMismatch, found.join("; ")).on(&stored.id),
                );
            }
        }
    }

    /// A snapshot that could not be read.
    pub(crate) fn unreadable(&mut self, what: impl fmt::Display) -> Problem {
        self.incomplete = true;
        Problem::new(
            ProblemCode::SnapshotMismatch,
            format!(
                "a snapshot cannot be read, and the snapshots after it are not checked: {what}"
            ),
        )
    }
}

/// The checks that need the whole log, and the report: `problems` are
/// those found so far, in order.
pub(crate) fn finish(
    options: &VerifyOptions,
    streams: Vec<Stream>,
    shards: &[Shard],
    snapshots: &Snapshots,
    mut problems: Vec<Problem>,
) -> Report {
    let mut missing: Vec<&String> = shards
        .iter()
        .flat_map(|shard| shard.chains.keys())
        .filter(|id| !snapshots.incomplete && !id.starts_with('@') && !snapshots.seen.contains(*id))
        .collect();
    missing.sort();
    for id in missing {
        problems.push(
            Problem::new(
                ProblemCode::MissingSnapshot,
                "the log holds events of this instance but the store has no snapshot of it"
                    .to_owned(),
            )
            .on(id),
        );
    }
    problems.extend(unmet(shards));
    problems.extend(check_routing(shards, streams.len() as u32));
    let partitions: Vec<PartitionSummary> = streams
        .iter()
        .map(|stream| {
            let root = stream.log.root();
            PartitionSummary {
                partition: stream.partition,
                size: stream.log.size(),
                root: hex::encode(root),
                root_hash: root,
            }
        })
        .collect();
    let (size, root) = combined_head(&heads(&partitions)).unwrap_or((0, strive_core::empty_root()));
    check_sizes(options, size, &partitions, &mut problems);
    let consistency_proof = check_since(options, &streams, &mut problems);
    Report {
        events: streams.iter().map(|s| s.events).sum(),
        bytes: streams.iter().map(|s| s.bytes).sum(),
        instances: instances(shards),
        snapshots: snapshots.seen.len() as u64,
        rechecked: 0,
        size,
        root: hex::encode(root),
        since: options.since.as_ref().map(|c| c.size),
        consistency_proof,
        problems,
        root_hash: root,
        jobs: shards.len(),
        partitions,
    }
}

/// The store's sequence counters against the logs' sizes.
fn check_sizes(
    options: &VerifyOptions,
    size: u64,
    partitions: &[PartitionSummary],
    problems: &mut Vec<Problem>,
) {
    if let Some(expected) = options.expected_size
        && expected != size
    {
        problems.push(Problem::new(
            ProblemCode::LogTruncated,
            format!(
                "the store's sequence counter says {expected} events, but the log holds {size}"
            ),
        ));
    }
    for (partition, &expected) in options.expected_sizes.iter().enumerate() {
        let found = partitions.get(partition).map_or(0, |p| p.size);
        if expected != found {
            problems.push(Problem::new(
                ProblemCode::LogTruncated,
                format!(
                    "partition {partition}'s sequence counter says {expected} events, but its log holds {found}"
                ),
            ));
        }
    }
}

/// The `since` checkpoint's partition heads, or the problem that it has
/// none that can be read.
pub(crate) fn since_heads(options: &VerifyOptions) -> (Vec<PartitionHead>, Option<Problem>) {
    match options.since.as_ref().map(Checkpoint::heads) {
        None => (Vec::new(), None),
        Some(Ok(heads)) => (heads, None),
        Some(Err(error)) => (
            Vec::new(),
            Some(Problem::new(
                ProblemCode::CheckpointInconsistent,
                error.to_string(),
            )),
        ),
    }
}

/// Checks each partition's log against the `since` checkpoint's head of
/// it; returns the consistency proof (with one partition) when it holds.
fn check_since(
    options: &VerifyOptions,
    streams: &[Stream],
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    options.since.as_ref()?;
    let (since, _) = since_heads(options);
    let mut proofs = Vec::new();
    for old in &since {
        let empty = StreamingProof::new(0);
        let log = streams
            .get(old.partition as usize)
            .map_or(&empty, |stream| &stream.log);
        let name = if since.len() > 1 {
            format!("partition {}'s log", old.partition)
        } else {
            "the log".to_owned()
        };
        if let Some(proof) = consistency(old, log, &name, problems) {
            proofs.push(proof);
        }
    }
    match proofs.as_slice() {
        [only] if since.len() == 1 => Some(only.clone()),
        _ => None,
    }
}

/// What the definitions imply but no shard's log holds, in the order of a
/// single [`crate::Replayer::unmet`].
pub(crate) fn unmet(shards: &[Shard]) -> Vec<Problem> {
    let mut unmet: Vec<Problem> = shards
        .iter()
        .flat_map(|shard| shard.replayer.unmet())
        .collect();
    unmet.sort_by(|a, b| a.message.cmp(&b.message));
    unmet
}

/// The routing rule (docs/audit.md, "Partitions"): a root instance is in
/// the partition its id routes to (`strive_core::root_partition`), and a
/// child in its parent's, so every instance is in its root ancestor's. A
/// problem names the instance where the rule first breaks, not each of
/// its descendants; an instance whose parent is not in the log read (an
/// extract) is not checked. With one partition there is nothing to check.
pub(crate) fn check_routing(shards: &[Shard], partitions: u32) -> Vec<Problem> {
    if partitions <= 1 {
        return Vec::new();
    }
    let homes: HashMap<&str, &Home> = shards
        .iter()
        .flat_map(|shard| shard.homes.iter())
        .map(|(id, home)| (id.as_str(), home))
        .collect();
    let mut ids: Vec<&str> = homes.keys().copied().collect();
    ids.sort_unstable();
    let mut problems = Vec::new();
    for id in ids {
        let home = homes[id];
        let (expected, why) = match &home.parent {
            None => (
                strive_core::root_partition(id, partitions),
                "its id routes a root instance there".to_owned(),
            ),
            Some(parent) => match homes.get(parent.as_str()) {
                Some(parent_home) => (
                    parent_home.partition,
                    format!("its parent `{parent}` is there"),
                ),
                None => continue,
            },
        };
        if home.partition != expected {
            problems.push(
                Problem::new(
                    ProblemCode::WrongPartition,
                    format!(
                        "the instance is in partition {}, but belongs in partition {expected}: \
                         {why} (it was written to or moved into the wrong log)",
                        home.partition
                    ),
                )
                .on(id),
            );
        }
    }
    problems
}

/// The instances the shards replayed.
pub(crate) fn instances(shards: &[Shard]) -> u64 {
    shards
        .iter()
        .map(|shard| shard.replayer.instance_ids().count() as u64)
        .sum()
}

/// The consistency proof from `since` to the log, or the problem that
/// there is none.
fn consistency(
    since: &PartitionHead,
    log: &StreamingProof,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<Vec<String>> {
    let (size, root) = (log.size(), log.root());
    if since.size > size {
        problems.push(Problem::new(
            ProblemCode::CheckpointInconsistent,
            format!(
                "the checkpoint covers {} events, but {name} holds only {size}: events were removed (a truncation, a deleted instance or an older backup)",
                since.size
            ),
        ));
        return None;
    }
    let proof = log.consistency_proof().unwrap_or_default();
    match verify_consistency(since.size, &since.root, size, &root, &proof) {
        Ok(()) => Some(proof.iter().map(hex::encode).collect()),
        Err(_) => {
            problems.push(Problem::new(
                ProblemCode::CheckpointInconsistent,
                format!(
                    "{name} is not an extension of the checkpoint ({} events, root {}): some of its first {} events were altered, removed or reordered since",
                    since.size,
                    hex::encode(since.root),
                    since.size
                ),
            ));
            None
        }
    }
}

/// A streaming verifier. Feed every event in key order with
/// [`Verifier::event`] (or whole blocks with [`Verifier::run`]), then every
/// snapshot with [`Verifier::snapshot`], then call [`Verifier::finish`].
/// This is the sequential verifier; [`verify_runs`](crate::verify_runs) spreads the same
/// checks over threads.
pub struct Verifier {
    options: VerifyOptions,
    /// The `since` checkpoint's sizes, by partition.
    since_sizes: Vec<u64>,
    /// Each partition's stream so far, by partition.
    streams: Vec<Stream>,
    /// The stream being fed.
    current: usize,
    /// Whether the streams are fed their whole logs ([`Stream`]'s `whole`).
    whole: bool,
    /// Partition 0's access chain, once its log has been fed: what the
    /// other partitions' events are checked against.
    grants: Option<Vec<Event>>,
    shard: Shard,
    snapshots: Snapshots,
    problems: Vec<Problem>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("events", &self.events_read())
            .field("problems", &self.problems.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with `options`.
    pub fn new(options: VerifyOptions) -> Verifier {
        let (heads, problem) = since_heads(&options);
        let mut since_sizes: Vec<u64> = heads.iter().map(|head| head.size).collect();
        if since_sizes.is_empty() {
            since_sizes.push(options.since.as_ref().map_or(0, |since| since.size));
        }
        let mut first = Stream::of_partition(0, false, since_sizes[0]);
        first.access.require_signatures = options.require_signatures;
        Verifier {
            streams: vec![first],
            current: 0,
            whole: true,
            grants: None,
            since_sizes,
            options,
            shard: Shard::default(),
            snapshots: Snapshots::default(),
            problems: problem.into_iter().collect(),
        }
    }

    /// Starts partition `partition`'s log: the events fed from now on are
    /// its, in order. A store of several partitions is fed partition by
    /// partition from 0 (whose log holds the deployments); a store of one
    /// partition needs no call.
    pub fn partition(&mut self, partition: u32) {
        self.ensure_streams(partition);
        if partition > 0 {
            self.streams[0].several = true;
            // Partition 0's log is fed first and holds the access chain;
            // the other partitions are checked against its grants.
            if self.current == 0 {
                let grants = self.streams[0].access.changes().to_vec();
                for stream in self.streams.iter_mut().skip(1) {
                    stream.access.follow(&grants);
                }
                self.grants = Some(grants);
            }
        }
        self.current = partition as usize;
    }

    /// Makes the streams of partitions up to `partition`; a stream made
    /// after partition 0 was read follows its grants.
    fn ensure_streams(&mut self, partition: u32) {
        while self.streams.len() <= partition as usize {
            let next = self.streams.len() as u32;
            let since = self.since_sizes.get(next as usize).copied().unwrap_or(0);
            let mut stream = Stream::of_partition(next, true, since);
            stream.whole = self.whole;
            stream.access.require_signatures = self.options.require_signatures;
            if let Some(grants) = &self.grants {
                stream.access.follow(grants);
            }
            self.streams.push(stream);
        }
    }

    /// Sets what the verifier will be fed, before the first event: a log
    /// of `partitions` partitions (their streams made now, so that an
    /// empty partition has one too), `whole` when every event of each is
    /// fed (else an extract), `from_start` when each subject is fed from
    /// its first event (else its chain is not checked from #1 nor
    /// replayed). A bundle's header says all three.
    pub(crate) fn rescope(&mut self, partitions: u32, whole: bool, from_start: bool) {
        self.whole = whole;
        self.shard = if whole && from_start {
            Shard::default()
        } else {
            Shard::extract(from_start)
        };
        for stream in &mut self.streams {
            stream.whole = whole;
        }
        self.ensure_streams(partitions.saturating_sub(1));
        for stream in &mut self.streams {
            stream.several = partitions > 1;
        }
        self.current = 0;
    }

    /// The stream being fed.
    fn stream(&mut self) -> &mut Stream {
        &mut self.streams[self.current]
    }

    /// The partition being fed.
    pub(crate) fn current_partition(&self) -> u32 {
        self.current as u32
    }

    /// A problem the caller found (a bundle's own checks), in its place
    /// among the others.
    pub(crate) fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// An event record whose bytes the caller could not decode.
    pub(crate) fn undecodable(&mut self, bytes: &[u8], error: &str) {
        let problem = self
            .stream()
            .undecodable(&event_digest(bytes), bytes.len(), error);
        self.problems.push(problem);
    }

    /// The state after the last event and snapshot, for a caller that runs
    /// its own final checks (a bundle's): the streams, by partition, the
    /// shard, and the problems so far with what the definitions imply but
    /// the log lacks and the routing check's (when `from_start`).
    pub(crate) fn into_parts(mut self) -> (Vec<Stream>, Shard, Vec<Problem>) {
        if self.shard.from_start {
            let shards = std::slice::from_ref(&self.shard);
            self.problems.extend(unmet(shards));
        }
        let shards = std::slice::from_ref(&self.shard);
        self.problems
            .extend(check_routing(shards, self.streams.len() as u32));
        (self.streams, self.shard, self.problems)
    }

    /// Problems found so far.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Events read so far.
    pub fn events_read(&self) -> u64 {
        self.streams.iter().map(Stream::events).sum()
    }

    /// The next event record, as stored: its hash (hex) and exact bytes.
    pub fn event(&mut self, stored_hash: &str, bytes: &[u8]) {
        self.stored(Stored::Hex(stored_hash), bytes);
    }

    /// The next event records: a block of the log.
    pub fn run(&mut self, run: &EventRun) {
        for index in 0..run.len() {
            match run.get(index) {
                Ok((digest, bytes)) => self.stored(Stored::Digest(digest), bytes),
                Err(what) => self.unreadable(what),
            }
        }
    }

    /// The next block of the log, its events already hashed and decoded
    /// elsewhere (by [`decode_run`], on other threads): the same checks in
    /// the same order as [`Verifier::run`], without the decoding.
    #[cfg(feature = "store")]
    pub(crate) fn decoded_run(&mut self, run: &EventRun, decoded: &[DecodedEvent]) {
        for index in 0..run.len() {
            match (run.get(index), decoded.get(index)) {
                (Ok((digest, bytes)), Some(Ok((computed, event)))) => {
                    let hash = hex::encode(computed);
                    self.checked(
                        Stored::Digest(digest),
                        (computed, &hash),
                        bytes.len(),
                        event,
                    );
                }
                (Ok((_, bytes)), Some(Err((computed, error)))) => {
                    let problem = self.stream().undecodable(computed, bytes.len(), error);
                    self.problems.push(problem);
                }
                (Ok((digest, bytes)), None) => self.stored(Stored::Digest(digest), bytes),
                (Err(what), _) => self.unreadable(what),
            }
        }
    }

    fn stored(&mut self, stored: Stored<'_>, bytes: &[u8]) {
        let computed = event_digest(bytes);
        match Event::decode(bytes) {
            Ok(event) => {
                let hash = hex::encode(computed);
                self.checked(stored, (&computed, &hash), bytes.len(), &event);
            }
            Err(error) => {
                let problem = self
                    .stream()
                    .undecodable(&computed, bytes.len(), &error.to_string());
                self.problems.push(problem);
            }
        }
    }

    /// The next event record when the caller has already decoded `bytes`
    /// into `event` (the store does).
    pub fn decoded_event(&mut self, stored_hash: &str, bytes: &[u8], event: &Event) {
        let computed = event_digest(bytes);
        let hash = hex::encode(computed);
        self.checked(
            Stored::Hex(stored_hash),
            (&computed, &hash),
            bytes.len(),
            event,
        );
    }

    fn checked(&mut self, stored: Stored<'_>, hash: (&Hash, &str), len: usize, event: &Event) {
        self.streams[self.current].event(stored, hash, len, event, &mut self.problems);
        self.shard.event(hash.1, event, &mut self.problems);
    }

    /// An event record that could not even be read from the store.
    pub fn unreadable(&mut self, what: impl fmt::Display) {
        let problem = self.stream().unreadable(what);
        self.problems.push(problem);
    }

    /// The next instance snapshot and its pending deadline (call after the
    /// last event).
    pub fn snapshot(&mut self, stored: &Instance, due: Option<&Due>) {
        self.snapshots
            .check(Some(&self.shard), stored, due, &mut self.problems);
    }

    /// An instance snapshot that could not be read.
    pub fn unreadable_snapshot(&mut self, what: impl fmt::Display) {
        let problem = self.snapshots.unreadable(what);
        self.problems.push(problem);
    }

    /// Runs the checks that need the whole log and returns the report.
    pub fn finish(self) -> Report {
        finish(
            &self.options,
            self.streams,
            std::slice::from_ref(&self.shard),
            &self.snapshots,
            self.problems,
        )
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

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;
    use strive_core::{Actor, EventKind, definition_hash, event_hash, root_partition};

    use super::*;

    /// A log of 4 partitions, by partition: a deployment in partition 0,
    /// then `id` started as a root in `partition` (and, with `child`, a
    /// child of it started in that partition).
    pub(crate) fn routing_log(id: &str, partition: u32, child: Option<u32>) -> Vec<Vec<Event>> {
        let definition = json!({
            "id": "approval", "title": "Approval", "roles": [{"id": "chief"}],
            "stages": [{"id": "draft", "kind": "initial"}, {"id": "approved", "kind": "terminal"}],
            "transitions": [{"event": "approve", "from": "draft", "to": "approved", "roles": ["chief"]}]
        });
        let event = |partition: u32, gseq: u64, instance: &str, kind: EventKind| Event {
            v: 1,
            gseq,
            partition,
            instance: instance.into(),
            seq: 1,
            prev: GENESIS.into(),
            kind,
            workflow: "approval".into(),
            version: 1,
            definition_hash: definition_hash(&definition),
            from: None,
            event: "start".into(),
            transition: None,
            to: "draft".into(),
            actor: Actor::new("chief", &["chief"]),
            at: "2026-05-01T08:00:00Z".parse().expect("a time"),
            command_id: None,
            payload: json!({"data": {}, "parent": null}),
            effects: vec![],
            cause: None,
            signature: None,
        };
        let mut deploy = event(0, 1, "@workflow/approval", EventKind::Deploy);
        deploy.event = "deploy".into();
        deploy.to = String::new();
        deploy.payload = definition.clone();
        let mut logs: Vec<Vec<Event>> = vec![vec![deploy], vec![], vec![], vec![]];
        let root = event(partition, 1, id, EventKind::Start);
        logs[partition as usize].push(root);
        if let Some(child_partition) = child {
            let log = &mut logs[child_partition as usize];
            let mut started = event(
                child_partition,
                log.len() as u64 + 1,
                "kid",
                EventKind::Start,
            );
            started.payload = json!({"data": {}, "parent": id});
            log.push(started);
        }
        logs
    }

    /// The codes of the problems `Verifier` finds in [`routing_log`].
    fn routing_codes(id: &str, partition: u32, child: Option<u32>) -> Vec<ProblemCode> {
        let logs = routing_log(id, partition, child);
        let mut verifier = Verifier::new(VerifyOptions::default());
        for (p, log) in (0u32..).zip(&logs) {
            verifier.partition(p);
            for event in log {
                let bytes = event.encode();
                verifier.event(&event_hash(&bytes), &bytes);
            }
        }
        verifier.finish().problems.iter().map(|p| p.code).collect()
    }

    #[test]
    fn an_instance_outside_its_root_ancestors_partition_is_reported_once() {
        let home = root_partition("doc-1", 4);
        let elsewhere = (home + 1) % 4;
        let wrong = |codes: &[ProblemCode]| {
            codes
                .iter()
                .filter(|c| **c == ProblemCode::WrongPartition)
                .count()
        };
        // Data-driven: (root's partition, child's partition, problems).
        for (root, child, expected) in [
            (home, None, 0),
            (home, Some(home), 0),
            (elsewhere, None, 1),
            // The child follows its misrouted parent: one cause, one problem.
            (elsewhere, Some(elsewhere), 1),
            (home, Some(elsewhere), 1),
        ] {
            let codes = routing_codes("doc-1", root, child);
            assert_eq!(wrong(&codes), expected, "{root} {child:?}: {codes:?}");
        }
    }
}
