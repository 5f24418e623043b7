//! Approval sources (GitHub reviews and ServiceNow change approvals). The log's own
//! integrations read them and append approval entries with `source`, `evidence` and
//! `decided_at` (the source's own decision time), attested by the log (no personal
//! signature): `POST /v1/approvals/{request}/sync[?source=github|servicenow]`. Threat model:
//! docs/THREATS.md; rules: ledger-format/SPEC.md §7.4.
//!
//! A decision is imported for a request only when (see [`admit`] and [`binding`]):
//! - the request is the first in the log to name the PR or change, and the PR's or change's
//!   description names the request (a line `govledger-request: <leaf hash hex>`);
//! - it was made (its source time) no earlier than the second the request was logged, and
//!   at most the policy's statement skew past the server's clock (the submission check every
//!   imported entry passes, `decided_at_invalid`); on GitHub, on the request's head commit;
//! - every identifier read from the source is plain ([`is_source_id`], [`is_account`]) and the
//!   entry it makes can be logged (schema, governance, leaf size); anything else is reported in
//!   `skipped` with the reason, and the rest are logged.
//!
//! Each imported decision has a deterministic body and, under the submitter `github` /
//! `servicenow`, the entry id [`entry_id`]: `github-review-<request>-<review id>-<digest>` /
//! `servicenow-<request>-<sys_id>-<digest>`, where `<request>` is the first 16 hex digits of
//! the request's leaf hash and `<digest>` the first 16 hex digits of the SHA-256 of the body's
//! RFC 8785 form. So repeated syncs append a decision exactly once (the sequencer answers a
//! repeat with the existing entry), one request's imports never collide with another's, and a
//! decision that changes at the source (approved, then rejected) is a new entry beside the
//! old one, never a conflict.

pub mod binding;
#[cfg(feature = "github")]
pub mod github;
pub mod servicenow;

use std::collections::HashMap;

use ledger_format::schema::rfc3339_to_ms;
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;

pub use ledger_format::schema::is_source_id;

/// An approval or rejection read from a source, ready to log.
#[derive(Clone, Debug)]
pub struct Imported {
    pub source: &'static str,
    /// The source's id for it (review id, approval record sys_id): [`is_source_id`].
    pub id: String,
    /// The registered person.
    pub approver: String,
    pub decision: &'static str,
    /// When the source says the decision was made: RFC 3339 UTC (`...Z`). The body's
    /// `decided_at` and `statement.signed_at`.
    pub decided_at: String,
    pub evidence: Value,
}

/// What a source holds for a request: the description of the PR or change, and its decisions.
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    /// The PR's description (GitHub `body`) or the change's `description`.
    pub description: String,
    pub imported: Vec<Imported>,
    pub skipped: Vec<Skipped>,
}

/// Something read from a source that does not become an entry, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub source: &'static str,
    pub id: String,
    pub reason: String,
}

/// A source that failed; `status` is the HTTP status the sync answers with.
#[derive(Debug)]
pub struct SourceError {
    pub status: u16,
    pub message: String,
}

impl SourceError {
    pub fn new(status: u16, message: impl Into<String>) -> SourceError {
        SourceError {
            status,
            message: message.into(),
        }
    }
}

/// A source's failure as the sync answers it: 400 for a target that cannot be queried, 404
/// when the source has no such thing, 503 when it rate limits, else 502 (bad gateway).
impl From<govledger_connectors::Error> for SourceError {
    fn from(e: govledger_connectors::Error) -> SourceError {
        use govledger_connectors::Failure;
        let status = match e.failure {
            Failure::BadTarget => 400,
            Failure::NotFound => 404,
            Failure::RateLimited => 503,
            Failure::Credentials | Failure::Upstream => 502,
        };
        SourceError::new(status, e.message)
    }
}

/// Returns true for an account name as a source reports it (GitHub login, ServiceNow user
/// name): 1 to 128 ASCII letters, digits and `-_.@+`.
pub fn is_account(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+'))
}

/// Who is who in each source: login or user name (lowercase) to registered person.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    pub github: HashMap<String, String>,
    pub servicenow: HashMap<String, String>,
}

