"""HTTP client for a govledger server: submit entries (receipts verified against the pinned log
key), sign approval requests and approvals, fetch proofs."""

from __future__ import annotations

import base64
import datetime as _dt
import json
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import requests

from .keys import KeyEvent, KeyEventError, follow, keys_for_size
from .merkle import verify_consistency
from .note import Checkpoint, Note, NoteError, SignerKey, VerifierKey, open_checkpoint
from .receipt import ReceiptError, VerifiedReceipt, batch_receipts, verify_receipt


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


class Client:
    """A govledger server at `url`. With `log_key` (the log's note verifier key, pinned out of
    band), every receipt is verified before it is returned; after the log's key rotates
    (`govledgerd rotate-key`), the client follows the rotation from the pinned key through the
    log's key_event entries (`rotations` lists them) and verifies with the key in use."""

    def __init__(self, url: str = "http://127.0.0.1:7800", token: Optional[str] = None,
                 log_key: Optional[Union[str, VerifierKey]] = None, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.log_key = VerifierKey.parse(log_key) if isinstance(log_key, str) else log_key
        self.timeout = timeout
        self._key_in_use = self.log_key
        self.rotations: List[KeyEvent] = []

    def _with_key_for(self, size: int, root: bytes, attempt: Callable[[VerifierKey], Any], error: type) -> Any:
        """Returns `attempt(key)` for the first key that signs trees of `size` leaves: among the
        keys followed so far, else after following the log's rotations from the pinned key to
        the tree of `size` leaves with `root`. A retired key beyond its hand-over never signs
        for the log. Raises `error` when no such key makes `attempt` succeed."""
        first = None
        for k in reversed(keys_for_size(self.log_key, self.rotations, size)):
            try:
                return attempt(k)
            except error as e:
                first = first or e
        try:
            key, events = follow(lambda path, **q: self._get(path, **q).json(), self.log_key, size, root)
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

    def _verify(self, receipt: Dict[str, Any]) -> VerifiedReceipt:
        """Verifies a JSON receipt with the key that signs trees of its size."""
        return self._with_key_for(int(receipt["tree_size"]), base64.b64decode(receipt["root"]),
                                  lambda k: verify_receipt(receipt, k), ReceiptError)

    # -- HTTP -----------------------------------------------------------------------------
    def _get(self, path: str, **params: Any) -> requests.Response:
        r = self.session.get(self.url + path, params=params or None, timeout=self.timeout)
        if r.status_code >= 400:
            raise ServerError(r.status_code, _json_or_text(r))
        return r

    def submit(self, kind: str, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        """Submits one entry and returns its receipt (verified when the log key is pinned)."""
        sub: Dict[str, Any] = {"kind": kind, "body": body}
        if entry_id:
            sub["entry_id"] = entry_id
        r = self.session.post(self.url + "/v1/entries", json=sub, timeout=self.timeout)
        if r.status_code != 200:
            raise ServerError(r.status_code, _json_or_text(r))
        receipt = r.json()
        if self.log_key is not None:
            self._verify(receipt)
        return receipt

    def submit_batch(self, entries: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        """Submits `[{"kind", "body", "entry_id"?}, ...]` atomically; returns the batch answer."""
        r = self.session.post(self.url + "/v1/entries", json={"entries": list(entries)}, timeout=self.timeout)
        if r.status_code != 200:
            raise ServerError(r.status_code, _json_or_text(r))
        out = r.json()
        if self.log_key is not None:
            for receipt in batch_receipts(out):
                self._verify(receipt)
        return out

    # -- entry kinds ----------------------------------------------------------------------
    def submit_audit(self, event_type: str, component: str, action: str, details: Dict[str, Any],
                     compliance_tags: Sequence[str], entry_id: Optional[str] = None, **optional: Any) -> Dict[str, Any]:
        """An audit event (`severity`, `actor`, `occurred_at` are optional keywords)."""
        body = {"event_type": event_type, "component": component, "action": action, "details": details,
                "compliance_tags": list(compliance_tags), **optional}
        return self.submit("audit", body, entry_id)

    def submit_lineage(self, body: Dict[str, Any], entry_id: Optional[str] = None) -> Dict[str, Any]:
        """A lineage entry (SPEC.md §3.2): model, datasets with their fingerprints, artifact."""
        return self.submit("lineage", body, entry_id)

    def request_approval(self, key: SignerKey, model_id: str, artifact_sha256: str,
                         dataset_sha256: Sequence[str], lineage: str, environment: str = "production",
                         policy: str = "four-eyes-v1", performance_metrics: Optional[Dict[str, Any]] = None,
                         **extra: Any) -> Dict[str, Any]:
        """Signs (as `key.name`) and submits an approval request. `performance_metrics` (name to
        number) are signed in the statement, non-integers as decimal strings: the policy's
        `performance_metrics.*` thresholds read only the signed values."""
        st = {"model_id": model_id, "artifact_sha256": artifact_sha256, "dataset_sha256": list(dataset_sha256),
              "lineage": lineage, "requested_by": key.name, "environment": environment, "policy": policy,
              "signed_at": now_rfc3339(), **extra}
        if performance_metrics is not None:
            st["performance_metrics"] = signable_metrics(performance_metrics)
        return self.submit("approval_request", sign_statement(key, st))

    def approve(self, key: SignerKey, request: str, artifact_sha256: str, role: str,
                decision: str = "approve", comment: Optional[str] = None) -> Dict[str, Any]:
        """Signs (as `key.name`) and submits an approval or rejection of `request`."""
        st = {"request": request, "artifact_sha256": artifact_sha256, "decision": decision,
              "approver": key.name, "role": role, "signed_at": now_rfc3339()}
        if comment:
            st["comment"] = comment
        return self.submit("approval", sign_statement(key, st))

    def record_deployment(self, request: str, model_id: str, status: str, environment: str,
                          executed_by: str, details: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        body = {"model_id": model_id, "request": request, "status": status, "environment": environment,
                "executed_by": executed_by}
        if details is not None:
            body["details"] = details
        return self.submit("deployment", body)

    # -- reading --------------------------------------------------------------------------
    def log_info(self) -> Dict[str, Any]:
        return self._get("/v1/log").json()

    def checkpoint(self) -> str:
        return self._get("/checkpoint").text

    def receipt(self, leaf_hash: str, checkpoint: str = "latest") -> Dict[str, Any]:
        return self._get(f"/v1/receipts/{leaf_hash}", checkpoint=checkpoint).json()

    def entries(self, **filters: Any) -> List[Dict[str, Any]]:
        """Every receipt matching `kind=`, `model_id=`, `request=`, `tag=`, `from_=`, `to=`."""
        if "from_" in filters:
            filters["from"] = filters.pop("from_")
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

    def _open(self, note: str) -> Checkpoint:
        """Opens a signed checkpoint with the key that signs trees of its size."""
        claimed = Checkpoint.parse(Note.parse(note.encode()).text)
        return self._with_key_for(claimed.size, claimed.root,
                                  lambda k: open_checkpoint(note.encode(), k)[0], NoteError)

    def verify_consistency(self, old_checkpoint: str, new_checkpoint: Optional[str] = None) -> None:
        """Verifies both signed checkpoints against the pinned log key (or the keys the log rotated
        to from it) and proves the newer one (default: the server's latest) consistent with the
        older. Raises on any failure."""
        if self.log_key is None:
            raise ValueError("pin the log key (Client(log_key=...)) to verify checkpoints")
        new_checkpoint = new_checkpoint or self.checkpoint()
        new = self._open(new_checkpoint)
        old = self._open(old_checkpoint)
        if old.size == 0:
            return
        if old.size == new.size:
            verify_consistency(old.size, new.size, old.root, new.root, [])
            return
        proof = self._get("/v1/proofs/consistency", old=old.size, new=new.size).json()["proof"]
        verify_consistency(old.size, new.size, old.root, new.root, [base64.b64decode(p) for p in proof])


def verify_receipt_file(path: str, log_key: Union[str, VerifierKey]) -> VerifiedReceipt:
    with open(path, "rb") as f:
        return verify_receipt(f.read(), log_key)


def _json_or_text(r: requests.Response) -> Dict[str, Any]:
    try:
        v = r.json()
        return v if isinstance(v, dict) else {"message": str(v)}
    except ValueError:
        return {"message": r.text.strip()}
