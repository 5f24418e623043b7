#!/usr/bin/env bash
# The whole test suite: starts the real S3 (SeaweedFS) and Kafka (tansu) servers the anchoring
# tests need (scripts/services.sh), runs every Rust test with every feature, then the Python
# client's pytest suite against a real govledgerd.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${GOVLEDGER_TOOLS:-${GOVLEDGER_CI_CACHE:-/var/cache/govledger-ci}/tools}"
mkdir -p "$tools"
# The Rust gate tests save every case they decide here; the Python gate replays them all
# (clients/python/tests/test_gate.py).
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
GOVLEDGER_GATE_CORPUS="$corpus" scripts/services.sh cargo test --workspace --all-features "$@"

echo "== Python client (clients/python, pytest against target/debug/govledgerd)"
cargo build -q --workspace --all-features
py="$tools/pyenv"
if [ ! -x "$py/bin/pytest" ] || [ ! -f "$py/.deps-4" ]; then
  python3 -m venv "$py"
  "$py/bin/pip" install -q "cryptography>=41" "requests>=2.28" "httpx>=0.24" "sniffio>=1.1" "pytest>=7" \
    "pandas>=1.5" "maturin>=1.9,<2"
  touch "$py/.deps-4"
fi
# The package as README installs it (pip builds the native module with maturin), in the dev
# profile to share the build above; the tests import the installed package, not the tree.
PATH="$py/bin:$PATH" MATURIN_PEP517_ARGS="--profile dev" \
  "$py/bin/pip" install -q --no-build-isolation --no-deps --force-reinstall ./clients/python
GOVLEDGER_GATE_CORPUS="$corpus" GOVLEDGER_BIN_DIR="${CARGO_TARGET_DIR:-target}/debug" \
  "$py/bin/python" -m pytest -q -p no:cacheprovider --import-mode=importlib clients/python/tests
