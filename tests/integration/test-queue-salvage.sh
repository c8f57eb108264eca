#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# 16 flipped bytes in a closed segment of a running pipeline (dpipe-writer + dpiped + a subscriber
# through dpipe-client): the live subscriber gets a data_lost line for exactly the damaged record,
# then the records after it, on the same connection; dpiped says so once in its log. After a restart
# of the writer and dpiped, recovery salvages the segment (one record lost, the rest kept, the
# damaged file in corrupt/, a warning naming the file and the offset), a subscriber from earliest
# gets everything else, and a durable subscription moves past the lost offset.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

FEED="$BUILD_DIR/bench/writer-feed"
DUMP="$BUILD_DIR/bench/queue-dump"
SOCK="$RUNTIME_DIR/writer.sock"
QUEUE="$STATE_DIR/queue"
N=8000
WRITER_ARGS=(--runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --segment-size=64K)

dp_start_bus
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}"
dp_wait_socket "$SOCK"
# One batch in flight: every write is one batch, so segments roll every ~500 records.
"$FEED" --socket="$SOCK" --source=alpha --count=$N --batch=100 --window=1 >"$LOG_DIR/feed.log" || dp_fail "feeding the writer failed"
dp_assert_eq "0 $N" "$("$DUMP" "$QUEUE" --bounds)" "queue bounds"
dp_dpiped --heartbeat-ms=1000

