//! Reading a partition's log: events by position, ranges of events, the
//! tail, and the Merkle tiles. Every event of a partition is in exactly one
//! block, keyed by the partition and the position of its first event, so
//! the block holding position `n` is the last block key at or before `n`:
//! one seek.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use strive_core::{Hash, TileId, TileReader};

use crate::backend::Backend;
use crate::block::{self, Block};
use crate::error::StorageError;
use crate::keys;
use crate::records::StoredEvent;

/// How many decoded blocks readers keep (a few MB): enough for the history
/// of an instance whose events are spread over many blocks, and for the
/// tail that subscribers follow.
const CACHED_BLOCKS: usize = 512;

/// Decoded blocks by (partition, first position), shared by readers.
#[derive(Default)]
pub(crate) struct BlockCache {
    blocks: Mutex<HashMap<(u32, u64), Arc<Block>>>,
}

impl BlockCache {
    fn get(&self, partition: u32, first: u64) -> Option<Arc<Block>> {
        self.blocks.lock().ok()?.get(&(partition, first)).cloned()
    }

    /// Forgets every cached block (the simulator, after it puts back a
    /// block it damaged beneath the engine).
    #[cfg(feature = "sim")]
    pub(crate) fn clear(&self) {
        if let Ok(mut blocks) = self.blocks.lock() {
            blocks.clear();
        }
    }

    fn put(&self, partition: u32, first: u64, block: Arc<Block>) {
        if let Ok(mut blocks) = self.blocks.lock() {
            if blocks.len() >= CACHED_BLOCKS {
                // Crude but cheap: start over rather than track recency.
                blocks.clear();
            }
            blocks.insert((partition, first), block);
        }
    }
}

/// A reader of one partition's log.
pub(crate) struct LogReader<'a> {
    pub(crate) backend: &'a dyn Backend,
    pub(crate) partition: u32,
    pub(crate) cache: Option<&'a BlockCache>,
}

impl LogReader<'_> {
    /// The position of the partition's last event (0 when empty).
    pub(crate) fn last(&self) -> Result<u64, StorageError> {
        let prefix = keys::blocks(self.partition);
        let Some((key, value)) = self.backend.last_in(&prefix, &keys::prefix_end(&prefix))? else {
            return Ok(0);
        };
        let first = keys::block_first(&key).ok_or_else(|| corrupt(&key, "bad block key"))?;
        let count = block::count(&value).ok_or_else(|| corrupt(&key, "bad block header"))?;
        Ok(first + count - 1)
    }

    /// The block holding position `position`, with its first position.
    pub(crate) fn block_at(
        &self,
        position: u64,
    ) -> Result<Option<(u64, Arc<Block>)>, StorageError> {
        let start = keys::blocks(self.partition);
        let end = keys::block(self.partition, position.saturating_add(1));
        let Some((key, value)) = self.backend.last_in(&start, &end)? else {
            return Ok(None);
        };
        let first = keys::block_first(&key).ok_or_else(|| corrupt(&key, "bad block key"))?;
        let block = self.decode(first, &key, &value)?;
        if position - first >= block.events.len() as u64 {
            return Ok(None);
        }
        Ok(Some((first, block)))
    }

    fn decode(&self, first: u64, key: &[u8], value: &[u8]) -> Result<Arc<Block>, StorageError> {
        if let Some(block) = self.cache.and_then(|c| c.get(self.partition, first)) {
            return Ok(block);
        }
        let block = Arc::new(block::decode(value, &keys::show(key))?);
        if let Some(cache) = self.cache {
            cache.put(self.partition, first, block.clone());
        }
        Ok(block)
    }

    /// The event at `position`.
    pub(crate) fn event(&self, position: u64) -> Result<Option<StoredEvent>, StorageError> {
        let Some((first, block)) = self.block_at(position)? else {
            return Ok(None);
        };
        let index = (position - first) as usize;
        stored(self.partition, position, &block, index).map(Some)
    }

    /// The events from `from` to `to` (both inclusive), block by block.
    pub(crate) fn events(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<StoredEvent, StorageError>> + '_ {
        let from = from.max(1);
        let partition = self.partition;
        // Start at the block holding `from`: its key is at or before it.
        let start = match self.backend.last_in(
            &keys::blocks(partition),
            &keys::block(partition, from.saturating_add(1)),
        ) {
            Ok(Some((key, _))) => key,
            _ => keys::block(partition, from),
        };
        let end = keys::block(partition, to.saturating_add(1));
        self.backend.range(&start, &end).flat_map(
            move |entry| -> Vec<Result<StoredEvent, StorageError>> {
                let (key, value) = match entry {
                    Ok(entry) => entry,
                    Err(error) => return vec![Err(error)],
                };
                let Some(first) = keys::block_first(&key) else {
                    return vec![Err(corrupt(&key, "bad block key"))];
                };
                let block = match self.decode(first, &key, &value) {
                    Ok(block) => block,
                    Err(error) => return vec![Err(error)],
                };
                (0..block.events.len())
                    .map(|i| (first + i as u64, i))
                    .filter(|(position, _)| (from..=to).contains(position))
                    .map(|(position, i)| stored(partition, position, &block, i))
                    .collect()
            },
        )
    }

    /// The digests of the events from `from` to `to` (inclusive), without
    /// decompressing their blocks.
    pub(crate) fn digests(&self, from: u64, to: u64) -> Result<Vec<Hash>, StorageError> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let start = match self.backend.last_in(
            &keys::blocks(self.partition),
            &keys::block(self.partition, from.saturating_add(1)),
        )? {
            Some((key, _)) => key,
            None => keys::block(self.partition, from),
        };
        let end = keys::block(self.partition, to.saturating_add(1));
        for entry in self.backend.range(&start, &end) {
            let (key, value) = entry?;
            let first = keys::block_first(&key).ok_or_else(|| corrupt(&key, "bad block key"))?;
            for (i, digest) in block::digests(&value, &keys::show(&key))?
                .into_iter()
                .enumerate()
            {
                if (from..=to).contains(&(first + i as u64)) {
                    out.push(digest);
                }
            }
        }
        Ok(out)
    }
}

fn stored(
    partition: u32,
    position: u64,
    block: &Block,
    index: usize,
) -> Result<StoredEvent, StorageError> {
    let (Some(bytes), Some(digest)) = (block.events.get(index), block.digests.get(index)) else {
        return Err(StorageError::Corrupt {
            key: keys::show(&keys::block(partition, position)),
            message: "the block has fewer events than it claims".to_owned(),
        });
    };
    StoredEvent::from_parts(digest, bytes, position)
}

fn corrupt(key: &[u8], message: &str) -> StorageError {
    StorageError::Corrupt {
        key: keys::show(key),
        message: message.to_owned(),
    }
}

/// The stored Merkle tiles of one partition, for `strive_core::tlog`.
pub(crate) struct Tiles<'a> {
    pub(crate) backend: &'a dyn Backend,
    pub(crate) partition: u32,
}

impl TileReader for Tiles<'_> {
    type Error = StorageError;

    fn read_tile(&self, id: TileId) -> Result<Option<Vec<u8>>, StorageError> {
        self.backend
            .get(&keys::tile(self.partition, id.level, id.index))
    }
}
