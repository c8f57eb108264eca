# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers of the dpiped tests (test-dpiped-*.sh), on top of lib.sh (source that first).

DPIPED_TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# dp_fake_connector TYPE: a stand-in connector on <runtime-dir>/connector-TYPE.sock that logs what
# dpiped sends it to $LOG_DIR/connector-TYPE.messages.
declare -A FAKE_CONNECTOR_PID=()
dp_fake_connector() {
        rm -f "$RUNTIME_DIR/connector-$1.sock"
        dp_bg "fake-connector-$1" python3 "$DPIPED_TESTS_DIR/dpiped-fake-connector.py" \
                "$RUNTIME_DIR/connector-$1.sock" "$LOG_DIR/connector-$1.messages"
        FAKE_CONNECTOR_PID[$1]=${DP_OTHER_PIDS[-1]}
        dp_wait_socket "$RUNTIME_DIR/connector-$1.sock"
}

# dp_dpiped [OPTIONS...]: starts dpiped alone on the private bus; sets DPIPED_PORT.
dp_dpiped() {
        DPIPED_PORT=$(dp_free_port)
        dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" \
                --listen="127.0.0.1:$DPIPED_PORT" "$@"
        dp_wait_bus_name org.dpipe.Pipeline1
        dp_wait_port 127.0.0.1 "$DPIPED_PORT"
}

# dp_client STEP...: a raw protocol client on the TCP port (see dpiped-client.py); dp_sock_client
# the same on client.sock (as root, who may change the pipeline there).
dp_client() {
        python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$DPIPED_PORT" "$@"
}
dp_sock_client() {
        python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$RUNTIME_DIR/client.sock" "$@"
}
dp_manager() {
        busctl --system "${BUSCTL_ARGS[@]}" call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager "$@"
}
BUSCTL_ARGS=()

# dp_bus_error CMD...: runs a busctl call that must fail and prints the D-Bus error name.
dp_bus_error() {
        local out
        if out=$(SYSTEMD_LOG_LEVEL=debug "$@" 2>&1); then
                dp_fail "expected a D-Bus error from: $*"
        fi
        sed -n 's/.*type=error .*error-name=\([^ ]*\) .*/\1/p' <<<"$out" | tail -n1
}

dp_source_property() {
        busctl --system get-property org.dpipe.Pipeline1 "/org/dpipe/Pipeline1/source/$1" \
                org.dpipe.Pipeline1.Source "$2"
}
