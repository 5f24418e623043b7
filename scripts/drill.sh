#!/usr/bin/env bash
# The disaster drill, many times: replicated durability and the WORM mirror, 16 clients,
# SIGKILL, the data dir deleted, `govledgerd restore` from the bucket and the write-ahead
# topic, then every acknowledged entry and every checkpoint handed out checked
# (tests/it/replicated.rs). CI runs 5 cycles; this runs GOVLEDGER_DRILL_CYCLES (default 50),
# and the kill -9 loop with the data dir kept as many times.
#
#   scripts/drill.sh            # 50 cycles
#   GOVLEDGER_DRILL_CYCLES=200 scripts/drill.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOVLEDGER_DRILL_CYCLES="${GOVLEDGER_DRILL_CYCLES:-50}"
scripts/services.sh cargo test --all-features --test it -- --nocapture \
  replicated::disaster_drill_restore_loses_no_acknowledged_entry \
  replicated::kill_9_in_replicated_mode_reconciles_with_the_topic
