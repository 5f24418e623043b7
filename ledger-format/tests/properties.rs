//! Property tests against independent oracles: a naive recursive RFC 6962 implementation written
//! straight from the definitions (MTH, PATH, PROOF/SUBPROOF) and rs_merkle's root with RFC 6962
//! domain separation.

use ledger_format::proof::{
    prove_consistency, prove_inclusion, prove_inclusions, ConsistencyProof, InclusionProof,
};
use ledger_format::tree::{CompactRange, MemoryTree};
use ledger_format::{leaf_hash, node_hash, Hash, LeafIndex, TreeSize};
use proptest::prelude::*;

// ---- the naive oracle: RFC 6962 §2.1, recursion for recursion ----

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => Hash::EMPTY,
        1 => d[0],
        n => {
            let k = k_of(n);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return vec![];
    }
    let k = k_of(d.len());
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { vec![] } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        let mut p = subproof(m, &d[..k], b);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = subproof(m - k, &d[k..], false);
        p.push(mth(&d[..k]));
        p
    }
}

// ---- rs_merkle with RFC 6962 node hashing ----

#[derive(Clone)]
struct Rfc6962;

impl rs_merkle::Hasher for Rfc6962 {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        ledger_format::hash::sha256(data)
    }
    fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
        match right {
            Some(r) => node_hash(&Hash(*left), &Hash(*r)).0,
            None => *left, // a lone right node is promoted, never duplicated
        }
    }
}

fn rs_merkle_root(leaves: &[Hash]) -> Hash {
    let raw: Vec<[u8; 32]> = leaves.iter().map(|h| h.0).collect();
    rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&raw)
        .root()
        .map(Hash)
        .unwrap_or(Hash::EMPTY)
}

fn leaves(n: usize, salt: u64) -> Vec<Hash> {
    (0..n as u64)
        .map(|i| leaf_hash(&[salt.to_be_bytes(), i.to_be_bytes()].concat()))
        .collect()
}

fn flip(h: &Hash, bit: usize) -> Hash {
    let mut out = *h;
    out.0[bit / 8] ^= 1 << (bit % 8);
    out
}

