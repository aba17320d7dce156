//! [`TileLog`]: the appender and the in-memory right edge of the tiled
//! tree, and the roots and proofs read through a [`TileReader`].

use super::proof::{consistency_spans, inclusion_spans};
use super::{
    Hash, MAX_LEVELS, Span, Subtree, TILE_HEIGHT, TILE_WIDTH, TileId, TileReader, TileWrite,
    TlogError, decode_tile, empty_root, encode_tile, fold_right, leaf_hash, subtree_root,
};

/// The number of complete level-`level` subtrees in a tree of `size`
/// leaves: the entries of that level.
fn entries_at(size: u64, level: usize) -> u64 {
    // `level < MAX_LEVELS`, so the shift is at most 56 bits.
    size >> (TILE_HEIGHT as usize * level)
}

fn tile_id(level: usize, index: u64) -> TileId {
    TileId {
        // Levels are below MAX_LEVELS (8).
        level: u8::try_from(level).unwrap_or(u8::MAX),
        index,
    }
}

/// The appender of the tiled tree and its right edge in memory: the tree
/// size, the leaf hashes of the partial level-0 tile (never persisted, see
/// the module doc), and the partial tiles of the levels above once they
/// have been read or written.
///
/// Roots and proofs read the full tiles (and any partial tile not yet in
/// memory) through a [`TileReader`] that returns what [`TileLog::append`]
/// told the store to write.
#[derive(Debug, PartialEq, Eq)]
pub struct TileLog {
    size: u64,
    /// The leaf hashes of the partial level-0 tile: `size % 256` of them.
    leaves: Vec<Hash>,
    /// The partial tile of level `L` at `upper[L - 1]`, once known: after
    /// [`TileLog::restore`] it is read the first time an append changes it.
    upper: [Option<Vec<Hash>>; MAX_LEVELS - 1],
}

impl Clone for TileLog {
    fn clone(&self) -> TileLog {
        TileLog {
            size: self.size,
            leaves: self.leaves.clone(),
            upper: self.upper.clone(),
        }
    }

    /// Copies `source` into the vectors `self` already has: the writer
    /// publishes its right edge to readers after every group this way,
    /// without allocating.
    fn clone_from(&mut self, source: &TileLog) {
        self.size = source.size;
        self.leaves.clone_from(&source.leaves);
        for (mine, theirs) in self.upper.iter_mut().zip(&source.upper) {
            mine.clone_from(theirs);
        }
    }
}

/// What one [`TileLog::append_undoable`] changed, for [`TileLog::undo`]:
/// the size before, the length each edge had (the partial level-0 tile,
/// then each level's partial tile, `None` when it was not in memory), and
/// the entries of any edge the append filled and emptied. Appends only
/// push onto the edges, so a length is enough for every other edge, and
/// the record is small: nothing is copied unless a tile is completed.
#[derive(Debug)]
pub struct AppendUndo {
    size: u64,
    lens: [Option<usize>; MAX_LEVELS],
    taken: [Option<Vec<Hash>>; MAX_LEVELS],
}

impl AppendUndo {
    /// The record of `log` as it is now, before an append.
    fn of(log: &TileLog) -> AppendUndo {
        let mut lens = [None; MAX_LEVELS];
        lens[0] = Some(log.leaves.len());
        for (len, edge) in lens[1..].iter_mut().zip(&log.upper) {
            *len = edge.as_ref().map(Vec::len);
        }
        AppendUndo {
            size: log.size,
            lens,
            taken: std::array::from_fn(|_| None),
        }
    }

    /// Keeps what edge `edge` (0: the leaves, `L`: level `L`) held before
    /// the append, as the append is about to empty it (`full` is its
    /// content, which starts with what it held).
    fn keep(&mut self, edge: usize, full: &[Hash]) {
        if let (Some(Some(len)), Some(slot @ None)) =
            (self.lens.get(edge), self.taken.get_mut(edge))
        {
            *slot = Some(full.get(..*len).unwrap_or(full).to_vec());
        }
    }
}

impl Default for TileLog {
    /// The empty tree, as [`TileLog::new`].
    fn default() -> TileLog {
        TileLog::new()
    }
}

impl TileLog {
    /// The empty tree.
    pub fn new() -> TileLog {
        TileLog {
            size: 0,
            leaves: Vec::new(),
            upper: std::array::from_fn(|_| Some(Vec::new())),
        }
    }

