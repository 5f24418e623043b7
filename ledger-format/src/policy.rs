//! Release policy (`config/policy.toml`, SPEC.md §7): who may request and approve releases, how
//! many distinct approvers and which roles a release needs, how old an approval may be, what the
//! lineage must show and which metrics must clear a threshold. The server applies the
//! pre-approval part when a request is submitted and reports the rest in the approval status;
//! the deploy gate applies all of it to a bundle, trusting the policy, not the server.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use thiserror::Error;

use crate::entry::{ApprovalRequest, Lineage, Metric, Source};
use crate::note::{SigType, VerifierKey};
use crate::rfc3339::rfc3339_to_ms;
use crate::Hash;

/// A malformed policy.
#[derive(Debug, Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

fn err(m: impl Into<String>) -> PolicyError {
    PolicyError(m.into())
}

/// A key a person used before their current one: it verifies their statements signed before
/// `until` (Unix ms), and nothing signed later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetiredKey {
    pub key: VerifierKey,
    pub until_ms: u64,
}

/// A registered person: a name, the roles they hold, the note verifier key they sign with, the
/// keys they signed with before, and their accounts in the approval sources.
#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub roles: Vec<String>,
    pub key: VerifierKey,
    pub retired: Vec<RetiredKey>,
    /// Their GitHub logins: their pull-request reviews are imported as their decisions.
    pub github: Vec<String>,
    /// Their ServiceNow user names: their change approvals are imported as their decisions.
    pub servicenow: Vec<String>,
}

impl Person {
    /// Returns a person with no retired keys.
    pub fn new(name: impl Into<String>, roles: Vec<String>, key: VerifierKey) -> Person {
        Person {
            name: name.into(),
            roles,
            key,
            retired: Vec::new(),
            github: Vec::new(),
            servicenow: Vec::new(),
        }
    }

    /// Returns whether this person signed `message` with `signature` using the key they held
    /// at `signed_at_ms`: the current key, or a retired key retired after that time.
    pub fn signed(&self, message: &[u8], signature: &[u8], signed_at_ms: u64) -> bool {
        self.key.verify_raw(message, signature)
            || self
                .retired
                .iter()
                .any(|r| signed_at_ms < r.until_ms && r.key.verify_raw(message, signature))
    }

    /// Returns every key of this person, current first.
    pub fn keys(&self) -> impl Iterator<Item = &VerifierKey> {
        std::iter::once(&self.key).chain(self.retired.iter().map(|r| &r.key))
    }
}

/// Adds the accounts of `more` not in `accounts` (compared case-insensitively).
fn add_accounts(accounts: &mut Vec<String>, more: &[String]) {
    for a in more {
        if !accounts.iter().any(|h| h.eq_ignore_ascii_case(a)) {
            accounts.push(a.clone());
        }
    }
}

/// People by name; one key belongs to one person.
#[derive(Clone, Debug, Default)]
pub struct People {
    by_name: HashMap<String, Person>,
}

impl People {
    /// Returns the registry, refusing one Ed25519 key (compared as raw public key bytes,
    /// whatever name the note key carries) registered for two people, current or retired; a
    /// name registered twice with different keys or roles; and keys that are not Ed25519 note
    /// keys. A person listed twice identically (say in both the server config and the policy)
    /// is kept once.
    pub fn new(people: impl IntoIterator<Item = Person>) -> Result<People, PolicyError> {
        let mut by_name: HashMap<String, Person> = HashMap::new();
        let mut keys: HashMap<[u8; 32], String> = HashMap::new();
        for p in people {
            if p.keys().any(|k| k.sig_type() != SigType::Ed25519) {
                return Err(err(format!(
                    "{}: a person's keys must be Ed25519 note keys (type 0x01)",
                    p.name
                )));
            }
            if let Some(have) = by_name.get_mut(&p.name) {
                if have.key == p.key && have.roles == p.roles && have.retired == p.retired {
                    // A person listed in two places: the accounts of both are theirs.
                    add_accounts(&mut have.github, &p.github);
                    add_accounts(&mut have.servicenow, &p.servicenow);
                    continue;
                }
                return Err(err(format!(
                    "{} is registered twice, with different keys or roles",
                    p.name
                )));
            }
            for k in p.keys() {
                match keys.insert(k.public().to_bytes(), p.name.clone()) {
                    Some(other) if other != p.name => {
                        return Err(err(format!(
                            "one key is registered for both {other} and {}",
                            p.name
                        )))
                    }
                    Some(_) => {
                        return Err(err(format!("{}: the same key is listed twice", p.name)))
                    }
                    None => {}
                }
            }
            by_name.insert(p.name.clone(), p);
        }
        Ok(People { by_name })
    }

