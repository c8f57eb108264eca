#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-source, real-time TCP side (dpipe-source(1)): start-up refusals, subscribe from N, query,
# ping/pong, errors that keep the connection, a line too long, and the connection staying open
# after the last row.
source "$(dirname "$0")/lib.sh"
# A version-manager shim for python3 can cost seconds per start; the system one is enough here.
python3() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else command python3 "$@"; fi; }

CLIENT="$SOURCE_DIR/tests/integration/source-client.py"
command -v dpipe-source >/dev/null || dp_fail "dpipe-source not built"

# --- start-up: refusals with a one-line reason and a non-zero exit ---------------------------------
printf 'id,name\n1,alice\n2,bob,extra\n' >"$TMP/bad.csv"
rc=0; err=$(dpipe-source --file="$TMP/bad.csv" --tcp=127.0.0.1:0 2>&1 >/dev/null) || rc=$?
[ "$rc" != 0 ] || dp_fail "a malformed CSV was accepted"
dp_assert_contains "$err" "$TMP/bad.csv:3:7: record has more fields than the header" "malformed CSV error"
printf '[{"a":1},\n  {"a":2,}\n]\n' >"$TMP/bad.json"
rc=0; err=$(dpipe-source --file="$TMP/bad.json" --tcp=127.0.0.1:0 2>&1 >/dev/null) || rc=$?
[ "$rc" != 0 ] || dp_fail "a malformed JSON file was accepted"
dp_assert_contains "$err" "$TMP/bad.json:2:10:" "malformed JSON error"
rc=0; err=$(dpipe-source --file="$TMP/missing.csv" --tcp=127.0.0.1:0 2>&1 >/dev/null) || rc=$?
[ "$rc" != 0 ] || dp_fail "a missing file was accepted"
dp_assert_contains "$err" "No such file or directory" "missing file error"
rc=0; err=$(dpipe-source --tcp=127.0.0.1:0 2>&1 >/dev/null) || rc=$?
[ "$rc" != 0 ] || dp_fail "no --file accepted"
dp_assert_contains "$(dpipe-source --version)" "dpipe-source " "--version"
dpipe-source --help | grep -q -- '--follow' || dp_fail "--help does not list --follow"

# --- the data: RFC 4180 corner cases -----------------------------------------------------------------
printf '\xef\xbb\xbfid,name,city\r\n0,alice,"Paris, France"\r\n1,bob,"say ""hi"""\r\n2,"multi\nline",Oslo\r\n3,dave\r\n4,eve,Rome\r\n' >"$TMP/data.csv"
PORT=$(dp_free_port)
dp_daemon source dpipe-source --file="$TMP/data.csv" --tcp="127.0.0.1:$PORT" --heartbeat-ms=2000
dp_wait_port 127.0.0.1 "$PORT"

# Port in use: refused with the reason.
rc=0; err=$(dpipe-source --file="$TMP/data.csv" --tcp="127.0.0.1:$PORT" 2>&1 >/dev/null) || rc=$?
[ "$rc" != 0 ] || dp_fail "a second server on a busy port started"
dp_assert_contains "$err" "Address already in use" "port in use error"

# subscribe (from 0): every row, in order, with seq from 0, exact lines.
out=$(python3 "$CLIENT" "$PORT" --send subscribe --lines 6)
dp_assert_eq '{"op":"ok","from":0}' "$(sed -n 1p <<<"$out")" "subscribe reply"
dp_assert_eq '{"op":"record","seq":0,"data":{"id":"0","name":"alice","city":"Paris, France"}}' "$(sed -n 2p <<<"$out")" "row 0"
dp_assert_eq '{"op":"record","seq":1,"data":{"id":"1","name":"bob","city":"say \"hi\""}}' "$(sed -n 3p <<<"$out")" "row 1"
dp_assert_eq '{"op":"record","seq":2,"data":{"id":"2","name":"multi\nline","city":"Oslo"}}' "$(sed -n 4p <<<"$out")" "row 2"
dp_assert_eq '{"op":"record","seq":3,"data":{"id":"3","name":"dave"}}' "$(sed -n 5p <<<"$out")" "ragged row 3"
dp_assert_eq '{"op":"record","seq":4,"data":{"id":"4","name":"eve","city":"Rome"}}' "$(sed -n 6p <<<"$out")" "row 4"

