#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipectl against a running pipeline on a private system bus (issue #7): every command, the table
# a person reads (checked to the character), --json read back by a JSON parser, the exit codes
# (0 success, 1 failure with the D-Bus error as one line and bad usage, as systemctl; 4 no such
# source; test-cli-conventions.sh has the rest), monitor's live lines, tail
# through the client protocol, and the bus policy (anyone may look, only root may change).
source "$(dirname "$0")/lib.sh"

for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; rm -rf "$TMP"; trap - EXIT; exit 77; }
done

printf 'id,name,score\n1,ann,10\n2,"bob, jr",20\n3,cy,30\n' >"$TMP/alpha.csv"
N_ALPHA=3

dp_start_bus
dp_start_pipeline

PORT_ALPHA=$(dp_free_port)
dp_daemon source-alpha dpipe-source --file="$TMP/alpha.csv" --tcp="127.0.0.1:$PORT_ALPHA"
dp_wait_port 127.0.0.1 "$PORT_ALPHA"
PORT_DEAD=$(dp_free_port) # nothing listens there

# The error a user sees is exactly one line.
one_line() {
        [ -n "$err" ] || dp_fail "$1: no message on stderr"
        [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || dp_fail "$1: more than one line on stderr: $err"
}

# --- monitor, started first so that it sees everything -------------------------------------
# The --json one prints no banner: start it first, and give it a moment more than the other.
dp_bg monitor-json bash -c 'exec dpipectl monitor --json >"$1"' _ "$TMP/monitor.jsonl"
dp_bg monitor bash -c 'exec dpipectl monitor >"$1"' _ "$TMP/monitor.txt"
dp_retry 10 grep -q "^Monitoring org.dpipe.Pipeline1" "$TMP/monitor.txt" || dp_fail "monitor did not start"
sleep 1

# --- add-source ------------------------------------------------------------------------------
dp_expect_exit 0 dpipectl add-source alpha --type=tcp --address="127.0.0.1:$PORT_ALPHA" --option=heartbeat_ms=1000
dp_assert_eq "" "$out" "add-source prints nothing on success"
dp_expect_exit 0 dpipectl --json add-source beta --type=tcp --address="127.0.0.1:$PORT_DEAD" \
        --option=timeout_ms=500 --option=query="subscribe 0"
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o=={"name":"beta","path":"/org/dpipe/Pipeline1/source/beta"}, o' "$out" ||
        dp_fail "add-source --json printed $out"
# The options went out typed: u for the *_ms ones, s for the others.
out=$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/beta org.dpipe.Pipeline1.Source Address)
dp_assert_eq "s \"127.0.0.1:$PORT_DEAD\"" "$out" "Address of beta"

# --- failures: exit 1 and the D-Bus error's message as one line -----------------------------
dp_expect_exit 1 dpipectl add-source alpha --type=tcp --address="127.0.0.1:$PORT_ALPHA"
one_line "add-source of an existing name"
dp_assert_contains "$err" "Failed to add source alpha:" "add-source twice"
dp_assert_contains "$err" "exists" "add-source twice"
dp_expect_exit 1 dpipectl add-source 'bad/name' --type=tcp --address=127.0.0.1:1
one_line "add-source with a bad name"
dp_expect_exit 1 dpipectl add-source gamma --type=nosuchtype --address=127.0.0.1:1
one_line "add-source of an unknown type"
dp_expect_exit 4 dpipectl remove-source nosuch
one_line "remove-source of an unknown source"
dp_assert_contains "$err" "nosuch" "remove-source nosuch"
dp_expect_exit 4 dpipectl status nosuch
one_line "status of an unknown source"
dp_expect_exit 1 env DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TMP/nobus" dpipectl list-sources
one_line "no bus"
dp_assert_contains "$err" "bus" "no bus"

# --- bad usage: exit 1, as systemctl -------------------------------------------------------------
dp_expect_exit 1 dpipectl frobnicate
dp_expect_exit 1 dpipectl add-source onlyname
dp_expect_exit 1 dpipectl add-source x --type=tcp
dp_expect_exit 1 dpipectl add-source x --type=tcp --address=a:1 --option=noequals
dp_expect_exit 1 dpipectl add-source x --type=tcp --address=a:1 --option=address=b:2
dp_expect_exit 1 dpipectl add-source x --type=tcp --address=a:1 --option=format=csv --option=format=jsonl
dp_expect_exit 1 dpipectl list-sources extra
dp_expect_exit 1 dpipectl list-sources --type=tcp
dp_expect_exit 1 dpipectl tail --from=yesterday
dp_expect_exit 1 dpipectl --no-such-option list-sources
# An option's name and value are the connector's to judge (its option table): refused by it.
dp_expect_exit 1 dpipectl add-source x --type=tcp --address=127.0.0.1:1 --option=heartbeat_ms=soon
dp_assert_contains "$err" "invalid value for option 'heartbeat_ms'" "a bad value, named"
dp_expect_exit 0 dpipectl --help
dp_assert_contains "$out" "add-source NAME" "--help"
dp_expect_exit 0 dpipectl --version
[[ "$out" =~ ^dpipectl\ [0-9] ]] || dp_fail "--version printed '$out'"

