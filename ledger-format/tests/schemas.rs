//! Per-kind schemas and RFC 3339 parsing (`ledger_format::schema`).

use ledger_format::entry::SchemaError;
use ledger_format::schema::*;
use serde_json::{json, Map, Value};

mod kinds {
    use super::*;

    const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const SIG: &str =
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

    fn check(
        f: fn(&Map<String, Value>) -> Result<(), SchemaError>,
        v: Value,
    ) -> Result<(), String> {
        f(v.as_object().unwrap()).map_err(|e| e.field)
    }

    fn lineage_ok() -> Value {
        json!({
            "model_id": "ppo-42", "model_name": "PPO", "model_version": "1.2.0", "model_type": "rl",
            "created_by": "trainer", "training_config": {"epochs": 10},
            "hyperparameters": {"lr": 0.0003}, "training_metrics": {"reward": 1.5},
            "validation_metrics": {"accuracy": 0.93},
            "datasets": [{"name": "md", "type": "training", "sha256": D, "size_bytes": 10, "files": 1,
                          "transformations": ["dedup"], "method": "file"}],
            "artifact": {"path": "policy.pt", "sha256": D, "size_bytes": 4},
            "code": {"repo": "git@example:trading.git", "commit": "abc123"},
            "dependencies": {"torch": "2.4.0"}, "parent": H
        })
    }

    #[test]
    fn lineage_schema() {
        assert_eq!(check(lineage, lineage_ok()), Ok(()));
        let mut v = lineage_ok();
        v["datasets"][0]["type"] = "train".into();
        assert_eq!(check(lineage, v), Err("datasets[0].type".into()));
        let mut v = lineage_ok();
        v["artifact"]["sha256"] = "sha256:XYZ".into();
        assert_eq!(check(lineage, v), Err("artifact.sha256".into()));
        let mut v = lineage_ok();
        v["datasets"] = json!([]);
        assert_eq!(check(lineage, v), Err("datasets".into()));
        let mut v = lineage_ok();
        v["parent"] = "not-a-hash".into();
        assert_eq!(check(lineage, v), Err("parent".into()));
        let mut v = lineage_ok();
        v["dependencies"]["numpy"] = 1.into();
        assert_eq!(check(lineage, v), Err("dependencies.numpy".into()));
        let mut v = lineage_ok();
        v["datasets"][0]["extra"] = 1.into();
        assert_eq!(check(lineage, v), Err("datasets[0].extra".into()));
    }

    fn request_ok() -> Value {
        json!({
            "statement": {"model_id": "ppo-42", "artifact_sha256": D, "dataset_sha256": [D], "lineage": H,
                          "requested_by": "alice", "environment": "production", "policy": "four-eyes-v1",
                          "signed_at": "2026-11-26T09:00:00Z", "github": {"repo": "o/r", "pr": 7, "head_sha": "abcabcabcabcabcabcabcabcabcabcabcabcabca"}},
            "signature": SIG,
            "performance_metrics": {"sharpe": 1.7}
        })
    }

    #[test]
    fn approval_request_schema() {
        assert_eq!(check(approval_request, request_ok()), Ok(()));
        let mut v = request_ok();
        v["statement"]["dataset_sha256"][0] = "x".into();
        assert_eq!(
            check(approval_request, v),
            Err("statement.dataset_sha256[0]".into())
        );
        let mut v = request_ok();
        v["signature"] = "AAAA".into();
        assert_eq!(check(approval_request, v), Err("signature".into()));
        let mut v = request_ok();
        v["statement"]["extra"] = json!({"x": 1.5});
        assert_eq!(check(approval_request, v), Err("statement.extra".into()));
        let mut v = request_ok();
        v["statement"]["github"]["pr"] = 0.into();
        assert_eq!(
            check(approval_request, v),
            Err("statement.github.pr".into())
        );
        let mut v = request_ok();
        v["statement"]["signed_at"] = "yesterday".into();
        assert_eq!(
            check(approval_request, v),
            Err("statement.signed_at".into())
        );
    }

