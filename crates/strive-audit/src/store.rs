//! Feeding the toolkit from a strive store (feature `store`), through
//! `strive_store::Engine`'s public API only: verification, the events a
//! replay reads, and the exports. `strive` (the CLI) and `strive serve`
//! both call these, so an auditor gets the same answer from either, and
//! the tamper tests run the very code `strive verify` runs.
//!
//! The rest of the toolkit knows no store; this module is the one place
//! that does, and only when the feature is on.

use std::fmt;
use std::io::{self, Write};

use strive_store::{Engine, ListQuery, Snapshot, StorageError, StoredEvent};

use crate::EventRun;
use crate::checkpoint::{Checkpoint, SigningKey};
use crate::export::{BundleWriter, CsvWriter, Filter, Prover, XesWriter};
use crate::merkle::Hash;
use crate::ocel::{Mapping, OcelSummary, OcelWriter};
use crate::problem::{Problem, ProblemCode};
use crate::receipt::{RECEIPT_FORMAT, Receipt};
use crate::replay::{At, ReplayError, Replayed};
use crate::simulate::{Simulation, SimulationReport};
use crate::verify::{Report, Verifier, VerifyOptions};

/// How many snapshots to read per page.
const PAGE: usize = 512;

/// Every snapshot in id order (only `workflow`'s when given), a page at a
/// time. A page that cannot be read ends the walk with its error: the
/// store gives no way to skip one corrupt record (see `Engine::list`).
pub fn snapshots<'a>(
    engine: &'a Engine,
    workflow: Option<&str>,
) -> impl Iterator<Item = Result<Snapshot, StorageError>> + 'a {
    let workflow = workflow.map(str::to_owned);
    let mut after: Option<String> = None;
    let mut page: std::vec::IntoIter<Snapshot> = Vec::new().into_iter();
    let mut done = false;
    std::iter::from_fn(move || {
        loop {
            if let Some(snapshot) = page.next() {
                return Some(Ok(snapshot));
            }
            if done {
                return None;
            }
            let query = ListQuery {
                workflow: workflow.clone(),
                after: after.clone(),
                limit: Some(PAGE),
                ..ListQuery::default()
            };
            match engine.list(&query) {
                Ok(next) => {
                    done = next.next.is_none();
                    after = next.items.last().map(|s| s.instance.id.clone());
                    if after.is_none() {
                        done = true;
                    }
                    page = next.items.into_iter();
                }
                Err(error) => {
                    done = true;
                    return Some(Err(error));
                }
            }
        }
    })
}

/// The blocks of `partition`'s log, as the verifier reads them.
pub fn runs(
    engine: &Engine,
    partition: u32,
) -> impl Iterator<Item = Result<EventRun, StorageError>> + '_ {
    runs_until(engine, partition, u64::MAX)
}

/// The blocks of `partition`'s log up to position `last`.
fn runs_until(
    engine: &Engine,
    partition: u32,
    last: u64,
) -> impl Iterator<Item = Result<EventRun, StorageError>> + '_ {
    engine.blocks(partition, 1).until(last).map(|block| {
        block.map(|block| {
            let (digests, data, spans) = block.into_parts();
            EventRun::from_parts(digests, data, spans)
        })
    })
}

/// Verifies the store behind `engine`: every event record in log order,
/// block by block (on `options.jobs` threads), then every snapshot.
/// `progress` is called with the number of events read after each block.
/// A store of several partitions is verified partition by partition from
/// partition 0 (whose log holds the deployments and the grants): the
/// checks run in log order on this thread while `options.jobs` threads
/// hash and decode the blocks ahead of them (one thread with `jobs` 1).
///
/// The store may be written meanwhile (a server's verify job). The log is
/// read up to each partition's durable size taken at the start, and the
/// snapshots after it, so an instance written in between has a snapshot
/// ahead of the log read: each such snapshot is checked against its own
/// history at its own sequence number instead, and counted in
/// [`Report::rechecked`].
pub fn verify(engine: &Engine, options: VerifyOptions, progress: impl FnMut(u64)) -> Report {
    let sizes = durable_sizes(engine);
    let mut report = verify_up_to(engine, &sizes, options, progress);
    recheck_moved(engine, &sizes, &mut report);
    report
}

