"""`AsyncClient`: the `Client` API with async methods, over httpx. The bodies, the entry_ids,
the retry policy, the refusals and the receipt verification are `Client`'s (govledger.client's
`_Core`); only the transport differs.

httpx does the HTTP (HTTP/1.1, TLS, proxies from the environment); this module only decides how
its connections are shared. Each connection has an `httpx.AsyncClient` of its own (a lane, at
most one request on it at a time, its connection kept alive between requests), because one
httpx client shared by many tasks is slow in two ways: its default limits keep 20 connections
alive, so 64 tasks open a new one for most requests; and with limits that keep them all, its
pool hands the first idle connection to every request that arrives in the same turn of the
event loop, and all but one try again, walking and polling every connection each time. The
server answers a commit's submissions together, so that is every turn: 64 tasks over one httpx
client made 110-114 verified submissions/s where the same tasks over lanes made 472-535, in
alternating runs on one 2-core machine against one release govledgerd (2026-12-03).
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import httpx

from .client import _Core
from .coalesce import Coalescer
from .keys import follow
from .lineage import AsyncTrainingSession
from .note import Checkpoint, NoteError, SignerKey, VerifierKey
from .receipt import ReceiptError, VerifiedReceipt, batch_receipts


# The server closes a connection idle for 60 s (its `connections.idle_timeout_ms` default): the
# client lets go first, so that it never sends a request on a connection the server is closing.
KEEPALIVE_EXPIRY = 30.0

# Errors after which the same request may succeed: the connection could not be made or broke, the
# answer did not come in time (`httpx.TimeoutException`), the server hung up before answering.
# Not the other `httpx.TransportError`s (a URL scheme httpx cannot speak, a request it cannot
# encode): those fail the same way every time.
RETRIED_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> httpx.URL:
    """The URL parsed once (httpx parses a str on every request, a third of its request
    building); an httpx.URL is immutable, so one may serve every request to it."""
    return httpx.URL(url)


def pool_limits(connections: int = 64) -> httpx.Limits:
    """httpx limits for up to `connections` requests in flight, each connection kept alive for
    the next request (`max_keepalive_connections` = `max_connections`) until it has been idle
    `KEEPALIVE_EXPIRY` seconds."""
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections,
                        keepalive_expiry=KEEPALIVE_EXPIRY)


class _Lanes:
    """Requests over httpx clients of one connection each (lanes), each lent to one request at a
    time, the most recently used first: `limits.max_connections` lanes at most, so as many
    requests in flight (more wait their turn); `limits.max_keepalive_connections` of them kept
    with their connection open between requests, each connection closed after
    `limits.keepalive_expiry` idle seconds. Lanes are made as the requests in flight need them."""

    def __init__(self, headers: Dict[str, str], timeout: float, limits: httpx.Limits):
        if limits.max_connections is None or limits.max_connections < 1:
            raise ValueError("limits.max_connections: a number, at least 1")
        self._headers = headers
        self._timeout = timeout
        self._max = limits.max_connections
        keep = limits.max_keepalive_connections
        self._keep = self._max if keep is None else min(keep, self._max)
        self._lane = httpx.Limits(max_connections=1, max_keepalive_connections=1,
                                  keepalive_expiry=limits.keepalive_expiry)
        self._ssl: Any = None
        self._idle: List[httpx.AsyncClient] = []
        self._open: List[httpx.AsyncClient] = []
        self._slots: Optional[asyncio.Semaphore] = None  # made on the event loop that uses it

    def _new(self) -> httpx.AsyncClient:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # loaded once, not once a connection
        lane = httpx.AsyncClient(headers=self._headers, timeout=self._timeout, limits=self._lane,
                                 http1=True, http2=False, verify=self._ssl)
        self._open.append(lane)
        return lane

    async def request(self, method: str, url: httpx.URL, **kwargs: Any) -> httpx.Response:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max)
        async with self._slots:
            lane = self._idle.pop() if self._idle else self._new()
            try:
                return await lane.request(method, url, **kwargs)
            finally:
                if len(self._idle) < self._keep:
                    self._idle.append(lane)
                else:
                    self._open.remove(lane)
                    await lane.aclose()

    async def aclose(self) -> None:
        lanes, self._open, self._idle = self._open, [], []
        for lane in lanes:
            await lane.aclose()


class AsyncClient(_Core):
    """`Client` for asyncio: the same constructor, plus `limits` (`httpx.Limits`; by default
    `pool_limits(64)`: 64 requests in flight, every connection kept alive for the next) and
    `coalesce`; the same methods as coroutines, the same retries (waiting with `asyncio.sleep`
    unless `sleep` is given) and entry_ids. A connection error or timeout that outlasts the
    retries is raised as the `httpx.TransportError` it is (`httpx.ConnectError`,
    `httpx.ReadTimeout`, ...). `coalesce=True` joins the submissions of concurrent tasks into
    batch requests (govledger.coalesce). Use it as `async with AsyncClient(...) as c:` or call
    `aclose()`."""

    def __init__(self, url: str = "http://127.0.0.1:7800", token: Optional[str] = None,
                 log_key: Optional[Union[str, VerifierKey]] = None, timeout: float = 30.0, *,
                 retries: int = 5, deadline: Optional[float] = 60.0, backoff: float = 0.1, max_backoff: float = 5.0,
                 sleep: Callable[[float], Any] = asyncio.sleep, limits: Optional[httpx.Limits] = None,
                 coalesce: bool = False):
        super().__init__(url, token, log_key, timeout, retries, deadline, backoff, max_backoff)
        self.http = _Lanes(self.headers, timeout, limits or pool_limits())
        self.sleep = sleep
        self._coalescer = Coalescer(self._post_entries, self._post_batch) if coalesce else None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _with_key_for(self, size: int, root: bytes, attempt: Callable[[VerifierKey], Any], error: type) -> Any:
        ok, result = self._known_keys(size, attempt, error)
        if ok:
            return result
        # Following the rotations is rare (once per key change): fetched in a worker thread with
        # a sync transport that retries as this client does.
        def followed():
            from .client import Client
            sync = Client(self.url, log_key=self.log_key, timeout=self.timeout, retries=self.retries,
                          deadline=self.deadline, backoff=self.backoff, max_backoff=self.max_backoff)
            sync.session.headers.update(self.headers)
            try:
                return follow(lambda path, **q: sync._get(path, **q).json(), self.log_key, size, root), None
            except Exception as e:  # noqa: BLE001 - re-raised below, where _after_follow words it
                return None, e
            finally:
                sync.session.close()

        found, failure = await asyncio.to_thread(followed)

        def got():
            if failure is not None:
                raise failure
            return found
        return self._after_follow(got, result, size, attempt, error)

    async def _verify(self, receipt: Dict[str, Any]) -> VerifiedReceipt:
        size, root, attempt = self._receipt_check(receipt)
        return await self._with_key_for(size, root, attempt, ReceiptError)

    # -- HTTP -----------------------------------------------------------------------------
    async def _send(self, method: str, path: str, params: Optional[Dict[str, Any]] = None,
                    json_body: Any = None) -> httpx.Response:
        # Absent filters are left out, as requests leaves them out for the sync Client.
        query = {k: v for k, v in params.items() if v is not None} if params else None
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                r = await self.http.request(method, _parsed(self.url + path), params=query, json=json_body)
            except RETRIED_ERRORS:
                delay = self._retry_delay(attempt, started, None)
                if delay is None:
                    raise
            else:
                delay = self._delay_after(r.status_code, r.headers.get("Retry-After"), lambda: r.text,
                                          attempt, started)
                if delay is None:
                    return r
            await self.sleep(delay)
            attempt += 1

    async def _get(self, path: str, **params: Any) -> httpx.Response:
        return await self._send("GET", path, params)

    async def _post_entries(self, submission: Dict[str, Any]) -> Dict[str, Any]:
        receipt = (await self._send("POST", "/v1/entries", json_body=submission)).json()
        if self.log_key is not None:
            await self._verify(receipt)
        return receipt

    async def _post_batch(self, submissions: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Posts prepared submissions as one batch; returns each entry's verified receipt."""
        receipts = batch_receipts((await self._send("POST", "/v1/entries", json_body={"entries": submissions})).json())
        if len(receipts) != len(submissions):
            raise ReceiptError(f"{len(receipts)} receipts for a batch of {len(submissions)}")
        if self.log_key is not None:
            for receipt in receipts:
                await self._verify(receipt)
        return receipts

    async def submit(self, kind: str, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        submission = self._submission(kind, body, entry_id)
        if self._coalescer is not None:
            return await self._coalescer.submit(submission)
        return await self._post_entries(submission)

    async def submit_batch(self, entries: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        subs = [self._submission(e["kind"], e["body"], e.get("entry_id")) for e in entries]
        out = (await self._send("POST", "/v1/entries", json_body={"entries": subs})).json()
        if self.log_key is not None:
            for receipt in batch_receipts(out):
                await self._verify(receipt)
        return out

    # -- entry kinds ----------------------------------------------------------------------
    async def submit_audit(self, event_type: str, component: str, action: str, details: Dict[str, Any],
                           compliance_tags: Sequence[str], entry_id: Optional[str] = None,
                           **optional: Any) -> Dict[str, Any]:
        return await self.submit(*self._audit(event_type, component, action, details, compliance_tags, optional),
                                 entry_id)

    async def submit_lineage(self, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        return await self.submit("lineage", body, entry_id)

    def training_session(self, model_id: str, model_name: Optional[str] = None, model_type: Optional[str] = None,
                         created_by: Optional[str] = None) -> AsyncTrainingSession:
        """`Client.training_session`, whose `complete` is awaited."""
        return AsyncTrainingSession(self, model_id, model_name, model_type, created_by)

    async def request_approval(self, key: SignerKey, model_id: str, artifact_sha256: str,
                               dataset_sha256: Sequence[str], lineage: str, environment: str = "production",
                               policy: str = "four-eyes-v1", performance_metrics: Optional[Dict[str, Any]] = None,
                               *, entry_id: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
        return await self.submit(*self._request(key, model_id, artifact_sha256, dataset_sha256, lineage, environment,
                                                policy, performance_metrics, extra), entry_id)

    async def approve(self, key: SignerKey, request: str, artifact_sha256: str, role: str,
                      decision: str = "approve", comment: Optional[str] = None, *,
                      entry_id: Optional[str] = None, signed_at: Optional[str] = None) -> Dict[str, Any]:
        return await self.submit(*self._approval(key, request, artifact_sha256, role, decision, comment,
                                                 signed_at), entry_id)

    async def record_deployment(self, request: str, model_id: str, status: str, environment: str,
                                executed_by: str, details: Optional[Dict[str, Any]] = None, *,
                                entry_id: Optional[str] = None) -> Dict[str, Any]:
        return await self.submit(*self._deployment(request, model_id, status, environment, executed_by, details),
                                 entry_id)

    # -- reading --------------------------------------------------------------------------
    async def log_info(self) -> Dict[str, Any]:
        return (await self._get("/v1/log")).json()

    async def checkpoint(self) -> str:
        return (await self._get("/checkpoint")).text

    async def receipt(self, leaf_hash: str, checkpoint: str = "latest") -> Dict[str, Any]:
        return (await self._get(f"/v1/receipts/{leaf_hash}", checkpoint=checkpoint)).json()

    async def entries(self, **filters: Any) -> List[Dict[str, Any]]:
        filters = self._entries_params(filters)
        out: List[Dict[str, Any]] = []
        cursor = 0
        while True:
            page = (await self._get("/v1/entries", cursor=cursor, limit=1000, **filters)).json()
            out.extend(page["entries"])
            if page["next_cursor"] is None:
                return out
            cursor = page["next_cursor"]

    async def approval_status(self, request: str) -> Dict[str, Any]:
        return (await self._get(f"/v1/approvals/{request}")).json()

    async def summary(self, from_: Any = None, to: Any = None) -> Dict[str, Any]:
        """`Client.summary`, awaited."""
        return (await self._get("/v1/summary", **self._summary_params(from_, to))).json()

    async def _open(self, note: str) -> Checkpoint:
        size, root, attempt = self._checkpoint_check(note)
        return await self._with_key_for(size, root, attempt, NoteError)

    async def verify_consistency(self, old_checkpoint: str, new_checkpoint: Optional[str] = None) -> None:
        self._consistency_start()
        new_checkpoint = new_checkpoint or await self.checkpoint()
        new = await self._open(new_checkpoint)
        old = await self._open(old_checkpoint)
        if old.size == 0:
            return
        proof = None
        if old.size != new.size:
            proof = (await self._get("/v1/proofs/consistency", old=old.size, new=new.size)).json()["proof"]
        self._consistency_finish(old, new, proof)
