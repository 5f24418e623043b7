//! Four-eyes evaluation of a release request (SPEC.md §7.1): the one place that says what
//! "approved" means. The server's approval status, the deploy gate, the monitor and the audit
//! all call [`evaluate`]; the gate adds the cryptography of the bundle ([`crate::bundle`]) and
//! the artifact file.
//!
//! The verdict depends only on the *set* of entries given, never on their order: each person's
//! standing decision is the latest of their eligible decisions by the decision's own time
//! (`signed_at` of a signed statement, `decided_at` of an import), ties going to the rejection
//! and then to the higher log index; an import never supersedes a signed rejection. A standing
//! rejection on any request for the same artifact in the same environment blocks the release;
//! a standing approval of this request counts once per person; each required role is filled by
//! a distinct person.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::entry::{
    Approval, ApprovalRequest, Attestation, Body, Decision as Verdict, EntryKind, Lineage, Source,
};
use crate::leaf::Leaf;
use crate::policy::{pre_approval_checks, Check, Person, Policy};
use crate::{leaf_hash, Hash};

pub use crate::bundle::{Bundle, BundleEntry, BundleError, OpenedBundle, BUNDLE_FORMAT};

/// A logged entry, parsed: its index, leaf hash, the time the log recorded it, and its body
/// parsed by its kind's schema.
#[derive(Clone, Debug)]
pub struct Logged {
    pub index: u64,
    pub leaf_hash: Hash,
    pub logged_at_ms: u64,
    pub body: Body,
}

impl Logged {
    /// Parses the leaf envelope at `index` and its body (schema and type).
    pub fn from_leaf(index: u64, leaf: &[u8]) -> Result<Logged, String> {
        let parsed = Leaf::parse(leaf).map_err(|e| format!("entry {index}: {e}"))?;
        let text = std::str::from_utf8(&parsed.body)
            .map_err(|_| format!("entry {index}: the body is not UTF-8"))?;
        let body = Body::parse(parsed.kind, text)
            .map_err(|e| format!("entry {index}: {} body: {e}", parsed.kind.name()))?;
        Ok(Logged {
            index,
            leaf_hash: leaf_hash(leaf),
            logged_at_ms: parsed.logged_at_ms,
            body,
        })
    }

    /// Returns the entry's kind.
    pub fn kind(&self) -> EntryKind {
        self.body.kind()
    }

    /// Returns the release request, when this is one.
    pub fn request(&self) -> Option<&ApprovalRequest> {
        match &self.body {
            Body::ApprovalRequest(r) => Some(r),
            _ => None,
        }
    }

    /// Returns the approval or rejection, when this is one.
    pub fn approval(&self) -> Option<&Approval> {
        match &self.body {
            Body::Approval(a) => Some(a),
            _ => None,
        }
    }

    /// Returns the lineage record, when this is one.
    pub fn lineage(&self) -> Option<&Lineage> {
        match &self.body {
            Body::Lineage(l) => Some(l),
            _ => None,
        }
    }
}

/// The state of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Approved,
    Rejected,
}

/// One approval or rejection, as the evaluation saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub index: u64,
    pub leaf_hash: String,
    /// The request it was made on (hex), when that is another request for the same artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    pub who: String,
    pub role: String,
    /// `signed` (a personal signature), `github` or `servicenow` (attested by the log).
    pub source: String,
    /// The decision's own time: `signed_at`, or an import's `decided_at`.
    pub when: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Whether it counts: an approval towards the quorum, a rejection against the release.
    pub counted: bool,
    /// Why it does not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an imported decision, the source's evidence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Value>,
}

