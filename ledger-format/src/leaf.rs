//! The leaf envelope: the exact bytes that are hashed into the tree (SPEC.md §2).
//!
//! ```text
//! u8   version = 1
//! u8   kind            1 audit, 2 lineage, 3 approval_request, 4 approval, 5 deployment, 6 key_event
//! u64  logged_at_ms    big-endian, server clock, non-decreasing across the log
//! u8   len || submitter        authenticated client name, printable ASCII, 1..=255 bytes
//! u8   len || entry_id         idempotency key, printable ASCII, 0..=255 bytes (empty = none)
//! u16  len || body             UTF-8 JSON object, the submitter's bytes verbatim
//! ```
//!
//! The whole leaf is at most 65,535 bytes so that a tlog-tiles entry bundle can frame it.
//! Example: an audit entry by `anonymous` with no entry ID and body `{}` at t = 1 ms is
//! `01 01 0000000000000001 09 616e6f6e796d6f7573 00 0002 7b7d`.

use crate::entry::EntryKind;
use crate::tile::MAX_ENTRY_SIZE;

/// The only envelope version this crate writes and reads.
pub const LEAF_VERSION: u8 = 1;
/// Bytes of the envelope around submitter, entry ID and body.
pub const LEAF_OVERHEAD: usize = 1 + 1 + 8 + 1 + 1 + 2;

/// Why leaf bytes or fields were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafError {
    #[error("leaf of {0} bytes exceeds the 65535-byte limit")]
    TooLarge(usize),
    #[error("unsupported leaf version {0}")]
    Version(u8),
    #[error("unknown entry kind {0}")]
    Kind(u8),
    #[error("invalid {field}: {why}")]
    Field { field: &'static str, why: String },
    #[error("truncated leaf")]
    Truncated,
    #[error("{0} trailing bytes after the body")]
    Trailing(usize),
}

/// A decoded leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub kind: EntryKind,
    pub logged_at_ms: u64,
    pub submitter: String,
    pub entry_id: String,
    /// The JSON body exactly as submitted.
    pub body: Vec<u8>,
}

/// Returns an error unless `s` is printable ASCII (0x21..=0x7e, so no spaces) of `min..=255` bytes.
pub fn check_ascii_field(field: &'static str, s: &str, min: usize) -> Result<(), LeafError> {
    if s.len() < min || s.len() > 255 {
        return Err(LeafError::Field {
            field,
            why: format!("length {} is outside {min}..=255", s.len()),
        });
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(LeafError::Field {
            field,
            why: "must be printable ASCII without spaces".into(),
        });
    }
    Ok(())
}

/// Returns the encoded size of a leaf with these field lengths.
pub fn encoded_len(submitter: usize, entry_id: usize, body: usize) -> usize {
    LEAF_OVERHEAD + submitter + entry_id + body
}

impl Leaf {
    /// Returns the envelope bytes, or an error if a field is invalid or the leaf is too large.
    /// The body is checked to be UTF-8 only; its JSON schema is the submission layer's job.
    pub fn encode(&self) -> Result<Vec<u8>, LeafError> {
        check_ascii_field("submitter", &self.submitter, 1)?;
        check_ascii_field("entry_id", &self.entry_id, 0)?;
        let len = encoded_len(self.submitter.len(), self.entry_id.len(), self.body.len());
        if len > MAX_ENTRY_SIZE {
            return Err(LeafError::TooLarge(len));
        }
        if std::str::from_utf8(&self.body).is_err() {
            return Err(LeafError::Field {
                field: "body",
                why: "not UTF-8".into(),
            });
        }
        let mut out = Vec::with_capacity(len);
        out.push(LEAF_VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&self.logged_at_ms.to_be_bytes());
        out.push(self.submitter.len() as u8);
        out.extend_from_slice(self.submitter.as_bytes());
        out.push(self.entry_id.len() as u8);
        out.extend_from_slice(self.entry_id.as_bytes());
        out.extend_from_slice(&(self.body.len() as u16).to_be_bytes());
        out.extend_from_slice(&self.body);
        Ok(out)
    }

    /// Parses envelope bytes, checking every field and that nothing trails the body.
    pub fn parse(bytes: &[u8]) -> Result<Leaf, LeafError> {
        if bytes.len() > MAX_ENTRY_SIZE {
            return Err(LeafError::TooLarge(bytes.len()));
        }
        let mut r = Reader(bytes);
        let version = r.u8()?;
        if version != LEAF_VERSION {
            return Err(LeafError::Version(version));
        }
        let code = r.u8()?;
        let kind = EntryKind::from_code(code).ok_or(LeafError::Kind(code))?;
        let logged_at_ms = u64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes"));
        let submitter = r.ascii("submitter", 1)?;
        let entry_id = r.ascii("entry_id", 0)?;
        let body_len = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes")) as usize;
        let body = r.take(body_len)?.to_vec();
        if !r.0.is_empty() {
            return Err(LeafError::Trailing(r.0.len()));
        }
        if std::str::from_utf8(&body).is_err() {
            return Err(LeafError::Field {
                field: "body",
                why: "not UTF-8".into(),
            });
        }
        Ok(Leaf {
            kind,
            logged_at_ms,
            submitter,
            entry_id,
            body,
        })
    }

    /// Returns the body as text (it is UTF-8 by construction).
    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LeafError> {
        if self.0.len() < n {
            return Err(LeafError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, LeafError> {
        Ok(self.take(1)?[0])
    }

    fn ascii(&mut self, field: &'static str, min: usize) -> Result<String, LeafError> {
        let n = self.u8()? as usize;
        let bytes = self.take(n)?;
        let s = String::from_utf8(bytes.to_vec()).map_err(|_| LeafError::Field {
            field,
            why: "not ASCII".into(),
        })?;
        check_ascii_field(field, &s, min)?;
        Ok(s)
    }
}