/// [`verify`] of the log up to `sizes` (by partition).
fn verify_up_to(
    engine: &Engine,
    sizes: &[u64],
    options: VerifyOptions,
    mut progress: impl FnMut(u64),
) -> Report {
    let partitions = engine.partitions();
    let options = VerifyOptions {
        expected_size: Some(sizes.iter().sum()),
        expected_sizes: if partitions > 1 {
            sizes.to_vec()
        } else {
            Vec::new()
        },
        ..options
    };
    let snapshots = snapshots(engine, None).map(|item| item.map(|s| (s.instance, s.due)));
    let size_of = |p: u32| sizes.get(p as usize).copied().unwrap_or(0);
    if partitions == 1 {
        return crate::verify_runs(
            || runs_until(engine, 0, size_of(0)),
            snapshots,
            options,
            progress,
        );
    }
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        jobs => jobs,
    };
    let mut verifier = Verifier::new(options);
    if jobs > 1 {
        verify_partitions_decoding_on(jobs, engine, sizes, &mut verifier, &mut progress);
    } else {
        for partition in 0..partitions {
            verifier.partition(partition);
            for run in runs_until(engine, partition, size_of(partition)) {
                match run {
                    Ok(run) => verifier.run(&run),
                    Err(error) => verifier.unreadable(error),
                }
                progress(verifier.events_read());
            }
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

/// The problems a snapshot written after the log was read shows: its
/// instance has no events in the log read, or fewer than it has now.
const MOVED: [ProblemCode; 3] = [
    ProblemCode::SnapshotWithoutHistory,
    ProblemCode::HeadMismatch,
    ProblemCode::SnapshotMismatch,
];

/// How many snapshots [`recheck_moved`] checks again at most. A store that
/// shows more such problems is damaged, not busy: they all stand.
const RECHECK_LIMIT: usize = 4096;

/// Checks again the snapshots that disagree with the log read up to
/// `sizes`: a snapshot whose last event is past its partition's size
/// there was written after the log was read (or applied before and made
/// durable after: the snapshots are read as applied),
/// and it holds if it equals its own history replayed to that event (read
/// through its chain, every hash checked). Its problems are then dropped
/// and it is counted in [`Report::rechecked`]; every other problem stands.
/// A snapshot that moved and is wrong keeps its problem, since the replay
/// disagrees with it too.
fn recheck_moved(engine: &Engine, sizes: &[u64], report: &mut Report) {
    let suspects: std::collections::BTreeSet<&str> = report
        .problems
        .iter()
        .filter(|p| MOVED.contains(&p.code))
        .filter_map(|p| p.instance.as_deref())
        .collect();
    if suspects.is_empty() || suspects.len() > RECHECK_LIMIT {
        return;
    }
    let moved: std::collections::BTreeSet<String> = suspects
        .into_iter()
        .filter(|id| moved_and_consistent(engine, sizes, id))
        .map(str::to_owned)
        .collect();
    report.problems.retain(|p| {
        !(MOVED.contains(&p.code) && p.instance.as_ref().is_some_and(|id| moved.contains(id)))
    });
    report.rechecked = moved.len() as u64;
}

/// Whether `instance`'s snapshot is ahead of the log read up to `sizes`
/// and equals its history replayed to the snapshot's last event.
fn moved_and_consistent(engine: &Engine, sizes: &[u64], instance: &str) -> bool {
    let Ok(Some(snapshot)) = engine.instance(instance) else {
        return false;
    };
    let seq = snapshot.instance.seq;
    // The snapshot's last event, read alone first: on a store at rest (a
    // damaged one) the replay below is never needed.
    let Ok(last) = engine.history_page(instance, seq.saturating_sub(1), 1) else {
        return false;
    };
    let Some(last) = last.first().filter(|e| e.event.seq == seq) else {
        return false;
    };
    let read_to = sizes.get(last.event.partition as usize).copied();
    if read_to.is_none_or(|size| last.event.gseq <= size) {
        return false;
    }
    let Ok(events) = scoped_events(engine, instance) else {
        return false;
    };
    let events = events
        .into_iter()
        .map(|e| Ok::<_, StorageError>((e.hash, e.bytes)));
    match crate::replay::replay(events, instance, At::Seq(seq)) {
        Ok(replayed) => {
            replayed.problems.is_empty()
                && crate::replay::differences(&replayed.instance, &snapshot.instance).is_empty()
        }
        Err(_) => false,
    }
}

/// A block read from a partition's log, numbered in reading order.
type Read = (u64, u32, Result<EventRun, StorageError>);

/// Feeds `verifier` every partition's log in order (partition 0 first),
/// while `jobs` threads hash and decode the blocks ahead of it: the
/// verifier's checks, which need the log's order, stay on this thread and
/// see exactly what [`Verifier::run`] would, so the report is the one a
/// sequential run gives (`tests/partitions.rs` compares them).
fn verify_partitions_decoding_on(
    jobs: usize,
    engine: &Engine,
    sizes: &[u64],
    verifier: &mut Verifier,
    progress: &mut impl FnMut(u64),
) {
    use std::collections::BTreeMap;
    use std::sync::mpsc::sync_channel;
    use std::sync::{Arc, Mutex};

    let (blocks, blocks_rx) = sync_channel::<Read>(jobs * 4);
    let blocks_rx = Arc::new(Mutex::new(blocks_rx));
    let (done, done_rx) = sync_channel::<(Read, Vec<crate::verify::DecodedEvent>)>(jobs * 4);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let (blocks_rx, done) = (Arc::clone(&blocks_rx), done.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next block.
                    let next = match blocks_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(read) = next else { return };
                    let decoded = match &read.2 {
                        Ok(run) => crate::verify::decode_run(run),
                        Err(_) => Vec::new(),
                    };
                    if done.send((read, decoded)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);
        scope.spawn(move || {
            let mut ordinal = 0u64;
            for partition in 0..engine.partitions() {
                let last = sizes.get(partition as usize).copied().unwrap_or(0);
                for run in runs_until(engine, partition, last) {
                    if blocks.send((ordinal, partition, run)).is_err() {
                        return;
                    }
                    ordinal += 1;
                }
            }
        });
        // Blocks come back in any order; they are checked in log order.
        let mut waiting = BTreeMap::new();
        let mut next = 0u64;
        let mut partition = None;
        for (read, decoded) in done_rx {
            waiting.insert(read.0, (read, decoded));
            while let Some(((_, p, run), decoded)) = waiting.remove(&next) {
                if partition != Some(p) {
                    verifier.partition(p);
                    partition = Some(p);
                }
                match run {
                    Ok(run) => verifier.decoded_run(&run, &decoded),
                    Err(error) => verifier.unreadable(error),
                }
                progress(verifier.events_read());
                next += 1;
            }
        }
        // An empty partition still gets its stream (and its size check).
        verifier.partition(engine.partitions().saturating_sub(1));
    });
}

/// The events a replay of `instance` reads, in log order: every deployment
/// (definitions), the instance's own history and its descendants' (guards
/// may read children), each read through its chain, so replaying one
/// instance costs its own events, not the whole log (issue #10).
pub fn scoped_events(engine: &Engine, instance: &str) -> Result<Vec<StoredEvent>, StorageError> {
    let mut events = Vec::new();
    for workflow in engine.workflows()? {
        let subject = format!(
            "{}{}",
            strive_core::WORKFLOW_SUBJECT_PREFIX,
            workflow.workflow
        );
        events.extend(engine.history(&subject)?);
    }
    let mut pending = vec![instance.to_owned()];
    while let Some(id) = pending.pop() {
        events.extend(engine.history(&id)?);
        let mut after = None;
        loop {
            let page = engine.list(&ListQuery {
                parent: Some(id.clone()),
                after: after.take(),
                limit: Some(PAGE),
                ..ListQuery::default()
            })?;
            pending.extend(page.items.into_iter().map(|s| s.instance.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    // Partition 0's log (the deployments) first; an instance's family is
    // in one partition's log, in order.
    events.sort_by_key(|e| (e.event.partition, e.event.gseq));
    Ok(events)
}

/// One instance replayed from the store, and at the end compared with
/// its stored snapshot.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The instance as its events give it.
    pub replayed: Replayed,
    /// At the end of the history: whether it equals the stored snapshot.
    pub matches_snapshot: Option<bool>,
    /// The replay's problems, a snapshot that differs included.
    pub problems: Vec<Problem>,
}

/// Replays `instance` from its own events (and its definitions' and
/// descendants', [`scoped_events`]) up to `at`; replayed to the end, it
/// must equal the stored snapshot, or a `snapshot_mismatch` problem says
/// how it differs.
pub fn replay(engine: &Engine, instance: &str, at: At) -> Result<Replay, ReplayError> {
    let source = |e: StorageError| ReplayError::Source {
        message: e.to_string(),
    };
    let events = scoped_events(engine, instance)
        .map_err(source)?
        .into_iter()
        .map(|e| Ok::<_, StorageError>((e.hash, e.bytes)));
    let replayed = crate::replay::replay(events, instance, at)?;
    let mut problems = replayed.problems.clone();
    let mut matches_snapshot = None;
    if at == At::End {
        let differences = match engine.instance(instance).map_err(source)? {
            Some(snapshot) => crate::replay::differences(&replayed.instance, &snapshot.instance),
            None => vec!["the store has no snapshot of it".to_owned()],
        };
        matches_snapshot = Some(differences.is_empty());
        if !differences.is_empty() {
            problems.push(
                Problem::new(ProblemCode::SnapshotMismatch, differences.join("; ")).on(instance),
            );
        }
    }
    Ok(Replay {
        replayed,
        matches_snapshot,
        problems,
    })
}

/// The formats a store exports to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The JSONL audit bundle (`docs/audit.md`).
    Jsonl,
    /// One CSV row per instance event.
    Csv,
    /// An IEEE 1849 XES event log, one trace per instance.
    Xes,
}

impl Format {
    /// The format's name, as `--format` and the logs give it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Xes => "xes",
        }
    }
}

/// What to export and how to seal it.
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// The format.
    pub format: Format,
    /// Which events.
    pub filter: &'a Filter,
    /// The log's name in a bundle's checkpoint.
    pub origin: &'a str,
    /// The key that signs a bundle's checkpoint.
    pub key: Option<&'a SigningKey>,
    /// An earlier checkpoint a bundle proves the log extends.
    pub from: Option<&'a Checkpoint>,
}