    /// Returns the person registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Person> {
        self.by_name.get(name)
    }

    /// Returns every person.
    pub fn all(&self) -> impl Iterator<Item = &Person> {
        self.by_name.values()
    }
}

/// A metric threshold: `metric` is `<object>.<name>` where the object is the lineage entry's
/// `validation_metrics` or `training_metrics`, or the request's `performance_metrics`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricRule {
    pub metric: String,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
}

/// The objects a metric path may start with.
pub const METRIC_OBJECTS: [&str; 3] = [
    "validation_metrics",
    "training_metrics",
    "performance_metrics",
];

/// A validated policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// When set, a request's `statement.policy` must name it.
    pub name: Option<String>,
    /// The log's note verifier key: the only key whose checkpoints the gate trusts.
    pub log_key: Option<VerifierKey>,
    /// Distinct approvers a release needs (default 2).
    pub min_approvers: usize,
    /// Roles that must each be held by one counted approver.
    pub required_roles: Vec<String>,
    /// The oldest approval that still counts, in milliseconds (none: no limit).
    pub max_age_ms: Option<u64>,
    /// How far a signed statement's `signed_at` may be from the time the log recorded it, and
    /// an entry's or cosignature's time ahead of a verifier's clock (default 10 minutes).
    pub max_statement_skew_ms: u64,
    /// Import sources whose attested approvals count (never [`Source::Signed`]).
    pub accept_imported: Vec<Source>,
    /// When set, a request's `statement.environment` must equal it.
    pub environment: Option<String>,
    /// Whether a request needs its lineage entry (default true).
    pub lineage_required: bool,
    /// Datasets the lineage must record, each with its SHA-256 (default 1).
    pub min_datasets: usize,
    pub metrics: Vec<MetricRule>,
    pub people: People,
    /// Approvals that must be among the counted ones: a role from a source (`signed`, `github`,
    /// `servicenow`), e.g. one signed approval from risk and one GitHub review from engineering.
    pub require: Vec<RequiredApproval>,
    /// Witness cosigner keys (type 0x04; 0x01 keys are re-derived) the gate accepts.
    pub witness_keys: Vec<VerifierKey>,
    /// Distinct witnesses whose cosignatures the bundle's checkpoint must carry (default 0).
    pub witnesses_required: usize,
    /// The oldest a bundle's checkpoint may be, by its newest trusted witness cosignature
    /// (`[freshness] max_checkpoint_age`; none: no limit).
    pub max_checkpoint_age_ms: Option<u64>,
}

/// The default `approvals.max_statement_skew`: 10 minutes.
pub const DEFAULT_STATEMENT_SKEW_MS: u64 = 600_000;

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            name: None,
            log_key: None,
            min_approvers: 2,
            required_roles: Vec::new(),
            max_age_ms: None,
            max_statement_skew_ms: DEFAULT_STATEMENT_SKEW_MS,
            accept_imported: Vec::new(),
            environment: None,
            lineage_required: true,
            min_datasets: 1,
            metrics: Vec::new(),
            people: People::default(),
            witness_keys: Vec::new(),
            witnesses_required: 0,
            require: Vec::new(),
            max_checkpoint_age_ms: None,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLog {
    key: Option<String>,
}

/// One approval a release must have: in `role`, from `source`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RequiredApproval {
    pub role: String,
    #[serde(default = "signed")]
    pub source: Source,
}

