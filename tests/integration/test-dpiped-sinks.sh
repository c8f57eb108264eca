#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped manages sinks like sources (dpipe-sink(7)): dpipectl add-sink/list-sinks/remove-sink,
# the Sink objects on the bus, named errors, the client protocol's add_sink/remove_sink/list_sinks
# under §8's rules, the registry across a restart of dpiped (and a SIGKILL of the sink daemon), the
# pipeline id handed to the sink, and a definition the sink daemon refuses showing as failed with its
# reason. The records reach the file sink exactly once, in order.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-sink-file; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=3000
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"
OUT="$TMP/out"
mkdir -p "$OUT"
python3 -c "
import json
for i in range($N): print(json.dumps({'i': i}))" >"$TMP/rows.jsonl"

dp_start_bus
dp_start_pipeline --pipeline-id=edgeA
start_sink_daemon() {
        dp_daemon sink dpipe-sink-file --runtime-dir="$RUNTIME_DIR"
        dp_wait_socket "$RUNTIME_DIR/sink-file.sock"
}
start_sink_daemon
sink_prop() {
        busctl --system get-property org.dpipe.Pipeline1 "/org/dpipe/Pipeline1/sink/$1" org.dpipe.Pipeline1.Sink "$2"
}
wait_prop() { # NAME PROPERTY VALUE (as busctl prints it)
        dp_retry 60 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/sink/$1 org.dpipe.Pipeline1.Sink $2)" == "$3" ]' _ "$@" ||
                dp_fail "sink $1: $2 never became $3 (is $(sink_prop "$1" "$2"))"
}

# Bad ids and stream addresses are refused at start with a reason.
dp_expect_exit 1 dpiped --pipeline-id=a.b --runtime-dir="$TMP/x" --state-dir="$TMP/x"
dp_assert_contains "$err" "invalid --pipeline-id" "a pipeline id with a dot"
dp_expect_exit 1 dpiped --stream=http://127.0.0.1:4222 --runtime-dir="$TMP/x" --state-dir="$TMP/x"
dp_assert_contains "$err" "nats://HOST:PORT" "a --stream that is not nats://"
dp_expect_exit 1 dpiped --stream=nats://127.0.0.1:4222 --stream-name=a.b --runtime-dir="$TMP/x" --state-dir="$TMP/x"
dp_assert_contains "$err" "invalid --stream-name" "a stream name with a dot"

dp_assert_eq 's "edgeA"' "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager PipelineId)" \
        "PipelineId"

# Named errors, and nothing changes.
dp_expect_exit 1 dpipectl add-sink out --type=nosuch --address=/x
dp_assert_contains "$err" "Unknown sink type" "an unknown type"
dp_assert_eq org.dpipe.Pipeline1.Error.UnknownType \
        "$(dp_bus_error dp_manager AddSink 'ssa{sv}' out nosuch 1 address s /x)" "error name of an unknown type"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs \
        "$(dp_bus_error dp_manager AddSink 'ssa{sv}' 'bad name' file 1 address s /x)" "error name of a bad name"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs \
        "$(dp_bus_error dp_manager AddSink 'ssa{sv}' out file 0)" "error name of a missing address"
dp_expect_exit 1 dpipectl add-sink out --type=file
dp_assert_contains "$err" "needs --address" "dpipectl without an address"
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSink \
        "$(dp_bus_error dp_manager RemoveSink s nosuch)" "error name of removing what is not there"
dp_expect_exit 4 dpipectl remove-sink nosuch
dp_assert_contains "$err" "No sink named" "remove-sink of an unknown sink"
# Changing the pipeline is root's (or polkit's); reading is everyone's.
dp_expect_exit 77 dp_nobody dpipectl add-sink out --type=file --address="$OUT/records.jsonl"
[[ "$err" == *"Access denied"* || "$err" == *"Rejected send message"* ]] || dp_fail "add-sink by nobody: $err"
dp_expect_exit 0 dp_nobody dpipectl list-sinks --no-legend
dp_assert_eq "" "$out" "sinks after the refusals"

# A sink before the data: it waits for the records.
dp_expect_exit 0 dpipectl add-sink out --type=file --address="$OUT/records.jsonl" --option=max_bytes=100000
dp_expect_exit 1 dpipectl add-sink out --type=file --address="$OUT/other.jsonl"
dp_assert_contains "$err" "exists already" "a second sink of the same name"
wait_prop out State 's "active"'
[ -f "$STATE_DIR/sinks/out.sink" ] || dp_fail "the sink was not persisted"
"$CTL" "$RUNTIME_DIR/sink-file.sock" wait out pipeline_id == edgeA 10 >/dev/null ||
        dp_fail "the sink daemon did not get dpiped's pipeline id"

# The sink daemon checks its type's options before dpiped accepts a sink ("check"): a refusal is
# InvalidArgs with the daemon's reason, which names the option, and nothing is registered.
dp_expect_exit 1 dpipectl add-sink bad --type=file --address=relative/path
dp_assert_contains "$err" "address must be an absolute path" "AddSink with an address the type refuses"
dp_assert_eq org.freedesktop.DBus.Error.InvalidArgs \
        "$(dp_bus_error dp_manager AddSink 'ssa{sv}' bad file 2 address s "$OUT/x.jsonl" colour s blue)" \
        "AddSink with an unknown option"
