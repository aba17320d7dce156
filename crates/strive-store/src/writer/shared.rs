//! A partition's writer over a store that several engine processes write
//! at once (issue #15; docs/storage.md, "Several processes").
//!
//! Each group is decided and appended under the partition's head lock,
//! which the database holds for this process from before the group is
//! decided until its batch commits ([`SharedLog`]). Under the lock, the
//! writer first catches up with what other processes appended since its
//! last group, deciding their recorded commands again through the code
//! recovery uses (`recover.rs`), so its memtable, instance cache and
//! Merkle log are the log's up to the head before it decides anything:
//! a second `fire` with the same expected sequence is refused, a retried
//! command id gets its first answer, and a deadline another process
//! consumed is no longer pending. The state it writes back therefore
//! reflects the log up to the head it appends after.
//!
//! How much is replayed depends on the head's stamp, which every batch
//! that writes state back raises: while it is the one this writer last
//! saw, the store's state under its memtable is the one the memtable was
//! built over, and only the events after its own position are replayed;
//! once another process wrote state back, the memtable and cache are
//! dropped and the events after the store's `applied` marker replayed, as
//! an open does.

use strive_core::TileLog;

use crate::backend::{SharedHead, Write};
use crate::error::StorageError;
use crate::keys;
use crate::log::LogReader;

use super::Writer;

impl Writer {
    /// Locks this partition's head when the store is shared, and catches
    /// up with it. Returns the log's last position when other processes
    /// had moved it (the group's flush must then cover their writes before
    /// anything decided against them is answered); `None` when the store
    /// is not shared or nothing moved.
    pub(super) fn lock_shared(&mut self) -> Result<Option<u64>, StorageError> {
        let backend = self.backend.clone();
        let Some(log) = backend.shared_log() else {
            return Ok(None);
        };
        let row = log.lock(self.partition)?;
        match self.catch_up(row) {
            Ok(moved) => {
                self.row = row;
                Ok(moved.then_some(self.next_position - 1))
            }
            Err(error) => {
                log.unlock(self.partition);
                self.forget();
                Err(error)
            }
        }
    }

    /// Releases this partition's head lock after a group that wrote
    /// nothing.
    pub(super) fn unlock_shared(&self) {
        if let Some(log) = self.backend.shared_log() {
            log.unlock(self.partition);
        }
    }

    /// Applies `writes` atomically: in a shared store, in the locked
    /// transaction, moving the head to this writer's position (with a new
    /// stamp when `writes_state`).
    pub(super) fn commit(
        &mut self,
        writes: Vec<Write>,
        writes_state: bool,
    ) -> Result<(), StorageError> {
        let backend = self.backend.clone();
        let Some(log) = backend.shared_log() else {
            return backend.apply(writes);
        };
        let stamp = self.row.map_or(0, |row| row.stamp);
        let to = SharedHead {
            size: self.next_position - 1,
            stamp: stamp + u64::from(writes_state),
        };
        match log.append(self.partition, writes, self.row, to) {
            Ok(()) => {
                self.row = Some(to);
                self.head = Some(to);
                Ok(())
            }
            Err(error) => {
                // Whether the batch landed is unknown: the next group
                // rebuilds this writer's view from the store.
                self.head = None;
                Err(error)
            }
        }
    }

    /// Makes this writer's view the log's up to `row` (the locked head;
    /// `None`: not recorded yet, so the log's end). Returns whether
    /// anything had moved.
    fn catch_up(&mut self, row: Option<SharedHead>) -> Result<bool, StorageError> {
        let backend = self.backend.clone();
        let log = LogReader {
            backend: &*backend,
            partition: self.partition,
            cache: None,
        };
        let current = match row {
            Some(head) => head,
            None => SharedHead {
                size: log.last()?,
                stamp: 0,
            },
        };
        if row.is_some() && self.head == Some(current) {
            return Ok(false);
        }
        let incremental = row.is_some()
            && self
                .head
                .is_some_and(|known| known.stamp == current.stamp && known.size <= current.size);
        let from = if incremental {
            self.next_position
        } else {
            self.forget();
            let applied = backend
                .get(&keys::meta_partition("applied", self.partition))?
                .and_then(|v| keys::u64_value(&v))
                .unwrap_or(0);
            applied + 1
        };
        let size = current.size;
        let recent = log.digests(size - size % 256 + 1, size)?;
        self.tree = TileLog::restore::<StorageError>(size, &recent).map_err(|error| {
            StorageError::Backend {
                message: format!("cannot restore the Merkle log at {size}: {error}"),
            }
        })?;
        self.next_position = from;
        self.replay_recorded(log.events(from, size), false)?;
        if self.next_position != size + 1 {
            return Err(StorageError::Corrupt {
                key: format!("partition {} head", self.partition),
                message: format!(
                    "the head says the log ends at {size}, but it was read up to {}",
                    self.next_position - 1
                ),
            });
        }
        if let Ok(mut tree) = self.shared.part(self.partition).tree.write() {
            tree.clone_from(&self.tree);
        }
        self.head = Some(current);
        Ok(true)
    }

    /// Drops this writer's view of the state (memtable and cache), which
    /// the next group rebuilds from the store.
    fn forget(&mut self) {
        self.memtable().clear();
        self.cache.clear();
        self.head = None;
    }
}
