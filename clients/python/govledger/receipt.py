"""Receipts: the server's JSON receipt and the C2SP tlog-proof text, verified offline against a
pinned log key (ledger-format SPEC.md §5)."""

from __future__ import annotations

import base64
import binascii
import functools
import sys
import json
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .merkle import ProofError, leaf_hash, verify_inclusion
from .note import Checkpoint, NoteError, VerifierKey, open_checkpoint


_STRICT_BASE64 = sys.version_info >= (3, 11)


class ReceiptError(ValueError):
    """A receipt that is malformed or does not verify."""


@dataclass(frozen=True)
class Leaf:
    """The leaf envelope (version 1): kind, server time, submitter, entry_id and the JSON body."""

    kind: int
    logged_at_ms: int
    submitter: str
    entry_id: str
    body: bytes

    KINDS = {1: "audit", 2: "lineage", 3: "approval_request", 4: "approval", 5: "deployment", 6: "key_event"}

    @staticmethod
    def parse(data: bytes) -> "Leaf":
        try:
            if data[0] != 1:
                raise ReceiptError(f"leaf version {data[0]} is not 1")
            kind, ms = data[1], struct.unpack(">Q", data[2:10])[0]
            i = 10
            n = data[i]
            submitter = data[i + 1 : i + 1 + n].decode("ascii")
            i += 1 + n
            n = data[i]
            entry_id = data[i + 1 : i + 1 + n].decode("ascii")
            i += 1 + n
            n = struct.unpack(">H", data[i : i + 2])[0]
            body = data[i + 2 : i + 2 + n]
            if i + 2 + n != len(data):
                raise ReceiptError("the leaf has trailing or missing bytes")
        except (IndexError, struct.error, UnicodeDecodeError) as e:
            raise ReceiptError(f"malformed leaf: {e}") from None
        return Leaf(kind, ms, submitter, entry_id, body)

    @property
    def kind_name(self) -> str:
        return self.KINDS.get(self.kind, f"unknown({self.kind})")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class VerifiedReceipt:
    index: int
    leaf_hash: bytes
    leaf: Optional[Leaf]
    checkpoint: Checkpoint
    cosigners: Sequence[str]


def _b64(s: str) -> bytes:
    try:
        if _STRICT_BASE64:  # the same check as validate=True, at half the cost per proof hash
            return binascii.a2b_base64(s, strict_mode=True)
        return base64.b64decode(s, validate=True)
    except Exception:  # noqa: BLE001
        raise ReceiptError(f"not base64: {s!r}") from None


