//! Interoperability with an independent implementation of the specs: Cloudflare's `signed_note`
//! and `tlog_tiles` crates (azul; ports of Go's sumdb `note` and `tlog` packages) verify what
//! govledgerd serves: the checkpoint's signature with the log's verifier key string, the
//! checkpoint text, inclusion proofs from receipts, consistency proofs, and the tree hash and
//! record proofs they compute themselves from our C2SP tiles.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash, Tile, TileHashReader, TileReader};

use crate::harness::{audit, start};

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| {
            Hash(
                STANDARD
                    .decode(h.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            )
        })
        .collect()
}

/// Opens a checkpoint note with azul's verifier built from our verifier key string.
fn open(note: &str, vkey: &str) -> Checkpoint {
    let note = Note::from_bytes(note.as_bytes()).unwrap();
    let known = VerifierList::new(vec![Box::new(StandardVerifier::new(vkey).unwrap())]);
    let (verified, _) = note.verify(&known).unwrap();
    assert_eq!(verified.len(), 1);
    Checkpoint::from_bytes(note.text()).unwrap()
}

/// Reads hash tiles from the server's C2SP paths (`tile/<L>/<N>[.p/<W>]`; sumdb's paths carry
/// the height, `tile/8/<L>/...`, which C2SP fixes at 8).
struct Tiles {
    url: String,
    http: reqwest::blocking::Client,
}

impl TileReader for Tiles {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        Ok(tiles
            .iter()
            .map(|t| {
                let path = t.path().replacen("tile/8/", "tile/", 1);
                let r = self
                    .http
                    .get(format!("{}/{path}", self.url))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200, "{path}");
                r.bytes().unwrap().to_vec()
            })
            .collect())
    }
    fn save_tiles(&self, _: &[Tile], _: &[Vec<u8>]) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_implementation_verifies_checkpoints_proofs_and_tiles() {
    let s = start().await;
    let vkey = s.vkey.to_string();
    let mut receipts = Vec::new();
    for i in 0..20 {
        receipts.push(s.submit(audit(i), None).await);
    }
    let cp_text = s.get("/checkpoint").await.text().await.unwrap();
    let old = open(&cp_text, &vkey);
    assert_eq!((old.origin(), old.size()), ("localhost/govledger", 20));
    // Past one full tile and into the second level: 300 more in batches.
    for b in 0..3 {
        let entries: Vec<Value> = (0..100)
            .map(|i| serde_json::json!({"kind": "audit", "body": audit(1000 + b * 100 + i)}))
            .collect();
        let (st, v) = s
            .post(&serde_json::json!({ "entries": entries }).to_string())
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let url = s.url.clone();
    let receipts_json: Vec<Value> = receipts
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    tokio::task::spawn_blocking(move || {
        let http = reqwest::blocking::Client::new();
        let get = |path: &str| -> Value {
            http.get(format!("{url}{path}"))
                .send()
                .unwrap()
                .json()
                .unwrap()
        };
        let cp_text = http
            .get(format!("{url}/checkpoint"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        let cp = open(&cp_text, &vkey);
        assert_eq!(cp.size(), 320);
        let (n, root) = (cp.size(), *cp.hash());
        // Inclusion: every early receipt, refreshed to the latest checkpoint.
        for r in &receipts_json {
            let index = r["index"].as_u64().unwrap();
            let leaf_hash = Hash(
                hex::decode(r["leaf_hash"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap(),
            );
            let v = get(&format!("/v1/proofs/inclusion?index={index}&size={n}"));
            tlog_tiles::check_record(&hashes(&v["proof"]), n, root, index, leaf_hash).unwrap();
            // The receipt's own proof, against its own checkpoint.
            let own = open(r["checkpoint"].as_str().unwrap(), &vkey);
            tlog_tiles::check_record(
                &hashes(&r["proof"]),
                own.size(),
                *own.hash(),
                index,
                leaf_hash,
            )
            .unwrap();
        }
        // Consistency from the size-20 checkpoint, and from every size to the head for a few.
        let v = get(&format!("/v1/proofs/consistency?old=20&new={n}"));
        tlog_tiles::check_tree(&hashes(&v["proof"]), n, root, 20, *old.hash()).unwrap();
        // Tiles: the independent reader recomputes the root from our tiles (it checks every
        // tile it reads against the tree hash) and proves records itself.
        let tiles = Tiles {
            url: url.clone(),
            http: reqwest::blocking::Client::new(),
        };
        let reader = TileHashReader::new(n, root, &tiles);
        assert_eq!(tlog_tiles::tree_hash(n, &reader).unwrap(), root);
        for index in [0, 1, 255, 256, 257, 319] {
            let theirs = tlog_tiles::prove_record(n, index, &reader).unwrap();
            let ours = get(&format!("/v1/proofs/inclusion?index={index}&size={n}"));
            assert_eq!(theirs, hashes(&ours["proof"]), "index {index}");
        }
        let theirs = tlog_tiles::prove_tree(n, 20, &reader).unwrap();
        assert_eq!(theirs, hashes(&v["proof"]));
    })
    .await
    .unwrap();
    s.stop().await;
}
