//! Fault injection at each durability point: a store that fails before persisting or after
//! persisting, on the entry append or on the checkpoint write. The sequencer must never sign
//! or publish over data that is not durable, must stop, and reopening must recover cleanly.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use govledger::log::Log;
use govledger::sequencer::{self, Pending, Settings, SubmitError};
use govledger::store::{ChunkId, Group, LogStore, LogWrites, SledStore, StoreError};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::entry::EntryKind;
use ledger_format::note::SignerKey;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    None = 0,
    AppendBefore = 1,
    AppendAfter = 2,
    CheckpointBefore = 3,
    CheckpointAfter = 4,
    /// The staged checkpoint never reaches the disk (a crash before the next fsync), silently.
    CheckpointLost = 5,
}

/// Wraps a real store's durability points; the armed fault fires once.
struct FaultyStore {
    inner: Arc<SledStore>,
    armed: AtomicU8,
}

impl FaultyStore {
    fn fire(&self, f: Fault) -> bool {
        self.armed
            .compare_exchange(
                f as u8,
                Fault::None as u8,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
    }
}

fn injected() -> StoreError {
    StoreError::io("injected fault")
}

impl LogWrites for FaultyStore {
    fn append(&self, group: &Group) -> Result<(), StoreError> {
        if self.fire(Fault::AppendBefore) {
            return Err(injected());
        }
        self.inner.append(group)?;
        if self.fire(Fault::AppendAfter) {
            return Err(injected());
        }
        Ok(())
    }
    fn put_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        self.inner.put_checkpoint(note)
    }
    fn stage_checkpoint(&self, note: &str) -> Result<(), StoreError> {
        if self.fire(Fault::CheckpointBefore) {
            return Err(injected());
        }
        if self.fire(Fault::CheckpointLost) {
            return Ok(());
        }
        self.inner.stage_checkpoint(note)?;
        if self.fire(Fault::CheckpointAfter) {
            return Err(injected());
        }
        Ok(())
    }
}

/// Runs the offline check on a store opened at `dir` (the store lives in `dir` itself here).
fn check_dir(dir: &std::path::Path) -> Result<u64, String> {
    let cfg = govledger::config::Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    };
    govledger::server::check_store(&cfg, Arc::new(reopen(dir))).map_err(|e| format!("{e:#}"))
}

