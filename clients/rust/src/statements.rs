//! `govledger request`, `approve` and `deploy-record`: build, sign (Ed25519 over the RFC 8785
//! form of the statement) and submit governance entries.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use ledger_format::note::SignerKey;
use serde_json::{json, Map, Value};

use crate::cli::Outcome;

/// Returns the current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    crate::time::rfc3339_ms(crate::time::now_ms())
}

/// Returns `{"statement": statement, "signature": base64(Ed25519(JCS(statement)))}`.
pub fn signed(key: &SignerKey, statement: Value) -> Result<Map<String, Value>> {
    let canonical = ledger_format::jcs::canonicalize(&statement).context("the statement")?;
    let sig = base64::engine::general_purpose::STANDARD.encode(key.sign_raw(canonical.as_bytes()));
    let mut m = Map::new();
    m.insert("statement".into(), statement);
    m.insert("signature".into(), sig.into());
    Ok(m)
}

/// Returns a digest `sha256:<hex>` given directly or computed from a file.
pub fn digest_of(given: Option<&str>, file: Option<&Path>) -> Result<String> {
    match (given, file) {
        (Some(d), None) => Ok(d.to_owned()),
        (None, Some(f)) => Ok(format!(
            "sha256:{}",
            crate::dataset::hash_file(f, &mut |_| {})?.0
        )),
        _ => bail!("give the artifact as a file (--artifact) or a digest (--artifact-sha256)"),
    }
}

/// What an approval request says.
pub struct RequestArgs<'a> {
    pub model_id: &'a str,
    pub artifact_sha256: String,
    pub dataset_sha256: &'a [String],
    pub lineage: &'a str,
    pub environment: &'a str,
    pub policy: &'a str,
    pub github: Option<(&'a str, u64, &'a str)>,
    pub servicenow_change: Option<&'a str>,
    pub performance_metrics: Option<Value>,
}

/// Returns the approval_request submission, signed by `key` (whose name is `requested_by`).
pub fn request(key: &SignerKey, a: &RequestArgs) -> Result<Value> {
    let mut st = json!({
        "model_id": a.model_id,
        "artifact_sha256": a.artifact_sha256,
        "dataset_sha256": a.dataset_sha256,
        "lineage": a.lineage,
        "requested_by": key.name(),
        "environment": a.environment,
        "policy": a.policy,
        "signed_at": now_rfc3339(),
    });
    if let Some((repo, pr, head)) = a.github {
        st["github"] = json!({"repo": repo, "pr": pr, "head_sha": head});
    }
    if let Some(c) = a.servicenow_change {
        st["servicenow"] = json!({"change": c});
    }
    if let Some(m) = &a.performance_metrics {
        st["performance_metrics"] = signable_metrics(m)?;
    }
    let body = signed(key, st)?;
    Ok(json!({"kind": "approval_request", "body": body}))
}

/// Returns performance metrics as the signed statement holds them (SPEC.md §3.3): integers as
/// they are, other numbers as decimal strings (`1.9` becomes `"1.9"`; signed statements hold
/// no floats), decimal strings as they are. The policy's `performance_metrics.<name>`
/// thresholds read these, and only these.
pub fn signable_metrics(m: &Value) -> Result<Value> {
    let Value::Object(map) = m else {
        bail!("performance metrics must be a JSON object of name to number");
    };
    let mut out = Map::new();
    for (name, v) in map {
        let signable = match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            // f64's Display is the shortest decimal that round-trips, never an exponent.
            Value::Number(n) => match n.as_f64() {
                Some(f) if f.is_finite() => Value::String(format!("{f}")),
                _ => bail!("performance metric {name}: not a finite number"),
            },
            Value::String(_) => v.clone(),
            _ => bail!("performance metric {name}: a number or a decimal string, not {v}"),
        };
        out.insert(name.clone(), signable);
    }
    Ok(Value::Object(out))
}

/// Returns the approval submission for `request`, signed by `key` (whose name is `approver`).
pub fn approval(
    key: &SignerKey,
    request: &str,
    artifact_sha256: &str,
    decision: &str,
    role: &str,
    comment: Option<&str>,
) -> Result<Value> {
    let mut st = json!({
        "request": request,
        "artifact_sha256": artifact_sha256,
        "decision": decision,
        "approver": key.name(),
        "role": role,
        "signed_at": now_rfc3339(),
    });
    if let Some(c) = comment {
        st["comment"] = c.into();
    }
    Ok(json!({"kind": "approval", "body": signed(key, st)?}))
}

