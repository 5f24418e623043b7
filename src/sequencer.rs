//! The sequencer: the log's single writer. It takes pending submissions from a bounded queue,
//! groups them (see `Sequencer::run`), assigns indices and timestamps, computes the new tree
//! nodes, makes the entries and tiles durable (one atomic store batch, fsynced), signs the
//! checkpoint for the new size, stores it (made durable by the next group's fsync: it is a
//! deterministic function of durable data, see `LogWrites::stage_checkpoint`), then publishes it
//! and answers every waiter (ARCHITECTURE.md, write path).
//!
//! A store error is fatal (Sunlight's `errFatal`): the group may or may not be on disk, so the
//! sequencer answers everyone with an error and stops; it never signs over state it is unsure
//! of. It reports the failure on [`Handle::failed`]; the server then closes the log and reopens
//! it from disk once the store writes again (`server::run`), as a restart would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::tree::CompactRange;
use ledger_format::Hash;
use tokio::sync::oneshot;

use crate::log::{sign_checkpoint, Log, Published};
use crate::metrics::{Histogram, GROUP_BOUNDS, LATENCY_BOUNDS};
use crate::store::{Group, LogWrites, NewEntry, StoreError};
use crate::tree_writer::TreeWriter;

/// One entry waiting to be sequenced.
#[derive(Clone, Debug)]
pub struct Pending {
    pub kind: EntryKind,
    pub submitter: String,
    pub entry_id: String,
    pub body: Vec<u8>,
    /// Attribute keys for the secondary indexes (computed by the caller, off the writer).
    pub attrs: Vec<u64>,
}

/// Where an entry ended up.
#[derive(Clone, Debug)]
pub struct Placed {
    pub index: u64,
    pub leaf: Vec<u8>,
    pub leaf_hash: Hash,
}

/// The answer to one request: every entry's place and the checkpoint that covers them all.
#[derive(Clone, Debug)]
pub struct Committed {
    pub placed: Vec<Placed>,
    pub published: Published,
}

/// Why a request was not committed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("entry_id {entry_id:?} was already used by {submitter} for a different entry (index {index})")]
    EntryIdConflict {
        submitter: String,
        entry_id: String,
        index: u64,
    },
    #[error("entry_id {entry_id:?} of {submitter} names two different entries of one batch")]
    EntryIdRepeated { submitter: String, entry_id: String },
    /// The entry cannot be encoded as a leaf (an invalid field): nothing was written.
    #[error("the entry cannot be logged: {0}")]
    Unencodable(String),
    #[error("the submission queue is full; retry shortly")]
    QueueFull,
    #[error("the log is not accepting entries: {0}")]
    Unavailable(String),
    /// The data dir's file system is (nearly) full: nothing was written.
    #[error("{0}")]
    DiskFull(String),
    /// `durability = "replicated"` and the write-ahead topic did not acknowledge the group:
    /// nothing was signed or acknowledged (entries already fsynced here are produced again
    /// before anything else is signed).
    #[error("replication unavailable: {0}; nothing was acknowledged, retry shortly")]
    ReplicationUnavailable(String),
}

/// A request: the entries of one submission (a batch is all or nothing) and where to answer.
pub struct Request {
    pub entries: Vec<Pending>,
    pub reply: oneshot::Sender<Result<Committed, SubmitError>>,
}

/// Group-commit settings.
#[derive(Clone)]
pub struct Settings {
    pub batch_interval: Duration,
    pub max_batch: usize,
    pub queue_capacity: usize,
    /// Refuse groups while the data dir's file system has less free space than this.
    pub disk: Option<DiskGuard>,
    /// `durability = "replicated"`: every group goes to the write-ahead topic before it is
    /// signed or answered.
    pub replication: Option<Arc<dyn crate::replication::Replicator>>,
}

/// The free space a group commit needs: below `min_free` bytes on the file system of `dir`,
/// the sequencer refuses (503 `disk_full`), writes and signs nothing, and takes entries again
/// once space is back. The reserve keeps the store from ever failing a write for lack of
/// space (which would stop the sequencer and restart the storage).
#[derive(Clone, Debug)]
pub struct DiskGuard {
    pub dir: std::path::PathBuf,
    pub min_free: u64,
}

