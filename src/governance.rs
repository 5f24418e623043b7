//! Submission-time governance checks: people and their keys, signed statements, their times,
//! and references between entries (ledger-format SPEC.md §7.3). Runs before an entry is queued;
//! a failure appends nothing. Bodies are parsed once, into `ledger_format::entry::Body`.
//!
//! - approval_request: `requested_by` is a registered person whose key signed the statement
//!   (Ed25519 over its RFC 8785 form); `signed_at` is within the policy's
//!   `max_statement_skew` of the server's clock; the referenced lineage entry exists, is a
//!   lineage, and passes the policy's pre-approval checks; the pull request or change it names
//!   is not bound to another request (`integrations::binding::check_bindings`, 409
//!   `source_bound`).
//! - approval (signed): the approver is registered, signed it with the key they held at
//!   `signed_at`, which is within the skew, and is later than their latest decision already
//!   logged on the request (no replay to win a tie); they hold the role; the request exists and
//!   is an approval_request; the artifact digest equals the request's; the approver is not the
//!   requester. Imported approvals (`source`) are written by the log's integrations only, and
//!   their `decided_at` lies between the request's logging and now.
//! - deployment: the request exists and is an approval_request.
//! - lineage: a `parent` exists and is a lineage entry.

use ledger_format::approval::{skew_error, verify_statement, Logged};
use ledger_format::entry::{Approval, ApprovalRequest, Attestation, Body, EntryKind, Lineage};
use ledger_format::policy::{pre_approval_checks, Person, Policy};
use ledger_format::Hash;

use crate::log::Log;

/// Why a submission was refused: the reason, the field at fault and a human message. (The
/// HTTP layer chooses the status: `crate::http::error`.)
#[derive(Debug)]
pub struct Refusal {
    pub reason: Reason,
    pub field: String,
    pub message: String,
}

/// The governance rule a submission broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A statement names someone the policy does not register.
    UnknownPerson,
    /// A statement dated too far from the log's clock.
    SignedAtSkew,
    /// A reference to an entry the log does not hold, or of the wrong kind.
    UnknownReference,
    /// The log's index could not be read: nothing is known about the submission.
    IndexUnavailable,
    /// A statement that breaks its kind's schema.
    SchemaViolation,
    /// A signature that does not verify under the registered key.
    InvalidSignature,
    /// An approval carrying imported evidence, submitted by a client rather than an
    /// integration of the log.
    ImportedApproval,
    /// An imported decision's time outside the accepted bounds.
    DecidedAtInvalid,
    /// An approver who does not hold the role the policy requires.
    RoleNotHeld,
    /// A request whose artifact is not its lineage's.
    ArtifactMismatch,
    /// A request that fails a policy check before approval (lineage, environment, metrics).
    PolicyCheckFailed,
    /// The requester approving their own release.
    SelfApproval,
    /// A decision not newer than the approver's last one on the request.
    DecisionNotNewer,
    /// A pull request or change already bound to another request.
    SourceBound,
}

impl Reason {
    /// Returns the snake_case code clients see in `error`.
    pub fn code(self) -> &'static str {
        match self {
            Reason::UnknownPerson => "unknown_person",
            Reason::SignedAtSkew => "signed_at_skew",
            Reason::UnknownReference => "unknown_reference",
            Reason::IndexUnavailable => "unavailable",
            Reason::SchemaViolation => "schema_violation",
            Reason::InvalidSignature => "invalid_signature",
            Reason::ImportedApproval => "imported_approval",
            Reason::DecidedAtInvalid => "decided_at_invalid",
            Reason::RoleNotHeld => "role_not_held",
            Reason::ArtifactMismatch => "artifact_mismatch",
            Reason::PolicyCheckFailed => "policy_check_failed",
            Reason::SelfApproval => "self_approval",
            Reason::DecisionNotNewer => "decision_not_newer",
            Reason::SourceBound => "source_bound",
        }
    }
}

pub(crate) fn refuse(reason: Reason, field: &str, message: impl Into<String>) -> Refusal {
    Refusal {
        reason,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The server refuses statements this much closer to the skew bound than the evaluator does,
/// so that a statement it accepts is still within the bound at the time the sequencer logs it.
const SKEW_MARGIN_MS: u64 = 5_000;

/// Returns the registered person `name`.
fn person<'p>(policy: &'p Policy, field: &str, name: &str) -> Result<&'p Person, Refusal> {
    policy.people.get(name).ok_or_else(|| {
        refuse(
            Reason::UnknownPerson,
            field,
            format!("{name:?} is not a registered person"),
        )
    })
}

