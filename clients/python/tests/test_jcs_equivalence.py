"""canonical_json against the shared RFC 8785 fixture that the Rust ledger_format::jcs tests too
(ledger-format/tests/vectors/jcs-statements.json).

The fixture is ``{"canonical": [...], "refused": [...]}``. Each ``canonical`` entry is
``{"name", "text", "canonical"}``: ``text`` is a JSON text both languages parse, ``canonical``
the exact canonical form of the parsed value (compare its UTF-8 bytes). Each ``refused`` entry
is ``{"name", "text", "rust_error"}``: a valid JSON text whose value has no canonical form in a
signed statement (a float, null, an integer beyond ±(2^53-1)); ``rust_error`` names the
``JcsError`` variant the Rust side returns, the Python side raises ``ValueError``."""

import json
import os

import pytest

from govledger.client import canonical_json

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "ledger-format", "tests", "vectors", "jcs-statements.json")

with open(FIXTURE, encoding="utf-8") as f:
    VECTORS = json.load(f)


@pytest.mark.parametrize("case", VECTORS["canonical"], ids=lambda c: c["name"])
def test_canonical(case):
    assert canonical_json(json.loads(case["text"])) == case["canonical"].encode("utf-8")


@pytest.mark.parametrize("case", VECTORS["canonical"], ids=lambda c: c["name"])
def test_canonical_form_is_a_fixed_point(case):
    assert canonical_json(json.loads(case["canonical"])) == case["canonical"].encode("utf-8")


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["name"])
def test_refused(case):
    value = json.loads(case["text"])
    with pytest.raises(ValueError):
        canonical_json(value)


def test_fixture_covers_both_lists():
    assert len(VECTORS["canonical"]) >= 25 and len(VECTORS["refused"]) >= 5
    names = [c["name"] for c in VECTORS["canonical"] + VECTORS["refused"]]
    assert len(names) == len(set(names))
