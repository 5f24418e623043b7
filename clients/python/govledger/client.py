"""HTTP client for a govledger server: submit entries (receipts verified against the pinned log
key), sign approval requests and approvals, fetch proofs."""

from __future__ import annotations

import base64
import datetime as _dt
import json
import random
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import requests

from .keys import KeyEvent, KeyEventError, follow, keys_for_size
from .merkle import verify_consistency
from .note import Checkpoint, Note, NoteError, SignerKey, VerifierKey, open_checkpoint
from .receipt import ReceiptError, VerifiedReceipt, batch_receipts, verify_receipt
from .values import to_json

if TYPE_CHECKING:
    from .lineage import TrainingSession


class ServerError(RuntimeError):
    """The server refused a request: `status`, and its JSON `error`, `message`, `field`."""

    def __init__(self, status: int, body: Dict[str, Any]):
        self.status = status
        self.error = body.get("error")
        self.field = body.get("field")
        self.message = body.get("message", "")
        super().__init__(f"{status} {self.error}: {self.message}" + (f" (field {self.field})" if self.field else ""))


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) for govledger's statements, exactly as the server and the Rust client
    compute it (ledger_format::jcs): strings, integers up to 2^53-1, booleans, arrays and
    objects (floats and null are refused, as the server refuses them). Object members are
    sorted by the UTF-16 code units of their names (RFC 8785 §3.2.3), strings escape only
    quote, backslash and control characters (``\\b \\t \\n \\f \\r``, else ``\\u00xx``)."""

    def ser(v: Any) -> str:
        if v is None or isinstance(v, float):
            raise ValueError("signed statements hold no floats and no null")
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            if abs(v) > 2**53 - 1:
                raise ValueError("integers in statements are at most 2^53-1")
            return str(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str):
                    raise ValueError("object member names are strings")
            names = sorted(v, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + ser(v[k]) for k in names) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(ser(x) for x in v) + "]"
        raise ValueError(f"a {type(v).__name__} cannot be in a signed statement")

    return ser(value).encode("utf-8")


def sign_statement(key: SignerKey, statement: Dict[str, Any]) -> Dict[str, Any]:
    """Returns ``{"statement": ..., "signature": base64(Ed25519(JCS(statement)))}``."""
    sig = key.sign_raw(canonical_json(statement))
    return {"statement": statement, "signature": base64.b64encode(sig).decode()}


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def signable_metrics(metrics: Dict[str, Any]) -> Dict[str, Union[int, str]]:
    """Performance metrics as a signed statement holds them (SPEC.md §3.3): integers as they
    are, other numbers as decimal strings (1.9 becomes "1.9", never an exponent), decimal strings
    as they are. numpy scalars are taken by value."""
    import decimal
    out: Dict[str, Union[int, str]] = {}
    for name, v in metrics.items():
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()  # numpy scalar
        if isinstance(v, bool):
            raise ValueError(f"performance metric {name}: a number, not a boolean")
        if isinstance(v, int):
            out[name] = v
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise ValueError(f"performance metric {name}: not a finite number")
            out[name] = format(decimal.Decimal(repr(v)), "f")
        elif isinstance(v, str):
            out[name] = v
        else:
            raise ValueError(f"performance metric {name}: a number or a decimal string, not {v!r}")
    return out


RETRY_STATUSES = (429, 503)


def new_entry_id() -> str:
    """A fresh idempotency key: 32 hex digits (uuid4)."""
    return uuid.uuid4().hex


def _retry_after(value: Optional[str]) -> Optional[float]:
    """The `Retry-After` header in seconds (an HTTP date is ignored: backoff applies)."""
    if not value:
        return None
    try:
        s = float(value.strip())
    except ValueError:
        return None
    return max(0.0, s) if s == s else None


class _Core:
    """What the sync `Client` and `govledger.aio.AsyncClient` share: the retry policy, the bodies
    of each kind of entry, the submission with its entry_id, the refusals and the log keys. Only
    the transport differs between them."""

    UNSIGNED_KINDS = ("audit", "lineage", "deployment")

    def __init__(self, url: str, token: Optional[str], log_key: Optional[Union[str, VerifierKey]], timeout: float,
                 retries: int, deadline: Optional[float], backoff: float, max_backoff: float):
        self.url = url.rstrip("/")
        self.headers: Dict[str, str] = {"Authorization": f"Bearer {token}"} if token else {}
        self.log_key = VerifierKey.parse(log_key) if isinstance(log_key, str) else log_key
        self.timeout = timeout
        self.retries = retries
        self.deadline = deadline
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._key_in_use = self.log_key
        self.rotations: List[KeyEvent] = []

    # -- retries --------------------------------------------------------------------------
    def _delay_after(self, status: int, retry_after: Optional[str], text: Callable[[], str],
                     attempt: int, started: float) -> Optional[float]:
        """For an answer of `status`: None when it is the one to return, else how long to wait
        before the next attempt; raises ServerError when the refusal is final."""
        if status < 400:
            return None
        delay = self._retry_delay(attempt, started, retry_after) if status in RETRY_STATUSES else None
        if delay is None:
            raise self._refusal(status, text())
        return delay

    def _retry_delay(self, attempt: int, started: float, retry_after: Optional[str]) -> Optional[float]:
        """The wait before retry number `attempt + 1` (`attempt` counts from 0), or None to give
        up: after `retries` retries, or when the wait would pass the overall `deadline`.
        `Retry-After` (seconds) wins; else `backoff * 2**attempt`, capped at `max_backoff`, with
        full jitter (uniform between half and all of it)."""
        if attempt >= self.retries:
            return None
        delay = _retry_after(retry_after)
        if delay is None:
            cap = min(self.max_backoff, self.backoff * (2 ** attempt))
            delay = random.uniform(cap / 2, cap)
        if self.deadline is not None and time.monotonic() - started + delay > self.deadline:
            return None
        return delay

    # -- bodies ---------------------------------------------------------------------------
    def _submission(self, kind: str, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        """The JSON posted to /v1/entries, with `entry_id` (a fresh one when absent: the same
        prepared submission, posted again on a retry, returns the original entry). The unsigned
        kinds' bodies are converted to plain JSON (`govledger.values.to_json`)."""
        if kind in self.UNSIGNED_KINDS:
            body = to_json(body, "")
        return {"kind": kind, "body": body, "entry_id": entry_id or new_entry_id()}

    @staticmethod
    def _audit(event_type: str, component: str, action: str, details: Dict[str, Any],
               compliance_tags: Sequence[str], optional: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
        return "audit", {"event_type": event_type, "component": component, "action": action, "details": details,
                         "compliance_tags": list(compliance_tags), **optional}

    @staticmethod
    def _request(key: SignerKey, model_id: str, artifact_sha256: str, dataset_sha256: Sequence[str], lineage: str,
                 environment: str, policy: str, performance_metrics: Optional[Dict[str, Any]],
                 extra: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
        st = {"model_id": model_id, "artifact_sha256": artifact_sha256, "dataset_sha256": list(dataset_sha256),
              "lineage": lineage, "requested_by": key.name, "environment": environment, "policy": policy,
              "signed_at": now_rfc3339(), **extra}
        if performance_metrics is not None:
            st["performance_metrics"] = signable_metrics(performance_metrics)
        return "approval_request", sign_statement(key, st)

    @staticmethod
    def _approval(key: SignerKey, request: str, artifact_sha256: str, role: str, decision: str,
                  comment: Optional[str], signed_at: Optional[str] = None) -> Tuple[str, Dict[str, Any]]:
        st = {"request": request, "artifact_sha256": artifact_sha256, "decision": decision,
              "approver": key.name, "role": role, "signed_at": signed_at or now_rfc3339()}
        if comment:
            st["comment"] = comment
        return "approval", sign_statement(key, st)

    @staticmethod
    def _deployment(request: str, model_id: str, status: str, environment: str, executed_by: str,
                    details: Optional[Dict[str, Any]]) -> Tuple[str, Dict[str, Any]]:
        body = {"model_id": model_id, "request": request, "status": status, "environment": environment,
                "executed_by": executed_by}
        if details is not None:
            body["details"] = details
        return "deployment", body

    @staticmethod
    def _entries_params(filters: Dict[str, Any]) -> Dict[str, Any]:
        """The query of a listing: `from_` named `from`; datetimes and dates as the server reads
        them (RFC 3339 UTC; a date is its midnight UTC)."""
        if "from_" in filters:
            filters["from"] = filters.pop("from_")
        for bound in ("from", "to"):
            v = filters.get(bound)
            if v is not None and not isinstance(v, str):
                filters[bound] = to_json(v, bound)
        return filters

    @classmethod
    def _summary_params(cls, from_: Any, to: Any) -> Dict[str, Any]:
        return cls._entries_params({k: v for k, v in (("from_", from_), ("to", to)) if v is not None})

    # -- answers --------------------------------------------------------------------------
    @staticmethod
    def _refusal(status: int, text: str) -> ServerError:
        try:
            v = json.loads(text)
            body = v if isinstance(v, dict) else {"message": str(v)}
        except ValueError:
            body = {"message": text.strip()}
        return ServerError(status, body)

    # -- log keys -------------------------------------------------------------------------
    def _known_keys(self, size: int, attempt: Callable[[VerifierKey], Any], error: type) -> Tuple[bool, Any]:
        """`(True, attempt(key))` for the first key followed so far that signs trees of `size`
        leaves, else `(False, the first error)`."""
        first = None
        for k in reversed(keys_for_size(self.log_key, self.rotations, size)):
            try:
                return True, attempt(k)
            except error as e:
                first = first or e
        return False, first

    def _after_follow(self, followed: Callable[[], Tuple[VerifierKey, List[KeyEvent]]], first: Any, size: int,
                      attempt: Callable[[VerifierKey], Any], error: type) -> Any:
        """`attempt(key)` with the keys found by following the log's rotations (`followed()`)."""
        try:
            key, events = followed()
        except (KeyEventError, ReceiptError, KeyError, ValueError) as e:
            raise error(f"{first}; following the log's key rotations: {e}") from None
        if len(events) > len(self.rotations):
            for k in reversed(keys_for_size(self.log_key, events, size)):
                try:
                    result = attempt(k)
                except error:
                    continue
                self._key_in_use, self.rotations = key, events
                return result
        raise error(f"the checkpoint of size {size} is not signed by the key that signs trees of that size"
                    f" (a retired key beyond its hand-over is refused): {first}")

    @staticmethod
    def _receipt_check(receipt: Dict[str, Any]) -> Tuple[int, bytes, Callable[[VerifierKey], Any]]:
        return (int(receipt["tree_size"]), base64.b64decode(receipt["root"]),
                lambda k: verify_receipt(receipt, k))

    @staticmethod
    def _checkpoint_check(note: str) -> Tuple[int, bytes, Callable[[VerifierKey], Any]]:
        claimed = Checkpoint.parse(Note.parse(note.encode()).text)
        return claimed.size, claimed.root, lambda k: open_checkpoint(note.encode(), k)[0]

    def _consistency_start(self) -> None:
        if self.log_key is None:
            raise ValueError("pin the log key (Client(log_key=...)) to verify checkpoints")

    @staticmethod
    def _consistency_finish(old: Checkpoint, new: Checkpoint, proof: Optional[List[str]]) -> None:
        verify_consistency(old.size, new.size, old.root, new.root, [base64.b64decode(p) for p in proof or []])


class Client(_Core):
    """A govledger server at `url`. With `log_key` (the log's note verifier key, pinned out of
    band), every receipt is verified before it is returned; after the log's key rotates
    (`govledgerd rotate-key`), the client follows the rotation from the pinned key through the
    log's key_event entries (`rotations` lists them) and verifies with the key in use.

    Every request is retried on HTTP 429 and 503 and on connection errors and timeouts, at most
    `retries` times and within `deadline` seconds overall (None: no limit), waiting `Retry-After`
    seconds when the server sends it, else `backoff` seconds doubling up to `max_backoff`, with
    jitter. `sleep` is the function that waits (tests pass their own). Every submission carries an
    `entry_id` (generated when not given), the same on each retry, so a retry returns the entry
    the first attempt logged."""

    def __init__(self, url: str = "http://127.0.0.1:7800", token: Optional[str] = None,
                 log_key: Optional[Union[str, VerifierKey]] = None, timeout: float = 30.0, *,
                 retries: int = 5, deadline: Optional[float] = 60.0, backoff: float = 0.1, max_backoff: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep):
        super().__init__(url, token, log_key, timeout, retries, deadline, backoff, max_backoff)
        self.session = requests.Session()
        self.session.headers.update(self.headers)
        self.sleep = sleep

    def _with_key_for(self, size: int, root: bytes, attempt: Callable[[VerifierKey], Any], error: type) -> Any:
        """Returns `attempt(key)` for the first key that signs trees of `size` leaves: among the
        keys followed so far, else after following the log's rotations from the pinned key to
        the tree of `size` leaves with `root`. A retired key beyond its hand-over never signs
        for the log. Raises `error` when no such key makes `attempt` succeed."""
        ok, result = self._known_keys(size, attempt, error)
        if ok:
            return result
        return self._after_follow(
            lambda: follow(lambda path, **q: self._get(path, **q).json(), self.log_key, size, root),
            result, size, attempt, error)

    def _verify(self, receipt: Dict[str, Any]) -> VerifiedReceipt:
        """Verifies a JSON receipt with the key that signs trees of its size."""
        size, root, attempt = self._receipt_check(receipt)
        return self._with_key_for(size, root, attempt, ReceiptError)

    # -- HTTP -----------------------------------------------------------------------------
    def _send(self, method: str, path: str, params: Optional[Dict[str, Any]] = None,
              json_body: Any = None) -> requests.Response:
        """One request, retried as the class says; an answer of 400 or more raises ServerError."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                r = self.session.request(method, self.url + path, params=params or None, json=json_body,
                                         timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout):
                delay = self._retry_delay(attempt, started, None)
                if delay is None:
                    raise
            else:
                delay = self._delay_after(r.status_code, r.headers.get("Retry-After"), lambda: r.text,
                                          attempt, started)
                if delay is None:
                    return r
            self.sleep(delay)
            attempt += 1

    def _get(self, path: str, **params: Any) -> requests.Response:
        return self._send("GET", path, params)

    def _post_entries(self, submission: Dict[str, Any]) -> Dict[str, Any]:
        """Posts one prepared submission (`_submission`) and returns its verified receipt."""
        receipt = self._send("POST", "/v1/entries", json_body=submission).json()
        if self.log_key is not None:
            self._verify(receipt)
        return receipt

    def submit(self, kind: str, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        """Submits one entry and returns its receipt (verified when the log key is pinned)."""
        return self._post_entries(self._submission(kind, body, entry_id))

    def submit_batch(self, entries: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        """Submits `[{"kind", "body", "entry_id"?}, ...]` atomically; returns the batch answer.
        Each entry without an entry_id gets one, so a retried batch logs nothing twice."""
        subs = [self._submission(e["kind"], e["body"], e.get("entry_id")) for e in entries]
        out = self._send("POST", "/v1/entries", json_body={"entries": subs}).json()
        if self.log_key is not None:
            for receipt in batch_receipts(out):
                self._verify(receipt)
        return out

    # -- entry kinds ----------------------------------------------------------------------
    def submit_audit(self, event_type: str, component: str, action: str, details: Dict[str, Any],
                     compliance_tags: Sequence[str], entry_id: Optional[str] = None, **optional: Any) -> Dict[str, Any]:
        """An audit event (`severity`, `actor`, `occurred_at` are optional keywords)."""
        return self.submit(*self._audit(event_type, component, action, details, compliance_tags, optional), entry_id)

    def submit_lineage(self, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        """A lineage entry (SPEC.md §3.2): model, datasets with their fingerprints, artifact."""
        return self.submit("lineage", body, entry_id)

    def training_session(self, model_id: str, model_name: Optional[str] = None, model_type: Optional[str] = None,
                         created_by: Optional[str] = None) -> "TrainingSession":
        """Starts recording a model's lineage (`govledger.lineage`): `record_dataset` as each
        dataset is used, then `complete(model_version=, artifact=, ...)` submits the entry and
        writes metadata.json beside the artifact, as `govledger lineage` does. `created_by`
        defaults to $USER, as in the CLI."""
        from .lineage import TrainingSession  # lineage.py builds on this module
        return TrainingSession(self, model_id, model_name, model_type, created_by)

    def request_approval(self, key: SignerKey, model_id: str, artifact_sha256: str,
                         dataset_sha256: Sequence[str], lineage: str, environment: str = "production",
                         policy: str = "four-eyes-v1", performance_metrics: Optional[Dict[str, Any]] = None,
                         *, entry_id: Optional[str] = None, **extra: Any) -> Dict[str, Any]:
        """Signs (as `key.name`) and submits an approval request. `performance_metrics` (name to
        number) are signed in the statement, non-integers as decimal strings: the policy's
        `performance_metrics.*` thresholds read only the signed values. `signed_at` (RFC 3339,
        among `extra`) defaults to now: pass the first call's to repeat the call with its
        entry_id, since the server refuses a known entry_id for a different body."""
        return self.submit(*self._request(key, model_id, artifact_sha256, dataset_sha256, lineage, environment,
                                          policy, performance_metrics, extra), entry_id)

    def approve(self, key: SignerKey, request: str, artifact_sha256: str, role: str,
                decision: str = "approve", comment: Optional[str] = None, *,
                entry_id: Optional[str] = None, signed_at: Optional[str] = None) -> Dict[str, Any]:
        """Signs (as `key.name`) and submits an approval or rejection of `request` (`signed_at`,
        RFC 3339, defaults to now: pass the first call's to repeat the call with its entry_id)."""
        return self.submit(*self._approval(key, request, artifact_sha256, role, decision, comment, signed_at),
                           entry_id)

    def record_deployment(self, request: str, model_id: str, status: str, environment: str,
                          executed_by: str, details: Optional[Dict[str, Any]] = None, *,
                          entry_id: Optional[str] = None) -> Dict[str, Any]:
        return self.submit(*self._deployment(request, model_id, status, environment, executed_by, details), entry_id)

    # -- reading --------------------------------------------------------------------------
    def log_info(self) -> Dict[str, Any]:
        return self._get("/v1/log").json()

    def checkpoint(self) -> str:
        return self._get("/checkpoint").text

    def receipt(self, leaf_hash: str, checkpoint: str = "latest") -> Dict[str, Any]:
        return self._get(f"/v1/receipts/{leaf_hash}", checkpoint=checkpoint).json()

    def entries(self, **filters: Any) -> List[Dict[str, Any]]:
        """Every receipt matching `kind=`, `model_id=`, `request=`, `tag=`, `from_=`, `to=`."""
        filters = self._entries_params(filters)
        out: List[Dict[str, Any]] = []
        cursor = 0
        while True:
            page = self._get("/v1/entries", cursor=cursor, limit=1000, **filters).json()
            out.extend(page["entries"])
            if page["next_cursor"] is None:
                return out
            cursor = page["next_cursor"]

    def approval_status(self, request: str) -> Dict[str, Any]:
        return self._get(f"/v1/approvals/{request}").json()

    def summary(self, from_: Any = None, to: Any = None) -> Dict[str, Any]:
        """The governance summary of the entries logged from `from_` to `to` (both inclusive;
        RFC 3339 strings, dates or aware datetimes; default: the whole log), as the server's
        `GET /v1/summary` counts it: `entries`, `audit_events_by_tag`,
        `audit_events_by_regulation`, `models`, `approvals`, `deployments`."""
        return self._get("/v1/summary", **self._summary_params(from_, to)).json()

    def _open(self, note: str) -> Checkpoint:
        """Opens a signed checkpoint with the key that signs trees of its size."""
        size, root, attempt = self._checkpoint_check(note)
        return self._with_key_for(size, root, attempt, NoteError)

    def verify_consistency(self, old_checkpoint: str, new_checkpoint: Optional[str] = None) -> None:
        """Verifies both signed checkpoints against the pinned log key (or the keys the log rotated
        to from it) and proves the newer one (default: the server's latest) consistent with the
        older. Raises on any failure."""
        self._consistency_start()
        new_checkpoint = new_checkpoint or self.checkpoint()
        new = self._open(new_checkpoint)
        old = self._open(old_checkpoint)
        if old.size == 0:
            return
        proof = None
        if old.size != new.size:
            proof = self._get("/v1/proofs/consistency", old=old.size, new=new.size).json()["proof"]
        self._consistency_finish(old, new, proof)


def verify_receipt_file(path: str, log_key: Union[str, VerifierKey]) -> VerifiedReceipt:
    with open(path, "rb") as f:
        return verify_receipt(f.read(), log_key)

