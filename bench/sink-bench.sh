#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# bench/sink-bench.sh — how fast the sinks drain the queue (numbers, not pass/fail).
#
# The queue is filled first (writer-feed into dpipe-writer, N records of 100 bytes, --sync=none),
# then for every configuration a sink daemon is started and one sink added through its control
# socket; the time from the add to the sink's confirmation of the last offset gives records/s. That
# is the sink's maximum rate (it never waits for records), to hold against the writer's (bench/run:
# ~2.5 million records/s on the project VM). Also the sink daemon's CPU seconds and peak RSS.
#
# Configurations: file (fdatasync per batch), nats to one nats-server (R1 stream), nats to a 3-node
# cluster on loopback (R3 stream); the nats ones also with other max_in_flight values. Before the
# nats sink, "js-publish" publishes the same N messages (the sink's headers, 100 bytes) from one
# cnats connection with nothing else around: what the servers take on this machine, the sink's
# baseline (no dpiped, no queue); then, at LIVE_RATE/s, its latency from each publish to its ack.
#
# "stream" measures the other end, `dpiped --stream=`: N messages published into an R1 stream
# beforehand (js-publish --json), then read by bench-consumer through a dpiped --stream= (records/s
# from its first record, exact once-check); then N more read while they are published at
# LIVE_RATE/s (default 10000): latency from the publish to bench-consumer. dpiped's CPU seconds and
# peak RSS for both.
#
# Usage: [N=1000000] [BUILD_DIR=build-release] [INFLIGHT="1024 4096 16384"] [RUNS="file nats1 nats3 stream"]
#        [PROFILE=DIR [CALLGRIND=1]] bench/sink-bench.sh
# PROFILE=DIR: every sink daemon under perf record (DIR/perf.sink-K; its CPU and RSS columns are then
# perf's); with CALLGRIND=1 under valgrind --tool=callgrind instead (DIR/callgrind.sink-K, for
# instructions per record: use a small N), and so is each dpiped --stream= (DIR/callgrind.dpiped-stream-K).
# The rate is read off the sink's once-a-second reports: give N enough for several seconds (the file
# sink drains about a million records a second here).
set -euo pipefail

SOURCE_DIR=$(cd "$(dirname "$0")/.." && pwd)
export SOURCE_DIR
N=${N:-1000000}
INFLIGHT=${INFLIGHT:-1024 4096 16384}
RUNS=${RUNS:-file nats1 nats3 stream}
if [ -z "${BUILD_DIR:-}" ]; then
        BUILD_DIR="$SOURCE_DIR/build-release"
        [ -f "$BUILD_DIR/build.ninja" ] ||
                meson setup "$BUILD_DIR" "$SOURCE_DIR" --buildtype=release -Db_ndebug=true >/dev/null
fi
BUILD_DIR=$(cd "$BUILD_DIR" && pwd)
ninja -C "$BUILD_DIR" >/dev/null
export BUILD_DIR DPIPE_LOG_LEVEL=warning

# shellcheck source=../tests/integration/lib.sh
source "$SOURCE_DIR/tests/integration/lib.sh"
# shellcheck source=../tests/integration/nats-cluster.sh
source "$SOURCE_DIR/tests/integration/nats-cluster.sh"
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"

dp_start_bus
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --sync=none
dp_wait_socket "$RUNTIME_DIR/writer.sock"
"$BUILD_DIR/bench/writer-feed" --socket="$RUNTIME_DIR/writer.sock" --source=bench --count="$N" --batch=1000 \
        --window=8 --size=100 >"$TMP/feed.json"
DPIPED_PORT=$(dp_free_port)
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="127.0.0.1:$DPIPED_PORT"
dp_wait_bus_name org.dpipe.Pipeline1
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
if [ -S "$RUNTIME_DIR/client.sock" ]; then CONNECT="$RUNTIME_DIR/client.sock"; else CONNECT="127.0.0.1:$DPIPED_PORT"; fi

echo "sink benchmark: $N records of 100 bytes already in the queue, $(nproc) CPUs, dpiped over $CONNECT"
printf '%-36s %12s %9s %9s %9s %12s\n' "sink" "records/s" "seconds" "CPU s" "RSS MB" "nats CPU s"

