//! C2SP signed notes (c2sp.org/signed-note@v1.0.0) with Ed25519 (type 0x01) and timestamped
//! Ed25519 cosignatures (type 0x04, c2sp.org/tlog-cosignature@v1), and key strings exactly as Go's
//! `golang.org/x/mod/sumdb/note` writes them.
//!
//! A note is text (each line ending in LF), a blank line, then one or more signature lines:
//!
//! ```text
//! This is an example message.
//!
//! — example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=
//! ```
//!
//! The signed message is the text including its final LF. A signature line is `— ` (U+2014 and a
//! space), the key name, a space and base64 of `key_id(4, big-endian) || signature`. The key ID is
//! `SHA-256(name || LF || type || public key)[0:4]`.
//!
//! Keys:
//!
//! ```text
//! verifier  PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW
//! signer    PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz
//! ```
//!
//! The base64 part may contain `+`: split verifier keys on the first two `+`, signer keys on the
//! first four.
//!
//! Lines whose (name, key ID) match no known key are ignored; a line that matches a known key must
//! verify, or the whole note is rejected; a note with no verified signature is rejected.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use std::fmt;

use crate::hash::sha256;

/// The most signature lines a note may carry (Go's `note.Open` limit; C2SP requires >= 16).
pub const MAX_SIGNATURES: usize = 100;

const SIG_PREFIX: &str = "\u{2014} ";

/// The signature types this crate understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SigType {
    /// 0x01: Ed25519 over the note text.
    Ed25519,
    /// 0x04: timestamped Ed25519 checkpoint cosignature (tlog-cosignature v1).
    Cosignature,
}

impl SigType {
    /// Returns the type byte written in keys and hashed into key IDs.
    pub fn byte(self) -> u8 {
        match self {
            SigType::Ed25519 => 0x01,
            SigType::Cosignature => 0x04,
        }
    }

    fn from_byte(b: u8) -> Option<SigType> {
        match b {
            0x01 => Some(SigType::Ed25519),
            0x04 => Some(SigType::Cosignature),
            _ => None,
        }
    }
}

/// Why a key string, a note or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    #[error("malformed key: {0}")]
    BadKey(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("invalid signature by {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("note has no verifiable signatures")]
    NoVerifiedSignature,
}

/// Returns the key ID `SHA-256(name || 0x0A || type || public key)[0:4]` as a big-endian u32.
pub fn key_id(name: &str, sig_type: SigType, public: &[u8]) -> u32 {
    let mut buf = Vec::with_capacity(name.len() + 2 + public.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(sig_type.byte());
    buf.extend_from_slice(public);
    let h = sha256(&buf);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]])
}

/// Returns an error unless `name` is a valid key name: non-empty, no Unicode whitespace, no `+`.
pub fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadKey(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

/// A public key that verifies note signatures (type 0x01) or cosignatures (type 0x04).
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    sig_type: SigType,
    public: VerifyingKey,
}

impl VerifierKey {
    /// Returns the key for `name` and an Ed25519 public key, with the ID derived for `sig_type`.
    pub fn new(
        name: &str,
        sig_type: SigType,
        public: VerifyingKey,
    ) -> Result<VerifierKey, NoteError> {
        check_key_name(name)?;
        Ok(VerifierKey {
            name: name.to_owned(),
            key_id: key_id(name, sig_type, public.as_bytes()),
            sig_type,
            public,
        })
    }

    /// Parses `name+hex8+base64(type || key)`, recomputing the key ID and rejecting a mismatch,
    /// an unknown type or a key that is not 32 bytes.
    pub fn parse(s: &str) -> Result<VerifierKey, NoteError> {
        let s = s.trim();
        let mut parts = s.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadKey("want name+keyid+base64".into()));
        };
        check_key_name(name)?;
        let id = parse_key_id(id_hex)?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|e| NoteError::BadKey(format!("bad base64: {e}")))?;
        let (&t, key) = raw
            .split_first()
            .ok_or_else(|| NoteError::BadKey("empty key".into()))?;
        let sig_type = SigType::from_byte(t)
            .ok_or_else(|| NoteError::BadKey(format!("unknown signature type 0x{t:02x}")))?;
        let key: [u8; 32] = key.try_into().map_err(|_| {
            NoteError::BadKey(format!("Ed25519 key is {} bytes, want 32", key.len()))
        })?;
        let public = VerifyingKey::from_bytes(&key)
            .map_err(|e| NoteError::BadKey(format!("not an Ed25519 point: {e}")))?;
        let vk = VerifierKey::new(name, sig_type, public)?;
        if vk.key_id != id {
            return Err(NoteError::BadKey(format!(
                "key id {id:08x} does not match the key ({:08x})",
                vk.key_id
            )));
        }
        Ok(vk)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the 4-byte key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Returns the signature type this key verifies.
    pub fn sig_type(&self) -> SigType {
        self.sig_type
    }

    /// Returns the Ed25519 public key.
    pub fn public(&self) -> &VerifyingKey {
        &self.public
    }

    /// Returns `true` if `sig` verifies over `msg` with this key's raw Ed25519 public key.
    pub fn verify_raw(&self, msg: &[u8], sig: &[u8]) -> bool {
        Signature::from_slice(sig)
            .map(|s| self.public.verify(msg, &s).is_ok())
            .unwrap_or(false)
    }
}