# The victim: a record in the middle of a closed segment far ahead of the subscriber.
VICTIM=6050
seg=
for f in "$QUEUE"/*.seg; do
        first=$((10#$(basename "$f" .seg)))
        [ "$first" -le "$VICTIM" ] && seg=$f
done
[ "$seg" != "$(ls "$QUEUE"/*.seg | tail -n1)" ] || dp_fail "the victim's segment is the active one"
[ "$((10#$(basename "$seg" .seg)))" -gt 2000 ] || dp_fail "the victim's segment starts too early: $(basename "$seg")"

# The subscriber prints into a pipe that nobody reads yet: with --window=100 it stops after the
# window plus what the pipe holds (~64 KiB, some 500 records) — far before the victim, whose
# segment dpiped's reader has not opened yet.
mkfifo "$TMP/records"
dpipe-client --connect="127.0.0.1:$DPIPED_PORT" --window=100 subscribe earliest \
        >"$TMP/records" 2>"$LOG_DIR/subscriber.log" &
SUBSCRIBER=$!
DP_OTHER_PIDS+=("$SUBSCRIBER")
exec 5<"$TMP/records"
pos=$(python3 "$SOURCE_DIR/tests/integration/queue-damage.py" "$seg" "$VICTIM" 16) || dp_fail "damaging the segment failed"
dp_log "flipped 16 bytes at byte $((pos + 48)) of $(basename "$seg"), in the record at offset $VICTIM"

# Now read: every record but the victim, in order, and a data_lost warning for it alone.
cat <&5 >"$TMP/live.jsonl" &
DP_OTHER_PIDS+=($!)
dp_retry 30 grep -q "\"offset\":$((N - 1))," "$TMP/live.jsonl" || dp_fail "the live subscriber did not get to the end"
kill "$SUBSCRIBER"
kill -0 "$SUBSCRIBER" 2>/dev/null && wait "$SUBSCRIBER" 2>/dev/null || true
python3 - "$TMP/live.jsonl" "$N" "$VICTIM" <<'PY' || dp_fail "the live subscriber's records are wrong"
import json, sys
path, n, victim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got = [json.loads(l)["offset"] for l in open(path)]
want = [o for o in range(n) if o != victim]
if got != want:
    missing = sorted(set(want) - set(got))[:10]
    sys.exit(f"{len(got)} records, missing {missing}, extra {sorted(set(got) - set(want))[:10]}")
PY
dp_assert_contains "$(cat "$LOG_DIR/subscriber.log")" "The record at offset $VICTIM was lost: records $VICTIM..$VICTIM are damaged in the queue" \
        "the subscriber's warning"
[ "$(grep -c 'was lost\|were lost' "$LOG_DIR/subscriber.log")" = 1 ] || dp_fail "more than one loss reported: $(cat "$LOG_DIR/subscriber.log")"
dp_assert_contains "$(grep '^<4>' "$LOG_DIR/dpiped.log")" \
        "Queue segment $QUEUE/$(basename "$seg") is damaged at byte $pos: the records at offsets $VICTIM..$VICTIM are lost" \
        "dpiped's warning"

# A raw client sees the error line itself, and the connection stays up after it.
out=$(dp_client "send:{\"op\":\"subscribe\",\"from\":$((VICTIM - 1)),\"window\":10}" recv:1 recv-records:3 send:ping recv-until:pong)
dp_assert_contains "$(sed -n 2p <<<"$out")" "\"offset\":$((VICTIM - 1))," "the record before the damage"
dp_assert_eq "{\"op\":\"error\",\"code\":\"data_lost\",\"first\":$VICTIM,\"last\":$VICTIM,\"message\":\"records $VICTIM..$VICTIM are damaged in the queue and cannot be read\"}" \
        "$(sed -n 3p <<<"$out")" "the data_lost line"
dp_assert_contains "$(sed -n 4p <<<"$out")" "\"offset\":$((VICTIM + 1))," "the record after the damage"
[ "$(grep -c 'Queue segment.*damaged' "$LOG_DIR/dpiped.log")" = 1 ] || dp_fail "dpiped logged the same loss twice"

# Restart both: recovery salvages the segment and says which offset it lost.
dp_kill_daemon dpiped TERM
dp_kill_daemon writer TERM
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}"
dp_wait_socket "$SOCK"
dp_retry 10 grep -q '^<4>Queue recovery: Segment' "$LOG_DIR/writer.log" || dp_fail "recovery did not log the salvage"
line=$(grep '^<4>Queue recovery: Segment' "$LOG_DIR/writer.log")
dp_assert_contains "$line" "Segment $QUEUE/$(basename "$seg") is damaged (at byte $pos): lost 1 record(s), offsets $VICTIM;" "the writer's warning"
dp_assert_contains "$line" "the damaged file is $QUEUE/corrupt/$(basename "$seg")" "where the damaged file went"
! grep -q '^<3>' "$LOG_DIR/writer.log" || dp_fail "recovery logged an error: $(grep '^<3>' "$LOG_DIR/writer.log")"
[ -e "$seg" ] || dp_fail "the salvaged segment is gone"
cmp -s "$seg" "$QUEUE/corrupt/$(basename "$seg")" && dp_fail "the live segment still holds the damaged bytes"
dp_assert_eq "0 $N" "$("$DUMP" "$QUEUE" --bounds)" "queue bounds after the salvage"
"$DUMP" "$QUEUE" >"$TMP/dump.tsv" 2>"$TMP/dump.err" || dp_fail "reading the queue failed"
dp_assert_eq $((N - 1)) "$(wc -l <"$TMP/dump.tsv")" "records left"
dp_assert_eq "lost $VICTIM..$VICTIM $(basename "$seg")" "$(cat "$TMP/dump.err")" "what queue-dump reports"

dp_dpiped --heartbeat-ms=1000
dpipe-client --connect="127.0.0.1:$DPIPED_PORT" subscribe earliest >"$TMP/after.jsonl" 2>"$LOG_DIR/subscriber2.log" &
SUBSCRIBER=$!
DP_OTHER_PIDS+=("$SUBSCRIBER")
dp_retry 30 grep -q "\"offset\":$((N - 1))," "$TMP/after.jsonl" || dp_fail "the subscriber after the restart did not get to the end"
kill "$SUBSCRIBER"
dp_assert_eq $((N - 1)) "$(wc -l <"$TMP/after.jsonl")" "records after the restart"
! grep -q "\"offset\":$VICTIM," "$TMP/after.jsonl" || dp_fail "the damaged record came back"
dp_assert_contains "$(cat "$LOG_DIR/subscriber2.log")" "The record at offset $VICTIM was lost: records $VICTIM..$VICTIM were lost to damage in the queue" \
        "the warning after the restart"

# A durable subscription acks its way past the lost offset and resumes after it.
out=$(dp_client "send:{\"op\":\"subscribe\",\"name\":\"sink\",\"from\":$((VICTIM - 2)),\"window\":2}" recv:1 recv-records:2 \
        ack-all recv:1 recv-records:2 ack-all sleep:1.5)
dp_assert_contains "$(sed -n 4p <<<"$out")" '"code":"data_lost"' "data_lost in the durable subscription"
dp_assert_eq $((VICTIM + 3)) "$(cat "$STATE_DIR/subscriptions/sink.offset")" "committed offset past the loss"
out=$(dp_client 'send:{"op":"subscribe","name":"sink","from":"committed"}' recv:1 recv-records:1)
dp_assert_eq "{\"op\":\"ok\",\"offset\":$((VICTIM + 3))}" "$(sed -n 1p <<<"$out")" "resumes after the loss"
exec 5<&-
