#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Two connectors stream N records each while dpipe-writer is killed with SIGKILL again and again
# and restarted. Afterwards the queue holds every record exactly once, each source's records in
# order, under dense offsets 0..2N-1; and every writer start logged what recovery did.
source "$(dirname "$0")/lib.sh"

FEED="$BUILD_DIR/bench/writer-feed"
DUMP="$BUILD_DIR/bench/queue-dump"
SOCK="$RUNTIME_DIR/writer.sock"
N=${N:-300000}
KILLS=${KILLS:-10}
WRITER_ARGS=(--runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --segment-size=1M)

SYNCS=(batch interval:20 none)
STARTS=0

# Each restart uses the next --sync policy: what a crash of the writer leaves must not depend on it.
start_writer() {
        local sync=${SYNCS[$((STARTS++ % 3))]}
        dpipe-writer "${WRITER_ARGS[@]}" --sync="$sync" >>"$LOG_DIR/writer-killed.log" 2>&1 &
        WPID=$!
        DP_OTHER_PIDS+=("$WPID")
}

start_writer
dp_wait_socket "$SOCK"

# A reader follows the queue the way dpiped does (QueueReader + inotify) through every crash.
dp_bg follower "$DUMP" "$STATE_DIR/queue" --follow-until=$((2 * N)) --timeout=100
FOLLOWER=${DP_OTHER_PIDS[-1]}

# Small batches and a window of several batches: many batches in flight at every kill.
dp_bg feed-a "$FEED" --socket="$SOCK" --source=alpha --count="$N" --batch=100 --window=8 --reconnect
FEED_A=${DP_OTHER_PIDS[-1]}
dp_bg feed-b "$FEED" --socket="$SOCK" --source=beta --count="$N" --batch=300 --window=4 --reconnect
FEED_B=${DP_OTHER_PIDS[-1]}

for ((k = 1; k <= KILLS; k++)); do
        # Let it take some records, then kill it in the middle of whatever it is doing.
        sleep "0.$((RANDOM % 3 + 1))"
        kill -KILL "$WPID"
        wait "$WPID" 2>/dev/null || true
        dp_log "killed the writer ($k/$KILLS); queue at $("$DUMP" "$STATE_DIR/queue" --bounds)"
        start_writer
done

# The last writer runs until the end and must exit cleanly.
kill -KILL "$WPID"
wait "$WPID" 2>/dev/null || true
rm -f "$SOCK"
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}"

dp_wait_exit "$FEED_A" 60 || dp_fail "connector alpha did not finish"
dp_wait_exit "$FEED_B" 60 || dp_fail "connector beta did not finish"
wait "$FEED_A" || dp_fail "connector alpha failed: $(cat "$LOG_DIR/feed-a.log")"
wait "$FEED_B" || dp_fail "connector beta failed: $(cat "$LOG_DIR/feed-b.log")"
dp_log "alpha: $(cat "$LOG_DIR/feed-a.log")"
dp_log "beta: $(cat "$LOG_DIR/feed-b.log")"
grep -q '"reconnects":[1-9]' "$LOG_DIR/feed-a.log" || dp_fail "alpha never had to reconnect: the test did not test anything"

# Every record exactly once, per-source order, dense offsets.
"$DUMP" "$STATE_DIR/queue" >"$TMP/dump.tsv" || dp_fail "reading the queue failed"
python3 "$SOURCE_DIR/tests/integration/queue-exactly-once.py" "$TMP/dump.tsv" "$N" alpha beta || dp_fail "queue contents are wrong"
dp_assert_eq "0 $((2 * N))" "$("$DUMP" "$STATE_DIR/queue" --bounds)" "queue bounds"
dp_wait_exit "$FOLLOWER" 30 || dp_fail "the following reader did not reach offset $((2 * N))"
wait "$FOLLOWER" || dp_fail "the following reader failed: $(cat "$LOG_DIR/follower.log")"
dp_assert_eq $((2 * N)) "$(cat "$LOG_DIR/follower.log")" "records seen by the following reader"
dp_assert_eq '{"op":"hello","source":"alpha","last_seq":'"$N"'}' \
        "$(python3 "$SOURCE_DIR/tests/integration/writer-proto.py" "$SOCK" hello alpha)" "last_seq after the crashes"

# A byte flipped in an older segment: the next start salvages it (the damaged record is lost, with a
# warning that names the file and the offset, the damaged file is kept in corrupt/), serves the
# rest, never hands the lost offset out again, and takes new records.
dp_kill_daemon writer TERM
victim=$(ls "$STATE_DIR"/queue/*.seg | sed -n 2p)
printf '\377' | dd of="$victim" bs=1 seek=5000 conv=notrunc status=none
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}"
dp_wait_socket "$SOCK"
dp_retry 10 grep -q "^<4>Queue recovery: Segment $victim is damaged (at byte [0-9]*): lost 1 record(s), offsets [0-9]*;" \
        "$LOG_DIR/writer.log" || dp_fail "salvaging a damaged segment was not logged as a warning"
[ -e "$STATE_DIR/queue/corrupt/$(basename "$victim")" ] || dp_fail "the damaged segment is not in queue/corrupt/"
[ -e "$victim" ] || dp_fail "the salvaged segment is gone"
read -r first next <<<"$("$DUMP" "$STATE_DIR/queue" --bounds)"
dp_assert_eq "0 $((2 * N))" "$first $next" "queue bounds after the salvage"
"$FEED" --socket="$SOCK" --source=gamma --count=10 >"$LOG_DIR/feed-c.log" || dp_fail "appending after the salvage failed"
dp_assert_eq "$((2 * N))" "$("$DUMP" "$STATE_DIR/queue" --from=$((2 * N)) | head -1 | cut -f1)" "offset of the first record after the salvage"
kept=$("$DUMP" "$STATE_DIR/queue" 2>"$TMP/lost" | wc -l)
dp_assert_eq $((2 * N - 1 + 10)) "$kept" "records readable after the salvage"
dp_assert_eq 1 "$(grep -c '^lost ' "$TMP/lost")" "losses queue-dump reports"
