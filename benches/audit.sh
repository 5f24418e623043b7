#!/usr/bin/env bash
# Audit throughput: `govledger audit` (full replay through the tiles of a release govledgerd on
# this machine) of a log of N entries (default 1,000,000), beside `sha256sum` of as many bytes
# as the audit downloaded and hashed, in the same run.   benches/audit.sh [ENTRIES]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000000}"
cargo build --release -q -p govledger -p govledger-client
bin="${CARGO_TARGET_DIR:-target}/release"
work="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin/govledgerd" serve --data-dir "$work/data" --listen 127.0.0.1:0 > "$work/out" 2>/dev/null &
pid=$!
for _ in $(seq 1 100); do [ -s "$work/out" ] && [ "$(wc -l < "$work/out")" -ge 2 ] && break; sleep 0.1; done
url="http://$(sed -n 1p "$work/out" | sed 's/listening on //')"
key="$(sed -n 2p "$work/out" | sed 's/verifier key: //')"
echo "filling $url to $n entries ..." >&2
while :; do
  size=$(curl -s "$url/v1/log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tree_size"])')
  [ "$size" -ge "$n" ] && break
  "$bin/govledger" loadgen --url "$url" --batch 256 --concurrency 8 --duration 5 > /dev/null
done
echo "log at $size entries; auditing ..." >&2
start=$(date +%s.%N)
"$bin/govledger" audit --url "$url" --log-key "$key" --out "$work/report" --jobs 4 > /dev/null
end=$(date +%s.%N)
bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["replay"]["bytes"])' "$work/report/report.json")
audit_s=$(echo "$end - $start" | bc -l)
head -c "$bytes" /dev/urandom > "$work/blob"
start=$(date +%s.%N); sha256sum "$work/blob" > /dev/null; end=$(date +%s.%N)
sum_s=$(echo "$end - $start" | bc -l)
printf 'govledger audit: %d entries (%d bytes of entries) in %.2f s = %.0f entries/s\n' "$size" "$bytes" "$audit_s" "$(echo "$size / $audit_s" | bc -l)"
printf 'sha256sum of %d bytes: %.2f s = %.0f entries/s equivalent\n' "$bytes" "$sum_s" "$(echo "$size / $sum_s" | bc -l)"
printf 'ratio audit / sha256sum time: %.1fx\n' "$(echo "$audit_s / $sum_s" | bc -l)"
