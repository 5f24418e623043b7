"""Receipts verified against a static C2SP tlog-tiles log (c2sp.org/tlog-tiles), with no
govledgerd at all: the WORM bucket's mirror, a CDN, an export directory (`govledgerd export`)
served by any web server or read from disk, or a running server's own `/checkpoint` and
`/tile/...` paths.

Tile height is 8 and width 256: hash `i` of the level-`L` tile `N` is the root of the perfect
subtree of `256^L` leaves starting at leaf `(N*256 + i) * 256^L`. Entry bundles hold
`u16be(len) || leaf` for consecutive leaves; entry `k` of bundle `N` is leaf `N*256 + k`.
Proofs are recomputed here from those hashes (perfect subtrees read from the highest tile that
holds them, other subtrees hashed from lower-level tile hashes), then verified against the
signed checkpoint, so nothing the tiles' host says is trusted beyond what the log key signed.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .merkle import ProofError, leaf_hash, node_hash, verify_consistency, verify_inclusion
from .note import Checkpoint, NoteError, VerifierKey, open_checkpoint
from .receipt import Leaf, ReceiptError, _b64, _parse_tlog_proof, verify_receipt

TILE_WIDTH = 256
TILE_HEIGHT = 8
HASH_SIZE = 32
MAX_CHECKPOINT_BYTES = 1 << 20
MAX_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + 65_535)

__all__ = [
    "TileFetchError", "TileReader", "TileVerification", "TreeTiles", "consistency_proof_from_tiles",
    "encode_index", "entries_path", "inclusion_proof_from_tiles", "tile_path", "verify_receipt_with_tiles",
]


class TileFetchError(ReceiptError):
    """A checkpoint, tile or bundle that could not be read (`status` 404 when it is absent)."""

    def __init__(self, message: str, path: str, status: Optional[int] = None):
        super().__init__(message)
        self.path = path
        self.status = status


def encode_index(n: int) -> str:
    """The `<N>` path part: zero-padded 3-digit groups, all but the last prefixed with `x`."""
    if n < 0:
        raise ValueError("tile indices are not negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n > 0:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def _suffix(width: int) -> str:
    if not 1 <= width <= TILE_WIDTH:
        raise ValueError(f"tile width {width} is not 1..256")
    return "" if width == TILE_WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """`tile/<L>/<N>[.p/<W>]`."""
    return f"tile/{level}/{encode_index(index)}{_suffix(width)}"


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """`tile/entries/<N>[.p/<W>]`."""
    return f"tile/entries/{encode_index(index)}{_suffix(width)}"


def level_count(level: int, size: int) -> int:
    """Complete hashes at tile level `level` in a tree of `size` leaves: floor(size / 256^level)."""
    return size >> (TILE_HEIGHT * level)


def tile_width(level: int, index: int, size: int) -> int:
    """The width of tile `index` at `level` in a tree of `size` leaves (0: it does not exist)."""
    return max(0, min(TILE_WIDTH, level_count(level, size) - index * TILE_WIDTH))


class TileReader:
    """Reads `checkpoint`, hash tiles and entry bundles under a tlog-tiles base: an `http://` or
    `https://` URL (urllib, so the system's proxy settings and CA store apply), a `file://` URL
    or a local directory. Tiles and bundles are cached per reader (their bytes never change
    for a given path); the checkpoint is read anew each time."""

    def __init__(self, base_url: Union[str, "os.PathLike[str]"], timeout: float = 30.0,
                 user_agent: str = "govledger-python"):
        base_url = os.fspath(base_url)
        self.base_url = base_url
        self.timeout = timeout
        self.user_agent = user_agent
        self._cache: Dict[str, bytes] = {}
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme in ("http", "https"):
            self._dir: Optional[str] = None
            self._url = base_url.rstrip("/") + "/"
        elif parsed.scheme == "file":
            if parsed.netloc not in ("", "localhost"):
                raise ValueError(f"{base_url}: a file:// URL names a local path")
            self._dir, self._url = urllib.request.url2pathname(parsed.path), None
        elif parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):  # C:\... on Windows
            self._dir, self._url = base_url, None
        else:
            raise ValueError(f"{base_url}: want an http(s):// or file:// URL or a directory")

    def __repr__(self) -> str:
        return f"TileReader({self.base_url!r})"

    def read(self, path: str, limit: int = MAX_BUNDLE_BYTES) -> bytes:
        """The bytes at `path` under the base. Raises TileFetchError (status 404 when absent)."""
        where = f"{path} at {self.base_url}"
        if self._dir is not None:
            full = os.path.join(self._dir, *path.split("/"))
            try:
                with open(full, "rb") as f:
                    data = f.read(limit + 1)
            except FileNotFoundError:
                raise TileFetchError(f"{where}: not found", path, 404) from None
            except OSError as e:
                raise TileFetchError(f"{where}: {e}", path) from None
        else:
            headers = {"User-Agent": self.user_agent, "Accept": "*/*"}
            if path == "checkpoint":
                headers["Cache-Control"] = "no-cache"
            req = urllib.request.Request(self._url + path, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = resp.read(limit + 1)
            except urllib.error.HTTPError as e:
                e.close()
                reason = "not found" if e.code == 404 else f"HTTP {e.code} {e.reason}"
                raise TileFetchError(f"{where}: {reason}", path, e.code) from None
            except (urllib.error.URLError, OSError) as e:
                raise TileFetchError(f"{where}: {getattr(e, 'reason', e)}", path) from None
        if len(data) > limit:
            raise TileFetchError(f"{where}: more than {limit} bytes", path)
        return data

    def _cached(self, path: str, limit: int) -> bytes:
        data = self._cache.get(path)
        if data is None:
            data = self.read(path, limit)
            self._cache[path] = data
        return data

    def checkpoint(self) -> bytes:
        """The signed checkpoint note at `<base>/checkpoint` (not verified here)."""
        return self.read("checkpoint", MAX_CHECKPOINT_BYTES)

    def _object(self, path: str, full_path: str, width: int, limit: int) -> Tuple[bytes, bool]:
        """The partial object at `path`, or, when it is gone (404), the full one at
        `full_path`, as tlog-tiles lets a log replace a partial tile by the full one."""
        try:
            return self._cached(path, limit), False
        except TileFetchError as e:
            if width == TILE_WIDTH or e.status != 404:
                raise
            try:
                return self._cached(full_path, limit), True
            except TileFetchError as e2:
                if e2.status == 404:
                    raise e from None  # report the tile that was asked for
                raise

    def tile(self, level: int, index: int, width: int) -> List[bytes]:
        """The `width` hashes of tile `index` at `level`. Raises ReceiptError for a tile of
        another length and TileFetchError when it cannot be read."""
        path = tile_path(level, index, width)
        data, full = self._object(path, tile_path(level, index), width, MAX_TILE_BYTES)
        want = (TILE_WIDTH if full else width) * HASH_SIZE
        if len(data) != want:
            raise ReceiptError(f"{path} at {self.base_url}: {len(data)} bytes, want {want}")
        return [data[i : i + HASH_SIZE] for i in range(0, width * HASH_SIZE, HASH_SIZE)]

    def bundle(self, index: int, width: int) -> List[bytes]:
        """The `width` entries of entry bundle `index`. Raises ReceiptError for malformed
        framing or another number of entries, TileFetchError when it cannot be read."""
        path = entries_path(index, width)
        data, full = self._object(path, entries_path(index), width, MAX_BUNDLE_BYTES)
        entries, i = [], 0
        while i < len(data):
            if i + 2 > len(data):
                raise ReceiptError(f"{path} at {self.base_url}: truncated length prefix")
            n = int.from_bytes(data[i : i + 2], "big")
            if i + 2 + n > len(data):
                raise ReceiptError(f"{path} at {self.base_url}: truncated entry")
            entries.append(data[i + 2 : i + 2 + n])
            i += 2 + n
        want = TILE_WIDTH if full else width
        if len(entries) != want:
            raise ReceiptError(f"{path} at {self.base_url}: {len(entries)} entries, want {want}")
        return entries[:width]


def _largest_power_of_two_below(n: int) -> int:
    """The largest power of two strictly below `n` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class TreeTiles:
    """The Merkle tree of `size` leaves as the tiles under `reader` hold it at that size."""

    def __init__(self, reader: TileReader, size: int):
        if size < 0:
            raise ValueError("a tree size is not negative")
        self.reader = reader
        self.size = size

    def _tile(self, level: int, index: int) -> List[bytes]:
        width = tile_width(level, index, self.size)
        if width == 0:
            raise ProofError(f"tile {level}/{index} does not exist at size {self.size}")
        return self.reader.tile(level, index, width)

    def node(self, height: int, index: int) -> bytes:
        """The root of the perfect subtree of 2^height leaves starting at leaf index*2^height:
        read from the tile level holding hashes of height 8*(height//8), the remaining
        height%8 levels hashed from that tile's hashes."""
        if (index + 1) << height > self.size:
            raise ProofError(f"no complete subtree of 2^{height} leaves at {index} in a tree of {self.size}")
        level, rest = divmod(height, TILE_HEIGHT)
        first, count = index << rest, 1 << rest
        tile_index, pos = divmod(first, TILE_WIDTH)
        hashes = self._tile(level, tile_index)[pos : pos + count]
        if len(hashes) != count:  # tile() returns exactly the width the size implies
            raise ProofError(f"tile {level}/{tile_index} is short")
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def leaf_hash(self, index: int) -> bytes:
        return self.node(0, index)

    def subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) (RFC 6962 §2.1), from perfect subtrees."""
        if not 0 <= start < end <= self.size:
            raise ProofError(f"no subtree [{start}, {end}) in a tree of {self.size}")
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:
            return self.node(n.bit_length() - 1, start // n)
        k = _largest_power_of_two_below(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self) -> bytes:
        if self.size == 0:
            raise ProofError("an empty tree has no tiles")
        return self.subtree(0, self.size)

    def inclusion_proof(self, index: int) -> List[bytes]:
        """PATH(index, D[0:size]) (RFC 6962 §2.1.1), leaf to root."""
        if not 0 <= index < self.size:
            raise ProofError(f"index {index} is not below size {self.size}")
        out: List[bytes] = []
        start, end, m = 0, self.size, index
        while end - start > 1:
            k = _largest_power_of_two_below(end - start)
            if m < k:
                out.append(self.subtree(start + k, end))
                end = start + k
            else:
                out.append(self.subtree(start, start + k))
                start, m = start + k, m - k
        out.reverse()
        return out

    def consistency_proof(self, old: int) -> List[bytes]:
        """PROOF(old, D[0:size]) (RFC 6962 §2.1.2)."""
        if not 0 < old <= self.size:
            raise ProofError(f"no consistency proof from size {old} to {self.size}")
        out: List[bytes] = []
        start, end, m, whole = 0, self.size, old, True
        while m != end - start:
            k = _largest_power_of_two_below(end - start)
            if m <= k:
                out.append(self.subtree(start + k, end))
                end = start + k
            else:
                out.append(self.subtree(start, start + k))
                start, m, whole = start + k, m - k, False
        if not whole:
            out.append(self.subtree(start, end))
        out.reverse()
        return out


TilesUrl = Union[str, "os.PathLike[str]", TileReader]


def _reader(tiles: TilesUrl, timeout: float) -> TileReader:
    return tiles if isinstance(tiles, TileReader) else TileReader(tiles, timeout=timeout)


def inclusion_proof_from_tiles(tiles: TilesUrl, index: int, size: int,
                               timeout: float = 30.0) -> List[bytes]:
    """The RFC 6962 inclusion proof of leaf `index` in the tree of `size` leaves, computed from
    the tiles (not verified: check it against a signed root). Raises ReceiptError/ProofError."""
    return TreeTiles(_reader(tiles, timeout), size).inclusion_proof(index)


def consistency_proof_from_tiles(tiles: TilesUrl, old: int, new: int,
                                 timeout: float = 30.0) -> List[bytes]:
    """The RFC 6962 consistency proof from size `old` to `new`, computed from the tiles."""
    return TreeTiles(_reader(tiles, timeout), new).consistency_proof(old)


@dataclass(frozen=True)
class TileVerification:
    """A receipt verified against the tiles: its entry is leaf `index` of the tiles' tree of
    `tree_size` leaves, whose signed checkpoint is `checkpoint`; `receipt_tree_size` is the size
    of the receipt's own checkpoint (verified, and proved consistent with the tiles' tree)."""

    index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    leaf_bytes: bytes
    leaf: Optional[Leaf]
    checkpoint: Checkpoint
    cosigners: Sequence[str]
    receipt_tree_size: int

    @property
    def leaf_json(self) -> Any:
        """The entry's JSON body (None when the leaf is not a govledger v1 envelope)."""
        return self.leaf.json() if self.leaf is not None else None


