//! The WORM tile mirror and `govledgerd restore`, against the real SeaweedFS that
//! `scripts/services.sh` starts (S3 with Object Lock, conditional writes, versions).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use govledger::anchor::s3::sdk;
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::tile::{new_objects, TilePath};
use ledger_format::TreeSize;
use serde_json::{json, Value};

use crate::harness::{audit, signal, start_in, start_with, TestServer, SERVICES};

const ORIGIN: &str = "localhost/govledger";

fn mirror_config(bucket: &str) -> govledger::config::S3Config {
    govledger::config::S3Config {
        tiles: true,
        ..crate::s3::config(bucket)
    }
}

/// A fresh bucket with Object Lock and a server mirroring to it every 100 ms.
async fn mirrored_log() -> (String, sdk::Client, TestServer) {
    let (bucket, c) = crate::s3::bucket(true).await;
    let cfg = mirror_config(&bucket);
    let s = start_with(move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.s3 = Some(cfg);
    })
    .await;
    (bucket, c, s)
}

fn log_prefix() -> String {
    ledger_format::anchor::s3_log_prefix("anchors", ORIGIN)
}

/// Appends `n` entries in batches of `batch`, each with an entry_id; returns the receipts.
async fn fill(s: &TestServer, from: u64, n: u64, batch: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut i = from;
    while i < from + n {
        let k = batch.min(from + n - i);
        let entries: Vec<_> = (i..i + k)
            .map(|j| json!({"kind": "audit", "entry_id": format!("e{j}"), "body": audit(j)}))
            .collect();
        let (st, v) = s.post(&json!({"entries": entries}).to_string()).await;
        assert_eq!(st, 200, "{v}");
        out.extend(v["receipts"].as_array().unwrap().iter().cloned());
        i += k;
    }
    out
}

/// Waits until `/v1/anchors` says the mirror holds the whole published tree; returns its size.
async fn mirrored(s: &TestServer) -> u64 {
    let mut last = Value::Null;
    for _ in 0..400 {
        let (_, a) = s.get_json("/v1/anchors").await;
        if a["mirrored_size"].as_u64() == a["tree_size"].as_u64() {
            return a["tree_size"].as_u64().unwrap();
        }
        last = a;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the mirror did not catch up: {last}");
}

/// Every version of `key`, newest first: (version id, bytes).
async fn versions(c: &sdk::Client, bucket: &str, key: &str) -> Vec<(String, Vec<u8>)> {
    let r = c
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for v in r.versions().iter().filter(|v| v.key() == Some(key)) {
        let id = v.version_id().unwrap().to_owned();
        let o = c
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(&id)
            .send()
            .await
            .unwrap();
        out.push((id, o.body.collect().await.unwrap().into_bytes().to_vec()));
    }
    out
}

/// Downloads the oldest version of every object under the log prefix into `dir`.
async fn download(c: &sdk::Client, bucket: &str, dir: &Path) -> usize {
    let prefix = log_prefix();
    let mut token = None;
    let mut n = 0;
    loop {
        let r = c
            .list_objects_v2()
            .bucket(bucket)
            .prefix(&prefix)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        for o in r.contents() {
            let key = o.key().unwrap();
            let vs = versions(c, bucket, key).await;
            // Tiles and bundles: the oldest version; the checkpoint: the newest (latest mirrored).
            let bytes = if key.ends_with("/checkpoint") {
                &vs[0].1
            } else {
                &vs.last().unwrap().1
            };
            let path = dir.join(&key[prefix.len()..]);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
            n += 1;
        }
        token = r.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return n;
        }
    }
}

/// Reads tiles from a downloaded directory for the independent implementation (azul's
/// `tlog_tiles`; its paths carry the height, which C2SP fixes at 8).
struct DirTiles(std::path::PathBuf);

