//! An outage of S3 and Kafka while entries keep arriving: both servers are paused (SIGSTOP)
//! for a few seconds, then resumed. Appends never fail meanwhile, and every checkpoint chosen
//! for anchoring arrives at least once in each backend, as does every entry on the entries topic.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::{audit, signal, start_with, SERVICES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_s3_and_kafka_loses_nothing() {
    let _services = SERVICES.write().await;
    let (bucket, client) = crate::s3::bucket(true).await;
    let kcfg = crate::kafka::topics("outage").await;
    let (cp_topic, entries_topic) = (kcfg.topic.clone(), kcfg.entries_topic.clone().unwrap());
    let s3cfg = crate::s3::config(&bucket);
    let s = start_with(move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.backoff_max_ms = 400;
        c.anchors.s3 = Some(s3cfg);
        c.anchors.kafka = Some(kcfg);
    })
    .await;

    // A writer that keeps appending and counts every failure.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let writer = {
        let (url, stop, ok, failed) = (s.url.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({"kind": "audit", "body": audit(i)});
                let r = http
                    .post(format!("{url}/v1/entries"))
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal("GOVLEDGER_WEED_PID", "STOP");
    signal("GOVLEDGER_TANSU_PID", "STOP");
    let during = ok.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, anchors) = s.get_json("/v1/anchors").await;
    signal("GOVLEDGER_WEED_PID", "CONT");
    signal("GOVLEDGER_TANSU_PID", "CONT");
    assert!(
        ok.load(Ordering::Relaxed) > during + 50,
        "appends went on during the outage"
    );
    for b in &anchors["backends"].as_array().unwrap()[1..] {
        assert!(
            b["pending"].as_u64().unwrap() > 0,
            "checkpoints waited in the outbox: {anchors}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no append failed");
    let size = s.tree_size().await;

    // Wait for both backends to drain their outboxes.
    let mut status = serde_json::Value::Null;
    for _ in 0..600 {
        let (_, a) = s.get_json("/v1/anchors").await;
        status = a["backends"].clone();
        let done =
            status.as_array().unwrap().iter().all(|b| {
                b["pending"] == 0 && b["streamed_entries"].as_u64().is_none_or(|n| n == size)
            });
        if done && status[1]["last_anchored_size"] == size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        status.as_array().unwrap().iter().all(|b| b["pending"] == 0),
        "{status}"
    );
    let (_, list) = s.get_json("/v1/checkpoints").await;
    let chosen: BTreeSet<u64> = list["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["size"].as_u64().unwrap())
        .collect();
    assert!(chosen.len() >= 5, "several checkpoints chosen: {chosen:?}");

    // S3 holds an object for every chosen size.
    let prefix = ledger_format::anchor::s3_log_prefix("anchors", "localhost/govledger");
    let mut in_s3 = BTreeSet::new();
    let mut token = None;
    loop {
        let r = client
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for o in r.contents() {
            in_s3.extend(o.key().and_then(ledger_format::anchor::size_of_name));
        }
        token = r.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let missing: Vec<_> = chosen.difference(&in_s3).collect();
    assert!(missing.is_empty(), "missing in S3: {missing:?}");

    // Kafka has every chosen checkpoint (at least once) and every entry.
    let n = chosen.len();
    let (cps, entries) = tokio::task::spawn_blocking(move || {
        (
            crate::kafka::read_all(&cp_topic, n),
            crate::kafka::read_all(&entries_topic, size as usize),
        )
    })
    .await
    .unwrap();
    let in_kafka: BTreeSet<u64> = cps
        .iter()
        .map(|(_, _, h)| h["tree_size"].parse().unwrap())
        .collect();
    let missing: Vec<_> = chosen.difference(&in_kafka).collect();
    assert!(missing.is_empty(), "missing in Kafka: {missing:?}");
    let indices: BTreeSet<u64> = entries.iter().map(|(k, _, _)| k.parse().unwrap()).collect();
    assert_eq!(indices, (0..size).collect::<BTreeSet<_>>());
    eprintln!(
        "outage: {} appends, {} checkpoints chosen, {} kafka checkpoint messages, {} entry messages",
        ok.load(Ordering::Relaxed),
        chosen.len(),
        cps.len(),
        entries.len()
    );
    s.stop().await;
}
