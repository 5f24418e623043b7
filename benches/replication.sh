#!/usr/bin/env bash
# Replicated durability and the WORM mirror, measured in one run on this machine with a release
# govledgerd and the test servers (tansu for Kafka, SeaweedFS for S3):
#   1. entries/s and p50/p99 in `local` and `replicated` durability, alternating A/B, at batch 1
#      (concurrency 256), batch 16 (concurrency 16) and batch 256 (concurrency 4), and p99 at an
#      offered 1,000 entries/s (concurrency 64);
#   2. the mirror's lag (govledger_mirror_lag_entries, sampled every 0.25 s) under a steady
#      5,000 entries/s with a 1 s anchoring round;
#   3. objects and bytes the mirror wrote to S3 for 1,000,000 entries.
# Run it beside the servers:   scripts/services.sh benches/replication.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-8}"
: "${GOVLEDGER_TEST_KAFKA:?run under scripts/services.sh}"
: "${GOVLEDGER_TEST_S3:?run under scripts/services.sh}"
[ -n "${GOVLEDGER_BENCH_NO_BUILD:-}" ] || cargo build --release -q --all-features --bins
bin="${CARGO_TARGET_DIR:-target}/release"
tools="${GOVLEDGER_TOOLS:-${GOVLEDGER_CI_CACHE:-/var/cache/govledger-ci}/tools}"
if ! "$tools/venv/bin/python" -c 'import boto3' 2>/dev/null; then
  "$tools/venv/bin/pip" install -q boto3
fi
py="$tools/venv/bin/python"
work="$(mktemp -d)"
pid=""
stop() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'stop; rm -rf "$work"' EXIT

s3() { # s3 make-bucket NAME | s3 count NAME  (objects and bytes, every version)
  "$py" - "$@" <<'PY'
import sys, boto3, os
from botocore.config import Config
c = boto3.client("s3", endpoint_url=os.environ["GOVLEDGER_TEST_S3"], region_name="us-east-1",
                 config=Config(s3={"addressing_style": "path"}))
op, name = sys.argv[1], sys.argv[2]
if op == "make-bucket":
    c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
else:
    n = b = 0
    kinds = {}
    for page in c.get_paginator("list_object_versions").paginate(Bucket=name):
        for v in page.get("Versions", []):
            n += 1; b += v["Size"]
            k = v["Key"]
            kind = "checkpoint" if k.endswith("/checkpoint") else ("anchor" if k.endswith(".checkpoint") else ("bundle" if "/tile/entries/" in k else "tile"))
            kinds[kind] = kinds.get(kind, 0) + 1
    print(n, b, " ".join(f"{k}={v}" for k, v in sorted(kinds.items())))
PY
}

# start MODE TOPIC BUCKET INTERVAL_MS: a fresh data dir; sets $url
start() {
  local mode="$1" topic="$2" bucket="$3" interval="$4"
  rm -rf "$work/data"
  {
    echo "data_dir = \"$work/data\""
    echo "durability = \"$mode\""
    if [ "$mode" = replicated ]; then
      printf '[replication]\nbrokers = "%s"\ntopic = "%s"\n' "$GOVLEDGER_TEST_KAFKA" "$topic"
    fi
    printf '[anchors]\ninterval_ms = %s\n' "$interval"
    if [ -n "$bucket" ]; then
      printf '[anchors.s3]\nbucket = "%s"\nendpoint = "%s"\npath_style = true\nretention_days = 1\ntiles = true\n' "$bucket" "$GOVLEDGER_TEST_S3"
    fi
  } > "$work/govledger.toml"
  "$bin/govledgerd" serve --config "$work/govledger.toml" --listen 127.0.0.1:0 > "$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 1 600); do [ "$(wc -l < "$work/out" 2>/dev/null || echo 0)" -ge 2 ] && break; sleep 0.05; done
  if [ "$(wc -l < "$work/out")" -lt 2 ]; then
    echo "govledgerd ($mode) did not start:" >&2; cat "$work/err" >&2; exit 1
  fi
  url="http://$(sed -n 1p "$work/out" | sed 's/listening on //')"
}

new_topic() { # a fresh topic per server (called in a subshell: the name must not repeat)
  local t="wal-bench-$$-$(date +%s%N)"
  "$tools/bin/tansu" topic create "$t" --partitions 1 --broker "tcp://$GOVLEDGER_TEST_KAFKA" > /dev/null
  echo "$t"
}

