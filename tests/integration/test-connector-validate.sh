#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Only valid JSON reaches a client, whatever a source sends: records with NaN or Infinity, bytes
# that are not UTF-8, raw control characters are refused where they enter — every connector type
# (tcp, file, http) and format (jsonl, csv, lines, dpipe, json documents) — counted as skipped with
# a reason (Source properties RecordsSkipped and LastSkipReason, `dpipectl status`), and the good
# records around them go on. An HTML page where records are expected is an error in LastError and
# `dpipectl status`, not an active source with 0 records. A D-Bus option given as NaN or Infinity is
# refused with InvalidArgs instead of landing in the registry. The real pipeline: writer, the three
# connectors, dpiped, dpipe-client.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpipe-connector-file dpipe-connector-http dpiped dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
LINES="python3 $SOURCE_DIR/tests/integration/edge-lines.py"
SERVER="$SOURCE_DIR/tests/integration/edge-server.py"
WWW="$TMP/www"
mkdir -p "$WWW"

# What the sources send: a good record, the bad ones, a good record.
printf '{"ok":1}\n{"n":NaN}\n{"n":Infinity}\n{"n":-Infinity}\n{"s":"\xff"}\n{"s":"a\x01b"}\n{"ok":2}\n' >"$TMP/bad.jsonl"
printf 'plain\n\xff\xfe\nctl\x01x\n' >"$TMP/bad.txt"
printf 'a,b\n1,x\n2,\xc3\x28\n3,y\n' >"$TMP/bad.csv"
printf '%s\n' '{"op":"record","seq":0,"data":{"ok":1}}' '{"op":"record","seq":1,"data":{"n":NaN}}' \
        '{"op":"record","seq":2,"data":{"ok":2}}' >"$TMP/bad.dpipe"
printf '[{"ok":1}, {"n":NaN},\n {"ok":2}]' >"$WWW/nan.json"
printf '{"ok":1}\n{"n":NaN}\n{"ok":2}\n' >"$WWW/nan.jsonl"
printf '<!DOCTYPE html>\n<html><head><title>Login</title></head><body>Please log in</body></html>\n' >"$WWW/page.html"

dp_start_bus
dp_start_pipeline
dp_daemon connector-file dpipe-connector-file --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_daemon connector-http dpipe-connector-http --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-file.sock"
dp_wait_socket "$RUNTIME_DIR/connector-http.sock"
WEB=$(dp_free_port)
dp_bg web python3 "$SERVER" http "$WEB" "$WWW"
dp_wait_port 127.0.0.1 "$WEB"
serve() { # serve FILE: a TCP peer that sends FILE; sets PORT
        PORT=$(dp_free_port)
        dp_bg "peer-$PORT" python3 "$SERVER" tcp "$PORT" "$1"
        dp_wait_port 127.0.0.1 "$PORT"
}
dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"

add() { # add NAME TYPE ADDRESS [OPTION...]
        local name=$1 type=$2 address=$3 out
        shift 3
        out=$(dpipectl add-source "$name" --type="$type" --address="$address" "${@/#/--option=}" 2>&1) ||
                dp_fail "add-source $name: $out"
}
serve "$TMP/bad.jsonl"; add tcp-jsonl tcp "127.0.0.1:$PORT" format=jsonl
serve "$TMP/bad.txt"; add tcp-lines tcp "127.0.0.1:$PORT" format=lines
serve "$TMP/bad.csv"; add tcp-csv tcp "127.0.0.1:$PORT" format=csv
serve "$TMP/bad.dpipe"; add tcp-dpipe tcp "127.0.0.1:$PORT" format=dpipe heartbeat_ms=60000
add file-jsonl file "$TMP/bad.jsonl"
add file-csv file "$TMP/bad.csv"
add file-lines file "$TMP/bad.txt" format=lines
add http-array http "http://127.0.0.1:$WEB/nan.json" interval_ms=300
add http-jsonl http "http://127.0.0.1:$WEB/nan.jsonl" interval_ms=300
add http-html http "http://127.0.0.1:$WEB/page.html" interval_ms=300

