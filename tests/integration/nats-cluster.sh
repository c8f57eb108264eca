# SPDX-License-Identifier: LGPL-2.1-or-later
# A real NATS JetStream cluster for the tests: sourced after lib.sh.
#
#   nats_start_cluster [N]     N (default 3) nats-server processes on loopback, JetStream on, one
#                              cluster (full mesh of routes), free non-default ports, stores in
#                              $TMP/nats/<i>; returns once JetStream answers. Sets NATS_URLS
#                              (nats://127.0.0.1:P0,...) and NATS_URL_<i>.
#   nats_start_server I        (re)starts server I with its old ports and store
#   nats_kill I [SIGNAL]       signals server I (default TERM) and waits until it is gone
#   nats_stop_servers I...     SIGTERMs the servers given and waits for them
#   nats_js ARGS...            tests/integration/nats-js.py "$NATS_URLS" ARGS... (JetStream API)
#   nats_leader STREAM         prints the index of the server that leads STREAM (waits for one)
#   nats_current STREAM        waits until STREAM has a leader and every replica is current (after
#                              a restart), prints the leader's index
#   nats_dump STREAM [FILTER]  prints every message of STREAM as a JSON line (see nats-js.py)
#
# Servers are named n0, n1, ...; the cluster is "dpipe-test". Every server is stopped at exit (its
# exit status does not matter: nats-server exits 1 on SIGTERM); its log is $LOG_DIR/nats-<i>.log.

NATS_JS="$SOURCE_DIR/tests/integration/nats-js.py"
declare -a NATS_PIDS=() NATS_PORTS=() NATS_CLUSTER_PORTS=()
NATS_N=0
NATS_URLS=

command -v nats-server >/dev/null || { dp_log "SKIP: nats-server is not installed"; exit 77; }

nats_cleanup() {
        local i
        for i in "${!NATS_PIDS[@]}"; do
                [ -n "${NATS_PIDS[$i]}" ] && kill -TERM "${NATS_PIDS[$i]}" 2>/dev/null || true
        done
        for i in "${!NATS_PIDS[@]}"; do
                [ -n "${NATS_PIDS[$i]}" ] || continue
                dp_wait_exit "${NATS_PIDS[$i]}" 10 || kill -KILL "${NATS_PIDS[$i]}" 2>/dev/null || true
        done
}
# After the daemons: a sink stopping must not see its servers go first.
DP_CLEANUP_HOOKS+=(nats_cleanup)

# Started from a subshell, so that the server is no job of the test's shell (bash would report a
# SIGKILLed job on stderr); it is reaped by init, and waited for with kill -0.
nats__spawn() {
        local i=$1
        shift
        mkdir -p "$TMP/nats/$i"
        (nats-server --jetstream --store_dir "$TMP/nats/$i" --addr 127.0.0.1 --port "${NATS_PORTS[$i]}" \
                --server_name "n$i" "$@" >>"$LOG_DIR/nats-$i.log" 2>&1 &
         echo $! >"$TMP/nats/$i.pid")
        NATS_PIDS[$i]=$(cat "$TMP/nats/$i.pid")
        dp_wait_port 127.0.0.1 "${NATS_PORTS[$i]}" 20
}

nats_start_server() {
        local i=$1 routes="" j
        for ((j = 0; j < NATS_N; j++)); do
                [ "$j" = "$i" ] && continue
                routes+="${routes:+,}nats://127.0.0.1:${NATS_CLUSTER_PORTS[$j]}"
        done
        nats__spawn "$i" --cluster "nats://127.0.0.1:${NATS_CLUSTER_PORTS[$i]}" --cluster_name dpipe-test \
                --routes "$routes"
}

nats_start_cluster() {
        local i
        NATS_N=${1:-3}
        for ((i = 0; i < NATS_N; i++)); do
                NATS_PORTS[$i]=$(dp_free_port)
                NATS_CLUSTER_PORTS[$i]=$(dp_free_port)
                NATS_URLS+="${NATS_URLS:+,}nats://127.0.0.1:${NATS_PORTS[$i]}"
                printf -v "NATS_URL_$i" 'nats://127.0.0.1:%s' "${NATS_PORTS[$i]}"
        done
        [ "$NATS_N" = 1 ] && NATS_CLUSTER_PORTS=()
        for ((i = 0; i < NATS_N; i++)); do
                if [ "$NATS_N" = 1 ]; then
                        nats__spawn 0
                else
                        nats_start_server "$i"
                fi
        done
        "$NATS_JS" "$NATS_URLS" ready 60 || dp_fail "JetStream did not come up"
        export NATS_URLS
}

nats_kill() {
        local i=$1 sig=${2:-TERM} pid=${NATS_PIDS[$1]}
        [ -n "$pid" ] || return 0
        kill -"$sig" "$pid" 2>/dev/null || true
        dp_wait_exit "$pid" 20 || dp_fail "nats-server n$i did not exit on SIG$sig"
        NATS_PIDS[$i]=
}

nats_stop_servers() {
        local i
        for i in "$@"; do
                kill -TERM "${NATS_PIDS[$i]}" 2>/dev/null || true
        done
        for i in "$@"; do
                nats_kill "$i" TERM
        done
}

nats_js() { "$NATS_JS" "$NATS_URLS" "$@"; }

nats_leader() {
        local name
        name=$(nats_js leader "$1" 60) || dp_fail "stream $1 has no leader"
        echo "${name#n}"
}

nats_current() {
        local name
        name=$(nats_js current "$1" 60) || dp_fail "stream $1 did not recover all its replicas"
        echo "${name#n}"
}

nats_dump() { nats_js dump "$@"; }
