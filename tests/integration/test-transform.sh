#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Transforms (interfaces §11) end to end: a real dpipe-source -> dpipe-connector-tcp with a
# transform -> dpipe-writer -> dpiped -> dpipe-client. The client sees the transformed records at
# dense offsets; records dropped by `where` are counted in RecordsFiltered and take no offset; a
# row whose field does not convert is skipped with the step in LastSkipReason and one log line.
# A CSV stream (format=csv) comes out with typed fields. Invalid programs are refused by AddSource
# (InvalidArgs), dpipectl add-source --transform= and the inline client form, naming the step.
# A declared source (dpipe.source(5)) passes Option=transform= through; a bad one fails, naming the step.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
command -v socat >/dev/null || { dp_log "SKIP: socat missing"; exit 77; }
N=3000

# Every third row is at level debug (filtered); row 1000 has an id that is no number (skipped).
python3 -c "
print('id,level,name,extra')
for i in range($N):
    print('%s,%s,row-%d,x' % ('n/a' if i == 1000 else i, 'debug' if i % 3 == 2 else 'info', i))" >"$TMP/rows.csv"
printf 'item,qty,price,ok\nbolt,12,0.25,yes\nnut,7,.5,no\nwasher,x,1,yes\n' >"$TMP/parts.csv"

SRCDIR=$TMP/sources.d
mkdir -p "$SRCDIR"
dp_start_bus
dp_start_pipeline --sources-dirs="$SRCDIR"
PORT=$(dp_free_port)
dp_daemon source dpipe-source --file="$TMP/rows.csv" --tcp="127.0.0.1:$PORT"
dp_wait_port 127.0.0.1 "$PORT"

# Invalid programs: refused on every front end, naming the step and column; nothing is added.
err=$(dp_bus_error dp_manager AddSource 'ssa{sv}' bad tcp 2 address s "127.0.0.1:$PORT" transform s "select id; rename id")
dp_assert_eq "org.freedesktop.DBus.Error.InvalidArgs" "$err" "AddSource with an invalid transform"
out=$(dp_manager AddSource 'ssa{sv}' bad tcp 2 address s "127.0.0.1:$PORT" transform s "select id; rename id" 2>&1) &&
        dp_fail "AddSource took an invalid transform"
dp_assert_contains "$out" "step 2 (rename id): column 21: expected OLD=NEW" "AddSource's error names the step"
out=$(dpipectl add-source bad --type=tcp --address="127.0.0.1:$PORT" --transform='where level = debug' 2>&1) &&
        dp_fail "dpipectl add-source took an invalid transform"
dp_assert_contains "$out" "step 1 (where level = debug): column 13: expected an operator" "dpipectl's error"
out=$(dp_sock_client 'send:add bad tcp address=127.0.0.1:1 transform="convert id:number"' recv:1)
dp_assert_contains "$out" '"code":"invalid_argument"' "inline add with an invalid transform"
dp_assert_contains "$out" 'step 1 (convert id:number): column 12: unknown type' "inline add's error names the step"
out=$(dpipectl list-sources --no-legend 2>&1)
dp_assert_eq "" "$out" "no source was added by the refused calls"

# The real source, with a four-step program.
dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"
PROGRAM='where level != debug; select id,level,name; rename name=label; convert id:int'
out=$(dpipectl add-source demo --type=tcp --address="127.0.0.1:$PORT" --transform="$PROGRAM" 2>&1) ||
        dp_fail "add-source: $out"
dp_assert_contains "$(dp_source_property demo Options)" "where level != debug" "Options holds the transform"

WANT=$(( N - N / 3 - 1 ))
dp_retry 60 bash -c '[ "$(grep -c "\"op\":\"record\"" "$1")" -ge "$2" ]' _ "$TMP/client.jsonl" "$WANT" ||
        dp_fail "fewer than $WANT records reached the client: $(grep -c '"op":"record"' "$TMP/client.jsonl")"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo org.dpipe.Pipeline1.Source RecordsFiltered)" = "t $1" ]' _ $(( N / 3 )) ||
        dp_fail "RecordsFiltered: $(dp_source_property demo RecordsFiltered), expected $(( N / 3 ))"
sleep 1 # anything beyond WANT would be wrong
python3 - "$TMP/client.jsonl" "$N" <<'PY' || dp_fail "the client did not see the transformed rows at dense offsets"
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if '"op":"record"' in l]
n = int(sys.argv[2])
want = [{"id": i, "level": "info", "label": "row-%d" % i} for i in range(n) if i % 3 != 2 and i != 1000]
got = [r["data"] for r in recs]
if got != want:
    bad = next(i for i, (a, b) in enumerate(zip(got + [None] * n, want + [None] * n)) if a != b)
    sys.exit("%d records; first difference at %d: %r, expected %r" % (len(got), bad, got[bad:bad + 2], want[bad:bad + 2]))
offsets = [r["offset"] for r in recs]
assert offsets == list(range(len(want))), "offsets are not dense: %r..." % offsets[:5]
# The bytes as the connector wrote them: compact, in the program's order.
raw = [l for l in open(sys.argv[1]) if '"op":"record"' in l][0]
assert '"data":{"id":0,"level":"info","label":"row-0"}' in raw, raw
PY
dp_assert_eq "t 1" "$(dp_source_property demo RecordsSkipped)" "the row whose id does not convert is skipped"
dp_assert_contains "$(dp_source_property demo LastSkipReason)" \
        'transform: step 4 (convert id:int): \"n/a\" is not a number' "LastSkipReason names the step"
