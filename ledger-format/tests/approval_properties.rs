//! Properties of the approval evaluator (SPEC.md §7.1) and of approval bundles (§8), over random
//! logs of a request, another request for the same artifact, and signed approvals and
//! rejections by several people in several roles at several times (ties included), some of
//! them ineligible (a role the person does not hold, a signature by someone else's key, an
//! unregistered name).
//!
//! - The verdict equals a reference implementation of the written semantics, kept deliberately
//!   plain and separate from `ledger_format::approval`.
//! - Shuffling or duplicating the decisions handed to the evaluator never changes the verdict.
//! - The genuine bundle of the log opens and yields the reference verdict; any reordering or
//!   duplication of its entries is refused (`bundle_format`).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::approval::{evaluate, Bundle, BundleEntry, Case, Logged, Status, BUNDLE_FORMAT};
use ledger_format::checkpoint::Checkpoint;
use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::note::{Note, SignerKey};
use ledger_format::policy::Policy;
use ledger_format::tree::MemoryTree;
use ledger_format::LeafIndex;
use proptest::prelude::*;
use serde_json::{json, Value};

const ARTIFACT: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DATASET: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// 2026-11-26T09:00:00Z.
const T0: u64 = 1_795_683_600_000;

/// (name, roles); alice requests. "mallory" signs but is not registered.
const PEOPLE: [(&str, &[&str]); 5] = [
    ("alice", &["quant"]),
    ("bob", &["risk"]),
    ("carol", &["risk", "compliance"]),
    ("dave", &["quant"]),
    ("mallory", &["risk"]),
];
const REGISTERED: usize = 4;

fn key(person: usize) -> SignerKey {
    SignerKey::from_seed(PEOPLE[person].0, [person as u8 + 1; 32]).unwrap()
}

fn policy() -> Policy {
    Policy::parse(&policy_text("required_roles = [\"risk\"]\n", |_| {
        String::new()
    }))
    .unwrap()
}

/// A policy of two approvers (and `approvals`) over the registered people; `extra(name)` adds
/// to a person's table.
fn policy_text(approvals: &str, extra: impl Fn(&str) -> String) -> String {
    let mut text =
        format!("[approvals]\nmin_approvers = 2\n{approvals}[lineage]\nrequired = false\n");
    for (i, (name, roles)) in PEOPLE.iter().enumerate().take(REGISTERED) {
        let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
        text.push_str(&format!(
            "[[people]]\nname = \"{name}\"\nroles = [{}]\nkey = \"{}\"\n{}",
            roles.join(", "),
            key(i).verifier(),
            extra(name)
        ));
    }
    text
}

fn rfc3339(ms: u64) -> String {
    // Whole seconds after T0 within one day: enough for these logs.
    let s = (ms - T0) / 1000;
    format!(
        "2026-11-26T{:02}:{:02}:{:02}Z",
        9 + s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

fn signed(k: &SignerKey, statement: &Value) -> String {
    let c = ledger_format::jcs::canonicalize(statement).unwrap();
    STANDARD.encode(k.sign_raw(c.as_bytes()))
}

/// One generated decision.
#[derive(Clone, Debug)]
struct Gen {
    person: usize,
    /// 0: the request under test; 1: the other request for the artifact.
    target: usize,
    approve: bool,
    /// Seconds after the requests; small, so that ties happen.
    at_s: u64,
    /// Index into the person's roles; one past them claims "risk" whether held or not.
    role: usize,
    /// Signed with the next person's key instead of their own.
    forged: bool,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        0..PEOPLE.len(),
        0..2usize,
        any::<bool>(),
        0..6u64,
        0..3usize,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(person, target, approve, at_s, role, forged)| Gen {
            person,
            target,
            approve,
            at_s,
            role,
            forged,
        })
}

impl Gen {
    fn role(&self) -> &'static str {
        PEOPLE[self.person]
            .1
            .get(self.role)
            .copied()
            .unwrap_or("risk")
    }
    fn at_ms(&self) -> u64 {
        T0 + 10_000 + self.at_s * 1000
    }
}

/// A log: the two requests, then the decisions in generation order (log order is not time
/// order).
struct Log {
    leaves: Vec<Vec<u8>>,
    logged: Vec<Logged>,
}

fn leaf(kind: EntryKind, at_ms: u64, body: &Value) -> Vec<u8> {
    Leaf {
        kind,
        logged_at_ms: at_ms,
        submitter: "anonymous".into(),
        entry_id: String::new(),
        body: body.to_string().into_bytes(),
    }
    .encode()
    .unwrap()
}