def _normalize(receipt: Union[str, bytes, Dict[str, Any]]) -> Dict[str, Any]:
    try:
        if isinstance(receipt, bytes):
            receipt = receipt.decode("utf-8")
        if isinstance(receipt, str):
            if receipt.startswith("c2sp.org/tlog-proof@v1"):
                return _parse_tlog_proof(receipt)
            receipt = json.loads(receipt)
    except ReceiptError:
        raise
    except (IndexError, ValueError) as e:
        raise ReceiptError(f"malformed receipt: {e}") from None
    if not isinstance(receipt, dict):
        raise ReceiptError("malformed receipt: not a JSON object")
    return receipt


def _leaf_of(receipt: Dict[str, Any]) -> Tuple[int, bytes]:
    try:
        index = int(receipt["index"])
        if isinstance(receipt.get("leaf"), str):
            leaf = _b64(receipt["leaf"])
            claimed = bytes.fromhex(receipt["leaf_hash"])
            if leaf_hash(leaf) != claimed:
                raise ReceiptError(f"the leaf hashes to {leaf_hash(leaf).hex()}, not {claimed.hex()}")
        else:
            leaf = receipt.get("extra")
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ReceiptError):
            raise
        raise ReceiptError(f"malformed receipt: {e}") from None
    if not isinstance(leaf, bytes):
        raise ReceiptError("the receipt carries no leaf")
    if index < 0:
        raise ReceiptError(f"malformed receipt: index {index}")
    return index, leaf


