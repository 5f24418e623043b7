//! The S3 anchor against a real S3 server with Object Lock (SeaweedFS, started by
//! `scripts/services.sh`; endpoint in GOVLEDGER_TEST_S3, credentials in AWS_ACCESS_KEY_ID and
//! AWS_SECRET_ACCESS_KEY). Nothing is mocked: the server enforces COMPLIANCE retention.

use std::time::Duration;

use govledger::anchor::s3::sdk::primitives::{ByteStream, DateTime};
use govledger::anchor::s3::sdk::types::{
    ObjectLockMode, ObjectLockRetention, ObjectLockRetentionMode,
};
use govledger::config::S3Config;
use ledger_format::checkpoint::SignedCheckpoint;

use crate::harness::{audit, start_with};

/// The S3 endpoint the tests use; panics with how to start it.
pub fn endpoint() -> String {
    std::env::var("GOVLEDGER_TEST_S3").unwrap_or_else(|_| {
        panic!("GOVLEDGER_TEST_S3 is not set: run the tests with scripts/test.sh, which starts SeaweedFS (S3 with Object Lock) on 127.0.0.1:8333")
    })
}

pub fn config(bucket: &str) -> S3Config {
    S3Config {
        bucket: bucket.into(),
        prefix: "anchors".into(),
        endpoint: Some(endpoint()),
        region: "us-east-1".into(),
        path_style: true,
        retention_days: 1,
        tiles: false,
        max_unmirrored_entries: None,
    }
}

/// Creates a fresh bucket, with or without Object Lock, and returns its name and a client.
pub async fn bucket(lock: bool) -> (String, govledger::anchor::s3::sdk::Client) {
    let name = format!(
        "test-{}-{}",
        if lock { "lock" } else { "plain" },
        rand::random::<u32>()
    );
    let client =
        govledger::anchor::s3::client(&govledger::anchor::s3::connection(&config(&name))).unwrap();
    client
        .create_bucket()
        .bucket(&name)
        .object_lock_enabled_for_bucket(lock)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating bucket {name} at {}: {}",
                endpoint(),
                govledger::anchor::s3::sdk::error::DisplayErrorContext(&e)
            )
        });
    (name, client)
}

#[tokio::test]
async fn a_bucket_without_object_lock_is_a_startup_error() {
    let _services = crate::harness::SERVICES.read().await;
    let (name, _) = bucket(false).await;
    let mut cfg = govledger::config::Config {
        data_dir: tempfile::tempdir().unwrap().keep(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    cfg.anchors.s3 = Some(config(&name));
    let err = govledger::server::run(cfg, async {}, |_, _| {})
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("Object Lock"), "{err:#}");
}

#[tokio::test]
async fn anchored_checkpoints_are_locked_in_compliance_mode() {
    let _services = crate::harness::SERVICES.read().await;
    let (name, client) = bucket(true).await;
    let cfg = config(&name);
    let s = start_with(move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.s3 = Some(cfg);
    })
    .await;
    for i in 0..3 {
        s.submit(audit(i), None).await;
    }
    let mut anchored = 0;
    let mut state = serde_json::Value::Null;
    // Up to 30 s: the full suite loads both cores.
    for _ in 0..600 {
        let (_, a) = s.get_json("/v1/anchors").await;
        anchored = a["backends"][1]["last_anchored_size"].as_u64().unwrap_or(0);
        state = a;
        if anchored == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(anchored, 3, "{state}");
    let key = ledger_format::anchor::s3_key("anchors", "localhost/govledger", 3);
    let obj = client
        .get_object()
        .bucket(&name)
        .key(&key)
        .send()
        .await
        .unwrap();
    let version = obj.version_id().unwrap().to_owned();
    let body = obj.body.collect().await.unwrap().into_bytes();
    SignedCheckpoint::open(&body, &s.vkey, &[]).unwrap();
    let r = client
        .get_object_retention()
        .bucket(&name)
        .key(&key)
        .send()
        .await
        .unwrap();
    let ret = r.retention().unwrap();
    assert_eq!(ret.mode(), Some(&ObjectLockRetentionMode::Compliance));
    let until = ret.retain_until_date().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(until > now + 86_000, "retained until {until}, now {now}");

    // Deleting the version is refused; so are shortening and weakening the retention.
    let del = client
        .delete_object()
        .bucket(&name)
        .key(&key)
        .version_id(&version)
        .send()
        .await;
    let why = |e: &dyn std::error::Error| format!("{e:?}");
    let del_err = why(&del.expect_err("deleting a COMPLIANCE-locked version must fail"));
    assert!(
        del_err.contains("AccessDenied") || del_err.contains("403"),
        "{del_err}"
    );
    let shorter = client
        .put_object_retention()
        .bucket(&name)
        .key(&key)
        .version_id(&version)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(DateTime::from_secs(now + 60))
                .build(),
        )
        .send()
        .await;
    let e = why(&shorter.expect_err("shortening COMPLIANCE retention must fail"));
    assert!(
        e.contains("AccessDenied") || e.contains("403") || e.contains("InvalidRequest"),
        "{e}"
    );
    let weaker = client
        .put_object_retention()
        .bucket(&name)
        .key(&key)
        .version_id(&version)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Governance)
                .retain_until_date(DateTime::from_secs(until))
                .build(),
        )
        .bypass_governance_retention(true)
        .send()
        .await;
    let e = why(&weaker.expect_err("weakening COMPLIANCE to GOVERNANCE must fail"));
    assert!(
        e.contains("AccessDenied") || e.contains("403") || e.contains("InvalidRequest"),
        "{e}"
    );
    // An overwrite adds a version; the anchored version stays intact.
    client
        .put_object()
        .bucket(&name)
        .key(&key)
        .body(ByteStream::from_static(b"forged"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(DateTime::from_secs(now + 60))
        .send()
        .await
        .unwrap();
    let original = client
        .get_object()
        .bucket(&name)
        .key(&key)
        .version_id(&version)
        .send()
        .await
        .unwrap();
    assert_eq!(original.body.collect().await.unwrap().into_bytes(), body);
    let (_, metrics) = (0, s.get("/metrics").await.text().await.unwrap());
    assert!(
        metrics.contains("govledger_anchor_lag_entries{backend=\"s3\"} 0"),
        "{metrics}"
    );
    s.stop().await;
}
