# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared set-up of the dpipe-client tests (sourced after lib.sh): two CSV sources (alpha, beta)
# served by dpipe-source, the whole pipeline on a private bus with a short heartbeat, and the
# helpers wait_lines and check_stream (dp_expect_exit is in lib.sh). Sets ADDR, PORT_ALPHA, PORT_BETA, N_ALPHA...
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; rm -rf "$TMP"; trap - EXIT; exit 77; }
done
HERE=$(cd "$(dirname "$0")" && pwd)

python3 - "$TMP/alpha.csv" "$TMP/beta.csv" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("id,name,note\n")
    for i in range(300):
        f.write('%d,name %d,"comma, and ""quotes"" %d"\n' % (i, i, i))
with open(sys.argv[2], "w") as f:
    f.write("city,n\n")
    for i in range(120):
        f.write("city %d,%d\n" % (i, i))
PY
N_ALPHA=300
N_BETA=120

count_lines() { if [ -e "$1" ]; then wc -l <"$1"; else echo 0; fi; }
wait_lines() {
        dp_retry "${3:-20}" bash -c '[ "$(wc -l <"$1")" -ge "$2" ]' _ "$1" "$2" ||
                dp_fail "$(basename "$1"): expected $2 lines, got $(count_lines "$1")"
}
# check_stream FILE N: exactly N record lines, offsets 0..N-1, each a JSON object as the server sent it.
check_stream() {
        python3 - "$1" "$2" <<'PY' || dp_fail "$(basename "$1") is not the expected record stream"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
offs = [r["offset"] for r in recs]
if offs != list(range(n)):
    missing = sorted(set(range(n)) - set(offs))[:10]
    dup = len(offs) - len(set(offs))
    sys.exit("%d records; missing %s; %d repeated; first offsets %s" % (len(offs), missing, dup, offs[:10]))
for r in recs:
    assert r["op"] == "record" and r["source"] in ("alpha", "beta", "gamma") and r["ts_us"] > 0, r
    if r["source"] == "alpha":
        i = r["offset"]
        assert r["data"] == {"id": i, "name": "name %d" % i, "note": 'comma, and "quotes" %d' % i} or \
               r["data"] == {"id": str(i), "name": "name %d" % i, "note": 'comma, and "quotes" %d' % i}, r
print("%s: %d records in order" % (sys.argv[1], n))
PY
}

dp_start_bus
# A short heartbeat: dpiped drops clients silent for 3 x 300 ms, and clients notice a frozen or dead
# dpiped within a second.
dp_start_pipeline --heartbeat-ms=300
ADDR="127.0.0.1:$DPIPED_PORT"

PORT_ALPHA=$(dp_free_port)
dp_daemon source-alpha dpipe-source --file="$TMP/alpha.csv" --tcp="127.0.0.1:$PORT_ALPHA"
dp_wait_port 127.0.0.1 "$PORT_ALPHA"
PORT_BETA=$(dp_free_port)
dp_daemon source-beta dpipe-source --file="$TMP/beta.csv" --tcp="127.0.0.1:$PORT_BETA"
dp_wait_port 127.0.0.1 "$PORT_BETA"
