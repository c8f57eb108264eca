#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# GET /metrics with real traffic: a file source with known lines (one malformed), a durable
# subscription that acked part of them. The scraped values must be what was sent (records, bytes,
# skipped, the subscription's lag, the queue's offsets), the exposition must pass
# `promtool check metrics`, the writer's figures (sync histogram, queue bytes) must come through,
# and the endpoint answers only GET/HEAD /metrics. The source is degraded while it skips, and
# dpipectl status says so (yellow, exit 1).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

dp_start_bus
MPORT=$(dp_free_port)
URL="http://127.0.0.1:$MPORT/metrics"
DATA="$TMP/data/app.jsonl"
mkdir -p "$TMP/data"
# Known records: 5 good lines {"n":N} of 7 bytes each, and a malformed one (line 4) among them.
for i in 0 1 2; do echo "{\"n\":$i}"; done >"$DATA"
echo '{"n": broken' >>"$DATA"
for i in 3 4; do echo "{\"n\":$i}"; done >>"$DATA"

dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --sync=batch
dp_wait_socket "$RUNTIME_DIR/writer.sock"
dp_daemon connector-file dpipe-connector-file --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-file.sock"
dp_dpiped --metrics="127.0.0.1:$MPORT" --degraded-sec=5
dp_wait_port 127.0.0.1 "$MPORT"

# metric NAME{LABELS}: its value in a fresh scrape ("" if absent).
metric() {
        curl -sf "$URL" | awk -v k="$1" '$1 == k { print $2 }'
}
wait_metric() { # wait_metric SERIES VALUE
        dp_retry 20 bash -c '[ "$(curl -sf "$1" | awk -v k="$2" '"'"'$1 == k { print $2 }'"'"')" = "$3" ]' _ "$URL" "$1" "$2" ||
                dp_fail "metric $1 is \"$(metric "$1")\", expected $2"
}

# Before any source: the endpoint works, the exposition is valid.
curl -sf "$URL" >"$TMP/m0.txt" || dp_fail "GET /metrics failed"
promtool check metrics <"$TMP/m0.txt" || dp_fail "promtool check metrics (no sources): $(cat "$TMP/m0.txt")"
grep -q '^# TYPE dpipe_records_written_total counter$' "$TMP/m0.txt" || dp_fail "no TYPE line of dpipe_records_written_total"
grep -q '^process_resident_memory_bytes [1-9]' "$TMP/m0.txt" || dp_fail "no process_resident_memory_bytes"
ctype=$(curl -sf -o /dev/null -w '%{content_type}' "$URL")
dp_assert_eq "text/plain; version=0.0.4; charset=utf-8" "$ctype" "Content-Type"

# Other paths and methods.
dp_assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/")" "GET /"
dp_assert_eq 404 "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$MPORT/metrics/x")" "GET /metrics/x"
dp_assert_eq 405 "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "$URL")" "POST /metrics"
allow=$(curl -s -o /dev/null -D - -X DELETE "$URL" | tr -d '\r' | sed -n 's/^Allow: //Ip')
dp_assert_eq "GET, HEAD" "$allow" "Allow header of a 405"
dp_assert_eq 200 "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL")" "HEAD /metrics"

busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager AddSource 'ssa{sv}' \
        app file 1 address s "$DATA" >/dev/null || dp_fail "AddSource app"

wait_metric 'dpipe_source_records_total{source="app"}' 5
wait_metric 'dpipe_records_written_total' 5
dp_assert_eq 35 "$(metric 'dpipe_source_bytes_total{source="app"}')" "bytes of app"
dp_assert_eq 1 "$(metric 'dpipe_source_records_skipped_total{source="app"}')" "skipped of app"
dp_assert_eq 0 "$(metric 'dpipe_queue_first_offset')" "first offset"
dp_assert_eq 5 "$(metric 'dpipe_queue_next_offset')" "next offset"
dp_assert_eq 1 "$(metric 'dpipe_source_info{source="app",type="file"}')" "source info"
dp_assert_eq 1 "$(metric 'dpipe_connector_up{type="file"}')" "connector up"

