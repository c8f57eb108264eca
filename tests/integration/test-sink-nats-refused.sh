#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-sink-nats when the stream refuses what it publishes, on a real nats-server: the sink reads
# the stream's answer itself (nats-link.c), so each refusal must reach the user as what the server
# said. A stream that does not take the sink's subject ("no JetStream stream takes subject ..."),
# and one whose max_msg_size is below the records (the server's own description and its JetStream
# error code): the sink backs off with that error, confirms nothing, the daemon keeps running, and
# a third sink in the same daemon delivers every record exactly once.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nats-cluster.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-sink-nats; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=200
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"

python3 -c "
import json
for i in range($N): print(json.dumps({'i': i, 'pad': 'z' * 80}))" >"$TMP/rows.jsonl"

nats_start_cluster 1
nats_js add-stream OTHER 'other.>' 1 || dp_fail "cannot create stream OTHER"
nats_js add-stream SMALL 'small.>' 1 '' max_msg_size=64 || dp_fail "cannot create stream SMALL"
nats_js add-stream GOOD 'good.>' 1 || dp_fail "cannot create stream GOOD"
dp_start_bus
dp_start_pipeline
PORT=$(dp_free_port)
dp_bg source dpipe-source --file="$TMP/rows.jsonl" --tcp="127.0.0.1:$PORT"
dp_wait_port 127.0.0.1 "$PORT"
out=$(dpipectl add-source demo --type=tcp --address="127.0.0.1:$PORT" 2>&1) || dp_fail "add-source: $out"

if [ -S "$RUNTIME_DIR/client.sock" ]; then CONNECT="$RUNTIME_DIR/client.sock"; else CONNECT="127.0.0.1:$DPIPED_PORT"; fi
dp_daemon sink dpipe-sink-nats --runtime-dir="$RUNTIME_DIR" --connect="$CONNECT" --pipeline-id=pipeR
SINK_PID=${DP_PIDS[sink]}
dp_wait_socket "$RUNTIME_DIR/sink-nats.sock"
SOCK="$RUNTIME_DIR/sink-nats.sock"

# refused NAME TEXT OPTIONS...: the sink backs off with TEXT in its error and has confirmed nothing.
refused() {
        local name=$1 text=$2 state
        shift 2
        "$CTL" "$SOCK" add "$name" address="$NATS_URLS" replicas=0 "$@" >/dev/null || dp_fail "add $name was refused"
        state=$("$CTL" "$SOCK" wait "$name" state == backoff 30) || dp_fail "$name did not back off: $state"
        dp_assert_contains "$state" "$text" "the error of $name"
        python3 -c "import json,sys; m=json.loads(sys.argv[1]); assert m.get('records_sent', 0) == 0, m" "$state" ||
                dp_fail "$name confirmed records the stream refused"
        kill -0 "$SINK_PID" || dp_fail "the sink daemon died"
}
refused nostream "no JetStream stream takes subject dpipe.pipeR." stream=OTHER
refused toolarge "message size exceeds maximum allowed (JetStream error 10054)" stream=SMALL \
        subject='small.{pipeline}.{source}'

"$CTL" "$SOCK" add ok address="$NATS_URLS" replicas=0 stream=GOOD subject='good.{pipeline}.{source}' >/dev/null ||
        dp_fail "add ok was refused"
"$CTL" "$SOCK" wait ok confirmed_offset '>=' $((N - 1)) 60 >/dev/null || dp_fail "the good sink did not deliver $N records"
nats_js dump GOOD >"$TMP/good.jsonl" || dp_fail "cannot read stream GOOD"
python3 - "$TMP/good.jsonl" "$N" <<'PY' || dp_fail "stream GOOD is wrong"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
offsets = [int(m['headers']['Dpipe-Offset']) for m in msgs]
assert offsets == list(range(n)), f'{len(offsets)} messages, first offsets {offsets[:5]}'
assert all(m['headers']['Nats-Msg-Id'] == f'pipeR:{o}' for m, o in zip(msgs, offsets))
assert [json.loads(m['data'])['i'] for m in msgs] == list(range(n))
PY
# The refused ones are still backing off with the same errors, not confirming anything.
state=$("$CTL" "$SOCK" wait toolarge state == backoff 30) || dp_fail "toolarge: $state"
dp_assert_contains "$state" "JetStream error 10054" "the error of toolarge later"
kill -0 "$SINK_PID" || dp_fail "the sink daemon died"
dp_log "refusals reported as the server said them; $N records delivered by the good sink"