impl tlog_tiles::TileReader for DirTiles {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        Ok(tiles
            .iter()
            .map(|t| {
                let path = t.path().replacen("tile/8/", "tile/", 1);
                std::fs::read(self.0.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"))
            })
            .collect())
    }
    fn save_tiles(&self, _: &[tlog_tiles::Tile], _: &[Vec<u8>]) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_holds_the_log_byte_for_byte_and_locked() {
    let _services = SERVICES.read().await;
    let (bucket, c, s) = mirrored_log().await;
    // Several rounds at different sizes: partial tiles and bundles of many widths, past one
    // full level-0 tile.
    fill(&s, 0, 3, 1).await;
    mirrored(&s).await;
    fill(&s, 3, 300, 100).await;
    mirrored(&s).await;
    fill(&s, 303, 10, 3).await;
    let size = mirrored(&s).await;
    assert_eq!(size, 313);

    // Every object of the tree at every mirrored size is in the bucket, byte for byte what the
    // server serves at that path, with COMPLIANCE retention; none has a second version.
    let prefix = log_prefix();
    for o in new_objects(TreeSize(0), TreeSize(size)) {
        let path = o.path();
        let served = s.get(&format!("/{path}")).await.bytes().await.unwrap();
        let vs = versions(&c, &bucket, &format!("{prefix}{path}")).await;
        assert_eq!(vs.len(), 1, "{path}");
        assert_eq!(vs[0].1, served.to_vec(), "{path}");
        if matches!(o, TilePath::Entries(_)) && path.ends_with("000") {
            let r = c
                .get_object_retention()
                .bucket(&bucket)
                .key(format!("{prefix}{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.retention().unwrap().mode(),
                Some(&sdk::types::ObjectLockRetentionMode::Compliance)
            );
        }
    }
    // The checkpoint object is the served checkpoint; its versions are the mirrored history,
    // oldest size first, each signed by the log.
    let served = s.get("/checkpoint").await.text().await.unwrap();
    let history = versions(&c, &bucket, &format!("{prefix}checkpoint")).await;
    assert_eq!(history[0].1, served.as_bytes());
    let sizes: Vec<u64> = history
        .iter()
        .rev()
        .map(|(_, b)| {
            SignedCheckpoint::open(b, &s.vkey, &[])
                .unwrap()
                .0
                .checkpoint
                .size
                .0
        })
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
    assert_eq!(*sizes.last().unwrap(), 313);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("govledger_mirror_lag_entries 0"),
        "{metrics}"
    );

    // The bucket alone, downloaded: an independent tiles reader rebuilds the signed root.
    let dir = tempfile::tempdir().unwrap();
    download(&c, &bucket, dir.path()).await;
    let note = std::fs::read(dir.path().join("checkpoint")).unwrap();
    let cp = SignedCheckpoint::open(&note, &s.vkey, &[])
        .unwrap()
        .0
        .checkpoint;
    let root = tlog_tiles::Hash(cp.root.0);
    let tiles = DirTiles(dir.path().to_path_buf());
    let reader = tlog_tiles::TileHashReader::new(cp.size.0, root, &tiles);
    assert_eq!(tlog_tiles::tree_hash(cp.size.0, &reader).unwrap(), root);
    // And the bundles hash to the tiles' leaves.
    let mut leaves = Vec::new();
    for n in 0..2u64 {
        let b = ledger_format::tile::BundleId::for_size(n, cp.size).unwrap();
        let bytes = std::fs::read(dir.path().join(b.path())).unwrap();
        for leaf in ledger_format::tile::decode_bundle(&bytes).unwrap() {
            leaves.push(ledger_format::leaf_hash(leaf));
        }
    }
    assert_eq!(ledger_format::tree::root_of(&leaves), cp.root);

    // Retention: a mirrored bundle's version cannot be deleted; writing over it adds a version
    // and leaves the mirrored one intact.
    let key = format!("{prefix}tile/entries/000");
    let (id, original) = versions(&c, &bucket, &key).await.remove(0);
    let del = c
        .delete_object()
        .bucket(&bucket)
        .key(&key)
        .version_id(&id)
        .send()
        .await;
    let e = format!(
        "{:?}",
        del.expect_err("deleting a mirrored bundle must fail")
    );
    assert!(e.contains("AccessDenied") || e.contains("403"), "{e}");
    c.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(sdk::primitives::ByteStream::from_static(b"forged"))
        .send()
        .await
        .unwrap();
    let vs = versions(&c, &bucket, &key).await;
    assert_eq!(vs.len(), 2);
    assert_eq!(vs.last().unwrap().1, original);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_object_stops_the_mirror_with_an_alert() {
    let _services = SERVICES.read().await;
    let (bucket, c) = crate::s3::bucket(true).await;
    // Another writer put other bytes where this log's first bundle goes.
    c.put_object()
        .bucket(&bucket)
        .key(format!("{}tile/entries/000.p/3", log_prefix()))
        .body(sdk::primitives::ByteStream::from_static(
            b"\x00\x01x\x00\x01y\x00\x01z",
        ))
        .send()
        .await
        .unwrap();
    let cfg = mirror_config(&bucket);
    let s = start_with(move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.s3 = Some(cfg);
    })
    .await;
    fill(&s, 0, 3, 3).await;
    let mut mirror = Value::Null;
    for _ in 0..200 {
        let (_, a) = s.get_json("/v1/anchors").await;
        mirror = a["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == "mirror")
            .unwrap()
            .clone();
        if mirror["stopped"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let why = mirror["stopped"]
        .as_str()
        .unwrap_or_else(|| panic!("{mirror}"));
    assert!(
        why.contains("another log") && why.contains("000.p/3"),
        "{why}"
    );
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("govledger_anchor_stopped{backend=\"mirror\"} 1"),
        "{metrics}"
    );
    let health = s.get("/healthz").await.text().await.unwrap();
    assert!(
        health.contains("degraded") && health.contains("mirror"),
        "{health}"
    );
    // Nothing was mirrored past the conflict: no checkpoint names a tree the bucket lacks.
    assert!(
        versions(&c, &bucket, &format!("{}checkpoint", log_prefix()))
            .await
            .is_empty()
    );
    // The log itself goes on; the S3 anchor too.
    fill(&s, 3, 2, 1).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_lost_its_cursor_uploads_again_idempotently() {
    let _services = SERVICES.read().await;
    let (bucket, c) = crate::s3::bucket(true).await;
    let cfg = mirror_config(&bucket);
    let edit = {
        let cfg = cfg.clone();
        move |c: &mut govledger::config::Config| {
            c.anchors.interval_ms = 100;
            c.anchors.s3 = Some(cfg);
        }
    };
    let s = start_with(edit.clone()).await;
    fill(&s, 0, 300, 100).await;
    mirrored(&s).await;
    let dir = s.stop().await;
    // A crash after S3 confirmed every object and the checkpoint but before the cursor was
    // written: the cursor is gone.
    {
        let store = govledger::store::SledStore::open(&dir.path().join("db"), 8).unwrap();
        use govledger::store::AnchorStore;
        store
            .anchor_write(&[(govledger::anchor::mirror::CURSOR.to_vec(), None)])
            .unwrap();
    }
    let s = start_in(dir, edit).await;
    fill(&s, 300, 5, 5).await;
    let size = mirrored(&s).await;
    assert_eq!(size, 305);
    let (_, a) = s.get_json("/v1/anchors").await;
    assert!(a["backends"].to_string().find("stopped").is_none(), "{a}");
    // One version per mirrored checkpoint: the re-upload wrote nothing twice.
    let history = versions(&c, &bucket, &format!("{}checkpoint", log_prefix())).await;
    let sizes: Vec<u64> = history
        .iter()
        .map(|(_, b)| SignedCheckpoint::parse(b).unwrap().checkpoint.size.0)
        .collect();
    let mut unique = sizes.clone();
    unique.dedup();
    assert_eq!(unique, sizes);
    assert_eq!(sizes[0], 305);
    assert_eq!(
        versions(&c, &bucket, &format!("{}tile/entries/000", log_prefix()))
            .await
            .len(),
        1
    );
    s.stop().await;
}

/// Writes a config for `govledgerd restore` reading `bucket`, with the data dir and key file.
fn restore_config(dir: &Path, bucket: &str, data: &Path, key: &Path) -> std::path::PathBuf {
    let path = dir.join("govledger.toml");
    std::fs::write(
        &path,
        format!(
            "data_dir = {data:?}\nkey_file = {key:?}\n[anchors.s3]\nbucket = {bucket:?}\nprefix = \"anchors\"\nendpoint = {:?}\npath_style = true\nretention_days = 1\ntiles = true\n",
            crate::s3::endpoint()
        ),
    )
    .unwrap();
    path
}

fn restore(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["restore", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_rebuilds_a_lost_data_dir_from_the_bucket() {
    let _services = SERVICES.read().await;
    let (bucket, c, s) = mirrored_log().await;
    let mut receipts = fill(&s, 0, 600, 256).await;
    receipts.extend(fill(&s, 600, 7, 1).await);
    let vkey = s.vkey.clone();
    let served: Vec<String> = vec![s.get("/checkpoint").await.text().await.unwrap()];
    let data = s.stop().await;
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("log.key");
    std::fs::copy(data.path().join("log.key"), &key).unwrap();
    // Someone wrote over a mirrored bundle: restore reads the mirrored (oldest) version.
    c.put_object()
        .bucket(&bucket)
        .key(format!("{}tile/entries/001", log_prefix()))
        .body(sdk::primitives::ByteStream::from_static(b"\x00\x01x"))
        .send()
        .await
        .unwrap();
    drop(data); // the machine is lost

    let restored = work.path().join("restored");
    let config = restore_config(work.path(), &bucket, &restored, &key);
    let o = restore(&config);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("restored 607 entries"), "{stdout}");
    assert!(
        stdout.contains("tile/entries/001 has 2 versions"),
        "{stdout}"
    );
    assert!(stdout.contains("consistent: "), "{stdout}");
    // A second restore into the now non-empty data dir is refused (usage), nothing touched.
    let o = restore(&config);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The restored log serves every acknowledged entry byte for byte and appends on.
    let dir = tempfile::TempDir::new_in(work.path()).unwrap();
    std::fs::remove_dir(dir.path()).unwrap();
    std::fs::rename(&restored, dir.path()).unwrap();
    let cfg = mirror_config(&bucket);
    let s = start_in(dir, move |c| {
        c.anchors.interval_ms = 100;
        c.anchors.s3 = Some(cfg);
        c.key_file = Some(key.clone());
    })
    .await;
    assert_eq!(s.vkey, vkey);
    for r in &receipts {
        let (st, e) = s.get_json(&format!("/v1/entries/{}", r["index"])).await;
        assert_eq!(st, 200);
        assert_eq!(e["leaf"], r["leaf"], "entry {}", r["index"]);
    }
    assert_eq!(
        fill(&s, 0, 1, 1).await[0]["index"],
        0,
        "entry_id index rebuilt"
    );
    let next = fill(&s, 1000, 3, 3).await;
    assert_eq!(next[0]["index"], 607);
    let new_size = mirrored(&s).await;
    let head = s.get("/checkpoint").await.text().await.unwrap();
    let head = SignedCheckpoint::open(head.as_bytes(), &vkey, &[])
        .unwrap()
        .0
        .checkpoint;
    assert_eq!(head.size.0, new_size);
    for old in &served {
        let cp = SignedCheckpoint::open(old.as_bytes(), &vkey, &[])
            .unwrap()
            .0
            .checkpoint;
        let (st, p) = s
            .get_json(&format!(
                "/v1/proofs/consistency?old={}&new={new_size}",
                cp.size.0
            ))
            .await;
        assert_eq!(st, 200, "{p}");
        let path: Vec<ledger_format::Hash> = p["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| ledger_format::Hash::from_base64(h.as_str().unwrap()).unwrap())
            .collect();
        ledger_format::proof::ConsistencyProof {
            old: cp.size,
            new: head.size,
            path,
        }
        .verify(&cp.root, &head.root)
        .unwrap();
    }
    // The restored mirror continued from the bucket: no object was written twice.
    assert_eq!(
        versions(&c, &bucket, &format!("{}tile/entries/000", log_prefix()))
            .await
            .len(),
        1
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_bucket_whose_checkpoints_disagree() {
    let _services = SERVICES.read().await;
    let (bucket, c, s) = mirrored_log().await;
    fill(&s, 0, 20, 10).await;
    mirrored(&s).await;
    let data = s.stop().await;
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("log.key");
    std::fs::copy(data.path().join("log.key"), &key).unwrap();
    // Whoever holds the log key signs another tree of size 20 and writes it as the newest
    // checkpoint: its root is not the root of the mirrored entries.
    let signer =
        ledger_format::note::SignerKey::parse(std::fs::read_to_string(&key).unwrap().trim())
            .unwrap();
    let forged = govledger::log::sign_checkpoint(&signer, ORIGIN, 20, ledger_format::Hash([7; 32]));
    c.put_object()
        .bucket(&bucket)
        .key(format!("{}checkpoint", log_prefix()))
        .body(sdk::primitives::ByteStream::from(forged.into_bytes()))
        .send()
        .await
        .unwrap();
    let config = restore_config(work.path(), &bucket, &work.path().join("restored"), &key);
    let o = restore(&config);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("do not verify") && stderr.contains("root"),
        "{stderr}"
    );
    assert!(
        !work.path().join("restored/db").exists(),
        "nothing half-restored is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_bucket_neither_stops_the_log_nor_loses_entries() {
    let _services = SERVICES.write().await;
    let (bucket, _c) = crate::s3::bucket(true).await;
    let mut cfg = mirror_config(&bucket);
    cfg.max_unmirrored_entries = Some(40);
    // The bucket stops answering before the server starts: it starts anyway.
    crate::harness::signal("GOVLEDGER_WEED_PID", "STOP");
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        start_with(move |c| {
            c.anchors.interval_ms = 100;
            c.anchors.backoff_max_ms = 400;
            c.anchors.s3 = Some(cfg);
        }),
    )
    .await;
    let s = match started {
        Ok(s) => s,
        Err(_) => {
            crate::harness::signal("GOVLEDGER_WEED_PID", "CONT");
            panic!("the server did not start while S3 was paused");
        }
    };
    let mut receipts = fill(&s, 0, 30, 10).await;
    let health = s.get("/healthz").await;
    assert_eq!(health.status(), 200);
    // Past the bound, submissions wait: 503 mirror_behind with Retry-After, nothing written.
    let before = s.tree_size().await;
    let mut refused = None;
    for j in 30..60 {
        let body = json!({"kind": "audit", "entry_id": format!("e{j}"), "body": audit(j)});
        let r = s
            .http
            .post(format!("{}/v1/entries", s.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            refused = Some((
                r.headers().get("retry-after").cloned(),
                r.json::<Value>().await.unwrap(),
            ));
            break;
        }
        receipts.push(r.json().await.unwrap());
    }
    let (retry, body) = refused.expect("the mirror bound was never enforced");
    assert!(retry.is_some());
    assert_eq!(body["error"], "mirror_behind", "{body}");
    let at_refusal = s.tree_size().await;
    assert!(at_refusal >= 40 && at_refusal > before);
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!("govledger_mirror_lag_entries {at_refusal}")),
        "{metrics}"
    );
    crate::harness::signal("GOVLEDGER_WEED_PID", "CONT");
    // The bucket answers again: the Object Lock check runs, the mirror catches up, and
    // submissions are taken again.
    let size = mirrored(&s).await;
    assert_eq!(size, at_refusal);
    receipts.extend(fill(&s, 100, 5, 5).await);
    mirrored(&s).await;
    let (_, a) = s.get_json("/v1/anchors").await;
    assert_eq!(a["mirrored_size"], a["tree_size"]);
    s.stop().await;
}

/// Serves the files of `dir` over HTTP on 127.0.0.1 (any static web server would do).
async fn serve_dir(dir: std::path::PathBuf) -> String {
    use axum::extract::Path as UrlPath;
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move |UrlPath(p): UrlPath<String>| {
            let dir = dir.clone();
            async move {
                if p.contains("..") {
                    return Err(axum::http::StatusCode::NOT_FOUND);
                }
                std::fs::read(dir.join(&p)).map_err(|_| axum::http::StatusCode::NOT_FOUND)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn audit_args(
    tiles: govledger_client::tiles::TileSource,
    vkey: &ledger_format::note::VerifierKey,
    out: &Path,
) -> govledger_client::audit::AuditArgs {
    govledger_client::audit::AuditArgs {
        tiles: Some(tiles),
        url: "http://127.0.0.1:9".into(), // no server: nothing may be asked of one
        log_key: vkey.clone(),
        from_ms: None,
        to_ms: None,
        policy: None,
        anchor_dir: None,
        s3: None,
        kafka: None,
        auditor_key: None,
        out: out.to_path_buf(),
        jobs: 4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_audits_and_monitors_the_bucket_alone() {
    let _services = SERVICES.read().await;
    let (bucket, c, s) = mirrored_log().await;
    fill(&s, 0, 600, 200).await;
    let size = mirrored(&s).await;
    let vkey = s.vkey.clone();
    s.stop().await; // no govledgerd from here on
    let conn = govledger_client::anchors::S3Source {
        bucket: String::new(),
        prefix: String::new(),
        endpoint: Some(crate::s3::endpoint()),
        region: "us-east-1".into(),
        path_style: true,
        retain_until: 0,
    };
    let out = tempfile::tempdir().unwrap();
    let run_audit = |args: govledger_client::audit::AuditArgs| {
        tokio::task::spawn_blocking(move || govledger_client::audit::run(&args).unwrap())
    };
    let tiles = govledger_client::tiles::TileSource::S3(
        govledger_client::tiles::S3Tiles::open(&format!("{bucket}/anchors"), ORIGIN, &conn)
            .unwrap(),
    );
    let outcome = run_audit(audit_args(tiles, &vkey, out.path()))
        .await
        .unwrap();
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert!(
        matches!(outcome, govledger_client::cli::Outcome::Valid(_)),
        "{outcome:?}: {}",
        report["anomalies"]
    );
    assert_eq!(report["tree_size"], size);
    assert_eq!(report["replay"]["entries"], size);

    // The same bucket downloaded and served by any web server: the monitor pins it.
    let dir = tempfile::tempdir().unwrap();
    download(&c, &bucket, dir.path()).await;
    let url = serve_dir(dir.path().to_path_buf()).await;
    let state = tempfile::tempdir().unwrap();
    let (murl, mkey, mstate) = (url.clone(), vkey.clone(), state.path().to_path_buf());
    let alerts = tokio::task::spawn_blocking(move || {
        // Blocking HTTP clients are made and dropped off the async runtime.
        govledger_client::monitor::Monitor::new(govledger_client::monitor::MonitorArgs {
            tiles: Some(govledger_client::tiles::TileSource::url(&murl).unwrap()),
            url: "http://127.0.0.1:9".into(),
            log_key: mkey,
            state: mstate,
            policy: None,
            witness_keys: vec![],
            max_witness_age: None,
            anchor_dir: None,
            witness_urls: vec![],
            webhook: None,
        })
        .unwrap()
        .poll()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(alerts.is_empty(), "{alerts:?}");

    // Someone writes over a mirrored bundle: the audit reads the mirrored version, still
    // verifies, and reports the overwrite.
    c.put_object()
        .bucket(&bucket)
        .key(format!("{}tile/entries/001", log_prefix()))
        .body(sdk::primitives::ByteStream::from_static(b"\x00\x01x"))
        .send()
        .await
        .unwrap();
    let tiles = govledger_client::tiles::TileSource::S3(
        govledger_client::tiles::S3Tiles::open(&format!("{bucket}/anchors"), ORIGIN, &conn)
            .unwrap(),
    );
    run_audit(audit_args(tiles, &vkey, out.path()))
        .await
        .unwrap();
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    let anomalies = report["anomalies"].to_string();
    assert!(
        anomalies.contains("overwritten_object") && anomalies.contains("tile/entries/001"),
        "{anomalies}"
    );
    assert!(!anomalies.contains("tampered_entry"), "{anomalies}");

    // A web copy with a bundle changed: the audit finds the tampered entries.
    std::fs::write(dir.path().join("tile/entries/000"), {
        let mut b = std::fs::read(dir.path().join("tile/entries/000")).unwrap();
        let n = b.len();
        b[n - 2] ^= 1;
        b
    })
    .unwrap();
    let (o, k) = (out.path().to_path_buf(), vkey.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let tiles = govledger_client::tiles::TileSource::url(&url).unwrap();
        govledger_client::audit::run(&audit_args(tiles, &k, &o)).unwrap()
    })
    .await
    .unwrap();
    assert!(
        matches!(outcome, govledger_client::cli::Outcome::Invalid(_)),
        "{outcome:?}"
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).unwrap()).unwrap();
    assert!(
        report["anomalies"].to_string().contains("tampered_entry"),
        "{}",
        report["anomalies"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_is_not_fooled_by_a_replayed_checkpoint_or_planted_anchors() {
    let _services = SERVICES.read().await;
    let (bucket, c, s) = mirrored_log().await;
    fill(&s, 0, 5, 5).await;
    mirrored(&s).await;
    let old = versions(&c, &bucket, &format!("{}checkpoint", log_prefix())).await;
    fill(&s, 5, 300, 100).await;
    mirrored(&s).await;
    let data = s.stop().await;
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("log.key");
    std::fs::copy(data.path().join("log.key"), &key).unwrap();
    // The genuine checkpoint of size 5 written again as the newest version, and junk under
    // the largest anchored name there can be.
    c.put_object()
        .bucket(&bucket)
        .key(format!("{}checkpoint", log_prefix()))
        .body(sdk::primitives::ByteStream::from(
            old.last().unwrap().1.clone(),
        ))
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket(&bucket)
        .key(format!(
            "{}{}",
            log_prefix(),
            ledger_format::anchor::file_name(u64::MAX)
        ))
        .body(sdk::primitives::ByteStream::from_static(b"junk"))
        .send()
        .await
        .unwrap();
    let config = restore_config(work.path(), &bucket, &work.path().join("restored"), &key);
    let o = restore(&config);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout.contains("restored 305 entries"), "{stdout}");
    assert!(stdout.contains("newest version is smaller"), "{stdout}");
    assert!(
        stdout.contains("does not verify with the log key"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "consistent: s3://{bucket}/{}{} (size 305)",
            log_prefix(),
            ledger_format::anchor::file_name(305)
        )),
        "the real newest anchored checkpoint was checked: {stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_of_static_tiles_refuses_hidden_or_added_entries() {
    let s = start_with(|_| {}).await;
    fill(&s, 0, 300, 100).await;
    let vkey = s.vkey.clone();
    let data = s.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_govledgerd"))
        .args(["export", "--to"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let url = serve_dir(dir.path().to_path_buf()).await;
    // The last bundle and its level-0 tile both one entry short: they agree with each other,
    // not with the checkpoint's size.
    let (b, t) = (
        dir.path().join("tile/entries/001.p/44"),
        dir.path().join("tile/0/001.p/44"),
    );
    let bundle = std::fs::read(&b).unwrap();
    let leaves = ledger_format::tile::decode_bundle(&bundle).unwrap();
    let short = ledger_format::tile::encode_bundle(leaves[..43].iter().copied()).unwrap();
    std::fs::write(&b, short).unwrap();
    let tile = std::fs::read(&t).unwrap();
    std::fs::write(&t, &tile[..43 * 32]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_path_buf();
    let err = tokio::task::spawn_blocking(move || {
        let tiles = govledger_client::tiles::TileSource::url(&url).unwrap();
        govledger_client::audit::run(&audit_args(tiles, &vkey, &o)).unwrap_err()
    })
    .await
    .unwrap();
    assert!(
        format!("{err:#}").contains("hides or adds entries"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_found_without_object_lock_after_start_gets_nothing_written() {
    let _services = SERVICES.write().await;
    let (bucket, c) = crate::s3::bucket(false).await;
    let cfg = mirror_config(&bucket);
    // Unreachable at start: the log starts anyway.
    signal("GOVLEDGER_WEED_PID", "STOP");
    let started = tokio::time::timeout(
        Duration::from_secs(30),
        start_with(move |c| {
            c.anchors.interval_ms = 100;
            c.anchors.backoff_max_ms = 400;
            c.anchors.s3 = Some(cfg);
        }),
    )
    .await;
    signal("GOVLEDGER_WEED_PID", "CONT");
    let s = started.expect("the server did not start while S3 was paused");
    fill(&s, 0, 10, 5).await;
    // When the bucket answers, the Object Lock check runs first: both S3 writers stop with
    // that error and nothing is ever written unlocked.
    let mut a = Value::Null;
    for _ in 0..200 {
        a = s.get_json("/v1/anchors").await.1;
        let errors: Vec<String> = a["backends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["name"] == "s3" || b["name"] == "mirror")
            .map(|b| b["last_error"].as_str().unwrap_or_default().to_owned())
            .collect();
        if errors.iter().all(|e| e.contains("Object Lock")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(a.to_string().contains("does not have Object Lock"), "{a}");
    let listed = c.list_objects_v2().bucket(&bucket).send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());
    let health = s.get("/healthz").await.text().await.unwrap();
    assert!(health.contains("degraded"), "{health}");
    fill(&s, 10, 2, 1).await; // the log itself goes on
    s.stop().await;
}
