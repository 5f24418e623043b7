//! Anchoring (ARCHITECTURE.md, Anchoring; names in ledger-format SPEC.md §9): signed
//! checkpoints leave the machine through a persistent outbox, and witnesses cosign them.
//!
//! Each round (every `anchors.interval_ms`, and once more at shutdown):
//! 1. When the tree grew since the last chosen checkpoint, the latest published checkpoint is
//!    chosen: it is stored under `c/<size>` together with one outbox record `o/<backend>/<size>`
//!    per backend, in one durable write, before any publish attempt.
//! 2. Each backend publishes its outbox in size order; a record is deleted (durably) only once
//!    the backend confirmed it. A failure stops that backend's round and backs off (doubling from
//!    500 ms to `backoff_max_ms`); other backends and appends go on. Nothing is lost: the outbox
//!    survives restarts and outages, so every chosen checkpoint arrives at least once.
//! 3. The latest checkpoint (also when the size did not change) goes to every witness with a
//!    consistency proof from the size that witness last cosigned; the cosignatures that verify
//!    are appended to the checkpoint, which is stored under `w` and served at
//!    `GET /v1/checkpoints/witnessed`.
//!
//! Key layout of the store's anchoring state: `c` + size (u64 BE) → checkpoint note;
//! `o` + backend name + 0x00 + size → empty; `l` + backend name + 0x00 → the largest size the
//! backend confirmed (u64 BE); `w` → witnessed checkpoint note; `s` + backend name → next entry
//! index to stream (u64 BE); `m` → the WORM mirror's cursor (`mirror`).

pub mod dir;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "s3")]
pub mod mirror;
#[cfg(feature = "s3")]
pub mod s3;
pub mod witness_client;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::log::Log;
use crate::store::StoreError;

/// A boxed future, for backends' async methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where anchored checkpoints go.
pub trait Backend: Send + Sync {
    /// Short name: `dir`, `s3`, `kafka` (the outbox and metrics key).
    fn name(&self) -> &'static str;
    /// Publishes the checkpoint note of `size`; `Ok` only once the backend confirmed it
    /// durably. Publishing the same size twice must be harmless.
    fn publish<'a>(&'a self, size: u64, checkpoint: &'a str) -> BoxFuture<'a, Result<(), String>>;
    /// Streams entries `[start, start + leaves.len())` when the backend streams entries;
    /// returns `None` when it does not.
    fn stream_entries<'a>(
        &'a self,
        _start: u64,
        _leaves: &'a [Vec<u8>],
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        None
    }
    /// The longest one publish may take before it counts as failed (and is retried).
    fn publish_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
    /// Why the backend stopped for good (an alert an operator must look at), if it did.
    fn halted(&self) -> Option<String> {
        None
    }
}

/// The name of the WORM tile mirror's backend.
pub const MIRROR: &str = "mirror";

fn size_key(prefix: &[u8], size: u64) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&size.to_be_bytes());
    k
}

fn outbox_prefix(backend: &str) -> Vec<u8> {
    let mut k = b"o".to_vec();
    k.extend_from_slice(backend.as_bytes());
    k.push(0);
    k
}

/// `l` + backend name: the largest size the backend confirmed (u64 BE).
pub(crate) fn confirmed_key(backend: &str) -> Vec<u8> {
    let mut k = b"l".to_vec();
    k.extend_from_slice(backend.as_bytes());
    k.push(0);
    k
}

