"""govledger.aio.AsyncClient against a real govledgerd."""

import asyncio
import json

import pytest

from govledger import ServerError, verify_receipt
from govledger.aio import AsyncClient
from govledger.client import now_rfc3339


def run(coro):
    return asyncio.run(coro)


def test_64_concurrent_audit_submissions(server):
    async def main():
        async with AsyncClient(server["url"], log_key=server["log_key"]) as c:
            old = await c.checkpoint()
            receipts = await asyncio.gather(*(c.submit_audit("ASYNC", "aio", "submit", {"i": i}, ["SOX"])
                                              for i in range(64)))
            await c.verify_consistency(old)
            return receipts

    receipts = run(main())
    verified = [verify_receipt(r, server["log_key"]) for r in receipts]
    assert len({v.index for v in verified}) == 64
    assert sorted(json.loads(v.leaf.body)["details"]["i"] for v in verified) == list(range(64))


def test_async_api_equals_the_sync_one(server, people):
    async def main():
        async with AsyncClient(server["url"], log_key=server["log_key"]) as c:
            a = await c.submit_audit("X", "aio", "a", {"n": 1}, ["SOX"], entry_id="aio-1")
            b = await c.submit_audit("X", "aio", "a", {"n": 1}, ["SOX"], entry_id="aio-1")
            assert a["index"] == b["index"]
            sub = c._submission("audit", {"event_type": "X", "component": "aio", "action": "r",
                                          "details": {}, "compliance_tags": ["SOX"]})
            r1, r2 = await c._post_entries(sub), await c._post_entries(sub)
            assert r1["index"] == r2["index"]
            art = "sha256:" + "6" * 64
            lineage = await c.submit_lineage({
                "model_id": "aio-model", "model_version": "1", "created_by": "t",
                "datasets": [{"name": "d", "type": "training", "sha256": "sha256:" + "7" * 64, "size_bytes": 1}],
                "artifact": {"path": "m", "sha256": art, "size_bytes": 1}})
            req = await c.request_approval(people["alice"], "aio-model", art, ["sha256:" + "7" * 64],
                                           lineage["leaf_hash"])
            at = now_rfc3339()
            ap1 = await c.approve(people["bob"], req["leaf_hash"], art, "risk", entry_id="aio-ap", signed_at=at)
            ap2 = await c.approve(people["bob"], req["leaf_hash"], art, "risk", entry_id="aio-ap", signed_at=at)
            assert ap1["index"] == ap2["index"]
            with pytest.raises(ServerError) as e:
                await c.approve(people["alice"], req["leaf_hash"], art, "quant")
            assert e.value.error == "self_approval"
            await c.approve(people["carol"], req["leaf_hash"], art, "risk")
            status = await c.approval_status(req["leaf_hash"])
            assert status["status"] == "approved"
            dep = await c.record_deployment(req["leaf_hash"], "aio-model", "SUCCESS", "production", "ci")
            assert [e["index"] for e in await c.entries(model_id="aio-model")][:2] == [lineage["index"], req["index"]]
            assert (await c.receipt(dep["leaf_hash"]))["index"] == dep["index"]
            assert int((await c.log_info())["tree_size"]) >= 0
            batch = await c.submit_batch([{"kind": "audit", "body": {"event_type": "X", "component": "aio",
                                                                      "action": "b", "details": {"k": k},
                                                                      "compliance_tags": ["SOX"]}} for k in range(2)])
            assert len(batch["receipts"]) == 2

    run(main())


def test_coalesced_submissions_each_get_their_own_receipt_or_error(server):
    async def main():
        async with AsyncClient(server["url"], log_key=server["log_key"], coalesce=True) as c:
            batches = []
            post_batch = c._post_batch

            async def counted(subs):
                try:
                    receipts = await post_batch(subs)
                except ServerError as e:
                    batches.append((len(subs), e.status))
                    raise
                batches.append((len(subs), 200))
                return receipts

            c._coalescer.post_many = counted
            # One at a time: each goes out alone, at once.
            for i in range(3):
                await c.submit_audit("COALESCE", "aio", "alone", {"i": i}, ["SOX"])
            assert batches == []
            good = [c.submit_audit("COALESCE", "aio", "submit", {"i": i}, ["SOX"]) for i in range(64)]
            bad = c.submit_audit("COALESCE", "aio", "submit", {"i": -1}, ["x" * 65])
            results = await asyncio.gather(*good[:32], bad, *good[32:], return_exceptions=True)
            return results, batches

    results, batches = run(main())
    # The bad entry's batch was refused whole, then its entries went one by one.
    assert any(n > 1 and status == 400 for n, status in batches), batches
    errors = [r for r in results if isinstance(r, BaseException)]
    # The refused entry's caller alone gets the refusal; the batch it was in is logged without it.
    assert len(errors) == 1 and isinstance(errors[0], ServerError) and errors[0].status == 400
    assert results[32] is errors[0] and errors[0].field == "body.compliance_tags[0]"
    verified = [verify_receipt(r, server["log_key"]) for r in results if not isinstance(r, BaseException)]
    assert [json.loads(v.leaf.body)["details"]["i"] for v in verified] == list(range(64))
    assert len({v.index for v in verified}) == 64
