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

command -v promtool >/dev/null || dp_fail "promtool is not installed (Debian: prometheus; tools/check installs it)"
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
out=$(dpipectl -q status 2>&1) && dp_fail "dpipectl -q status exits 0 while a source is degraded"
dp_assert_eq "" "$out" "dpipectl -q status prints nothing"
list=$(dpipectl list-sources --no-legend)
[[ "$list" =~ ^app\ +file\ +degraded\ +[^\ ]+\ +5\ +1$ ]] || dp_fail "list-sources shows the skip: $list"
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
subs=$(dp_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSubscriptions) ||
        dp_fail "nobody may not call ListSubscriptions: $subs"
dp_assert_contains "$subs" '"metr"' "ListSubscriptions names the durable subscription"

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

# A tcp source whose peer is not there yet: backoff, its error with a time, status red/yellow
# and exit 1; once the peer is up it is active and the error is shown as past.
dp_daemon connector-tcp dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-tcp.sock"
SPORT=$(dp_free_port)
printf 'i,name\n1,a\n2,b\n' >"$TMP/rows.csv"
dpipectl add-source late --type=tcp --address="127.0.0.1:$SPORT" || dp_fail "add-source late"
dp_retry 20 bash -c '[ "$(dpipectl status late | sed -n "s/^ *State: \([a-z]*\).*/\1/p")" = backoff ]' ||
        dp_fail "late is not in backoff: $(dpipectl status late)"
t=$(dp_source_property late LastErrorUSec | awk '{print $2}')
[ "${t:-0}" -gt 0 ] || dp_fail "LastErrorUSec of a failing source is $t"
dp_assert_contains "$(metric 'dpipe_source_last_error_timestamp_seconds{source="late"}')" "." "error timestamp metric"
out=$(dpipectl status 2>&1) && dp_fail "status exits 0 with a source in backoff: $out"
dp_assert_contains "$out" "backoff late (tcp) 127.0.0.1:$SPORT: connect to 127.0.0.1:$SPORT failed" "status names the failing source and why"
dp_bg source dpipe-source --file="$TMP/rows.csv" --tcp="127.0.0.1:$SPORT"
dp_retry 30 bash -c '[ "$(dpipectl status late | sed -n "s/^ *State: \([a-z]*\).*/\1/p")" = active ]' ||
        dp_fail "late did not become active: $(dpipectl status late)"
dp_assert_contains "$(dpipectl status late)" "Last error: connect to 127.0.0.1:$SPORT failed" "the old error stays visible"
dp_assert_contains "$(dpipectl status late)" "ago, recovered)" "... marked as past, with its time"
dpipectl remove-source late || dp_fail "remove-source late"
dp_kill_daemon connector-tcp

# After the window without skips, the source is active again, and status is green (exit 0).
wait_metric 'dpipe_source_state{source="app",state="active"}' 1
dp_assert_eq 's "active"' "$(dp_source_property app State)" "State after the window"
dpipectl status >"$TMP/st.txt" 2>&1 || dp_fail "dpipectl status fails once healthy: $(cat "$TMP/st.txt")"

# dpipectl top --json: the same counters as /metrics (nothing moves now, so they must be equal).
top=$(dpipectl top --json --interval=0.2) || dp_fail "dpipectl top --json: $top"
curl -sf "$URL" >"$TMP/m-top.txt"
python3 - "$top" "$TMP/m-top.txt" <<'PY' || dp_fail "top --json and /metrics disagree: $top"
import json, sys
t = json.loads(sys.argv[1])
m = {}
for l in open(sys.argv[2]):
    if not l.startswith("#"):
        k, _, v = l.rstrip("\n").rpartition(" ")
        m[k] = v
a = {s["name"]: s for s in t["sources"]}["app"]
for key, metric in (("records", "records_total"), ("bytes", "bytes_total"), ("skipped", "records_skipped_total")):
    assert str(a[key]) == m['dpipe_source_%s{source="app"}' % metric], (key, a, m)
