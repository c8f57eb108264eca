# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared harness of the integration tests: sourced by tests/integration/test-*.sh.
#
# Every test runs in its own temporary directory with its own runtime and state dirs, its own
# private system bus (the project's real policy file is installed into it), and real daemons on
# real sockets. Everything started here is stopped by the EXIT trap, also when the test fails.
# Daemons must exit 0 on SIGTERM: a non-zero exit (a crash, a sanitizer report) fails the test.
#
# Environment: BUILD_DIR (meson build root, set by meson test), SOURCE_DIR (project root),
# KEEP_TMP=1 keeps the temporary directory for a look afterwards.

set -euo pipefail

: "${BUILD_DIR:?BUILD_DIR must point at the meson build directory}"
: "${SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"

export PATH="$BUILD_DIR/daemons/sinks/file:$BUILD_DIR/daemons/sinks/nats:$BUILD_DIR/daemons/writer:$BUILD_DIR/daemons/dpiped:$BUILD_DIR/daemons/connectors/tcp:$BUILD_DIR/daemons/connectors/http:$BUILD_DIR/daemons/connectors/file:$BUILD_DIR/daemons/demo-source:$BUILD_DIR/client:$PATH"
export DPIPE_LOG_LEVEL="${DPIPE_LOG_LEVEL:-debug}"
# Sanitizer builds: fail loudly, and report leaks at exit.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=66}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=67}"

TEST_NAME=$(basename "$0" .sh)
TMP=$(mktemp -d "/tmp/dpipe-${TEST_NAME}.XXXXXX")
RUNTIME_DIR="$TMP/run"
STATE_DIR="$TMP/state"
LOG_DIR="$TMP/log"
mkdir -p "$RUNTIME_DIR" "$STATE_DIR" "$LOG_DIR"
chmod 755 "$TMP" "$RUNTIME_DIR"

declare -A DP_PIDS=()        # name -> pid of daemons that must exit 0 on SIGTERM
declare -a DP_OTHER_PIDS=()  # helpers whose exit status does not matter
declare -a DP_CLEANUP_HOOKS=() # functions run at exit once the daemons are stopped (e.g. servers they used)
DP_BUS_PID=
DP_FAILED=0
DP_WHY=()                    # why the test failed, repeated after the daemons' logs

dp_log() { printf '[%s] %s\n' "$TEST_NAME" "$*" >&2; }