    /// The tree of `size` leaves as the store left it, given the digests of
    /// its last `size % 256` events (the partial level-0 tile, which is
    /// not persisted). The partial tiles of the higher levels are read
    /// through the reader when an append first needs them.
    pub fn restore<E>(size: u64, recent_digests: &[Hash]) -> Result<TileLog, TlogError<E>> {
        let partial = size % TILE_WIDTH as u64;
        if recent_digests.len() as u64 != partial {
            return Err(TlogError::Sizes {
                message: format!(
                    "restoring the Merkle tree of {size} events needs the digests of its last \
                     {partial} events (size % 256), but {} were given",
                    recent_digests.len()
                ),
            });
        }
        let upper = std::array::from_fn(|above| {
            let empty = entries_at(size, above + 1).is_multiple_of(TILE_WIDTH as u64);
            empty.then(Vec::new)
        });
        Ok(TileLog {
            size,
            leaves: recent_digests.iter().map(leaf_hash).collect(),
            upper,
        })
    }

    /// The number of leaves (events).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaves of `digests` and returns the tiles the store must
    /// write now, each as `(id, value)`: every full tile that got completed
    /// and every partial tile of level 1 and above that changed (the
    /// partial level-0 tile is not persisted). Tiles only grow, so writing
    /// a value over an older one of the same id is always right.
    ///
    /// It reads, through `reader`, the partial tiles of levels >= 1 that
    /// change and are not yet in memory (after a restore, once per level).
    /// When that read fails the tree is left as it was. When the store then
    /// fails to write the tiles (with the events, in one atomic batch), the
    /// tree is ahead of the store: drop it and [`TileLog::restore`] it, or
    /// keep a clone from before the append.
    pub fn append<R: TileReader>(
        &mut self,
        digests: &[Hash],
        reader: &R,
    ) -> Result<Vec<TileWrite>, TlogError<R::Error>> {
        self.append_undoable(digests, reader)
            .map(|(writes, _)| writes)
    }

    /// [`TileLog::append`], also returning the record that
    /// [`TileLog::undo`] takes to put the log back as it was before, when
    /// the store then fails to write the tiles: cheaper than a clone of the
    /// right edge kept for that case. On `Err` the log is as it was.
    pub fn append_undoable<R: TileReader>(
        &mut self,
        digests: &[Hash],
        reader: &R,
    ) -> Result<(Vec<TileWrite>, AppendUndo), TlogError<R::Error>> {
        let mut undo = AppendUndo::of(self);
        let new_size = u64::try_from(digests.len())
            .ok()
            .and_then(|n| self.size.checked_add(n))
            .ok_or_else(|| TlogError::Sizes {
                message: format!(
                    "appending {} leaves to a tree of {} would pass 2^64 leaves",
                    digests.len(),
                    self.size
                ),
            })?;
        // Every fallible read happens before anything changes.
        for level in 1..MAX_LEVELS {
            if entries_at(new_size, level) == entries_at(self.size, level) {
                break;
            }
            self.load_upper(level, reader)?;
        }
        let mut dirty = [false; MAX_LEVELS];
        let mut writes = Vec::new();
        for digest in digests {
            self.leaves.push(leaf_hash(digest));
            self.size += 1;
            if self.leaves.len() == TILE_WIDTH {
                undo.keep(0, &self.leaves);
                let full = std::mem::take(&mut self.leaves);
                self.carry(full, &mut dirty, &mut writes, &mut undo);
            }
        }
        for (above, edge) in self.upper.iter().enumerate() {
            let level = above + 1;
            if let (true, Some(edge)) = (dirty[level], edge) {
                let index = entries_at(self.size, level) / TILE_WIDTH as u64;
                writes.push((tile_id(level, index), encode_tile(edge)));
            }
        }
        Ok((writes, undo))
    }