# --- pause, resume ---------------------------------------------------------------------------
dp_expect_exit 0 dpipectl pause-source beta
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/beta org.dpipe.Pipeline1.Source State)" = "s \"paused\"" ]' ||
        dp_fail "beta is not paused after pause-source"

# alpha has delivered all its rows once the counter says so (counters move at most once a second).
dp_retry 15 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/alpha org.dpipe.Pipeline1.Source RecordsReceived)" = "t $1" ]' _ "$N_ALPHA" ||
        dp_fail "alpha did not receive $N_ALPHA records"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/alpha org.dpipe.Pipeline1.Source State)" = "s \"active\"" ]' ||
        dp_fail "alpha is not active"

dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager QueueNextOffset)" = "t $1" ]' _ "$N_ALPHA" ||
        dp_fail "the queue does not hold alpha's $N_ALPHA records"

# --- list-sources: the table, to the character ------------------------------------------------
# Ports from dp_free_port are ephemeral, i.e. 5 digits: the columns below are fixed.
[ "${#PORT_ALPHA}" = 5 ] && [ "${#PORT_DEAD}" = 5 ] || dp_fail "unexpected port lengths $PORT_ALPHA $PORT_DEAD"
dp_expect_exit 0 dpipectl list-sources
expected="NAME  TYPE STATE  ADDRESS         RECORDS SKIPPED
alpha tcp  active 127.0.0.1:$PORT_ALPHA       3       0
beta  tcp  paused 127.0.0.1:$PORT_DEAD       0       0

2 sources listed."
dp_assert_eq "$expected" "$out" "list-sources table"
dp_expect_exit 0 dpipectl list-sources --no-legend
expected="alpha tcp active 127.0.0.1:$PORT_ALPHA 3 0
beta  tcp paused 127.0.0.1:$PORT_DEAD 0 0"
dp_assert_eq "$expected" "$out" "list-sources --no-legend"

# On a terminal: colours, and the pager (here a sed that marks its lines); --no-pager skips it.
python3 - <<'PY' || dp_fail "list-sources on a terminal (see above)"
import os, pty, sys

def run(*args):
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["DPIPE_PAGER"] = "sed s/^/PAGED:/"
        os.environ["TERM"] = "xterm"
        os.environ.pop("NO_COLOR", None)
        os.execvp("dpipectl", ["dpipectl"] + list(args))
    out = b""
    while True:
        try:
            d = os.read(fd, 65536)
        except OSError:
            break
        if not d:
            break
        out += d
    _, st = os.waitpid(pid, 0)
    assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0, st
    return out.decode()

paged = run("list-sources")
assert "PAGED:\x1b[0;4mNAME" in paged, repr(paged)                # underlined header, through the pager
assert "\x1b[0;1;32mactive\x1b[0m" in paged, repr(paged)          # a green state
assert "\x1b[0;38;5;245mpaused\x1b[0m" in paged, repr(paged)      # a grey one
plain = run("--no-pager", "list-sources")
assert "PAGED:" not in plain and "\x1b[0;4mNAME" in plain, repr(plain)
PY

dp_expect_exit 0 dpipectl list-sources --json
python3 - "$out" "$PORT_ALPHA" "$PORT_DEAD" <<'PY' || dp_fail "list-sources --json: $out"
import json, sys
a = json.loads(sys.argv[1])
assert [s["Name"] for s in a] == ["alpha", "beta"], a
alpha, beta = a
assert alpha["Type"] == "tcp" and alpha["State"] == "active", alpha
assert alpha["Address"] == "127.0.0.1:" + sys.argv[2], alpha
assert alpha["RecordsReceived"] == 3 and alpha["BytesReceived"] > 0, alpha
assert alpha["ObjectPath"] == "/org/dpipe/Pipeline1/source/alpha", alpha
assert beta["State"] == "paused" and beta["Address"] == "127.0.0.1:" + sys.argv[3], beta
for key in ("LastRecordUSec", "LastHeartbeatUSec", "Reconnects", "LastError"):
    assert key in alpha, key
PY