#[test]
fn roots_match_oracles_for_every_size_to_1024() {
    let all = leaves(1024, 7);
    let mut compact = CompactRange::new();
    assert_eq!(compact.root(), mth(&[]));
    for n in 1..=1024 {
        compact.append(all[n - 1]);
        let want = mth(&all[..n]);
        assert_eq!(compact.root(), want, "size {n}");
        assert_eq!(rs_merkle_root(&all[..n]), want, "rs_merkle size {n}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn roots_match_rs_merkle_for_random_sizes(n in 1usize..=1_000_000, salt in any::<u64>()) {
        let l = leaves(n, salt);
        let mut c = CompactRange::new();
        l.iter().for_each(|h| c.append(*h));
        prop_assert_eq!(c.root(), rs_merkle_root(&l));
    }

    #[test]
    fn proofs_from_a_large_tree_match_the_oracle(n in 1usize..=5000, m_frac in 0.0f64..1.0, salt in any::<u64>()) {
        let l = leaves(n, salt);
        let mut t = MemoryTree::new();
        l.iter().for_each(|h| t.push(*h));
        let m = ((n as f64) * m_frac) as usize;
        let p = prove_inclusion(LeafIndex(m as u64), TreeSize(n as u64), &t).unwrap();
        prop_assert_eq!(&p.path, &path(m, &l));
        p.verify(&l[m], &t.root()).unwrap();
        let old = m.max(1);
        let c = prove_consistency(TreeSize(old as u64), TreeSize(n as u64), &t).unwrap();
        prop_assert_eq!(&c.path, &if old == n { vec![] } else { subproof(old, &l, true) });
        c.verify(&mth(&l[..old]), &t.root()).unwrap();
    }

    #[test]
    fn batch_proofs_equal_single_proofs(n in 1usize..=3000, start_frac in 0.0f64..1.0, len in 1usize..300, salt in any::<u64>(), scattered in any::<bool>()) {
        let l = leaves(n, salt);
        let mut t = MemoryTree::new();
        l.iter().for_each(|h| t.push(*h));
        let start = ((n as f64) * start_frac) as usize;
        // A group's consecutive entries, or indices spread over the whole tree.
        let indices: Vec<LeafIndex> = if scattered {
            (0..len).map(|k| LeafIndex(((start + k * 7919) % n) as u64)).collect()
        } else {
            (start..(start + len).min(n)).map(|i| LeafIndex(i as u64)).collect()
        };
        let batch = prove_inclusions(&indices, TreeSize(n as u64), &t).unwrap();
        prop_assert_eq!(batch.len(), indices.len());
        for (i, p) in indices.iter().zip(&batch) {
            prop_assert_eq!(p, &prove_inclusion(*i, TreeSize(n as u64), &t).unwrap());
            prop_assert_eq!(&p.path, &path(i.0 as usize, &l));
        }
        prop_assert!(prove_inclusions(&[LeafIndex(n as u64)], TreeSize(n as u64), &t).is_err());
    }
}

#[test]
fn every_inclusion_proof_to_64_verifies_and_every_bit_flip_fails() {
    let all = leaves(64, 1);
    let mut t = MemoryTree::new();
    all.iter().for_each(|h| t.push(*h));
    for n in 1..=64usize {
        let root = mth(&all[..n]);
        for m in 0..n {
            let p = prove_inclusion(LeafIndex(m as u64), TreeSize(n as u64), &t).unwrap();
            assert_eq!(p.path, path(m, &all[..n]), "PATH({m}, {n})");
            p.verify(&all[m], &root).unwrap();
            for i in 0..p.path.len() {
                for bit in 0..256 {
                    let mut bad = p.clone();
                    bad.path[i] = flip(&bad.path[i], bit);
                    assert!(bad.verify(&all[m], &root).is_err());
                }
            }
            for bit in 0..256 {
                assert!(p.verify(&all[m], &flip(&root, bit)).is_err());
                assert!(p.verify(&flip(&all[m], bit), &root).is_err());
            }
            for bit in 0..64 {
                let bad = InclusionProof {
                    index: LeafIndex(m as u64 ^ (1 << bit)),
                    ..p.clone()
                };
                assert!(
                    bad.verify(&all[m], &root).is_err(),
                    "index bit {bit} of {m} in {n}"
                );
            }
        }
    }
}

#[test]
fn every_consistency_pair_to_64_verifies_and_every_bit_flip_fails() {
    let all = leaves(64, 2);
    let mut t = MemoryTree::new();
    all.iter().for_each(|h| t.push(*h));
    for n in 1..=64usize {
        let new_root = mth(&all[..n]);
        for m in 1..=n {
            let old_root = mth(&all[..m]);
            let p = prove_consistency(TreeSize(m as u64), TreeSize(n as u64), &t).unwrap();
            let want = if m == n {
                vec![]
            } else {
                subproof(m, &all[..n], true)
            };
            assert_eq!(p.path, want, "PROOF({m}, {n})");
            p.verify(&old_root, &new_root).unwrap();
            for i in 0..p.path.len() {
                for bit in 0..256 {
                    let mut bad = p.clone();
                    bad.path[i] = flip(&bad.path[i], bit);
                    assert!(bad.verify(&old_root, &new_root).is_err());
                }
            }
            for bit in 0..256 {
                assert!(p.verify(&flip(&old_root, bit), &new_root).is_err());
                assert!(p.verify(&old_root, &flip(&new_root, bit)).is_err());
            }
            for bit in 0..64 {
                let bad = ConsistencyProof {
                    old: TreeSize(m as u64 ^ (1 << bit)),
                    ..p.clone()
                };
                assert!(
                    bad.verify(&old_root, &new_root).is_err(),
                    "old bit {bit}: {m} -> {n}"
                );
            }
        }
    }
}

#[test]
fn consistency_from_zero_is_an_error_even_to_zero() {
    let t = MemoryTree::new();
    assert!(prove_consistency(TreeSize(0), TreeSize(0), &t).is_err());
    let p = ConsistencyProof {
        old: TreeSize(0),
        new: TreeSize(0),
        path: vec![],
    };
    assert!(p.verify(&Hash::EMPTY, &Hash::EMPTY).is_err());
}

// ---- the tlog-tiles objects a mirror writes between two sizes ----

/// Every object that exists at `size`, from the definitions: each bundle and each tile of the
/// inventory, by path.
fn objects_at(size: u64) -> std::collections::BTreeSet<String> {
    use ledger_format::tile::{inventory, BundleId};
    let mut out: std::collections::BTreeSet<String> =
        inventory(TreeSize(size)).iter().map(|t| t.path()).collect();
    for n in 0..size.div_ceil(256) {
        out.insert(BundleId::for_size(n, TreeSize(size)).unwrap().path());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `new_objects(old, new)` is exactly the objects of `new` that `old` does not have, each
    /// once, and a mirror that followed a chain of sizes holds every object of the last one.
    #[test]
    fn new_objects_are_the_difference_of_the_inventories(
        a in 0u64..200_000, b in 0u64..200_000, c in 0u64..200_000
    ) {
        let mut sizes = [a, b, c];
        sizes.sort_unstable();
        let [old, mid, new] = sizes;
        let listed: Vec<String> = ledger_format::tile::new_objects(TreeSize(old), TreeSize(new))
            .iter()
            .map(|o| o.path())
            .collect();
        let set: std::collections::BTreeSet<String> = listed.iter().cloned().collect();
        prop_assert_eq!(set.len(), listed.len(), "an object listed twice");
        let want: std::collections::BTreeSet<String> =
            objects_at(new).difference(&objects_at(old)).cloned().collect();
        prop_assert_eq!(&set, &want);
        let mut chain: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
        for (x, y) in [(0, old), (old, mid), (mid, new)] {
            chain.extend(
                ledger_format::tile::new_objects(TreeSize(x), TreeSize(y)).iter().map(|o| o.path()),
            );
        }
        prop_assert!(objects_at(new).is_subset(&chain));
        // Bundles come before tiles.
        let first_tile = listed.iter().position(|p| !p.starts_with("tile/entries/"));
        if let Some(i) = first_tile {
            prop_assert!(listed[i..].iter().all(|p| !p.starts_with("tile/entries/")));
        }
    }
}
