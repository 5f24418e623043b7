"""`AsyncClient`: the `Client` API with async methods, over httpx. The bodies, the entry_ids,
the retry policy, the refusals and the receipt verification are `Client`'s (govledger.client's
`_Core`); only the transport differs."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import httpx

from .client import _Core
from .keys import follow
from .note import Checkpoint, NoteError, SignerKey, VerifierKey
from .receipt import ReceiptError, VerifiedReceipt, batch_receipts


class AsyncClient(_Core):
    """`Client` for asyncio: the same constructor (plus `limits`, httpx connection limits), the
    same methods as coroutines, the same retries (waiting with `asyncio.sleep` unless `sleep` is
    given) and entry_ids. Use it as `async with AsyncClient(...) as c:` or call `aclose()`."""

    def __init__(self, url: str = "http://127.0.0.1:7800", token: Optional[str] = None,
                 log_key: Optional[Union[str, VerifierKey]] = None, timeout: float = 30.0, *,
                 retries: int = 5, deadline: Optional[float] = 60.0, backoff: float = 0.1, max_backoff: float = 5.0,
                 sleep: Callable[[float], Any] = asyncio.sleep, limits: Optional[httpx.Limits] = None):
        super().__init__(url, token, log_key, timeout, retries, deadline, backoff, max_backoff)
        self.http = httpx.AsyncClient(headers=self.headers, timeout=timeout,
                                      limits=limits or httpx.Limits(max_connections=100))
        self.sleep = sleep

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
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                r = await self.http.request(method, self.url + path, params=params or None, json=json_body)
            except (httpx.TransportError,):  # connection errors and timeouts
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

    async def submit(self, kind: str, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        return await self._post_entries(self._submission(kind, body, entry_id))

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