impl fmt::Display for VerifierKey {
    /// Writes the verifier key string `name+hex8+base64(type || key)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![self.sig_type.byte()];
        raw.extend_from_slice(self.public.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

fn parse_key_id(hex8: &str) -> Result<u32, NoteError> {
    if hex8.len() != 8 || !hex8.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::BadKey(format!(
            "key id {hex8:?} is not 8 hex digits"
        )));
    }
    u32::from_str_radix(hex8, 16).map_err(|e| NoteError::BadKey(e.to_string()))
}

/// An Ed25519 private key with its name, written as Go's signer key
/// `PRIVATE+KEY+name+hex8+base64(0x01 || seed)`.
#[derive(Clone)]
pub struct SignerKey {
    name: String,
    signing: SigningKey,
}

impl SignerKey {
    /// Returns a signer for `name` from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<SignerKey, NoteError> {
        check_key_name(name)?;
        Ok(SignerKey {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// Parses a Go signer key string, checking the key ID against the derived public key.
    pub fn parse(s: &str) -> Result<SignerKey, NoteError> {
        let s = s.trim();
        let mut parts = s.splitn(5, '+');
        let fields: Vec<&str> = parts.by_ref().collect();
        let [p, k, name, id_hex, b64] = fields[..] else {
            return Err(NoteError::BadKey(
                "want PRIVATE+KEY+name+keyid+base64".into(),
            ));
        };
        if p != "PRIVATE" || k != "KEY" {
            return Err(NoteError::BadKey(
                "signer key must start with PRIVATE+KEY+".into(),
            ));
        }
        let id = parse_key_id(id_hex)?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::BadKey("bad base64 in signer key".into()))?;
        if raw.len() != 33 || raw[0] != SigType::Ed25519.byte() {
            return Err(NoteError::BadKey(
                "signer key must be 0x01 followed by a 32-byte seed".into(),
            ));
        }
        let seed: [u8; 32] = raw[1..].try_into().expect("length checked above");
        let key = SignerKey::from_seed(name, seed)?;
        if key.verifier().key_id() != id {
            return Err(NoteError::BadKey(
                "signer key id does not match the key".into(),
            ));
        }
        Ok(key)
    }

    /// Returns the key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the matching note verifier key (type 0x01).
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey::new(&self.name, SigType::Ed25519, self.signing.verifying_key())
            .expect("name was checked when the signer was built")
    }

    /// Returns the matching cosignature verifier key (type 0x04), for witnesses.
    pub fn cosigner_verifier(&self) -> VerifierKey {
        VerifierKey::new(
            &self.name,
            SigType::Cosignature,
            self.signing.verifying_key(),
        )
        .expect("name was checked when the signer was built")
    }

    /// Returns the raw 64-byte Ed25519 signature of `msg`.
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// Returns the Go signer key string. Treat it as a secret.
    pub fn to_secret_string(&self) -> String {
        let mut raw = vec![SigType::Ed25519.byte()];
        raw.extend_from_slice(&self.signing.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.verifier().key_id(),
            STANDARD.encode(raw)
        )
    }

    /// Returns the note signature line (`— name base64(id || sig)\n`) over `text`.
    pub fn sign_line(&self, text: &str) -> String {
        let mut blob = self.verifier().key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(&self.sign_raw(text.as_bytes()));
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignerKey({}, <secret>)", self.verifier())
    }
}

