#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-connector-http polls dpipe-source's paginated REST collection and plain documents served by
# `python3 -m http.server` (a JSON array that grows, a CSV file); an HTTP error becomes the source's
# state and LastError; a restart of the connector neither re-sends nor skips (persisted cursor).
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CTL="python3 $HERE/connector-ctl.py $RUNTIME_DIR/connector-http.sock"
OUT="$TMP/stored.jsonl"
WWW="$TMP/www"
N=2500
mkdir -p "$WWW"

count() { python3 -c "
import json, sys
print(sum(1 for l in open(sys.argv[1]) if json.loads(l)['source'] == sys.argv[2]))" "$OUT" "$1"; }

python3 -c "
print('i,name,kind')
for i in range($N): print('%d,row-%d,%s' % (i, i, 'odd' if i % 2 else 'even'))" >"$TMP/rows.csv"
python3 -c "import json; json.dump([{'k': i} for i in range(5)], open('$WWW/items.json', 'w'))"
printf 'x,y\n1,"a, b"\n2,c\n' >"$WWW/table.csv"

WEB=$(dp_free_port)
dp_bg web python3 -m http.server "$WEB" --bind 127.0.0.1 --directory "$WWW"
dp_wait_port 127.0.0.1 "$WEB"
dp_bg writer python3 "$HERE/connector-fake-writer.py" "$RUNTIME_DIR/writer.sock" "$OUT"
dp_wait_socket "$RUNTIME_DIR/writer.sock"

start_connector() {
        dp_daemon "connector$1" dpipe-connector-http --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
        dp_wait_socket "$RUNTIME_DIR/connector-http.sock"
}
add_all() {
        $CTL add items address="http://127.0.0.1:$WEB/items.json" interval_ms=200 >/dev/null || dp_fail "add items"
        $CTL add table address="http://127.0.0.1:$WEB/table.csv" interval_ms=200 >/dev/null || dp_fail "add table"
        if [ -n "${SRC:-}" ]; then
                $CTL add pages address="http://127.0.0.1:$SRC" interval_ms=200 limit=300 >/dev/null || dp_fail "add pages"
                $CTL add odd address="http://127.0.0.1:$SRC" interval_ms=200 limit=300 query=kind=odd >/dev/null ||
                        dp_fail "add odd"
        fi
}
start_connector 1
dpipe-connector-http --version | grep -q "^dpipe-connector-http " || dp_fail "--version"

if [ -x "$BUILD_DIR/daemons/demo-source/dpipe-source" ]; then
        SRC=$(dp_free_port)
        dp_bg source dpipe-source --file="$TMP/rows.csv" --http="127.0.0.1:$SRC"
        dp_wait_port 127.0.0.1 "$SRC"
fi
add_all
reply=$($CTL add bad address="ftp://x/y" || true)
dp_assert_contains "$reply" "invalid address" "non-HTTP URL refused"

# An HTTP error: state backoff, LastError names the status.
$CTL add missing address="http://127.0.0.1:$WEB/missing.json" interval_ms=200 >/dev/null || dp_fail "add missing"
st=$($CTL wait missing state == backoff 10) || dp_fail "404 did not put the source in backoff"
dp_assert_contains "$st" "HTTP 404" "LastError of a 404"

# A malformed body: backoff with the reason; once the document is fixed the source recovers.
printf '[{"k": 1}, ' >"$WWW/broken.json"
$CTL add broken address="http://127.0.0.1:$WEB/broken.json" format=json interval_ms=200 >/dev/null || dp_fail "add broken"
st=$($CTL wait broken state == backoff 10) || dp_fail "malformed body did not put the source in backoff"
dp_assert_contains "$st" "not a JSON array" "LastError of a malformed body"
printf '[{"k": 1}]' >"$WWW/broken.json"
$CTL wait broken records == 1 20 >/dev/null || dp_fail "no recovery after the body was fixed"
$CTL wait broken state == active 5 >/dev/null || dp_fail "not active after recovery"
$CTL remove broken >/dev/null || dp_fail "remove broken"

$CTL wait items records '>=' 5 10 >/dev/null || dp_fail "JSON array not read"
$CTL wait table records '>=' 2 10 >/dev/null || dp_fail "CSV document not read"
grep -q '"x": "1", "y": "a, b"' "$OUT" || dp_fail "CSV row values"
if [ -n "${SRC:-}" ]; then
        $CTL wait pages next_seq == "$N" 30 >/dev/null || dp_fail "pagination did not reach the end"
        dp_assert_eq "$N" "$(count pages)" "records from the paginated source"
        # A filter (query): only matching rows, each once, paginated by the source's next_offset.
        $CTL wait odd records '>=' $((N / 2)) 30 >/dev/null || dp_fail "filtered pagination did not reach the end"
        python3 - "$OUT" "$N" <<'PY' || dp_fail "filtered records"
import json, sys
rows = [json.loads(l)['data'] for l in open(sys.argv[1]) if json.loads(l)['source'] == 'odd']
assert [int(r['i']) for r in rows] == list(range(1, int(sys.argv[2]), 2)), len(rows)
assert all(r['kind'] == 'odd' for r in rows)
PY
fi

# A server that validates with ETag only: unchanged documents cost a 304 and send nothing; a
# changed one (same second or not) is read again and yields only its new records.
ETAGPORT=$(dp_free_port)
dp_bg etag python3 "$HERE/connector-etag-server.py" "$ETAGPORT" "$WWW"
dp_wait_port 127.0.0.1 "$ETAGPORT"
printf '{"e":0}\n{"e":1}\n' >"$WWW/events.jsonl"
$CTL add events address="http://127.0.0.1:$ETAGPORT/events.jsonl" interval_ms=200 >/dev/null || dp_fail "add events"
$CTL wait events records == 2 10 >/dev/null || dp_fail "jsonl document over ETag"
dp_retry 10 grep -q "^304 /events.jsonl" "$LOG_DIR/etag.log" || dp_fail "no conditional request (If-None-Match)"
printf '{"e":2}\n' >>"$WWW/events.jsonl"
$CTL wait events records == 3 10 >/dev/null || dp_fail "appended record not read"
dp_assert_eq '0 1 2' "$(python3 -c "
import json, sys
print(' '.join(str(json.loads(l)['data']['e']) for l in open(sys.argv[1]) if json.loads(l)['source'] == 'events'))" "$OUT")" \
        "records of the ETag document, each once"

# The document grows: only the new records are sent. (Sleep past the 1 s Last-Modified granularity.)
sleep 1.1
python3 -c "import json; json.dump([{'k': i} for i in range(8)], open('$WWW/items.json', 'w'))"
$CTL wait items records '>=' 8 10 >/dev/null || dp_fail "new records of the document not read"

# Restart the connector: with its cursor it sends nothing again, but sees what is new.
sleep 1.5 # the cursor is saved once a second after the writer's ack
dp_kill_daemon connector1
start_connector 2
add_all
sleep 1.1
python3 -c "import json; json.dump([{'k': i} for i in range(10)], open('$WWW/items.json', 'w'))"
$CTL wait items records '>=' 2 10 >/dev/null || dp_fail "records after restart"
sleep 1
dp_assert_eq "0 1 2 3 4 5 6 7 8 9" "$(python3 -c "
import json, sys
print(' '.join(str(json.loads(l)['data']['k']) for l in open(sys.argv[1]) if json.loads(l)['source'] == 'items'))" "$OUT")" \
        "items stored exactly once each"
dp_assert_eq 2 "$(count table)" "CSV rows stored once"
if [ -n "${SRC:-}" ]; then
        dp_assert_eq "$N" "$(count pages)" "paginated records after the restart"
        dp_assert_eq $((N / 2)) "$(count odd)" "filtered records after the restart"
fi
if grep -h duplicate "$LOG_DIR"/writer.log; then
        dp_fail "records were sent twice"
fi
