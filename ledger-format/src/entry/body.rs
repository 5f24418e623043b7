//! Entry bodies as types: each kind's body parsed once, by its strict schema, into a value that
//! cannot hold anything else (SPEC.md §3). The server's governance checks, the approval
//! evaluator, the policy's pre-approval checks, the deploy gate, the monitor and the audit take
//! these values; none of them walks the raw JSON again.
//!
//! ```text
//! {"statement": {"request": "<64 hex>", "artifact_sha256": "sha256:<64 hex>",
//!                "decision": "reject", "approver": "bob", "role": "risk",
//!                "signed_at": "2026-11-26T10:00:00Z"},
//!  "signature": "<base64 Ed25519>"}
//!   => Body::Approval(Approval { statement: ApprovalStatement { decision: Decision::Reject, .. },
//!                                attestation: Attestation::Signed { .. }, .. })
//! ```
//!
//! [`Body::parse`] runs the kind's schema ([`crate::schema`]: unknown fields refused, every
//! string and list bounded, digests, references and times checked) and then reads the checked
//! object into the type, so a body that parses is one the schema accepted.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{EntryKind, SchemaError};
use crate::rfc3339::rfc3339_to_ms;
use crate::Hash;

/// An RFC 3339 time as a statement carried it, with its value in Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Time {
    pub text: String,
    pub ms: u64,
}

impl Time {
    /// Parses a strict RFC 3339 time at or after 1970-01-01T00:00:00Z.
    pub fn parse(text: &str) -> Option<Time> {
        rfc3339_to_ms(text).map(|ms| Time {
            text: text.to_owned(),
            ms,
        })
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        let s = String::deserialize(d)?;
        Time::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time after 1970"))
        })
    }
}

fn hex_hash<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
    let s = String::deserialize(d)?;
    Hash::from_hex(&s).map_err(serde::de::Error::custom)
}

fn opt_hex_hash<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| Hash::from_hex(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// An approval's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    /// Returns the wire name (`approve`, `reject`).
    pub fn name(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }
}

/// Where a decision comes from: a person's own signature, or an import the log attests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Signed,
    Github,
    Servicenow,
}

impl Source {
    /// Every source, in the order policies name them.
    pub const ALL: [Source; 3] = [Source::Signed, Source::Github, Source::Servicenow];

    /// Returns the wire name (`signed`, `github`, `servicenow`).
    pub fn name(self) -> &'static str {
        match self {
            Source::Signed => "signed",
            Source::Github => "github",
            Source::Servicenow => "servicenow",
        }
    }

    /// Returns the source for a wire name.
    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The pull request a release request names (`statement.github`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubRef {
    pub repo: String,
    pub pr: u64,
    pub head_sha: String,
}

/// The change a release request names (`statement.servicenow`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicenowRef {
    pub change: String,
}

/// A metric value: an integer, or a decimal written as a string (signed statements carry no
/// floats), or any JSON number (lineage metrics are not signed).
#[derive(Clone, Debug, PartialEq)]
pub struct Metric(pub f64);

/// Returns the metrics of a JSON object that are numbers or decimal strings.
fn metrics_of(map: &Map<String, Value>) -> BTreeMap<String, Metric> {
    map.iter()
        .filter_map(|(k, v)| {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) if crate::schema::is_decimal(s) => s.parse().ok(),
                _ => None,
            };
            n.map(|n| (k.clone(), Metric(n)))
        })
        .collect()
}

fn metrics<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Metric>, D::Error> {
    Ok(Option::<Map<String, Value>>::deserialize(d)?
        .map(|m| metrics_of(&m))
        .unwrap_or_default())
}

/// An audit event.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub event_type: String,
    pub component: String,
    pub action: String,
    pub details: Map<String, Value>,
    pub compliance_tags: Vec<String>,
    pub severity: Option<String>,
    pub actor: Option<String>,
    pub occurred_at: Option<Time>,
}