/// Reopens a store just closed in this process: sled's background threads may hold its file
/// lock for a moment after the last handle is dropped.
fn reopen(dir: &std::path::Path) -> SledStore {
    let mut tries = 0;
    loop {
        match SledStore::open(dir, 16) {
            Ok(s) => return s,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("reopen: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("reopening {}: {e}", dir.display()),
        }
    }
}

fn pending(i: u64) -> Pending {
    Pending {
        attrs: vec![],
        kind: EntryKind::Audit,
        submitter: "anonymous".into(),
        entry_id: format!("e{i}"),
        body: format!(r#"{{"event_type":"T","component":"c","action":"a","details":{{"i":{i}}},"compliance_tags":[]}}"#).into_bytes(),
    }
}

const SETTINGS: Settings = Settings {
    disk: None,
    batch_interval: Duration::from_millis(1),
    max_batch: 64,
    queue_capacity: 64,
    replication: None,
};

/// Opens a faulty store in `dir` (no fault armed), starts the sequencer and appends 5 entries.
async fn five_entries(
    dir: &std::path::Path,
    key: &SignerKey,
) -> (
    Arc<FaultyStore>,
    Arc<Log>,
    sequencer::Handle,
    std::thread::JoinHandle<()>,
) {
    let inner = Arc::new(SledStore::open(dir, 16).unwrap());
    let store = Arc::new(FaultyStore {
        inner: inner.clone(),
        armed: AtomicU8::new(0),
    });
    let (log, compact, last_ms) =
        Log::open_with_writes(inner, store.clone(), key.clone(), "localhost/govledger").unwrap();
    let (handle, thread) = sequencer::start(log.clone(), compact, last_ms, SETTINGS);
    for i in 0..5 {
        handle
            .submit(vec![pending(i)])
            .unwrap()
            .await
            .unwrap()
            .unwrap();
    }
    (store, log, handle, thread)
}

/// Runs: 5 good entries, then one group under the fault, then checks and reopens.
async fn run_fault(fault: Fault) {
    let dir = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("localhost/govledger", [5; 32]).unwrap();
    let vkey = key.verifier();
    let (acknowledged, published_before) = {
        let (store, log, handle, thread) = five_entries(dir.path(), &key).await;
        let before = log.published();
        store.armed.store(fault as u8, Ordering::SeqCst);
        let r = handle
            .submit(vec![pending(5), pending(6)])
            .unwrap()
            .await
            .unwrap();
        assert!(
            matches!(r, Err(SubmitError::Unavailable(_))),
            "{fault:?}: {r:?}"
        );
        // Nothing new was published: readers still see the last durable checkpoint.
        let after = log.published();
        assert_eq!(after.size, before.size, "{fault:?}");
        assert_eq!(after.checkpoint, before.checkpoint, "{fault:?}");
        // The sequencer stopped: it refuses new work rather than sign over uncertain state.
        assert!(handle.is_fatal());
        assert!(matches!(
            handle.submit(vec![pending(7)]),
            Err(SubmitError::Unavailable(_))
        ));
        drop(handle);
        thread.join().unwrap();
        (5u64, before)
    };
    // Recovery: reopen on a plain store.
    let store = Arc::new(reopen(dir.path()));
    let (log, compact, last_ms) =
        Log::open(store.clone(), key.clone(), "localhost/govledger").unwrap();
    let p = log.published();
    let expect = match fault {
        Fault::AppendBefore => 5,
        _ => 7, // the group reached the disk; reopening signs (or finds) its checkpoint
    };
    assert_eq!(p.size, expect, "{fault:?}");
    let (signed, _) = SignedCheckpoint::open(p.checkpoint.as_bytes(), &vkey, &[]).unwrap();
    assert_eq!(signed.checkpoint.root, p.root);
    // Every acknowledged entry is intact and the old checkpoint is consistent with the new.
    for i in 0..acknowledged {
        let leaf = log.leaf(i).unwrap();
        assert!(String::from_utf8_lossy(&leaf).contains(&format!("\"i\":{i}")));
    }
    let c = log.consistency(published_before.size, p.size).unwrap();
    c.verify(&published_before.root, &p.root).unwrap();
    // And appends resume, with retries of the unacknowledged entries deduplicated by entry_id.
    let (handle, thread) = sequencer::start(log.clone(), compact, last_ms, SETTINGS);
    let r = handle
        .submit(vec![pending(5), pending(6), pending(8)])
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let indices: Vec<u64> = r.placed.iter().map(|p| p.index).collect();
    assert_eq!(indices, vec![5, 6, 7], "{fault:?}");
    drop(handle);
    thread.join().unwrap();
}

#[tokio::test]
async fn fail_before_appending_entries() {
    run_fault(Fault::AppendBefore).await;
}

#[tokio::test]
async fn fail_after_appending_entries() {
    run_fault(Fault::AppendAfter).await;
}

#[tokio::test]
async fn fail_before_persisting_the_checkpoint() {
    run_fault(Fault::CheckpointBefore).await;
}

#[tokio::test]
async fn fail_after_persisting_the_checkpoint() {
    run_fault(Fault::CheckpointAfter).await;
}

/// The sequencer answers before its checkpoint is fsynced (the next group's fsync carries
/// it). If it never reaches the disk, reopening signs the same checkpoint again, byte for
/// byte: what clients were shown stays what the log says.
#[tokio::test]
async fn a_checkpoint_lost_before_the_next_fsync_is_signed_again_identically() {
    let dir = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("localhost/govledger", [5; 32]).unwrap();
    let answered = {
        let (store, _log, handle, thread) = five_entries(dir.path(), &key).await;
        store
            .armed
            .store(Fault::CheckpointLost as u8, Ordering::SeqCst);
        let r = handle
            .submit(vec![pending(5), pending(6)])
            .unwrap()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.published.size, 7);
        drop(handle);
        thread.join().unwrap();
        let stored = store.inner.head().unwrap().unwrap();
        assert_eq!(stored.size, 7, "the entries are durable");
        assert_ne!(
            stored.checkpoint.as_deref(),
            Some(r.published.checkpoint.as_str()),
            "the answered checkpoint was lost"
        );
        r.published
    };
    let store = Arc::new(reopen(dir.path()));
    let (log, _, _) = Log::open(store.clone(), key, "localhost/govledger").unwrap();
    assert_eq!(log.published().checkpoint, answered.checkpoint);
    assert_eq!(
        store.head().unwrap().unwrap().checkpoint.as_deref(),
        Some(answered.checkpoint.as_str())
    );
}

#[tokio::test]
async fn a_tampered_store_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("localhost/govledger", [5; 32]).unwrap();
    {
        let store = Arc::new(SledStore::open(dir.path(), 16).unwrap());
        let (log, compact, last_ms) = Log::open(store, key.clone(), "localhost/govledger").unwrap();
        let (handle, thread) = sequencer::start(log, compact, last_ms, SETTINGS);
        for i in 0..3 {
            handle
                .submit(vec![pending(i)])
                .unwrap()
                .await
                .unwrap()
                .unwrap();
        }
        drop(handle);
        thread.join().unwrap();
    }
    let store = Arc::new(reopen(dir.path()));
    let original = store.tile(0, 0).unwrap().unwrap();
    let forge = |store: &SledStore, inner: u8, slot: usize| {
        let mut hashes = original.chunk(inner as usize, 0).to_vec();
        hashes[slot] = ledger_format::leaf_hash(b"forged");
        let id = ChunkId {
            level: 0,
            tile: 0,
            inner,
            chunk: 0,
        };
        store
            .append(&Group {
                entries: vec![],
                leaves: vec![],
                chunks: vec![(id, hashes)],
                size: 3,
                last_ms: 0,
            })
            .unwrap()
    };
    // A forged leaf hash is below what the O(log n) start check reads; the full offline
    // check finds it.
    forge(&store, 0, 1);
    drop(store);
    let err = check_dir(dir.path()).unwrap_err();
    assert!(err.contains("problems found"), "{err}");
    let store = Arc::new(reopen(dir.path()));
    // A forged subtree root that the start check reads (node (1, 0)): refused.
    forge(&store, 1, 0);
    let err = Log::open(store.clone(), key.clone(), "localhost/govledger")
        .err()
        .unwrap();
    assert!(err.to_string().contains("refusing to serve"), "{err}");
    // Another key than the one that signed is refused too.
    let other = SignerKey::from_seed("localhost/govledger", [6; 32]).unwrap();
    assert!(Log::open(store, other, "localhost/govledger").is_err());
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path(), 16).unwrap());
    {
        // What a later release would have written.
        let db = sled::Config::new()
            .path(dir.path())
            .segment_size(8 << 20)
            .open()
            .unwrap();
        db.open_tree("log")
            .unwrap()
            .insert(b"mformat", &2u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    std::thread::sleep(Duration::from_millis(200));
    let err = SledStore::open(dir.path(), 16)
        .err()
        .expect("a newer format must be refused");
    assert!(
        matches!(
            err,
            StoreError::NewerFormat {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
}

/// A source record that would make an invalid entry id (a space, or more than 255 bytes) is
/// refused; nothing is appended and the sequencer goes on.
#[tokio::test]
async fn an_unencodable_leaf_is_refused_and_the_sequencer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = SignerKey::from_seed("localhost/govledger", [5; 32]).unwrap();
    let store = Arc::new(SledStore::open(dir.path(), 16).unwrap());
    let (log, compact, last_ms) = Log::open(store, key, "localhost/govledger").unwrap();
    let (handle, thread) = sequencer::start(log.clone(), compact, last_ms, SETTINGS);
    let mut spaced = pending(1);
    spaced.entry_id = "servicenow:CHG 1".into();
    let mut long = pending(2);
    long.entry_id = "x".repeat(300);
    for bad in [spaced, long] {
        // The bad entry second in a batch: the good first one is not appended either.
        let err = handle
            .submit(vec![pending(0), bad])
            .unwrap()
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, SubmitError::Unencodable(_)), "{err}");
    }
    assert_eq!(log.published().size, 0);
    let ok = handle
        .submit(vec![pending(0)])
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.published.size, 1, "the sequencer still runs");
    drop(handle);
    thread.join().expect("the sequencer thread did not panic");
}
