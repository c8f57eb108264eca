#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped's D-Bus API (org.dpipe.Pipeline1(5)) on a private system bus with the real policy: every member,
# every error name, the signals, the per-source objects, the reference introspection data, the
# policy as "nobody", forwarding to the connector, and persistence across SIGKILL.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

# The reference XML is what the daemon says.
dpiped --bus-introspect >"$TMP/introspect.xml" || dp_fail "dpiped --bus-introspect failed"
diff -u "$SOURCE_DIR/dbus/org.dpipe.Pipeline1.xml" "$TMP/introspect.xml" ||
        dp_fail "dbus/org.dpipe.Pipeline1.xml differs from dpiped --bus-introspect"

dp_start_bus
dp_bg monitor stdbuf -oL dbus-monitor --system "type='signal',sender='org.dpipe.Pipeline1'"
dp_fake_connector tcp
dp_dpiped

# ... and what the running daemon shows on the bus has the same interfaces, with argument names.
busctl --system introspect --xml-interface org.dpipe.Pipeline1 /org/dpipe/Pipeline1 >"$TMP/live-manager.xml"
python3 - "$SOURCE_DIR/dbus/org.dpipe.Pipeline1.xml" "$TMP/live-manager.xml" <<'PY' || dp_fail "live introspection differs from the reference"
import sys, xml.etree.ElementTree as ET
ref = {i.get("name"): ET.tostring(i) for i in ET.parse(sys.argv[1]).getroot().findall("interface")}
live = {i.get("name"): ET.tostring(i) for i in ET.parse(sys.argv[2]).getroot().findall("interface")}
name = "org.dpipe.Pipeline1.Manager"
if ref[name] != live.get(name):
    sys.exit("Manager interface differs")
PY
grep -q '<arg type="a{sv}" name="options" direction="in"/>' "$TMP/live-manager.xml" ||
        dp_fail "AddSource arguments are not named"

# Properties.
dp_assert_eq "s \"$(dpiped --version | cut -d' ' -f2)\"" "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager Version)" "Version"
for p in QueueFirstOffset QueueNextOffset RecordsWritten; do
        dp_assert_eq "t 0" "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager $p)" "$p"
done
dp_assert_eq "u 0" "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager Clients)" "Clients"

# AddSource registers, persists and forwards to the connector.
out=$(dp_manager AddSource 'ssa{sv}' demo tcp 2 address s 127.0.0.1:9 format s jsonl)
dp_assert_eq 'o "/org/dpipe/Pipeline1/source/demo"' "$out" "AddSource reply"
dp_retry 5 grep -q '"op": "add"' "$LOG_DIR/connector-tcp.messages" || dp_fail "the connector got no add"
grep -q '"name": "demo", "op": "add", "options": {"address": "127.0.0.1:9", "format": "jsonl"}, "paused": false' \
        "$LOG_DIR/connector-tcp.messages" || dp_fail "wrong add message: $(cat "$LOG_DIR/connector-tcp.messages")"
test -s "$STATE_DIR/sources/demo.source" || dp_fail "source not persisted"
dp_retry 5 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo org.dpipe.Pipeline1.Source State)" = "s \"active\"" ]' ||
        dp_fail "State did not become active"
dp_assert_eq 't 7' "$(dp_source_property demo RecordsReceived)" "RecordsReceived"
dp_assert_eq 't 700' "$(dp_source_property demo BytesReceived)" "BytesReceived"
dp_assert_eq 'u 1' "$(dp_source_property demo Reconnects)" "Reconnects"
dp_assert_eq 's "127.0.0.1:9"' "$(dp_source_property demo Address)" "Address"
dp_assert_eq 's "tcp"' "$(dp_source_property demo Type)" "Type"
dp_assert_eq 's "demo"' "$(dp_source_property demo Name)" "Name"
dp_assert_eq 's ""' "$(dp_source_property demo LastError)" "LastError"
dp_assert_eq 't 1' "$(dp_source_property demo LastRecordUSec)" "LastRecordUSec"
dp_assert_eq 't 2' "$(dp_source_property demo LastHeartbeatUSec)" "LastHeartbeatUSec"

