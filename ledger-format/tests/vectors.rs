//! Every public vector in `testdata/` (public data; sources in testdata/PUBLIC-VECTORS.md) that
//! applies to this crate. ECDSA signatures and Rekor SETs are out of scope.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_format::cosig;
use ledger_format::note::{Note, NoteError, NoteSignature, SignerKey, VerifierKey};
use ledger_format::proof::{prove_consistency, prove_inclusion, ConsistencyProof, InclusionProof};
use ledger_format::receipt::TlogProof;
use ledger_format::tile::{self, BundleId, TileId, TilePath};
use ledger_format::tree::{root_of, MemoryTree};
use ledger_format::{leaf_hash, node_hash, Hash, LeafIndex, TreeSize};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn hex_hash(v: &Value) -> Hash {
    Hash::from_hex(v.as_str().unwrap()).unwrap()
}

fn hex_hashes(v: &Value) -> Vec<Hash> {
    v.as_array().unwrap().iter().map(hex_hash).collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

/// Decodes base64, returning `None` for anything that is not a 32-byte hash (the probes include
/// wrong-length hashes, which must be refused).
fn b64_hash(v: &Value) -> Option<Hash> {
    let bytes = STANDARD.decode(v.as_str()?).ok()?;
    Hash::from_slice(&bytes).ok()
}

/// Roots in the consistency probes are compared bytewise and may have any length; our API
/// takes 32-byte hashes, so a root of another length stands in as the SHA-256 of its bytes
/// (equal bytes stay equal, different bytes stay different).
fn any_root(v: &Value) -> Hash {
    let bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
    Hash::from_slice(&bytes).unwrap_or_else(|_| Hash(ledger_format::hash::sha256(&bytes)))
}

fn eight_leaf_tree() -> (Vec<Vec<u8>>, MemoryTree) {
    let v = load("rfc6962_8leaf_tree.json");
    let leaves: Vec<Vec<u8>> = v["leaf_inputs_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
        .collect();
    let mut t = MemoryTree::new();
    for l in &leaves {
        t.push(leaf_hash(l));
    }
    (leaves, t)
}

#[test]
fn hasher_vectors() {
    for v in load("rfc6962_hasher.json")["vectors"].as_array().unwrap() {
        let got = match v["op"].as_str().unwrap() {
            "empty_root" => Hash::EMPTY,
            "leaf_hash" => leaf_hash(&hex::decode(v["input_hex"].as_str().unwrap()).unwrap()),
            "node_hash" => {
                // The raw node function over arbitrary-length children.
                let mut buf = vec![1u8];
                buf.extend(hex::decode(v["left_hex"].as_str().unwrap()).unwrap());
                buf.extend(hex::decode(v["right_hex"].as_str().unwrap()).unwrap());
                Hash(ledger_format::hash::sha256(&buf))
            }
            op => panic!("unknown op {op}"),
        };
        let want = v
            .get("want_hex")
            .map(hex_hash)
            .unwrap_or_else(|| b64_hash(&v["want_b64"]).unwrap());
        assert_eq!(got, want, "{}", v["name"]);
    }
}

#[test]
fn eight_leaf_tree_nodes_roots_and_proofs() {
    let v = load("rfc6962_8leaf_tree.json");
    let (leaves, tree) = eight_leaf_tree();
    for level in v["node_hashes"].as_array().unwrap() {
        for n in level.as_array().unwrap() {
            let id = ledger_format::NodeId::new(u(&n["level"]) as u8, u(&n["index"]));
            use ledger_format::tree::HashReader;
            assert_eq!(
                tree.read_hashes(&[id]).unwrap()[0],
                hex_hash(&n["hash_hex"])
            );
        }
    }
    for (size, r) in v["roots_hex"].as_array().unwrap().iter().enumerate() {
        let hashes: Vec<Hash> = leaves[..size].iter().map(|l| leaf_hash(l)).collect();
        assert_eq!(root_of(&hashes), hex_hash(r), "root of size {size}");
        assert_eq!(tree.root_at(TreeSize(size as u64)).unwrap(), hex_hash(r));
    }
    let incl = v["inclusion_proofs"].as_array().unwrap().iter().chain(
        v["derived_all_inclusion_proofs"]["proofs"]
            .as_array()
            .unwrap(),
    );
    for p in incl {
        let (index, size) = (LeafIndex(u(&p["leaf_index"])), TreeSize(u(&p["tree_size"])));
        let want = hex_hashes(&p["proof_hex"]);
        let got = prove_inclusion(index, size, &tree).unwrap();
        assert_eq!(got.path, want, "inclusion {index} in {size}");
        let root = tree.root_at(size).unwrap();
        got.verify(&tree.leaf(index).unwrap(), &root).unwrap();
    }
    let cons = v["consistency_proofs"].as_array().unwrap().iter().chain(
        v["derived_all_consistency_proofs"]["proofs"]
            .as_array()
            .unwrap(),
    );
    for p in cons {
        let (old, new) = (TreeSize(u(&p["size1"])), TreeSize(u(&p["size2"])));
        let want = hex_hashes(&p["proof_hex"]);
        let got = prove_consistency(old, new, &tree).unwrap();
        assert_eq!(got.path, want, "consistency {old} -> {new}");
        got.verify(&tree.root_at(old).unwrap(), &tree.root_at(new).unwrap())
            .unwrap();
    }
}

#[test]
fn rfc6962_worked_example() {
    let v = load("rfc6962_worked_example.json");
    let mut tree = MemoryTree::new();
    for l in v["leaf_inputs_hex"].as_array().unwrap() {
        tree.push(leaf_hash(&hex::decode(l.as_str().unwrap()).unwrap()));
    }
    let nodes = &v["nodes_hex"];
    let letter = |l: &Value| hex_hash(&nodes[l.as_str().unwrap()]);
    assert_eq!(tree.root(), hex_hash(&nodes["hash"]));
    assert_eq!(
        node_hash(&letter(&"k".into()), &letter(&"l".into())),
        tree.root()
    );
    for p in v["audit_paths"].as_array().unwrap() {
        let want: Vec<Hash> = p["path_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(letter)
            .collect();
        let got = prove_inclusion(LeafIndex(u(&p["leaf_index"])), TreeSize(7), &tree).unwrap();
        assert_eq!(got.path, want);
    }
    for p in v["consistency_proofs"].as_array().unwrap() {
        let want: Vec<Hash> = p["proof_letters"]
            .as_array()
            .unwrap()
            .iter()
            .map(letter)
            .collect();
        let old = TreeSize(u(&p["size1"]));
        let got = prove_consistency(old, TreeSize(7), &tree).unwrap();
        assert_eq!(got.path, want);
        assert_eq!(tree.root_at(old).unwrap(), letter(&p["first_root"]));
        got.verify(&letter(&p["first_root"]), &tree.root()).unwrap();
    }
}

#[test]
fn transparency_dev_inclusion_probes() {
    let v = load("merkle_inclusion_probes.json");
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 98);
    for p in probes {
        let proof: Option<Vec<Hash>> = match &p["proof"] {
            Value::Null => Some(vec![]),
            a => a.as_array().unwrap().iter().map(b64_hash).collect(),
        };
        let result = (|| {
            let leaf = b64_hash(&p["leafHash"])?;
            let root = b64_hash(&p["root"])?;
            InclusionProof {
                index: LeafIndex(u(&p["leafIdx"])),
                size: TreeSize(u(&p["treeSize"])),
                path: proof?,
            }
            .verify(&leaf, &root)
            .ok()
        })();
        assert_eq!(
            result.is_none(),
            p["wantErr"].as_bool().unwrap(),
            "{} ({})",
            p["desc"],
            p["file"]
        );
    }
}

#[test]
fn transparency_dev_consistency_probes() {
    let v = load("merkle_consistency_probes.json");
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), 98);
    for p in probes {
        let proof: Option<Vec<Hash>> = match &p["proof"] {
            Value::Null => Some(vec![]),
            a => a.as_array().unwrap().iter().map(b64_hash).collect(),
        };
        let result = (|| {
            ConsistencyProof {
                old: TreeSize(u(&p["size1"])),
                new: TreeSize(u(&p["size2"])),
                path: proof?,
            }
            .verify(&any_root(&p["root1"]), &any_root(&p["root2"]))
            .ok()
        })();
        assert_eq!(
            result.is_none(),
            p["wantErr"].as_bool().unwrap(),
            "{} ({})",
            p["desc"],
            p["file"]
        );
    }
}