/// Counters exported on /metrics.
pub struct Metrics {
    pub appended: AtomicU64,
    pub groups: AtomicU64,
    pub queue_depth: AtomicU64,
    pub commit_micros_total: AtomicU64,
    pub deduplicated: AtomicU64,
    /// Entries appended per group commit.
    pub group_entries: Histogram,
    /// Seconds per durable write of a group (entries, tiles and the previous group's
    /// checkpoint), including its fsync.
    pub durable_write_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            appended: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            commit_micros_total: AtomicU64::new(0),
            deduplicated: AtomicU64::new(0),
            group_entries: Histogram::new(GROUP_BOUNDS),
            durable_write_seconds: Histogram::new(LATENCY_BOUNDS),
        }
    }
}

/// The submit side of the sequencer.
#[derive(Clone)]
pub struct Handle {
    tx: SyncSender<Request>,
    pub metrics: Arc<Metrics>,
    /// Set while groups are refused for lack of disk space.
    pub disk_full: Arc<AtomicBool>,
    /// Set while the write-ahead topic does not acknowledge (replicated durability).
    pub replication_down: Arc<AtomicBool>,
    /// Changes to `Some(why)` when a storage error stopped the sequencer.
    pub failed: tokio::sync::watch::Receiver<Option<StoreError>>,
}

/// The answer to every submission once a storage failure stopped the sequencer.
fn refusal(why: &StoreError) -> SubmitError {
    if why.is_out_of_space() {
        SubmitError::DiskFull(format!(
            "disk full: a write failed ({why}); nothing was acknowledged; the storage restarts when space is freed"
        ))
    } else {
        SubmitError::Unavailable(format!("storage failure: {why}"))
    }
}

impl Handle {
    /// Returns true once a storage error stopped the sequencer.
    pub fn is_fatal(&self) -> bool {
        self.failed.borrow().is_some()
    }

    /// Enqueues a request, or refuses it at once when the queue is full.
    pub fn submit(
        &self,
        entries: Vec<Pending>,
    ) -> Result<oneshot::Receiver<Result<Committed, SubmitError>>, SubmitError> {
        if let Some(why) = self.failed.borrow().as_ref() {
            return Err(refusal(why));
        }
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Request { entries, reply }) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
                Ok(rx)
            }
            Err(TrySendError::Full(_)) => Err(SubmitError::QueueFull),
            Err(TrySendError::Disconnected(_)) => {
                Err(SubmitError::Unavailable("shutting down".into()))
            }
        }
    }
}

/// Starts the sequencer thread. It exits when every [`Handle`] is dropped, after draining the
/// queue; join the returned thread to wait for that.
pub fn start(
    log: Arc<Log>,
    compact: CompactRange,
    last_ms: u64,
    settings: Settings,
) -> (Handle, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.queue_capacity);
    let metrics = Arc::new(Metrics::default());
    let disk_full = Arc::new(AtomicBool::new(false));
    let replication_down = Arc::new(AtomicBool::new(false));
    let (failed_tx, failed) = tokio::sync::watch::channel(None);
    let writer = Some(TreeWriter::resume(compact));
    let mut seq = Sequencer {
        log,
        writer,
        last_ms,
        settings,
        metrics: metrics.clone(),
        disk_full: disk_full.clone(),
        replication_down: replication_down.clone(),
        unreplicated: None,
        failed: failed_tx,
    };
    let thread = std::thread::Builder::new()
        .name("sequencer".into())
        .spawn(move || seq.run(rx))
        .expect("spawning the sequencer thread");
    (
        Handle {
            tx,
            metrics,
            disk_full,
            replication_down,
            failed,
        },
        thread,
    )
}

