//! The side-by-side benchmark: the same stream of audit entries, in one run, at the same batch
//! sizes and client concurrency, into
//! (a) govledgerd (release build, durable receipts: each answer after the fsync of its entries
//!     and a checkpoint signed over them), driven by the load generator, every receipt verified;
//! (b) PostgreSQL (Debian's, started by `benches/sidebyside.sh`): an append-only table whose
//!     rows carry a SHA-256 hash chain computed by the client, `synchronous_commit = on`, one
//!     transaction per batch, twice: one chain for the table (the head locked per transaction)
//!     and a chain per client connection (see `Chain`);
//! (c) raw sled in this process: the same leaves, the same batches, one flush per batch.
//! Reported: entries/s, p50/p99 latency per request (batch), bytes on disk per entry, ratios.
//!
//! Run it with `benches/sidebyside.sh` (env GOVLEDGER_BENCH_SECONDS per cell, default 10;
//! GOVLEDGER_SIDE_BATCHES, default "1,16,256"; GOVLEDGER_SIDE_CONCURRENCY, default 8).
//! GOVLEDGER_BENCH_BASELINE_BIN names another govledgerd binary (an earlier build) to run as
//! an extra row in the same run: an A/B comparison of a change.

mod common;

use std::time::{Duration, Instant};

use common::{env_u64, spawn_bin, stop};

struct Cell {
    eps: f64,
    p50: f64,
    p99: f64,
    bytes_per_entry: f64,
}

fn body(worker: usize, seq: u64) -> String {
    serde_json::json!({
        "event_type": "LOADGEN", "component": "loadgen", "action": "append",
        "details": {"worker": worker, "seq": seq, "pad": "x".repeat(64), "run": 1u64},
        "compliance_tags": ["MIFID_II"]
    })
    .to_string()
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 * q) as usize).min(ms.len() - 1)];
    (at(0.50), at(0.99))
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn govledgerd(bin: &std::path::Path, batch: usize, concurrency: usize, seconds: f64) -> Cell {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn_bin(bin, dir.path());
    let r = govledger_client::loadgen::run(govledger_client::loadgen::LoadArgs {
        url: url.clone(),
        concurrency,
        duration: Duration::from_secs_f64(seconds),
        batch,
        rate: None,
        token: None,
        log_key: None,
    })
    .await
    .unwrap();
    assert_eq!(r.receipts_invalid, 0);
    stop(child);
    let bytes = dir_bytes(&dir.path().join("db"));
    Cell {
        eps: r.entries_per_second,
        p50: r.latency_ms["p50"],
        p99: r.latency_ms["p99"],
        bytes_per_entry: bytes as f64 / r.entries.max(1) as f64,
    }
}

/// How the PostgreSQL clients chain their rows.
#[derive(Clone, Copy, PartialEq)]
enum Chain {
    /// One chain over the whole table, in `seq` order: what one verifier can walk, as the
    /// JSON-lines file this replaces was one sequence. Each transaction locks the chain head
    /// (`SELECT ... FOR UPDATE`), chains its rows onto it, inserts them, moves the head and
    /// commits; concurrent writers wait for the lock, held through the commit's fsync.
    OneForTheTable,
    /// A chain per client connection: no lock, transactions commit concurrently (PostgreSQL
    /// groups their WAL flushes), but the table is N interleaved chains with no order across
    /// writers: the most generous reading of the baseline.
    PerConnection,
}

