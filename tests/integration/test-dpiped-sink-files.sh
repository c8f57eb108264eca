#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Declarative sinks (dpipe.sink(5)) with a real pipeline and a real file sink: precedence of /etc
# over /run over /usr/lib, masking, drop-ins, a bad file, the records delivered into the files the
# definitions name, reload (dpipectl, SIGHUP, the client op) applying only the difference,
# SinkDefinedByFile over busctl, dpipectl and the client protocol, and a file taking over a sink of
# the API and giving it back.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"
for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-sink-file; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; exit 77; }
done
N=200
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"
ETC=$TMP/etc/sinks.d RUN=$TMP/run/sinks.d LIB=$TMP/lib/sinks.d OUT=$TMP/out
mkdir -p "$ETC" "$RUN" "$LIB" "$OUT"
DIRS="$ETC:$RUN:$LIB"
python3 -c "
import json
for i in range($N): print(json.dumps({'i': i}))" >"$TMP/rows.jsonl"

sink() { # sink FILE ADDRESS [MORE LINES...]
        local f=$1 a=$2
        shift 2
        printf '[Sink]\nType=file\nAddress=%s\n' "$a" >"$f"
        local l
        for l in "$@"; do printf '%s\n' "$l" >>"$f"; done
}
prop() {
        busctl --system get-property org.dpipe.Pipeline1 "/org/dpipe/Pipeline1/sink/$1" org.dpipe.Pipeline1.Sink "$2"
}
sinks() {
        busctl --system --json=short call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSinks |
                python3 -c 'import json, sys; print(" ".join(sorted(s[0] for s in json.load(sys.stdin)["data"][0])))'
}
# holds FILE FIRST END: FILE holds the records FIRST..END-1, each once, in order.
holds() {
        python3 - "$@" <<'EOF'
import json, sys
try:
    offsets = [json.loads(l)['offset'] for l in open(sys.argv[1], encoding='utf-8')]
except FileNotFoundError:
    sys.exit(1)
sys.exit(0 if offsets == list(range(int(sys.argv[2]), int(sys.argv[3]))) else 1)
EOF
}
wait_holds() { # FILE FIRST END WHAT
        dp_retry 60 holds "$1" "$2" "$3" ||
                dp_fail "$4: $1 does not hold the records $2..$(($3 - 1)) exactly once ($(wc -l <"$1" 2>&1) lines)"
}
# more NAME: a source of N more records; TOTAL counts the records of all sources.
TOTAL=0
more() {
        local port
        port=$(dp_free_port)
        dp_bg "source-$1" dpipe-source --file="$TMP/rows.jsonl" --tcp="127.0.0.1:$port"
        dp_wait_port 127.0.0.1 "$port"
        dp_expect_exit 0 dpipectl add-source "$1" --type=tcp --address="127.0.0.1:$port"
        TOTAL=$((TOTAL + N))
}
audits() { grep -c "$1" "$LOG_DIR/dpiped.log" || true; }

# Precedence: /etc wins over /usr/lib.
sink "$LIB/a.sink" "$OUT/a-lib.jsonl"
sink "$ETC/a.sink" "$OUT/a-etc.jsonl"
# Masked by a symlink to /dev/null, and by an empty file.
sink "$LIB/b.sink" "$OUT/b.jsonl"
ln -s /dev/null "$ETC/b.sink"
sink "$LIB/c.sink" "$OUT/c.jsonl"
: >"$RUN/c.sink"
# A drop-in moves the address; a /dev/null symlink in /etc masks /usr/lib's 20-size.conf.
sink "$RUN/d.sink" "$OUT/d-first.jsonl"
mkdir -p "$ETC/d.sink.d" "$LIB/d.sink.d"
printf '[Sink]\nAddress=%s\nOption=max_files=4\n' "$OUT/d.jsonl" >"$ETC/d.sink.d/10-address.conf"
printf '[Sink]\nOption=max_bytes=10\n' >"$LIB/d.sink.d/20-size.conf"
ln -s /dev/null "$ETC/d.sink.d/20-size.conf"
# Bad files: an unknown setting, a [Source] section; the others load.
sink "$ETC/e.sink" "$OUT/e.jsonl" 'Colour=blue'
printf '[Source]\nType=file\nAddress=%s\n' "$OUT/f.jsonl" >"$ETC/f.sink"
# Options the sink daemon refuses (its "check"): the file and the option are logged, the sink is
# not started.
sink "$ETC/u.sink" "$OUT/u.jsonl" Option=colour=blue
# A source file in the same directory is not a sink.
printf '[Source]\nType=tcp\nAddress=127.0.0.1:1\n' >"$ETC/g.source"

dp_start_bus
dp_daemon sink dpipe-sink-file --runtime-dir="$RUNTIME_DIR"
dp_wait_socket "$RUNTIME_DIR/sink-file.sock"
dp_start_pipeline --sinks-dirs="$DIRS" --sources-dirs=
more demo

