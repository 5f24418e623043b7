//! Replicated durability (`durability = "replicated"`): every group commit is produced to the
//! write-ahead topic before the sequencer signs a checkpoint over it or answers anyone, so an
//! acknowledged entry survives the loss of this machine. Records are
//! [`ledger_format::wal::WalRecord`]s (ledger-format SPEC.md §10) on partition 0 of the topic,
//! produced by an idempotent producer with `acks=all`.
//!
//! - Writing: [`records_for`] turns a committed group into records (split below the broker's
//!   record limit, each naming the root after its own entries); a [`Replicator`] delivers them
//!   and returns only when the cluster acknowledged every one.
//! - Starting: [`reconcile`] reads the topic before the log opens: records beyond the store are
//!   checked and applied, entries in the store beyond the topic (fsynced, never acknowledged)
//!   are produced again, and a record that disagrees with the store stops the start.
//! - Restoring: `govledgerd restore` applies the topic beyond what the bucket held, with the
//!   same checks ([`apply_topic`]).

use std::sync::Arc;

use ledger_format::leaf::Leaf;
use ledger_format::tree::CompactRange;
use ledger_format::wal::{continue_tree, split, Continuation, WalError, WalRecord};
use ledger_format::{Hash, TreeSize};

use crate::store::{Group, Store, StoreError, StoreHashes};
use crate::tree_writer::TreeWriter;

/// The largest record value produced, under Kafka's default 1 MB record limit.
pub const MAX_RECORD_BYTES: usize = 900_000;

/// Delivers write-ahead records to the cluster.
pub trait Replicator: Send + Sync {
    /// Produces `records` in order and returns once the cluster acknowledged every one
    /// (`acks=all`); an error means some may or may not be in the topic.
    fn replicate(&self, records: &[WalRecord]) -> Result<(), String>;
}

/// Why the topic and the store could not be brought together.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The topic or the store could not be read or written.
    #[error("{0}")]
    Io(String),
    /// A record does not continue the tree (a gap, a fork, a malformed record).
    #[error("write-ahead topic, record at offset {offset}: {error}")]
    Invalid { offset: i64, error: WalError },
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> ReplayError {
        ReplayError::Io(e.to_string())
    }
}

/// Returns the root of the stored tree at `size`.
fn root_at(store: &dyn Store, size: u64) -> Result<Hash, ReplayError> {
    CompactRange::from_reader(TreeSize(size), &StoreHashes::new(store))
        .map(|c| c.root())
        .map_err(|e| ReplayError::Io(format!("reading the stored tree at size {size}: {e}")))
}

/// Returns the records of the group `leaves` that starts at index `first` and is durable in
/// `store`; `root` is the root after the whole group. Roots between records are read from the
/// store (O(log n) each).
pub fn records_for(
    store: &dyn Store,
    first: u64,
    leaves: &[Vec<u8>],
    root: Hash,
) -> Result<Vec<WalRecord>, StoreError> {
    let group_end = first + leaves.len() as u64;
    let parts = split(leaves, MAX_RECORD_BYTES);
    let mut out = Vec::with_capacity(parts.len());
    for (a, b) in parts {
        let end = first + b as u64;
        let part_root = if end == group_end {
            root
        } else {
            CompactRange::from_reader(TreeSize(end), &StoreHashes::new(store))
                .map_err(|e| StoreError::Corrupt(format!("reading the tree at {end}: {e}")))?
                .root()
        };
        out.push(WalRecord {
            first: first + a as u64,
            root: part_root,
            group_end,
            leaves: leaves[a..b].to_vec(),
        });
    }
    Ok(out)
}

/// Applies records to a store as they are read from the topic, checking that each continues
/// the tree; entries go to the store one record at a time (each record one durable group).
pub struct Applier<'a> {
    store: &'a dyn Store,
    compact: CompactRange,
    writer: TreeWriter,
    last_ms: u64,
    /// Entries applied from the topic.
    pub applied: u64,
    /// The largest tree size any record named.
    pub topic_end: u64,
    /// Records read.
    pub records: u64,
}

