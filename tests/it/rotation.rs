//! Key rotation: `govledgerd rotate-key` on a stopped server, then the CLI verifier, holding
//! only the old key, follows the hand-over from the log; checkpoints the log did not hand over
//! (the new key before the event, the retired key after it) are refused.

use std::path::Path;
use std::process::{Command, Output};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::checkpoint::Checkpoint;
use ledger_format::note::{Note, SignerKey};
use ledger_format::receipt::Receipt;
use ledger_format::{Hash, TreeSize};

use crate::harness::{audit, start, start_in};
use crate::tls::govledger_cli;

fn govledger(args: &[&str]) -> Output {
    Command::new(govledger_cli()).args(args).output().unwrap()
}

fn rotate(dir: &Path) -> Output {
    rotate_with(dir, &[])
}

/// Rotates keeping the retired private key, for tests that play its holder.
fn rotate_keeping(dir: &Path) -> Output {
    rotate_with(dir, &["--keep-retired-key"])
}

fn rotate_with(dir: &Path, flags: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["rotate-key", "--reason", "test rotation"])
        .args(flags)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn write_receipt(dir: &Path, name: &str, r: &Receipt) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(r).unwrap()).unwrap();
    p.to_str().unwrap().to_owned()
}

/// `r` re-signed: the same tree head claims, a checkpoint note signed by `key` alone.
fn resigned(r: &Receipt, key: &SignerKey) -> Receipt {
    let cp = Checkpoint {
        origin: key.name().to_owned(),
        size: TreeSize(r.tree_size),
        root: Hash::from_base64(&r.root).unwrap(),
        extensions: vec![],
    };
    Receipt {
        checkpoint: Note::sign(&cp.to_text(), &[key]).unwrap().to_text(),
        ..r.clone()
    }
}

fn key_file(dir: &Path, name: &str) -> SignerKey {
    SignerKey::parse(std::fs::read_to_string(dir.join(name)).unwrap().trim()).unwrap()
}

