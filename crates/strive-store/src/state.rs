//! The state records (snapshots, indexes, idempotency records, definitions)
//! as readers see them: the backend, overlaid by the writes that are applied
//! to the log but not yet written back (the *memtable*).
//!
//! Format 2 writes each commit group's events to the log at once, and the
//! state those events determine only every so often (`writer::WriteBack`),
//! so that an instance fired many times between two write-backs costs one
//! snapshot write, not one per event. Until then the state lives here.
//!
//! **Architecture Invariant:** the memtable only ever holds effects of
//! events that are in the log. A crash loses it; reopening rebuilds it by
//! replaying the log from the position the last write-back recorded
//! (`writer::recover`).

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::backend::{Backend, Entry};
use crate::error::StorageError;

/// Writes keyed by record key: a value, or `None` for a deletion.
pub(crate) type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What [`Memtable::extend_saving`] replaced: each key's earlier memtable
/// entry, if it had one.
pub(crate) type Previous = Vec<(Vec<u8>, Option<Option<Vec<u8>>>)>;

/// The state not yet written back, shared by the writer and readers.
#[derive(Default)]
pub(crate) struct Memtable {
    dirty: RwLock<Dirty>,
}

/// The memtable's entries, and a count of the changes made to them.
#[derive(Default)]
struct Dirty {
    writes: Writes,
    generation: u64,
}

/// A copy of the whole memtable for a write-back batch, and the generation
/// it was taken at (see [`Memtable::written_back`]).
pub(crate) struct WriteBack {
    pub(crate) writes: Writes,
    pub(crate) generation: u64,
}

impl Memtable {
    /// This memtable's entry for `key`: a value, a deletion, or nothing.
    fn entry(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        self.dirty.read().ok()?.writes.get(key).cloned()
    }

    /// A copy of this memtable's entries with `start <= key < end` (bounded
    /// by the write-back size).
    fn overlay(&self, start: &[u8], end: &[u8]) -> Vec<Overlaid> {
        match self.dirty.read() {
            Ok(dirty) if start < end => dirty
                .writes
                .range(start.to_vec()..end.to_vec())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Adds a committed group's state writes.
    pub(crate) fn extend(&self, writes: Writes) {
        if let Ok(mut dirty) = self.dirty.write() {
            dirty.writes.extend(writes);
            dirty.generation += 1;
        }
    }

    /// Adds writes, returning what they replaced, for [`Memtable::restore`].
    pub(crate) fn extend_saving(&self, writes: Writes) -> Previous {
        let mut previous = Vec::with_capacity(writes.len());
        if let Ok(mut dirty) = self.dirty.write() {
            for (key, value) in writes {
                let old = dirty.writes.insert(key.clone(), value);
                previous.push((key, old));
            }
            dirty.generation += 1;
        }
        previous
    }

    /// Undoes [`Memtable::extend_saving`] (after the batch that was to
    /// write them failed).
    pub(crate) fn restore(&self, previous: Previous) {
        if let Ok(mut dirty) = self.dirty.write() {
            for (key, old) in previous.into_iter().rev() {
                match old {
                    Some(value) => dirty.writes.insert(key, value),
                    None => dirty.writes.remove(&key),
                };
            }
            dirty.generation += 1;
        }
    }

    /// Forgets every entry: in a store several processes write, the
    /// writer drops its view once another process wrote the state back,
    /// and rebuilds it from the store (`writer/shared.rs`).
    pub(crate) fn clear(&self) {
        if let Ok(mut dirty) = self.dirty.write() {
            dirty.writes.clear();
            dirty.generation += 1;
        }
    }

    /// How many keys wait to be written back.
    pub(crate) fn len(&self) -> usize {
        self.dirty.read().map(|d| d.writes.len()).unwrap_or(0)
    }

    /// A copy of everything not yet written back, for a write-back batch,
    /// which takes the copy's entries as they are (one copy per
    /// write-back, not two).
    pub(crate) fn snapshot(&self) -> WriteBack {
        self.dirty
            .read()
            .map(|d| WriteBack {
                writes: d.writes.clone(),
                generation: d.generation,
            })
            .unwrap_or(WriteBack {
                writes: Writes::new(),
                generation: u64::MAX,
            })
    }

    /// Forgets what the write-back of the snapshot taken at `generation`
    /// wrote. Only the writer thread changes its memtable, and it does
    /// not between a snapshot and this call, so the memtable is then what
    /// was written and is emptied at once, without comparing entry by
    /// entry. Should it have changed in between, it is kept whole: entries
    /// that are also in the store only cost a second write-back.
    pub(crate) fn written_back(&self, generation: u64) {
        if let Ok(mut dirty) = self.dirty.write()
            && dirty.generation == generation
        {
            dirty.writes.clear();
            dirty.generation += 1;
        }
    }
}

/// Every partition's memtable. A state key belongs to one partition (that
/// of the instance it describes; definitions to partition 0), and only that
/// partition's writer writes it, so at most one memtable holds a key and
/// readers may look in them in any order.
pub(crate) struct Memtables {
    parts: Vec<Memtable>,
}

impl Memtables {
    pub(crate) fn new(partitions: u32) -> Memtables {
        Memtables {
            parts: (0..partitions.max(1))
                .map(|_| Memtable::default())
                .collect(),
        }
    }

    /// Partition `partition`'s memtable (partition 0's for a number out of
    /// range, which no caller passes: writers are made for `0..P`).
    pub(crate) fn part(&self, partition: u32) -> &Memtable {
        let index = partition as usize;
        self.parts.get(index).unwrap_or(&self.parts[0])
    }

    /// The value at `key`: a memtable's, else the backend's.
    pub(crate) fn get(
        &self,
        backend: &dyn Backend,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        for part in &self.parts {
            if let Some(value) = part.entry(key) {
                return Ok(value);
            }
        }
        backend.get(key)
    }

    /// The entries with `start <= key < end`, merged, in key order. The
    /// memtables' part is copied; the backend's is streamed.
    pub(crate) fn range<'a>(
        &self,
        backend: &'a dyn Backend,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<Entry, StorageError>> + use<'a> {
        let mut overlay: Vec<Overlaid> = Vec::new();
        for part in &self.parts {
            overlay.extend(part.overlay(start, end));
        }
        if self.parts.len() > 1 {
            // Keys are disjoint across partitions: a plain sort merges them.
            overlay.sort_by(|a, b| a.0.cmp(&b.0));
        }
        Merge {
            base: backend.range(start, end).peekable(),
            overlay: overlay.into_iter().peekable(),
        }
    }
}

/// A memtable entry in a merged range: a value, or a deletion.
type Overlaid = (Vec<u8>, Option<Vec<u8>>);

/// The backend's entries overlaid by the memtable's, both in key order.
struct Merge<'a> {
    base: std::iter::Peekable<Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a>>,
    overlay: std::iter::Peekable<std::vec::IntoIter<Overlaid>>,
}

impl Iterator for Merge<'_> {
    type Item = Result<Entry, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_overlay = match (self.base.peek(), self.overlay.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.base.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((base_key, _))), Some((overlay_key, _))) => {
                    if base_key == overlay_key {
                        // The overlay's value replaces the backend's.
                        self.base.next();
                        true
                    } else {
                        overlay_key < base_key
                    }
                }
            };
            if !take_overlay {
                return self.base.next();
            }
            match self.overlay.next() {
                Some((key, Some(value))) => return Some(Ok((key, value))),
                // A deletion hides the backend's entry and yields nothing.
                Some((_, None)) => continue,
                None => return None,
            }
        }
    }
}
