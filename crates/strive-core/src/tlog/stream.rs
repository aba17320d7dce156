//! The root of a tree recomputed from its leaves in one pass, in O(log N)
//! memory (a compact range), for verifiers that trust no stored tiles.

use super::proof::consistency_spans;
use super::{Hash, Span, Subtree, empty_root, fold_right, leaf_hash, node_hash};

/// The root of a growing tree in O(log N) memory: the hashes of the
/// complete subtrees the leaves so far make up, largest first (a compact
/// range), one per set bit of the size.
#[derive(Debug, Clone, Default)]
pub struct StreamingRoot {
    size: u64,
    stack: Vec<Hash>,
}

impl StreamingRoot {
    /// The empty tree.
    pub fn new() -> StreamingRoot {
        StreamingRoot::default()
    }

    /// Appends the next leaf, an event digest. A tree of `u64::MAX` leaves
    /// takes no more.
    pub fn push(&mut self, digest: &Hash) {
        self.push_seen(digest, |_, _| {});
    }

    /// Appends a leaf and shows `seen` every complete subtree it completes,
    /// from the leaf itself up.
    fn push_seen(&mut self, digest: &Hash, mut seen: impl FnMut(Subtree, &Hash)) {
        let Some(end) = self.size.checked_add(1) else {
            return;
        };
        let mut hash = leaf_hash(digest);
        seen(
            Subtree {
                height: 0,
                index: self.size,
            },
            &hash,
        );
        // Each trailing one of the old size is a subtree the new leaf's
        // subtree now pairs with.
        for height in 1..=self.size.trailing_ones() {
            let Some(left) = self.stack.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            seen(
                Subtree {
                    height,
                    index: (end >> height) - 1,
                },
                &hash,
            );
        }
        self.stack.push(hash);
        self.size = end;
    }

    /// The number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the tree of the leaves pushed.
    pub fn root(&self) -> Hash {
        fold_right(self.stack.iter().copied()).unwrap_or_else(empty_root)
    }

    /// The complete subtrees of the compact range, with their hashes.
    fn subtrees(&self) -> impl Iterator<Item = (Span, Hash)> + '_ {
        let whole = Span {
            start: 0,
            end: self.size,
        };
        whole
            .subtrees()
            .zip(self.stack.iter().copied())
            .map(|(s, h)| {
                let start = s.index << s.height;
                let span = Span {
                    start,
                    end: start + (1 << s.height),
                };
                (span, h)
            })
    }

    /// The hash of the leaves from `start` to the end, when `start` is
    /// where one of the compact range's subtrees begins.
    fn root_from(&self, start: u64) -> Option<Hash> {
        let mut subtrees = self.subtrees().skip_while(|(span, _)| span.start < start);
        let (first, hash) = subtrees.next()?;
        if first.start != start {
            return None;
        }
        let hashes: Vec<Hash> = std::iter::once(hash)
            .chain(subtrees.map(|(_, h)| h))
            .collect();
        fold_right(hashes.into_iter())
    }
}

/// A [`StreamingRoot`] that also collects, for an old tree size fixed in
/// advance, the consistency proof from it to the tree pushed so far, still
/// in O(log N) memory: the verifier checks a store against a checkpoint in
/// one pass over its events.
///
/// It keeps the old tree's compact range and, past it, the hashes of the
/// subtrees that can be right-hand siblings in a proof from the old size
/// (they depend on the old size only, one per zero bit of `old - 1`), which
/// it captures as the leaves go by.
#[derive(Debug, Clone, Default)]
pub struct StreamingProof {
    stream: StreamingRoot,
    old_size: u64,
    /// The old tree's compact range, once the stream has reached it.
    old: Vec<(Span, Hash)>,
    old_root: Option<Hash>,
    /// The right-hand siblings completed so far, left to right.
    siblings: Vec<(Span, Hash)>,
    /// The next right-hand sibling to capture.
    next: Option<Subtree>,
}

impl StreamingProof {
    /// An empty tree that will prove consistency from its first `old_size`
    /// leaves (0 collects nothing: no proof exists from the empty tree).
    pub fn new(old_size: u64) -> StreamingProof {
        let next = old_size.checked_sub(1).map(|last| {
            let height = last.trailing_ones();
            Subtree {
                height,
                index: old_size >> height,
            }
        });
        StreamingProof {
            old_size,
            next,
            ..StreamingProof::default()
        }
    }

    /// Appends the next leaf, an event digest.
    pub fn push(&mut self, digest: &Hash) {
        let (old_size, siblings, next) = (self.old_size, &mut self.siblings, &mut self.next);
        self.stream.push_seen(digest, |subtree, hash| {
            if *next == Some(subtree) {
                siblings.push((span_of(subtree), *hash));
                *next = following(old_size, subtree);
            }
        });
        if self.stream.size() == self.old_size {
            self.old = self.stream.subtrees().collect();
            self.old_root = Some(self.stream.root());
        }
    }

    /// The number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.stream.size()
    }

    /// The root of the tree of the leaves pushed.
    pub fn root(&self) -> Hash {
        self.stream.root()
    }

    /// The old size given to [`StreamingProof::new`].
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The root of the old tree, once that many leaves have been pushed
    /// (`None` before, and for an old size of 0).
    pub fn old_root(&self) -> Option<Hash> {
        self.old_root
    }

    /// The RFC 9162 consistency proof from the old tree to the tree pushed
    /// so far, the same as [`crate::TileLog::consistency_proof`] gives; `None`
    /// when the old size is 0 or more leaves than were pushed.
    pub fn consistency_proof(&self) -> Option<Vec<Hash>> {
        let (old, new) = (self.old_size, self.stream.size());
        if old == 0 || old > new {
            return None;
        }
        let find = |list: &[(Span, Hash)], span: Span| {
            list.iter().find(|(s, _)| *s == span).map(|(_, h)| *h)
        };
        consistency_spans(old, new)
            .into_iter()
            .map(|span| {
                if span.end <= old {
                    find(&self.old, span)
                } else {
                    find(&self.siblings, span).or_else(|| {
                        // A sibling cut by the right edge of the tree.
                        (span.end == new)
                            .then(|| self.stream.root_from(span.start))
                            .flatten()
                    })
                }
            })
            .collect()
    }
}

fn span_of(subtree: Subtree) -> Span {
    let start = subtree.index << subtree.height;
    Span {
        start,
        end: start.saturating_add(1 << subtree.height),
    }
}

/// The right-hand sibling after `sibling` in proofs from `old_size`: it
/// starts where `sibling` ends and has the height of the next zero bit of
/// `old_size - 1` above `sibling`'s height.
fn following(old_size: u64, sibling: Subtree) -> Option<Subtree> {
    let above = sibling.height + 1;
    let rest = (old_size - 1).checked_shr(above).unwrap_or(0);
    let height = above + rest.trailing_ones();
    if height >= 64 {
        return None;
    }
    let start = (sibling.index + 1).checked_mul(1 << sibling.height)?;
    Some(Subtree {
        height,
        index: start >> height,
    })
}