struct Sequencer {
    log: Arc<Log>,
    /// `None` only when resuming failed; the sequencer is then stopped (`failed`).
    writer: Option<TreeWriter>,
    last_ms: u64,
    settings: Settings,
    metrics: Arc<Metrics>,
    disk_full: Arc<AtomicBool>,
    replication_down: Arc<AtomicBool>,
    /// Replicated durability: entries from this index on are durable here but not
    /// acknowledged by the topic (its last attempt, and why it failed). Nothing beyond the
    /// published checkpoint is signed until they are.
    unreplicated: Option<(u64, Instant, String)>,
    failed: tokio::sync::watch::Sender<Option<StoreError>>,
}

type Answer = (
    oneshot::Sender<Result<Committed, SubmitError>>,
    Result<Vec<Placed>, SubmitError>,
);

enum Slot {
    /// Already in the log (an idempotent retry or an identical leaf).
    Existing(Placed),
    /// To be appended, with its encoding.
    New(Leaf, Vec<u8>),
}

/// The wall clock in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Sequencer {
    /// Forms groups: the first request waits up to `batch_interval` for others, but only until
    /// as many requests have come as made up the previous group (the clients that were served
    /// together tend to come back together); whatever is queued already joins without waiting.
    /// So a steady set of clients commits as soon as all of them are in, a lone client never
    /// waits, and a new client costs at most one `batch_interval`.
    fn run(&mut self, rx: Receiver<Request>) {
        let mut expected = 1;
        loop {
            let first = if self.unreplicated.is_some() {
                // Retry the topic once a second even when nobody submits, so that what is
                // durable here gets its checkpoint as soon as the cluster is back.
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(r) => r,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        self.catch_up();
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                }
            };
            let mut group = vec![first];
            let mut count = group[0].entries.len();
            let deadline = Instant::now() + self.settings.batch_interval;
            while count < self.settings.max_batch {
                let next = if group.len() < expected {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    rx.recv_timeout(wait).ok()
                } else {
                    rx.try_recv().ok()
                };
                let Some(r) = next else { break };
                count += r.entries.len();
                group.push(r);
            }
            expected = group.len();
            self.metrics
                .queue_depth
                .fetch_sub(group.len() as u64, Ordering::Relaxed);
            let failed = self.failed.borrow().clone();
            if let Some(why) = failed {
                for r in group {
                    let _ = r.reply.send(Err(refusal(&why)));
                }
                continue;
            }
            if let Some(why) = self.short_of_space() {
                for r in group {
                    let _ = r.reply.send(Err(SubmitError::DiskFull(why.clone())));
                }
                continue;
            }
            if let Some(why) = self.catch_up() {
                for r in group {
                    let _ = r
                        .reply
                        .send(Err(SubmitError::ReplicationUnavailable(why.clone())));
                }
                continue;
            }
            self.commit_group(group);
        }
        // Draining at shutdown: what is durable but not replicated stays unsigned; the next
        // start produces it (replication::reconcile) before it signs.
    }

    /// Replicated durability: produces the entries that are durable here but not in the topic
    /// (at most one attempt a second), then signs and publishes the checkpoint over them.
    /// Returns why appends must still wait, if they must.
    fn catch_up(&mut self) -> Option<String> {
        let (first, at, why) = self.unreplicated.clone()?;
        if at.elapsed() < Duration::from_secs(1) {
            return Some(why);
        }
        let rep = self.settings.replication.clone()?;
        let (size, root) = {
            let w = self.writer.as_ref()?;
            (w.size(), w.root())
        };
        let store = self.log.store.clone();
        let records = match store.entries(first, size).and_then(|leaves| {
            crate::replication::records_for(store.as_ref(), first, &leaves, root)
        }) {
            Ok(r) => r,
            Err(e) => {
                // The store failed, not the topic: stop as on any storage failure.
                self.stop(Vec::new(), &e);
                return Some(e.to_string());
            }
        };
        let attempt = rep.replicate(&records);
        if let Err(e) = attempt {
            self.unreplicated = Some((first, Instant::now(), e.clone()));
            return Some(e);
        }
        tracing::warn!(
            "the write-ahead topic acknowledged entries {first}..{size}: appending again"
        );
        self.unreplicated = None;
        self.replication_down.store(false, Ordering::Relaxed);
        if let Err(e) = self.sign_and_publish(size, root) {
            return Some(e.to_string());
        }
        None
    }

    /// Signs the checkpoint of the durable (and, in replicated mode, replicated) tree of
    /// `size` and makes it the one readers see.
    fn sign_and_publish(&mut self, size: u64, root: Hash) -> Result<Published, StoreError> {
        let checkpoint = sign_checkpoint(&self.log.signer, &self.log.origin, size, root);
        // Stored, not fsynced: the next group's fsync makes it durable. A crash before that
        // loses only bytes the log signs again identically on reopen (same key, origin, size
        // and root; no timestamp; deterministic Ed25519), so every client that saw this
        // checkpoint sees the same one after the crash.
        if let Err(e) = self.log.writes.stage_checkpoint(&checkpoint) {
            self.stop(Vec::new(), &e);
            return Err(e);
        }
        let p = Published {
            size,
            root,
            checkpoint,
        };
        self.log.publish(p.clone());
        Ok(p)
    }

    /// Returns why the next group must wait when the data dir's file system is below its
    /// reserve (one statvfs per group), logging each change of state once.
    fn short_of_space(&self) -> Option<String> {
        let guard = self.settings.disk.as_ref()?;
        let free = fs2::available_space(&guard.dir).ok()?;
        if free >= guard.min_free {
            if self.disk_full.swap(false, Ordering::Relaxed) {
                tracing::warn!("disk space is back ({free} bytes free): appending again");
            }
            return None;
        }
        let why = format!(
            "disk full: {} MiB free on the file system of {}, below the reserve of {} MiB (min_free_mb); nothing was written or signed, retry when space is freed",
            free >> 20,
            guard.dir.display(),
            guard.min_free >> 20
        );
        if !self.disk_full.swap(true, Ordering::Relaxed) {
            tracing::error!("{why}");
        }
        Some(why)
    }

    /// Looks up an earlier entry with the same (submitter, entry_id): the same entry again is an
    /// idempotent retry, anything else a conflict.
    fn resolve(
        &self,
        p: &Pending,
        in_group: &HashMap<(String, String), Placed>,
    ) -> Result<Option<Placed>, SubmitError> {
        if p.entry_id.is_empty() {
            return Ok(None);
        }
        let key = (p.submitter.clone(), p.entry_id.clone());
        let existing = match in_group.get(&key) {
            Some(placed) => Some(placed.clone()),
            None => match self.log.index.entry_id(&p.submitter, &p.entry_id) {
                Ok(Some(index)) => {
                    let leaf = self
                        .log
                        .store
                        .entries(index, index + 1)
                        .map_err(|e| SubmitError::Unavailable(e.to_string()))?
                        .remove(0);
                    Some(Placed {
                        index,
                        leaf_hash: ledger_format::leaf_hash(&leaf),
                        leaf,
                    })
                }
                Ok(None) => None,
                Err(e) => return Err(SubmitError::Unavailable(e.to_string())),
            },
        };
        let Some(placed) = existing else {
            return Ok(None);
        };
        let same = Leaf::parse(&placed.leaf)
            .map(|l| l.kind == p.kind && l.body == p.body)
            .unwrap_or(false);
        if same {
            Ok(Some(placed))
        } else {
            Err(SubmitError::EntryIdConflict {
                submitter: p.submitter.clone(),
                entry_id: p.entry_id.clone(),
                index: placed.index,
            })
        }
    }

    /// Resolves the entries of one request: each is already placed (a retry or an earlier entry
    /// of the group) or new and encoded. Within the request an `entry_id` names one entry: the
    /// same id twice with different contents is a conflict, as it would be across requests. A
    /// leaf that cannot be encoded (a source record with an invalid identifier) is refused
    /// here, never unwrapped.
    fn resolve_request(
        &self,
        entries: &[Pending],
        by_id: &HashMap<(String, String), Placed>,
        ms: u64,
    ) -> Result<Vec<Slot>, SubmitError> {
        let mut within: HashMap<(&str, &str), &Pending> = HashMap::new();
        let mut slots = Vec::with_capacity(entries.len());
        for p in entries {
            if !p.entry_id.is_empty() {
                if let Some(first) = within.insert((&p.submitter, &p.entry_id), p) {
                    if first.kind != p.kind || first.body != p.body {
                        return Err(SubmitError::EntryIdRepeated {
                            submitter: p.submitter.clone(),
                            entry_id: p.entry_id.clone(),
                        });
                    }
                }
            }
            slots.push(match self.resolve(p, by_id)? {
                Some(placed) => Slot::Existing(placed),
                None => {
                    let leaf = Leaf {
                        kind: p.kind,
                        logged_at_ms: ms,
                        submitter: p.submitter.clone(),
                        entry_id: p.entry_id.clone(),
                        body: p.body.clone(),
                    };
                    let bytes = leaf
                        .encode()
                        .map_err(|e| SubmitError::Unencodable(e.to_string()))?;
                    Slot::New(leaf, bytes)
                }
            });
        }
        Ok(slots)
    }

    /// Places a new entry of the group: at the index of an identical leaf already in the log
    /// or the group (an identical leaf is never appended twice), else appended to the tree,
    /// with its index records added to `new_entries`.
    fn place_new(
        &self,
        writer: &mut TreeWriter,
        (by_hash, new_entries): (&mut HashMap<Hash, u64>, &mut Vec<NewEntry>),
        p: &Pending,
        leaf: &Leaf,
        bytes: Vec<u8>,
        ms: u64,
    ) -> Result<Placed, StoreError> {
        let hash = ledger_format::leaf_hash(&bytes);
        // Every stored leaf has logged_at_ms <= self.last_ms, so a leaf with a newer
        // timestamp cannot be in the store: only the group can hold it.
        let existing = match by_hash.get(&hash) {
            Some(i) => Some(*i),
            None if ms > self.last_ms => None,
            None => self.log.index.leaf(&hash)?,
        };
        if let Some(index) = existing {
            return Ok(Placed {
                index,
                leaf: bytes,
                leaf_hash: hash,
            });
        }
        let index = writer.size();
        writer.append(self.log.store.as_ref(), bytes.clone(), hash)?;
        by_hash.insert(hash, index);
        new_entries.push(NewEntry {
            attrs: p.attrs.clone(),
            index,
            leaf_hash: hash,
            submitter: leaf.submitter.clone(),
            entry_id: leaf.entry_id.clone(),
        });
        Ok(Placed {
            index,
            leaf: bytes,
            leaf_hash: hash,
        })
    }

    fn commit_group(&mut self, group: Vec<Request>) {
        let started = Instant::now();
        let mut by_id: HashMap<(String, String), Placed> = HashMap::new();
        let mut by_hash: HashMap<Hash, u64> = HashMap::new();
        let mut new_entries: Vec<NewEntry> = Vec::new();
        let Some(mut writer) = self.writer.take() else {
            self.stop(
                group.into_iter().map(|r| (r.reply, Ok(vec![]))).collect(),
                &StoreError::io("the tree could not be resumed"),
            );
            return;
        };
        // Per request: Ok(slots) with indices into the group, or the error to answer.
        let mut answers: Vec<Answer> = Vec::with_capacity(group.len());
        let ms = self.last_ms.max(now_ms());

        for req in group {
            // First pass: resolve and encode every entry without changing anything, so that a
            // batch with one conflicting or unencodable entry appends nothing.
            let slots = self.resolve_request(&req.entries, &by_id, ms);
            let slots = match slots {
                Ok(s) => s,
                Err(e) => {
                    answers.push((req.reply, Err(e)));
                    continue;
                }
            };
            let mut placed_all = Vec::with_capacity(slots.len());
            for (p, slot) in req.entries.iter().zip(slots) {
                let placed = match slot {
                    Slot::Existing(p) => {
                        self.metrics.deduplicated.fetch_add(1, Ordering::Relaxed);
                        p
                    }
                    Slot::New(leaf, bytes) => {
                        let placed = self.place_new(
                            &mut writer,
                            (&mut by_hash, &mut new_entries),
                            p,
                            &leaf,
                            bytes,
                            ms,
                        );
                        match placed {
                            Ok(placed) => placed,
                            Err(e) => {
                                self.stop(answers, &e);
                                return;
                            }
                        }
                    }
                };
                if !p.entry_id.is_empty() {
                    by_id.insert((p.submitter.clone(), p.entry_id.clone()), placed.clone());
                }
                placed_all.push(placed);
            }
            answers.push((req.reply, Ok(placed_all)));
        }

        let size = writer.size();
        let root = writer.root();
        let published = if new_entries.is_empty() {
            self.log.published()
        } else {
            let changes = writer.take_changes();
            let group = Group {
                entries: new_entries,
                leaves: changes.leaves,
                chunks: changes.chunks,
                size,
                last_ms: ms,
            };
            let appended = group.entries.len() as u64;
            // Durability point 1: entries and tiles are fsynced together. A crash after it
            // leaves durable entries without a checkpoint; reopening signs one.
            if let Err(e) = self.timed(|writes| writes.append(&group)) {
                self.stop(answers, &e);
                return;
            }
            // The index answers lookups for these entries from now on (before anyone can
            // see them); it writes them to the store in the background.
            let first = group.leaves.first().map_or(size, |(i, _)| *i);
            if let Err(e) = self.log.index.add(group.entries) {
                self.stop(answers, &e);
                return;
            }
            self.last_ms = ms;
            // Durability point 2 (replicated): the topic acknowledged the group. Until it
            // has, nothing over these entries is signed or answered.
            if let Some(why) = self.replicate(first, group.leaves, root) {
                self.writer = Some(writer);
                for (reply, _) in answers {
                    let _ = reply.send(Err(SubmitError::ReplicationUnavailable(why.clone())));
                }
                return;
            }
            // Only durable data is ever signed.
            let p = match self.sign_and_publish(size, root) {
                Ok(p) => p,
                Err(e) => {
                    for (reply, _) in answers {
                        let _ = reply.send(Err(refusal(&e)));
                    }
                    return;
                }
            };
            self.metrics.group_entries.observe(appended as f64);
            self.metrics.appended.fetch_add(appended, Ordering::Relaxed);
            self.metrics.groups.fetch_add(1, Ordering::Relaxed);
            self.metrics
                .commit_micros_total
                .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
            p
        };
        self.writer = Some(writer);
        for (reply, result) in answers {
            let _ = reply.send(result.map(|placed| Committed {
                placed,
                published: published.clone(),
            }));
        }
    }

    /// Produces a committed group to the write-ahead topic (replicated durability); returns
    /// why it failed, having marked the group's entries as not replicated.
    fn replicate(&mut self, first: u64, leaves: Vec<(u64, Vec<u8>)>, root: Hash) -> Option<String> {
        let rep = self.settings.replication.clone()?;
        let leaves: Vec<Vec<u8>> = leaves.into_iter().map(|(_, l)| l).collect();
        let records =
            match crate::replication::records_for(self.log.store.as_ref(), first, &leaves, root) {
                Ok(r) => r,
                Err(e) => {
                    self.stop(Vec::new(), &e);
                    return Some(e.to_string());
                }
            };
        let result = rep.replicate(&records);
        let why = result.err()?;
        if !self.replication_down.swap(true, Ordering::Relaxed) {
            tracing::error!("replication unavailable, appends refused until the write-ahead topic acknowledges: {why}");
        }
        self.unreplicated = Some((first, Instant::now(), why.clone()));
        Some(why)
    }

    /// Runs one durable write, recording its latency.
    fn timed<T>(&self, write: impl FnOnce(&dyn LogWrites) -> T) -> T {
        let t = Instant::now();
        let out = write(self.log.writes.as_ref());
        self.metrics
            .durable_write_seconds
            .observe(t.elapsed().as_secs_f64());
        out
    }

    /// A fatal error: answer everyone, stop signing. In-memory state may be ahead of the disk,
    /// so only reopening the log from disk resumes appends.
    fn stop(&self, answers: Vec<Answer>, why: &StoreError) {
        tracing::error!("storage failure, sequencer stopped: {why}");
        self.failed.send_replace(Some(why.clone()));
        for (reply, _) in answers {
            let _ = reply.send(Err(refusal(why)));
        }
    }
}
