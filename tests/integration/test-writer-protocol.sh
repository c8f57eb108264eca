#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-writer as a connector sees it: hello/last_seq, acks with dense offsets, duplicates dropped,
# a bad frame closes only that connection, socket activation, --idle-exit-sec, clean errors.
source "$(dirname "$0")/lib.sh"

PROTO="python3 $SOURCE_DIR/tests/integration/writer-proto.py"
DUMP="$BUILD_DIR/bench/queue-dump"
SOCK="$RUNTIME_DIR/writer.sock"

# --help, --version, bad usage.
dpipe-writer --help | grep -q -- '--sync=' || dp_fail "--help does not document --sync"
dp_assert_eq "dpipe-writer $(dpipe-writer --version | cut -d' ' -f2)" "$(dpipe-writer --version)" "--version"
dpipe-writer --version | grep -Eq '^dpipe-writer [0-9]' || dp_fail "--version prints '$(dpipe-writer --version)'"
if err=$(dpipe-writer --sync=sometimes 2>&1); then dp_fail "--sync=sometimes was accepted"; fi
dp_assert_contains "$err" "Invalid --sync='sometimes'" "error for a bad --sync"
[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || dp_fail "bad usage printed more than one line: $err"

# sd_notify: READY=1, STATUS=, and watchdog pings when the service manager asks for them.
dp_bg notify python3 "$SOURCE_DIR/tests/integration/writer-proto.py" "$TMP/notify.sock" notify-listen "$TMP/notify.txt"
dp_wait_socket "$TMP/notify.sock"
dp_daemon writer env NOTIFY_SOCKET="$TMP/notify.sock" WATCHDOG_USEC=400000 \
        bash -c 'export WATCHDOG_PID=$$; exec dpipe-writer "$@"' dpipe-writer \
        --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$SOCK"
dp_retry 10 grep -q 'READY=1' "$TMP/notify.txt" || dp_fail "no READY=1 from the writer"
dp_retry 10 grep -q 'STATUS=Accepting records' "$TMP/notify.txt" || dp_fail "no STATUS= from the writer"
dp_retry 10 grep -q 'WATCHDOG=1' "$TMP/notify.txt" || dp_fail "no watchdog ping from the writer"

# A second writer on the same state dir is refused with a one-line reason.
if err=$(dpipe-writer --runtime-dir="$TMP/run2" --state-dir="$STATE_DIR" 2>&1); then
        dp_fail "a second writer on the same queue started"
fi
dp_assert_contains "$err" "another dpipe-writer is using it" "second writer's error"

# Nothing stored yet for the source: no last_seq.
dp_assert_eq '{"op":"hello","source":"demo"}' "$($PROTO "$SOCK" hello demo)" "hello for a new source"

ack=$($PROTO "$SOCK" batch demo 1 1 2 3)
dp_assert_eq '{"batch_id": 1, "first_offset": 0, "stored": 3, "duplicates": 0, "error": 0}' "$ack" "first batch"
dp_assert_eq '{"op":"hello","source":"demo","last_seq":3}' "$($PROTO "$SOCK" hello demo)" "hello after a batch"

# Sent again (as after a crash) plus one new record: only the new one is stored.
ack=$($PROTO "$SOCK" batch demo 2 2 3 4)
dp_assert_eq '{"batch_id": 2, "first_offset": 3, "stored": 1, "duplicates": 2, "error": 0}' "$ack" "resent batch"
ack=$($PROTO "$SOCK" batch other 3 10 11)
dp_assert_eq '{"batch_id": 3, "first_offset": 4, "stored": 2, "duplicates": 0, "error": 0}' "$ack" "second source"

# A bad frame closes that connection only, and is logged with the peer.
$PROTO "$SOCK" garbage || dp_fail "the writer did not close a connection that sent garbage"
dp_retry 5 grep -q 'sent a frame of unexpected type 77' "$LOG_DIR/writer.log" || dp_fail "bad frame not logged"
grep 'unexpected type 77' "$LOG_DIR/writer.log" | grep -q 'pid [0-9]' || dp_fail "bad frame logged without the peer"
dp_assert_eq '{"op":"hello","source":"demo","last_seq":4}' "$($PROTO "$SOCK" hello demo)" "writer alive after garbage"

# What is in the queue: dense offsets, each source's records in order, the data as sent.
expected=$(printf '0\tdemo\t1\t{"seq": 1}\n1\tdemo\t2\t{"seq": 2}\n2\tdemo\t3\t{"seq": 3}\n3\tdemo\t4\t{"seq": 4}\n4\tother\t10\t{"seq": 10}\n5\tother\t11\t{"seq": 11}')
dp_assert_eq "$expected" "$("$DUMP" "$STATE_DIR/queue")" "queue contents"

# Restart: last_seq is rebuilt from the queue, offsets continue.
dp_kill_daemon writer TERM
[ ! -e "$SOCK" ] || dp_fail "writer left its socket behind after SIGTERM"
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --sync=interval:50
dp_wait_socket "$SOCK"
dp_assert_eq '{"op":"hello","source":"other","last_seq":11}' "$($PROTO "$SOCK" hello other)" "hello after restart"
ack=$($PROTO "$SOCK" batch other 4 11 12)
dp_assert_eq '{"batch_id": 4, "first_offset": 6, "stored": 1, "duplicates": 1, "error": 0}' "$ack" "batch after restart"
dp_kill_daemon writer TERM

# Socket activation (LISTEN_FDS) and --idle-exit-sec: started by the first connection, exits 0 by
# itself once nobody is connected.
rm -f "$SOCK"
systemd-socket-activate -l "$SOCK" --fdname=writer -E DPIPE_LOG_LEVEL \
        dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --idle-exit-sec=1 \
        >"$LOG_DIR/writer-activated.log" 2>&1 &
act_pid=$!
DP_OTHER_PIDS+=("$act_pid")
dp_wait_socket "$SOCK"
dp_assert_eq '{"op":"hello","source":"other","last_seq":12}' "$($PROTO "$SOCK" hello other)" "hello, socket-activated"
dp_wait_exit "$act_pid" 15 || dp_fail "socket-activated writer did not exit after --idle-exit-sec=1"
wait "$act_pid" && status=0 || status=$?
dp_assert_eq 0 "$status" "exit status after idle exit"
grep -q 'socket-activated' "$LOG_DIR/writer-activated.log" || dp_fail "writer did not use the passed socket"
grep -q 'No connection for 1 s, exiting' "$LOG_DIR/writer-activated.log" || dp_fail "idle exit not logged"
dp_assert_eq "0 7" "$("$DUMP" "$STATE_DIR/queue" --bounds)" "queue bounds at the end"
