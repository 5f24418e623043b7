//! The leaf-hash and (submitter, entry_id) indexes, maintained off the sequencer's critical path.
//!
//! Index records are derived data: they can always be rebuilt from the entries. Writing them in
//! the group commit would cost the single writer one random B-tree insert per entry (measured:
//! it halved batch throughput), so the sequencer hands each durable group to this index, which
//!
//! 1. keeps the group's records in memory (`pending`) so lookups see them at once;
//! 2. once [`RUN_RECORDS`] records are pending, writes them from its own thread as one run per
//!    bucket ([`IndexRun`]), together with the `indexed_up_to` mark, and only then drops them
//!    from `pending` (a lookup checks `pending` first, then the store, so a record is always
//!    visible in one of the two);
//! 3. after a crash, replays the entries from `indexed_up_to` to the stored size on open
//!    (at most about [`RUN_RECORDS`] entries, well under a second).
//!
//! Stored records are 64-bit fingerprints; a lookup confirms each candidate against the entry
//! itself, so a fingerprint collision can never return a wrong index.
//!
//! `pending` is bounded: when the writer falls behind by [`MAX_PENDING`] entries, `add` blocks
//! (backpressure on the sequencer) instead of letting memory grow.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ledger_format::leaf::Leaf;
use ledger_format::Hash;

use crate::store::{
    bucket_of, entry_id_fingerprint, leaf_fingerprint, IndexRun, IndexSpace, NewEntry, Posting,
    Store, StoreError,
};

/// Most index records held in memory before the sequencer waits for the writer.
pub const MAX_PENDING: usize = 65_536;
/// Records the writer waits for before it writes a run per bucket (one flush then writes
/// about 16 records per bucket: 2,048 keys per 32,768 entries).
pub const RUN_RECORDS: usize = 32_768;

#[derive(Default)]
struct Pending {
    by_hash: HashMap<Hash, u64>,
    by_id: HashMap<(String, String), u64>,
    queue: VecDeque<NewEntry>,
    /// Records taken by the writer and not yet in the store (still answered from here).
    in_flight: usize,
    in_flight_records: Arc<Vec<NewEntry>>,
    stop: bool,
    failed: Option<StoreError>,
}

