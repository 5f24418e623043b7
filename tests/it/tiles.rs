//! The C2SP tlog-tiles read API: an independent client rebuilds the root from tiles alone.

use crate::harness::{audit, start};
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::{leaf_hash, node_hash, Hash};
use serde_json::json;

/// Independent MTH straight from RFC 6962 §2.1.
fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => Hash::EMPTY,
        1 => d[0],
        n => {
            let k = 1usize << (usize::BITS - (n - 1).leading_zeros() - 1);
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

#[tokio::test]
async fn tiles_and_bundles_rebuild_the_checkpoint_root() {
    let s = start().await;
    for chunk in 0..7u64 {
        let entries: Vec<_> = (0..100)
            .map(|i| json!({"kind": "audit", "body": audit(chunk * 100 + i)}))
            .collect();
        let (st, _) = s.post(&json!({"entries": entries}).to_string()).await;
        assert_eq!(st, 200);
    }
    let cp_text = s.get("/checkpoint").await.text().await.unwrap();
    let (cp, _) = SignedCheckpoint::open(cp_text.as_bytes(), &s.vkey, &[]).unwrap();
    let size = cp.checkpoint.size.0;
    assert_eq!(size, 700);

    // Entry bundles: 000, 001 full, 002.p/188.
    let mut leaves = Vec::new();
    for (path, full) in [("000", true), ("001", true), ("002.p/188", false)] {
        let r = s.get(&format!("/tile/entries/{path}")).await;
        assert_eq!(r.status(), 200, "{path}");
        let cache = r.headers()["cache-control"].to_str().unwrap().to_owned();
        assert_eq!(cache.contains("immutable"), full, "{path}: {cache}");
        let bytes = r.bytes().await.unwrap();
        for e in ledger_format::tile::decode_bundle(&bytes).unwrap() {
            leaves.push(leaf_hash(e));
        }
    }
    assert_eq!(leaves.len(), 700);
    assert_eq!(mth(&leaves), cp.checkpoint.root, "root from the entries");

    // Level-0 tiles hold the leaf hashes; level-1 tile hash i is MTH of leaves [256i, 256i+256).
    let mut tile0 = Vec::new();
    for path in ["0/000", "0/001", "0/002.p/188"] {
        let bytes = s.get(&format!("/tile/{path}")).await.bytes().await.unwrap();
        tile0.extend(ledger_format::tile::decode_tile(&bytes).unwrap());
    }
    assert_eq!(tile0, leaves);
    let l1 = s.get("/tile/1/000.p/2").await.bytes().await.unwrap();
    let l1 = ledger_format::tile::decode_tile(&l1).unwrap();
    assert_eq!(l1, vec![mth(&leaves[..256]), mth(&leaves[256..512])]);
    // The root from tiles alone: two level-1 hashes and the partial level-0 tile.
    let rest = mth(&tile0[512..700]);
    assert_eq!(
        node_hash(&node_hash(&l1[0], &l1[1]), &rest),
        cp.checkpoint.root
    );

    // A smaller partial width of a tile some checkpoint required is served too; wider is not.
    assert_eq!(s.get("/tile/0/002.p/10").await.status(), 200);
    assert_eq!(s.get("/tile/0/002.p/189").await.status(), 404);
    assert_eq!(
        s.get("/tile/0/002").await.status(),
        404,
        "never a tile that does not exist"
    );
    assert_eq!(
        s.get("/tile/2/000.p/1").await.status(),
        404,
        "no empty tiles"
    );
    s.stop().await;
}
