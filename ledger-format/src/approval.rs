//! Four-eyes evaluation of a release request and the offline-verifiable approval bundle
//! (SPEC.md §8). The same [`evaluate`] drives the server's approval status and the deploy gate,
//! so the two cannot disagree on what "approved" means; the gate adds the cryptography (the
//! checkpoint signature and every inclusion proof, [`Bundle::open`]) and the artifact file.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::entry::EntryKind;
use crate::leaf::Leaf;
use crate::note::VerifierKey;
use crate::policy::{pre_approval_checks, Check, Policy};
use crate::proof::InclusionProof;
use crate::schema::rfc3339_to_ms;
use crate::{leaf_hash, Hash, LeafIndex, TreeSize};

/// A logged entry, parsed: its index, leaf hash, kind and JSON body.
#[derive(Clone, Debug)]
pub struct Logged {
    pub index: u64,
    pub leaf_hash: Hash,
    pub kind: EntryKind,
    pub body: Value,
}

impl Logged {
    /// Parses the leaf envelope at `index` and its JSON body.
    pub fn from_leaf(index: u64, leaf: &[u8]) -> Result<Logged, String> {
        let parsed = Leaf::parse(leaf).map_err(|e| format!("entry {index}: {e}"))?;
        let body = serde_json::from_slice(&parsed.body)
            .map_err(|e| format!("entry {index}: body: {e}"))?;
        Ok(Logged {
            index,
            leaf_hash: leaf_hash(leaf),
            kind: parsed.kind,
            body,
        })
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

/// One approval or rejection of the request, as the evaluation saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub index: u64,
    pub leaf_hash: String,
    pub who: String,
    pub role: String,
    /// `signed` (a personal signature), `github` or `servicenow` (attested by the log).
    pub source: String,
    /// The statement's `signed_at`.
    pub when: String,
    /// `approve` or `reject`.
    pub decision: String,
    /// Whether it counts (an approval towards the quorum, a rejection against it).
    pub counted: bool,
    /// Why it does not count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an imported approval, the source's evidence (review id, reviewer, commit; change,
    /// approval record, state).
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
    /// `not_requester`, `no_later_rejection`, `approval_age`.
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
}

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

/// Verifies that the policy person `name` signed `statement` with `signature` (Ed25519 over the
/// statement's RFC 8785 form). Returns why not.
pub fn verify_statement(
    policy: &Policy,
    name: &str,
    statement: &Value,
    signature: &str,
) -> Result<(), String> {
    let person = policy
        .people
        .get(name)
        .ok_or_else(|| format!("{name:?} is not a registered person"))?;
    let canonical = crate::jcs::canonicalize(statement).map_err(|e| e.to_string())?;
    let sig = STANDARD
        .decode(signature)
        .map_err(|_| "the signature is not base64".to_owned())?;
    if person.key.verify_raw(canonical.as_bytes(), &sig) {
        Ok(())
    } else {
        Err(format!(
            "the signature does not verify with {name}'s key over the RFC 8785 form of the statement"
        ))
    }
}

/// Evaluates `request` against the policy: its pre-approval checks (with its `lineage` entry
/// when known) and the approval rules over `decisions` (approval entries, in log order) at time
/// `now_ms` (Unix milliseconds). People, keys and roles come from the policy only.
pub fn evaluate(
    policy: &Policy,
    request: &Logged,
    lineage: Option<&Logged>,
    decisions: &[Logged],
    now_ms: u64,
) -> Evaluation {
    let st = &request.body["statement"];
    let request_hex = request.leaf_hash.to_hex();
    let requester = text(st, &["requested_by"]);
    let artifact = text(st, &["artifact_sha256"]);
    let lineage_ref = lineage
        .filter(|l| l.kind == EntryKind::Lineage)
        .map(|l| (l.leaf_hash.to_hex(), &l.body));
    let checks = pre_approval_checks(
        policy,
        &request.body,
        lineage_ref.as_ref().map(|(h, b)| (h.as_str(), *b)),
    );

    let mut rules = Vec::new();
    let signature = if request.kind != EntryKind::ApprovalRequest {
        Err(format!(
            "entry {} is not an approval_request",
            request.index
        ))
    } else {
        verify_statement(policy, requester, st, text(&request.body, &["signature"]))
            .map(|()| format!("signed by {requester}"))
    };
    rules.push(match signature {
        Ok(d) => Check::new("request_signature", true, d),
        Err(d) => Check::new("request_signature", false, d),
    });

    let mut out = Vec::new();
    let mut approvals: BTreeMap<String, usize> = BTreeMap::new();
    let mut roles = BTreeSet::new();
    let mut role_sources: BTreeSet<(String, String)> = BTreeSet::new();
    let (mut self_approvals, mut expired) = (Vec::new(), Vec::new());
    let (mut last_approval, mut last_rejection) = (None, None);
    for d in decisions {
        let dst = &d.body["statement"];
        let source = d.body["source"].as_str().unwrap_or("signed").to_owned();
        let mut decision = Decision {
            index: d.index,
            leaf_hash: d.leaf_hash.to_hex(),
            who: text(dst, &["approver"]).to_owned(),
            role: text(dst, &["role"]).to_owned(),
            source: source.clone(),
            when: text(dst, &["signed_at"]).to_owned(),
            decision: text(dst, &["decision"]).to_owned(),
            counted: false,
            reason: None,
            evidence: d.body.get("evidence").cloned(),
        };
        let who = decision.who.clone();
        let invalid = if d.kind != EntryKind::Approval || text(dst, &["request"]) != request_hex {
            Some(format!(
                "entry {} is not a decision on this request",
                d.index
            ))
        } else if text(dst, &["artifact_sha256"]) != artifact {
            Some("it names another artifact".to_owned())
        } else if let Some(person) = policy.people.get(&who) {
            if !person.roles.contains(&decision.role) {
                Some(format!("{who} does not hold the role {:?}", decision.role))
            } else if source == "signed" {
                verify_statement(policy, &who, dst, text(&d.body, &["signature"])).err()
            } else if !policy.accept_imported.contains(&source) {
                Some(format!(
                    "approvals imported from {source} are not accepted by the policy"
                ))
            } else {
                None
            }
        } else {
            Some(format!("{who:?} is not a registered person"))
        };
        let signed_ms = rfc3339_to_ms(&decision.when);
        decision.reason = invalid.or_else(|| match decision.decision.as_str() {
            "reject" => None,
            _ if who == requester => {
                self_approvals.push(who.clone());
                Some("the requester cannot approve their own release".to_owned())
            }
            _ => match (policy.max_age_ms, signed_ms) {
                (Some(max), Some(at)) if now_ms.saturating_sub(at) > max => {
                    expired.push(format!("{who} ({})", decision.when));
                    Some(format!(
                        "signed at {}, older than the policy's maximum age",
                        decision.when
                    ))
                }
                _ => None,
            },
        });
        if decision.reason.is_none() {
            decision.counted = true;
            if decision.decision == "reject" {
                last_rejection = Some(d.index);
            } else {
                last_approval = Some(d.index);
                *approvals.entry(who.clone()).or_default() += 1;
                roles.insert(decision.role.clone());
                role_sources.insert((decision.role.clone(), decision.source.clone()));
            }
        }
        out.push(decision);
    }

    let distinct = approvals.len();
    let approvers: Vec<String> = approvals.keys().cloned().collect();
    let repeated: Vec<String> = approvals
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(who, n)| format!("{who} approved {n} times and counts once"))
        .collect();
    let not_counted: Vec<String> = out
        .iter()
        .filter_map(|d| {
            d.reason
                .as_ref()
                .map(|r| format!("{} ({}): {r}", d.who, d.decision))
        })
        .collect();
    let mut detail = format!(
        "{distinct} distinct approvers of {} required: [{}]",
        policy.min_approvers,
        approvers.join(", ")
    );
    for extra in repeated.iter().chain(&not_counted) {
        detail.push_str("; ");
        detail.push_str(extra);
    }
    let enough = distinct >= policy.min_approvers;
    rules.push(Check::new("approvals", enough, detail));
    let missing: Vec<&String> = policy
        .required_roles
        .iter()
        .filter(|r| !roles.contains(*r))
        .collect();
    rules.push(Check::new(
        "required_roles",
        missing.is_empty(),
        if missing.is_empty() {
            format!(
                "roles held: [{}]",
                roles.into_iter().collect::<Vec<_>>().join(", ")
            )
        } else {
            format!(
                "no counted approval in the role(s) [{}]",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    ));
    if !policy.require.is_empty() {
        let missing: Vec<String> = policy
            .require
            .iter()
            .filter(|r| !role_sources.contains(&(r.role.clone(), r.source.clone())))
            .map(|r| format!("{} from {}", r.role, r.source))
            .collect();
        rules.push(Check::new(
            "required_sources",
            missing.is_empty(),
            if missing.is_empty() {
                "every required role and source approved".to_owned()
            } else {
                format!("no counted approval: {}", missing.join(", "))
            },
        ));
    }
    rules.push(Check::new(
        "not_requester",
        self_approvals.is_empty(),
        if self_approvals.is_empty() {
            format!("no approval by the requester {requester}")
        } else {
            format!("the requester {requester} approved their own release")
        },
    ));
    let rejected = match (last_rejection, last_approval) {
        (Some(r), Some(a)) => r > a,
        (Some(_), None) => true,
        _ => false,
    };
    rules.push(Check::new(
        "no_later_rejection",
        !rejected,
        match last_rejection {
            Some(r) if rejected => format!("entry {r} rejects the release after the last approval"),
            Some(r) => format!("the rejection at entry {r} was followed by approvals"),
            None => "no rejection".to_owned(),
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
    let status = if rejected {
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
        decisions: out,
        approvers,
    }
}

/// An entry in a bundle: a receipt without its checkpoint (the bundle's one checkpoint).
pub use crate::receipt::EntryProof as BundleEntry;

/// The value of a bundle's `format`.
pub const BUNDLE_FORMAT: &str = "govledger-approval-bundle/v1";

/// Everything a deploy gate needs to decide on a request offline (SPEC.md §8): the request,
/// its lineage and every approval and rejection, each with an inclusion proof to one signed
/// checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub format: String,
    /// The signed checkpoint note (log signature, and witness cosignatures when present).
    pub checkpoint: String,
    pub tree_size: u64,
    /// The checkpoint's root hash, base64.
    pub root: String,
    pub request: BundleEntry,
    pub lineage: Option<BundleEntry>,
    /// Approvals and rejections of the request, in log order.
    pub approvals: Vec<BundleEntry>,
    /// Deployment records of the request, in log order.
    #[serde(default)]
    pub deployments: Vec<BundleEntry>,
}

/// Why a bundle could not be opened at all.
#[derive(Debug, Error)]
pub enum BundleError {
    #[error("not a {BUNDLE_FORMAT} bundle: {0}")]
    Format(String),
}

/// A bundle whose checkpoint and proofs were checked: the entries that verified, and one
/// [`Check`] per cryptographic rule (`checkpoint_signature`, `inclusion_proofs`).
#[derive(Clone, Debug)]
pub struct OpenedBundle {
    pub checkpoint: Option<Checkpoint>,
    /// Names of the witnesses whose cosignatures verified (distinct keys).
    pub cosigners: Vec<String>,
    pub checks: Vec<Check>,
    pub request: Option<Logged>,
    pub lineage: Option<Logged>,
    pub approvals: Vec<Logged>,
    pub deployments: Vec<Logged>,
}

impl BundleEntry {
    /// Returns the entry after checking that its leaf hashes to `leaf_hash` and that its proof
    /// leads to `root` in a tree of `size`.
    fn open(&self, size: TreeSize, root: &Hash) -> Result<Logged, String> {
        let leaf = STANDARD
            .decode(&self.leaf)
            .map_err(|_| format!("entry {}: leaf is not base64", self.index))?;
        let hash = leaf_hash(&leaf);
        if hash.to_hex() != self.leaf_hash {
            return Err(format!(
                "entry {}: the leaf hashes to {}, not {}",
                self.index,
                hash.to_hex(),
                self.leaf_hash
            ));
        }
        let path = self
            .proof
            .iter()
            .map(|p| Hash::from_base64(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("entry {}: proof: {e}", self.index))?;
        InclusionProof {
            index: LeafIndex(self.index),
            size,
            path,
        }
        .verify(&hash, root)
        .map_err(|e| format!("entry {}: inclusion proof: {e}", self.index))?;
        Logged::from_leaf(self.index, &leaf)
    }
}

impl Bundle {
    /// Parses a bundle (JSON).
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let b: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Format(e.to_string()))?;
        if b.format != BUNDLE_FORMAT {
            return Err(BundleError::Format(format!("format is {:?}", b.format)));
        }
        Ok(b)
    }

    /// Checks the checkpoint against `log_key` (collecting cosignatures by `witness_keys`) and
    /// every entry's inclusion proof against it. Entries that fail are left out of the result
    /// and named in `inclusion_proofs`; with a bad checkpoint nothing is proven and every entry
    /// is left out.
    pub fn open(&self, log_key: &VerifierKey, witness_keys: &[VerifierKey]) -> OpenedBundle {
        let mut opened = OpenedBundle {
            cosigners: Vec::new(),
            checkpoint: None,
            checks: Vec::new(),
            request: None,
            lineage: None,
            approvals: Vec::new(),
            deployments: Vec::new(),
        };
        let checkpoint = SignedCheckpoint::open(self.checkpoint.as_bytes(), log_key, witness_keys)
            .map_err(|e| e.to_string())
            .and_then(|(s, verified)| {
                let mut names: Vec<String> = verified
                    .iter()
                    .filter(|v| v.key.sig_type() == crate::note::SigType::Cosignature)
                    .map(|v| v.key.name().to_owned())
                    .collect();
                names.sort();
                names.dedup();
                opened.cosigners = names;
                let c = s.checkpoint;
                if c.size.0 != self.tree_size || c.root.to_base64() != self.root {
                    Err(format!(
                        "the bundle says size {} root {}, its checkpoint size {} root {}",
                        self.tree_size, self.root, c.size, c.root
                    ))
                } else {
                    Ok(c)
                }
            });
        let c = match checkpoint {
            Ok(c) => c,
            Err(e) => {
                opened.checks.push(Check::new(
                    "checkpoint_signature",
                    false,
                    format!("the checkpoint does not verify with the policy's log key: {e}"),
                ));
                opened.checks.push(Check::new(
                    "inclusion_proofs",
                    false,
                    "nothing can be proven without a valid checkpoint",
                ));
                return opened;
            }
        };
        opened.checks.push(Check::new(
            "checkpoint_signature",
            true,
            format!(
                "{} at size {} signed by {}",
                c.origin,
                c.size,
                log_key.name()
            ),
        ));
        let mut failures = Vec::new();
        let mut open = |e: &BundleEntry| {
            e.open(c.size, &c.root)
                .map_err(|why| failures.push(why))
                .ok()
        };
        opened.lineage = self.lineage.as_ref().and_then(&mut open);
        opened.approvals = self.approvals.iter().filter_map(&mut open).collect();
        opened.deployments = self.deployments.iter().filter_map(&mut open).collect();
        opened.request = Some(&self.request).and_then(&mut open);
        let total =
            1 + self.lineage.is_some() as usize + self.approvals.len() + self.deployments.len();
        opened.checks.push(if failures.is_empty() {
            Check::new(
                "inclusion_proofs",
                true,
                format!("{total} entries proven in the tree of size {}", c.size),
            )
        } else {
            Check::new("inclusion_proofs", false, failures.join("; "))
        });
        opened.checkpoint = Some(c);
        opened
    }
}
