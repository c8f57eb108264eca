#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-source --follow and SIGHUP: appended rows reach a live subscriber (a row written in two
# pieces arrives once, whole), JSON Lines too; SIGHUP with a broken file keeps the old data, with
# a good file replaces it.
source "$(dirname "$0")/lib.sh"
# A version-manager shim for python3 can cost seconds per start; the system one is enough here.
python3() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else command python3 "$@"; fi; }

CLIENT="$SOURCE_DIR/tests/integration/source-client.py"

printf 'id,v\n0,a\n1,b\n' >"$TMP/data.csv"
PORT=$(dp_free_port)
HPORT=$(dp_free_port)
dp_daemon source dpipe-source --file="$TMP/data.csv" --tcp="127.0.0.1:$PORT" --http="127.0.0.1:$HPORT" --follow
dp_wait_port 127.0.0.1 "$PORT"
dp_wait_port 127.0.0.1 "$HPORT"
total() { curl -sf "http://127.0.0.1:$HPORT/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rows"])'; }

# A live subscriber gets the rows already there, then the appended ones.
python3 "$CLIENT" "$PORT" --send subscribe --lines 6 --timeout 20 --pong >"$TMP/live.out" &
LIVE=$!
dp_retry 10 grep -q '"seq":1' "$TMP/live.out" || dp_fail "subscriber did not get the first rows"
printf '2,c\n3,"multi\nline' >>"$TMP/data.csv"
dp_retry 10 grep -q '"seq":2' "$TMP/live.out" || dp_fail "appended row 2 not pushed"
sleep 0.3
grep -q '"seq":3' "$TMP/live.out" && dp_fail "a row cut short was pushed before its end"
printf '"\n4,e\n' >>"$TMP/data.csv"
wait "$LIVE" || true
out=$(cat "$TMP/live.out")
dp_assert_eq '{"op":"record","seq":3,"data":{"id":"3","v":"multi\nline"}}' "$(sed -n 5p <<<"$out")" "row written in two pieces"
dp_assert_eq '{"op":"record","seq":4,"data":{"id":"4","v":"e"}}' "$(sed -n 6p <<<"$out")" "row 4"
dp_assert_eq 5 "$(total)" "rows after appends"

# Malformed appended data is refused (logged), the rows loaded so far stay served.
printf '5,f,extra\n' >>"$TMP/data.csv"
dp_retry 10 grep -q "data.csv:8:5: record has more fields" "$LOG_DIR/source.log" || dp_fail "malformed append not reported"
dp_assert_eq 5 "$(total)" "rows after a malformed append"

# SIGHUP with a broken file: the old data stays.
printf 'id,v\n0,"broken\n' >"$TMP/data.csv.new"
mv "$TMP/data.csv.new" "$TMP/data.csv"
# (under --follow the replacement itself triggers a reload attempt: it must fail the same way)
kill -HUP "${DP_PIDS[source]}"
dp_retry 10 grep -q "data.csv:2:3: unterminated quoted field" "$LOG_DIR/source.log" || dp_fail "broken file not reported"
dp_retry 10 grep -q "still serving the previous 5 rows" "$LOG_DIR/source.log" || dp_fail "no keep-old-data notice"
dp_assert_eq 5 "$(total)" "rows after a failed reload"
dp_assert_eq '{"id":"4","v":"e"}' "$(curl -sf "http://127.0.0.1:$HPORT/records/4")" "old data served"

# SIGHUP with a good file: replaced.
printf 'id,v\n10,x\n11,y\n12,z\n' >"$TMP/data.csv.new"
mv "$TMP/data.csv.new" "$TMP/data.csv"
kill -HUP "${DP_PIDS[source]}"
dp_retry 10 bash -c "[ \"\$(curl -sf http://127.0.0.1:$HPORT/records/2)\" = '{\"id\":\"12\",\"v\":\"z\"}' ]" || dp_fail "reload did not replace the data"
dp_assert_eq 3 "$(total)" "rows after reload"

# JSON Lines follow.
printf '{"n":0}\n' >"$TMP/data.jsonl"
PORT2=$(dp_free_port)
dp_daemon source2 dpipe-source --file="$TMP/data.jsonl" --tcp="127.0.0.1:$PORT2" --follow
dp_wait_port 127.0.0.1 "$PORT2"
python3 "$CLIENT" "$PORT2" --send 'subscribe latest' --lines 3 --timeout 20 >"$TMP/jl.out" &
LIVE=$!
dp_retry 10 grep -q '"op":"ok","from":1' "$TMP/jl.out" || dp_fail "subscribe latest"
printf '{"n":1}\n{"n":' >>"$TMP/data.jsonl"
sleep 0.2
printf '2}\n' >>"$TMP/data.jsonl"
wait "$LIVE" || true
dp_assert_eq $'{"op":"ok","from":1}\n{"op":"record","seq":1,"data":{"n":1}}\n{"op":"record","seq":2,"data":{"n":2}}' "$(cat "$TMP/jl.out")" "JSON Lines follow"