/// The indexes of one log.
pub struct Index {
    store: Arc<dyn Store>,
    pending: Mutex<Pending>,
    changed: Condvar,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Index {
    /// Opens the index, replays entries the store has but the index lacks, and starts the
    /// writer thread.
    pub fn open(store: Arc<dyn Store>, size: u64) -> Result<Arc<Index>, StoreError> {
        let index = Arc::new(Index {
            store: store.clone(),
            pending: Mutex::new(Pending::default()),
            changed: Condvar::new(),
            writer: Mutex::new(None),
        });
        let from = store.indexed_up_to()?.min(size);
        if size > from {
            tracing::info!("index: replaying entries {from}..{size}");
        }
        // Full runs are written straight away so that a long replay never holds more than
        // RUN_RECORDS records in memory; the rest becomes `pending`.
        let mut records: Vec<NewEntry> = Vec::new();
        let mut start = from;
        while start < size {
            let end = (start + 4096).min(size);
            records.extend(records_of(store.as_ref(), start, end)?);
            if records.len() >= RUN_RECORDS {
                store.index(&runs(&records), &postings(&records), end)?;
                records.clear();
            }
            start = end;
        }
        index.insert_pending(records);
        let writer = index.clone();
        *index.writer.lock().expect("lock poisoned") = Some(
            std::thread::Builder::new()
                .name("indexer".into())
                .spawn(move || writer.write_loop())
                .expect("spawning the indexer thread"),
        );
        Ok(index)
    }

    fn insert_pending(&self, records: Vec<NewEntry>) {
        let mut p = self.pending.lock().expect("lock poisoned");
        for r in records {
            p.by_hash.insert(r.leaf_hash, r.index);
            if !r.entry_id.is_empty() {
                p.by_id
                    .insert((r.submitter.clone(), r.entry_id.clone()), r.index);
            }
            p.queue.push_back(r);
        }
        self.changed.notify_all();
    }

    /// Adds the records of a durable group. Blocks while the writer is too far behind.
    pub fn add(&self, records: Vec<NewEntry>) -> Result<(), StoreError> {
        {
            let mut p = self.pending.lock().expect("lock poisoned");
            while p.queue.len() + p.in_flight >= MAX_PENDING && p.failed.is_none() && !p.stop {
                p = self.changed.wait(p).expect("lock poisoned");
            }
            if let Some(e) = &p.failed {
                // The writer's error, kind and all (a full disk stays a full disk).
                return Err(match e {
                    StoreError::Io { kind, message } => StoreError::Io {
                        kind: *kind,
                        message: format!("index writer failed: {message}"),
                    },
                    other => other.clone(),
                });
            }
        }
        self.insert_pending(records);
        Ok(())
    }

    /// Returns the index of the entry with this leaf hash.
    pub fn leaf(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        if let Some(i) = self
            .pending
            .lock()
            .expect("lock poisoned")
            .by_hash
            .get(hash)
        {
            return Ok(Some(*i));
        }
        for i in self
            .store
            .index_candidates(IndexSpace::LeafHash, leaf_fingerprint(hash))?
        {
            let leaf = self.store.entries(i, i + 1)?.remove(0);
            if ledger_format::leaf_hash(&leaf) == *hash {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Returns the index of the entry `submitter` sent with `entry_id`.
    pub fn entry_id(&self, submitter: &str, entry_id: &str) -> Result<Option<u64>, StoreError> {
        let key = (submitter.to_owned(), entry_id.to_owned());
        if let Some(i) = self.pending.lock().expect("lock poisoned").by_id.get(&key) {
            return Ok(Some(*i));
        }
        let fp = entry_id_fingerprint(submitter, entry_id);
        for i in self.store.index_candidates(IndexSpace::EntryId, fp)? {
            let leaf = self.store.entries(i, i + 1)?.remove(0);
            if let Ok(l) = Leaf::parse(&leaf) {
                if l.submitter == submitter && l.entry_id == entry_id {
                    return Ok(Some(i));
                }
            }
        }
        Ok(None)
    }

    /// Returns up to `limit` ascending entry indices `>= from` carrying attribute `attr`,
    /// stored and pending alike.
    pub fn postings(&self, attr: u64, from: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        // Pending first, then the store (the writer stores before it drops pending records, so
        // a record is seen in at least one of the two; duplicates are merged).
        let pending: Vec<u64> = {
            let p = self.pending.lock().expect("lock poisoned");
            p.in_flight_records
                .iter()
                .chain(p.queue.iter())
                .filter(|r| r.index >= from && r.attrs.contains(&attr))
                .map(|r| r.index)
                .take(limit)
                .collect()
        };
        let mut out = self.store.postings(attr, from, limit)?;
        out.extend(pending);
        out.sort_unstable();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }

    /// Returns how many records are not yet in the store.
    pub fn lag(&self) -> usize {
        let p = self.pending.lock().expect("lock poisoned");
        p.queue.len() + p.in_flight
    }

    fn write_loop(&self) {
        loop {
            let batch: Arc<Vec<NewEntry>> = {
                let mut p = self.pending.lock().expect("lock poisoned");
                while p.queue.len() < RUN_RECORDS && !p.stop {
                    p = self.changed.wait(p).expect("lock poisoned");
                }
                if p.queue.is_empty() {
                    return; // stopped and drained
                }
                let batch: Arc<Vec<NewEntry>> = Arc::new(p.queue.drain(..).collect());
                p.in_flight = batch.len();
                p.in_flight_records = batch.clone();
                batch
            };
            let up_to = batch.last().map(|r| r.index + 1).unwrap_or(0);
            // Not a durability point: the records are derived from durable entries and are
            // replayed from `indexed_up_to` after a crash. sled flushes them with the next group.
            let result = self.store.index(&runs(&batch), &postings(&batch), up_to);
            let mut p = self.pending.lock().expect("lock poisoned");
            p.in_flight = 0;
            p.in_flight_records = Arc::default();
            match result {
                Ok(()) => {
                    for r in batch.iter() {
                        if p.by_hash.get(&r.leaf_hash) == Some(&r.index) {
                            p.by_hash.remove(&r.leaf_hash);
                        }
                        if !r.entry_id.is_empty() {
                            let key = (r.submitter.clone(), r.entry_id.clone());
                            if p.by_id.get(&key) == Some(&r.index) {
                                p.by_id.remove(&key);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("index writer stopped: {e}");
                    p.failed = Some(e.clone());
                    // Keep the records answerable from memory; nothing more is written.
                    for r in batch.iter().rev() {
                        p.queue.push_front(r.clone());
                    }
                    self.changed.notify_all();
                    return;
                }
            }
            self.changed.notify_all();
        }
    }

    /// Writes everything pending (whatever its size) and stops the writer thread.
    pub fn close(&self) {
        self.pending.lock().expect("lock poisoned").stop = true;
        self.changed.notify_all();
        if let Some(h) = self.writer.lock().expect("lock poisoned").take() {
            let _ = h.join();
        }
    }
}

/// Returns the index records of the stored entries `[start, end)`.
pub fn records_of(store: &dyn Store, start: u64, end: u64) -> Result<Vec<NewEntry>, StoreError> {
    let leaves = store.entries(start, end)?;
    (start..end)
        .zip(leaves)
        .map(|(i, leaf)| {
            let parsed =
                Leaf::parse(&leaf).map_err(|e| StoreError::Corrupt(format!("entry {i}: {e}")))?;
            Ok(NewEntry {
                index: i,
                leaf_hash: ledger_format::leaf_hash(&leaf),
                attrs: attribute_keys(parsed.kind, &parsed.body),
                submitter: parsed.submitter,
                entry_id: parsed.entry_id,
            })
        })
        .collect()
}

/// Returns the attribute keys of an entry.
pub fn attribute_keys(kind: ledger_format::entry::EntryKind, body: &[u8]) -> Vec<u64> {
    ledger_format::entry::attributes(kind, body)
        .iter()
        .map(|a| ledger_format::entry::attribute_key(a))
        .collect()
}

/// Most indices in one stored posting run (3 KiB): sled rewrites a whole page when a value in
/// it changes, and one large run per attribute per flush (196 KiB for `kind=audit`) made every
/// flush rewrite all earlier runs of that attribute (measured: disk per entry ~600 B -> ~1 KB).
pub const POSTING_RUN: usize = 512;

/// Returns the batch's posting runs: for each attribute, the indices that carry it, in runs of
/// at most [`POSTING_RUN`] keyed by their first index.
pub fn postings(batch: &[NewEntry]) -> Vec<Posting> {
    let mut by_attr: HashMap<u64, Vec<u64>> = HashMap::new();
    for r in batch {
        for a in &r.attrs {
            by_attr.entry(*a).or_default().push(r.index);
        }
    }
    by_attr
        .into_iter()
        .flat_map(|(attr, indices)| {
            indices
                .chunks(POSTING_RUN)
                .map(|c| Posting {
                    attr,
                    first: c[0],
                    indices: c.to_vec(),
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Returns the batch's records grouped into one run per (space, bucket).
pub fn runs(batch: &[NewEntry]) -> Vec<IndexRun> {
    let first = batch.first().map(|r| r.index).unwrap_or(0);
    let mut by_bucket: HashMap<(IndexSpace, u16), Vec<(u64, u64)>> = HashMap::new();
    for r in batch {
        let fp = leaf_fingerprint(&r.leaf_hash);
        by_bucket
            .entry((IndexSpace::LeafHash, bucket_of(fp)))
            .or_default()
            .push((fp, r.index));
        if !r.entry_id.is_empty() {
            let fp = entry_id_fingerprint(&r.submitter, &r.entry_id);
            by_bucket
                .entry((IndexSpace::EntryId, bucket_of(fp)))
                .or_default()
                .push((fp, r.index));
        }
    }
    by_bucket
        .into_iter()
        .map(|((space, bucket), records)| IndexRun {
            space,
            bucket,
            first,
            records,
        })
        .collect()
}
