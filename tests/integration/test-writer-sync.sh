#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-writer's sync thread, driven through strace's fault injection on fdatasync():
#   * --sync=interval: while a sync is in flight (held up for seconds), batches are still acked and
#     readers see their records;
#   * --sync=batch (group commit): while a sync is in flight the next batch is written (readers see
#     it) but not acked; both acks come once the syncs completed;
#   * a sync that fails with ENOSPC stalls (one warning, acks held) and is retried until it works;
#   * --sync=interval: the early writeback (sync_file_range, whole MiB) and the reservation of the
#     next segment (fallocate of the spare segment, renamed at the roll) run in the sync thread;
#   * a sync that fails with EIO is fatal: logged once, exit non-zero, the batch never acked; after a
#     restart the connector's resend is stored exactly once.
# strace counts injections per thread: the sync thread's first fdatasync() is "when=1".
source "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { dp_log "SKIP: strace is not installed"; exit 77; }
strace -f -qq -o /dev/null true 2>/dev/null || { dp_log "SKIP: strace can not trace here"; exit 77; }

PROTO=(python3 "$SOURCE_DIR/tests/integration/writer-proto.py")
DUMP="$BUILD_DIR/bench/queue-dump"
SOCK="$RUNTIME_DIR/writer.sock"
WRITER_ARGS=(--runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR")
TRACER=
WPID=

# start_traced NAME SYNC INJECT: the writer under strace, with INJECT applied to fdatasync().
start_traced() {
        local name=$1 sync=$2 inject=$3
        rm -f "$SOCK"
        # LeakSanitizer stops the world with ptrace, which a traced process can not do.
        ASAN_OPTIONS="${ASAN_OPTIONS}:detect_leaks=0" \
                strace -f -qq -o "$LOG_DIR/$name.strace" -e trace=fdatasync -e inject="fdatasync:$inject" \
                dpipe-writer "${WRITER_ARGS[@]}" --sync="$sync" >"$LOG_DIR/$name.log" 2>&1 &
        TRACER=$!
        DP_OTHER_PIDS+=("$TRACER")
        dp_wait_socket "$SOCK"
        WPID=$(pgrep -P "$TRACER" -x dpipe-writer)
        [ -n "$WPID" ] || dp_fail "no dpipe-writer under strace"
}

# stop_traced: SIGTERM to the writer; the exit status of strace is the writer's.
stop_traced() {
        local status=0
        kill -TERM "$WPID"
        dp_wait_exit "$TRACER" 20 || dp_fail "the traced writer did not exit"
        wait "$TRACER" || status=$?
        return "$status"
}

status_field() { "${PROTO[@]}" "$SOCK" status | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
syncing_now() { "${PROTO[@]}" "$SOCK" status | grep -q '"syncing": *true'; }
has_seq() { "$DUMP" "$STATE_DIR/queue" | cut -f2,3 | grep -qx "$1	$2"; }
seqs_in_queue() { "$DUMP" "$STATE_DIR/queue" | cut -f2,3 | tr '\t' ':' | tr '\n' ' '; }

# A queue that exists and is durable, so that the writers below do not fdatasync() at start-up.
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}" --sync=batch
dp_wait_socket "$SOCK"
dp_assert_eq '{"batch_id": 1, "first_offset": 0, "stored": 1, "duplicates": 0, "error": 0}' \
        "$("${PROTO[@]}" "$SOCK" batch alpha 1 1)" "ack of the first batch"
dp_kill_daemon writer TERM

# --sync=interval: the first sync is held up for 8 s in the sync thread.
start_traced interval interval:100 'delay_enter=8000000:when=1'
dp_assert_eq '{"batch_id": 2, "first_offset": 1, "stored": 1, "duplicates": 0, "error": 0}' \
        "$("${PROTO[@]}" "$SOCK" batch alpha 2 2)" "ack of batch 2 (interval)"
dp_retry 5 syncing_now || dp_fail "no sync in flight after the interval: $("${PROTO[@]}" "$SOCK" status)"
dp_assert_eq '{"batch_id": 3, "first_offset": 2, "stored": 1, "duplicates": 0, "error": 0}' \
        "$("${PROTO[@]}" "$SOCK" batch alpha 3 3)" "ack of batch 3, sent while the sync is in flight"
dp_assert_eq "alpha:1 alpha:2 alpha:3 " "$(seqs_in_queue)" "records a reader sees while the sync is in flight"
dp_assert_eq True "$(status_field syncing)" "the sync is still in flight"
stop_traced || dp_fail "the interval writer exited with status $?"
grep -q 'fdatasync' "$LOG_DIR/interval.strace" || dp_fail "strace saw no fdatasync()"

# --sync=batch, group commit: batch 4 waits for the held-up sync; batch 5, sent meanwhile, is
# written at once (a reader sees it) and acked by the next sync.
start_traced batch batch 'delay_enter=8000000:when=1'
"${PROTO[@]}" "$SOCK" batch alpha 4 4 >"$TMP/ack4" 2>&1 &
ACK4=$!
dp_retry 5 syncing_now || dp_fail "no sync in flight after batch 4: $("${PROTO[@]}" "$SOCK" status)"
"${PROTO[@]}" "$SOCK" batch alpha 5 5 >"$TMP/ack5" 2>&1 &
ACK5=$!
dp_retry 5 has_seq alpha 5 || dp_fail "batch 5 was not written while the sync was in flight"
dp_assert_eq "" "$(cat "$TMP/ack4" "$TMP/ack5")" "acks sent while the sync of their batches is in flight"
dp_assert_eq True "$(status_field syncing)" "the sync is still in flight"
wait "$ACK4" || dp_fail "batch 4: $(cat "$TMP/ack4")"
wait "$ACK5" || dp_fail "batch 5: $(cat "$TMP/ack5")"
dp_assert_eq '{"batch_id": 4, "first_offset": 3, "stored": 1, "duplicates": 0, "error": 0}' "$(cat "$TMP/ack4")" "ack of batch 4"
dp_assert_eq '{"batch_id": 5, "first_offset": 4, "stored": 1, "duplicates": 0, "error": 0}' "$(cat "$TMP/ack5")" "ack of batch 5"
stop_traced || dp_fail "the batch writer exited with status $?"
[ "$(grep -c 'fdatasync' "$LOG_DIR/batch.strace")" -ge 2 ] || dp_fail "batch 5 was acked without a second sync"

# ENOSPC from the sync: stall with one warning, retry every second, ack once a sync works.
start_traced enospc batch 'error=ENOSPC:when=1..2'
dp_assert_eq '{"batch_id": 6, "first_offset": 5, "stored": 1, "duplicates": 0, "error": 0}' \
        "$("${PROTO[@]}" "$SOCK" batch alpha 6 6)" "ack of batch 6 after two failed syncs"
dp_assert_eq 1 "$(grep -c '^<4>Cannot write to the queue in .*: No space left on device' "$LOG_DIR/enospc.log")" \
        "stall warnings"
dp_assert_eq '{"batch_id": 7, "first_offset": 6, "stored": 1, "duplicates": 0, "error": 0}' \
        "$("${PROTO[@]}" "$SOCK" batch alpha 7 7)" "ack of batch 7"
grep -q 'The queue has room again' "$LOG_DIR/enospc.log" || dp_fail "the end of the stall was not logged"
stop_traced || dp_fail "the enospc writer exited with status $?"

# EIO from the sync: fatal, logged once, no ack.
start_traced eio batch 'error=EIO:when=1'
if "${PROTO[@]}" "$SOCK" batch alpha 8 8 >"$TMP/ack8" 2>&1; then
        dp_fail "batch 8 was acked although its sync failed: $(cat "$TMP/ack8")"
fi
grep -q 'connection closed by the writer' "$TMP/ack8" || dp_fail "batch 8: $(cat "$TMP/ack8")"
status=0
dp_wait_exit "$TRACER" 20 || dp_fail "the writer did not exit after the failed sync"
wait "$TRACER" || status=$?
[ "$status" != 0 ] || dp_fail "the writer exited 0 after a failed sync"
dp_assert_eq 1 "$(grep -c '^<3>Failed to sync the queue in .*, exiting: Input/output error' "$LOG_DIR/eio.log")" \
        "error lines about the failed sync"

# Restart: the connector sends batch 8 again; the queue holds it exactly once.
rm -f "$SOCK"
dp_daemon writer dpipe-writer "${WRITER_ARGS[@]}" --sync=batch
dp_wait_socket "$SOCK"
ack=$("${PROTO[@]}" "$SOCK" batch alpha 8 8)
case "$ack" in
'{"batch_id": 8, "first_offset": 7, "stored": 1, "duplicates": 0, "error": 0}' | \
'{"batch_id": 8, "first_offset": 8, "stored": 0, "duplicates": 1, "error": 0}') ;;
*) dp_fail "ack of batch 8 sent again: $ack" ;;
esac
dp_assert_eq "alpha:1 alpha:2 alpha:3 alpha:4 alpha:5 alpha:6 alpha:7 alpha:8 " "$(seqs_in_queue)" "the queue"

