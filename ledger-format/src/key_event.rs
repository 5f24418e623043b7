//! `key_event` entries: the log's own record of a key rotation (SPEC.md §3.6).
//!
//! A rotation is a statement `{"event": "rotation", "origin", "old_key", "new_key", "after":
//! {"size", "root"}, "reason"}` signed by both keys over `"govledger key_event v1\n"` followed
//! by the statement's RFC 8785 form (the prefix keeps these signatures apart from note
//! signatures made with the same keys). The old key vouches for the new one, the new key
//! proves it is held, and `after` binds the hand-over to the tree head the old key signed last.
//! A verifier that trusts the old key accepts a checkpoint signed by the new key when the
//! event is included in that checkpoint's tree and the tree is consistent with `after`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::note::{SignerKey, VerifierKey};
use crate::Hash;

/// The prefix of every signed key_event message.
pub const DOMAIN: &str = "govledger key_event v1\n";

/// A verified key rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEvent {
    pub origin: String,
    pub old_key: VerifierKey,
    pub new_key: VerifierKey,
    /// The tree head (last signed by the old key) the hand-over follows; the event's own index
    /// is `after_size` when the log writes it.
    pub after_size: u64,
    pub after_root: Hash,
    pub reason: String,
}

/// Why a key_event body was refused (the field at fault and why).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct KeyEventError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> KeyEventError {
    KeyEventError {
        field: field.to_owned(),
        message: message.into(),
    }
}

impl KeyEvent {
    /// Returns the signed statement (without signatures).
    pub fn statement(&self) -> Value {
        json!({
            "event": "rotation",
            "origin": self.origin,
            "old_key": self.old_key.to_string(),
            "new_key": self.new_key.to_string(),
            "after": {"size": self.after_size, "root": self.after_root.to_base64()},
            "reason": self.reason,
        })
    }

    fn message(&self) -> Vec<u8> {
        let canonical = crate::jcs::canonicalize(&self.statement())
            .expect("a key_event statement holds strings and integers only");
        let mut m = DOMAIN.as_bytes().to_vec();
        m.extend_from_slice(canonical.as_bytes());
        m
    }

    /// Returns the entry body: the statement and both signatures, as JSON text.
    pub fn sign(&self, old: &SignerKey, new: &SignerKey) -> Result<String, KeyEventError> {
        if old.verifier() != self.old_key {
            return Err(err("old_key", "the old signer is not old_key"));
        }
        if new.verifier() != self.new_key {
            return Err(err("new_key", "the new signer is not new_key"));
        }
        let m = self.message();
        let body = json!({
            "statement": self.statement(),
            "signatures": {
                "old": STANDARD.encode(old.sign_raw(&m)),
                "new": STANDARD.encode(new.sign_raw(&m)),
            },
        });
        Ok(body.to_string())
    }