impl<'a> Applier<'a> {
    /// Starts after the tree in `store` (created empty when the store is new).
    pub fn new(store: &'a dyn Store) -> Result<Applier<'a>, ReplayError> {
        let head = match store.head()? {
            Some(h) => h,
            None => {
                store.append(&Group::empty(0))?;
                store
                    .head()?
                    .ok_or_else(|| ReplayError::Io("the new store has no head".into()))?
            }
        };
        let compact = CompactRange::from_reader(TreeSize(head.size), &StoreHashes::new(store))
            .map_err(|e| ReplayError::Io(format!("reading the stored tree: {e}")))?;
        Ok(Applier {
            store,
            writer: TreeWriter::resume(compact.clone()),
            compact,
            last_ms: head.last_ms,
            applied: 0,
            topic_end: 0,
            records: 0,
        })
    }

    /// Returns the size of the tree after what was applied.
    pub fn size(&self) -> u64 {
        self.compact.size().0
    }

    /// Checks and applies one record read at `offset`.
    pub fn apply(&mut self, offset: i64, record: &WalRecord) -> Result<(), ReplayError> {
        let invalid = |error| ReplayError::Invalid { offset, error };
        self.records += 1;
        self.topic_end = self.topic_end.max(record.size());
        match continue_tree(&self.compact, record).map_err(invalid)? {
            Continuation::Overlap { size, root } => {
                let have = root_at(self.store, size)?;
                if have != root {
                    return Err(invalid(WalError::Fork {
                        size,
                        named: root,
                        computed: have,
                    }));
                }
            }
            Continuation::Append { from, compact } => {
                for leaf in &record.leaves[(from - record.first) as usize..] {
                    let parsed = Leaf::parse(leaf).map_err(|e| {
                        invalid(WalError::Malformed(format!(
                            "entry {}: {e}",
                            self.writer.size()
                        )))
                    })?;
                    if parsed.logged_at_ms < self.last_ms {
                        return Err(invalid(WalError::Malformed(format!(
                            "entry {}: its timestamp goes backwards",
                            self.writer.size()
                        ))));
                    }
                    self.last_ms = parsed.logged_at_ms;
                    self.writer
                        .append(self.store, leaf.clone(), ledger_format::leaf_hash(leaf))?;
                }
                let changes = self.writer.take_changes();
                // Durability point: the record's entries and tiles, fsynced together.
                self.store.append(&Group {
                    entries: Vec::new(),
                    leaves: changes.leaves,
                    chunks: changes.chunks,
                    size: compact.size().0,
                    last_ms: self.last_ms,
                })?;
                self.applied += compact.size().0 - from;
                self.compact = compact;
            }
        }
        Ok(())
    }
}

/// Reads every record of the topic and applies those beyond the store (see [`Applier`]).
pub fn apply_topic<'a>(store: &'a dyn Store, wal: &WalReader) -> Result<Applier<'a>, ReplayError> {
    let mut applier = Applier::new(store)?;
    let mut last_report = std::time::Instant::now();
    wal.read(&mut |offset, record| {
        applier.apply(offset, &record)?;
        if last_report.elapsed().as_secs() >= 5 {
            tracing::info!(
                "write-ahead topic: {} records read, {} entries applied, tree size {}",
                applier.records,
                applier.applied,
                applier.size()
            );
            last_report = std::time::Instant::now();
        }
        Ok(())
    })?;
    Ok(applier)
}

/// What [`reconcile`] did at start.
#[derive(Clone, Debug, Default)]
pub struct Reconciled {
    pub records: u64,
    /// Entries the topic held beyond the store, now applied.
    pub applied: u64,
    /// Entries the store held beyond the topic, now produced.
    pub produced: u64,
    pub size: u64,
}

/// Brings the store and the topic together before the log opens (module docs).
pub fn reconcile(
    store: &Arc<dyn Store>,
    wal: &WalReader,
    replicator: &dyn Replicator,
) -> Result<Reconciled, ReplayError> {
    let applier = apply_topic(store.as_ref(), wal)?;
    let (records, applied, topic_end, size) = (
        applier.records,
        applier.applied,
        applier.topic_end,
        applier.size(),
    );
    let mut produced = 0;
    // What a checkpoint covers was replicated before it was signed (or the log ran with local
    // durability then, and the bucket holds it): only entries beyond both are produced.
    let signed = store
        .head()?
        .and_then(|h| h.checkpoint)
        .and_then(|n| ledger_format::checkpoint::SignedCheckpoint::parse(n.as_bytes()).ok())
        .map_or(0, |c| c.checkpoint.size.0);
    let from = topic_end.max(signed.min(size));
    if from < size {
        // Fsynced here, never acknowledged (the process stopped before the delivery report):
        // produce them now, so that nothing is ever signed that the topic lacks.
        let mut start = from;
        while start < size {
            let end = (start + 4096).min(size);
            let leaves = store.entries(start, end)?;
            let root = root_at(store.as_ref(), end)?;
            let recs = records_for(store.as_ref(), start, &leaves, root)?;
            replicator
                .replicate(&recs)
                .map_err(|e| ReplayError::Io(format!("producing entries {start}..{end}: {e}")))?;
            produced += end - start;
            start = end;
        }
    }
    Ok(Reconciled {
        records,
        applied,
        produced,
        size,
    })
}

