//! Submission-time governance: people, signed statements, references, four eyes.

use crate::harness::{start_with, TestServer};
use base64::Engine;
use govledger::config::PersonConfig;
use ledger_format::note::SignerKey;
use serde_json::{json, Value};

const ART: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, [seed; 32]).unwrap()
}

fn sign(k: &SignerKey, statement: &Value) -> String {
    let c = ledger_format::jcs::canonicalize(statement).unwrap();
    base64::engine::general_purpose::STANDARD.encode(k.sign_raw(c.as_bytes()))
}

async fn expect(s: &TestServer, body: Value, status: u16, code: &str, field: &str, msg: &str) {
    let before = s.tree_size().await;
    let (st, v) = s.post(&body.to_string()).await;
    assert_eq!(
        (
            st,
            v["error"].as_str().unwrap_or(""),
            v["field"].as_str().unwrap_or("")
        ),
        (status, code, field),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains(msg), "{v}");
    assert_eq!(s.tree_size().await, before);
}

async fn ok(s: &TestServer, body: Value) -> String {
    let (st, v) = s.post(&body.to_string()).await;
    assert_eq!(st, 200, "{v}");
    v["leaf_hash"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn signatures_references_and_four_eyes_are_checked_on_submit() {
    let (alice, bob, mallory) = (key("alice", 1), key("bob", 2), key("mallory", 3));
    let s = start_with(|c| {
        c.people = vec![
            PersonConfig {
                name: "alice".into(),
                roles: vec!["quant".into(), "risk".into()],
                key: alice.verifier().to_string(),
                ..Default::default()
            },
            PersonConfig {
                name: "bob".into(),
                roles: vec!["risk".into()],
                key: bob.verifier().to_string(),
                ..Default::default()
            },
        ]
    })
    .await;
    let lineage = ok(
        &s,
        json!({"kind": "lineage", "body": {
        "model_id": "ppo-42", "model_version": "1", "created_by": "trainer",
        "datasets": [{"name": "md", "type": "training", "sha256": OTHER, "size_bytes": 10}],
        "artifact": {"path": "policy.pt", "sha256": ART, "size_bytes": 4}}}),
    )
    .await;

    let statement = |by: &str, artifact: &str, lineage: &str| {
        json!({
        "model_id": "ppo-42", "artifact_sha256": artifact, "dataset_sha256": [OTHER], "lineage": lineage,
        "requested_by": by, "environment": "production", "policy": "four-eyes-v1", "signed_at": crate::harness::signed_now()})
    };
    let request = |k: &SignerKey, st: Value| json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(k, &st)}});

    // Requests: wrong signer, unknown person, missing lineage, another artifact.
    expect(
        &s,
        request(&bob, statement("alice", ART, &lineage)),
        400,
        "invalid_signature",
        "body.signature",
        "does not verify",
    )
    .await;
    expect(
        &s,
        request(&mallory, statement("mallory", ART, &lineage)),
        403,
        "unknown_person",
        "body.statement.requested_by",
        "not a registered person",
    )
    .await;
    let missing = "00".repeat(32);
    expect(
        &s,
        request(&alice, statement("alice", ART, &missing)),
        400,
        "unknown_reference",
        "body.statement.lineage",
        "no lineage entry",
    )
    .await;
    expect(
        &s,
        request(&alice, statement("alice", OTHER, &lineage)),
        400,
        "artifact_mismatch",
        "body.statement.artifact_sha256",
        "lineage_artifact",
    )
    .await;
    let mut other_datasets = statement("alice", ART, &lineage);
    other_datasets["dataset_sha256"] = json!([ART]);
    expect(
        &s,
        request(&alice, other_datasets),
        400,
        "policy_check_failed",
        "body.statement.dataset_sha256",
        "lineage_datasets",
    )
    .await;
    let mut other_model = statement("alice", ART, &lineage);
    other_model["model_id"] = json!("ppo-99");
    expect(
        &s,
        request(&alice, other_model),
        400,
        "policy_check_failed",
        "body.statement.lineage",
        "lineage_model",
    )
    .await;
    let req = ok(&s, request(&alice, statement("alice", ART, &lineage))).await;

    let approval = |k: &SignerKey, who: &str, artifact: &str, reference: &str| {
        let st = json!({"request": reference, "artifact_sha256": artifact, "decision": "approve", "approver": who,
                        "role": "risk", "signed_at": crate::harness::signed_now()});
        json!({"kind": "approval", "body": {"statement": st, "signature": sign(k, &st)}})
    };
    expect(
        &s,
        approval(&alice, "alice", ART, &req),
        403,
        "self_approval",
        "body.statement.approver",
        "their own release",
    )
    .await;
    let quant = {
        let st = json!({"request": req, "artifact_sha256": ART, "decision": "approve", "approver": "bob",
                        "role": "quant", "signed_at": crate::harness::signed_now()});
        json!({"kind": "approval", "body": {"statement": st, "signature": sign(&bob, &st)}})
    };
    expect(
        &s,
        quant,
        403,
        "role_not_held",
        "body.statement.role",
        "does not hold the role",
    )
    .await;
    expect(
        &s,
        approval(&bob, "bob", OTHER, &req),
        400,
        "artifact_mismatch",
        "body.statement.artifact_sha256",
        "another artifact",
    )
    .await;
    expect(
        &s,
        approval(&bob, "bob", ART, &lineage),
        400,
        "unknown_reference",
        "body.statement.request",
        "is a lineage, not a approval_request",
    )
    .await;
    expect(
        &s,
        approval(&alice, "bob", ART, &req),
        400,
        "invalid_signature",
        "body.signature",
        "does not verify",
    )
    .await;
    let imported = json!({"kind": "approval", "body": {
        "statement": {"request": req, "artifact_sha256": ART, "decision": "approve", "approver": "bob", "role": "risk",
                      "signed_at": crate::harness::signed_now()},
        "source": "github", "decided_at": "2026-11-26T10:00:00Z",
        "evidence": {"review_id": 1, "reviewer": "bob", "commit_sha": "abc", "submitted_at": "2026-11-26T10:00:00Z", "state": "APPROVED"}}});
    expect(
        &s,
        imported,
        403,
        "imported_approval",
        "body.source",
        "imported",
    )
    .await;
    let first = approval(&bob, "bob", ART, &req);
    ok(&s, first.clone()).await;
    // The same statement again is a retry: answered, not refused (without an entry_id it is
    // logged again; it counts once, for the same person).
    let (st, v) = s.post(&first.to_string()).await;
    assert_eq!(st, 200, "{v}");
    // A decision of bob's dated no later than the one logged is refused (no replay of an old
    // statement, no rejection dated to tie with the approval and win the tie).
    let logged_at = first["body"]["statement"]["signed_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let earlier = govledger_client::time::rfc3339_ms(
        ledger_format::rfc3339::rfc3339_to_ms(&logged_at).unwrap() - 60_000,
    );
    for (decision, at) in [
        ("reject", logged_at.as_str()),
        ("reject", earlier.as_str()),
        ("approve", earlier.as_str()),
    ] {
        let st = json!({"request": req, "artifact_sha256": ART, "decision": decision, "approver": "bob",
                        "role": "risk", "signed_at": at});
        expect(
            &s,
            json!({"kind": "approval", "body": {"statement": st, "signature": sign(&bob, &st)}}),
            409,
            "decision_not_newer",
            "body.statement.signed_at",
            "must be dated later",
        )
        .await;
    }

    // Deployments reference the request.
    let deploy = |r: &str| {
        json!({"kind": "deployment", "body": {"model_id": "ppo-42", "request": r, "status": "SUCCESS",
                                                                  "environment": "production", "executed_by": "ci"}})
    };
    expect(
        &s,
        deploy(&lineage),
        400,
        "unknown_reference",
        "body.request",
        "is a lineage, not a approval_request",
    )
    .await;
    ok(&s, deploy(&req)).await;
    // Status and bundle answer with 10,001 FAILURE deployments: the bundle carries the latest
    // 1,000 and their count.
    let spam = |i: usize| {
        json!({"kind": "deployment", "body": {"model_id": "ppo-42", "request": req, "status": "FAILURE",
            "environment": "production", "executed_by": format!("spam-{i}")}})
    };
    for batch in 0..11 {
        let entries: Vec<Value> = (0..1000)
            .map(|i| batch * 1000 + i)
            .take_while(|&i| i < 10_001)
            .map(spam)
            .collect();
        let (st, v) = s.post(&json!({ "entries": entries }).to_string()).await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, status) = s.get_json(&format!("/v1/approvals/{req}")).await;
    assert_eq!(st, 200, "{status}");
    assert_eq!(status["deployments_total"], 10_002, "{status}");
    let (st, bundle) = s.get_json(&format!("/v1/approvals/{req}/bundle")).await;
    assert_eq!(st, 200);
    assert_eq!(bundle["deployments"].as_array().unwrap().len(), 1000);
    // A lineage parent must exist.
    let child = json!({"kind": "lineage", "body": {
        "model_id": "ppo-43", "model_version": "2", "created_by": "trainer", "parent": missing,
        "datasets": [{"name": "md", "type": "training", "sha256": OTHER, "size_bytes": 10}],
        "artifact": {"path": "policy.pt", "sha256": ART, "size_bytes": 4}}});
    expect(
        &s,
        child,
        400,
        "unknown_reference",
        "body.parent",
        "no lineage entry",
    )
    .await;
    assert_eq!(s.tree_size().await, 5 + 10_001);
    s.stop().await;
}

