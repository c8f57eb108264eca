#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Backpressure. (1) The state dir is a small tmpfs that fills up: the writer stops acking and says
# why, the connector holds its data, nothing is lost or corrupted, and everything resumes by itself
# once space is freed. (2) --max-bytes: the queue stops at its hard limit and resumes as retention
# frees whole segments.
source "$(dirname "$0")/lib.sh"

FEED="$BUILD_DIR/bench/writer-feed"
DUMP="$BUILD_DIR/bench/queue-dump"
SOCK="$RUNTIME_DIR/writer.sock"
N=20000

if ! mount -t tmpfs -o size=4M dpipe-test "$STATE_DIR" 2>/dev/null; then
        dp_log "SKIP: cannot mount a tmpfs here (needs root)"
        exit 77
fi
trap 'rc=$?; umount -l "$STATE_DIR" 2>/dev/null || true; (exit $rc); dp_cleanup' EXIT

# Checks that the queue holds one source's records with seq = offset + 1 under dense offsets (the
# first ones may have gone to retention); prints "FIRST COUNT".
check_queue() {
        "$DUMP" "$1" | python3 -c '
import json, sys
first, k = None, 0
for line in sys.stdin:
    offset, source, seq, data = line.rstrip("\n").split("\t", 3)
    if first is None:
        first = int(offset)
    if int(offset) != first + k or int(seq) != int(offset) + 1 or json.loads(data)["q"] != int(seq):
        sys.exit("unexpected record: " + line)
    k += 1
print(first or 0, k)'
}

dd if=/dev/zero of="$STATE_DIR/ballast" bs=64K count=40 status=none 2>/dev/null || true
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --segment-size=256K
dp_wait_socket "$SOCK"
dp_bg feed "$FEED" --socket="$SOCK" --source=full --count=$N --batch=100 --window=4
FEED_PID=${DP_OTHER_PIDS[-1]}

dp_retry 30 grep -q 'Cannot write to the queue' "$LOG_DIR/writer.log" || dp_fail "the writer never reported a full disk"
grep 'Cannot write to the queue' "$LOG_DIR/writer.log" | grep -q 'No space left on device' \
        || dp_fail "the stall is logged without its reason"
kill -0 "$FEED_PID" 2>/dev/null || dp_fail "the connector finished although the disk was full"

# Stalled: what is in the queue is consistent, and nothing more is accepted.
read -r first1 k1 <<<"$(check_queue "$STATE_DIR/queue")" || dp_fail "queue contents while stalled"
dp_assert_eq 0 "$first1" "first offset while stalled"
[ "$k1" -gt 0 ] && [ "$k1" -lt "$N" ] || dp_fail "$k1 records stored before the disk filled up"
status=$(python3 "$SOURCE_DIR/tests/integration/writer-proto.py" "$SOCK" status)
dp_assert_contains "$status" '"stalled":true' "writer status while the disk is full"
dp_assert_eq "0 $k1" "$(check_queue "$STATE_DIR/queue")" "records stored while stalled"
dp_log "stalled after $k1 records"

# A hello now would name records that are not written yet: it waits for room like a batch.
python3 "$SOURCE_DIR/tests/integration/writer-proto.py" "$SOCK" hello full >"$TMP/hello.json" 2>&1 &
HELLO_PID=$!
sleep 1
kill -0 "$HELLO_PID" 2>/dev/null || dp_fail "hello was answered while records were held: $(cat "$TMP/hello.json")"

# Free the space: it resumes by itself and every record arrives exactly once.
rm -f "$STATE_DIR/ballast"
wait "$HELLO_PID" || dp_fail "hello failed after space was freed: $(cat "$TMP/hello.json")"
last=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_seq"])' "$TMP/hello.json")
[ "$last" -ge "$k1" ] && [ "$last" -le "$N" ] || dp_fail "hello after the stall names last_seq $last"
dp_wait_exit "$FEED_PID" 60 || dp_fail "the connector did not finish after space was freed"
wait "$FEED_PID" || dp_fail "the connector failed: $(cat "$LOG_DIR/feed.log")"
grep -q 'room again' "$LOG_DIR/writer.log" || dp_fail "resuming was not logged"
dp_assert_eq "0 $N" "$(check_queue "$STATE_DIR/queue")" "records in the queue after resuming"

# A restart finds nothing to repair.
dp_kill_daemon writer TERM
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --segment-size=256K
dp_wait_socket "$SOCK"
dp_retry 10 grep -q 'Listening on' "$LOG_DIR/writer.log" || dp_fail "writer did not restart"
if grep -Eq 'torn|corrupt' "$LOG_DIR/writer.log"; then dp_fail "recovery had to repair the queue after a full disk"; fi
dp_kill_daemon writer TERM

# (2) --max-bytes with age retention: stops at the limit, resumes as old segments expire.
STATE2="$TMP/state2"
RUN2="$TMP/run2"
mkdir -p "$STATE2" "$RUN2"
dp_daemon writer2 dpipe-writer --runtime-dir="$RUN2" --state-dir="$STATE2" --segment-size=64K --max-bytes=512K \
        --retention-sec=2
dp_wait_socket "$RUN2/writer.sock"
dp_bg feed2 "$FEED" --socket="$RUN2/writer.sock" --source=limited --count=12000 --batch=100 --window=4
FEED2_PID=${DP_OTHER_PIDS[-1]}
dp_retry 30 grep -q 'reached its limit (--max-bytes=524288)' "$LOG_DIR/writer2.log" \
        || dp_fail "the writer never reported the --max-bytes limit"
dp_wait_exit "$FEED2_PID" 60 || dp_fail "the connector did not finish as retention freed space"
wait "$FEED2_PID" || dp_fail "connector failed: $(cat "$LOG_DIR/feed2.log")"
grep -q 'Retention removed segment' "$LOG_DIR/writer2.log" || dp_fail "retention did not log what it removed"
# Stopped, so that retention does not remove segments while we read them.
dp_kill_daemon writer2 TERM
read -r first count <<<"$(check_queue "$STATE2/queue")" || dp_fail "queue contents after the limited run"
dp_assert_eq 12000 "$((first + count))" "next offset after the limited run"
[ "$first" -gt 0 ] || dp_fail "the first offset did not move up with retention"
du_bytes=$(du -sb "$STATE2/queue" | cut -f1)
[ "$du_bytes" -le $((512 * 1024 + 64 * 1024 + 16384)) ] || dp_fail "queue uses $du_bytes bytes, above --max-bytes"
