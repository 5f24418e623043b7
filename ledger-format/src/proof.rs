//! Inclusion and consistency proofs: generation over a [`HashReader`] (RFC 6962 §2.1.1–2.1.2,
//! `PATH` and `PROOF`/`SUBPROOF`) and verification with the RFC 9162 §2.1.3.2 and §2.1.4.2
//! algorithms.
//!
//! Edge cases follow transparency-dev/merkle: a consistency proof from size 0 is an error (even
//! 0 -> 0); for `0 < m == n` the proof is empty and the roots must be equal; an inclusion proof
//! whose length differs from the one the tree shape dictates is rejected before any hashing.
//!
//! ```text
//! seven leaves a..g (RFC 9162 §2.1.5):  PATH(0)  = [b, h, l]      PROOF(3, 7) = [c, d, g, l]
//!                                       PATH(6)  = [i, k]         PROOF(4, 7) = [l]
//! ```

use crate::hash::{node_hash, Hash};
use crate::tree::{
    fold_right, range_nodes, split_point, HashReader, LeafIndex, ReadError, TreeSize,
};

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("consistency from {old} to {new} is undefined: {why}")]
    BadSizes {
        old: u64,
        new: u64,
        why: &'static str,
    },
    #[error("reading stored hashes: {0}")]
    Read(#[source] ReadError),
}

/// Why a proof did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("old size {old} and new size {new} admit no consistency proof: {why}")]
    BadSizes {
        old: u64,
        new: u64,
        why: &'static str,
    },
    #[error("proof has {got} hashes, a tree of this shape needs {want}")]
    WrongLength { got: usize, want: usize },
    #[error("the proof leads to root {computed}, not {expected}")]
    RootMismatch { computed: Hash, expected: Hash },
    #[error("the proof leads to old root {computed}, not {expected}")]
    OldRootMismatch { computed: Hash, expected: Hash },
}

/// An inclusion proof (audit path) for the leaf at `index` in the tree of `size` leaves, ordered
/// from the leaf's sibling up to the root's child (RFC 6962 §2.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: LeafIndex,
    pub size: TreeSize,
    pub path: Vec<Hash>,
}

/// A consistency proof between the tree of `old` leaves and the tree of `new` leaves
/// (RFC 6962 §2.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub old: TreeSize,
    pub new: TreeSize,
    pub path: Vec<Hash>,
}

/// Returns the leaf ranges `[lo, hi)` whose tree hashes form `PATH(m, D[lo:hi])`, leaf first.
fn inclusion_ranges(m: u64, lo: u64, hi: u64, out: &mut Vec<(u64, u64)>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split_point(hi - lo);
    if m - lo < k {
        inclusion_ranges(m, lo, lo + k, out);
        out.push((lo + k, hi));
    } else {
        inclusion_ranges(m, lo + k, hi, out);
        out.push((lo, lo + k));
    }
}

/// Returns the leaf ranges whose tree hashes form `SUBPROOF(m, D[lo:hi], b)`.
fn consistency_ranges(m: u64, lo: u64, hi: u64, complete: bool, out: &mut Vec<(u64, u64)>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push((lo, hi));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        consistency_ranges(m, lo, lo + k, complete, out);
        out.push((lo + k, hi));
    } else {
        consistency_ranges(m - k, lo + k, hi, false, out);
        out.push((lo, lo + k));
    }
}

/// Returns the tree hash of every range, reading all needed subtree hashes in one call.
fn resolve(ranges: &[(u64, u64)], reader: &dyn HashReader) -> Result<Vec<Hash>, ProofError> {
    let per_range: Vec<_> = ranges.iter().map(|&(lo, hi)| range_nodes(lo, hi)).collect();
    let nodes: Vec<_> = per_range.iter().flatten().copied().collect();
    let hashes = reader.read_hashes(&nodes).map_err(ProofError::Read)?;
    if hashes.len() != nodes.len() {
        return Err(ProofError::Read(
            "hash reader returned the wrong number of hashes".into(),
        ));
    }
    let mut rest = &hashes[..];
    Ok(per_range
        .iter()
        .map(|r| {
            let (mine, tail) = rest.split_at(r.len());
            rest = tail;
            fold_right(mine)
        })
        .collect())
}