/// Refuses a signed statement dated too far from now (400 `signed_at_skew`).
fn check_skew(policy: &Policy, field: &str, signed_at_ms: u64) -> Result<(), Refusal> {
    let skew = policy.max_statement_skew_ms.saturating_sub(SKEW_MARGIN_MS);
    match skew_error(signed_at_ms, crate::sequencer::now_ms(), skew) {
        Some(why) => Err(refuse(Reason::SignedAtSkew, field, why)),
        None => Ok(()),
    }
}

/// Returns the logged entry `reference` of kind `kind`, parsed.
fn referenced(
    log: &Log,
    field: &str,
    reference: &Hash,
    kind: EntryKind,
) -> Result<Logged, Refusal> {
    let entry = lookup(log, field, reference)?.ok_or_else(|| {
        refuse(
            Reason::UnknownReference,
            field,
            format!("no {} entry {} in the log", kind.name(), reference.to_hex()),
        )
    })?;
    if entry.kind() != kind {
        return Err(refuse(
            Reason::UnknownReference,
            field,
            format!(
                "entry {} is a {}, not a {}",
                reference.to_hex(),
                entry.kind().name(),
                kind.name()
            ),
        ));
    }
    Ok(entry)
}

/// Returns the entry with leaf hash `reference` within the published tree, if the log holds
/// one that parses under today's schema.
fn lookup(log: &Log, field: &str, reference: &Hash) -> Result<Option<Logged>, Refusal> {
    let Some(index) = log
        .index
        .leaf(reference)
        .map_err(|e| refuse(Reason::IndexUnavailable, field, e.to_string()))?
        .filter(|i| *i < log.published().size)
    else {
        return Ok(None);
    };
    Ok(log
        .leaf(index)
        .ok()
        .and_then(|leaf| Logged::from_leaf(index, &leaf).ok()))
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
    let parsed = Body::parse(kind, body).map_err(|e| {
        let field = if e.field.is_empty() {
            prefix.trim_end_matches('.').to_owned()
        } else {
            format!("{prefix}{}", e.field)
        };
        refuse(Reason::SchemaViolation, &field, e.message)
    })?;
    let f = |name: &str| format!("{prefix}{name}");
    match &parsed {
        Body::ApprovalRequest(r) => check_request(log, policy, r, &f),
        Body::Approval(a) => check_approval(log, policy, a, &f, imported),
        Body::Deployment(d) => {
            referenced(log, &f("request"), &d.request, EntryKind::ApprovalRequest).map(|_| ())
        }
        Body::Lineage(Lineage {
            parent: Some(parent),
            ..
        }) => referenced(log, &f("parent"), parent, EntryKind::Lineage).map(|_| ()),
        _ => Ok(()),
    }
}

fn check_request(
    log: &Log,
    policy: &Policy,
    r: &ApprovalRequest,
    f: &dyn Fn(&str) -> String,
) -> Result<(), Refusal> {
    let st = &r.statement;
    let requester = person(policy, &f("statement.requested_by"), &st.requested_by)?;
    check_skew(policy, &f("statement.signed_at"), st.signed_at.ms)?;
    verify_statement(requester, &r.statement_json, &r.signature, st.signed_at.ms)
        .map_err(|why| refuse(Reason::InvalidSignature, &f("signature"), why))?;
    crate::integrations::binding::check_bindings(log, &r.statement_json, &f(""))?;
    // A policy that does not require the lineage accepts a request whose lineage is not (yet)
    // in the log; one that names an entry of another kind is refused either way.
    let lineage_field = f("statement.lineage");
    let lineage = if policy.lineage_required || lookup(log, &lineage_field, &st.lineage)?.is_some()
    {
        Some(referenced(
            log,
            &lineage_field,
            &st.lineage,
            EntryKind::Lineage,
        )?)
    } else {
        None
    };
    let failed: Vec<_> = pre_approval_checks(
        policy,
        r,
        lineage
            .as_ref()
            .and_then(|l| l.lineage().map(|body| (&l.leaf_hash, body))),
    )
    .into_iter()
    .filter(|c| !c.ok)
    .collect();
    let Some(first) = failed.first() else {
        return Ok(());
    };
    let (reason, field) = match first.rule.as_str() {
        "lineage_artifact" => (Reason::ArtifactMismatch, "statement.artifact_sha256"),
        "lineage_datasets" => (Reason::PolicyCheckFailed, "statement.dataset_sha256"),
        "environment" => (Reason::PolicyCheckFailed, "statement.environment"),
        "policy_name" => (Reason::PolicyCheckFailed, "statement.policy"),
        r if r.starts_with("metric:performance_metrics") => {
            (Reason::PolicyCheckFailed, "statement.performance_metrics")
        }
        _ => (Reason::PolicyCheckFailed, "statement.lineage"),
    };
    let reasons: Vec<String> = failed
        .iter()
        .map(|c| format!("{}: {}", c.rule, c.detail))
        .collect();
    Err(refuse(reason, &f(field), reasons.join("; ")))
}

