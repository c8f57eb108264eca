#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped's command line and start-up: --help, --version, clean one-line errors with a non-zero
# exit (bad option, port in use, no bus, a second instance), the client socket from systemd
# (socket activation, by its name "client"), and the session bus with --user.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

dpiped --help | grep -q -- '--listen=ADDR:PORT' || dp_fail "--help"
dp_assert_eq "dpiped $(dpiped --version | cut -d' ' -f2)" "$(dpiped --version)" "--version"
[[ "$(dpiped --version)" =~ ^dpiped\ [0-9]+\.[0-9]+ ]] || dp_fail "--version format"

expect_failure() { # WHAT EXPECTED-TEXT CMD...
        local what=$1 text=$2 out
        shift 2
        if out=$("$@" 2>&1 </dev/null); then
                dp_fail "$what: exit code 0"
        fi
        dp_assert_contains "$out" "$text" "$what"
}
expect_failure "unknown option" "unrecognized option" dpiped --bogus
expect_failure "bad --heartbeat-ms" 'invalid --heartbeat-ms "0"' dpiped --heartbeat-ms=0
expect_failure "bad --listen" 'Invalid --listen address "nowhere"' dpiped --listen=nowhere
expect_failure "stray argument" 'unexpected argument "extra"' dpiped extra

# No bus.
DBUS_SYSTEM_BUS_ADDRESS=unix:path=$TMP/no-bus expect_failure "no bus" "Failed to connect to the system bus" \
        dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=127.0.0.1:$(dp_free_port)

dp_start_bus
# Port in use.
port=$(dp_free_port)
dp_bg blocker python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen(); time.sleep(60)"
dp_wait_port 127.0.0.1 "$port"
expect_failure "port in use" "Failed to listen on 127.0.0.1:$port: Address already in use" \
        dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=127.0.0.1:$port

# A second instance on the same bus.
dp_dpiped
expect_failure "second instance" "another dpiped" \
        dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=127.0.0.1:$(dp_free_port)
dp_kill_daemon dpiped TERM

# The client socket from systemd (dpiped.socket passes it as "client").
DPIPED_PORT=$(dp_free_port)
dp_daemon dpiped-activated systemd-socket-activate -l "127.0.0.1:$DPIPED_PORT" --fdname=client \
        -E DBUS_SYSTEM_BUS_ADDRESS -E DPIPE_LOG_LEVEL -E ASAN_OPTIONS -E UBSAN_OPTIONS \
        "$(command -v dpiped)" --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen=127.0.0.1:1
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
dp_assert_eq '{"op":"pong"}' "$(dp_client send:ping recv:1)" "ping over the activated socket"
dp_wait_bus_name org.dpipe.Pipeline1
grep -q "Serving clients on 127.0.0.1:$DPIPED_PORT (socket passed by systemd)" "$LOG_DIR/dpiped-activated.log" ||
        dp_fail "the activated socket was not used"
dp_kill_daemon dpiped-activated TERM
rm -f "$RUNTIME_DIR/client.sock"

# Both sockets from systemd, as dpiped.socket passes them (one name for both): told apart by family.
DPIPED_PORT=$(dp_free_port)
dp_daemon dpiped-activated systemd-socket-activate -l "127.0.0.1:$DPIPED_PORT" -l "$TMP/passed-client.sock" \
        --fdname=client -E DBUS_SYSTEM_BUS_ADDRESS -E DPIPE_LOG_LEVEL -E ASAN_OPTIONS -E UBSAN_OPTIONS \
        "$(command -v dpiped)" --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
dp_wait_bus_name org.dpipe.Pipeline1
dp_assert_eq '{"op":"pong"}' "$(python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$TMP/passed-client.sock" send:ping recv:1)" \
        "ping over the passed client.sock"
grep -q "Serving clients on $TMP/passed-client.sock (socket passed by systemd)" "$LOG_DIR/dpiped-activated.log" ||
        dp_fail "the passed Unix socket was not used: $(grep Serving "$LOG_DIR/dpiped-activated.log")"
[ ! -e "$RUNTIME_DIR/client.sock" ] || dp_fail "dpiped bound its own client.sock beside the passed one"
dp_kill_daemon dpiped-activated TERM
rm -f "$TMP/passed-client.sock"

# --user: the session bus; there the owner of the bus may change the pipeline.
cat >"$TMP/user.sh" <<EOS
set -e
dpiped --user --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR/user" --listen=127.0.0.1:$(dp_free_port) 2>"$LOG_DIR/dpiped-user.log" &
pid=\$!
for i in \$(seq 100); do busctl --user status org.dpipe.Pipeline1 >/dev/null 2>&1 && break; sleep 0.1; done
busctl --user call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager AddSource 'ssa{sv}' mine tcp 1 address s 127.0.0.1:9
busctl --user call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSources
kill -TERM \$pid
wait \$pid
EOS
out=$(dbus-run-session -- bash "$TMP/user.sh") || dp_fail "--user run failed: $out"
dp_assert_contains "$out" 'o "/org/dpipe/Pipeline1/source/mine"' "AddSource on the session bus"
dp_assert_contains "$out" 'a(ssso) 1 "mine" "tcp"' "ListSources on the session bus"
test -s "$STATE_DIR/user/sources/mine.source" || dp_fail "--user registry"
