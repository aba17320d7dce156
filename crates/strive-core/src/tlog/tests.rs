//! The tiled tree against `ct-merkle` (the crate strive used before), with
//! the store's persisting rule enforced by an in-memory tile store.

use std::collections::HashMap;
use std::convert::Infallible;

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::{Digest, Sha256};

use super::*;

type Reference = MemoryBackedTree<sha2_v011::Sha256, Hash>;

/// A tile store that holds exactly what `append` said to write, and checks
/// the persisting rule and that tiles only grow.
#[derive(Default)]
struct Tiles {
    tiles: HashMap<TileId, Vec<u8>>,
}

impl Tiles {
    fn write(&mut self, writes: Vec<TileWrite>) {
        for (id, value) in writes {
            let entries = decode_tile::<Infallible>(id, &value).expect("a tile value");
            assert!(
                id.level > 0 || entries.len() == TILE_WIDTH,
                "{id}: a partial level-0 tile is never written"
            );
            if let Some(old) = self.tiles.get(&id) {
                assert!(
                    value.len() > old.len() && value.starts_with(old),
                    "{id}: a tile only grows"
                );
            }
            self.tiles.insert(id, value);
        }
    }
}

impl TileReader for Tiles {
    type Error = Infallible;
    fn read_tile(&self, id: TileId) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.tiles.get(&id).cloned())
    }
}

/// xorshift64*, so the samples are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn digest(i: u64) -> Hash {
    Sha256::digest(i.to_le_bytes()).into()
}

fn split(bytes: &[u8]) -> Vec<Hash> {
    decode_tile::<Infallible>(TileId { level: 0, index: 0 }, bytes).unwrap_or_default()
}

fn ct_verify_inclusion(root: &Hash, size: u64, index: u64, leaf: &Hash, proof: &[Hash]) -> bool {
    let root = RootHash::<sha2_v011::Sha256>::new((*root).into(), size);
    let proof = InclusionProof::<sha2_v011::Sha256>::from_bytes(proof.concat());
    root.verify_inclusion(leaf, index, &proof).is_ok()
}

fn ct_verify_consistency(old: (u64, &Hash), new: (u64, &Hash), proof: &[Hash]) -> bool {
    let old = RootHash::<sha2_v011::Sha256>::new((*old.1).into(), old.0);
    let new = RootHash::<sha2_v011::Sha256>::new((*new.1).into(), new.0);
    ConsistencyProof::<sha2_v011::Sha256>::try_from_bytes(proof.concat())
        .is_ok_and(|proof| new.verify_consistency(&old, &proof).is_ok())
}

/// A proof made at an earlier size, to be made again from the grown tree.
struct Earlier {
    size: u64,
    from: u64,
    inclusion: bool,
    proof: Vec<Hash>,
}

/// The run of one comparison: the reference tree and the tiled one grown
/// side by side.
struct Run {
    digests: Vec<Hash>,
    roots: Vec<Hash>,
    reference: Reference,
    log: TileLog,
    tiles: Tiles,
    rng: Rng,
    earlier: Vec<Earlier>,
}

impl Run {
    fn new(max: u64, seed: u64) -> Run {
        let digests: Vec<Hash> = (0..max).map(digest).collect();
        let mut roots = vec![empty_root()];
        let mut all = Reference::new();
        for d in &digests {
            all.push(*d);
            roots.push(
                all.root()
                    .as_bytes()
                    .as_slice()
                    .try_into()
                    .expect("32 bytes"),
            );
        }
        Run {
            digests,
            roots,
            reference: Reference::new(),
            log: TileLog::new(),
            tiles: Tiles::default(),
            rng: Rng(seed),
            earlier: Vec::new(),
        }
    }

    fn append(&mut self, count: u64) {
        let from = self.log.size() as usize;
        let batch = &self.digests[from..from + count as usize];
        let writes = self.log.append(batch, &self.tiles).expect("appends");
        self.tiles.write(writes);
        for d in batch {
            self.reference.push(*d);
        }
    }

    fn restore(&mut self) {
        let size = self.log.size();
        let recent = &self.digests[(size - size % 256) as usize..size as usize];
        self.log = TileLog::restore::<Infallible>(size, recent).expect("restores");
    }