/// Returns the inclusion proof of leaf `index` in the tree of `size` leaves, reading O(log n)
/// stored hashes.
pub fn prove_inclusion(
    index: LeafIndex,
    size: TreeSize,
    reader: &dyn HashReader,
) -> Result<InclusionProof, ProofError> {
    if index.0 >= size.0 {
        return Err(ProofError::IndexOutOfRange {
            index: index.0,
            size: size.0,
        });
    }
    let mut ranges = Vec::new();
    inclusion_ranges(index.0, 0, size.0, &mut ranges);
    Ok(InclusionProof {
        index,
        size,
        path: resolve(&ranges, reader)?,
    })
}

/// Returns the inclusion proofs of `indices` in the tree of `size` leaves, equal to
/// [`prove_inclusion`] for each, resolving every subtree range once for the whole batch: the
/// proofs of a group's consecutive entries share nearly all of their upper ranges (measured in
/// the server: one reader call per range instead of ~12 per proof).
pub fn prove_inclusions(
    indices: &[LeafIndex],
    size: TreeSize,
    reader: &dyn HashReader,
) -> Result<Vec<InclusionProof>, ProofError> {
    let mut known: std::collections::HashMap<(u64, u64), Hash> = std::collections::HashMap::new();
    let mut ranges = Vec::new();
    let mut out = Vec::with_capacity(indices.len());
    for &index in indices {
        if index.0 >= size.0 {
            return Err(ProofError::IndexOutOfRange {
                index: index.0,
                size: size.0,
            });
        }
        ranges.clear();
        inclusion_ranges(index.0, 0, size.0, &mut ranges);
        let missing: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|r| !known.contains_key(r))
            .copied()
            .collect();
        if !missing.is_empty() {
            let hashes = resolve(&missing, reader)?;
            known.extend(missing.into_iter().zip(hashes));
        }
        out.push(InclusionProof {
            index,
            size,
            path: ranges.iter().map(|r| known[r]).collect(),
        });
    }
    Ok(out)
}

/// Returns the consistency proof from `old` to `new` leaves (empty when they are equal), reading
/// O(log n) stored hashes. `old` must be in `1..=new`.
pub fn prove_consistency(
    old: TreeSize,
    new: TreeSize,
    reader: &dyn HashReader,
) -> Result<ConsistencyProof, ProofError> {
    if old.0 == 0 {
        return Err(ProofError::BadSizes {
            old: old.0,
            new: new.0,
            why: "a proof from the empty tree is meaningless",
        });
    }
    if old > new {
        return Err(ProofError::BadSizes {
            old: old.0,
            new: new.0,
            why: "the old tree is larger than the new one",
        });
    }
    let mut ranges = Vec::new();
    if old < new {
        consistency_ranges(old.0, 0, new.0, true, &mut ranges);
    }
    Ok(ConsistencyProof {
        old,
        new,
        path: resolve(&ranges, reader)?,
    })
}

/// Returns `(inner, border)`: how many proof hashes sit below the point where the leaf's path
/// joins the right edge, and how many left siblings lie along that edge (transparency-dev
/// `decompInclProof`).
fn decompose_inclusion(index: u64, size: u64) -> (usize, usize) {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = (index >> inner).count_ones() as usize;
    (inner, border)
}

