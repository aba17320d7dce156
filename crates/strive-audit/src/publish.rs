//! Static publication of a log (issue #14 item 3): the checkpoint, the
//! Merkle tiles and the entry bundles as plain files in the C2SP
//! `tlog-tiles` layout, so an auditor verifies inclusion and consistency
//! from a directory, or from any HTTP server that serves it, with no
//! strive and no database.
//!
//! The layout, under a prefix (the directory for a store of one
//! partition; `partition/<p>/` for each partition of a larger one, whose
//! heads the checkpoint's `partition` lines pin):
//!
//! - `tile/<L>/<N>`: a full tile, 256 hashes of level `L`; `tile/<L>/<N>.p/<W>`
//!   its partial right edge of `W` hashes. `<N>` is written in groups of
//!   three digits, all but the last prefixed with `x` (`x001/x234/067`).
//! - `tile/entries/<N>` and `tile/entries/<N>.p/<W>`: entry bundles of 256
//!   (or `W`) events, each its exact stored bytes after a big-endian
//!   16-bit length.
//!
//! One deviation from a generic tlog-tiles log, stated in docs/audit.md: a
//! leaf is `SHA-256(0x00 || event hash)`, where the event hash is
//! `SHA-256("strive/event/v1\0" || bytes)`, not `SHA-256(0x00 || entry)`.
//! Tiles, proofs and checkpoints are standard; entries are checked with
//! strive's rule.

use std::fmt;

use strive_core::{TILE_WIDTH, leaf_hash, node_hash};

use crate::Hash;

/// The largest event an entry bundle holds: its length is 16 bits.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// One file to publish: its path under the prefix and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileFile {
    /// The path, such as `tile/0/x001/002` or `tile/entries/000.p/17`.
    pub path: String,
    /// Its contents.
    pub bytes: Vec<u8>,
    /// Whether the file is full and so never changes again: publishing
    /// anew may skip it when it exists.
    pub full: bool,
}

/// Why a log cannot be published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// An event is too large for an entry bundle.
    EntryTooLarge {
        /// Its position in the log (1-based).
        position: u64,
        /// Its size in bytes.
        bytes: usize,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::EntryTooLarge { position, bytes } => write!(
                f,
                "event {position} has {bytes} bytes, more than the {MAX_ENTRY_BYTES} a C2SP \
                 entry bundle can hold; publish cannot represent this log (export a bundle \
                 instead)"
            ),
        }
    }
}

impl std::error::Error for PublishError {}

/// The path of a tile (`level` `None` for an entry bundle) with index
/// `index` and `width` entries (256 for a full one), as C2SP writes it.
pub fn tile_path(level: Option<u8>, index: u64, width: usize) -> String {
    let mut groups = Vec::new();
    let mut rest = index;
    loop {
        groups.push(rest % 1000);
        rest /= 1000;
        if rest == 0 {
            break;
        }
    }
    let digits: Vec<String> = groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i + 1 < groups.len() {
                format!("x{g:03}")
            } else {
                format!("{g:03}")
            }
        })
        .collect();
    let level = level.map_or_else(|| "entries".to_owned(), |l| l.to_string());
    let mut path = format!("tile/{level}/{}", digits.join("/"));
    if width < TILE_WIDTH {
        path.push_str(&format!(".p/{width}"));
    }
    path
}

/// The root of a full tile's 256 hashes: the subtree they make (256 is a
/// power of two, so every level pairs up exactly).
fn tile_root(entries: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = entries.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level.first().copied().unwrap_or_default()
}

/// Builds one log's tiles and entry bundles from its events in order.
#[derive(Debug, Default)]
pub struct TilePublisher {
    /// The entries of each level's tile being filled.
    levels: Vec<Vec<Hash>>,
    /// How many full tiles each level has.
    full: Vec<u64>,
    /// The entry bundle being filled, and how many events it holds.
    bundle: Vec<u8>,
    in_bundle: usize,
    bundles: u64,
    size: u64,
}

impl TilePublisher {
    /// A publisher of an empty log.
    pub fn new() -> TilePublisher {
        TilePublisher::default()
    }