# The skip makes the source degraded (for --degraded-sec=5), the metric and the bus agree.
dp_assert_eq 1 "$(metric 'dpipe_source_state{source="app",state="degraded"}')" "state degraded"
dp_assert_eq 0 "$(metric 'dpipe_source_state{source="app",state="active"}')" "not active while degraded"
dp_assert_eq 's "degraded"' "$(dp_source_property app State)" "State on the bus"
dp_assert_contains "$(dp_source_property app LastSkipReason)" "line 4" "LastSkipReason names the line"
out=$(dpipectl status 2>&1) && dp_fail "dpipectl status exits 0 while a source is degraded: $out"
dp_assert_contains "$out" "degraded" "status names the degraded source"
dpipectl status app >"$TMP/st-app.txt" 2>&1 || true
dp_assert_contains "$(cat "$TMP/st-app.txt")" "Skipped: 1" "status app shows the skip"
dp_assert_contains "$(cat "$TMP/st-app.txt")" "line 4" "status app shows where"

# A durable subscription that got all 5 records and acked the first 2: lag 3.
dp_bg sub python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$DPIPED_PORT" \
        'send:{"op":"subscribe","from":"earliest","name":"metr","window":100}' recv:1 recv-records:5 \
        'send:{"op":"ack","offset":1}' sleep:120
dp_retry 20 bash -c '[ "$(curl -sf "$1" | sed -n "s/^dpipe_subscription_lag_records{subscription=\"metr\",.*} //p")" = 3 ]' _ "$URL" ||
        dp_fail "lag of metr: $(curl -sf "$URL" | grep subscription_lag)"
sent=$(curl -sf "$URL" | sed -n 's/^dpipe_subscription_records_sent_total{subscription="metr",.*} //p')
dp_assert_eq 5 "$sent" "records sent to metr"
dp_assert_eq 1 "$(metric dpipe_clients)" "clients"

# The writer's figures: it synced (--sync=batch) at least once, and the queue has bytes.
wait_metric dpipe_writer_up 1
curl -sf "$URL" >"$TMP/m1.txt"
n_sync=$(awk '$1 == "dpipe_writer_sync_duration_seconds_count" { print $2 }' "$TMP/m1.txt")
[ "${n_sync:-0}" -ge 1 ] || dp_fail "no sync counted: $(grep sync "$TMP/m1.txt")"
inf=$(awk '$1 == "dpipe_writer_sync_duration_seconds_bucket{le=\"+Inf\"}" { print $2 }' "$TMP/m1.txt")
dp_assert_eq "$n_sync" "$inf" "+Inf bucket = count"
qb=$(awk '$1 == "dpipe_queue_bytes" { print $2 }' "$TMP/m1.txt")
[ "${qb:-0}" -gt 35 ] || dp_fail "dpipe_queue_bytes is \"$qb\""
grep -q '^dpipe_writer_disk_free_bytes [1-9]' "$TMP/m1.txt" || dp_fail "no dpipe_writer_disk_free_bytes"
promtool check metrics <"$TMP/m1.txt" || dp_fail "promtool check metrics (with traffic): $(cat "$TMP/m1.txt")"

# After the window without skips, the source is active again, and status is green (exit 0).
wait_metric 'dpipe_source_state{source="app",state="active"}' 1
dp_assert_eq 's "active"' "$(dp_source_property app State)" "State after the window"
dpipectl status >"$TMP/st.txt" 2>&1 || dp_fail "dpipectl status fails once healthy: $(cat "$TMP/st.txt")"

# A writer that goes away: dpipe_writer_up 0, its figures absent, the rest still served.
dp_kill_daemon writer
wait_metric dpipe_writer_up 0
curl -sf "$URL" >"$TMP/m2.txt"
grep -q '^dpipe_writer_sync_duration_seconds' "$TMP/m2.txt" && dp_fail "stale writer figures after it stopped"
dp_assert_eq 5 "$(awk '$1 == "dpipe_records_written_total" { print $2 }' "$TMP/m2.txt")" "records written without the writer"
promtool check metrics <"$TMP/m2.txt" || dp_fail "promtool check metrics (no writer)"

# A non-loopback address is refused without --allow-plaintext.
if dpiped --runtime-dir="$TMP/x" --state-dir="$TMP/x" --listen=none --metrics=0.0.0.0:1 >"$TMP/refuse.log" 2>&1; then
        dp_fail "dpiped served metrics on 0.0.0.0 without --allow-plaintext"
fi
dp_assert_contains "$(cat "$TMP/refuse.log")" "not a loopback address" "refusal says why"
exit 0
