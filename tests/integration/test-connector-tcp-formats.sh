#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-connector-tcp against peers that are not ours: socat streaming files as raw TCP in the
# jsonl, csv (header line, and csv_header) and lines formats. Malformed and oversized records are
# counted as skipped, logged with source and line, and the stream goes on. Refused connections and
# connect timeouts end in backoff with the reason.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CTL="python3 $HERE/connector-ctl.py $RUNTIME_DIR/connector-tcp.sock"
OUT="$TMP/stored.jsonl"
command -v socat >/dev/null || { dp_log "SKIP: socat missing"; exit 77; }

# Line 8 is JSON only to a lax parser (trailing comma): refused, so that clients only ever get JSON.
printf '{"a":1}\n{broken\n\n[1,2]\n"text"\n{"a":"%s"}\n{"a":3}\n{"a":1,}\n{"b": 2}' "$(head -c 3000 /dev/zero | tr '\0' x)" >"$TMP/data.jsonl"
printf 'name,city,note\r\nann,Oslo,"hello, world"\r\nbob,Rome,"two\nlines, ""quoted"""\r\nshort,row\r\nlong,row,with,extra\r\ncid,Paris,\r\n' >"$TMP/data.csv"
printf '1,Oslo\n2,Rome\n' >"$TMP/noheader.csv"
printf 'first line\n  second "line"  \n\nlast without newline' >"$TMP/data.txt"

# A socat peer that streams FILE to every connection (and so replays it after a reconnect). Sets
# PORT; not called in a $(...) subshell, so that dp_bg records the PID and the cleanup stops it.
serve_for_connector() {
        PORT=$(dp_free_port)
        dp_bg "socat-$PORT" socat -u "FILE:$1" "TCP-LISTEN:$PORT,reuseaddr,bind=127.0.0.1,fork"
        # No probe connection: socat shares the file's offset between its forks, so a probe
        # would take the data meant for the connector.
        sleep 0.3
}
stored() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r['source'] == sys.argv[2]: print(json.dumps(r['data'], sort_keys=True))" "$OUT" "$1"; }

dp_bg writer python3 "$HERE/connector-fake-writer.py" "$RUNTIME_DIR/writer.sock" "$OUT"
dp_wait_socket "$RUNTIME_DIR/writer.sock"
dp_daemon connector dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-tcp.sock"

serve_for_connector "$TMP/data.jsonl"; P1=$PORT
serve_for_connector "$TMP/data.csv"; P2=$PORT
serve_for_connector "$TMP/noheader.csv"; P3=$PORT
serve_for_connector "$TMP/data.txt"; P4=$PORT
$CTL add j address="127.0.0.1:$P1" format=jsonl max_record_bytes=1024 >/dev/null || dp_fail "add j"
$CTL add c address="127.0.0.1:$P2" format=csv >/dev/null || dp_fail "add c"
$CTL add h address="127.0.0.1:$P3" format=csv csv_header=id,city >/dev/null || dp_fail "add h"
$CTL add l address="127.0.0.1:$P4" format=lines >/dev/null || dp_fail "add l"

# socat with fork replays the file on every connection: wait for the first pass only.
$CTL wait j records '>=' 5 20 >/dev/null || dp_fail "jsonl records"
$CTL wait c records '>=' 4 20 >/dev/null || dp_fail "csv records"
$CTL wait h records '>=' 2 20 >/dev/null || dp_fail "csv_header records"
$CTL wait l records '>=' 4 20 >/dev/null || dp_fail "lines records"

dp_assert_eq '{"a": 1}
[1, 2]
"text"
{"a": 3}
{"b": 2}' "$(stored j | head -n 5)" "jsonl records (malformed and oversized skipped)"
st=$($CTL wait j skipped '>=' 3 5) || dp_fail "jsonl skipped counter"
grep -q "Source j: skipping record at line 2: not valid JSON" "$LOG_DIR/connector.log" || dp_fail "malformed line not logged with its position"
grep -q "Source j: skipping record at line 6: record longer than 1024 bytes" "$LOG_DIR/connector.log" ||
        dp_fail "oversized line not logged with its position"
grep -q "Source j: skipping record at line 8: not valid JSON" "$LOG_DIR/connector.log" ||
        dp_fail "a trailing comma was taken as JSON"

dp_assert_eq '{"city": "Oslo", "name": "ann", "note": "hello, world"}
{"city": "Rome", "name": "bob", "note": "two\nlines, \"quoted\""}
{"city": "row", "name": "short"}
{"city": "Paris", "name": "cid", "note": ""}' "$(stored c | head -n 4)" "csv records (a short row's missing fields absent)"
$CTL wait c skipped '>=' 1 5 >/dev/null || dp_fail "csv row with too many fields not counted"
grep -q "Source c: skipping record at line 6: 4 CSV fields where the header has 3" "$LOG_DIR/connector.log" ||
        dp_fail "a row with more fields than the header was not skipped with its reason"

dp_assert_eq '{"city": "Oslo", "id": "1"}
{"city": "Rome", "id": "2"}' "$(stored h | head -n 2)" "csv_header records"

dp_assert_eq '{"line": "first line"}
{"line": "  second \"line\"  "}
{"line": ""}
{"line": "last without newline"}' "$(stored l | head -n 4)" "lines records"

# Unreachable peer: connection refused is the state's LastError, and the source keeps retrying.
DEAD=$(dp_free_port)
$CTL add dead address="127.0.0.1:$DEAD" format=jsonl >/dev/null || dp_fail "add dead"
st=$($CTL wait dead state == backoff 10) || dp_fail "refused connection not in backoff"
dp_assert_contains "$st" "Connection refused" "LastError of a refused connection"
$CTL wait dead reconnects '>=' 2 20 >/dev/null || dp_fail "no retries"

# A peer that never completes the handshake (its accept queue is full): the connect timeout ends
# the attempt, and the error says so.
FULL=$(dp_free_port)
dp_bg full python3 "$HERE/connector-full-listener.py" "$FULL"
dp_retry 10 grep -q ready "$LOG_DIR/full.log" || dp_fail "full listener did not start"
$CTL add stuck address="127.0.0.1:$FULL" format=jsonl connect_timeout_ms=500 >/dev/null || dp_fail "add stuck"
st=$($CTL wait stuck state == backoff 10) || dp_fail "connect timeout did not put the source in backoff"
dp_assert_contains "$st" "Connection timed out" "LastError of a connect timeout"
