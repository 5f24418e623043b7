"""A key rotation (`govledgerd rotate-key` on a stopped server): a client pinned to the old key
follows it through the log's key_event entries; a client pinned to another key does not."""

import os
import subprocess

import pytest

from govledger import Client, NoteError, ReceiptError, SignerKey, parse_key_event, verify_receipt

from .conftest import binary

AUDIT = {"event_type": "MODEL_RELEASE", "component": "py", "action": "rotate", "details": {},
         "compliance_tags": ["SOX"]}


def start(data):
    proc = subprocess.Popen(
        [binary("govledgerd"), "serve", "--data-dir", data, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    addr = proc.stdout.readline().strip().removeprefix("listening on ")
    vkey = proc.stdout.readline().strip().removeprefix("verifier key: ")
    return proc, f"http://{addr}", vkey


def stop(proc):
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_a_pinned_client_follows_a_key_rotation(tmp_path):
    data = str(tmp_path / "data")
    proc, url, old = start(data)
    Client(url, log_key=old).submit_audit(**AUDIT, entry_id="before")
    before = Client(url).checkpoint()
    stop(proc)
    out = subprocess.run([binary("govledgerd"), "rotate-key", "--reason", "py test", "--data-dir", data],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    proc, url, new = start(data)
    try:
        assert new != old
        c = Client(url, log_key=old)
        r = c.submit_audit(**AUDIT, entry_id="after")
        assert [str(e.new_key) for e in c.rotations] == [new]
        assert c.rotations[0].reason == "py test"
        with pytest.raises(ReceiptError):
            verify_receipt(r, old)
        verify_receipt(r, new)
        # A batch after the rotation verifies too, and the event itself parses and checks out.
        c.submit_batch([{"kind": "audit", "body": AUDIT, "entry_id": "batch"}])
        (event,) = c.entries(kind="key_event")
        from govledger.receipt import Leaf
        import base64
        ev = parse_key_event(Leaf.parse(base64.b64decode(event["leaf"])).body)
        assert str(ev.old_key) == old and str(ev.new_key) == new
        # The head after the rotation is consistent with the one before it.
        Client(url, log_key=old).verify_consistency(before)
        c.verify_consistency(before)
        # The AsyncClient follows the rotation the same way (the shared key code).
        import asyncio
        from govledger.aio import AsyncClient

        async def follow_async(pinned):
            async with AsyncClient(url, log_key=pinned) as ac:
                r = await ac.submit_audit(**AUDIT, entry_id="async-after")
                await ac.verify_consistency(before)
                return r, [str(e.new_key) for e in ac.rotations]
        r, rotations = asyncio.run(follow_async(old))
        assert rotations == [new]
        verify_receipt(r, new)
        # A client pinned to an unrelated key does not follow the log's rotation.
        other = SignerKey("localhost/govledger", bytes([9]) * 32).verifier()
        with pytest.raises(ReceiptError):
            Client(url, log_key=other).submit_audit(**AUDIT, entry_id="other")
        with pytest.raises(ReceiptError):
            asyncio.run(follow_async(other))
        with pytest.raises(NoteError):
            Client(url, log_key=other).verify_consistency(before)
    finally:
        stop(proc)


def _resigned(note: str, key) -> str:
    """The checkpoint text of `note` signed by `key` alone."""
    import base64
    from govledger.note import Note
    text = Note.parse(note.encode()).text
    blob = key.verifier().key_id.to_bytes(4, "big") + key.sign_raw(text.encode())
    return f"{text}\n\u2014 {key.name} {base64.b64encode(blob).decode()}\n"


def test_the_retired_key_does_not_sign_beyond_its_hand_over(tmp_path):
    """Finding 9 in Python: once the client follows a rotation, a checkpoint or receipt that the
    retired key signs at a size beyond the hand-over is refused, and so is the new key signing a
    head before it; genuine heads of both spans verify."""
    data = str(tmp_path / "data")
    proc, url, old = start(data)
    before = Client(url, log_key=old).submit_audit(**AUDIT, entry_id="before")
    stop(proc)
    out = subprocess.run([binary("govledgerd"), "rotate-key", "--keep-retired-key", "--reason", "py test", "--data-dir", data],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (retired,) = [f for f in os.listdir(data) if f.startswith("log.key.retired-") and not f.endswith(".pub")]
    old_key = SignerKey.parse(open(os.path.join(data, retired)).read().strip())
    new_key = SignerKey.parse(open(os.path.join(data, "log.key")).read().strip())
    proc, url, new = start(data)
    try:
        c = Client(url, log_key=old)
        after = c.submit_audit(**AUDIT, entry_id="after")
        assert len(c.rotations) == 1
        stolen = dict(after, checkpoint=_resigned(after["checkpoint"], old_key))
        with pytest.raises(ReceiptError):
            c._verify(stolen)
        with pytest.raises(NoteError):
            c.verify_consistency(before["checkpoint"], stolen["checkpoint"])
        early = dict(before, checkpoint=_resigned(before["checkpoint"], new_key))
        with pytest.raises(ReceiptError):
            c._verify(early)
        c._verify(before)
        c._verify(after)
        c.verify_consistency(before["checkpoint"], after["checkpoint"])
    finally:
        stop(proc)
