#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped under load on its one loop: 1,000 idle clients, 10 streaming subscribers that each get
# every record in order, and a stalled subscriber that never reads -- with bounded memory.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

RECORDS=40000
dp_start_bus
# ~1 KiB per record: the queue (40 MB) is much larger than what dpiped may hold.
dpiped-queue-fill "$STATE_DIR/queue" "$RECORDS" load 1000
DPIPE_LOG_LEVEL=info dp_dpiped --heartbeat-ms=2000 --client-timeout-ms=60000
# Streaming may cost dpiped 20 MiB at most (its output buffers, not the queue); a sanitizer build
# keeps freed memory in quarantine, so there the bound is looser.
limit_kib=$((20 * 1024))
[[ $(ldd "$(command -v dpiped)") == *libasan* ]] && limit_kib=$((96 * 1024)) # (not | grep -q: SIGPIPE under pipefail)
python3 "$DPIPED_TESTS_DIR/dpiped-load.py" "$DPIPED_PORT" "${DP_PIDS[dpiped]}" "$RECORDS" "$limit_kib" | tee "$TMP/load.out"
tail -n1 "$TMP/load.out" | grep -qx OK || dp_fail "load test failed"