fn build(decisions: &[Gen]) -> Log {
    let mut leaves = Vec::new();
    for (i, requester) in [0usize, 3].into_iter().enumerate() {
        let st = json!({"model_id": "m", "artifact_sha256": ARTIFACT, "dataset_sha256": [DATASET],
            "lineage": "11".repeat(32), "requested_by": PEOPLE[requester].0,
            "environment": "production", "policy": "p", "signed_at": rfc3339(T0 + i as u64 * 1000),
            "performance_metrics": {}});
        let body = json!({"statement": st, "signature": signed(&key(requester), &st)});
        leaves.push(leaf(
            EntryKind::ApprovalRequest,
            T0 + i as u64 * 1000,
            &body,
        ));
    }
    let requests = [
        ledger_format::leaf_hash(&leaves[0]),
        ledger_format::leaf_hash(&leaves[1]),
    ];
    for d in decisions {
        let st = json!({"request": requests[d.target].to_hex(), "artifact_sha256": ARTIFACT,
            "decision": if d.approve { "approve" } else { "reject" }, "approver": PEOPLE[d.person].0,
            "role": d.role(), "signed_at": rfc3339(d.at_ms())});
        let signer = if d.forged {
            key((d.person + 1) % PEOPLE.len())
        } else {
            key(d.person)
        };
        let body = json!({"statement": st, "signature": signed(&signer, &st)});
        leaves.push(leaf(EntryKind::Approval, d.at_ms() + 500, &body));
    }
    let logged = leaves
        .iter()
        .enumerate()
        .map(|(i, l)| Logged::from_leaf(i as u64, l).unwrap())
        .collect();
    Log { leaves, logged }
}

/// The verdict as SPEC.md §7.1 words it, computed the plain way: status and counted approvers.
fn reference(decisions: &[Gen]) -> (Status, Vec<String>) {
    // (time, rejection over approval, log index): the later wins.
    type Rank = (u64, bool, usize);
    let eligible =
        |d: &Gen| d.person < REGISTERED && !d.forged && PEOPLE[d.person].1.contains(&d.role());
    // Per person and target, the latest eligible decision.
    let mut latest: BTreeMap<(usize, usize), (Rank, &Gen)> = BTreeMap::new();
    for (i, d) in decisions.iter().enumerate() {
        if !eligible(d) {
            continue;
        }
        let rank = (d.at_ms(), !d.approve, i);
        let slot = latest.entry((d.person, d.target)).or_insert((rank, d));
        if rank > slot.0 {
            *slot = (rank, d);
        }
    }
    // A person's standing decision on the request: the latest of their decision on it and of
    // their rejection of the other request for the artifact.
    let mut standing: BTreeMap<usize, (Rank, &Gen)> = BTreeMap::new();
    for (&(person, target), &(rank, d)) in &latest {
        if target == 1 && d.approve {
            continue;
        }
        let slot = standing.entry(person).or_insert((rank, d));
        if rank > slot.0 {
            *slot = (rank, d);
        }
    }
    let rejected = standing.values().any(|(_, d)| !d.approve);
    let self_approved = standing.get(&0).is_some_and(|(_, d)| d.approve);
    let counted: Vec<(usize, &str)> = standing
        .iter()
        .filter(|(&p, (_, d))| p != 0 && d.approve && d.target == 0)
        .map(|(&p, (_, d))| (p, d.role()))
        .collect();
    let names = counted
        .iter()
        .map(|(p, _)| PEOPLE[*p].0.to_owned())
        .collect();
    let status = if rejected {
        Status::Rejected
    } else if counted.len() >= 2 && counted.iter().any(|(_, r)| *r == "risk") && !self_approved {
        Status::Approved
    } else {
        Status::Pending
    };
    (status, names)
}

fn verdict(log: &Log, decisions: &[Logged]) -> (Status, Vec<String>) {
    let case = Case {
        request: &log.logged[0],
        lineage: None,
        related: &log.logged[1..2],
        decisions,
    };
    let e = evaluate(&policy(), &case, T0 + 60_000);
    (e.status, e.approvers)
}

/// The genuine bundle of `log` for the request, proven against a checkpoint of the whole log.
fn bundle(log: &Log, log_key: &SignerKey) -> Bundle {
    let mut tree = MemoryTree::new();
    for l in &log.leaves {
        tree.push(ledger_format::leaf_hash(l));
    }
    let entry = |i: usize| BundleEntry {
        index: i as u64,
        leaf_hash: ledger_format::leaf_hash(&log.leaves[i]).to_hex(),
        leaf: STANDARD.encode(&log.leaves[i]),
        proof: ledger_format::proof::prove_inclusion(LeafIndex(i as u64), tree.size(), &tree)
            .unwrap()
            .path
            .iter()
            .map(|h| h.to_base64())
            .collect(),
    };
    let cp = Checkpoint {
        origin: log_key.name().to_owned(),
        size: tree.size(),
        root: tree.root(),
        extensions: vec![],
    };
    Bundle {
        format: BUNDLE_FORMAT.into(),
        checkpoint: Note::sign(&cp.to_text(), &[log_key]).unwrap().to_text(),
        tree_size: tree.size().0,
        root: tree.root().to_base64(),
        request: entry(0),
        lineage: None,
        related: vec![entry(1)],
        approvals: (2..log.leaves.len()).map(entry).collect(),
        deployments: vec![],
    }
}