# A name that needs escaping in an object path; the http type without a connector running.
out=$(dp_manager AddSource 'ssa{sv}' 'web-1.x' http 2 address s http://127.0.0.1:1/records interval_ms u 500)
dp_assert_eq 'o "/org/dpipe/Pipeline1/source/web_2d1_2ex"' "$out" "escaped object path"
dp_assert_eq 'o "/org/dpipe/Pipeline1/source/web_2d1_2ex"' "$(dp_manager GetSource s web-1.x)" "GetSource"
dp_assert_eq 's "connecting"' "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/web_2d1_2ex org.dpipe.Pipeline1.Source State)" \
        "a source whose connector is not there"
dp_assert_contains "$(busctl --system tree org.dpipe.Pipeline1)" "/org/dpipe/Pipeline1/source/web_2d1_2ex" "busctl tree"

out=$(dp_manager ListSources)
dp_assert_eq 'a(ssso) 2 "demo" "tcp" "active" "/org/dpipe/Pipeline1/source/demo" "web-1.x" "http" "connecting" "/org/dpipe/Pipeline1/source/web_2d1_2ex"' "$out" "ListSources"

# Every error name.
dp_assert_eq org.dpipe.Pipeline1.Error.SourceExists "$(dp_bus_error dp_manager AddSource 'ssa{sv}' demo tcp 1 address s 127.0.0.1:9)" "duplicate"
dp_assert_eq org.dpipe.Pipeline1.Error.UnknownType "$(dp_bus_error dp_manager AddSource 'ssa{sv}' x carrier-pigeon 1 address s a)" "unknown type"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs "$(dp_bus_error dp_manager AddSource 'ssa{sv}' 'bad/name' tcp 1 address s 127.0.0.1:9)" "bad name"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs "$(dp_bus_error dp_manager AddSource 'ssa{sv}' "$(printf 'n%.0s' {1..65})" tcp 1 address s 127.0.0.1:9)" "long name"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs "$(dp_bus_error dp_manager AddSource 'ssa{sv}' x tcp 0)" "missing address"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs "$(dp_bus_error dp_manager AddSource 'ssa{sv}' x tcp 2 address s 127.0.0.1:9 extra as 1 a)" "non-basic option"
# The address's form, option names and values are the connector's to check (its option table):
# the fake connector's check refuses "refuse-check:" addresses, and dpiped passes its message on.
err=$(SYSTEMD_LOG_LEVEL=debug dp_manager AddSource 'ssa{sv}' x tcp 1 address s refuse-check:1 2>&1 || true)
dp_assert_contains "$err" "org.freedesktop.DBus.Error.InvalidArgs" "the connector's refusal"
dp_assert_contains "$err" "refused by the fake connector's check" "the connector's message"
for m in RemoveSource PauseSource ResumeSource GetSource; do
        dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSource "$(dp_bus_error dp_manager $m s nope)" "$m of an unknown source"
done
test ! -e "$STATE_DIR/sources/x.source" || dp_fail "a refused source was persisted"

# Pause and resume: state, persistence, the connector is told.
dp_manager PauseSource s demo
dp_assert_eq 's "paused"' "$(dp_source_property demo State)" "State after PauseSource"
dp_assert_eq 'b true' "$(dp_source_property demo Paused)" "Paused"
grep -Eq '"paused": *true' "$STATE_DIR/sources/demo.source" || dp_fail "pause not persisted"
dp_retry 5 grep -q '"op": "pause"' "$LOG_DIR/connector-tcp.messages" || dp_fail "the connector was not told to pause"
dp_manager PauseSource s demo # a no-op is fine

# A crash: everything comes back, paused stays paused, and the connector gets every source again.
dp_kill_daemon dpiped KILL
: >"$LOG_DIR/connector-tcp.messages"
dp_dpiped
dp_assert_eq 'a(ssso) 2 "demo" "tcp" "paused" "/org/dpipe/Pipeline1/source/demo" "web-1.x" "http" "connecting" "/org/dpipe/Pipeline1/source/web_2d1_2ex"' \
        "$(dp_manager ListSources)" "ListSources after SIGKILL"
dp_retry 5 grep -q '"name": "demo", "op": "add", .*"paused": true' "$LOG_DIR/connector-tcp.messages" ||
        dp_fail "the connector did not get the paused source again: $(cat "$LOG_DIR/connector-tcp.messages")"
dp_assert_eq 'a{sv} 2 "address" s "http://127.0.0.1:1/records" "interval_ms" t 500' \
        "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/web_2d1_2ex org.dpipe.Pipeline1.Source Options)" "options survive"

dp_manager ResumeSource s demo
dp_retry 5 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo org.dpipe.Pipeline1.Source State)" = "s \"active\"" ]' ||
        dp_fail "State did not become active after ResumeSource"