dp_expect_exit 1 dpipectl add-sink bad --type=file --address="$OUT/x.jsonl" --option=colour=blue
dp_assert_contains "$err" "unknown option 'colour'" "dpipectl add-sink with an unknown option"
dp_expect_exit 1 dpipectl add-sink bad --type=file --address="$OUT/x.jsonl" --option=max_bytes=lots
dp_assert_contains "$err" "invalid value for option 'max_bytes'" "dpipectl add-sink with a bad value"
out=$(dp_sock_client "send:add-sink bad file address=$OUT/x.jsonl window=0" recv:1)
dp_assert_contains "$out" '"code":"invalid_argument"' "client op add-sink with a bad value"
dp_assert_contains "$out" "option 'window' must be 1-1000000" "client op add-sink names the option"
[ ! -e "$STATE_DIR/sinks/bad.sink" ] && [ ! -e "$OUT/x.jsonl" ] || dp_fail "a refused sink left something behind"
# A definition the daemon refuses when it gets it (saved before the type got stricter, here
# written into the registry) loads after a restart and shows as failed, with the daemon's reason.
printf '{"name":"bad","type":"file","options":{"address":"relative/path"}}\n' >"$STATE_DIR/sinks/bad.sink"

PORT=$(dp_free_port)
dp_bg source dpipe-source --file="$TMP/rows.jsonl" --tcp="127.0.0.1:$PORT" --rate=500
dp_wait_port 127.0.0.1 "$PORT"
dp_expect_exit 0 dpipectl add-source demo --type=tcp --address="127.0.0.1:$PORT"

# Mid-flow: the sink daemon is SIGKILLed and dpiped restarted; dpiped hands the sink back.
dp_retry 60 bash -c '[ "$(cat "$1"/records.jsonl* 2>/dev/null | wc -l)" -ge 500 ]' _ "$OUT" ||
        dp_fail "no records reached the file"
dp_kill_daemon sink KILL
dp_kill_daemon dpiped TERM
start_sink_daemon
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="127.0.0.1:$DPIPED_PORT" \
        --pipeline-id=edgeA
dp_wait_bus_name org.dpipe.Pipeline1
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
"$CTL" "$RUNTIME_DIR/sink-file.sock" wait out confirmed_offset == "$N" 60 >/dev/null ||
        dp_fail "the sink did not confirm all $N records"
wait_prop bad State 's "failed"'
dp_assert_contains "$(sink_prop bad LastError)" "absolute path" "LastError of a refused definition"
# RecordsSent counts since the sink daemon started: what it sent after the SIGKILL.
wait_prop out Lag "t 0"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/sink/out org.dpipe.Pipeline1.Sink RecordsSent)" != "t 0" ]' ||
        dp_fail "RecordsSent stayed 0 after the restart"
sent=$(sink_prop out RecordsSent | cut -d' ' -f2)
[ "$sent" -gt 0 ] && [ "$sent" -lt "$N" ] || dp_fail "RecordsSent after the restart: $sent"
dp_assert_eq 's "active"' "$(sink_prop out State)" "State after catching up"

dp_expect_exit 0 dpipectl list-sinks
dp_assert_contains "$out" "$OUT/records.jsonl" "list-sinks shows the address"
dp_assert_contains "$out" "2 sinks listed." "list-sinks footer"
dp_expect_exit 0 dpipectl --json list-sinks
python3 - "$out" "$N" <<'EOF' || dp_fail "list-sinks --json: $out"
import json, sys
sinks = {s['Name']: s for s in json.loads(sys.argv[1])}
assert sinks['out']['Type'] == 'file' and sinks['out']['State'] == 'active', sinks
assert 0 < sinks['out']['RecordsSent'] < int(sys.argv[2]) and sinks['out']['Lag'] == 0, sinks
assert sinks['bad']['State'] == 'failed', sinks
EOF

# The client protocol: reading for everyone, changes on client.sock for root, not on TCP without a token.
out=$(dp_sock_client 'send:{"op":"list_sinks","id":7}' recv:1)
python3 -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["op"]=="sinks" and r["id"]==7 and sorted(s["name"] for s in r["sinks"])==["bad","out"], r' "$out" ||
        dp_fail "list_sinks: $out"
out=$(dp_client 'send:add-sink x file address=/tmp/x' recv:1)
dp_assert_contains "$out" '"code":"denied"' "add-sink over TCP without a token"
out=$(dp_sock_client 'send:remove-sink bad' recv:1 'send:remove-sink bad' recv:1 'send:list-sinks' recv:1)
dp_assert_contains "$(sed -n 1p <<<"$out")" '"op":"ok"' "remove-sink over client.sock"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"code":"no_such_sink"' "removing it twice"
dp_assert_contains "$(sed -n 3p <<<"$out")" '"sinks":[{"name":"out"' "list-sinks after the removal"
[ ! -e "$STATE_DIR/sinks/bad.sink" ] || dp_fail "the removed sink is still in the registry"

# Exactly once, in order, across the kills.
python3 - "$OUT" "$N" <<'EOF' || dp_fail "the files do not hold every record exactly once in order"
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
files = sorted((f for f in os.listdir(out) if f.startswith('records.jsonl.')), key=lambda f: int(f.split('.')[-1]))
offsets = []
for f in files + ['records.jsonl']:
    for line in open(os.path.join(out, f), encoding='utf-8'):
        r = json.loads(line)
        assert r['data'] == {'i': r['offset']} and r['source'] == 'demo', r
        offsets.append(r['offset'])
assert offsets == list(range(n)), f'{len(offsets)} records, {len(offsets) - len(set(offsets))} duplicates'
print(f'{n} records exactly once, in order')
EOF

dp_expect_exit 0 dpipectl remove-sink out
dp_expect_exit 0 dpipectl list-sinks --no-legend
dp_assert_eq "" "$out" "sinks after remove-sink"
dp_retry 10 bash -c '! "$1" "$2" list | grep -q "\"name\": \"out\""' _ "$CTL" "$RUNTIME_DIR/sink-file.sock" ||
        dp_fail "the sink daemon still runs the removed sink"
