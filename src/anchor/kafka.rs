//! The Kafka anchor: an idempotent producer (`enable.idempotence`, `acks=all`) sends every
//! anchored checkpoint to the checkpoints topic (key = origin, value = the note, headers
//! `tree_size` and `root`) and, when `entries_topic` is set, every entry to that topic (key =
//! the index in decimal, value = the leaf bytes, headers `leaf_hash` (hex) and `origin`).
//! Delivery is confirmed by the broker before the outbox record or the stream cursor moves, so
//! consumers see every checkpoint and entry at least once (tansu has no transactions, so
//! exactly-once is not claimed; consumers de-duplicate by origin and size, or by index).

use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{Backend, BoxFuture};
use crate::config::KafkaConfig;

/// The librdkafka client, for tests and tools that read the topics back.
pub use rdkafka;

/// The Kafka anchor.
pub struct KafkaAnchor {
    /// Replaced when librdkafka reports a fatal error (an idempotent producer that lost its
    /// sequence state cannot send again; a new one starts a new producer id).
    producer: std::sync::RwLock<FutureProducer>,
    config: ClientConfig,
    topic: String,
    entries_topic: Option<String>,
    origin: String,
}

impl KafkaAnchor {
    /// Creates the producer (connections are made lazily; an unreachable broker shows up as
    /// publish errors and anchor lag, never as a blocked append).
    pub fn connect(cfg: &KafkaConfig, origin: &str) -> Result<KafkaAnchor> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "20000")
            .set("socket.keepalive.enable", "true");
        for (k, v) in &cfg.properties {
            c.set(k, v);
        }
        let producer: FutureProducer = c.create().context("creating the Kafka producer")?;
        Ok(KafkaAnchor {
            producer: std::sync::RwLock::new(producer),
            config: c,
            topic: cfg.topic.clone(),
            entries_topic: cfg.entries_topic.clone(),
            origin: origin.to_owned(),
        })
    }
}

impl KafkaAnchor {
    fn producer(&self) -> FutureProducer {
        self.producer.read().expect("lock poisoned").clone()
    }

    /// After an error: replaces the producer if librdkafka says it can never send again.
    fn recover(&self, e: String) -> String {
        use rdkafka::producer::Producer;
        let fatal = self.producer().client().fatal_error();
        if let Some((_, why)) = fatal {
            match self.config.create::<FutureProducer>() {
                Ok(p) => *self.producer.write().expect("lock poisoned") = p,
                Err(c) => {
                    return format!(
                        "{e}; the producer failed fatally ({why}) and could not be recreated: {c}"
                    )
                }
            }
            return format!("{e}; the producer failed fatally ({why}) and was recreated");
        }
        e
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

impl Backend for KafkaAnchor {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn publish<'a>(&'a self, size: u64, checkpoint: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            use ledger_format::anchor::{HEADER_ROOT, HEADER_TREE_SIZE};
            let root = ledger_format::checkpoint::SignedCheckpoint::parse(checkpoint.as_bytes())
                .map(|s| s.checkpoint.root.to_base64())
                .unwrap_or_default();
            let size_text = size.to_string();
            let headers = OwnedHeaders::new()
                .insert(header(HEADER_TREE_SIZE, &size_text))
                .insert(header(HEADER_ROOT, &root));
            let record = FutureRecord::to(&self.topic)
                .key(self.origin.as_bytes())
                .payload(checkpoint.as_bytes())
                .headers(headers);
            self.producer()
                .send(record, Duration::from_secs(20))
                .await
                .map(|_| ())
                .map_err(|(e, _)| self.recover(format!("topic {}: {e}", self.topic)))
        })
    }

    fn stream_entries<'a>(
        &'a self,
        start: u64,
        leaves: &'a [Vec<u8>],
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        let topic = self.entries_topic.as_ref()?;
        Some(Box::pin(async move {
            use ledger_format::anchor::{HEADER_LEAF_HASH, HEADER_ORIGIN};
            // Send the whole chunk, then wait for every delivery report.
            let producer = self.producer();
            let mut pending = Vec::with_capacity(leaves.len());
            for (i, leaf) in leaves.iter().enumerate() {
                let key = (start + i as u64).to_string();
                let hash = ledger_format::leaf_hash(leaf).to_hex();
                let headers = OwnedHeaders::new()
                    .insert(header(HEADER_LEAF_HASH, &hash))
                    .insert(header(HEADER_ORIGIN, &self.origin));
                let record = FutureRecord::to(topic)
                    .key(key.as_bytes())
                    .payload(leaf.as_slice())
                    .headers(headers);
                // Enqueued now; delivery is confirmed below.
                let delivery = producer
                    .send_result(record)
                    .map_err(|(e, _)| self.recover(format!("topic {topic}: {e}")))?;
                pending.push(delivery);
            }
            for p in pending {
                p.await
                    .map_err(|_| format!("topic {topic}: the producer was dropped"))?
                    .map_err(|(e, _)| self.recover(format!("topic {topic}: {e}")))?;
            }
            Ok(())
        }))
    }
}