/// Why an export stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportError {
    /// Writing the output failed (a closed pipe, a full disk, a client
    /// that left).
    Write(io::Error),
    /// Reading the store failed.
    Storage(StorageError),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Write(e) => write!(f, "cannot write the export: {e}"),
            ExportError::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Write(e) => Some(e),
            ExportError::Storage(e) => Some(e),
        }
    }
}

impl From<io::Error> for ExportError {
    fn from(e: io::Error) -> ExportError {
        ExportError::Write(e)
    }
}

impl From<StorageError> for ExportError {
    fn from(e: StorageError) -> ExportError {
        ExportError::Storage(e)
    }
}

/// Streams the store's events to `out` as `export` says, then flushes it.
/// Returns how many events were written. Nothing holds the log in memory:
/// a bundle's proofs come from the store's Merkle tiles.
pub fn export<W: Write>(
    engine: &Engine,
    mut out: W,
    export: &Export<'_>,
) -> Result<u64, ExportError> {
    let events = match export.format {
        Format::Jsonl => bundle(engine, &mut out, export)?,
        Format::Csv => csv(engine, &mut out, export.filter)?,
        Format::Xes => xes(engine, &mut out, export.filter)?,
    };
    out.flush()?;
    Ok(events)
}

/// Each partition's durable size, read for the other partitions first and
/// for partition 0 last: a deployment (and a grant) is durable before any
/// event that uses it is, so partition 0's log up to its size holds every
/// deployment the other partitions' events name, though the store be
/// written meanwhile. Export and verify read the logs up to these sizes.
fn durable_sizes(engine: &Engine) -> Vec<u64> {
    let mut sizes: Vec<u64> = (0..engine.partitions())
        .map(|p| if p == 0 { 0 } else { engine.last_gseq_in(p) })
        .collect();
    sizes[0] = engine.last_gseq_in(0);
    sizes
}