#[test]
fn signed_note_keys_and_resigning() {
    let v = load("signed_note.json");
    let peter = SignerKey::parse(v["keys"][0]["skey"].as_str().unwrap()).unwrap();
    assert_eq!(
        peter.to_secret_string(),
        v["keys"][0]["skey"].as_str().unwrap()
    );
    let enoch = SignerKey::from_seed("EnochRoot", [0u8; 32]).unwrap();
    for k in v["keys"].as_array().unwrap() {
        let vk = VerifierKey::parse(k["vkey"].as_str().unwrap()).unwrap();
        assert_eq!(vk.to_string(), k["vkey"].as_str().unwrap());
        assert_eq!(
            format!("{:08x}", vk.key_id()),
            k["key_id_hex"].as_str().unwrap()
        );
    }
    assert_eq!(
        peter.verifier().to_string(),
        v["keys"][0]["vkey"].as_str().unwrap()
    );
    assert_eq!(
        enoch.verifier().to_string(),
        v["keys"][1]["vkey"].as_str().unwrap()
    );

    for n in v["valid_notes"].as_array().unwrap() {
        let text = n["text"].as_str().unwrap();
        let want = n["note"].as_str().unwrap();
        if let Some(signers) = n.get("signers") {
            let signers: Vec<&SignerKey> = signers
                .as_array()
                .unwrap()
                .iter()
                .map(|s| if s == "PeterNeumann" { &peter } else { &enoch })
                .collect();
            // Ed25519 is deterministic: re-signing reproduces the note byte for byte.
            assert_eq!(Note::sign(text, &signers).unwrap().to_text(), want);
        }
        let note = Note::parse(want.as_bytes()).unwrap();
        assert_eq!(note.text, text);
        assert_eq!(note.to_text(), want);
        let keys: Vec<VerifierKey> = n["verify_with"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| VerifierKey::parse(k.as_str().unwrap()).unwrap())
            .collect();
        let verified: Vec<String> = note
            .verify(&keys)
            .unwrap()
            .iter()
            .map(|s| format!("{}+{:08x}", s.key.name(), s.key.key_id()))
            .collect();
        assert_eq!(
            verified,
            n["want_verified"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        );
        let unverified: Vec<String> = note
            .unverified(&keys)
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.key_id))
            .collect();
        assert_eq!(
            unverified,
            n["want_unverified"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        );
    }

    for n in v["invalid_notes"].as_array().unwrap() {
        let msg = hex::decode(n["msg_hex"].as_str().unwrap_or_default())
            .ok()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| n["msg"].as_str().unwrap().as_bytes().to_vec());
        let keys: Vec<VerifierKey> = n
            .get("verify_with")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|k| VerifierKey::parse(k.as_str().unwrap()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let got = Note::parse(&msg).and_then(|note| note.verify(&keys).map(|_| ()));
        let want = n["want"].as_str().unwrap();
        match (want, got) {
            ("malformed", Err(NoteError::Malformed(_))) => {}
            ("unverified", Err(NoteError::NoVerifiedSignature)) => {}
            ("invalid_signature", Err(NoteError::InvalidSignature { .. })) => {}
            (w, g) => panic!("{}: want {w}, got {g:?}", n["desc"]),
        }
    }

    for k in v["vkeys"].as_array().unwrap() {
        let ok = VerifierKey::parse(k["vkey"].as_str().unwrap()).is_ok();
        assert_eq!(ok, k["want"] == "ok", "{}", k["vkey"]);
    }
}

