"""A durable local spool of entries for the log: `AuditSpool.append` costs one write to a local
file on the caller's thread; a background thread sends what was spooled in batches and keeps
the receipts. A log outage only grows the spool (up to a bound); a restart resends what was not
acknowledged, with the same entry_ids, so nothing is lost and nothing is logged twice.

The spool directory::

    lock                  flock(2)ed by the one AuditSpool using the directory
    000000000007.seg      a segment: one record per line, append-only; an entry's body
                          (`append`) or a log record's array (`append_log`)
        {"entry_id":"5f0c...0001a","t":1767225600.123,"kind":"audit","body":{"event_type":"INFO",...}}
        {"entry_id":"5f0c...0001b","kind":"audit","log":[1,null,["MIFID_II"],"order 7 filled","INFO",...]}
    000000000007.ack      the segment's acknowledged prefix, one byte offset per line (last wins)
        4188
        9021
    000000000008.seg      the segment being written (one per process run; a new one every
                          `segment_bytes`)
    receipts.jsonl        {"entry_id":"5f0c...0001a","receipt":{"index":41,"leaf":...,"checkpoint":...}}
    rejected.jsonl        {"entry_id":"5f0c...0002b","kind":"audit","body":{...},"status":400,
                           "error":"invalid_entry","message":"...","field":"entries[3].body.action"}

A record's `body` is the JSON text of the body appended (`values.json_text`: numpy, pandas and
datetime values converted); a log record's `log` is the array `govledger.logentry` made of the
LogRecord on the logging thread, and the sender builds the body from it (`logentry.body`, a pure
function of the array). Either way a resend after a crash posts the same body and the server
answers the known entry_id with the original entry. entry_ids are 32 hex digits: 80 random bits
per opening of the spool, then a counter.

The write path:

1. `append` or `append_log` (caller's thread): serialise, one `os.write` to the current segment
   (O_APPEND). The record is now in the page cache: it survives a kill of the process, not a
   power loss.
2. The flusher thread `fdatasync`s the segment at least every `flush_interval` (100 ms) and on
   `flush()` / `close()`: from then on the record survives a power loss.
3. The sender thread reads the unacknowledged records in order, up to `batch_size` (256) at a
   time, builds the body of each log record (one none can be built from goes to
   rejected.jsonl, durably, as in 4) and posts them with `Client.submit_batch`.
4. It appends their receipts to receipts.jsonl (and records the server refused for good to
   rejected.jsonl) and `fdatasync`s them,
5. then appends the new acknowledged offset to the segment's .ack file and `fdatasync`s it,
6. and deletes a segment, with its .ack, once it is complete and wholly acknowledged.

On opening, a torn last line of every file (a write cut by a crash) is truncated, the
acknowledged offset of each segment is read, wholly acknowledged segments are deleted and the
sender starts at the first unacknowledged record. A crash between 3 and 5 resends records that
may already be logged (their receipts perhaps stored): the server answers their entry_ids with
the original entries, the receipts file may hold them twice and `receipts()` yields each once.
A kill of the process loses nothing that `append` returned for; a power loss loses at most the
records appended in the last `flush_interval` (if they were sent meanwhile they are in the log,
and a segment whose acknowledged offset lies past its end counts as wholly acknowledged).

Refusals: a refusal about the records themselves (400, 409, 413, 422, or any 4xx but 408 and
429 that names an entry) refuses a record, not the queue: a batch is atomic, so the record the
server names (`entries[i]...`) is moved to rejected.jsonl and the rest is resent; when no record
is named the batch is split until the refused one is alone. Everything else (connection errors,
timeouts, 5xx, 429, 408, 401, 403 or 404 naming no entry: the log, the token or the URL, not the
records) is retried, after the Client's own retries, with backoff up to `max_backoff`, forever.

At the bound (`max_bytes` of unacknowledged records), `append` raises `SpoolFull` and counts the
record as dropped; nothing already spooled is discarded. Warnings (spool full, log unreachable,
records refused) go to the `govledger.spool` logger, at most once per `warn_interval` seconds
each; `govledger.logging.LedgerHandler` never records what this module or its threads log.
"""

from __future__ import annotations

import base64
import errno
import fcntl
import itertools
import json
import logging
import os
import random
import re
import threading
import time
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import logentry
from .client import Client, ServerError
from .receipt import Leaf, ReceiptError, batch_receipts
from .values import json_text

