//! The audit log's Merkle tree, stored as tiles: the pure mathematics of
//! RFC 6962 / RFC 9162 trees kept in the shape of C2SP `tlog-tiles`.
//!
//! The tree is RFC 6962's (§2.1) over 32-byte event digests in log order:
//! leaf *i* (from 0) is the digest of the event at `gseq = i + 1`, a leaf
//! hash is `SHA-256(0x00 || digest)`, a node hash is
//! `SHA-256(0x01 || left || right)`, and the root of the empty tree is
//! `SHA-256("")`.
//!
//! # Tiles
//!
//! Tiles have height 8, so a full tile holds [`TILE_WIDTH`] = 256 hashes.
//! The entries of the level-*L* tile *n* are the hashes of complete
//! subtrees of 256^*L* leaves: entry *j* is subtree `n * 256 + j` at that
//! level (level-0 entries are leaf hashes, level-1 entries roots of 256
//! leaves, and so on). The hash of any complete subtree of height
//! `h = 8L + r` is then computed from 2^*r* consecutive entries of one
//! level-*L* tile, in one tile read and at most 127 hash operations; the
//! levels inside a tile are never stored. A tile value is its entries
//! concatenated, `w * 32` bytes with `1 <= w <= 256` ([`encode_tile`],
//! [`decode_tile`]); `w < 256` is a partial tile, the right edge of its
//! level. Tiles only grow: an entry, once written, never changes, so a
//! stored tile may hold more entries than an older tree size needs, and
//! only the prefix that size needs is used.
//!
//! # What the store persists
//!
//! [`TileLog::append`] returns the tiles the store must write, and the
//! rule is: the store persists **every full tile of every level and every
//! partial tile of level 1 and above**. The partial level-0 tile (the leaf
//! hashes of the last `size % 256` events) is **never persisted**: it
//! changes at every append, and it is rebuilt at open from the last
//! `size % 256` event digests with [`TileLog::restore`]. A level >= 1
//! partial tile changes once every 256 or more events, so writing it is
//! cheap.
//!
//! The verifier does not trust stored tiles: it recomputes the root from
//! the events themselves with [`StreamingRoot`] (or [`StreamingProof`],
//! which also collects a consistency proof from an older size) in
//! O(log N) memory.
//!
//! # Proofs
//!
//! Inclusion and consistency proofs are RFC 9162 audit paths (§2.1.3.1,
//! §2.1.4.1), byte for byte what the `ct-merkle` crate produces, and
//! [`verify_inclusion`] and [`verify_consistency`] check them as RFC 9162
//! §2.1.3.2 and §2.1.4.2 say.

use std::fmt;

use sha2::{Digest, Sha256};

mod heads;
mod log;
mod proof;
mod stream;
#[cfg(test)]
mod tests;

pub use heads::{HeadsError, PARTITIONS_TAG, PartitionHead, check_heads, combined_head};
pub use log::{AppendUndo, TileLog};
pub use proof::{ProofError, verify_consistency, verify_inclusion};
pub use stream::{StreamingProof, StreamingRoot};

/// A 32-byte SHA-256 digest.
pub type Hash = [u8; 32];

/// The number of hashes in a full tile (tiles have height 8).
pub const TILE_WIDTH: usize = 256;

/// The height of a tile: a level-`L` entry is a subtree of `2^(8L)` leaves.
const TILE_HEIGHT: u32 = 8;

/// The most levels a tree of at most `u64::MAX` leaves has: a level-8
/// entry would be a subtree of 2^64 leaves.
const MAX_LEVELS: usize = 8;

/// RFC 6962's leaf hash of an event digest: `SHA-256(0x00 || digest)`.
pub fn leaf_hash(digest: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(digest);
    hasher.finalize().into()
}

/// RFC 6962's interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Where a tile sits: its level (0 for leaf hashes) and its index within
/// the level (tile `n` of level `L` holds the level-`L` entries
/// `n * 256 .. n * 256 + 256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    /// The level: its entries are hashes of subtrees of `256^level` leaves.
    pub level: u8,
    /// The index of the tile within its level.
    pub index: u64,
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tile {}/{}", self.level, self.index)
    }
}

/// A tile the store must write: its id and its value (see [`encode_tile`]).
pub type TileWrite = (TileId, Vec<u8>);

/// Reads stored tiles: the store implements it over its records, in-memory
/// trees and tests over a map.
pub trait TileReader {
    /// Why a read failed (the store's I/O error).
    type Error;

