#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# One dpipe-connector-tcp process carries 1,000 tcp sources on its one event loop: all connect,
# all become active, every record of every peer is stored, and the process stays within a sane
# memory bound; when every peer goes away at once, all cursors are written in a few syncs.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CTL="python3 $HERE/connector-ctl.py $RUNTIME_DIR/connector-tcp.sock"
OUT="$TMP/stored.jsonl"
SOURCES=1000
PER=20

PORT=$(dp_free_port)
dp_bg peers python3 "$HERE/connector-many-peers.py" "$PORT" "$PER"
dp_wait_port 127.0.0.1 "$PORT"
dp_bg writer python3 "$HERE/connector-fake-writer.py" "$RUNTIME_DIR/writer.sock" "$OUT"
dp_wait_socket "$RUNTIME_DIR/writer.sock"
dp_daemon connector dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
CONNECTOR_PID=${DP_PIDS[connector]}
dp_wait_socket "$RUNTIME_DIR/connector-tcp.sock"

$CTL add-many s "$SOURCES" address="127.0.0.1:$PORT" format=jsonl >/dev/null || dp_fail "adding $SOURCES sources"

want="$SOURCES $SOURCES $((SOURCES * PER)) 0"
got=
for ((i = 0; i < 600; i++)); do
        got=$($CTL totals)
        [ "$got" = "$want" ] && break
        sleep 0.1
done
dp_assert_eq "$want" "$got" "sources, active, records, skipped"
dp_retry 20 bash -c "[ \$(wc -l <'$OUT') -ge $((SOURCES * PER)) ]" || dp_fail "not every record stored"
dp_assert_eq "$((SOURCES * PER))" "$(wc -l <"$OUT")" "records stored"

# 1,000 open connections cost far less than a megabyte each.
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$CONNECTOR_PID/status")
dp_log "connector RSS with $SOURCES sources: ${rss} kB"
[ "$rss" -lt 400000 ] || dp_fail "RSS ${rss} kB with $SOURCES sources"
fds=$(ls "/proc/$CONNECTOR_PID/fd" | wc -l)
[ "$fds" -ge "$SOURCES" ] || dp_fail "only $fds fds open for $SOURCES sources"

# Every peer goes away at once (the peers process dies): each source stops and its cursor is
# written right away — together, with one sync per loop iteration rather than two fsync()s per
# source (2,000 here), so the loop is not held for seconds. Counted with strace when it can trace.
CURSORS="$STATE_DIR/connector-tcp"
TRACE=
if command -v strace >/dev/null && strace -f -qq -o /dev/null true 2>/dev/null; then
        strace -f -qq -e trace=fsync,fdatasync,syncfs -o "$LOG_DIR/storm.strace" -p "$CONNECTOR_PID" 2>/dev/null &
        TRACE=$!
        DP_OTHER_PIDS+=("$TRACE")
        sleep 1 # strace has attached before the storm starts
fi
pkill -f "connector-many-peers.py $PORT" || dp_fail "could not stop the peers"
written() {
        local n=0 f
        for f in "$CURSORS"/s*.cursor; do
                [ "$(cat "$f" 2>/dev/null)" = "{\"next_seq\":$PER,\"position\":null}" ] && n=$((n + 1))
        done
        echo "$n"
}
dp_retry 30 bash -c "[ \"\$(ls '$CURSORS' 2>/dev/null | grep -c '\.cursor\$')\" -ge $SOURCES ]" ||
        dp_fail "only $(ls "$CURSORS" 2>/dev/null | grep -c '\.cursor$') cursors written after the peers went away"
dp_assert_eq "$SOURCES" "$(written)" "complete cursors written when the sources stopped"
if [ -n "$TRACE" ]; then
        kill -INT "$TRACE" 2>/dev/null || true
        wait "$TRACE" 2>/dev/null || true
        syncs=$(grep -cE '(fsync|fdatasync|syncfs)\(' "$LOG_DIR/storm.strace" || true)
        dp_log "syncs for $SOURCES stopped sources: $syncs"
        [ "$syncs" -ge 1 ] || dp_fail "no sync at all for the stopped sources' cursors"
        [ "$syncs" -le 200 ] || dp_fail "$syncs syncs for $SOURCES stopped sources (two per source would be $((2 * SOURCES)))"
fi

# SIGTERM: the connector exits 0 and leaves every source's cursor behind, complete (all 1,000 are
# written with one sync, not two fsync()s each). The time it took is logged, not asserted.
t0=$EPOCHREALTIME
kill -TERM "$CONNECTOR_PID"
dp_wait_exit "$CONNECTOR_PID" 30 || dp_fail "connector did not exit on SIGTERM"
status=0
wait "$CONNECTOR_PID" || status=$?
unset "DP_PIDS[connector]"
dp_assert_eq 0 "$status" "connector exit status after SIGTERM"
dp_log "connector with $SOURCES sources exited in $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }') s"
dp_assert_eq "$SOURCES" "$(find "$CURSORS" -name '*.cursor' | wc -l)" "cursor files"
dp_assert_eq "" "$(find "$CURSORS" -name '*.tmp*')" "temporary files left"
for ((i = 0; i < SOURCES; i++)); do
        c=$(cat "$CURSORS/s$i.cursor" 2>/dev/null) || dp_fail "no cursor for s$i"
        [ "$c" = "{\"next_seq\":$PER,\"position\":null}" ] || dp_fail "cursor of s$i: $c"
done
