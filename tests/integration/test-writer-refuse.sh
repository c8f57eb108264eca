#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-writer stores only records that are one JSON value on one line, whoever writes the batch
# (a buggy connector, or anyone who can reach writer.sock): dpiped copies the bytes into its
# clients' lines as they are. A batch with one bad record is refused as a whole (nothing of it
# stored) with a "refused" control message and an ack carrying the error and the record's index;
# the writer logs it once and the connection goes on. A seq of UINT64_MAX is refused the same way.
# What a subscribed client sees: the good records, and no forged line.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

PROTO="python3 $SOURCE_DIR/tests/integration/writer-proto.py"
LINES="python3 $SOURCE_DIR/tests/integration/edge-lines.py"
SOCK="$RUNTIME_DIR/writer.sock"

dp_start_bus
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$SOCK"
dp_dpiped
dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"

ack() { # ack ID STORED ERROR RECORD: the JSON line writer-proto.py prints for an ack
        printf '{"batch_id": %s, "first_offset": %s, "stored": %s, "duplicates": 0, "error": %s, "record": %s}' \
                "$1" "$2" "$3" "$4" "$5"
}

out=$($PROTO "$SOCK" records demo 1 '1={"a":1}')
dp_assert_eq "$(ack 1 0 1 0 0)" "$out" "a good batch"

# A record whose data holds a line break and, after it, a line that looks like a record of dpiped:
# refused, with the batch and the record named; the next batch on the same connection is stored.
forged='3={"b":1}\n{"op":"record","offset":999,"source":"evil","ts_us":0,"data":{"forged":true}}'
out=$($PROTO "$SOCK" records demo 2 '2={"a":2}' "$forged" -- 3 '4={"a":4}')
refusal=$(sed -n 1p <<<"$out")
dp_assert_contains "$refusal" '"op":"refused","batch_id":2,"source":"demo","record":1,"seq":3,"error":"data"' \
        "refused control message"
dp_assert_contains "$refusal" 'record 1 (seq 3) is not one JSON value on one line: a line break at byte 8' \
        "refusal message"
dp_assert_eq "$(ack 2 1 0 -74 1)" "$(sed -n 2p <<<"$out")" "ack of the refused batch (-EBADMSG, record 1)"
dp_assert_eq "$(ack 3 1 1 0 0)" "$(sed -n 3p <<<"$out")" "the connection goes on"

# Every other kind of record that is not one strict JSON value on one line.
check_refused() { # check_refused ID DATA REASON
        local out
        out=$($PROTO "$SOCK" records demo "$1" "$((1000 + $1))=$2")
        dp_assert_contains "$(sed -n 1p <<<"$out")" "$3" "refusal of $2"
        dp_assert_contains "$(sed -n 2p <<<"$out")" '"stored": 0, "duplicates": 0, "error": -74, "record": 0' "ack of $2"
}
check_refused 10 '{"n":NaN}' 'NaN or Infinity, which are not JSON numbers at byte 6'
check_refused 11 '[1,-Infinity]' 'NaN or Infinity'
check_refused 12 '{"s":"\xff"}' 'invalid UTF-8 at byte 7'
check_refused 13 '{"s":"a\x1b[31mb"}' 'a raw control character at byte 8'
check_refused 14 '{"a":\n1}' 'a line break at byte 6'
check_refused 15 '{"a":1}\r' 'a line break at byte 8'
check_refused 16 '' 'it ends in the middle of a value'

# A seq nothing can follow: refused too (-ERANGE), and the source's last seq stays followable.
out=$($PROTO "$SOCK" records demo 20 '5={"a":5}' '18446744073709551615={"a":6}')
dp_assert_contains "$(sed -n 1p <<<"$out")" '"record":1,"seq":18446744073709551615,"error":"seq"' "refused seq"
dp_assert_contains "$(sed -n 1p <<<"$out")" 'which no record can follow' "refused seq message"
dp_assert_eq "$(ack 20 2 0 -34 1)" "$(sed -n 2p <<<"$out")" "ack of the seq refusal (-ERANGE)"
dp_assert_eq '{"op":"hello","source":"demo","last_seq":4}' "$($PROTO "$SOCK" hello demo)" "last_seq after refusals"
out=$($PROTO "$SOCK" records demo 21 '5={"a":5}')
dp_assert_eq "$(ack 21 2 1 0 0)" "$out" "the source goes on after the refusals"

# The log names each refused batch once; the status counts them.
dp_assert_eq 1 "$(grep -c 'Refused batch 2 of source demo' "$LOG_DIR/writer.log")" "one log line per refused batch"
dp_assert_contains "$($PROTO "$SOCK" status)" '"batches_refused":9' "status counts refused batches"

# The client: exactly the good records, strict JSON on every line, nothing forged.
dp_retry 10 bash -c '[ "$($1 count "$2" demo)" = 3 ]' _ "$LINES" "$TMP/client.jsonl" ||
        dp_fail "the client did not get the 3 good records: $(cat "$TMP/client.jsonl")"
sleep 0.5
$LINES strict "$TMP/client.jsonl" || dp_fail "a client line is not strict JSON"
dp_assert_eq '{"a":1}
{"a":4}
{"a":5}' "$($LINES data "$TMP/client.jsonl" demo)" "records the client got"
if grep -q forged "$TMP/client.jsonl"; then
        dp_fail "a forged line reached the client: $(grep forged "$TMP/client.jsonl")"
fi
dp_log "OK"
