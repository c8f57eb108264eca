#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-client --reconnect (issue #7): it resumes right after the last record it printed, with no
# gap and no repeat, across a restart of the real dpiped and across a connection cut in the middle
# of a stream by a stand-in server; and a reader of its output that stalls for longer than dpiped's
# client timeout does not get it dropped (it keeps answering pings while its output waits).
source "$(dirname "$0")/lib.sh"

source "$(dirname "$0")/client-setup.sh"


# --- a subscriber that reconnects, started before any record exists ----------------------------
dp_bg reconnecting bash -c 'exec dpipe-client --reconnect --window=50 --connect="$1" subscribe earliest >"$2" 2>"$2.err"' \
        _ "$ADDR" "$TMP/reconnect.jsonl"
dp_expect_exit 0 dpipectl add-source alpha --type=tcp --address="127.0.0.1:$PORT_ALPHA"
wait_lines "$TMP/reconnect.jsonl" "$N_ALPHA"
check_stream "$TMP/reconnect.jsonl" "$N_ALPHA"

# --- --reconnect across a restart of dpiped ---------------------------------------------------
dp_bg ending bash -c 'dpipe-client --connect="$1" subscribe earliest >"$2" 2>"$2.err"; echo $? >"$2.rc"' _ "$ADDR" "$TMP/ending.jsonl"
wait_lines "$TMP/ending.jsonl" "$N_ALPHA"
dp_kill_daemon dpiped TERM
# A plain subscriber ends with 0 when the server closes the stream.
dp_retry 10 test -s "$TMP/ending.jsonl.rc" || dp_fail "dpipe-client did not exit when dpiped stopped"
dp_assert_eq 0 "$(cat "$TMP/ending.jsonl.rc")" "exit status of a subscriber whose server went away"
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="$ADDR" --heartbeat-ms=300
dp_wait_bus_name org.dpipe.Pipeline1
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
dp_expect_exit 0 dpipectl add-source beta --type=tcp --address="127.0.0.1:$PORT_BETA"
wait_lines "$TMP/reconnect.jsonl" $((N_ALPHA + N_BETA)) 30
sleep 1
check_stream "$TMP/reconnect.jsonl" $((N_ALPHA + N_BETA))
dp_assert_contains "$(cat "$TMP/reconnect.jsonl.err")" "Reconnecting" "--reconnect message"

# --- a reader that stalls for longer than the server's client timeout ----------------------------
# 800 KB of records do not fit in a pipe: the client must keep answering pings while its output
# waits (and ack only what was written), instead of blocking and being dropped by dpiped.
python3 -c 'import sys
with open(sys.argv[1], "w") as f:
    f.write("id,blob\n")
    for i in range(400):
        f.write("%d,%s\n" % (i, "x" * 2000))' "$TMP/gamma.csv"
N_GAMMA=400
PORT_GAMMA=$(dp_free_port)
dp_daemon source-gamma dpipe-source --file="$TMP/gamma.csv" --tcp="127.0.0.1:$PORT_GAMMA"
dp_wait_port 127.0.0.1 "$PORT_GAMMA"
dp_expect_exit 0 dpipectl add-source gamma --type=tcp --address="127.0.0.1:$PORT_GAMMA"
N_ALL=$((N_ALPHA + N_BETA + N_GAMMA))
wait_lines "$TMP/reconnect.jsonl" "$N_ALL" 30
dp_bg slow bash -c 'dpipe-client --connect="$1" subscribe earliest 2>"$2.err" | { sleep 3; cat; } >"$2"; echo "${PIPESTATUS[0]}" >"$2.rc"' \
        _ "$ADDR" "$TMP/slow.jsonl"
wait_lines "$TMP/slow.jsonl" "$N_ALL" 30
check_stream "$TMP/slow.jsonl" "$N_ALL"
sleep 1
# Still subscribed: dpiped did not drop it as silent.
[ ! -e "$TMP/slow.jsonl.rc" ] || dp_fail "the client of a stalled reader ended (status $(cat "$TMP/slow.jsonl.rc")): $(cat "$TMP/slow.jsonl.err")"
! grep -q "sent nothing for" "$LOG_DIR/dpiped.log" || dp_fail "dpiped timed a client out: $(grep "sent nothing for" "$LOG_DIR/dpiped.log")"

# --- --reconnect across a connection cut in mid-stream (stand-in server) -----------------------
FAKE_PORT=$(dp_free_port)
dp_bg fake python3 "$HERE/dpipe-client-fake-server.py" --port="$FAKE_PORT" --records=5000 --drop-after=1777 \
        --heartbeat-ms=300 --log="$TMP/fake-requests.jsonl"
dp_wait_port 127.0.0.1 "$FAKE_PORT" 20
dp_bg cut bash -c 'exec dpipe-client --reconnect --window=100 --connect="$1" subscribe earliest >"$2" 2>"$2.err"' \
        _ "127.0.0.1:$FAKE_PORT" "$TMP/cut.jsonl"
wait_lines "$TMP/cut.jsonl" 5000 30
sleep 0.5
python3 - "$TMP/cut.jsonl" "$TMP/fake-requests.jsonl" <<'PY' || dp_fail "stream across a cut connection (see above)"
import json, sys
offs = [json.loads(l)["offset"] for l in open(sys.argv[1])]
assert offs == list(range(5000)), "gap or repeat: %d records, first wrong at %s" % (
    len(offs), next((i for i, o in enumerate(offs) if o != i), None))
reqs = [json.loads(l) for l in open(sys.argv[2])]
subs = [r for r in reqs if r["op"] == "subscribe"]
assert len(subs) == 2 and subs[0]["from"] == "earliest", subs
# The second subscription starts right after the last record the client acked.
acks = [r["offset"] for r in reqs if r["op"] == "ack"]
assert subs[1]["from"] == max(a for a in acks if a < subs[1]["from"]) + 1, (subs, acks[:50])
assert subs[1]["window"] == 100, subs
PY