RUN=0
# measure LABEL TYPE OPTIONS...: one sink daemon, one sink, until it confirmed offset N-1. The rate is
# taken between the sink's once-a-second state reports (confirmed offsets and arrival times), so the
# report interval does not blur it; "seconds" is from the add to the report of the last offset.
measure() {
        local label=$1 type=$2 pid
        shift 2
        RUN=$((RUN + 1))
        local -a wrap=()
        if [ -n "${CALLGRIND:-}" ]; then
                mkdir -p "${PROFILE:?CALLGRIND needs PROFILE=DIR}"
                wrap=(valgrind --tool=callgrind --callgrind-out-file="$PROFILE/callgrind.sink-$RUN")
        elif [ -n "${PROFILE:-}" ]; then
                mkdir -p "$PROFILE"
                wrap=(perf record -q -F 997 -e cpu-clock -g -o "$PROFILE/perf.sink-$RUN")
        fi
        dp_daemon "sink-$RUN" "${wrap[@]}" "$BUILD_DIR/daemons/sinks/$type/dpipe-sink-$type" --runtime-dir="$RUNTIME_DIR" \
                --connect="$CONNECT" --pipeline-id="bench$RUN"
        pid=${DP_PIDS[sink-$RUN]}
        dp_wait_socket "$RUNTIME_DIR/sink-$type.sock"
        nats_cpu_before=$(nats_cpu)
        python3 - "$RUNTIME_DIR/sink-$type.sock" "b$RUN" "$N" "$@" >"$TMP/measure.json" <<'PY' || dp_fail "$label: failed"
import json, socket, struct, sys, time
path, name, n, opts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
options = {}
for o in opts:
    k, v = o.split('=', 1)
    options[k] = int(v) if v.isdigit() else v
data = json.dumps({'op': 'add', 'id': 1, 'name': name, 'options': options}).encode()
start = time.monotonic()
s.sendall(struct.pack('<IHH', len(data), 1, 0) + data)
buf, points = b'', []
while True:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit('control connection closed')
    buf += chunk
    while len(buf) >= 8:
        size, _, _ = struct.unpack('<IHH', buf[:8])
        if len(buf) < 8 + size:
            break
        m, buf = json.loads(buf[8:8 + size]), buf[8 + size:]
        if m.get('op') == 'error':
            sys.exit(m.get('message'))
        if m.get('op') == 'state' and m.get('name') == name:
            if m.get('state') == 'failed':
                sys.exit(m.get('error'))
            if m.get('error'):
                print(m['error'], file=sys.stderr)
            points.append((time.monotonic(), m['confirmed_offset']))
            if m['confirmed_offset'] >= n:
                mid = [p for p in points if 0 < p[1] < n]
                rate = (mid[-1][1] - mid[0][1]) / (mid[-1][0] - mid[0][0]) if len(mid) >= 2 else n / (points[-1][0] - start)
                print(json.dumps({'rate': rate, 'seconds': points[-1][0] - start}))
                sys.exit(0)
PY
        local cpu rss ncpu
        cpu=$(awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$pid/stat")
        rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
        ncpu=$(python3 -c "print(f'{$(nats_cpu) - $nats_cpu_before:.2f}')")
        dp_kill_daemon "sink-$RUN" TERM
        python3 -c "import json,sys; m=json.load(open(sys.argv[2])); print(f'{sys.argv[1]:<36} {m[\"rate\"]:12,.0f} {m[\"seconds\"]:9.2f} {float(sys.argv[3]):9.2f} {int(sys.argv[4])/1024:9.1f} {sys.argv[5]:>12}')" \
                "$label" "$TMP/measure.json" "$cpu" "$rss" "$ncpu"
}
# CPU seconds of the nats-server processes so far.
nats_cpu() {
        local p t=0
        for p in "${NATS_PIDS[@]}"; do
                [ -n "$p" ] && t=$(awk -v t="$(getconf CLK_TCK)" -v a="$t" '{print a + ($14 + $15) / t}' "/proc/$p/stat")
        done
        echo "$t"
}

if [[ " $RUNS " == *" file "* ]]; then
        mkdir -p "$TMP/files"
        measure "file" file address="$TMP/files/out.jsonl"
        measure "file, max_bytes=64MiB" file address="$TMP/files/rot.jsonl" max_bytes=67108864
fi
# baseline LABEL STREAM SUBJECT REPLICAS K: js-publish's N messages, at most K in flight.
baseline() {
        local label=$1 nats_cpu_before
        nats_cpu_before=$(nats_cpu)
        "$BUILD_DIR/bench/js-publish" --address="$NATS_URLS" --stream="$2" --subject="$3" --replicas="$4" \
                --count="$N" --in-flight="$5" >"$TMP/baseline.json" || dp_fail "$label: failed"
        python3 -c "import json,sys; m=json.load(open(sys.argv[2])); print(f'{sys.argv[1]:<36} {m[\"rate\"]:12,.0f} {m[\"seconds\"]:9.2f} {\"\":>9} {\"\":>9} {float(sys.argv[3]):12.2f}')" \
                "$label" "$TMP/baseline.json" "$(python3 -c "print($(nats_cpu) - $nats_cpu_before)")"
}
# ack_latency LABEL STREAM SUBJECT REPLICAS: js-publish at LIVE_RATE/s for 10 s, the time from each
# publish to its ack (what a record spends between the sink and the stream, at that load).
ack_latency() {
        local rate=${LIVE_RATE:-10000}
        "$BUILD_DIR/bench/js-publish" --address="$NATS_URLS" --stream="$2" --subject="$3" --replicas="$4" \
                --count=$((rate * 10)) --rate="$rate" >"$TMP/latency.json" || dp_fail "$1: failed"
        python3 -c "import json,sys; m=json.load(open(sys.argv[2])); print(f'{sys.argv[1]} at {sys.argv[3]}/s: publish to ack p50 {m[\"ack_p50_us\"]} µs, p99 {m[\"ack_p99_us\"]} µs, p99.9 {m[\"ack_p999_us\"]} µs')" \
                "$1" "$TMP/latency.json" "$rate"
}
nats_reset() {
        [ -n "$NATS_URLS" ] || return 0
        nats_stop_servers "${!NATS_PIDS[@]}"
        NATS_URLS= NATS_PIDS=() NATS_PORTS=() NATS_CLUSTER_PORTS=()
        rm -rf "$TMP/nats"
}

if [[ " $RUNS " == *" nats1 "* ]]; then
        nats_start_cluster 1
        baseline "js-publish, 1 server R1, in flight 1024" B1 b1.x 1 1024
        for k in $INFLIGHT; do
                measure "nats, 1 server R1, in flight $k" nats address="$NATS_URLS" replicas=1 stream="S1_$k" \
                        subject="r1k$k.{pipeline}.{source}" max_in_flight="$k"
        done
        ack_latency "js-publish, 1 server R1" L1 l1.x 1
        nats_reset
fi
if [[ " $RUNS " == *" nats3 "* ]]; then
        nats_start_cluster 3
        baseline "js-publish, 3 servers R3, in flight 1024" B3 b3.x 3 1024
        for k in $INFLIGHT; do
                measure "nats, 3 servers R3, in flight $k" nats address="$NATS_URLS" replicas=3 stream="S3_$k" \
                        subject="r3k$k.{pipeline}.{source}" max_in_flight="$k"
        done
        ack_latency "js-publish, 3 servers R3" L3 l3.x 3
fi

# stream_read LABEL STREAM [live]: a dpiped --stream= on STREAM (in place of the queue's dpiped on the
# bus) and bench-consumer reading N records from it; live: while js-publish publishes them.
STREAM_RUN=0
stream_read() {
        local label=$1 name=$2 live=${3:-} port pid stats
        STREAM_RUN=$((STREAM_RUN + 1))
        port=$(dp_free_port)
        mkdir -p "$TMP/stream-$STREAM_RUN/run" "$TMP/stream-$STREAM_RUN/state"
        local -a wrap=()
        if [ -n "${CALLGRIND:-}" ]; then
                mkdir -p "$PROFILE"
                wrap=(valgrind --tool=callgrind --callgrind-out-file="$PROFILE/callgrind.dpiped-stream-$STREAM_RUN")
        fi
        dp_daemon "dpiped-stream-$STREAM_RUN" "${wrap[@]}" "$BUILD_DIR/daemons/dpiped/dpiped" --runtime-dir="$TMP/stream-$STREAM_RUN/run" \
                --state-dir="$TMP/stream-$STREAM_RUN/state" --listen="127.0.0.1:$port" --stream="$NATS_URLS" --stream-name="$name"
        pid=${DP_PIDS[dpiped-stream-$STREAM_RUN]}
        dp_wait_port 127.0.0.1 "$port" 60
        "$BUILD_DIR/bench/bench-consumer" --connect="127.0.0.1:$port" --records="$N" --window=100000 \
                --idle-timeout=60 >"$TMP/stream.stats" &
        local consumer=$!
        if [ -n "$live" ]; then
                "$BUILD_DIR/bench/js-publish" --address="$NATS_URLS" --stream="$name" --subject="${name,,}.x" \
                        --count="$N" --json --rate="${LIVE_RATE:-10000}" >/dev/null || dp_fail "$label: js-publish failed"
        fi
        wait "$consumer" || dp_fail "$label: $(cat "$TMP/stream.stats")"
        stats=$(cat "$TMP/stream.stats")
        kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$stats"; }
        local cpu rss rate
        cpu=$(awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$pid/stat")
        rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
        local p50=- p99=- p999=- # the latency of records stored beforehand says nothing
        if [ -n "$live" ]; then
                rate=$(kv records_per_sec) p50=$(kv p50_us) p99=$(kv p99_us) p999=$(kv p999_us)
        else
                rate=$(kv recv_per_sec)
        fi
        dp_kill_daemon "dpiped-stream-$STREAM_RUN" TERM
        printf '%-36s %12s %9s %9s %9s %9s %9s\n' "$label" "$rate" "$cpu" "$((rss / 1024)).$((rss % 1024 * 10 / 1024))" \
                "$p50" "$p99" "$p999"
}

if [[ " $RUNS " == *" stream "* ]]; then
        nats_reset
        nats_start_cluster 1
        "$BUILD_DIR/bench/js-publish" --address="$NATS_URLS" --stream=FILLED --subject=filled.x --count="$N" --json \
                >/dev/null || dp_fail "cannot fill the stream"
        "$NATS_JS" "$NATS_URLS" add-stream LIVE live.x 1 >/dev/null || dp_fail "cannot create stream LIVE"
        dp_kill_daemon dpiped TERM
        echo
        printf '%-36s %12s %9s %9s %9s %9s %9s\n' "dpiped --stream=, R1, 1 server" "records/s" "CPU s" "RSS MB" "p50 µs" \
                "p99 µs" "p99.9 µs"
        stream_read "filled beforehand" FILLED
        stream_read "live, ${LIVE_RATE:-10000}/s published" LIVE live
fi