fn check_approval(
    log: &Log,
    policy: &Policy,
    a: &Approval,
    f: &dyn Fn(&str) -> String,
    imported: bool,
) -> Result<(), Refusal> {
    let st = &a.statement;
    let approver = person(policy, &f("statement.approver"), &st.approver)?;
    let request = referenced(
        log,
        &f("statement.request"),
        &st.request,
        EntryKind::ApprovalRequest,
    )?;
    match (&a.attestation, imported) {
        (Attestation::Imported { .. }, false) => {
            return Err(refuse(
                Reason::ImportedApproval,
                &f("source"),
                "approvals from GitHub or ServiceNow are imported by the log's integrations",
            ))
        }
        (Attestation::Imported { decided_at, .. }, true) => {
            // Sources date decisions in whole seconds, and their clocks may run a little ahead.
            let now = crate::sequencer::now_ms();
            let ahead =
                now.saturating_add(policy.max_statement_skew_ms.saturating_sub(SKEW_MARGIN_MS));
            let logged_second = request.logged_at_ms - request.logged_at_ms % 1000;
            let why = if decided_at.ms < logged_second {
                Some(format!(
                    "decided at {}, before the request was logged ({}): a decision counts only when made for the logged request",
                    decided_at.text,
                    crate::integrations::rfc3339_ms(request.logged_at_ms)
                ))
            } else if decided_at.ms > ahead {
                Some(format!(
                    "decided at {}, ahead of this server's clock ({}) by more than the policy's statement skew; a later sync imports it",
                    decided_at.text,
                    crate::integrations::rfc3339_ms(now)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                return Err(refuse(Reason::DecidedAtInvalid, &f("decided_at"), why));
            }
        }
        (Attestation::Signed { signature }, _) => {
            check_skew(policy, &f("statement.signed_at"), st.signed_at.ms)?;
            verify_statement(approver, &a.statement_json, signature, st.signed_at.ms)
                .map_err(|why| refuse(Reason::InvalidSignature, &f("signature"), why))?;
        }
    }
    if !approver.roles.contains(&st.role) {
        return Err(refuse(
            Reason::RoleNotHeld,
            &f("statement.role"),
            format!(
                "{} does not hold the role {:?} (roles: [{}])",
                st.approver,
                st.role,
                approver.roles.join(", ")
            ),
        ));
    }
    let Some(req) = request.request() else {
        return Err(refuse(
            Reason::UnknownReference,
            &f("statement.request"),
            "not a request",
        ));
    };
    if req.statement.artifact_sha256 != st.artifact_sha256 {
        return Err(refuse(
            Reason::ArtifactMismatch,
            &f("statement.artifact_sha256"),
            "the request is for another artifact digest",
        ));
    }
    if req.statement.requested_by == st.approver {
        return Err(refuse(
            Reason::SelfApproval,
            &f("statement.approver"),
            "the requester cannot approve their own release",
        ));
    }
    if matches!(a.attestation, Attestation::Signed { .. }) {
        check_newer(log, a, f)?;
    }
    Ok(())
}

/// Refuses a signed decision dated no later than its approver's latest decision already
/// logged on the request (409 `decision_not_newer`): replaying an old statement, or dating a
/// new one to tie with a rejection, cannot change who stands where. The same statement again
/// (a retry) passes.
fn check_newer(log: &Log, a: &Approval, f: &dyn Fn(&str) -> String) -> Result<(), Refusal> {
    let st = &a.statement;
    let size = log.published().size;
    let decisions = crate::http::approvals::decisions_on(log, &st.request, size)
        .map_err(|e| refuse(Reason::IndexUnavailable, &f("statement.request"), e.message))?;
    let mut latest: Option<&Logged> = None;
    for d in &decisions {
        let Some(other) = d.approval() else { continue };
        if other.statement.approver != st.approver {
            continue;
        }
        if other.statement_json == a.statement_json && other.source() == a.source() {
            return Ok(());
        }
        if latest
            .and_then(Logged::approval)
            .is_none_or(|l| other.decided_at().ms > l.decided_at().ms)
        {
            latest = Some(d);
        }
    }
    match latest.and_then(|l| l.approval().map(|x| (l.index, x))) {
        Some((index, l)) if st.signed_at.ms <= l.decided_at().ms => Err(refuse(
            Reason::DecisionNotNewer,
            &f("statement.signed_at"),
            format!(
                "{} already decided on this request at {} (entry {index}); a new decision must be dated later",
                st.approver,
                l.decided_at().text
            ),
        )),
        _ => Ok(()),
    }
}
