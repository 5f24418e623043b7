//! Tree heads, c2sp.org/tlog-checkpoint@v1.0.0, parsed strictly.
//!
//! A checkpoint is the text of a signed note:
//!
//! ```text
//! localhost/govledger                             origin
//! 42                                              tree size, decimal, no leading zeros
//! 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=    root: canonical base64 of 32 bytes
//! [extension line]                                optional, each non-empty
//! ```
//!
//! This parser is the strict one: it refuses roots that are not exactly 32 bytes in canonical
//! base64, sizes with leading zeros or past u64, empty extension lines, a missing final LF, and a
//! size-0 checkpoint whose root is not the empty-tree hash.

use crate::hash::Hash;
use crate::note::{Note, NoteError, VerifiedSignature, VerifierKey};
use crate::tree::TreeSize;

/// Why a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("checkpoint origin {got:?} is not the expected {want:?}")]
    WrongOrigin { got: String, want: String },
}

/// A parsed tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: TreeSize,
    pub root: Hash,
    pub extensions: Vec<String>,
}

fn malformed(why: impl Into<String>) -> CheckpointError {
    CheckpointError::Malformed(why.into())
}

/// Returns the decimal `s` when it matches `0|[1-9][0-9]*` and fits in a u64.
pub fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

impl Checkpoint {
    /// Parses a checkpoint body (the note text, ending in LF).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| malformed("checkpoint text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        if origin.is_empty() {
            return Err(malformed("empty origin"));
        }
        if origin.chars().any(|c| c.is_control()) {
            return Err(malformed("control character in origin"));
        }
        let size = lines
            .next()
            .and_then(parse_decimal)
            .ok_or_else(|| malformed("tree size must be a decimal u64 without leading zeros"))?;
        let root = lines
            .next()
            .ok_or_else(|| malformed("missing root hash line"))
            .and_then(|l| Hash::from_base64(l).map_err(|e| malformed(format!("root hash: {e}"))))?;
        if size == 0 && root != Hash::EMPTY {
            return Err(malformed(
                "a size-0 checkpoint must carry the empty-tree root",
            ));
        }
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(|l| l.is_empty()) {
            return Err(malformed("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: TreeSize(size),
            root,
            extensions,
        })
    }

    /// Returns the checkpoint text, each line ending in LF.
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size.0,
            self.root.to_base64()
        );
        for e in &self.extensions {
            s.push_str(e);
            s.push('\n');
        }
        s
    }
}

/// A checkpoint together with the signed note it came in (log signature and any cosignatures).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: Note,
}

impl SignedCheckpoint {
    /// Parses a signed checkpoint note without verifying any signature.
    pub fn parse(note: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
        let note = Note::parse(note)?;
        let checkpoint = Checkpoint::parse(&note.text)?;
        Ok(SignedCheckpoint { checkpoint, note })
    }

    /// Parses a signed checkpoint and verifies it was signed by `log_key`, whose name must be
    /// the checkpoint's origin. Returns the checkpoint with every known signature that verified
    /// (log first among `keys`; pass witness keys after it to collect cosignatures).
    pub fn open(
        note: &[u8],
        log_key: &VerifierKey,
        witness_keys: &[VerifierKey],
    ) -> Result<(SignedCheckpoint, Vec<VerifiedSignature>), CheckpointError> {
        let signed = SignedCheckpoint::parse(note)?;
        if signed.checkpoint.origin != log_key.name() {
            return Err(CheckpointError::WrongOrigin {
                got: signed.checkpoint.origin.clone(),
                want: log_key.name().to_owned(),
            });
        }
        // The log's own signature is required; witness lines are optional extras here.
        signed.note.verify(std::slice::from_ref(log_key))?;
        let mut keys = vec![log_key.clone()];
        keys.extend_from_slice(witness_keys);
        let verified = signed.note.verify(&keys)?;
        Ok((signed, verified))
    }

    /// Returns the full note text with all signature lines.
    pub fn to_text(&self) -> String {
        self.note.to_text()
    }
}
