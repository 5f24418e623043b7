//! `govledger monitor` against real servers: a healthy log over many polls and a restart; a
//! forked and a rolled-back server (started on copies of the data dir, then diverged); and the
//! governance alerts.

use std::path::Path;

use base64::Engine;
use govledger::config::PersonConfig;
use govledger_client::monitor::{Alert, Monitor, MonitorArgs};
use ledger_format::note::SignerKey;
use serde_json::json;

use crate::harness::{audit, start_in, start_with};

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn copy_tmp(from: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    copy_dir(from, d.path());
    d
}

async fn poll(
    url: &str,
    vkey: &ledger_format::note::VerifierKey,
    state: &Path,
    policy: Option<&str>,
) -> Vec<Alert> {
    let args = MonitorArgs {
        tiles: None,
        url: url.to_owned(),
        log_key: vkey.clone(),
        state: state.to_path_buf(),
        policy: policy.map(|p| ledger_format::policy::Policy::parse(p).unwrap()),
        witness_keys: Vec::new(),
        max_witness_age: None,
        anchor_dir: None,
        witness_urls: Vec::new(),
        webhook: None,
    };
    tokio::task::spawn_blocking(move || Monitor::new(args).unwrap().poll().unwrap())
        .await
        .unwrap()
}

fn kinds(a: &[Alert]) -> Vec<&str> {
    a.iter().map(|a| a.alert).collect()
}

#[tokio::test]
async fn a_healthy_log_raises_nothing_and_forks_and_rollbacks_are_caught() {
    let state = tempfile::tempdir().unwrap();
    let s = start_with(|_| {}).await;
    let vkey = s.vkey.clone();
    for i in 0..300 {
        s.submit(audit(i), None).await;
    }
    // Many polls (each a new Monitor: a restart resumes from the saved state).
    for round in 0..5 {
        assert!(
            poll(&s.url, &vkey, state.path(), None).await.is_empty(),
            "round {round}"
        );
        for i in 0..7 {
            s.submit(audit(1000 + round * 10 + i), None).await;
        }
    }
    assert!(poll(&s.url, &vkey, state.path(), None).await.is_empty());
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.path().join("monitor.json")).unwrap()).unwrap();
    assert_eq!(saved["size"], 335);

    // Two copies of the data dir at size 335, then each diverges from the original.
    let dir = s.stop().await;
    let (fork_dir, old_dir) = (copy_tmp(dir.path()), copy_tmp(dir.path()));
    let s = start_in(dir, |_| {}).await;
    for i in 0..3 {
        s.submit(audit(5000 + i), None).await;
    }
    assert!(poll(&s.url, &vkey, state.path(), None).await.is_empty());
    let fork = start_in(fork_dir, |_| {}).await;
    for i in 0..3 {
        fork.submit(audit(9000 + i), None).await;
    }
    let a = poll(&fork.url, &vkey, state.path(), None).await;
    assert_eq!(kinds(&a), ["fork"], "{a:?}");
    let old = start_in(old_dir, |_| {}).await;
    let a = poll(&old.url, &vkey, state.path(), None).await;
    assert_eq!(kinds(&a), ["rollback"], "{a:?}");
    // The honest server still passes; the alerts changed nothing in the state.
    assert!(poll(&s.url, &vkey, state.path(), None).await.is_empty());
    old.stop().await;
    fork.stop().await;
    s.stop().await;
}

fn sign(k: &SignerKey, st: &serde_json::Value) -> String {
    let c = ledger_format::jcs::canonicalize(st).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k.sign_raw(c.as_bytes()))
}