#[test]
fn one_key_one_name() {
    let k = key("alice", 1).verifier().to_string();
    let cfg = govledger::config::Config {
        people: vec![
            PersonConfig {
                name: "alice".into(),
                roles: vec![],
                key: k.clone(),
                ..Default::default()
            },
            PersonConfig {
                name: "alias".into(),
                roles: vec![],
                key: k,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let err = govledger::settings::Settings::new(cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("both alice and alias"), "{err}");
}

#[tokio::test]
async fn the_cli_signs_requests_approvals_and_deployments_the_server_accepts() {
    use govledger_client::cli::Outcome;
    use govledger_client::statements;
    let (alice, bob) = (key("alice", 1), key("bob", 2));
    let s = start_with(|c| {
        c.people = vec![
            PersonConfig {
                name: "alice".into(),
                roles: vec!["quant".into()],
                key: alice.verifier().to_string(),
                ..Default::default()
            },
            PersonConfig {
                name: "bob".into(),
                roles: vec!["risk".into()],
                key: bob.verifier().to_string(),
                ..Default::default()
            },
        ]
    })
    .await;
    let lineage = ok(
        &s,
        json!({"kind": "lineage", "body": {
        "model_id": "ppo-42", "model_version": "1", "created_by": "trainer",
        "datasets": [{"name": "md", "type": "training", "sha256": OTHER, "size_bytes": 10}],
        "artifact": {"path": "policy.pt", "sha256": ART, "size_bytes": 4}}}),
    )
    .await;
    let url = s.url.clone();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Outcome>> {
        let a = govledger_client::submit::SubmitArgs {
            url: &url,
            input: std::path::Path::new("-"),
            kind: None,
            entry_id: None,
            token: None,
            out: None,
            text: false,
            log_key: None,
        };
        let datasets = vec![OTHER.to_owned()];
        let req = statements::request(
            &alice,
            &statements::RequestArgs {
                model_id: "ppo-42",
                artifact_sha256: ART.into(),
                dataset_sha256: &datasets,
                lineage: &lineage,
                environment: "production",
                policy: "four-eyes-v1",
                github: None,
                servicenow_change: None,
                performance_metrics: Some(json!({"sharpe": 1.7})),
            },
        )?;
        let r1 = govledger_client::submit::send(&a, &req)?;
        let Outcome::Valid(text) = &r1 else {
            anyhow::bail!("request refused: {r1:?}")
        };
        let hash = serde_json::from_str::<Value>(text)?["leaf_hash"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = govledger_client::submit::fetch_body(&url, &hash)?;
        // The metrics are signed, as a decimal string: the only ones thresholds read.
        assert_eq!(
            body["statement"]["performance_metrics"],
            json!({"sharpe": "1.7"})
        );
        assert!(body.get("performance_metrics").is_none(), "{body}");
        let artifact = body["statement"]["artifact_sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        let approve = statements::approval(&bob, &hash, &artifact, "approve", "risk", Some("ok"))?;
        let r2 = govledger_client::submit::send(&a, &approve)?;
        let own = statements::approval(&alice, &hash, &artifact, "approve", "quant", None)?;
        let r3 = govledger_client::submit::send(&a, &own)?;
        Ok(vec![r1, r2, r3])
    })
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(outcome[0], Outcome::Valid(_)));
    assert!(matches!(outcome[1], Outcome::Valid(_)), "{:?}", outcome[1]);
    assert!(
        matches!(&outcome[2], Outcome::Invalid(m) if m.contains("self_approval")),
        "{:?}",
        outcome[2]
    );
    assert_eq!(s.tree_size().await, 3);
    s.stop().await;
}

/// A policy with `lineage.required = false` accepts a request whose lineage is not in the log
/// (the evaluator and the gate then pass `lineage_present`); a lineage reference to an entry of
/// another kind is refused all the same.
#[tokio::test]
async fn an_optional_lineage_may_be_absent_but_not_another_kind() {
    let alice = key("alice", 1);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[lineage]\nrequired = false\n[[people]]\nname = \"alice\"\nroles = [\"quant\"]\nkey = \"{}\"\n",
            alice.verifier()
        ),
    )
    .unwrap();
    let s = start_with(move |c| c.policy = Some(policy)).await;
    let audit = ok(
        &s,
        json!({"kind": "audit", "body": crate::harness::audit(1)}),
    )
    .await;
    let request = |lineage: &str| {
        let st = json!({"model_id": "ppo-42", "artifact_sha256": ART, "dataset_sha256": [OTHER],
            "lineage": lineage, "requested_by": "alice", "environment": "production",
            "policy": "four-eyes-v1", "signed_at": crate::harness::signed_now()});
        json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(&alice, &st)}})
    };
    ok(&s, request(&"00".repeat(32))).await;
    expect(
        &s,
        request(&audit),
        400,
        "unknown_reference",
        "body.statement.lineage",
        "is a audit, not a lineage",
    )
    .await;
    s.stop().await;
}