/// Each partition's events from position `from`, in turn from partition
/// 0, up to the sizes of [`durable_sizes`]: the partition and the event.
fn partition_events(
    engine: &Engine,
    from: u64,
) -> impl Iterator<Item = (u32, Result<StoredEvent, StorageError>)> + '_ {
    (0u32..)
        .zip(durable_sizes(engine))
        .flat_map(move |(p, size)| {
            engine
                .events_in(p, from)
                .take_while(move |item| item.as_ref().map_or(true, |e| e.event.gseq <= size))
                .map(move |item| (p, item))
        })
}

fn bundle<W: Write>(engine: &Engine, out: W, export: &Export<'_>) -> Result<u64, ExportError> {
    let prover = Box::new(StoreProver(engine.clone()));
    let partitions = engine.partitions();
    let mut writer = BundleWriter::partitioned(out, export.filter.clone(), partitions, prover)?;
    for (partition, item) in partition_events(engine, 1) {
        let stored = item?;
        if partition != writer.current_partition() {
            writer.partition(partition)?;
        }
        writer.event(&stored.hash, &stored.bytes, &stored.event)?;
    }
    strive_store::fail_point!("export-middle");
    for id in writer.instances() {
        if let Some(snapshot) = engine.instance(&id)? {
            writer.snapshot(&snapshot.instance, snapshot.due.as_ref())?;
        }
    }
    let (_, _, summary) = writer.finish(export.origin, export.key, export.from)?;
    Ok(summary.events)
}

