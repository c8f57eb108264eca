#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Declarative sources with the real pipeline (writer, tcp connector, dpipe-source streaming):
# a reload that changes one file restarts that source alone; the source whose file did not change
# keeps its connection (Reconnects unchanged) and its records keep coming, none missing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

SRCDIR=$TMP/sources.d
mkdir -p "$SRCDIR"
python3 -c 'print("i,word"); [print("%d,w%d" % (i, i)) for i in range(1000)]' >"$TMP/rows.csv"

dp_start_bus
dp_bg signals stdbuf -oL dbus-monitor --system "type='signal',sender='org.dpipe.Pipeline1'"
dp_start_pipeline --sources-dirs="$SRCDIR"
PORT=$(dp_free_port)
dp_daemon source dpipe-source --file="$TMP/rows.csv" --tcp="127.0.0.1:$PORT" --rate=300 --loop
dp_wait_port 127.0.0.1 "$PORT"

printf '[Source]\nType=tcp\nAddress=127.0.0.1:%s\n' "$PORT" >"$SRCDIR/steady.source"
printf '[Source]\nType=tcp\nAddress=127.0.0.1:%s\n' "$PORT" >"$SRCDIR/edited.source"
dpipectl reload || dp_fail "dpipectl reload failed"

num() { dp_source_property "$1" "$2" | awk '{print $2}'; }
more_than() { [ "$(num "$1" RecordsReceived)" -gt "$2" ] 2>/dev/null; }
dp_retry 30 more_than steady 100 || dp_fail "steady receives no records: $(dp_source_property steady State)"
dp_retry 30 more_than edited 100 || dp_fail "edited receives no records: $(dp_source_property edited State)"
reconnects=$(num steady Reconnects)
before=$(num steady RecordsReceived)
# Each connection the connector opens is one "subscribed" line of dpipe-source (debug log).
subscriptions() { grep -c 'subscribed from' "$LOG_DIR/source.log"; }
dp_assert_eq 2 "$(subscriptions)" "connections before the reload"
signals_before=$(wc -l <"$LOG_DIR/signals.log")

# Change one file; the other one is only touched (same content, newer mtime).
printf '[Source]\nType=tcp\nAddress=127.0.0.1:%s\nOption=heartbeat_ms=1000\n' "$PORT" >"$SRCDIR/edited.source"
touch "$SRCDIR/steady.source"
dpipectl reload || dp_fail "dpipectl reload failed"
grep -q "Reloaded the source files: 0 added, 1 changed, 0 removed, 1 unchanged, 0 with errors" "$LOG_DIR/dpiped.log" ||
        dp_fail "reload summary: $(grep Reloaded "$LOG_DIR/dpiped.log")"
out=$(busctl --system --json=short get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/edited \
        org.dpipe.Pipeline1.Source Options | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["heartbeat_ms"]["data"])')
dp_assert_eq 1000 "$out" "edited runs its new definition"
dp_retry 30 more_than steady $((before + 300)) || dp_fail "steady stopped receiving after the reload"
dp_assert_eq "$reconnects" "$(num steady Reconnects)" "steady's connection not restarted (Reconnects)"
dp_retry 30 more_than edited 10 || dp_fail "edited receives nothing after its restart"
dp_assert_eq 3 "$(subscriptions)" "connections after the reload: edited's new one only"
tail -n +$((signals_before + 1)) "$LOG_DIR/signals.log" >"$TMP/signals-after"
grep -A1 'member=SourceRemoved' "$TMP/signals-after" | grep -q 'string "edited"' || dp_fail "no SourceRemoved for edited"
if grep -A1 -e 'member=SourceRemoved' -e 'member=SourceAdded' "$TMP/signals-after" | grep -q 'string "steady"'; then
        dp_fail "steady was removed or added again on the bus"
fi

# In the queue, steady's rows follow each other without a gap across the reload.
dpipectl tail --connect="$RUNTIME_DIR/client.sock" --no-follow --from=earliest --source=steady --json >"$TMP/steady.jsonl" ||
        dp_fail "dpipectl tail failed"
python3 - "$TMP/steady.jsonl" "$before" <<'PY' || dp_fail "steady's records have a gap"
import json, sys
rows = [int(json.loads(l)["data"]["i"]) for l in open(sys.argv[1]) if '"op":"record"' in l]
if len(rows) <= int(sys.argv[2]) + 300:
    sys.exit("only %d records of steady in the queue" % len(rows))
for a, b in zip(rows, rows[1:]):
    if b != (a + 1) % 1000:
        sys.exit("row %d follows row %d" % (b, a))
print("%d records of steady, consecutive" % len(rows))
PY