/// One signature line of a note: the key name, the key ID and the rest of the blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    /// The blob after the 4-byte key ID (64 bytes for 0x01, 72 for 0x04).
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// Returns the signature line, LF-terminated.
    pub fn to_line(&self) -> String {
        let mut blob = self.key_id.to_be_bytes().to_vec();
        blob.extend_from_slice(&self.sig);
        format!("{SIG_PREFIX}{} {}\n", self.name, STANDARD.encode(blob))
    }

    /// Parses one signature line without its LF.
    pub fn parse_line(line: &str) -> Result<NoteSignature, NoteError> {
        let rest = line
            .strip_prefix(SIG_PREFIX)
            .ok_or_else(|| NoteError::Malformed(format!("signature line {line:?} lacks '— '")))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| NoteError::Malformed("signature line lacks a space".into()))?;
        check_key_name(name).map_err(|e| NoteError::Malformed(e.to_string()))?;
        let blob = STANDARD
            .decode(b64)
            .map_err(|_| NoteError::Malformed(format!("signature by {name}: bad base64")))?;
        if blob.len() < 5 {
            return Err(NoteError::Malformed(format!(
                "signature by {name}: too short"
            )));
        }
        Ok(NoteSignature {
            name: name.to_owned(),
            key_id: u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]),
            sig: blob[4..].to_vec(),
        })
    }
}

/// A parsed signed note: the text (ending in LF) and its signatures in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

/// A signature that verified, with the key that verified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub key: VerifierKey,
    /// The cosignature timestamp (POSIX seconds) for type 0x04; `None` for 0x01.
    pub timestamp: Option<u64>,
}

/// Returns an error unless `text` is a valid note text: non-empty, valid UTF-8 lines each ending
/// in LF, no control character but LF.
pub fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() || !text.ends_with('\n') {
        return Err(NoteError::Malformed(
            "note text must end in a newline".into(),
        ));
    }
    if text.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::Malformed("control character in note".into()));
    }
    Ok(())
}

impl Note {
    /// Parses a signed note (structure only; see [`Note::verify`]).
    pub fn parse(msg: &[u8]) -> Result<Note, NoteError> {
        let msg = std::str::from_utf8(msg).map_err(|_| NoteError::Malformed("not UTF-8".into()))?;
        if msg.chars().any(|c| c < ' ' && c != '\n') {
            return Err(NoteError::Malformed("control character in note".into()));
        }
        let split = msg
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let (text, sigs) = (&msg[..split + 1], &msg[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must be non-empty and end in a newline".into(),
            ));
        }
        let signatures = sigs[..sigs.len() - 1]
            .split('\n')
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Returns a note over `text` signed by every signer, in order.
    pub fn sign(text: &str, signers: &[&SignerKey]) -> Result<Note, NoteError> {
        check_text(text)?;
        let mut note = Note {
            text: text.to_owned(),
            signatures: Vec::new(),
        };
        for s in signers {
            let line = s.sign_line(text);
            note.signatures
                .push(NoteSignature::parse_line(line.trim_end_matches('\n'))?);
        }
        Ok(note)
    }

    /// Returns the note as bytes: text, blank line, signature lines.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 1 + 110 * self.signatures.len());
        out.push_str(&self.text);
        out.push('\n');
        for s in &self.signatures {
            out.push_str(&s.to_line());
        }
        out
    }

    /// Returns the signatures from `known` keys that verified, in line order, and the lines from
    /// unknown keys apart. A line that matches a known key by name and ID but does not verify
    /// rejects the whole note, and so does a note with no verified signature.
    pub fn verify(&self, known: &[VerifierKey]) -> Result<Vec<VerifiedSignature>, NoteError> {
        let mut verified = Vec::new();
        for s in &self.signatures {
            let Some(key) = known
                .iter()
                .find(|k| k.name == s.name && k.key_id == s.key_id)
            else {
                continue;
            };
            let timestamp = match key.sig_type {
                SigType::Ed25519 => {
                    if !key.verify_raw(self.text.as_bytes(), &s.sig) {
                        return Err(bad(s));
                    }
                    None
                }
                SigType::Cosignature => {
                    Some(crate::cosig::verify_blob(key, &self.text, &s.sig).ok_or_else(|| bad(s))?)
                }
            };
            if !verified.iter().any(|v: &VerifiedSignature| v.key == *key) {
                verified.push(VerifiedSignature {
                    key: key.clone(),
                    timestamp,
                });
            }
        }
        if verified.is_empty() {
            return Err(NoteError::NoVerifiedSignature);
        }
        Ok(verified)
    }

    /// Returns the signature lines whose (name, key ID) match none of `known`.
    pub fn unverified<'a>(&'a self, known: &[VerifierKey]) -> Vec<&'a NoteSignature> {
        self.signatures
            .iter()
            .filter(|s| {
                !known
                    .iter()
                    .any(|k| k.name == s.name && k.key_id == s.key_id)
            })
            .collect()
    }
}

fn bad(s: &NoteSignature) -> NoteError {
    NoteError::InvalidSignature {
        name: s.name.clone(),
        key_id: s.key_id,
    }
}