/// The store's Merkle tiles as a bundle's source of proofs (O(log N) reads
/// each), so an export never holds the tree.
struct StoreProver(Engine);

impl Prover for StoreProver {
    fn inclusion(&self, partition: u32, index: u64, size: u64) -> io::Result<Vec<Hash>> {
        self.0
            .inclusion_proof_in(partition, index + 1, size)
            .map_err(io::Error::other)
    }

    fn consistency(&self, partition: u32, old: u64, new: u64) -> io::Result<Vec<Hash>> {
        self.0
            .consistency_proof_in(partition, old, new)
            .map_err(io::Error::other)
    }
}

/// Streams the store's instance events that `filter` selects to `out` as
/// an OCEL 2.0 JSON log (`docs/audit.md`, "OCEL 2.0"), with `mapping`
/// saying which objects each event concerns, then flushes it. Every
/// partition's log is read in turn; the objects are held until the end,
/// the events are not.
pub fn export_ocel<W: Write>(
    engine: &Engine,
    out: W,
    filter: &Filter,
    mapping: Mapping,
) -> Result<OcelSummary, ExportError> {
    let mut writer = OcelWriter::new(out, mapping)?;
    let mut parents = Parents::default();
    // With one partition, positions are the log's and `since` can seek.
    let from = if engine.partitions() == 1 {
        filter.since.unwrap_or(1)
    } else {
        1
    };
    for partition in 0..engine.partitions() {
        for item in engine.events_in(partition, from) {
            let stored = item?;
            if filter.matches(&stored.event) {
                let parent = parents.of(engine, &stored.event)?;
                writer.event(&stored.hash, &stored.event, parent.as_deref())?;
            }
        }
    }
    Ok(writer.finish()?.1)
}

/// Why a receipt could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReceiptError {
    /// The instance has no event `seq`.
    NoSuchEvent {
        /// The instance.
        instance: String,
        /// The sequence number asked for.
        seq: u64,
        /// How many events the instance has.
        events: u64,
    },
    /// Reading the store failed.
    Storage(StorageError),
    /// The store's heads do not make a checkpoint (a corrupt store).
    Checkpoint(crate::CheckpointError),
    /// The checkpoint the receipt was asked against does not read.
    Given(crate::CheckpointError),
    /// The event cannot be proven to the checkpoint asked for.
    Receipt(crate::ReceiptError),
}

impl fmt::Display for ReceiptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReceiptError::NoSuchEvent {
                instance,
                seq,
                events,
            } => write!(
                f,
                "{instance} has no event {seq}: it has {events}; `strive history {instance}` lists them"
            ),
            ReceiptError::Storage(e) => e.fmt(f),
            ReceiptError::Checkpoint(_) => {
                write!(
                    f,
                    "the store's tree heads make no checkpoint; run `strive verify`"
                )
            }
            ReceiptError::Given(_) => f.write_str("the checkpoint given does not read"),
            ReceiptError::Receipt(_) => {
                f.write_str("the event cannot be proven to the checkpoint given")
            }
        }
    }
}

