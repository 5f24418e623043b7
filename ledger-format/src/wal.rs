//! The write-ahead record (SPEC.md §10): what the sequencer produces to the write-ahead topic
//! for each group commit in `durability = "replicated"`, before it signs or answers anyone, and
//! what a restore or a restarted server applies from the topic.
//!
//! ```text
//! magic      4 bytes  "GLW1"
//! first      u64 BE   index of the record's first entry
//! size       u64 BE   tree size after the record's entries (first + count)
//! root       32 bytes root of the tree of `size` leaves
//! group_end  u64 BE   tree size after the whole group (= size for a group's last record)
//! count      u32 BE   entries in this record
//! count × (u32 BE length, leaf envelope bytes)
//! ```
//!
//! A group larger than one record ([`split`], below the broker's record limit) becomes several
//! records; each names the root after its own entries, so every record can be checked alone
//! against the tree it continues ([`continue_tree`]), and a prefix of a group's records is a
//! valid, smaller tree (never acknowledged: the receipt waits for the group's last record).

use crate::hash::{leaf_hash, Hash};
use crate::tree::CompactRange;

/// The record's first four bytes.
pub const MAGIC: &[u8; 4] = b"GLW1";
/// Bytes of the fixed header before the entries.
pub const HEADER_LEN: usize = 4 + 8 + 8 + 32 + 8 + 4;

/// One write-ahead record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    pub first: u64,
    pub root: Hash,
    pub group_end: u64,
    pub leaves: Vec<Vec<u8>>,
}

/// Why bytes are not a write-ahead record, or a record does not continue a tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    #[error("not a write-ahead record: {0}")]
    Malformed(String),
    #[error("the record starts at entry {first}, but the tree has only {size} entries: records are missing")]
    Gap { first: u64, size: u64 },
    #[error("the record names root {named} for size {size}, but its entries give {computed}: it does not continue this tree")]
    Fork {
        size: u64,
        named: Hash,
        computed: Hash,
    },
}

impl WalRecord {
    /// Returns the tree size after the record's entries.
    pub fn size(&self) -> u64 {
        self.first + self.leaves.len() as u64
    }

    /// Returns the record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self.leaves.iter().map(|l| 4 + l.len()).sum();
        let mut out = Vec::with_capacity(HEADER_LEN + body);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.size().to_be_bytes());
        out.extend_from_slice(&self.root.0);
        out.extend_from_slice(&self.group_end.to_be_bytes());
        out.extend_from_slice(&(self.leaves.len() as u32).to_be_bytes());
        for l in &self.leaves {
            out.extend_from_slice(&(l.len() as u32).to_be_bytes());
            out.extend_from_slice(l);
        }
        out
    }

    /// Parses a record, refusing anything but exactly one well-formed record.
    pub fn decode(bytes: &[u8]) -> Result<WalRecord, WalError> {
        let bad = |m: &str| WalError::Malformed(m.to_owned());
        if bytes.len() < HEADER_LEN || &bytes[..4] != MAGIC {
            return Err(bad("no GLW1 header"));
        }
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let first = u64_at(4);
        let size = u64_at(12);
        let root = Hash::from_slice(&bytes[20..52]).map_err(|_| bad("root"))?;
        let group_end = u64_at(52);
        let count = u32::from_be_bytes(bytes[60..64].try_into().expect("4 bytes")) as u64;
        if first.checked_add(count) != Some(size) || group_end < size {
            return Err(bad("sizes do not add up"));
        }
        let mut leaves = Vec::with_capacity(count.min(1 << 16) as usize);
        let mut rest = &bytes[HEADER_LEN..];
        for _ in 0..count {
            if rest.len() < 4 {
                return Err(bad("truncated entry length"));
            }
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let entry = rest.get(4..4 + len).ok_or_else(|| bad("truncated entry"))?;
            leaves.push(entry.to_vec());
            rest = &rest[4 + len..];
        }
        if !rest.is_empty() {
            return Err(bad("bytes after the last entry"));
        }
        Ok(WalRecord {
            first,
            root,
            group_end,
            leaves,
        })
    }
}

/// Splits `leaves` into consecutive ranges of at most `max_bytes` of encoded record each (at
/// least one entry per range). Returns the ranges as `(start, end)` offsets into `leaves`.
pub fn split(leaves: &[Vec<u8>], max_bytes: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, HEADER_LEN);
    for (i, l) in leaves.iter().enumerate() {
        let add = 4 + l.len();
        if i > start && bytes + add > max_bytes {
            out.push((start, i));
            start = i;
            bytes = HEADER_LEN;
        }
        bytes += add;
    }
    if start < leaves.len() {
        out.push((start, leaves.len()));
    }
    out
}

