#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-sink-nats against a real 3-node JetStream cluster (R3 stream), in the real pipeline: the
# stream leader is SIGKILLed mid-flow, then the sink, then dpiped, then two of the three servers are
# stopped for 10 s and brought back. Every record arrives in the stream exactly once, in the
# pipeline's order, with its headers. The source loops over its rows until the test pauses it, so
# that every fault hits a running flow however slow the machine is. The stream's duplicate window is 1 s, so a sink that relied on
# it instead of looking up where the stream stands would show duplicates.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nats-cluster.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-sink-nats; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=5000 # rows in the source's file; the flow loops over them
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"

python3 -c "
import json
for i in range($N): print(json.dumps({'i': i, 'pad': 'y' * (i % 40)}))" >"$TMP/rows.jsonl"

nats_start_cluster 3
nats_js add-stream DPIPE 'dpipe.>' 3 1 || dp_fail "cannot create the stream"
dp_start_bus
dp_start_pipeline
PORT=$(dp_free_port)
dp_bg source dpipe-source --file="$TMP/rows.jsonl" --tcp="127.0.0.1:$PORT" --rate=1000 --loop
dp_wait_port 127.0.0.1 "$PORT"
out=$(dpipectl add-source demo --type=tcp --address="127.0.0.1:$PORT" 2>&1) || dp_fail "add-source: $out"

if [ -S "$RUNTIME_DIR/client.sock" ]; then CONNECT="$RUNTIME_DIR/client.sock"; else CONNECT="127.0.0.1:$DPIPED_PORT"; fi
SINK_STARTS=0
start_sink() {
        SINK_STARTS=$((SINK_STARTS + 1))
        [ -e "$LOG_DIR/sink.log" ] && mv "$LOG_DIR/sink.log" "$LOG_DIR/sink-$((SINK_STARTS - 1)).log"
        # The killed sink left its socket behind: waiting for the file alone would race the new one.
        rm -f "$RUNTIME_DIR/sink-nats.sock"
        dp_daemon sink dpipe-sink-nats --runtime-dir="$RUNTIME_DIR" --connect="$CONNECT" --pipeline-id=pipeA
        dp_wait_socket "$RUNTIME_DIR/sink-nats.sock"
        "$CTL" "$RUNTIME_DIR/sink-nats.sock" add js address="$NATS_URLS" ack_timeout_ms=3000 >/dev/null ||
                dp_fail "add was refused"
}
stored() { nats_js info DPIPE | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])'; }
# wait_stored N: until the stream holds N messages (the flow runs on meanwhile: the fault that follows
# hits it mid-flow).
wait_stored() {
        local i n=0
        for ((i = 0; i < 600; i++)); do
                n=$(stored 2>/dev/null || echo 0)
                [ "$n" -ge "$1" ] && break
                sleep 0.1
        done
        [ "$n" -ge "$1" ] || dp_fail "fewer than $1 messages reached the stream (have $n)"
}

start_sink
# Bad definitions are refused with a clear error; the daemon keeps running.
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-nats.sock" add bad address=http://127.0.0.1:1
dp_assert_contains "$out" "nats://HOST:PORT" "a bad address"
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-nats.sock" add bad address="$NATS_URLS" subject=events.x
dp_assert_contains "$out" "{pipeline}" "a subject without the pipeline"
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-nats.sock" add bad address="$NATS_URLS" subject='a.{source}.{pipeline}'
dp_assert_contains "$out" "last token" "{source} not last"

# The stream leader dies mid-flow.
wait_stored 2000
leader=$(nats_leader DPIPE)
dp_log "SIGKILL of the stream leader n$leader"
nats_kill "$leader" KILL
wait_stored 4000
nats_start_server "$leader"

# The sink dies mid-flow, then dpiped (its durable offsets lag a second behind).
wait_stored 7000
dp_kill_daemon sink KILL
start_sink
wait_stored 10000
dp_kill_daemon dpiped KILL
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="127.0.0.1:$DPIPED_PORT"
dp_wait_port 127.0.0.1 "$DPIPED_PORT"

# Two of three servers away for 10 s: no quorum, nothing is stored, the sink waits and comes back.
wait_stored 13000
leader=$(nats_current DPIPE)
others=()
for i in 0 1 2; do [ "$i" != "$leader" ] && others+=("$i"); done
dp_log "stopping n${others[0]} and n${others[1]} for 10 s"
nats_stop_servers "${others[@]}"
sleep 10
for i in "${others[@]}"; do nats_start_server "$i"; done

# The flow ends: the source is paused and the queue stops growing.
out=$(dpipectl pause-source demo 2>&1) || dp_fail "pause-source: $out"
queued() { busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager \
        QueueNextOffset | cut -d' ' -f2; }
TOTAL=$(queued)
for ((i = 0; i < 30; i++)); do
        sleep 1
        now=$(queued)
        [ "$now" = "$TOTAL" ] && break
        TOTAL=$now
done
dp_log "the flow ended after $TOTAL records"
"$CTL" "$RUNTIME_DIR/sink-nats.sock" wait js confirmed_offset == "$TOTAL" 60 >"$TMP/final-state" ||
        dp_fail "the sink did not confirm all $TOTAL records"
grep -q 'retrying in' "$LOG_DIR"/sink*.log || dp_fail "the outage went unnoticed by the sink"

nats_dump DPIPE >"$TMP/stream.jsonl" || dp_fail "cannot read the stream back"
python3 - "$TMP/stream.jsonl" "$TOTAL" "$N" <<'EOF' || dp_fail "the stream does not hold every record exactly once in order"
import json, sys
n, rows = int(sys.argv[2]), int(sys.argv[3])
msgs = [json.loads(l) for l in open(sys.argv[1])]
seqs = [m['seq'] for m in msgs]
assert seqs == sorted(seqs), 'dump not in stream order'
offsets = []
for m in msgs:
    h = m['headers']
    o = int(h['Dpipe-Offset'])
    assert m['subject'] == 'dpipe.pipeA.demo', m
    assert h['Nats-Msg-Id'] == f'pipeA:{o}' and h['Dpipe-Source'] == 'demo', m
    assert int(h['Dpipe-Ts']) > 0, m
    assert json.loads(m['data']) == {'i': o % rows, 'pad': 'y' * (o % rows % 40)}, m
    offsets.append(o)
dups = len(offsets) - len(set(offsets))
missing = sorted(set(range(n)) - set(offsets))
assert dups == 0 and not missing and offsets == list(range(n)), \
    f'{len(offsets)} messages, {dups} duplicates, missing {missing[:10]}, first out of order at ' + \
    str(next((i for i, o in enumerate(offsets) if o != i), None))
print(f'{n} records in the stream exactly once, in order')
EOF