    /// Everything at the current size against the reference.
    fn check(&mut self) {
        let size = self.log.size();
        let root = self.log.root(&self.tiles).expect("a root");
        assert_eq!(root, self.roots[size as usize], "root at {size}");
        for _ in 0..4 {
            let older = self.rng.below(size + 1);
            let at = self.log.root_at(older, &self.tiles).expect("an old root");
            assert_eq!(
                at, self.roots[older as usize],
                "root at {older} from {size}"
            );
        }
        if size == 0 {
            return;
        }
        for sample in 0..4 {
            let index = self.rng.below(size);
            let proof = self
                .log
                .inclusion_proof(index, size, &self.tiles)
                .expect("a path");
            let expected = self.reference.prove_inclusion(index as usize);
            assert_eq!(proof, split(expected.as_bytes()), "leaf {index} of {size}");
            let leaf = self.digests[index as usize];
            assert!(verify_inclusion(&root, size, index, &leaf, &proof).is_ok());
            // One of each kind is kept to be made again later.
            let keep = sample == 0;
            if keep {
                self.earlier.push(Earlier {
                    size,
                    from: index,
                    inclusion: true,
                    proof,
                });
            }
            let old = 1 + self.rng.below(size);
            let proof = self
                .log
                .consistency_proof(old, size, &self.tiles)
                .expect("a proof");
            let expected = self.reference.prove_consistency((size - old) as usize);
            assert_eq!(proof, split(expected.as_bytes()), "{old} to {size}");
            let old_root = self.roots[old as usize];
            assert!(verify_consistency(old, &old_root, size, &root, &proof).is_ok());
            if keep {
                self.earlier.push(Earlier {
                    size,
                    from: old,
                    inclusion: false,
                    proof,
                });
            }
        }
    }

    /// Proofs at older sizes: the same as when that size was current, and
    /// accepted by ct-merkle's verifier for every size.
    fn check_older(&mut self) {
        for e in &self.earlier {
            let again = if e.inclusion {
                self.log.inclusion_proof(e.from, e.size, &self.tiles)
            } else {
                self.log.consistency_proof(e.from, e.size, &self.tiles)
            };
            assert_eq!(again.expect("a proof"), e.proof, "{} at {}", e.from, e.size);
        }
        // Every size up to 1100, then a sample and the sizes around tile
        // boundaries.
        let sampled = |size: u64| size <= 1100 || size.is_multiple_of(251) || (size + 1) % 256 < 3;
        for size in (1..=self.log.size()).filter(|s| sampled(*s)) {
            let root = &self.roots[size as usize];
            assert_eq!(self.log.root_at(size, &self.tiles).expect("a root"), *root);
            let index = self.rng.below(size);
            let path = self
                .log
                .inclusion_proof(index, size, &self.tiles)
                .expect("a path");
            let leaf = &self.digests[index as usize];
            assert!(
                ct_verify_inclusion(root, size, index, leaf, &path),
                "{index} in {size}"
            );
            let old = 1 + self.rng.below(size);
            let proof = self
                .log
                .consistency_proof(old, size, &self.tiles)
                .expect("a proof");
            let old_root = &self.roots[old as usize];
            assert!(ct_verify_consistency((old, old_root), (size, root), &proof));
        }
    }
}

/// Grows a tree to `max` leaves in random batches of up to `batch`,
/// checking everything after each batch, and restores it from its tiles
/// and last digests at the first batch past `restore_at`.
fn compare(max: u64, batch: u64, restore_at: u64, seed: u64) {
    let mut run = Run::new(max, seed);
    run.check();
    let mut restored = false;
    while run.log.size() < max {
        let count = (1 + run.rng.below(batch)).min(max - run.log.size());
        run.append(count);
        if !restored && run.log.size() >= restore_at {
            run.restore();
            restored = true;
        }
        run.check();
    }
    run.check_older();
    assert!(restored);
}

#[test]
fn every_size_to_1100_matches_ct_merkle() {
    compare(1100, 40, 600, 7);
    // Batches of one leaf, so that every size is also a current size.
    compare(1100, 1, 300, 11);
}

#[test]
fn large_trees_match_ct_merkle() {
    compare(65_536 + 300, 3000, 40_000, 13);
    compare(70_000, 5000, 65_600, 17);
}

#[test]
fn appends_write_the_tiles_the_persisting_rule_says() {
    let mut run = Run::new(70_000, 1);
    run.append(255);
    assert!(run.tiles.tiles.is_empty(), "no full tile yet");
    run.append(1);
    let keys = |run: &Run| {
        let mut keys: Vec<TileId> = run.tiles.tiles.keys().copied().collect();
        keys.sort();
        keys
    };
    assert_eq!(
        keys(&run),
        [TileId { level: 0, index: 0 }, TileId { level: 1, index: 0 }]
    );
    run.append(65_536 - 256);
    let level_1 = &run.tiles.tiles[&TileId { level: 1, index: 0 }];
    assert_eq!(level_1.len(), TILE_WIDTH * 32, "level 1 is full");
    assert_eq!(run.tiles.tiles[&TileId { level: 2, index: 0 }].len(), 32);
    assert_eq!(run.tiles.tiles.len(), 256 + 2);
}

