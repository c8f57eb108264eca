#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The NATS test harness itself (nats-cluster.sh, nats-js.py): a 3-node JetStream cluster on loopback
# keeps an R3 stream through a SIGKILL of its leader and through two of three servers being down,
# and the helpers find the leader and read every message back.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/nats-cluster.sh"

nats_start_cluster 3
nats_js add-stream HARNESS 'harness.>' 3 || dp_fail "cannot create an R3 stream"
leader=$(nats_leader HARNESS)
dp_log "stream leader: n$leader"
[ "$(nats_js info HARNESS | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["num_replicas"])')" = 3 ] ||
        dp_fail "the stream is not R3"

nats_js pub harness.a 0 100 >"$TMP/seqs" || dp_fail "publish failed"

# The leader dies: a new one is elected among the two others and nothing acked is lost.
nats_kill "$leader" KILL
nats_js leader HARNESS 60 >/dev/null || dp_fail "no new leader after the SIGKILL"
nats_js pub harness.a 100 100 >>"$TMP/seqs" || dp_fail "publish after the leader's death failed"
nats_start_server "$leader"
new=$(nats_current HARNESS)
[ "$new" != "$leader" ] || dp_log "the old leader n$leader is leader again"

# Two of three down: no quorum, nothing is acked; back after 10 s, everything is there.
others=()
for i in 0 1 2; do [ "$i" != "$new" ] && others+=("$i"); done
nats_stop_servers "${others[@]}"
if timeout 3 "$NATS_JS" "$NATS_URLS" pub harness.a 200 1 >/dev/null 2>&1; then
        dp_fail "a publish was acked without a quorum"
fi
sleep 10
for i in "${others[@]}"; do nats_start_server "$i"; done
nats_current HARNESS >/dev/null
nats_js pub harness.a 200 100 >>"$TMP/seqs" || dp_fail "publish after the outage failed"

nats_dump HARNESS >"$TMP/dump" || dp_fail "dump failed"
python3 - "$TMP/dump" <<'EOF' || dp_fail "the stream does not hold 0..299 exactly once"
import json, sys
ids = [json.loads(l)['headers']['Nats-Msg-Id'] for l in open(sys.argv[1])]
assert sorted(map(int, ids)) == list(range(300)), ids[:10]
EOF
dp_log "300 messages exactly once across a leader SIGKILL and a quorum loss"