/// One dataset of a lineage entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub sha256: String,
    pub size_bytes: Option<u64>,
    pub files: Option<u64>,
    #[serde(default)]
    pub transformations: Vec<String>,
    pub method: Option<String>,
}

/// A lineage entry's artifact.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub path: String,
    pub sha256: String,
    pub size_bytes: u64,
}

/// A model-lineage record.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub model_id: String,
    pub model_name: Option<String>,
    pub model_version: Option<String>,
    pub model_type: Option<String>,
    pub created_by: Option<String>,
    pub training_config: Option<Map<String, Value>>,
    pub hyperparameters: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "metrics")]
    pub training_metrics: BTreeMap<String, Metric>,
    #[serde(default, deserialize_with = "metrics")]
    pub validation_metrics: BTreeMap<String, Metric>,
    #[serde(default)]
    pub datasets: Vec<Dataset>,
    pub artifact: Artifact,
    pub code: Option<Map<String, Value>>,
    pub dependencies: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "opt_hex_hash")]
    pub parent: Option<Hash>,
}

/// What a requester signs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestStatement {
    pub model_id: String,
    pub artifact_sha256: String,
    pub dataset_sha256: Vec<String>,
    #[serde(deserialize_with = "hex_hash")]
    pub lineage: Hash,
    pub requested_by: String,
    pub environment: String,
    pub policy: String,
    pub signed_at: Time,
    pub github: Option<GithubRef>,
    pub servicenow: Option<ServicenowRef>,
    /// Signed metrics (`statement.performance_metrics`), the only ones metric rules read.
    #[serde(default, deserialize_with = "metrics")]
    pub performance_metrics: BTreeMap<String, Metric>,
}

/// A release request: the requester's signed statement.
#[derive(Clone, Debug)]
pub struct ApprovalRequest {
    pub statement: RequestStatement,
    /// The statement as logged, whose RFC 8785 form the signature covers.
    pub statement_json: Value,
    pub signature: Vec<u8>,
    /// The unsigned top-level `performance_metrics` of earlier clients: shown, never checked.
    pub unsigned_metrics: Option<Map<String, Value>>,
}

/// What an approver signs (or what the log's integration records for an import).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalStatement {
    #[serde(deserialize_with = "hex_hash")]
    pub request: Hash,
    pub artifact_sha256: String,
    pub decision: Decision,
    pub approver: String,
    pub role: String,
    pub signed_at: Time,
    pub comment: Option<String>,
}

/// Who vouches for an approval.
#[derive(Clone, Debug)]
pub enum Attestation {
    /// The approver's own Ed25519 signature over the statement's RFC 8785 form.
    Signed { signature: Vec<u8> },
    /// Imported by the log's integration from `source`, which decided at `decided_at`.
    Imported {
        source: Source,
        decided_at: Time,
        evidence: Map<String, Value>,
    },
}

/// An approval or rejection of a release request.
#[derive(Clone, Debug)]
pub struct Approval {
    pub statement: ApprovalStatement,
    /// The statement as logged, whose RFC 8785 form a signature covers.
    pub statement_json: Value,
    pub attestation: Attestation,
}

impl Approval {
    /// Returns where the decision comes from.
    pub fn source(&self) -> Source {
        match &self.attestation {
            Attestation::Signed { .. } => Source::Signed,
            Attestation::Imported { source, .. } => *source,
        }
    }

    /// Returns the decision's own time: `signed_at` of a signed statement, the source's
    /// `decided_at` of an import.
    pub fn decided_at(&self) -> &Time {
        match &self.attestation {
            Attestation::Signed { .. } => &self.statement.signed_at,
            Attestation::Imported { decided_at, .. } => decided_at,
        }
    }
}

/// A deployment's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeploymentStatus {
    Success,
    Failure,
    Rollback,
}

