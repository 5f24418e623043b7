//! kill -9 under concurrent load: every acknowledged entry survives, the root matches the last
//! signed checkpoint, and every checkpoint ever handed out is consistent with the current tree.
//! Cycles: GOVLEDGER_CRASH_CYCLES (default 20; scripts/crash-loop.sh runs 200).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ledger_format::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_format::note::VerifierKey;
use ledger_format::proof::ConsistencyProof;
use ledger_format::receipt::Receipt;
use ledger_format::Hash;
use rand::Rng;
use serde_json::{json, Value};

fn spawn(dir: &std::path::Path) -> (Child, String, VerifierKey) {
    spawn_serve(&["--data-dir".as_ref(), dir.as_os_str()])
}

/// Starts `govledgerd serve` on a free port with `args`; returns it, its URL and its key.
pub fn spawn_serve(args: &[&std::ffi::OsStr]) -> (Child, String, VerifierKey) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = lines.next().unwrap().unwrap();
    let vkey = lines.next().unwrap().unwrap();
    let addr = addr
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    let vkey = VerifierKey::parse(vkey.strip_prefix("verifier key: ").unwrap()).unwrap();
    (child, format!("http://{addr}"), vkey)
}

/// Asserts that the log at `url` proves `old` consistent with `new` (a consistency proof from
/// the server, verified here); `what` names the check in the panic.
pub async fn assert_consistent(
    http: &reqwest::Client,
    url: &str,
    old: &Checkpoint,
    new: &Checkpoint,
    what: &str,
) {
    let v: Value = http
        .get(format!(
            "{url}/v1/proofs/consistency?old={}&new={}",
            old.size, new.size
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let path = v["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap()).unwrap())
        .collect();
    ConsistencyProof {
        old: old.size,
        new: new.size,
        path,
    }
    .verify(&old.root, &new.root)
    .unwrap_or_else(|e| panic!("{what}: checkpoint {} inconsistent: {e}", old.size));
}

async fn check_entry(
    http: &reqwest::Client,
    url: &str,
    vkey: &VerifierKey,
    r: &Receipt,
    cycle: usize,
) {
    let got: Receipt = http
        .get(format!("{url}/v1/entries/{}", r.index))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or_else(|e| panic!("cycle {cycle}: entry {} unreadable: {e}", r.index));
    assert_eq!(
        (got.index, &got.leaf),
        (r.index, &r.leaf),
        "cycle {cycle}: entry {} changed",
        r.index
    );
    got.verify(vkey).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_nothing() {
    let cycles: usize = std::env::var("GOVLEDGER_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut acked: Vec<Receipt> = Vec::new();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    // Every checkpoint text handed out, by size: the log answers before a checkpoint is
    // fsynced, so after a crash it must sign the same bytes again.
    let mut handed: std::collections::HashMap<u64, String> = Default::default();
    let mut key: Option<VerifierKey> = None;
    let mut seq = 0u64;
    let (mut recent_from, mut recent_cp_from) = (0usize, 0usize);
    for cycle in 0..cycles {
        let (mut child, url, vkey) = spawn(dir.path());
        if let Some(k) = &key {
            assert_eq!(*k, vkey);
        }
        key = Some(vkey.clone());
        // After each restart: everything acknowledged is there, unchanged.
        let size = http
            .get(format!("{url}/v1/log"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["tree_size"]
            .as_u64()
            .unwrap();
        let cp_text = http
            .get(format!("{url}/checkpoint"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let (cp, _) = SignedCheckpoint::open(cp_text.as_bytes(), &vkey, &[]).unwrap();
        assert_eq!(cp.checkpoint.size.0, size);
        if let Some(text) = handed.get(&size) {
            assert_eq!(
                &cp_text, text,
                "cycle {cycle}: the checkpoint at size {size} differs from the one handed out"
            );
        }
        // The entries acknowledged just before the kill, and a sample of older ones (all of
        // them are checked after the last cycle).
        let mut rng = rand::thread_rng();
        let mut sample: Vec<&Receipt> = acked[recent_from..].iter().collect();
        if !acked.is_empty() {
            sample.extend((0..100).map(|_| &acked[rng.gen_range(0..acked.len())]));
        }
        for r in sample {
            check_entry(&http, &url, &vkey, r, cycle).await;
        }
        // Every checkpoint handed out in the last cycle, and a sample of older ones.
        let mut to_check: Vec<Checkpoint> = checkpoints[recent_cp_from..].to_vec();
        if !checkpoints.is_empty() {
            to_check
                .extend((0..20).map(|_| checkpoints[rng.gen_range(0..checkpoints.len())].clone()));
        }
        for old in &to_check {
            if old.size.0 == 0 {
                continue;
            }
            assert_consistent(&http, &url, old, &cp.checkpoint, &format!("cycle {cycle}")).await;
        }
        checkpoints.push(cp.checkpoint);
        recent_from = acked.len();
        recent_cp_from = checkpoints.len();
        // Load from 8 concurrent clients, then SIGKILL at a random moment.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Receipt>();
        let mut tasks = Vec::new();
        for c in 0..8 {
            let http = http.clone();
            let url = url.clone();
            let tx = tx.clone();
            let base = seq + c * 1_000_000;
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let body = json!({"kind": "audit", "entry_id": format!("c{base}-{i}"), "body": {
                        "event_type": "T", "component": "crash", "action": "a", "details": {"i": i}, "compliance_tags": []}});
                    let Ok(r) = http.post(format!("{url}/v1/entries")).body(body.to_string()).send().await else { break };
                    if r.status() == 200 {
                        if let Ok(rec) = r.json::<Receipt>().await {
                            let _ = tx.send(rec);
                        }
                    }
                }
            }));
        }
        drop(tx);
        let wait = rand::thread_rng().gen_range(50..400);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for t in tasks {
            let _ = t.await;
        }
        while let Some(r) = rx.recv().await {
            r.verify(&vkey).unwrap();
            let (s, _) = SignedCheckpoint::open(r.checkpoint.as_bytes(), &vkey, &[]).unwrap();
            if checkpoints.last().map(|c| c.size) != Some(s.checkpoint.size) {
                checkpoints.push(s.checkpoint);
            }
            handed.insert(r.tree_size, r.checkpoint.clone());
            acked.push(r);
        }
        seq += 100_000_000;
    }
    assert!(
        acked.len() > cycles,
        "the load generated too few entries: {}",
        acked.len()
    );
    // Final restart, then the offline full check.
    let (mut child, _, _) = spawn(dir.path());
    child.kill().unwrap();
    child.wait().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_commits_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, vkey) = spawn(dir.path());
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..10_000 {
                let body = json!({"kind": "audit", "entry_id": format!("t{c}-{i}"), "body": {
                    "event_type": "T", "component": "term", "action": "a", "details": {}, "compliance_tags": []}});
                match http.post(format!("{url}/v1/entries")).body(body.to_string()).send().await {
                    Ok(r) if r.status() == 200 => acked.push(r.json::<Receipt>().await.unwrap()),
                    Ok(r) => assert_eq!(r.status(), 503, "only 503 while stopping"),
                    Err(_) => break, // the listener closed
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "govledgerd exited with {status}");
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(!acked.is_empty());
    let (mut child, url, _) = spawn(dir.path());
    for r in &acked {
        check_entry(&http, &url, &vkey, r, 0).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
