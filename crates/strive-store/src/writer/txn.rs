//! The overlay transaction one command is decided in: it reads through the
//! writes of this command, then of earlier commands of the same group, then
//! the memtable and the store, and collects the events it appends.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;
use strive_core::{Event, Workflow};

use crate::backend::{Backend, Entry};
use crate::error::StorageError;
use crate::keys;
use crate::records::InstanceRecord;
use crate::state::Writes;

use super::Shared;

/// A decoded instance record and the length of its encoding, which the
/// writer's [`InstanceCache`] counts.
#[derive(Debug, Clone)]
pub(crate) struct Saved {
    pub(crate) record: Arc<InstanceRecord>,
    pub(crate) bytes: usize,
}

/// Decoded instance records by id.
pub(crate) type Instances = HashMap<String, Saved>;

/// The decoded instance records the writer keeps between groups, bounded
/// by the bytes of their encodings: two generations, each up to half of
/// the budget. Records are saved into the newer one; once it is full it
/// becomes the older one and the older one is dropped, so what stays is
/// what was saved most recently (an instance fired again is saved again),
/// at the cost of one map turnover per half a budget, and the cache is
/// never emptied at once as a whole.
pub(crate) struct InstanceCache {
    newer: Instances,
    older: Instances,
    /// The bytes of the records in `newer`.
    newer_bytes: usize,
    /// The most bytes `newer` holds before it turns over.
    generation: usize,
}

impl InstanceCache {
    /// A cache of at most about `budget` bytes of encoded records.
    pub(crate) fn new(budget: usize) -> InstanceCache {
        InstanceCache {
            newer: Instances::new(),
            older: Instances::new(),
            newer_bytes: 0,
            generation: (budget / 2).max(1),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Arc<InstanceRecord>> {
        self.newer
            .get(id)
            .or_else(|| self.older.get(id))
            .map(|saved| &saved.record)
    }

    /// Keeps `saved` as the record of `id`, committed.
    pub(crate) fn insert(&mut self, id: String, saved: Saved) {
        self.older.remove(&id);
        self.newer_bytes += saved.bytes;
        if let Some(replaced) = self.newer.insert(id, saved) {
            self.newer_bytes -= replaced.bytes;
        }
        if self.newer_bytes > self.generation {
            self.older = std::mem::take(&mut self.newer);
            self.newer_bytes = 0;
        }
    }

    pub(crate) fn extend(&mut self, records: Instances) {
        for (id, saved) in records {
            self.insert(id, saved);
        }
    }

    pub(crate) fn remove(&mut self, id: &str) {
        if let Some(removed) = self.newer.remove(id) {
            self.newer_bytes -= removed.bytes;
        }
        self.older.remove(id);
    }

    pub(crate) fn clear(&mut self) {
        self.newer.clear();
        self.older.clear();
        self.newer_bytes = 0;
    }

    /// The bytes of the records held (at most about the budget).
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.newer_bytes + self.older.values().map(|saved| saved.bytes).sum::<usize>()
    }
}

/// An event appended by a command, with its log position and digest.
#[derive(Debug, Clone)]
pub(crate) struct Appended {
    pub(crate) position: u64,
    pub(crate) digest: [u8; 32],
    pub(crate) bytes: Vec<u8>,
}

/// What earlier commands of the group wrote, which later ones read.
#[derive(Default)]
pub(crate) struct GroupState {
    pub(crate) writes: Writes,
    pub(crate) instances: Instances,
    pub(crate) events: Vec<Appended>,
    /// Definitions deployed in this group, visible to its later commands
    /// and installed for everyone once the group is applied.
    pub(crate) installed: Vec<(Arc<Workflow>, u32)>,
    /// Set when a command changed state that no event records (a deadline
    /// consumed by a refused event): the group must write the state back
    /// with its log, or a crash would bring the deadline back.
    pub(crate) unlogged: bool,
    /// The keys this group's commands claimed across partitions
    /// (`Shared::claim`), released once the group is applied.
    pub(crate) claims: Vec<Vec<u8>>,
    /// While a recorded command is decided again (`recover.rs`): the
    /// version each workflow it started an instance of was started on, as
    /// its events record. A start takes that version rather than the latest
    /// now visible, which on a store of several partitions can be newer
    /// than the one visible when the command was first decided.
    pub(crate) pinned: HashMap<String, u32>,
}

/// The view of the store one command is decided against, and its writes.
pub(crate) struct Txn<'a> {
    pub(crate) backend: &'a dyn Backend,
    pub(crate) shared: &'a Shared,
    pub(crate) group: &'a GroupState,
    /// Committed records, as written by earlier groups.
    pub(crate) cache: &'a InstanceCache,
    pub(crate) writes: Writes,
    /// The records this command saved, decoded (their bytes are in `writes`).
    pub(crate) instances: Instances,
    pub(crate) events: Vec<Appended>,
    pub(crate) installed: Vec<(Arc<Workflow>, u32)>,
    pub(crate) start_position: u64,
    pub(crate) next_position: u64,
    pub(crate) partition: u32,
    /// The keys this command claimed (see [`Txn::claim`]).
    pub(crate) claims: Vec<Vec<u8>>,
}