impl Mapping {
    /// Returns the mapping of the people's accounts (the policy file's and the config's, merged
    /// per person), refusing an account that is not plain ([`is_account`]) and one GitHub login
    /// (case-insensitive) or one ServiceNow user name (case-insensitive) given to two
    /// different people: one account, one person. A person may have several accounts.
    pub fn from_people<'p>(
        people: impl IntoIterator<Item = &'p ledger_format::policy::Person>,
    ) -> anyhow::Result<Mapping> {
        fn add(
            map: &mut HashMap<String, String>,
            what: &str,
            account: &str,
            person: &str,
        ) -> anyhow::Result<()> {
            anyhow::ensure!(
                is_account(account),
                "person {person}: {what} {account:?} must be 1 to 128 letters, digits and -_.@+"
            );
            let key = account.to_lowercase();
            if let Some(other) = map.get(&key).filter(|o| *o != person) {
                anyhow::bail!(
                    "people: the {what} {account:?} belongs to both {other} and {person}; one account must map to one person"
                );
            }
            map.insert(key, person.to_owned());
            Ok(())
        }
        let mut m = Mapping::default();
        for p in people {
            for g in &p.github {
                add(&mut m.github, "GitHub login", g, &p.name)?;
            }
            for s in &p.servicenow {
                add(&mut m.servicenow, "ServiceNow user", s, &p.name)?;
            }
        }
        Ok(m)
    }

    /// The person with GitHub login `login`.
    pub fn github_person(&self, login: &str) -> Option<&String> {
        self.github.get(&login.to_lowercase())
    }

    /// The person with ServiceNow user name `user`.
    pub fn servicenow_person(&self, user: &str) -> Option<&String> {
        self.servicenow
            .get(&user.to_lowercase())
            .or_else(|| self.servicenow.get(user))
    }
}

/// The configured sources.
pub struct Integrations {
    pub mapping: Mapping,
    #[cfg(feature = "github")]
    pub github: Option<github::GitHub>,
    pub servicenow: Option<servicenow::ServiceNow>,
}

impl Integrations {
    /// Returns the sources `cfg` configures, with the people's accounts `mapping`.
    pub fn new(cfg: &Config, mapping: Mapping) -> anyhow::Result<Integrations> {
        Ok(Integrations {
            mapping,
            #[cfg(feature = "github")]
            github: cfg.github.as_ref().map(github::GitHub::new).transpose()?,
            servicenow: cfg
                .servicenow
                .as_ref()
                .map(servicenow::ServiceNow::new)
                .transpose()?,
        })
    }
}

/// Returns the approval body for an imported decision on `request` (its leaf hash, hex):
/// `decided_at` and `statement.signed_at` are the source's decision time.
pub fn body(i: &Imported, request: &str, artifact: &str, role: &str) -> Value {
    json!({
        "statement": {
            "request": request,
            "artifact_sha256": artifact,
            "decision": i.decision,
            "approver": i.approver,
            "role": role,
            "signed_at": i.decided_at,
            "comment": format!("imported from {} ({})", i.source, i.id),
        },
        "source": i.source,
        "decided_at": i.decided_at,
        "evidence": i.evidence,
    })
}

/// Returns the entry id of `body`, the import `i` for `request` (leaf hash, hex):
/// `github-review-<first 16 hex of request>-<review id>-<first 16 hex of SHA-256(JCS(body))>`,
/// `servicenow-<...>-<sys_id>-<...>` (at most 14 + 17 + 65 + 17 bytes).
pub fn entry_id(i: &Imported, request: &str, body: &Value) -> String {
    let kind = if i.source == "github" {
        "github-review"
    } else {
        "servicenow"
    };
    let canonical = ledger_format::jcs::canonicalize(body).unwrap_or_else(|_| body.to_string());
    let digest = hex::encode(&ledger_format::hash::sha256(canonical.as_bytes())[..8]);
    format!(
        "{kind}-{}-{}-{digest}",
        &request[..16.min(request.len())],
        i.id
    )
}

/// The request decisions are imported for.
#[derive(Clone, Debug)]
pub struct Scope {
    /// Its leaf hash, hex.
    pub request: String,
}

/// Returns what of a source's `read` may be imported for `scope`: nothing unless the
/// description (`what`: "the pull request's description") names the request, in which case
/// `skipped` holds that one reason; then only decisions whose source time is a time (whether
/// it falls after the request was logged and before the clock is the submission check's, as
/// for every imported entry).
pub fn admit(
    scope: &Scope,
    source: &'static str,
    what: &str,
    target: &str,
    read: Decisions,
) -> (Vec<Imported>, Vec<Skipped>) {
    if let Err(reason) = binding::check_marker(what, &read.description, &scope.request) {
        return (
            Vec::new(),
            vec![Skipped {
                source,
                id: target.to_owned(),
                reason: format!("nothing imported from {target}: {reason}"),
            }],
        );
    }
    let (mut imported, mut skipped) = (Vec::new(), read.skipped);
    for i in read.imported {
        let skip = |reason: String| Skipped {
            source: i.source,
            id: i.id.clone(),
            reason,
        };
        match rfc3339_to_ms(&i.decided_at) {
            None => skipped.push(skip(format!("decided at {:?}: not a time", i.decided_at))),
            Some(_) => imported.push(i),
        }
    }
    (imported, skipped)
}

pub use ledger_format::rfc3339::format_ms as rfc3339_ms;
