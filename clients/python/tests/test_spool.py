"""AuditSpool and LedgerHandler against a real govledgerd: a log outage, a SIGKILL mid-stream,
the bound, refused records, torn lines, and the mapping of a LogRecord to an audit entry."""

import base64
import datetime
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
import weakref
from collections import Counter

import pytest

from govledger import AuditSpool, Client, Leaf, SpoolFull, verify_receipt
from govledger.logging import LedgerHandler, audit_body

from .conftest import binary

PYTHON_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Govledgerd:
    """A govledgerd of our own on a fixed port and data directory, to stop and start again."""

    def __init__(self, data_dir: str):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.key = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [binary("govledgerd"), "serve", "--data-dir", self.data_dir, "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout.readline().startswith("listening on "), "govledgerd did not start"
        key = self.proc.stdout.readline().strip().removeprefix("verifier key: ")
        assert self.key in (None, key)
        self.key = key

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


@pytest.fixture
def own_server(tmp_path):
    srv = Govledgerd(str(tmp_path / "log"))
    srv.start()
    yield srv
    if srv.proc.poll() is None:
        srv.stop()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def logged(url: str, tag: str) -> Counter:
    """How many times each `details.seq` is in the log among the audit entries tagged `tag`."""
    seqs = Counter()
    for r in Client(url).entries(kind="audit", tag=tag):
        seqs[json.loads(Leaf.parse(base64.b64decode(r["leaf"])).body)["details"]["seq"]] += 1
    return seqs


def receipts_of(spool_dir: str, url: str, log_key: str) -> list:
    """Every receipt the spool at `spool_dir` stored, each verified against the log key."""
    with AuditSpool(spool_dir, url) as spool:
        receipts = list(spool.receipts())
    for r in receipts:
        verify_receipt(r, log_key)
    return receipts


def handler_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_log_outage_loses_nothing_and_logs_nothing_twice(own_server, tmp_path):
    tag = "outage"
    spool_dir = str(tmp_path / "spool")
    handler = LedgerHandler(own_server.url, spool_dir, log_key=own_server.key, compliance_tags=[tag],
                            max_backoff=0.2, segment_bytes=16384)
    logger = handler_logger("test.spool.outage", handler)
    n = 0

    def stream(records: int) -> None:
        nonlocal n
        for _ in range(records):
            logger.info("order %d accepted", n, extra={"details": {"seq": n}})
            n += 1
            time.sleep(0.001)

    stream(200)
    own_server.stop()
    stream(300)
    assert until(lambda: handler.stats().last_error is not None)
    assert handler.stats().pending > 0
    own_server.start()  # the same port and data directory
    stream(200)
    assert handler.drain(20), handler.stats()
    stats = handler.stats()
    handler.close()
    assert (stats.pending, stats.sent, stats.dropped, stats.rejected, stats.last_error) == (0, n, 0, 0, None)
    assert logged(own_server.url, tag) == Counter(range(n))
    receipts = receipts_of(spool_dir, own_server.url, own_server.key)
    assert len(receipts) == n
    # ~20 segments were written; the acknowledged ones are gone.
    segments = [int(name[:-4]) for name in os.listdir(spool_dir) if name.endswith(".seg")]
    assert len(segments) <= 2 and max(segments) > 10


CHILD = """
import logging, sys, time
from govledger.logging import LedgerHandler
url, key, spool_dir, tag, mode = sys.argv[1:]
handler = LedgerHandler(url, spool_dir, log_key=key, compliance_tags=[tag], max_backoff=0.2)
if mode == "drain":
    ok = handler.drain(30)
    handler.close()
    sys.exit(0 if ok else 1)
logger = logging.getLogger("child")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
i = 0
while True:
    logger.info("tick %d", i, extra={"details": {"seq": i}})
    print(i, flush=True)  # after the append returned
    i += 1
"""


def test_after_sigkill_the_next_process_drains_the_spool_exactly_once(server, tmp_path):
    tag = "kill-" + uuid.uuid4().hex[:8]
    spool_dir = str(tmp_path / "spool")
    env = {**os.environ, "PYTHONPATH": PYTHON_DIR}
    args = [sys.executable, "-c", CHILD, server["url"], server["log_key"], spool_dir, tag]
    child = subprocess.Popen(args + ["log"], stdout=subprocess.PIPE, text=True, env=env)
    appended = []
    while len(appended) < 1500:
        appended.append(int(child.stdout.readline()))
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    appended.extend(int(line) for line in child.stdout.read().split())
    assert appended == list(range(len(appended)))

    assert subprocess.run(args + ["drain"], env=env, timeout=60).returncode == 0
    in_log = logged(server["url"], tag)
    assert max(in_log.values()) == 1, "an entry was logged twice"
    assert set(appended) <= set(in_log), "an appended record is missing"
    # Only records whose append had not yet returned (at most the one in progress) may be extra.
    assert set(in_log) - set(appended) <= {len(appended)}
    receipts = receipts_of(spool_dir, server["url"], server["log_key"])
    assert len(receipts) == len(in_log)


def test_at_the_bound_records_are_dropped_with_a_warning_and_the_caller_never_blocks(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's debug lines from the sender must not be spooled either
    url = dead_url()
    handler = LedgerHandler(url, str(tmp_path / "handler"), max_bytes=4096, max_backoff=0.2, drain_timeout=0.5)
    root = logging.getLogger()
    root.addHandler(handler)  # its own warnings reach it too: never recorded, no recursion
    try:
        slowest = 0.0
        for i in range(200):
            started = time.perf_counter()
            logging.getLogger("test.spool.bound").info("order %d", i, extra={"details": {"seq": i}})
            slowest = max(slowest, time.perf_counter() - started)
        assert until(lambda: handler.stats().last_error is not None)
        stats = handler.stats()
    finally:
        # As at exit: flush and close with the handler's lock held, the sender still logging.
        started = time.monotonic()
        logging.shutdown([weakref.ref(handler)])
        closing = time.monotonic() - started
        root.removeHandler(handler)
    assert slowest < 0.05
    assert closing < 3
    assert 0 < stats.pending < 200 and stats.pending_bytes <= 4096
    assert stats.pending + stats.dropped == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "govledger.spool"]
    assert any("is full" in w for w in warnings)
    assert any("unreachable" in w for w in warnings)

    with AuditSpool(str(tmp_path / "direct"), url, max_bytes=2048) as spool:
        body = {"event_type": "X", "component": "c", "action": "a", "details": {"pad": "x" * 200},
                "compliance_tags": []}
        with pytest.raises(SpoolFull):
            for _ in range(100):
                spool.append(body)
        stats = spool.stats()
        assert stats.dropped == 1 and stats.pending > 0 and stats.pending_bytes <= 2048


def audit(seq: int, **fields) -> dict:
    return {"event_type": "ORDER", "component": "oms", "action": "accept", "details": {"seq": seq},
            "compliance_tags": ["refusals"], **fields}


def test_refused_records_go_to_the_rejected_file_and_do_not_block_the_rest(server, tmp_path):
    spool_dir = str(tmp_path / "spool")
    conflict = "conflict-" + uuid.uuid4().hex
    Client(server["url"]).submit("audit", audit(-1), entry_id=conflict)
    # Spooled while the log is away, so that they are sent as one batch on reopening.
    with AuditSpool(spool_dir, dead_url()) as spool:
        ids = [spool.append(audit(0)),
               spool.append(audit(1, event_type="")),          # invalid: the server names entries[1]
               spool.append(audit(2)),
               spool.append(audit(3), entry_id=conflict),      # 409, naming no entry: the batch is split
               spool.append(audit(4))]
    with AuditSpool(spool_dir, server["url"], log_key=server["log_key"]) as spool:
        assert spool.drain(20)
        spool.append(audit(5))
        assert spool.drain(20)
        stats = spool.stats()
        rejected = list(spool.rejected())
        receipts = list(spool.receipts())
    assert (stats.sent, stats.rejected, stats.pending) == (4, 2, 0)
    assert [(r["entry_id"], r["status"], r["error"]) for r in rejected] == [
        (ids[1], 400, "invalid_entry"), (conflict, 409, "entry_id_conflict")]
    assert rejected[0]["field"] == "entries[1].body.event_type" and rejected[0]["body"] == audit(1, event_type="")
    seqs = [verify_receipt(r, server["log_key"]).leaf.json()["details"]["seq"] for r in receipts]
    assert seqs == [0, 2, 4, 5]


def test_a_torn_last_line_is_cut_on_opening_and_the_rest_is_kept(tmp_path):
    spool_dir = str(tmp_path / "spool")
    url = dead_url()
    with AuditSpool(spool_dir, url) as spool:
        for i in range(3):
            spool.append(audit(i))
    (seg,) = [n for n in os.listdir(spool_dir) if n.endswith(".seg")]
    with open(os.path.join(spool_dir, seg), "ab") as f:
        f.write(b'{"entry_id":"torn","t":1.0,"kind":"audit","bo')  # a write cut by a crash
    with open(os.path.join(spool_dir, "receipts.jsonl"), "ab") as f:
        f.write(b'{"entry_id":"x","rec')
    with AuditSpool(spool_dir, url) as spool:
        assert spool.stats().pending == 3
        spool.append(audit(3))
        assert spool.stats().pending == 4
        assert list(spool.receipts()) == []
    with open(os.path.join(spool_dir, seg), "rb") as f:
        assert f.read().endswith(b"}\n")


def test_a_log_record_becomes_an_audit_entry_within_the_schema(tmp_path):
    record = logging.LogRecord("risk.agent", logging.WARNING, "agent.py", 88, "reduced %s " + "é" * 300, ("XYZ",),
                               None)
    record.event_type = "RISK_DECISION"
    record.details = {"qty": -500}
    record.compliance_tags = ["RISK_MANAGEMENT", "MIFID_II"]
    body = audit_body(record, None, ("MIFID_II",))
    assert body["event_type"] == "RISK_DECISION" and body["component"] == "risk.agent"
    assert len(body["action"].encode()) <= 256 and body["details"]["message"].startswith("reduced XYZ é")
    assert body["details"]["qty"] == -500 and body["details"]["line"] == 88
    assert body["compliance_tags"] == ["MIFID_II", "RISK_MANAGEMENT"] and body["severity"] == "WARNING"
    assert body["occurred_at"].endswith("Z")

    handler = LedgerHandler(dead_url(), str(tmp_path / "spool"), drain_timeout=0)
    logger = handler_logger("test.spool.mapping", handler)
    logger.info("nan", extra={"details": {"px": float("nan")}})       # not JSON: rejected
    logger.info("tags", extra={"compliance_tags": ["x" * 65]})         # outside the schema: rejected
    logger.info("fine", extra={"details": {"when": datetime.date(2026, 1, 2)}})
    stats = handler.stats()
    rejected = list(handler.spool.rejected())
    handler.close()
    assert (stats.pending, stats.rejected) == (1, 2)
    assert [r["error"] for r in rejected] == ["not_json", "invalid_record"]


@pytest.mark.parametrize("lost", [("ack",), ("ack", "receipts.jsonl")])
def test_a_crash_before_the_acknowledgement_resends_and_logs_nothing_twice(server, tmp_path, lost):
    tag = "crash-" + uuid.uuid4().hex[:8]
    spool_dir = str(tmp_path / "spool")
    with AuditSpool(spool_dir, server["url"], log_key=server["log_key"]) as spool:
        for i in range(5):
            spool.append(audit(i, compliance_tags=[tag]))
        assert spool.drain(10)
    # As if the process died after posting (and perhaps storing the receipts), before step 5.
    for name in os.listdir(spool_dir):
        if name.endswith(".ack") or name in lost:
            os.unlink(os.path.join(spool_dir, name))
    with AuditSpool(spool_dir, server["url"], log_key=server["log_key"]) as spool:
        assert spool.stats().pending == 5
        assert spool.drain(10)
        receipts = list(spool.receipts())
    assert logged(server["url"], tag) == Counter(range(5))
    assert len(receipts) == 5
    for r in receipts:
        verify_receipt(r, server["log_key"])


def test_only_refusals_of_the_records_themselves_reject_them():
    from govledger import ServerError
    from govledger.spool import retryable

    def refusal(status, field=None):
        return ServerError(status, {"error": "x", "message": "m", **({"field": field} if field else {})})

    # About the records (a batch of 3): one is rejected, or the batch split.
    for status, field in [(400, "entries[2].body.action"), (400, None), (409, "entry_id"), (413, "entries"),
                          (403, "entries[0].kind"), (413, "entries[1].body"), (400, "entries[7].body")]:
        assert not retryable(refusal(status, field), 3), (status, field)
    # About the log, the token or the URL: everything is sent again later.
    for status, field in [(429, None), (503, None), (500, None), (408, None), (401, None), (403, None), (404, None),
                          (429, "entries[0]"), (503, "entries[0].body")]:
        assert retryable(refusal(status, field), 3), (status, field)


@pytest.mark.parametrize("lost", [("ack",), ("ack", "receipts.jsonl")])
def test_log_records_resent_after_a_crash_post_the_same_bodies_and_are_logged_once(server, tmp_path, lost):
    np = pytest.importorskip("numpy")
    tag = "log-crash-" + uuid.uuid4().hex[:8]
    spool_dir = str(tmp_path / "spool")
    handler = LedgerHandler(server["url"], spool_dir, log_key=server["log_key"], component="oms",
                            compliance_tags=[tag], drain_timeout=10)
    logger = handler_logger("test.spool.logcrash", handler)
    # Every part of the spooled array: numpy and datetime values, a message longer than an
    # action, an exception, a stack, event_type, actor and tags of the record's own.
    logger.info("order %d filled " + "x" * 400, 0, extra={
        "details": {"seq": 0, "qty": np.int64(-500), "px": np.float64(101.25),
                    "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)},
        "event_type": "ORDER_FILLED", "actor": 42, "compliance_tags": ["MIFID_II"]})
    try:
        raise RuntimeError("venue down")
    except RuntimeError:
        logger.exception("order %d failed", 1, extra={"details": {"seq": 1}})
    logger.warning("order %d slow", 2, stack_info=True, extra={"details": {"seq": 2}})
    assert handler.drain(10)
    handler.close()
    with open(os.path.join(spool_dir, "receipts.jsonl")) as f:  # not opened: that would delete the segment
        first = [verify_receipt(json.loads(line)["receipt"], server["log_key"]).leaf.json() for line in f]
    # As if the process died after posting, before acknowledging (step 5): resent from the arrays.
    for name in os.listdir(spool_dir):
        if name.endswith(".ack") or name in lost:
            os.unlink(os.path.join(spool_dir, name))
    with AuditSpool(spool_dir, server["url"], log_key=server["log_key"]) as spool:
        assert spool.stats().pending == 3
        assert spool.drain(10)
        stats = spool.stats()
        rejected = list(spool.rejected())
        receipts = list(spool.receipts())
    # A different body under a known entry_id would be refused (409): the resends were the same.
    assert (stats.sent, stats.rejected, rejected) == (3, 0, [])
    assert logged(server["url"], tag) == Counter(range(3))
    assert [verify_receipt(r, server["log_key"]).leaf.json() for r in receipts] == first
    filled, failed, slow = first[:3]
    assert filled["component"] == "oms" and filled["event_type"] == "ORDER_FILLED"
    assert filled["actor"] == "42" and filled["compliance_tags"] == [tag, "MIFID_II"]
    assert filled["details"]["qty"] == -500 and filled["details"]["px"] == 101.25
    assert filled["details"]["at"] == "2026-01-02T03:04:05Z"
    assert len(filled["action"].encode()) <= 256 and filled["details"]["message"] == "order 0 filled " + "x" * 400
    assert "RuntimeError: venue down" in failed["details"]["exception"]
    assert failed["severity"] == "ERROR" and "stack" in slow["details"]


def test_a_spooled_log_record_no_entry_can_be_made_of_goes_to_the_rejected_file(server, tmp_path):
    tag = "log-bad-" + uuid.uuid4().hex[:8]
    spool_dir = str(tmp_path / "spool")
    handler = LedgerHandler(dead_url(), spool_dir, compliance_tags=[tag], drain_timeout=0)
    logger = handler_logger("test.spool.logbad", handler)
    logger.info("first", extra={"details": {"seq": 0}})
    # Arrays the sender cannot make an entry of: another version, tags outside the schema.
    bad = [handler.spool.append_log('[2,"from a later release"]'),
           handler.spool.append_log(json.dumps([1, None, ["x" * 65], "m", "INFO", "n", 1767225600, 0, "m", "f", 1,
                                                "t", 1, None, None, None, None, {"seq": -1}]))]
    logger.info("second", extra={"details": {"seq": 1}})
    handler.close()
    with AuditSpool(spool_dir, server["url"], log_key=server["log_key"]) as spool:
        assert spool.drain(10)
        stats = spool.stats()
        rejected = list(spool.rejected())
    assert (stats.sent, stats.rejected) == (2, 2)
    assert [(r["entry_id"], r["status"], r["error"]) for r in rejected] == [(i, None, "invalid_record") for i in bad]
    assert rejected[0]["log"] == [2, "from a later release"] and "compliance_tags" in rejected[1]["message"]
    assert logged(server["url"], tag) == Counter(range(2))
