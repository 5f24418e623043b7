//! `govledger anchors verify` on a healthy setup (directory, S3 and Kafka anchors), then with
//! an overwritten S3 object (still verified from its locked version) and a missing anchor file
//! (a gap).

use std::time::Duration;

use govledger_client::anchors::{KafkaSource, S3Source, VerifyArgs};
use govledger_client::cli::Outcome;

use crate::harness::{audit, start_with, SERVICES};

#[tokio::test]
async fn anchors_verify_reads_every_backend_back() {
    let _services = SERVICES.read().await;
    let (bucket, client) = crate::s3::bucket(true).await;
    let kcfg = crate::kafka::topics("verify").await;
    let topic = kcfg.topic.clone();
    let s3cfg = crate::s3::config(&bucket);
    let s = start_with(move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.s3 = Some(s3cfg);
        c.anchors.kafka = Some(kcfg);
    })
    .await;
    for round in 0..3 {
        for i in 0..3 {
            s.submit(audit(round * 10 + i), None).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let size = s.tree_size().await;
    for _ in 0..200 {
        let (_, a) = s.get_json("/v1/anchors").await;
        if a["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["last_anchored_size"] == size)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = s.dir.path().join("anchors");
    let args = |url: String, vkey: String, dir: std::path::PathBuf| VerifyArgs {
        url,
        log_key: vkey,
        dir: Some(dir),
        s3: Some(S3Source {
            bucket: bucket.clone(),
            prefix: "anchors".into(),
            endpoint: Some(crate::s3::endpoint()),
            region: "us-east-1".into(),
            path_style: true,
            retain_until: (govledger_client::time::now_ms() / 1000) as i64 + 3600,
        }),
        kafka: Some(KafkaSource {
            brokers: crate::kafka::brokers(),
            topic: topic.clone(),
        }),
        json: true,
    };
    let run = |a: VerifyArgs| {
        tokio::task::spawn_blocking(move || govledger_client::anchors::verify(&a).unwrap())
    };
    let out = run(args(s.url.clone(), s.vkey.to_string(), dir.clone()))
        .await
        .unwrap();
    let Outcome::Valid(text) = out else {
        panic!("{out:?}")
    };
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(report["chosen"].as_u64().unwrap() >= 3, "{report}");
    for b in report["backends"].as_array().unwrap() {
        assert!(
            b["verified"].as_u64().unwrap() >= report["chosen"].as_u64().unwrap(),
            "{report}"
        );
    }

    // An overwrite adds an S3 version; the anchored (oldest, locked) version is the one read.
    let key = ledger_format::anchor::s3_key("anchors", "localhost/govledger", size);
    client
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .body(govledger::anchor::s3::sdk::primitives::ByteStream::from_static(b"forged"))
        .send()
        .await
        .unwrap();
    let out = run(args(s.url.clone(), s.vkey.to_string(), dir.clone()))
        .await
        .unwrap();
    let Outcome::Valid(text) = out else {
        panic!("{out:?}")
    };
    assert!(
        text.contains("later version(s) written over the anchored one"),
        "{text}"
    );

    // A missing anchor file is a gap.
    let (_, list) = s.get_json("/v1/checkpoints").await;
    let gone = list["checkpoints"][0]["size"].as_u64().unwrap();
    std::fs::remove_file(dir.join(ledger_format::anchor::file_name(gone))).unwrap();
    let out = run(args(s.url.clone(), s.vkey.to_string(), dir.clone()))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Invalid(_)), "{out:?}");
    // A wrong log key: nothing verifies.
    let other = ledger_format::note::SignerKey::from_seed("localhost/govledger", [9; 32]).unwrap();
    let a = args(s.url.clone(), other.verifier().to_string(), dir.clone());
    let r = tokio::task::spawn_blocking(move || govledger_client::anchors::verify(&a))
        .await
        .unwrap();
    assert!(
        r.is_err(),
        "the latest checkpoint does not verify with another key"
    );
    s.stop().await;
}