prop() { dp_source_property "${1//-/_2d}" "$2" 2>/dev/null; } # (sd_bus_path_encode: '-' is _2d)
expect() { # expect NAME RECORDS SKIPPED REASON
        dp_retry 15 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/$(sed s/-/_2d/g <<<"$1") org.dpipe.Pipeline1.Source RecordsReceived)" = "t $2" ] &&
                [ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/$(sed s/-/_2d/g <<<"$1") org.dpipe.Pipeline1.Source RecordsSkipped)" = "t $3" ]' _ "$1" "$2" "$3" ||
                dp_fail "$1: expected $2 records and $3 skipped, got $(prop "$1" RecordsReceived), $(prop "$1" RecordsSkipped)"
        dp_assert_contains "$(prop "$1" LastSkipReason)" "$4" "LastSkipReason of $1"
}
expect tcp-jsonl 2 5 'line 6: not valid JSON: a raw control character at byte 8'
expect tcp-lines 2 1 'line 2: invalid UTF-8 at byte 1'
expect tcp-csv 2 1 'line 3: invalid UTF-8 at byte 3'
expect tcp-dpipe 2 1 'line 2: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 36'
expect file-jsonl 2 5 'line 6: not valid JSON: a raw control character at byte 8'
expect file-csv 2 1 'line 3: invalid UTF-8 at byte 3'
expect file-lines 2 1 'line 2: invalid UTF-8 at byte 1'
expect http-array 2 1 'record 1: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 6'
expect http-jsonl 2 1 'line 2: not valid JSON: NaN or Infinity, which are not JSON numbers at byte 6'
# Each reason is in the connectors' logs too, with the source.
grep -q 'Source http-array: skipping record at record 1: not valid JSON: NaN' "$LOG_DIR/connector-http.log" ||
        dp_fail "the skip is not logged"

# What the client got: strict JSON on every line, the good records of every source.
dp_retry 10 bash -c '[ "$(grep -c "\"op\":\"record\"" "$1")" -ge 18 ]' _ "$TMP/client.jsonl" ||
        dp_fail "the client got $(grep -c '"op":"record"' "$TMP/client.jsonl") records, expected 18"
sleep 0.5
$LINES strict "$TMP/client.jsonl" || dp_fail "a line the client got is not strict JSON"
for s in tcp-jsonl tcp-dpipe file-jsonl http-array http-jsonl; do
        dp_assert_eq '{"ok":1}
{"ok":2}' "$($LINES data "$TMP/client.jsonl" "$s")" "records of $s"
done
for s in tcp-lines file-lines; do
        dp_assert_eq '{"line":"plain"}
{"line":"ctl\u0001x"}' "$($LINES data "$TMP/client.jsonl" "$s" | sed 's/\x01/\\u0001/')" "records of $s (control characters escaped)"
done
for s in tcp-csv file-csv; do
        dp_assert_eq '{"a":"1","b":"x"}
{"a":"3","b":"y"}' "$($LINES data "$TMP/client.jsonl" "$s")" "records of $s"
done

# dpipectl status shows the skips.
out=$(dpipectl status tcp-jsonl --no-pager 2>&1) || dp_fail "dpipectl status: $out"
dp_assert_contains "$out" "Skipped: 5 (last: line 6: not valid JSON: a raw control character at byte 8)" "status shows skips"

# An HTML page where records are expected: an error, with the URL, the type and what was expected.
want="GET http://127.0.0.1:$WEB/page.html: the response is an HTML page (Content-Type text/html), not JSON, JSON lines or CSV"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/http_2dhtml org.dpipe.Pipeline1.Source State)" = "s \"backoff\"" ]' ||
        dp_fail "an HTML page did not put the source in backoff: $(prop http-html State)"
dp_assert_eq "s \"$want\"" "$(prop http-html LastError)" "LastError of an HTML page"
out=$(dpipectl status http-html --no-pager 2>&1) || true
dp_assert_contains "$out" "State: backoff" "status of an HTML page"
dp_assert_contains "$out" "Last error: $want" "status shows the HTML page's error"
dp_assert_eq 0 "$($LINES count "$TMP/client.jsonl" http-html)" "records of the HTML page"

# D-Bus options must be finite: NaN and Infinity are refused, naming the option, and nothing is kept.
for v in nan inf; do
        name=$(dp_bus_error dp_manager AddSource 'ssa{sv}' weird http 2 address s "http://127.0.0.1:$WEB/nan.json" \
                weight d "$v")
        dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs "$name" "AddSource with weight=$v"
done
out=$(dp_manager AddSource 'ssa{sv}' weird http 2 address s "http://127.0.0.1:$WEB/nan.json" weight d nan 2>&1) || true
dp_assert_contains "$out" 'Option "weight" is NaN; options must be finite numbers.' "the error names the option"
[ ! -e "$STATE_DIR/sources/weird.source" ] || dp_fail "a NaN option landed in the registry: $(cat "$STATE_DIR/sources/weird.source")"
! grep -rq '"weight"' "$STATE_DIR/sources/" || dp_fail "the option landed in the registry: $(grep -r weight "$STATE_DIR/sources/")"
name=$(dp_bus_error dp_manager GetSource s weird)
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSource "$name" "the refused source does not exist"
dp_log "OK"