grep -q "peer skipped from seq" "$LOG_DIR/connector-tcp.log" &&
        dp_fail "filtered records look like gaps in the peer's seqs"
grep -q 'Source demo: skipping record at seq 1000: transform: step 4 (convert id:int): "n/a" is not a number' \
        "$LOG_DIR/connector-tcp.log" || dp_fail "the skipped row was not logged with source, record and step"
out=$(dpipectl status demo --no-pager 2>&1)
dp_assert_contains "$out" "Filtered: $(( N / 3 ))" "dpipectl status shows the filtered count"
out=$(dp_sock_client 'send:{"op":"list_sources"}' recv:1)
dp_assert_contains "$out" "\"filtered\":$(( N / 3 ))" "list_sources reports filtered"

# CSV in, typed fields out.
CPORT=$(dp_free_port)
dp_bg socat socat -u "FILE:$TMP/parts.csv" "TCP-LISTEN:$CPORT,reuseaddr,bind=127.0.0.1"
sleep 0.3
out=$(dpipectl add-source parts --type=tcp --address="127.0.0.1:$CPORT" --option=format=csv \
        --transform='convert qty:int,price:float,ok:bool; set from=$source' 2>&1) || dp_fail "add-source parts: $out"
dp_retry 20 bash -c '[ "$(grep -c "\"source\":\"parts\"" "$1")" -ge 2 ]' _ "$TMP/client.jsonl" ||
        dp_fail "the CSV records did not reach the client"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/parts org.dpipe.Pipeline1.Source RecordsSkipped)" = "t 1" ]' ||
        dp_fail "the CSV row with qty x was not skipped: $(dp_source_property parts RecordsSkipped)"
got=$(grep '"source":"parts"' "$TMP/client.jsonl" | sed 's/.*"data":\(.*\)}$/\1/')
dp_assert_eq '{"item":"bolt","qty":12,"price":0.25,"ok":true,"from":"parts"}
{"item":"nut","qty":7,"price":0.5,"ok":false,"from":"parts"}' "$got" "typed CSV records"

# test-transform: the same engine on sample records, and a non-zero exit for a bad program.
out=$(head -n 4 "$TMP/rows.csv" | tail -n 3 | python3 -c "
import csv, json, sys
for r in csv.DictReader(sys.stdin, fieldnames=['id', 'level', 'name', 'extra']): print(json.dumps(r))" |
        dpipectl test-transform "$PROGRAM" 2>"$TMP/tt.err")
dp_assert_eq '{"id":0,"level":"info","label":"row-0"}
{"id":1,"level":"info","label":"row-1"}' "$out" "test-transform output"
dp_assert_eq 'line 3: filtered by step 1 (where level != debug)
2 emitted, 1 filtered, 0 skipped.' "$(cat "$TMP/tt.err")" "test-transform notes"
dp_expect_exit 1 dpipectl test-transform 'drop a;;; select' </dev/null
dp_assert_contains "$err" "step 4 (select): column 17: select needs a list of fields" "test-transform's error"

# Declared sources: Option=transform= reaches the connector untouched (its ';' and '=' too).
printf '[Source]\nType=tcp\nAddress=127.0.0.1:%s\nOption=transform=where level == debug; select id; convert id:int\n' \
        "$PORT" >"$SRCDIR/declared.source"
printf '[Source]\nType=tcp\nAddress=127.0.0.1:%s\nOption=transform=select id;; rename id\n' "$PORT" >"$SRCDIR/broken.source"
dpipectl reload || dp_fail "dpipectl reload failed"
dp_retry 30 bash -c '[ "$(grep -c "\"source\":\"declared\"" "$1")" -ge "$2" ]' _ "$TMP/client.jsonl" $(( N / 3 )) ||
        dp_fail "the declared source's records did not arrive: $(grep -c '"source":"declared"' "$TMP/client.jsonl")"
got=$(awk '/"source":"declared"/ && n < 2 { print; n++ }' "$TMP/client.jsonl" | sed 's/.*"data":\(.*\)}$/\1/')
dp_assert_eq '{"id":2}
{"id":5}' "$got" "the declared source's transform"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/declared org.dpipe.Pipeline1.Source RecordsFiltered)" = "t $1" ]' _ $(( N - N / 3 )) ||
        dp_fail "declared: RecordsFiltered $(dp_source_property declared RecordsFiltered)"
# dpiped does not know the connectors' options: the connector refuses the program, the source
# fails and says why (the file's other sources are not held up).
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/broken org.dpipe.Pipeline1.Source State)" = "s \"failed\"" ]' ||
        dp_fail "broken: State $(dp_source_property broken State 2>&1)"
dp_assert_contains "$(dp_source_property broken LastError)" "invalid transform: step 3 (rename id): column 22: expected OLD=NEW" \
        "broken's LastError names the step"
grep -q "refused source broken: invalid transform: step 3 (rename id): column 22: expected OLD=NEW" "$LOG_DIR/dpiped.log" ||
        dp_fail "the invalid transform of broken.source was not logged with the step: $(grep broken "$LOG_DIR/dpiped.log")"
