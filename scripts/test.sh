#!/usr/bin/env bash
# The whole test suite: starts the real S3 (SeaweedFS) and Kafka (tansu) servers the anchoring
# tests need (scripts/services.sh), runs every Rust test with every feature, then the Python
# client's pytest suite against a real govledgerd.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${GOVLEDGER_TOOLS:-${GOVLEDGER_CI_CACHE:-/var/cache/govledger-ci}/tools}"
mkdir -p "$tools"
scripts/services.sh cargo test --workspace --all-features "$@"

echo "== Python client (clients/python, pytest against target/debug/govledgerd)"
cargo build -q --workspace --all-features
py="$tools/pyenv"
if [ ! -x "$py/bin/pytest" ] || [ ! -f "$py/.deps-2" ]; then
  python3 -m venv "$py"
  "$py/bin/pip" install -q "cryptography>=41" "requests>=2.28" "httpx>=0.24" "pytest>=7" "pandas>=1.5"
  touch "$py/.deps-2"
fi
GOVLEDGER_BIN_DIR="${CARGO_TARGET_DIR:-target}/debug" PYTHONPATH=clients/python \
  "$py/bin/python" -m pytest -q -p no:cacheprovider clients/python/tests
