//! The Kafka anchor against a real broker (tansu, started by `scripts/services.sh`; address in
//! GOVLEDGER_TEST_KAFKA): checkpoints to one topic, every entry to another, read back by a
//! consumer and verified.

use std::collections::BTreeMap;
use std::time::Duration;

use govledger::anchor::kafka::rdkafka;
use govledger::config::KafkaConfig;
use ledger_format::checkpoint::SignedCheckpoint;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;

use crate::harness::{audit, start_with};

/// The broker the tests use; panics with how to start it.
pub fn brokers() -> String {
    std::env::var("GOVLEDGER_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("GOVLEDGER_TEST_KAFKA is not set: run the tests with scripts/test.sh, which starts tansu (Kafka) on 127.0.0.1:9092")
    })
}

/// Creates fresh topics (tansu does not auto-create) and returns the config naming them.
pub async fn topics(tag: &str) -> KafkaConfig {
    let n = rand::random::<u32>();
    let (cp, entries) = (format!("cp-{tag}-{n}"), format!("entries-{tag}-{n}"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let new = [
        NewTopic::new(&cp, 1, TopicReplication::Fixed(1)),
        NewTopic::new(&entries, 1, TopicReplication::Fixed(1)),
    ];
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    KafkaConfig {
        brokers: brokers(),
        topic: cp,
        entries_topic: Some(entries),
        properties: BTreeMap::new(),
    }
}

/// Reads every message of `topic` from the beginning: (key, payload, headers).
pub fn read_all(topic: &str, expect: usize) -> Vec<(String, Vec<u8>, BTreeMap<String, String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", format!("test-{}", rand::random::<u32>()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.len() < expect && std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.unwrap();
        let mut headers = BTreeMap::new();
        if let Some(h) = m.headers() {
            for h in h.iter() {
                headers.insert(
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        out.push((
            String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            m.payload().unwrap_or_default().to_vec(),
            headers,
        ));
    }
    out
}

#[tokio::test]
async fn checkpoints_and_entries_reach_kafka() {
    let _services = crate::harness::SERVICES.read().await;
    let cfg = topics("basic").await;
    let (cp_topic, entries_topic) = (cfg.topic.clone(), cfg.entries_topic.clone().unwrap());
    let s = start_with(move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.kafka = Some(cfg);
    })
    .await;
    for i in 0..7 {
        s.submit(audit(i), None).await;
    }
    let mut status = serde_json::Value::Null;
    for _ in 0..300 {
        let (_, a) = s.get_json("/v1/anchors").await;
        status = a["backends"][1].clone();
        if status["last_anchored_size"] == 7 && status["streamed_entries"] == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["last_anchored_size"], 7, "{status}");
    assert_eq!(status["streamed_entries"], 7, "{status}");
    let vkey = s.vkey.clone();
    let (cps, entries) =
        tokio::task::spawn_blocking(move || (read_all(&cp_topic, 1), read_all(&entries_topic, 7)))
            .await
            .unwrap();
    let (key, note, headers) = cps.last().unwrap();
    assert_eq!(key, "localhost/govledger");
    let (signed, _) = SignedCheckpoint::open(note, &vkey, &[]).unwrap();
    assert_eq!(headers["tree_size"], signed.checkpoint.size.0.to_string());
    assert_eq!(headers["root"], signed.checkpoint.root.to_base64());
    let mut seen: Vec<u64> = entries.iter().map(|(k, _, _)| k.parse().unwrap()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, (0..7).collect::<Vec<_>>());
    for (_, leaf, h) in &entries {
        assert_eq!(h["leaf_hash"], ledger_format::leaf_hash(leaf).to_hex());
        assert_eq!(h["origin"], "localhost/govledger");
    }
    s.stop().await;
}
