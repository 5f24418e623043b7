//! Replicated durability against the real tansu (Kafka) and SeaweedFS (S3) that
//! `scripts/services.sh` starts: the disaster drill (SIGKILL, the data dir deleted, `govledgerd
//! restore` from the bucket and the write-ahead topic), kill -9 with the data dir kept (the
//! start reconciles the store with the topic), and Kafka paused under load.
//! Cycles: GOVLEDGER_DRILL_CYCLES (default 5; scripts/drill.sh runs 50).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use govledger::anchor::kafka::rdkafka;
use ledger_format::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_format::note::VerifierKey;
use ledger_format::receipt::Receipt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::{json, Value};

use crate::crash::spawn_serve;
use crate::harness::{signal, start_with, SERVICES};

/// Creates a write-ahead topic with one partition (tansu does not auto-create).
pub async fn wal_topic(tag: &str) -> String {
    let name = format!("wal-{tag}-{}", rand::random::<u32>());
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", crate::kafka::brokers())
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
    name
}

pub fn replication(topic: &str) -> govledger::config::ReplicationConfig {
    govledger::config::ReplicationConfig {
        brokers: crate::kafka::brokers(),
        topic: topic.to_owned(),
        timeout_ms: 2_000,
        properties: Default::default(),
    }
}

/// Writes the config of a replicated, mirrored log (key file outside the data dir).
fn config(work: &Path, bucket: &str, topic: &str) -> PathBuf {
    let path = work.join("govledger.toml");
    std::fs::write(
        &path,
        format!(
            r#"data_dir = {data:?}
key_file = {key:?}
durability = "replicated"
[replication]
brokers = {brokers:?}
topic = {topic:?}
timeout_ms = 2000
[anchors]
interval_ms = 200
backoff_max_ms = 500
[anchors.s3]
bucket = {bucket:?}
prefix = "anchors"
endpoint = {endpoint:?}
path_style = true
retention_days = 1
tiles = true
"#,
            data = work.join("data"),
            key = work.join("log.key"),
            brokers = crate::kafka::brokers(),
            endpoint = crate::s3::endpoint(),
        ),
    )
    .unwrap();
    path
}

fn cycles() -> usize {
    std::env::var("GOVLEDGER_DRILL_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// 16 clients submit single entries with entry_ids until the server dies; returns every
/// receipt handed out, and the entries each client sent without an answer.
async fn load_until_killed(
    url: &str,
    tag: &str,
    child: &mut std::process::Child,
    run: Duration,
) -> Vec<Receipt> {
    let http = reqwest::Client::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Receipt>();
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (http, url, tx, tag) = (http.clone(), url.to_owned(), tx.clone(), tag.to_owned());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let body = json!({"kind": "audit", "entry_id": format!("{tag}-{c}-{i}"), "body": {
                    "event_type": "T", "component": "drill", "action": "a", "details": {"c": c, "i": i}, "compliance_tags": []}});
                let Ok(r) = http.post(format!("{url}/v1/entries")).body(body.to_string()).send().await else { break };
                if r.status() == 200 {
                    if let Ok(rec) = r.json::<Receipt>().await {
                        let _ = tx.send(rec);
                    }
                }
            }
        }));
    }
    drop(tx);
    // The run starts with the first receipt (a new topic's metadata takes a moment).
    let mut out = Vec::new();
    if let Ok(Some(first)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        out.push(first);
    }
    tokio::time::sleep(run).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        let _ = t.await;
    }
    while let Some(r) = rx.recv().await {
        out.push(r);
    }
    out
}

/// Checks that every receipt's entry is in the log at `url`, byte for byte, that every
/// checkpoint handed out is consistent with the log's head, and that a retry of an
/// acknowledged entry is answered with its original index.
/// Which acknowledged entries and checkpoints a check reads: everything, or those of the last
/// cycle (from these positions on) and a random sample of the older ones.
#[derive(Clone, Copy)]
enum Scope {
    All,
    Recent { acked: usize, handed: usize },
}

