//! The witness side of c2sp.org/tlog-witness@v1.0.0 (`add-checkpoint`), without I/O: parsing
//! and encoding the request body and deciding it against the witness's state. The caller holds
//! the state, persists the new one before answering, and adds the cosignature
//! ([`crate::cosig::cosign`]).
//!
//! Status codes follow the current C2SP text: 404 unknown origin, 403 no valid signature by the
//! log's key, 400 malformed or `old` beyond the checkpoint, 409 `old` differing from the size
//! last cosigned (the body is that size), 422 a consistency proof that does not verify, a
//! non-empty proof from size 0, a size-0 checkpoint whose root is not the empty hash, or the
//! same size with another root (v1.0.0 answered 409 there; log clients accept both).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

use crate::checkpoint::SignedCheckpoint;
use crate::note::{NoteError, VerifierKey};
use crate::proof::ConsistencyProof;
use crate::{Hash, TreeSize};

/// Most proof lines a request may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;

/// The content type of a 409 answer's body.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// A parsed `add-checkpoint` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, exact bytes.
    pub note: Vec<u8>,
}

/// A refused request and its HTTP status.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WitnessError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown log {0:?}")]
    UnknownLog(String),
    #[error("invalid signature: no valid signature by the log's key")]
    BadSignature,
    /// Only keys older than the one that signed the last cosigned checkpoint signed this one.
    #[error("invalid signature: signed only by {0}, a key the log has rotated away from")]
    RetiredKey(String),
    /// The size this witness last cosigned for the origin.
    #[error("old size mismatch: the latest cosigned size is {0}")]
    Conflict(u64),
    #[error("consistency proof: {0}")]
    BadProof(String),
}

impl WitnessError {
    /// Returns the HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            WitnessError::Malformed(_) => 400,
            WitnessError::UnknownLog(_) => 404,
            WitnessError::BadSignature | WitnessError::RetiredKey(_) => 403,
            WitnessError::Conflict(_) => 409,
            WitnessError::BadProof(_) => 422,
        }
    }

    /// Returns the body the witness answers with.
    pub fn body(&self) -> String {
        match self {
            WitnessError::Conflict(size) => format!("{size}\n"),
            e => format!("{e}\n"),
        }
    }
}

fn decimal(s: &str) -> Option<u64> {
    crate::checkpoint::parse_decimal(s)
}

