"""Receipts verified against static C2SP tlog-tiles (govledger.tiles), with no server: a real
govledgerd's log, exported with `govledgerd export` and served by python's http.server (or read
as a directory / file:// URL), and the running server's own /tile/ paths."""

import base64
import contextlib
import copy
import functools
import http.server
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import pytest

from govledger import (Client, ReceiptError, SignerKey, TileFetchError, TileReader, batch_receipts,
                       leaf_hash, node_hash, verify_receipt, verify_receipt_with_tiles)
from govledger.note import Checkpoint, Note
from govledger.tiles import (TreeTiles, consistency_proof_from_tiles, encode_index, entries_path,
                             inclusion_proof_from_tiles, tile_path)

from .conftest import binary

PHASE1 = 300  # entries before the first export (level-1 tile and partial tiles exist)
PHASE2 = 420  # entries after it: two full level-0 tiles and bundles, partial ones, level-1 .p/2


def audit(n):
    return {"kind": "audit", "body": {"event_type": "TILES", "component": "tiles-test", "action": "append",
                                      "details": {"n": n}, "compliance_tags": ["SOX"]}}


class Log:
    """A govledgerd on its own data dir, which it can stop, export and start again."""

    def __init__(self, people):
        self.root = tempfile.mkdtemp(prefix="govledger-tiles-")
        self.cfg = os.path.join(self.root, "govledger.toml")
        self.data = os.path.join(self.root, "data")
        with open(self.cfg, "w") as f:
            for name, key in people.items():
                f.write(f'[[people]]\nname = "{name}"\nroles = ["quant"]\nkey = "{key.verifier()}"\n')
        self.proc = None
        self.url = None
        self.log_key = None

    def start(self):
        self.proc = subprocess.Popen(
            [binary("govledgerd"), "serve", "--config", self.cfg, "--data-dir", self.data, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        addr = self.proc.stdout.readline().strip().removeprefix("listening on ")
        vkey = self.proc.stdout.readline().strip().removeprefix("verifier key: ")
        assert addr and vkey, "govledgerd did not start"
        assert self.log_key in (None, vkey)
        self.url, self.log_key = f"http://{addr}", vkey

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.terminate()
            self.proc.wait(timeout=60)
        if self.proc is not None:
            self.proc.stdout.close()
        self.proc = None

    def export(self, to):
        assert not self.running(), "export runs on a stopped server's data dir"
        out = subprocess.run([binary("govledgerd"), "export", "--config", self.cfg, "--data-dir", self.data, "--to", to],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return to

    def signer(self):
        with open(os.path.join(self.data, "log.key")) as f:
            return SignerKey.parse(f.read().strip())


@pytest.fixture(scope="module")
def log(people):
    """Phase 1: PHASE1 entries (the first alone), stop, export to `old`; phase 2: PHASE2 more.
    Leaves the server running with the receipts of every entry as submitted, and fresh ones."""
    lg = Log(people)
    lg.start()
    try:
        client = Client(lg.url, log_key=lg.log_key)
        lg.submitted = {}  # index -> receipt as answered at submission
        lg.n_of = {}  # index -> details.n
        first = client.submit(**audit(0))
        lg.submitted[first["index"]] = first
        lg.n_of[first["index"]] = 0
        for r in batch_receipts(client.submit_batch([audit(n) for n in range(1, PHASE1)])):
            lg.submitted[r["index"]] = r
            lg.n_of[r["index"]] = json.loads(verify_receipt(r, lg.log_key).leaf.body)["details"]["n"]
        lg.size_old = int(client.log_info()["tree_size"])
        lg.stop()
        lg.old_export = lg.export(os.path.join(lg.root, "export-old"))
        lg.start()
        client = Client(lg.url, log_key=lg.log_key)
        answer = client.submit_batch([audit(n) for n in range(PHASE1, PHASE1 + PHASE2)])
        for r in batch_receipts(answer):
            lg.submitted[r["index"]] = r
            lg.n_of[r["index"]] = json.loads(verify_receipt(r, lg.log_key).leaf.body)["details"]["n"]
        lg.size = int(client.log_info()["tree_size"])
        assert lg.size >= PHASE1 + PHASE2 and lg.size_old >= PHASE1
        lg.last = lg.size - 1
        lg.fresh = {i: client.receipt(lg.submitted[i]["leaf_hash"]) for i in (0, 255, 256, 300, lg.last)}
        lg.fresh_text = client.session.get(f"{lg.url}/v1/receipts/{lg.submitted[256]['leaf_hash']}",
                                           headers={"Accept": "text/plain"}).text
        yield lg
    finally:
        lg.stop()
        shutil.rmtree(lg.root, ignore_errors=True)


@contextlib.contextmanager
def serving(directory):
    """Serves `directory` over HTTP on 127.0.0.1 (any static web server would do)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        t.join(timeout=10)


@pytest.fixture(scope="module")
def exported(log):
    """The log exported at its final size, once the server has stopped, served over HTTP."""
    log.stop()
    d = log.export(os.path.join(log.root, "export"))
    with serving(d) as url:
        yield {"dir": d, "url": url}


@pytest.fixture
def copy_of(exported, tmp_path):
    """A private copy of the export, to damage, and a function serving it over HTTP."""
    d = tmp_path / "tiles"
    shutil.copytree(exported["dir"], d)
    return d


def b64(h):
    return base64.b64encode(h).decode()


def sign_note(text, key):
    sig = key.verifier().key_id.to_bytes(4, "big") + key.sign_raw(text.encode())
    return (text + "\n\u2014 " + key.name + " " + b64(sig) + "\n").encode()


def checkpoint_text(size, root, origin="localhost/govledger"):
    return f"{origin}\n{size}\n{b64(root)}\n"


# -- the running server's own tiles -----------------------------------------------------

def test_tile_proofs_equal_the_servers(log):
    """Proofs computed from the server's /tile/ paths equal /v1/proofs/*, for full and
    partial tiles, at the latest size and smaller ones."""
    if not log.running():
        log.start()
    import requests

    reader = TileReader(log.url)
    for size in (log.size, log.size_old, 511, 512, 257, 256, 255, 1):
        tree = TreeTiles(reader, size)
        for index in sorted({0, 1, 254, 255, 256, 257, 300, 511, 512, size - 1}):
            if index >= size:
                continue
            want = requests.get(f"{log.url}/v1/proofs/inclusion", params={"index": index, "size": size},
                                timeout=30).json()["proof"]
            assert [b64(h) for h in tree.inclusion_proof(index)] == want, (index, size)
        for old in sorted({1, 2, 255, 256, 257, 300, 511, size - 1}):
            if not 0 < old < size:
                continue
            want = requests.get(f"{log.url}/v1/proofs/consistency", params={"old": old, "new": size},
                                timeout=30).json()["proof"]
            assert [b64(h) for h in tree.consistency_proof(old)] == want, (old, size)
    assert [b64(h) for h in inclusion_proof_from_tiles(log.url, 256, log.size)] == log.fresh[256]["proof"]
    assert consistency_proof_from_tiles(reader, log.size, log.size) == []
    cp = Checkpoint.parse(Note.parse(reader.checkpoint()).text)
    assert cp.size == log.size and TreeTiles(reader, cp.size).root() == cp.root


def test_receipts_verify_against_the_servers_tiles(log):
    if not log.running():
        log.start()
    for i in (0, 255, 256, log.last):
        v = verify_receipt_with_tiles(log.submitted[i], log.log_key, log.url)
        assert v.index == i and v.tree_size == log.size and v.leaf_json["details"]["n"] == log.n_of[i]


# -- a static export, no server ------------------------------------------------------------

def test_export_layout(exported, log):
    d = pathlib.Path(exported["dir"])
    size = log.size
    assert (d / "checkpoint").is_file()
    for level in (0, 1):
        count = size >> (8 * level)
        for t in range(count // 256):
            assert (d / tile_path(level, t)).stat().st_size == 8192
        if count % 256:
            assert (d / tile_path(level, count // 256, count % 256)).stat().st_size == 32 * (count % 256)
    assert (d / entries_path(size // 256, size % 256)).is_file()
    assert not (d / "tile" / "2").exists()


def test_receipts_verify_against_exported_tiles(exported, log):
    assert not log.running()  # no govledgerd: a static web server only
    for i in (0, 255, 256, log.last):
        for receipt in (log.fresh[i], log.submitted[i]):
            v = verify_receipt_with_tiles(receipt, log.log_key, exported["url"])
            assert v.index == i and v.tree_size == log.size
            assert v.leaf_json["details"]["n"] == log.n_of[i]
            assert v.leaf.kind_name == "audit" and v.leaf_hash == leaf_hash(v.leaf_bytes)
            assert v.receipt_tree_size == int(receipt["tree_size"])
    assert log.fresh[log.last]["tree_size"] == log.size
    # The tlog-proof text form too, and JSON text.
    assert verify_receipt_with_tiles(log.fresh_text, log.log_key, exported["url"]).index == 256
    assert verify_receipt_with_tiles(json.dumps(log.fresh[0]), log.log_key, exported["url"]).index == 0


def test_older_receipts_are_proved_consistent(exported, log):
    """Receipts whose own checkpoint is older than the export: the very first (size 1), one of
    the first export's size, each verified against its own checkpoint and proved a prefix."""
    first = log.submitted[0]
    assert int(first["tree_size"]) < log.size_old < log.size
    v = verify_receipt_with_tiles(first, log.log_key, exported["url"])
    assert (v.index, v.tree_size, v.receipt_tree_size) == (0, log.size, int(first["tree_size"]))
    mid = log.submitted[255]
    assert int(mid["tree_size"]) == log.size_old
    v = verify_receipt_with_tiles(mid, log.log_key, exported["url"])
    assert (v.tree_size, v.receipt_tree_size) == (log.size, log.size_old)


def test_directory_and_file_urls(exported, log):
    d = exported["dir"]
    assert verify_receipt_with_tiles(log.fresh[256], log.log_key, d).tree_size == log.size
    assert verify_receipt_with_tiles(log.fresh[255], log.log_key, pathlib.Path(d)).index == 255
    assert verify_receipt_with_tiles(log.submitted[0], log.log_key, pathlib.Path(d).as_uri()).index == 0
    reader = TileReader(d)
    assert verify_receipt_with_tiles(log.fresh[log.last], log.log_key, reader).index == log.last


def test_the_older_export(log):
    """The first export (size_old): receipts of that size verify; newer ones are refused, as
    the tiles cannot prove the newer checkpoint consistent."""
    with serving(log.old_export) as url:
        v = verify_receipt_with_tiles(log.submitted[255], log.log_key, url)
        assert (v.tree_size, v.receipt_tree_size) == (log.size_old, log.size_old)
        assert verify_receipt_with_tiles(log.submitted[0], log.log_key, url).tree_size == log.size_old
        with pytest.raises(ReceiptError, match="newer than the tiles"):
            verify_receipt_with_tiles(log.fresh[0], log.log_key, url)
        with pytest.raises(ReceiptError, match="not in the tiles' tree"):
            verify_receipt_with_tiles(log.submitted[log.last], log.log_key, url)


def test_full_tile_replaces_a_deleted_partial(log, exported, tmp_path):
    """tlog-tiles lets a log delete a partial tile once the full one exists: the reader falls
    back to the full tile (and bundle) and uses its prefix."""
    d = tmp_path / "old"
    shutil.copytree(log.old_export, d)
    w = log.size_old % 256
    assert w and log.size >= 512
    for p in (tile_path(0, 1, w), entries_path(1, w)):
        (d / p).unlink()
    for p in (tile_path(0, 1), entries_path(1)):
        (d / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pathlib.Path(exported["dir"]) / p, d / p)
    v = verify_receipt_with_tiles(log.submitted[257], log.log_key, str(d))
    assert v.tree_size == log.size_old


# -- hostile tiles and receipts --------------------------------------------------------------

def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tile_altered_by_one_byte(copy_of, log):
    key = log.log_key
    t0 = copy_of / tile_path(0, 0)
    flip(t0, 32 + 7)  # the hash of leaf 1: the first hash of index 0's proof
    with serving(copy_of) as url:
        with pytest.raises(ReceiptError):
            verify_receipt_with_tiles(log.fresh[0], key, url)
        # Leaf 1's hash is wrong and its entry is in the bundle: the bundle check says so.
        with pytest.raises(ReceiptError, match="does not hash"):
            verify_receipt_with_tiles(log.fresh[255], key, url)
    flip(t0, 32 + 7)
    count1 = log.size >> 8
    flip(copy_of / tile_path(1, 0, count1 % 256 or 256), 0)  # the root of leaves 0..255
    with pytest.raises(ReceiptError, match="inclusion"):
        verify_receipt_with_tiles(log.fresh[300], key, str(copy_of))
    with pytest.raises(ReceiptError, match="inclusion"):
        verify_receipt_with_tiles(log.fresh[log.last], key, str(copy_of))
    # A receipt older than the tiles: the consistency proof reads the altered hash.
    with pytest.raises(ReceiptError, match="not consistent"):
        verify_receipt_with_tiles(log.submitted[255], key, str(copy_of))


def test_a_truncated_tile(copy_of, log):
    p = copy_of / tile_path(0, 0)
    p.write_bytes(p.read_bytes()[:-1])
    with pytest.raises(ReceiptError, match="8191 bytes"):
        verify_receipt_with_tiles(log.fresh[0], log.log_key, str(copy_of))


def rewrite_bundle(path, change):
    data, entries = path.read_bytes(), []
    while data:
        n = int.from_bytes(data[:2], "big")
        entries.append(data[2 : 2 + n])
        data = data[2 + n :]
    change(entries)
    path.write_bytes(b"".join(len(e).to_bytes(2, "big") + e for e in entries))


def test_a_bundle_with_a_different_leaf(copy_of, log):
    bundle = copy_of / entries_path(0)
    rewrite_bundle(bundle, lambda es: es.__setitem__(5, es[6]))
    with serving(copy_of) as url:
        with pytest.raises(ReceiptError, match="differs from the receipt's leaf"):
            verify_receipt_with_tiles(log.submitted[5], log.log_key, url)
        # Another entry of the same bundle altered: the bundle no longer matches the tile.
        with pytest.raises(ReceiptError, match="does not hash"):
            verify_receipt_with_tiles(log.fresh[0], log.log_key, url)
        # Entries of other bundles are unaffected.
        assert verify_receipt_with_tiles(log.fresh[256], log.log_key, url).index == 256
    # A bundle with an entry missing, or one too many.
    rewrite_bundle(bundle, lambda es: es.pop())
    with pytest.raises(ReceiptError, match="255 entries, want 256"):
        verify_receipt_with_tiles(log.fresh[0], log.log_key, str(copy_of))


def test_a_checkpoint_signed_by_another_key(copy_of, log):
    real = (copy_of / "checkpoint").read_bytes()
    text = Note.parse(real).text
    other = SignerKey("localhost/govledger", b"\x09" * 32)
    (copy_of / "checkpoint").write_bytes(sign_note(text, other))
    with serving(copy_of) as url:
        with pytest.raises(ReceiptError, match="not signed by the log key"):
            verify_receipt_with_tiles(log.fresh[0], log.log_key, url)
    # The genuine tiles, with another pinned key.
    (copy_of / "checkpoint").write_bytes(real)
    with pytest.raises(ReceiptError):
        verify_receipt_with_tiles(log.fresh[0], other.verifier(), str(copy_of))
    # A checkpoint of another origin.
    stranger = SignerKey("example.com/other", b"\x0a" * 32)
    (copy_of / "checkpoint").write_bytes(sign_note(text.replace("localhost/govledger", "example.com/other"), stranger))
    with pytest.raises(ReceiptError, match="origin"):
        verify_receipt_with_tiles(log.fresh[0], log.log_key, str(copy_of))


def test_a_checkpoint_signed_by_the_log_key_for_another_tree(copy_of, log):
    """Even the log's own signature over a root the tiles do not make is refused."""
    cp = Checkpoint.parse(Note.parse((copy_of / "checkpoint").read_bytes()).text)
    (copy_of / "checkpoint").write_bytes(sign_note(checkpoint_text(cp.size, b"\x07" * 32), log.signer()))
    with pytest.raises(ReceiptError):
        verify_receipt_with_tiles(log.fresh[log.last], log.log_key, str(copy_of))
    with pytest.raises(ReceiptError, match="not consistent"):
        verify_receipt_with_tiles(log.submitted[0], log.log_key, str(copy_of))


def test_a_receipt_whose_leaf_was_altered(exported, log):
    r = copy.deepcopy(log.fresh[256])
    leaf = bytearray(base64.b64decode(r["leaf"]))
    leaf[-3] ^= 1
    r["leaf"] = b64(bytes(leaf))
    with pytest.raises(ReceiptError, match="hashes to"):
        verify_receipt_with_tiles(r, log.log_key, exported["url"])
    # Its leaf_hash fixed to match: the receipt's proof, and the bundle, refuse it.
    r["leaf_hash"] = leaf_hash(bytes(leaf)).hex()
    with pytest.raises(ReceiptError):
        verify_receipt_with_tiles(r, log.log_key, exported["url"])
    # Another entry's leaf under this index.
    r = dict(log.fresh[256], leaf=log.fresh[255]["leaf"], leaf_hash=log.fresh[255]["leaf_hash"])
    with pytest.raises(ReceiptError):
        verify_receipt_with_tiles(r, log.log_key, exported["url"])


def test_a_forked_receipt_is_not_consistent(exported, log):
    """A receipt signed by the log key over a tree that is not a prefix of the tiles' (a split
    view): its own proof verifies, the leaf is the bundle's, the consistency proof fails."""
    real = base64.b64decode(log.fresh[0]["leaf"])
    fake = leaf_hash(b"not in the log")
    root = node_hash(leaf_hash(real), fake)
    note = sign_note(checkpoint_text(2, root), log.signer()).decode()
    forged = {"index": 0, "leaf": log.fresh[0]["leaf"], "leaf_hash": log.fresh[0]["leaf_hash"],
              "proof": [b64(fake)], "tree_size": 2, "root": b64(root), "checkpoint": note}
    assert verify_receipt(forged, log.log_key).checkpoint.size == 2
    with pytest.raises(ReceiptError, match="not consistent"):
        verify_receipt_with_tiles(forged, log.log_key, exported["url"])


def test_a_missing_tile(copy_of, log):
    count1 = log.size >> 8
    missing = tile_path(1, 0, count1 % 256 or 256)
    (copy_of / missing).unlink()
    with serving(copy_of) as url:
        with pytest.raises(TileFetchError) as e:
            verify_receipt_with_tiles(log.fresh[300], log.log_key, url)
        assert e.value.status == 404 and e.value.path == missing
        assert isinstance(e.value, ReceiptError)
    (copy_of / entries_path(0)).unlink()
    with pytest.raises(TileFetchError, match="not found"):
        verify_receipt_with_tiles(log.fresh[255], log.log_key, str(copy_of))
    (copy_of / "checkpoint").unlink()
    with pytest.raises(TileFetchError):
        verify_receipt_with_tiles(log.fresh[255], log.log_key, str(copy_of))
    with pytest.raises(TileFetchError):
        verify_receipt_with_tiles(log.fresh[255], log.log_key, "http://127.0.0.1:9/", timeout=5)


# -- the proofs themselves, on tiles written here ------------------------------------------------

def mth(hashes):
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def write_tiles(d, hashes):
    level, L = hashes, 0
    while level:
        for t in range((len(level) + 255) // 256):
            chunk = level[t * 256 : (t + 1) * 256]
            p = d / tile_path(L, t, len(chunk))
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"".join(chunk))
        level, L = [mth(level[t * 256 : (t + 1) * 256]) for t in range(len(level) // 256)], L + 1


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 513, 700])
def test_proofs_from_tiles_verify(tmp_path, size):
    from govledger import verify_consistency, verify_inclusion

    hashes = [leaf_hash(b"%d" % i) for i in range(size)]
    write_tiles(tmp_path, hashes)
    tree = TreeTiles(TileReader(str(tmp_path)), size)
    root = mth(hashes)
    assert tree.root() == root
    for i in {0, 1, 255, 256, size // 2, size - 1}:
        if i < size:
            verify_inclusion(i, size, hashes[i], tree.inclusion_proof(i), root)
    for m in {1, 2, 255, 256, 257, size // 2, size}:
        if 0 < m <= size:
            verify_consistency(m, size, mth(hashes[:m]), root, tree.consistency_proof(m))


def test_encode_index():
    assert encode_index(0) == "000" and encode_index(67) == "067" and encode_index(1000) == "x001/000"
    assert encode_index(1234067) == "x001/x234/067"
    assert tile_path(1, 1234067, 17) == "tile/1/x001/x234/067.p/17" and entries_path(2) == "tile/entries/002"