#[test]
fn the_streaming_root_and_proof_match_the_tiled_tree() {
    let mut run = Run::new(2100, 3);
    run.append(2100);
    let olds = [
        1, 2, 3, 4, 5, 7, 8, 255, 256, 257, 511, 1000, 1024, 2047, 2099, 2100,
    ];
    let mut streams: Vec<StreamingProof> = olds.iter().map(|o| StreamingProof::new(*o)).collect();
    let mut root = StreamingRoot::new();
    for (i, d) in run.digests.iter().enumerate() {
        root.push(d);
        let size = i as u64 + 1;
        assert_eq!(root.size(), size);
        assert_eq!(root.root(), run.roots[i + 1], "streaming root at {size}");
        for stream in &mut streams {
            stream.push(d);
            let old = stream.old_size();
            assert_eq!(stream.root(), run.roots[i + 1]);
            if !size.is_multiple_of(5) && size.abs_diff(old) > 3 {
                continue;
            }
            let expected = run.log.consistency_proof(old, size, &run.tiles).ok();
            assert_eq!(stream.consistency_proof(), expected, "{old} to {size}");
            let old_root = (size >= old).then(|| run.roots[old as usize]);
            assert_eq!(stream.old_root(), old_root);
        }
    }
    assert_eq!(StreamingRoot::new().root(), empty_root());
    assert_eq!(StreamingProof::new(0).consistency_proof(), None);
}

/// The root of `digests` as the streaming root computes it.
fn run_root(digests: &[Hash]) -> Hash {
    let mut root = StreamingRoot::new();
    digests.iter().for_each(|d| root.push(d));
    root.root()
}

fn grown(size: u64) -> (TileLog, Tiles, Vec<Hash>) {
    let digests: Vec<Hash> = (0..size).map(digest).collect();
    let mut tiles = Tiles::default();
    let mut log = TileLog::new();
    tiles.write(log.append(&digests, &tiles).expect("appends"));
    (log, tiles, digests)
}

#[test]
fn a_lost_tile_is_missing_not_a_wrong_root() {
    let (log, mut tiles, digests) = grown(70_000);
    let lost = TileId { level: 0, index: 3 };
    tiles.tiles.remove(&lost);
    let missing = |r: Result<Vec<Hash>, TlogError<Infallible>>| matches!(r, Err(TlogError::MissingTile { id }) if id == lost);
    // The root needs level-1 entries only, not the lost leaves.
    assert_eq!(log.root(&tiles).ok(), Some(run_root(&digests)));
    assert!(missing(log.root_at(3 * 256 + 5, &tiles).map(|h| vec![h])));
    assert!(missing(log.inclusion_proof(3 * 256 + 5, 70_000, &tiles)));
    assert!(missing(log.inclusion_proof(3 * 256 + 5, 5000, &tiles)));
    assert!(missing(log.consistency_proof(3 * 256 + 5, 70_000, &tiles)));
    // Leaves outside the lost tile are still proven.
    assert!(log.inclusion_proof(69_999, 70_000, &tiles).is_ok());
    assert!(log.root_at(3 * 256, &tiles).is_ok());

    // After a restore the partial level-1 tile is read from the store.
    let size = 70_000;
    let recent = &digests[(size - size % 256) as usize..];
    let restored = TileLog::restore::<Infallible>(size, recent).expect("restores");
    let partial = TileId { level: 1, index: 1 };
    let value = tiles
        .tiles
        .remove(&partial)
        .expect("a partial level-1 tile");
    let message = match restored.root(&tiles) {
        Err(error @ TlogError::MissingTile { id }) if id == partial => error.to_string(),
        other => panic!("expected tile 1/1 to be missing, got {other:?}"),
    };
    assert!(message.contains("tile 1/1 is missing"), "{message}");
    // An append that completes a level-0 tile needs it too, and fails
    // without changing the tree.
    let mut appending = restored.clone();
    let more: Vec<Hash> = (size..size + 300).map(digest).collect();
    assert!(matches!(
        appending.append(&more, &tiles),
        Err(TlogError::MissingTile { id }) if id == partial
    ));
    assert_eq!(appending.size(), size);
    tiles.tiles.insert(partial, value);
    assert_eq!(appending.root(&tiles).ok(), log.root(&tiles).ok());
    tiles.write(appending.append(&more, &tiles).expect("appends"));
    assert_eq!(appending.size(), size + 300);
}

