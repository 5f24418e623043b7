//! Receipts: offline proof that an entry is in the log. Two equivalent encodings:
//!
//! C2SP tlog-proof (c2sp.org/tlog-proof@v1), whose `extra` line carries the leaf bytes:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra AQEAAAGT...        base64 of the leaf envelope
//! index 41
//! <base64 proof hash>      one per line, leaf sibling first
//!
//! localhost/govledger      the checkpoint note, verbatim, with all its signatures
//! 42
//! <base64 root>
//!
//! — localhost/govledger <base64 signature>
//! ```
//!
//! and the JSON receipt of the HTTP API (SPEC.md §5):
//!
//! ```text
//! {"index": 41, "leaf_hash": "<hex>", "leaf": "<base64 leaf>", "tree_size": 42,
//!  "root": "<base64>", "proof": ["<base64>", ...], "checkpoint": "<signed note text>"}
//! ```
//!
//! A batch answers once for its shared checkpoint ([`BatchReceipts`]):
//!
//! ```text
//! {"tree_size": 42, "root": "<base64>", "checkpoint": "<signed note text>",
//!  "receipts": [{"index": 40, "leaf_hash": "<hex>", "leaf": "<base64>", "proof": [...]}, ...]}
//! ```

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{parse_decimal, Checkpoint, CheckpointError, SignedCheckpoint};
use crate::hash::{leaf_hash, Hash};
use crate::note::{VerifiedSignature, VerifierKey};
use crate::proof::{InclusionProof, VerifyError};
use crate::tree::{LeafIndex, TreeSize};

/// The first line of a tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most proof lines a tlog-proof may carry (a tree of 2^63 leaves needs 63).
pub const MAX_PROOF_LINES: usize = 63;

/// Why a receipt was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("malformed receipt: {0}")]
    Malformed(String),
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    #[error("inclusion proof: {0}")]
    Proof(#[from] VerifyError),
    #[error("receipt says {what} is {claimed} but {actual}")]
    Mismatch {
        what: &'static str,
        claimed: String,
        actual: String,
    },
    #[error("no leaf hash: the receipt carries no leaf bytes")]
    NoLeaf,
}

fn malformed(why: impl Into<String>) -> ReceiptError {
    ReceiptError::Malformed(why.into())
}

/// A parsed c2sp.org/tlog-proof@v1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Application data; for govledger, the leaf bytes.
    pub extra: Option<Vec<u8>>,
    pub index: LeafIndex,
    pub proof: Vec<Hash>,
    /// The checkpoint note, verbatim.
    pub checkpoint: String,
}