log = logging.getLogger("govledger.spool")

KINDS = frozenset({"audit", "lineage", "deployment", "approval_request", "approval"})

# Set on the spool's own threads, and by LedgerHandler while it emits: what is logged there is
# never fed back into a spool.
QUIET = threading.local()


class SpoolError(Exception):
    """The spool cannot take a record."""


class SpoolFull(SpoolError):
    """The spool holds `max_bytes` of unacknowledged records; the record was not spooled."""


class SpoolClosed(SpoolError):
    """The spool was closed."""


@dataclass(frozen=True)
class SpoolStats:
    """The spool's state: records and bytes not yet acknowledged by the log, bytes of segments on
    disk, records sent (acknowledged with a receipt), dropped (refused by `append`: spool full
    or closed, or a write error) and rejected (refused by the server, or not JSON) since it was
    opened, the last error talking to the log (None after a success) and the age in seconds of
    the oldest unacknowledged record (None when there is none)."""

    pending: int
    pending_bytes: int
    spool_bytes: int
    sent: int
    dropped: int
    rejected: int
    last_error: Optional[str]
    oldest_pending_age: Optional[float]


# -- serialisation --------------------------------------------------------------------------------

def body_json(body: Dict[str, Any]) -> str:
    """Returns the JSON text spooled for `body` (`govledger.values.json_text`): numpy, pandas,
    datetimes and Decimals converted, NaN and the unconvertible refused with ValueError naming
    the field."""
    if not isinstance(body, dict):
        raise ValueError(f"a body is a JSON object, not a {type(body).__name__}")
    return json_text(body)


def _record_line(entry_id: str, kind: str, text: str) -> bytes:
    return f'{{"entry_id":"{entry_id}","t":{time.time():.3f},"kind":"{kind}","body":{text}}}\n'.encode()


@dataclass
class _Record:
    """A spooled record: its entry_id, kind and body; for a log record (a `log` line), also the
    array the body was built from, or `invalid`, why no body could be built from it."""

    entry_id: str
    kind: str
    body: Optional[Dict[str, Any]]
    t: float
    log: Any = None
    invalid: Optional[str] = None

    @staticmethod
    def parse(line: bytes) -> Optional["_Record"]:
        """Returns the record of a segment line, or None when the line is not one."""
        try:
            v = json.loads(line)
            entry_id, kind = v["entry_id"], v["kind"]
            if not isinstance(entry_id, str) or not isinstance(kind, str):
                return None
            if "log" in v:
                return _Record._of_log(entry_id, kind, v["log"])
            r = _Record(entry_id, kind, v["body"], float(v["t"]))
        except (ValueError, KeyError, TypeError):
            return None
        return r if isinstance(r.body, dict) else None

    @staticmethod
    def _of_log(entry_id: str, kind: str, array: Any) -> "_Record":
        t = logentry.created(array)
        t = time.time() if t is None else t
        try:
            if kind != "audit":
                raise ValueError(f"a log record is an audit entry, not {kind!r}")
            return _Record(entry_id, kind, logentry.body(array), t, array)
        except ValueError as e:
            return _Record(entry_id, kind, None, t, array, str(e))

    def submission(self) -> Dict[str, Any]:
        return {"kind": self.kind, "body": self.body, "entry_id": self.entry_id}


@dataclass
class _Batch:
    """The `lines` consecutive lines of segment `seg` from byte `start` to `end`; `records` are
    those not yet resolved (receipt or rejection stored), `corrupt` the lines that are no
    record."""

    seg: int
    start: int
    end: int
    lines: int
    records: List[_Record]
    corrupt: List[bytes]


# -- files ---------------------------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _open_append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _truncate_torn(path: str) -> int:
    """Cuts an append-only file after its last newline (a line a crash cut short); returns its
    size."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        end = size
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            chunk = f.read(end - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                end = start + nl + 1
                break
            end = start
    if end != size:
        # Not fsynced: after another crash the tail is simply cut again.
        os.truncate(path, end)
        log.warning("%s: cut a torn last line (%d bytes)", path, size - end)
    return end


def _acknowledged(path: str) -> int:
    """The last offset in a segment's .ack file (0 when there is none)."""
    if not os.path.exists(path):
        return 0
    _truncate_torn(path)
    with open(path, "rb") as f:
        lines = f.read().split()
    return int(lines[-1]) if lines else 0