#[test]
fn a_bad_tile_is_refused() {
    let (log, mut tiles, _) = grown(1000);
    let id = TileId { level: 0, index: 1 };
    tiles.tiles.insert(id, vec![0; 33]);
    match log.inclusion_proof(300, 1000, &tiles) {
        Err(TlogError::BadTile { id: bad, message }) => {
            assert_eq!(bad, id);
            assert!(message.contains("33 bytes"), "{message}");
        }
        other => panic!("expected a bad tile, got {other:?}"),
    }
    // A full tile that is stored short.
    tiles.tiles.insert(id, vec![0; 32 * 100]);
    let short = log.root_at(400, &tiles);
    assert!(matches!(short, Err(TlogError::BadTile { id: bad, .. }) if bad == id));
    for (len, ok) in [
        (0, false),
        (31, false),
        (32, true),
        (8192, true),
        (8224, false),
    ] {
        let decoded = decode_tile::<Infallible>(id, &vec![1; len]);
        assert_eq!(decoded.is_ok(), ok, "{len} bytes");
    }
    let entries: Vec<Hash> = (0..5).map(digest).collect();
    assert_eq!(
        decode_tile::<Infallible>(id, &encode_tile(&entries)).ok(),
        Some(entries)
    );
}

#[test]
fn sizes_that_make_no_sense_are_refused() {
    let (log, tiles, digests) = grown(300);
    let sizes =
        |r: Result<Vec<Hash>, TlogError<Infallible>>| matches!(r, Err(TlogError::Sizes { .. }));
    assert!(sizes(log.root_at(301, &tiles).map(|h| vec![h])));
    assert!(sizes(log.inclusion_proof(300, 300, &tiles)));
    assert!(sizes(log.inclusion_proof(0, 301, &tiles)));
    assert!(sizes(log.consistency_proof(0, 300, &tiles)));
    assert!(sizes(log.consistency_proof(200, 100, &tiles)));
    assert!(sizes(log.consistency_proof(1, 301, &tiles)));
    assert!(
        log.consistency_proof(300, 300, &tiles)
            .is_ok_and(|p| p.is_empty())
    );
    let restored = TileLog::restore::<Infallible>(300, &digests[..43]);
    assert!(matches!(restored, Err(TlogError::Sizes { message }) if message.contains("44")));
}

#[test]
fn verification_refuses_altered_proofs() {
    let (log, tiles, digests) = grown(1001);
    let root = log.root_at(1000, &tiles).expect("a root");
    for (index, size) in [(0, 1000), (517, 1000), (999, 1000), (3, 700), (0, 1)] {
        let root = log.root_at(size, &tiles).expect("a root");
        let proof = log.inclusion_proof(index, size, &tiles).expect("a path");
        let leaf = &digests[index as usize];
        assert!(verify_inclusion(&root, size, index, leaf, &proof).is_ok());
        for at in 0..proof.len() {
            let mut bad = proof.clone();
            bad[at][at % 32] ^= 1 << (at % 8);
            assert!(verify_inclusion(&root, size, index, leaf, &bad).is_err());
        }
        let other = (index + 1) % size;
        assert!(other == index || verify_inclusion(&root, size, other, leaf, &proof).is_err());
        // Another size: its root, or a tree whose shape the path does not fit.
        let bigger = log.root_at(size + 1, &tiles).expect("a root");
        assert!(verify_inclusion(&bigger, size + 1, index, leaf, &proof).is_err());
        assert!(verify_inclusion(&root, 2 * size + 1, index, leaf, &proof).is_err());
        assert!(verify_inclusion(&root, size, size, leaf, &proof).is_err());
        let mut longer = proof.clone();
        longer.push(root);
        assert!(verify_inclusion(&root, size, index, leaf, &longer).is_err());
    }
    for (old, new) in [
        (1, 1000),
        (255, 1000),
        (256, 1000),
        (600, 1000),
        (999, 1000),
        (3, 7),
    ] {
        let old_root = log.root_at(old, &tiles).expect("a root");
        let new_root = log.root_at(new, &tiles).expect("a root");
        let proof = log.consistency_proof(old, new, &tiles).expect("a proof");
        assert!(verify_consistency(old, &old_root, new, &new_root, &proof).is_ok());
        for at in 0..proof.len() {
            let mut bad = proof.clone();
            bad[at][31 - at % 32] ^= 0x80;
            assert!(verify_consistency(old, &old_root, new, &new_root, &bad).is_err());
        }
        assert!(verify_consistency(old + 1, &old_root, new, &new_root, &proof).is_err());
        let smaller = log.root_at(new - 1, &tiles).expect("a root");
        assert!(verify_consistency(old, &old_root, new - 1, &smaller, &proof).is_err());
        assert!(verify_consistency(old, &old_root, 2 * new + 1, &new_root, &proof).is_err());
        assert!(verify_consistency(old, &new_root, new, &old_root, &proof).is_err());
        assert!(verify_consistency(old, &old_root, new, &new_root, &proof[1..]).is_err());
    }
    assert!(verify_consistency(1000, &root, 1000, &root, &[]).is_ok());
    assert!(verify_consistency(1000, &root, 1000, &root, &[root]).is_err());
    assert!(verify_consistency(0, &empty_root(), 1000, &root, &[]).is_ok());
    assert!(verify_consistency(0, &root, 1000, &root, &[]).is_err());
}