// Multi-threaded: the CLI runs as a blocking subprocess asking this process's server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_is_recorded_in_the_log_and_followed_by_the_cli_verifier() {
    let s = start().await;
    let old_vkey = s.vkey.to_string();
    let mut before = Vec::new();
    for i in 0..5 {
        before.push(s.submit(audit(i), None).await);
    }
    let monitor_state = tempfile::tempdir().unwrap();
    let poll = |url: String, key: ledger_format::note::VerifierKey, state: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || {
            govledger_client::monitor::Monitor::new(govledger_client::monitor::MonitorArgs {
                tiles: None,
                url,
                log_key: key,
                state,
                policy: None,
                witness_keys: Vec::new(),
                max_witness_age: None,
                anchor_dir: None,
                witness_urls: Vec::new(),
                webhook: None,
            })
            .unwrap()
            .poll()
            .unwrap()
        })
    };
    let trusted = s.vkey.clone();
    let alerts = poll(s.url.clone(), trusted.clone(), monitor_state.path().into())
        .await
        .unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");
    // The store is locked while the server runs: refused at once (not after sled's lock wait,
    // which is only for a store this process itself just closed).
    let t = std::time::Instant::now();
    let o = rotate(s.dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stop it first"));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    let dir = s.stop().await;

    let o = rotate_keeping(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(stdout.contains(&format!("old key: {old_vkey}")), "{stdout}");
    assert!(stdout.contains("key_event at index 5"), "{stdout}");
    let retired_name = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("log.key.retired-") && !n.ends_with(".pub"))
        .expect("the old key is kept");
    let old_key = key_file(dir.path(), &retired_name);
    let new_key = key_file(dir.path(), "log.key");
    assert_eq!(old_key.verifier().to_string(), old_vkey);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("log.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The server starts with the new key and appends after the event.
    let s = start_in(dir, |_| {}).await;
    assert_eq!(s.vkey, new_key.verifier());
    let (_, event) = s.get_json("/v1/entries?kind=key_event").await;
    let event = &event["entries"][0];
    assert_eq!(event["index"], 5);
    let leaf = STANDARD.decode(event["leaf"].as_str().unwrap()).unwrap();
    let leaf = ledger_format::leaf::Leaf::parse(&leaf).unwrap();
    let parsed = ledger_format::key_event::KeyEvent::parse(&leaf.body).unwrap();
    assert_eq!(parsed.old_key, old_key.verifier());
    assert_eq!(parsed.after_size, 5);
    assert_eq!(parsed.reason, "test rotation");
    let after = s.submit(audit(100), None).await;
    assert_eq!(after.index, 6);
    // The monitor, configured with the old key, reports the rotation once and goes on.
    let alerts = poll(s.url.clone(), trusted.clone(), monitor_state.path().into())
        .await
        .unwrap();
    let kinds: Vec<_> = alerts.iter().map(|a| (a.alert, a.severity)).collect();
    assert_eq!(kinds, [("key_rotation", "info")], "{alerts:?}");
    s.submit(audit(101), None).await;
    let alerts = poll(s.url.clone(), trusted.clone(), monitor_state.path().into())
        .await
        .unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");
    // The auditor, holding the old key, replays the whole log across the rotation: every stored
    // and anchored checkpoint verifies with the key in force at its size.
    let report_dir = tempfile::tempdir().unwrap();
    let args = govledger_client::audit::AuditArgs {
        tiles: None,
        url: s.url.clone(),
        log_key: trusted.clone(),
        from_ms: None,
        to_ms: None,
        policy: None,
        anchor_dir: Some(s.dir.path().join("anchors")),
        s3: None,
        kafka: None,
        auditor_key: None,
        out: report_dir.path().to_path_buf(),
        jobs: 2,
    };
    tokio::task::spawn_blocking(move || govledger_client::audit::run(&args).unwrap())
        .await
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report_dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["anomalies"], serde_json::json!([]), "{report}");
    assert_eq!(report["key_rotations"][0]["index"], 5);
    assert!(
        report["anchors"]["verified_by_backend"]["dir"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let refreshed: Receipt = serde_json::from_value(s.get_json("/v1/entries/0").await.1).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let old_receipt = write_receipt(t, "old.json", &before[0]);
    let new_receipt = write_receipt(t, "new.json", &after);
    let refreshed = write_receipt(t, "refreshed.json", &refreshed);
    // Without following, the old key does not verify the new checkpoints.
    let o = govledger(&["verify", &new_receipt, "--log-key", &old_vkey]);
    assert_eq!(o.status.code(), Some(1));
    // Following the log, it does; receipts from before the rotation still verify.
    for (file, followed) in [(&new_receipt, 1), (&refreshed, 1), (&old_receipt, 0)] {
        let o = govledger(&["verify", file, "--log-key", &old_vkey, "--url", &s.url]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{file}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            out.contains(&format!("key rotations followed: {followed}")),
            "{out}"
        );
    }
    // The new key signing a head before the hand-over, or the retired key signing one after it:
    // neither is what the log handed over.
    let early = write_receipt(t, "early.json", &resigned(&before[4], &new_key));
    let stolen = write_receipt(t, "stolen.json", &resigned(&after, &old_key));
    for file in [&early, &stolen] {
        let o = govledger(&["verify", file, "--log-key", &old_vkey, "--url", &s.url]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{file}: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // The monitor's check (and the split-view check of witnessed checkpoints) opens a
    // checkpoint only with the key that signs trees of its size: the retired key beyond the
    // hand-over and the new key before it are refused (the hand-over head's two keys: KeyChain's unit test).
    let mut chain = ledger_format::key_event::KeyChain::new(old_key.verifier());
    chain.push(5, new_key.verifier());
    let open = |r: &Receipt| govledger_client::keys::open_in_chain(&r.checkpoint, &chain, &[]);
    assert!(open(&after).is_ok());
    assert!(open(&before[4]).is_ok());
    for forged in [resigned(&after, &old_key), resigned(&before[4], &new_key)] {
        let e = open(&forged).unwrap_err();
        assert!(e.contains("does not sign trees of that size"), "{e}");
    }
    // key_event entries cannot be submitted.
    let (status, v) = s
        .post(&serde_json::json!({"kind": "key_event", "body": {}}).to_string())
        .await;
    assert_eq!((status, v["field"].as_str()), (400, Some("kind")));
    let dir = s.stop().await;
    let cfg = govledger::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    assert_eq!(govledger::server::check(&cfg).unwrap(), 8);
}

/// An interrupted rotation that left its new key beside the old one (`log.key.next`) is finished
/// with that key, not a third one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_rotation_is_finished_with_its_new_key() {
    let s = start().await;
    s.submit(audit(1), None).await;
    let dir = s.stop().await;
    let next = SignerKey::from_seed("localhost/govledger", [42; 32]).unwrap();
    govledger_connectors::keyfile::write_private(
        &dir.path().join("log.key.next"),
        &next.to_secret_string(),
    )
    .unwrap();
    let old = key_file(dir.path(), "log.key");
    let o = rotate(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("log.key.next").exists());
    // By default the retired private key is destroyed: only its verifier key stays.
    let retired: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("log.key.retired-"))
        .collect();
    let public = format!("log.key.retired-{:08x}.pub", old.verifier().key_id());
    assert_eq!(retired, std::slice::from_ref(&public));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(&public)).unwrap(),
        format!("{}\n", old.verifier())
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("destroyed"), "{stderr}");
    let s = start_in(dir, |_| {}).await;
    assert_eq!(s.vkey, next.verifier());
    assert_eq!(s.submit(audit(2), None).await.index, 2);
    s.stop().await;
}

