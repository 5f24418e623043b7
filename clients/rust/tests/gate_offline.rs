//! The offline gate's clocks: with `[freshness] max_checkpoint_age`, a bundle is
//! dated by the newest trusted witness cosignature on its checkpoint, the only clock the gate
//! can trust offline (rule `checkpoint_fresh`); entries dated after the gate's clock are refused
//! (rule `entry_times`). Bundles are built here over a real tree and signed by the log's key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use govledger_client::gate::{run, BundleInput, GateArgs, Report};
use ledger_format::approval::{Bundle, BundleEntry, BUNDLE_FORMAT};
use ledger_format::checkpoint::Checkpoint;
use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::note::{Note, SignerKey};
use ledger_format::tree::MemoryTree;
use ledger_format::LeafIndex;
use serde_json::{json, Value};

mod support {
    pub mod gate_corpus;
}

const ARTIFACT: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HOUR: u64 = 3_600_000;

fn key(name: &str, seed: u8) -> SignerKey {
    SignerKey::from_seed(name, [seed; 32]).unwrap()
}

fn signed(k: &SignerKey, statement: &Value) -> String {
    let c = ledger_format::jcs::canonicalize(statement).unwrap();
    STANDARD.encode(k.sign_raw(c.as_bytes()))
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

struct World {
    dir: tempfile::TempDir,
    log: SignerKey,
    witness: SignerKey,
    people: [SignerKey; 3],
}

impl World {
    fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
            log: key("example.com/log", 9),
            witness: key("example.com/witness", 8),
            people: [key("alice", 1), key("bob", 2), key("carol", 3)],
        };
        let roles = ["quant", "risk", "risk"];
        let mut policy = format!(
            "[approvals]\nmin_approvers = 2\n[lineage]\nrequired = false\n[log]\nkey = \"{}\"\n[witnesses]\nkeys = [\"{}\"]\n[freshness]\nmax_checkpoint_age = \"1h\"\n",
            w.log.verifier(),
            w.witness.verifier()
        );
        for (k, role) in w.people.iter().zip(roles) {
            policy.push_str(&format!(
                "[[people]]\nname = \"{}\"\nroles = [\"{role}\"]\nkey = \"{}\"\n",
                k.name(),
                k.verifier()
            ));
        }
        std::fs::write(w.dir.path().join("policy.toml"), policy).unwrap();
        w
    }

    /// A request by alice approved by bob and carol, all logged at `logged_ms`, in a bundle
    /// whose checkpoint the witness cosigned at `cosigned_s` (none: not cosigned).
    fn bundle(&self, logged_ms: u64, cosigned_s: Option<u64>) -> (String, std::path::PathBuf) {
        let at = govledger_client::time::rfc3339_ms(logged_ms - logged_ms % 1000);
        let st = json!({"model_id": "m", "artifact_sha256": ARTIFACT, "dataset_sha256": [ARTIFACT],
            "lineage": "11".repeat(32), "requested_by": "alice", "environment": "production",
            "policy": "p", "signed_at": at, "performance_metrics": {}});
        let body = json!({"statement": st, "signature": signed(&self.people[0], &st)});
        let mut leaves = vec![leaf(EntryKind::ApprovalRequest, logged_ms, &body)];
        let request = ledger_format::leaf_hash(&leaves[0]).to_hex();
        for k in &self.people[1..] {
            let st = json!({"request": request, "artifact_sha256": ARTIFACT, "decision": "approve",
                "approver": k.name(), "role": "risk", "signed_at": at});
            let body = json!({"statement": st, "signature": signed(k, &st)});
            leaves.push(leaf(EntryKind::Approval, logged_ms, &body));
        }
        let mut tree = MemoryTree::new();
        for l in &leaves {
            tree.push(ledger_format::leaf_hash(l));
        }
        let entry = |i: usize| BundleEntry {
            index: i as u64,
            leaf_hash: ledger_format::leaf_hash(&leaves[i]).to_hex(),
            leaf: STANDARD.encode(&leaves[i]),
            proof: ledger_format::proof::prove_inclusion(LeafIndex(i as u64), tree.size(), &tree)
                .unwrap()
                .path
                .iter()
                .map(|h| h.to_base64())
                .collect(),
        };
        let text = Checkpoint {
            origin: self.log.name().to_owned(),
            size: tree.size(),
            root: tree.root(),
            extensions: vec![],
        }
        .to_text();
        let mut note = Note::sign(&text, &[&self.log]).unwrap();
        if let Some(t) = cosigned_s {
            note.signatures
                .push(ledger_format::cosig::cosign(&self.witness, &text, t));
        }
        let b = Bundle {
            format: BUNDLE_FORMAT.into(),
            checkpoint: note.to_text(),
            tree_size: tree.size().0,
            root: tree.root().to_base64(),
            request: entry(0),
            lineage: None,
            related: vec![],
            approvals: vec![entry(1), entry(2)],
            deployments: vec![],
        };
        let path = self
            .dir
            .path()
            .join(format!("bundle-{logged_ms}-{cosigned_s:?}.json"));
        std::fs::write(&path, serde_json::to_vec(&b).unwrap()).unwrap();
        (request, path)
    }

    fn gate(&self, request: &str, bundle: &std::path::Path, now_ms: u64) -> Report {
        let policy = self.dir.path().join("policy.toml");
        let args = GateArgs {
            policy: &policy,
            bundle: Some(BundleInput::File(bundle)),
            url: None,
            request,
            artifact: None,
            now_ms,
            recheck: false,
            sources: Default::default(),
            github_status: false,
        };
        support::gate_corpus::record(&args);
        run(&args).unwrap()
    }
}