#[tokio::test]
async fn deployments_without_quorum_and_unknown_keys_raise_governance_alerts() {
    let keys: Vec<SignerKey> = ["alice", "bob", "carol", "dave"]
        .iter()
        .enumerate()
        .map(|(i, n)| SignerKey::from_seed(n, [i as u8 + 1; 32]).unwrap())
        .collect();
    let people: Vec<PersonConfig> = keys
        .iter()
        .map(|k| PersonConfig {
            name: k.name().into(),
            roles: vec!["risk".into()],
            key: k.verifier().to_string(),
            ..Default::default()
        })
        .collect();
    let s = start_with(move |c| c.people = people).await;
    // The policy the monitor trusts knows alice, bob and carol, not dave.
    let mut policy = String::from("[approvals]\nmin_approvers = 2\n");
    for k in &keys[..3] {
        policy.push_str(&format!(
            "[[people]]\nname = \"{}\"\nroles = [\"risk\"]\nkey = \"{}\"\n",
            k.name(),
            k.verifier()
        ));
    }
    let art = format!("sha256:{}", "ab".repeat(32));
    let ds = format!("sha256:{}", "cd".repeat(32));
    let (st, lineage) = s
        .post(&json!({"kind": "lineage", "body": {"model_id": "m", "model_version": "1", "created_by": "t",
            "datasets": [{"name": "d", "type": "training", "sha256": ds, "size_bytes": 1}],
            "artifact": {"path": "p.pt", "sha256": art, "size_bytes": 1}}}).to_string())
        .await;
    assert_eq!(st, 200);
    let request = |by: &SignerKey| {
        let st = json!({"model_id": "m", "artifact_sha256": art, "dataset_sha256": [ds], "lineage": lineage["leaf_hash"],
                        "requested_by": by.name(), "environment": "production", "policy": "p", "signed_at": crate::harness::signed_now()});
        json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(by, &st)}})
            .to_string()
    };
    let approve = |k: &SignerKey, req: &str| {
        let st = json!({"request": req, "artifact_sha256": art, "decision": "approve", "approver": k.name(),
                        "role": "risk", "signed_at": crate::harness::signed_now()});
        json!({"kind": "approval", "body": {"statement": st, "signature": sign(k, &st)}})
            .to_string()
    };
    let deploy = |req: &str| {
        json!({"kind": "deployment", "body": {"model_id": "m", "request": req, "status": "SUCCESS",
               "environment": "production", "executed_by": "ci"}})
        .to_string()
    };
    let (_, r1) = s.post(&request(&keys[0])).await;
    let r1 = r1["leaf_hash"].as_str().unwrap().to_owned();
    assert_eq!(s.post(&approve(&keys[1], &r1)).await.0, 200);
    assert_eq!(s.post(&approve(&keys[2], &r1)).await.0, 200);
    assert_eq!(s.post(&deploy(&r1)).await.0, 200);
    let state = tempfile::tempdir().unwrap();
    // A proper release: nothing to report.
    let a = poll(&s.url, &s.vkey, state.path(), Some(&policy)).await;
    assert!(a.is_empty(), "{a:?}");
    // One approval, and one by a key the policy does not know, then a deployment.
    let (_, r2) = s.post(&request(&keys[0])).await;
    let r2 = r2["leaf_hash"].as_str().unwrap().to_owned();
    assert_eq!(s.post(&approve(&keys[1], &r2)).await.0, 200);
    assert_eq!(s.post(&approve(&keys[3], &r2)).await.0, 200);
    assert_eq!(s.post(&deploy(&r2)).await.0, 200);
    let a = poll(&s.url, &s.vkey, state.path(), Some(&policy)).await;
    assert_eq!(
        kinds(&a),
        ["approval_unknown_key", "deployment_without_quorum"],
        "{a:?}"
    );
    assert!(
        a[1].message.contains("1 distinct approvers of 2 required"),
        "{}",
        a[1].message
    );
    assert!(a[1].details["request"] == r2.as_str());
    s.stop().await;
}

