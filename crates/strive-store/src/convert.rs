//! Building a format-2 store from a log kept elsewhere: a format-1 store
//! (`strive upgrade`), an audit bundle's events (`strive import`), and
//! copying a running store's log (`strive backup`).
//!
//! Each builds the new store's log from the recorded events' exact bytes
//! and its state by deciding every recorded command again
//! (`writer::recover`), so an event that does not follow from the ones
//! before it (an altered payload, a broken chain, a forged hash) stops the
//! conversion with the position it was found at, and the new store is left
//! unfinished, never presented as good.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use strive_core::{Hash, PartitionHead, StreamingRoot, TileLog, combined_head};

use crate::backend::{Backend, SledBackend, Write};
use crate::engine::{Engine, stored_format};
use crate::error::{OpenError, StorageError};
use crate::keys;
use crate::log::LogReader;
use crate::records::{InstanceRecord, Options, StoredEvent};
use crate::writer::{Shared, Writer};

/// What an upgrade or import built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Events written to the new store (each decided again and checked).
    pub events: u64,
    /// The Merkle root over them, equal to the source's (with several
    /// partitions, the combined root, `strive_core::combined_head`).
    pub root: Hash,
    /// Deadlines the source had consumed without an event (a refused
    /// deadline event), consumed in the new store too.
    pub consumed_deadlines: u64,
}

impl Engine {
    /// Converts the format-1 store at `old` into a new format-2 store at
    /// `new` (a directory that does not exist yet or is empty), checking
    /// every event on the way; `old` is only read. Returns the new engine.
    pub fn upgrade(
        old: &Path,
        new: &Path,
        options: Options,
    ) -> Result<(Engine, Converted), OpenError> {
        // A mistyped source must not become an empty store (issue #17).
        crate::probe::require_store(old)?;
        let source = SledBackend::open(old)?;
        match stored_format(&source)? {
            Some(1) => {}
            found => {
                return Err(OpenError::UnsupportedFormat {
                    path: old.to_owned(),
                    found: found.unwrap_or(0),
                    supported: 1,
                });
            }
        }
        let last = source
            .get(&keys::meta("gseq"))?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0);
        let events = (1..=last).map(|gseq| {
            let key = keys::event_v1(gseq);
            let value = source.get(&key)?.ok_or_else(|| StorageError::Corrupt {
                key: keys::show(&key),
                message: format!("event {gseq} of {last} is missing from the format-1 log"),
            })?;
            StoredEvent::decode_v1(gseq, &value)
        });
        let deadlines = deadline_keys(&source)?;
        let target = open_empty(new)?;
        // A format-1 store has one log.
        let converted = build(target.clone(), events, Some(&deadlines), &options, 1)?;
        drop(source);
        let engine = Engine::with_backend(target, Some(new.to_owned()), options)?;
        Ok((engine, converted))
    }

    /// Builds a new store at `new` (which must not exist or be empty) from
    /// a whole log's events, in order, as (stored hash, exact bytes): an
    /// audit bundle's, which the caller has verified. The store gets
    /// `options.partitions` partitions, and the events come partition by
    /// partition from 0, each naming its own (`Event::partition`). Every
    /// event is decided again and checked, its routing included.
    pub fn import(
        new: &Path,
        events: impl Iterator<Item = Result<(String, Vec<u8>), StorageError>>,
        options: Options,
    ) -> Result<(Engine, Converted), OpenError> {
        let target = open_empty(new)?;
        let events = events.map(|item| {
            let (hash, bytes) = item?;
            let event = strive_core::Event::decode(&bytes).map_err(|e| StorageError::Corrupt {
                key: "an imported event".to_owned(),
                message: e.to_string(),
            })?;
            Ok(StoredEvent { hash, bytes, event })
        });
        let partitions = options.partitions;
        if !(1..=crate::records::MAX_PARTITIONS).contains(&partitions) {
            return Err(OpenError::Partitions {
                requested: partitions,
                limit: crate::records::MAX_PARTITIONS,
            });
        }
        let converted = build(target.clone(), events, None, &options, partitions)?;
        let engine = Engine::with_backend(target, Some(new.to_owned()), options)?;
        Ok((engine, converted))
    }

    /// Copies the durable log to a new store at `dir` (which must not
    /// exist or be empty) while the engine keeps running: blocks and tiles
    /// never change once written, so the copy is consistent as of the
    /// durable position it was started at. The copy has no state: its
    /// first open rebuilds it from the log (and so checks every event).
    /// Returns the number of events copied.
    pub fn backup(&self, dir: &Path) -> Result<u64, OpenError> {
        let target = open_empty(dir)?;
        let backend = self.backend();
        let mut writes: Vec<Write> = vec![(
            keys::meta("format"),
            Some(crate::records::STORE_FORMAT.to_be_bytes().to_vec()),
        )];
        if self.partitions() > 1 {
            writes.push(crate::engine::partitions_record(self.partitions()));
        }
        writes.extend(crate::guard::clock_mark(backend)?);
        // Each partition's log up to its durable position, read for the
        // other partitions first and for partition 0 last: a deployment is
        // durable before any event that uses it is, so partition 0's copy
        // holds every deployment the others' copies name.
        let mut sizes: Vec<u64> = (0..self.partitions())
            .map(|p| if p == 0 { 0 } else { self.last_gseq_in(p) })
            .collect();
        sizes[0] = self.last_gseq_in(0);
        let mut copied = 0;
        for (partition, &size) in (0u32..).zip(&sizes) {
            let blocks = keys::blocks(partition);
            for entry in backend.range(&blocks, &keys::block(partition, size.saturating_add(1))) {
                let (key, value) = entry?;
                writes.push((key, Some(value)));
                if writes.len() >= 1024 {
                    target.apply(std::mem::take(&mut writes))?;
                }
            }
            for (id, value) in self.tiles_at(partition, size)? {
                writes.push((keys::tile(partition, id.0, id.1), Some(value)));
            }
            copied += size;
        }
        target.apply(writes)?;
        target.flush()?;
        Ok(copied)
    }
}

