//! The CLI's commands as functions: each returns [`Outcome::Valid`] or [`Outcome::Invalid`], or
//! an error for usage and I/O problems (exit 2).

use anyhow::{anyhow, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::checkpoint::SignedCheckpoint;
use ledger_format::leaf::Leaf;
use ledger_format::note::{Note, VerifiedSignature, VerifierKey};
use ledger_format::proof::{ConsistencyProof, InclusionProof};
use ledger_format::receipt::{BatchError, BatchReceipts, Receipt, TlogProof};
use ledger_format::{Hash, LeafIndex, TreeSize};
use std::io::Read;
use std::path::Path;

use crate::args::{NoteCommand, ProofCommand, VerifyCmd};

/// What a verifying command concluded.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0; the text goes to stdout.
    Valid(String),
    /// Exit 1; the one-line reason goes to stderr.
    Invalid(String),
}

fn parse_hash(flag: &str, s: &str) -> Result<Hash> {
    Hash::parse_any(s).map_err(|e| anyhow!("--{flag}: {e}"))
}

fn parse_proof(hashes: &[String]) -> Result<Vec<Hash>> {
    hashes.iter().map(|h| parse_hash("proof", h)).collect()
}

/// Reads a file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn parse_key(flag: &str, s: &str) -> Result<VerifierKey> {
    VerifierKey::parse(s).map_err(|e| anyhow!("--{flag}: {e}"))
}

/// `govledger proof verify-inclusion`.
pub fn verify_inclusion(
    leaf: &str,
    index: u64,
    size: u64,
    root: &str,
    proof: &[String],
) -> Result<Outcome> {
    let leaf = parse_hash("leaf-hash", leaf)?;
    let root = parse_hash("root", root)?;
    let p = InclusionProof {
        index: LeafIndex(index),
        size: TreeSize(size),
        path: parse_proof(proof)?,
    };
    Ok(match p.verify(&leaf, &root) {
        Ok(()) => Outcome::Valid(format!("valid: leaf {index} is in the tree of size {size}")),
        Err(e) => Outcome::Invalid(e.to_string()),
    })
}

/// `govledger proof verify-consistency`.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &str,
    new_root: &str,
    proof: &[String],
) -> Result<Outcome> {
    let old_root = parse_hash("old-root", old_root)?;
    let new_root = parse_hash("new-root", new_root)?;
    let p = ConsistencyProof {
        old: TreeSize(old),
        new: TreeSize(new),
        path: parse_proof(proof)?,
    };
    Ok(match p.verify(&old_root, &new_root) {
        Ok(()) => Outcome::Valid(format!(
            "valid: the tree of size {old} is a prefix of the tree of size {new}"
        )),
        Err(e) => Outcome::Invalid(e.to_string()),
    })
}

