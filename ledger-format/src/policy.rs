//! Release policy (`config/policy.toml`, SPEC.md §7): who may request and approve releases, how
//! many distinct approvers and which roles a release needs, how old an approval may be, what the
//! lineage must show and which metrics must clear a threshold. The server applies the
//! pre-approval part when a request is submitted and reports the rest in the approval status;
//! the deploy gate applies all of it to a bundle, trusting the policy, not the server.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::note::{SigType, VerifierKey};

/// A malformed policy.
#[derive(Debug, Error)]
#[error("policy: {0}")]
pub struct PolicyError(pub String);

fn err(m: impl Into<String>) -> PolicyError {
    PolicyError(m.into())
}

/// A registered person: a name, the roles they hold, and the note verifier key they sign with.
#[derive(Clone, Debug)]
pub struct Person {
    pub name: String,
    pub roles: Vec<String>,
    pub key: VerifierKey,
}

/// People by name; one key belongs to one name.
#[derive(Clone, Debug, Default)]
pub struct People {
    by_name: HashMap<String, Person>,
}

impl People {
    /// Returns the registry, refusing a key registered under two names, a name registered twice
    /// with different keys or roles, and keys that are not Ed25519 note keys. A person listed
    /// twice identically (say in both the server config and the policy) is kept once.
    pub fn new(people: impl IntoIterator<Item = Person>) -> Result<People, PolicyError> {
        let mut by_name: HashMap<String, Person> = HashMap::new();
        let mut keys: HashMap<String, String> = HashMap::new();
        for p in people {
            if p.key.sig_type() != SigType::Ed25519 {
                return Err(err(format!(
                    "{}: a person's key must be an Ed25519 note key (type 0x01)",
                    p.name
                )));
            }
            if let Some(have) = by_name.get(&p.name) {
                if have.key == p.key && have.roles == p.roles {
                    continue;
                }
                return Err(err(format!(
                    "{} is registered twice, with different keys or roles",
                    p.name
                )));
            }
            if let Some(other) = keys.insert(p.key.to_string(), p.name.clone()) {
                return Err(err(format!(
                    "one key is registered for both {other} and {}",
                    p.name
                )));
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
    /// Import sources (`github`, `servicenow`) whose attested approvals count.
    pub accept_imported: Vec<String>,
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
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            name: None,
            log_key: None,
            min_approvers: 2,
            required_roles: Vec::new(),
            max_age_ms: None,
            accept_imported: Vec::new(),
            environment: None,
            lineage_required: true,
            min_datasets: 1,
            metrics: Vec::new(),
            people: People::default(),
            witness_keys: Vec::new(),
            witnesses_required: 0,
            require: Vec::new(),
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
    pub source: String,
}

fn signed() -> String {
    "signed".into()
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePerson {
    name: String,
    #[serde(default)]
    roles: Vec<String>,
    key: String,
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
        let max_age_ms = f
            .approvals
            .max_age
            .as_deref()
            .map(|a| {
                parse_duration_ms(a).ok_or_else(|| {
                    err(format!(
                        "approvals.max_age {a:?}: write a number and a unit: s, m, h or d"
                    ))
                })
            })
            .transpose()?;
        for s in &f.approvals.accept_imported {
            if !["github", "servicenow"].contains(&s.as_str()) {
                return Err(err(format!(
                    "approvals.accept_imported: unknown source {s:?} (github, servicenow)"
                )));
            }
        }
        for r in &f.approvals.require {
            if !["signed", "github", "servicenow"].contains(&r.source.as_str()) {
                return Err(err(format!(
                    "approvals.require: unknown source {:?} (signed, github, servicenow)",
                    r.source
                )));
            }
            if r.source != "signed" && !f.approvals.accept_imported.contains(&r.source) {
                return Err(err(format!(
                    "approvals.require names source {:?}, which approvals.accept_imported does not accept",
                    r.source
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
                Ok(Person {
                    key: VerifierKey::parse(&p.key)
                        .map_err(|e| err(format!("people {}: key: {e}", p.name)))?,
                    name: p.name,
                    roles: p.roles,
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
            accept_imported: f.approvals.accept_imported,
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

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

/// The pre-approval checks of a request body against its lineage entry (`lineage`: its leaf
/// hash in hex and body, when it is in the log and is a lineage entry). Rules, in order:
/// `lineage_present`, `lineage_model`, `lineage_artifact`, `lineage_datasets`, then
/// `environment` and `policy_name` when the policy sets them, then `metric:<path>` per
/// threshold. A request passes when every check is ok.
pub fn pre_approval_checks(
    policy: &Policy,
    request: &Value,
    lineage: Option<(&str, &Value)>,
) -> Vec<Check> {
    let st = &request["statement"];
    let mut out = Vec::new();
    let reference = text(st, &["lineage"]);
    let lineage = lineage.filter(|(h, _)| *h == reference).map(|(_, v)| v);
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
        let (lm, sm) = (text(l, &["model_id"]), text(st, &["model_id"]));
        out.push(Check::new(
            "lineage_model",
            lm == sm,
            if lm == sm {
                format!("model {sm}")
            } else {
                format!("the lineage is for model {lm}, the request for {sm}")
            },
        ));
        let (la, sa) = (
            text(l, &["artifact", "sha256"]),
            text(st, &["artifact_sha256"]),
        );
        out.push(Check::new(
            "lineage_artifact",
            la == sa,
            if la == sa {
                format!("artifact {sa}")
            } else {
                format!("the lineage records artifact {la}, the request names {sa}")
            },
        ));
        let datasets: BTreeSet<&str> = l["datasets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| text(d, &["sha256"]))
            .filter(|s| !s.is_empty())
            .collect();
        let requested: BTreeSet<&str> = st["dataset_sha256"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
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
    }
    if let Some(env) = &policy.environment {
        let have = text(st, &["environment"]);
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
        let have = text(st, &["policy"]);
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

fn metric_check(m: &MetricRule, request: &Value, lineage: Option<&Value>) -> Check {
    let rule = format!("metric:{}", m.metric);
    let (object, name) = m.metric.split_once('.').unwrap_or_default();
    let source = match object {
        "performance_metrics" => Some(request),
        _ => lineage,
    };
    let Some(value) = source.and_then(|s| s[object][name].as_f64()) else {
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
        ] {
            let e = Policy::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn metrics_thresholds() {
        let p = Policy::parse(
            "[[metrics]]\nmetric = \"validation_metrics.accuracy\"\nmin = 0.9\n[[metrics]]\nmetric = \"performance_metrics.max_drawdown\"\nmax = 0.2",
        )
        .unwrap();
        let request = serde_json::json!({"statement": {"lineage": "ab"}, "performance_metrics": {"max_drawdown": 0.25}});
        let lineage = serde_json::json!({"validation_metrics": {"accuracy": 0.85}});
        let checks = pre_approval_checks(&p, &request, Some(("ab", &lineage)));
        let by = |r: &str| checks.iter().find(|c| c.rule == r).unwrap().clone();
        assert!(!by("metric:validation_metrics.accuracy").ok);
        assert!(by("metric:validation_metrics.accuracy")
            .detail
            .contains("below the minimum 0.9"));
        assert!(by("metric:performance_metrics.max_drawdown")
            .detail
            .contains("above the maximum 0.2"));
        let lineage = serde_json::json!({"validation_metrics": {"accuracy": 0.93}});
        let checks = pre_approval_checks(&p, &request, Some(("ab", &lineage)));
        assert!(
            checks
                .iter()
                .find(|c| c.rule == "metric:validation_metrics.accuracy")
                .unwrap()
                .ok
        );
    }
}
