"""The examples of the module govledger replaces, rewritten with govledger's API, against a real
govledgerd: an audit write awaited, a DataFrame lineage session writing metadata.json, the release
request, two approvals, the deploy decision in Python (refusing and passing exactly when
`govledger gate` does), the deployment record and a 30-day governance summary.

Each original call is named in a comment above its replacement."""

import asyncio
import datetime as dt
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

from govledger import Client, ServerError, fingerprint_dataframe, gate, lineage, verify_receipt
from govledger.aio import AsyncClient

from .conftest import binary


@pytest.fixture(scope="module")
def policy(server, people, tmp_path_factory):
    """The deploy gate's policy: the log's key, the people and their roles, two approvers."""
    path = tmp_path_factory.mktemp("gate") / "policy.toml"
    roles = {"alice": "quant", "bob": "risk", "carol": "risk"}
    text = f'name = "four-eyes-v1"\n[approvals]\nmin_approvers = 2\n[log]\nkey = "{server["log_key"]}"\n'
    for name, key in people.items():
        text += f'[[people]]\nname = "{name}"\nroles = ["{roles[name]}"]\nkey = "{key.verifier()}"\n'
    path.write_text(text)
    return str(path)


def cli_gate(policy, url, request, artifact):
    out = subprocess.run([binary("govledger"), "gate", "--policy", policy, "--url", url, "--request", request,
                          "--artifact", artifact, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def test_write_audit_record_awaited(server):
    async def trade():
        async with AsyncClient(server["url"], log_key=server["log_key"]) as c:
            # await write_audit_record("ORDER_SUBMITTED", "execution_engine", "submit_order",
            #                          details, ["MiFID_II", "best_execution"])
            return await c.submit_audit(
                "ORDER_SUBMITTED", "execution_engine", "submit_order",
                {"symbol": "ESZ6", "qty": np.int64(5), "price": np.float64(5012.25),
                 "at": pd.Timestamp("2026-12-03T14:30:00Z"), "venue": "CME"},
                ["MiFID_II", "best_execution"])

    receipt = asyncio.run(trade())
    # The record hash the original returned is the leaf hash, now proven by an inclusion proof.
    v = verify_receipt(receipt, server["log_key"])
    assert v.leaf.kind == 1 and receipt["leaf_hash"] == v.leaf_hash.hex()  # kind 1: audit
    details = json.loads(v.leaf.body)["details"]
    assert details["qty"] == 5 and details["at"] == "2026-12-03T14:30:00Z"
    # NaN has no JSON form: refused before anything is sent.
    with pytest.raises(ValueError, match="NaN"):
        asyncio.run(AsyncClient(server["url"]).submit_audit("E", "c", "a", {"x": float("nan")}, []))


def test_the_release_story_from_training_to_deployment(server, people, policy, tmp_path):
    c = Client(server["url"], log_key=server["log_key"])
    market = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=500, freq="min"),
                           "px": np.linspace(100, 101, 500)})
    # hash_dataframe(df, "market_data_2026")
    fp = fingerprint_dataframe(market)
    df_hash = fp["sha256"]
    assert df_hash.startswith("sha256:") and fp["method"] == "pandas-csv-v1"

    # start_training_session("ppo-trader", created_by="quant-1")
    # record_dataset_usage(model_id, market, "market_data_2026", "training")
    # complete_training_session(model_id, "1.0.0", hyperparameters, training_metrics, validation_metrics)
    artifact = tmp_path / "policy.pt"
    artifact.write_bytes(os.urandom(4096))
    with c.training_session("ppo-trader", created_by="quant-1") as s:
        s.record_dataset(market, "market_data_2026", "training")
        record = s.complete(model_version="1.0.0", artifact=artifact,
                            hyperparameters={"lr": 3e-4, "gamma": np.float32(0.99)},
                            training_metrics={"sharpe": 1.8}, validation_metrics={"sharpe": 1.4})
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["datasets"][0]["sha256"] == df_hash
    assert lineage.verify(tmp_path / "metadata.json", c, datasets={"market_data_2026": market}).ok

    # await request_model_deployment_approval(model_id, model_path, model_hash, dataset_hashes, "alice")
    req = c.request_approval(people["alice"], "ppo-trader", record.artifact_sha256, record.dataset_sha256,
                             record.leaf_hash)
    request = req["leaf_hash"]

    # await approve_deployment(request_id, "bob", "backtest reviewed")
    c.approve(people["bob"], request, record.artifact_sha256, "risk", comment="backtest reviewed")
    # One approval: the server says pending, and the gate refuses, in Python as in the CLI.
    st = c.approval_status(request)
    assert (st["status"], st["approved"], st["required"]) == ("pending", False, 2)
    verdict = gate.check(policy, server["url"], request, artifact=artifact)
    code, cli = cli_gate(policy, server["url"], request, str(artifact))
    assert not verdict and code == 1 and "approvals" in verdict.failed
    assert [r["rule"] for r in cli["rules"]] == [r.rule for r in verdict.rules]
    assert cli["failed"] == verdict.failed

    # The requester cannot approve her own release: refused, nothing logged.
    size = c.log_info()["tree_size"]
    with pytest.raises(ServerError) as refused:
        c.approve(people["alice"], request, record.artifact_sha256, "quant")
    assert (refused.value.status, refused.value.error) == (403, "self_approval")
    assert c.log_info()["tree_size"] == size
    assert not gate.check(policy, server["url"], request, artifact=artifact)

    # await approve_deployment(request_id, "carol", "risk limits ok")
    c.approve(people["carol"], request, record.artifact_sha256, "risk", comment="risk limits ok")
    # await is_deployment_approved(request_id) / check_deployment_approval_status(request_id)
    st = c.approval_status(request)
    assert (st["status"], st["approved"], sorted(st["approvers"])) == ("approved", True, ["bob", "carol"])
    verdict = gate.check(policy, server["url"], request, artifact=artifact)
    code, cli = cli_gate(policy, server["url"], request, str(artifact))
    assert verdict.ok and code == 0, verdict.to_text()
    assert sorted(verdict.approvers) == sorted(cli["approvers"]) == ["bob", "carol"]
    assert cli["failed"] == verdict.failed == []
    # Another artifact than the approved one is refused.
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the approved model")
    assert gate.check(policy, server["url"], request, artifact=other).failed == ["artifact"]

    # await audit_deployment_execution(model_id, request_id, "SUCCESS", details)
    dep = c.record_deployment(request, "ppo-trader", "SUCCESS", "production", "deploy-bot",
                              {"hosts": ["trade-01", "trade-02"]})
    verify_receipt(dep, server["log_key"])

    # await generate_governance_report(start_date, end_date, "full")
    today = dt.datetime.now(dt.timezone.utc).date()
    summary = c.summary(from_=today - dt.timedelta(days=30), to=dt.datetime.now(dt.timezone.utc))
    assert summary["format"] == "govledger-summary/v1"
    # audit_summary.total_records / lineage_summary.total_models / approval_summary.pending_approvals
    assert summary["entries"]["by_kind"]["audit"] >= 1
    models = [m for m in summary["models"] if m["model_id"] == "ppo-trader"]
    assert models and models[-1]["datasets"][0]["sha256"] == df_hash
    ours = [r for r in summary["approvals"]["requests"] if r["request"] == request]
    assert ours and ours[0]["status"] == "approved"
    deployed = [d for d in summary["deployments"]["items"] if d["request"] == request]
    assert deployed and deployed[0]["valid_quorum"] is True
    assert summary["approvals"]["pending"] == sum(r["status"] == "pending" for r in summary["approvals"]["requests"])


def test_the_summary_reads_dates_and_refuses_nonsense(server):
    c = Client(server["url"])
    empty = c.summary(from_=dt.date(2999, 1, 1))
    assert empty["entries"]["in_range"] == 0 and empty["range"]["from"] == "2999-01-01T00:00:00.000Z"
    with pytest.raises(Exception) as e:
        c.summary(from_="yesterday")
    assert getattr(e.value, "status", None) == 400