impl TlogProof {
    /// Parses the text structure (the checkpoint is kept verbatim and checked by `verify`).
    pub fn parse(text: &[u8]) -> Result<TlogProof, ReceiptError> {
        let text = std::str::from_utf8(text).map_err(|_| malformed("not UTF-8"))?;
        let (header, checkpoint) = text
            .split_once("\n\n")
            .ok_or_else(|| malformed("no blank line before the checkpoint"))?;
        let mut lines = header.split('\n');
        if lines.next() != Some(TLOG_PROOF_HEADER) {
            return Err(malformed(format!("first line must be {TLOG_PROOF_HEADER}")));
        }
        let mut line = lines
            .next()
            .ok_or_else(|| malformed("missing index line"))?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            extra = Some(
                STANDARD
                    .decode(b64)
                    .map_err(|_| malformed("extra is not base64"))?,
            );
            line = lines
                .next()
                .ok_or_else(|| malformed("missing index line"))?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or_else(|| malformed("index line must be 'index <decimal>'"))?;
        let proof = lines
            .map(|l| Hash::from_base64(l).map_err(|e| malformed(format!("proof line: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF_LINES {
            return Err(malformed("too many proof lines"));
        }
        if checkpoint.is_empty() {
            return Err(malformed("missing checkpoint"));
        }
        Ok(TlogProof {
            extra,
            index: LeafIndex(index),
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Returns the tlog-proof text.
    pub fn to_text(&self) -> String {
        let mut s = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(e) = &self.extra {
            s.push_str(&format!("extra {}\n", STANDARD.encode(e)));
        }
        s.push_str(&format!("index {}\n", self.index.0));
        for h in &self.proof {
            s.push_str(&h.to_base64());
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Returns the checkpoint body (origin, size, root) without checking signatures.
    pub fn checkpoint_body(&self) -> Result<Checkpoint, ReceiptError> {
        Ok(SignedCheckpoint::parse(self.checkpoint.as_bytes())
            .map(|s| s.checkpoint)
            .or_else(|_| {
                // Fall back to the text alone, for proofs whose signatures are elided.
                let text = self
                    .checkpoint
                    .rfind("\n\n")
                    .map(|i| &self.checkpoint[..i + 1])
                    .unwrap_or(&self.checkpoint);
                Checkpoint::parse(text)
            })?)
    }

    /// Verifies the proof for `leaf` (defaults to the leaf hash of `extra`) against a
    /// checkpoint signed by `log_key`; witness keys are verified when their lines are present.
    /// Returns the checkpoint and every signature that verified.
    pub fn verify(
        &self,
        leaf: Option<Hash>,
        log_key: &VerifierKey,
        witness_keys: &[VerifierKey],
    ) -> Result<(SignedCheckpoint, Vec<VerifiedSignature>), ReceiptError> {
        let leaf = match (leaf, &self.extra) {
            (Some(h), _) => h,
            (None, Some(extra)) => leaf_hash(extra),
            (None, None) => return Err(ReceiptError::NoLeaf),
        };
        let (signed, verified) =
            SignedCheckpoint::open(self.checkpoint.as_bytes(), log_key, witness_keys)?;
        InclusionProof {
            index: self.index,
            size: signed.checkpoint.size,
            path: self.proof.clone(),
        }
        .verify(&leaf, &signed.checkpoint.root)?;
        Ok((signed, verified))
    }
}

/// The JSON receipt the server returns for one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub index: u64,
    /// Leaf hash, 64 lowercase hex characters.
    pub leaf_hash: String,
    /// Leaf envelope bytes, base64.
    pub leaf: String,
    pub tree_size: u64,
    /// Root of the checkpoint, base64.
    pub root: String,
    /// Inclusion proof, base64 hashes, leaf sibling first.
    pub proof: Vec<String>,
    /// Signed checkpoint note text.
    pub checkpoint: String,
}

impl Receipt {
    /// Returns the same receipt as a tlog-proof, with the leaf bytes in `extra`.
    pub fn to_tlog_proof(&self) -> Result<TlogProof, ReceiptError> {
        Ok(TlogProof {
            extra: Some(
                STANDARD
                    .decode(&self.leaf)
                    .map_err(|_| malformed("leaf is not base64"))?,
            ),
            index: LeafIndex(self.index),
            proof: self
                .proof
                .iter()
                .map(|p| Hash::from_base64(p).map_err(|e| malformed(format!("proof: {e}"))))
                .collect::<Result<_, _>>()?,
            checkpoint: self.checkpoint.clone(),
        })
    }

    /// Verifies the receipt offline against the log key: the leaf hashes to `leaf_hash`, the
    /// checkpoint is signed by the log and matches `tree_size` and `root`, and the inclusion
    /// proof leads from the leaf to that root.
    pub fn verify(&self, log_key: &VerifierKey) -> Result<SignedCheckpoint, ReceiptError> {
        let proof = self.to_tlog_proof()?;
        let leaf = leaf_hash(proof.extra.as_deref().unwrap_or_default());
        let claimed = Hash::from_hex(&self.leaf_hash).map_err(|e| malformed(e.to_string()))?;
        if claimed != leaf {
            return Err(ReceiptError::Mismatch {
                what: "leaf_hash",
                claimed: self.leaf_hash.clone(),
                actual: format!("the leaf hashes to {}", leaf.to_hex()),
            });
        }
        let (signed, _) = proof.verify(Some(leaf), log_key, &[])?;
        if signed.checkpoint.size != TreeSize(self.tree_size) {
            return Err(ReceiptError::Mismatch {
                what: "tree_size",
                claimed: self.tree_size.to_string(),
                actual: format!("the checkpoint says {}", signed.checkpoint.size),
            });
        }
        if signed.checkpoint.root.to_base64() != self.root {
            return Err(ReceiptError::Mismatch {
                what: "root",
                claimed: self.root.clone(),
                actual: format!("the checkpoint says {}", signed.checkpoint.root),
            });
        }
        Ok(signed)
    }
}

/// The answer to a batch: one checkpoint, tree size and root shared by every entry's receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReceipts {
    pub tree_size: u64,
    /// Root of the checkpoint, base64.
    pub root: String,
    /// Signed checkpoint note text.
    pub checkpoint: String,
    /// One per submitted entry, in submission order.
    pub receipts: Vec<EntryProof>,
}

/// A receipt without its checkpoint: an entry of a batch answer, or of an approval bundle
/// (`approval::BundleEntry`), both of which carry one checkpoint for all their entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryProof {
    pub index: u64,
    /// Leaf hash, 64 lowercase hex characters.
    pub leaf_hash: String,
    /// Leaf envelope bytes, base64.
    pub leaf: String,
    /// Inclusion proof to the shared checkpoint, base64 hashes, leaf sibling first.
    pub proof: Vec<String>,
}

/// Why a batch answer was refused: the first receipt that does not verify.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("malformed batch answer: no receipts")]
    Empty,
    #[error("receipt {position} of the batch (index {index}): {error}")]
    Receipt {
        /// Position in `receipts`, from 0.
        position: usize,
        index: u64,
        error: ReceiptError,
    },
}

impl BatchReceipts {
    /// Returns each entry's full receipt, the shared fields copied in, in order.
    pub fn receipts(&self) -> Vec<Receipt> {
        self.receipts
            .iter()
            .map(|r| Receipt {
                index: r.index,
                leaf_hash: r.leaf_hash.clone(),
                leaf: r.leaf.clone(),
                tree_size: self.tree_size,
                root: self.root.clone(),
                proof: r.proof.clone(),
                checkpoint: self.checkpoint.clone(),
            })
            .collect()
    }

    /// Verifies every receipt of the batch as [`Receipt::verify`] does; an empty batch is
    /// refused.
    pub fn verify(&self, log_key: &VerifierKey) -> Result<SignedCheckpoint, BatchError> {
        let mut signed = None;
        for (position, r) in self.receipts().iter().enumerate() {
            signed = Some(r.verify(log_key).map_err(|error| BatchError::Receipt {
                position,
                index: r.index,
                error,
            })?);
        }
        signed.ok_or(BatchError::Empty)
    }
}
