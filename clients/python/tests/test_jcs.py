"""canonical_json is RFC 8785 exactly, as the server's ledger_format::jcs computes it."""

import pytest

from govledger.client import canonical_json


def test_members_sort_by_utf16_code_units():
    # RFC 8785 §3.2.3's sorting example (values replaced by integers), the same vector the
    # Rust implementation tests: U+1F600 (D83D DE00 in UTF-16) sorts before U+FB33.
    v = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001F600": 5, "\u0080": 6, "\u00f6": 7}
    assert canonical_json(v) == '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001F600":5,"\ufb33":3}'.encode()
    # Code point order would put U+FFFF first; UTF-16 puts the surrogate pair first.
    assert canonical_json({"\uffff": 1, "\U0001F600": 2}) == '{"\U0001F600":2,"\uffff":1}'.encode()


def test_strings_escape_only_what_jcs_escapes():
    assert canonical_json({"b": [2, "x"], "a": "é\n\u001f/"}) == '{"a":"é\\n\\u001f/","b":[2,"x"]}'.encode()
    assert canonical_json("\u2028\u007f\"\\") == '"\u2028\u007f\\"\\\\"'.encode()


@pytest.mark.parametrize("bad", [1.5, None, {"a": None}, [2**53], {"a": float("nan")}, {1: "x"}, b"x"])
def test_refuses_what_statements_cannot_hold(bad):
    with pytest.raises(ValueError):
        canonical_json(bad)


def test_safe_integers_and_booleans():
    assert canonical_json([-(2**52), 0, True, False, 2**53 - 1]) == b"[-4503599627370496,0,true,false,9007199254740991]"
