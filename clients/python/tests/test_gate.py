"""govledger.gate.check: the deploy gate in Python, decided by the CLI's own Rust code.

The differential test replays every case the Rust gate tests decide (saved by them with
GOVLEDGER_GATE_CORPUS=DIR; the snapshot in tests/vectors/gate is used when it is not set) through
`gate.check` and through `govledger gate --json --at`, and requires the same report from both and
from the Rust test's own run: same rules, same details, same exit."""

import json
import os
import subprocess

import pytest

from govledger import gate

from .conftest import binary

HERE = os.path.dirname(__file__)
CORPUS = os.environ.get("GOVLEDGER_GATE_CORPUS") or os.path.join(HERE, "vectors", "gate")


def cases():
    if not os.path.isdir(CORPUS):
        return []
    return sorted(os.path.join(CORPUS, d) for d in os.listdir(CORPUS) if os.path.exists(os.path.join(CORPUS, d, "case.json")))


def load(case):
    with open(os.path.join(case, "case.json")) as f:
        meta = json.load(f)
    artifact = os.path.join(case, meta["artifact"]) if meta.get("artifact") else None
    return meta, os.path.join(case, "policy.toml"), os.path.join(case, "bundle.json"), artifact


def cli_gate(policy, bundle, request, now_ms, artifact=None):
    args = [binary("govledger"), "gate", "--policy", policy, "--bundle", bundle, "--request", request,
            "--json", "--at", str(now_ms)]
    if artifact:
        args += ["--artifact", artifact]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_the_corpus_holds_the_rust_gate_tests_cases():
    found = cases()
    assert len(found) >= 20, f"{CORPUS}: {len(found)} cases"
    verdicts = [load(c)[0]["report"]["ok"] for c in found]
    assert True in verdicts and False in verdicts
    failed = {r for c in found for r in load(c)[0]["report"]["failed"]}
    # The refusals the Rust tests provoke, each seen by the differential test.
    for rule in ("approvals", "not_requester", "checkpoint_signature", "inclusion_proofs", "request_match",
                 "checkpoint_fresh", "entry_times"):
        assert rule in failed, f"no case refuses {rule}: {sorted(failed)}"


@pytest.mark.parametrize("case", cases(), ids=os.path.basename)
def test_gate_check_decides_as_the_cli_does(case):
    meta, policy, bundle, artifact = load(case)
    verdict = gate.check(policy, bundle, meta["request"], artifact=artifact, now=meta["now_ms"])
    code, cli = cli_gate(policy, bundle, meta["request"], meta["now_ms"], artifact)
    assert verdict.report == cli
    assert code == (0 if verdict.ok else 1)
    assert bool(verdict) == verdict.ok == (not verdict.failed)
    # And as the Rust test itself decided when it saved the case (its details name the files
    # where the case was saved).
    recorded = json.loads(json.dumps(meta["report"]).replace(meta["case_dir"], case))
    assert verdict.report == recorded


def test_a_bundle_as_bytes_or_parsed_json_is_the_same_bundle():
    meta, policy, bundle, artifact = load(next(c for c in cases() if load(c)[0]["report"]["ok"]))
    with open(bundle, "rb") as f:
        raw = f.read()
    by_path = gate.check(policy, bundle, meta["request"], artifact=artifact, now=meta["now_ms"])
    by_bytes = gate.check(policy, raw, meta["request"], artifact=artifact, now=meta["now_ms"])
    by_json = gate.check(policy, json.loads(raw), meta["request"], artifact=artifact, now=meta["now_ms"])
    assert by_path.ok and by_path.report == by_bytes.report == by_json.report
    assert by_path.approvers and {r.rule for r in by_path.rules} >= {"approvals", "request_signature"}


def test_garbage_and_forged_bundles_are_refused_not_errors():
    meta, policy, bundle, _ = load(next(c for c in cases() if load(c)[0]["report"]["ok"]))
    garbage = gate.check(policy, b"{not json", meta["request"], now=meta["now_ms"])
    assert not garbage and garbage.failed == ["bundle_format"]
    with open(bundle) as f:
        b = json.load(f)
    b["approvals"] = b["approvals"][:1]  # one approval dropped: no quorum
    short = gate.check(policy, b, meta["request"], now=meta["now_ms"])
    assert not short.ok and "approvals" in short.failed
    other = gate.check(policy, bundle, "00" * 32, now=meta["now_ms"])
    assert not other.ok and "request_match" in other.failed


def test_the_gate_cannot_decide_without_a_policy(tmp_path):
    meta, _, bundle, _ = load(cases()[0])
    with pytest.raises(gate.GateError, match="policy"):
        gate.check(tmp_path / "missing.toml", bundle, meta["request"])
    with pytest.raises(ValueError):
        gate.check(tmp_path / "missing.toml", None, meta["request"])
    with pytest.raises(ValueError, match="naive"):
        import datetime
        gate.check(tmp_path / "missing.toml", bundle, meta["request"], now=datetime.datetime(2026, 1, 1))
