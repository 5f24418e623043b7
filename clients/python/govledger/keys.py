"""The log's key rotations: `key_event` entries (ledger-format SPEC.md §3.6), verified and
followed from a key the caller trusts to the key that signs a given tree head, exactly as the
Rust verifier (`govledger verify --url`) does."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from .merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from .note import NoteError, VerifierKey
from .receipt import Leaf, ReceiptError

DOMAIN = b"govledger key_event v1\n"
KEY_EVENT = 6


class KeyEventError(ValueError):
    """A key_event that is malformed, mis-signed, or does not hand over from the key in use."""


@dataclass(frozen=True)
class KeyEvent:
    origin: str
    old_key: VerifierKey
    new_key: VerifierKey
    after_size: int
    after_root: bytes
    reason: str

    def statement(self) -> Dict[str, Any]:
        return {"event": "rotation", "origin": self.origin, "old_key": str(self.old_key),
                "new_key": str(self.new_key),
                "after": {"size": self.after_size, "root": base64.b64encode(self.after_root).decode()},
                "reason": self.reason}


def parse_key_event(body: bytes) -> KeyEvent:
    """Parses a key_event body and checks both signatures (raises KeyEventError)."""
    from .client import canonical_json  # the one RFC 8785 writer of this package

    try:
        v = json.loads(body)
        st, sigs = v["statement"], v["signatures"]
        if set(v) != {"statement", "signatures"} or set(sigs) != {"old", "new"}:
            raise KeyEventError("unknown or missing fields")
        if set(st) != {"event", "origin", "old_key", "new_key", "after", "reason"} or set(st["after"]) != {"size", "root"}:
            raise KeyEventError("unknown or missing statement fields")
        if st["event"] != "rotation":
            raise KeyEventError('statement.event must be "rotation"')
        ev = KeyEvent(st["origin"], VerifierKey.parse(st["old_key"]), VerifierKey.parse(st["new_key"]),
                      int(st["after"]["size"]), base64.b64decode(st["after"]["root"], validate=True), st["reason"])
        sig_old, sig_new = (base64.b64decode(sigs[k], validate=True) for k in ("old", "new"))
    except KeyEventError:
        raise
    except (ValueError, KeyError, TypeError, NoteError, binascii.Error) as e:
        raise KeyEventError(f"malformed key_event: {e}") from None
    if ev.old_key.name != ev.origin or ev.new_key.name != ev.origin or ev.old_key == ev.new_key:
        raise KeyEventError("both keys must be named after the origin and differ")
    if ev.statement() != st or len(ev.after_root) != 32:
        raise KeyEventError("the statement is not in its canonical form")
    message = DOMAIN + canonical_json(st)
    if not ev.old_key.verify_raw(message, sig_old):
        raise KeyEventError("signatures.old does not verify with the old key")
    if not ev.new_key.verify_raw(message, sig_new):
        raise KeyEventError("signatures.new does not verify with the new key")
    return ev


def follow(get: Callable[..., Any], trusted: VerifierKey, size: int, root: bytes) -> Tuple[VerifierKey, List[KeyEvent]]:
    """Returns the key that signs the tree of `size` leaves with `root`, starting from `trusted`
    and following every rotation the log records below `size`, with the rotations followed.
    `get(path, **params)` answers the server's JSON (Client._get(...).json())."""
    current, followed, cursor = trusted, [], 0
    while True:
        page = get("/v1/entries", kind="key_event", cursor=cursor, limit=100)
        for r in page["entries"]:
            index = int(r["index"])
            if index >= size:
                return current, followed
            leaf_bytes = base64.b64decode(r["leaf"])
            leaf = Leaf.parse(leaf_bytes)
            if leaf.kind != KEY_EVENT:
                raise KeyEventError(f"entry {index} was listed as a key_event but is {leaf.kind_name}")
            ev = parse_key_event(leaf.body)
            if ev.old_key != current:
                raise KeyEventError(f"the key_event at {index} rotates away from {ev.old_key}, not from {current}")
            if ev.after_size != index:
                raise KeyEventError(f"the key_event at {index} claims to follow the head of size {ev.after_size}")
            try:
                proof = get("/v1/proofs/inclusion", index=index, size=size)["proof"]
                verify_inclusion(index, size, leaf_hash(leaf_bytes), [base64.b64decode(p) for p in proof], root)
                if ev.after_size > 0:
                    proof = get("/v1/proofs/consistency", old=ev.after_size, new=size)["proof"]
                    verify_consistency(ev.after_size, size, ev.after_root, root, [base64.b64decode(p) for p in proof])
            except (ProofError, ReceiptError) as e:
                raise KeyEventError(f"the key_event at {index} is not part of the tree of size {size}: {e}") from None
            current = ev.new_key
            followed.append(ev)
        if page["next_cursor"] is None:
            return current, followed
        cursor = page["next_cursor"]


def keys_for_size(trusted: VerifierKey, events: List[KeyEvent], size: int) -> List[VerifierKey]:
    """The keys whose signature makes a checkpoint of `size` leaves the log's, given the key
    trusted first and the rotations followed from it (in log order): the old key up to the
    hand-over head (size `after.size + 1`, signed by both), the new key from that head on. A
    retired key beyond its hand-over, or a new key before it, does not sign for the log."""
    keys = [trusted]
    for ev in events:
        if size > ev.after_size + 1:
            keys = [ev.new_key]
        elif size == ev.after_size + 1:
            keys.append(ev.new_key)
        else:
            break
    return keys