/// A store whose every read fails.
struct Broken;

impl TileReader for Broken {
    type Error = std::io::Error;
    fn read_tile(&self, _: TileId) -> Result<Option<Vec<u8>>, std::io::Error> {
        Err(std::io::Error::other("the disk is gone"))
    }
}

#[test]
fn a_log_grown_in_memory_appends_and_roots_without_reading() {
    let digests: Vec<Hash> = (0..70_000).map(digest).collect();
    let mut log = TileLog::default();
    for batch in digests.chunks(999) {
        assert!(log.append(batch, &Broken).is_ok());
    }
    // The right edge of every level is in memory: no read for the root.
    assert_eq!(log.root(&Broken).ok(), Some(run_root(&digests)));
    let error = log
        .inclusion_proof(5, 70_000, &Broken)
        .expect_err("a full tile must be read");
    assert!(matches!(error, TlogError::Reader(_)));
    assert!(error.to_string().contains("the disk is gone"), "{error}");
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("the disk is gone"));
}

/// The writer's rollback: an append whose tiles never reach the store is
/// undone, the log is exactly what it was (the pair of the writer's
/// `debug_assert`), and appending again gives the tree of every digest.
/// Cases: (leaves before, whether the log was restored from the store so
/// its upper edges are not in memory, leaves in the undone append).
#[test]
fn an_undone_append_leaves_the_log_as_it_was() {
    let cases: &[(u64, bool, u64)] = &[
        (0, false, 1),
        (10, false, 5),
        // Completes a level-0 tile, then two in one append.
        (250, false, 10),
        (100, false, 600),
        // Completes a level-1 tile (65,536 leaves) and carries to level 2.
        (65_530, false, 10),
        (65_530, true, 10),
        // Restored: the partial level-1 tile is read by the append.
        (70_000, true, 300),
        (70_000, true, 3),
    ];
    for &(size, restored, count) in cases {
        let (mut log, mut tiles, mut digests) = grown(size);
        if restored {
            let recent = &digests[(size - size % 256) as usize..];
            log = TileLog::restore::<Infallible>(size, recent).expect("restores");
        }
        let before = log.clone();
        let more: Vec<Hash> = (size..size + count).map(digest).collect();
        let (writes, undo) = log.append_undoable(&more, &tiles).expect("appends");
        assert!(
            !writes.is_empty() || count < 256,
            "{size}+{count}: tiles to write"
        );
        assert_eq!(log.size(), size + count);
        // The batch with `writes` failed: they are not in `tiles`.
        log.undo(undo);
        assert_eq!(log, before, "{size} (restored {restored}) + {count}");
        tiles.write(log.append(&more, &tiles).expect("appends again"));
        digests.extend(&more);
        assert_eq!(
            log.root(&tiles).ok(),
            Some(run_root(&digests)),
            "{size} + {count}: the root after the undo and the append"
        );
    }
}

#[test]
fn clone_from_copies_the_right_edge() {
    let (grown_log, tiles, _) = grown(70_123);
    let mut published = TileLog::new();
    published.clone_from(&grown_log);
    assert_eq!(published, grown_log);
    assert_eq!(published.root(&tiles).ok(), grown_log.root(&tiles).ok());
    let (small, _, _) = grown(3);
    published.clone_from(&small);
    assert_eq!(published, small);
}