/// A rotation interrupted after its key_event entry was appended and covered by a checkpoint
/// of the old key, before the hand-over checkpoint and the key files: running it again
/// appends nothing, signs the hand-over with both keys and installs the same new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_interrupted_after_its_entry_finishes_without_a_second_entry() {
    let s = start().await;
    s.submit(audit(1), None).await;
    let dir = s.stop().await;
    let o = rotate_keeping(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let old = {
        let retired: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("log.key.retired-") && !n.ends_with(".pub")
            })
            .collect();
        assert_eq!(retired.len(), 1);
        let name = retired[0].file_name().to_string_lossy().into_owned();
        key_file(dir.path(), &name)
    };
    let new = key_file(dir.path(), "log.key");
    // Put the disk back as it was between steps 2 and 3: the old key in place, the new one
    // beside it, the last checkpoint (over the key_event) signed by the old key alone.
    let cfg = govledger::config::Config {
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let (size, entries_before) = {
        let store = govledger::server::open_store(&cfg).unwrap();
        let head = store.head().unwrap().unwrap();
        let note = Note::parse(head.checkpoint.as_deref().unwrap().as_bytes()).unwrap();
        let cp = Checkpoint::parse(&note.text).unwrap();
        assert_eq!(
            note.signatures.len(),
            2,
            "the hand-over is signed by both keys"
        );
        store
            .put_checkpoint(&Note::sign(&note.text, &[&old]).unwrap().to_text())
            .unwrap();
        (cp.size.0, head.size)
    };
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("log.key.retired-") && !n.ends_with(".pub") {
            std::fs::rename(dir.path().join("log.key"), dir.path().join("log.key.next")).unwrap();
            std::fs::rename(e.path(), dir.path().join("log.key")).unwrap();
        }
    }
    crate::harness::wait_unlocked(&dir.path().join("db")).await;
    let o = rotate(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join("log.key.next").exists());
    assert_eq!(key_file(dir.path(), "log.key").verifier(), new.verifier());
    let s = start_in(dir, |_| {}).await;
    assert_eq!(s.vkey, new.verifier());
    assert_eq!(s.tree_size().await, size, "no second key_event");
    assert_eq!(size, entries_before);
    let cp = s.get("/checkpoint").await.text().await.unwrap();
    let note = Note::parse(cp.as_bytes()).unwrap();
    assert_eq!(
        note.signatures.len(),
        2,
        "the hand-over is signed by both keys again"
    );
    s.stop().await;
}