/// The outcome of [`evaluate`].
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    pub status: Status,
    /// The pre-approval checks (lineage, metrics, ...), see [`pre_approval_checks`].
    pub checks: Vec<Check>,
    /// The approval rules: `request_signature`, `approvals`, `required_roles`,
    /// `required_sources` (when the policy has `require`), `not_requester`,
    /// `no_later_rejection`, `approval_age` (when the policy has `max_age`).
    pub rules: Vec<Check>,
    pub decisions: Vec<Decision>,
    /// Distinct counted approvers, sorted.
    pub approvers: Vec<String>,
}

impl Evaluation {
    /// Returns whether every check and rule holds.
    pub fn approved(&self) -> bool {
        self.status == Status::Approved
    }

    /// Returns every check and rule that fails, as `rule: detail`.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .chain(&self.rules)
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.rule, c.detail))
            .collect()
    }
}

/// What the log holds about one release request: the request, its lineage, the other requests
/// for the same artifact (any environment: the evaluation keeps those in the request's), and
/// every approval and rejection of all of them.
#[derive(Clone, Copy, Debug)]
pub struct Case<'a> {
    pub request: &'a Logged,
    pub lineage: Option<&'a Logged>,
    pub related: &'a [Logged],
    pub decisions: &'a [Logged],
}

/// Verifies that `person` signed `statement` with `signature` (Ed25519 over the statement's
/// RFC 8785 form) with the key they held at `signed_at_ms`. Returns why not.
pub fn verify_statement(
    person: &Person,
    statement: &Value,
    signature: &[u8],
    signed_at_ms: u64,
) -> Result<(), String> {
    let canonical = crate::jcs::canonicalize(statement).map_err(|e| e.to_string())?;
    if person.signed(canonical.as_bytes(), signature, signed_at_ms) {
        Ok(())
    } else {
        Err(format!(
            "the signature does not verify with a key {} held at that time, over the RFC 8785 form of the statement",
            person.name
        ))
    }
}

/// Returns why a signed statement's time is too far from the time the log recorded it.
pub fn skew_error(signed_at_ms: u64, logged_at_ms: u64, skew_ms: u64) -> Option<String> {
    (signed_at_ms.abs_diff(logged_at_ms) > skew_ms).then(|| {
        format!(
            "signed at {signed_at_ms} ms, recorded at {logged_at_ms} ms: more than the policy's {} s apart",
            skew_ms / 1000
        )
    })
}

/// An eligible decision: one that counts or supersedes.
#[derive(Clone, Copy, Debug)]
struct Eligible<'a> {
    position: usize,
    entry: &'a Logged,
    approval: &'a Approval,
    at_ms: u64,
}

impl Eligible<'_> {
    /// The order in which a person's decisions supersede each other: time, then a rejection
    /// over an approval, then the log index.
    fn rank(&self) -> (u64, bool, u64) {
        (
            self.at_ms,
            self.approval.statement.decision == Verdict::Reject,
            self.entry.index,
        )
    }
}

/// The requests a decision may be made on: this request, and the others for its artifact in
/// its environment, by leaf hash, with the time each was logged.
fn scope<'a>(
    request: &'a Logged,
    req: &ApprovalRequest,
    related: &'a [Logged],
) -> BTreeMap<Hash, &'a Logged> {
    let mut out = BTreeMap::new();
    for r in related {
        if let Some(other) = r.request() {
            if other.statement.artifact_sha256 == req.statement.artifact_sha256
                && other.statement.environment == req.statement.environment
            {
                out.insert(r.leaf_hash, r);
            }
        }
    }
    out.insert(request.leaf_hash, request);
    out
}

