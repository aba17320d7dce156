//! The global Merkle log: RFC 6962 (§2.1) over the event hashes in global
//! order. The tree's mathematics (tiles, proofs and their checks) live in
//! `strive_core`'s `tlog` module, which the store also uses; this module
//! re-exports the checks and keeps [`MerkleLog`], the in-memory tree that
//! bundles and exports prove their own events with.
//!
//! A **leaf** is the 32-byte event digest (`SHA-256("strive/event/v1" 0x00
//! || stored bytes)`, the raw bytes, not hex), at index `gseq - 1`. Leaf and
//! node hashes are RFC 6962's: `SHA-256(0x00 || leaf)` and
//! `SHA-256(0x01 || left || right)`; the root of the empty log is
//! `SHA-256("")`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;

pub use strive_core::{Hash, ProofError, empty_root, verify_consistency, verify_inclusion};
use strive_core::{StreamingRoot, TileId, TileLog, TileReader};

/// The Merkle tree over every event hash of the log, in global order.
///
/// It keeps the event digests and the tiles of the tree in memory (about
/// 64 bytes per event), which is what producing proofs for arbitrary
/// positions needs; a proof reads a few tiles and hashes up to 127 times
/// per 8 levels of the tree.
#[derive(Default)]
pub struct MerkleLog {
    digests: Vec<Hash>,
    log: TileLog,
    tiles: MemoryTiles,
    root: StreamingRoot,
}

/// The tiles of a [`MerkleLog`]: exactly what its appends said to write.
#[derive(Default)]
struct MemoryTiles(HashMap<TileId, Vec<u8>>);

impl TileReader for MemoryTiles {
    type Error = Infallible;

    fn read_tile(&self, id: TileId) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.0.get(&id).cloned())
    }
}

impl fmt::Debug for MerkleLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerkleLog")
            .field("size", &self.size())
            .field("root", &hex::encode(self.root()))
            .finish()
    }
}

impl MerkleLog {
    /// An empty log.
    pub fn new() -> MerkleLog {
        MerkleLog {
            log: TileLog::new(),
            ..MerkleLog::default()
        }
    }

    /// Appends the digest of the next event.
    pub fn push(&mut self, event_digest: Hash) {
        self.digests.push(event_digest);
        self.root.push(&event_digest);
        // A log grown from empty holds every partial tile in memory, so an
        // append reads nothing and cannot fail short of 2^64 leaves; were
        // it to, the proofs below would be refused rather than wrong.
        if let Ok(writes) = self.log.append(&[event_digest], &self.tiles) {
            self.tiles.0.extend(writes);
        }
    }

    /// The number of leaves (events).
    pub fn size(&self) -> u64 {
        self.digests.len() as u64
    }

    /// The root hash of the whole log.
    pub fn root(&self) -> Hash {
        self.root.root()
    }

    /// The leaf at `index` (the digest of the event at `gseq = index + 1`).
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.digests.get(i))
            .copied()
    }

    /// The audit path proving that leaf `index` is in the current tree, or
    /// `None` when there is no such leaf.
    pub fn prove_inclusion(&self, index: u64) -> Option<Vec<Hash>> {
        let size = self.tiled_size()?;
        self.log.inclusion_proof(index, size, &self.tiles).ok()
    }

    /// The proof that the tree of the first `old_size` leaves is a prefix of
    /// the current tree, or `None` when `old_size` is 0 or past the end
    /// (RFC 6962 defines no proof from the empty tree, and needs none: every
    /// log extends it).
    pub fn prove_consistency(&self, old_size: u64) -> Option<Vec<Hash>> {
        let size = self.tiled_size()?;
        self.log.consistency_proof(old_size, size, &self.tiles).ok()
    }

    /// The size, when the tiles hold every leaf.
    fn tiled_size(&self) -> Option<u64> {
        (self.log.size() == self.size()).then_some(self.size())
    }
}

#[cfg(test)]
mod tests {
    use ct_merkle::mem_backed_tree::MemoryBackedTree;
    use ct_merkle::{InclusionProof, RootHash};
    use sha2_v011::{Digest, Sha256};

    use super::*;

    fn to_hash(bytes: &[u8]) -> Hash {
        bytes.try_into().expect("32 bytes")
    }

