//! The tree heads of a partitioned log: one Merkle log per partition, and
//! what a checkpoint of all of them commits to (docs/audit.md,
//! "Partitions"). Pure: no I/O, so the embedded store, a future PostgreSQL
//! backend and any verifier compute the same combined root.
//!
//! A store of one partition is one log, and its checkpoint is that log's
//! size and root, exactly as before partitions existed. A store of P > 1
//! partitions commits to the list of every partition's (size, root), in
//! partition order:
//!
//! ```text
//! combined = SHA-256("strive/partitions/v1" || 0x00 || P as u32
//!                    || for each partition p = 0..P:
//!                         p as u32 || size as u64 || root (32 bytes))
//! ```
//!
//! with every number big-endian. The total size is the sum of the sizes.
//! A checkpoint that grows from an older one is consistent with it when
//! each partition's log is consistent with its older self (RFC 9162
//! consistency per partition); no proof spans partitions.

use sha2::{Digest, Sha256};

use super::Hash;

/// The domain tag of the combined root.
pub const PARTITIONS_TAG: &[u8] = b"strive/partitions/v1\0";

/// One partition's Merkle log head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionHead {
    /// The partition, from 0.
    pub partition: u32,
    /// The number of events in its log.
    pub size: u64,
    /// The RFC 9162 root of its log.
    pub root: Hash,
}

/// Why a list of partition heads is not one a checkpoint can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadsError {
    /// No heads at all.
    Empty,
    /// The heads are not partitions 0, 1, 2, ... in order.
    OutOfOrder {
        /// Where in the list.
        index: usize,
        /// The partition found there.
        found: u32,
    },
}

impl std::fmt::Display for HeadsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadsError::Empty => write!(f, "a log has at least one partition"),
            HeadsError::OutOfOrder { index, found } => write!(
                f,
                "partition heads must list partitions 0, 1, 2, ... in order, but entry {index} \
                 is partition {found}"
            ),
        }
    }
}

impl std::error::Error for HeadsError {}

/// Checks that `heads` are partitions `0..P` in order.
pub fn check_heads(heads: &[PartitionHead]) -> Result<(), HeadsError> {
    if heads.is_empty() {
        return Err(HeadsError::Empty);
    }
    for (index, head) in heads.iter().enumerate() {
        if head.partition as usize != index {
            return Err(HeadsError::OutOfOrder {
                index,
                found: head.partition,
            });
        }
    }
    Ok(())
}

/// The size and root a checkpoint of the partitions `heads` states: the
/// one partition's own head when there is one, else the total size and
/// the combined root described in the module documentation.
pub fn combined_head(heads: &[PartitionHead]) -> Result<(u64, Hash), HeadsError> {
    check_heads(heads)?;
    if let [only] = heads {
        return Ok((only.size, only.root));
    }
    let mut hasher = Sha256::new();
    hasher.update(PARTITIONS_TAG);
    hasher.update((heads.len() as u32).to_be_bytes());
    let mut total: u64 = 0;
    for head in heads {
        hasher.update(head.partition.to_be_bytes());
        hasher.update(head.size.to_be_bytes());
        hasher.update(head.root);
        total = total.saturating_add(head.size);
    }
    Ok((total, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(partition: u32, size: u64, byte: u8) -> PartitionHead {
        PartitionHead {
            partition,
            size,
            root: [byte; 32],
        }
    }

    #[test]
    fn one_partition_is_its_own_head() {
        assert_eq!(combined_head(&[head(0, 7, 9)]), Ok((7, [9; 32])));
    }

    #[test]
    fn the_combined_root_commits_to_every_partition_and_their_order() {
        let heads = [head(0, 3, 1), head(1, 5, 2)];
        let (size, root) = combined_head(&heads).expect("heads");
        assert_eq!(size, 8);
        // A pinned value: a verifier in another language must get it too.
        let mut hasher = Sha256::new();
        hasher.update(b"strive/partitions/v1\0");
        hasher.update(2u32.to_be_bytes());
        hasher.update(0u32.to_be_bytes());
        hasher.update(3u64.to_be_bytes());
        hasher.update([1u8; 32]);
        hasher.update(1u32.to_be_bytes());
        hasher.update(5u64.to_be_bytes());
        hasher.update([2u8; 32]);
        assert_eq!(root, <Hash>::from(hasher.finalize()));
        let changed = [head(0, 3, 1), head(1, 5, 3)];
        assert_ne!(combined_head(&changed).expect("heads").1, root);
        let moved = [head(0, 4, 1), head(1, 4, 2)];
        assert_ne!(combined_head(&moved).expect("heads").1, root);
        assert_eq!(
            combined_head(&[head(1, 5, 2), head(0, 3, 1)]),
            Err(HeadsError::OutOfOrder { index: 0, found: 1 })
        );
        assert_eq!(combined_head(&[]), Err(HeadsError::Empty));
    }
}