fn postgres(conn: &str, chain: Chain, batch: usize, concurrency: usize, seconds: f64) -> Cell {
    let mut admin = postgres::Client::connect(conn, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS audit_log;
             DROP TABLE IF EXISTS chain_head;
             CREATE TABLE audit_log (seq bigserial PRIMARY KEY, writer int NOT NULL, body text NOT NULL,
                                     prev_hash bytea NOT NULL, hash bytea NOT NULL,
                                     logged_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE chain_head (id int PRIMARY KEY, hash bytea NOT NULL);
             INSERT INTO chain_head VALUES (1, '\\x0000000000000000000000000000000000000000000000000000000000000000');
             REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
             SET synchronous_commit = on;",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let handles: Vec<_> = (0..concurrency)
        .map(|w| {
            let conn = conn.to_owned();
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&conn, postgres::NoTls).unwrap();
                c.batch_execute("SET synchronous_commit = on").unwrap();
                let values: String = (0..batch)
                    .map(|i| {
                        format!(
                            "(${}, ${}, ${}, ${})",
                            4 * i + 1,
                            4 * i + 2,
                            4 * i + 3,
                            4 * i + 4
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let insert = c
                    .prepare(&format!(
                        "INSERT INTO audit_log (writer, body, prev_hash, hash) VALUES {values}"
                    ))
                    .unwrap();
                let lock = c
                    .prepare("SELECT hash FROM chain_head WHERE id = 1 FOR UPDATE")
                    .unwrap();
                let advance = c
                    .prepare("UPDATE chain_head SET hash = $1 WHERE id = 1")
                    .unwrap();
                let mut prev = [0u8; 32];
                let (mut n, mut seq, mut lat) = (0u64, 0u64, Vec::new());
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let bodies: Vec<String> = (0..batch).map(|i| body(w, seq + i as u64)).collect();
                    seq += batch as u64;
                    let mut tx = c.transaction().unwrap();
                    if chain == Chain::OneForTheTable {
                        let head: Vec<u8> = tx.query_one(&lock, &[]).unwrap().get(0);
                        prev.copy_from_slice(&head);
                    }
                    let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(batch);
                    for b in &bodies {
                        let hash = ledger_format::hash::sha256(&[&prev[..], b.as_bytes()].concat());
                        rows.push((prev.to_vec(), hash.to_vec()));
                        prev = hash;
                    }
                    let writer = w as i32;
                    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
                    for (b, (p, h)) in bodies.iter().zip(&rows) {
                        params.push(&writer);
                        params.push(b);
                        params.push(p);
                        params.push(h);
                    }
                    tx.execute(&insert, &params).unwrap();
                    if chain == Chain::OneForTheTable {
                        tx.execute(&advance, &[&prev.to_vec()]).unwrap();
                    }
                    tx.commit().unwrap();
                    n += batch as u64;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                (n, lat)
            })
        })
        .collect();
    let (mut total, mut lat) = (0u64, Vec::new());
    for h in handles {
        let (n, l) = h.join().unwrap();
        total += n;
        lat.extend(l);
    }
    let secs = start.elapsed().as_secs_f64();
    if chain == Chain::OneForTheTable {
        verify_one_chain(&mut admin, total);
    }
    let bytes: i64 = admin
        .query_one("SELECT pg_total_relation_size('audit_log')", &[])
        .unwrap()
        .get(0);
    let (p50, p99) = percentiles(lat);
    Cell {
        eps: total as f64 / secs,
        p50,
        p99,
        bytes_per_entry: bytes as f64 / total.max(1) as f64,
    }
}

/// Walks the table in `seq` order and checks that it is one unbroken chain ending at the head:
/// the baseline does what it claims.
fn verify_one_chain(admin: &mut postgres::Client, total: u64) {
    let mut prev = vec![0u8; 32];
    let mut rows = 0u64;
    for row in admin
        .query(
            "SELECT body, prev_hash, hash FROM audit_log ORDER BY seq",
            &[],
        )
        .unwrap()
    {
        let (body, p, h): (String, Vec<u8>, Vec<u8>) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(p, prev, "chain broken at row {rows}");
        let want = ledger_format::hash::sha256(&[&p[..], body.as_bytes()].concat());
        assert_eq!(h, want.to_vec(), "hash wrong at row {rows}");
        prev = h;
        rows += 1;
    }
    assert_eq!(rows, total);
    let head: Vec<u8> = admin
        .query_one("SELECT hash FROM chain_head WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(head, prev);
}

fn leaf(worker: usize, seq: u64) -> Vec<u8> {
    ledger_format::leaf::Leaf {
        kind: ledger_format::entry::EntryKind::Audit,
        logged_at_ms: 1_764_000_000_000 + seq,
        submitter: "anonymous".into(),
        entry_id: String::new(),
        body: body(worker, seq).into_bytes(),
    }
    .encode()
    .unwrap()
}

fn sled(batch: usize, concurrency: usize, seconds: f64) -> Cell {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(64 << 20)
        .open()
        .unwrap();
    let tree = db.open_tree("log").unwrap();
    let next = std::sync::atomic::AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let lat = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..concurrency {
            let (db, tree, next, lat) = (&db, &tree, &next, &lat);
            s.spawn(move || {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let first = next.fetch_add(batch as u64, std::sync::atomic::Ordering::Relaxed);
                    let mut b = sled::Batch::default();
                    for i in first..first + batch as u64 {
                        b.insert(&i.to_be_bytes(), leaf(w, i));
                    }
                    tree.apply_batch(b).unwrap();
                    db.flush().unwrap();
                    mine.push(t.elapsed().as_secs_f64() * 1e3);
                }
                lat.lock().unwrap().extend(mine);
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let total = next.load(std::sync::atomic::Ordering::Relaxed);
    drop(tree);
    drop(db);
    let (p50, p99) = percentiles(lat.into_inner().unwrap());
    Cell {
        eps: total as f64 / secs,
        p50,
        p99,
        bytes_per_entry: dir_bytes(dir.path()) as f64 / total.max(1) as f64,
    }
}

#[tokio::main]
async fn main() {
    let conn = std::env::var("GOVLEDGER_PG")
        .expect("GOVLEDGER_PG: run benches/sidebyside.sh, which starts PostgreSQL");
    let secs = env_u64("GOVLEDGER_BENCH_SECONDS", 10) as f64;
    let concurrency = env_u64("GOVLEDGER_SIDE_CONCURRENCY", 8) as usize;
    let batches: Vec<usize> = std::env::var("GOVLEDGER_SIDE_BATCHES")
        .unwrap_or_else(|_| "1,16,256".into())
        .split(',')
        .map(|b| b.trim().parse().unwrap())
        .collect();
    println!(
        "| batch | system | entries/s | p50 ms | p99 ms | bytes/entry \
         | / PostgreSQL, one chain | / PostgreSQL, chain per connection | / raw sled |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let bin = std::path::PathBuf::from(env!("CARGO_BIN_EXE_govledgerd"));
    let baseline = std::env::var_os("GOVLEDGER_BENCH_BASELINE_BIN").map(std::path::PathBuf::from);
    for b in batches {
        let base = match &baseline {
            Some(path) => {
                eprintln!("batch {b}: baseline govledgerd {} ...", path.display());
                Some(govledgerd(path, b, concurrency, secs).await)
            }
            None => None,
        };
        eprintln!("batch {b}: govledgerd ...");
        let g = govledgerd(&bin, b, concurrency, secs).await;
        let mut pg = Vec::new();
        for chain in [Chain::OneForTheTable, Chain::PerConnection] {
            eprintln!("batch {b}: PostgreSQL ...");
            let conn = conn.clone();
            pg.push(
                tokio::task::spawn_blocking(move || postgres(&conn, chain, b, concurrency, secs))
                    .await
                    .unwrap(),
            );
        }
        let (one, per) = (&pg[0], &pg[1]);
        eprintln!("batch {b}: raw sled ...");
        let s = tokio::task::spawn_blocking(move || sled(b, concurrency, secs))
            .await
            .unwrap();
        let mut rows = vec![
            ("govledgerd (durable receipts)", &g),
            ("PostgreSQL 15, one hash chain, sync commit", one),
            (
                "PostgreSQL 15, a hash chain per connection, sync commit",
                per,
            ),
            ("raw sled, flush per batch", &s),
        ];
        if let Some(base) = &base {
            rows.insert(1, ("govledgerd, baseline binary", base));
        }
        for (name, c) in rows {
            let ratios = if name.starts_with("govledgerd") {
                format!(
                    "{:.2}x | {:.2}x | {:.2}x",
                    c.eps / one.eps,
                    c.eps / per.eps,
                    c.eps / s.eps
                )
            } else {
                " | | ".into()
            };
            println!(
                "| {b} | {name} | {:.0} | {:.2} | {:.2} | {:.0} | {ratios} |",
                c.eps, c.p50, c.p99, c.bytes_per_entry
            );
        }
    }
}