/// `govledger request`: signs the approval request (fields not given default from
/// `--metadata`) and submits it.
pub fn request_command(c: crate::args::RequestCmd) -> Result<Outcome> {
    let key = crate::keyfile::read(&c.key)?;
    let meta = match &c.metadata {
        Some(m) => crate::lineage::read_json(m)?,
        None => Value::Null,
    };
    let from_meta = |v: &Value| v.as_str().map(str::to_owned);
    let model_id = c
        .model_id
        .or_else(|| from_meta(&meta["model_id"]))
        .ok_or_else(|| anyhow!("--model-id: not given and not in --metadata"))?;
    let lineage = c
        .lineage
        .or_else(|| from_meta(&meta["lineage"]["leaf_hash"]))
        .ok_or_else(|| anyhow!("--lineage: not given and not in --metadata"))?;
    let artifact_sha256 = match (&c.artifact_sha256, &c.artifact) {
        (None, None) => from_meta(&meta["artifact"]["sha256"]),
        _ => c.artifact_sha256,
    };
    let dataset_sha256: Vec<String> = if c.dataset_sha256.is_empty() {
        meta["datasets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| from_meta(&d["sha256"]))
            .collect()
    } else {
        c.dataset_sha256
    };
    let metrics = c
        .metrics
        .map(|m| crate::lineage::read_json(&m))
        .transpose()?;
    let github = match (&c.github_repo, c.github_pr, &c.github_head_sha) {
        (Some(r), Some(n), Some(h)) => Some((r.as_str(), n, h.as_str())),
        _ => None,
    };
    let body = request(
        &key,
        &RequestArgs {
            model_id: &model_id,
            artifact_sha256: digest_of(artifact_sha256.as_deref(), c.artifact.as_deref())?,
            dataset_sha256: &dataset_sha256,
            lineage: &lineage,
            environment: &c.environment,
            policy: &c.policy,
            github,
            servicenow_change: c.servicenow_change.as_deref(),
            performance_metrics: metrics,
        },
    )?;
    crate::submit::send_built(&c.server, c.out.as_deref(), &body)
}

/// `govledger approve`: signs the decision on the request (for the artifact digest it names,
/// unless `--artifact-sha256` says which) and submits it.
pub fn approve_command(c: crate::args::ApproveCmd) -> Result<Outcome> {
    let key = crate::keyfile::read(&c.key)?;
    let artifact = match c.artifact_sha256 {
        Some(a) => a,
        None => {
            let body = crate::submit::fetch_body(&c.server.url, &c.request)?;
            body["statement"]["artifact_sha256"]
                .as_str()
                .ok_or_else(|| anyhow!("entry {} is not an approval request", c.request))?
                .to_owned()
        }
    };
    let body = approval(
        &key,
        &c.request,
        &artifact,
        &c.decision,
        &c.role,
        c.comment.as_deref(),
    )?;
    crate::submit::send_built(&c.server, c.out.as_deref(), &body)
}

/// `govledger deploy-record`: submits the deployment entry.
pub fn deploy_record_command(c: crate::args::DeployRecordCmd) -> Result<Outcome> {
    let mut body = json!({"model_id": c.model_id, "request": c.request, "status": c.status,
                          "environment": c.environment, "executed_by": c.executed_by});
    if let Some(d) = c.details {
        body["details"] = serde_json::from_str(&d).map_err(|e| anyhow!("--details: {e}"))?;
    }
    crate::submit::send_built(
        &c.server,
        c.out.as_deref(),
        &json!({"kind": "deployment", "body": body}),
    )
}

#[cfg(test)]
mod tests {
    use super::signable_metrics;
    use serde_json::json;

    #[test]
    fn metrics_are_signed_as_integers_and_decimal_strings() {
        let m =
            signable_metrics(&json!({"n": 3, "sharpe": 1.9, "tiny": 1e-7, "s": "2.5"})).unwrap();
        assert_eq!(
            m,
            json!({"n": 3, "sharpe": "1.9", "tiny": "0.0000001", "s": "2.5"})
        );
        assert!(signable_metrics(&json!({"b": true})).is_err());
        assert!(signable_metrics(&json!([1])).is_err());
    }
}
