"""Plain JSON from the values a Python trading stack hands over, for the unsigned free-form parts
of an entry (an audit event's `details`, a deployment's `details`, a lineage's metrics and
configurations): numpy scalars and arrays, pandas Timestamps, datetimes, dates and Decimals.
numpy and pandas are never imported: their values are recognised by their methods and module."""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import json.encoder
import math
from typing import Any, Callable


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _rfc3339(v: _dt.datetime, path: str) -> str:
    if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
        raise ValueError(f"{path}: a naive datetime ({v!r}) is refused: give it a time zone (e.g. UTC)")
    v = v.astimezone(_dt.timezone.utc)
    s = v.strftime("%Y-%m-%dT%H:%M:%S")
    nanos = getattr(v, "nanosecond", 0)  # pandas Timestamp
    if v.microsecond or nanos:
        s += (".%06d" % v.microsecond + ("%03d" % nanos if nanos else "")).rstrip("0")
    return s + "Z"


def to_json(value: Any, path: str = "", allow_floats: bool = True) -> Any:
    """Returns `value` as plain JSON (dict, list, str, int, float, bool, None). numpy scalars
    become int, float or bool; numpy arrays and tuples become lists; pandas Timestamps and
    timezone-aware datetimes become RFC 3339 UTC strings (naive ones are refused: a log is no
    place to guess a time zone); dates become midnight UTC; Decimals become decimal strings.
    NaN, ±inf, NaT and anything else raise ValueError naming the field path (`details.px[2]`)."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # plain JSON already: most values
        return value
    where = path or "value"
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # also np.float64, a float subclass
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not a finite number (JSON has no NaN or infinity)")
        if not allow_floats:
            raise ValueError(f"{where}: a float is not allowed here")
        return value
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            raise ValueError(f"{where}: {value!r} is not a finite number")
        return format(value, "f")
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: object member names are strings, not {k!r}")
            out[k] = to_json(v, f"{path}.{k}" if path else k, allow_floats)
        return out
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{where}[{i}]", allow_floats) for i, v in enumerate(value)]
    module = type(value).__module__ or ""
    if module.startswith("pandas") and type(value).__name__ == "NaTType":
        raise ValueError(f"{where}: NaT is not a time")
    if isinstance(value, _dt.datetime):  # also a pandas Timestamp
        return _rfc3339(value, where)
    if isinstance(value, _dt.date):
        return _rfc3339(_dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc), where)
    if module.startswith("numpy"):
        if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # an array
            return [to_json(v, f"{where}[{i}]", allow_floats) for i, v in enumerate(value.tolist())]
        if hasattr(value, "item"):  # a scalar (np.int64, np.float64, np.bool_, np.datetime64, ...)
            item = value.item()
            if type(value).__name__.startswith("datetime64"):
                if item is None:
                    raise ValueError(f"{where}: NaT is not a time")
                if isinstance(item, int):  # a count of ns (or finer) since the epoch, UTC
                    ns = int(value.astype("datetime64[ns]").astype("int64"))
                    secs, frac = divmod(ns, 10**9)
                    base = _rfc3339(_EPOCH + _dt.timedelta(seconds=secs), where)[:-1]
                    return base + (".%09d" % frac).rstrip("0") + "Z" if frac else base + "Z"
                if isinstance(item, _dt.datetime):
                    item = item.replace(tzinfo=_dt.timezone.utc)  # numpy datetime64 is UTC by definition
            if item is value:
                raise ValueError(f"{where}: a {type(value).__name__} cannot be JSON")
            return to_json(item, where, allow_floats)
    raise ValueError(f"{where}: a {type(value).__name__} cannot be JSON")


def _converted(value: Any) -> Any:
    return to_json(value, "")


def _encoder() -> Callable[[Any], str]:
    """`json.dumps(v, allow_nan=False, separators=(",", ":"), default=...)` as a function: the C
    encoder built once (json.dumps builds one per call, half the cost of a small value), else a
    JSONEncoder."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    if c_make is None:  # pragma: no cover - CPython always has it
        return json.JSONEncoder(allow_nan=False, default=_converted, check_circular=False,
                                separators=(",", ":")).encode
    encode = c_make(None, _converted, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
    return lambda v: "".join(encode(v, 0))


_ENCODE = _encoder()


def json_text(value: Any, path: str = "") -> str:
    """The compact JSON text (ASCII, non-ASCII escaped) of `to_json(value, path)`: plain JSON
    values are written by the C encoder as they are, the others converted by `to_json` as the
    encoder meets them. NaN, ±inf, naive datetimes and the unconvertible raise ValueError naming
    the field, as `to_json` does. Unlike `to_json`, an object member name that is a number,
    boolean or None becomes its JSON text, as `json.dumps` makes it."""
    try:
        return _ENCODE(value)
    except (ValueError, TypeError, RecursionError):
        try:
            to_json(value, path)  # raises the error that names the field
        except RecursionError:
            raise ValueError(f"{path or 'the value'} contains itself") from None
        raise ValueError(f"{path or 'the value'} is not JSON") from None
