"""`LedgerHandler`: a `logging.Handler` that records log records as audit entries through a
durable `govledger.AuditSpool`, so a log call costs a local append and never waits for, or
fails with, the log server. On the caller's thread the record is only formatted once and
written to the spool as a compact JSON array (govledger.logentry); the spool's sender builds the
entry from it.

    handler = LedgerHandler(url="http://127.0.0.1:7800", spool_dir="/var/spool/risk-agent",
                            log_key=LOG_KEY, compliance_tags=["MIFID_II"], level=logging.INFO)
    logging.getLogger("risk").addHandler(handler)
    logging.getLogger("risk").info("reduced position", extra={
        "event_type": "RISK_DECISION", "details": {"symbol": "XYZ", "qty": np.int64(-500)},
        "compliance_tags": ["RISK_MANAGEMENT"]})

becomes the audit entry (SPEC.md §3.1)::

    {"event_type": "RISK_DECISION", "component": "risk", "action": "reduced position",
     "details": {"logger": "risk", "module": "agent", "function": "rebalance", "line": 88,
                 "thread": "MainThread", "process": 4242, "symbol": "XYZ", "qty": -500},
     "compliance_tags": ["MIFID_II", "RISK_MANAGEMENT"], "severity": "INFO",
     "occurred_at": "2026-11-26T09:30:00.123Z"}

The handler never raises into the caller: a record the spool cannot take (full, closed) is
counted as dropped, one that cannot be an entry (NaN in its details, tags outside the schema)
as rejected (kept in the spool's rejected.jsonl), and either is warned about on the
`govledger.spool` logger. What govledger's loggers and the spool's threads log is never
recorded, so the handler can sit on the root logger.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional, Sequence

from . import logentry
from .logentry import MAX_TEXT
from .spool import QUIET, AuditSpool, SpoolError, SpoolStats


def audit_body(record: logging.LogRecord, component: Optional[str] = None,
               compliance_tags: Sequence[str] = ()) -> Dict[str, Any]:
    """The audit entry body LedgerHandler logs for `record` (govledger.logentry: event_type
    `extra["event_type"]` or the level name, component `component` or the logger name, action
    the message cut to 256 bytes, details the record's place then `extra["details"]`,
    compliance_tags `compliance_tags` then `extra["compliance_tags"]`, severity the level name,
    occurred_at the record's time, actor `extra["actor"]` if given), made as the handler makes
    it: spooled, then built from what was spooled. ValueError when the record's extras break
    the schema or are not JSON."""
    return logentry.body(json.loads(logentry.Form(component, compliance_tags).array_json(record)))


def _own(name: str) -> bool:
    return name == "govledger" or name.startswith("govledger.")


class LedgerHandler(logging.Handler):
    """Records each log record as an audit entry (`audit_body`) in an `AuditSpool` at
    `spool_dir`, sent to the log at `url` in the background. `component` defaults to each
    record's logger name; `compliance_tags` are added to every entry. `spool_options` go to
    AuditSpool (`max_bytes`, `segment_bytes`, `max_backoff`, ...). `close()` (also run by
    `logging.shutdown` at exit) waits up to `drain_timeout` seconds for the log to acknowledge
    what is spooled; what is left is sent when the spool directory is opened again."""

    def __init__(self, url: str, spool_dir: str, token: Optional[str] = None, log_key: Optional[str] = None,
                 component: Optional[str] = None, compliance_tags: Sequence[str] = (), level: int = logging.NOTSET,
                 *, drain_timeout: float = 5.0, **spool_options: Any):
        super().__init__(level)
        self.form = logentry.Form(component, compliance_tags)
        self.drain_timeout = drain_timeout
        self.spool = AuditSpool(spool_dir, url, token, log_key, **spool_options)

    def handle(self, record: logging.LogRecord) -> Any:
        """Emits `record` unless a filter drops it, without the handler's lock (the spool has
        its own). What the spool's threads or govledger's loggers log, or anything logged while
        emitting, is dropped before any lock: `logging.shutdown` holds the handler's lock while
        `close` waits for the sender, which may log meanwhile."""
        if getattr(QUIET, "on", False) or _own(record.name):
            return False
        if not self.filters:
            self.emit(record)
            return record
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12: a filter may return a replacement
            record = rv
        if rv:
            self.emit(record)
        return rv

    def emit(self, record: logging.LogRecord) -> None:
        """Spools the record as its govledger.logentry array (the message formatted once, the
        values of `extra` converted to JSON) in one write; the spool's sender builds the entry's
        body from it."""
        QUIET.on = True
        try:
            try:
                text = self.form.array_json(record)
            except logentry.InvalidRecord as e:
                self._refuse(record, "invalid_record", e)
                return
            except logentry.NotJSON as e:
                self._refuse(record, "not_json", e)
                return
            self.spool.append_log(text)
        except (SpoolError, OSError):
            pass  # counted (dropped) and warned by the spool
        except Exception:  # noqa: BLE001 - a log call never raises into the caller
            self.handleError(record)
        finally:
            QUIET.on = False

    def _refuse(self, record: logging.LogRecord, error: str, e: ValueError) -> None:
        self.spool.refuse({"entry_id": None, "kind": "audit",
                           "body": {"logger": record.name, "message": str(record.msg)[:MAX_TEXT]}}, error, str(e))

    def stats(self) -> SpoolStats:
        return self.spool.stats()

    def flush(self) -> None:
        """Makes every record handled so far durable on disk (not: acknowledged by the log)."""
        try:
            self.spool.flush()
        except OSError:
            pass

    def drain(self, timeout: Optional[float] = None) -> bool:
        return self.spool.drain(timeout)

    def close(self) -> None:
        try:
            self.spool.close(self.drain_timeout)
        finally:
            super().close()