dp_retry 10 grep -q "$ETC/u.sink: unknown option 'colour'; sink u not loaded" "$LOG_DIR/dpiped.log" ||
        dp_fail "no log line naming u.sink and its option: $(grep u.sink "$LOG_DIR/dpiped.log")"
rm "$ETC/u.sink"
dp_assert_eq "a d" "$(sinks)" "sinks loaded from files"
dp_assert_eq "s \"$OUT/a-etc.jsonl\"" "$(prop a Address)" "/etc wins over /usr/lib"
dp_assert_eq "s \"$ETC/a.sink\"" "$(prop a FragmentPath)" "FragmentPath of a"
dp_assert_eq "as 0" "$(prop a DropInPaths)" "DropInPaths of a"
dp_assert_eq "s \"$OUT/d.jsonl\"" "$(prop d Address)" "Address= of a drop-in"
dp_assert_eq "as 1 \"$ETC/d.sink.d/10-address.conf\"" "$(prop d DropInPaths)" "DropInPaths of d"
grep -q "$ETC/e.sink:4: unknown setting \"Colour\" in \[Sink\]" "$LOG_DIR/dpiped.log" ||
        dp_fail "no file:line for the bad file: $(grep e.sink "$LOG_DIR/dpiped.log")"
grep -q "$ETC/f.sink:1: unknown section \[Source\] (dpipe.sink(5) knows \[Sink\]); sink f not loaded" \
        "$LOG_DIR/dpiped.log" || dp_fail "no file:line for f: $(grep f.sink "$LOG_DIR/dpiped.log")"
wait_holds "$OUT/a-etc.jsonl" 0 $TOTAL "a"
wait_holds "$OUT/d.jsonl" 0 $TOTAL "d"
[ ! -e "$OUT/u.jsonl" ] && [ ! -e "$OUT/a-lib.jsonl" ] && [ ! -e "$OUT/b.jsonl" ] && [ ! -e "$OUT/c.jsonl" ] && [ ! -e "$OUT/d-first.jsonl" ] ||
        dp_fail "a file that lost or was masked was written: $(ls "$OUT")"
dp_assert_contains "$(prop d Options)" '"max_files" s "4"' "d's options (/usr/lib's 20-size.conf masked)"
[[ "$(prop d Options)" != *max_bytes* ]] || dp_fail "the masked drop-in applied: $(prop d Options)"

# A sink of a file cannot be removed over any API; AddSink of its name is SinkExists.
dp_assert_eq org.dpipe.Pipeline1.Error.SinkDefinedByFile "$(dp_bus_error dp_manager RemoveSink s a)" "RemoveSink a"
dp_expect_exit 1 dpipectl remove-sink a
dp_assert_contains "$err" "is defined by $ETC/a.sink" "dpipectl remove-sink a"
out=$(dp_sock_client 'send:{"op":"remove_sink","name":"a","id":1}' 'send:remove-sink a' recv:2)
[ "$(grep -c '"code":"sink_defined_by_file"' <<<"$out")" = 2 ] || dp_fail "client protocol remove_sink a: $out"
dp_assert_eq org.dpipe.Pipeline1.Error.SinkExists \
        "$(dp_bus_error dp_manager AddSink 'ssa{sv}' a file 1 address s "$OUT/x.jsonl")" "AddSink a"
dp_expect_exit 1 dpipectl add-sink a --type=file --address="$OUT/x.jsonl"
dp_assert_contains "$err" "defined by $ETC/a.sink" "dpipectl add-sink a"
out=$(dp_sock_client send:list-sinks recv:1)
dp_assert_contains "$out" "\"fragment_path\":\"$ETC/a.sink\"" "list-sinks shows where a comes from"
[ ! -e "$STATE_DIR/sinks/a.sink" ] || dp_fail "a sink of a file went into the registry"

# Reload: d's drop-in moves it (restarted: the new file gets what comes next, the durable
# subscription sink-d goes on), a's /etc file goes and /usr/lib's applies, h is added, and e, now
# fixed, loads (new subscriptions: every record); nothing else is touched.
printf '[Sink]\nAddress=%s\n' "$OUT/d2.jsonl" >"$ETC/d.sink.d/10-address.conf"
rm "$ETC/a.sink"
sink "$LIB/h.sink" "$OUT/h.jsonl"
sink "$ETC/e.sink" "$OUT/e.jsonl"
dpipectl reload || dp_fail "dpipectl reload failed"
dp_assert_eq "a d e h" "$(sinks)" "sinks after the reload"
dp_assert_eq "s \"$OUT/a-lib.jsonl\"" "$(prop a Address)" "a from /usr/lib"
dp_assert_eq "s \"$LIB/a.sink\"" "$(prop a FragmentPath)" "a's FragmentPath"
dp_assert_eq "s \"$OUT/d2.jsonl\"" "$(prop d Address)" "d moved"
grep -q "Reloaded the sink files: 2 added, 2 changed, 0 removed, 0 unchanged, 1 with errors" "$LOG_DIR/dpiped.log" ||
        dp_fail "reload summary: $(grep 'Reloaded the sink' "$LOG_DIR/dpiped.log")"