#[test]
fn checkpoint_parse_cases_strict() {
    let v = load("checkpoint.json");
    for c in v["parse_cases"]["cases"].as_array().unwrap() {
        let body = c["body"].as_str().unwrap();
        let got = Checkpoint::parse(body);
        assert_eq!(
            got.is_ok(),
            c["c2sp_strict_ok"].as_bool().unwrap(),
            "{}",
            c["desc"]
        );
        if let Ok(cp) = got {
            assert_eq!(cp.to_text(), body, "round trip");
        }
    }
}

#[test]
fn signed_checkpoints_verify() {
    let v = load("checkpoint.json");
    let mut ed25519 = 0;
    for c in v["signed_checkpoints"].as_array().unwrap() {
        let note = c["note"].as_str().unwrap();
        let signed = SignedCheckpoint::parse(note.as_bytes()).unwrap();
        assert_eq!(signed.checkpoint.origin, c["origin"].as_str().unwrap());
        let Some(vkeys) = c.get("vkeys") else {
            continue; // PKIX (ECDSA) keys: out of scope.
        };
        let key = VerifierKey::parse(vkeys[0].as_str().unwrap()).unwrap();
        let (_, verified) = SignedCheckpoint::open(note.as_bytes(), &key, &[]).unwrap();
        assert_eq!(
            format!("{:08x}", verified[0].key.key_id()),
            c["want_verified_key_ids"][0].as_str().unwrap()
        );
        ed25519 += 1;
    }
    // The Rekor v2 checkpoint is Ed25519 with a C2SP key too (key from
    // testdata/PUBLIC-VECTORS.md).
    let rekor2 = &v["signed_checkpoints"][5];
    let key = VerifierKey::parse(
        "log2025-alpha1.rekor.sigstage.dev+f30d5a99+AT5/gERB6AWme8IEtcwaqcZi0hp8ocV4+JRcUnVlQfKP",
    )
    .unwrap();
    let note = rekor2["note"].as_str().unwrap();
    let (signed, verified) = SignedCheckpoint::open(note.as_bytes(), &key, &[]).unwrap();
    assert_eq!(verified.len(), 1, "the witness line is ignored");
    assert_eq!(signed.note.unverified(&[key]).len(), 1);
    assert!(ed25519 >= 4);
}

