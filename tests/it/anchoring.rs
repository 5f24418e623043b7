//! Anchoring and witnessing against real witnesses (`govledger witness serve`, in process on
//! port 0): the directory anchor, two witnesses cosigning, the witnessed checkpoint, forks and
//! rollbacks refused with the spec's status codes, and the gate's witness rule.

use std::path::PathBuf;
use std::time::Duration;

use govledger::config::WitnessConfig;
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::note::{Note, SignerKey, VerifierKey};

use crate::harness::{audit, start_with, TestServer};

pub struct TestWitness {
    pub url: String,
    pub key: VerifierKey,
    pub state: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestWitness {
    pub async fn start(name: &str, seed: u8, log: &VerifierKey) -> TestWitness {
        Self::start_in(
            name,
            seed,
            std::slice::from_ref(log),
            tempfile::tempdir().unwrap(),
        )
        .await
    }

    /// A witness trusting `logs` (several keys of one log, say), with its state in `state`.
    pub async fn start_in(
        name: &str,
        seed: u8,
        logs: &[VerifierKey],
        state: tempfile::TempDir,
    ) -> TestWitness {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let args = govledger_client::witness::ServeArgs {
            key: SignerKey::from_seed(name, [seed; 32]).unwrap(),
            logs: logs.to_vec(),
            state_dir: state.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
        };
        let task = tokio::spawn(govledger_client::witness::serve(
            args,
            move |addr, key| {
                let _ = tx.send((addr, key.clone()));
            },
            async {
                let _ = stop_rx.await;
            },
        ));
        let (addr, key) = rx.await.unwrap();
        TestWitness {
            url: format!("http://{addr}"),
            key,
            state,
            stop: Some(stop_tx),
            task,
        }
    }

    /// Stops the witness and returns its state directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
        self.state
    }
}

