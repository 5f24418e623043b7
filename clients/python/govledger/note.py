"""C2SP signed notes, verifier and signer keys (Go sumdb/note formats), checkpoints and
cosignatures (c2sp.org/signed-note, tlog-checkpoint, tlog-cosignature)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIG_PREFIX = "\u2014 "  # em dash and a space
ED25519 = 0x01
COSIGNATURE = 0x04


class NoteError(ValueError):
    """A malformed note, key or checkpoint, or a signature that does not verify."""


def key_id(name: str, sig_type: int, public: bytes) -> int:
    """The 4-byte key ID: SHA-256(name || LF || type || public key)[:4], big-endian."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public).digest()[:4], "big")


@dataclass(frozen=True)
class VerifierKey:
    """A note verifier key: `name+hex key id+base64(type || public key)`."""

    name: str
    key_id: int
    sig_type: int
    public: bytes

    @staticmethod
    def parse(text: str) -> "VerifierKey":
        parts = text.strip().split("+", 2)  # base64 may itself hold '+'
        if len(parts) != 3:
            raise NoteError(f"verifier key {text!r}: want name+id+key")
        name, hex_id, b64 = parts
        try:
            raw = base64.b64decode(b64, validate=True)
            kid = int(hex_id, 16)
        except Exception as e:  # noqa: BLE001 - any decoding failure is a malformed key
            raise NoteError(f"verifier key {text!r}: {e}") from None
        if len(hex_id) != 8 or len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE):
            raise NoteError(f"verifier key {text!r}: not an Ed25519 key")
        key = VerifierKey(name, kid, raw[0], raw[1:])
        if key_id(name, raw[0], raw[1:]) != kid:
            raise NoteError(f"verifier key {text!r}: the key ID does not match")
        return key

    def as_cosigner(self) -> "VerifierKey":
        """The same public key as a cosignature (type 0x04) key."""
        return VerifierKey(self.name, key_id(self.name, COSIGNATURE, self.public), COSIGNATURE, self.public)

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([self.sig_type]) + self.public).decode()}"

    def verify_raw(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
            return True
        except InvalidSignature:
            return False


@dataclass(frozen=True)
class SignerKey:
    """A signer key: `PRIVATE+KEY+name+hex key id+base64(0x01 || seed)`."""

    name: str
    seed: bytes = field(repr=False)

    def __repr__(self) -> str:
        # Never the private key: logs and tracebacks print reprs.
        return f"SignerKey(name={self.name!r}, verifier={self.verifier()!s})"

    __str__ = __repr__

    @staticmethod
    def parse(text: str) -> "SignerKey":
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("signer key: want PRIVATE+KEY+name+id+key")
        raw = base64.b64decode(parts[4])
        if len(raw) != 33 or raw[0] != ED25519:
            raise NoteError("signer key: not an Ed25519 key")
        key = SignerKey(parts[2], raw[1:])
        if key.verifier().key_id != int(parts[3], 16):
            raise NoteError("signer key: the key ID does not match")
        return key

    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    def verifier(self) -> VerifierKey:
        from cryptography.hazmat.primitives import serialization

        pub = self._private().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return VerifierKey(self.name, key_id(self.name, ED25519, pub), ED25519, pub)

    def sign_raw(self, message: bytes) -> bytes:
        return self._private().sign(message)


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    blob: bytes  # after the key ID


@dataclass(frozen=True)
class Note:
    text: str
    signatures: List[Signature]

    @staticmethod
    def parse(data: bytes) -> "Note":
        try:
            s = data.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("the note is not UTF-8") from None
        i = s.rfind("\n\n")
        if i < 0 or not s.endswith("\n"):
            raise NoteError("the note has no signature block")
        text, sigs = s[: i + 1], s[i + 2 :]
        out = []
        for line in sigs[:-1].split("\n"):
            if not line.startswith(SIG_PREFIX):
                raise NoteError(f"signature line {line!r} lacks the em dash")
            name, _, b64 = line[len(SIG_PREFIX) :].rpartition(" ")
            try:
                blob = base64.b64decode(b64, validate=True)
            except Exception:  # noqa: BLE001
                raise NoteError(f"signature by {name}: bad base64") from None
            if len(blob) < 5:
                raise NoteError(f"signature by {name}: too short")
            out.append(Signature(name, int.from_bytes(blob[:4], "big"), blob[4:]))
        if not out:
            raise NoteError("the note has no signatures")
        return Note(text, out)

    def verified_by(self, key: VerifierKey) -> Optional[int]:
        """Returns 0 (Ed25519) or the cosignature timestamp when `key` signed this note, else None."""
        for sig in self.signatures:
            if sig.name != key.name or sig.key_id != key.key_id:
                continue
            if key.sig_type == ED25519 and len(sig.blob) == 64:
                if key.verify_raw(self.text.encode(), sig.blob):
                    return 0
            elif key.sig_type == COSIGNATURE and len(sig.blob) == 72:
                ts = int.from_bytes(sig.blob[:8], "big")
                msg = f"cosignature/v1\ntime {ts}\n".encode() + self.text.encode()
                if ts < 2**63 and key.verify_raw(msg, sig.blob[8:]):
                    return ts
        return None


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: Sequence[str]

    @staticmethod
    def parse(text: str) -> "Checkpoint":
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint has origin, size and root lines")
        origin, size, root = lines[0], lines[1], lines[2]
        if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError("malformed checkpoint origin or size")
        try:
            r = base64.b64decode(root, validate=True)
        except Exception:  # noqa: BLE001
            raise NoteError("the root is not base64") from None
        if len(r) != 32:
            raise NoteError("the root is not 32 bytes")
        return Checkpoint(origin, int(size), r, tuple(lines[3:-1]))


def open_checkpoint(note: bytes, log_key: VerifierKey, witness_keys: Sequence[VerifierKey] = ()) -> tuple:
    """Verifies a signed checkpoint against the log key (whose name must be the origin).
    Returns (checkpoint, names of the witnesses whose cosignatures verified)."""
    n = Note.parse(note)
    cp = Checkpoint.parse(n.text)
    if cp.origin != log_key.name:
        raise NoteError(f"the checkpoint's origin {cp.origin!r} is not the log key's name {log_key.name!r}")
    if n.verified_by(log_key) is None:
        raise NoteError("the checkpoint is not signed by the log key")
    cosigners = [k.name for k in witness_keys if n.verified_by(k.as_cosigner() if k.sig_type == ED25519 else k) is not None]
    return cp, cosigners
