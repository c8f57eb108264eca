#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Transforms (interfaces §11) through the file and http connectors, end to end: dpiped, the real
# connectors, the writer and a dpipe-client reading what was stored. A JSON array served by
# `python3 -m http.server` (its one-line elements are listed by the pass that validates them), a
# JSON Lines file declared in a .source file with Option=transform=, and a CSV file added with
# dpipectl add-source --transform= that comes out with typed fields. The client sees each source's
# records as its program made them (fields, nesting, JSON types), at dense offsets; records dropped
# by `where` are counted in RecordsFiltered and take no offset, records whose field does not convert
# in RecordsSkipped with the step in LastSkipReason.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpipe-connector-file dpipe-connector-http dpiped dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=300
WWW=$TMP/www
DATA=$TMP/data
SRCDIR=$TMP/sources.d
mkdir -p "$WWW" "$DATA" "$SRCDIR"

# http: every fourth event is at level debug (filtered); event 10's ms is no number (skipped).
python3 - "$WWW/events.json" "$N" <<'PY'
import json, sys
n = int(sys.argv[2])
ev = [{"id": i, "level": "debug" if i % 4 == 3 else "info", "user": {"name": "u%d" % i, "pw": "secret"},
       "ms": "n/a" if i == 10 else "%d.5" % i, "tags": ["a", "é"]} for i in range(n)]
json.dump(ev, open(sys.argv[1], "w"), ensure_ascii=False)
PY
# file, jsonl: only the lines whose msg starts with "ok" pass; n becomes a string field id.
python3 - "$DATA/app.jsonl" "$N" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"n": i, "msg": ("ok \"%d\"" if i % 3 else "fail %d") % i, "host": "h\u00e9"}) + "\n")
PY
# file, csv: typed fields; the washer's qty does not convert.
printf 'item,qty,price,ok\nbolt,12,0.25,yes\nnut,7,.5,no\nwasher,x,1,yes\n"big ""hex"" bolt",3,12,ON\n' >"$DATA/parts.csv"

dp_start_bus
dp_start_pipeline --sources-dirs="$SRCDIR"
dp_daemon connector-file dpipe-connector-file --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_daemon connector-http dpipe-connector-http --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-file.sock"
dp_wait_socket "$RUNTIME_DIR/connector-http.sock"
WEB=$(dp_free_port)
dp_bg web python3 -m http.server "$WEB" --bind 127.0.0.1 --directory "$WWW"
dp_wait_port 127.0.0.1 "$WEB"

dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"

count() { grep -c "\"source\":\"$1\"" "$TMP/client.jsonl" || true; }
wait_count() { # wait_count SOURCE N
        dp_retry 60 bash -c '[ "$(grep -c "\"source\":\"$1\"" "$2")" -ge "$3" ]' _ "$1" "$TMP/client.jsonl" "$2" ||
                dp_fail "$1: $(count "$1") records reached the client, expected $2"
}
property() { busctl --system get-property org.dpipe.Pipeline1 "/org/dpipe/Pipeline1/source/$1" org.dpipe.Pipeline1.Source "$2"; }
wait_property() { # wait_property SOURCE PROPERTY VALUE
        dp_retry 20 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 "/org/dpipe/Pipeline1/source/$1" org.dpipe.Pipeline1.Source "$2")" = "$3" ]' \
                _ "$1" "$2" "$3" || dp_fail "$1: $2 is $(property "$1" "$2"), expected $3"
}

# The http array, with a program given to dpipectl add-source --transform=.
dp_expect_exit 0 dpipectl add-source web --type=http --address="http://127.0.0.1:$WEB/events.json" --option=interval_ms=300 \
        --transform='where level != debug; select id,user.name,ms,tags; rename user.name=who; drop user; convert ms:float,id:string'
WEB_WANT=$(( N - N / 4 - 1 ))
wait_count web "$WEB_WANT"
wait_property web RecordsFiltered "t $(( N / 4 ))"
wait_property web RecordsSkipped "t 1"
dp_assert_contains "$(property web LastSkipReason)" 'offset 10: transform: step 5 (convert ms:float,id:string): \"n/a\" is not a number' \
        "web's LastSkipReason names the record and the step"

