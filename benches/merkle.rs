//! Criterion benches of the format maths, each beside a baseline measured in the same run:
//! leaf hashing (vs plain SHA-256 of the same bytes), the root of 1,000,000 leaves (vs
//! rs_merkle's root of the same leaf hashes with RFC 6962 node hashing), inclusion and
//! consistency proof generation over an in-memory tree, and verification.
//!
//! `cargo bench --bench merkle`

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger_format::proof::{prove_consistency, prove_inclusion};
use ledger_format::tree::{CompactRange, MemoryTree};
use ledger_format::{leaf_hash, node_hash, Hash, LeafIndex, TreeSize};

const N: u64 = 1_000_000;

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
            None => *left,
        }
    }
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn hashing(c: &mut Criterion) {
    let entry = vec![0x5au8; 1024];
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(entry.len() as u64));
    g.bench_function("leaf_hash_1KiB", |b| {
        b.iter(|| leaf_hash(black_box(&entry)))
    });
    g.bench_function("baseline_sha256_1KiB", |b| {
        b.iter(|| ledger_format::hash::sha256(black_box(&entry)))
    });
    g.finish();
}

fn roots(c: &mut Criterion) {
    let l = leaves(N);
    let raw: Vec<[u8; 32]> = l.iter().map(|h| h.0).collect();
    let mut g = c.benchmark_group("root_1M");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N));
    g.bench_function("compact_range", |b| {
        b.iter(|| {
            let mut c = CompactRange::new();
            for h in &l {
                c.append(*h);
            }
            c.root()
        })
    });
    g.bench_function("baseline_rs_merkle", |b| {
        b.iter(|| rs_merkle::MerkleTree::<Rfc6962>::from_leaves(black_box(&raw)).root())
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let mut tree = MemoryTree::new();
    for h in leaves(N) {
        tree.push(h);
    }
    let size = TreeSize(N);
    let root = tree.root();
    let mut g = c.benchmark_group("proof_1M");
    let mut i = 0u64;
    g.bench_function("prove_inclusion", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            prove_inclusion(LeafIndex(i), size, &tree).unwrap()
        })
    });
    g.bench_function("verify_inclusion", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % N;
                (
                    tree.leaf(LeafIndex(i)).unwrap(),
                    prove_inclusion(LeafIndex(i), size, &tree).unwrap(),
                )
            },
            |(leaf, p)| p.verify(&leaf, &root).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("prove_consistency", |b| {
        b.iter(|| {
            i = (i + 7919) % (N - 1) + 1;
            prove_consistency(TreeSize(i), size, &tree).unwrap()
        })
    });
    g.bench_function("verify_consistency", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % (N - 1) + 1;
                let old = TreeSize(i);
                (
                    tree.root_at(old).unwrap(),
                    prove_consistency(old, size, &tree).unwrap(),
                )
            },
            |(old_root, p)| p.verify(&old_root, &root).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, hashing, roots, proofs);
criterion_main!(benches);
