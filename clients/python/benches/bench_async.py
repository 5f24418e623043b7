"""AsyncClient.submit_audit throughput: one process, CONCURRENCY tasks, N audit submissions each
run against a local govledgerd (started here in a fresh data directory, or --url), every receipt
verified against the pinned log key unless --no-verify. Two clients: `AsyncClient(...)` (one
request per submission) and `AsyncClient(..., coalesce=True)` (concurrent submissions joined
into batch requests).

Baselines from the same run, so each figure is also a ratio on a noisy machine:
- `govledger loadgen` at the same concurrency (when the CLI is beside govledgerd): the Rust
  load generator's single submissions, receipts verified: the server's own ceiling here;
- `sync Client`: `govledger.Client.submit_audit` from one thread (N / 10 submissions);
- `httpx GET /v1/log`: one httpx.AsyncClient shared by the same number of tasks, with the limits
  AsyncClient uses (`pool_limits`), N requests of the cheapest read: what AsyncClient's lanes
  (one httpx client per connection) avoid.

    PYTHONPATH=clients/python python clients/python/benches/bench_async.py \\
        [--bin-dir DIR] [--n 10000] [--concurrency 64] [--repeat 3] [--url URL]

--bin-dir defaults to $GOVLEDGER_BIN_DIR, else the CI cache's release build when there is one
(a debug govledgerd is the bottleneck: ~2,000 entries/s), else its debug build. `--profile FILE`
writes a cProfile of the coalescing client's first run (`python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Awaitable, Callable, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from govledger import Client  # noqa: E402
from govledger.aio import AsyncClient, pool_limits  # noqa: E402

from benchserver import start_server  # noqa: E402

CI_TARGET = "/var/cache/govledger-ci/target"


def default_bin_dir() -> str:
    if os.environ.get("GOVLEDGER_BIN_DIR"):
        return os.environ["GOVLEDGER_BIN_DIR"]
    release = os.path.join(CI_TARGET, "release")
    return release if os.path.exists(os.path.join(release, "govledgerd")) else os.path.join(CI_TARGET, "debug")


async def drive(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> float:
    """Runs `one(i)` for i in 0..n from `concurrency` tasks; returns the seconds taken."""
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def async_submissions(url: str, log_key: Optional[str], n: int, concurrency: int, coalesce: bool) -> float:
    async with AsyncClient(url, log_key=log_key, limits=pool_limits(concurrency), coalesce=coalesce) as c:
        await c.submit_audit("BENCH", "bench", "warm-up", {"i": -1}, ["SOX"])
        return await drive(n, concurrency, lambda i: c.submit_audit("BENCH", "bench", "submit",
                                                                     {"i": i, "px": 100.25}, ["SOX"]))


async def httpx_gets(url: str, n: int, concurrency: int) -> float:
    import httpx
    async with httpx.AsyncClient(limits=pool_limits(concurrency)) as h:
        await h.get(url + "/v1/log")
        return await drive(n, concurrency, lambda i: h.get(url + "/v1/log"))


def sync_submissions(url: str, log_key: Optional[str], n: int) -> float:
    c = Client(url, log_key=log_key)
    c.submit_audit("BENCH", "bench", "warm-up", {"i": -1}, ["SOX"])
    started = time.perf_counter()
    for i in range(n):
        c.submit_audit("BENCH", "bench", "sync", {"i": i, "px": 100.25}, ["SOX"])
    return time.perf_counter() - started


def loadgen(bin_dir: str, url: str, concurrency: int, seconds: int) -> Optional[float]:
    cli = os.path.join(bin_dir, "govledger")
    if not os.path.exists(cli):
        return None
    out = subprocess.run([cli, "loadgen", "--url", url, "--concurrency", str(concurrency), "--duration",
                          str(seconds), "--json"], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        print(f"(govledger loadgen failed: {out.stderr.strip()[:200]})", file=sys.stderr)
        return None
    return float(json.loads(out.stdout)["entries_per_second"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a running govledgerd (default: start one from --bin-dir)")
    ap.add_argument("--log-key", help="with --url: the log key to pin (default: the one the server announces)")
    ap.add_argument("--bin-dir", default=default_bin_dir())
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each client, alternating; the median is reported")
    ap.add_argument("--no-verify", action="store_true", help="do not pin the log key (receipts not verified)")
    ap.add_argument("--profile", help="write a cProfile of the coalescing client's first run here")
    args = ap.parse_args()

    proc = data = None
    if args.url:
        url = args.url.rstrip("/")
        log_key = args.log_key or Client(url).log_info()["verifier_key"]
    else:
        proc, url, log_key, data = start_server(args.bin_dir)
    pinned = None if args.no_verify else log_key
    runs: Dict[str, List[float]] = {"single": [], "coalesce": []}
    try:
        for r in range(args.repeat):
            runs["single"].append(args.n / asyncio.run(async_submissions(url, pinned, args.n, args.concurrency, False)))
            coalesced = async_submissions(url, pinned, args.n, args.concurrency, True)
            if args.profile and r == 0:
                import cProfile
                prof = cProfile.Profile()
                secs = prof.runcall(asyncio.run, coalesced)
                prof.dump_stats(args.profile)
            else:
                secs = asyncio.run(coalesced)
            runs["coalesce"].append(args.n / secs)
        sync_n = max(1, args.n // 10)
        sync_rate = sync_n / sync_submissions(url, pinned, sync_n)
        get_rate = args.n / asyncio.run(httpx_gets(url, args.n, args.concurrency))
        rust = None if args.url else loadgen(args.bin_dir, url, args.concurrency, 5)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(data, ignore_errors=True)

    verified = "receipts verified" if pinned else "receipts not verified"
    print(f"govledgerd: {args.url or os.path.join(args.bin_dir, 'govledgerd')}; {args.concurrency} tasks, "
          f"{args.n} submissions a run, {verified}, median of {args.repeat}")
    for name, label in (("single", "AsyncClient.submit_audit"), ("coalesce", "AsyncClient(coalesce=True).submit_audit")):
        med = statistics.median(runs[name])
        each = ", ".join(f"{x:,.0f}" for x in runs[name])
        ratios = [f"{med / sync_rate:.1f}x the sync Client"]
        if rust:
            ratios.append(f"{med / rust:.2f}x govledger loadgen")
        print(f"  {label}: {med:,.0f} submissions/s (runs: {each}); {', '.join(ratios)}; "
              f"target 5,000/s {'met' if med >= 5000 else 'missed'}")
    print(f"  baseline sync Client.submit_audit, one thread, {sync_n} submissions: {sync_rate:,.0f} submissions/s")
    if rust:
        print(f"  baseline govledger loadgen (Rust), {args.concurrency} connections, 5 s: {rust:,.0f} submissions/s")
    print(f"  baseline httpx GET /v1/log, {args.concurrency} tasks, {args.n} requests: {get_rate:,.0f} requests/s")


if __name__ == "__main__":
    main()
