//! Every bad input gets a clear 4xx JSON error and changes nothing.

use crate::harness::{audit, start, start_with, TestServer};
use serde_json::{json, Value};

async fn refused(s: &TestServer, body: &str, status: u16, code: &str, field: Option<&str>) {
    let before = s.tree_size().await;
    let (st, v) = s.post(body).await;
    assert_eq!(st, status, "{body:.200} -> {v}");
    assert_eq!(v["error"], code, "{v}");
    assert!(!v["message"].as_str().unwrap().is_empty());
    if let Some(f) = field {
        assert_eq!(v["field"], f, "{v}");
    }
    assert_eq!(s.tree_size().await, before, "the log changed");
}

#[tokio::test]
async fn malformed_and_invalid_submissions() {
    let s = start_with(|c| {
        c.max_body_bytes = 256 * 1024;
        c.max_batch_entries = 10;
    })
    .await;
    s.submit(audit(0), None).await;
    refused(&s, "{", 400, "malformed_json", None).await;
    refused(&s, "[1,2]", 400, "invalid_entry", None).await;
    refused(
        &s,
        r#"{"entries":[{"kind":"audit","body":{}}],"kind":"audit"}"#,
        400,
        "invalid_entry",
        Some("entries"),
    )
    .await;
    refused(
        &s,
        r#"{"kind":"nope","body":{}}"#,
        400,
        "invalid_entry",
        Some("kind"),
    )
    .await;
    refused(
        &s,
        r#"{"kind":"audit"}"#,
        400,
        "invalid_entry",
        Some("body"),
    )
    .await;
    refused(
        &s,
        r#"{"kind":"audit","body":[]}"#,
        400,
        "invalid_entry",
        Some("body"),
    )
    .await;
    refused(
        &s,
        r#"{"kind":"audit","body":{},"extra":1}"#,
        400,
        "invalid_entry",
        Some("extra"),
    )
    .await;
    refused(
        &s,
        &json!({"kind":"audit","body":{"component":"x"}}).to_string(),
        400,
        "invalid_entry",
        Some("body.event_type"),
    )
    .await;
    let mut a = audit(1);
    a["surprise"] = json!(true);
    refused(
        &s,
        &json!({"kind":"audit","body":a}).to_string(),
        400,
        "invalid_entry",
        Some("body.surprise"),
    )
    .await;
    let mut a = audit(1);
    a["compliance_tags"] = json!(["SOX", 5]);
    refused(
        &s,
        &json!({"kind":"audit","body":a}).to_string(),
        400,
        "invalid_entry",
        Some("body.compliance_tags[1]"),
    )
    .await;
    refused(
        &s,
        &json!({"kind":"audit","entry_id":"has space","body":audit(1)}).to_string(),
        400,
        "invalid_entry",
        Some("entry_id"),
    )
    .await;
    refused(
        &s,
        r#"{"entries":[]}"#,
        400,
        "invalid_entry",
        Some("entries"),
    )
    .await;
    let batch =
        json!({"entries": [{"kind":"audit","body":audit(1)}, {"kind":"audit","body":{"x":1}}]});
    refused(
        &s,
        &batch.to_string(),
        400,
        "invalid_entry",
        Some("entries[1].body.event_type"),
    )
    .await;
    // The other kinds' strict schemas.
    refused(
        &s,
        r#"{"kind":"key_event","body":{}}"#,
        400,
        "invalid_entry",
        Some("kind"),
    )
    .await;
    let lineage = json!({"kind":"lineage","body":{"model_id":"m","model_version":"1","created_by":"t",
        "datasets":[{"name":"d","type":"train","sha256":"sha256:00","size_bytes":1}],
        "artifact":{"path":"p","sha256":"sha256:00","size_bytes":1}}});
    refused(
        &s,
        &lineage.to_string(),
        400,
        "invalid_entry",
        Some("body.datasets[0].type"),
    )
    .await;
    let deployment = json!({"kind":"deployment","body":{"model_id":"m","request":"nothex","status":"SUCCESS",
        "environment":"prod","executed_by":"ci"}});
    refused(
        &s,
        &deployment.to_string(),
        400,
        "invalid_entry",
        Some("body.request"),
    )
    .await;
    let approval =
        json!({"kind":"approval","body":{"statement":{"request":"00","decision":"approve"}}});
    refused(
        &s,
        &approval.to_string(),
        400,
        "invalid_entry",
        Some("body.statement.request"),
    )
    .await;
    // Sizes: the request body, the leaf, the batch.
    let huge = "x".repeat(300 * 1024);
    refused(
        &s,
        &json!({"kind":"audit","body":{"event_type":huge}}).to_string(),
        413,
        "body_too_large",
        None,
    )
    .await;
    let mut a = audit(1);
    a["details"] = json!({"blob": "y".repeat(70_000)});
    refused(
        &s,
        &json!({"kind":"audit","body":a}).to_string(),
        413,
        "leaf_too_large",
        Some("body"),
    )
    .await;
    let many: Vec<Value> = (0..11)
        .map(|i| json!({"kind":"audit","body":audit(i)}))
        .collect();
    refused(
        &s,
        &json!({"entries": many}).to_string(),
        413,
        "batch_too_large",
        Some("entries"),
    )
    .await;
    s.stop().await;
}