#[test]
fn cosignature_vectors() {
    let v = load("cosignature.json");
    for m in v["signed_message_format_vectors"].as_array().unwrap() {
        assert_eq!(
            cosig::message(u(&m["timestamp"]), m["checkpoint_body"].as_str().unwrap()),
            m["want_message"].as_str().unwrap()
        );
    }
    for d in v["signature_line_decoding"].as_array().unwrap() {
        let blob = match d.get("line") {
            Some(line) => {
                let s = NoteSignature::parse_line(line.as_str().unwrap()).unwrap();
                if let Some(id) = d.get("want_key_id_hex") {
                    assert_eq!(format!("{:08x}", s.key_id), id.as_str().unwrap());
                }
                let mut b = s.key_id.to_be_bytes().to_vec();
                b.extend(s.sig);
                b
            }
            None => STANDARD.decode(d["b64"].as_str().unwrap()).unwrap(),
        };
        assert_eq!(blob.len() as u64, u(&d["want_len"]));
        if let Some(ts) = d.get("want_timestamp") {
            assert_eq!(u64::from_be_bytes(blob[4..12].try_into().unwrap()), u(ts));
        }
        if d.get("want_error").is_some() {
            assert_ne!(
                blob.len(),
                76,
                "a 68-byte note signature is not a cosignature"
            );
        }
    }
    for k in v["cosigner_vkeys"].as_array().unwrap() {
        let vk = VerifierKey::parse(k["vkey"].as_str().unwrap()).unwrap();
        assert_eq!(
            format!("{:08x}", vk.key_id()),
            k["want_key_id_hex"].as_str().unwrap()
        );
        assert_eq!(vk.sig_type().byte() as u64, u(&k["sig_type"]));
        // A 0x01 key converted for cosigning gets a different ID, as formats re-derives it.
        let cs = cosig::as_cosigner(&vk);
        assert_eq!(cs.sig_type().byte(), 4);
        if vk.sig_type().byte() == 1 {
            assert_ne!(cs.key_id(), vk.key_id());
        }
    }
    // A real sigsum witness cosignature, in its C2SP encoding.
    let real = &v["verified_cosignatures"][0];
    let enc = &real["c2sp_encoding"];
    let witness = VerifierKey::parse(enc["vkey"].as_str().unwrap()).unwrap();
    assert_eq!(
        hex::encode(witness.public().as_bytes()),
        real["witness_pubkey_hex"].as_str().unwrap()
    );
    let line = NoteSignature::parse_line(enc["signature_line"].as_str().unwrap()).unwrap();
    let body = real["checkpoint_body"].as_str().unwrap();
    assert_eq!(
        cosig::verify_blob(&witness, body, &line.sig),
        Some(u(&real["timestamp"]))
    );
    assert_eq!(
        hex::encode(&line.sig[8..]),
        real["signature_hex"].as_str().unwrap()
    );
    let mut tampered = line.sig.clone();
    tampered[0] ^= 1;
    assert_eq!(cosig::verify_blob(&witness, body, &tampered), None);

    // Derived known answer: signing reproduces the line exactly.
    let kat = &v["derived_kat"];
    let seed: [u8; 32] = hex::decode(kat["seed_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let key = SignerKey::from_seed(kat["witness_name"].as_str().unwrap(), seed).unwrap();
    assert_eq!(
        key.cosigner_verifier().to_string(),
        kat["vkey"].as_str().unwrap()
    );
    let cp_note = kat["checkpoint_note"].as_str().unwrap();
    let text = Note::parse(cp_note.as_bytes())
        .map(|n| n.text)
        .unwrap_or_else(|_| cp_note.to_owned());
    assert_eq!(
        cosig::message(u(&kat["timestamp"]), &text),
        kat["signed_message"].as_str().unwrap()
    );
    let got = cosig::cosign(&key, &text, u(&kat["timestamp"]));
    assert_eq!(
        got.to_line().trim_end(),
        kat["signature_line"].as_str().unwrap().trim_end()
    );
    // And a note carrying it verifies with the 0x04 key but never with the 0x01 key.
    let note = Note {
        text: text.clone(),
        signatures: vec![got],
    };
    assert!(note.verify(&[key.cosigner_verifier()]).is_ok());
    assert!(matches!(
        note.verify(&[key.verifier()]),
        Err(NoteError::NoVerifiedSignature)
    ));
}

#[test]
fn tile_paths() {
    let v = load("tiles.json");
    for c in v["entries_path_for_log_index"]["cases"].as_array().unwrap() {
        assert_eq!(
            tile::entries_path(u(&c["seq"]) / 256, u(&c["log_size"])),
            c["want"].as_str().unwrap()
        );
    }
    for c in v["entries_path"]["cases"].as_array().unwrap() {
        assert_eq!(
            tile::entries_path(u(&c["n"]), u(&c["log_size"])),
            c["want"].as_str().unwrap()
        );
    }
    for c in v["tile_path"]["cases"].as_array().unwrap() {
        assert_eq!(
            tile::tile_path(u(&c["level"]) as u8, u(&c["index"]), u(&c["log_size"])),
            c["want"].as_str().unwrap()
        );
    }
    for c in v["parse_level_index"]["cases"].as_array().unwrap() {
        let level = tile::parse_level(c["level"].as_str().unwrap());
        let index = tile::parse_index(c["index"].as_str().unwrap());
        match (&c["want"], level, index) {
            (Value::Array(w), Ok(l), Ok((n, width))) => {
                assert_eq!((l as u64, n, width as u64), (u(&w[0]), u(&w[1]), u(&w[2])));
                // Round trip through the full path.
                let path = format!(
                    "tile/{}/{}",
                    c["level"].as_str().unwrap(),
                    c["index"].as_str().unwrap()
                );
                assert_eq!(
                    tile::parse_path(&path).unwrap(),
                    TilePath::Tile(TileId {
                        level: l,
                        index: n,
                        width
                    })
                );
                assert_eq!(
                    TileId {
                        level: l,
                        index: n,
                        width
                    }
                    .path(),
                    path
                );
            }
            (Value::String(e), l, i) if e == "error" => {
                assert!(l.is_err() || i.is_err(), "{c}")
            }
            (w, l, i) => panic!("{c}: want {w}, got {l:?} {i:?}"),
        }
    }
    for c in v["tree_inventory"]["cases"].as_array().unwrap() {
        let size = TreeSize(u(&c["size"]));
        let inv = tile::inventory(size);
        for (level, want) in c["want"].as_object().unwrap() {
            let level: u8 = level.parse().unwrap();
            let at: Vec<&TileId> = inv.iter().filter(|t| t.level == level).collect();
            let full = at.iter().filter(|t| t.is_full()).count() as u64;
            let partial = at
                .iter()
                .find(|t| !t.is_full())
                .map(|t| t.width as u64)
                .unwrap_or(0);
            assert_eq!(
                (full, partial),
                (u(&want["full"]), u(&want["partial_width"])),
                "size {size} level {level}"
            );
        }
        assert!(inv.iter().all(|t| t.width > 0), "no empty tiles");
    }
}

#[test]
fn tile_contents() {
    let v = load("tiles.json");
    let cases = v["content_vectors"]["cases"].as_array().unwrap();
    // 8 entries: bundle and tile bytes.
    let c = &cases[0];
    let entries: Vec<Vec<u8>> = c["entries_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| hex::decode(e.as_str().unwrap()).unwrap())
        .collect();
    let bundle = tile::encode_bundle(entries.iter().map(|e| e.as_slice())).unwrap();
    assert_eq!(hex::encode(&bundle), c["bundle_hex"].as_str().unwrap());
    assert_eq!(
        tile::decode_bundle(&bundle).unwrap(),
        entries.iter().map(|e| e.as_slice()).collect::<Vec<_>>()
    );
    let mut tree = MemoryTree::new();
    entries.iter().for_each(|e| tree.push(leaf_hash(e)));
    let size = TreeSize(u(&c["tree_size"]));
    let t = TileId::for_size(0, 0, size).unwrap();
    assert_eq!(t.path(), c["tile_path"].as_str().unwrap());
    assert_eq!(
        BundleId::for_size(0, size).unwrap().path(),
        c["bundle_path"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(t.read(&tree).unwrap()),
        c["tile_hex"].as_str().unwrap()
    );

    // 256 and 257 entries of one byte each.
    let mut tree = MemoryTree::new();
    let entries: Vec<Vec<u8>> = (0..=255u8).map(|i| vec![i]).chain([vec![0u8]]).collect();
    for e in &entries[..256] {
        tree.push(leaf_hash(e));
    }
    let c = &cases[1];
    let bundle = tile::encode_bundle(entries[..256].iter().map(|e| e.as_slice())).unwrap();
    assert_eq!(bundle.len() as u64, u(&c["bundle_len"]));
    assert_eq!(
        hex::encode(ledger_format::hash::sha256(&bundle)),
        c["bundle_sha256_hex"].as_str().unwrap()
    );
    let t0 = TileId::for_size(0, 0, TreeSize(256))
        .unwrap()
        .read(&tree)
        .unwrap();
    assert_eq!(t0.len() as u64, u(&c["tile_len"]));
    assert_eq!(
        hex::encode(ledger_format::hash::sha256(&t0)),
        c["tile_sha256_hex"].as_str().unwrap()
    );
    let l1 = TileId::for_size(1, 0, TreeSize(256)).unwrap();
    assert_eq!(l1.path(), c["level1_tile_path"].as_str().unwrap());
    assert_eq!(
        hex::encode(l1.read(&tree).unwrap()),
        c["level1_tile_hex"].as_str().unwrap()
    );
    assert_eq!(tree.root().to_hex(), c["root_hex"].as_str().unwrap());

    tree.push(leaf_hash(&entries[256]));
    let c = &cases[2];
    let size = TreeSize(257);
    let paths: Vec<String> = tile::inventory(size)
        .iter()
        .map(TileId::path)
        .chain(
            (0..2)
                .filter_map(|n| BundleId::for_size(n, size))
                .map(|b| b.path()),
        )
        .collect();
    let mut want: Vec<String> = c["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    let mut got = paths.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    let p = TileId::for_size(0, 1, size).unwrap();
    assert_eq!(
        hex::encode(p.read(&tree).unwrap()),
        c["tile_0_001_p1_hex"].as_str().unwrap()
    );
    assert_eq!(tree.root().to_hex(), c["root_hex"].as_str().unwrap());
}

#[test]
fn tlog_proof_vectors() {
    let v = load("tlog_proof.json");
    let ex = &v["spec_example"];
    let p = TlogProof::parse(ex["text"].as_str().unwrap().as_bytes()).unwrap();
    let want = &ex["want"];
    assert_eq!(
        STANDARD.encode(p.extra.as_ref().unwrap()),
        want["extra_b64"].as_str().unwrap()
    );
    assert_eq!(p.index.0, u(&want["index"]));
    assert_eq!(p.proof.len() as u64, u(&want["proof_len"]));
    let cp = p.checkpoint_body().unwrap();
    assert_eq!(cp.origin, want["origin"].as_str().unwrap());
    assert_eq!(cp.size.0, u(&want["size"]));

    let vp = &v["verifiable_proofs"][0];
    let text = vp["text"].as_str().unwrap();
    let p = TlogProof::parse(text.as_bytes()).unwrap();
    assert_eq!(p.to_text(), text, "round trip");
    let log = VerifierKey::parse(vp["log_vkey"].as_str().unwrap()).unwrap();
    let witnesses: Vec<VerifierKey> = vp["witness_vkeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| VerifierKey::parse(k.as_str().unwrap()).unwrap())
        .collect();
    let leaf = Hash::from_hex(vp["leaf"]["leaf_hash_hex"].as_str().unwrap()).unwrap();
    assert_eq!(
        leaf_hash(&hex::decode(vp["leaf"]["leaf_hex"].as_str().unwrap()).unwrap()),
        leaf
    );
    let (signed, verified) = p.verify(Some(leaf), &log, &witnesses).unwrap();
    assert_eq!(signed.checkpoint.size.0, u(&vp["want"]["size"]));
    assert_eq!(
        signed.checkpoint.root.to_hex(),
        vp["want"]["root_hex"].as_str().unwrap()
    );
    // 1-of-1 witnesses: the cosignature verified too.
    assert_eq!(verified.iter().filter(|s| s.timestamp.is_some()).count(), 1);
    // A flipped proof bit fails.
    let mut bad = p.clone();
    bad.proof[0].0[0] ^= 1;
    assert!(bad.verify(Some(leaf), &log, &witnesses).is_err());
}

#[test]
fn sigstore_rekor_inclusion_and_ed25519_checkpoints() {
    let v = load("sigstore_rekor.json");
    let rekor2_key = VerifierKey::parse(
        "log2025-alpha1.rekor.sigstage.dev+f30d5a99+AT5/gERB6AWme8IEtcwaqcZi0hp8ocV4+JRcUnVlQfKP",
    )
    .unwrap();
    let all = v["rekor_v1_entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e, false))
        .chain(
            v["rekor_v2_entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e, true)),
        );
    for (e, v2) in all {
        let t = &e["tlog_entry"];
        let ip = &t["inclusionProof"];
        let body = STANDARD
            .decode(t["canonicalizedBody"].as_str().unwrap())
            .unwrap();
        let root = b64_hash(&ip["rootHash"]).unwrap();
        let proof = InclusionProof {
            index: LeafIndex(u(&ip["logIndex"])),
            size: TreeSize(u(&ip["treeSize"])),
            path: ip["hashes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| b64_hash(h).unwrap())
                .collect(),
        };
        let want = &e["want"];
        assert_eq!(
            proof.verify(&leaf_hash(&body), &root).is_ok(),
            want["inclusion"].as_bool().unwrap(),
            "{}",
            e["name"]
        );
        let envelope = ip["checkpoint"]["envelope"].as_str().unwrap();
        let cp = SignedCheckpoint::parse(envelope.as_bytes())
            .unwrap()
            .checkpoint;
        let matches = cp.size == proof.size && cp.root == root;
        assert_eq!(
            matches,
            want["checkpoint_matches_proof"].as_bool().unwrap(),
            "{}",
            e["name"]
        );
        if v2 {
            let ok = SignedCheckpoint::open(envelope.as_bytes(), &rekor2_key, &[]).is_ok();
            assert_eq!(
                ok,
                want["checkpoint_sig"].as_bool().unwrap(),
                "{}",
                e["name"]
            );
        }
    }
}

/// The litewitness request sequence, replayed in order against our witness logic: every status
/// is the one the current C2SP text mandates (step 3, an unknown origin, is 404 where
/// litewitness answers 403), and the final state is the vector's.
#[test]
fn witness_add_checkpoint_sequence() {
    use ledger_format::witness::{decide, AddCheckpoint, LogState};
    let v = load("witness_add_checkpoint.json");
    let log = VerifierKey::parse(v["log_vkey"].as_str().unwrap()).unwrap();
    let witness =
        ledger_format::note::SignerKey::from_seed("example.com/witness", [5; 32]).unwrap();
    let mut state: Option<LogState> = None;
    for step in v["steps"].as_array().unwrap() {
        let body = step["request_body"].as_str().unwrap();
        let want = step["spec_status"].as_u64().unwrap() as u16;
        let got = AddCheckpoint::parse(body.as_bytes())
            .and_then(|req| decide(&req, std::slice::from_ref(&log), |_| state));
        match got {
            Ok(signed) => {
                assert_eq!(want, 200, "step {}", step["step"]);
                state = Some(LogState {
                    size: signed.checkpoint.size.0,
                    root: signed.checkpoint.root,
                    key: 0,
                });
                let line = ledger_format::cosig::cosign(&witness, &signed.note.text, 1_700_000_000)
                    .to_line();
                assert!(line.starts_with("— example.com/witness "));
            }
            Err(e) => {
                assert_eq!(e.status(), want, "step {}: {e}", step["step"]);
                if let Some(b) = step.get("spec_response_body") {
                    assert_eq!(e.body(), b.as_str().unwrap());
                }
            }
        }
    }
    let fin = &v["final_state"];
    let s = state.unwrap();
    assert_eq!(s.size, fin["size"].as_u64().unwrap());
    assert_eq!(s.root.to_base64(), fin["root_b64"].as_str().unwrap());
}

#[test]
fn witness_refuses_forks_rollbacks_and_malformed_requests() {
    use ledger_format::witness::{decide, AddCheckpoint, LogState};
    let log = ledger_format::note::SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let tree = |n: u8| {
        let mut t = ledger_format::tree::MemoryTree::new();
        for i in 0..n {
            t.push(ledger_format::leaf_hash(&[i]));
        }
        t
    };
    let note = |size: u64, root: ledger_format::Hash| {
        let cp = ledger_format::checkpoint::Checkpoint {
            origin: "example.com/log".into(),
            size: ledger_format::TreeSize(size),
            root,
            extensions: vec![],
        };
        ledger_format::note::Note::sign(&cp.to_text(), &[&log])
            .unwrap()
            .to_text()
    };
    let keys = [log.verifier()];
    let t5 = tree(5);
    let state = Some(LogState {
        size: 5,
        root: t5.root(),
        key: 0,
    });
    let run = |body: String| {
        AddCheckpoint::parse(body.as_bytes()).and_then(|r| decide(&r, &keys, |_| state))
    };
    // Same size, same root: a fresh cosignature. Same size, another root: 422.
    assert!(run(AddCheckpoint::encode(5, &[], &note(5, t5.root()))).is_ok());
    let fork = run(AddCheckpoint::encode(
        5,
        &[],
        &note(5, ledger_format::Hash([9; 32])),
    ));
    assert_eq!(fork.unwrap_err().status(), 422);
    // A rollback: old 5 but the checkpoint is smaller: 400; old 3 (not our size): 409 "5\n".
    let t3 = tree(3);
    assert_eq!(
        run(AddCheckpoint::encode(5, &[], &note(3, t3.root())))
            .unwrap_err()
            .status(),
        400
    );
    let e = run(AddCheckpoint::encode(3, &[], &note(5, t5.root()))).unwrap_err();
    assert_eq!((e.status(), e.body()), (409, "5\n".to_owned()));
    // A valid extension, then a bad proof.
    let t8 = tree(8);
    let proof = ledger_format::proof::prove_consistency(
        ledger_format::TreeSize(5),
        ledger_format::TreeSize(8),
        &t8,
    )
    .unwrap();
    assert!(run(AddCheckpoint::encode(5, &proof.path, &note(8, t8.root()))).is_ok());
    let mut bad = proof.path.clone();
    bad[0] = ledger_format::Hash([1; 32]);
    assert_eq!(
        run(AddCheckpoint::encode(5, &bad, &note(8, t8.root())))
            .unwrap_err()
            .status(),
        422
    );
    // Signed by another key: 403; garbage: 400.
    let other = ledger_format::note::SignerKey::from_seed("example.com/log", [2; 32]).unwrap();
    let cp = ledger_format::checkpoint::Checkpoint {
        origin: "example.com/log".into(),
        size: ledger_format::TreeSize(8),
        root: t8.root(),
        extensions: vec![],
    };
    let forged = ledger_format::note::Note::sign(&cp.to_text(), &[&other])
        .unwrap()
        .to_text();
    assert_eq!(
        run(AddCheckpoint::encode(5, &proof.path, &forged))
            .unwrap_err()
            .status(),
        403
    );
    assert_eq!(run("old x\n\nfoo".into()).unwrap_err().status(), 400);
    assert_eq!(run("old 5\n".into()).unwrap_err().status(), 400);
}

/// A leading zero group is a second spelling of a tile index and is refused (input in
/// fuzz/seeds/tile_path). Only the canonical spelling parses.
#[test]
fn tile_indices_have_one_spelling() {
    for bad in [
        "tile/1/x000/130",
        "tile/0/x000/x001/234",
        "tile/entries/x000/001",
        "tile/1/x000/130.p/5",
    ] {
        assert!(tile::parse_path(bad).is_err(), "{bad}");
    }
    for good in [
        "tile/1/130",
        "tile/0/x001/234",
        "tile/entries/001",
        "tile/1/x001/000.p/5",
        "tile/0/000",
    ] {
        let parsed = tile::parse_path(good).unwrap();
        let back = match parsed {
            TilePath::Tile(t) => t.path(),
            TilePath::Entries(b) => b.path(),
        };
        assert_eq!(back, good);
    }
}

#[test]
fn a_witness_trusting_two_keys_of_a_log_cosigns_either_and_refuses_a_bad_line() {
    use ledger_format::note::{Note, SignerKey};
    use ledger_format::witness::{decide, AddCheckpoint};
    let old = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let new = SignerKey::from_seed("example.com/log", [2; 32]).unwrap();
    let other = SignerKey::from_seed("example.com/log", [3; 32]).unwrap();
    let cp = ledger_format::checkpoint::Checkpoint {
        origin: "example.com/log".into(),
        size: ledger_format::TreeSize(0),
        root: ledger_format::Hash::EMPTY,
        extensions: vec![],
    }
    .to_text();
    let run = |keys: &[ledger_format::note::VerifierKey], note: &str| {
        AddCheckpoint::parse(AddCheckpoint::encode(0, &[], note).as_bytes())
            .and_then(|r| decide(&r, keys, |_| None))
            .map(|s| s.checkpoint.size.0)
            .map_err(|e| e.status())
    };
    let both = [old.verifier(), new.verifier()];
    for signers in [vec![&old], vec![&new], vec![&old, &new]] {
        let note = Note::sign(&cp, &signers).unwrap().to_text();
        assert_eq!(run(&both, &note), Ok(0));
    }
    // Only the new key trusted: a checkpoint of the old key alone is refused.
    let note = Note::sign(&cp, &[&old]).unwrap().to_text();
    assert_eq!(run(&[new.verifier()], &note), Err(403));
    // A key of the same name the witness does not trust signs nothing for it.
    let note = Note::sign(&cp, &[&other]).unwrap().to_text();
    assert_eq!(run(&both, &note), Err(403));
    // A line naming a trusted key that does not verify is refused even beside a good one.
    let good = Note::sign(&cp, &[&new]).unwrap().to_text();
    let forged_line = Note::sign("another text\n", &[&old]).unwrap().to_text();
    let forged_line = forged_line.lines().last().unwrap();
    let note = format!("{good}{forged_line}\n");
    assert_eq!(run(&both, &note), Err(403));
    assert_eq!(run(&[new.verifier()], &note), Ok(0));
}

/// A witness trusting the old and the new key of a log (oldest first) must not cosign what the
/// retired key alone signs once it has cosigned the hand-over, even over a consistent extension
/// of the tree.
#[test]
fn a_witness_refuses_the_retired_key_after_the_hand_over() {
    use ledger_format::note::{Note, SignerKey};
    use ledger_format::witness::{decide, signer_rank, AddCheckpoint, LogState};
    let old = SignerKey::from_seed("example.com/log", [1; 32]).unwrap();
    let new = SignerKey::from_seed("example.com/log", [2; 32]).unwrap();
    let both = [old.verifier(), new.verifier()];
    let mut tree = ledger_format::tree::MemoryTree::new();
    let note_at = |tree: &ledger_format::tree::MemoryTree, signers: &[&SignerKey]| {
        let cp = ledger_format::checkpoint::Checkpoint {
            origin: "example.com/log".into(),
            size: tree.size(),
            root: tree.root(),
            extensions: vec![],
        };
        Note::sign(&cp.to_text(), signers).unwrap().to_text()
    };
    let mut state: Option<LogState> = None;
    let step = |tree: &ledger_format::tree::MemoryTree,
                signers: &[&SignerKey],
                state: &mut Option<LogState>|
     -> Result<(), u16> {
        let old_size = state.map_or(0, |s| s.size);
        let proof = if old_size == 0 {
            vec![]
        } else {
            ledger_format::proof::prove_consistency(
                ledger_format::TreeSize(old_size),
                tree.size(),
                tree,
            )
            .unwrap()
            .path
        };
        let body = AddCheckpoint::encode(old_size, &proof, &note_at(tree, signers));
        let req = AddCheckpoint::parse(body.as_bytes()).unwrap();
        let have = *state;
        let signed = decide(&req, &both, |_| have).map_err(|e| e.status())?;
        *state = Some(LogState {
            size: signed.checkpoint.size.0,
            root: signed.checkpoint.root,
            key: signer_rank(&signed, &both),
        });
        Ok(())
    };
    for i in 0..3u8 {
        tree.push(ledger_format::leaf_hash(&[i]));
    }
    assert_eq!(
        step(&tree, &[&old], &mut state),
        Ok(()),
        "the old key's span"
    );
    tree.push(ledger_format::leaf_hash(b"key_event"));
    assert_eq!(
        step(&tree, &[&old, &new], &mut state),
        Ok(()),
        "the hand-over"
    );
    tree.push(ledger_format::leaf_hash(b"after"));
    let mut forged = state;
    assert_eq!(
        step(&tree, &[&old], &mut forged),
        Err(403),
        "the retired key alone, over a consistent extension"
    );
    assert_eq!(
        step(&tree, &[&new], &mut state),
        Ok(()),
        "the new key goes on"
    );
    tree.push(ledger_format::leaf_hash(b"more"));
    assert_eq!(step(&tree, &[&old], &mut state), Err(403));
}
