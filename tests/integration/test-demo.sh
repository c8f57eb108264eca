#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# tools/demo as a user runs it: records arrive at the client; SIGTERM stops every process it
# started, it exits 0, and it leaves nothing behind (no process, no temporary directory).
# (tools/check also runs `tools/demo --once`.)
source "$(dirname "$0")/lib.sh"

for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client; do
        if ! command -v "$exe" >/dev/null; then
                dp_log "SKIP: $exe is not built"
                rm -rf "$TMP"
                trap - EXIT
                exit 77
        fi
done

DEMO_BUILD_DIR="$BUILD_DIR" DPIPE_LOG_LEVEL=info "$SOURCE_DIR/tools/demo" --no-build \
        >"$TMP/demo.out" 2>"$TMP/demo.err" </dev/null &
DEMO_PID=$!
DP_OTHER_PIDS+=("$DEMO_PID") # killed at cleanup if the test fails half-way

# The sample has 16 rows, served at 2 rows/s in a loop: wait for a few of them (Kraków is the third).
dp_retry 30 bash -c '[ "$(grep -c -w -F demo "$1")" -ge 3 ] && grep -q -F "Kraków" "$1"' _ "$TMP/demo.out" ||
        dp_fail "no records arrived at the demo's client: $(tail -n 20 "$TMP/demo.err") $(tail -n 5 "$TMP/demo.out")"

RUN=$(sed -n 's/.*(runtime dir \(.*\))$/\1/p' "$TMP/demo.err" | head -n1)
[ -n "$RUN" ] || dp_fail "the demo did not say where its runtime dir is: $(cat "$TMP/demo.err")"
DEMO_TMP=${RUN%/run}
[ -d "$DEMO_TMP" ] || dp_fail "the demo's temporary directory $DEMO_TMP does not exist while it runs"
# Every process of the demo names its temporary directory on its command line.
n=$(pgrep -c -f -- "$DEMO_TMP" || true)
[ "${n:-0}" -ge 4 ] || dp_fail "expected the bus and the daemons of the demo to run, found ${n:-0} processes"

kill -TERM "$DEMO_PID"
dp_wait_exit "$DEMO_PID" 20 || dp_fail "tools/demo did not exit within 20 s of SIGTERM"
status=0
wait "$DEMO_PID" || status=$?
dp_assert_eq 0 "$status" "exit status of tools/demo after SIGTERM"

left=$(pgrep -a -f -- "$DEMO_TMP" || true)
[ -z "$left" ] || dp_fail "processes left behind by tools/demo: $left"
[ ! -e "$DEMO_TMP" ] || dp_fail "tools/demo left $DEMO_TMP behind"
dp_assert_contains "$(cat "$TMP/demo.err")" "stopped" "tools/demo's last words"