before=$TOTAL
more demo2
wait_holds "$OUT/a-lib.jsonl" $before $TOTAL "a after the reload"
wait_holds "$OUT/d2.jsonl" $before $TOTAL "d after the reload"
wait_holds "$OUT/e.jsonl" 0 $TOTAL "e after the reload"
wait_holds "$OUT/h.jsonl" 0 $TOTAL "h after the reload"
holds "$OUT/d.jsonl" 0 $before || dp_fail "d's first file changed after d moved"

# Only the paths move: the sink is not restarted, its paths are updated.
n_h=$(audits "Sink h ")
mv "$LIB/h.sink" "$RUN/h.sink"
dpipectl reload
dp_assert_eq "s \"$RUN/h.sink\"" "$(prop h FragmentPath)" "h moved"
dp_assert_eq "$n_h" "$(audits "Sink h ")" "h not restarted when only its paths changed"

# Removed and masked: gone from dpiped and from the sink daemon; what they wrote stays.
rm "$RUN/h.sink"
ln -sf /dev/null "$ETC/e.sink"
kill -HUP "${DP_PIDS[dpiped]}"
dp_retry 10 bash -c '! busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager GetSink s h >/dev/null 2>&1' ||
        dp_fail "SIGHUP did not remove h"
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSink "$(dp_bus_error dp_manager GetSink s e)" "masked e removed"
dp_retry 10 bash -c '! "$1" "$2" list | grep -Eq "\"name\": \"(e|h)\""' _ "$CTL" "$RUNTIME_DIR/sink-file.sock" ||
        dp_fail "the sink daemon still runs e or h: $("$CTL" "$RUNTIME_DIR/sink-file.sock" list)"
holds "$OUT/h.jsonl" 0 $TOTAL || dp_fail "h's file changed after h went away"

# A file takes over a sink of the API, and gives it back when it goes away.
dp_expect_exit 0 dpipectl add-sink k --type=file --address="$OUT/k-api.jsonl"
test -s "$STATE_DIR/sinks/k.sink" || dp_fail "k not in the registry"
wait_holds "$OUT/k-api.jsonl" 0 $TOTAL "k of the API"
sink "$ETC/k.sink" "$OUT/k-file.jsonl"
out=$(dp_sock_client 'send:{"op":"reload","id":7}' recv:1)
dp_assert_contains "$out" '{"op":"ok","id":7}' "client op reload"
dp_assert_eq "s \"$OUT/k-file.jsonl\"" "$(prop k Address)" "the file wins over the API"
grep -q "Sink k is defined by $ETC/k.sink and through the API: the file wins" "$LOG_DIR/dpiped.log" ||
        dp_fail "no warning about k"
test -s "$STATE_DIR/sinks/k.sink" || dp_fail "the registry entry of k was dropped"
before=$TOTAL
more demo3
wait_holds "$OUT/k-file.jsonl" $before $TOTAL "k of the file"
rm "$ETC/k.sink"
dpipectl reload
dp_assert_eq "s \"$OUT/k-api.jsonl\"" "$(prop k Address)" "the API's k is back"
dp_assert_eq 's ""' "$(prop k FragmentPath)" "k is the API's again"
more demo4
# The API's target resumes after the last record it holds.
wait_holds "$OUT/k-api.jsonl" 0 $TOTAL "k of the API, back"
dp_expect_exit 0 dpipectl remove-sink k

# Reload is not for everyone.
out=$(dp_nobody dpipectl reload 2>&1) && dp_fail "dpipectl reload as nobody succeeded"

# After a restart of dpiped: the files again, the registry's sinks, and no record twice.
dp_kill_daemon dpiped
dp_dpiped --sinks-dirs="$DIRS" --sources-dirs=
dp_assert_eq "a d" "$(sinks)" "sinks after a restart"
dp_assert_eq "s \"$LIB/a.sink\"" "$(prop a FragmentPath)" "a's FragmentPath after a restart"
dp_retry 30 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/sink/a org.dpipe.Pipeline1.Sink State)" = "s \"active\"" ]' ||
        dp_fail "a not active after the restart: $(prop a State) $(prop a LastError)"
more demo5
wait_holds "$OUT/a-lib.jsonl" $N $TOTAL "a after the restart"
wait_holds "$OUT/d2.jsonl" $N $TOTAL "d after the restart"

# --sinks-dirs is checked.
dp_expect_exit 1 dpiped --sinks-dirs=relative/dir --help
dp_assert_contains "$err" "--sinks-dirs= takes absolute paths" "--sinks-dirs=relative/dir"
