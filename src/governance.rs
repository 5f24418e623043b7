//! Submission-time governance checks: people and their keys, signed statements, and references
//! between entries (DESIGN.md §4). Runs before an entry is queued; a failure appends nothing.
//!
//! - approval_request: `requested_by` is a registered person whose key signed the statement
//!   (Ed25519 over its RFC 8785 form); the referenced lineage entry exists, is a lineage, and
//!   passes the policy's pre-approval checks (same model, artifact and dataset digests, metric
//!   thresholds, environment, policy name: `ledger_format::policy::pre_approval_checks`); the
//!   pull request or change it names is not bound to another request
//!   (`integrations::binding::check_bindings`, 409 `source_bound`).
//! - approval (signed): the approver is registered, signed it, and holds the role it claims;
//!   the request exists and is an approval_request; the artifact digest equals the request's;
//!   the approver is not the requester. Imported approvals (`source`) are written by the log's integrations only.
//! - deployment: the request exists and is an approval_request.
//! - lineage: a `parent` exists and is a lineage entry.

use ledger_format::approval::verify_statement;
use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::policy::{pre_approval_checks, Policy};
use ledger_format::Hash;
use serde_json::Value;

use crate::log::Log;

/// Why a submission was refused: an HTTP status, a snake_case code, the field and the reason.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub field: String,
    pub message: String,
}

