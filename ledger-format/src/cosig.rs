//! Witness cosignatures, c2sp.org/tlog-cosignature@v1.0.1 (Ed25519, signature type 0x04).
//!
//! A cosignature is a note signature line whose blob is
//! `key_id(4) || timestamp(u64 big-endian, POSIX seconds) || Ed25519 signature(64)` (76 bytes),
//! where the key ID is derived with type byte 0x04 and the signature covers:
//!
//! ```text
//! cosignature/v1
//! time 1679315147
//! example.com/behind-the-sofa
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//! ```
//!
//! that is, the label, the timestamp and the whole checkpoint text (extension lines included).

use crate::note::{NoteSignature, SigType, SignerKey, VerifierKey};

/// Returns the exact bytes a cosignature signs: `cosignature/v1\ntime <t>\n<checkpoint text>`.
pub fn message(timestamp: u64, checkpoint_text: &str) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{checkpoint_text}")
}

/// Returns the cosignature line by `witness` over `checkpoint_text` at `timestamp`.
pub fn cosign(witness: &SignerKey, checkpoint_text: &str, timestamp: u64) -> NoteSignature {
    let vk = witness.cosigner_verifier();
    let mut sig = timestamp.to_be_bytes().to_vec();
    sig.extend_from_slice(&witness.sign_raw(message(timestamp, checkpoint_text).as_bytes()));
    NoteSignature {
        name: vk.name().to_owned(),
        key_id: vk.key_id(),
        sig,
    }
}

/// Returns the timestamp of a valid cosignature blob (the bytes after the key ID) by `key` over
/// `checkpoint_text`, or `None` if it is not 72 bytes, the timestamp exceeds 2^63-1 or the
/// signature does not verify.
pub fn verify_blob(key: &VerifierKey, checkpoint_text: &str, blob: &[u8]) -> Option<u64> {
    if key.sig_type() != SigType::Cosignature || blob.len() != 72 {
        return None;
    }
    let timestamp = u64::from_be_bytes(blob[..8].try_into().expect("72-byte blob"));
    if timestamp > i64::MAX as u64 {
        return None;
    }
    key.verify_raw(message(timestamp, checkpoint_text).as_bytes(), &blob[8..])
        .then_some(timestamp)
}

/// Returns the cosignature form (type 0x04, key ID re-derived) of a key written as a plain 0x01
/// verifier key, as transparency-dev/formats' `NewVerifierForCosignatureV1` accepts.
pub fn as_cosigner(key: &VerifierKey) -> VerifierKey {
    VerifierKey::new(key.name(), SigType::Cosignature, *key.public())
        .expect("the name was valid in the original key")
}