/// Returns the decision as eligible, or why it neither counts nor supersedes.
fn eligibility<'a>(
    policy: &Policy,
    scope: &BTreeMap<Hash, &Logged>,
    artifact: &str,
    position: usize,
    entry: &'a Logged,
) -> Result<Eligible<'a>, String> {
    let approval = entry
        .approval()
        .ok_or_else(|| format!("entry {} is not an approval", entry.index))?;
    let st = &approval.statement;
    let target = scope.get(&st.request).ok_or_else(|| {
        format!(
            "entry {} is not a decision on this request or on another for its artifact in its environment",
            entry.index
        )
    })?;
    if st.artifact_sha256 != artifact {
        return Err("it names another artifact".to_owned());
    }
    let person = policy
        .people
        .get(&st.approver)
        .ok_or_else(|| format!("{:?} is not a registered person", st.approver))?;
    if !person.roles.contains(&st.role) {
        return Err(format!(
            "{} does not hold the role {:?}",
            st.approver, st.role
        ));
    }
    let at_ms = approval.decided_at().ms;
    match &approval.attestation {
        Attestation::Signed { signature } => {
            if let Some(why) = skew_error(at_ms, entry.logged_at_ms, policy.max_statement_skew_ms) {
                return Err(why);
            }
            verify_statement(person, &approval.statement_json, signature, at_ms)?;
        }
        Attestation::Imported { source, .. } => {
            if !policy.accept_imported.contains(source) {
                return Err(format!(
                    "decisions imported from {} are not accepted by the policy",
                    source.name()
                ));
            }
            // Sources date decisions in whole seconds, and their clocks may run a little ahead.
            if at_ms
                > entry
                    .logged_at_ms
                    .saturating_add(policy.max_statement_skew_ms)
            {
                return Err(format!(
                    "decided at {at_ms} ms, after the log recorded it at {} ms",
                    entry.logged_at_ms
                ));
            }
            if at_ms < target.logged_at_ms - target.logged_at_ms % 1000 {
                return Err("decided before the request was logged".to_owned());
            }
        }
    }
    Ok(Eligible {
        position,
        entry,
        approval,
        at_ms,
    })
}

/// Returns the latest of `ds` by [`Eligible::rank`], where an import never supersedes a signed
/// rejection.
fn latest<'a>(ds: &[Eligible<'a>]) -> Option<Eligible<'a>> {
    let signed_rejection = ds.iter().any(|d| {
        d.approval.source() == Source::Signed && d.approval.statement.decision == Verdict::Reject
    });
    ds.iter()
        .filter(|d| !(signed_rejection && d.approval.source() != Source::Signed))
        .max_by_key(|d| d.rank())
        .copied()
}

/// Returns each person's standing decision on `request` (SPEC.md §7.1): the latest of their
/// decisions on it and of their standing rejections of the other requests in scope. An
/// approval of another request stands for that request only.
fn standing<'a>(eligible: &[Eligible<'a>], request: &Hash) -> BTreeMap<&'a str, Eligible<'a>> {
    let mut by_target: BTreeMap<(&str, Hash), Vec<Eligible>> = BTreeMap::new();
    for e in eligible {
        let st = &e.approval.statement;
        by_target
            .entry((st.approver.as_str(), st.request))
            .or_default()
            .push(*e);
    }
    let mut by_person: BTreeMap<&str, Vec<Eligible>> = BTreeMap::new();
    for ((who, target), ds) in by_target {
        if let Some(d) = latest(&ds) {
            if target == *request || d.approval.statement.decision == Verdict::Reject {
                by_person.entry(who).or_default().push(d);
            }
        }
    }
    by_person
        .into_iter()
        .filter_map(|(who, ds)| latest(&ds).map(|d| (who, d)))
        .collect()
}

/// Returns the required slots (role, and source when the policy names one) that no distinct
/// counted approver can fill: a maximum bipartite matching of slots to people (Kuhn's
/// algorithm), so one person never fills two roles.
fn unfilled_slots(
    slots: &[(String, Option<Source>)],
    approvers: &[(String, String, Source)],
) -> Vec<usize> {
    fn assign(
        slot: usize,
        slots: &[(String, Option<Source>)],
        approvers: &[(String, String, Source)],
        seen: &mut [bool],
        holder: &mut [Option<usize>],
    ) -> bool {
        for (p, (_, role, source)) in approvers.iter().enumerate() {
            let (want_role, want_source) = &slots[slot];
            if seen[p] || role != want_role || want_source.is_some_and(|s| s != *source) {
                continue;
            }
            seen[p] = true;
            if holder[p].is_none_or(|other| assign(other, slots, approvers, seen, holder)) {
                holder[p] = Some(slot);
                return true;
            }
        }
        false
    }
    let mut holder = vec![None; approvers.len()];
    (0..slots.len())
        .filter(|&slot| {
            let mut seen = vec![false; approvers.len()];
            !assign(slot, slots, approvers, &mut seen, &mut holder)
        })
        .collect()
}

