#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Group commit (--sync=batch) under concurrent connectors and SIGKILL: four connectors stream at
# once, so that batches keep arriving and being written while the sync thread flushes the ones
# before them, and dpipe-writer is killed with SIGKILL again and again and restarted, always with
# --sync=batch. A batch acked before it was written would not be sent again by its connector and be
# missing: afterwards the queue holds every record of every source exactly once, in order, under
# dense offsets, and the last seq the writer reports for each source is its last record.
source "$(dirname "$0")/lib.sh"

FEED="$BUILD_DIR/bench/writer-feed"
DUMP="$BUILD_DIR/bench/queue-dump"
SOCK="$RUNTIME_DIR/writer.sock"
N=${N:-80000}
KILLS=${KILLS:-8}
# Records/s per connector at most: the flow lasts about N/RATE seconds on any machine, long
# enough for the kills below to land while records flow (an idle machine takes 320000 in 0.2 s).
RATE=${RATE:-25000}
WRITER_ARGS=(--runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --segment-size=1M --sync=batch)
SOURCES=(s1 s2 s3 s4)
# Small batches, and as many records in flight per connector (batch x window), so that they finish
# at about the same time and every one of them sees kills.
BATCH=(5 10 20 40)
WINDOW=(8 4 2 1)

start_writer() {
        rm -f "$SOCK"
        dpipe-writer "${WRITER_ARGS[@]}" >>"$LOG_DIR/writer-killed.log" 2>&1 &
        WPID=$!
        DP_OTHER_PIDS+=("$WPID")
}

start_writer
dp_wait_socket "$SOCK"

FEEDS=()
for i in "${!SOURCES[@]}"; do
        dp_bg "feed-${SOURCES[$i]}" "$FEED" --socket="$SOCK" --source="${SOURCES[$i]}" --count="$N" \
                --batch="${BATCH[$i]}" --window="${WINDOW[$i]}" --rate="$RATE" --reconnect
        FEEDS+=("${DP_OTHER_PIDS[-1]}")
done

for ((k = 1; k <= KILLS; k++)); do
        sleep "0.$((RANDOM % 3 + 1))"
        read -r _ next <<<"$("$DUMP" "$STATE_DIR/queue" --bounds)"
        [ "$next" -lt $((${#SOURCES[@]} * N)) ] || break
        kill -KILL "$WPID"
        wait "$WPID" 2>/dev/null || true
        dp_log "killed the writer ($k/$KILLS); queue at $("$DUMP" "$STATE_DIR/queue" --bounds)"
        start_writer
        dp_wait_socket "$SOCK"
done

kill -KILL "$WPID"
wait "$WPID" 2>/dev/null || true
rm -f "$SOCK"
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}"

for i in "${!SOURCES[@]}"; do
        s=${SOURCES[$i]}
        dp_wait_exit "${FEEDS[$i]}" 60 || dp_fail "connector $s did not finish"
        wait "${FEEDS[$i]}" || dp_fail "connector $s failed: $(cat "$LOG_DIR/feed-$s.log")"
        dp_log "$s: $(cat "$LOG_DIR/feed-$s.log")"
done
reconnected=$(grep -l '"reconnects":[1-9]' "$LOG_DIR"/feed-*.log | wc -l)
[ "$k" -gt 3 ] && [ "$reconnected" -ge 2 ] ||
        dp_fail "$((k - 1)) kills while records flowed, $reconnected connectors reconnected: the test did not test anything"

"$DUMP" "$STATE_DIR/queue" >"$TMP/dump.tsv" || dp_fail "reading the queue failed"
python3 "$SOURCE_DIR/tests/integration/queue-exactly-once.py" "$TMP/dump.tsv" "$N" "${SOURCES[@]}" || dp_fail "queue contents are wrong"
dp_assert_eq "0 $((${#SOURCES[@]} * N))" "$("$DUMP" "$STATE_DIR/queue" --bounds)" "queue bounds"
for s in "${SOURCES[@]}"; do
        dp_assert_eq '{"op":"hello","source":"'"$s"'","last_seq":'"$N"'}' \
                "$(python3 "$SOURCE_DIR/tests/integration/writer-proto.py" "$SOCK" hello "$s")" "last_seq of $s"
done
