//! Following the log's key rotations (`key_event` entries, ledger-format SPEC.md §3.6) from a
//! key the verifier trusts to the key that signs a given tree head.
//!
//! For each rotation, in log order: the event must rotate away from the key in use, carry both
//! signatures, sit at index `after.size`, be included in the tree being checked, and that tree
//! must be consistent with the head `after` names (the last one the old key signed). The key
//! it names is then in use for trees that include it.

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ledger_format::checkpoint::{Checkpoint, SignedCheckpoint};
use ledger_format::entry::EntryKind;
use ledger_format::key_event::{KeyChain, KeyEvent};
use ledger_format::leaf::Leaf;
use ledger_format::note::{VerifiedSignature, VerifierKey};
use ledger_format::proof::{ConsistencyProof, InclusionProof};
use ledger_format::{Hash, LeafIndex, TreeSize};
use serde_json::Value;

use crate::http::get_json;

/// Returns the proof hashes of a proof answer (`{"proof": [base64, ...]}`).
pub fn proof_path(v: &Value) -> Result<Vec<Hash>> {
    v["proof"]
        .as_array()
        .context("the answer has no proof")?
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap_or_default()).map_err(Into::into))
        .collect()
}

/// Returns the server's consistency proof from `old` to `new` (unverified).
pub fn consistency(url: &str, old: u64, new: u64) -> Result<ConsistencyProof> {
    let v = get_json(&format!("{url}/v1/proofs/consistency?old={old}&new={new}"))?;
    Ok(ConsistencyProof {
        old: TreeSize(old),
        new: TreeSize(new),
        path: proof_path(&v)?,
    })
}

/// Returns the key that signs the tree of `size` leaves with `root`, starting from `trusted`
/// and following every rotation the log records below `size`, with the rotations followed.
pub fn follow(
    url: &str,
    trusted: &VerifierKey,
    size: u64,
    root: &Hash,
) -> Result<(VerifierKey, Vec<KeyEvent>)> {
    let url = url.trim_end_matches('/');
    let mut current = trusted.clone();
    let mut followed = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let mut q = format!("{url}/v1/entries?kind=key_event&limit=100");
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let page = get_json(&q)?;
        for r in page["entries"].as_array().into_iter().flatten() {
            let index = r["index"].as_u64().context("a listed entry has no index")?;
            if index >= size {
                return Ok((current, followed));
            }
            let leaf_bytes = STANDARD
                .decode(r["leaf"].as_str().unwrap_or_default())
                .with_context(|| format!("entry {index}: leaf is not base64"))?;
            let leaf = Leaf::parse(&leaf_bytes).with_context(|| format!("entry {index}"))?;
            if leaf.kind != EntryKind::KeyEvent {
                bail!(
                    "entry {index} was listed as a key_event but is {}",
                    leaf.kind.name()
                );
            }
            let event = KeyEvent::parse(&leaf.body)
                .with_context(|| format!("key_event at index {index}"))?;
            if event.old_key != current {
                bail!(
                    "the key_event at index {index} rotates away from {}, but the key in use is {current}",
                    event.old_key
                );
            }
            if event.after_size != index {
                bail!(
                    "the key_event at index {index} claims to follow the head of size {}",
                    event.after_size
                );
            }
            // The event is in this tree ...
            let v = get_json(&format!(
                "{url}/v1/proofs/inclusion?index={index}&size={size}"
            ))?;
            InclusionProof {
                index: LeafIndex(index),
                size: TreeSize(size),
                path: proof_path(&v)?,
            }
            .verify(&ledger_format::leaf_hash(&leaf_bytes), root)
            .with_context(|| {
                format!("the key_event at index {index} is not in the tree of size {size}")
            })?;
            // ... and this tree extends the head the old key signed last.
            if event.after_size > 0 {
                consistency(url, event.after_size, size)?
                    .verify(&event.after_root, root)
                    .with_context(|| {
                        format!(
                            "the tree of size {size} does not extend the head the key_event at index {index} names"
                        )
                    })?;
            }
            current = event.new_key.clone();
            followed.push(event);
        }
        match page["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => return Ok((current, followed)),
        }
    }
}

/// When `note` (a checkpoint) does not verify with `current`: follows the log's key_event
/// entries from `current` to the key of `note`'s tree and returns it with the rotations and the
/// checkpoint. `Ok(None)`: the log records no rotation below the note's size. An error when
/// the rotations do not check out, or when the note is not signed by a key that signs trees of
/// its size (a retired key beyond its hand-over: the rotation is known, so it is refused).
pub fn follow_note(
    url: &str,
    note: &str,
    current: &VerifierKey,
) -> Result<Option<(VerifierKey, Vec<KeyEvent>, Checkpoint)>> {
    let claimed = SignedCheckpoint::parse(note.as_bytes())?.checkpoint;
    let (key, events) = follow(url, current, claimed.size.0, &claimed.root)?;
    if events.is_empty() {
        return Ok(None);
    }
    let mut chain = KeyChain::new(current.clone());
    for ev in &events {
        chain.push(ev.after_size, ev.new_key.clone());
    }
    let (signed, _) = open_in_chain(note, &chain, &[]).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Some((key, events, signed.checkpoint)))
}

/// Opens a checkpoint note signed by a key of `chain` that signs trees of its size (a retired
/// key beyond its hand-over is refused), with the witnesses' cosignatures it carries.
pub fn open_in_chain(
    note: &str,
    chain: &KeyChain,
    witnesses: &[VerifierKey],
) -> Result<(SignedCheckpoint, Vec<VerifiedSignature>), String> {
    let size = SignedCheckpoint::parse(note.as_bytes())
        .map_err(|e| e.to_string())?
        .checkpoint
        .size
        .0;
    let mut last = String::new();
    for k in chain.keys_for(size).into_iter().rev() {
        match SignedCheckpoint::open(note.as_bytes(), k, witnesses) {
            Ok(x) => return Ok(x),
            Err(e) => last = e.to_string(),
        }
    }
    let signed_by_other = chain
        .keys()
        .any(|k| SignedCheckpoint::open(note.as_bytes(), k, &[]).is_ok());
    if signed_by_other {
        return Err(format!(
            "the checkpoint of size {size} is signed by a log key that does not sign trees of that size (a retired key beyond its hand-over, or a new key before it)"
        ));
    }
    Err(last)
}
