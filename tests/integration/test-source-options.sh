#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Each connector's option table is the only schema of its source options (issue #11). dpiped has
# the connector check an added source's options, so every documented option and format works
# through D-Bus AddSource, `dpipectl add-source` and the client protocol's `add` (before, dpiped's
# own partial copy refused format=json for http and format=lines for tcp and file), and an unknown
# option name is refused naming it: InvalidArgs, invalid_argument, dpipectl's exit 1 (before, a
# typo like intervall_ms=1000 was kept silently). The check starts a socket-activated connector
# on demand; a type without a connector socket is UnknownType. A source saved earlier with an
# option that is gone since still loads and runs, with a warning. The real pipeline: writer, the
# three connectors (file socket-activated), dpiped, dpipectl, dpipe-client.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpipe-connector-file dpipe-connector-http dpiped dpipectl \
        systemd-socket-activate; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
SERVER="$SOURCE_DIR/tests/integration/edge-server.py"
WWW="$TMP/www"
mkdir -p "$WWW"
printf '[{"doc":1},{"doc":2}]' >"$WWW/docs.json"
printf 'plain one\nplain two\n' >"$TMP/tcp.txt"
printf 'file one\nfile two\n' >"$TMP/file.txt"

dp_start_bus
dp_start_pipeline
dp_daemon connector-http dpipe-connector-http --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-http.sock"
# The file connector as systemd would run it: only its socket, the process starts on the first
# connection (dpiped's check of the first file source).
dp_daemon connector-file systemd-socket-activate -l "$RUNTIME_DIR/connector-file.sock" \
        dpipe-connector-file --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-file.sock"
WEB=$(dp_free_port)
dp_bg web python3 "$SERVER" http "$WEB" "$WWW"
dp_wait_port 127.0.0.1 "$WEB"
PEER=$(dp_free_port)
dp_bg peer python3 "$SERVER" tcp "$PEER" "$TMP/tcp.txt"
dp_wait_port 127.0.0.1 "$PEER"
dp_bg client bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client.jsonl"

# --- every documented format, through each front end ------------------------------------------
pgrep -f "^dpipe-connector-file --runtime-dir=$RUNTIME_DIR" >/dev/null && dp_fail "the file connector runs before it is needed"
dp_manager AddSource 'ssa{sv}' web http 2 address s "http://127.0.0.1:$WEB/docs.json" format s json >/dev/null ||
        dp_fail "AddSource http format=json refused"
dp_expect_exit 0 dpipectl add-source plain --type=tcp --address="127.0.0.1:$PEER" --option=format=lines \
        --option=heartbeat_ms=250 --option=keepalive=no
out=$(dp_sock_client "send:add notes file address=$TMP/file.txt format=lines poll_ms=200" recv:1)
dp_assert_eq '{"op":"ok"}' "$out" "client add file format=lines"
dp_retry 20 bash -c "grep -q '\"doc\":2' '$TMP/client.jsonl' && grep -q 'plain two' '$TMP/client.jsonl' &&
        grep -q 'file two' '$TMP/client.jsonl'" || dp_fail "records of json/lines sources missing: $(cat "$TMP/client.jsonl")"
# Stored with the types of the connector's table, whatever form they came in.
dp_assert_eq 'a{sv} 4 "address" s "127.0.0.1:'"$PEER"'" "format" s "lines" "heartbeat_ms" t 250 "keepalive" b false' \
        "$(dp_source_property plain Options)" "options as the table types them"

# --- unknown names and bad values: refused, named, not kept -----------------------------------
err=$(dp_manager AddSource 'ssa{sv}' typo http 2 address s "http://127.0.0.1:$WEB/docs.json" intervall_ms s 1000 2>&1) &&
        dp_fail "AddSource with intervall_ms was accepted"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs \
        "$(dp_bus_error dp_manager AddSource 'ssa{sv}' typo http 2 address s "http://127.0.0.1:$WEB/docs.json" intervall_ms s 1000)" \
        "D-Bus: unknown option"
dp_assert_contains "$err" "unknown option 'intervall_ms'" "D-Bus: the name"
dp_expect_exit 1 dpipectl add-source typo --type=tcp --address="127.0.0.1:$PEER" --option=intervall_ms=1000
dp_assert_contains "$err" "unknown option 'intervall_ms'" "dpipectl: the name"
out=$(dp_sock_client "send:add typo file address=$TMP/file.txt intervall_ms=1000" 'send:{"op":"ping"}' recv:2)
dp_assert_contains "$(sed -n 1p <<<"$out")" '"code":"invalid_argument"' "client: code"
dp_assert_contains "$(sed -n 1p <<<"$out")" "unknown option 'intervall_ms'" "client: the name"
dp_assert_eq '{"op":"pong"}' "$(sed -n 2p <<<"$out")" "client: the next request is answered after it"
# Values are the table's and the type's to judge.
bad() { # bad WHAT TYPE OPTIONS... : AddSource must fail with InvalidArgs naming WHAT
        local what=$1 out
        shift
        out=$(dp_manager AddSource 'ssa{sv}' bad "$@" 2>&1) && dp_fail "AddSource $* was accepted"
        dp_assert_contains "$out" "$what" "AddSource $*"
}
bad "invalid address" tcp 1 address s 127.0.0.1
bad "invalid address" tcp 1 address s 127.0.0.1:99999
bad "http:// or https://" http 1 address s ftp://x
bad "unknown format 'yaml'" tcp 2 address s 127.0.0.1:9 format s yaml
bad "unknown format 'lines'" http 2 address s http://127.0.0.1:9/ format s lines
bad "invalid value for option 'heartbeat_ms'" tcp 2 address s 127.0.0.1:9 heartbeat_ms s soon
bad "absolute path" file 1 address s relative/path
for n in typo bad; do
        test ! -e "$STATE_DIR/sources/$n.source" || dp_fail "refused source $n was persisted"
done
dp_assert_eq org.dpipe.Pipeline1.Error.UnknownType \
        "$(dp_bus_error dp_manager AddSource 'ssa{sv}' x carrier-pigeon 1 address s a)" "type without connector"

# --- a saved source with an option that is gone since: loaded, run, warned about --------------
dp_kill_daemon dpiped
python3 - "$STATE_DIR/sources/notes.source" <<'PY'
import json, sys
p = sys.argv[1]
o = json.load(open(p))
o["options"]["retired_option"] = "x"
json.dump(o, open(p, "w"))
PY
printf 'file three\n' >>"$TMP/file.txt"
dp_daemon dpiped2 dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="127.0.0.1:$DPIPED_PORT"
dp_wait_bus_name org.dpipe.Pipeline1
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
dp_assert_contains "$(dp_source_property notes Options)" '"retired_option" s "x"' "the saved source is kept as it was"
dp_bg client2 bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/client2.jsonl"
dp_retry 20 grep -q 'file three' "$TMP/client2.jsonl" || dp_fail "the saved source with an unknown option does not run"
dp_retry 10 grep -q "unknown option 'retired_option', ignoring" "$LOG_DIR/connector-file.log" ||
        dp_fail "no warning about the unknown option: $(cat "$LOG_DIR/connector-file.log")"
dp_assert_eq 's "active"' "$(dp_source_property notes State)" "the saved source is active"
dp_log "PASS"
