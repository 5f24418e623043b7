//! `GET /v1/summary`: the counts a governance report needs over a date range, as
//! `govledger audit` counts them, with audit events by regulation from `[regulations]`.

use crate::harness::{start_with, TestServer};
use base64::Engine;
use govledger::config::PersonConfig;
use ledger_format::note::SignerKey;
use serde_json::{json, Value};

const ART: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const DATA: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, [seed; 32]).unwrap()
}

fn sign(k: &SignerKey, statement: &Value) -> String {
    let c = ledger_format::jcs::canonicalize(statement).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k.sign_raw(c.as_bytes()))
}

async fn ok(s: &TestServer, body: Value) -> String {
    let (st, v) = s.post(&body.to_string()).await;
    assert_eq!(st, 200, "{v}");
    v["leaf_hash"].as_str().unwrap().to_owned()
}

fn person(k: &SignerKey, role: &str) -> PersonConfig {
    PersonConfig {
        name: k.name().into(),
        roles: vec![role.into()],
        key: k.verifier().to_string(),
        ..Default::default()
    }
}

/// A lineage, a request for its artifact signed by alice, and `approvers`' approvals.
async fn release(s: &TestServer, alice: &SignerKey, approvers: &[&SignerKey], v: &str) -> String {
    let lineage = ok(
        s,
        json!({"kind": "lineage", "body": {
        "model_id": "ppo-42", "model_version": v, "created_by": "trainer",
        "datasets": [{"name": "md", "type": "training", "sha256": DATA, "size_bytes": 10}],
        "artifact": {"path": "policy.pt", "sha256": ART, "size_bytes": 4}}}),
    )
    .await;
    let st = json!({"model_id": "ppo-42", "artifact_sha256": ART, "dataset_sha256": [DATA],
        "lineage": lineage, "requested_by": "alice", "environment": format!("env-{v}"),
        "policy": "four-eyes-v1", "signed_at": crate::harness::signed_now()});
    let request = ok(
        s,
        json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(alice, &st)}}),
    )
    .await;
    for k in approvers {
        let st = json!({"request": request, "artifact_sha256": ART, "decision": "approve",
            "approver": k.name(), "role": "risk", "signed_at": crate::harness::signed_now()});
        ok(
            s,
            json!({"kind": "approval", "body": {"statement": st, "signature": sign(k, &st)}}),
        )
        .await;
    }
    request
}

async fn deploy(s: &TestServer, request: &str, env: &str) {
    ok(
        s,
        json!({"kind": "deployment", "body": {"request": request, "model_id": "ppo-42",
        "status": "SUCCESS", "environment": env, "executed_by": "ci"}}),
    )
    .await;
}

#[tokio::test]
async fn a_summary_counts_kinds_tags_regulations_models_approvals_and_deployments() {
    let (alice, bob, carol) = (key("alice", 1), key("bob", 2), key("carol", 3));
    let s = start_with(|c| {
        c.people = vec![
            person(&alice, "quant"),
            person(&bob, "risk"),
            person(&carol, "risk"),
        ];
        c.regulations = [
            ("MiFID II", vec!["mifid2", "best-execution"]),
            ("SOX", vec!["sox"]),
            ("SR 11-7", vec!["sr11-7"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
        .collect();
    })
    .await;
    for tags in [
        json!(["MIFID2", "best-execution"]),
        json!(["SOX"]),
        json!(["sox", "mifid2"]),
        json!(["internal"]),
    ] {
        ok(
            &s,
            json!({"kind": "audit", "body": {"event_type": "ORDER", "component": "oms",
            "action": "submit", "details": {}, "compliance_tags": tags}}),
        )
        .await;
    }
    let approved = release(&s, &alice, &[&bob, &carol], "1").await;
    let pending = release(&s, &alice, &[&bob], "2").await;
    deploy(&s, &approved, "env-1").await;
    deploy(&s, &pending, "env-2").await;

    let (st, v) = s.get_json("/v1/summary").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["format"], "govledger-summary/v1");
    assert_eq!(v["tree_size"], s.tree_size().await);
    assert_eq!(v["entries"]["in_range"], 13);
    assert_eq!(
        v["entries"]["by_kind"],
        json!({"audit": 4, "lineage": 2, "approval_request": 2, "approval": 3, "deployment": 2})
    );
    assert_eq!(v["audit_events_by_tag"]["sox"], 1);
    assert_eq!(v["audit_events_by_tag"]["SOX"], 1);
    // Counted once per regulation per event, whatever the case of the tag.
    assert_eq!(
        v["audit_events_by_regulation"],
        json!({"MiFID II": 2, "SOX": 2, "SR 11-7": 0})
    );
    assert_eq!(v["audit_events_without_regulation"], 1);
    assert_eq!(v["models"].as_array().unwrap().len(), 2);
    assert_eq!(v["models"][0]["datasets"][0]["sha256"], DATA);
    assert_eq!(v["models"][0]["artifact_sha256"], ART);
    let a = &v["approvals"];
    assert_eq!(
        (&a["approved"], &a["pending"], &a["rejected"]),
        (&json!(1), &json!(1), &json!(0)),
        "{a}"
    );
    assert_eq!(a["requests"][0]["request"], approved);
    assert_eq!(a["requests"][0]["approvers"], json!(["bob", "carol"]));
    let d = &v["deployments"];
    assert_eq!(
        (&d["with_quorum"], &d["without_quorum"]),
        (&json!(1), &json!(1)),
        "{d}"
    );
    assert_eq!(d["items"][0]["valid_quorum"], true);
    assert_eq!(d["items"][1]["valid_quorum"], false);
    assert!(
        d["items"][1]["why"].as_str().unwrap().contains("approvals"),
        "{d}"
    );

    // A range: the future holds nothing; a date-only bound is read as its midnight UTC.
    let (st, v) = s.get_json("/v1/summary?from=2999-01-01").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["entries"]["in_range"], 0);
    assert_eq!(v["range"]["from"], "2999-01-01T00:00:00.000Z");
    assert_eq!(v["audit_events_by_regulation"]["SOX"], 0);
    let (_, v) = s
        .get_json("/v1/summary?from=2000-01-01&to=2999-12-31T23:59:59Z")
        .await;
    assert_eq!(v["entries"]["in_range"], 13);
}

#[tokio::test]
async fn a_summary_refuses_bad_ranges_and_bounds_its_work() {
    let s = start_with(|c| c.max_summary_entries = 3).await;
    for i in 0..4 {
        ok(
            &s,
            json!({"kind": "audit", "body": {"event_type": "E", "component": "c",
            "action": format!("a{i}"), "details": {}, "compliance_tags": []}}),
        )
        .await;
    }
    for (q, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("kind=audit", "kind"),
    ] {
        let (st, v) = s.get_json(&format!("/v1/summary?{q}")).await;
        assert_eq!(
            (st, v["error"].as_str(), v["field"].as_str()),
            (400, Some("bad_parameter"), Some(field)),
            "{q}: {v}"
        );
    }
    let (st, v) = s.get_json("/v1/summary").await;
    assert_eq!(
        (st, v["error"].as_str()),
        (422, Some("range_too_large")),
        "{v}"
    );
}
