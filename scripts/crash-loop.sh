#!/usr/bin/env bash
# The kill -9 crash test with more cycles than CI runs (default 200):
#   scripts/crash-loop.sh [CYCLES]
# Each cycle starts govledgerd on the same data dir, drives 8 concurrent clients, SIGKILLs the
# server at a random moment, restarts it and checks that every acknowledged entry is present
# and unchanged and that every checkpoint ever handed out is consistent with the current tree.
set -euo pipefail
cd "$(dirname "$0")/.."
GOVLEDGER_CRASH_CYCLES="${1:-200}" cargo test --release --test it crash -- --nocapture