/// Opens `path` as a new store, refusing one that holds anything: a store
/// with records, or a directory or file that is not a store at all (which
/// sled would otherwise write its files into).
fn open_empty(path: &Path) -> Result<Arc<dyn Backend>, OpenError> {
    let backend: Arc<dyn Backend> = match crate::url::location_text(path) {
        // A database URL (issue #15): the same rule, the database empty.
        Some(url) => crate::url::database_backend(url)?.0,
        None => {
            crate::probe::require_store_or_room(path)?;
            Arc::new(SledBackend::open(path)?)
        }
    };
    if backend.range(&[], &[0xFF]).next().is_some() {
        return Err(OpenError::NotEmpty {
            path: path.to_owned(),
        });
    }
    Ok(backend)
}

/// The deadline entries of a format-1 store.
fn deadline_keys(source: &dyn Backend) -> Result<BTreeSet<Vec<u8>>, StorageError> {
    let prefix = [keys::DEADLINE];
    source
        .range(&prefix, &keys::prefix_end(&prefix))
        .map(|entry| entry.map(|(key, _)| key))
        .collect()
}

/// Writes `events` as the whole log of `target`, a store of `partitions`
/// partitions, with the state they determine: each partition's events in
/// turn from partition 0 (whose log holds the deployments the others
/// use), each decided again by that partition's writer. `deadlines`, when
/// known, are the source's pending deadline entries: any the replay leaves
/// pending that the source had not was consumed by a refused deadline
/// event, which no event records.
fn build(
    target: Arc<dyn Backend>,
    events: impl Iterator<Item = Result<StoredEvent, StorageError>>,
    deadlines: Option<&BTreeSet<Vec<u8>>>,
    options: &Options,
    partitions: u32,
) -> Result<Converted, OpenError> {
    let mut meta = vec![(
        keys::meta("format"),
        Some(crate::records::STORE_FORMAT.to_be_bytes().to_vec()),
    )];
    if partitions > 1 {
        meta.push(crate::engine::partitions_record(partitions));
    }
    target.apply(meta)?;
    let heads = (0..partitions).map(|_| (0, TileLog::new())).collect();
    let shared = Arc::new(Shared::new(heads));
    let mut events = events.peekable();
    let mut writers = Vec::with_capacity(partitions as usize);
    let mut logs = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        let mut writer = Writer::new(target.clone(), shared.clone(), options.clone(), partition);
        let head = replay_partition(&mut writer, &mut events)?;
        if partition == 0 && partitions > 1 {
            // The other partitions' writers use a deployment only once
            // partition 0's log holding it is durable, as when running.
            target.flush()?;
            shared.committed_up_to(0, head.size);
        }
        logs.push(head);
        writers.push(writer);
    }
    if let Some(item) = events.next() {
        return Err(out_of_place(&item?, partitions).into());
    }
    let consumed = match (deadlines, writers.first_mut()) {
        (Some(kept), Some(writer)) => writer.consume_missing_deadlines(kept)?,
        _ => 0,
    };
    for writer in &mut writers {
        writer.write_back_now()?;
    }
    target.flush()?;
    for head in &logs {
        let log = LogReader {
            backend: &*target,
            partition: head.partition,
            cache: None,
        };
        debug_assert_eq!(log.last()?, head.size);
    }
    let (events, root) = combined_head(&logs).map_err(|e| StorageError::Corrupt {
        key: "an imported log".to_owned(),
        message: e.to_string(),
    })?;
    Ok(Converted {
        events,
        root,
        consumed_deadlines: consumed,
    })
}