fn bundle_verdict(b: &Bundle, log_key: &SignerKey) -> Result<(Status, Vec<String>), String> {
    let opened = b.open(&log_key.verifier(), &[]);
    if let Some(c) = opened.checks.iter().find(|c| !c.ok) {
        return Err(format!("{}: {}", c.rule, c.detail));
    }
    let case = opened.case().ok_or("no case")?;
    let e = evaluate(&policy(), &case, T0 + 60_000);
    Ok((e.status, e.approvers))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_verdict_is_the_written_semantics(decisions in prop::collection::vec(gen(), 0..10)) {
        let log = build(&decisions);
        prop_assert_eq!(verdict(&log, &log.logged[2..]), reference(&decisions));
    }

    #[test]
    fn shuffled_or_duplicated_decisions_change_nothing(
        decisions in prop::collection::vec(gen(), 1..10),
        order in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let log = build(&decisions);
        let genuine = verdict(&log, &log.logged[2..]);
        let mut shuffled: Vec<Logged> = log.logged[2..].to_vec();
        for d in &dups {
            shuffled.push(d.get(&log.logged[2..]).clone());
        }
        // A deterministic shuffle from the drawn seed.
        let mut seed = order;
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (seed >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(verdict(&log, &shuffled), genuine);
    }

    #[test]
    fn the_genuine_bundle_gives_the_reference_verdict_and_any_reorder_or_duplicate_is_refused(
        decisions in prop::collection::vec(gen(), 2..8),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        let log_key = SignerKey::from_seed("example.com/log", [9; 32]).unwrap();
        let log = build(&decisions);
        let genuine = bundle(&log, &log_key);
        prop_assert_eq!(bundle_verdict(&genuine, &log_key), Ok(reference(&decisions)));

        let (i, j) = (a.index(genuine.approvals.len()), b.index(genuine.approvals.len()));
        if i != j {
            let mut swapped = genuine.clone();
            swapped.approvals.swap(i, j);
            let e = bundle_verdict(&swapped, &log_key).unwrap_err();
            prop_assert!(e.starts_with("bundle_format"), "{}", e);
        }
        let mut duplicated = genuine.clone();
        let again = duplicated.approvals[i].clone();
        duplicated.approvals.insert(j, again);
        let e = bundle_verdict(&duplicated, &log_key).unwrap_err();
        prop_assert!(e.starts_with("bundle_format"), "{}", e);
        // The request given again as a decision, or a decision as the related request.
        let mut moved = genuine.clone();
        moved.approvals.insert(0, genuine.request.clone());
        prop_assert!(bundle_verdict(&moved, &log_key).unwrap_err().starts_with("bundle_format"));
        let mut moved = genuine.clone();
        moved.related = vec![genuine.approvals[i].clone()];
        prop_assert!(bundle_verdict(&moved, &log_key).is_err());
    }
}

/// A person whose key changed keeps the decisions signed with the retired key before its
/// `until`; a decision dated later that only the retired key signed does not count (someone
/// holding the old key cannot approve as them after the change).
#[test]
fn retired_person_keys_verify_only_what_was_signed_before_the_change() {
    let old_bob = SignerKey::from_seed("bob", [42; 32]).unwrap();
    let until = T0 + 20_000;
    let text = policy_text("", |name| {
        if name == "bob" {
            format!(
                "retired_keys = [{{ key = \"{}\", until = \"{}\" }}]\n",
                old_bob.verifier(),
                rfc3339(until)
            )
        } else {
            String::new()
        }
    });
    let policy = Policy::parse(&text).unwrap();
    let log = build(&[]);
    let request = log.logged[0].leaf_hash.to_hex();
    let decision = |signer: &SignerKey, who: &str, at_ms: u64, index: u64| {
        let st = json!({"request": request, "artifact_sha256": ARTIFACT, "decision": "approve",
            "approver": who, "role": "risk", "signed_at": rfc3339(at_ms)});
        let body = json!({"statement": st, "signature": signed(signer, &st)});
        Logged::from_leaf(index, &leaf(EntryKind::Approval, at_ms + 500, &body)).unwrap()
    };
    let approvers = |decisions: &[Logged]| {
        let case = Case {
            request: &log.logged[0],
            lineage: None,
            related: &log.logged[1..2],
            decisions,
        };
        evaluate(&policy, &case, T0 + 60_000).approvers
    };
    let carol = decision(&key(2), "carol", T0 + 5_000, 2);
    // Signed with the retired key before `until`: counts.
    assert_eq!(
        approvers(&[decision(&old_bob, "bob", T0 + 10_000, 3), carol.clone()]),
        ["bob", "carol"]
    );
    // Signed with the retired key after `until`: does not.
    assert_eq!(
        approvers(&[decision(&old_bob, "bob", T0 + 30_000, 3), carol.clone()]),
        ["carol"]
    );
    // The current key signs at any time.
    assert_eq!(
        approvers(&[decision(&key(1), "bob", T0 + 30_000, 3), carol]),
        ["bob", "carol"]
    );
}