fn size_of_key(k: &[u8]) -> u64 {
    k.len()
        .checked_sub(8)
        .and_then(|i| k[i..].try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// A backend's state, as `GET /v1/anchors` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BackendStatus {
    pub name: String,
    /// Largest size this backend confirmed (0 for none).
    pub last_anchored_size: u64,
    /// Chosen checkpoints not yet confirmed.
    pub pending: usize,
    pub last_error: Option<String>,
    /// Unix ms of the last error.
    pub last_error_at: Option<u64>,
    /// Entries streamed so far, for a backend that streams entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streamed_entries: Option<u64>,
    /// Why the backend stopped for good (an alert), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    #[serde(skip)]
    failures: u32,
    #[serde(skip)]
    next_try: Option<Instant>,
}

/// Anchoring state shared with the HTTP handlers.
pub struct Anchorer {
    log: Arc<Log>,
    backends: Vec<Box<dyn Backend>>,
    pub witnesses: Vec<witness_client::WitnessClient>,
    backoff_max: Duration,
    status: Mutex<HashMap<&'static str, BackendStatus>>,
    /// The latest witnessed checkpoint (log signature plus cosignatures).
    witnessed: RwLock<Option<String>>,
    last_chosen: Mutex<u64>,
    /// The size the WORM mirror confirmed, when there is a mirror.
    mirrored: Option<AtomicU64>,
    /// Past this many published entries not yet mirrored, submissions are refused.
    max_unmirrored: Option<u64>,
    interval: Duration,
    /// Signalled when a checkpoint was chosen: the backends' tasks wake up.
    chosen: tokio::sync::Notify,
}

/// Settings of the anchoring rounds.
#[derive(Clone, Debug)]
pub struct Rounds {
    /// Time between rounds.
    pub interval: Duration,
    /// Longest wait between retries of a failing backend.
    pub backoff_max: Duration,
    /// With a mirror: the most published entries it may lag behind before submissions wait.
    pub max_unmirrored: Option<u64>,
}

use crate::sequencer::now_ms;

impl Anchorer {
    /// Loads the anchoring state from the store.
    pub fn new(
        log: Arc<Log>,
        backends: Vec<Box<dyn Backend>>,
        witnesses: Vec<witness_client::WitnessClient>,
        rounds: Rounds,
    ) -> Result<Arc<Anchorer>, StoreError> {
        let last_chosen = log
            .store
            .anchor_last(b"c")?
            .map_or(0, |(k, _)| size_of_key(&k));
        let witnessed = log
            .store
            .anchor_scan(b"w", b"", 1)?
            .into_iter()
            .next()
            .and_then(|(_, v)| String::from_utf8(v).ok());
        let mut status = HashMap::new();
        for b in &backends {
            let pending = log
                .store
                .anchor_scan(&outbox_prefix(b.name()), b"", usize::MAX)?;
            let last = log
                .store
                .anchor_scan(&confirmed_key(b.name()), b"", 1)?
                .first()
                .map_or(0, |(_, v)| size_of_key(v));
            status.insert(
                b.name(),
                BackendStatus {
                    name: b.name().into(),
                    last_anchored_size: last,
                    pending: pending.len(),
                    ..Default::default()
                },
            );
        }
        let mirrored = status
            .get(MIRROR)
            .map(|s| AtomicU64::new(s.last_anchored_size));
        Ok(Arc::new(Anchorer {
            log,
            backends,
            witnesses,
            backoff_max: rounds.backoff_max,
            status: Mutex::new(status),
            witnessed: RwLock::new(witnessed),
            last_chosen: Mutex::new(last_chosen),
            mirrored,
            max_unmirrored: rounds.max_unmirrored,
            interval: rounds.interval,
            chosen: tokio::sync::Notify::new(),
        }))
    }

    /// Returns every backend's status, in configuration order.
    pub fn status(&self) -> Vec<BackendStatus> {
        let st = self.status.lock().expect("lock poisoned");
        self.backends
            .iter()
            .filter_map(|b| st.get(b.name()).cloned())
            .collect()
    }

    /// Returns the size the WORM mirror confirmed, when there is a mirror.
    pub fn mirrored_size(&self) -> Option<u64> {
        self.mirrored.as_ref().map(|m| m.load(Ordering::Relaxed))
    }

    /// Returns `(lag, retry after in seconds)` when the mirror lags the published tree by
    /// `max_unmirrored_entries` or more: submissions wait until the bucket holds more.
    pub fn mirror_behind(&self) -> Option<(u64, u64)> {
        let max = self.max_unmirrored?;
        let lag = self
            .log
            .published()
            .size
            .saturating_sub(self.mirrored_size()?);
        (lag >= max).then(|| (lag, self.interval.as_secs().max(1)))
    }

    /// Returns true while some backend fails or stopped: anchoring is degraded.
    pub fn degraded(&self) -> Vec<String> {
        self.status()
            .into_iter()
            .filter_map(|s| {
                let why = s.stopped.or(s.last_error)?;
                Some(format!("{}: {why}", s.name))
            })
            .collect()
    }

    /// Returns the latest witnessed checkpoint.
    pub fn witnessed(&self) -> Option<String> {
        self.witnessed.read().expect("lock poisoned").clone()
    }

    /// Returns the witnessed checkpoint as a publication: its size, root and note text (with
    /// the cosignatures).
    pub fn witnessed_published(&self) -> Option<crate::log::Published> {
        let note = self.witnessed()?;
        let sc = ledger_format::checkpoint::SignedCheckpoint::parse(note.as_bytes()).ok()?;
        Some(crate::log::Published {
            size: sc.checkpoint.size.0,
            root: sc.checkpoint.root,
            checkpoint: note,
        })
    }

    /// Returns the stored (chosen for anchoring) checkpoints with sizes in `[from, ..)`, at most
    /// `limit`, ascending.
    pub fn checkpoints(&self, from: u64, limit: usize) -> Result<Vec<(u64, String)>, StoreError> {
        Ok(self
            .log
            .store
            .anchor_scan(b"c", &from.to_be_bytes(), limit)?
            .into_iter()
            .map(|(k, v)| (size_of_key(&k), String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    /// Chooses the latest checkpoint for anchoring when the tree grew: records it and its
    /// outbox entries durably. Returns the chosen size, if any.
    pub fn choose(&self) -> Result<Option<u64>, StoreError> {
        let p = self.log.published();
        let mut last = self.last_chosen.lock().expect("lock poisoned");
        if p.size == 0 || p.size <= *last {
            return Ok(None);
        }
        let mut writes = vec![(size_key(b"c", p.size), Some(p.checkpoint.into_bytes()))];
        for b in &self.backends {
            writes.push((size_key(&outbox_prefix(b.name()), p.size), Some(Vec::new())));
        }
        // Durability point: the choice and every backend's obligation are on disk before any
        // publish attempt.
        self.log.store.anchor_write(&writes)?;
        *last = p.size;
        let mut st = self.status.lock().expect("lock poisoned");
        for s in st.values_mut() {
            s.pending += 1;
        }
        Ok(Some(p.size))
    }

    fn record_error(&self, name: &'static str, e: String) {
        let mut st = self.status.lock().expect("lock poisoned");
        if let Some(s) = st.get_mut(name) {
            s.failures += 1;
            let backoff = Duration::from_millis(500)
                .saturating_mul(1 << s.failures.min(16))
                .min(self.backoff_max);
            s.next_try = Some(Instant::now() + backoff);
            tracing::warn!(backend = name, "anchoring failed: {e}");
            s.last_error = Some(e);
            s.last_error_at = Some(now_ms());
        }
    }

    /// Publishes one backend's outbox, oldest first, until it is empty or a publish fails.
    async fn drain(&self, b: &dyn Backend) {
        let name = b.name();
        if let Some(why) = b.halted() {
            let mut st = self.status.lock().expect("lock poisoned");
            if let Some(s) = st.get_mut(name) {
                s.stopped = Some(why);
            }
            return;
        }
        {
            let st = self.status.lock().expect("lock poisoned");
            if st
                .get(name)
                .and_then(|s| s.next_try)
                .is_some_and(|t| Instant::now() < t)
            {
                return;
            }
        }
        let pending = match self.log.store.anchor_scan(&outbox_prefix(name), b"", 1000) {
            Ok(p) => p,
            Err(e) => return self.record_error(name, e.to_string()),
        };
        for (k, _) in pending {
            let size = size_of_key(&k);
            let note = match self.log.store.anchor_scan(&size_key(b"c", size), b"", 1) {
                Ok(v) if !v.is_empty() => String::from_utf8_lossy(&v[0].1).into_owned(),
                Ok(_) => {
                    // A record without its checkpoint cannot be published; drop it loudly.
                    tracing::error!(backend = name, size, "outbox record without a checkpoint");
                    let _ = self.log.store.anchor_write(&[(k, None)]);
                    continue;
                }
                Err(e) => return self.record_error(name, e.to_string()),
            };
            let r = tokio::time::timeout(b.publish_timeout(), b.publish(size, &note))
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {:?}", b.publish_timeout())));
            if let Err(e) = r {
                if let Some(why) = b.halted() {
                    self.status
                        .lock()
                        .expect("lock poisoned")
                        .entry(name)
                        .and_modify(|s| s.stopped = Some(why));
                }
                return self.record_error(name, e);
            }
            let last = {
                let st = self.status.lock().expect("lock poisoned");
                st.get(name).map_or(0, |s| s.last_anchored_size).max(size)
            };
            // Durability point: the confirmation is recorded; a crash before it republishes,
            // which backends tolerate.
            let writes = [
                (k, None),
                (confirmed_key(name), Some(last.to_be_bytes().to_vec())),
            ];
            if let Err(e) = self.log.store.anchor_write(&writes) {
                return self.record_error(name, e.to_string());
            }
            if name == MIRROR {
                if let Some(m) = &self.mirrored {
                    m.store(last, Ordering::Relaxed);
                }
            }
            let mut st = self.status.lock().expect("lock poisoned");
            if let Some(s) = st.get_mut(name) {
                s.last_anchored_size = last;
                s.pending = s.pending.saturating_sub(1);
                s.failures = 0;
                s.next_try = None;
                s.last_error = None;
            }
        }
    }

    /// Streams entries to a backend that streams them, from its durable cursor to the
    /// published size, in chunks.
    async fn stream(&self, b: &dyn Backend) {
        let name = b.name();
        let key = {
            let mut k = b"s".to_vec();
            k.extend_from_slice(name.as_bytes());
            k
        };
        let mut cursor = match self.log.store.anchor_scan(&key, b"", 1) {
            Ok(v) => v.first().map_or(0, |(_, v)| size_of_key(v)),
            Err(e) => return self.record_error(name, e.to_string()),
        };
        let size = self.log.published().size;
        while cursor < size {
            let end = (cursor + 1024).min(size);
            let leaves = match self.log.store.entries(cursor, end) {
                Ok(l) => l,
                Err(e) => return self.record_error(name, e.to_string()),
            };
            let Some(fut) = b.stream_entries(cursor, &leaves) else {
                return;
            };
            let r = tokio::time::timeout(Duration::from_secs(30), fut)
                .await
                .unwrap_or_else(|_| Err("timed out after 30 s".into()));
            if let Err(e) = r {
                return self.record_error(name, format!("streaming entries: {e}"));
            }
            if let Err(e) = self
                .log
                .store
                .anchor_write(&[(key.clone(), Some(end.to_be_bytes().to_vec()))])
            {
                return self.record_error(name, e.to_string());
            }
            cursor = end;
            let mut st = self.status.lock().expect("lock poisoned");
            if let Some(s) = st.get_mut(name) {
                s.streamed_entries = Some(cursor);
            }
        }
    }

    /// Sends the latest checkpoint to every witness and stores it with the cosignatures that
    /// verify.
    async fn witness_round(&self) {
        if self.witnesses.is_empty() {
            return;
        }
        let p = self.log.published();
        let mut lines = Vec::new();
        for w in &self.witnesses {
            match w.add_checkpoint(&self.log, &p).await {
                Ok(line) => lines.push(line),
                Err(e) => tracing::warn!(witness = %w.url, "witness refused or failed: {e}"),
            }
        }
        if lines.is_empty() {
            return;
        }
        let mut note = p.checkpoint.clone();
        for l in lines {
            note.push_str(&l);
        }
        if let Err(e) = self
            .log
            .store
            .anchor_write(&[(b"w".to_vec(), Some(note.clone().into_bytes()))])
        {
            tracing::warn!("storing the witnessed checkpoint: {e}");
            return;
        }
        *self.witnessed.write().expect("lock poisoned") = Some(note);
    }

    /// One anchoring round, all in sequence (tests and the final round at shutdown).
    pub async fn round(&self) {
        self.choose_logged();
        for b in &self.backends {
            self.drain(b.as_ref()).await;
            self.stream(b.as_ref()).await;
        }
        self.witness_round().await;
    }

    fn choose_logged(&self) {
        match self.choose() {
            // Every backend starts on the new checkpoint now, not at its own next tick (the
            // mirror's lag stays near one round).
            Ok(Some(_)) => self.chosen.notify_waiters(),
            Ok(None) => {}
            Err(e) => tracing::error!("choosing a checkpoint for anchoring: {e}"),
        }
    }

    /// Returns the Prometheus lines for anchoring.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write;
        let size = self.log.published().size;
        let _ = writeln!(
            out,
            "# HELP govledger_anchor_lag_entries Entries published but not yet confirmed by the anchor backend.\n# TYPE govledger_anchor_lag_entries gauge"
        );
        for s in self.status() {
            let _ = writeln!(
                out,
                "govledger_anchor_lag_entries{{backend=\"{}\"}} {}",
                s.name,
                size.saturating_sub(s.last_anchored_size)
            );
        }
        let _ = writeln!(
            out,
            "# HELP govledger_anchor_pending Chosen checkpoints not yet confirmed by the backend.\n# TYPE govledger_anchor_pending gauge"
        );
        for s in self.status() {
            let _ = writeln!(
                out,
                "govledger_anchor_pending{{backend=\"{}\"}} {}",
                s.name, s.pending
            );
        }
        let _ = writeln!(
            out,
            "# HELP govledger_anchor_stopped 1 when the backend stopped for good with an alert (see /v1/anchors), else 0.\n# TYPE govledger_anchor_stopped gauge"
        );
        for s in self.status() {
            let _ = writeln!(
                out,
                "govledger_anchor_stopped{{backend=\"{}\"}} {}",
                s.name,
                u8::from(s.stopped.is_some())
            );
        }
        let _ = writeln!(
            out,
            "# HELP govledger_anchor_degraded 1 while the backend's last attempt failed or it stopped, else 0.\n# TYPE govledger_anchor_degraded gauge"
        );
        for s in self.status() {
            let _ = writeln!(
                out,
                "govledger_anchor_degraded{{backend=\"{}\"}} {}",
                s.name,
                u8::from(s.stopped.is_some() || s.last_error.is_some())
            );
        }
        if let Some(m) = self.mirrored_size() {
            let _ = writeln!(
                out,
                "# HELP govledger_mirror_lag_entries Published entries the WORM tile mirror does not hold yet.\n# TYPE govledger_mirror_lag_entries gauge\ngovledger_mirror_lag_entries {}",
                size.saturating_sub(m)
            );
        }
    }
}

fn ticker(interval: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Runs anchoring until `stop` flips: one task chooses checkpoints and talks to the witnesses
/// every `interval`; each backend drains its outbox in its own task, so a backend that hangs
/// (a paused server) delays only itself. At the end, one last round (bounded by 10 s) chooses
/// the final checkpoint and, when the backends answer, publishes it.
pub async fn run(a: Arc<Anchorer>, interval: Duration, stop: tokio::sync::watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (a, mut stop) = (a.clone(), stop.clone());
        tasks.spawn(async move {
            let mut tick = ticker(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {},
                    _ = stop.changed() => return,
                }
                a.choose_logged();
                a.witness_round().await;
            }
        });
    }
    for i in 0..a.backends.len() {
        let (a, mut stop) = (a.clone(), stop.clone());
        tasks.spawn(async move {
            let mut tick = ticker(interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => {},
                    _ = a.chosen.notified() => {},
                    _ = stop.changed() => return,
                }
                let b = a.backends[i].as_ref();
                a.drain(b).await;
                a.stream(b).await;
            }
        });
    }
    let mut stop = stop;
    let _ = stop.changed().await;
    // Backends stuck in a publish are not waited for beyond the final round's bound.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let _ = tokio::time::timeout(Duration::from_secs(10), a.round()).await;
}