    /// How many events were pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Adds the next event (its hash and exact bytes); every file that
    /// becomes full goes to `out`.
    pub fn push(
        &mut self,
        digest: &Hash,
        bytes: &[u8],
        out: &mut dyn FnMut(TileFile),
    ) -> Result<(), PublishError> {
        let length = u16::try_from(bytes.len()).map_err(|_| PublishError::EntryTooLarge {
            position: self.size + 1,
            bytes: bytes.len(),
        })?;
        self.size += 1;
        self.bundle.extend_from_slice(&length.to_be_bytes());
        self.bundle.extend_from_slice(bytes);
        self.in_bundle += 1;
        if self.in_bundle == TILE_WIDTH {
            out(TileFile {
                path: tile_path(None, self.bundles, TILE_WIDTH),
                bytes: std::mem::take(&mut self.bundle),
                full: true,
            });
            self.bundles += 1;
            self.in_bundle = 0;
        }
        self.push_hash(0, leaf_hash(digest), out);
        Ok(())
    }

    fn push_hash(&mut self, level: usize, hash: Hash, out: &mut dyn FnMut(TileFile)) {
        if self.levels.len() <= level {
            self.levels.resize(level + 1, Vec::new());
            self.full.resize(level + 1, 0);
        }
        self.levels[level].push(hash);
        if self.levels[level].len() < TILE_WIDTH {
            return;
        }
        let entries = std::mem::take(&mut self.levels[level]);
        out(TileFile {
            path: tile_path(Some(level as u8), self.full[level], TILE_WIDTH),
            bytes: entries.concat(),
            full: true,
        });
        self.full[level] += 1;
        self.push_hash(level + 1, tile_root(&entries), out);
    }

    /// The partial files of the right edge: each level's partial tile and
    /// the last entry bundle, when not empty.
    pub fn finish(self, out: &mut dyn FnMut(TileFile)) {
        for (level, entries) in self.levels.iter().enumerate() {
            if !entries.is_empty() {
                out(TileFile {
                    path: tile_path(Some(level as u8), self.full[level], entries.len()),
                    bytes: entries.concat(),
                    full: false,
                });
            }
        }
        if self.in_bundle > 0 {
            out(TileFile {
                path: tile_path(None, self.bundles, self.in_bundle),
                bytes: self.bundle,
                full: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MerkleLog;

    #[test]
    fn paths_are_the_ones_c2sp_gives() {
        assert_eq!(tile_path(Some(0), 0, 256), "tile/0/000");
        assert_eq!(tile_path(Some(1), 1_234_067, 256), "tile/1/x001/x234/067");
        assert_eq!(tile_path(Some(2), 5, 17), "tile/2/005.p/17");
        assert_eq!(tile_path(None, 1000, 3), "tile/entries/x001/000.p/3");
    }

    #[test]
    fn published_tiles_hold_the_trees_hashes() {
        // 70,000 events: two full levels and a partial third.
        let mut log = MerkleLog::new();
        let mut publisher = TilePublisher::new();
        let mut files = Vec::new();
        for i in 0..70_000u32 {
            let digest: Hash = {
                use sha2::Digest as _;
                sha2::Sha256::digest(i.to_be_bytes()).into()
            };
            log.push(digest);
            publisher
                .push(&digest, &i.to_be_bytes(), &mut |f| files.push(f))
                .expect("pushed");
        }
        publisher.finish(&mut |f| files.push(f));
        let find = |path: &str| {
            files
                .iter()
                .find(|f| f.path == path)
                .unwrap_or_else(|| panic!("no {path}"))
        };
        // Level 0: tile 273 is full (273 * 256 = 69,888), 112 leaves after.
        assert_eq!(find("tile/0/272").bytes.len(), 256 * 32);
        assert_eq!(find("tile/0/273.p/112").bytes.len(), 112 * 32);
        // Level 1: 273 entries, one full tile and 17; level 2: one entry,
        // the root of the first 65,536 leaves.
        assert_eq!(find("tile/1/001.p/17").bytes.len(), 17 * 32);
        let level2 = &find("tile/2/000.p/1").bytes;
        let first: Vec<Hash> = (0..65_536).map(|i| log.leaf(i).expect("leaf")).collect();
        let mut small = MerkleLog::new();
        for leaf in &first {
            small.push(*leaf);
        }
        assert_eq!(level2.as_slice(), small.root().as_slice());
        // Entry bundles: two-byte lengths, then the bytes.
        assert_eq!(&find("tile/entries/000").bytes[..6], &[0, 4, 0, 0, 0, 0]);
        assert_eq!(find("tile/entries/273.p/112").bytes.len(), 112 * 6);
    }
}