dp_dump_logs() {
        local f
        for f in "$LOG_DIR"/*.log; do
                [ -e "$f" ] || continue
                printf '\n----- %s (last 60 lines) -----\n' "$(basename "$f")" >&2
                tail -n 60 "$f" >&2
        done
}

dp_fail() {
        dp_log "FAIL: $*"
        DP_FAILED=1
        DP_WHY+=("FAIL: $*")
        exit 1
}

dp_cleanup() {
        local rc=$? name pid status
        trap - EXIT INT TERM
        [ "$DP_FAILED" = 1 ] && rc=1
        for name in "${!DP_PIDS[@]}"; do
                pid=${DP_PIDS[$name]}
                kill -TERM "$pid" 2>/dev/null || continue
        done
        for name in "${!DP_PIDS[@]}"; do
                pid=${DP_PIDS[$name]}
                status=0
                dp_wait_exit "$pid" 10 || {
                        kill -KILL "$pid" 2>/dev/null
                        dp_log "$name did not exit on SIGTERM"
                        DP_WHY+=("$name did not exit on SIGTERM")
                        rc=1
                }
                wait "$pid" 2>/dev/null || status=$?
                if [ "$status" != 0 ] && [ "$status" != 127 ]; then
                        dp_log "$name exited with status $status after SIGTERM (expected 0)"
                        DP_WHY+=("$name exited with status $status after SIGTERM (expected 0)")
                        rc=1
                fi
        done
        for pid in "${DP_OTHER_PIDS[@]}"; do
                kill -TERM "$pid" 2>/dev/null || true
        done
        for pid in "${DP_OTHER_PIDS[@]}"; do
                dp_wait_exit "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
                wait "$pid" 2>/dev/null || true
        done
        for name in "${DP_CLEANUP_HOOKS[@]}"; do
                "$name" || true
        done
        if [ -n "$DP_BUS_PID" ]; then
                kill -TERM "$DP_BUS_PID" 2>/dev/null || true
                wait "$DP_BUS_PID" 2>/dev/null || true
        fi
        if [ "$rc" != 0 ]; then
                dp_dump_logs
                dp_log "temporary files kept in $TMP"
                # Again after the logs: a runner that shows only the tail (meson) must show why.
                for name in "${DP_WHY[@]}"; do
                        dp_log "$name"
                done
        elif [ "${KEEP_TMP:-0}" = 1 ]; then
                dp_log "temporary files kept in $TMP"
        else
                rm -rf "$TMP"
        fi
        if [ "$rc" = 0 ]; then
                dp_log "PASS"
        fi
        exit "$rc"
}
trap dp_cleanup EXIT
trap 'exit 130' INT TERM

# dp_wait_exit PID SECONDS: true once PID is gone.
dp_wait_exit() {
        local pid=$1 i
        for ((i = 0; i < $2 * 20; i++)); do
                kill -0 "$pid" 2>/dev/null || return 0
                sleep 0.05
        done
        return 1
}

# dp_retry SECONDS CMD...: runs CMD every 50 ms until it succeeds or time runs out.
dp_retry() {
        local t=$1 i
        shift
        for ((i = 0; i < t * 20; i++)); do
                "$@" >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        return 1
}

dp_wait_socket() { dp_retry "${2:-10}" test -S "$1" || dp_fail "socket $1 did not appear"; }
dp_wait_port() {
        dp_retry "${3:-10}" bash -c "exec 3<>/dev/tcp/$1/$2" || dp_fail "nothing listens on $1:$2"
}
dp_wait_bus_name() {
        dp_retry "${2:-10}" busctl --system status "$1" || dp_fail "bus name $1 did not appear"
}

# A TCP port nobody listens on right now.
dp_free_port() {
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# dp_daemon NAME CMD...: starts a daemon in the background, logs in $LOG_DIR/NAME.log. It must exit
# 0 on SIGTERM at the end of the test.
dp_daemon() {
        local name=$1
        shift
        "$@" >"$LOG_DIR/$name.log" 2>&1 &
        DP_PIDS[$name]=$!
}
# dp_bg NAME CMD...: a helper process (its exit status is not checked).
dp_bg() {
        local name=$1
        shift
        "$@" >"$LOG_DIR/$name.log" 2>&1 &
        DP_OTHER_PIDS+=($!)
}
# dp_kill_daemon NAME [SIGNAL]: stop one daemon now (e.g. to test a crash); it is then forgotten.
dp_kill_daemon() {
        local name=$1 sig=${2:-TERM} pid=${DP_PIDS[$1]}
        kill -"$sig" "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "DP_PIDS[$name]"
}

# A private system bus whose policy is the project's real dbus/*.conf (the test machine has no system bus of its own).
dp_start_bus() {
        local conf="$TMP/bus.conf" policydir="$TMP/system.d" addrfile="$TMP/bus.address"
        mkdir -p "$policydir"
        cp "$SOURCE_DIR"/dbus/*.conf "$policydir"/ 2>/dev/null || true
        sed -e '/<user>/d' -e '/<fork\/>/d' -e '/<pidfile>/d' -e '/<servicehelper>/d' \
            -e '/<syslog\/>/d' -e '/<standard_system_servicedirs\/>/d' \
            -e "s|<listen>.*</listen>|<listen>unix:path=$TMP/system_bus_socket</listen>|" \
            -e "s|<includedir>system.d</includedir>|<includedir>$policydir</includedir>|" \
            -e '/<includedir>\/etc\/dbus-1\/system.d<\/includedir>/d' \
            -e '/<include ignore_missing="yes">\/etc\/dbus-1\/system-local.conf<\/include>/d' \
            /usr/share/dbus-1/system.conf >"$conf"
        dbus-daemon --config-file="$conf" --nofork --print-address=1 >"$addrfile" 2>"$LOG_DIR/dbus-daemon.log" &
        DP_BUS_PID=$!
        dp_retry 10 test -s "$addrfile" || dp_fail "private dbus-daemon did not start"
        DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$addrfile")
        export DBUS_SYSTEM_BUS_ADDRESS
}

# Starts writer, tcp connector and dpiped the way a user would by hand (no socket activation).
# Sets DPIPED_PORT. Extra dpiped options may be given as arguments.
dp_start_pipeline() {
        DPIPED_PORT=$(dp_free_port)
        dp_daemon writer dpipe-writer --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
        dp_wait_socket "$RUNTIME_DIR/writer.sock"
        dp_daemon connector-tcp dpipe-connector-tcp --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
        dp_wait_socket "$RUNTIME_DIR/connector-tcp.sock"
        dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" \
                --listen="127.0.0.1:$DPIPED_PORT" "$@"
        dp_wait_bus_name org.dpipe.Pipeline1
        dp_wait_port 127.0.0.1 "$DPIPED_PORT"
}

# dp_nobody CMD...: CMD as user nobody, without any group (and without PATH entries that only
# root may enter, such as a version manager's shims in /root). The build tree may sit where nobody
# cannot enter (tools/check --committed clones into a mode-0700 temporary directory, and so may
# CI): a command or a file argument that nobody cannot reach is run from a copy in $TMP/public.
# DP_SETPRIV="--reuid=... --regid=... --groups=..." before the call runs it with other ids.
dp_nobody() {
        local -a args=()
        local a first=1 path
        for a in "$@"; do
                path=
                if [ $first = 1 ] && [[ "$a" != */* ]]; then
                        path=$(command -v -- "$a" 2>/dev/null) || path=
                        [[ "$path" == /* ]] || path=
                elif [ -f "$a" ]; then
                        path=$a
                fi
                case $path in
                "$BUILD_DIR"/* | "$SOURCE_DIR"/*) ;;
                *) path= ;; # the system's own commands: nobody finds them through PATH
                esac
                if [ -n "$path" ] && ! dp_as_nobody test -r "$path"; then
                        mkdir -p "$TMP/public"
                        chmod 755 "$TMP/public"
                        cp -p "$path" "$TMP/public/"
                        chmod a+rX "$TMP/public/$(basename "$path")"
                        a="$TMP/public/$(basename "$path")"
                fi
                args+=("$a")
                first=0
        done
        # shellcheck disable=SC2086 # DP_SETPRIV is a list of options
        setpriv ${DP_SETPRIV:---reuid=65534 --regid=65534 --clear-groups} env PATH="$(dp_public_path)" "${args[@]}"
}
dp_as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
dp_public_path() {
        local d out=
        while read -r -d: d; do
                [ -n "$d" ] && dp_as_nobody test -x "$d" && out=${out:+$out:}$d
        done <<<"$PATH:"
        echo "$out"
}

# dp_assert_eq EXPECTED ACTUAL WHAT
dp_assert_eq() {
        [ "$1" == "$2" ] || dp_fail "$3: expected '$1', got '$2'"
}
# dp_expect_exit CODE CMD...: runs CMD, leaves its stdout in $out and its stderr in $err, and fails
# the test unless it exited with CODE.
dp_expect_exit() {
        local want=$1 rc=0
        shift
        out=$("$@" 2>"$TMP/stderr") || rc=$?
        err=$(cat "$TMP/stderr")
        [ "$rc" = "$want" ] || dp_fail "'$*' exited $rc (expected $want); stdout: $out; stderr: $err"
}
# dp_assert_contains HAYSTACK NEEDLE WHAT
dp_assert_contains() {
        [[ "$1" == *"$2"* ]] || dp_fail "$3: '$2' not found in '$1'"
}
