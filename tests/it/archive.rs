//! export writes static C2SP tiles any client can read; import rebuilds a data dir from them,
//! verifying every hash, and refuses tampered archives.

use std::path::Path;
use std::process::Command;

use crate::harness::{audit, start, start_in};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::leaf_hash;
use serde_json::json;

fn govledgerd(args: &[&str], dir: &Path, extra: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(args)
        .arg(extra)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[tokio::test]
async fn export_then_import_round_trips_and_tampering_is_refused() {
    let s = start().await;
    let vkey = s.vkey.clone();
    for chunk in 0..3u64 {
        let entries: Vec<_> = (0..250).map(|i| json!({"kind": "audit", "entry_id": format!("a{chunk}-{i}"), "body": audit(chunk * 1000 + i)})).collect();
        assert_eq!(
            s.post(&json!({"entries": entries}).to_string()).await.0,
            200
        );
    }
    let first = s.submit(audit(9999), Some("last")).await;
    let data = s.stop().await;
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("archive");

    let o = govledgerd(&["export", "--to"], data.path(), &export);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // An independent reader: checkpoint + bundles give the signed root.
    let note = std::fs::read_to_string(export.join("checkpoint")).unwrap();
    let (cp, _) = SignedCheckpoint::open(note.as_bytes(), &vkey, &[]).unwrap();
    assert_eq!(cp.checkpoint.size.0, 751);
    let mut leaves = Vec::new();
    for p in ["000", "001", "002.p/239"] {
        let bytes = std::fs::read(export.join("tile/entries").join(p)).unwrap();
        leaves.extend(
            ledger_format::tile::decode_bundle(&bytes)
                .unwrap()
                .into_iter()
                .map(leaf_hash),
        );
    }
    assert_eq!(ledger_format::tree::root_of(&leaves), cp.checkpoint.root);
    assert!(export.join("tile/0/002.p/239").exists() && export.join("tile/1/000.p/2").exists());

    // Import into a fresh data dir holding the log key.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(data.path().join("log.key"), restored.path().join("log.key")).unwrap();
    let o = govledgerd(&["import", "--from"], restored.path(), &export);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["check", "--data-dir"])
        .arg(restored.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = start_in(restored, |_| {}).await;
    assert_eq!(s.vkey, vkey);
    assert_eq!(s.tree_size().await, 751);
    let (st, _) = s
        .get_json(&format!("/v1/receipts/{}", first.leaf_hash))
        .await;
    assert_eq!(st, 200, "the leaf-hash index was rebuilt");
    assert_eq!(
        s.submit(audit(9999), Some("last")).await.index,
        first.index,
        "entry_id index rebuilt"
    );
    assert_eq!(s.submit(audit(10_000), None).await.index, 751);
    s.stop().await;

    // One flipped byte in an entry bundle: refused, and nothing is left behind.
    let bundle = export.join("tile/entries/001");
    let mut bytes = std::fs::read(&bundle).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&bundle, bytes).unwrap();
    let bad = tempfile::tempdir().unwrap();
    std::fs::copy(data.path().join("log.key"), bad.path().join("log.key")).unwrap();
    let o = govledgerd(&["import", "--from"], bad.path(), &export);
    assert!(!o.status.success());
    assert!(!bad.path().join("db").exists());
    // Another key than the log's: refused.
    let other = tempfile::tempdir().unwrap();
    let o = govledgerd(&["import", "--from"], other.path(), &export);
    assert!(!o.status.success(), "no key");
}

/// Leaves the store in `dir` as a crash before the next fsync would: every entry, and `older`
/// as the last stored checkpoint.
async fn lose_checkpoint(dir: &Path, older: &str) {
    {
        let cfg = govledger::config::Config {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        let store = govledger::server::open_store(&cfg).unwrap();
        store.put_checkpoint(older).unwrap();
    }
    crate::harness::wait_unlocked(&dir.join("db")).await;
}

/// A crash can lose the last checkpoint (fsynced with the next group) while its entries are
/// durable and acknowledged: export signs that head again, so the archive holds them all.
#[tokio::test]
async fn export_after_a_lost_checkpoint_holds_every_acknowledged_entry() {
    let s = start().await;
    s.submit(audit(1), None).await;
    let first = s.get("/checkpoint").await.text().await.unwrap();
    s.submit(audit(2), None).await;
    let last = s.submit(audit(3), None).await;
    let data = s.stop().await;
    lose_checkpoint(data.path(), &first).await;
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("archive");
    let o = govledgerd(&["export", "--to"], data.path(), &export);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let note = std::fs::read_to_string(export.join("checkpoint")).unwrap();
    assert_eq!(
        note, last.checkpoint,
        "the acknowledged checkpoint, signed again"
    );
    // Without the key, export says what it leaves out.
    let export2 = out.path().join("archive2");
    let _ = std::fs::remove_file(data.path().join("log.key"));
    lose_checkpoint(data.path(), &first).await;
    let o = govledgerd(&["export", "--to"], data.path(), &export2);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the last 2 entries come after the last stored checkpoint"),
        "{err}"
    );
}