# --sync=interval: the disk work ahead runs in the sync thread, never on the loop: the early
# writeback (sync_file_range, up to whole aligned MiB only: the partly filled end is the
# fdatasync()'s) and the reservation of the next segment's space (fallocate of the spare segment,
# which the roll renames). 80,000 records of 200 bytes are ~18 MiB: eight rolls at --segment-size=2M.
dp_kill_daemon writer TERM
rm -f "$SOCK"
ASAN_OPTIONS="${ASAN_OPTIONS}:detect_leaks=0" \
        strace -f -qq -o "$LOG_DIR/ahead.strace" -e trace=sync_file_range,fallocate,renameat,rename \
        dpipe-writer "${WRITER_ARGS[@]}" --sync=interval:100 --segment-size=2M >"$LOG_DIR/ahead.log" 2>&1 &
TRACER=$!
DP_OTHER_PIDS+=("$TRACER")
dp_wait_socket "$SOCK"
WPID=$(pgrep -P "$TRACER" -x dpipe-writer)
[ -n "$WPID" ] || dp_fail "no dpipe-writer under strace"
"$BUILD_DIR/bench/writer-feed" --socket="$SOCK" --source=bulk --count=80000 --size=200 >"$TMP/feed.out" ||
        dp_fail "writer-feed failed: $(cat "$TMP/feed.out")"