    /// The stored value of tile `id`, as [`encode_tile`] made it, or
    /// `None` when no such tile is stored. The value may hold more entries
    /// than the tree size being read needs: only the needed prefix is used.
    fn read_tile(&self, id: TileId) -> Result<Option<Vec<u8>>, Self::Error>;
}

/// The stored value of a tile: its entries concatenated.
pub fn encode_tile(entries: &[Hash]) -> Vec<u8> {
    entries.concat()
}

/// The entries of the stored value `bytes` of tile `id`; refused (as
/// [`TlogError::BadTile`]) unless it is a positive multiple of 32 bytes
/// of at most [`TILE_WIDTH`] hashes.
pub fn decode_tile<E>(id: TileId, bytes: &[u8]) -> Result<Vec<Hash>, TlogError<E>> {
    let bad = |message: String| TlogError::BadTile { id, message };
    if bytes.is_empty() || !bytes.len().is_multiple_of(32) {
        return Err(bad(format!(
            "it is {} bytes long, not a positive multiple of 32",
            bytes.len()
        )));
    }
    if bytes.len() > TILE_WIDTH * 32 {
        return Err(bad(format!(
            "it holds {} hashes, more than a tile's {TILE_WIDTH}",
            bytes.len() / 32
        )));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|chunk| {
            let mut hash = [0; 32];
            hash.copy_from_slice(chunk);
            hash
        })
        .collect())
}

/// Why the tiled tree could not be read or extended.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlogError<E> {
    /// The tile reader failed.
    Reader(E),
    /// A tile the tree size needs is not stored.
    MissingTile {
        /// The tile.
        id: TileId,
    },
    /// A stored tile is not a tile value, or holds fewer entries than the
    /// tree size needs.
    BadTile {
        /// The tile.
        id: TileId,
        /// What is wrong with it.
        message: String,
    },
    /// The sizes or indices asked for make no sense for this tree (an
    /// index past the end, an old size larger than the new one, a size
    /// past what was appended, recent digests that do not fit the size).
    Sizes {
        /// What is wrong with them.
        message: String,
    },
}

impl<E: fmt::Display> fmt::Display for TlogError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlogError::Reader(error) => write!(f, "reading a Merkle tile failed: {error}"),
            TlogError::MissingTile { id } => write!(
                f,
                "Merkle {id} is missing from the store: the tree cannot be read without it; \
                 rebuild the tiles from the events or restore the store from a backup"
            ),
            TlogError::BadTile { id, message } => write!(
                f,
                "Merkle {id} is damaged: {message}; rebuild the tiles from the events or \
                 restore the store from a backup"
            ),
            TlogError::Sizes { message } => write!(f, "{message}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for TlogError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlogError::Reader(error) => Some(error),
            _ => None,
        }
    }
}

/// The leaves `start .. end` of a tree: an RFC 6962 node, or a sequence of
/// complete subtrees folded from the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
}

/// A complete subtree: the `2^height` leaves from `index << height`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subtree {
    height: u32,
    index: u64,
}

impl Span {
    /// The complete subtrees that make up the span, largest first: at each
    /// position the largest aligned subtree that fits. For an RFC 6962
    /// node (or a tree `0 .. n`) folding their hashes from the right gives
    /// the node's hash.
    fn subtrees(self) -> impl Iterator<Item = Subtree> {
        let mut at = self.start;
        std::iter::from_fn(move || {
            if at >= self.end {
                return None;
            }
            let fits = 63 - (self.end - at).leading_zeros();
            let height = at.trailing_zeros().min(fits);
            let subtree = Subtree {
                height,
                index: at >> height,
            };
            at += 1 << height;
            Some(subtree)
        })
    }
}

/// Folds the hashes of consecutive complete subtrees, largest first, into
/// the hash of the span they make up (`None` for no subtrees).
fn fold_right(hashes: impl DoubleEndedIterator<Item = Hash>) -> Option<Hash> {
    hashes.rev().reduce(|right, left| node_hash(&left, &right))
}

/// The root of a complete subtree of height `r` given its `2^r` lowest
/// hashes, combined pairwise level by level.
fn subtree_root(mut level: Vec<Hash>) -> Hash {
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node_hash(left, right),
                [single] => *single,
                _ => empty_root(),
            })
            .collect();
    }
    level.first().copied().unwrap_or_else(empty_root)
}
