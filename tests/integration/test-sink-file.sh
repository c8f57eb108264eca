#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-sink-file in the real pipeline (dpipe-source -> tcp connector -> writer -> dpiped -> the sink's
# durable subscription): every record lands in the files exactly once, in offset order, across
# SIGKILLs of the sink and of dpiped in the middle of the flow, a torn last line such a crash leaves,
# and rotation
# by max_bytes (rotated files named after their first offset, max_files pruning the oldest).
source "$(dirname "$0")/lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-sink-file; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=20000
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"
OUT="$TMP/out"
mkdir -p "$OUT"

python3 -c "
import json
for i in range($N): print(json.dumps({'i': i, 'pad': 'x' * (i % 50), 'u': 'K\u00f6ln \"q\"'}))" >"$TMP/rows.jsonl"

dp_start_bus
dp_start_pipeline
PORT=$(dp_free_port)
dp_bg source dpipe-source --file="$TMP/rows.jsonl" --tcp="127.0.0.1:$PORT" --rate=4000
dp_wait_port 127.0.0.1 "$PORT"
out=$(dpipectl add-source demo --type=tcp --address="127.0.0.1:$PORT" 2>&1) || dp_fail "add-source: $out"

# dpiped's client protocol: client.sock where dpiped serves it, else its TCP port.
if [ -S "$RUNTIME_DIR/client.sock" ]; then CONNECT="$RUNTIME_DIR/client.sock"; else CONNECT="127.0.0.1:$DPIPED_PORT"; fi
start_sink() {
        dp_daemon sink dpipe-sink-file --runtime-dir="$RUNTIME_DIR" --connect="$CONNECT"
        dp_wait_socket "$RUNTIME_DIR/sink-file.sock"
        # dpiped re-sends its sinks to a restarted daemon; here the test plays dpiped.
        "$CTL" "$RUNTIME_DIR/sink-file.sock" add out address="$OUT/records.jsonl" max_bytes=200000 \
                max_files=1000 >/dev/null || dp_fail "add was refused"
}
lines() { cat "$OUT"/records.jsonl* 2>/dev/null | wc -l; }
wait_lines() {
        dp_retry 60 bash -c '[ "$(cat "$1"/records.jsonl* 2>/dev/null | wc -l)" -ge "$2" ]' _ "$OUT" "$1" ||
                dp_fail "fewer than $1 records reached the files (have $(lines))"
}

# Bad input is refused with a clear error and changes nothing.
start_sink
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-file.sock" add bad address=relative/path
dp_assert_contains "$out" "absolute path" "a relative address"
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-file.sock" add bad2 max_bytes=1
dp_assert_contains "$out" "'address' is required" "a missing address"
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-file.sock" add bad3 address=/x max_bytes=lots
dp_assert_contains "$out" "max_bytes" "a non-numeric max_bytes"
dp_expect_exit 1 "$CTL" "$RUNTIME_DIR/sink-file.sock" add 'bad name' address=/x
dp_assert_contains "$out" "invalid sink name" "a bad name"

# Mid-flow crash of the sink, twice; the second time a torn line is left behind as a crash in the
# middle of a write would leave it.
wait_lines 3000
dp_kill_daemon sink KILL
start_sink
# dpiped dies too: its durable offsets lag (they are stored once a second), so only the file's own
# tail can say where the sink stands.
wait_lines 6000
dp_kill_daemon dpiped KILL
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="127.0.0.1:$DPIPED_PORT"
dp_wait_port 127.0.0.1 "$DPIPED_PORT"
wait_lines 8000
dp_kill_daemon sink KILL
printf '{"offset":999999999,"source":"demo","ts_us":1,"da' >>"$OUT/records.jsonl"
start_sink
"$CTL" "$RUNTIME_DIR/sink-file.sock" wait out confirmed_offset == "$N" 60 >"$TMP/final-state" ||
        dp_fail "the sink did not confirm all $N records"
grep -q 'cutting .* bytes of a torn last line' "$LOG_DIR/sink.log" || dp_fail "the torn line was not reported"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["state"]=="active" and s["lag"]==0 and s["error"]=="", s' \
        "$TMP/final-state" || dp_fail "final state: $(cat "$TMP/final-state")"

# A restart with nothing new appends nothing.
dp_kill_daemon sink TERM
start_sink
"$CTL" "$RUNTIME_DIR/sink-file.sock" wait out state == active 20 >/dev/null || dp_fail "not active after restart"
sleep 1

python3 - "$OUT" "$N" <<'EOF' || dp_fail "the files do not hold every record exactly once in order (see above)"
import json, os, sys
out, n = sys.argv[1], int(sys.argv[2])
rotated = sorted(f for f in os.listdir(out) if f.startswith('records.jsonl.'))
assert len(rotated) >= 5, f'expected rotation by max_bytes, got {rotated}'
offsets = []
for f in rotated + ['records.jsonl']:
    data = open(os.path.join(out, f), 'rb').read()
    assert data == b'' or data.endswith(b'\n'), f'{f} ends in a torn line'
    first = None
    for line in data.decode('utf-8').splitlines():
        r = json.loads(line)
        assert list(r) == ['offset', 'source', 'ts_us', 'data'], r
        assert r['source'] == 'demo' and r['ts_us'] > 0, r
        assert r['data'] == {'i': r['offset'], 'pad': 'x' * (r['offset'] % 50), 'u': 'K\u00f6ln "q"'}, r
        if first is None:
            first = r['offset']
        offsets.append(r['offset'])
    if f != 'records.jsonl':
        assert int(f.split('.')[-1]) == first, f'{f} starts at offset {first}'
        size = os.path.getsize(os.path.join(out, f))
        assert 200000 <= size < 200000 + 300, f'{f} has {size} bytes with max_bytes=200000'
dups = len(offsets) - len(set(offsets))
assert offsets == list(range(n)), f'{len(offsets)} lines, {dups} duplicates, first mismatch at ' + \
    str(next((i for i, o in enumerate(offsets) if o != i), None))
print(f'{n} records in {len(rotated)} rotated files + the current one, exactly once, in order')
EOF

# max_files: a sink that keeps two rotated files.
"$CTL" "$RUNTIME_DIR/sink-file.sock" add small address="$OUT/small.jsonl" max_bytes=300000 max_files=2 >/dev/null ||
        dp_fail "add small was refused"
"$CTL" "$RUNTIME_DIR/sink-file.sock" wait small confirmed_offset == "$N" 60 >/dev/null || dp_fail "small did not catch up"
n=$(ls "$OUT" | grep -c '^small\.jsonl\.')
dp_assert_eq 2 "$n" "rotated files kept with max_files=2"
first=$(head -c 40 "$OUT/$(ls "$OUT" | grep '^small\.jsonl\.' | head -n1)" | sed 's/{"offset":\([0-9]*\),.*/\1/')
[ "$first" -gt 0 ] || dp_fail "the oldest rotated files were not the ones removed"
