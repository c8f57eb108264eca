#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# What every executable owes its user (README.md, dpipe.units(7)): --help and --version that
# exit 0, "<name> <version>", and on failure a non-zero exit with a short reason on stderr — a
# port in use, a missing file, no bus, nothing listening. Collects every failure, then reports.
source "$(dirname "$0")/lib.sh"

EXES=(dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client)
missing=()
for exe in "${EXES[@]}"; do
        command -v "$exe" >/dev/null || missing+=("$exe")
done
if [ "${#missing[@]}" -gt 0 ]; then
        dp_log "SKIP: not built: ${missing[*]}"
        rm -rf "$TMP"
        trap - EXIT
        exit 77
fi
# Optional executables are checked when built.
for exe in dpipe-connector-http dpipe-connector-file; do
        command -v "$exe" >/dev/null && EXES+=("$exe")
done

VERSION=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$SOURCE_DIR/meson.build" | head -n1)
[ -n "$VERSION" ] || dp_fail "cannot read the project version from meson.build"

ERRORS=()
bad() {
        ERRORS+=("$*")
        dp_log "not ok: $*"
}

# expect_failure WHAT PATTERN CMD...: CMD must exit non-zero within 10 s, and say why on stderr
# (a line matching the extended regex PATTERN, case-insensitive), without a core dump or a
# sanitizer report.
expect_failure() {
        local what=$1 pattern=$2 rc=0
        shift 2
        timeout -k 2 10 "$@" >"$TMP/out" 2>"$TMP/err" </dev/null || rc=$?
        if [ "$rc" = 0 ]; then
                bad "$what: exit 0, expected a failure"
        elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
                bad "$what: did not exit within 10 s"
        elif [ "$rc" -ge 128 ] || [ "$rc" = 66 ] || [ "$rc" = 67 ]; then
                bad "$what: crashed or a sanitizer complained (exit $rc): $(head -c 2000 "$TMP/err")"
        elif ! [ -s "$TMP/err" ]; then
                bad "$what: exit $rc with nothing on stderr"
        elif ! grep -q -i -E -- "$pattern" "$TMP/err"; then
                bad "$what: exit $rc, but stderr does not say /$pattern/: $(tail -n 3 "$TMP/err")"
        else
                dp_log "ok: $what (exit $rc): $(grep -i -E -m1 -- "$pattern" "$TMP/err")"
        fi
}

# --- --help, --version, unknown options ---------------------------------------------------------
for exe in "${EXES[@]}"; do
        out=$("$exe" --version 2>&1) || bad "$exe --version: exit $?"
        [ "$out" = "$exe $VERSION" ] || bad "$exe --version printed '$out', expected '$exe $VERSION'"
        out=$("$exe" --help 2>&1) || bad "$exe --help: exit $?"
        [[ "$out" == *"$exe"* ]] || bad "$exe --help does not name the program"
        [[ "$out" == *--version* ]] || bad "$exe --help does not list --version"
        expect_failure "$exe --no-such-option" "no-such-option|unrecognized|unknown" "$exe" --no-such-option
done
for exe in dpipe-writer dpipe-connector-tcp dpiped; do
        out=$("$exe" --help 2>&1)
        [[ "$out" == *--runtime-dir* ]] || bad "$exe --help does not list --runtime-dir"
        [[ "$out" == *--state-dir* ]] || bad "$exe --help does not list --state-dir"
done

# --- dpipe-source: missing and malformed files, port in use --------------------------------------
expect_failure "dpipe-source without --file" "file" dpipe-source --tcp=127.0.0.1:0
expect_failure "dpipe-source --file=missing" "no such file|not found|missing.csv" \
        dpipe-source --file="$TMP/missing.csv" --tcp=127.0.0.1:0
printf 'a,b\n1,"unterminated\n' >"$TMP/bad.csv"
expect_failure "dpipe-source with a malformed CSV" "bad.csv:[0-9]+(:[0-9]+)?" \
        dpipe-source --file="$TMP/bad.csv" --tcp=127.0.0.1:0
printf '[{"a":1},{"a":]\n' >"$TMP/bad.json"
expect_failure "dpipe-source with a malformed JSON file" "bad.json:[0-9]+(:[0-9]+)?" \
        dpipe-source --file="$TMP/bad.json" --tcp=127.0.0.1:0
printf 'id,name\n1,x\n' >"$TMP/ok.csv"
PORT=$(dp_free_port)
dp_daemon holder dpipe-source --file="$TMP/ok.csv" --tcp="127.0.0.1:$PORT"
dp_wait_port 127.0.0.1 "$PORT"
expect_failure "dpipe-source on a port in use" "in use|$PORT" \
        dpipe-source --file="$TMP/ok.csv" --tcp="127.0.0.1:$PORT"
expect_failure "dpipe-source --tcp=garbage" "garbage|invalid|address" \
        dpipe-source --file="$TMP/ok.csv" --tcp=garbage

# --- dpiped: no bus, port in use ------------------------------------------------------------------
expect_failure "dpiped without a system bus" "bus" \
        env DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TMP/no-bus" \
        dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=127.0.0.1:0
dp_start_bus
expect_failure "dpiped --listen on a port in use" "in use|$PORT" \
        dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="127.0.0.1:$PORT"
expect_failure "dpiped --listen=garbage" "garbage|invalid|address" \
        dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=garbage

# --- the writer and connector: socket already served by a live daemon ----------------------------
dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/writer.sock"
expect_failure "a second dpipe-writer on the same runtime dir" "in use|writer.sock" \
        dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$TMP/state2"
dp_daemon connector-tcp dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_socket "$RUNTIME_DIR/connector-tcp.sock"
expect_failure "a second dpipe-connector-tcp on the same runtime dir" "in use|connector-tcp.sock" \
        dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$TMP/state2"

# --- the clients: no bus, nothing listening, bad input ------------------------------------------
expect_failure "dpipectl without a system bus" "bus|connect|no such file" \
        env DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TMP/no-bus" dpipectl list-sources
expect_failure "dpipectl without dpiped on the bus" "dpipe|service|name|activat" dpipectl list-sources
expect_failure "dpipectl with an unknown command" "no-such-command|unknown" dpipectl no-such-command
CLOSED=$(dp_free_port)
expect_failure "dpipe-client with nothing listening" "refused|connect" \
        dpipe-client --connect="127.0.0.1:$CLOSED" status

# The daemons started here must still be fine (they exit 0 on SIGTERM at cleanup).
if [ "${#ERRORS[@]}" -gt 0 ]; then
        printf '  %s\n' "${ERRORS[@]}" >&2
        dp_fail "${#ERRORS[@]} command-line checks failed"
fi
