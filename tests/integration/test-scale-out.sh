#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Scaling out (docs/SCALING.md) on a real cluster: three nats-server processes (JetStream, an R3
# stream, non-default ports), two complete pipelines A and B (each its own state and runtime dirs,
# its own private bus, a source, the tcp connector, the writer, dpiped and a nats sink added with
# `dpipectl add-sink`) sinking into one stream, and a reader on a `dpiped --stream=` of its own. In
# the middle of the flow: SIGKILL of the stream leader, then of pipeline A's sink daemon, then of all
# of pipeline B's daemons; then two of the three servers stop for 10 s and come back. Every record of
# both pipelines reaches the reader exactly once, in each pipeline's order; the stream holds each
# once; and a second `dpiped --stream=` resumes the reader's durable subscription where it stopped.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nats-cluster.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-sink-nats; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=5000      # records per pipeline
RATE=150    # records/s per source: the flow lasts ~35 s, the faults come within it
READER="$SOURCE_DIR/tests/integration/stream-reader.py"

python3 -c "
import json
for i in range($N): print(json.dumps({'i': i}))" >"$TMP/rows.jsonl"

# One private bus per pipeline (and per stream reader): each dpiped owns org.dpipe.Pipeline1 on its own.
declare -A BUS=()
start_bus() { # NAME
        local conf="$TMP/bus-$1.conf" addrfile="$TMP/bus-$1.address" policydir="$TMP/system.d"
        mkdir -p "$policydir"
        cp "$SOURCE_DIR"/dbus/*.conf "$policydir"/
        sed -e '/<user>/d' -e '/<fork\/>/d' -e '/<pidfile>/d' -e '/<servicehelper>/d' \
            -e '/<syslog\/>/d' -e '/<standard_system_servicedirs\/>/d' \
            -e "s|<listen>.*</listen>|<listen>unix:path=$TMP/bus-$1.socket</listen>|" \
            -e "s|<includedir>system.d</includedir>|<includedir>$policydir</includedir>|" \
            -e '/<includedir>\/etc\/dbus-1\/system.d<\/includedir>/d' \
            -e '/<include ignore_missing="yes">\/etc\/dbus-1\/system-local.conf<\/include>/d' \
            /usr/share/dbus-1/system.conf >"$conf"
        dp_bg "dbus-$1" dbus-daemon --config-file="$conf" --nofork --print-address=1
        dp_retry 10 grep -q '^unix:' "$LOG_DIR/dbus-$1.log" || dp_fail "bus $1 did not start"
        BUS[$1]=$(grep -m1 '^unix:' "$LOG_DIR/dbus-$1.log")
}
on() { # PIPELINE CMD...: CMD on that pipeline's bus
        local p=$1
        shift
        DBUS_SYSTEM_BUS_ADDRESS=${BUS[$p]} "$@"
}

declare -A GEN=() SOURCE_PORT=()
# start_pipeline P: writer, connector, sink daemon and dpiped of pipeline P, as a user starts them
# by hand (no socket activation); the registry in its state dir brings back what was added.
start_pipeline() {
        local p=$1 rd="$TMP/$1/run" sd="$TMP/$1/state" g
        GEN[$p]=$((${GEN[$p]:-0} + 1))
        g=${GEN[$p]}
        mkdir -p "$rd" "$sd"
        dp_daemon "writer-$p-$g" dpipe-writer --runtime-dir="$rd" --state-dir="$sd"
        dp_wait_socket "$rd/writer.sock"
        dp_daemon "connector-$p-$g" dpipe-connector-tcp --runtime-dir="$rd" --state-dir="$sd"
        dp_wait_socket "$rd/connector-tcp.sock"
        start_sink "$p"
        on "$p" dp_daemon "dpiped-$p-$g" dpiped --runtime-dir="$rd" --state-dir="$sd" --listen=none --pipeline-id="p$p"
        on "$p" dp_wait_bus_name org.dpipe.Pipeline1 20
}
start_sink() {
        local p=$1 rd="$TMP/$1/run"
        GEN[sink-$p]=$((${GEN[sink-$p]:-0} + 1))
        rm -f "$rd/sink-nats.sock"
        dp_daemon "sink-$p-${GEN[sink-$p]}" dpipe-sink-nats --runtime-dir="$rd"
        dp_wait_socket "$rd/sink-nats.sock"
}
kill_pipeline() {
        local p=$1 g=${GEN[$1]}
        dp_kill_daemon "dpiped-$p-$g" KILL
        dp_kill_daemon "sink-$p-${GEN[sink-$p]}" KILL
        dp_kill_daemon "connector-$p-$g" KILL
        dp_kill_daemon "writer-$p-$g" KILL
}

stored() { nats_js info DPIPE | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])'; }
# wait_stored N: until the stream holds N messages, and not all yet (the fault must hit the flow).
wait_stored() {
        local i n=0
        for ((i = 0; i < 900; i++)); do
                n=$(stored 2>/dev/null || echo 0)
                [ "$n" -ge "$1" ] && break
                sleep 0.1
        done
        [ "$n" -ge "$1" ] || dp_fail "fewer than $1 messages reached the stream (have $n)"
        [ "$n" -lt $((2 * N)) ] || dp_fail "the flow ended before the fault (test too slow for its data)"
}
received() { cat "$TMP/reader.jsonl" 2>/dev/null | wc -l; }

nats_start_cluster 3
# A 1 s duplicate window: a sink that relied on it rather than on where the stream stands would
# show duplicates after the faults.
nats_js add-stream DPIPE 'dpipe.>' 3 1 || dp_fail "cannot create the stream"

for p in A B R R2; do start_bus "$p"; done
for p in A B; do
        start_pipeline "$p"
        SOURCE_PORT[$p]=$(dp_free_port)
        dp_bg "source-$p" dpipe-source --file="$TMP/rows.jsonl" --tcp="127.0.0.1:${SOURCE_PORT[$p]}" --rate="$RATE"
        dp_wait_port 127.0.0.1 "${SOURCE_PORT[$p]}"
        out=$(on "$p" dpipectl add-source demo --type=tcp --address="127.0.0.1:${SOURCE_PORT[$p]}" 2>&1) ||
                dp_fail "add-source on $p: $out"
        out=$(on "$p" dpipectl add-sink central --type=nats --address="$NATS_URLS" --option=ack_timeout_ms=3000 2>&1) ||
                dp_fail "add-sink on $p: $out"
done

# The reader's dpiped serves the stream; the reader subscribes by name.
mkdir -p "$TMP/R/run" "$TMP/R/state"
on R dp_daemon dpiped-R dpiped --runtime-dir="$TMP/R/run" --state-dir="$TMP/R/state" --listen=none \
        --stream="$NATS_URLS"
dp_wait_socket "$TMP/R/run/client.sock"
dp_bg reader python3 "$READER" "$TMP/R/run/client.sock" "$TMP/reader.jsonl" reader
READER_PID=${DP_OTHER_PIDS[-1]}
# The stream dpiped refuses to change sources: they belong to the edge pipelines.
out=$(on R dpipectl add-source x --type=tcp --address=127.0.0.1:1 2>&1) && dp_fail "add-source on a --stream dpiped worked"
dp_assert_contains "$out" "sources and sinks belong to the pipelines" "add-source on a --stream dpiped"

# 1. The stream leader dies mid-flow.
wait_stored 1200
leader=$(nats_leader DPIPE)
dp_log "SIGKILL of the stream leader n$leader"
nats_kill "$leader" KILL
wait_stored 2500
nats_start_server "$leader"

# 2. Pipeline A's sink daemon dies; dpiped A hands the sink to the new one.
wait_stored 3500
dp_log "SIGKILL of pipeline A's sink daemon"
dp_kill_daemon "sink-A-${GEN[sink-A]}" KILL
start_sink A

# 3. All of pipeline B dies; its state dir brings it back.
wait_stored 5000
dp_log "SIGKILL of all of pipeline B's daemons"
kill_pipeline B
start_pipeline B

# 4. Two of three servers away for 10 s: no quorum; the edge queues hold the records.
wait_stored 6500
leader=$(nats_current DPIPE)
others=()
for i in 0 1 2; do [ "$i" != "$leader" ] && others+=("$i"); done
dp_log "stopping n${others[0]} and n${others[1]} for 10 s"
nats_stop_servers "${others[@]}"
sleep 10
for i in "${others[@]}"; do nats_start_server "$i"; done

dp_retry 120 bash -c '[ "$(cat "$1" 2>/dev/null | wc -l)" -ge "$2" ]' _ "$TMP/reader.jsonl" $((2 * N)) ||
        dp_fail "the reader got $(received) of $((2 * N)) records"
sleep 1 # anything more (a duplicate) would arrive now
kill -0 "$READER_PID" 2>/dev/null || dp_fail "the reader's connection ended"

python3 - "$TMP/reader.jsonl" "$N" <<'EOF' || dp_fail "the reader did not get every record exactly once in order"
import json, sys
n = int(sys.argv[2])
recs = [json.loads(l) for l in open(sys.argv[1])]
offsets = [r['offset'] for r in recs]
assert offsets == sorted(set(offsets)), 'stream offsets not strictly increasing: a duplicate or a reordering'
per = {}
for r in recs:
    per.setdefault(r['source'], []).append(r['data']['i'])
assert sorted(per) == ['pA/demo', 'pB/demo'], sorted(per)
for src, seq in per.items():
    dups = len(seq) - len(set(seq))
    missing = sorted(set(range(n)) - set(seq))
    assert seq == list(range(n)), f'{src}: {len(seq)} records, {dups} duplicates, missing {missing[:10]}, ' + \
        f'first out of order at {next((i for i, v in enumerate(seq) if v != i), None)}'
print(f'{2 * n} records of two pipelines, each exactly once and in its pipeline\'s order')
EOF
dp_assert_eq $((2 * N)) "$(stored)" "messages in the stream"
grep -q 'retrying in' "$LOG_DIR"/sink-*.log || dp_fail "the outage went unnoticed by the sinks"

# The reader's durable subscription lives in the cluster: another --stream dpiped resumes it after
# the last record the reader acked.
sleep 2 # the offset is stored once a second
mkdir -p "$TMP/R2/run" "$TMP/R2/state"
on R2 dp_daemon dpiped-R2 dpiped --runtime-dir="$TMP/R2/run" --state-dir="$TMP/R2/state" --listen=none \
        --stream="$NATS_URLS"
dp_wait_socket "$TMP/R2/run/client.sock"
last=$(tail -n1 "$TMP/reader.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["offset"])')
out=$(python3 "$SOURCE_DIR/tests/integration/dpiped-client.py" "$TMP/R2/run/client.sock" \
        'send:{"op":"subscribe","name":"reader"}' recv:1)
dp_assert_contains "$out" "\"offset\":$((last + 1))" "where the durable subscription resumes on another dpiped"
