#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-source benchmark: generates an N-row CSV (default 1,000,000), then
#   1. loads it (dpipe-source --check): rows/s and peak RSS of the load;
#   2. serves it and streams every row to a client that discards them (bench/source-sink):
#      rows/s and the server's peak RSS.
#
#   bench/source-bench.sh [BUILD_DIR]      (N=... to change the row count; not part of the tests)
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-${BUILD_DIR:-$SRC/build}}
N=${N:-1000000}
SOURCE="$BUILD/daemons/demo-source/dpipe-source"
SINK="$BUILD/bench/source-sink"
[ -x "$SOURCE" ] && [ -x "$SINK" ] || { echo "build dpipe-source and bench/source-sink in $BUILD first" >&2; exit 1; }

TMP=$(mktemp -d /tmp/dpipe-source-bench.XXXXXX)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

python3 - "$N" "$TMP/data.csv" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, 'w') as f:
    f.write('id,name,city,score,note\n')
    f.writelines('%d,user%d,"City %d, Region",%d.%d,"said ""hi"" %d"\n' % (i, i, i % 977, i % 1000, i % 10, i)
                 for i in range(n))
PY
size=$(stat -c %s "$TMP/data.csv")
echo "dpipe-source benchmark: $N rows, $((size / 1048576)) MiB of CSV"

start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$TMP/load-rss" "$SOURCE" --file="$TMP/data.csv" --check 2>/dev/null
end=$(date +%s.%N)
python3 -c "import sys; t=$end-$start; print('load:   %d rows in %.3f s = %.0f rows/s (%.1f MB/s), peak RSS %d MiB' % ($N, t, $N/t, $size/t/1e6, int(open('$TMP/load-rss').read())//1024))"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DPIPE_LOG_LEVEL=warning "$SOURCE" --file="$TMP/data.csv" --tcp="127.0.0.1:$PORT" --heartbeat-ms=60000 &
PID=$!
for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
done
"$SINK" "127.0.0.1:$PORT" "$N"
echo "server peak RSS: $(( $(awk '/VmHWM/ {print $2}' "/proc/$PID/status") / 1024 )) MiB"