    /// Source identifiers can only mean themselves in a query or path.
    #[test]
    fn source_identifiers_cannot_carry_query_syntax() {
        for (field, bad) in [
            ("servicenow", json!({"change": "CHG1^ORnumber=CHG2"})),
            ("servicenow", json!({"change": "CHG1 2"})),
            ("servicenow", json!({"change": "x".repeat(65)})),
            (
                "github",
                json!({"repo": "o/r/../../x", "pr": 7, "head_sha": "a".repeat(40)}),
            ),
            (
                "github",
                json!({"repo": "o r", "pr": 7, "head_sha": "a".repeat(40)}),
            ),
            (
                "github",
                json!({"repo": "o/r", "pr": 7, "head_sha": "main"}),
            ),
        ] {
            let mut v = request_ok();
            v["statement"][field] = bad.clone();
            let got = check(approval_request, v);
            assert!(
                got.as_ref()
                    .is_err_and(|f| f.starts_with(&format!("statement.{field}."))),
                "{bad}: {got:?}"
            );
        }
    }

    /// Signed statements carry metrics as integers or decimal strings.
    #[test]
    fn performance_metrics_are_signed_decimals() {
        let mut v = request_ok();
        v["statement"]["performance_metrics"] = json!({"sharpe": "1.7", "trades": 12});
        assert_eq!(check(approval_request, v.clone()), Ok(()));
        v["statement"]["performance_metrics"] = json!({"sharpe": "1.7e3"});
        assert_eq!(
            check(approval_request, v),
            Err("statement.performance_metrics.sharpe".into())
        );
    }

    fn approval_ok() -> Value {
        json!({
            "statement": {"request": H, "artifact_sha256": D, "decision": "approve", "approver": "bob",
                          "role": "risk", "signed_at": "2026-11-26T10:00:00Z", "comment": "ok"},
            "signature": SIG
        })
    }

    #[test]
    fn approval_schema() {
        assert_eq!(check(approval, approval_ok()), Ok(()));
        let mut v = approval_ok();
        v["statement"]["decision"] = "maybe".into();
        assert_eq!(check(approval, v), Err("statement.decision".into()));
        let mut v = approval_ok();
        v.as_object_mut().unwrap().remove("signature");
        assert_eq!(check(approval, v), Err("signature".into()));
        // Imported from GitHub: evidence, no personal signature.
        let mut v = approval_ok();
        v.as_object_mut().unwrap().remove("signature");
        v["source"] = "github".into();
        v["evidence"] = json!({"review_id": 99, "reviewer": "bob-gh", "commit_sha": "abc",
                               "submitted_at": "2026-11-26T10:00:00Z", "state": "APPROVED"});
        // The source's decision time is its own field.
        assert_eq!(check(approval, v.clone()), Err("decided_at".into()));
        v["decided_at"] = "2026-11-26T10:00:00Z".into();
        assert_eq!(check(approval, v.clone()), Ok(()));
        v["signature"] = SIG.into();
        assert_eq!(check(approval, v), Err("signature".into()));
        let mut v = approval_ok();
        v["source"] = "servicenow".into();
        v["decided_at"] = "2026-11-26T10:00:00Z".into();
        v.as_object_mut().unwrap().remove("signature");
        v["evidence"] =
            json!({"change": "CHG1", "sys_id": "s", "approver": "carol", "state": "approved"});
        assert_eq!(check(approval, v), Err("evidence.sys_updated_on".into()));
    }

    #[test]
    fn deployment_schema() {
        let ok = json!({"model_id": "ppo-42", "request": H, "status": "SUCCESS", "environment": "production",
                        "executed_by": "deployer", "details": {"host": "x"}});
        assert_eq!(check(deployment, ok.clone()), Ok(()));
        let mut v = ok;
        v["status"] = "DONE".into();
        assert_eq!(check(deployment, v), Err("status".into()));
    }
}

mod time {
    #[test]
    fn rfc3339_to_ms() {
        assert_eq!(
            ledger_format::schema::rfc3339_to_ms("1970-01-01T00:00:00Z"),
            Some(0)
        );
        assert_eq!(
            ledger_format::schema::rfc3339_to_ms("2023-11-14T22:13:20.123Z"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            ledger_format::schema::rfc3339_to_ms("2023-11-14T23:13:20.1+01:00"),
            Some(1_700_000_000_100)
        );
        assert_eq!(
            ledger_format::schema::rfc3339_to_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(ledger_format::schema::rfc3339_to_ms("yesterday"), None);
    }
}