impl AddCheckpoint {
    /// Parses a request body: `old <n>\n`, up to 63 proof lines, an empty line, the note.
    pub fn parse(body: &[u8]) -> Result<AddCheckpoint, WitnessError> {
        let malformed = |m: &str| WitnessError::Malformed(m.to_owned());
        let split = body
            .windows(2)
            .position(|w| w == b"\n\n")
            .ok_or_else(|| malformed("no empty line after the header"))?;
        let header = std::str::from_utf8(&body[..split])
            .map_err(|_| malformed("the header is not UTF-8"))?;
        let mut lines = header.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(decimal)
            .ok_or_else(|| malformed("the first line must be \"old <size>\""))?;
        let proof = lines
            .map(|l| Hash::from_base64(l).map_err(|e| malformed(&format!("proof line: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(malformed("more than 63 proof lines"));
        }
        Ok(AddCheckpoint {
            old,
            proof,
            note: body[split + 2..].to_vec(),
        })
    }

    /// Returns the request body.
    pub fn encode(old: u64, proof: &[Hash], note: &str) -> String {
        let mut s = format!("old {old}\n");
        for h in proof {
            s.push_str(&STANDARD.encode(h.0));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(note);
        s
    }
}

/// What a witness remembers about one log: the latest checkpoint it cosigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogState {
    pub size: u64,
    pub root: Hash,
    /// The rank, among the keys trusted for the origin in the order given (oldest first), of
    /// the newest key that signed the cosigned checkpoint (see [`signer_rank`]).
    pub key: usize,
}

/// Opens `note`, a checkpoint of `origin`, with the keys trusted for that origin: a witness may
/// trust several (a log rotating its key, for the time of the hand-over). At least one must
/// have signed it, and a line that names a trusted key but does not verify is refused (403),
/// whatever the other lines. The returned note keeps only the signature lines of the trusted
/// keys that verified it: what a witness stores and serves is the log's checkpoint under the
/// key that signed it, whichever of the trusted keys that was.
pub fn open_trusted(
    note: &[u8],
    origin: &str,
    logs: &[VerifierKey],
) -> Result<SignedCheckpoint, WitnessError> {
    let trusted: Vec<&VerifierKey> = trusted_for(logs, origin).collect();
    if trusted.is_empty() {
        return Err(WitnessError::UnknownLog(origin.to_owned()));
    }
    let mut opened: Option<SignedCheckpoint> = None;
    let mut signers: Vec<&VerifierKey> = Vec::new();
    for key in trusted {
        match SignedCheckpoint::open(note, key, &[]) {
            Ok((signed, _)) => {
                opened = Some(signed);
                signers.push(key);
            }
            Err(crate::checkpoint::CheckpointError::Note(NoteError::NoVerifiedSignature)) => {}
            Err(_) => return Err(WitnessError::BadSignature),
        }
    }
    let mut signed = opened.ok_or(WitnessError::BadSignature)?;
    signed
        .note
        .signatures
        .retain(|s| signers.iter().any(|k| names(k, s)));
    Ok(signed)
}

/// Whether the signature line `s` names the key `k`.
fn names(k: &VerifierKey, s: &crate::note::NoteSignature) -> bool {
    k.name() == s.name && k.key_id() == s.key_id
}

/// The keys trusted for `origin`, oldest first.
fn trusted_for<'a>(
    logs: &'a [VerifierKey],
    origin: &'a str,
) -> impl Iterator<Item = &'a VerifierKey> {
    logs.iter().filter(move |k| k.name() == origin)
}

/// Returns the rank of the newest trusted key of the checkpoint's origin that signed `signed`
/// (a note as [`open_trusted`] returns it), the keys ranked in the order `logs` gives them:
/// oldest first. A witness given several keys of one log (a rotation) refuses a checkpoint
/// whose newest signer ranks below that of the checkpoint it cosigned last: once it has seen
/// the new key (in the hand-over head, signed by both), the retired key alone no longer
/// speaks for the log, whoever holds it.
pub fn signer_rank(signed: &SignedCheckpoint, logs: &[VerifierKey]) -> usize {
    trusted_for(logs, &signed.checkpoint.origin)
        .enumerate()
        .filter(|(_, k)| signed.note.signatures.iter().any(|s| names(k, s)))
        .map(|(rank, _)| rank)
        .max()
        .unwrap_or(0)
}

/// Decides a request. `logs` are the log keys this witness follows (name = origin); `state`
/// returns the state for an origin (`None`: never cosigned, size 0). On success returns the
/// verified checkpoint: the caller records it as the new state (atomically with the check:
/// compare the state it read with the one it replaces) and cosigns it.
pub fn decide(
    req: &AddCheckpoint,
    logs: &[VerifierKey],
    state: impl FnOnce(&str) -> Option<LogState>,
) -> Result<SignedCheckpoint, WitnessError> {
    // The checkpoint text decides the origin; a note whose signature lines do not parse is
    // "no valid signature" (403), as the litewitness vectors expect, not a malformed request.
    let text_end = req
        .note
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or_else(|| WitnessError::Malformed("the note has no signatures".into()))?;
    let text = std::str::from_utf8(&req.note[..text_end + 1])
        .map_err(|_| WitnessError::Malformed("the checkpoint is not UTF-8".into()))?;
    let origin = crate::checkpoint::Checkpoint::parse(text)
        .map_err(|e| WitnessError::Malformed(format!("checkpoint: {e}")))?
        .origin;
    let signed = open_trusted(&req.note, &origin, logs)?;
    let (size, root) = (signed.checkpoint.size.0, signed.checkpoint.root);
    if req.old > size {
        return Err(WitnessError::Malformed(format!(
            "old size {} is beyond the checkpoint's size {size}",
            req.old
        )));
    }
    let have = state(&origin);
    if let Some(h) = have {
        let rank = signer_rank(&signed, logs);
        if rank < h.key {
            let signer = trusted_for(logs, &origin)
                .nth(rank)
                .map(|k| k.to_string())
                .unwrap_or_default();
            return Err(WitnessError::RetiredKey(signer));
        }
    }
    let have_size = have.map_or(0, |s| s.size);
    if req.old != have_size {
        return Err(WitnessError::Conflict(have_size));
    }
    if size == 0 && root != Hash::EMPTY {
        return Err(WitnessError::BadProof(
            "a size-0 checkpoint must have the empty tree's root".into(),
        ));
    }
    match have {
        None => {
            if !req.proof.is_empty() {
                return Err(WitnessError::BadProof(
                    "a proof from size 0 must be empty".into(),
                ));
            }
        }
        Some(s) if s.size == size => {
            if s.root != root {
                return Err(WitnessError::BadProof(format!(
                    "same size {size} with another root: a fork"
                )));
            }
            if !req.proof.is_empty() {
                return Err(WitnessError::BadProof(
                    "a proof between equal sizes must be empty".into(),
                ));
            }
        }
        Some(s) if s.size == 0 => {
            if !req.proof.is_empty() {
                return Err(WitnessError::BadProof(
                    "a proof from size 0 must be empty".into(),
                ));
            }
        }
        Some(s) => ConsistencyProof {
            old: TreeSize(s.size),
            new: TreeSize(size),
            path: req.proof.clone(),
        }
        .verify(&s.root, &root)
        .map_err(|e| WitnessError::BadProof(e.to_string()))?,
    }
    Ok(signed)
}