/// Returns the `request_signature` rule.
fn request_signature(policy: &Policy, request: &Logged, req: &ApprovalRequest) -> Check {
    let who = &req.statement.requested_by;
    let at = req.statement.signed_at.ms;
    let outcome = match policy.people.get(who) {
        None => Err(format!("{who:?} is not a registered person")),
        Some(person) => skew_error(at, request.logged_at_ms, policy.max_statement_skew_ms)
            .map_or(Ok(()), Err)
            .and_then(|()| verify_statement(person, &req.statement_json, &req.signature, at)),
    };
    match outcome {
        Ok(()) => Check::new("request_signature", true, format!("signed by {who}")),
        Err(why) => Check::new("request_signature", false, why),
    }
}

/// Evaluates a release request under the policy at time `now_ms` (Unix ms): the pre-approval
/// checks against its lineage, and the approval rules over the decisions (SPEC.md §7.1).
/// People, keys and roles come from the policy only. The result does not depend on the order
/// of `case.related` or `case.decisions`; an entry given twice counts once.
pub fn evaluate(policy: &Policy, case: &Case, now_ms: u64) -> Evaluation {
    let Some(req) = case.request.request() else {
        let fail = Check::new(
            "request_signature",
            false,
            format!("entry {} is not an approval_request", case.request.index),
        );
        return Evaluation {
            status: Status::Pending,
            checks: Vec::new(),
            rules: vec![fail],
            decisions: Vec::new(),
            approvers: Vec::new(),
        };
    };
    let requester = req.statement.requested_by.as_str();
    let artifact = req.statement.artifact_sha256.as_str();
    let lineage = case
        .lineage
        .and_then(|l| l.lineage().map(|body| (&l.leaf_hash, body)));
    let checks = pre_approval_checks(policy, req, lineage);
    let scope = scope(case.request, req, case.related);

    // One report line per distinct entry, in log order.
    let mut entries: Vec<&Logged> = case.decisions.iter().collect();
    entries.sort_by_key(|e| (e.index, e.leaf_hash));
    entries.dedup_by_key(|e| e.leaf_hash);
    let mut report = Vec::with_capacity(entries.len());
    let mut eligible = Vec::new();
    for (position, e) in entries.iter().enumerate() {
        report.push(describe(e, case.request.leaf_hash));
        match eligibility(policy, &scope, artifact, position, e) {
            Ok(el) => eligible.push(el),
            Err(why) => report[position].reason = Some(why),
        }
    }
    let standing = standing(&eligible, &case.request.leaf_hash);
    mark_superseded(&mut report, &eligible, &standing);

    let mut blockers = Vec::new();
    let mut self_approvals = BTreeSet::new();
    let mut expired = Vec::new();
    let mut approvers: Vec<(String, String, Source)> = Vec::new();
    for (who, s) in &standing {
        let st = &s.approval.statement;
        let line = &mut report[s.position];
        if st.decision == Verdict::Reject {
            line.counted = true;
            blockers.push(format!("{who} (entry {})", s.entry.index));
            continue;
        }
        if st.request != case.request.leaf_hash {
            line.reason = Some(format!(
                "it approves request {}, not this one",
                st.request.to_hex()
            ));
            continue;
        }
        if *who == requester {
            self_approvals.insert(*who);
            line.reason = Some("the requester cannot approve their own release".to_owned());
            continue;
        }
        let since = s.at_ms.min(s.entry.logged_at_ms);
        if policy
            .max_age_ms
            .is_some_and(|max| now_ms.saturating_sub(since) > max)
        {
            expired.push(format!("{who} ({})", s.approval.decided_at().text));
            line.reason = Some(format!(
                "decided at {}, older than the policy's maximum age",
                s.approval.decided_at().text
            ));
            continue;
        }
        line.counted = true;
        approvers.push((who.to_string(), st.role.clone(), s.approval.source()));
    }

    let mut rules = vec![request_signature(policy, case.request, req)];
    let enough = approvers.len() >= policy.min_approvers;
    rules.push(approvals_rule(policy, &approvers, &report));
    rules.extend(role_rules(policy, &approvers));
    rules.push(Check::new(
        "not_requester",
        self_approvals.is_empty(),
        if self_approvals.is_empty() {
            format!("no approval by the requester {requester}")
        } else {
            format!("the requester {requester} approved their own release")
        },
    ));
    rules.push(Check::new(
        "no_later_rejection",
        blockers.is_empty(),
        if blockers.is_empty() {
            "no standing rejection".to_owned()
        } else {
            format!(
                "standing rejection of this artifact in {:?} by {}",
                req.statement.environment,
                blockers.join(", ")
            )
        },
    ));
    if policy.max_age_ms.is_some() {
        rules.push(Check::new(
            "approval_age",
            expired.is_empty() || enough,
            if expired.is_empty() {
                "every approval is within the maximum age".to_owned()
            } else {
                format!("expired approvals: {}", expired.join(", "))
            },
        ));
    }
    let status = if !blockers.is_empty() {
        Status::Rejected
    } else if checks.iter().chain(&rules).all(|c| c.ok) {
        Status::Approved
    } else {
        Status::Pending
    };
    Evaluation {
        status,
        checks,
        rules,
        decisions: report,
        approvers: approvers.into_iter().map(|(who, _, _)| who).collect(),
    }
}