    /// The leaves of the RFC 6962 / certificate-transparency reference
    /// tests (transparency-dev/merkle `testonly/reference_test.go`).
    const LEAVES: &[&str] = &[
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// The roots of the first 1..=8 of those leaves.
    const ROOTS: &[&str] = &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn vector_tree(size: usize) -> MemoryBackedTree<Sha256, Vec<u8>> {
        let mut tree = MemoryBackedTree::new();
        for leaf in LEAVES.iter().take(size) {
            tree.push(hex::decode(leaf).expect("hex"));
        }
        tree
    }

    fn hashes(text: &[&str]) -> Vec<Hash> {
        text.iter()
            .map(|h| to_hash(&hex::decode(h).expect("hex")))
            .collect()
    }

    #[test]
    fn the_crate_matches_the_rfc_6962_reference_roots() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (size, root) in ROOTS.iter().enumerate() {
            let tree = vector_tree(size + 1);
            assert_eq!(
                hex::encode(tree.root().as_bytes()),
                *root,
                "size {}",
                size + 1
            );
        }
    }

    #[test]
    fn reference_inclusion_and_consistency_proofs_verify() {
        let root8 = to_hash(&hex::decode(ROOTS[7]).expect("hex"));
        // Leaf 5 of 8, path from transparency-dev/merkle.
        let path = hashes(&[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]);
        // Our leaves are 32-byte digests, so check the reference path with
        // the crate directly over the reference's byte-string leaves.
        let root = RootHash::<Sha256>::new(root8.into(), 8);
        let proof = InclusionProof::<Sha256>::from_bytes(path.concat());
        let leaf5 = hex::decode(LEAVES[5]).expect("hex");
        assert!(root.verify_inclusion(&leaf5, 5, &proof).is_ok());
        assert!(root.verify_inclusion(&leaf5, 4, &proof).is_err());
        // Consistency 6 -> 8.
        let root6 = to_hash(&hex::decode(ROOTS[5]).expect("hex"));
        let proof = hashes(&[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]);
        assert!(verify_consistency(6, &root6, 8, &root8, &proof).is_ok());
        let root5 = to_hash(&hex::decode(ROOTS[4]).expect("hex"));
        assert!(verify_consistency(5, &root5, 8, &root8, &proof).is_err());
        assert_eq!(
            vector_tree(8).prove_consistency(2).as_bytes(),
            proof.concat()
        );
    }

    /// RFC 6962's MTH written out from its definition, as a reference for
    /// our 32-byte leaves.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves {
            [] => Sha256::digest(b"").into(),
            [leaf] => {
                let mut h = Sha256::new();
                h.update([0u8]);
                h.update(leaf);
                h.finalize().into()
            }
            _ => {
                let mut k = 1;
                while k * 2 < leaves.len() {
                    k *= 2;
                }
                let mut h = Sha256::new();
                h.update([1u8]);
                h.update(reference_root(&leaves[..k]));
                h.update(reference_root(&leaves[k..]));
                h.finalize().into()
            }
        }
    }

    #[test]
    fn our_log_is_rfc_6962_over_event_digests_with_working_proofs() {
        let leaves: Vec<Hash> = (0u8..23).map(|i| Sha256::digest([i]).into()).collect();
        let mut log = MerkleLog::new();
        let mut roots = vec![log.root()];
        for leaf in &leaves {
            log.push(*leaf);
            roots.push(log.root());
        }
        for size in 0..=leaves.len() {
            assert_eq!(roots[size], reference_root(&leaves[..size]), "size {size}");
        }
        let size = log.size();
        for index in 0..size {
            let path = log.prove_inclusion(index).expect("a path");
            let leaf = leaves[index as usize];
            assert!(verify_inclusion(&log.root(), size, index, &leaf, &path).is_ok());
            let other = leaves[(index as usize + 1) % leaves.len()];
            assert!(verify_inclusion(&log.root(), size, index, &other, &path).is_err());
        }
        assert!(log.prove_inclusion(size).is_none());
        for old in 1..=size {
            let proof = log.prove_consistency(old).expect("a proof");
            let old_root = roots[old as usize];
            assert!(verify_consistency(old, &old_root, size, &log.root(), &proof).is_ok());
            // A different old tree (one leaf altered) is not a prefix.
            let mut altered = leaves[..old as usize].to_vec();
            altered[0][0] ^= 1;
            let bad = reference_root(&altered);
            assert!(verify_consistency(old, &bad, size, &log.root(), &proof).is_err());
        }
        assert!(verify_consistency(0, &empty_root(), size, &log.root(), &[]).is_ok());
        assert!(verify_consistency(size + 1, &log.root(), size, &log.root(), &[]).is_err());
    }
}
