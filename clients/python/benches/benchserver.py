"""Starts a govledgerd for the Python benchmarks."""

import os
import subprocess
import tempfile
from typing import Tuple


def start_server(bin_dir: str) -> Tuple[subprocess.Popen, str, str, str]:
    """Starts govledgerd on a free port in a fresh data directory; returns (process, url, log
    key, data directory)."""
    data = tempfile.mkdtemp(prefix="govledger-bench-")
    proc = subprocess.Popen([os.path.join(bin_dir, "govledgerd"), "serve", "--data-dir", os.path.join(data, "data"),
                             "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    addr = proc.stdout.readline().strip().removeprefix("listening on ")
    key = proc.stdout.readline().strip().removeprefix("verifier key: ")
    if not addr or not key:
        proc.kill()
        raise SystemExit(f"govledgerd from {bin_dir} did not start")
    return proc, f"http://{addr}", key, data