row() { # MODE LABEL LOADGEN-ARGS...
  local mode="$1" label="$2"; shift 2
  local topic=""
  [ "$mode" = replicated ] && topic="$(new_topic)"
  start "$mode" "$topic" "" 60000
  "$bin/govledger" loadgen --url "$url" --duration 2 "$@" > /dev/null # warm up
  "$bin/govledger" loadgen --url "$url" --duration "$secs" --json "$@" > "$work/r.json"
  stop
  python3 - "$mode" "$label" "$work/r.json" <<'PY'
import json, sys
mode, label, path = sys.argv[1:]
r = json.load(open(path))
errs = sum(r["errors"].values())
if errs:
    print(f"  errors: {r['errors']}", file=sys.stderr)
print(f"| {label} | {mode} | {r['entries_per_second']:,.0f} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | {errs} | {r['receipts_invalid']} |")
PY
}

sections="${GOVLEDGER_BENCH_SECTIONS:-123}"
if [[ $sections == *1* ]]; then
echo "## 1. local vs replicated (${secs} s per row, alternating)"
echo "| load | durability | entries/s | p50 ms | p99 ms | errors | invalid receipts |"
echo "|---|---|---|---|---|---|---|"
for args in "batch 1, c=256|--batch 1 --concurrency 256" "batch 16, c=16|--batch 16 --concurrency 16" \
            "batch 256, c=4|--batch 256 --concurrency 4" "offered 1,000/s, c=64|--batch 1 --concurrency 64 --rate 1000"; do
  label="${args%%|*}"; a="${args#*|}"
  for mode in local replicated local replicated; do
    # shellcheck disable=SC2086
    row "$mode" "$label" $a
  done
done

fi

if [[ $sections == *2* ]]; then
echo
echo "## 2. mirror lag at a steady 5,000 entries/s (anchoring every 1 s, replicated)"
bucket="bench-lag-$$"
s3 make-bucket "$bucket"
start replicated "$(new_topic)" "$bucket" 1000
"$bin/govledger" loadgen --url "$url" --batch 1 --concurrency 64 --rate 5000 --duration 20 --json > "$work/r.json" &
lg=$!
max=0; samples=0; sum=0
while kill -0 "$lg" 2>/dev/null; do
  lag=$(curl -s "$url/metrics" | awk '/^govledger_mirror_lag_entries /{print $2}')
  lag=${lag:-0}; lag=${lag%.*}
  [ "$lag" -gt "$max" ] && max=$lag
  sum=$((sum + lag)); samples=$((samples + 1))
  sleep 0.25
done
wait "$lg"
rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["entries_per_second"]))' "$work/r.json")
echo "offered 5,000/s, achieved ${rate}/s; mirror lag over ${samples} samples: max ${max} entries, mean $((sum / (samples > 0 ? samples : 1))) entries; one round = ${rate} entries, so max = $(python3 -c "print(round($max / max($rate, 1), 2))") rounds"
stop

fi

if [[ $sections == *3* ]]; then
echo
echo "## 3. S3 objects and bytes for 1,000,000 entries (batches of 256, anchoring every 1 s)"
bucket="bench-objects-$$"
s3 make-bucket "$bucket"
start local "" "$bucket" 1000
while :; do
  size=$(curl -s "$url/v1/log" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tree_size"])')
  [ "$size" -ge 1000000 ] && break
  "$bin/govledger" loadgen --url "$url" --batch 256 --concurrency 4 --duration 3 > /dev/null
done
for _ in $(seq 1 120); do
  m=$(curl -s "$url/v1/anchors" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(int(a["mirrored_size"] == a["tree_size"]))')
  [ "$m" = 1 ] && break
  sleep 1
done
read -r n b kinds <<< "$(s3 count "$bucket")"
echo "tree size $size: $n object versions, $b bytes ($kinds); per 1,000,000 entries: $(python3 -c "print(round($n * 1e6 / $size))") objects, $(python3 -c "print(round($b * 1e6 / $size / 2**20, 1))") MiB"
du -sb "$work/data/db" | awk -v n="$size" '{printf "the data dir beside it: %d bytes = %.0f B/entry\n", $1, $1 / n}'
stop
fi
