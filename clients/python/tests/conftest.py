"""Runs the tests against a real govledgerd: the binary from GOVLEDGER_BIN_DIR (default: the
workspace's target/debug, or $CARGO_TARGET_DIR/debug), started on a free port in a fresh data
directory with two registered people."""

import os
import subprocess
import tempfile

import pytest

from govledger import SignerKey

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def bin_dir() -> str:
    d = os.environ.get("GOVLEDGER_BIN_DIR")
    if d:
        return d
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "debug")


def binary(name: str) -> str:
    path = os.path.join(bin_dir(), name)
    if not os.path.exists(path):
        pytest.fail(f"{path} does not exist: build it first (cargo build --workspace) or set GOVLEDGER_BIN_DIR")
    return path


def person(name: str, seed: int) -> SignerKey:
    return SignerKey(name, bytes([seed]) * 32)


@pytest.fixture(scope="session")
def people():
    return {"alice": person("alice", 1), "bob": person("bob", 2), "carol": person("carol", 3)}


@pytest.fixture(scope="session")
def server(people):
    data = tempfile.mkdtemp(prefix="govledger-py-")
    cfg = os.path.join(data, "govledger.toml")
    roles = {"alice": "quant", "bob": "risk", "carol": "risk"}
    with open(cfg, "w") as f:
        for name, key in people.items():
            f.write(f'[[people]]\nname = "{name}"\nroles = ["{roles[name]}"]\nkey = "{key.verifier()}"\n')
    proc = subprocess.Popen(
        [binary("govledgerd"), "serve", "--config", cfg, "--data-dir", os.path.join(data, "data"), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    addr = proc.stdout.readline().strip().removeprefix("listening on ")
    vkey = proc.stdout.readline().strip().removeprefix("verifier key: ")
    yield {"url": f"http://{addr}", "log_key": vkey, "data": data}
    proc.terminate()
    proc.wait(timeout=30)