fn signed() -> Source {
    Source::Signed
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileApprovals {
    #[serde(default)]
    require: Vec<RequiredApproval>,
    min_approvers: Option<usize>,
    #[serde(default)]
    required_roles: Vec<String>,
    max_age: Option<String>,
    max_statement_skew: Option<String>,
    #[serde(default)]
    accept_imported: Vec<String>,
    environment: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileLineage {
    required: Option<bool>,
    min_datasets: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileWitnesses {
    #[serde(default)]
    required: usize,
    #[serde(default)]
    keys: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileFreshness {
    max_checkpoint_age: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRetiredKey {
    key: String,
    until: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePerson {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    key: String,
    #[serde(default)]
    retired_keys: Vec<FileRetiredKey>,
    #[serde(default)]
    github: Option<String>,
    #[serde(default)]
    servicenow: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    name: Option<String>,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    approvals: FileApprovals,
    #[serde(default)]
    lineage: FileLineage,
    #[serde(default)]
    metrics: Vec<MetricRule>,
    #[serde(default)]
    people: Vec<FilePerson>,
    #[serde(default)]
    witnesses: FileWitnesses,
    #[serde(default)]
    freshness: FileFreshness,
}

/// Parses a duration such as `90s`, `30m`, `168h` or `7d` into milliseconds.
pub fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    let mult = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Parses the optional duration at `key`.
fn duration(key: &str, value: Option<&str>) -> Result<Option<u64>, PolicyError> {
    value
        .map(|a| {
            parse_duration_ms(a).ok_or_else(|| {
                err(format!(
                    "{key} {a:?}: write a number and a unit: s, m, h or d"
                ))
            })
        })
        .transpose()
}

impl Policy {
    /// Parses and validates a policy file (TOML, SPEC.md §7).
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let f: PolicyFile = toml::from_str(text).map_err(|e| err(e.message().to_owned()))?;
        let d = Policy::default();
        let log_key = f
            .log
            .key
            .as_deref()
            .map(|k| VerifierKey::parse(k).map_err(|e| err(format!("log.key: {e}"))))
            .transpose()?;
        let min_approvers = f.approvals.min_approvers.unwrap_or(d.min_approvers);
        if min_approvers == 0 {
            return Err(err("approvals.min_approvers must be at least 1"));
        }
        let max_age_ms = duration("approvals.max_age", f.approvals.max_age.as_deref())?;
        let max_statement_skew_ms = duration(
            "approvals.max_statement_skew",
            f.approvals.max_statement_skew.as_deref(),
        )?
        .unwrap_or(d.max_statement_skew_ms);
        let max_checkpoint_age_ms = duration(
            "freshness.max_checkpoint_age",
            f.freshness.max_checkpoint_age.as_deref(),
        )?;
        if max_checkpoint_age_ms == Some(0) {
            return Err(err("freshness.max_checkpoint_age must be more than 0"));
        }
        let accept_imported = f
            .approvals
            .accept_imported
            .iter()
            .map(|s| {
                Source::from_name(s)
                    .filter(|s| *s != Source::Signed)
                    .ok_or_else(|| {
                        err(format!(
                            "approvals.accept_imported: unknown source {s:?} (github, servicenow)"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for r in &f.approvals.require {
            if r.source != Source::Signed && !accept_imported.contains(&r.source) {
                return Err(err(format!(
                    "approvals.require names source {:?}, which approvals.accept_imported does not accept",
                    r.source.name()
                )));
            }
        }
        for m in &f.metrics {
            let object = m.metric.split('.').next().unwrap_or_default();
            if !METRIC_OBJECTS.contains(&object) || !m.metric.contains('.') {
                return Err(err(format!(
                    "metrics: {:?} must be <object>.<name> with object one of {}",
                    m.metric,
                    METRIC_OBJECTS.join(", ")
                )));
            }
            if m.min.is_none() && m.max.is_none() {
                return Err(err(format!("metrics: {} needs min or max", m.metric)));
            }
        }
        let people = f
            .people
            .into_iter()
            .map(|p| {
                let retired = p
                    .retired_keys
                    .iter()
                    .map(|r| {
                        Ok(RetiredKey {
                            key: VerifierKey::parse(&r.key).map_err(|e| {
                                err(format!("people {}: retired_keys: key: {e}", p.name))
                            })?,
                            until_ms: rfc3339_to_ms(&r.until).ok_or_else(|| {
                                err(format!(
                                    "people {}: retired_keys: until {:?} is not an RFC 3339 time",
                                    p.name, r.until
                                ))
                            })?,
                        })
                    })
                    .collect::<Result<Vec<_>, PolicyError>>()?;
                Ok(Person {
                    key: VerifierKey::parse(&p.key)
                        .map_err(|e| err(format!("people {}: key: {e}", p.name)))?,
                    name: p.name,
                    roles: p.roles,
                    retired,
                    github: p.github.into_iter().collect(),
                    servicenow: p.servicenow.into_iter().collect(),
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        let witness_keys = f
            .witnesses
            .keys
            .iter()
            .map(|k| {
                let key = VerifierKey::parse(k).map_err(|e| err(format!("witnesses.keys: {e}")))?;
                Ok(match key.sig_type() {
                    SigType::Cosignature => key,
                    _ => crate::cosig::as_cosigner(&key),
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;
        if max_checkpoint_age_ms.is_some() && witness_keys.is_empty() {
            return Err(err(
                "freshness.max_checkpoint_age needs witnesses.keys: only a trusted witness's cosignature dates a checkpoint",
            ));
        }
        if f.witnesses.required > witness_keys.len() {
            return Err(err(format!(
                "witnesses.required is {} but only {} keys are listed",
                f.witnesses.required,
                witness_keys.len()
            )));
        }
        Ok(Policy {
            require: f.approvals.require,
            witnesses_required: f.witnesses.required,
            witness_keys,
            name: f.name,
            log_key,
            min_approvers,
            required_roles: f.approvals.required_roles,
            max_age_ms,
            max_statement_skew_ms,
            max_checkpoint_age_ms,
            accept_imported,
            environment: f.approvals.environment,
            lineage_required: f.lineage.required.unwrap_or(d.lineage_required),
            min_datasets: f.lineage.min_datasets.unwrap_or(d.min_datasets),
            metrics: f.metrics,
            people: People::new(people)?,
        })
    }
}

/// One rule and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub rule: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub(crate) fn new(rule: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
        Check {
            rule: rule.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// The pre-approval checks of a request against its lineage entry (`lineage`: its leaf hash
/// and body, when it is in the log and is a lineage entry). Rules, in order:
/// `lineage_present`, `lineage_model`, `lineage_artifact`, `lineage_datasets`, then
/// `environment` and `policy_name` when the policy sets them, then `metric:<path>` per
/// threshold. A request passes when every check is ok.
pub fn pre_approval_checks(
    policy: &Policy,
    request: &ApprovalRequest,
    lineage: Option<(&Hash, &Lineage)>,
) -> Vec<Check> {
    let st = &request.statement;
    let mut out = Vec::new();
    let reference = st.lineage.to_hex();
    let lineage = lineage.filter(|(h, _)| **h == st.lineage).map(|(_, l)| l);
    match lineage {
        Some(_) => out.push(Check::new(
            "lineage_present",
            true,
            format!("lineage {reference}"),
        )),
        None if !policy.lineage_required => out.push(Check::new(
            "lineage_present",
            true,
            "not required by the policy",
        )),
        None => out.push(Check::new(
            "lineage_present",
            false,
            format!("no lineage entry {reference} in the log"),
        )),
    }
    if let Some(l) = lineage {
        out.extend(lineage_checks(policy, request, l));
    }
    if let Some(env) = &policy.environment {
        let have = &st.environment;
        out.push(Check::new(
            "environment",
            have == env,
            if have == env {
                format!("environment {have:?}")
            } else {
                format!("environment {have:?}, the policy requires {env:?}")
            },
        ));
    }
    if let Some(name) = &policy.name {
        let have = &st.policy;
        out.push(Check::new(
            "policy_name",
            have == name,
            if have == name {
                format!("policy {have:?}")
            } else {
                format!("the request names policy {have:?}, this policy is {name:?}")
            },
        ));
    }
    for m in &policy.metrics {
        out.push(metric_check(m, request, lineage));
    }
    out
}

/// `lineage_model`, `lineage_artifact` and `lineage_datasets` of a request and its lineage.
fn lineage_checks(policy: &Policy, request: &ApprovalRequest, l: &Lineage) -> Vec<Check> {
    let st = &request.statement;
    let mut out = Vec::new();
    let (lm, sm) = (&l.model_id, &st.model_id);
    out.push(Check::new(
        "lineage_model",
        lm == sm,
        if lm == sm {
            format!("model {sm}")
        } else {
            format!("the lineage is for model {lm}, the request for {sm}")
        },
    ));
    let (la, sa) = (&l.artifact.sha256, &st.artifact_sha256);
    out.push(Check::new(
        "lineage_artifact",
        la == sa,
        if la == sa {
            format!("artifact {sa}")
        } else {
            format!("the lineage records artifact {la}, the request names {sa}")
        },
    ));
    let datasets: BTreeSet<&str> = l.datasets.iter().map(|d| d.sha256.as_str()).collect();
    let requested: BTreeSet<&str> = st.dataset_sha256.iter().map(String::as_str).collect();
    let detail = if datasets.len() < policy.min_datasets {
        Some(format!(
            "the lineage records {} dataset hashes, the policy needs {}",
            datasets.len(),
            policy.min_datasets
        ))
    } else if datasets != requested {
        Some(format!(
            "the request names datasets [{}], the lineage records [{}]",
            requested.iter().copied().collect::<Vec<_>>().join(", "),
            datasets.iter().copied().collect::<Vec<_>>().join(", ")
        ))
    } else {
        None
    };
    out.push(match detail {
        Some(d) => Check::new("lineage_datasets", false, d),
        None => Check::new(
            "lineage_datasets",
            true,
            format!("{} dataset hashes", datasets.len()),
        ),
    });
    out
}

/// A metric threshold: `performance_metrics` reads the request's signed statement only (the
/// unsigned top-level object of earlier clients is never checked).
fn metric_check(m: &MetricRule, request: &ApprovalRequest, lineage: Option<&Lineage>) -> Check {
    let rule = format!("metric:{}", m.metric);
    let (object, name) = m.metric.split_once('.').unwrap_or_default();
    let source = match object {
        "performance_metrics" => Some(&request.statement.performance_metrics),
        "validation_metrics" => lineage.map(|l| &l.validation_metrics),
        "training_metrics" => lineage.map(|l| &l.training_metrics),
        _ => None,
    };
    let Some(Metric(value)) = source.and_then(|s| s.get(name)).cloned() else {
        return Check::new(rule, false, format!("{} is not recorded", m.metric));
    };
    if let Some(min) = m.min.filter(|min| value < *min) {
        return Check::new(rule, false, format!("{value} is below the minimum {min}"));
    }
    if let Some(max) = m.max.filter(|max| value > *max) {
        return Check::new(rule, false, format!("{value} is above the maximum {max}"));
    }
    Check::new(rule, true, format!("{value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("90s"), Some(90_000));
        assert_eq!(parse_duration_ms("7d"), Some(604_800_000));
        assert_eq!(parse_duration_ms("7"), None);
        assert_eq!(parse_duration_ms("d"), None);
        assert_eq!(parse_duration_ms("3w"), None);
    }

    #[test]
    fn the_reference_policy_parses() {
        let p = Policy::parse(include_str!("../../config/policy.toml")).unwrap();
        assert_eq!(p.min_approvers, 2);
        assert!(p.log_key.is_some());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        for (text, want) in [
            ("[approvals]\nmin_aprovers = 2", "unknown field"),
            ("[approvals]\nmin_approvers = 0", "at least 1"),
            ("[approvals]\nmax_age = \"1 week\"", "max_age"),
            (
                "[approvals]\naccept_imported = [\"email\"]",
                "unknown source",
            ),
            (
                "[[metrics]]\nmetric = \"accuracy\"\nmin = 0.9",
                "<object>.<name>",
            ),
            (
                "[[metrics]]\nmetric = \"validation_metrics.accuracy\"",
                "needs min or max",
            ),
            ("[log]\nkey = \"nope\"", "log.key"),
            (
                "[freshness]\nmax_checkpoint_age = \"1h\"",
                "needs witnesses.keys",
            ),
        ] {
            let e = Policy::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    const H: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn request(signed: serde_json::Value, unsigned: serde_json::Value) -> ApprovalRequest {
        let body = serde_json::json!({
            "statement": {"model_id": "m", "artifact_sha256": D, "dataset_sha256": [D], "lineage": H,
                          "requested_by": "alice", "environment": "production", "policy": "p",
                          "signed_at": "2026-11-26T09:00:00Z", "performance_metrics": signed},
            "signature": "A".repeat(86) + "==",
            "performance_metrics": unsigned,
        });
        match crate::entry::Body::parse(crate::entry::EntryKind::ApprovalRequest, &body.to_string())
        {
            Ok(crate::entry::Body::ApprovalRequest(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn lineage(accuracy: f64) -> Lineage {
        let body = serde_json::json!({
            "model_id": "m", "model_name": "M", "model_version": "1", "model_type": "rl",
            "created_by": "trainer", "training_config": {}, "hyperparameters": {},
            "training_metrics": {}, "validation_metrics": {"accuracy": accuracy},
            "datasets": [{"name": "d", "type": "training", "sha256": D, "size_bytes": 1, "files": 1}],
            "artifact": {"path": "p.pt", "sha256": D, "size_bytes": 1},
        });
        match crate::entry::Body::parse(crate::entry::EntryKind::Lineage, &body.to_string()) {
            Ok(crate::entry::Body::Lineage(l)) => l,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metrics_thresholds() {
        let p = Policy::parse(
            "[[metrics]]\nmetric = \"validation_metrics.accuracy\"\nmin = 0.9\n[[metrics]]\nmetric = \"performance_metrics.max_drawdown\"\nmax = 0.2",
        )
        .unwrap();
        let h = Hash::from_hex(H).unwrap();
        let request = request(
            serde_json::json!({"max_drawdown": "0.25"}),
            serde_json::json!({}),
        );
        let checks = pre_approval_checks(&p, &request, Some((&h, &lineage(0.85))));
        let by = |r: &str| checks.iter().find(|c| c.rule == r).unwrap().clone();
        assert!(!by("metric:validation_metrics.accuracy").ok);
        assert!(by("metric:validation_metrics.accuracy")
            .detail
            .contains("below the minimum 0.9"));
        assert!(by("metric:performance_metrics.max_drawdown")
            .detail
            .contains("above the maximum 0.2"));
        let checks = pre_approval_checks(&p, &request, Some((&h, &lineage(0.93))));
        assert!(
            checks
                .iter()
                .find(|c| c.rule == "metric:validation_metrics.accuracy")
                .unwrap()
                .ok
        );
    }

    /// Only the signed statement's metrics are checked.
    #[test]
    fn unsigned_metrics_are_never_checked() {
        let p = Policy::parse("[[metrics]]\nmetric = \"performance_metrics.sharpe\"\nmin = 1.5")
            .unwrap();
        let forged = request(serde_json::json!({}), serde_json::json!({"sharpe": 9.9}));
        let checks = pre_approval_checks(&p, &forged, None);
        let c = checks
            .iter()
            .find(|c| c.rule == "metric:performance_metrics.sharpe")
            .unwrap();
        assert!(!c.ok, "{c:?}");
        let signed = request(
            serde_json::json!({"sharpe": "1.7"}),
            serde_json::json!({"sharpe": 0}),
        );
        let checks = pre_approval_checks(&p, &signed, None);
        assert!(
            checks
                .iter()
                .find(|c| c.rule == "metric:performance_metrics.sharpe")
                .unwrap()
                .ok
        );
    }

    /// The policy registers people's source accounts; a person listed twice keeps the
    /// accounts of both listings.
    #[test]
    fn people_carry_their_source_accounts() {
        let key = crate::note::SignerKey::from_seed("alice", [9; 32])
            .unwrap()
            .verifier()
            .to_string();
        let p = Policy::parse(&format!(
            "[[people]]\nname = \"alice\"\nkey = \"{key}\"\ngithub = \"alice-gh\"\n[[people]]\nname = \"alice\"\nkey = \"{key}\"\nservicenow = \"alice.s\"\ngithub = \"ALICE-GH\"\n"
        ))
        .unwrap();
        let alice = p.people.get("alice").unwrap();
        assert_eq!(alice.github, ["alice-gh"]);
        assert_eq!(alice.servicenow, ["alice.s"]);
    }

    /// Keys compare as raw public keys: one key is one person, whatever name it carries.
    #[test]
    fn one_key_is_one_person() {
        let key = |name: &str| {
            crate::note::SignerKey::from_seed(name, [7; 32])
                .unwrap()
                .verifier()
                .to_string()
        };
        let text = format!(
            "[[people]]\nname = \"alice\"\nkey = \"{}\"\n[[people]]\nname = \"alice2\"\nkey = \"{}\"\n",
            key("alice"),
            key("alice2")
        );
        let e = Policy::parse(&text).unwrap_err().to_string();
        assert!(e.contains("one key is registered for both"), "{e}");
        // A retired key is still that person's key.
        let other = crate::note::SignerKey::from_seed("bob", [8; 32])
            .unwrap()
            .verifier();
        let text = format!(
            "[[people]]\nname = \"alice\"\nkey = \"{}\"\n[[people]]\nname = \"bob\"\nkey = \"{other}\"\nretired_keys = [{{ key = \"{}\", until = \"2026-01-01T00:00:00Z\" }}]\n",
            key("alice"),
            key("old-bob")
        );
        let e = Policy::parse(&text).unwrap_err().to_string();
        assert!(e.contains("one key is registered for both"), "{e}");
    }
}
