//! Reading a partition's log in bulk, block by block, for the audit work
//! that reads all of it (`strive verify`, replay; issue #10 item 6).
//!
//! [`Engine::events`] cuts every block into owned [`crate::StoredEvent`]s,
//! JSON-decoded and with their digests in hex: right for a subscriber, but
//! most of the cost of a pass over the whole log. A [`ScannedBlock`] is one
//! block decompressed and nothing more: its events' stored digests and
//! exact bytes, borrowed from one buffer, so that the verifier hashes the
//! bytes and decodes only what it needs, on as many threads as it likes.

use std::ops::Range;

use crate::block::{self, RawBlock};
use crate::engine::Engine;
use crate::error::StorageError;
use crate::keys;

/// One block of a partition's log, decompressed: the stored digest and
/// exact canonical bytes of each of its events, which are at consecutive
/// positions from [`ScannedBlock::first`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedBlock {
    first: u64,
    block: RawBlock,
}

impl ScannedBlock {
    /// The log position of the block's first event.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The number of events in the block.
    pub fn len(&self) -> usize {
        self.block.spans.len()
    }

    /// Whether the block holds no event (a stored block always holds one).
    pub fn is_empty(&self) -> bool {
        self.block.spans.is_empty()
    }

    /// The stored digest and exact bytes of the block's `index`th event.
    pub fn event(&self, index: usize) -> Option<(&[u8; 32], &[u8])> {
        let digest = self.block.digests.get(index)?;
        let span = self.block.spans.get(index)?;
        Some((digest, self.block.raw.get(span.clone())?))
    }

    /// The block's events in order, as (stored digest, exact bytes).
    pub fn events(&self) -> impl Iterator<Item = (&[u8; 32], &[u8])> {
        (0..self.len()).filter_map(|index| self.event(index))
    }

    /// The block's parts: the stored digests, the decompressed payload, and
    /// where in it each event's bytes are (one range per digest).
    pub fn into_parts(self) -> (Vec<[u8; 32]>, Vec<u8>, Vec<Range<usize>>) {
        (self.block.digests, self.block.raw, self.block.spans)
    }
}

/// The blocks of one partition's durable log from a position on, in order;
/// see [`Engine::blocks`].
pub struct Blocks<'a> {
    entries: Box<dyn Iterator<Item = Result<crate::backend::Entry, StorageError>> + 'a>,
    /// The last durable position when the scan started: blocks after it
    /// (written by a group not yet acknowledged) are not returned.
    last: u64,
}

impl std::fmt::Debug for Blocks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocks")
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Blocks<'_> {
    /// Stops the scan after position `last` as well: a reader that took
    /// the partition's size first (to check it against the log, or to
    /// read several partitions as of one moment) reads no further.
    pub fn until(mut self, last: u64) -> Self {
        self.last = self.last.min(last);
        self
    }
}

impl Iterator for Blocks<'_> {
    type Item = Result<ScannedBlock, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = match self.entries.next()? {
            Ok(entry) => entry,
            Err(error) => return Some(Err(error)),
        };
        let Some(first) = keys::block_first(&key) else {
            return Some(Err(StorageError::Corrupt {
                key: keys::show(&key),
                message: "bad block key".to_owned(),
            }));
        };
        if first > self.last {
            return None;
        }
        Some(
            block::decode_raw(&value, &keys::show(&key)).map(|block| ScannedBlock { first, block }),
        )
    }
}

impl Engine {
    /// The blocks of `partition`'s log holding the durable events from
    /// position `from` on, in log order, each read once and decompressed
    /// (one sled range scan, no block cache). The first block may start
    /// before `from`: skip its events before it by [`ScannedBlock::first`].
    ///
    /// A block that cannot be read is one `Err` item, and the scan goes on
    /// with the next block: a verifier reports the gap it leaves.
    pub fn blocks(&self, partition: u32, from: u64) -> Blocks<'_> {
        let backend = self.backend();
        let prefix = keys::blocks(partition);
        // Start at the block holding `from`: its key is at or before it.
        let start = match backend.last_in(&prefix, &keys::block(partition, from.saturating_add(1)))
        {
            Ok(Some((key, _))) => key,
            _ => keys::block(partition, from),
        };
        Blocks {
            entries: backend.range(&start, &keys::prefix_end(&prefix)),
            // The partition's durable end: nothing past it is acknowledged.
            last: self.last_gseq_in(partition),
        }
    }
}