/// What a record means for a tree that `compact` describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Continuation {
    /// The tree already holds every entry of the record; the caller checks that its root at
    /// the record's size is the one the record names (a record produced twice, or one the
    /// store applied before).
    Overlap { size: u64, root: Hash },
    /// The record continues the tree: the entries from `from` on are new, and the tree
    /// `compact` describes after them has the root the record names.
    Append { from: u64, compact: CompactRange },
}

/// Checks that `record` continues the tree `compact` describes: no gap before it, and the
/// tree's leaves followed by the record's new ones hash to the root it names.
pub fn continue_tree(compact: &CompactRange, record: &WalRecord) -> Result<Continuation, WalError> {
    let have = compact.size().0;
    if record.size() <= have {
        return Ok(Continuation::Overlap {
            size: record.size(),
            root: record.root,
        });
    }
    if record.first > have {
        return Err(WalError::Gap {
            first: record.first,
            size: have,
        });
    }
    let mut next = compact.clone();
    for leaf in &record.leaves[(have - record.first) as usize..] {
        next.append(leaf_hash(leaf));
    }
    if next.root() != record.root {
        return Err(WalError::Fork {
            size: record.size(),
            named: record.root,
            computed: next.root(),
        });
    }
    Ok(Continuation::Append {
        from: have,
        compact: next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
    }

    fn tree(l: &[Vec<u8>]) -> CompactRange {
        let mut c = CompactRange::new();
        for x in l {
            c.append(leaf_hash(x));
        }
        c
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let l = leaves(5);
        let r = WalRecord {
            first: 3,
            root: tree(&leaves(8)).root(),
            group_end: 10,
            leaves: l,
        };
        let bytes = r.encode();
        assert_eq!(WalRecord::decode(&bytes).unwrap(), r);
        for cut in [0, 3, HEADER_LEN - 1, bytes.len() - 1] {
            assert!(WalRecord::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(WalRecord::decode(&extra).is_err());
        let mut lying = bytes;
        lying[19] ^= 1; // size no longer first + count
        assert!(WalRecord::decode(&lying).is_err());
    }

    #[test]
    fn a_split_keeps_every_entry_once_under_the_limit() {
        let l: Vec<Vec<u8>> = (0..100).map(|i| vec![7u8; 10 + i * 37 % 500]).collect();
        let parts = split(&l, 4096);
        assert_eq!(parts.first().unwrap().0, 0);
        assert_eq!(parts.last().unwrap().1, 100);
        for w in parts.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        for &(a, b) in &parts {
            let bytes: usize = HEADER_LEN + l[a..b].iter().map(|x| 4 + x.len()).sum::<usize>();
            assert!(bytes <= 4096 || b - a == 1);
        }
        // One entry larger than the limit still travels, alone.
        assert_eq!(split(&[vec![0; 9000]], 4096), vec![(0, 1)]);
        assert!(split(&[], 4096).is_empty());
    }

    #[test]
    fn continuation_appends_overlaps_and_refuses_gaps_and_forks() {
        let all = leaves(20);
        let base = tree(&all[..10]);
        let rec = |first: usize, end: usize| WalRecord {
            first: first as u64,
            root: tree(&all[..end]).root(),
            group_end: end as u64,
            leaves: all[first..end].to_vec(),
        };
        match continue_tree(&base, &rec(10, 15)).unwrap() {
            Continuation::Append { from, compact } => {
                assert_eq!(from, 10);
                assert_eq!(compact.root(), tree(&all[..15]).root());
            }
            c => panic!("{c:?}"),
        }
        // Starting inside the tree: only the new entries are appended.
        assert!(matches!(
            continue_tree(&base, &rec(7, 12)).unwrap(),
            Continuation::Append { from: 10, .. }
        ));
        assert_eq!(
            continue_tree(&base, &rec(2, 9)).unwrap(),
            Continuation::Overlap {
                size: 9,
                root: tree(&all[..9]).root()
            }
        );
        assert!(matches!(
            continue_tree(&base, &rec(11, 15)),
            Err(WalError::Gap {
                first: 11,
                size: 10
            })
        ));
        let mut forged = rec(10, 15);
        forged.leaves[2] = b"other".to_vec();
        assert!(matches!(
            continue_tree(&base, &forged),
            Err(WalError::Fork { size: 15, .. })
        ));
    }
}
