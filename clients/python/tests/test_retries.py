"""Retries of the sync Client and the AsyncClient (HTTP 429/503, connection errors,
Retry-After, backoff, deadline), against a local stub server; no real sleeping."""

import asyncio
import socket

import pytest
import requests

from govledger import Client, ServerError
from govledger.aio import AsyncClient

from .stub import Stub, ok, unavailable


def audit(c):
    return c.submit_audit("X", "c", "a", {"n": 1}, ["SOX"])


def test_503_with_retry_after_then_200():
    sleeps = []
    with Stub([unavailable("2"), ok()]) as stub:
        r = audit(Client(stub.url, sleep=sleeps.append))
    assert r["index"] == 7
    assert sleeps == [2.0]
    # Both attempts posted the same submission, with the same generated entry_id.
    (m1, p1, b1), (m2, p2, b2) = stub.requests
    assert (m1, p1) == (m2, p2) == ("POST", "/v1/entries")
    assert b1 == b2 and len(b1["entry_id"]) == 32


def test_429_without_retry_after_backs_off_exponentially_with_jitter():
    sleeps = []
    with Stub([unavailable(status=429)] * 3 + [ok()]) as stub:
        audit(Client(stub.url, sleep=sleeps.append, backoff=0.1))
    assert len(sleeps) == 3 and len(stub.requests) == 4
    for d, cap in zip(sleeps, (0.1, 0.2, 0.4)):
        assert cap / 2 <= d <= cap
    # Capped at max_backoff however many attempts.
    c = Client("http://127.0.0.1:1", backoff=0.1, max_backoff=5.0, retries=100, deadline=None)
    assert all(2.5 <= c._retry_delay(30, 0, None) <= 5.0 for _ in range(50))


def test_retries_are_bounded_then_the_refusal_is_raised():
    sleeps = []
    with Stub([unavailable("0")]) as stub:
        with pytest.raises(ServerError) as e:
            audit(Client(stub.url, retries=2, sleep=sleeps.append))
    assert e.value.status == 503 and e.value.error == "unavailable"
    assert len(stub.requests) == 3 and sleeps == [0.0, 0.0]


def test_other_4xx_are_raised_at_once():
    sleeps = []
    body = '{"error": "invalid_body", "message": "bad", "field": "details"}'
    with Stub([(400, {"Content-Type": "application/json"}, body), ok()]) as stub:
        with pytest.raises(ServerError) as e:
            audit(Client(stub.url, sleep=sleeps.append))
    assert e.value.status == 400 and e.value.field == "details"
    assert len(stub.requests) == 1 and sleeps == []


def test_the_deadline_bounds_the_waiting():
    sleeps = []
    with Stub([unavailable("100"), ok()]) as stub:
        with pytest.raises(ServerError):
            audit(Client(stub.url, deadline=10, sleep=sleeps.append))
    assert len(stub.requests) == 1 and sleeps == []


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_connection_errors_are_retried():
    sleeps = []
    c = Client(f"http://127.0.0.1:{free_port()}", retries=3, sleep=sleeps.append, timeout=2)
    with pytest.raises(requests.ConnectionError):
        c.checkpoint()
    assert len(sleeps) == 3


def test_reads_are_retried_too():
    sleeps = []
    with Stub([unavailable("1"), (200, {"Content-Type": "text/plain"}, "checkpoint text\n")]) as stub:
        assert Client(stub.url, sleep=sleeps.append).checkpoint() == "checkpoint text\n"
    assert sleeps == [1.0] and [r[0] for r in stub.requests] == ["GET", "GET"]


def test_async_client_retries_the_same_way():
    sleeps = []

    async def sleep(d):
        sleeps.append(d)

    async def run(url):
        async with AsyncClient(url, sleep=sleep) as c:
            return await c.submit_audit("X", "c", "a", {"n": 1}, ["SOX"])

    with Stub([unavailable("3"), unavailable(status=429), ok()]) as stub:
        r = asyncio.run(run(stub.url))
    assert r["index"] == 7 and sleeps[0] == 3.0 and 0.05 <= sleeps[1] <= 0.2
    bodies = [b for _, _, b in stub.requests]
    assert bodies[0] == bodies[1] == bodies[2]

    async def refused(url):
        async with AsyncClient(url, sleep=sleep, retries=1) as c:
            await c.checkpoint()

    sleeps.clear()
    with Stub([unavailable("0")]) as stub:
        with pytest.raises(ServerError):
            asyncio.run(refused(stub.url))
    assert len(stub.requests) == 2 and sleeps == [0.0]