# subscribe N starts at seq N inclusive; JSON form too.
out=$(python3 "$CLIENT" "$PORT" --send 'subscribe 3' --lines 3)
dp_assert_eq "3 4" "$(grep -o '"seq":[0-9]*' <<<"$out" | cut -d: -f2 | xargs)" "subscribe 3"
out=$(python3 "$CLIENT" "$PORT" --send '{"op":"subscribe","from":4,"id":"s1"}' --lines 2)
dp_assert_eq '{"op":"ok","from":4,"id":"s1"}' "$(sed -n 1p <<<"$out")" "JSON subscribe reply echoes id"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"seq":4,' "JSON subscribe from 4"

# After the last row the connection stays open and still answers ping.
out=$(python3 "$CLIENT" "$PORT" --send 'subscribe 4' --lines 2 --stay 1)
dp_assert_eq "#OPEN" "$(tail -n1 <<<"$out")" "connection after the last row"
out=$(python3 "$CLIENT" "$PORT" --send 'subscribe 5' --send ping --send '{"op":"ping","id":9}' --lines 3)
dp_assert_eq $'{"op":"ok","from":5}\n{"op":"pong"}\n{"op":"pong","id":9}' "$out" "ping after the end"

# query: matching rows with their seq, then end; limit; inline form; several queries in a row.
out=$(python3 "$CLIENT" "$PORT" --send '{"op":"query","where":{"name":"bob"},"id":1}' --lines 2)
dp_assert_eq $'{"op":"record","seq":1,"data":{"id":"1","name":"bob","city":"say \\"hi\\""}}\n{"op":"end","count":1,"id":1}' "$out" "query by name"
out=$(python3 "$CLIENT" "$PORT" --send '{"op":"query","where":{},"limit":2}' --send 'query city=Rome' --send 'query --limit=1' --lines 7)
dp_assert_eq "0 1 end 4 end 0 end" "$(sed -e 's/.*"seq":\([0-9]*\).*/\1/' -e 's/.*"op":"end".*/end/' <<<"$out" | xargs)" "query limit and order"
out=$(python3 "$CLIENT" "$PORT" --send '{"op":"query","where":{"id":3,"name":"dave"}}' --lines 2)
dp_assert_contains "$out" '"seq":3' "query with a number against a CSV string"
out=$(python3 "$CLIENT" "$PORT" --send '{"op":"query","where":{"name":"nobody"}}' --lines 1)
dp_assert_eq '{"op":"end","count":0}' "$out" "query without match"

# Errors keep the connection.
out=$(python3 "$CLIENT" "$PORT" --send 'frobnicate' --send '{"op":' --send '{"op":"query","where":[1]}' --send '{"op":"subscribe","from":-1}' --send ping --lines 5)
dp_assert_contains "$(sed -n 1p <<<"$out")" '"code":"unknown_op"' "unknown command"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"code":"bad_request"' "bad JSON"
dp_assert_contains "$(sed -n 3p <<<"$out")" '"code":"invalid_argument"' "bad where"
dp_assert_contains "$(sed -n 4p <<<"$out")" '"code":"invalid_argument"' "bad from"
dp_assert_eq '{"op":"pong"}' "$(sed -n 5p <<<"$out")" "still answering after errors"
out=$(python3 "$CLIENT" "$PORT" --send hello --lines 1)
dp_assert_contains "$out" '"op":"hello","version":1,"server":"dpipe-source ' "hello"

# A line over 1 MiB: error too_long, then the server closes.
{ head -c 1100000 /dev/zero | tr '\0' 'x'; echo; } >"$TMP/long-line"
out=$(python3 "$CLIENT" "$PORT" --send-file "$TMP/long-line")
dp_assert_contains "$(sed -n 1p <<<"$out")" '"code":"too_long"' "line too long"
dp_assert_eq "#EOF" "$(tail -n1 <<<"$out")" "closed after too_long"

# quit: bye, then closed.
out=$(python3 "$CLIENT" "$PORT" --send quit)
dp_assert_eq $'{"op":"bye"}\n#EOF' "$out" "quit"