/// Replays the events at the front of `events` that are `writer`'s
/// partition's (an error is its, too); returns that partition's head.
fn replay_partition(
    writer: &mut Writer,
    events: &mut std::iter::Peekable<impl Iterator<Item = Result<StoredEvent, StorageError>>>,
) -> Result<PartitionHead, StorageError> {
    let partition = writer.partition;
    let mut root = StreamingRoot::new();
    let run = std::iter::from_fn(|| {
        events.next_if(|item| {
            item.as_ref()
                .map_or(true, |e| e.event.partition == partition)
        })
    })
    .inspect(|item| {
        if let Ok(event) = item
            && let Ok(digest) = hex_digest(&event.hash)
        {
            root.push(&digest);
        }
    });
    let size = writer.replay_recorded(run, true)?;
    Ok(PartitionHead {
        partition,
        size,
        root: root.root(),
    })
}

/// An event left over when every partition has replayed its own: one of
/// a partition out of range, or out of turn.
fn out_of_place(event: &StoredEvent, partitions: u32) -> StorageError {
    StorageError::Corrupt {
        key: "an imported event".to_owned(),
        message: format!(
            "event {} of partition {} comes after partition {}'s events, or the store has no \
             such partition: a log of {partitions} partition(s) gives each partition's events \
             in turn, from 0",
            event.event.gseq,
            event.event.partition,
            partitions - 1
        ),
    }
}

fn hex_digest(hash: &str) -> Result<Hash, ()> {
    let bytes = hex::decode(hash).map_err(|_| ())?;
    bytes.try_into().map_err(|_| ())
}

impl Writer {
    /// Consumes every pending deadline whose entry is not in `kept`.
    fn consume_missing_deadlines(&mut self, kept: &BTreeSet<Vec<u8>>) -> Result<u64, StorageError> {
        let prefix = [keys::DEADLINE];
        let pending: Vec<Vec<u8>> = self
            .shared
            .memtables
            .range(&*self.backend, &prefix, &keys::prefix_end(&prefix))
            .map(|entry| entry.map(|(key, _)| key))
            .collect::<Result<_, _>>()?;
        let mut writes = crate::state::Writes::new();
        let mut consumed = 0;
        for key in pending.into_iter().filter(|key| !kept.contains(key)) {
            let Some((_, id)) = keys::parse_deadline(&key) else {
                continue;
            };
            let record_key = keys::key(keys::INSTANCE, &[&id]);
            if let Some(bytes) = self.shared.memtables.get(&*self.backend, &record_key)? {
                let mut record: InstanceRecord =
                    serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                        key: keys::show(&record_key),
                        message: e.to_string(),
                    })?;
                record.due = None;
                writes.insert(
                    record_key,
                    Some(serde_json::to_vec(&record).unwrap_or_default()),
                );
                self.cache.remove(&id);
            }
            writes.insert(key, None);
            consumed += 1;
        }
        self.memtable().extend(writes);
        Ok(consumed)
    }
}
