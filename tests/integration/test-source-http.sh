#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-source, batch REST side over HTTP (dpipe-source(1)) driven with curl: paging, limits,
# filters, one record, health, JSON errors with 400/404/405/414, ETag and If-None-Match → 304,
# JSON documents with --records and --infer-types.
source "$(dirname "$0")/lib.sh"
# A version-manager shim for python3 can cost seconds per start; the system one is enough here.
python3() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else command python3 "$@"; fi; }

{
        echo 'id,name,team,score'
        for i in $(seq 0 24); do echo "$i,user$i,team$((i % 3)),$((i * 10))"; done
} >"$TMP/data.csv"
PORT=$(dp_free_port)
URL="http://127.0.0.1:$PORT"
dp_daemon source dpipe-source --file="$TMP/data.csv" --http="127.0.0.1:$PORT" --http-max-limit=10 --infer-types
dp_wait_port 127.0.0.1 "$PORT"

jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Paging: offset/limit, next_offset, total; typed values with --infer-types.
out=$(curl -sf "$URL/records?offset=2&limit=3")
dp_assert_eq '{"records":[{"id":2,"name":"user2","team":"team2","score":20},{"id":3,"name":"user3","team":"team0","score":30},{"id":4,"name":"user4","team":"team1","score":40}],"next_offset":5,"total":25}' "$out" "page 2..4"
# The limit is capped at --http-max-limit.
dp_assert_eq "10 10" "$(curl -sf "$URL/records?limit=1000" | jq_py 'len(d["records"]), d["next_offset"]')" "limit capped"
# Default page, and paging to the end.
dp_assert_eq "5 25" "$(curl -sf "$URL/records?offset=20&limit=10" | jq_py 'len(d["records"]), d["next_offset"]')" "last page"
dp_assert_eq "0 30" "$(curl -sf "$URL/records?offset=30" | jq_py 'len(d["records"]), d["next_offset"]')" "past the end"

# Filters: ?field=value (numbers typed by --infer-types match their text), with paging.
dp_assert_eq "[0, 3, 6]" "$(curl -sf "$URL/records?team=team0&limit=3" | jq_py '[r["id"] for r in d["records"]]')" "filter team0"
dp_assert_eq "7" "$(curl -sf "$URL/records?team=team0&limit=3" | jq_py 'd["next_offset"]')" "filtered next_offset"
dp_assert_eq "[9]" "$(curl -sf "$URL/records?team=team0&score=90" | jq_py '[r["id"] for r in d["records"]]')" "two filters"
dp_assert_eq "[] 25" "$(curl -sf "$URL/records?name=nobody" | jq_py 'd["records"], d["next_offset"]')" "no match"

# One record.
dp_assert_eq '{"id":7,"name":"user7","team":"team1","score":70}' "$(curl -sf "$URL/records/7")" "/records/7"

# Errors: JSON bodies and the right status codes.
check_status() { # URL-or-args... expected-status what
        local want=$1 what=$2 code body
        shift 2
        body=$(curl -s -o "$TMP/body" -w '%{http_code}' "$@")
        code=$body
        dp_assert_eq "$want" "$code" "$what status"
        python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["status"]==int(sys.argv[2]) and d["message"]' \
                "$TMP/body" "$want" || dp_fail "$what: body is not a JSON error: $(cat "$TMP/body")"
}
check_status 404 "record past the end" "$URL/records/25"
check_status 400 "non-numeric record" "$URL/records/abc"
check_status 404 "unknown path" "$URL/nothing"
check_status 400 "bad offset" "$URL/records?offset=-1"
check_status 400 "bad limit" "$URL/records?limit=x"
check_status 405 "POST" -X POST -d 'x=1' "$URL/records"
check_status 405 "DELETE" -X DELETE "$URL/records/1"
check_status 414 "long URI" "$URL/records?name=$(head -c 20000 /dev/zero | tr '\0' a)"
dp_assert_contains "$(curl -si -X PUT "$URL/records")" "Allow: GET, HEAD" "405 carries Allow"

# ETag and If-None-Match.
etag=$(curl -sfi "$URL/records?offset=1&limit=2" | tr -d '\r' | sed -n 's/^ETag: //Ip')
[ -n "$etag" ] || dp_fail "no ETag on a page"
dp_assert_eq 304 "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/records?offset=1&limit=2")" "If-None-Match"
dp_assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/records?offset=2&limit=2")" "other page, other ETag"
dp_assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "nope"' "$URL/records?offset=1&limit=2")" "stale ETag"

# SIGHUP without --follow: a broken file keeps the old data (and its ETags); a good one replaces
# it and the ETags change.
cp "$TMP/data.csv" "$TMP/data.csv.orig"
printf 'id,name\n1,"unterminated\n' >"$TMP/data.csv"
kill -HUP "${DP_PIDS[source]}"
dp_retry 10 grep -q "data.csv:2:3: unterminated quoted field" "$LOG_DIR/source.log" || dp_fail "broken reload not reported"
dp_retry 10 grep -q "still serving the previous 25 rows" "$LOG_DIR/source.log" || dp_fail "no keep-old-data notice"
dp_assert_eq 304 "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/records?offset=1&limit=2")" "ETag after a failed reload"
printf 'id,name\n1,new\n' >"$TMP/data.csv"
kill -HUP "${DP_PIDS[source]}"
dp_retry 10 bash -c "curl -sf '$URL/records/0' | grep -q new" || dp_fail "good reload not served"
dp_assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/records?offset=1&limit=2")" "ETag after a reload"
cp "$TMP/data.csv.orig" "$TMP/data.csv"
kill -HUP "${DP_PIDS[source]}"
dp_retry 10 bash -c "curl -sf '$URL/records/24' | grep -q user24" || dp_fail "reload back"

# Health.
dp_assert_eq "ok 25" "$(curl -sf "$URL/health" | jq_py 'd["status"], d["rows"]')" "health"

# A JSON document: records found at --records, and found automatically.
cat >"$TMP/doc.json" <<'JSON'
{"meta": {"source": "test"}, "page": {"items": [{"k": "a"}, {"k": "b"}]}, "other": [{"x": 1}]}
JSON
PORT2=$(dp_free_port)
dp_daemon source2 dpipe-source --file="$TMP/doc.json" --records=/page/items --http="127.0.0.1:$PORT2"
dp_wait_port 127.0.0.1 "$PORT2"
dp_assert_eq '{"records":[{"k":"a"},{"k":"b"}],"next_offset":2,"total":2}' "$(curl -sf "http://127.0.0.1:$PORT2/records")" "--records"
printf '{"count": 2, "rows": [{"k": 1}, {"k": 2}]}' >"$TMP/auto.json"
PORT3=$(dp_free_port)
dp_daemon source3 dpipe-source --file="$TMP/auto.json" --http="127.0.0.1:$PORT3"
dp_wait_port 127.0.0.1 "$PORT3"
dp_assert_eq '{"k":2}' "$(curl -sf "http://127.0.0.1:$PORT3/records/1")" "auto-detected records"
