"""The caller's cost per record of `govledger.logging.LedgerHandler` (a `logger.info(...)` with
the handler attached) and of `AuditSpool.append`: median, p99 and p99.9 of N single calls, each
timed with perf_counter_ns.

Baselines from the same run, so the figure is also a ratio on a noisy machine:
- `NullHandler`: the same logger.info call with a logging.NullHandler, i.e. what the logging
  module costs before any handler does work;
- `FileHandler`: the same call with a plain logging.FileHandler (default format), a line
  written to a local file per record.

Each spool is measured twice: with the log unreachable (the sender only backs off: the cost of
the append alone) and with a live govledgerd (started here from the binary in a fresh data
directory, or --url) whose sender drains the spool meanwhile, competing for the GIL. Within each
of these two phases the configurations run in turns of N / ROUNDS calls, so that a machine whose
load changes during the run weighs on all of them alike.

    GOVLEDGER_BIN_DIR=/var/cache/govledger-ci/target/debug PYTHONPATH=clients/python \\
        python clients/python/benches/bench_spool.py [--n 100000] [--url URL --log-key KEY]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from govledger import AuditSpool  # noqa: E402
from govledger.logging import LedgerHandler  # noqa: E402

from benchserver import start_server  # noqa: E402


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def timed(n: int, rounds: int, calls: Dict[str, Callable[[int], object]]) -> Dict[str, List[int]]:
    """Nanoseconds of each of `n` calls of each of `calls`, run in `rounds` turns of n / rounds
    calls each, after 1,000 warm-up calls each."""
    clock = time.perf_counter_ns
    out: Dict[str, List[int]] = {name: [] for name in calls}
    for one in calls.values():
        for i in range(1000):
            one(-1 - i)
    per_round = n // rounds
    for r in range(rounds):
        for name, one in calls.items():
            times = [0] * per_round
            for k in range(per_round):
                i = r * per_round + k
                started = clock()
                one(i)
                times[k] = clock() - started
            out[name].extend(times)
    return out


def summary(ns: List[int]) -> Dict[str, float]:
    q = statistics.quantiles(ns, n=1000)
    return {"median": statistics.median(ns) / 1000, "p99": q[989] / 1000, "p99.9": q[998] / 1000}


def log_calls(handler: logging.Handler) -> Callable[[int], object]:
    """A logger.info call with a few details, on a logger with only `handler`."""
    logger = logging.getLogger(f"bench.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return lambda i: logger.info("order %d filled", i, extra={"details": {"seq": i, "symbol": "XYZ", "qty": 100,
                                                                           "px": 101.25}})


def appends(spool: AuditSpool) -> Callable[[int], object]:
    return lambda i: spool.append({"event_type": "ORDER_FILLED", "component": "oms", "action": "fill",
                                   "details": {"seq": i, "symbol": "XYZ", "qty": 100, "px": 101.25},
                                   "compliance_tags": ["MIFID_II"]})


def run(n: int, rounds: int, url: str, log_key: Optional[str]) -> List[Tuple[str, Dict[str, float]]]:
    work = tempfile.mkdtemp(prefix="govledger-bench-spool-")
    rows: List[Tuple[str, Dict[str, float]]] = []
    try:
        for label, target, key in (("log unreachable", dead_url(), None), ("live log", url, log_key)):
            fh = logging.FileHandler(os.path.join(work, f"plain-{len(rows)}.log"))
            h = LedgerHandler(target, os.path.join(work, f"handler-{len(rows)}"), log_key=key, drain_timeout=0)
            spool = AuditSpool(os.path.join(work, f"spool-{len(rows)}"), target, log_key=key)
            calls = {"logger.info, NullHandler": log_calls(logging.NullHandler()),
                     "logger.info, FileHandler": log_calls(fh),
                     f"logger.info, LedgerHandler ({label})": log_calls(h),
                     f"AuditSpool.append ({label})": appends(spool)}
            print(f"{label}: {n} calls each ...", file=sys.stderr)
            rows.extend((f"{name}" + ("" if "(" in name else f" ({label})"), summary(ns))
                        for name, ns in timed(n, rounds, calls).items())
            sent = h.stats().sent + spool.stats().sent
            for closing in (fh, h, spool):
                closing.close()
            if label == "live log":
                print(f"(the live log acknowledged {sent} records meanwhile)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--url")
    ap.add_argument("--log-key")
    args = ap.parse_args()
    proc = data = None
    url, key = args.url, args.log_key
    if url is None:
        bin_dir = os.environ.get("GOVLEDGER_BIN_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "..",
                                                                       "target", "debug")
        proc, url, key, data = start_server(bin_dir)
    try:
        rows = run(args.n, args.rounds, url, key)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(data, ignore_errors=True)
    print(f"{args.n} records, µs per call (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print(f"{'':52} {'median':>8} {'p99':>8} {'p99.9':>8}  {'÷ Null':>7} {'÷ File':>7}")
    for phase in range(0, len(rows), 4):  # each phase's own baselines
        null, plain = rows[phase][1]["median"], rows[phase + 1][1]["median"]
        for name, s in rows[phase:phase + 4]:
            print(f"{name:52} {s['median']:8.2f} {s['p99']:8.2f} {s['p99.9']:8.2f}  "
                  f"{s['median'] / null:7.2f} {s['median'] / plain:7.2f}")

if __name__ == "__main__":
    main()