/// `govledger note verify`.
pub fn note_verify(keys: &[String], file: &Path) -> Result<Outcome> {
    let keys = keys
        .iter()
        .map(|k| parse_key("key", k))
        .collect::<Result<Vec<_>>>()?;
    let bytes = read_input(file)?;
    let note = match Note::parse(&bytes) {
        Ok(n) => n,
        Err(e) => return Ok(Outcome::Invalid(e.to_string())),
    };
    Ok(match note.verify(&keys) {
        Ok(v) => Outcome::Valid(
            v.iter()
                .map(|s| format!("verified: {}+{:08x}", s.key.name(), s.key.key_id()))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Err(e) => Outcome::Invalid(e.to_string()),
    })
}

/// Returns a one-line summary of a govledger leaf, or of foreign leaf bytes.
pub fn leaf_summary(leaf: &[u8]) -> String {
    match Leaf::parse(leaf) {
        Ok(l) => {
            let body: serde_json::Value = serde_json::from_slice(&l.body).unwrap_or_default();
            let detail = ["event_type", "model_id", "status"]
                .iter()
                .find_map(|k| {
                    body.get(*k)
                        .and_then(|v| v.as_str())
                        .map(|v| format!(" {k}={v}"))
                })
                .unwrap_or_default();
            format!(
                "{} by {} at {}{}{}",
                l.kind.name(),
                l.submitter,
                crate::time::rfc3339_ms(l.logged_at_ms),
                if l.entry_id.is_empty() {
                    String::new()
                } else {
                    format!(" entry_id={}", l.entry_id)
                },
                detail
            )
        }
        Err(e) => format!("{} bytes, not a govledger leaf ({e})", leaf.len()),
    }
}

/// What a receipt file holds: one receipt (tlog-proof text or JSON), or a batch answer's
/// receipts, each as a tlog-proof with its JSON receipt when there is one.
struct ReceiptFile {
    batch: bool,
    receipts: Vec<(TlogProof, Option<Receipt>)>,
}

impl ReceiptFile {
    /// Verifies every receipt against `log_key` (and the witnesses' lines when present), a JSON
    /// receipt's own claims (leaf_hash, tree_size, root) too. Returns the shared checkpoint and
    /// its verified signatures, or why the first receipt that fails does (a batch's named by
    /// its position).
    fn verify(
        &self,
        leaf_hash: Option<Hash>,
        log_key: &VerifierKey,
        witnesses: &[VerifierKey],
    ) -> Result<(SignedCheckpoint, Vec<VerifiedSignature>), String> {
        let mut first = None;
        for (position, (proof, receipt)) in self.receipts.iter().enumerate() {
            let verified = receipt
                .as_ref()
                .map_or(Ok(()), |r| r.verify(log_key).map(drop))
                .and_then(|()| proof.verify(leaf_hash, log_key, witnesses));
            match verified {
                Ok(v) => {
                    first.get_or_insert(v);
                }
                Err(error) if self.batch => {
                    let index = proof.index.0;
                    let e = BatchError::Receipt {
                        position,
                        index,
                        error,
                    };
                    return Err(e.to_string());
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(first.expect("a receipt file holds at least one receipt"))
    }
}

/// Verifies a server's answer (a JSON receipt, a batch answer or a tlog-proof) against the log
/// key; `Err` is why it does not verify.
pub fn verify_answer(bytes: &[u8], log_key: &VerifierKey) -> Result<(), String> {
    parse_receipt_file(bytes, None)?
        .verify(None, log_key, &[])
        .map(drop)
}

/// Reads a receipt file; `Err` is why it is not one. With `leaf_hash`, a batch answer is
/// narrowed to that entry's receipt.
fn parse_receipt_file(bytes: &[u8], leaf_hash: Option<Hash>) -> Result<ReceiptFile, String> {
    let is_json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if !is_json {
        let proof = TlogProof::parse(bytes).map_err(|e| e.to_string())?;
        return Ok(ReceiptFile {
            batch: false,
            receipts: vec![(proof, None)],
        });
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("malformed JSON receipt: {e}"))?;
    let (batch, mut receipts) = if value.get("receipts").is_some() {
        let b: BatchReceipts =
            serde_json::from_value(value).map_err(|e| format!("malformed batch answer: {e}"))?;
        if b.receipts.is_empty() {
            return Err(BatchError::Empty.to_string());
        }
        (true, b.receipts())
    } else {
        let r: Receipt =
            serde_json::from_value(value).map_err(|e| format!("malformed JSON receipt: {e}"))?;
        (false, vec![r])
    };
    if let (true, Some(hash)) = (batch, leaf_hash) {
        receipts.retain(|r| r.leaf_hash.eq_ignore_ascii_case(&hash.to_hex()));
        if receipts.is_empty() {
            return Err(format!(
                "the batch holds no receipt for leaf hash {}",
                hash.to_hex()
            ));
        }
    }
    let receipts = receipts
        .into_iter()
        .map(|r| Ok((r.to_tlog_proof().map_err(|e| e.to_string())?, Some(r))))
        .collect::<Result<_, String>>()?;
    Ok(ReceiptFile { batch, receipts })
}

/// `govledger verify`: a tlog-proof, a JSON receipt or a saved batch answer (every receipt in
/// it, or the one of `--leaf-hash`) against the log key and optional witnesses.
pub fn verify_receipt(
    file: &Path,
    log_key: &str,
    witness_keys: &[String],
    witnesses_required: usize,
    leaf_hash: Option<&str>,
    follow_url: Option<&str>,
) -> Result<Outcome> {
    let mut log_key = parse_key("log-key", log_key)?;
    let witnesses = witness_keys
        .iter()
        .map(|k| parse_key("witness-key", k).map(|k| ledger_format::cosig::as_cosigner(&k)))
        .collect::<Result<Vec<_>>>()?;
    let leaf_hash = leaf_hash.map(|h| parse_hash("leaf-hash", h)).transpose()?;
    let bytes = read_input(file)?;
    let mut rotations = 0;
    let file = match parse_receipt_file(&bytes, leaf_hash) {
        Ok(f) => f,
        Err(why) => return Ok(Outcome::Invalid(why)),
    };
    if let Some(url) = follow_url {
        // Every receipt of a batch carries the same checkpoint.
        let cp = match file.receipts[0].0.checkpoint_body() {
            Ok(cp) => cp,
            Err(e) => return Ok(Outcome::Invalid(e.to_string())),
        };
        match crate::keys::follow(url, &log_key, cp.size.0, &cp.root) {
            Ok((key, events)) => {
                rotations = events.len();
                log_key = key;
            }
            Err(e) => return Ok(Outcome::Invalid(format!("following key rotations: {e:#}"))),
        }
    }
    let (signed, verified) = match file.verify(leaf_hash, &log_key, &witnesses) {
        Ok(v) => v,
        Err(why) => return Ok(Outcome::Invalid(why)),
    };
    let cosigned = verified.iter().filter(|s| s.timestamp.is_some()).count();
    if cosigned < witnesses_required {
        return Ok(Outcome::Invalid(format!(
            "{cosigned} of the required {witnesses_required} witness cosignatures verified"
        )));
    }
    let cp = &signed.checkpoint;
    let tail = format!(
        "tree_size: {}\nroot: {}\norigin: {}\nwitness cosignatures: {cosigned}\nsigned by: {log_key}\nkey rotations followed: {rotations}",
        cp.size, cp.root, cp.origin,
    );
    if file.batch && file.receipts.len() > 1 {
        let indices: Vec<u64> = file.receipts.iter().map(|(p, _)| p.index.0).collect();
        return Ok(Outcome::Valid(format!(
            "valid batch: {} receipts\nindices: {}\n{tail}",
            indices.len(),
            index_ranges(&indices)
        )));
    }
    let proof = &file.receipts[0].0;
    // The proof verified the leaf hash of `--leaf-hash` or, without it, of the leaf bytes in
    // the file: bytes that hash to anything else are unauthenticated and never shown.
    let extra_hash = proof.extra.as_deref().map(ledger_format::leaf_hash);
    let proven = leaf_hash.or(extra_hash);
    let leaf = match (&proof.extra, extra_hash) {
        (Some(bytes), h) if h == proven => leaf_summary(bytes),
        (Some(_), Some(h)) => format!(
            "not shown: the file's leaf bytes hash to {}, not to the proven leaf hash",
            h.to_hex()
        ),
        _ => "leaf bytes not included".into(),
    };
    let leaf_hex = proven.map(|h| h.to_hex()).unwrap_or_default();
    Ok(Outcome::Valid(format!(
        "valid receipt\nindex: {}\nleaf_hash: {leaf_hex}\nleaf: {leaf}\n{tail}",
        proof.index,
    )))
}

/// Returns `indices` as runs, e.g. "4-7, 9".
fn index_ranges(indices: &[u64]) -> String {
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &i in indices {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == i => *end = i,
            _ => runs.push((i, i)),
        }
    }
    runs.iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Returns base64 of `bytes` (standard, padded).
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// `govledger proof verify-inclusion|verify-consistency`.
pub fn proof_command(c: ProofCommand) -> Result<Outcome> {
    match c {
        ProofCommand::VerifyInclusion(a) => {
            verify_inclusion(&a.leaf_hash, a.index, a.size, &a.root, &a.proof)
        }
        ProofCommand::VerifyConsistency(a) => {
            verify_consistency(a.old_size, a.new_size, &a.old_root, &a.new_root, &a.proof)
        }
    }
}

/// `govledger note verify`.
pub fn note_command(c: NoteCommand) -> Result<Outcome> {
    match c {
        NoteCommand::Verify(a) => note_verify(&a.keys, &a.file),
    }
}

/// `govledger verify`.
pub fn verify_command(a: VerifyCmd) -> Result<Outcome> {
    verify_receipt(
        &a.receipt,
        &a.log_key,
        &a.witness_keys,
        a.witnesses_required,
        a.leaf_hash.as_deref(),
        a.url.as_deref(),
    )
}