assert a["records"] == 5 and a["skipped"] == 1 and a["state"] == "active", a
assert a["records_per_sec"] == 0, a
sub = [s for s in t["subscriptions"] if s["subscription"] == "metr"][0]
labels = '{subscription="metr",client="%s"}' % sub["client"]
# 7 records queued now (5 of app, 2 of late), all sent to metr, 2 of them acked.
assert str(sub["lag"]) == m["dpipe_subscription_lag_records" + labels] == "5", (sub, m)
assert str(sub["records_sent"]) == m["dpipe_subscription_records_sent_total" + labels] == "7", (sub, m)
assert str(sub["in_flight"]) == m["dpipe_subscription_in_flight_records" + labels], (sub, m)
assert str(t["queue_next_offset"]) == m["dpipe_queue_next_offset"] == "7", t
assert str(t["clients"]) == m["dpipe_clients"], t
PY

# dpipectl top on a terminal: redrawn in place, records arriving show up, q quits.
python3 "$DPIPED_TESTS_DIR/dpipectl-top-pty.py" app "$DATA" 5 20 || dp_fail "dpipectl top on a terminal"
wait_metric 'dpipe_source_records_total{source="app"}' 25
wait_metric dpipe_records_written_total 27

# A writer that goes away: dpipe_writer_up 0, its figures absent, the rest still served.
dp_kill_daemon writer
wait_metric dpipe_writer_up 0
curl -sf "$URL" >"$TMP/m2.txt"
grep -q '^dpipe_writer_sync_duration_seconds' "$TMP/m2.txt" && dp_fail "stale writer figures after it stopped"
dp_assert_eq 27 "$(awk '$1 == "dpipe_records_written_total" { print $2 }' "$TMP/m2.txt")" "records written without the writer"
promtool check metrics <"$TMP/m2.txt" || dp_fail "promtool check metrics (no writer)"

# A non-loopback address is refused without --allow-plaintext.
if dpiped --runtime-dir="$TMP/x" --state-dir="$TMP/x" --listen=none --metrics=0.0.0.0:1 >"$TMP/refuse.log" 2>&1; then
        dp_fail "dpiped served metrics on 0.0.0.0 without --allow-plaintext"
fi
dp_assert_contains "$(cat "$TMP/refuse.log")" "not a loopback address" "refusal says why"

# Socket activation: a socket named "metrics" (dpiped-metrics.socket) is the metrics endpoint,
# also without --metrics (a drop-in that replaces ExecStart= must not make it a client port).
dp_kill_daemon dpiped
MP2=$(dp_free_port)
dp_daemon dpiped-sa systemd-socket-activate -l "127.0.0.1:$MP2" --fdname=metrics -E DBUS_SYSTEM_BUS_ADDRESS \
        "$(command -v dpiped)" --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=none
dp_wait_port 127.0.0.1 "$MP2"
curl -sf --max-time 20 "http://127.0.0.1:$MP2/metrics" >"$TMP/m3.txt" || dp_fail "GET /metrics on the passed socket"
dp_assert_eq 27 "$(awk '$1 == "dpipe_records_written_total" { print $2 }' "$TMP/m3.txt")" "metrics on the passed socket"
dp_wait_bus_name org.dpipe.Pipeline1
grep -q "Serving metrics on http://127.0.0.1:$MP2/metrics (socket passed by systemd)" "$LOG_DIR/dpiped-sa.log" ||
        dp_fail "dpiped did not say it serves the passed socket"

# The example configuration and alert rules of dpiped(8): the man page shows the files of
# docs/monitoring/, which promtool accepts, and the rules fire when they should.
for f in prometheus.yml dpipe-alerts.yml; do
        python3 - "$SOURCE_DIR/man/dpiped.8" "$f" >"$TMP/man-$f" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
a = lines.index('.\\" BEGIN ' + sys.argv[2]) + 1
b = lines.index('.\\" END ' + sys.argv[2])
for l in lines[a:b]:
    print(l.replace("\\&", "").replace("\\-", "-").replace("\\e", "\\"))
PY
        grep -v '^#' "$SOURCE_DIR/docs/monitoring/$f" | diff -u - "$TMP/man-$f" ||
                dp_fail "dpiped(8) does not show docs/monitoring/$f as it is"
done
promtool check rules "$SOURCE_DIR/docs/monitoring/dpipe-alerts.yml" || dp_fail "promtool check rules"
(cd "$SOURCE_DIR/docs/monitoring" && promtool check config prometheus.yml) || dp_fail "promtool check config"
(cd "$SOURCE_DIR/docs/monitoring" && promtool test rules dpipe-alerts.test.yml) || dp_fail "promtool test rules"
exit 0
