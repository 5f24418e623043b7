//! Submission-time governance checks: people and their keys, signed statements, and references
//! between entries (DESIGN.md §4). Runs before an entry is queued; a failure appends nothing.
//!
//! - approval_request: `requested_by` is a registered person whose key signed the statement
//!   (Ed25519 over its RFC 8785 form); the referenced lineage entry exists, is a lineage, and
//!   names the same artifact digest.
//! - approval (signed): the approver is registered and signed it; the request exists and is an
//!   approval_request; the artifact digest equals the request's; the approver is not the
//!   requester. Imported approvals (`source`) are written by the log's integrations only.
//! - deployment: the request exists and is an approval_request.
//! - lineage: a `parent` exists and is a lineage entry.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::note::{SigType, VerifierKey};
use ledger_format::Hash;
use serde_json::Value;

use crate::log::Log;

/// A registered person.
#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub roles: Vec<String>,
    pub key: VerifierKey,
}

/// Registered people by name (one key, one name).
#[derive(Clone, Debug, Default)]
pub struct People {
    by_name: HashMap<String, Person>,
}

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

impl People {
    /// Returns the registry, refusing a key registered under two names or a non-Ed25519 key.
    pub fn new(people: Vec<Person>) -> Result<People, String> {
        let mut by_name = HashMap::new();
        let mut keys: HashMap<String, String> = HashMap::new();
        for p in people {
            if p.key.sig_type() != SigType::Ed25519 {
                return Err(format!(
                    "{}: a person's key must be an Ed25519 note key (type 0x01)",
                    p.name
                ));
            }
            let k = p.key.to_string();
            if let Some(other) = keys.insert(k, p.name.clone()) {
                return Err(format!(
                    "one key is registered for both {other} and {}",
                    p.name
                ));
            }
            if by_name.insert(p.name.clone(), p.clone()).is_some() {
                return Err(format!("{} is registered twice", p.name));
            }
        }
        Ok(People { by_name })
    }

    /// Returns the person registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Person> {
        self.by_name.get(name)
    }
}

/// Verifies that `signer` (a registered name) signed `statement` (the raw JSON) with `signature`.
fn verify_statement(
    people: &People,
    (signer_field, sig_field): (&str, &str),
    signer: &str,
    statement: &Value,
    signature: &str,
) -> Result<(), Refusal> {
    let person = people.get(signer).ok_or_else(|| {
        refuse(
            403,
            "unknown_person",
            signer_field,
            format!("{signer:?} is not a registered person"),
        )
    })?;
    let canonical = ledger_format::jcs::canonicalize(statement)
        .map_err(|e| refuse(400, "invalid_entry", signer_field, e.to_string()))?;
    let sig = STANDARD
        .decode(signature)
        .map_err(|_| refuse(400, "invalid_signature", sig_field, "not base64"))?;
    if !person.key.verify_raw(canonical.as_bytes(), &sig) {
        return Err(refuse(
            400,
            "invalid_signature",
            sig_field,
            format!("the signature does not verify with {signer}'s key over the RFC 8785 form of the statement"),
        ));
    }
    Ok(())
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
    people: &People,
    kind: EntryKind,
    body: &str,
    prefix: &str,
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
            verify_statement(
                people,
                (&f("statement.requested_by"), &f("signature")),
                s(st, &["requested_by"]),
                st,
                s(&v, &["signature"]),
            )?;
            let lineage = referenced(
                log,
                &f("statement.lineage"),
                s(st, &["lineage"]),
                EntryKind::Lineage,
            )?;
            if s(&lineage, &["artifact", "sha256"]) != s(st, &["artifact_sha256"]) {
                return Err(refuse(
                    400,
                    "artifact_mismatch",
                    &f("statement.artifact_sha256"),
                    "the lineage entry records another artifact digest",
                ));
            }
            Ok(())
        }
        EntryKind::Approval => {
            let st = &v["statement"];
            if v.get("source").is_some() {
                return Err(refuse(
                    403,
                    "imported_approval",
                    &f("source"),
                    "approvals from GitHub or ServiceNow are imported by the log's integrations",
                ));
            }
            let approver = s(st, &["approver"]);
            verify_statement(
                people,
                (&f("statement.approver"), &f("signature")),
                approver,
                st,
                s(&v, &["signature"]),
            )?;
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
