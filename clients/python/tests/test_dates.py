"""Date-range listings: the server takes a date (its midnight UTC) or an RFC 3339 time, as the
CLI does, and the client takes datetime and date objects for `from_` and `to`."""

import datetime

import pytest
import requests

from govledger import Client, ServerError


def test_listings_take_dates_times_and_datetime_objects(server):
    client = Client(server["url"], log_key=server["log_key"])
    r = client.submit_audit("DATES", "dates-test", "listed", {"n": 1}, ["SOX"])
    now = datetime.datetime.now(datetime.timezone.utc)
    today = now.date()
    tomorrow = today + datetime.timedelta(days=1)
    # Date-only strings on the wire, as `govledger audit --from` takes them.
    got = requests.get(f"{server['url']}/v1/entries",
                       params={"from": today.isoformat(), "to": tomorrow.isoformat(), "kind": "audit", "limit": 1000})
    assert got.status_code == 200, got.text
    assert r["index"] in [e["index"] for e in got.json()["entries"]]
    # datetime and date objects from Python.
    listed = client.entries(kind="audit", from_=now - datetime.timedelta(minutes=5), to=tomorrow)
    assert r["index"] in [e["index"] for e in listed]
    assert client.entries(kind="audit", from_=tomorrow) == []
    # Naive datetimes are refused (their zone is unknown), and so is a malformed date.
    with pytest.raises(ValueError):
        client.entries(from_=datetime.datetime(2026, 1, 1))
    with pytest.raises(ServerError) as e:
        client.entries(from_="2026-13-01")
    assert e.value.status == 400
