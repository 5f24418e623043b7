"""The deploy gate in Python: may this release request go live?

`check` is decided by the same Rust code as `govledger gate` (the package's native module, built
with the package), so a deploy script in Python and the CLI cannot disagree: the same rules, the
same report. The pure-Python proof and receipt verifiers of this package stay an independent
second implementation of the log's formats; the policy's rules have one implementation.
"""

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

from ._native import GateError
from ._native import gate as _gate

__all__ = ["GateError", "Rule", "Verdict", "check"]

PathLike = Union[str, "os.PathLike[str]"]
BundleSource = Union[PathLike, bytes, Mapping[str, Any]]


@dataclass(frozen=True)
class Rule:
    """One rule of the verdict: its name, whether it holds, and why."""

    rule: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, field for field as `govledger gate --json` prints it.

    `ok` is true only when every rule holds; `failed` names the rules that do not; `approvers`
    are the distinct approvers that counted; `decisions` every approval and rejection read.
    A verdict is truthy exactly when it passes.
    """

    ok: bool
    request: str
    policy: Optional[str]
    checkpoint: Optional[Dict[str, Any]]
    rules: List[Rule]
    failed: List[str]
    approvers: List[str]
    decisions: List[Dict[str, Any]]
    report: Dict[str, Any] = field(repr=False)

    def __bool__(self) -> bool:
        return self.ok

    def to_text(self) -> str:
        """One line per rule, then the verdict, as `govledger gate` prints it."""
        lines = [f"{'ok  ' if r.ok else 'FAIL'} {r.rule}: {r.detail}" for r in self.rules]
        if self.ok:
            lines.append(f"gate: PASS: request {self.request} approved by [{', '.join(self.approvers)}]")
        else:
            lines.append(f"gate: REFUSED: {len(self.failed)} rule(s) failed: {', '.join(self.failed)}")
        return "\n".join(lines)

    @classmethod
    def from_report(cls, report: Dict[str, Any]) -> "Verdict":
        """The verdict of a `gate --json` report."""
        return cls(
            ok=report["ok"], request=report["request"], policy=report.get("policy"),
            checkpoint=report.get("checkpoint"), rules=[Rule(**r) for r in report["rules"]],
            failed=list(report["failed"]), approvers=list(report["approvers"]),
            decisions=list(report["decisions"]), report=report,
        )


def _now_ms(now: Union[None, int, float, _dt.datetime, _dt.date]) -> int:
    if now is None:
        return int(_dt.datetime.now(_dt.timezone.utc).timestamp() * 1000)
    if isinstance(now, bool):
        raise TypeError("now: give a datetime, a date or Unix milliseconds")
    if isinstance(now, (int, float)):
        if now < 0:
            raise ValueError("now: Unix milliseconds are not negative")
        return int(now)
    if isinstance(now, _dt.datetime):
        if now.tzinfo is None:
            raise ValueError("now: a naive datetime has no time zone; give an aware one (UTC)")
        return int(now.timestamp() * 1000)
    if isinstance(now, _dt.date):
        return int(_dt.datetime(now.year, now.month, now.day, tzinfo=_dt.timezone.utc).timestamp() * 1000)
    raise TypeError("now: give a datetime, a date or Unix milliseconds")


def _is_url(source: Any) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def _bundle_args(source: Optional[BundleSource]) -> Dict[str, Any]:
    if source is None:
        return {}
    if isinstance(source, (bytes, bytearray, memoryview)):
        return {"bundle": bytes(source)}
    if isinstance(source, Mapping):
        return {"bundle": json.dumps(source).encode()}
    return {"bundle_path": os.fspath(source)}


def check(policy_path: PathLike, source: Optional[BundleSource], request: str,
          artifact: Optional[PathLike] = None, now: Union[None, int, float, _dt.datetime, _dt.date] = None, *,
          url: Optional[str] = None, recheck_sources: bool = False,
          github_api: Optional[str] = None, servicenow_url: Optional[str] = None) -> Verdict:
    """Decides whether `request` (its leaf hash, hex or base64) may go live under the policy.

    `source` is the approval bundle (a saved file's path, its bytes, or the parsed JSON) or the
    server's URL (`http://...`): then the bundle is fetched and the log's index checked for
    omitted approvals and rejections (`log_consistency`, `bundle_complete`), as `gate --url`
    does; pass a bundle and `url=` for both. `artifact` is the file about to be deployed (its
    SHA-256 must be the approved one); `now` the time the approvals' age and the checkpoint's
    freshness are measured at (default: now). Imported approvals are re-read from GitHub and
    ServiceNow with `recheck_sources` (credentials from the environment, as the CLI reads them).

    Returns the verdict, passing or refusing; raises GateError when the gate cannot decide
    (an unreadable policy, a server that cannot be reached: `govledger gate` exits 2).
    """
    if _is_url(source):
        if url is not None:
            raise ValueError("give the server's URL once: as the source or as url=")
        source, url = None, str(source)
    if source is None and url is None:
        raise ValueError("give the bundle (a path, bytes or its JSON) or the server's URL")
    report = _gate(
        os.fspath(policy_path), request, _now_ms(now), url=url,
        artifact=None if artifact is None else os.fspath(artifact),
        recheck_sources=recheck_sources, github_api=github_api, servicenow_url=servicenow_url,
        **_bundle_args(source),
    )
    return Verdict.from_report(json.loads(report))