/// A witness given the log's old and new key cosigns across the rotation, and still after a
/// restart with the state the old key signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_trusting_both_keys_cosigns_across_the_rotation() {
    use crate::anchoring::{log_key, wait_for, witnessed, TestWitness};
    let dir = tempfile::tempdir().unwrap();
    let (old, _) = log_key(dir.path());
    let new = SignerKey::from_seed("localhost/govledger", [43; 32]).unwrap();
    govledger_connectors::keyfile::write_private(
        &dir.path().join("log.key.next"),
        &new.to_secret_string(),
    )
    .unwrap();
    let both = [old.verifier(), new.verifier()];
    let w = TestWitness::start_in("witness-r", 21, &both, tempfile::tempdir().unwrap()).await;
    let witness = govledger::config::WitnessConfig {
        url: w.url.clone(),
        key: w.key.to_string(),
    };
    let config = move |c: &mut govledger::config::Config| {
        c.anchors.interval_ms = 100;
        c.witnesses = vec![witness];
    };
    let s = start_in(dir, config).await;
    for i in 0..3 {
        s.submit(audit(i), None).await;
    }
    wait_for("a witnessed checkpoint at size 3", async || {
        witnessed(&s).await.is_some_and(|n| n.contains("\n3\n"))
    })
    .await;
    let dir = s.stop().await;
    let o = rotate(dir.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The witness restarts on its state (signed by the old key), trusting both keys.
    let state = w.stop().await;
    let w = TestWitness::start_in("witness-r", 21, &both, state).await;
    let witness = govledger::config::WitnessConfig {
        url: w.url.clone(),
        key: w.key.to_string(),
    };
    let s = start_in(dir, move |c| {
        c.anchors.interval_ms = 100;
        c.witnesses = vec![witness];
    })
    .await;
    assert_eq!(s.vkey, new.verifier());
    s.submit(audit(9), None).await;
    // 3 entries, the key_event, and one more.
    wait_for("a witnessed checkpoint at size 5", async || {
        witnessed(&s).await.is_some_and(|n| n.contains("\n5\n"))
    })
    .await;
    let note = witnessed(&s).await.unwrap();
    let (_, verified) = ledger_format::checkpoint::SignedCheckpoint::open(
        note.as_bytes(),
        &new.verifier(),
        std::slice::from_ref(&w.key),
    )
    .unwrap();
    assert_eq!(verified.len(), 2, "the new key and the witness: {note}");
    s.stop().await;
    // The witness keeps the signature lines of the key that verified.
    let state = w.stop().await;
    let origin = new.verifier().name().to_owned();
    let stored = std::fs::read_to_string(
        state
            .path()
            .join(govledger_client::witness::origin_id(&origin)),
    )
    .unwrap();
    assert!(stored.contains("\n5\n"), "{stored}");
    ledger_format::checkpoint::SignedCheckpoint::open(stored.as_bytes(), &new.verifier(), &[])
        .expect("the stored state carries the new key's signature");
    let w = TestWitness::start_in("witness-r", 21, &both, state).await;
    let latest = reqwest::get(format!(
        "{}/{}/checkpoint",
        w.url,
        govledger_client::witness::origin_id(&origin)
    ))
    .await
    .unwrap();
    assert_eq!(latest.status(), 200, "the witness restarted on that state");
    assert_eq!(latest.text().await.unwrap(), stored);
    w.stop().await;
}