    /// Puts the log back as it was before the append that returned `undo`
    /// (the last one made): the writer's rollback when the batch with the
    /// append's tiles fails.
    pub fn undo(&mut self, undo: AppendUndo) {
        let AppendUndo {
            size,
            lens,
            mut taken,
        } = undo;
        self.size = size;
        match taken[0].take() {
            Some(leaves) => self.leaves = leaves,
            None => self.leaves.truncate(lens[0].unwrap_or(0)),
        }
        for (above, edge) in self.upper.iter_mut().enumerate() {
            let level = above + 1;
            match (lens[level], taken[level].take()) {
                // Not in memory before: read again when next needed.
                (None, _) => *edge = None,
                (Some(_), Some(before)) => *edge = Some(before),
                (Some(len), None) => {
                    if let Some(edge) = edge {
                        edge.truncate(len);
                    }
                }
            }
        }
    }

    /// Records the full level-0 tile `full` that the last leaf completed,
    /// and carries its root up: each tile it completes in turn is written
    /// and its root becomes the next entry of the level above.
    fn carry(
        &mut self,
        mut full: Vec<Hash>,
        dirty: &mut [bool; MAX_LEVELS],
        writes: &mut Vec<TileWrite>,
        undo: &mut AppendUndo,
    ) {
        for level in 0..MAX_LEVELS {
            let index = entries_at(self.size, level) / TILE_WIDTH as u64 - 1;
            writes.push((tile_id(level, index), encode_tile(&full)));
            let root = subtree_root(full);
            let Some(slot) = self.upper.get_mut(level) else {
                // A full level-7 tile would be 2^64 leaves.
                return;
            };
            debug_assert!(slot.is_some(), "append loads every level it changes");
            let edge = slot.get_or_insert_with(Vec::new);
            edge.push(root);
            if edge.len() < TILE_WIDTH {
                dirty[level + 1] = true;
                return;
            }
            dirty[level + 1] = false;
            undo.keep(level + 1, edge);
            full = std::mem::take(edge);
        }
    }

    /// Reads the partial tile of `level` (>= 1) if it is not in memory.
    fn load_upper<R: TileReader>(
        &mut self,
        level: usize,
        reader: &R,
    ) -> Result<(), TlogError<R::Error>> {
        let Some(slot) = self.upper.get_mut(level - 1) else {
            return Ok(());
        };
        if slot.is_some() {
            return Ok(());
        }
        let entries = entries_at(self.size, level);
        let id = tile_id(level, entries / TILE_WIDTH as u64);
        let width = (entries % TILE_WIDTH as u64) as usize;
        if width == 0 {
            *slot = Some(Vec::new());
            return Ok(());
        }
        let mut tile = read(reader, id, width, self.size)?;
        tile.truncate(width);
        *slot = Some(tile);
        Ok(())
    }

    /// The root of the current tree.
    pub fn root<R: TileReader>(&self, reader: &R) -> Result<Hash, TlogError<R::Error>> {
        self.root_at(self.size, reader)
    }

    /// The root of the tree of the first `size` leaves (an older
    /// checkpoint's), for `size <= self.size()`.
    pub fn root_at<R: TileReader>(
        &self,
        size: u64,
        reader: &R,
    ) -> Result<Hash, TlogError<R::Error>> {
        self.check_size(size, "a root")?;
        if size == 0 {
            return Ok(empty_root());
        }
        Reads::new(self, reader).span(Span {
            start: 0,
            end: size,
        })
    }

    /// The audit path proving that leaf `index` is in the tree of the first
    /// `tree_size` leaves (RFC 9162 §2.1.3.1), for
    /// `index < tree_size <= self.size()`.
    pub fn inclusion_proof<R: TileReader>(
        &self,
        index: u64,
        tree_size: u64,
        reader: &R,
    ) -> Result<Vec<Hash>, TlogError<R::Error>> {
        self.check_size(tree_size, "an inclusion proof")?;
        if index >= tree_size {
            return Err(TlogError::Sizes {
                message: format!("leaf {index} is past the end of the tree of {tree_size}"),
            });
        }
        Reads::new(self, reader).spans(inclusion_spans(index, tree_size))
    }

    /// The proof that the tree of the first `old_size` leaves is a prefix of
    /// the tree of the first `new_size` (RFC 9162 §2.1.4.1), for
    /// `0 < old_size <= new_size <= self.size()`. RFC 9162 defines no proof
    /// from the empty tree, which every tree extends.
    pub fn consistency_proof<R: TileReader>(
        &self,
        old_size: u64,
        new_size: u64,
        reader: &R,
    ) -> Result<Vec<Hash>, TlogError<R::Error>> {
        self.check_size(new_size, "a consistency proof")?;
        if old_size == 0 || old_size > new_size {
            return Err(TlogError::Sizes {
                message: format!(
                    "there is no consistency proof from {old_size} leaves to {new_size}: the \
                     old size must be between 1 and the new size"
                ),
            });
        }
        Reads::new(self, reader).spans(consistency_spans(old_size, new_size))
    }