stop_traced || dp_fail "the writer exited with status $?"
python3 - "$LOG_DIR/ahead.strace" "$WPID" <<'PY' || dp_fail "disk work ahead (see $LOG_DIR/ahead.strace)"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
loop = int(sys.argv[2])
MiB = 1 << 20
# With -f, a call another thread interrupts is split into "<unfinished ...>" and "<... resumed>":
# match the call's start, and look for failures on both kinds of lines.
failed = [l for l in lines if re.search(r"(sync_file_range|fallocate|rename).*= -1 ", l)]
if failed:
    sys.exit("failed calls: %r" % failed)
wb = [re.match(r"(\d+) +sync_file_range\(\d+, (\d+), (\d+), SYNC_FILE_RANGE_WRITE", l)
      for l in lines if "sync_file_range(" in l]
if not wb or None in wb:
    sys.exit("expected sync_file_range() calls, got %d, some unparsed" % len(wb))
total = 0
for m in wb:
    tid, off, length = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if tid == loop:
        sys.exit("sync_file_range() on the event loop's thread")
    # A range starts where the last one ended (the first: where the reopened segment ended, or 0 in
    # a new segment) and ends on a whole MiB.
    if length == 0 or (off + length) % MiB:
        sys.exit("range %d+%d does not end on a MiB" % (off, length))
    total += length
if total < 2 * MiB:
    sys.exit("only %d bytes written back early" % total)
spare = [l for l in lines if re.search(r"fallocate\(\d+, FALLOC_FL_KEEP_SIZE, 0, 2097152", l)]
if len(spare) < 2 or any(int(l.split()[0]) == loop for l in spare):
    sys.exit("expected the spare segments reserved by the sync thread, got: %r" % spare)
renames = [l for l in lines if re.search(r'rename(at)?\(.*"spare-segment".*\.seg"', l)]
if len(renames) < 2:
    sys.exit("expected rolls that rename the spare segment, got %d" % len(renames))
PY
dp_assert_eq "80000" "$("$DUMP" "$STATE_DIR/queue" | awk -F'\t' '$2 == "bulk"' | wc -l)" "records of the bulk source"
[ ! -e "$STATE_DIR/queue/spare-segment" ] || dp_fail "the spare segment is left after a clean exit"
