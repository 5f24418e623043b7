"""The audit entry of a `logging.LogRecord` (SPEC.md §3.1), made in two steps so that the logging
thread does only what cannot wait:

1. `Form.array_json` (the logging thread): what only the moment of the call has (the formatted
   message, the traceback, the values passed in `extra`, converted to JSON) in a fixed-position
   JSON array, spooled as it is (`AuditSpool.append_log`).
2. `body` (the spool's sender thread): the entry body built from that array. It is a pure
   function of the array, so every resend of a spooled record posts the same body, and the
   server answers its entry_id with the entry it first logged. An array it cannot make an entry
   of raises ValueError and the record goes to the spool's rejected.jsonl.

The array, version 1: version, component (null: the logger name), compliance tags, message (at
most MAX_TEXT characters), level name, logger name, created (whole seconds since the epoch) and
its milliseconds, module, function, line, thread name, process id, exception text, stack, and
`extra`'s event_type, actor and details (each null when absent)::

    [1,null,["MIFID_II","RISK_MANAGEMENT"],"reduced position","INFO","risk",1767225600,123,"agent",
     "rebalance",88,"MainThread",4242,null,null,"RISK_DECISION",null,{"symbol":"XYZ","qty":-500}]

becomes the body::

    {"event_type": "RISK_DECISION", "component": "risk", "action": "reduced position",
     "details": {"logger": "risk", "module": "agent", "function": "rebalance", "line": 88,
                 "thread": "MainThread", "process": 4242, "symbol": "XYZ", "qty": -500},
     "compliance_tags": ["MIFID_II", "RISK_MANAGEMENT"], "severity": "INFO",
     "occurred_at": "2026-01-01T00:00:00.123Z"}

A change to what `body` makes of an array is a new version, the old one still built as it was:
a record spooled by one release and resent by the next must post the same body.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .values import json_text

# Bounds of the audit schema (ledger-format schema.rs `audit`).
MAX_SHORT = 256
MAX_SEVERITY = 32
MAX_TAGS = 32
MAX_TAG = 64
# The full message, an exception's traceback or a stack kept in the details: a leaf is at most
# 65,535 bytes.
MAX_TEXT = 16384

VERSION = 1
_FIELDS = 18

_EXCEPTIONS = logging.Formatter()


def check_tags(tags: Sequence[Any]) -> None:
    """Raises ValueError unless `tags` fit the schema: at most 32 strings of 1 to 64 bytes."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"compliance_tags: at most {MAX_TAGS}, not {len(tags)}")
    for t in tags:
        if not isinstance(t, str) or not 0 < len(t.encode()) <= MAX_TAG:
            raise ValueError(f"compliance_tags: {t!r} is not a string of 1 to {MAX_TAG} bytes")


def merged_tags(defaults: Tuple[str, ...], extra: Any) -> List[str]:
    """The handler's tags then the record's, each once; ValueError outside the schema."""
    if isinstance(extra, str) or not isinstance(extra, (list, tuple, set, frozenset)):
        raise ValueError(f"compliance_tags: a list of strings, not {extra!r}")
    out = list(defaults)
    for t in extra:
        if t not in out:
            out.append(t)
    check_tags(out)
    return out


# -- the logging thread ---------------------------------------------------------------------------

class InvalidRecord(ValueError):
    """A record whose `extra` breaks the schema: compliance_tags that are not 1 to 64-byte
    strings (or more than 32 with the handler's), details that are not a dict."""


class NotJSON(ValueError):
    """A record whose details hold NaN, ±inf, a naive datetime or a value that is not JSON."""