/// Says, on the report line of each eligible decision that does not stand, which later
/// decision of the same person superseded it (or that an import cannot supersede their signed
/// rejection).
fn mark_superseded(
    report: &mut [Decision],
    eligible: &[Eligible<'_>],
    standing: &BTreeMap<&str, Eligible<'_>>,
) {
    let standing_positions: BTreeSet<usize> = standing.values().map(|s| s.position).collect();
    for el in eligible {
        if standing_positions.contains(&el.position) {
            continue;
        }
        let who = el.approval.statement.approver.as_str();
        let Some(by) = standing.get(who) else {
            continue;
        };
        report[el.position].reason = Some(
            if by.approval.statement.decision == Verdict::Reject
                && by.approval.source() == Source::Signed
                && el.approval.source() != Source::Signed
            {
                format!(
                    "an import does not supersede {who}'s signed rejection (entry {})",
                    by.entry.index
                )
            } else {
                format!(
                    "superseded by {who}'s later decision at entry {}",
                    by.entry.index
                )
            },
        );
    }
}

/// The report line of a decision entry, before the evaluation says whether it counts.
fn describe(e: &Logged, request: Hash) -> Decision {
    let mut d = Decision {
        index: e.index,
        leaf_hash: e.leaf_hash.to_hex(),
        request: None,
        who: String::new(),
        role: String::new(),
        source: String::new(),
        when: String::new(),
        decision: String::new(),
        counted: false,
        reason: None,
        evidence: None,
    };
    if let Some(a) = e.approval() {
        let st = &a.statement;
        d.request = (st.request != request).then(|| st.request.to_hex());
        d.who = st.approver.clone();
        d.role = st.role.clone();
        d.source = a.source().name().to_owned();
        d.when = a.decided_at().text.clone();
        d.decision = st.decision.name().to_owned();
        if let Attestation::Imported { evidence, .. } = &a.attestation {
            d.evidence = Some(Value::Object(evidence.clone()));
        }
    }
    d
}

/// The `approvals` rule: enough distinct counted approvers.
fn approvals_rule(
    policy: &Policy,
    approvers: &[(String, String, Source)],
    report: &[Decision],
) -> Check {
    let names: Vec<&str> = approvers.iter().map(|(w, _, _)| w.as_str()).collect();
    let mut detail = format!(
        "{} distinct approvers of {} required: [{}]",
        names.len(),
        policy.min_approvers,
        names.join(", ")
    );
    for d in report {
        if let Some(r) = &d.reason {
            detail.push_str(&format!("; {} ({}): {r}", d.who, d.decision));
        }
    }
    Check::new("approvals", names.len() >= policy.min_approvers, detail)
}

/// The `required_roles` rule, and `required_sources` when the policy has `require`: every
/// slot filled by a distinct counted approver.
fn role_rules(policy: &Policy, approvers: &[(String, String, Source)]) -> Vec<Check> {
    // A `require` slot in a role stands for one `required_roles` entry of that role too (it is
    // the stricter of the two), so a role named in both needs one person, not two.
    let mut sourced: Vec<&str> = policy.require.iter().map(|r| r.role.as_str()).collect();
    let mut slots: Vec<(String, Option<Source>)> = Vec::new();
    for role in &policy.required_roles {
        match sourced.iter().position(|r| r == role) {
            Some(i) => {
                sourced.remove(i);
            }
            None => slots.push((role.clone(), None)),
        }
    }
    let n_roles = slots.len();
    slots.extend(
        policy
            .require
            .iter()
            .map(|r| (r.role.clone(), Some(r.source))),
    );
    let unfilled = unfilled_slots(&slots, approvers);
    let (roles, sources): (Vec<usize>, Vec<usize>) =
        unfilled.into_iter().partition(|&s| s < n_roles);
    let held: BTreeSet<&str> = approvers.iter().map(|(_, r, _)| r.as_str()).collect();
    let mut out = vec![Check::new(
        "required_roles",
        roles.is_empty(),
        if roles.is_empty() {
            format!(
                "roles held: [{}]",
                held.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "no distinct counted approver in the role(s) [{}]",
                roles
                    .iter()
                    .map(|&s| slots[s].0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    )];
    if !policy.require.is_empty() {
        out.push(Check::new(
            "required_sources",
            sources.is_empty(),
            if sources.is_empty() {
                "every required role and source approved, each by a distinct person".to_owned()
            } else {
                format!(
                    "no distinct counted approval: {}",
                    sources
                        .iter()
                        .map(|&s| format!(
                            "{} from {}",
                            slots[s].0,
                            slots[s].1.map_or("any source", Source::name)
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
        ));
    }
    out
}

/// Everything needed to evaluate one request out of a whole log's requests and decisions
/// (what the audit and the monitor replay): the other requests for its artifact, and the
/// decisions on it and on them, in log order.
pub fn gather<'a>(
    request: &Logged,
    requests: impl IntoIterator<Item = &'a Logged>,
    decisions_on: impl Fn(&Hash) -> Vec<Logged>,
) -> (Vec<Logged>, Vec<Logged>) {
    let Some(req) = request.request() else {
        return (Vec::new(), Vec::new());
    };
    let related: Vec<Logged> = requests
        .into_iter()
        .filter(|r| {
            r.leaf_hash != request.leaf_hash
                && r.request()
                    .is_some_and(|x| x.statement.artifact_sha256 == req.statement.artifact_sha256)
        })
        .cloned()
        .collect();
    let mut decisions = decisions_on(&request.leaf_hash);
    for r in &related {
        decisions.extend(decisions_on(&r.leaf_hash));
    }
    decisions.sort_by_key(|d| d.index);
    (related, decisions)
}