impl InclusionProof {
    /// Returns the root this proof leads to from `leaf`, using RFC 9162 §2.1.3.2, or an error if
    /// the proof cannot belong to a tree of this size.
    pub fn root_from(&self, leaf: &Hash) -> Result<Hash, VerifyError> {
        let (index, size) = (self.index.0, self.size.0);
        if index >= size {
            return Err(VerifyError::IndexOutOfRange { index, size });
        }
        let (inner, border) = decompose_inclusion(index, size);
        if self.path.len() != inner + border {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                want: inner + border,
            });
        }
        let (mut fn_, mut sn) = (index, size - 1);
        let mut r = *leaf;
        for p in &self.path {
            // The length check above makes this unreachable, but the RFC's guard stays: it is
            // what makes the loop safe on its own.
            if sn == 0 {
                return Err(VerifyError::WrongLength {
                    got: self.path.len(),
                    want: inner + border,
                });
            }
            if fn_ & 1 == 1 || fn_ == sn {
                r = node_hash(p, &r);
                if fn_ & 1 == 0 {
                    // On the right edge with no right sibling: skip the levels the node is
                    // promoted through.
                    while fn_ & 1 == 0 && fn_ != 0 {
                        fn_ >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                r = node_hash(&r, p);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn != 0 {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                want: inner + border,
            });
        }
        Ok(r)
    }

    /// Verifies that `leaf` is at `index` in the tree of `size` leaves whose root is `root`.
    pub fn verify(&self, leaf: &Hash, root: &Hash) -> Result<(), VerifyError> {
        let computed = self.root_from(leaf)?;
        if computed != *root {
            return Err(VerifyError::RootMismatch {
                computed,
                expected: *root,
            });
        }
        Ok(())
    }
}

impl ConsistencyProof {
    /// Verifies that the tree of `old` leaves with `old_root` is a prefix of the tree of `new`
    /// leaves with `new_root` (RFC 9162 §2.1.4.2). Sizes with `old == 0` or `old > new` never
    /// verify.
    pub fn verify(&self, old_root: &Hash, new_root: &Hash) -> Result<(), VerifyError> {
        let (first, second) = (self.old.0, self.new.0);
        if first == 0 {
            return Err(VerifyError::BadSizes {
                old: first,
                new: second,
                why: "a proof from the empty tree is meaningless",
            });
        }
        if first > second {
            return Err(VerifyError::BadSizes {
                old: first,
                new: second,
                why: "the old tree is larger than the new one",
            });
        }
        if first == second {
            if !self.path.is_empty() {
                return Err(VerifyError::WrongLength {
                    got: self.path.len(),
                    want: 0,
                });
            }
            if old_root != new_root {
                return Err(VerifyError::RootMismatch {
                    computed: *old_root,
                    expected: *new_root,
                });
            }
            return Ok(());
        }
        if self.path.is_empty() {
            return Err(VerifyError::WrongLength { got: 0, want: 1 });
        }
        // Step 2: a complete old tree is not in the proof; the verifier knows its root.
        let mut path: Vec<Hash> = Vec::with_capacity(self.path.len() + 1);
        if first.is_power_of_two() {
            path.push(*old_root);
        }
        path.extend_from_slice(&self.path);

        let (mut fn_, mut sn) = (first - 1, second - 1);
        while fn_ & 1 == 1 {
            fn_ >>= 1;
            sn >>= 1;
        }
        let (mut fr, mut sr) = (path[0], path[0]);
        for c in &path[1..] {
            if sn == 0 {
                return Err(VerifyError::WrongLength {
                    got: self.path.len(),
                    want: self.path.len() - 1,
                });
            }
            if fn_ & 1 == 1 || fn_ == sn {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        if sn != 0 {
            return Err(VerifyError::WrongLength {
                got: self.path.len(),
                want: self.path.len() + 1,
            });
        }
        if fr != *old_root {
            return Err(VerifyError::OldRootMismatch {
                computed: fr,
                expected: *old_root,
            });
        }
        if sr != *new_root {
            return Err(VerifyError::RootMismatch {
                computed: sr,
                expected: *new_root,
            });
        }
        Ok(())
    }
}
