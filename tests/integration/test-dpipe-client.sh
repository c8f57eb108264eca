#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-client against a running pipeline (issue #7): one-shot commands and their exit codes, every
# record of `subscribe earliest` as one JSON line (and as CSV / a table), the interactive mode on a
# pipe and on a pseudo-terminal (prompt, replies, records, answering the server's pings by itself),
# and a dead server detected by the heartbeat when dpiped is frozen with SIGSTOP.
# --reconnect and slow readers: test-dpipe-client-reconnect.sh.
source "$(dirname "$0")/lib.sh"

source "$(dirname "$0")/client-setup.sh"

# --- one-shot subscribe, started before any record exists -------------------------------------
dpipe-client --connect="$ADDR" subscribe earliest >"$TMP/live.jsonl" 2>"$TMP/live.err" &
LIVE_PID=$!
DP_OTHER_PIDS+=("$LIVE_PID")
dp_expect_exit 0 dpipectl add-source alpha --type=tcp --address="127.0.0.1:$PORT_ALPHA"
wait_lines "$TMP/live.jsonl" "$N_ALPHA"
check_stream "$TMP/live.jsonl" "$N_ALPHA"

# --- one-shot commands ---------------------------------------------------------------------
dp_expect_exit 0 dpipe-client --connect="$ADDR" list
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["op"]=="sources" and [s["name"] for s in o["sources"]]==["alpha"], o' "$out" ||
        dp_fail "list: $out"
dp_expect_exit 0 dpipe-client --connect="$ADDR" --format=table list
[[ "$(printf '%s\n' "$out" | head -n1)" =~ ^NAME\ +TYPE\ +STATE\ +ADDRESS\ +RECORDS$ ]] || dp_fail "list as a table: $out"
[[ "$(printf '%s\n' "$out" | sed -n 2p)" =~ ^alpha\ +tcp\ +[a-z]+\ +127\.0\.0\.1:$PORT_ALPHA\ +[0-9]+$ ]] || dp_fail "list as a table: $out"
dp_expect_exit 0 dpipe-client --connect="$ADDR" ping
dp_assert_eq '{"op":"pong"}' "$out" "ping"
dp_expect_exit 0 dpipe-client --connect="$ADDR" status
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["op"]=="status", o' "$out" || dp_fail "status: $out"
# Changes go over client.sock (root may change there; over TCP a change needs a token).
dp_expect_exit 4 dpipe-client --connect="$RUNTIME_DIR/client.sock" remove "no such"
[ -n "$err" ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || dp_fail "remove of a bad name: stderr '$err'"
dp_assert_contains "$err" 'No source named "no such"' "remove of a bad name"
dp_expect_exit 77 dpipe-client --connect="$ADDR" remove alpha
dp_assert_contains "$err" "needs an admin token" "a change over TCP without a token"
dp_expect_exit 3 dpipe-client --connect=127.0.0.1:1 list
dp_assert_contains "$err" "127.0.0.1:1" "connection refused message"
dp_expect_exit 1 dpipe-client --format=xml list
# Words beyond "subscribe [earliest|latest|OFFSET]" are the server's to judge.
dp_expect_exit 1 dpipe-client --connect="$ADDR" subscribe yesterday
[ -n "$err" ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || dp_fail "subscribe yesterday: stderr '$err'"
dp_expect_exit 0 bash -c 'dpipe-client --connect="$1" list </dev/null' _ "$ADDR"
dp_expect_exit 0 bash -c 'dpipe-client --connect="$1" </dev/null' _ "$ADDR"
dp_assert_eq "" "$out" "interactive mode with nothing on stdin"
dp_expect_exit 1 dpipe-client --bogus
dp_expect_exit 0 dpipe-client --version
[[ "$out" =~ ^dpipe-client\ [0-9] ]] || dp_fail "--version printed '$out'"

# CSV and table output of records.
dp_bg csv bash -c 'exec dpipe-client --connect="$1" --format=csv subscribe earliest >"$2"' _ "$ADDR" "$TMP/records.csv"
dp_bg table bash -c 'exec dpipe-client --connect="$1" --format=table subscribe 5 >"$2"' _ "$ADDR" "$TMP/records.txt"
wait_lines "$TMP/records.csv" $((N_ALPHA + 1))
wait_lines "$TMP/records.txt" $((N_ALPHA - 5 + 1))
python3 - "$TMP/records.csv" <<'PY' || dp_fail "CSV output: $(head -n3 "$TMP/records.csv")"
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
assert rows[0] == ["offset", "source", "ts_us", "id", "name", "note"], rows[0]
assert rows[1][:2] == ["0", "alpha"] and rows[1][3:] == ["0", "name 0", 'comma, and "quotes" 0'], rows[1]
assert [int(r[0]) for r in rows[1:301]] == list(range(300)), "offsets"
PY
head -n1 "$TMP/records.txt" | grep -Eq '^offset +source +time +id +name +note$' || dp_fail "table header: $(head -n2 "$TMP/records.txt")"
sed -n 2p "$TMP/records.txt" | grep -Eq '^5 +alpha +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} +5 +name 5 +comma, and "quotes" 5$' || dp_fail "table row: $(sed -n 2p "$TMP/records.txt")"

# --- interactive mode on a pipe: plain lines, no prompt --------------------------------------
dp_expect_exit 0 bash -c 'printf "ping\n{\"op\":\"ping\",\"id\":7}\nlist\nbogus\n" | dpipe-client --connect="$1"' _ "$ADDR"
python3 - "$out" <<'PY' || dp_fail "interactive on a pipe printed: $out"
import json, sys
msgs = [json.loads(l) for l in sys.argv[1].splitlines()]
assert [m["op"] for m in msgs] == ["pong", "pong", "sources", "error"], msgs
assert msgs[1].get("id") == 7, msgs[1]
assert msgs[3]["code"] == "unknown_op", msgs[3]
PY

# --- interactive mode on a terminal -------------------------------------------------------------
# Idle for 2 s: longer than dpiped's client timeout (3 x 300 ms); only our pongs keep us alive.
python3 "$HERE/dpipe-client-pty.py" "$ADDR" "$N_ALPHA" 2 || dp_fail "interactive session on a terminal"

# --- SIGTERM ends a subscriber with 0 --------------------------------------------------------
kill -TERM "$LIVE_PID"
rc=0
wait "$LIVE_PID" || rc=$?
dp_assert_eq 0 "$rc" "exit status of a subscriber after SIGTERM"
check_stream "$TMP/live.jsonl" "$N_ALPHA"

# --- dead server: freeze dpiped ---------------------------------------------------------------
n_clients=$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager Clients | cut -d' ' -f2)
dp_bg frozen bash -c 'dpipe-client --connect="$1" subscribe latest >/dev/null 2>"$2.err"; echo $? >"$2.rc"' _ "$ADDR" "$TMP/frozen"
# Once dpiped counts it, it is connected (and soon subscribed and idle, receiving pings).
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager Clients | cut -d" " -f2)" -gt "$1" ]' _ "$n_clients" ||
        dp_fail "the client to be frozen out did not connect"
sleep 0.5
kill -STOP "${DP_PIDS[dpiped]}"
dp_retry 10 test -s "$TMP/frozen.rc" || { kill -CONT "${DP_PIDS[dpiped]}"; dp_fail "dpipe-client did not notice a frozen dpiped"; }
kill -CONT "${DP_PIDS[dpiped]}"
rc=$(cat "$TMP/frozen.rc")
[ "$rc" != 0 ] || dp_fail "dpipe-client exited 0 after the server froze"
dp_assert_contains "$(cat "$TMP/frozen.err")" "not responding" "dead server message"