#[cfg(feature = "kafka")]
pub use kafka::{Wal, WalReader};

/// Without the `kafka` feature there is no topic to read.
#[cfg(not(feature = "kafka"))]
pub struct WalReader;

#[cfg(not(feature = "kafka"))]
impl WalReader {
    /// A reader that refuses: this build cannot reach Kafka.
    pub fn new(_cfg: &crate::config::ReplicationConfig, _origin: &str) -> WalReader {
        WalReader
    }

    fn read(
        &self,
        _visit: &mut dyn FnMut(i64, WalRecord) -> Result<(), ReplayError>,
    ) -> Result<(), ReplayError> {
        Err(ReplayError::Io(
            "this build has no `kafka` feature: the write-ahead topic cannot be read".into(),
        ))
    }
}

#[cfg(feature = "kafka")]
mod kafka {
    use std::time::Duration;

    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Header, Message, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Offset, TopicPartitionList};

    use super::{ReplayError, Replicator};
    use crate::config::ReplicationConfig;
    use ledger_format::wal::WalRecord;

    /// The write-ahead topic's producer.
    pub struct Wal {
        /// Replaced when librdkafka reports a fatal error (an idempotent producer that lost
        /// its sequence state cannot send again).
        producer: std::sync::RwLock<FutureProducer>,
        config: ClientConfig,
        topic: String,
        origin: String,
        timeout: Duration,
        /// Drives the delivery reports; `None` only while dropping.
        rt: Option<tokio::runtime::Runtime>,
    }

    impl Drop for Wal {
        fn drop(&mut self) {
            // Never blocks: a Wal may be dropped on an async runtime's thread.
            if let Some(rt) = self.rt.take() {
                rt.shutdown_background();
            }
        }
    }

    impl Wal {
        /// Creates the producer (connections are made lazily).
        pub fn connect(cfg: &ReplicationConfig, origin: &str) -> anyhow::Result<Wal> {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &cfg.brokers)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "0")
                .set("message.timeout.ms", cfg.timeout_ms.to_string())
                .set("socket.keepalive.enable", "true");
            for (k, v) in &cfg.properties {
                c.set(k, v);
            }
            let producer: FutureProducer = c.create()?;
            Ok(Wal {
                producer: std::sync::RwLock::new(producer),
                config: c,
                topic: cfg.topic.clone(),
                origin: origin.to_owned(),
                timeout: Duration::from_millis(cfg.timeout_ms),
                rt: Some(
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?,
                ),
            })
        }

        fn producer(&self) -> FutureProducer {
            self.producer.read().expect("lock poisoned").clone()
        }

        /// After a failed delivery: replaces the producer. A timed-out message makes
        /// librdkafka's idempotent producer bump its epoch, which tansu (the test broker)
        /// answers with ProducerFenced on every later send (measured); a fatal error means it
        /// can never send again. A new producer starts with a new producer id either way, and
        /// the sequencer resends everything that was not acknowledged.
        fn recover(&self, e: String) -> String {
            match self.config.create::<FutureProducer>() {
                Ok(p) => *self.producer.write().expect("lock poisoned") = p,
                Err(c) => return format!("{e}; the producer could not be recreated: {c}"),
            }
            e
        }
    }

    impl Replicator for Wal {
        fn replicate(&self, records: &[WalRecord]) -> Result<(), String> {
            use ledger_format::anchor::{HEADER_ORIGIN, HEADER_ROOT, HEADER_TREE_SIZE};
            let producer = self.producer();
            let topic = &self.topic;
            let rt = self.rt.as_ref().ok_or("the producer is closing")?;
            rt.block_on(async {
                let mut pending = Vec::with_capacity(records.len());
                for r in records {
                    let size = r.size().to_string();
                    let root = r.root.to_base64();
                    let headers = OwnedHeaders::new()
                        .insert(Header {
                            key: HEADER_TREE_SIZE,
                            value: Some(&size),
                        })
                        .insert(Header {
                            key: HEADER_ROOT,
                            value: Some(&root),
                        })
                        .insert(Header {
                            key: HEADER_ORIGIN,
                            value: Some(&self.origin),
                        });
                    let payload = r.encode();
                    let record = FutureRecord::to(topic)
                        .partition(0)
                        .key(self.origin.as_bytes())
                        .payload(&payload)
                        .headers(headers);
                    let delivery = producer
                        .send_result(record)
                        .map_err(|(e, _)| self.recover(format!("topic {topic}: {e}")))?;
                    pending.push(delivery);
                }
                for p in pending {
                    // librdkafka fails a message after message.timeout.ms; the outer bound
                    // only guards against a lost report.
                    let report = tokio::time::timeout(self.timeout * 2, p)
                        .await
                        .map_err(|_| {
                            format!(
                                "topic {topic}: no delivery report within {:?}",
                                self.timeout * 2
                            )
                        })?
                        .map_err(|_| format!("topic {topic}: the producer was dropped"))?;
                    report.map_err(|(e, _)| self.recover(format!("topic {topic}: {e}")))?;
                }
                Ok(())
            })
        }
    }

    /// Reads the write-ahead topic from its start to its end.
    pub struct WalReader {
        config: ClientConfig,
        topic: String,
        origin: String,
        timeout: Duration,
    }

    impl WalReader {
        /// A reader of the records of the log `origin` in the topic of `cfg`.
        pub fn new(cfg: &ReplicationConfig, origin: &str) -> WalReader {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &cfg.brokers)
                .set(
                    "group.id",
                    format!("govledger-reader-{}", rand::random::<u64>()),
                )
                .set("enable.auto.commit", "false")
                // The end is where the fetch reports it (see `read`); the log never writes
                // transactions, so nothing is filtered.
                .set("enable.partition.eof", "true")
                .set("isolation.level", "read_uncommitted");
            for (k, v) in &cfg.properties {
                c.set(k, v);
            }
            WalReader {
                config: c,
                topic: cfg.topic.clone(),
                origin: origin.to_owned(),
                timeout: Duration::from_millis(cfg.timeout_ms.max(5_000)),
            }
        }

        /// Calls `visit` with every record, in offset order, up to the end of the partition:
        /// where the fetch reaches it (partition EOF), not where the broker's offset listing
        /// puts it. Some brokers (tansu) list the end as the newest batch's base offset plus
        /// one, short of it whenever that batch held several records.
        pub fn read(
            &self,
            visit: &mut dyn FnMut(i64, WalRecord) -> Result<(), ReplayError>,
        ) -> Result<(), ReplayError> {
            let io = |e: String| ReplayError::Io(format!("write-ahead topic {}: {e}", self.topic));
            let consumer: BaseConsumer = self.config.create().map_err(|e| io(e.to_string()))?;
            // The listed high watermark only tells an empty partition (it is past the start
            // as soon as one record is there), never where the end is.
            let (low, high) = consumer
                .fetch_watermarks(&self.topic, 0, self.timeout)
                .map_err(|e| io(format!("reading its offsets: {e}")))?;
            if high <= low {
                return Ok(());
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&self.topic, 0, Offset::Offset(low))
                .map_err(|e| io(e.to_string()))?;
            consumer.assign(&tpl).map_err(|e| io(e.to_string()))?;
            let mut next = low;
            let mut idle = std::time::Instant::now();
            loop {
                let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                    if idle.elapsed() > self.timeout * 6 {
                        return Err(io(format!(
                            "no record at offset {next} and no end of the partition within {:?} (its listed end is {high})",
                            self.timeout * 6
                        )));
                    }
                    continue;
                };
                idle = std::time::Instant::now();
                let m = match m {
                    Ok(m) => m,
                    Err(rdkafka::error::KafkaError::PartitionEOF(_)) => return Ok(()),
                    Err(e) => return Err(io(e.to_string())),
                };
                let offset = m.offset();
                if offset < next {
                    continue;
                }
                // A record keyed by another origin belongs to another log: never applied.
                if m.key() != Some(self.origin.as_bytes()) {
                    return Err(ReplayError::Invalid {
                        offset,
                        error: ledger_format::wal::WalError::Malformed(format!(
                            "its key is {:?}, not this log's origin {:?}: another log writes to this topic",
                            String::from_utf8_lossy(m.key().unwrap_or_default()),
                            self.origin
                        )),
                    });
                }
                let record = WalRecord::decode(m.payload().unwrap_or_default())
                    .map_err(|error| ReplayError::Invalid { offset, error })?;
                visit(offset, record)?;
                next = offset + 1;
            }
        }
    }
}