# A connector that refuses a source: failed, with its message.
dp_fake_connector fake
dp_manager AddSource 'ssa{sv}' odd fake 1 address s refuse:1 >/dev/null
dp_retry 5 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/odd org.dpipe.Pipeline1.Source State)" = "s \"failed\"" ]' ||
        dp_fail "a refused source is not failed"
dp_assert_eq 's "refused by the fake connector"' "$(dp_source_property odd LastError)" "LastError"

# RemoveSource forgets it everywhere.
dp_manager RemoveSource s demo
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSource "$(dp_bus_error dp_manager GetSource s demo)" "removed source"
test ! -e "$STATE_DIR/sources/demo.source" || dp_fail "removed source still persisted"
dp_retry 5 grep -q '"name": "demo", "op": "remove"' "$LOG_DIR/connector-tcp.messages" || dp_fail "the connector was not told to remove"
busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo org.dpipe.Pipeline1.Source State >/dev/null 2>&1 &&
        dp_fail "the object of a removed source is still there"

# A source removed while its connector is away is removed there once it is back; meanwhile the
# sources of that type wait in "connecting".
dp_manager AddSource 'ssa{sv}' gone tcp 1 address s 127.0.0.1:9 >/dev/null
dp_manager AddSource 'ssa{sv}' stays tcp 1 address s 127.0.0.1:9 >/dev/null
kill "${FAKE_CONNECTOR_PID[tcp]}"
dp_retry 5 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/stays org.dpipe.Pipeline1.Source State)" = "s \"connecting\"" ]' ||
        dp_fail "State did not go back to connecting when the connector went away"
dp_manager RemoveSource s gone
: >"$LOG_DIR/connector-tcp.messages"
dp_fake_connector tcp
dp_retry 10 grep -q '"name": "gone", "op": "remove"' "$LOG_DIR/connector-tcp.messages" ||
        dp_fail "the connector was not told about the removal after it came back"
dp_retry 5 grep -q '"name": "stays", "op": "add"' "$LOG_DIR/connector-tcp.messages" ||
        dp_fail "the connector did not get the remaining source again"
dp_retry 5 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/stays org.dpipe.Pipeline1.Source State)" = "s \"active\"" ]' ||
        dp_fail "State did not become active after the connector came back"
# With no source of its type left, dpiped lets the connector go (so that it may exit when idle).
dp_manager RemoveSource s stays
dp_retry 5 grep -q '"event": "closed"' "$LOG_DIR/connector-tcp.messages" ||
        dp_fail "dpiped kept the control connection of a connector without sources"

# The policy: everyone reads, only root changes.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSources >/dev/null ||
        dp_fail "nobody may not ListSources"
as_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager GetSource s odd >/dev/null ||
        dp_fail "nobody may not GetSource"
as_nobody busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager Clients >/dev/null ||
        dp_fail "nobody may not read properties"
as_nobody busctl --system introspect org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/odd >/dev/null ||
        dp_fail "nobody may not introspect"
for call in "AddSource ssa{sv} y tcp 1 address s 127.0.0.1:9" "RemoveSource s odd" "PauseSource s odd" "ResumeSource s odd"; do
        # shellcheck disable=SC2086
        dp_assert_eq org.freedesktop.DBus.Error.AccessDenied \
                "$(dp_bus_error as_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager $call)" \
                "nobody: $call"
done
dp_assert_eq 'a(ssso) 2' "$(dp_manager ListSources | cut -d' ' -f1-2)" "nobody changed nothing"

# The signals. Clients is signalled when a client comes and goes.
dp_assert_eq '{"op":"pong"}' "$(dp_client send:ping recv:1)" "a client"
dp_retry 5 bash -c "grep -A6 'member=PropertiesChanged' '$LOG_DIR/monitor.log' | grep -q '\"Clients\"'" ||
        dp_fail "no PropertiesChanged for Clients"
dp_retry 5 grep -q 'member=SourceAdded' "$LOG_DIR/monitor.log" || dp_fail "no SourceAdded signal"
dp_retry 5 grep -q 'member=SourceRemoved' "$LOG_DIR/monitor.log" || dp_fail "no SourceRemoved signal"
dp_retry 5 bash -c "grep -A12 'member=PropertiesChanged' '$LOG_DIR/monitor.log' | grep -q '\"paused\"'" ||
        dp_fail "no PropertiesChanged with the State"