# --- status NAME, status ---------------------------------------------------------------------
dp_expect_exit 0 dpipectl status alpha
dp_assert_contains "$out" "● alpha - tcp source" "status alpha"
dp_assert_contains "$out" "         State: active" "status alpha"
dp_assert_contains "$out" "       Address: 127.0.0.1:$PORT_ALPHA" "status alpha"
dp_assert_contains "$out" "       Records: 3 (" "status alpha"
dp_assert_contains "$out" "   Last record: " "status alpha"
dp_assert_contains "$out" "Last heartbeat: " "status alpha"
dp_assert_contains "$out" " ago" "status alpha (last record time)"
[[ "$out" != *$'\e'* ]] || dp_fail "status prints colours into a pipe"
dp_expect_exit 0 dpipectl status beta
dp_assert_contains "$out" "         State: paused" "status beta"
dp_expect_exit 0 dpipectl status alpha --json
python3 -c 'import json,sys; o=json.loads(sys.argv[1]); assert o["Name"]=="alpha" and o["RecordsReceived"]==3 and o["State"]=="active", o' "$out" ||
        dp_fail "status alpha --json: $out"
dp_expect_exit 0 dpipectl status
dp_assert_contains "$out" "dpipe pipeline (dpiped " "status"
dp_assert_contains "$out" "         Queue: 3 records stored, offsets 0..2" "status"
dp_assert_contains "$out" "       Sources: 2 (1 active, 0 failed)" "status"
dp_assert_contains "$out" "active alpha (tcp) 127.0.0.1:$PORT_ALPHA" "status"
dp_expect_exit 0 dpipectl --json status
python3 - "$out" <<'PY' || dp_fail "status --json: $out"
import json, sys
o = json.loads(sys.argv[1])
assert o["QueueFirstOffset"] == 0 and o["QueueNextOffset"] == 3, o
assert isinstance(o["Version"], str) and o["Version"], o
assert [s["Name"] for s in o["Sources"]] == ["alpha", "beta"], o
PY

dp_expect_exit 0 dpipectl resume-source beta
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/beta org.dpipe.Pipeline1.Source State)" != "s \"paused\"" ]' ||
        dp_fail "beta still paused after resume-source"