/// A deployment record.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    pub model_id: String,
    #[serde(deserialize_with = "hex_hash")]
    pub request: Hash,
    pub status: DeploymentStatus,
    pub environment: String,
    pub executed_by: String,
    pub details: Option<Map<String, Value>>,
}

/// A body of any kind, parsed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Body {
    Audit(Audit),
    Lineage(Lineage),
    ApprovalRequest(ApprovalRequest),
    Approval(Approval),
    Deployment(Deployment),
    KeyEvent(crate::key_event::KeyEvent),
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, SchemaError> {
    serde_json::from_value(v).map_err(|e| SchemaError::new("", e.to_string()))
}

fn signature_bytes(v: &Value) -> Result<Vec<u8>, SchemaError> {
    use base64::Engine;
    v.as_str()
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or_else(|| SchemaError::new("signature", "must be base64"))
}

impl Body {
    /// Parses a body of `kind`: its schema, then its type. Field paths in errors are relative
    /// to the body.
    pub fn parse(kind: EntryKind, body: &str) -> Result<Body, SchemaError> {
        if kind == EntryKind::KeyEvent {
            return crate::key_event::KeyEvent::parse(body.as_bytes())
                .map(Body::KeyEvent)
                .map_err(|e| SchemaError::new("", e.to_string()));
        }
        let mut value = super::validate_body(kind, body)?;
        Body::from_checked(kind, value.take())
    }

    /// Reads a body the schema accepted into its type.
    fn from_checked(kind: EntryKind, value: Value) -> Result<Body, SchemaError> {
        let Value::Object(mut map) = value else {
            return Err(SchemaError::new("", "the body must be a JSON object"));
        };
        Ok(match kind {
            EntryKind::Audit => Body::Audit(typed(Value::Object(map))?),
            EntryKind::Lineage => Body::Lineage(typed(Value::Object(map))?),
            EntryKind::Deployment => Body::Deployment(typed(Value::Object(map))?),
            EntryKind::ApprovalRequest => {
                let statement_json = map.remove("statement").unwrap_or_default();
                Body::ApprovalRequest(ApprovalRequest {
                    statement: typed(statement_json.clone())?,
                    statement_json,
                    signature: signature_bytes(map.get("signature").unwrap_or(&Value::Null))?,
                    unsigned_metrics: match map.remove("performance_metrics") {
                        Some(Value::Object(m)) => Some(m),
                        _ => None,
                    },
                })
            }
            EntryKind::Approval => {
                let statement_json = map.remove("statement").unwrap_or_default();
                let attestation = match map.get("source").and_then(Value::as_str) {
                    None => Attestation::Signed {
                        signature: signature_bytes(map.get("signature").unwrap_or(&Value::Null))?,
                    },
                    Some(name) => Attestation::Imported {
                        source: Source::from_name(name)
                            .filter(|s| *s != Source::Signed)
                            .ok_or_else(|| SchemaError::new("source", "unknown source"))?,
                        decided_at: typed(map.remove("decided_at").unwrap_or_default())?,
                        evidence: match map.remove("evidence") {
                            Some(Value::Object(m)) => m,
                            _ => return Err(SchemaError::new("evidence", "must be an object")),
                        },
                    },
                };
                Body::Approval(Approval {
                    statement: typed(statement_json.clone())?,
                    statement_json,
                    attestation,
                })
            }
            EntryKind::KeyEvent => {
                return Err(SchemaError::new(
                    "kind",
                    "key_event bodies are parsed by ledger_format::key_event",
                ))
            }
        })
    }

    /// Returns the kind of the body.
    pub fn kind(&self) -> EntryKind {
        match self {
            Body::Audit(_) => EntryKind::Audit,
            Body::Lineage(_) => EntryKind::Lineage,
            Body::ApprovalRequest(_) => EntryKind::ApprovalRequest,
            Body::Approval(_) => EntryKind::Approval,
            Body::Deployment(_) => EntryKind::Deployment,
            Body::KeyEvent(_) => EntryKind::KeyEvent,
        }
    }
}