def _count_lines(path: str, offset: int) -> int:
    n = 0
    with open(path, "rb") as f:
        f.seek(offset)
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n += chunk.count(b"\n")
    return n


def _jsonl(path: str) -> Iterator[Dict[str, Any]]:
    """The complete lines of a JSON-lines file (a line still being written is left out)."""
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        for line in f:
            if line.endswith(b"\n"):
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


# -- refusals ------------------------------------------------------------------------------------

_ENTRY = re.compile(r"entries\[(\d+)\]")


def refused_position(e: ServerError, n: int) -> Optional[int]:
    """The position in a batch of `n` of the entry the refusal names (`entries[i]...`), if any."""
    m = _ENTRY.match(e.field or "")
    i = int(m.group(1)) if m else -1
    return i if 0 <= i < n else None


# What the server answers about the records themselves (SPEC.md §4): malformed or invalid,
# a conflicting entry_id, too large.
REFUSING_STATUSES = (400, 409, 413, 422)


def retryable(e: ServerError, n: int) -> bool:
    """False when the refusal is about the records sent (a status of REFUSING_STATUSES, or any
    4xx naming one of the `n` entries); True when it is about the log or the client (5xx, 429,
    408, credentials, a wrong URL), so the records are sent again later."""
    if refused_position(e, n) is not None and 400 <= e.status < 500 and e.status not in (408, 429):
        return False
    return e.status not in REFUSING_STATUSES