# --- tail: records through the client protocol -------------------------------------------------
dp_expect_exit 0 timeout 20 dpipectl tail --from=earliest --no-follow --json --connect="127.0.0.1:$DPIPED_PORT"
python3 - "$out" <<'PY' || dp_fail "tail --json: $out"
import json, sys
recs = [json.loads(l) for l in sys.argv[1].splitlines()]
assert [r["offset"] for r in recs] == [0, 1, 2], recs
assert [r["data"]["name"] for r in recs] == ["ann", "bob, jr", "cy"], recs
assert all(r["source"] == "alpha" and r["op"] == "record" for r in recs), recs
PY
# -n 2: the last two records of the queue, like tail -n.
dp_expect_exit 0 timeout 20 dpipectl tail -n 2 --no-follow --source=alpha --connect="127.0.0.1:$DPIPED_PORT"
[ "$(printf '%s\n' "$out" | wc -l)" = 2 ] || dp_fail "tail -n 2 printed: $out"
[[ "$(printf '%s\n' "$out" | head -n1)" =~ ^1\ [0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9:.]+\ alpha:\ \{.*\"bob,\ jr\" ]] ||
        dp_fail "tail human line: $out"
dp_expect_exit 0 timeout 20 dpipectl tail --from=earliest --no-follow --source=nosuch --connect="127.0.0.1:$DPIPED_PORT"
dp_assert_eq "-- No records --" "$out" "tail of a source without records"
dp_expect_exit 1 dpipectl tail --from=earliest -n 2
# Following: runs until SIGTERM, then exits 0.
dpipectl tail -n 1 --json --connect="127.0.0.1:$DPIPED_PORT" >"$TMP/follow.jsonl" 2>&1 &
follow_pid=$!
DP_OTHER_PIDS+=("$follow_pid")
dp_retry 10 grep -q '"offset":2,' "$TMP/follow.jsonl" || dp_fail "tail -n 1 did not show the last record: $(cat "$TMP/follow.jsonl")"
kill -TERM "$follow_pid"
rc=0
wait "$follow_pid" || rc=$?
dp_assert_eq 0 "$rc" "exit status of tail after SIGTERM"
dp_assert_eq 1 "$(wc -l <"$TMP/follow.jsonl")" "lines printed by tail -n 1"
dp_expect_exit 3 dpipectl tail --connect=127.0.0.1:1
one_line "tail with nothing listening"

# --- the bus policy: anyone may look, only root may change ------------------------------------
if setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
        dp_expect_exit 0 dp_nobody dpipectl list-sources --no-legend
        dp_assert_contains "$out" alpha "list-sources as nobody"
        dp_expect_exit 77 dp_nobody dpipectl remove-source alpha
        one_line "remove-source as nobody"
        dp_assert_eq "dpipectl: Failed to remove source alpha: Access denied: changing the pipeline over D-Bus needs root, or polkit's org.dpipe.pipeline1.manage (see dpipectl(1))" \
                "$err" "remove-source as nobody"
        out=$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/alpha org.dpipe.Pipeline1.Source Name)
        dp_assert_eq 's "alpha"' "$out" "alpha after a refused remove-source"
fi

# --- remove-source, several at once ------------------------------------------------------------
dp_expect_exit 0 dpipectl add-source gamma --type=tcp --address="127.0.0.1:$PORT_DEAD"
dp_expect_exit 4 dpipectl remove-source gamma nosuch
one_line "remove-source gamma nosuch"
dp_expect_exit 0 dpipectl list-sources --no-legend
[[ "$out" != *gamma* ]] || dp_fail "gamma still listed after remove-source gamma nosuch: $out"
dp_expect_exit 0 dpipectl remove-source alpha beta
dp_expect_exit 0 dpipectl list-sources
dp_assert_eq "NAME TYPE STATE ADDRESS RECORDS SKIPPED

0 sources listed." "$out" "empty list-sources"
dp_expect_exit 0 dpipectl list-sources --json
dp_assert_eq "[]" "$out" "empty list-sources --json"

# Removing the last sources: dpiped closes its control connection to the connector right after the
# last request, an expected hang-up that the connector notes at debug, not as a warning.
dp_retry 10 grep -q "Source beta: removed" "$LOG_DIR/connector-tcp.log" || dp_fail "the connector did not remove beta"
sleep 0.5
! grep -E '^<[0-4]>.*(Broken pipe|Connection reset)' "$LOG_DIR"/connector-tcp.log "$LOG_DIR"/dpiped.log ||
        dp_fail "an expected hang-up logged as a warning"

# --- what monitor saw ------------------------------------------------------------------------
dp_retry 10 grep -q "^gamma: removed" "$TMP/monitor.txt" || dp_fail "monitor missed the removal of gamma: $(cat "$TMP/monitor.txt")"
mon=$(cat "$TMP/monitor.txt")
dp_assert_contains "$mon" "alpha: added" "monitor"
dp_assert_contains "$mon" "gamma: added" "monitor"
grep -q "^beta: .*State=paused" "$TMP/monitor.txt" || dp_fail "monitor did not show beta paused: $mon"
grep -q "^alpha: .*State=active" "$TMP/monitor.txt" || dp_fail "monitor did not show alpha active: $mon"
dp_retry 10 grep -q '"SourceRemoved"' "$TMP/monitor.jsonl" || dp_fail "monitor --json missed SourceRemoved"
python3 - "$TMP/monitor.jsonl" <<'PY' || dp_fail "monitor --json: $(cat "$TMP/monitor.jsonl")"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
added = [e["name"] for e in ev if e["event"] == "SourceAdded"]
assert added[:2] == ["alpha", "beta"] and "gamma" in added, added
states = [(e["object"], e["properties"]["State"]) for e in ev
          if e["event"] == "PropertiesChanged" and "State" in e["properties"]]
assert ("beta", "paused") in states and ("alpha", "active") in states, states
assert all(e["path"].startswith("/org/dpipe/Pipeline1") for e in ev if "path" in e), ev
PY

# --- --user: the session bus ---------------------------------------------------------------
if command -v dbus-run-session >/dev/null; then
        mkdir -p "$TMP/user/run" "$TMP/user/state"
        USER_PORT=$(dp_free_port)
        out=$(DBUS_SYSTEM_BUS_ADDRESS="unix:path=$TMP/nobus" dbus-run-session -- bash -c '
                dpiped --user --runtime-dir="$1/run" --state-dir="$1/state" --listen="127.0.0.1:$2" 2>"$1/dpiped.log" &
                pid=$!
                for ((i = 0; i < 100; i++)); do
                        busctl --user status org.dpipe.Pipeline1 >/dev/null 2>&1 && break
                        sleep 0.1
                done
                dpipectl --user --no-legend --json list-sources; echo "user=$?"
                dpipectl --no-legend list-sources 2>/dev/null; echo "system=$?"
                kill -TERM "$pid"; wait "$pid"; echo "dpiped=$?"' _ "$TMP/user" "$USER_PORT" 2>/dev/null)
        dp_assert_eq $'[]\nuser=0\nsystem=1\ndpiped=0' "$out" "dpipectl --user against dpiped --user"
fi
