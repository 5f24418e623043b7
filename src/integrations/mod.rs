//! Approval sources (issue: GitHub reviews and ServiceNow change approvals). The log's own
//! integrations read them and append approval entries with `source` and `evidence`, attested by
//! the log (no personal signature): `POST /v1/approvals/{request}/sync[?source=github|servicenow]`.
//!
//! Each imported decision has a deterministic body and the entry id
//! `github-review-<id>` / `servicenow-<sys_id>` under the submitter `github` / `servicenow`, so
//! repeated syncs append it exactly once (the sequencer answers a repeat with the existing
//! entry).

#[cfg(feature = "github")]
pub mod github;
pub mod servicenow;

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::Config;

/// An approval or rejection read from a source, ready to log.
#[derive(Clone, Debug)]
pub struct Imported {
    pub source: &'static str,
    /// The source's id for it (review id, approval record sys_id).
    pub id: String,
    /// The registered person.
    pub approver: String,
    pub decision: &'static str,
    /// RFC 3339 UTC.
    pub signed_at: String,
    pub evidence: Value,
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

/// Who is who in each source: login or user name to registered person.
#[derive(Clone, Debug, Default)]
pub struct Mapping {
    pub github: HashMap<String, String>,
    pub servicenow: HashMap<String, String>,
}

impl Mapping {
    pub fn from_config(cfg: &Config) -> Mapping {
        let mut m = Mapping::default();
        for p in &cfg.people {
            if let Some(g) = &p.github {
                m.github.insert(g.to_lowercase(), p.name.clone());
            }
            if let Some(s) = &p.servicenow {
                m.servicenow.insert(s.clone(), p.name.clone());
            }
        }
        m
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
    pub fn from_config(cfg: &Config) -> anyhow::Result<Integrations> {
        Ok(Integrations {
            mapping: Mapping::from_config(cfg),
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

/// Returns the approval body for an imported decision on `request`.
pub fn body(i: &Imported, request: &str, artifact: &str, role: &str) -> Value {
    json!({
        "statement": {
            "request": request,
            "artifact_sha256": artifact,
            "decision": i.decision,
            "approver": i.approver,
            "role": role,
            "signed_at": i.signed_at,
            "comment": format!("imported from {} ({})", i.source, i.id),
        },
        "source": i.source,
        "evidence": i.evidence,
    })
}

/// Retries `f` (up to 4 attempts, backoff 250 ms doubling) while it fails with a retryable
/// error (5xx, network).
pub async fn with_retries<T, F, Fut>(mut f: F) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, (bool, SourceError)>>,
{
    let mut wait = Duration::from_millis(250);
    for attempt in 0.. {
        match f().await {
            Ok(v) => return Ok(v),
            Err((true, e)) if attempt < 3 => {
                tracing::warn!("retrying after: {}", e.message);
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err((_, e)) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}
