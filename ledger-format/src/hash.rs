//! RFC 6962 §2.1 hashing (RFC 9162 §2.1.1): the 32-byte [`Hash`] newtype, leaf and
//! interior-node hashes with domain separation, and the encodings the ledger uses.
//!
//! ```text
//! empty tree  = SHA-256("")                      e3b0c442...b855
//! leaf hash   = SHA-256(0x00 || entry bytes)
//! node hash   = SHA-256(0x01 || left(32) || right(32))
//! ```
//!
//! Tree hashes travel as standard padded base64 (`47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=`),
//! entry references as 64 lowercase hex characters; [`Hash::parse_any`] accepts either.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

/// Returned when text or bytes are not a 32-byte hash in an accepted encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 32-byte hash: {0}")]
pub struct HashParseError(pub String);

impl Hash {
    /// Returns the root of the empty tree, SHA-256 of no bytes (RFC 6962 §2.1: `MTH({}) = SHA-256()`).
    pub const EMPTY: Hash = Hash([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// Returns the hash held in `bytes`, or an error unless it is exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashParseError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash)
            .map_err(|_| HashParseError(format!("{} bytes, want 32", bytes.len())))
    }

    /// Returns the hash written as standard padded base64 (44 characters).
    pub fn from_base64(s: &str) -> Result<Hash, HashParseError> {
        let bytes = STANDARD
            .decode(s)
            .map_err(|e| HashParseError(format!("bad base64 {s:?}: {e}")))?;
        let h = Hash::from_slice(&bytes)?;
        // Canonical form only, so one hash has one spelling in signed text.
        if h.to_base64() != s {
            return Err(HashParseError(format!("non-canonical base64 {s:?}")));
        }
        Ok(h)
    }

    /// Returns the hash written as 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Hash, HashParseError> {
        if s.len() != 64 {
            return Err(HashParseError(format!(
                "{} hex characters, want 64",
                s.len()
            )));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|e| HashParseError(format!("bad hex: {e}")))?;
        Ok(Hash(out))
    }

    /// Returns the hash written either as 64 hex characters or as padded base64, as CLIs accept.
    pub fn parse_any(s: &str) -> Result<Hash, HashParseError> {
        let s = s.trim();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Hash::from_hex(s)
        } else {
            Hash::from_base64(s)
        }
    }

    /// Returns the standard padded base64 form used in proofs, roots, tiles and notes.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Returns the 64 lowercase hex characters used for entry references.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Returns the raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// Returns `SHA-256(0x00 || entry)`, the RFC 6962 leaf hash of the entry bytes.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// Returns `SHA-256(0x01 || left || right)`, the RFC 6962 interior-node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(&left.0);
    buf[33..].copy_from_slice(&right.0);
    Hash(Sha256::digest(buf).into())
}

/// Returns SHA-256 of `data` (not domain separated: content digests and key IDs).
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_sha256_of_nothing() {
        assert_eq!(Hash::EMPTY.0, sha256(b""));
        assert_eq!(
            Hash::EMPTY.to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn parse_any_takes_hex_and_base64() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::parse_any(&h.to_hex()).unwrap(), h);
        assert_eq!(Hash::parse_any(&h.to_hex().to_uppercase()).unwrap(), h);
        assert_eq!(Hash::parse_any(&h.to_base64()).unwrap(), h);
        assert!(Hash::parse_any("AAAA").is_err());
        assert!(Hash::parse_any(&h.to_hex()[1..]).is_err());
    }
}