class Form:
    """The arrays of the records of one handler, whose component is `component` (None: each
    record's logger name) and whose compliance tags are `tags` (checked here): `array_json`
    is the whole of what the logging thread does to a record before spooling it."""

    def __init__(self, component: Optional[str], tags: Sequence[str]):
        self.component = short(component) if component else None
        self.tags = tuple(dict.fromkeys(tags))
        check_tags(self.tags)

    def array_json(self, record: logging.LogRecord) -> str:
        """The JSON text of `record`'s version-1 array. Formats the message once, and an
        exception's traceback when no handler did; raises InvalidRecord or NotJSON."""
        extra = record.__dict__  # what `extra=` set, looked up without an AttributeError per miss
        message = record.getMessage()
        if len(message) > MAX_TEXT:
            message = message[:MAX_TEXT]
        tags = self.tags
        more_tags = extra.get("compliance_tags")
        if more_tags:
            try:
                tags = merged_tags(tags, more_tags)  # type: ignore[assignment]
            except ValueError as e:
                raise InvalidRecord(str(e)) from None
        details = extra.get("details")
        if details is not None and not isinstance(details, dict):
            raise InvalidRecord(f"details: a dict, not a {type(details).__name__}")
        exception = stack = None
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
            exception = record.exc_text[-MAX_TEXT:]
        if record.stack_info:
            stack = record.stack_info[-MAX_TEXT:]
        event_type = extra.get("event_type")
        event_type = (event_type if type(event_type) is str else str(event_type)) if event_type else None
        actor = extra.get("actor")
        if actor is not None and type(actor) is not str:
            actor = str(actor)
        array = (VERSION, self.component, tags, message, record.levelname, record.name, int(record.created),
                 int(record.msecs), record.module, record.funcName, record.lineno, record.threadName,
                 record.process, exception, stack, event_type, actor, details)
        try:
            return json_text(array)  # one pass of the C encoder; numpy and the like via to_json
        except ValueError as e:
            if details is not None:
                try:
                    json_text(details, "details")  # the error naming the field
                except ValueError as named:
                    raise NotJSON(str(named)) from None
            raise NotJSON(str(e)) from None


# -- the sender thread ----------------------------------------------------------------------------

def short(text: str, limit: int = MAX_SHORT) -> str:
    """`text` cut to at most `limit` UTF-8 bytes (never inside a character); "-" for empty."""
    if len(text) * 4 > limit and len(text.encode()) > limit:
        text = text.encode()[:limit].decode("utf-8", "ignore")
    return text or "-"


_SECOND: Tuple[int, str] = (-1, "")
_LAST_SECOND = 253402300799  # 9999-12-31T23:59:59Z


def _rfc3339(seconds: int, millis: int) -> str:
    """RFC 3339 UTC with milliseconds; the formatted second is kept for the next record."""
    global _SECOND
    cached = _SECOND
    if cached[0] != seconds:
        cached = _SECOND = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{millis:03d}Z"


def _text(v: Any, what: str, optional: bool = False) -> Any:
    if (v is None and optional) or isinstance(v, str):
        return v
    raise ValueError(f"{what}: a string, not {v!r}")


def _int(v: Any, what: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise ValueError(f"{what}: an integer, not {v!r}")


def created(array: Any) -> Optional[float]:
    """When the record of a spooled array was made (seconds since the epoch), None if unknown."""
    try:
        return array[6] + array[7] / 1000
    except (TypeError, IndexError, KeyError):
        return None


def body(array: Any) -> Dict[str, Any]:
    """The audit entry body of a spooled array (the module doc's mapping): event_type the
    record's, else the level name; component the handler's, else the logger name; action the
    message cut to 256 bytes (the message itself in the details when it was cut); details the
    record's place (logger, module, function, line, thread, process), its exception and stack,
    then the record's own details; severity the level name; occurred_at the record's time; actor
    when given. Raises ValueError for an array that is not version 1 or not within the schema."""
    if not isinstance(array, list) or len(array) != _FIELDS or array[0] != VERSION:
        raise ValueError(f"not a version-{VERSION} log record of {_FIELDS} fields")
    (_, component, tags, message, level, name, seconds, millis, module, function, line, thread, process,
     exception, stack, event_type, actor, extra) = array
    _text(message, "message")
    _text(level, "level")
    _text(name, "logger")
    _text(component, "component", optional=True)
    _text(event_type, "event_type", optional=True)
    _text(actor, "actor", optional=True)
    if not isinstance(tags, list):
        raise ValueError(f"compliance_tags: a list, not {tags!r}")
    check_tags(tags)
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"details: a dict, not {extra!r}")
    if not 0 <= _int(millis, "milliseconds") < 1000:
        raise ValueError(f"milliseconds: 0 to 999, not {millis}")
    if not 0 <= _int(seconds, "created") <= _LAST_SECOND:
        raise ValueError(f"created: a second from 1970 to 9999, not {seconds}")
    when = _rfc3339(seconds, millis)
    action = short(message)
    details: Dict[str, Any] = {"logger": name, "module": module, "function": function, "line": line,
                               "thread": thread, "process": process}
    if action != message:
        details["message"] = message
    if exception is not None:
        details["exception"] = _text(exception, "exception")
    if stack is not None:
        details["stack"] = _text(stack, "stack")
    if extra is not None:
        details.update(extra)
    out = {"event_type": short(event_type or level), "component": short(component or name), "action": action,
           "details": details, "compliance_tags": tags, "severity": short(level, MAX_SEVERITY),
           "occurred_at": when}
    if actor is not None:
        out["actor"] = short(actor)
    return out