impl std::error::Error for ReceiptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReceiptError::Checkpoint(e) | ReceiptError::Given(e) => Some(e),
            ReceiptError::Receipt(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StorageError> for ReceiptError {
    fn from(e: StorageError) -> ReceiptError {
        ReceiptError::Storage(e)
    }
}

/// A receipt for event `seq` of `instance`: its exact bytes and an
/// inclusion proof (O(log N) reads of the stored tiles) to a checkpoint of
/// every partition's head now, under `origin`, signed by `key` when given.
pub fn receipt(
    engine: &Engine,
    instance: &str,
    seq: u64,
    origin: &str,
    key: Option<&SigningKey>,
) -> Result<Receipt, ReceiptError> {
    let stored = receipt_event(engine, instance, seq)?;
    let heads = engine.partition_heads()?;
    let checkpoint = Checkpoint::of_heads(origin, &heads).map_err(ReceiptError::Checkpoint)?;
    prove(engine, stored, &heads, checkpoint.to_note(key))
}

/// A receipt for event `seq` of `instance` proven to the checkpoint
/// `note`, kept as it is (with every signature and witness cosignature on
/// it), so that the cosignatures' times bound when the event was recorded.
/// The store must still extend that checkpoint and the event must be in
/// it; the receipt is checked before it is returned, so a receipt that
/// would not verify is never handed out.
pub fn receipt_against(
    engine: &Engine,
    instance: &str,
    seq: u64,
    note: &str,
) -> Result<Receipt, ReceiptError> {
    let stored = receipt_event(engine, instance, seq)?;
    let heads = Checkpoint::parse(note)
        .and_then(|c| c.checkpoint.heads())
        .map_err(ReceiptError::Given)?;
    let partition = stored.event.partition;
    let size = heads
        .iter()
        .find(|h| h.partition == partition)
        .map_or(0, |h| h.size);
    if stored.event.gseq > size {
        return Err(ReceiptError::Receipt(crate::ReceiptError::Event {
            message: format!(
                "is position {} of partition {partition}, after the checkpoint's {size} events:                  have a newer checkpoint cosigned first",
                stored.event.gseq
            ),
        }));
    }
    let receipt = prove(engine, stored, &heads, note.to_owned())?;
    receipt.verify(None).map_err(ReceiptError::Receipt)?;
    if let Some(problem) = check_receipt(engine, &receipt)? {
        return Err(ReceiptError::Receipt(crate::ReceiptError::Event {
            message: format!("cannot be proven to that checkpoint: {problem}"),
        }));
    }
    Ok(receipt)
}

/// The stored event `seq` of `instance`, or why there is none.
fn receipt_event(engine: &Engine, instance: &str, seq: u64) -> Result<StoredEvent, ReceiptError> {
    let page = engine.history_page(instance, seq.saturating_sub(1), 1)?;
    match page
        .into_iter()
        .next()
        .filter(|e| e.event.seq == seq && seq > 0)
    {
        Some(stored) => Ok(stored),
        None => {
            let events = engine.instance(instance)?.map_or(0, |s| s.instance.seq);
            Err(ReceiptError::NoSuchEvent {
                instance: instance.to_owned(),
                seq,
                events,
            })
        }
    }
}

/// The receipt of `stored` with its inclusion proof at the size `heads`
/// give its partition, under the checkpoint `note`.
fn prove(
    engine: &Engine,
    stored: StoredEvent,
    heads: &[strive_core::PartitionHead],
    note: String,
) -> Result<Receipt, ReceiptError> {
    let partition = stored.event.partition;
    let size = heads
        .iter()
        .find(|h| h.partition == partition)
        .map_or(0, |h| h.size);
    let proof = engine.inclusion_proof_in(partition, stored.event.gseq, size)?;
    Ok(Receipt {
        format: RECEIPT_FORMAT.to_owned(),
        instance: stored.event.instance.clone(),
        seq: stored.event.seq,
        partition,
        gseq: stored.event.gseq,
        hash: stored.hash,
        event: String::from_utf8_lossy(&stored.bytes).into_owned(),
        proof: proof.iter().map(hex::encode).collect(),
        checkpoint: note,
    })
}

/// Checks, against the store, what a receipt cannot show on its own: that
/// the store's log still extends the receipt's checkpoint (each
/// partition's tree consistent with the one the receipt was proven in, by
/// a proof from the stored tiles) and that the event is still at its place
/// with its hash. Returns what is wrong, in words, when anything is: a
/// store rolled back to a backup from before the event, or one whose log
/// was rewritten, fails here while the receipt itself still holds.
pub fn check_receipt(engine: &Engine, receipt: &Receipt) -> Result<Option<String>, StorageError> {
    let heads = match Checkpoint::parse(&receipt.checkpoint).and_then(|c| c.checkpoint.heads()) {
        Ok(heads) => heads,
        Err(e) => {
            return Ok(Some(format!(
                "the receipt's checkpoint cannot be read: {e}"
            )));
        }
    };
    let now = engine.tree_heads()?;
    if heads.len() != now.len() {
        return Ok(Some(format!(
            "the receipt's checkpoint has {} partitions and the store {}: another log",
            heads.len(),
            now.len()
        )));
    }
    for (old, new) in heads.iter().zip(&now) {
        let p = old.partition;
        if new.size < old.size {
            return Ok(Some(format!(
                "partition {p} holds {} events, fewer than the {} of the receipt's checkpoint: \
                 the store was rolled back or truncated",
                new.size, old.size
            )));
        }
        let consistent = if old.size == new.size {
            old.root == new.root
        } else if old.size == 0 {
            true
        } else {
            let proof = engine.consistency_proof_in(p, old.size, new.size)?;
            crate::merkle::verify_consistency(old.size, &old.root, new.size, &new.root, &proof)
                .is_ok()
        };
        if !consistent {
            return Ok(Some(format!(
                "partition {p}'s log does not extend the receipt's checkpoint at {} events: \
                 it was rewritten",
                old.size
            )));
        }
    }
    let stored = engine
        .events_in(receipt.partition, receipt.gseq)
        .next()
        .transpose()?;
    match stored {
        Some(stored) if stored.event.gseq == receipt.gseq && stored.hash == receipt.hash => {
            Ok(None)
        }
        _ => Ok(Some(format!(
            "the store does not hold the receipt's event at position {} of partition {}",
            receipt.gseq, receipt.partition
        ))),
    }
}

/// Re-runs the recorded commands of the instances `simulation` selects
/// against its new definition (`crate::Simulation`), reading every
/// partition's log in turn; writes nothing.
pub fn simulate(
    engine: &Engine,
    mut simulation: Simulation,
) -> Result<SimulationReport, StorageError> {
    // Families never cross partitions, and deployments are in partition
    // 0, so one replayer fed partition after partition sees every
    // deployment before the events that name it.
    for partition in 0..engine.partitions() {
        for item in engine.events_in(partition, 1) {
            let stored = item?;
            simulation.event(&stored.hash, &stored.event);
        }
    }
    Ok(simulation.finish())
}

/// Each instance's parent, from its start event or, for an export that
/// begins after it, from its snapshot: read once per instance.
#[derive(Default)]
struct Parents(std::collections::HashMap<String, Option<String>>);

impl Parents {
    fn of(
        &mut self,
        engine: &Engine,
        event: &strive_core::Event,
    ) -> Result<Option<String>, StorageError> {
        if let Some(parent) = self.0.get(&event.instance) {
            return Ok(parent.clone());
        }
        let parent = if event.kind == strive_core::EventKind::Start {
            event
                .payload
                .get("parent")
                .and_then(|p| p.as_str())
                .map(str::to_owned)
        } else {
            engine
                .instance(&event.instance)?
                .and_then(|s| s.instance.parent)
        };
        self.0.insert(event.instance.clone(), parent.clone());
        Ok(parent)
    }
}

fn csv<W: Write>(engine: &Engine, out: W, filter: &Filter) -> Result<u64, ExportError> {
    let mut writer = if engine.partitions() > 1 {
        CsvWriter::partitioned(out)?
    } else {
        CsvWriter::new(out)?
    };
    for (_, item) in partition_events(engine, filter.since.unwrap_or(1)) {
        let stored = item?;
        if filter.matches(&stored.event) {
            writer.row(&stored.hash, &stored.event)?;
        }
    }
    Ok(writer.finish()?.1)
}

/// XES groups events by trace, so it walks the instances the filter names
/// (in id order) and reads one history at a time.
fn xes<W: Write>(engine: &Engine, out: W, filter: &Filter) -> Result<u64, ExportError> {
    let name = filter.workflow.as_deref().unwrap_or("strive");
    let mut writer = XesWriter::new(out, name)?;
    let mut trace = |snapshot: &Snapshot| -> Result<(), ExportError> {
        let history = engine.history(&snapshot.instance.id)?;
        let events: Vec<(&str, &strive_core::Event)> = history
            .iter()
            .filter(|e| filter.matches(&e.event))
            .map(|e| (e.hash.as_str(), &e.event))
            .collect();
        // With --since, an instance with nothing new gets no empty trace.
        if !events.is_empty() {
            writer.trace(&snapshot.instance, events)?;
        }
        Ok(())
    };
    match &filter.instance {
        Some(id) => {
            if let Some(snapshot) = engine.instance(id)? {
                trace(&snapshot)?;
            }
        }
        None => {
            for snapshot in snapshots(engine, filter.workflow.as_deref()) {
                trace(&snapshot?)?;
            }
        }
    }
    Ok(writer.finish()?.1)
}

/// Why a store could not be published (`strive publish`).
#[derive(Debug)]
#[non_exhaustive]
pub enum PublicationError {
    /// Reading the store failed.
    Storage(StorageError),
    /// An event cannot be put in an entry bundle.
    Entry(crate::PublishError),
    /// Writing a file failed.
    Write(io::Error),
    /// The events do not make the tree the store's tiles say: the store
    /// is damaged, and publishing it would publish a lie.
    Mismatch {
        /// The partition.
        partition: u32,
    },
}

impl fmt::Display for PublicationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicationError::Storage(_) => f.write_str("cannot read the store"),
            PublicationError::Entry(_) => f.write_str("cannot publish an event"),
            PublicationError::Write(_) => f.write_str("cannot write a published file"),
            PublicationError::Mismatch { partition } => write!(
                f,
                "partition {partition}'s events do not make the root its stored tiles give: \
                 the store is damaged; run `strive verify` and publish nothing until it passes"
            ),
        }
    }
}

