//! Which nodes make up an RFC 9162 proof, and the checks of a proof
//! against roots (RFC 9162 §2.1.3.2 and §2.1.4.2), written from the RFC.

use std::fmt;

use super::{Hash, Span, empty_root, leaf_hash, node_hash};

/// The two children of an RFC 6962 node of two or more leaves: the left
/// one holds the largest power of two of leaves smaller than the node.
fn children(node: Span) -> (Span, Span) {
    let k = 1 << (63 - (node.end - node.start - 1).leading_zeros());
    let middle = node.start + k;
    (
        Span {
            start: node.start,
            end: middle,
        },
        Span {
            start: middle,
            end: node.end,
        },
    )
}

/// The nodes of the audit path of leaf `index` in the tree of `size`
/// leaves (RFC 9162 §2.1.3.1), in proof order: the leaf's sibling first.
/// Needs `index < size`.
pub(super) fn inclusion_spans(index: u64, size: u64) -> Vec<Span> {
    let mut node = Span {
        start: 0,
        end: size,
    };
    let mut spans = Vec::new();
    while node.end - node.start > 1 {
        let (left, right) = children(node);
        let (child, sibling) = if index < left.end {
            (left, right)
        } else {
            (right, left)
        };
        spans.push(sibling);
        node = child;
    }
    // The recursion puts the deepest sibling first.
    spans.reverse();
    spans
}

/// The nodes of the consistency proof from the tree of `old` leaves to the
/// tree of `new` (RFC 9162 §2.1.4.1), in proof order. Needs
/// `0 < old <= new`.
pub(super) fn consistency_spans(old: u64, new: u64) -> Vec<Span> {
    let mut node = Span { start: 0, end: new };
    // Whether the node is still on the left edge, where the old tree is a
    // whole node the verifier already knows.
    let mut left_edge = true;
    let mut spans = Vec::new();
    while old < node.end {
        let (left, right) = children(node);
        let (child, sibling) = if old <= left.end {
            (left, right)
        } else {
            left_edge = false;
            (right, left)
        };
        spans.push(sibling);
        node = child;
    }
    if !left_edge {
        spans.push(node);
    }
    spans.reverse();
    spans
}

/// Why a Merkle proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The proof does not lead to the expected root.
    Mismatch {
        /// What was being proved, for the message.
        what: String,
    },
    /// The sizes make no proof possible (an index past the end, an older
    /// tree larger than the newer one, an empty tree).
    Sizes {
        /// What is wrong with them.
        message: String,
    },
}

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProofError::Mismatch { what } => write!(f, "the proof of {what} does not verify"),
            ProofError::Sizes { message } => write!(f, "no proof is possible: {message}"),
        }
    }
}

impl std::error::Error for ProofError {}

/// Checks that `leaf` (an event digest) is at `index` in the tree of
/// `size` leaves whose root is `root`, by the audit path `proof`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    root: &Hash,
    size: u64,
    index: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::Sizes {
            message: format!("leaf {index} is past the end of a tree of {size}"),
        });
    }
    let mismatch = || ProofError::Mismatch {
        what: format!("leaf {index} in the tree of {size}"),
    };
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf_hash(leaf);
    for p in proof {
        if s == 0 {
            return Err(mismatch());
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // Up past the levels where this node has no right sibling.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s == 0 && r == *root {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`, by the
/// consistency proof `proof` (RFC 9162 §2.1.4.2). Every tree extends the
/// empty one, which needs no proof but must have the empty root; a tree
/// extends itself with an empty proof.
pub fn verify_consistency(
    old_size: u64,
    old_root: &Hash,
    new_size: u64,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::Sizes {
            message: format!(
                "the old tree has {old_size} leaves, more than the new tree's {new_size}"
            ),
        });
    }
    if old_size == 0 {
        // Every log extends the empty one, whose root is SHA-256("").
        return if *old_root == empty_root() {
            Ok(())
        } else {
            Err(ProofError::Mismatch {
                what: "an empty tree (its root must be SHA-256 of nothing)".to_owned(),
            })
        };
    }
    let mismatch = || ProofError::Mismatch {
        what: format!("consistency from {old_size} to {new_size}"),
    };
    if old_size == new_size {
        return if proof.is_empty() && old_root == new_root {
            Ok(())
        } else {
            Err(mismatch())
        };
    }
    if consistency_roots(old_size, old_root, new_size, proof) == Some((*old_root, *new_root)) {
        Ok(())
    } else {
        Err(mismatch())
    }
}

/// The old and new roots a consistency proof leads to (for
/// `0 < old < new`), or `None` when it has the wrong length.
fn consistency_roots(old: u64, old_root: &Hash, new: u64, proof: &[Hash]) -> Option<(Hash, Hash)> {
    // When the old tree is a complete subtree its root is the proof's
    // implicit first node.
    let mut path = proof.iter();
    let first = if old.is_power_of_two() {
        *old_root
    } else {
        *path.next()?
    };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (first, first);
    for c in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some((fr, sr))
}
