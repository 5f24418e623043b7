//! Entry kinds, the submission wire shape and per-kind body schemas (SPEC.md §3–4).
//!
//! A submission is one entry or a batch:
//!
//! ```text
//! {"kind": "audit", "entry_id": "risk-7781", "body": {"event_type": "RISK_DECISION", ...}}
//! {"entries": [{"kind": "audit", "body": {...}}, ...]}
//! ```
//!
//! `body` is kept as the exact bytes the submitter sent (serde_json's `RawValue`), so a submitter
//! can recompute its leaf hash from its own bytes.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::schema;

mod body;
pub use body::{
    Approval, ApprovalRequest, ApprovalStatement, Artifact, Attestation, Audit, Body, Dataset,
    Decision, Deployment, DeploymentStatus, GithubRef, Lineage, Metric, RequestStatement,
    ServicenowRef, Source, Time,
};

/// The kinds of entry the log accepts; the code is the leaf envelope's `kind` byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EntryKind {
    Audit,
    Lineage,
    ApprovalRequest,
    Approval,
    Deployment,
    KeyEvent,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [EntryKind; 6] = [
        EntryKind::Audit,
        EntryKind::Lineage,
        EntryKind::ApprovalRequest,
        EntryKind::Approval,
        EntryKind::Deployment,
        EntryKind::KeyEvent,
    ];

    /// Returns the envelope code (1..=6).
    pub fn code(self) -> u8 {
        match self {
            EntryKind::Audit => 1,
            EntryKind::Lineage => 2,
            EntryKind::ApprovalRequest => 3,
            EntryKind::Approval => 4,
            EntryKind::Deployment => 5,
            EntryKind::KeyEvent => 6,
        }
    }

    /// Returns the kind for an envelope code.
    pub fn from_code(code: u8) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Returns the wire name (`audit`, `lineage`, `approval_request`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Audit => "audit",
            EntryKind::Lineage => "lineage",
            EntryKind::ApprovalRequest => "approval_request",
            EntryKind::Approval => "approval",
            EntryKind::Deployment => "deployment",
            EntryKind::KeyEvent => "key_event",
        }
    }

    /// Returns the kind for a wire name.
    pub fn from_name(name: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A submission or body that breaks the wire shape or a schema, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SchemaError {
    /// A JSON path such as `body.compliance_tags[2]` (empty when the whole document is at fault).
    pub field: String,
    pub message: String,
    pub kind: SchemaErrorKind,
}

/// What is wrong with a document that a [`SchemaError`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaErrorKind {
    /// The text is not JSON.
    Malformed,
    /// JSON of the wrong shape, or a value a schema refuses.
    Invalid,
}

impl SchemaError {
    /// Returns an error about `field` of a document that is JSON but breaks a schema.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> SchemaError {
        SchemaError {
            field: field.into(),
            message: message.into(),
            kind: SchemaErrorKind::Invalid,
        }
    }

    /// Returns an error about a document that is not JSON (`why` is the parser's).
    pub fn malformed(field: impl Into<String>, why: impl std::fmt::Display) -> SchemaError {
        SchemaError {
            field: field.into(),
            message: format!("malformed JSON: {why}"),
            kind: SchemaErrorKind::Malformed,
        }
    }
}

/// One submitted entry, borrowing the request bytes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubmission<'a> {
    kind: String,
    #[serde(default)]
    entry_id: Option<String>,
    #[serde(borrow)]
    body: &'a RawValue,
}

/// The top level of a request: one submission or a batch, told apart by `entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop<'a> {
    #[serde(borrow, default)]
    entries: Option<Vec<RawSubmission<'a>>>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    entry_id: Option<String>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

/// A validated submission: kind, idempotency key (empty for none) and the body's exact bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission<'a> {
    pub kind: EntryKind,
    pub entry_id: String,
    pub body: &'a str,
    /// The attributes it is found by ([`attributes`]), read while validating.
    pub attributes: Vec<String>,
}