def _parse_tlog_proof(text: str) -> Dict[str, Any]:
    """Parses a c2sp.org/tlog-proof@v1 text: header, extra, index, proof lines, blank, checkpoint."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ReceiptError("tlog-proof: no blank line before the checkpoint")
    lines = head.split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1":
        raise ReceiptError("tlog-proof: bad header")
    i = 1
    extra = None
    if lines[i].startswith("extra "):
        extra = _b64(lines[i][6:])
        i += 1
    if not lines[i].startswith("index "):
        raise ReceiptError("tlog-proof: no index line")
    index = int(lines[i][6:])
    proof = [_b64(p) for p in lines[i + 1 :]]
    return {"index": index, "proof": proof, "extra": extra, "checkpoint": note}


@functools.lru_cache(maxsize=256)
def _open_checkpoint(note: str, key: VerifierKey, witness_keys: Tuple[VerifierKey, ...]) -> Tuple[Checkpoint, Tuple[str, ...]]:
    """`open_checkpoint`, remembered: the receipts the server hands out in one commit share
    their checkpoint, so a client verifying each of them checks the signatures once (a pure
    function of the note text and the keys; refusals raise and are not remembered)."""
    cp, cosigners = open_checkpoint(note.encode(), key, witness_keys)
    return cp, tuple(cosigners)


def verify_receipt(receipt: Union[str, bytes, Dict[str, Any]], log_key: Union[str, VerifierKey],
                   witness_keys: Sequence[Union[str, VerifierKey]] = (), witnesses_required: int = 0) -> VerifiedReceipt:
    """Verifies a JSON receipt (dict or text) or a tlog-proof text against the pinned log key:
    the leaf hashes to the claimed leaf hash, the checkpoint is signed by the log, its size and
    root match, and the inclusion proof leads from the leaf to that root. Raises ReceiptError."""
    key = VerifierKey.parse(log_key) if isinstance(log_key, str) else log_key
    wkeys = [VerifierKey.parse(k) if isinstance(k, str) else k for k in witness_keys]
    if isinstance(receipt, bytes):
        receipt = receipt.decode("utf-8")
    if isinstance(receipt, str):
        receipt = _parse_tlog_proof(receipt) if receipt.startswith("c2sp.org/tlog-proof@v1") else json.loads(receipt)
    try:
        if "leaf" in receipt and isinstance(receipt["leaf"], str):
            leaf_bytes = _b64(receipt["leaf"])
            proof = [_b64(p) for p in receipt["proof"]]
            claimed = bytes.fromhex(receipt["leaf_hash"])
        else:
            leaf_bytes = receipt.get("extra")
            proof = receipt["proof"]
            claimed = None
        index = int(receipt["index"])
        note = receipt["checkpoint"]
    except (KeyError, TypeError, ValueError) as e:
        raise ReceiptError(f"malformed receipt: {e}") from None
    if leaf_bytes is None:
        raise ReceiptError("the receipt carries no leaf")
    h = leaf_hash(leaf_bytes)
    if claimed is not None and claimed != h:
        raise ReceiptError(f"the leaf hashes to {h.hex()}, not {claimed.hex()}")
    try:
        cp, cosigners = _open_checkpoint(note, key, tuple(wkeys))
    except NoteError as e:
        raise ReceiptError(str(e)) from None
    if "tree_size" in receipt and int(receipt["tree_size"]) != cp.size:
        raise ReceiptError("tree_size differs from the checkpoint's size")
    if "root" in receipt and _b64(receipt["root"]) != cp.root:
        raise ReceiptError("root differs from the checkpoint's root")
    try:
        verify_inclusion(index, cp.size, h, proof, cp.root)
    except ProofError as e:
        raise ReceiptError(f"inclusion proof: {e}") from None
    if len(cosigners) < witnesses_required:
        raise ReceiptError(f"{len(cosigners)} witnesses cosigned, {witnesses_required} required")
    try:
        leaf = Leaf.parse(leaf_bytes)
    except ReceiptError:
        leaf = None
    return VerifiedReceipt(index, h, leaf, cp, list(cosigners))


def batch_receipts(answer: Union[str, bytes, Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Returns each entry's full JSON receipt from a batch answer (`{"tree_size", "root",
    "checkpoint", "receipts": [{"index", "leaf_hash", "leaf", "proof"}, ...]}`), in order.
    Raises ReceiptError when it is not one, or holds no receipts."""
    if isinstance(answer, bytes):
        answer = answer.decode("utf-8")
    if isinstance(answer, str):
        try:
            answer = json.loads(answer)
        except ValueError as e:
            raise ReceiptError(f"malformed batch answer: {e}") from None
    try:
        shared = {k: answer[k] for k in ("tree_size", "root", "checkpoint")}
        items = answer["receipts"]
    except (KeyError, TypeError) as e:
        raise ReceiptError(f"malformed batch answer: missing {e}") from None
    if not isinstance(items, list) or not items:
        raise ReceiptError("malformed batch answer: no receipts")
    return [{**item, **shared} for item in items]


def verify_batch(answer: Union[str, bytes, Dict[str, Any]], log_key: Union[str, VerifierKey],
                 witness_keys: Sequence[Union[str, VerifierKey]] = (),
                 witnesses_required: int = 0) -> List[VerifiedReceipt]:
    """Verifies every receipt of a batch answer as `verify_receipt` does. Raises ReceiptError
    naming the first that fails (its position in the batch and its index)."""
    out = []
    for position, receipt in enumerate(batch_receipts(answer)):
        try:
            out.append(verify_receipt(receipt, log_key, witness_keys, witnesses_required))
        except ReceiptError as e:
            raise ReceiptError(f"receipt {position} of the batch (index {receipt.get('index')}): {e}") from None
    return out
