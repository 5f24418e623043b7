"""The Python client against a real govledgerd."""

import base64
import copy
import json
import os
import subprocess

import pytest

from govledger import (Client, ReceiptError, ServerError, SignerKey, fingerprint_dataset,
                       verify_batch, verify_receipt)
from govledger.dataset import DatasetError, fingerprint_dataframe

from .conftest import binary


@pytest.fixture
def client(server):
    return Client(server["url"], log_key=server["log_key"])


def test_submit_and_verify(client, server):
    r = client.submit_audit("RISK_DECISION", "risk-agent", "reduce_position", {"symbol": "ES"},
                            ["MIFID_II", "RISK_MANAGEMENT"], entry_id="py-1", severity="high")
    v = verify_receipt(r, server["log_key"])
    assert v.index == r["index"] and v.leaf.kind_name == "audit"
    assert json.loads(v.leaf.body)["details"] == {"symbol": "ES"}
    # A retry with the same entry_id gets the same entry.
    again = client.submit_audit("RISK_DECISION", "risk-agent", "reduce_position", {"symbol": "ES"},
                                ["MIFID_II", "RISK_MANAGEMENT"], entry_id="py-1", severity="high")
    assert again["index"] == r["index"]
    # The tlog-proof text form verifies too.
    text = client.session.get(f"{server['url']}/v1/receipts/{r['leaf_hash']}", headers={"Accept": "text/plain"}).text
    assert verify_receipt(text, server["log_key"]).index == r["index"]


def test_tampered_receipts_are_rejected(client, server):
    r = client.submit_audit("X", "c", "a", {"n": 1}, ["SOX"])
    leaf = bytearray(base64.b64decode(r["leaf"]))
    leaf[-3] ^= 1
    bad = dict(r, leaf=base64.b64encode(bytes(leaf)).decode())
    with pytest.raises(ReceiptError):
        verify_receipt(bad, server["log_key"])
    bad = copy.deepcopy(r)
    if bad["proof"]:
        bad["proof"][0] = base64.b64encode(b"\x07" * 32).decode()
    else:
        bad["index"] += 1
    with pytest.raises(ReceiptError):
        verify_receipt(bad, server["log_key"])
    other = SignerKey("localhost/govledger", b"\x09" * 32).verifier()
    with pytest.raises(ReceiptError):
        verify_receipt(r, other)
    with pytest.raises(ReceiptError):
        verify_receipt(dict(r, tree_size=r["tree_size"] + 1), server["log_key"])


def test_batch_answers_verify_receipt_by_receipt(client, server):
    answer = client.submit_batch([{"kind": "audit", "body": {"event_type": "X", "component": "c", "action": "a",
                                                              "details": {"b": n}, "compliance_tags": ["SOX"]}}
                                  for n in range(3)])
    verified = verify_batch(answer, server["log_key"])
    assert [v.index for v in verified] == [r["index"] for r in answer["receipts"]]
    assert [json.loads(v.leaf.body)["details"]["b"] for v in verified] == [0, 1, 2]
    assert verify_batch(json.dumps(answer), server["log_key"])[2].index == answer["receipts"][2]["index"]
    bad = copy.deepcopy(answer)
    bad["receipts"][1]["leaf"] = bad["receipts"][0]["leaf"]
    with pytest.raises(ReceiptError, match=r"receipt 1 of the batch \(index %d\)" % answer["receipts"][1]["index"]):
        verify_batch(bad, server["log_key"])
    with pytest.raises(ReceiptError, match="no receipts"):
        verify_batch(dict(answer, receipts=[]), server["log_key"])
    with pytest.raises(ReceiptError, match="malformed batch answer"):
        verify_batch({"receipts": answer["receipts"]}, server["log_key"])
    other = SignerKey("localhost/govledger", b"\x09" * 32).verifier()
    with pytest.raises(ReceiptError):
        verify_batch(answer, other)


def test_bad_input_is_a_server_error(client):
    with pytest.raises(ServerError) as e:
        client.submit("audit", {"event_type": "X"})
    assert e.value.status == 400 and e.value.field