    fn check_size<E>(&self, size: u64, what: &str) -> Result<(), TlogError<E>> {
        if size > self.size {
            return Err(TlogError::Sizes {
                message: format!(
                    "{what} for a tree of {size} leaves was asked of a tree of only {}",
                    self.size
                ),
            });
        }
        Ok(())
    }
}

/// Reads stored tile `id`, which must hold at least `needed` entries for
/// the tree of `size` leaves.
fn read<R: TileReader>(
    reader: &R,
    id: TileId,
    needed: usize,
    size: u64,
) -> Result<Vec<Hash>, TlogError<R::Error>> {
    let bytes = reader
        .read_tile(id)
        .map_err(TlogError::Reader)?
        .ok_or(TlogError::MissingTile { id })?;
    let tile = decode_tile(id, &bytes)?;
    if tile.len() < needed {
        return Err(TlogError::BadTile {
            id,
            message: format!(
                "it holds {} hashes, but the tree of {size} leaves needs {needed}",
                tile.len()
            ),
        });
    }
    Ok(tile)
}

/// The hashes of one root or proof: the log's right edge, and the tiles
/// read for it, each read once.
struct Reads<'a, R> {
    log: &'a TileLog,
    reader: &'a R,
    tiles: Vec<(TileId, Vec<Hash>)>,
}

impl<'a, R: TileReader> Reads<'a, R> {
    fn new(log: &'a TileLog, reader: &'a R) -> Reads<'a, R> {
        Reads {
            log,
            reader,
            tiles: Vec::new(),
        }
    }

    /// The hashes of the nodes of a proof.
    fn spans(&mut self, spans: Vec<Span>) -> Result<Vec<Hash>, TlogError<R::Error>> {
        spans.into_iter().map(|span| self.span(span)).collect()
    }

    /// The hash of an RFC 6962 node (or of a whole tree `0 .. n`).
    fn span(&mut self, span: Span) -> Result<Hash, TlogError<R::Error>> {
        let hashes = span
            .subtrees()
            .map(|subtree| self.subtree(subtree))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(fold_right(hashes.into_iter()).unwrap_or_else(empty_root))
    }

    /// The hash of a complete subtree of height `8L + r`: the root of
    /// `2^r` consecutive entries of one level-`L` tile.
    fn subtree(&mut self, subtree: Subtree) -> Result<Hash, TlogError<R::Error>> {
        let level = (subtree.height / TILE_HEIGHT) as usize;
        let rise = subtree.height % TILE_HEIGHT;
        let first = subtree.index << rise;
        let id = tile_id(level, first / TILE_WIDTH as u64);
        let start = (first % TILE_WIDTH as u64) as usize;
        let end = start + (1 << rise);
        let entries = self.entries(id, level, end)?;
        let hashes = entries.get(start..end).ok_or_else(|| TlogError::BadTile {
            id,
            message: format!("it holds {} hashes, fewer than {end}", entries.len()),
        })?;
        Ok(subtree_root(hashes.to_vec()))
    }

    /// At least the first `needed` entries of tile `id` (of `level`): from
    /// memory when it is the right edge, else from the reader.
    fn entries(
        &mut self,
        id: TileId,
        level: usize,
        needed: usize,
    ) -> Result<&[Hash], TlogError<R::Error>> {
        let full = entries_at(self.log.size, level) / TILE_WIDTH as u64 > id.index;
        if !full {
            let edge = match level {
                0 => Some(&self.log.leaves),
                _ => self.log.upper.get(level - 1).and_then(Option::as_ref),
            };
            if let Some(edge) = edge {
                return Ok(edge);
            }
        }
        let at = match self.tiles.iter().position(|(read, _)| *read == id) {
            Some(at) => at,
            None => {
                let tile = read(self.reader, id, needed, self.log.size)?;
                self.tiles.push((id, tile));
                self.tiles.len() - 1
            }
        };
        Ok(self.tiles.get(at).map_or(&[], |(_, tile)| tile))
    }
}