# The jsonl file, declared with Option=transform= (its ';', '=', '~' and quotes reach the connector).
printf '[Source]\nType=file\nAddress=%s\nOption=transform=where msg ~ "^ok \\"[0-9]+\\"$"; rename n=id; convert id:string; set via=$source; drop host\n' \
        "$DATA/app.jsonl" >"$SRCDIR/app.source"
dpipectl reload || dp_fail "dpipectl reload failed"
APP_WANT=$(( N - (N + 2) / 3 ))
wait_count app "$APP_WANT"
wait_property app RecordsFiltered "t $(( (N + 2) / 3 ))"
wait_property app RecordsSkipped "t 0"

# The csv file: typed fields.
dp_expect_exit 0 dpipectl add-source parts --type=file --address="$DATA/parts.csv" --option=format=csv \
        --transform='convert qty:int,price:float,ok:bool'
wait_count parts 3
wait_property parts RecordsSkipped "t 1"
dp_assert_contains "$(property parts LastSkipReason)" 'line 4: transform: step 1 (convert qty:int,price:float,ok:bool): \"x\" is not a number' \
        "parts' LastSkipReason"

sleep 1 # (the http source polls again meanwhile: nothing more may come)
python3 - "$TMP/client.jsonl" "$N" <<'PY' || dp_fail "the client did not see what the programs make of the records"
import json, sys
lines = [l for l in open(sys.argv[1]) if '"op":"record"' in l]
recs = [json.loads(l) for l in lines]
n = int(sys.argv[2])
by = {}
for r in recs:
    by.setdefault(r["source"], []).append(r["data"])
want = {
    "web": [{"id": str(i), "ms": float("%d.5" % i), "tags": ["a", "é"], "who": "u%d" % i}
            for i in range(n) if i % 4 != 3 and i != 10],
    "app": [{"id": str(i), "msg": "ok \"%d\"" % i, "via": "app"} for i in range(n) if i % 3],
    "parts": [{"item": "bolt", "qty": 12, "price": 0.25, "ok": True}, {"item": "nut", "qty": 7, "price": 0.5, "ok": False},
              {"item": 'big "hex" bolt', "qty": 3, "price": 12.0, "ok": True}],
}
for name, w in want.items():
    got = by.get(name, [])
    if got != w:
        bad = next((i for i in range(max(len(got), len(w))) if i >= len(got) or i >= len(w) or got[i] != w[i]), None)
        sys.exit("%s: %d records, expected %d; first difference at %s: %r, expected %r" % (
            name, len(got), len(w), bad, got[bad:bad + 1], w[bad:bad + 1]))
    # JSON types as the program made them (Python's == takes 12.0 for 12; the text does not).
    for g in got:
        for k, v in g.items():
            if k in ("price", "ms") and not isinstance(v, float):
                sys.exit("%s: %s is %r, not a float" % (name, k, v))
            if k in ("qty",) and (not isinstance(v, int) or isinstance(v, bool)):
                sys.exit("%s: %s is %r, not an int" % (name, k, v))
assert set(by) == set(want), "records of other sources: %r" % set(by)
# Offsets dense across the queue: filtered and skipped records took none.
offsets = [r["offset"] for r in recs]
assert offsets == list(range(len(recs))), "offsets are not dense: %r" % offsets[:10]
# The bytes as the connectors wrote them: what they generated compact, values they kept as they
# came (the array), in the record's order, floats with a point.
raw = {}
for l in lines:
    raw.setdefault(json.loads(l)["source"], l)
assert '"data":{"id":"0","ms":0.5,"tags":["a", "é"],"who":"u0"}' in raw["web"], raw["web"]
assert '"data":{"id":"1","msg":"ok \\"1\\"","via":"app"}' in raw["app"], raw["app"]
assert '"data":{"item":"bolt","qty":12,"price":0.25,"ok":true}' in raw["parts"], raw["parts"]
PY
out=$(dpipectl list-sources --no-legend 2>&1)
dp_assert_contains "$out" "web" "list-sources shows the http source"
grep -q "Source web: skipping record at offset 10: transform: step 5" "$LOG_DIR/connector-http.log" ||
        dp_fail "the skipped event was not logged with source, record and step: $(grep -i skipping "$LOG_DIR/connector-http.log")"
