#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-connector-tcp against a dpipe-protocol source (dpipe-source when built, else the stand-in)
# and the writer side of the protocol: every row arrives once, in seq order, across a source killed
# and restarted mid-stream, a source frozen with SIGSTOP (backoff within the heartbeat bound, then
# recovery on SIGCONT), and a writer killed and restarted mid-stream.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CTL="python3 $HERE/connector-ctl.py $RUNTIME_DIR/connector-tcp.sock"
OUT="$TMP/stored.jsonl"
N=3000

start_writer() {
        dp_bg writer python3 "$HERE/connector-fake-writer.py" "$RUNTIME_DIR/writer.sock" "$OUT"
        WRITER_PID=${DP_OTHER_PIDS[-1]}
        dp_wait_socket "$RUNTIME_DIR/writer.sock"
}

# The data: N rows i,name. dpipe-source serves them with seq 0..N-1.
python3 -c "
print('i,name')
for i in range($N): print('%d,row-%d' % (i, i))" >"$TMP/rows.csv"
PORT=$(dp_free_port)
start_source() {
        if [ -x "$BUILD_DIR/daemons/demo-source/dpipe-source" ]; then
                dp_bg "source$1" dpipe-source --file="$TMP/rows.csv" --tcp="127.0.0.1:$PORT" --rate=400
        else
                dp_bg "source$1" python3 "$HERE/connector-fake-source.py" "$PORT" "$N" 400
        fi
        SOURCE_PID=${DP_OTHER_PIDS[-1]}
        dp_wait_port 127.0.0.1 "$PORT"
}

start_writer
start_source 1
dp_daemon connector dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-tcp.sock"

dpipe-connector-tcp --version | grep -q "^dpipe-connector-tcp " || dp_fail "--version"
dpipe-connector-tcp --help | grep -q "heartbeat_ms" || dp_fail "--help does not list the options"

# A bad definition is refused with a reason and leaves nothing behind.
reply=$($CTL add broken address=nowhere format=dpipe || true)
dp_assert_contains "$reply" '"op": "error"' "bad address refused"
dp_assert_contains "$reply" "invalid address" "error names the problem"

$CTL add demo address="127.0.0.1:$PORT" heartbeat_ms=300 >/dev/null || dp_fail "add demo"
$CTL wait demo state == active 10 >/dev/null || dp_fail "demo did not become active"

# 1. Kill the source mid-stream and bring it back: the connector resubscribes after the last seq.
$CTL wait demo records '>=' 500 20 >/dev/null || dp_fail "records do not flow"
kill -KILL "$SOURCE_PID"
$CTL wait demo state == backoff 10 >/dev/null || dp_fail "no backoff after the source died"
start_source 2

# 2. Freeze the source: a hung peer is noticed within the heartbeat bound (3 x 300 ms + backoff).
$CTL wait demo records '>=' 1200 20 >/dev/null || dp_fail "records do not flow after the source restart"
kill -STOP "$SOURCE_PID"
st=$($CTL wait demo state == backoff 5) || { kill -CONT "$SOURCE_PID"; dp_fail "frozen source not detected"; }
dp_assert_contains "$st" "peer hung" "LastError of a frozen source"
kill -CONT "$SOURCE_PID"
$CTL wait demo state == active 20 >/dev/null || dp_fail "no recovery after SIGCONT"

# 3. Kill the writer mid-stream and restart it: unacked batches are sent again, nothing is lost.
$CTL wait demo records '>=' 1800 20 >/dev/null || dp_fail "records do not flow after SIGCONT"
kill -KILL "$WRITER_PID"
sleep 0.5
start_writer

$CTL wait demo next_seq == "$N" 30 >/dev/null || dp_fail "not all rows arrived"
# The writer has acked everything once its output holds the last seq.
dp_retry 10 grep -q "\"seq\": $((N - 1)),"  "$OUT" || dp_fail "last row not stored"

python3 - "$OUT" "$N" <<'PY' || dp_fail "stored records are not exactly rows 0..N-1 in order"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
seqs = [r['seq'] for r in rows if r['source'] == 'demo']
assert seqs == list(range(n)), 'seqs: %d records, first gap/dup near %s' % (len(seqs), next((i for i, s in enumerate(seqs) if s != i), None))
assert all(r['data']['name'] == 'row-%d' % r['seq'] for r in rows), 'data does not match its seq'
PY

# The connector resubscribed exactly after what it had: the writer never saw a duplicate.
if grep -h duplicate "$LOG_DIR"/writer.log; then
        dp_fail "the connector sent records twice"
fi
grep -h "^subscribe" "$LOG_DIR"/source*.log >&2 || true

# Counters reach dpiped's view: records, reconnects.
st=$($CTL wait demo records '>=' "$N" 5) || dp_fail "records counter"
python3 -c "import json,sys; s=json.loads(sys.argv[1]); assert s['reconnects'] >= 2, s" "$st" || dp_fail "reconnects not counted"

# Pause stops ingestion, remove forgets the source.
$CTL pause demo >/dev/null || dp_fail "pause"
$CTL wait demo state == paused 5 >/dev/null || dp_fail "not paused"
$CTL remove demo >/dev/null || dp_fail "remove"
reply=$($CTL list)
[[ "$reply" != *'"demo"'* ]] || dp_fail "removed source still listed"

# Socket activation (as dpipe-connector-tcp.socket does it) and --idle-exit-sec: started by the
# first connection on the passed socket, it exits 0 once nobody is connected and no source is left.
mkdir -p "$TMP/act"
dp_bg activate systemd-socket-activate -l "$TMP/act/connector-tcp.sock" -E DPIPE_LOG_LEVEL \
        dpipe-connector-tcp --runtime-dir="$TMP/act" --state-dir="$STATE_DIR" --idle-exit-sec=1
ACT_PID=${DP_OTHER_PIDS[-1]}
dp_wait_socket "$TMP/act/connector-tcp.sock"
reply=$(python3 "$HERE/connector-ctl.py" "$TMP/act/connector-tcp.sock" list) || dp_fail "socket-activated connector did not answer"
dp_assert_contains "$reply" '"sources": []' "socket-activated connector's list"
dp_wait_exit "$ACT_PID" 10 || dp_fail "connector did not exit after --idle-exit-sec"
wait "$ACT_PID" && rc=0 || rc=$?
dp_assert_eq 0 "$rc" "exit status after idle exit"
grep -q "socket-activated" "$LOG_DIR/activate.log" || dp_fail "connector did not use the passed socket"
