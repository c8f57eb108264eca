#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# A dpipe peer that sends a record with seq 2^64-1 must not silence its source for good. Before, the
# next seq wrapped to 0: every later record was dropped as a duplicate by the writer, and the
# connector asked the peer for "subscribe 0" on every reconnect, also after a restart. Now the
# record is refused with a clear LastError (the source goes to backoff), nothing wraps, the source
# resumes where it was once the peer behaves, and a restart of the connector resumes there too.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
LINES="python3 $SOURCE_DIR/tests/integration/edge-lines.py"
PROTO="python3 $SOURCE_DIR/tests/integration/writer-proto.py"

dp_start_bus
dp_start_pipeline
PORT=$(dp_free_port)
# 200 rows; the first connection to reach row 100 gets seq 2^64-1 before it.
dp_bg peer python3 "$SOURCE_DIR/tests/integration/connector-fake-source.py" "$PORT" 200 0 100
dp_wait_port 127.0.0.1 "$PORT"
dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"
out=$(dpipectl add-source seqp --type=tcp --address="127.0.0.1:$PORT" --option=heartbeat_ms=500 2>&1) ||
        dp_fail "add-source: $out"

# (The line number depends on where the peer's pong fell.)
want="peer sent seq 18446744073709551615 at line [0-9]+, which no record can follow \(the largest seq accepted is 18446744073709551614\)"
dp_retry 15 bash -c '[[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/seqp org.dpipe.Pipeline1.Source LastError)" =~ $1 ]]' _ "$want" ||
        dp_fail "LastError after the seq: $(dp_source_property seqp LastError)"
grep -Eq "Source seqp: $want" "$LOG_DIR/connector-tcp.log" || dp_fail "the refusal is not logged"

# Every row arrives once, in order, and the poisoned record never does.
dp_retry 20 bash -c '[ "$($1 count "$2" seqp)" = 200 ]' _ "$LINES" "$TMP/client.jsonl" ||
        dp_fail "the client got $($LINES count "$TMP/client.jsonl" seqp) of 200 records"
dp_assert_eq "$(seq 0 199)" "$($LINES data "$TMP/client.jsonl" seqp | python3 -c '
import json, sys
for l in sys.stdin: print(json.loads(l)["i"])')" "rows 0..199, each once"
! grep -q poison "$TMP/client.jsonl" || dp_fail "the record with seq 2^64-1 was stored"
dp_assert_eq '{"op":"hello","source":"seqp","last_seq":199}' "$($PROTO "$RUNTIME_DIR/writer.sock" hello seqp)" \
        "the writer's last seq of the source"

# The connector asked for where it was, never for 0 again.
dp_assert_eq "subscribe 0
subscribe 100" "$(grep subscribe "$LOG_DIR/peer.log" | uniq)" "subscribe lines after the refusal"

# A restart resumes after the last row, not at 0.
dp_kill_daemon connector-tcp
dp_daemon connector-tcp2 dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_retry 15 bash -c '[ "$(grep -c subscribe "$1")" -gt "$2" ] && [ "$(grep subscribe "$1" | tail -n1)" = "subscribe 200" ]' \
        _ "$LOG_DIR/peer.log" "$(grep -c subscribe "$LOG_DIR/peer.log")" ||
        dp_fail "after a restart the connector asked for: $(grep subscribe "$LOG_DIR/peer.log" | tail -n1)"
dp_log "OK"
