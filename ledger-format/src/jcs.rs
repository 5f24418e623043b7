//! RFC 8785 JSON Canonicalization Scheme (JCS) for signed statements.
//!
//! Statements hold strings, integers, booleans, arrays and objects (SPEC.md §4: no floats, no
//! null), so this implements the integer subset of JCS: object members sorted by the UTF-16 code
//! units of their names, no whitespace, strings escaped as ECMAScript `JSON.stringify` does, and
//! integers written in decimal. Floats, and integers beyond ±(2^53 − 1) (which JCS would round
//! through an IEEE double), are refused rather than canonicalised differently from other
//! implementations.
//!
//! ```text
//! {"b": [2, "x"], "a": "é\n"}   ->   {"a":"é\n","b":[2,"x"]}
//! ```

use serde_json::Value;

/// The largest integer magnitude that survives an IEEE double exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Why a value has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    #[error("{0}: floating-point numbers are not allowed in signed statements")]
    Float(String),
    #[error("{0}: integer beyond ±(2^53-1)")]
    Range(String),
    #[error("{0}: null is not allowed in signed statements")]
    Null(String),
}

/// Returns the RFC 8785 canonical form of `v`.
pub fn canonicalize(v: &Value) -> Result<String, JcsError> {
    let mut out = String::new();
    write(v, &mut out, "$")?;
    Ok(out)
}

fn write(v: &Value, out: &mut String, path: &str) -> Result<(), JcsError> {
    match v {
        Value::Null => return Err(JcsError::Null(path.to_owned())),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i.unsigned_abs() > MAX_SAFE_INTEGER {
                    return Err(JcsError::Range(path.to_owned()));
                }
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                if u > MAX_SAFE_INTEGER {
                    return Err(JcsError::Range(path.to_owned()));
                }
                out.push_str(&u.to_string());
            } else {
                return Err(JcsError::Float(path.to_owned()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(x, out, &format!("{path}[{i}]"))?;
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write(&m[k], out, &format!("{path}.{k}"))?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Writes `s` quoted and escaped as RFC 8785 §3.2.2.2 prescribes.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_by_utf16_and_escapes() {
        // RFC 8785 §3.2.3 sorting example (keys only; values replaced by integers).
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":1,"\r":2,"\ufb33":3,"1":4,"\ud83d\ude00":5,"\u0080":6,"\u00f6":7}"#,
        )
        .unwrap();
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"\\r\":2,\"1\":4,\"\u{80}\":6,\"ö\":7,\"€\":1,\"😀\":5,\"\u{fb33}\":3}"
        );
        assert_eq!(
            canonicalize(&json!({"b":[2,"x"],"a":"é\n\u{1f}/"})).unwrap(),
            "{\"a\":\"é\\n\\u001f/\",\"b\":[2,\"x\"]}"
        );
    }

    #[test]
    fn refuses_floats_nulls_and_unsafe_integers() {
        assert!(canonicalize(&json!({"a": 1.5})).is_err());
        assert!(canonicalize(&json!({"a": null})).is_err());
        assert!(canonicalize(&json!({"a": 1u64 << 53})).is_err());
        assert_eq!(
            canonicalize(&json!(-(1i64 << 52))).unwrap(),
            "-4503599627370496"
        );
    }
}