/// The log key the next test server will use (written to its key file beforehand), so that
/// witnesses can be started before the log.
pub fn log_key(dir: &std::path::Path) -> (SignerKey, PathBuf) {
    let key = SignerKey::from_seed("localhost/govledger", [42; 32]).unwrap();
    let path = dir.join("log.key");
    std::fs::write(&path, key.to_secret_string()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (key, path)
}

pub async fn wait_for(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub async fn witnessed(s: &TestServer) -> Option<String> {
    let r = s.get("/v1/checkpoints/witnessed").await;
    (r.status() == 200).then_some(r.text().await.unwrap())
}

#[tokio::test]
async fn two_witnesses_cosign_and_forks_are_refused() {
    let keydir = tempfile::tempdir().unwrap();
    let (log, key_file) = log_key(keydir.path());
    let w1 = TestWitness::start("witness-one", 11, &log.verifier()).await;
    let w2 = TestWitness::start("witness-two", 12, &log.verifier()).await;
    let witnesses = vec![
        WitnessConfig {
            url: w1.url.clone(),
            key: w1.key.to_string(),
        },
        WitnessConfig {
            url: w2.url.clone(),
            key: w2.key.to_string(),
        },
    ];
    let s = start_with(move |c| {
        c.key_file = Some(key_file);
        c.anchors.interval_ms = 100;
        c.witnesses = witnesses;
    })
    .await;
    assert_eq!(s.vkey, log.verifier());
    for i in 0..5 {
        s.submit(audit(i), None).await;
    }
    // The witnessed checkpoint reaches size 5 with both cosignatures.
    wait_for("a witnessed checkpoint at size 5", async || {
        witnessed(&s).await.is_some_and(|n| n.contains("\n5\n"))
    })
    .await;
    let note = witnessed(&s).await.unwrap();
    let (signed, verified) = SignedCheckpoint::open(
        note.as_bytes(),
        &log.verifier(),
        &[w1.key.clone(), w2.key.clone()],
    )
    .unwrap();
    assert_eq!(signed.checkpoint.size.0, 5);
    assert_eq!(verified.len(), 3, "log + two witnesses: {note}");
    // A receipt against the witnessed checkpoint carries the cosignatures and verifies.
    let (_, e) = s.get_json("/v1/entries/2").await;
    let hash = e["leaf_hash"].as_str().unwrap();
    let (st, r) = s
        .get_json(&format!("/v1/receipts/{hash}?checkpoint=witnessed"))
        .await;
    assert_eq!(st, 200, "{r}");
    let receipt: ledger_format::receipt::Receipt = serde_json::from_value(r).unwrap();
    receipt.verify(&log.verifier()).unwrap();
    assert_eq!(
        receipt.checkpoint.matches("\n— witness-").count(),
        2,
        "{}",
        receipt.checkpoint
    );
    let (st, _) = s
        .get_json(&format!("/v1/receipts/{hash}?checkpoint=oldest"))
        .await;
    assert_eq!(st, 400);
    // /checkpoint stays the log-signed one; /v1/log names the witnesses.
    let plain = s.get("/checkpoint").await.text().await.unwrap();
    assert!(!plain.contains("— witness-"), "{plain}");
    let (_, info) = s.get_json("/v1/log").await;
    assert_eq!(info["witnesses"].as_array().unwrap().len(), 2);
    // The directory anchor holds a read-only file per chosen checkpoint.
    wait_for("the dir anchor at size 5", async || {
        let (_, a) = s.get_json("/v1/anchors").await;
        a["backends"][0]["last_anchored_size"] == 5
    })
    .await;
    let file = s
        .dir
        .path()
        .join("anchors")
        .join(format!("{:020}.checkpoint", 5));
    let text = std::fs::read_to_string(&file).unwrap();
    SignedCheckpoint::open(text.as_bytes(), &log.verifier(), &[]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o444
    );
    let (_, list) = s.get_json("/v1/checkpoints").await;
    assert_eq!(
        list["checkpoints"].as_array().unwrap().last().unwrap()["size"],
        5
    );
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("govledger_anchor_lag_entries{backend=\"dir\"} 0"),
        "{metrics}"
    );

    // The witness's monitoring endpoint serves what it cosigned.
    let id = govledger_client::witness::origin_id("localhost/govledger");
    let mon = reqwest::get(format!("{}/{id}/checkpoint", w1.url))
        .await
        .unwrap();
    assert_eq!(mon.status(), 200);

    // A fork: the same size with another root, signed by the log's own key.
    let http = reqwest::Client::new();
    let fork_cp = ledger_format::checkpoint::Checkpoint {
        origin: "localhost/govledger".into(),
        size: ledger_format::TreeSize(5),
        root: ledger_format::Hash([7; 32]),
        extensions: vec![],
    };
    let fork = Note::sign(&fork_cp.to_text(), &[&log]).unwrap().to_text();
    let post = |body: String| {
        let (http, url) = (http.clone(), w1.url.clone());
        async move {
            let r = http
                .post(format!("{url}/add-checkpoint"))
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (st, _) = post(ledger_format::witness::AddCheckpoint::encode(5, &[], &fork)).await;
    assert_eq!(st, 422);
    // A rollback to size 3 (the real size-3 root): 400 with old 5, 409 "5" with old 3.
    let mut t = ledger_format::tree::MemoryTree::new();
    for i in 0..3 {
        let (_, e) = s.get_json(&format!("/v1/entries/{i}")).await;
        let leaf = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            e["leaf"].as_str().unwrap(),
        )
        .unwrap();
        t.push(ledger_format::leaf_hash(&leaf));
    }
    let old_cp = ledger_format::checkpoint::Checkpoint {
        size: ledger_format::TreeSize(3),
        root: t.root(),
        ..fork_cp.clone()
    };
    let old = Note::sign(&old_cp.to_text(), &[&log]).unwrap().to_text();
    assert_eq!(
        post(ledger_format::witness::AddCheckpoint::encode(5, &[], &old))
            .await
            .0,
        400
    );
    assert_eq!(
        post(ledger_format::witness::AddCheckpoint::encode(3, &[], &old)).await,
        (409, "5\n".to_owned())
    );
    // Another log's key: 403; an unknown origin: 404; garbage: 400.
    let imposter = SignerKey::from_seed("localhost/govledger", [1; 32]).unwrap();
    let forged = Note::sign(&fork_cp.to_text(), &[&imposter])
        .unwrap()
        .to_text();
    assert_eq!(
        post(ledger_format::witness::AddCheckpoint::encode(
            5,
            &[],
            &forged
        ))
        .await
        .0,
        403
    );
    let other = SignerKey::from_seed("example.com/other", [1; 32]).unwrap();
    let other_cp = ledger_format::checkpoint::Checkpoint {
        origin: "example.com/other".into(),
        ..fork_cp.clone()
    };
    let unknown = Note::sign(&other_cp.to_text(), &[&other])
        .unwrap()
        .to_text();
    assert_eq!(
        post(ledger_format::witness::AddCheckpoint::encode(
            0,
            &[],
            &unknown
        ))
        .await
        .0,
        404
    );
    assert_eq!(post("garbage".into()).await.0, 400);

    // The log keeps going; idle rounds still get fresh cosignatures for the same size.
    let before = witnessed(&s).await.unwrap();
    wait_for("a fresh cosignature", async || {
        witnessed(&s).await.is_some_and(|n| n != before)
    })
    .await;
    s.stop().await;
    w1.stop().await;
    w2.stop().await;
}

/// The witness state survives a restart: after it, the witness refuses what it refused before.
#[tokio::test]
async fn witness_state_is_persisted() {
    let keydir = tempfile::tempdir().unwrap();
    let (log, _) = log_key(keydir.path());
    let w = TestWitness::start("witness-one", 11, &log.verifier()).await;
    let mut t = ledger_format::tree::MemoryTree::new();
    for i in 0..4u8 {
        t.push(ledger_format::leaf_hash(&[i]));
    }
    let cp = ledger_format::checkpoint::Checkpoint {
        origin: "localhost/govledger".into(),
        size: ledger_format::TreeSize(4),
        root: t.root(),
        extensions: vec![],
    };
    let note = Note::sign(&cp.to_text(), &[&log]).unwrap().to_text();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/add-checkpoint", w.url))
        .body(ledger_format::witness::AddCheckpoint::encode(0, &[], &note))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let line = r.text().await.unwrap();
    assert!(line.starts_with("— witness-one "));
    let key_seed_name = "witness-one";
    let state_dir = w.stop().await;
    let state = state_dir.path().to_path_buf();
    // Restart on the same state directory.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(govledger_client::witness::serve(
        govledger_client::witness::ServeArgs {
            key: SignerKey::from_seed(key_seed_name, [11; 32]).unwrap(),
            logs: vec![log.verifier()],
            state_dir: state,
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        move |addr, _| {
            let _ = tx.send(addr);
        },
        async { tokio::time::sleep(Duration::from_secs(5)).await },
    ));
    let addr = rx.await.unwrap();
    let r = http
        .post(format!("http://{addr}/add-checkpoint"))
        .body(ledger_format::witness::AddCheckpoint::encode(0, &[], &note))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.headers()["content-type"], "text/x.tlog.size");
    assert_eq!(r.text().await.unwrap(), "4\n");
    task.abort();
}

