//! Names of anchored checkpoints in every anchor backend (SPEC.md §9), shared by the server
//! that writes them and the verifiers that read them back.

use sha2::{Digest, Sha256};

/// The directory anchor's file name for the checkpoint of `size`.
pub fn file_name(size: u64) -> String {
    format!("{size:020}.checkpoint")
}

/// Returns the size a directory-anchor file name or an S3 object name ends with.
pub fn size_of_name(name: &str) -> Option<u64> {
    let stem = name.rsplit('/').next()?.strip_suffix(".checkpoint")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Lowercase hex SHA-256 of the origin: the per-log path component (as tlog-witness uses).
pub fn origin_id(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// The S3 object prefix of a log: `<prefix>/<origin_id>/`.
pub fn s3_log_prefix(prefix: &str, origin: &str) -> String {
    let p = prefix.trim_end_matches('/');
    if p.is_empty() {
        format!("{}/", origin_id(origin))
    } else {
        format!("{p}/{}/", origin_id(origin))
    }
}

/// The S3 object name of the checkpoint of `size`.
pub fn s3_key(prefix: &str, origin: &str, size: u64) -> String {
    format!("{}{}", s3_log_prefix(prefix, origin), file_name(size))
}

/// Kafka header carrying the checkpoint's tree size (decimal).
pub const HEADER_TREE_SIZE: &str = "tree_size";
/// Kafka header carrying the checkpoint's root (base64).
pub const HEADER_ROOT: &str = "root";
/// Kafka header carrying an entry's leaf hash (hex), on the entries topic.
pub const HEADER_LEAF_HASH: &str = "leaf_hash";
/// Kafka header carrying the log origin, on the entries topic.
pub const HEADER_ORIGIN: &str = "origin";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(42), "00000000000000000042.checkpoint");
        assert_eq!(size_of_name(&file_name(42)), Some(42));
        let k = s3_key("govledger/", "localhost/govledger", 7);
        assert!(k.starts_with("govledger/") && k.ends_with("/00000000000000000007.checkpoint"));
        assert_eq!(size_of_name(&k), Some(7));
        assert_eq!(size_of_name("x/.00000000000000000007.checkpoint.tmp"), None);
        assert_eq!(size_of_name("7.checkpoint"), None);
    }
}