def test_consistency(client):
    old = client.checkpoint()
    client.submit_audit("X", "c", "a", {"n": 2}, ["SOX"])
    client.submit_audit("X", "c", "a", {"n": 3}, ["SOX"])
    client.verify_consistency(old)


def test_fingerprints_equal_the_rust_cli(tmp_path):
    (tmp_path / "d" / "sub dir").mkdir(parents=True)
    (tmp_path / "d" / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "d" / "sub dir" / "b.csv").write_bytes(b"\x00\x01binary")
    (tmp_path / "d" / "Z.txt").write_text("upper sorts first")
    (tmp_path / "f.csv").write_text("ts,px\n1,100\n")
    paths = [str(tmp_path / "d"), str(tmp_path / "f.csv")]
    out = subprocess.run([binary("govledger"), "hash-dataset", "--json", *paths], capture_output=True, text=True, check=True)
    rust = {item["path"]: item for item in json.loads(out.stdout)}
    for p in paths:
        py = fingerprint_dataset(p)
        assert py["sha256"] == rust[p]["sha256"], p
        assert py["method"] == rust[p]["method"]
    os.symlink(tmp_path / "f.csv", tmp_path / "d" / "link")
    with pytest.raises(DatasetError):
        fingerprint_dataset(str(tmp_path / "d"))


def test_dataframe_fingerprint_is_documented_csv():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"px": [100.25, 1 / 3], "qty": [1, 2]})
    fp = fingerprint_dataframe(df)
    import hashlib

    want = hashlib.sha256(df.to_csv(lineterminator="\n", float_format="%.17g").encode()).hexdigest()
    assert fp == {"sha256": "sha256:" + want, "method": "pandas-csv-v1", "size_bytes": fp["size_bytes"], "files": 1}


def test_lineage_request_and_approvals(client, people, tmp_path):
    (tmp_path / "md.csv").write_text("ts,px\n1,100\n")
    (tmp_path / "policy.pt").write_bytes(b"weights")
    ds = fingerprint_dataset(str(tmp_path / "md.csv"))
    art = fingerprint_dataset(str(tmp_path / "policy.pt"))
    lineage = client.submit_lineage({
        "model_id": "ppo-py", "model_version": "1", "created_by": "trainer",
        "validation_metrics": {"accuracy": 0.93},
        "datasets": [{"name": "md", "type": "training", **{k: ds[k] for k in ("sha256", "size_bytes", "files", "method")}}],
        "artifact": {"path": "policy.pt", "sha256": art["sha256"], "size_bytes": art["size_bytes"]},
    })
    req = client.request_approval(people["alice"], "ppo-py", art["sha256"], [ds["sha256"]], lineage["leaf_hash"],
                                  performance_metrics={"sharpe": 1.9})
    # The metrics are signed, as a decimal string: the only ones a policy's thresholds read.
    import base64 as _b64
    import json as _json
    from govledger.receipt import Leaf
    body = _json.loads(Leaf.parse(_b64.b64decode(req["leaf"])).body)
    assert body["statement"]["performance_metrics"] == {"sharpe": "1.9"}
    assert "performance_metrics" not in body
    client.approve(people["bob"], req["leaf_hash"], art["sha256"], "risk")
    with pytest.raises(ServerError) as e:
        client.approve(people["alice"], req["leaf_hash"], art["sha256"], "quant")
    assert e.value.error == "self_approval"
    client.approve(people["carol"], req["leaf_hash"], art["sha256"], "risk", comment="ok")
    status = client.approval_status(req["leaf_hash"])
    assert status["status"] == "approved" and status["approvers"] == ["bob", "carol"]
    assert [e["index"] for e in client.entries(model_id="ppo-py")] == [lineage["index"], req["index"]]


def test_performance_metrics_are_signable():
    from govledger.client import signable_metrics
    assert signable_metrics({"n": 3, "sharpe": 1.9, "tiny": 1e-7, "s": "2.5"}) == \
        {"n": 3, "sharpe": "1.9", "tiny": "0.0000001", "s": "2.5"}
    for bad in ({"b": True}, {"x": float("nan")}, {"x": [1]}):
        with pytest.raises(ValueError):
            signable_metrics(bad)
