//! Disk full, for real: the data dir lives on a small tmpfs mounted by the test (the test
//! suite runs as root, as `.ci/run` does on this machine); writers keep appending while a
//! filler file takes every free byte. Two ways in: the reserve (`min_free_mb`) refuses groups
//! before the store sees the shortage, and with the reserve off the store's write itself fails
//! (ENOSPC), which stops the sequencer and restarts the storage in place once space is back.
//! Either way: 503 `disk_full`, no new checkpoint while full, every acknowledged entry intact,
//! appends resume after the filler is deleted.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger_format::receipt::Receipt;
use serde_json::{json, Value};

use crate::harness::{self, audit, TestServer};

/// A tmpfs of `mb` MiB, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(mb: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "the disk-full test mounts a tmpfs and needs root (as CI runs): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to `path` until only `leave` bytes are free (0: until the file system refuses);
/// returns the bytes written.
fn fill(path: &Path, leave: u64) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        if leave > 0 && fs2::available_space(path).unwrap() < leave + chunk.len() as u64 {
            break;
        }
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(_) => break,
        }
    }
    let _ = f.sync_all();
    n
}

#[derive(Default)]
struct Tally {
    acked: Mutex<BTreeMap<u64, Receipt>>,
    disk_full: AtomicU64,
    other: Mutex<Vec<String>>,
}

/// Appends continuously from `writers` tasks until `stop`, tallying the answers.
fn writers(
    s: &TestServer,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4u64)
        .map(|w| {
            let (http, url, tally, stop) =
                (s.http.clone(), s.url.clone(), tally.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = json!({"kind": "audit", "entry_id": format!("w{w}-{n}"),
                        "body": audit(w * 1_000_000 + n)});
                    let r = http
                        .post(format!("{url}/v1/entries"))
                        .body(body.to_string())
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let receipt: Receipt = r.json().await.unwrap();
                            tally.acked.lock().unwrap().insert(receipt.index, receipt);
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let v: Value = r.json().await.unwrap_or(Value::Null);
                            if status == 503 && v["error"] == "disk_full" {
                                tally.disk_full.fetch_add(1, Ordering::Relaxed);
                            } else {
                                tally.other.lock().unwrap().push(format!("{status} {v}"));
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        // The storage restart closes connections; the client retries.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect()
}

async fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn checkpoint(s: &TestServer) -> Option<String> {
    let r = s
        .http
        .get(format!("{}/checkpoint", s.url))
        .send()
        .await
        .ok()?;
    (r.status() == 200).then_some(())?;
    r.text().await.ok()
}

async fn disk_full_story(min_free_mb: u64) {
    let fs = Tmpfs::mount(48);
    let data: PathBuf = fs.path().join("data");
    let d = data.clone();
    let s = harness::start_with(|c| {
        c.data_dir = d;
        c.min_free_mb = min_free_mb;
        c.cache_mb = 8;
    })
    .await;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = writers(&s, tally.clone(), stop.clone());
    wait_until(
        "100 entries are acknowledged",
        Duration::from_secs(30),
        || tally.acked.lock().unwrap().len() >= 100,
    )
    .await;

    // Take every free byte.
    let filler = fs.path().join("filler");
    // With a reserve, the filler leaves a little room (below the reserve) so that the group in
    // flight when it lands still fits: the reserve, not ENOSPC, must stop the writers. Without
    // one it takes every byte.
    let leave = if min_free_mb > 0 {
        (min_free_mb << 20) / 3
    } else {
        0
    };
    let filled = tokio::task::spawn_blocking({
        let f = filler.clone();
        move || fill(&f, leave)
    })
    .await
    .unwrap();
    assert!(filled > 0);
    wait_until(
        "writers are refused with disk_full",
        Duration::from_secs(30),
        || tally.disk_full.load(Ordering::Relaxed) >= 20,
    )
    .await;
    // While full: nothing new is acknowledged or signed.
    let acked_full = tally.acked.lock().unwrap().len();
    let cp_full = checkpoint(&s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        tally.acked.lock().unwrap().len(),
        acked_full,
        "entries were acknowledged on a full disk"
    );
    if let (Some(a), Some(b)) = (&cp_full, checkpoint(&s).await) {
        assert_eq!(a, &b, "a new checkpoint was signed on a full disk");
    }
    let health = s.get("/healthz").await;
    assert_eq!(health.status(), 503);
    let health = health.text().await.unwrap();
    if min_free_mb > 0 {
        // The reserve held: the store never failed, reads go on.
        assert!(health.contains("disk full"), "{health}");
        assert_eq!(s.get("/v1/log").await.status(), 200);
    } else {
        // The store's write failed: the log is closed until the store writes again.
        assert!(health.contains("disk_full"), "{health}");
        assert!(health.contains("No space left"), "{health}");
    }

    // Space is back: appends resume by themselves.
    std::fs::remove_file(&filler).unwrap();
    wait_until("appends resume", Duration::from_secs(60), || {
        tally.acked.lock().unwrap().len() >= acked_full + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        tally.other.lock().unwrap().is_empty(),
        "unexpected answers: {:?}",
        &tally.other.lock().unwrap()[..]
    );

    // Every acknowledged entry is in the log, unchanged, and verifies against the new head;
    // the store checks out offline.
    let acked = std::mem::take(&mut *tally.acked.lock().unwrap());
    let size = s.tree_size().await;
    for (index, r) in &acked {
        let (_, v) = s.get_json(&format!("/v1/entries/{index}")).await;
        let got: Receipt = serde_json::from_value(v).unwrap();
        assert_eq!(&got.leaf, &r.leaf, "entry {index} changed");
        assert_eq!(got.tree_size, size);
        got.verify(&s.vkey).unwrap();
    }
    let _ = s.stop().await;
    let cfg = govledger::config::Config {
        data_dir: data.clone(),
        ..Default::default()
    };
    let checked = govledger::server::check(&cfg).unwrap();
    assert_eq!(checked, size);
    drop(fs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_refuses_appends_at_the_reserve_and_resumes() {
    disk_full_story(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_failing_for_space_restarts_the_storage_once_space_is_back() {
    disk_full_story(0).await;
}

/// The store reports a full file system by its kind (`StorageFull`), whatever the message says:
/// the sequencer and the server choose `disk_full` from [`StoreError::is_out_of_space`].
#[test]
fn the_store_reports_a_full_file_system_by_kind() {
    use govledger::store::{Group, LogWrites, SledStore};
    let fs = Tmpfs::mount(16);
    let store = SledStore::open(&fs.path().join("db"), 8).unwrap();
    fill(&fs.path().join("filler"), 0);
    let leaf = vec![7u8; 60_000];
    let mut error = None;
    for i in 0..4096u64 {
        let group = Group {
            leaves: (0..16).map(|k| (i * 16 + k, leaf.clone())).collect(),
            size: i * 16 + 16,
            last_ms: 1,
            ..Group::empty(0)
        };
        if let Err(e) = store.append(&group) {
            error = Some(e);
            break;
        }
    }
    let e = error.expect("appends to a full tmpfs must fail");
    assert!(e.is_out_of_space(), "not reported as out of space: {e:?}");
    let other = govledger::store::StoreError::io("No space left on device (a message only)");
    assert!(
        !other.is_out_of_space(),
        "a message alone must not read as a kind"
    );
    drop(store);
    drop(fs);
}