/// Returns the items of `all` that `scope` checks (recent ones from `from`, 200 sampled).
fn pick<T>(all: &[T], from: Option<usize>) -> Vec<&T> {
    use rand::Rng;
    match from {
        None => all.iter().collect(),
        Some(from) => {
            let mut out: Vec<&T> = all[from.min(all.len())..].iter().collect();
            let mut rng = rand::thread_rng();
            if !all.is_empty() {
                out.extend((0..200).map(|_| &all[rng.gen_range(0..all.len())]));
            }
            out
        }
    }
}

async fn check_log(
    url: &str,
    vkey: &VerifierKey,
    acked: &[Receipt],
    handed: &[Checkpoint],
    scope: Scope,
) -> u64 {
    let (acked_from, handed_from) = match scope {
        Scope::All => (None, None),
        Scope::Recent { acked, handed } => (Some(acked), Some(handed)),
    };
    let (acked, handed) = (pick(acked, acked_from), pick(handed, handed_from));
    let http = reqwest::Client::new();
    let head_text = http
        .get(format!("{url}/checkpoint"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let head = SignedCheckpoint::open(head_text.as_bytes(), vkey, &[])
        .unwrap()
        .0
        .checkpoint;
    for r in &acked {
        let got: Value = http
            .get(format!("{url}/v1/entries/{}", r.index))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            got["leaf"],
            r.leaf.as_str(),
            "entry {} lost or changed",
            r.index
        );
    }
    for old in &handed {
        if old.size.0 == 0 || old.size > head.size {
            assert!(
                old.size <= head.size,
                "a checkpoint of size {} was handed out, the log has {}",
                old.size,
                head.size
            );
            continue;
        }
        crate::crash::assert_consistent(&http, url, old, &head, "the restored log").await;
    }
    // Retries of acknowledged entries: the same index, nothing appended twice.
    for r in acked.iter().rev().take(20) {
        let leaf = ledger_format::leaf::Leaf::parse(&base64_decode(&r.leaf)).unwrap();
        let body = json!({"kind": "audit", "entry_id": leaf.entry_id, "body": serde_json::from_slice::<Value>(&leaf.body).unwrap()});
        let again: Receipt = http
            .post(format!("{url}/v1/entries"))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(again.index, r.index, "a retry was logged twice");
    }
    head.size.0
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn checkpoints_of(acked: &[Receipt], vkey: &VerifierKey) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = Vec::new();
    for r in acked {
        r.verify(vkey).unwrap();
        let cp = SignedCheckpoint::open(r.checkpoint.as_bytes(), vkey, &[])
            .unwrap()
            .0
            .checkpoint;
        if out.last().map(|c| c.size) != Some(cp.size) {
            out.push(cp);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disaster_drill_restore_loses_no_acknowledged_entry() {
    let _services = SERVICES.read().await;
    let (bucket, _) = crate::s3::bucket(true).await;
    let topic = wal_topic("drill").await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), &bucket, &topic);
    let data = work.path().join("data");
    let mut acked: Vec<Receipt> = Vec::new();
    let mut vkey: Option<VerifierKey> = None;
    let mut scope = Scope::Recent {
        acked: 0,
        handed: 0,
    };
    for cycle in 0..cycles() {
        let (mut child, url, key) = spawn_serve(&["--config".as_ref(), cfg.as_os_str()]);
        if let Some(k) = &vkey {
            assert_eq!(*k, key);
        }
        vkey = Some(key.clone());
        let handed = checkpoints_of(&acked, &key);
        let size = check_log(&url, &key, &acked, &handed, scope).await;
        scope = Scope::Recent {
            acked: acked.len(),
            handed: handed.len(),
        };
        assert!(size >= acked.len() as u64);
        let run = Duration::from_millis(800 + 300 * (cycle as u64 % 4));
        let got = load_until_killed(&url, &format!("d{cycle}"), &mut child, run).await;
        assert!(!got.is_empty(), "cycle {cycle}: no entry was acknowledged");
        acked.extend(got);
        // The machine is lost: its data dir with it.
        std::fs::remove_dir_all(&data).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_govledgerd"))
            .args(["restore", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "cycle {cycle}: restore failed: {stdout}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains("from the write-ahead topic"), "{stdout}");
    }
    // After the last restore: every acknowledged entry, every checkpoint, and appends go on.
    let (mut child, url, key) = spawn_serve(&["--config".as_ref(), cfg.as_os_str()]);
    let handed = checkpoints_of(&acked, &key);
    let size = check_log(&url, &key, &acked, &handed, Scope::All).await;
    let r = reqwest::Client::new()
        .post(format!("{url}/v1/entries"))
        .body(json!({"kind": "audit", "body": {"event_type": "T", "component": "drill", "action": "after", "details": {}, "compliance_tags": []}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Receipt>().await.unwrap().index, size);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_replicated_mode_reconciles_with_the_topic() {
    let _services = SERVICES.read().await;
    let (bucket, _) = crate::s3::bucket(true).await;
    let topic = wal_topic("kill").await;
    let work = tempfile::tempdir().unwrap();
    let cfg = config(work.path(), &bucket, &topic);
    let mut acked: Vec<Receipt> = Vec::new();
    let mut scope = Scope::Recent {
        acked: 0,
        handed: 0,
    };
    for cycle in 0..cycles() {
        let (mut child, url, key) = spawn_serve(&["--config".as_ref(), cfg.as_os_str()]);
        let handed = checkpoints_of(&acked, &key);
        check_log(&url, &key, &acked, &handed, scope).await;
        scope = Scope::Recent {
            acked: acked.len(),
            handed: handed.len(),
        };
        let run = Duration::from_millis(300 + 200 * (cycle as u64 % 3));
        let got = load_until_killed(&url, &format!("k{cycle}"), &mut child, run).await;
        assert!(!got.is_empty(), "cycle {cycle}: no entry was acknowledged");
        acked.extend(got);
    }
    // The topic alone holds every acknowledged entry, each record continuing the tree.
    let reader =
        govledger::replication::WalReader::new(&replication(&topic), "localhost/govledger");
    let mut leaves: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    let mut compact = ledger_format::tree::CompactRange::new();
    reader
        .read(&mut |_, rec| {
            if let ledger_format::wal::Continuation::Append {
                from,
                compact: next,
            } = ledger_format::wal::continue_tree(&compact, &rec).unwrap()
            {
                for (i, l) in rec.leaves[(from - rec.first) as usize..].iter().enumerate() {
                    leaves.insert(from + i as u64, l.clone());
                }
                compact = next;
            }
            Ok(())
        })
        .unwrap();
    for r in &acked {
        assert_eq!(
            leaves.get(&r.index).map(|l| base64_encode(l)),
            Some(r.leaf.clone()),
            "entry {} is not in the topic",
            r.index
        );
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_kafka_refuses_appends_and_they_resume_by_themselves() {
    let _services = SERVICES.write().await;
    let topic = wal_topic("pause").await;
    let rc = replication(&topic);
    let s = start_with(move |c| {
        c.durability = govledger::config::Durability::Replicated;
        c.replication = Some(rc);
    })
    .await;
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            s.submit(crate::harness::audit(i), Some(&format!("p{i}")))
                .await,
        );
    }
    signal("GOVLEDGER_TANSU_PID", "STOP");
    let refused = {
        let (st, v) = s
            .post(
                &json!({"kind": "audit", "entry_id": "during", "body": crate::harness::audit(100)})
                    .to_string(),
            )
            .await;
        (st, v)
    };
    let health = s.get("/healthz").await.status().as_u16();
    let metrics = s.get("/metrics").await.text().await.unwrap();
    let published = s.tree_size().await;
    signal("GOVLEDGER_TANSU_PID", "CONT");
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert_eq!(
        refused.1["error"], "replication_unavailable",
        "{}",
        refused.1
    );
    assert_eq!(health, 503);
    assert!(
        metrics.contains("govledger_replication_unavailable 1"),
        "{metrics}"
    );
    assert_eq!(published, 5, "nothing unreplicated was signed");
    // Kafka is back: appends resume by themselves; the refused entry, retried, is logged once.
    let mut ok = None;
    for _ in 0..100 {
        let (st, v) = s
            .post(
                &json!({"kind": "audit", "entry_id": "during", "body": crate::harness::audit(100)})
                    .to_string(),
            )
            .await;
        if st == 200 {
            ok = Some(v);
            break;
        }
        assert_eq!(st, 503, "{v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v = ok.expect("appends did not resume after Kafka came back");
    assert_eq!(v["index"], 5);
    acked.push(s.submit(crate::harness::audit(101), Some("after")).await);
    assert_eq!(s.get("/healthz").await.status(), 200);
    s.stop().await;
    // Every acknowledged entry is in the topic.
    let reader =
        govledger::replication::WalReader::new(&replication(&topic), "localhost/govledger");
    let mut end = 0;
    reader
        .read(&mut |_, rec| {
            end = end.max(rec.size());
            Ok(())
        })
        .unwrap();
    assert!(end >= 7, "the topic ends at {end}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_a_kafka_record_is_split_into_records_that_say_so() {
    let _services = SERVICES.read().await;
    let topic = wal_topic("split").await;
    let rc = replication(&topic);
    let s = start_with(move |c| {
        c.durability = govledger::config::Durability::Replicated;
        c.replication = Some(rc);
        c.max_body_bytes = 8 << 20;
    })
    .await;
    // One batch of 24 entries of ~60 KB: about 1.4 MB, above the 900 kB record limit.
    let big = "x".repeat(60_000);
    let entries: Vec<_> = (0..24)
        .map(|i| {
            json!({"kind": "audit", "body": {"event_type": "T", "component": "split", "action": "a",
            "details": {"i": i, "pad": big}, "compliance_tags": []}})
        })
        .collect();
    let (st, v) = s.post(&json!({"entries": entries}).to_string()).await;
    assert_eq!(st, 200, "{v}");
    s.stop().await;
    let reader =
        govledger::replication::WalReader::new(&replication(&topic), "localhost/govledger");
    let mut records = Vec::new();
    reader
        .read(&mut |_, rec| {
            records.push((rec.first, rec.size(), rec.group_end, rec.encode().len()));
            Ok(())
        })
        .unwrap();
    assert!(records.len() >= 2, "{records:?}");
    assert!(
        records.iter().all(|r| r.2 == 24 && r.3 <= 900_000),
        "{records:?}"
    );
    assert_eq!(records.first().unwrap().0, 0);
    assert_eq!(records.last().unwrap().1, 24);
    for w in records.windows(2) {
        assert_eq!(w[0].1, w[1].0, "consecutive records: {records:?}");
    }
}

/// The reader finds the end of the topic where its fetch reaches it, not where the broker's
/// offset listing says: tansu answers ListOffsets `latest` with the base offset of the newest
/// batch plus one, short of the end whenever that batch held several records (measured: 16
/// for a real end of 21 after groups of 1 to 6 records). A replay that stopped there would
/// lose acknowledged entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reader_reaches_the_end_of_the_topic_whatever_the_broker_lists() {
    use govledger::replication::Replicator;
    let _services = SERVICES.read().await;
    let topic = wal_topic("end").await;
    let rc = replication(&topic);
    let wal = govledger::replication::Wal::connect(&rc, "localhost/govledger").unwrap();
    let mut first = 0u64;
    let mut written = 0usize;
    for group in 1..=6u64 {
        // Each group's records are sent together, as the sequencer sends a split group.
        let records: Vec<ledger_format::wal::WalRecord> = (0..group)
            .map(|i| ledger_format::wal::WalRecord {
                first: first + i,
                root: ledger_format::Hash::from_slice(&[group as u8; 32]).unwrap(),
                group_end: first + group,
                leaves: vec![format!("leaf {}", first + i).into_bytes()],
            })
            .collect();
        tokio::task::block_in_place(|| wal.replicate(&records)).unwrap();
        first += group;
        written += records.len();
    }
    let reader = govledger::replication::WalReader::new(&rc, "localhost/govledger");
    let mut read = Vec::new();
    tokio::task::block_in_place(|| {
        reader.read(&mut |offset, rec| {
            read.push((offset, rec.first));
            Ok(())
        })
    })
    .unwrap();
    assert_eq!(read.len(), written, "{read:?}");
    assert_eq!(
        read.iter().map(|r| r.1).collect::<Vec<_>>(),
        (0..written as u64).collect::<Vec<_>>()
    );
}
