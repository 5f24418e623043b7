"""Free-form JSON fields (audit and deployment `details`, lineage metrics and configurations)
take numpy, pandas, datetime and Decimal values; signed statements still refuse floats."""

import datetime as dt
import json
from decimal import Decimal

import pytest

from govledger import Client, canonical_json, verify_receipt
from govledger.values import to_json

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")


@pytest.fixture
def client(server):
    return Client(server["url"], log_key=server["log_key"])


UTC = dt.timezone.utc


def test_conversion():
    assert to_json({"i": np.int64(3), "f": np.float64(0.25), "f32": np.float32(0.5), "b": np.bool_(True),
                    "a": np.array([[1, 2], [3, 4]]), "t": (1, "x"), "d": Decimal("1.10"),
                    "when": dt.datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
                    "paris": dt.datetime(2024, 1, 2, 4, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                    "day": dt.date(2024, 1, 2),
                    "ts": pd.Timestamp("2024-01-02T03:04:05.123456789", tz="UTC"),
                    "ts_ny": pd.Timestamp("2024-01-01 22:04:05", tz="America/New_York"),
                    "np_dt": np.datetime64("2024-01-02T03:04:05")}) == {
        "i": 3, "f": 0.25, "f32": 0.5, "b": True, "a": [[1, 2], [3, 4]], "t": [1, "x"], "d": "1.10",
        "when": "2024-01-02T03:04:05.123Z", "paris": "2024-01-02T03:04:05Z", "day": "2024-01-02T00:00:00Z",
        "ts": "2024-01-02T03:04:05.123456789Z", "ts_ny": "2024-01-02T03:04:05Z", "np_dt": "2024-01-02T03:04:05Z"}
    assert type(to_json(np.int64(3))) is int and type(to_json(np.bool_(False))) is bool
    assert type(to_json(np.float64(1.5))) is float
    assert to_json(np.datetime64("2024-01-02T03:04:05.000000120")) == "2024-01-02T03:04:05.00000012Z"
    assert to_json(np.datetime64("2024-01-02")) == "2024-01-02T00:00:00Z"


@pytest.mark.parametrize("bad,path", [
    ({"px": [1.0, float("nan")]}, r"details\.px\[1\]"),
    ({"m": {"x": np.float64("inf")}}, r"details\.m\.x"),
    ({"a": np.array([1.0, -np.inf])}, r"details\.a\[1\]"),
    ({"d": Decimal("NaN")}, r"details\.d"),
    ({"t": pd.NaT}, r"details\.t"),
    ({"naive": dt.datetime(2024, 1, 2)}, r"details\.naive: a naive datetime"),
    ({"naive": pd.Timestamp("2024-01-02")}, r"details\.naive: a naive datetime"),
    ({"o": object()}, r"details\.o: a object"),
    ({1: "x"}, r"details: object member names"),
])
def test_refusals_name_the_field(client, bad, path):
    with pytest.raises(ValueError, match=path):
        client.submit_audit("X", "c", "a", bad, ["SOX"])


def test_numpy_and_pandas_values_in_details_against_the_server(client, server):
    details = {"qty": np.int64(5), "px": np.float64(100.25), "hedged": np.bool_(True),
               "weights": np.array([0.5, 0.25]), "at": pd.Timestamp("2024-03-01 09:30", tz="UTC"),
               "notional": Decimal("501.25"), "day": dt.date(2024, 3, 1)}
    r = client.submit_audit("TRADE", "exec", "fill", details, ["MIFID_II"])
    got = json.loads(verify_receipt(r, server["log_key"]).leaf.body)["details"]
    assert got == {"qty": 5, "px": 100.25, "hedged": True, "weights": [0.5, 0.25], "at": "2024-03-01T09:30:00Z",
                   "notional": "501.25", "day": "2024-03-01T00:00:00Z"}


def test_lineage_metrics_and_deployment_details(client, people, server):
    art = "sha256:" + "3" * 64
    lineage = client.submit_lineage({
        "model_id": "np-model", "model_version": "1", "created_by": "trainer",
        "validation_metrics": {"accuracy": np.float64(0.93), "n": np.int64(1000)},
        "hyperparameters": {"lr": np.float32(0.5), "layers": np.array([64, 64])},
        "datasets": [{"name": "md", "type": "training", "sha256": "sha256:" + "4" * 64, "size_bytes": np.int64(9)}],
        "artifact": {"path": "m.pt", "sha256": art, "size_bytes": np.int64(7)},
    })
    body = json.loads(verify_receipt(lineage, server["log_key"]).leaf.body)
    assert body["validation_metrics"] == {"accuracy": 0.93, "n": 1000}
    assert body["hyperparameters"] == {"lr": 0.5, "layers": [64, 64]}
    req = client.request_approval(people["alice"], "np-model", art, ["sha256:" + "4" * 64], lineage["leaf_hash"],
                                  performance_metrics={"sharpe": np.float64(1.9)})
    dep = client.record_deployment(req["leaf_hash"], "np-model", "FAILURE", "production", "ci",
                                   details={"latency_ms": np.float64(12.5), "at": dt.datetime(2024, 3, 1, tzinfo=UTC)})
    assert json.loads(verify_receipt(dep, server["log_key"]).leaf.body)["details"] == \
        {"latency_ms": 12.5, "at": "2024-03-01T00:00:00Z"}


def test_signed_statements_still_refuse_floats(client, people):
    with pytest.raises(ValueError, match="no floats"):
        canonical_json({"x": np.float64(1.0)})
    with pytest.raises(ValueError):
        canonical_json({"x": 1.0})
    # A float smuggled into an approval request's statement is refused before anything is sent.
    with pytest.raises(ValueError, match="no floats"):
        client.request_approval(people["alice"], "m", "sha256:" + "5" * 64, [], "0" * 64, threshold=0.5)
