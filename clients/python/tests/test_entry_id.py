"""Idempotent submissions against a real govledgerd: every submitting method takes `entry_id`,
and a submission without one gets a generated id that a retry reuses."""

import base64
import json
import re

import pytest

from govledger import Client, ServerError, verify_receipt
from govledger.client import now_rfc3339
from govledger.receipt import Leaf



@pytest.fixture
def client(server):
    return Client(server["url"], log_key=server["log_key"])


def leaf(r):
    return Leaf.parse(base64.b64decode(r["leaf"]))


def test_same_entry_id_same_entry_for_every_submitter(client, people):
    signed_at = now_rfc3339()  # one signing time for a signed call and its repeat
    lineage_body = {
        "model_id": "eid-model", "model_version": "1", "created_by": "trainer",
        "datasets": [{"name": "md", "type": "training", "sha256": "sha256:" + "1" * 64, "size_bytes": 3}],
        "artifact": {"path": "m.pt", "sha256": "sha256:" + "2" * 64, "size_bytes": 4},
    }
    art = "sha256:" + "2" * 64
    calls = {
        "audit": lambda: client.submit_audit("X", "c", "a", {"n": 1}, ["SOX"], entry_id="eid-audit"),
        "lineage": lambda: client.submit_lineage(lineage_body, entry_id="eid-lineage"),
    }
    first = {k: f() for k, f in calls.items()}
    req = lambda: client.request_approval(people["alice"], "eid-model", art, ["sha256:" + "1" * 64],  # noqa: E731
                                          first["lineage"]["leaf_hash"], entry_id="eid-request",
                                          signed_at=signed_at)
    first["request"] = req()
    calls["request"] = req
    h = first["request"]["leaf_hash"]
    calls["approve"] = lambda: client.approve(people["bob"], h, art, "risk", entry_id="eid-approve",
                                              signed_at=signed_at)
    calls["deployment"] = lambda: client.record_deployment(h, "eid-model", "SUCCESS", "production", "ci",
                                                           details={"run": 1}, entry_id="eid-deploy")
    first["approve"] = calls["approve"]()
    first["deployment"] = calls["deployment"]()
    logged = len(client.entries())
    for kind, f in calls.items():
        again = f()   # the same call again: the same (submitter, entry_id) and body
        assert again["index"] == first[kind]["index"], kind
        assert again["leaf_hash"] == first[kind]["leaf_hash"], kind
        assert leaf(again).entry_id.startswith("eid-")
    assert len(client.entries()) == logged   # the repeats logged nothing
    # Only one approval was logged for bob.
    assert client.approval_status(h)["approvers"] == ["bob"]
    # A known entry_id for a different entry is refused, not logged (e.g. signed at another time).
    with pytest.raises(ServerError) as e:
        client.approve(people["bob"], h, art, "risk", entry_id="eid-approve")
    assert e.value.status == 409 and e.value.error == "entry_id_conflict"
    with pytest.raises(ServerError) as e:
        client.submit_audit("X", "c", "a", {"n": 2}, ["SOX"], entry_id="eid-audit")
    assert e.value.status == 409


def test_a_generated_entry_id_is_reused_by_a_retry(client, server):
    before = len(client.entries(kind="audit"))
    kind, body = client._audit("RETRY", "c", "a", {"n": 42}, ["SOX"], {})
    sub = client._submission(kind, body)
    assert re.fullmatch(r"[0-9a-f]{32}", sub["entry_id"])
    r1 = client._post_entries(sub)
    r2 = client._post_entries(sub)   # what a retry after a timeout sends
    assert r1["index"] == r2["index"] and r1["leaf_hash"] == r2["leaf_hash"]
    assert len(client.entries(kind="audit")) == before + 1
    v = verify_receipt(r2, server["log_key"])
    assert v.leaf.entry_id == sub["entry_id"] and json.loads(v.leaf.body)["details"] == {"n": 42}
    # Two calls without an entry_id are two entries (each gets its own id).
    a = client.submit_audit("RETRY", "c", "a", {"n": 42}, ["SOX"])
    b = client.submit_audit("RETRY", "c", "a", {"n": 42}, ["SOX"])
    assert a["index"] != b["index"] and leaf(a).entry_id != leaf(b).entry_id


def test_a_batch_gets_entry_ids_and_a_retried_batch_logs_nothing_twice(client):
    entries = [{"kind": "audit", "body": {"event_type": "B", "component": "c", "action": "a",
                                          "details": {"i": i}, "compliance_tags": ["SOX"]},
                "entry_id": f"eid-batch-{i}"} for i in range(2)]
    one = client.submit_batch(entries)
    two = client.submit_batch(entries)
    assert [r["index"] for r in one["receipts"]] == [r["index"] for r in two["receipts"]]