/// A point a command can roll back to.
pub(crate) struct Savepoint {
    writes: Writes,
    instances: Instances,
    events: usize,
    installed: usize,
    claims: usize,
    next_position: u64,
}

impl Txn<'_> {
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.group.writes.get(key) {
            return Ok(value.clone());
        }
        self.shared.memtables.get(self.backend, key)
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The entries under `prefix`, merged across every layer.
    pub(crate) fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StorageError> {
        let end = keys::prefix_end(prefix);
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for item in self.shared.memtables.range(self.backend, prefix, &end) {
            let (key, value) = item?;
            merged.insert(key, Some(value));
        }
        for layer in [&self.group.writes, &self.writes] {
            for (key, value) in layer.range(prefix.to_vec()..end.clone()) {
                merged.insert(key.clone(), value.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    pub(crate) fn load_instance(
        &self,
        id: &str,
    ) -> Result<Option<Arc<InstanceRecord>>, StorageError> {
        // Instance keys are only ever written through `save_instance`, so
        // the decoded layers hold exactly what the byte layers hold.
        for layer in [&self.instances, &self.group.instances] {
            if let Some(saved) = layer.get(id) {
                return Ok(Some(saved.record.clone()));
            }
        }
        if let Some(record) = self.cache.get(id) {
            return Ok(Some(record.clone()));
        }
        let key = keys::key(keys::INSTANCE, &[id]);
        match self.shared.memtables.get(self.backend, &key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(|record| Some(Arc::new(record)))
                .map_err(|e| StorageError::Corrupt {
                    key: keys::show(&key),
                    message: e.to_string(),
                }),
        }
    }

    pub(crate) fn save_instance(&mut self, record: InstanceRecord) {
        let key = keys::key(keys::INSTANCE, &[&record.instance.id]);
        let value = to_json(&record);
        let bytes = value.len();
        self.put(key, value);
        self.instances.insert(
            record.instance.id.clone(),
            Saved {
                record: Arc::new(record),
                bytes,
            },
        );
    }

    /// Appends an event: assigns its log position and computes its hash.
    /// Returns the position and the hash in hex.
    pub(crate) fn append(&mut self, mut event: Event) -> (u64, String) {
        let position = self.next_position;
        self.next_position += 1;
        event.gseq = position;
        event.partition = self.partition;
        let bytes = event.encode();
        let digest = strive_core::event_digest(&bytes);
        debug_assert!(
            self.events
                .last()
                .is_none_or(|last| last.position + 1 == position),
            "log positions are contiguous within a command"
        );
        self.events.push(Appended {
            position,
            digest,
            bytes,
        });
        (position, hex::encode(digest))
    }

    /// Records that the instance's event `seq` is at `position`, writing a
    /// chain chunk when the record's tail fills one.
    pub(crate) fn chain_push(&mut self, record: &mut InstanceRecord, seq: u64, position: u64) {
        record.chain.push(position);
        debug_assert_eq!(
            (seq - 1) % keys::CHAIN_CHUNK,
            record.chain.len() as u64 - 1,
            "the chain tail holds the events after the last full chunk"
        );
        if record.chain.len() as u64 == keys::CHAIN_CHUNK {
            let chunk = ((seq - 1) / keys::CHAIN_CHUNK) as u32;
            let value: Vec<u8> = record.chain.iter().flat_map(|p| p.to_be_bytes()).collect();
            self.put(keys::chain_chunk(&record.instance.id, chunk), value);
            record.chain.clear();
        }
    }

    /// The compiled workflow `id` at `version`, including versions deployed
    /// earlier in this command or group.
    pub(crate) fn workflow(&self, id: &str, version: u32) -> Option<Arc<Workflow>> {
        self.installed
            .iter()
            .chain(&self.group.installed)
            .find(|(w, v)| w.id() == id && *v == version)
            .map(|(w, _)| w.clone())
            .or_else(|| self.shared.workflow_for(self.partition, id, version))
    }

    /// The version of `id` a new instance starts on: the one a recorded
    /// command's events pin it to when it is decided again, else the
    /// latest, including ones deployed in this group.
    pub(crate) fn latest(&self, id: &str) -> Option<(u32, Arc<Workflow>)> {
        if let Some(&version) = self.group.pinned.get(id) {
            return self.workflow(id, version).map(|w| (version, w));
        }
        let pending = self
            .installed
            .iter()
            .chain(&self.group.installed)
            .filter(|(w, _)| w.id() == id)
            .max_by_key(|(_, v)| *v)
            .map(|(w, v)| (*v, w.clone()));
        match (pending, self.shared.latest_for(self.partition, id)) {
            (Some(p), Some(s)) => Some(if p.0 > s.0 { p } else { s }),
            (p, s) => p.or(s),
        }
    }

    pub(crate) fn savepoint(&self) -> Savepoint {
        Savepoint {
            writes: self.writes.clone(),
            instances: self.instances.clone(),
            events: self.events.len(),
            installed: self.installed.len(),
            claims: self.claims.len(),
            next_position: self.next_position,
        }
    }

    pub(crate) fn rollback_to(&mut self, savepoint: Savepoint) {
        self.writes = savepoint.writes;
        self.instances = savepoint.instances;
        self.events.truncate(savepoint.events);
        self.installed.truncate(savepoint.installed);
        let released = self
            .claims
            .split_off(savepoint.claims.min(self.claims.len()));
        self.shared.release(&released);
        self.next_position = savepoint.next_position;
        // Pair assertion: the positions given back are exactly the ones
        // the dropped events took.
        debug_assert_eq!(
            self.start_position + self.events.len() as u64,
            self.next_position
        );
    }

    /// Drops everything this command did.
    pub(crate) fn rollback(&mut self) {
        self.writes.clear();
        self.instances.clear();
        self.events.clear();
        self.installed.clear();
        self.shared.release(&std::mem::take(&mut self.claims));
        self.next_position = self.start_position;
    }

    /// Claims `key`, which this command is about to write with `value`,
    /// against the other partitions' writers: a key that must be unique
    /// across the store (a new instance id, its look-alike skeleton, a
    /// command id) may be written by any partition, and another writer's
    /// group may hold it in its overlay where this one cannot see it.
    /// `Err` carries the value the other partition claimed it with. With
    /// one partition there is no other writer, and nothing is claimed.
    pub(crate) fn claim(&mut self, key: &[u8], value: &[u8]) -> Result<(), Vec<u8>> {
        if self.shared.partitions() == 1 {
            return Ok(());
        }
        match self.shared.claim(self.partition, key, value) {
            super::ClaimResult::New => {
                self.claims.push(key.to_vec());
                Ok(())
            }
            super::ClaimResult::Held => Ok(()),
            super::ClaimResult::Taken(value) => Err(value),
        }
    }

    /// The instance `id` if its events are in this writer's partition. An
    /// instance of another partition is, to this writer, not there: the
    /// engine routes commands by the instance's record, so a command lands
    /// here for another partition's instance only when that instance was
    /// not yet visible when the command was sent (it is being started).
    pub(crate) fn load_own(&self, id: &str) -> Result<Option<Arc<InstanceRecord>>, StorageError> {
        Ok(self
            .load_instance(id)?
            .filter(|record| record.partition == self.partition))
    }

    pub(crate) fn child_count_delta(
        &mut self,
        parent: &str,
        workflow: &str,
        stage: &str,
        delta: i64,
    ) -> Result<(), StorageError> {
        let key = keys::key(keys::CHILD_COUNT, &[parent, workflow, stage]);
        let current = self
            .get(&key)?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0);
        let next = current.saturating_add_signed(delta);
        if next == 0 {
            self.delete(key);
        } else {
            self.put(key, next.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// The children summary guards read (`strive_core::children_summary`),
    /// from the parent's stored counts.
    pub(crate) fn children_summary(&self, parent: &str) -> Result<Value, StorageError> {
        let prefix = keys::key(keys::CHILD_COUNT, &[parent]);
        let mut counts = Vec::new();
        for (key, value) in self.scan(&prefix)? {
            let rest = key.get(prefix.len()..).unwrap_or_default();
            let mut parts = rest.split(|&b| b == 0);
            let (Some(workflow), Some(stage)) = (parts.next(), parts.next()) else {
                continue;
            };
            counts.push((
                String::from_utf8_lossy(workflow).into_owned(),
                String::from_utf8_lossy(stage).into_owned(),
                keys::u64_value(&value).unwrap_or(0),
            ));
        }
        Ok(strive_core::children_summary(
            counts.iter().map(|(w, s, n)| (w.as_str(), s.as_str(), *n)),
        ))
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // The records are plain structs and JSON values: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(id: &str, bytes: usize) -> Saved {
        let text = format!(
            r#"{{"v":1,"instance":{{"id":"{id}","workflow":"w","version":1,"definition_hash":"h",
            "stage":"s","seq":1,"head":"h","data":{{}},"created_at":"2026-05-01T08:00:00Z",
            "updated_at":"2026-05-01T08:00:00Z","stage_entered_at":"2026-05-01T08:00:00Z","finished":false}}}}"#
        );
        let record = serde_json::from_str(&text).expect("a record");
        Saved {
            record: Arc::new(record),
            bytes,
        }
    }

    /// The cache holds at most its budget, keeps the records saved most
    /// recently, and never empties at once: after each turnover the last
    /// generation is still there.
    #[test]
    fn the_instance_cache_is_bounded_by_bytes_and_keeps_the_recent() {
        // (budget, record size, records saved)
        for (budget, size, count) in [
            (10_000, 100, 1_000),
            (1_000_000, 437, 5_000),
            (8_192, 3_000, 20),
        ] {
            let mut cache = InstanceCache::new(budget);
            for n in 0..count {
                cache.insert(format!("i-{n}"), saved(&format!("i-{n}"), size));
                assert!(
                    cache.bytes() <= budget + size,
                    "{budget}/{size}: {} bytes",
                    cache.bytes()
                );
                assert!(
                    cache.get(&format!("i-{n}")).is_some(),
                    "the last saved is kept"
                );
            }
            let kept = (0..count)
                .filter(|n| cache.get(&format!("i-{n}")).is_some())
                .count();
            assert!(
                kept * size >= (budget / 2).min(count * size),
                "{budget}/{size}: {kept} kept"
            );
            // Saving one again moves it to the newer generation, once.
            cache.insert("i-0".to_owned(), saved("i-0", size));
            cache.insert("i-0".to_owned(), saved("i-0", size));
            assert!(cache.bytes() <= budget + size);
            cache.remove("i-0");
            assert!(cache.get("i-0").is_none());
        }
    }
}