/// Parses a request body holding one submission or a `{"entries": [...]}` batch, validating the
/// envelope and each body against its kind's schema. Returns the submissions in order and
/// whether the request was a batch.
pub fn parse_submissions(json: &str) -> Result<(Vec<Submission<'_>>, bool), SchemaError> {
    let top: RawTop = serde_json::from_str(json).map_err(|e| {
        let msg = e
            .to_string()
            .replace(
                "struct RawTop",
                r#"{"kind", "entry_id", "body"} or {"entries": [...]}"#,
            )
            .replace(
                "struct RawSubmission",
                r#"an entry {"kind", "entry_id", "body"}"#,
            );
        match e.classify() {
            serde_json::error::Category::Data => {
                let field = if msg.starts_with("unknown field") || msg.starts_with("missing field")
                {
                    quoted_field(&msg)
                } else {
                    String::new()
                };
                SchemaError::new(field, msg)
            }
            _ => SchemaError::malformed("", msg),
        }
    })?;
    match top {
        RawTop {
            entries: Some(entries),
            kind: None,
            entry_id: None,
            body: None,
        } => {
            if entries.is_empty() {
                return Err(SchemaError::new(
                    "entries",
                    "a batch needs at least one entry",
                ));
            }
            let subs = entries
                .into_iter()
                .enumerate()
                .map(|(i, s)| validate(s, &format!("entries[{i}].")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((subs, true))
        }
        RawTop {
            entries: Some(_), ..
        } => Err(SchemaError::new(
            "entries",
            "a batch carries only \"entries\"; put kind, entry_id and body inside each entry",
        )),
        RawTop {
            kind,
            entry_id,
            body,
            ..
        } => {
            let kind = kind.ok_or_else(|| SchemaError::new("kind", "required field is missing"))?;
            let body = body.ok_or_else(|| SchemaError::new("body", "required field is missing"))?;
            let raw = RawSubmission {
                kind,
                entry_id,
                body,
            };
            Ok((vec![validate(raw, "")?], false))
        }
    }
}

/// Returns the first backquoted name in a serde message (`unknown field `x`, ...`).
fn quoted_field(msg: &str) -> String {
    msg.split('`').nth(1).unwrap_or_default().to_owned()
}

fn validate<'a>(raw: RawSubmission<'a>, prefix: &str) -> Result<Submission<'a>, SchemaError> {
    let kind = EntryKind::from_name(&raw.kind).ok_or_else(|| {
        SchemaError::new(
            format!("{prefix}kind"),
            format!("unknown entry kind {:?}", raw.kind),
        )
    })?;
    if kind == EntryKind::KeyEvent {
        return Err(SchemaError::new(
            format!("{prefix}kind"),
            "key_event entries are written by the log itself when its key rotates",
        ));
    }
    let entry_id = raw.entry_id.unwrap_or_default();
    crate::leaf::check_ascii_field("entry_id", &entry_id, 0)
        .map_err(|e| SchemaError::new(format!("{prefix}entry_id"), e.to_string()))?;
    let body = raw.body.get();
    let value = validate_body(kind, body).map_err(|e| SchemaError {
        field: format!(
            "{prefix}body{}{}",
            if e.field.is_empty() { "" } else { "." },
            e.field
        ),
        ..e
    })?;
    Ok(Submission {
        kind,
        entry_id,
        body,
        attributes: attributes_of(kind, &value),
    })
}

/// Validates a body against its kind's schema. Field paths in errors are relative to the body.
pub fn validate_body(kind: EntryKind, body: &str) -> Result<Value, SchemaError> {
    let value: Value = serde_json::from_str(body).map_err(|e| SchemaError::malformed("", e))?;
    let Value::Object(map) = value else {
        return Err(SchemaError::new("", "the body must be a JSON object"));
    };
    let checked = match kind {
        EntryKind::Audit => schema::audit(&map),
        EntryKind::Lineage => schema::lineage(&map),
        EntryKind::ApprovalRequest => schema::approval_request(&map),
        EntryKind::Approval => schema::approval(&map),
        EntryKind::Deployment => schema::deployment(&map),
        EntryKind::KeyEvent => Err(SchemaError::new(
            "kind",
            "key_event entries are written by the log itself when its key rotates",
        )),
    };
    checked.map(|()| Value::Object(map))
}

/// Returns the attributes an entry is found by (`GET /v1/entries?kind=&model_id=&request=&tag=`),
/// as `name=value` strings: its kind, the model id (lineage, approval_request, deployment), the
/// request it refers to (approval, deployment) and every compliance tag (audit). The body must
/// be schema-valid; attributes it lacks are simply absent.
pub fn attributes(kind: EntryKind, body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => attributes_of(kind, &v),
        Err(_) => vec![format!("kind={}", kind.name())],
    }
}

