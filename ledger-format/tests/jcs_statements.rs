//! Canonical JSON, Rust side of the cross-language check: `tests/vectors/jcs-statements.json`
//! holds tricky statements (Unicode, escapes, key order by UTF-16 code units, the largest safe
//! integers) with their canonical bytes, and inputs that must be refused. The Python client's
//! `canonical_json` is held to the same file (`clients/python/tests/test_jcs_equivalence.py`),
//! so a statement signed by one is verified by the other.

use ledger_format::jcs::{canonicalize, JcsError};
use serde_json::Value;

fn fixture() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/jcs-statements.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text<'a>(case: &'a Value, field: &str) -> &'a str {
    case[field]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: no {field}"))
}

#[test]
fn statements_canonicalise_to_the_fixture_bytes() {
    let f = fixture();
    let cases = f["canonical"].as_array().unwrap();
    assert!(cases.len() >= 25);
    for case in cases {
        let name = text(case, "name");
        let input: Value = serde_json::from_str(text(case, "text")).unwrap();
        let expected = text(case, "canonical");
        assert_eq!(canonicalize(&input).unwrap(), expected, "{name}");
        // The canonical form is a fixed point.
        let again: Value = serde_json::from_str(expected).unwrap();
        assert_eq!(
            canonicalize(&again).unwrap(),
            expected,
            "{name}: fixed point"
        );
    }
}

#[test]
fn values_outside_the_statement_subset_are_refused() {
    let f = fixture();
    for case in f["refused"].as_array().unwrap() {
        let name = text(case, "name");
        let input: Value = serde_json::from_str(text(case, "text")).unwrap();
        let err = canonicalize(&input).expect_err(name);
        let kind = match err {
            JcsError::Float(_) => "Float",
            JcsError::Null(_) => "Null",
            JcsError::Range(_) => "Range",
            _ => "other",
        };
        assert_eq!(kind, text(case, "rust_error"), "{name}");
    }
}
