//! The `govledger` binary end to end, on proofs produced by other implementations (Trillian /
//! Rekor, transparency-dev/merkle, sigsum) and on receipts built with ledger-format.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::checkpoint::Checkpoint;
use ledger_format::entry::EntryKind;
use ledger_format::leaf::Leaf;
use ledger_format::note::{Note, SignerKey};
use ledger_format::proof::prove_inclusion;
use ledger_format::receipt::Receipt;
use ledger_format::tree::MemoryTree;
use ledger_format::{leaf_hash, LeafIndex};
use serde_json::Value;
use std::process::{Command, Output, Stdio};

fn vectors(name: &str) -> Value {
    let path = format!(
        "{}/../../ledger-format/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn govledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govledger"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn keygen_writes_a_private_key_file_and_prints_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.key");
    let p = path.to_str().unwrap();
    let o = govledger(&["keygen", "--name", "alice", "--out", p]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let vkey = String::from_utf8(o.stdout).unwrap();
    assert!(vkey.starts_with("alice+"));
    let key = govledger_client::keyfile::read(&path).unwrap();
    assert_eq!(key.verifier().to_string(), vkey.trim());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(
        code(&govledger(&["keygen", "--name", "alice", "--out", p])),
        2,
        "no overwrite"
    );
    assert_eq!(
        code(&govledger(&[
            "keygen",
            "--name",
            "bad+name",
            "--out",
            &format!("{p}2")
        ])),
        2
    );
}

#[test]
fn verify_inclusion_on_a_rekor_proof() {
    let v = vectors("sigstore_rekor.json");
    let e = &v["rekor_v1_entries"][0]["tlog_entry"];
    let ip = &e["inclusionProof"];
    let body = STANDARD
        .decode(e["canonicalizedBody"].as_str().unwrap())
        .unwrap();
    let leaf = leaf_hash(&body);
    let index = ip["logIndex"].as_str().unwrap();
    let size = ip["treeSize"].as_str().unwrap();
    let root = ip["rootHash"].as_str().unwrap();
    let mut args = vec![
        "proof".to_owned(),
        "verify-inclusion".into(),
        "--leaf-hash".into(),
        leaf.to_hex(), // hex here, base64 below
        "--index".into(),
        index.into(),
        "--size".into(),
        size.into(),
        "--root".into(),
        root.into(),
    ];
    for h in ip["hashes"].as_array().unwrap() {
        args.push("--proof".into());
        args.push(h.as_str().unwrap().into());
    }
    let run = |a: &[String]| govledger(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(&args);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let mut wrong_index = args.clone();
    wrong_index[5] = (index.parse::<u64>().unwrap() - 1).to_string();
    let o = run(&wrong_index);
    assert_eq!(code(&o), 1);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "one-line reason"
    );

    let mut dropped = args.clone();
    dropped.truncate(dropped.len() - 2);
    assert_eq!(code(&run(&dropped)), 1);

    let mut garbage = args.clone();
    garbage[3] = "not-a-hash".into();
    assert_eq!(code(&run(&garbage)), 2, "usage error");
}

#[test]
fn verify_consistency_on_transparency_dev_proofs() {
    let v = vectors("rfc6962_8leaf_tree.json");
    let roots = v["roots_hex"].as_array().unwrap();
    for p in v["consistency_proofs"].as_array().unwrap() {
        let (m, n) = (p["size1"].as_u64().unwrap(), p["size2"].as_u64().unwrap());
        let mut args = vec![
            "proof".to_owned(),
            "verify-consistency".into(),
            "--old-size".into(),
            m.to_string(),
            "--new-size".into(),
            n.to_string(),
            "--old-root".into(),
            roots[m as usize].as_str().unwrap().into(),
            "--new-root".into(),
            roots[n as usize].as_str().unwrap().into(),
        ];
        for h in p["proof_hex"].as_array().unwrap() {
            args.push("--proof".into());
            args.push(h.as_str().unwrap().into());
        }
        let o = govledger(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(
            code(&o),
            0,
            "{m} -> {n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let empty = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    let o = govledger(&[
        "proof",
        "verify-consistency",
        "--old-size",
        "0",
        "--new-size",
        "0",
        "--old-root",
        empty,
        "--new-root",
        empty,
    ]);
    assert_eq!(code(&o), 1, "a consistency proof from size 0 is invalid");
}

#[test]
fn note_verify_on_a_rekor_v2_checkpoint() {
    let v = vectors("checkpoint.json");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cp");
    std::fs::write(&path, v["signed_checkpoints"][5]["note"].as_str().unwrap()).unwrap();
    let p = path.to_str().unwrap();
    let key =
        "log2025-alpha1.rekor.sigstage.dev+f30d5a99+AT5/gERB6AWme8IEtcwaqcZi0hp8ocV4+JRcUnVlQfKP";
    assert_eq!(code(&govledger(&["note", "verify", "--key", key, p])), 0);
    let other = SignerKey::from_seed("log2025-alpha1.rekor.sigstage.dev", [9; 32])
        .unwrap()
        .verifier()
        .to_string();
    assert_eq!(code(&govledger(&["note", "verify", "--key", &other, p])), 1);
    let mut tampered = std::fs::read_to_string(&path).unwrap();
    tampered = tampered.replacen("736", "737", 1);
    std::fs::write(&path, tampered).unwrap();
    assert_eq!(code(&govledger(&["note", "verify", "--key", key, p])), 1);
    assert_eq!(
        code(&govledger(&[
            "note",
            "verify",
            "--key",
            key,
            "/nonexistent"
        ])),
        2
    );
}

#[test]
fn verify_a_sigsum_tlog_proof_with_a_witness() {
    let v = vectors("tlog_proof.json");
    let vp = &v["verifiable_proofs"][0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proof");
    std::fs::write(&path, vp["text"].as_str().unwrap()).unwrap();
    let p = path.to_str().unwrap();
    let log = vp["log_vkey"].as_str().unwrap();
    let w = vp["witness_vkeys"][0].as_str().unwrap();
    let leaf = vp["leaf"]["leaf_hash_hex"].as_str().unwrap();
    let o = govledger(&[
        "verify",
        p,
        "--log-key",
        log,
        "--leaf-hash",
        leaf,
        "--witness-key",
        w,
        "--witnesses-required",
        "1",
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.contains("index: 3") && out.contains("tree_size: 4"),
        "{out}"
    );
    // Without the leaf hash there is nothing to prove: invalid.
    assert_eq!(code(&govledger(&["verify", p, "--log-key", log])), 1);
    // Requiring a witness that is not given fails.
    assert_eq!(
        code(&govledger(&[
            "verify",
            p,
            "--log-key",
            log,
            "--leaf-hash",
            leaf,
            "--witnesses-required",
            "1"
        ])),
        1
    );
}

fn receipt_fixture() -> (SignerKey, Receipt) {
    let key = SignerKey::from_seed("localhost/govledger", [3; 32]).unwrap();
    let mut tree = MemoryTree::new();
    let mut leaves = Vec::new();
    for i in 0..5u64 {
        let leaf = Leaf {
            kind: EntryKind::Audit,
            logged_at_ms: 1_700_000_000_000 + i,
            submitter: "risk-agent".into(),
            entry_id: format!("e-{i}"),
            body: format!(r#"{{"event_type":"RISK_DECISION","n":{i}}}"#).into_bytes(),
        }
        .encode()
        .unwrap();
        tree.push(leaf_hash(&leaf));
        leaves.push(leaf);
    }
    let cp = Checkpoint {
        origin: "localhost/govledger".into(),
        size: tree.size(),
        root: tree.root(),
        extensions: vec![],
    };
    let note = Note::sign(&cp.to_text(), &[&key]).unwrap();
    let proof = prove_inclusion(LeafIndex(3), tree.size(), &tree).unwrap();
    let receipt = Receipt {
        index: 3,
        leaf_hash: leaf_hash(&leaves[3]).to_hex(),
        leaf: STANDARD.encode(&leaves[3]),
        tree_size: 5,
        root: tree.root().to_base64(),
        proof: proof.path.iter().map(|h| h.to_base64()).collect(),
        checkpoint: note.to_text(),
    };
    (key, receipt)
}

#[test]
fn verify_govledger_receipts_json_and_tlog_proof() {
    let (key, receipt) = receipt_fixture();
    let vkey = key.verifier().to_string();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    std::fs::write(&json, serde_json::to_string(&receipt).unwrap()).unwrap();
    let o = govledger(&["verify", json.to_str().unwrap(), "--log-key", &vkey]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("index: 3"), "{out}");
    assert!(
        out.contains("audit by risk-agent") && out.contains("entry_id=e-3"),
        "{out}"
    );
    assert!(out.contains("tree_size: 5"), "{out}");

    let text = dir.path().join("r.tlog-proof");
    std::fs::write(&text, receipt.to_tlog_proof().unwrap().to_text()).unwrap();
    assert_eq!(
        code(&govledger(&[
            "verify",
            text.to_str().unwrap(),
            "--log-key",
            &vkey
        ])),
        0
    );

    // Tampering anywhere is invalid (1): the leaf, the claimed size, the checkpoint signer.
    let mut bad = receipt.clone();
    let mut leaf = STANDARD.decode(&bad.leaf).unwrap();
    *leaf.last_mut().unwrap() ^= 1;
    bad.leaf = STANDARD.encode(leaf);
    std::fs::write(&json, serde_json::to_string(&bad).unwrap()).unwrap();
    assert_eq!(
        code(&govledger(&[
            "verify",
            json.to_str().unwrap(),
            "--log-key",
            &vkey
        ])),
        1
    );
    let mut bad = receipt.clone();
    bad.tree_size = 6;
    std::fs::write(&json, serde_json::to_string(&bad).unwrap()).unwrap();
    assert_eq!(
        code(&govledger(&[
            "verify",
            json.to_str().unwrap(),
            "--log-key",
            &vkey
        ])),
        1
    );
    let other = SignerKey::from_seed("localhost/govledger", [4; 32])
        .unwrap()
        .verifier()
        .to_string();
    std::fs::write(&json, serde_json::to_string(&receipt).unwrap()).unwrap();
    assert_eq!(
        code(&govledger(&[
            "verify",
            json.to_str().unwrap(),
            "--log-key",
            &other
        ])),
        1
    );
    std::fs::write(&json, "{not json").unwrap();
    assert_eq!(
        code(&govledger(&[
            "verify",
            json.to_str().unwrap(),
            "--log-key",
            &vkey
        ])),
        1
    );
}

#[test]
fn hash_dataset_matches_sha256sum_and_sort() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    std::fs::create_dir_all(root.join("b/deep")).unwrap();
    std::fs::write(root.join("a.csv"), "x,y\n1,2\n").unwrap();
    std::fs::write(root.join("B.csv"), "upper first in byte order").unwrap();
    std::fs::write(root.join("b/deep/z.bin"), vec![7u8; 100_000]).unwrap();
    std::fs::write(root.join("b/with space.txt"), "").unwrap();
    std::fs::write(root.join("é.txt"), "unicode").unwrap();
    // The reference: sha256sum, stat and byte-order sort, in the shell.
    let script = r#"cd "$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | while IFS= read -r f; do
        printf '%s  %s  %s\n' "$(sha256sum "$f" | cut -d' ' -f1)" "$(stat -c %s "$f")" "$f"; done | sha256sum | cut -d' ' -f1"#;
    let want = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&root)
        .output()
        .unwrap();
    let want = String::from_utf8(want.stdout).unwrap().trim().to_owned();
    let o = govledger(&["hash-dataset", root.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.starts_with(&format!("sha256:{want}  ")),
        "{out} vs {want}"
    );
    // A file is the SHA-256 of its bytes.
    let f = root.join("a.csv");
    let want = Command::new("sha256sum").arg(&f).output().unwrap();
    let want = String::from_utf8(want.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let o = govledger(&["hash-dataset", f.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["sha256"], format!("sha256:{want}"));
    assert_eq!(v[0]["method"], "file");
    // Symbolic links are refused.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(root.join("a.csv"), root.join("link.csv")).unwrap();
        assert_eq!(
            code(&govledger(&["hash-dataset", root.to_str().unwrap()])),
            2
        );
    }
}

/// Writes a policy and a bundle built offline (a log of lineage, request and two approvals,
/// signed by a log key) into `dir`; returns (policy, bundle, request hash, artifact file).
fn offline_release(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    String,
    std::path::PathBuf,
) {
    use ledger_format::approval::{Bundle, BundleEntry, BUNDLE_FORMAT};
    let log = SignerKey::from_seed("example.com/log", [9; 32]).unwrap();
    let people = [
        ("alice", 1u8, "quant"),
        ("bob", 2, "risk"),
        ("carol", 3, "risk"),
    ];
    let keys: Vec<SignerKey> = people
        .iter()
        .map(|(n, s, _)| SignerKey::from_seed(n, [*s; 32]).unwrap())
        .collect();
    let mut policy = format!(
        "[log]\nkey = \"{}\"\n[lineage]\nmin_datasets = 1\n",
        log.verifier()
    );
    for ((n, _, role), k) in people.iter().zip(&keys) {
        policy.push_str(&format!(
            "[[people]]\nname = \"{n}\"\nroles = [\"{role}\"]\nkey = \"{}\"\n",
            k.verifier()
        ));
    }
    let artifact = dir.join("policy.pt");
    std::fs::write(&artifact, b"weights").unwrap();
    let art = format!(
        "sha256:{}",
        hex::encode(ledger_format::hash::sha256(b"weights"))
    );
    let ds = format!("sha256:{}", "11".repeat(32));
    let sign = |k: &SignerKey, st: Value| {
        let c = ledger_format::jcs::canonicalize(&st).unwrap();
        serde_json::json!({"statement": st, "signature": STANDARD.encode(k.sign_raw(c.as_bytes()))})
    };
    // Statements dated when the log recorded them (the evaluator refuses a skew).
    let now = govledger_client::time::now_ms();
    let stamp = govledger_client::time::rfc3339_ms(now);
    let leaf = |kind, body: Value| {
        Leaf {
            kind,
            logged_at_ms: now,
            submitter: "anonymous".into(),
            entry_id: String::new(),
            body: body.to_string().into_bytes(),
        }
        .encode()
        .unwrap()
    };
    let lineage = leaf(
        EntryKind::Lineage,
        serde_json::json!({"model_id": "m", "model_version": "1", "created_by": "t",
            "datasets": [{"name": "d", "type": "training", "sha256": ds, "size_bytes": 1}],
            "artifact": {"path": "policy.pt", "sha256": art, "size_bytes": 7}}),
    );
    let request = leaf(
        EntryKind::ApprovalRequest,
        sign(
            &keys[0],
            serde_json::json!({"model_id": "m", "artifact_sha256": art, "dataset_sha256": [ds],
            "lineage": leaf_hash(&lineage).to_hex(), "requested_by": "alice", "environment": "production",
            "policy": "p", "signed_at": stamp}),
        ),
    );
    let req = leaf_hash(&request).to_hex();
    let approve = |k: &SignerKey| {
        leaf(
            EntryKind::Approval,
            sign(
                k,
                serde_json::json!({"request": req, "artifact_sha256": art, "decision": "approve",
                "approver": k.name(), "role": "risk", "signed_at": stamp}),
            ),
        )
    };
    let leaves = [lineage, request, approve(&keys[1]), approve(&keys[2])];
    let mut tree = MemoryTree::new();
    for l in &leaves {
        tree.push(leaf_hash(l));
    }
    let entry = |i: usize| BundleEntry {
        index: i as u64,
        leaf_hash: leaf_hash(&leaves[i]).to_hex(),
        leaf: STANDARD.encode(&leaves[i]),
        proof: prove_inclusion(LeafIndex(i as u64), tree.size(), &tree)
            .unwrap()
            .path
            .iter()
            .map(|h| h.to_base64())
            .collect(),
    };
    let cp = Checkpoint {
        origin: "example.com/log".into(),
        size: tree.size(),
        root: tree.root(),
        extensions: vec![],
    };
    let bundle = Bundle {
        format: BUNDLE_FORMAT.into(),
        checkpoint: Note::sign(&cp.to_text(), &[&log]).unwrap().to_text(),
        tree_size: 4,
        root: tree.root().to_base64(),
        request: entry(1),
        lineage: Some(entry(0)),
        related: vec![],
        approvals: vec![entry(2), entry(3)],
        deployments: vec![],
    };
    let (p, b) = (dir.join("policy.toml"), dir.join("bundle.json"));
    std::fs::write(&p, policy).unwrap();
    std::fs::write(&b, serde_json::to_vec(&bundle).unwrap()).unwrap();
    (p, b, req, artifact)
}

#[test]
fn gate_exit_codes_and_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, bundle, req, artifact) = offline_release(dir.path());
    let (p, b, a) = (
        policy.to_str().unwrap(),
        bundle.to_str().unwrap(),
        artifact.to_str().unwrap(),
    );
    let o = govledger(&[
        "gate",
        "--policy",
        p,
        "--bundle",
        b,
        "--request",
        &req,
        "--artifact",
        a,
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("gate: PASS"));

    // Refused: exit 1, every failed rule listed, and --json for machines.
    std::fs::write(&artifact, b"tampered").unwrap();
    let o = govledger(&[
        "gate",
        "--policy",
        p,
        "--bundle",
        b,
        "--request",
        &req,
        "--artifact",
        a,
        "--json",
    ]);
    assert_eq!(code(&o), 1);
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["failed"], serde_json::json!(["artifact"]));
    assert_eq!(report["checkpoint"]["size"], 4);
    assert!(report["rules"].as_array().unwrap().len() > 10);
    assert_eq!(report["approvers"], serde_json::json!(["bob", "carol"]));

    // Garbage evidence is a refusal (1); usage and I/O problems are 2.
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"format\": 1}").unwrap();
    let g = garbage.to_str().unwrap();
    assert_eq!(
        code(&govledger(&[
            "gate",
            "--policy",
            p,
            "--bundle",
            g,
            "--request",
            &req
        ])),
        1
    );
    assert_eq!(
        code(&govledger(&["gate", "--policy", p, "--request", &req])),
        2
    );
    assert_eq!(
        code(&govledger(&[
            "gate",
            "--policy",
            p,
            "--bundle",
            "/nonexistent",
            "--request",
            &req
        ])),
        2
    );
    assert_eq!(
        code(&govledger(&[
            "gate",
            "--policy",
            p,
            "--bundle",
            b,
            "--request",
            "xyz"
        ])),
        2
    );
    let nokey = dir.path().join("nokey.toml");
    std::fs::write(&nokey, "[approvals]\nmin_approvers = 2\n").unwrap();
    let o = govledger(&[
        "gate",
        "--policy",
        nokey.to_str().unwrap(),
        "--bundle",
        b,
        "--request",
        &req,
    ]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no [log] key"));
}

#[test]
fn gate_github_app_flags_go_together() {
    let o = govledger(&[
        "gate",
        "--policy",
        "p.toml",
        "--request",
        "00",
        "--github-app-id",
        "31337",
    ]);
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--github-app-key"), "{err}");
}

/// With `--leaf-hash H`, only leaf bytes that hash to H are shown.
#[test]
fn verify_with_leaf_hash_never_shows_unverified_leaf_bytes() {
    let (key, receipt) = receipt_fixture();
    let vkey = key.verifier().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("swapped.tlog-proof");
    let mut proof = receipt.to_tlog_proof().unwrap();
    let genuine = receipt.leaf_hash.clone();
    let forged = Leaf {
        kind: EntryKind::Audit,
        logged_at_ms: 1_700_000_000_000,
        submitter: "mallory".into(),
        entry_id: "forged".into(),
        body: br#"{"event_type":"FORGED"}"#.to_vec(),
    }
    .encode()
    .unwrap();
    proof.extra = Some(forged);
    std::fs::write(&path, proof.to_text()).unwrap();
    let p = path.to_str().unwrap();
    let o = govledger(&["verify", p, "--log-key", &vkey, "--leaf-hash", &genuine]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(!out.contains("mallory") && !out.contains("forged"), "{out}");
    assert!(out.contains(&format!("leaf_hash: {genuine}")), "{out}");
    assert!(out.contains("not shown"), "{out}");
    // Without --leaf-hash the forged bytes are what the proof must verify: invalid.
    assert_eq!(code(&govledger(&["verify", p, "--log-key", &vkey])), 1);
}
