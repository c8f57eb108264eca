#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Queue and writer benchmark (numbers, not pass/fail). Prints, for 100-byte records:
#   * the raw disk (sequential write + fdatasync, and O_DSYNC 4 KiB writes) and the raw Unix socket
#     throughput with the same framing, measured in the same run, as the ceiling;
#   * dpipe-writer append throughput under --sync=batch, interval:100 and none with several
#     concurrent connectors: records/s, MB/s, ack latency percentiles, the writer's peak RSS;
#   * QueueReader read throughput over the resulting queue.
#
# Usage: bench/writer-bench.sh [BUILD_DIR] [--records=N] [--connectors=K] [--dir=DIR]
#   DIR (default: a temporary directory under /var/tmp) must be on the disk to measure.
set -euo pipefail

BUILD_DIR=${BUILD_DIR:-build}
RECORDS=2000000
CONNECTORS=4
BASE=/var/tmp
for a in "$@"; do
        case $a in
        --records=*) RECORDS=${a#*=} ;;
        --connectors=*) CONNECTORS=${a#*=} ;;
        --dir=*) BASE=${a#*=} ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) BUILD_DIR=$a ;;
        esac
done
WRITER="$BUILD_DIR/daemons/writer/dpipe-writer"
FEED="$BUILD_DIR/bench/writer-feed"
DUMP="$BUILD_DIR/bench/queue-dump"
for f in "$WRITER" "$FEED" "$DUMP"; do
        [ -x "$f" ] || { echo "writer-bench: $f not built (give the build dir as first argument)" >&2; exit 1; }
done

TMP=$(mktemp -d "$BASE/dpipe-bench.XXXXXX")
WPID=
cleanup() {
        [ -n "$WPID" ] && kill "$WPID" 2>/dev/null && wait "$WPID" 2>/dev/null
        rm -rf "$TMP"
}
trap cleanup EXIT
PER=$((RECORDS / CONNECTORS))
export DPIPE_LOG_LEVEL=notice

json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, d))' "$1"; }

echo "dpipe writer benchmark: $RECORDS records of 100 bytes, $CONNECTORS connectors, $(nproc) CPUs, dir $TMP ($(df -T "$TMP" | awk 'NR==2{print $2}'))"
echo

# Raw disk.
disk=$(dd if=/dev/zero of="$TMP/raw" bs=1M count=512 conv=fdatasync 2>&1 | tail -1)
echo "raw disk, sequential write + fdatasync:  $(echo "$disk" | awk -F', ' '{print $NF}')"
dsync=$(dd if=/dev/zero of="$TMP/raw" bs=4k count=1000 oflag=dsync 2>&1 | tail -1)
secs=$(echo "$dsync" | awk -F', ' '{print $(NF-1)}' | awk '{print $1}')
echo "raw disk, 4 KiB O_DSYNC writes:          $(python3 -c "print(f'{1000/$secs:.0f} syncs/s')")"
rm -f "$TMP/raw"

# Raw Unix socket with the same frames (no writer, no acks).
"$FEED" --sink="$TMP/sink.sock" >"$TMP/sink.json" &
spid=$!
for _ in $(seq 100); do [ -S "$TMP/sink.sock" ] && break; sleep 0.02; done
"$FEED" --socket="$TMP/sink.sock" --raw --count="$RECORDS" --batch=1000 --size=100 >"$TMP/raw.json"
wait $spid
echo "raw unix socket, 1 connection:           $(json 'f"{records_per_sec:,.0f} records/s"' <"$TMP/raw.json"), $(json 'f"{mb_per_sec} MB/s of data"' <"$TMP/raw.json"), $(json 'f"{mb_per_sec} MB/s framed"' <"$TMP/sink.json")"
echo

printf '%-14s %12s %8s %11s %11s %11s %9s %14s\n' "--sync" "records/s" "MB/s" "ack p50 ms" "ack p99 ms" "ack max ms" "RSS MB" "rec/CPU-s"
for sync in batch interval:100 none; do
        state="$TMP/state-${sync%%:*}"
        run="$TMP/run-${sync%%:*}"
        mkdir -p "$state" "$run"
        "$WRITER" --runtime-dir="$run" --state-dir="$state" --sync="$sync" 2>"$TMP/writer.log" &
        WPID=$!
        for _ in $(seq 200); do [ -S "$run/writer.sock" ] && break; sleep 0.02; done
        start=$(date +%s.%N)
        pids=()
        for ((c = 0; c < CONNECTORS; c++)); do
                "$FEED" --socket="$run/writer.sock" --source="bench-$c" --count="$PER" --batch=1000 --window=8 \
                        --size=100 >"$TMP/feed-$c.json" &
                pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p"; done
        end=$(date +%s.%N)
        rss=$(awk '/VmHWM/{print $2}' "/proc/$WPID/status")
        # utime + stime of the writer: records per CPU second does not depend on what else runs.
        cpu=$(awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$WPID/stat")
        kill "$WPID"
        wait "$WPID" || true
        WPID=
        python3 - "$sync" "$start" "$end" "$rss" "$cpu" "$TMP"/feed-*.json <<'PY'
import json, sys
sync, start, end, rss, cpu = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
feeds = [json.load(open(f)) for f in sys.argv[6:]]
n = sum(f['records'] for f in feeds)
sec = end - start
p50 = max(f['ack_latency_us']['p50'] for f in feeds) / 1000
p99 = max(f['ack_latency_us']['p99'] for f in feeds) / 1000
mx = max(f['ack_latency_us']['max'] for f in feeds) / 1000
per_cpu = f'{n / cpu:14,.0f}' if cpu > 0 else f'{"-":>14}'
print(f'{sync:<14} {n / sec:12,.0f} {n * 100 / sec / 1e6:8.1f} {p50:11.1f} {p99:11.1f} {mx:11.1f} {rss / 1024:9.1f} {per_cpu}')
PY
done
echo
echo "(ack latency: per batch of 1000 records, 8 batches in flight per connector, worst connector;"
echo " rec/CPU-s: records per second of the writer's own CPU time, user + system)"
echo

read_json=$("$DUMP" "$TMP/state-none/queue" --bench)
echo "read (QueueReader, whole queue): $(echo "$read_json" | json 'f"{records:,} records, {records_per_sec:,.0f} records/s, {mb_per_sec} MB/s of data, peak RSS {peak_rss_kb/1024:.1f} MB"')"
read_json=$("$DUMP" "$TMP/state-none/queue" --bench --from=$((RECORDS / 2)))
echo "read from the middle (sparse index): $(echo "$read_json" | json 'f"{records:,} records, {seconds} s"')"
