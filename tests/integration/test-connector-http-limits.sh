#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What a hostile or broken HTTP server can make dpipe-connector-http hold. Endless responses used to
# be buffered up to 256 MiB per source with no bound across sources (three took the connector to
# 779 MB, and LastError said only "Failure writing output to destination"). Now:
#  - a body held whole (a JSON array) stops at max_body_bytes, LastError says so;
#  - all sources together hold at most --max-response-memory, LastError says so;
#  - a jsonl body is read record by record as it arrives: an endless one costs no memory;
#  - an error status keeps only the start of its body;
# and a well-behaved source on the same connector keeps delivering meanwhile. Bounds are on the
# connector's peak RSS (VmHWM), real writer, real sockets.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
for exe in dpipe-writer dpipe-connector-http; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
CTL="python3 $HERE/connector-ctl.py $RUNTIME_DIR/connector-http.sock"
WWW="$TMP/www"
mkdir -p "$WWW"
printf '{"n":0}\n' >"$WWW/items.jsonl"

WEB=$(dp_free_port)
dp_bg web python3 "$HERE/edge-server.py" http "$WEB" "$WWW"
dp_wait_port 127.0.0.1 "$WEB"
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/writer.sock"

N=0
BASE=0
start_connector() { # start_connector [OPTIONS...]: a fresh connector process (its own peak RSS)
        N=$((N + 1))
        # It resumes the good document at its cursor: it counts only what is appended from now on.
        [ "$N" = 1 ] || BASE=$(wc -l <"$WWW/items.jsonl")
        dp_daemon "connector$N" dpipe-connector-http --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" "$@"
        dp_wait_socket "$RUNTIME_DIR/connector-http.sock"
}
stop_connector() {
        dp_kill_daemon "connector$N"
        rm -f "$RUNTIME_DIR/connector-http.sock"
}
hwm_mb() { awk '/^VmHWM:/ { printf "%d", $2 / 1024 }' "/proc/${DP_PIDS[connector$N]}/status"; }
# rss_below MB WHAT: the connector's peak RSS is below MB. Not under ASan: its quarantine keeps freed
# memory (256 MB by default) and its shadow adds an eighth, so the bounds hold for real builds only.
SANITIZED=$(ldd "$(command -v dpipe-connector-http)" | grep -c libasan || true)
rss_below() {
        local hwm
        hwm=$(hwm_mb)
        dp_log "$2: peak RSS $hwm MB"
        if [ "$SANITIZED" != 0 ]; then
                dp_log "(ASan build: the bound of $1 MB is not checked)"
                return
        fi
        [ "$hwm" -lt "$1" ] || dp_fail "peak RSS $hwm MB $2 (bound: $1 MB)"
}
add() { $CTL add "$@" >/dev/null || dp_fail "add $1"; }
# The well-behaved source: a document that grows while the others misbehave.
grow_and_check() { # grow_and_check TO: appends records up to TO, waits for them
        local i
        for ((i = $(wc -l <"$WWW/items.jsonl"); i <= $1; i++)); do printf '{"n":%d}\n' "$i" >>"$WWW/items.jsonl"; done
        $CTL wait items records '>=' $(($1 + 1 - BASE)) 20 >/dev/null ||
                dp_fail "the good source stopped delivering (wanted records up to $1): $($CTL list)"
}

# 1. Defaults: three endless JSON arrays stop at max_body_bytes (32 MiB) each; an endless error
#    page ends at once.
start_connector
add items address="http://127.0.0.1:$WEB/items.jsonl" interval_ms=200
for i in 1 2 3; do add "array$i" address="http://127.0.0.1:$WEB/endless.json" interval_ms=200; done
add error address="http://127.0.0.1:$WEB/endless-error" interval_ms=200
for i in 1 2 3; do
        # (Its state is backoff, or connecting again already: the error stays.)
        $CTL wait "array$i" error == "GET http://127.0.0.1:$WEB/endless.json: response body larger than 33554432 bytes (max_body_bytes)" 30 >/dev/null ||
                dp_fail "array$i: no max_body_bytes error"
done
$CTL wait error error == "GET http://127.0.0.1:$WEB/endless-error: HTTP 500" 10 >/dev/null ||
        dp_fail "the endless error page: $($CTL list)"
grow_and_check 20
sleep 1 # a few more rounds of the endless ones
grow_and_check 40
rss_below 140 "with three endless arrays and the defaults (3 x 32 MiB + 40 MB)"
stop_connector

# 2. The global bound: sources that may hold 1 GiB each, 40 MB for all of them together.
start_connector --max-response-memory=40000000
add items address="http://127.0.0.1:$WEB/items.jsonl" interval_ms=200
for i in 1 2 3; do add "array$i" address="http://127.0.0.1:$WEB/endless.json" interval_ms=200 max_body_bytes=1073741824; done
want="all sources together hold more than 40000000 bytes of responses (--max-response-memory)"
for i in 1 2 3; do
        dp_retry 30 bash -c '$1 list | grep -q "$2"' _ "$CTL" "$want" || dp_fail "no --max-response-memory error: $($CTL list)"
done
grow_and_check 60
rss_below 80 "with three endless arrays and --max-response-memory=40000000 (40 MB + 40 MB)"
stop_connector

# 3. An endless jsonl body is read as it arrives: records flow, memory does not grow.
start_connector
add items address="http://127.0.0.1:$WEB/items.jsonl" interval_ms=200
add stream address="http://127.0.0.1:$WEB/endless.jsonl" interval_ms=200 timeout_ms=4000
$CTL wait stream records '>=' 300000 60 >/dev/null || dp_fail "the endless jsonl body: $($CTL list)"
grow_and_check 80
rss_below 40 "reading an endless jsonl body (300,000+ records, 36+ MB)"
stop_connector
dp_log "OK"
