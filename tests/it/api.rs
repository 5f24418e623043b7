//! Submissions, receipts, proofs and idempotency over real HTTP.

use crate::harness::{audit, start, start_with};
use govledger::config::TokenConfig;
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::leaf::Leaf;
use ledger_format::proof::{ConsistencyProof, InclusionProof};
use ledger_format::receipt::{Receipt, TlogProof};
use ledger_format::{Hash, LeafIndex, TreeSize};
use serde_json::{json, Value};

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test]
async fn receipts_verify_offline_in_json_and_tlog_proof_form() {
    let s = start().await;
    assert_eq!(s.tree_size().await, 0);
    let cp0 = s.get("/checkpoint").await.text().await.unwrap();
    let (signed, _) = SignedCheckpoint::open(cp0.as_bytes(), &s.vkey, &[]).unwrap();
    assert_eq!(
        signed.checkpoint.size,
        TreeSize(0),
        "the size-0 checkpoint is signed at creation"
    );

    let mut receipts = Vec::new();
    for i in 0..20 {
        let r = s.submit(audit(i), None).await;
        r.verify(&s.vkey).unwrap();
        assert_eq!(r.index, i);
        let leaf = Leaf::parse(&base64_decode(&r.leaf)).unwrap();
        assert_eq!(leaf.submitter, "anonymous");
        assert_eq!(
            serde_json::from_slice::<Value>(&leaf.body).unwrap(),
            audit(i)
        );
        receipts.push(r);
    }
    // Timestamps never go backwards.
    let times: Vec<u64> = receipts
        .iter()
        .map(|r| Leaf::parse(&base64_decode(&r.leaf)).unwrap().logged_at_ms)
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));

    // The same receipt as C2SP tlog-proof text.
    let text = s
        .http
        .post(format!("{}/v1/entries", s.url))
        .header("accept", "text/plain")
        .body(json!({"kind": "audit", "body": audit(99)}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let p = TlogProof::parse(text.as_bytes()).unwrap();
    let (cp, _) = p.verify(None, &s.vkey, &[]).unwrap();
    assert_eq!(cp.checkpoint.size, TreeSize(21));

    // Old receipts refresh against the latest checkpoint, by index and by leaf hash.
    let (st, v) = s.get_json("/v1/entries/3").await;
    assert_eq!(st, 200);
    let fresh: Receipt = serde_json::from_value(v).unwrap();
    fresh.verify(&s.vkey).unwrap();
    assert_eq!(
        (fresh.tree_size, fresh.leaf_hash.clone()),
        (21, receipts[3].leaf_hash.clone())
    );
    let (st, v) = s
        .get_json(&format!("/v1/receipts/{}", receipts[3].leaf_hash))
        .await;
    assert_eq!(st, 200);
    assert_eq!(serde_json::from_value::<Receipt>(v).unwrap(), fresh);
    let text = s
        .http
        .get(format!("{}/v1/entries/3", s.url))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    TlogProof::parse(text.as_bytes())
        .unwrap()
        .verify(None, &s.vkey, &[])
        .unwrap();
    s.stop().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[tokio::test]
async fn proofs_and_consistency_across_many_checkpoints() {
    let s = start().await;
    let mut checkpoints = Vec::new();
    let mut receipts = Vec::new();
    for i in 0..40 {
        let r = s.submit(audit(i), None).await;
        let (signed, _) = SignedCheckpoint::open(r.checkpoint.as_bytes(), &s.vkey, &[]).unwrap();
        checkpoints.push(signed.checkpoint);
        receipts.push(r);
    }
    for (a, old) in checkpoints.iter().enumerate() {
        for new in checkpoints.iter().skip(a) {
            let (st, v) = s
                .get_json(&format!(
                    "/v1/proofs/consistency?old={}&new={}",
                    old.size, new.size
                ))
                .await;
            assert_eq!(st, 200, "{v}");
            ConsistencyProof {
                old: old.size,
                new: new.size,
                path: hashes(&v["proof"]),
            }
            .verify(&old.root, &new.root)
            .unwrap();
        }
    }
    for (i, r) in receipts.iter().enumerate() {
        let leaf = Hash::from_hex(&r.leaf_hash).unwrap();
        for cp in checkpoints.iter().skip(i).step_by(7) {
            for query in [
                format!("index={i}&size={}", cp.size),
                format!("hash={}&size={}", r.leaf_hash, cp.size),
            ] {
                let (st, v) = s.get_json(&format!("/v1/proofs/inclusion?{query}")).await;
                assert_eq!(st, 200, "{v}");
                assert_eq!(v["index"], json!(i));
                InclusionProof {
                    index: LeafIndex(i as u64),
                    size: cp.size,
                    path: hashes(&v["proof"]),
                }
                .verify(&leaf, &cp.root)
                .unwrap();
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn retries_are_idempotent_and_conflicts_change_nothing() {
    let s = start().await;
    let first = s.submit(audit(1), Some("risk-1")).await;
    s.submit(audit(2), None).await;
    let again = s.submit(audit(1), Some("risk-1")).await;
    assert_eq!(
        (again.index, &again.leaf),
        (first.index, &first.leaf),
        "same index and leaf"
    );
    assert_eq!(again.tree_size, 2, "proven against the latest checkpoint");
    again.verify(&s.vkey).unwrap();

    let (st, v) = s
        .post(&json!({"kind": "audit", "entry_id": "risk-1", "body": audit(3)}).to_string())
        .await;
    assert_eq!(st, 409, "{v}");
    assert_eq!(v["error"], "entry_id_conflict");
    assert_eq!(s.tree_size().await, 2);

    // A batch with one conflicting entry appends nothing.
    let batch = json!({"entries": [
        {"kind": "audit", "entry_id": "new-1", "body": audit(4)},
        {"kind": "audit", "entry_id": "risk-1", "body": audit(5)},
    ]});
    let (st, _) = s.post(&batch.to_string()).await;
    assert_eq!(st, 409);
    assert_eq!(s.tree_size().await, 2);
    let (st, _) = s
        .post(&json!({"kind": "audit", "entry_id": "new-1", "body": audit(4)}).to_string())
        .await;
    assert_eq!(st, 200, "new-1 was not taken by the refused batch");

    // The same entry_id twice inside one batch is one entry.
    let batch = json!({"entries": [
        {"kind": "audit", "entry_id": "dup", "body": audit(6)},
        {"kind": "audit", "entry_id": "dup", "body": audit(6)},
    ]});
    let (st, v) = s.post(&batch.to_string()).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["receipts"][0]["index"], v["receipts"][1]["index"]);
    assert_eq!(s.tree_size().await, 4);

    // The same entry_id for two different bodies inside one batch is a conflict, in any
    // position, and the batch appends nothing.
    for order in [[7, 8], [8, 7]] {
        let batch = json!({"entries": [
            {"kind": "audit", "entry_id": "twice", "body": audit(order[0])},
            {"kind": "audit", "entry_id": "fresh", "body": audit(9)},
            {"kind": "audit", "entry_id": "twice", "body": audit(order[1])},
        ]});
        let (st, v) = s.post(&batch.to_string()).await;
        assert_eq!(st, 409, "{v}");
        assert_eq!(v["error"], "entry_id_conflict", "{v}");
        assert_eq!(s.tree_size().await, 4, "nothing appended");
    }
    s.stop().await;
}

#[tokio::test]
async fn batches_answer_once_in_submission_order() {
    let s = start().await;
    let entries: Vec<Value> = (0..50)
        .map(|i| json!({"kind": "audit", "body": audit(i)}))
        .collect();
    let (st, v) = s.post(&json!({"entries": entries}).to_string()).await;
    assert_eq!(st, 200, "{v}");
    let items = v["receipts"].as_array().unwrap();
    assert_eq!(items.len(), 50);
    for (i, item) in items.iter().enumerate() {
        let r = Receipt {
            index: item["index"].as_u64().unwrap(),
            leaf_hash: item["leaf_hash"].as_str().unwrap().into(),
            leaf: item["leaf"].as_str().unwrap().into(),
            tree_size: v["tree_size"].as_u64().unwrap(),
            root: v["root"].as_str().unwrap().into(),
            proof: item["proof"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().into())
                .collect(),
            checkpoint: v["checkpoint"].as_str().unwrap().into(),
        };
        assert_eq!(r.index, i as u64);
        r.verify(&s.vkey).unwrap();
    }
    s.stop().await;
}

#[tokio::test]
async fn tokens_name_the_submitter_and_limit_kinds() {
    let digest = |t: &str| hex::encode(ledger_format::hash::sha256(t.as_bytes()));
    let s = start_with(|c| {
        c.tokens = vec![
            TokenConfig {
                name: "risk-agent".into(),
                sha256: digest("s3cret-risk"),
                kinds: vec!["audit".into()],
                ..Default::default()
            },
            TokenConfig {
                name: "trainer".into(),
                sha256: digest("s3cret-train"),
                kinds: vec!["lineage".into()],
                ..Default::default()
            },
        ]
    })
    .await;
    let body = json!({"kind": "audit", "body": audit(1)}).to_string();
    let send = |token: Option<&str>| {
        let mut r = s
            .http
            .post(format!("{}/v1/entries", s.url))
            .body(body.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let r = send(None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    assert_eq!(send(Some("wrong")).await.unwrap().status(), 401);
    let r = send(Some("s3cret-train")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "kind_not_allowed"
    );
    assert_eq!(s.tree_size().await, 0);
    let r: Receipt = send(Some("s3cret-risk"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        Leaf::parse(&base64_decode(&r.leaf)).unwrap().submitter,
        "risk-agent"
    );
    s.stop().await;
}

#[tokio::test]
async fn restart_keeps_key_entries_and_checkpoint() {
    let s = start().await;
    let vkey = s.vkey.clone();
    let mut receipts = Vec::new();
    for i in 0..300 {
        receipts.push(s.submit(audit(i), Some(&format!("e{i}"))).await);
    }
    let dir = s.stop().await;
    let key_mode = std::fs::metadata(dir.path().join("log.key")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key_mode.permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("log.pub"))
            .unwrap()
            .trim(),
        vkey.to_string()
    );
    let s = crate::harness::start_in(dir, |_| {}).await;
    assert_eq!(s.vkey, vkey);
    assert_eq!(s.tree_size().await, 300);
    let again = s.submit(audit(7), Some("e7")).await;
    assert_eq!(again.index, 7, "idempotency survives restarts");
    let next = s.submit(audit(300), None).await;
    assert_eq!(next.index, 300);
    next.verify(&vkey).unwrap();
    s.stop().await;
}

#[tokio::test]
async fn log_info_health_and_metrics() {
    let s = start().await;
    s.submit(audit(1), None).await;
    let (st, v) = s.get_json("/v1/log").await;
    assert_eq!(st, 200);
    assert_eq!(v["origin"], "localhost/govledger");
    assert_eq!(v["verifier_key"], s.vkey.to_string());
    assert_eq!(v["tree_size"], 1);
    assert_eq!(s.get("/healthz").await.status(), 200);
    let m = s.get("/metrics").await.text().await.unwrap();
    assert!(m.contains("govledger_appended_total 1"), "{m}");
    assert!(m.contains("govledger_tree_size 1"), "{m}");
    assert!(m.contains("govledger_queue_depth"), "{m}");
    assert!(m.contains("govledger_group_entries_count 1"), "{m}");
    // One durable write (fsync) per group: the checkpoint rides on the next one.
    assert!(m.contains("govledger_durable_write_seconds_count 1"), "{m}");
    s.stop().await;
}

#[test]
fn the_example_config_parses_and_matches_the_defaults() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/govledger.toml");
    let cfg = govledger::config::Config::load(Some(std::path::Path::new(path))).unwrap();
    // Every setting in it also survives validation and parsing.
    govledger::settings::Settings::new(cfg.clone()).unwrap();
    let d = govledger::config::Config::default();
    assert_eq!(
        (
            cfg.anchors.interval_ms,
            cfg.anchors.backoff_max_ms,
            cfg.anchors.dir_enabled
        ),
        (
            d.anchors.interval_ms,
            d.anchors.backoff_max_ms,
            d.anchors.dir_enabled
        )
    );
    assert_eq!(
        (
            cfg.data_dir,
            cfg.listen,
            cfg.origin,
            cfg.cache_mb,
            cfg.batch_interval_ms,
            cfg.max_batch
        ),
        (
            d.data_dir,
            d.listen,
            d.origin,
            d.cache_mb,
            d.batch_interval_ms,
            d.max_batch
        )
    );
    assert_eq!(
        (
            cfg.queue_capacity,
            cfg.max_body_bytes,
            cfg.max_batch_entries
        ),
        (d.queue_capacity, d.max_body_bytes, d.max_batch_entries)
    );
}

#[tokio::test]
async fn lookups_by_hash_and_entry_id_across_index_runs() {
    // More entries than one index run (32,768), so lookups hit both stored runs and pending
    // records, before and after a restart.
    let s = start().await;
    let mut first = None;
    let mut last = None;
    for b in 0..70u64 {
        let entries: Vec<Value> = (0..1000)
            .map(|i| json!({"kind": "audit", "entry_id": format!("e{b}-{i}"), "body": audit(b * 1000 + i)}))
            .collect();
        let (st, v) = s.post(&json!({"entries": entries}).to_string()).await;
        assert_eq!(st, 200);
        if b == 0 {
            first = Some(v["receipts"][5]["leaf_hash"].as_str().unwrap().to_owned());
        }
        last = Some(v["receipts"][999]["leaf_hash"].as_str().unwrap().to_owned());
    }
    for _ in 0..2 {
        for (hash, index) in [
            (first.clone().unwrap(), 5u64),
            (last.clone().unwrap(), 69_999),
        ] {
            let (st, v) = s.get_json(&format!("/v1/receipts/{hash}")).await;
            assert_eq!(st, 200, "{v}");
            assert_eq!(v["index"], json!(index));
        }
        let r = s.submit(audit(5), Some("e0-5")).await;
        assert_eq!(r.index, 5, "entry_id found in a stored run");
        let (st, _) = s
            .post(&json!({"kind": "audit", "entry_id": "e69-999", "body": audit(1)}).to_string())
            .await;
        assert_eq!(st, 409, "conflict found for a recent entry_id");
    }
    let dir = s.stop().await;
    let s = crate::harness::start_in(dir, |_| {}).await;
    let (st, v) = s.get_json(&format!("/v1/receipts/{}", last.unwrap())).await;
    assert_eq!((st, v["index"].clone()), (200, json!(69_999)));
    assert_eq!(s.submit(audit(5), Some("e0-5")).await.index, 5);
    s.stop().await;
}

#[tokio::test]
async fn entries_are_found_by_kind_model_tag_and_time_with_paging() {
    let s = start().await;
    let tagged = |n: u64, tags: &[&str]| {
        let mut a = audit(n);
        a["compliance_tags"] = json!(tags);
        json!({"kind": "audit", "body": a})
    };
    for n in 0..5 {
        assert_eq!(s.post(&tagged(n, &["SOX"]).to_string()).await.0, 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let t_mid = chrono_now();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for n in 5..8 {
        assert_eq!(
            s.post(&tagged(n, &["MIFID_II", "SOX"]).to_string()).await.0,
            200
        );
    }
    let lineage = json!({"kind": "lineage", "body": {"model_id": "ppo-42", "model_version": "1", "created_by": "t",
        "datasets": [{"name": "d", "type": "training", "size_bytes": 1,
                      "sha256": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}],
        "artifact": {"path": "p", "size_bytes": 1,
                     "sha256": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}});
    assert_eq!(s.post(&lineage.to_string()).await.0, 200);

    check_queries(&s, &t_mid).await;
    // Again after a restart, when the posting lists come from the store.
    let dir = s.stop().await;
    let s = crate::harness::start_in(dir, |_| {}).await;
    check_queries(&s, &t_mid).await;
    s.stop().await;
}

async fn check_queries(s: &crate::harness::TestServer, t_mid: &str) {
    let indices = |v: &Value| -> Vec<u64> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["index"].as_u64().unwrap())
            .collect()
    };
    let (st, v) = s.get_json("/v1/entries?kind=audit").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(indices(&v), (0..8).collect::<Vec<_>>());
    let r: Receipt = serde_json::from_value(v["entries"][3].clone()).unwrap();
    r.verify(&s.vkey).unwrap();
    assert_eq!(
        indices(&s.get_json("/v1/entries?tag=MIFID_II").await.1),
        vec![5, 6, 7]
    );
    assert_eq!(
        indices(&s.get_json("/v1/entries?model_id=ppo-42").await.1),
        vec![8]
    );
    assert_eq!(
        indices(&s.get_json("/v1/entries?kind=lineage&tag=SOX").await.1),
        Vec::<u64>::new()
    );
    assert_eq!(
        indices(&s.get_json("/v1/entries?kind=audit&tag=MIFID_II").await.1),
        vec![5, 6, 7]
    );
    // Paging.
    let (_, p1) = s.get_json("/v1/entries?tag=SOX&limit=3").await;
    assert_eq!(indices(&p1), vec![0, 1, 2]);
    let next = p1["next_cursor"].as_u64().unwrap();
    let (_, p2) = s
        .get_json(&format!("/v1/entries?tag=SOX&limit=3&cursor={next}"))
        .await;
    assert_eq!(indices(&p2), vec![3, 4, 5]);
    // Time range.
    let (_, v) = s
        .get_json(&format!("/v1/entries?kind=audit&from={t_mid}"))
        .await;
    assert_eq!(indices(&v), vec![5, 6, 7]);
    let (_, v) = s.get_json(&format!("/v1/entries?to={t_mid}")).await;
    assert_eq!(indices(&v), vec![0, 1, 2, 3, 4]);
    // Bad parameters.
    assert_eq!(s.get_json("/v1/entries?kind=nope").await.0, 400);
    assert_eq!(s.get_json("/v1/entries?colour=red").await.0, 400);
    assert_eq!(s.get_json("/v1/entries?from=yesterday").await.0, 400);
}

/// The current UTC time, RFC 3339 with milliseconds.
fn chrono_now() -> String {
    govledger_client::statements::now_rfc3339()
}

#[tokio::test]
async fn a_log_key_readable_by_others_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = ledger_format::note::SignerKey::from_seed("localhost/govledger", [3; 32]).unwrap();
    let path = dir.path().join("log.key");
    std::fs::write(&path, key.to_secret_string()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let cfg = govledger::config::Config {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let err = govledger::server::run(cfg, async {}, |_, _| {})
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("readable or writable by group or others (mode 640)")
            && msg.contains("chmod 600"),
        "{msg}"
    );
}

#[tokio::test]
async fn rate_limits_answer_429_and_recover() {
    let s = start_with(|c| {
        c.rate_per_s = 5.0;
        c.burst = 3.0;
    })
    .await;
    for i in 0..3 {
        s.submit(audit(i), None).await;
    }
    let r = s
        .http
        .post(format!("{}/v1/entries", s.url))
        .body(serde_json::json!({"kind": "audit", "body": audit(9)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "rate_limited");
    let size = s.tree_size().await;
    assert_eq!(size, 3, "a refused submission appends nothing");
    // A batch beyond the burst can never pass: a clear 429 without Retry-After.
    let batch: Vec<_> = (0..4)
        .map(|i| serde_json::json!({"kind": "audit", "body": audit(100 + i)}))
        .collect();
    let (st, v) = s
        .post(&serde_json::json!({"entries": batch}).to_string())
        .await;
    assert_eq!((st, v["error"].as_str()), (429, Some("rate_limited")));
    assert!(v["message"].as_str().unwrap().contains("exceed"), "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(450)).await;
    s.submit(audit(10), None).await;
    s.stop().await;
}

#[tokio::test]
async fn a_daily_quota_answers_429_until_the_next_utc_day() {
    let s = start_with(|c| {
        c.tokens = vec![TokenConfig {
            name: "batchy".into(),
            sha256: hex::encode(ledger_format::hash::sha256(b"q")),
            quota_per_day: Some(3),
            ..Default::default()
        }];
    })
    .await;
    let post = |body: Value| {
        s.http
            .post(format!("{}/v1/entries", s.url))
            .bearer_auth("q")
            .body(body.to_string())
            .send()
    };
    let two: Vec<_> = (0..2)
        .map(|i| json!({"kind": "audit", "body": audit(i)}))
        .collect();
    assert_eq!(post(json!({"entries": two})).await.unwrap().status(), 200);
    let r = post(json!({"entries": two.clone()})).await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "quota_exceeded");
    assert_eq!(s.tree_size().await, 2);
    // The last unit of the quota can still be spent.
    let r = post(json!({"kind": "audit", "body": audit(7)}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}

/// docs/openapi.json lists exactly the server's routes, the server serves it, and every route
/// answers from its handler (not the unknown-endpoint fallback, not 405).
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let doc: serde_json::Value = serde_json::from_str(govledger::http::read_openapi()).unwrap();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = govledger::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);
    let s = start().await;
    let (st, served) = s.get_json("/openapi.json").await;
    assert_eq!((st, served), (200, doc));
    let zeros = "00".repeat(32);
    for (method, path) in &routes {
        let p = path
            .replace("{index}", "0")
            .replace("{leaf_hash}", &zeros)
            .replace("{request}", &zeros)
            .replace("{path}", "0/000");
        let r = s
            .http
            .request(method.parse().unwrap(), format!("{}{p}", s.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        assert!(
            status != 405 && !body.contains("no_such_endpoint"),
            "{method} {p}: {status} {body}"
        );
    }
    s.stop().await;
}

/// The load generator verifies every receipt it gets (single and batch answers), and a wrong
/// log key makes every one of them invalid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_verifies_every_receipt() {
    use govledger_client::loadgen::{run, LoadArgs};
    let s = start().await;
    let args = |batch: usize, log_key: Option<String>| LoadArgs {
        url: s.url.clone(),
        concurrency: 4,
        duration: std::time::Duration::from_millis(700),
        batch,
        rate: None,
        token: None,
        log_key,
    };
    for batch in [1, 16] {
        let r = run(args(batch, None)).await.unwrap();
        assert!(r.entries > 0);
        assert_eq!(
            (r.receipts_verified, r.receipts_invalid),
            (r.entries, 0),
            "batch {batch}"
        );
    }
    let other = ledger_format::note::SignerKey::from_seed("localhost/govledger", [9; 32])
        .unwrap()
        .verifier()
        .to_string();
    let r = run(args(16, Some(other))).await.unwrap();
    assert!(r.entries > 0);
    assert_eq!((r.receipts_verified, r.receipts_invalid), (0, r.entries));
    s.stop().await;
}

/// `govledger submit --log-key` checks a batch answer, and `govledger verify` takes the saved
/// answer: every receipt, or the one named by `--leaf-hash`; a tampered one is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_verifies_a_saved_batch_answer() {
    let s = start().await;
    s.submit(audit(0), None).await; // so the batch does not start at index 0
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, v: Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let vkey = s.vkey.to_string();
    let other = ledger_format::note::SignerKey::from_seed(s.vkey.name(), [7; 32])
        .unwrap()
        .verifier()
        .to_string();
    // Runs the CLI (off the async workers: the server answers on them); exit code and output.
    let cli = |args: &[&str]| {
        let out = tokio::task::block_in_place(|| {
            std::process::Command::new(crate::tls::govledger_cli())
                .args(args)
                .output()
                .unwrap()
        });
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap(), text)
    };
    let submit = |key: &str, extra: &[&str]| {
        let args = [&["submit", "--url", &s.url, "--log-key", key][..], extra].concat();
        cli(&args)
    };
    let verify = |file: &str, extra: &[&str]| {
        cli(&[&["verify", file, "--log-key", &vkey][..], extra].concat())
    };

    let entries: Vec<Value> = (1..=4)
        .map(|n| json!({"kind": "audit", "body": audit(n)}))
        .collect();
    let batch = file("batch.json", json!({ "entries": entries }));
    let saved = dir.path().join("answer.json");
    let saved = saved.to_str().unwrap();
    let (code, text) = submit(&vkey, &["--out", saved, &batch]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(saved, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid batch: 4 receipts"), "{text}");
    assert!(text.contains("indices: 1-4"), "{text}");
    assert!(text.contains("tree_size: 5"), "{text}");

    // One entry of the batch, by its leaf hash; a hash the batch does not hold.
    let answer: Value = serde_json::from_str(&std::fs::read_to_string(saved).unwrap()).unwrap();
    let third = answer["receipts"][2]["leaf_hash"].as_str().unwrap();
    let (code, text) = verify(saved, &["--leaf-hash", third]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("valid receipt\nindex: 3\n"), "{text}");
    let (code, text) = verify(saved, &["--leaf-hash", &"00".repeat(32)]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no receipt for leaf hash"), "{text}");

    // A tampered proof in the third receipt: refused, and named; an empty batch is refused.
    let mut bad = answer.clone();
    bad["receipts"][2]["proof"][0] = bad["receipts"][1]["proof"][0].clone();
    let (code, text) = verify(&file("tampered.json", bad), &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("receipt 2 of the batch (index 3)"), "{text}");
    let mut empty = answer.clone();
    empty["receipts"] = json!([]);
    let (code, text) = verify(&file("empty.json", empty), &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("no receipts"), "{text}");

    // submit --log-key with another log's key refuses the batch answer (exit 1).
    let one = file(
        "one.json",
        json!({"entries": [{"kind": "audit", "body": audit(9)}]}),
    );
    let (code, text) = submit(&other, &[&one]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("does not verify"), "{text}");

    // With --text the tlog-proof is verified too.
    let body = file("body.json", audit(10));
    let (code, text) = submit(&vkey, &["--kind", "audit", "--text", &body]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\n"), "{text}");
    let (code, text) = submit(&other, &["--kind", "audit", "--text", &body]);
    assert_eq!(code, 1, "{text}");
    s.stop().await;
}