fn refuse(status: u16, code: &'static str, field: &str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Verifies that `signer` (a registered name) signed `statement` with `signature`.
fn check_signature(
    policy: &Policy,
    (signer_field, sig_field): (&str, &str),
    signer: &str,
    statement: &Value,
    signature: &str,
) -> Result<(), Refusal> {
    if policy.people.get(signer).is_none() {
        return Err(refuse(
            403,
            "unknown_person",
            signer_field,
            format!("{signer:?} is not a registered person"),
        ));
    }
    verify_statement(policy, signer, statement, signature)
        .map_err(|why| refuse(400, "invalid_signature", sig_field, why))
}

/// Returns the body of the logged entry `reference` (a leaf hash in hex) of kind `kind`.
fn referenced(log: &Log, field: &str, reference: &str, kind: EntryKind) -> Result<Value, Refusal> {
    let unknown = || {
        refuse(
            400,
            "unknown_reference",
            field,
            format!("no {} entry {reference} in the log", kind.name()),
        )
    };
    let hash = Hash::from_hex(reference).map_err(|_| unknown())?;
    let index = log
        .index
        .leaf(&hash)
        .map_err(|e| refuse(503, "unavailable", field, e.to_string()))?
        .filter(|i| *i < log.published().size)
        .ok_or_else(unknown)?;
    let leaf = log.leaf(index).map_err(|_| unknown())?;
    let leaf = Leaf::parse(&leaf).map_err(|_| unknown())?;
    if leaf.kind != kind {
        return Err(refuse(
            400,
            "unknown_reference",
            field,
            format!(
                "entry {reference} is a {}, not a {}",
                leaf.kind.name(),
                kind.name()
            ),
        ));
    }
    serde_json::from_slice(&leaf.body).map_err(|_| unknown())
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

/// Checks a schema-valid body of `kind` against people and the log. `prefix` is the field path
/// prefix for errors (`body.` or `entries[3].body.`).
pub fn check(
    log: &Log,
    policy: &Policy,
    kind: EntryKind,
    body: &str,
    prefix: &str,
) -> Result<(), Refusal> {
    check_as(log, policy, kind, body, prefix, false)
}

/// [`check`], for the log's own integrations when `imported`: an approval with `source` (GitHub,
/// ServiceNow) carries evidence instead of a personal signature; everything else is checked.
pub fn check_as(
    log: &Log,
    policy: &Policy,
    kind: EntryKind,
    body: &str,
    prefix: &str,
    imported: bool,
) -> Result<(), Refusal> {
    if matches!(kind, EntryKind::Audit) {
        return Ok(()); // nothing to check, so no second parse on the hot path
    }
    let v: Value = serde_json::from_str(body)
        .map_err(|e| refuse(400, "malformed_json", prefix, e.to_string()))?;
    let f = |name: &str| format!("{prefix}{name}");
    match kind {
        EntryKind::ApprovalRequest => {
            let st = &v["statement"];
            check_signature(
                policy,
                (&f("statement.requested_by"), &f("signature")),
                s(st, &["requested_by"]),
                st,
                s(&v, &["signature"]),
            )?;
            crate::integrations::binding::check_bindings(log, st, prefix)?;
            let lineage = referenced(
                log,
                &f("statement.lineage"),
                s(st, &["lineage"]),
                EntryKind::Lineage,
            )?;
            let reference = s(st, &["lineage"]);
            let failed: Vec<_> = pre_approval_checks(policy, &v, Some((reference, &lineage)))
                .into_iter()
                .filter(|c| !c.ok)
                .collect();
            let Some(first) = failed.first() else {
                return Ok(());
            };
            let (code, field) = match first.rule.as_str() {
                "lineage_artifact" => ("artifact_mismatch", "statement.artifact_sha256"),
                "lineage_datasets" => ("policy_check_failed", "statement.dataset_sha256"),
                "environment" => ("policy_check_failed", "statement.environment"),
                "policy_name" => ("policy_check_failed", "statement.policy"),
                r if r.starts_with("metric:performance_metrics") => {
                    ("policy_check_failed", "performance_metrics")
                }
                _ => ("policy_check_failed", "statement.lineage"),
            };
            let reasons: Vec<String> = failed
                .iter()
                .map(|c| format!("{}: {}", c.rule, c.detail))
                .collect();
            Err(refuse(400, code, &f(field), reasons.join("; ")))
        }
        EntryKind::Approval => {
            let st = &v["statement"];
            let approver = s(st, &["approver"]);
            match (v.get("source").is_some(), imported) {
                (true, false) => return Err(refuse(
                    403,
                    "imported_approval",
                    &f("source"),
                    "approvals from GitHub or ServiceNow are imported by the log's integrations",
                )),
                (true, true) if policy.people.get(approver).is_none() => {
                    return Err(refuse(
                        403,
                        "unknown_person",
                        &f("statement.approver"),
                        format!("{approver:?} is not a registered person"),
                    ))
                }
                (true, true) => {}
                (false, _) => check_signature(
                    policy,
                    (&f("statement.approver"), &f("signature")),
                    approver,
                    st,
                    s(&v, &["signature"]),
                )?,
            }
            let role = s(st, &["role"]);
            if let Some(p) = policy.people.get(approver) {
                if !p.roles.iter().any(|r| r == role) {
                    return Err(refuse(
                        403,
                        "role_not_held",
                        &f("statement.role"),
                        format!(
                            "{approver} does not hold the role {role:?} (roles: [{}])",
                            p.roles.join(", ")
                        ),
                    ));
                }
            }
            let request = referenced(
                log,
                &f("statement.request"),
                s(st, &["request"]),
                EntryKind::ApprovalRequest,
            )?;
            if s(&request, &["statement", "artifact_sha256"]) != s(st, &["artifact_sha256"]) {
                return Err(refuse(
                    400,
                    "artifact_mismatch",
                    &f("statement.artifact_sha256"),
                    "the request is for another artifact digest",
                ));
            }
            if s(&request, &["statement", "requested_by"]) == approver {
                return Err(refuse(
                    403,
                    "self_approval",
                    &f("statement.approver"),
                    "the requester cannot approve their own release",
                ));
            }
            Ok(())
        }
        EntryKind::Deployment => referenced(
            log,
            &f("request"),
            s(&v, &["request"]),
            EntryKind::ApprovalRequest,
        )
        .map(|_| ()),
        EntryKind::Lineage => match v.get("parent").and_then(Value::as_str) {
            Some(parent) => referenced(log, &f("parent"), parent, EntryKind::Lineage).map(|_| ()),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}