class _Warner:
    """Logs each kind of message at most once per `interval` seconds, however often it recurs."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last: Dict[str, float] = {}

    def warn(self, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        if now - self.last.get(key, -1e18) >= self.interval:
            self.last[key] = now
            log.log(level, msg, *args)


# -- the spool -----------------------------------------------------------------------------------

class AuditSpool:
    """A durable spool in `spool_dir` of entries for the log at `url` (or for `client`, a
    `govledger.Client`, which then keeps its own retry settings): see the module doc for the
    files, the write path and what happens on a crash.

    `max_bytes` bounds the unacknowledged records (default 1 GiB; the directory holds at most
    that plus one segment of `segment_bytes` and the receipts). Pin `log_key` to have every
    receipt verified before it is stored. Opening starts the flusher and the sender; a directory
    is used by one AuditSpool at a time (SpoolError otherwise)."""

    def __init__(self, spool_dir: str, url: str = "http://127.0.0.1:7800", token: Optional[str] = None,
                 log_key: Optional[str] = None, *, client: Optional[Client] = None, max_bytes: int = 1 << 30,
                 segment_bytes: int = 64 << 20, batch_size: int = 256, batch_bytes: int = 1 << 20,
                 flush_interval: float = 0.1, timeout: float = 10.0, max_backoff: float = 5.0,
                 warn_interval: float = 30.0):
        self.dir = os.path.abspath(spool_dir)
        os.makedirs(self.dir, exist_ok=True)
        self.receipts_path = os.path.join(self.dir, "receipts.jsonl")
        self.rejected_path = os.path.join(self.dir, "rejected.jsonl")
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self.max_backoff = max_backoff
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sync_lock = threading.Lock()
        self._warner = _Warner(warn_interval)
        self.client = client or Client(url, token, log_key, timeout, retries=2, deadline=timeout, backoff=0.1,
                                       max_backoff=1.0, sleep=self._stop.wait)
        self._lock_fd = self._take_lock()
        self._ids = itertools.count()
        self._id_prefix = os.urandom(10).hex()
        self._closed = False
        self._sent = self._dropped = self._rejected = 0
        self._last_error: Optional[str] = None
        self._head_t: Optional[float] = None
        try:
            head = self._recover()
            self._open_segment(self._seg)
            self._rejected_fd = _open_append(self.rejected_path)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._unsynced = self._rejected_unsynced = False
        self._flusher = threading.Thread(target=self._run_flusher, name="govledger-spool-flush", daemon=True)
        self._sender = _Sender(self, *head)
        self._sender_thread = threading.Thread(target=self._sender.run, name="govledger-spool-send", daemon=True)
        self._flusher.start()
        self._sender_thread.start()

    def _take_lock(self) -> int:
        fd = os.open(os.path.join(self.dir, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise SpoolError(f"{self.dir} is in use by another AuditSpool") from None
            raise
        return fd

    def seg_path(self, n: int) -> str:
        return os.path.join(self.dir, f"{n:012d}.seg")

    def ack_path(self, n: int) -> str:
        return os.path.join(self.dir, f"{n:012d}.ack")

    def _recover(self) -> Tuple[int, int]:
        """Reads what an earlier run left: cuts torn lines, deletes wholly acknowledged segments,
        counts the unacknowledged records; sets the new segment number and returns where the
        sender starts (segment, offset)."""
        for name in ("receipts.jsonl", "rejected.jsonl"):
            if os.path.exists(os.path.join(self.dir, name)):
                _truncate_torn(os.path.join(self.dir, name))
        names = os.listdir(self.dir)
        segs = sorted(int(n[:-4]) for n in names if n.endswith(".seg") and n[:-4].isdigit())
        for n in names:  # .ack files whose segment was deleted before them
            if n.endswith(".ack") and n[:-4].isdigit() and int(n[:-4]) not in segs:
                os.unlink(os.path.join(self.dir, n))
        self._pending = self._pending_bytes = self._disk_bytes = 0
        head: Optional[Tuple[int, int]] = None
        for n in segs:
            size = _truncate_torn(self.seg_path(n))
            acked = min(_acknowledged(self.ack_path(n)), size)
            if acked >= size:
                self._delete_segment(n)
                continue
            head = head or (n, acked)
            self._pending += _count_lines(self.seg_path(n), acked)
            self._pending_bytes += size - acked
            self._disk_bytes += size
        self._seg = (segs[-1] if segs else 0) + 1
        if self._pending:
            log.info("%s: %d records from an earlier run to send", self.dir, self._pending)
        return head or (self._seg, 0)

    def _delete_segment(self, n: int) -> None:
        # The .ack goes last: a crash in between leaves a .ack without a segment, deleted on
        # opening; never a segment without its acknowledged offset.
        os.unlink(self.seg_path(n))
        if os.path.exists(self.ack_path(n)):
            os.unlink(self.ack_path(n))

    def _open_segment(self, n: int) -> None:
        self._fd = os.open(self.seg_path(n), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._size = 0
        self._retired: List[int] = []
        self._dir_unsynced = True

    # -- the caller's side ----------------------------------------------------------------------
    def append(self, body: Dict[str, Any], kind: str = "audit", entry_id: Optional[str] = None) -> str:
        """Spools one entry and returns its entry_id (generated unless given: printable ASCII, up
        to 255 bytes). When it returns the record is in the page cache (safe from a kill of the
        process) and within `flush_interval` on disk. Raises SpoolFull at the bound, SpoolClosed
        after `close`, ValueError for a body that is not JSON (counted as rejected), OSError when
        the spool cannot be written (counted as dropped). Never waits for the network."""
        if kind not in KINDS:
            raise ValueError(f"unknown entry kind {kind!r}")
        if entry_id is None:
            entry_id = quoted = f"{self._id_prefix}{next(self._ids):012x}"
        elif 0 < len(entry_id) <= 255 and entry_id.isascii() and entry_id.isprintable() and " " not in entry_id:
            quoted = json.dumps(entry_id)[1:-1]
        else:
            raise ValueError("an entry_id is 1 to 255 bytes of printable ASCII without spaces")
        try:
            text = body_json(body)
        except ValueError as e:
            self.refuse({"entry_id": entry_id, "kind": kind, "body": repr(body)[:4096]}, "not_json", str(e))
            raise
        self._spool(_record_line(quoted, kind, text))
        return entry_id

    def append_log(self, array_json: str) -> str:
        """Spools a log record as the JSON text of its govledger.logentry array
        (`logentry.Form.array_json`) and returns its entry_id. The sender posts it as the audit entry
        `logentry.body` builds from the array, or, when none can be, moves it to rejected.jsonl.
        Durability, the bound and the errors are `append`'s."""
        entry_id = f"{self._id_prefix}{next(self._ids):012x}"
        self._spool(f'{{"entry_id":"{entry_id}","kind":"audit","log":{array_json}}}\n'.encode())
        return entry_id

    def _spool(self, line: bytes) -> None:
        """Appends a record's line to the current segment. Raises SpoolFull at the bound,
        SpoolClosed after close, OSError when the write fails (undone, so that the next record
        starts on a line of its own)."""
        with self._lock:
            refused = self._closed or self._pending_bytes + len(line) > self.max_bytes
            if refused:
                self._dropped += 1
            else:
                try:
                    written = os.write(self._fd, line)
                    if written != len(line):
                        raise OSError(errno.ENOSPC, "short write to the spool")
                except OSError as e:
                    self._undo_write(e)
                    raise
                # In the page cache from here (step 1): a kill of the process loses nothing; a
                # power loss before the next flush loses the segment's tail, a torn line cut on
                # opening.
                self._size += written
                self._pending += 1
                self._pending_bytes += written
                self._disk_bytes += written
                self._unsynced = True
                if self._size >= self.segment_bytes:
                    self._rotate()
        if refused:
            self._refuse_full()
        if not self._wake.is_set():
            self._wake.set()

    def _undo_write(self, e: OSError) -> None:
        self._dropped += 1
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass
        self._warner.warn("io", "spool %s: cannot write a record: %s", self.dir, e)

    def _refuse_full(self) -> None:
        if self._closed:
            raise SpoolClosed("the spool is closed")
        self._warner.warn("full", "spool %s is full (%d bytes unacknowledged, max_bytes %d): records are"
                          " dropped until the log acknowledges some", self.dir, self._pending_bytes, self.max_bytes)
        raise SpoolFull(f"the spool {self.dir} holds {self._pending_bytes} bytes of unacknowledged records"
                        f" (max_bytes {self.max_bytes})")

    def _rotate(self) -> None:
        """Starts the next segment (the lock held); the flusher syncs and closes the old one.
        When the new one cannot be created, records go on to the current one."""
        try:
            fd = os.open(self.seg_path(self._seg + 1), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                         0o600)
        except OSError as e:
            self._warner.warn("io", "spool %s: cannot start a new segment: %s", self.dir, e)
            return
        self._retired.append(self._fd)
        self._fd, self._seg, self._size = fd, self._seg + 1, 0
        self._dir_unsynced = True

    def refuse(self, record: Dict[str, Any], error: str, message: str) -> None:
        """Counts a record refused before it was spooled (not JSON, outside the schema) and keeps
        it in rejected.jsonl with `error` and `message`; warns."""
        line = json.dumps({**record, "status": None, "error": error, "message": message}, default=repr) + "\n"
        with self._lock:
            self._rejected += 1
            if not self._closed:
                try:
                    _write_all(self._rejected_fd, line.encode())
                    self._rejected_unsynced = True
                except OSError:
                    pass
        self._warner.warn("refused", "spool %s: a record was refused before spooling (%s): %s", self.dir, error,
                          message)

    # -- durability -----------------------------------------------------------------------------
    def _run_flusher(self) -> None:
        QUIET.on = True
        while not self._stop.wait(self.flush_interval):
            try:
                self.flush()
            except OSError as e:
                self._warner.warn("io", "spool %s: cannot sync: %s", self.dir, e)

    def flush(self) -> None:
        """Makes every record appended so far durable (fdatasync), with the directory entries of
        new segments."""
        with self._sync_lock:
            with self._lock:
                if self._closed and self._fd < 0:
                    return
                retired, self._retired = self._retired, []
                fd, dirty, self._unsynced = self._fd, self._unsynced, False
                dir_dirty, self._dir_unsynced = self._dir_unsynced, False
                rejected_dirty, self._rejected_unsynced = self._rejected_unsynced, False
            # Step 2: on disk from here. A crash during a sync leaves a prefix of the records,
            # possibly with a torn last line, cut on opening.
            for old in retired:
                os.fdatasync(old)
                os.close(old)
            if dirty:
                os.fdatasync(fd)
            if rejected_dirty:
                os.fdatasync(self._rejected_fd)
            if dir_dirty:  # a new segment's name, lost by a power loss before this without it
                dfd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    # -- state ----------------------------------------------------------------------------------
    def stats(self) -> SpoolStats:
        with self._lock:
            pending, head_t = self._pending, self._head_t
            s = SpoolStats(pending, self._pending_bytes, self._disk_bytes, self._sent, self._dropped,
                           self._rejected, self._last_error, None)
        if pending:
            s = dataclasses.replace(s, oldest_pending_age=max(0.0, time.time() - head_t) if head_t else 0.0)
        return s

    def drain(self, timeout: Optional[float] = None) -> bool:
        """Waits until the log has acknowledged every spooled record, at most `timeout` seconds
        (None: no limit); True when none is left."""
        with self._changed:
            return self._changed.wait_for(lambda: self._pending == 0 or not self._sender_thread.is_alive(), timeout) \
                and self._pending == 0

    def receipts(self) -> Iterator[Dict[str, Any]]:
        """Yields the receipt of every record the log acknowledged, as the server's JSON receipt
        (verify each with `govledger.verify_receipt(r, log_key)`; its leaf carries the
        entry_id), once each, in the order they were stored."""
        seen = set()
        for line in _jsonl(self.receipts_path):
            if line.get("entry_id") not in seen:
                seen.add(line.get("entry_id"))
                yield line["receipt"]

    def rejected(self) -> Iterator[Dict[str, Any]]:
        """Yields every refused record: its entry_id, kind and body (a log record no body could
        be made of: its `log` array), the server's `status`, `error`, `message` and `field`
        (status None: refused by this client); each entry_id once (a record refused again after
        a restart is stored again)."""
        seen = set()
        for line in _jsonl(self.rejected_path):
            entry_id = line.get("entry_id")
            if entry_id is None or entry_id not in seen:
                seen.add(entry_id)
                yield line

    # -- closing --------------------------------------------------------------------------------
    def close(self, drain_timeout: float = 0.0) -> None:
        """Stops taking records, waits up to `drain_timeout` seconds for the log to acknowledge
        the spooled ones, stops the threads and syncs the segment. What was not acknowledged is
        sent when the directory is opened again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if drain_timeout > 0:
            self.drain(drain_timeout)
        self._stop.set()
        self._wake.set()
        self._flusher.join()
        self.flush()
        with self._lock:
            os.close(self._fd)
            os.close(self._rejected_fd)
            self._fd = -1
        self._sender_thread.join(self.client.timeout + 5.0)
        with self._sender.handoff:
            if self._sender.done:
                os.close(self._lock_fd)
            else:
                # Still in a request: the sender releases the directory when that ends.
                log.warning("spool %s: the sender is still in a request; it stops when that ends", self.dir)
                self._sender.release_lock = self._lock_fd

    def __enter__(self) -> "AuditSpool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what the sender reports ----------------------------------------------------------------
    def _resolved(self, sent: int, rejected: int) -> None:
        with self._lock:
            self._sent += sent
            self._rejected += rejected

    def _acknowledged(self, records: int, nbytes: int) -> None:
        with self._changed:
            self._pending -= records
            self._pending_bytes -= nbytes
            self._head_t = None
            self._changed.notify_all()

    def _freed(self, nbytes: int) -> None:
        with self._lock:
            self._disk_bytes -= nbytes

    def _failed(self, e: BaseException) -> None:
        self._last_error = f"{type(e).__name__}: {e}"
        self._warner.warn("unreachable", "spool %s: the log is unreachable or failing (%s); %d records wait",
                          self.dir, self._last_error, self._pending)

    def _succeeded(self) -> None:
        if self._last_error is not None:
            self._last_error = None
            self._warner.warn("reachable", "spool %s: the log answers again; %d records wait", self.dir, self._pending,
                              level=logging.INFO)


class _Sender:
    """The background sender: reads the unacknowledged records in order, posts them and stores
    their receipts, rejections and acknowledged offsets (write path steps 3 to 6)."""

    def __init__(self, spool: AuditSpool, seg: int, offset: int):
        self.spool = spool
        self.seg = seg
        self.offset = offset
        self.seg_fd = -1
        self.ack_fd = -1
        self.ack_seg = -1
        self.receipts_fd = -1
        self.rejected_fd = -1
        self.handoff = threading.Lock()
        self.done = False
        self.release_lock = -1

    def run(self) -> None:
        QUIET.on = True
        sp = self.spool
        try:
            while not sp._stop.is_set():
                try:
                    self.step()
                except Exception as e:  # noqa: BLE001 - a local failure (disk): the records wait, retried
                    sp._failed(e)
                    sp._stop.wait(1.0)
        finally:
            for fd in (self.ack_fd, self.receipts_fd, self.rejected_fd, self.seg_fd):
                if fd >= 0:
                    os.close(fd)
            with self.handoff:
                self.done = True
                if self.release_lock >= 0:
                    os.close(self.release_lock)
            with sp._changed:
                sp._changed.notify_all()

    def step(self) -> None:
        """Sends the next batch and acknowledges it, or waits for records."""
        sp = self.spool
        if self.receipts_fd < 0:
            self.receipts_fd = _open_append(sp.receipts_path)
        if self.rejected_fd < 0:
            self.rejected_fd = _open_append(sp.rejected_path)
        batch = self.next_batch()
        if batch is None:
            sp._wake.wait(0.5)
            sp._wake.clear()
            return
        with sp._lock:
            sp._head_t = batch.records[0].t if batch.records else None
        if self.resolve(batch):
            self.acknowledge(batch)

    # -- reading --------------------------------------------------------------------------------
    def next_batch(self) -> Optional[_Batch]:
        """The next unacknowledged records (at most batch_size, about batch_bytes, from one
        segment), moving past complete, wholly acknowledged segments; None when there is none."""
        sp = self.spool
        while True:
            if self.seg_fd < 0:
                try:
                    self.seg_fd = os.open(sp.seg_path(self.seg), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    if self.seg >= sp._seg:
                        return None
                    self.seg, self.offset = self.seg + 1, 0
                    continue
            batch = self.read()
            if batch.lines:
                return batch
            if self.seg >= sp._seg:  # the segment being written: more may come
                return None
            self.finish_segment()

    def read(self) -> _Batch:
        """The complete lines from the acknowledged offset on (a line still being written is
        left for later), read with pread: no buffer keeps bytes a failed write undid."""
        sp = self.spool
        want = max(sp.batch_bytes, 1 << 16)
        while True:
            data = os.pread(self.seg_fd, want, self.offset)
            if b"\n" in data or len(data) < want:
                break
            want *= 2  # one line longer than a batch
        batch = _Batch(self.seg, self.offset, self.offset, 0, [], [])
        pos = 0
        while batch.lines < sp.batch_size:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            line = data[pos:nl]
            rec = _Record.parse(line)
            if rec is None:
                batch.corrupt.append(line)
            else:
                batch.records.append(rec)
            batch.lines += 1
            pos = nl + 1
        batch.end = self.offset + pos
        return batch

    def finish_segment(self) -> None:
        """Deletes the complete segment just acknowledged to its end and moves to the next."""
        sp = self.spool
        size = os.fstat(self.seg_fd).st_size
        os.close(self.seg_fd)
        self.seg_fd = -1
        if self.ack_seg == self.seg:
            os.close(self.ack_fd)
            self.ack_fd, self.ack_seg = -1, -1
        # Every record of the segment is acknowledged (durably, in its .ack): a crash before or
        # during the deletion leaves a wholly acknowledged segment, deleted on opening.
        sp._delete_segment(self.seg)
        sp._freed(size)
        self.seg, self.offset = self.seg + 1, 0

    # -- sending --------------------------------------------------------------------------------
    def resolve(self, batch: _Batch) -> bool:
        """Stores a receipt or a rejection for every record of `batch`, retrying with backoff
        while the log fails; False when the spool closes first."""
        sp = self.spool
        delay = 0.1
        while True:
            try:
                self.deliver(batch)
                sp._succeeded()
                return True
            except Exception as e:  # noqa: BLE001 - any failure is retried; refusals are handled in deliver
                sp._failed(e)
            if sp._stop.wait(random.uniform(delay / 2, delay)):
                return False
            delay = min(delay * 2, sp.max_backoff)

    def deliver(self, batch: _Batch) -> None:
        """Posts the unresolved records of `batch`: stores receipts, moves refused records to the
        rejected file, splits a refused batch that names no record. On a retryable failure
        raises, with batch.records left holding the unresolved ones."""
        if batch.corrupt:
            self.reject_corrupt(batch)
        if any(r.invalid is not None for r in batch.records):
            self.reject_invalid(batch)
        groups = [batch.records] if batch.records else []
        try:
            while groups:
                group = groups[0]
                try:
                    answer = self.spool.client.submit_batch([r.submission() for r in group])
                except ServerError as e:
                    if retryable(e, len(group)):
                        raise
                    groups[:1] = self.after_refusal(group, e)
                    continue
                self.store_receipts(group, answer)
                groups.pop(0)
        finally:
            batch.records = [r for g in groups for r in g]

    def after_refusal(self, group: List[_Record], e: ServerError) -> List[List[_Record]]:
        """Rejects the record a refusal names (or the one record sent) and returns what to send
        next in its place."""
        i = refused_position(e, len(group))
        if i is None and len(group) > 1:
            mid = len(group) // 2
            return [group[:mid], group[mid:]]
        i = i or 0
        self.store_rejection(group[i], e)
        rest = group[:i] + group[i + 1:]
        return [rest] if rest else []

    def store_receipts(self, group: List[_Record], answer: Dict[str, Any]) -> None:
        receipts = batch_receipts(answer)
        if len(receipts) != len(group):
            raise ReceiptError(f"{len(receipts)} receipts for a batch of {len(group)}")
        lines = []
        for r, receipt in zip(group, receipts):
            leaf = Leaf.parse(base64.b64decode(receipt["leaf"]))
            if leaf.entry_id != r.entry_id:
                raise ReceiptError(f"the receipt for entry_id {r.entry_id} is for {leaf.entry_id}")
            lines.append(json.dumps({"entry_id": r.entry_id, "receipt": receipt}, separators=(",", ":")))
        # Durable before the acknowledged offset moves past these records (step 4).
        _write_all(self.receipts_fd, ("\n".join(lines) + "\n").encode())
        os.fdatasync(self.receipts_fd)
        self.spool._resolved(len(group), 0)

    def store_rejection(self, r: _Record, e: ServerError) -> None:
        line = {"entry_id": r.entry_id, "kind": r.kind, "body": r.body, "status": e.status, "error": e.error,
                "message": e.message, "field": e.field}
        # Durable before the acknowledged offset moves past it (step 4); a crash before that
        # sends it again and the server refuses it again: rejected.jsonl then holds it twice.
        _write_all(self.rejected_fd, (json.dumps(line) + "\n").encode())
        os.fdatasync(self.rejected_fd)
        self.spool._resolved(0, 1)
        self.spool._warner.warn("rejected", "spool %s: the log refused a record (entry_id %s): %s", self.spool.dir,
                                r.entry_id, e)

    def reject_corrupt(self, batch: _Batch) -> None:
        lines = [json.dumps({"entry_id": None, "line": ln.decode("utf-8", "replace"), "status": None,
                             "error": "corrupt_spool_line", "message": "a spool line that is no record"})
                 for ln in batch.corrupt]
        _write_all(self.rejected_fd, ("\n".join(lines) + "\n").encode())
        os.fdatasync(self.rejected_fd)
        self.spool._resolved(0, len(lines))
        batch.corrupt = []

    def reject_invalid(self, batch: _Batch) -> None:
        """Moves the log records no body could be built from to the rejected file."""
        invalid = [r for r in batch.records if r.invalid is not None]
        lines = [json.dumps({"entry_id": r.entry_id, "kind": r.kind, "log": r.log, "status": None,
                             "error": "invalid_record", "message": r.invalid}) for r in invalid]
        # Durable before the acknowledged offset moves past them (step 4), as any rejection.
        _write_all(self.rejected_fd, ("\n".join(lines) + "\n").encode())
        os.fdatasync(self.rejected_fd)
        self.spool._resolved(0, len(lines))
        batch.records = [r for r in batch.records if r.invalid is None]
        self.spool._warner.warn("rejected", "spool %s: a log record is no audit entry (entry_id %s): %s",
                                self.spool.dir, invalid[0].entry_id, invalid[0].invalid)

    def acknowledge(self, batch: _Batch) -> None:
        """Moves the acknowledged offset of the batch's segment past it (step 5)."""
        if self.ack_seg != batch.seg:
            if self.ack_fd >= 0:
                os.close(self.ack_fd)
            self.ack_fd, self.ack_seg = _open_append(self.spool.ack_path(batch.seg)), batch.seg
        # The receipts and rejections of every record before `end` are durable; once this line
        # is, a restart starts after them. A crash before it resends them (same entry_ids).
        _write_all(self.ack_fd, f"{batch.end}\n".encode())
        os.fdatasync(self.ack_fd)
        self.offset = batch.end
        self.spool._acknowledged(batch.lines, batch.end - batch.start)
