#!/usr/bin/env bash
# The whole test suite: starts the real S3 (SeaweedFS) and Kafka (tansu) servers the anchoring
# tests need (scripts/services.sh) and runs every test with every feature.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/services.sh cargo test --workspace --all-features "$@"