/// Witness freshness: with a live witness nothing is raised; once the witness is gone and its
/// newest cosignature is older than the bound, `stale_witness` is raised and POSTed to the
/// webhook.
#[tokio::test]
async fn stale_witness_cosignatures_raise_an_alert_posted_to_the_webhook() {
    use crate::anchoring::{log_key, TestWitness};
    let keydir = tempfile::tempdir().unwrap();
    let (log, key_file) = log_key(keydir.path());
    let w = TestWitness::start("witness-one", 11, &log.verifier()).await;
    let witnesses = vec![govledger::config::WitnessConfig {
        url: w.url.clone(),
        key: w.key.to_string(),
    }];
    let s = start_with(move |c| {
        c.key_file = Some(key_file);
        c.anchors.interval_ms = 100;
        c.witnesses = witnesses;
    })
    .await;
    s.submit(audit(1), None).await;
    // A webhook that records what it receives.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for _ in 0..100 {
        if s.get("/v1/checkpoints/witnessed").await.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let state = tempfile::tempdir().unwrap();
    let (wkey, wurl) = (w.key.clone(), w.url.clone());
    let run = |max_age: u64| {
        let args = MonitorArgs {
            tiles: None,
            url: s.url.clone(),
            log_key: log.verifier(),
            state: state.path().to_path_buf(),
            policy: None,
            witness_keys: vec![wkey.clone()],
            max_witness_age: Some(max_age),
            anchor_dir: Some(s.dir.path().join("anchors")),
            witness_urls: vec![wurl.clone()],
            webhook: Some(hook.clone()),
        };
        tokio::task::spawn_blocking(move || Monitor::new(args).unwrap().poll().unwrap())
    };
    assert!(run(3600).await.unwrap().is_empty());
    w.stop().await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let a = run(1).await.unwrap();
    assert_eq!(kinds(&a), ["stale_witness"], "{a:?}");
    assert_eq!(received.lock().unwrap().len(), 1);
    assert_eq!(received.lock().unwrap()[0]["alert"], "stale_witness");
    s.stop().await;
}

/// A split view: the monitor follows a forked server, and the witness (asked directly) holds a
/// checkpoint of the same size with another root.
#[tokio::test]
async fn a_split_view_is_caught_through_the_witness() {
    use crate::anchoring::{log_key, TestWitness};
    let keydir = tempfile::tempdir().unwrap();
    let (log, key_file) = log_key(keydir.path());
    let w = TestWitness::start("witness-one", 11, &log.verifier()).await;
    let wcfg = vec![govledger::config::WitnessConfig {
        url: w.url.clone(),
        key: w.key.to_string(),
    }];
    let (k1, w1) = (key_file.clone(), wcfg.clone());
    let a = start_with(move |c| {
        c.key_file = Some(k1);
        c.anchors.interval_ms = 100;
        c.witnesses = w1;
    })
    .await;
    for i in 0..5 {
        a.submit(audit(i), None).await;
    }
    let dir = a.stop().await;
    let fork_dir = copy_tmp(dir.path());
    let (k2, w2) = (key_file.clone(), wcfg);
    let a = start_in(dir, move |c| {
        c.key_file = Some(k2);
        c.anchors.interval_ms = 100;
        c.witnesses = w2;
    })
    .await;
    for i in 0..3 {
        a.submit(audit(100 + i), None).await;
    }
    let id = ledger_format::anchor::origin_id("localhost/govledger");
    for _ in 0..200 {
        let t = reqwest::get(format!("{}/{id}/checkpoint", w.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if t.contains("\n8\n") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let k3 = key_file.clone();
    let fork = start_in(fork_dir, move |c| c.key_file = Some(k3)).await;
    for i in 0..3 {
        fork.submit(audit(900 + i), None).await;
    }
    let state = tempfile::tempdir().unwrap();
    let args = MonitorArgs {
        tiles: None,
        url: fork.url.clone(),
        log_key: log.verifier(),
        state: state.path().to_path_buf(),
        policy: None,
        witness_keys: vec![w.key.clone()],
        max_witness_age: None,
        anchor_dir: None,
        witness_urls: vec![w.url.clone()],
        webhook: None,
    };
    let alerts = tokio::task::spawn_blocking(move || Monitor::new(args).unwrap().poll().unwrap())
        .await
        .unwrap();
    assert_eq!(kinds(&alerts), ["split_view"], "{alerts:?}");
    assert!(
        alerts[0].message.contains("witness"),
        "{}",
        alerts[0].message
    );
    fork.stop().await;
    a.stop().await;
    w.stop().await;
}