impl std::error::Error for PublicationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublicationError::Storage(e) => Some(e),
            PublicationError::Entry(e) => Some(e),
            PublicationError::Write(e) => Some(e),
            PublicationError::Mismatch { .. } => None,
        }
    }
}

/// Publishes the store as C2SP tlog-tiles files (`crate::TilePublisher`):
/// each partition's tiles and entry bundles go to `out` with the
/// partition, then the checkpoint of the heads they make is returned (as
/// `key` signs it), for the caller to write last, so that a reader never
/// finds a checkpoint whose tiles are missing. The events are read up to
/// the heads taken first, so a store written meanwhile publishes a
/// consistent prefix; their root is checked against those heads.
pub fn publish(
    engine: &Engine,
    origin: &str,
    key: Option<&SigningKey>,
    out: &mut dyn FnMut(u32, crate::TileFile) -> io::Result<()>,
) -> Result<String, PublicationError> {
    let heads = engine
        .partition_heads()
        .map_err(PublicationError::Storage)?;
    for head in &heads {
        let mut publisher = crate::TilePublisher::new();
        let mut root = strive_core::StreamingRoot::new();
        let mut failed = None;
        let mut write = |file| {
            if failed.is_none()
                && let Err(error) = out(head.partition, file)
            {
                failed = Some(error);
            }
        };
        for item in engine.events_in(head.partition, 1) {
            let stored = item.map_err(PublicationError::Storage)?;
            if stored.event.gseq > head.size {
                break;
            }
            let digest = digest_of(&stored)?;
            root.push(&digest);
            publisher
                .push(&digest, &stored.bytes, &mut write)
                .map_err(PublicationError::Entry)?;
        }
        publisher.finish(&mut write);
        if let Some(error) = failed {
            return Err(PublicationError::Write(error));
        }
        if root.size() != head.size || root.root() != head.root {
            return Err(PublicationError::Mismatch {
                partition: head.partition,
            });
        }
    }
    let checkpoint =
        Checkpoint::of_heads(origin, &heads).map_err(|_| PublicationError::Mismatch {
            partition: heads.first().map_or(0, |h| h.partition),
        })?;
    Ok(checkpoint.to_note(key))
}

/// The event's stored hash as bytes.
fn digest_of(stored: &StoredEvent) -> Result<Hash, PublicationError> {
    hex::decode(&stored.hash)
        .ok()
        .and_then(|b| Hash::try_from(b).ok())
        .ok_or_else(|| {
            PublicationError::Storage(StorageError::Corrupt {
                key: format!("the hash of event {}", stored.event.gseq),
                message: "not 32 hex bytes".to_owned(),
            })
        })
}
