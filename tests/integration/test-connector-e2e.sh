#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The tcp connector inside the real pipeline (dpipe-source -> dpipe-connector-tcp -> dpipe-writer ->
# dpiped -> dpipe-client), with every process it talks to failing under it mid-stream: the source
# is killed and restarted, frozen (SIGSTOP: the D-Bus State goes to backoff, then back to active on
# SIGCONT), the writer is SIGKILLed and restarted, the connector itself is SIGKILLed and restarted.
# What the user sees at the end: every CSV row exactly once, in order, at dense offsets.
source "$(dirname "$0")/lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=4000

python3 -c "
print('i,name')
for i in range($N): print('%d,row-%d' % (i, i))" >"$TMP/rows.csv"

state() {
        busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo \
                org.dpipe.Pipeline1.Source "$1" 2>/dev/null
}
wait_state() { # wait_state STATE SECONDS
        dp_retry "$2" bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo org.dpipe.Pipeline1.Source State)" = "s \"$1\"" ]' _ "$1"
}
wait_records() { # wait_records N: until the client printed at least N records
        dp_retry 30 bash -c '[ "$(grep -c "\"op\":\"record\"" "$1")" -ge "$2" ]' _ "$TMP/client.jsonl" "$1" ||
                dp_fail "fewer than $1 records reached the client"
}
start_source() {
        dp_bg "source$1" dpipe-source --file="$TMP/rows.csv" --tcp="127.0.0.1:$PORT" --rate=500
        SOURCE_PID=${DP_OTHER_PIDS[-1]}
        dp_wait_port 127.0.0.1 "$PORT"
}

dp_start_bus
dp_start_pipeline
PORT=$(dp_free_port)
start_source 1
dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"

out=$(dpipectl add-source demo --type=tcp --address="127.0.0.1:$PORT" --option=heartbeat_ms=300 2>&1) ||
        dp_fail "add-source: $out"
wait_state active 10 || dp_fail "State did not become active: $(state State)"

# The source dies and comes back.
wait_records 400
kill -KILL "$SOURCE_PID"
wait_state backoff 10 || dp_fail "State after the source died: $(state State)"
dp_assert_contains "$(state LastError)" "127.0.0.1:$PORT" "LastError names the peer"
start_source 2

# The source freezes (not closed: SIGSTOP), and thaws.
wait_records 1000
kill -STOP "$SOURCE_PID"
wait_state backoff 5 || { kill -CONT "$SOURCE_PID"; dp_fail "frozen source not detected: $(state State)"; }
dp_assert_contains "$(state LastError)" "hung" "LastError of a frozen source"
kill -CONT "$SOURCE_PID"
wait_state active 20 || dp_fail "no recovery after SIGCONT: $(state State)"

# The writer crashes and is restarted.
wait_records 1600
dp_kill_daemon writer KILL
sleep 0.3
dp_daemon writer2 dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"

# The connector crashes and is restarted; dpiped hands it the source again. (Its counters start
# over with it, so check them first: the source died once and froze once.)
wait_records 2400
r=$(state Reconnects)
[[ "$r" =~ ^u\ ([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 2 ] || dp_fail "Reconnects: $r"
dp_kill_daemon connector-tcp KILL
dp_daemon connector-tcp2 dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"

wait_records "$N"
sleep 1 # anything beyond N would be a duplicate
python3 - "$TMP/client.jsonl" "$N" <<'PY' || dp_fail "the client did not get every row exactly once, in order"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"op":"record"' in l]
n = int(sys.argv[2])
names = [r['data']['name'] for r in recs]
offsets = [r['offset'] for r in recs]
want = ['row-%d' % i for i in range(n)]
if names != want:
    bad = next(i for i, (a, b) in enumerate(zip(names + [None] * n, want + [None] * n)) if a != b)
    sys.exit('%d records; first difference at %d: %r, expected %r' % (len(names), bad, names[bad:bad + 3], want[bad:bad + 3]))
assert offsets == list(range(n)), 'offsets are not 0..n-1'
PY
