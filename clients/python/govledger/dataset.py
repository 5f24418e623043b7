"""Dataset fingerprints, identical to the Rust CLI (`govledger hash-dataset`, SPEC.md §6):

- a file: SHA-256 of its bytes;
- a directory: SHA-256 of its manifest, one line per regular file below it,
  ``<sha256 hex>  <size>  <relative path, '/'-separated>\\n``, sorted by path as UTF-8 bytes;
  symbolic links are refused.

``fingerprint_dataframe`` (Python only, ``method: pandas-csv-v1``) hashes
``df.to_csv(lineterminator="\\n", float_format="%.17g")`` encoded as UTF-8.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Dict, List, Tuple

CHUNK = 1 << 20


class DatasetError(ValueError):
    """A dataset that cannot be fingerprinted (a symbolic link, a non-UTF-8 name)."""


def hash_file(path: str) -> Tuple[str, int]:
    """Returns (hex SHA-256, size) of a file, streaming."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
            size += len(b)
    return h.hexdigest(), size


def _files_below(root: str) -> List[Tuple[str, str]]:
    out = []
    stack = [""]
    while stack:
        rel = stack.pop()
        d = os.path.join(root, rel) if rel else root
        for entry in os.scandir(d):
            r = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_symlink():
                raise DatasetError(f"{os.path.join(d, entry.name)} is a symbolic link; dataset fingerprints refuse links")
            if entry.is_dir(follow_symlinks=False):
                stack.append(r)
            elif entry.is_file(follow_symlinks=False):
                out.append((r, entry.path))
    out.sort(key=lambda x: x[0].encode("utf-8"))
    return out


def manifest(path: str) -> str:
    """The directory manifest that a directory fingerprint hashes."""
    lines = []
    for rel, full in _files_below(path):
        digest, size = hash_file(full)
        lines.append(f"{digest}  {size}  {rel}\n")
    return "".join(lines)


def fingerprint_dataset(path: str) -> Dict[str, Any]:
    """Returns ``{"sha256": "sha256:<hex>", "method": "file"|"directory", "size_bytes", "files"}``."""
    if os.path.islink(path):
        raise DatasetError(f"{path} is a symbolic link; dataset fingerprints refuse links")
    if os.path.isdir(path):
        files = _files_below(path)
        m = manifest(path)
        size = sum(os.path.getsize(f) for _, f in files)
        return {"sha256": "sha256:" + hashlib.sha256(m.encode("utf-8")).hexdigest(), "method": "directory",
                "size_bytes": size, "files": len(files)}
    digest, size = hash_file(path)
    return {"sha256": "sha256:" + digest, "method": "file", "size_bytes": size, "files": 1}


def fingerprint_dataframe(df: Any) -> Dict[str, Any]:
    """Fingerprints a pandas DataFrame: SHA-256 of its CSV (``lineterminator="\\n"``,
    ``float_format="%.17g"``) as UTF-8, recorded with ``"method": "pandas-csv-v1"``. Python only:
    the Rust CLI has no equivalent, so record the method with the hash."""
    data = df.to_csv(lineterminator="\n", float_format="%.17g").encode("utf-8")
    return {"sha256": "sha256:" + hashlib.sha256(data).hexdigest(), "method": "pandas-csv-v1",
            "size_bytes": len(data), "files": 1}