    /// Parses a key_event body and checks both signatures.
    pub fn parse(body: &[u8]) -> Result<KeyEvent, KeyEventError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| err("", format!("malformed JSON: {e}")))?;
        let top = v
            .as_object()
            .ok_or_else(|| err("", "the body must be a JSON object"))?;
        only(top, &["statement", "signatures"], "")?;
        let st = obj(top, "statement")?;
        only(
            st,
            &["event", "origin", "old_key", "new_key", "after", "reason"],
            "statement.",
        )?;
        if st.get("event").and_then(Value::as_str) != Some("rotation") {
            return Err(err("statement.event", "must be \"rotation\""));
        }
        let origin = text(st, "origin")?;
        let key = |f: &str| {
            VerifierKey::parse(text(st, f)?)
                .map_err(|e| err(&format!("statement.{f}"), e.to_string()))
        };
        let (old_key, new_key) = (key("old_key")?, key("new_key")?);
        if old_key.name() != origin || new_key.name() != origin {
            return Err(err(
                "statement.new_key",
                "both keys must be named after the origin",
            ));
        }
        if old_key == new_key {
            return Err(err("statement.new_key", "the new key is the old key"));
        }
        let after = obj(st, "after").map_err(|e| err("statement.after", e.message))?;
        only(after, &["size", "root"], "statement.after.")?;
        let after_size = after
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| err("statement.after.size", "must be a non-negative integer"))?;
        let after_root = after
            .get("root")
            .and_then(Value::as_str)
            .and_then(|r| Hash::from_base64(r).ok())
            .ok_or_else(|| err("statement.after.root", "must be a base64 SHA-256 hash"))?;
        let event = KeyEvent {
            origin: origin.to_owned(),
            old_key,
            new_key,
            after_size,
            after_root,
            reason: st
                .get("reason")
                .map(|r| {
                    r.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| err("statement.reason", "must be text"))
                })
                .transpose()?
                .unwrap_or_default(),
        };
        // The statement must be exactly what is signed (no number spellings or key order
        // games: the signed bytes are recomputed from the parsed values).
        if event.statement() != Value::Object(st.clone()) {
            return Err(err("statement", "fields are not in their canonical form"));
        }
        let sigs = obj(top, "signatures")?;
        only(sigs, &["old", "new"], "signatures.")?;
        let m = event.message();
        for (field, key) in [("old", &event.old_key), ("new", &event.new_key)] {
            let sig = sigs
                .get(field)
                .and_then(Value::as_str)
                .and_then(|s| STANDARD.decode(s).ok())
                .ok_or_else(|| err(&format!("signatures.{field}"), "must be base64"))?;
            if !key.verify_raw(&m, &sig) {
                return Err(err(
                    &format!("signatures.{field}"),
                    format!("does not verify with the {field} key"),
                ));
            }
        }
        Ok(event)
    }
}

fn obj<'a>(m: &'a Map<String, Value>, f: &str) -> Result<&'a Map<String, Value>, KeyEventError> {
    m.get(f)
        .and_then(Value::as_object)
        .ok_or_else(|| err(f, "must be an object"))
}

fn text<'a>(m: &'a Map<String, Value>, f: &str) -> Result<&'a str, KeyEventError> {
    m.get(f)
        .and_then(Value::as_str)
        .ok_or_else(|| err(&format!("statement.{f}"), "must be text"))
}

fn only(m: &Map<String, Value>, allowed: &[&str], prefix: &str) -> Result<(), KeyEventError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(&format!("{prefix}{k}"), "unknown field")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> (SignerKey, SignerKey) {
        (
            SignerKey::from_seed("example.com/log", [1; 32]).unwrap(),
            SignerKey::from_seed("example.com/log", [2; 32]).unwrap(),
        )
    }

    fn event(old: &SignerKey, new: &SignerKey) -> KeyEvent {
        KeyEvent {
            origin: "example.com/log".into(),
            old_key: old.verifier(),
            new_key: new.verifier(),
            after_size: 42,
            after_root: Hash([7; 32]),
            reason: "scheduled".into(),
        }
    }

    #[test]
    fn a_signed_rotation_round_trips() {
        let (old, new) = keys();
        let e = event(&old, &new);
        let body = e.sign(&old, &new).unwrap();
        assert_eq!(KeyEvent::parse(body.as_bytes()).unwrap(), e);
    }

    #[test]
    fn any_change_or_a_missing_signature_is_refused() {
        let (old, new) = keys();
        let e = event(&old, &new);
        let body: Value = serde_json::from_str(&e.sign(&old, &new).unwrap()).unwrap();
        let refuse = |edit: &dyn Fn(&mut Value), field: &str| {
            let mut b = body.clone();
            edit(&mut b);
            let got = KeyEvent::parse(b.to_string().as_bytes()).unwrap_err();
            assert_eq!(got.field, field, "{got}");
        };
        refuse(
            &|b| b["statement"]["after"]["size"] = 43.into(),
            "signatures.old",
        );
        refuse(&|b| b["statement"]["reason"] = "x".into(), "signatures.old");
        refuse(
            &|b| b["signatures"]["new"] = b["signatures"]["old"].clone(),
            "signatures.new",
        );
        refuse(
            &|b| {
                b["signatures"].as_object_mut().unwrap().remove("new");
            },
            "signatures.new",
        );
        refuse(&|b| b["statement"]["extra"] = 1.into(), "statement.extra");
        refuse(
            &|b| b["statement"]["event"] = "revoke".into(),
            "statement.event",
        );
        // A third key cannot stand in for the new one.
        let other = SignerKey::from_seed("example.com/log", [3; 32]).unwrap();
        let mut forged = e.clone();
        forged.new_key = other.verifier();
        let b = forged.sign(&old, &other).unwrap();
        let mut v: Value = serde_json::from_str(&b).unwrap();
        v["statement"]["new_key"] = new.verifier().to_string().into();
        assert_eq!(
            KeyEvent::parse(v.to_string().as_bytes()).unwrap_err().field,
            "signatures.old"
        );
    }

    #[test]
    fn signatures_are_domain_separated_from_raw_statements() {
        let (old, new) = keys();
        let e = event(&old, &new);
        let canonical = crate::jcs::canonicalize(&e.statement()).unwrap();
        let mut v: Value = serde_json::from_str(&e.sign(&old, &new).unwrap()).unwrap();
        v["signatures"]["old"] = STANDARD.encode(old.sign_raw(canonical.as_bytes())).into();
        assert!(KeyEvent::parse(v.to_string().as_bytes()).is_err());
    }
}

