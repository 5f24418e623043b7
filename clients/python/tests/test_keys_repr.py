"""A signer key never shows its private key in str(), repr() or a dataclass repr."""

from govledger.note import SignerKey


def test_signer_key_repr_hides_the_private_key():
    import base64
    import hashlib

    seed = hashlib.sha256(b"alice").digest()
    key = SignerKey("alice", seed)
    secret_forms = [seed.hex(), base64.b64encode(b"\x01" + seed).decode(), repr(seed)]
    for shown in (str(key), repr(key), f"{key}", f"{key!r}", repr([key]), repr({"k": key})):
        for secret in secret_forms:
            assert secret not in shown, shown
        assert "alice" in shown
    assert str(key.verifier()) in repr(key)