/// [`attributes`] of an already parsed body.
pub fn attributes_of(kind: EntryKind, v: &Value) -> Vec<String> {
    let mut out = vec![format!("kind={}", kind.name())];
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let model = match kind {
        EntryKind::Lineage | EntryKind::Deployment => text(&v["model_id"]),
        EntryKind::ApprovalRequest => text(&v["statement"]["model_id"]),
        _ => None,
    };
    out.extend(model.map(|m| format!("model_id={m}")));
    let request = match kind {
        EntryKind::Approval => text(&v["statement"]["request"]),
        EntryKind::Deployment => text(&v["request"]),
        _ => None,
    };
    out.extend(request.map(|r| format!("request={r}")));
    let statement = &v["statement"];
    if matches!(kind, EntryKind::ApprovalRequest | EntryKind::Approval) {
        out.extend(text(&statement["artifact_sha256"]).map(|a| format!("artifact={a}")));
    }
    if kind == EntryKind::ApprovalRequest {
        out.extend(source_bindings(statement));
    }
    if kind == EntryKind::Audit {
        for t in v["compliance_tags"].as_array().into_iter().flatten() {
            out.extend(text(t).map(|t| format!("tag={t}")));
        }
    }
    out
}

/// Returns the attributes that bind a request's statement to its sources, which at most one
/// request may carry: `github_pr=<owner/name, lowercase>#<number>` and
/// `servicenow_change=<number>`.
pub fn source_bindings(statement: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let g = &statement["github"];
    if let (Some(repo), Some(pr)) = (g["repo"].as_str(), g["pr"].as_u64()) {
        out.push(format!("github_pr={}#{pr}", repo.to_lowercase()));
    }
    if let Some(change) = statement["servicenow"]["change"].as_str() {
        out.push(format!("servicenow_change={change}"));
    }
    out
}

/// Returns the 64-bit key of an attribute (`name=value`): the first 8 bytes of its SHA-256.
pub fn attribute_key(attribute: &str) -> u64 {
    let h = crate::hash::sha256(attribute.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIT: &str = r#"{"event_type":"RISK_DECISION","component":"risk-agent","action":"reduce","details":{"x":1},"compliance_tags":["MIFID_II"]}"#;

    #[test]
    fn single_and_batch_keep_exact_body_bytes() {
        let one = format!(r#"{{"kind":"audit","entry_id":"a-1","body": {AUDIT} }}"#);
        let (subs, batch) = parse_submissions(&one).unwrap();
        assert!(!batch);
        assert_eq!(subs[0].body, AUDIT);
        assert_eq!(subs[0].entry_id, "a-1");
        let many = format!(
            r#"{{"entries":[{{"kind":"audit","body":{AUDIT}}},{{"kind":"audit","body":{AUDIT}}}]}}"#
        );
        let (subs, batch) = parse_submissions(&many).unwrap();
        assert!(batch);
        assert_eq!(subs.len(), 2);
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_submissions(r#"{"kind":"nope","body":{}}"#).unwrap_err();
        assert_eq!(e.field, "kind");
        let e = parse_submissions(r#"{"kind":"audit","body":{"event_type":"X"}}"#).unwrap_err();
        assert_eq!(e.field, "body.component");
        let bad = format!(r#"{},"extra":1}}"#, AUDIT.strip_suffix('}').unwrap());
        let e = parse_submissions(&format!(r#"{{"kind":"audit","body":{bad}}}"#)).unwrap_err();
        assert_eq!(e.field, "body.extra");
        let e = parse_submissions(r#"{"kind":"audit","body":{},"x":1}"#).unwrap_err();
        assert_eq!(e.field, "x");
        let e = parse_submissions(r#"{"kind":"audit"}"#).unwrap_err();
        assert_eq!(e.field, "body");
        let e = parse_submissions("{").unwrap_err();
        assert!(e.message.contains("malformed JSON"));
        let e = parse_submissions(r#"{"entries":[{"kind":"audit","body":[]}]}"#).unwrap_err();
        assert_eq!(e.field, "entries[0].body");
    }

    #[test]
    fn rfc3339() {
        assert!(crate::schema::is_rfc3339("2026-11-26T09:30:00Z"));
        assert!(crate::schema::is_rfc3339("2026-11-26T09:30:00.123+01:00"));
        assert!(!crate::schema::is_rfc3339("2026-13-26T09:30:00Z"));
        assert!(!crate::schema::is_rfc3339("2026-11-26 09:30:00"));
    }
}