/// A log's keys in rotation order: the key a verifier trusts first, then each rotation's new key
/// with the size of the head it follows (`after.size`). Each key signs a span of tree sizes:
/// the old key up to the hand-over head (size `after.size + 1`, the first tree holding the event,
/// signed by both keys), the new key from that head on. A checkpoint signed by a retired key
/// beyond the hand-over, or by a new key before it, is not the log's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChain {
    first: VerifierKey,
    rotations: Vec<(u64, VerifierKey)>,
}

impl KeyChain {
    pub fn new(first: VerifierKey) -> KeyChain {
        KeyChain {
            first,
            rotations: Vec::new(),
        }
    }

    /// Adds a rotation (in log order) that was verified against the key in use.
    pub fn push(&mut self, after_size: u64, new_key: VerifierKey) {
        self.rotations.push((after_size, new_key));
    }

    /// The key in use now: the last rotation's new key, else the first.
    pub fn current(&self) -> &VerifierKey {
        self.rotations.last().map_or(&self.first, |(_, k)| k)
    }

    /// The `after.size` of each rotation, in order.
    pub fn rotated_after(&self) -> impl Iterator<Item = u64> + '_ {
        self.rotations.iter().map(|(after, _)| *after)
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &VerifierKey> {
        std::iter::once(&self.first).chain(self.rotations.iter().map(|(_, k)| k))
    }

    /// The keys whose signature makes a checkpoint of `size` leaves the log's: one key, or the
    /// two of a hand-over head.
    pub fn keys_for(&self, size: u64) -> Vec<&VerifierKey> {
        let mut keys = vec![&self.first];
        for (after, key) in &self.rotations {
            match size.cmp(&(after + 1)) {
                std::cmp::Ordering::Greater => keys = vec![key],
                std::cmp::Ordering::Equal => keys.push(key),
                std::cmp::Ordering::Less => break,
            }
        }
        keys
    }
}

#[cfg(test)]
mod chain_tests {
    use super::KeyChain;
    use crate::note::SignerKey;

    #[test]
    fn each_key_signs_its_span_and_both_sign_the_hand_over() {
        let k = |seed| {
            SignerKey::from_seed("example.com/log", [seed; 32])
                .unwrap()
                .verifier()
        };
        let mut chain = KeyChain::new(k(1));
        chain.push(5, k(2));
        chain.push(9, k(3));
        assert_eq!(chain.keys_for(0), [&k(1)]);
        assert_eq!(chain.keys_for(5), [&k(1)]);
        assert_eq!(chain.keys_for(6), [&k(1), &k(2)]);
        assert_eq!(chain.keys_for(7), [&k(2)]);
        assert_eq!(chain.keys_for(10), [&k(2), &k(3)]);
        assert_eq!(chain.keys_for(11), [&k(3)]);
        assert_eq!(chain.current(), &k(3));
        assert_eq!(chain.keys().count(), 3);
    }
}