def verify_receipt_with_tiles(receipt: Union[str, bytes, Dict[str, Any]], log_key: Union[str, VerifierKey],
                              tiles_url: TilesUrl,
                              witness_keys: Sequence[Union[str, VerifierKey]] = (),
                              witnesses_required: int = 0, timeout: float = 30.0) -> TileVerification:
    """Verifies a receipt (JSON dict or text, or a C2SP tlog-proof) against the static
    tlog-tiles log at `tiles_url` (http(s)://, file:// or a directory, or a TileReader), with
    no govledger server:

    1. the tiles' `checkpoint` is signed by `log_key` (and cosigned by `witnesses_required` of
       `witness_keys`);
    2. the receipt verifies against its own checkpoint (`verify_receipt`), which is at most the
       tiles' size, and the tiles' tree is consistent with it (proof computed from the tiles);
    3. the receipt's leaf hashes to its leaf_hash, equals the entry at its index in the entry
       bundle, and every entry of that bundle hashes to the level-0 tile's hash;
    4. the inclusion proof of the index at the tiles' size, computed from the tiles, leads
       from the leaf to the tiles' signed root.

    Raises ReceiptError (TileFetchError, a subclass, when an object cannot be read) on any
    failure. A receipt whose checkpoint is newer than the tiles' (a mirror that lags) is
    refused: the tiles cannot prove the two trees consistent; retry once the mirror caught up.
    The key is not followed across rotations (`govledgerd rotate-key`): pass the key that signs
    the tiles' checkpoint, and verify older receipts with the key that signed theirs."""
    key = VerifierKey.parse(log_key) if isinstance(log_key, str) else log_key
    wkeys = [VerifierKey.parse(k) if isinstance(k, str) else k for k in witness_keys]
    reader = _reader(tiles_url, timeout)
    r = _normalize(receipt)
    index, leaf = _leaf_of(r)
    h = leaf_hash(leaf)

    note = reader.checkpoint()
    try:
        cp, cosigners = open_checkpoint(note, key, wkeys)
    except NoteError as e:
        raise ReceiptError(f"the checkpoint at {reader.base_url}: {e}") from None
    if len(cosigners) < witnesses_required:
        raise ReceiptError(f"the checkpoint at {reader.base_url}: {len(cosigners)} witnesses cosigned, "
                           f"{witnesses_required} required")
    if index >= cp.size:
        raise ReceiptError(f"entry {index} is not in the tiles' tree of {cp.size} entries")

    own = verify_receipt(r, key, wkeys)
    if own.index != index or own.leaf_hash != h:
        raise ReceiptError("the receipt's own verification disagrees with its index or leaf")
    tree = TreeTiles(reader, cp.size)
    try:
        if own.checkpoint.size > cp.size:
            raise ReceiptError(f"the receipt's checkpoint (size {own.checkpoint.size}) is newer than the tiles' "
                               f"(size {cp.size}) at {reader.base_url}: the tiles cannot prove them consistent")
        if own.checkpoint.size == cp.size:
            if own.checkpoint.root != cp.root:
                raise ReceiptError(f"the receipt's checkpoint and the tiles' have size {cp.size} and different roots")
        else:
            try:
                verify_consistency(own.checkpoint.size, cp.size, own.checkpoint.root, cp.root,
                                   tree.consistency_proof(own.checkpoint.size))
            except ProofError as e:
                raise ReceiptError(f"the tiles' tree of {cp.size} is not consistent with the receipt's "
                                   f"checkpoint of size {own.checkpoint.size}: {e}") from None

        bundle_index, pos = divmod(index, TILE_WIDTH)
        width = tile_width(0, bundle_index, cp.size)
        entries = reader.bundle(bundle_index, width)
        if entries[pos] != leaf:
            raise ReceiptError(f"entry {index} in {entries_path(bundle_index, width)} differs from the receipt's leaf")
        hashes = reader.tile(0, bundle_index, width)
        for i, (e, th) in enumerate(zip(entries, hashes)):
            if leaf_hash(e) != th:
                raise ReceiptError(f"entry {bundle_index * TILE_WIDTH + i} of {entries_path(bundle_index, width)} "
                                   f"does not hash to {tile_path(0, bundle_index, width)}'s hash")

        try:
            verify_inclusion(index, cp.size, h, tree.inclusion_proof(index), cp.root)
        except ProofError as e:
            raise ReceiptError(f"inclusion of entry {index} in the tiles' tree of {cp.size}: {e}") from None
    except ProofError as e:  # a subtree the size implies but the tiles do not hold
        raise ReceiptError(f"tiles at {reader.base_url}: {e}") from None

    return TileVerification(index, cp.size, cp.root, h, leaf, own.leaf, cp, cosigners, own.checkpoint.size)
