#!/usr/bin/env bash
# Dataset hashing throughput: `govledger hash-dataset` beside `sha256sum` on the same 1 GiB file,
# in the same run.   benches/hash-dataset.sh [SIZE_MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib="${1:-1024}"
cargo build --release -q -p govledger-client
f="$(mktemp)"
trap 'rm -f "$f"' EXIT
head -c "$((mib << 20))" /dev/urandom > "$f"
for tool in "sha256sum" "target/release/govledger hash-dataset"; do
  start=$(date +%s.%N); $tool "$f" > /dev/null; end=$(date +%s.%N)
  echo "$tool: $(echo "$mib / ($end - $start)" | bc -l | cut -c1-6) MiB/s"
done