fn failed(r: &Report) -> Vec<&str> {
    r.failed.iter().map(String::as_str).collect()
}

#[test]
fn a_bundle_is_fresh_only_while_a_witness_cosignature_dates_it() {
    let w = World::new();
    let now = govledger_client::time::now_ms();
    let logged = now - 10 * 60_000;
    let (request, cosigned) = w.bundle(logged, Some(logged / 1000 + 5));
    let r = w.gate(&request, &cosigned, now);
    assert!(r.ok, "{}", r.to_text());
    // The same bundle two hours later: saved before anything that followed, it no longer
    // passes offline.
    let r = w.gate(&request, &cosigned, now + 2 * HOUR);
    assert_eq!(failed(&r), ["checkpoint_fresh"], "{}", r.to_text());
    // No cosignature: nothing dates the checkpoint.
    let (request, bare) = w.bundle(logged, None);
    let r = w.gate(&request, &bare, now);
    assert_eq!(failed(&r), ["checkpoint_fresh"], "{}", r.to_text());
    assert!(r.to_text().contains("no trusted witness cosignature"));
    // A cosignature from the future (a witness clock, or a forged timestamp, ahead) is refused.
    let (request, ahead) = w.bundle(logged, Some(now / 1000 + 3600));
    let r = w.gate(&request, &ahead, now);
    assert_eq!(failed(&r), ["checkpoint_fresh"], "{}", r.to_text());
    // A cosignature by a key the policy does not trust dates nothing.
    let other = World {
        witness: key("example.com/witness", 7),
        ..World::new()
    };
    let (request, untrusted) = other.bundle(logged, Some(logged / 1000 + 5));
    let r = w.gate(&request, &untrusted, now);
    assert!(failed(&r).contains(&"checkpoint_fresh"), "{}", r.to_text());
}

#[test]
fn entries_dated_after_the_gates_clock_are_refused() {
    let w = World::new();
    let now = govledger_client::time::now_ms();
    // A log whose clock runs an hour ahead (approvals that would stay young for longer).
    let logged = now + HOUR;
    let (request, bundle) = w.bundle(logged, Some(logged / 1000));
    let r = w.gate(&request, &bundle, now);
    assert!(failed(&r).contains(&"entry_times"), "{}", r.to_text());
    assert!(failed(&r).contains(&"checkpoint_fresh"), "{}", r.to_text());
}