fn sign(k: &SignerKey, statement: &serde_json::Value) -> String {
    let c = ledger_format::jcs::canonicalize(statement).unwrap();
    base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        k.sign_raw(c.as_bytes()),
    )
}

/// With witnesses required, the gate passes only on a bundle proven against a checkpoint the
/// witnesses cosigned, i.e. after the next anchoring round.
#[tokio::test]
async fn the_gate_requires_witness_cosignatures() {
    use serde_json::json;
    let keydir = tempfile::tempdir().unwrap();
    let (log, key_file) = log_key(keydir.path());
    let w1 = TestWitness::start("witness-one", 11, &log.verifier()).await;
    let w2 = TestWitness::start("witness-two", 12, &log.verifier()).await;
    let (alice, bob, carol) = (
        SignerKey::from_seed("alice", [1; 32]).unwrap(),
        SignerKey::from_seed("bob", [2; 32]).unwrap(),
        SignerKey::from_seed("carol", [3; 32]).unwrap(),
    );
    let mut people = String::new();
    for (k, role) in [(&alice, "quant"), (&bob, "risk"), (&carol, "risk")] {
        people.push_str(&format!(
            "[[people]]\nname = \"{}\"\nroles = [\"{role}\"]\nkey = \"{}\"\n",
            k.name(),
            k.verifier()
        ));
    }
    let policy_path = keydir.path().join("policy.toml");
    let (k1, k2) = (w1.key.clone(), w2.key.clone());
    let write_policy = |required: usize| {
        std::fs::write(
            &policy_path,
            format!(
                "[log]\nkey = \"{}\"\n[witnesses]\nrequired = {required}\nkeys = [\"{}\", \"{}\"]\n{people}",
                log.verifier(),
                k1,
                k2
            ),
        )
        .unwrap();
    };
    write_policy(2);
    let (p2, witnesses) = (
        policy_path.clone(),
        vec![
            WitnessConfig {
                url: w1.url.clone(),
                key: w1.key.to_string(),
            },
            WitnessConfig {
                url: w2.url.clone(),
                key: w2.key.to_string(),
            },
        ],
    );
    let s = start_with(move |c| {
        c.key_file = Some(key_file);
        c.anchors.interval_ms = 150;
        c.witnesses = witnesses;
        c.policy = Some(p2);
    })
    .await;
    let art = format!("sha256:{}", "ab".repeat(32));
    let ds = format!("sha256:{}", "cd".repeat(32));
    let (code, lineage) = s
        .post(
            &json!({"kind": "lineage", "body": {"model_id": "m", "model_version": "1", "created_by": "t",
                   "datasets": [{"name": "d", "type": "training", "sha256": ds, "size_bytes": 1}],
                   "artifact": {"path": "p.pt", "sha256": art, "size_bytes": 1}}})
            .to_string(),
        )
        .await;
    assert_eq!(code, 200, "{lineage}");
    let st = json!({"model_id": "m", "artifact_sha256": art, "dataset_sha256": [ds], "lineage": lineage["leaf_hash"],
                    "requested_by": "alice", "environment": "production", "policy": "p", "signed_at": crate::harness::signed_now()});
    let (code, r) = s
        .post(&json!({"kind": "approval_request", "body": {"statement": st, "signature": sign(&alice, &st)}}).to_string())
        .await;
    assert_eq!(code, 200, "{r}");
    let request = r["leaf_hash"].as_str().unwrap().to_owned();
    for k in [&bob, &carol] {
        let st = json!({"request": request, "artifact_sha256": art, "decision": "approve", "approver": k.name(),
                        "role": "risk", "signed_at": crate::harness::signed_now()});
        let (code, v) = s
            .post(
                &json!({"kind": "approval", "body": {"statement": st, "signature": sign(k, &st)}})
                    .to_string(),
            )
            .await;
        assert_eq!(code, 200, "{v}");
    }
    let size = s.tree_size().await;
    let gate = |bundle: Option<PathBuf>| {
        let (policy, url, request) = (policy_path.clone(), s.url.clone(), request.clone());
        tokio::task::spawn_blocking(move || {
            let args = govledger_client::gate::GateArgs {
                policy: &policy,
                bundle: bundle
                    .as_deref()
                    .map(govledger_client::gate::BundleInput::File),
                url: Some(&url),
                request: &request,
                artifact: None,
                now_ms: govledger_client::time::now_ms(),
                recheck: false,
                sources: Default::default(),
                github_status: false,
            };
            crate::gate::gate_corpus::record(&args);
            govledger_client::gate::run(&args).unwrap()
        })
    };
    // A bundle against the latest checkpoint carries no cosignatures: refused.
    let latest = s
        .get(&format!("/v1/approvals/{request}/bundle"))
        .await
        .text()
        .await
        .unwrap();
    let latest_path = keydir.path().join("latest.json");
    std::fs::write(&latest_path, latest).unwrap();
    let r = gate(Some(latest_path)).await.unwrap();
    assert!(
        r.failed.contains(&"witness_cosignatures".to_owned()),
        "{}",
        r.to_text()
    );
    // After the next round the witnessed bundle passes.
    wait_for(
        "the witnessed checkpoint to cover the approvals",
        async || {
            witnessed(&s)
                .await
                .is_some_and(|n| n.contains(&format!("\n{size}\n")))
        },
    )
    .await;
    let r = gate(None).await.unwrap();
    assert!(r.ok, "{}", r.to_text());
    // One witness down: its cosignature stops arriving on new checkpoints.
    w2.stop().await;
    s.submit(crate::harness::audit(1), None).await;
    let size = s.tree_size().await;
    wait_for("a checkpoint witnessed by one", async || {
        witnessed(&s)
            .await
            .is_some_and(|n| n.contains(&format!("\n{size}\n")))
    })
    .await;
    let r = gate(None).await.unwrap();
    assert_eq!(r.failed, ["witness_cosignatures"], "{}", r.to_text());
    write_policy(1);
    assert!(gate(None).await.unwrap().ok);
    s.stop().await;
    w1.stop().await;
}

/// The final checkpoint is chosen and anchored at shutdown, and the anchoring state survives a
/// restart.
#[tokio::test]
async fn shutdown_anchors_the_final_checkpoint_and_state_persists() {
    let s = start_with(|c| c.anchors.interval_ms = 3_600_000).await;
    for i in 0..3 {
        s.submit(audit(i), None).await;
    }
    let dir = s.stop().await;
    let file = dir
        .path()
        .join("anchors")
        .join(ledger_format::anchor::file_name(3));
    assert!(
        file.exists(),
        "the final checkpoint is anchored at shutdown"
    );
    let s = crate::harness::start_in(dir, |c| c.anchors.interval_ms = 3_600_000).await;
    let (_, a) = s.get_json("/v1/anchors").await;
    assert_eq!(a["backends"][0]["last_anchored_size"], 3, "{a}");
    assert_eq!(a["backends"][0]["pending"], 0, "{a}");
    let (_, list) = s.get_json("/v1/checkpoints?from=3").await;
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 1);
    assert_eq!(list["checkpoints"][0]["size"], 3);
    s.stop().await;
}