#[tokio::test]
async fn unknown_indices_hashes_and_bad_parameters() {
    let s = start().await;
    let r = s.submit(audit(0), None).await;
    for (path, status) in [
        ("/v1/entries/1", 404),
        ("/v1/entries/abc", 400),
        (
            "/v1/receipts/00000000000000000000000000000000000000000000000000000000000000ff",
            404,
        ),
        ("/v1/receipts/nothex", 400),
        ("/v1/proofs/inclusion?index=1&size=1", 404),
        ("/v1/proofs/inclusion?index=0&size=2", 404),
        ("/v1/proofs/inclusion?index=x", 400),
        ("/v1/proofs/inclusion?size=1", 400),
        ("/v1/proofs/consistency?old=0&new=1", 400),
        ("/v1/proofs/consistency?old=2&new=1", 400),
        ("/v1/proofs/consistency?old=1&new=5", 404),
        ("/v1/proofs/consistency", 400),
        ("/tile/0/000", 404),
        ("/tile/0/000.p/2", 404),
        ("/tile/0/000.p/0", 404),
        ("/tile/entries/001.p/1", 404),
        ("/tile/x/000", 404),
        ("/nope", 404),
    ] {
        let (st, v) = s.get_json(path).await;
        assert_eq!(st, status, "{path}: {v}");
        assert!(v["error"].is_string(), "{path}: {v}");
    }
    let (st, _) = s.get_json(&format!("/v1/receipts/{}", r.leaf_hash)).await;
    assert_eq!(st, 200);
    let resp = s
        .http
        .delete(format!("{}/v1/entries", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "method_not_allowed"
    );
    assert_eq!(s.tree_size().await, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    let s = start_with(|c| {
        c.queue_capacity = 1;
        c.max_batch = 1;
    })
    .await;
    let body = |i: u64| json!({"kind": "audit", "body": audit(i)}).to_string();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let http = s.http.clone();
        let url = format!("{}/v1/entries", s.url);
        let b = body(i);
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).body(b).send().await.unwrap();
            let retry = r.headers().get("retry-after").is_some();
            let st = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            (st, retry, v)
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (st, retry, v) = t.await.unwrap();
        match st {
            200 => ok += 1,
            503 => {
                assert!(retry, "503 without Retry-After");
                assert_eq!(v["error"], "overloaded");
                busy += 1;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert!(busy > 0, "the queue never filled ({ok} accepted)");
    assert_eq!(
        s.tree_size().await,
        ok,
        "only acknowledged entries were appended"
    );
    s.stop().await;
}
