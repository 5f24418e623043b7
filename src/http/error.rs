//! The one place errors become HTTP answers: JSON `{"error", "message", "field"}` with the right
//! status; internals are logged, not leaked.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use ledger_format::entry::SchemaErrorKind;
use ledger_format::tile::MAX_ENTRY_SIZE;

use super::submit::Rejected;
use crate::governance::{Reason, Refusal};
use crate::log::LogError;
use crate::sequencer::SubmitError;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// Returns an error with `status`, a snake_case `code` and a human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        let f = field.into();
        self.field = (!f.is_empty()).then_some(f);
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(f) = self.field {
            body["field"] = f.into();
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<LogError> for ApiError {
    fn from(e: LogError) -> ApiError {
        match e {
            LogError::NotFound(m) => ApiError::not_found(m),
            LogError::BadRequest(m) => ApiError::bad_request("bad_request", m),
            other => {
                tracing::error!("internal error: {other}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl From<Rejected> for ApiError {
    fn from(e: Rejected) -> ApiError {
        match e {
            Rejected::BodyTooLarge { limit } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {limit} bytes"),
            ),
            Rejected::NotUtf8 => ApiError::bad_request("malformed_json", "the body is not UTF-8"),
            Rejected::Schema(e) => {
                let code = match e.kind {
                    SchemaErrorKind::Malformed => "malformed_json",
                    SchemaErrorKind::Invalid => "invalid_entry",
                };
                ApiError::bad_request(code, e.message).field(e.field)
            }
            Rejected::BatchTooLarge { max } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!("a batch holds at most {max} entries"),
            )
            .field("entries"),
            Rejected::KindNotAllowed {
                client,
                kind,
                field,
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                "kind_not_allowed",
                format!("client {client} may not submit {} entries", kind.name()),
            )
            .field(field),
            Rejected::LeafTooLarge { len, field } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "leaf_too_large",
                format!("the leaf would be {len} bytes; the limit is {MAX_ENTRY_SIZE}"),
            )
            .field(field),
            Rejected::Governance(r) => ApiError::from(r),
            Rejected::MirrorBehind { lag, retry_after_s } => ApiError {
                retry_after: Some(retry_after_s as u32),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "mirror_behind",
                    format!("the WORM mirror lags {lag} entries behind the log (anchors.s3.max_unmirrored_entries); nothing was written, retry when it has caught up"),
                )
            },
            Rejected::Sequencer(e) => ApiError::from(e),
            Rejected::SequencerStopped => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the sequencer stopped",
            ),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = match r.reason {
            Reason::UnknownPerson
            | Reason::ImportedApproval
            | Reason::RoleNotHeld
            | Reason::SelfApproval => StatusCode::FORBIDDEN,
            Reason::DecisionNotNewer | Reason::SourceBound => StatusCode::CONFLICT,
            Reason::IndexUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Reason::SignedAtSkew
            | Reason::UnknownReference
            | Reason::SchemaViolation
            | Reason::InvalidSignature
            | Reason::DecidedAtInvalid
            | Reason::ArtifactMismatch
            | Reason::PolicyCheckFailed => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, r.reason.code(), r.message).field(r.field)
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> ApiError {
        match &e {
            SubmitError::EntryIdConflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "entry_id_conflict", e.to_string())
                    .field("entry_id")
            }
            SubmitError::EntryIdRepeated { .. } => {
                ApiError::new(StatusCode::CONFLICT, "entry_id_conflict", e.to_string())
                    .field("entry_id")
            }
            SubmitError::Unencodable(_) => ApiError::bad_request("invalid_entry", e.to_string()),
            SubmitError::QueueFull => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            },
            SubmitError::ReplicationUnavailable(_) => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "replication_unavailable",
                    e.to_string(),
                )
            },
            SubmitError::DiskFull(_) => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "disk_full", e.to_string())
            },
            SubmitError::Unavailable(_) => ApiError {
                retry_after: Some(5),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    e.to_string(),
                )
            },
        }
    }
}
