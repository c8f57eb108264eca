#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipectl and dpipe-client follow systemctl's conventions (issue #17): --help/--version, bad usage
# exits 1, the documented exit codes (3 dpiped not running, 4 no such source, 77 access denied, with
# a sentence instead of dbus-daemon's rule dump), --json=pretty|short|off and bare --json, -q, the
# default verb, options after the command, colours only on a terminal and never with NO_COLOR, and
# the pager: $SYSTEMD_PAGER/$PAGER or less, never more(1), never without a terminal, --no-pager.
# Also tail: --no-follow without -n prints the last 10 records, an unreachable server is an error;
# and the daemons' log on a terminal is plain text, "<N>" lines elsewhere.
source "$(dirname "$0")/lib.sh"

for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; rm -rf "$TMP"; trap - EXIT; exit 77; }
done
HERE=$(cd "$(dirname "$0")" && pwd)
DPIPECTL=$(command -v dpipectl)
PTY() { python3 "$HERE/cli-pty.py" "$@"; }

# json_check MODE TEXT: TEXT parses as JSON values, one per line for short, indented for pretty.
json_check() {
        python3 - "$1" "$2" <<'PY'
import json, sys
mode, text = sys.argv[1], sys.argv[2]
dec, i, values = json.JSONDecoder(), 0, []
while i < len(text):
    while i < len(text) and text[i] in " \n":
        i += 1
    if i == len(text):
        break
    v, i = dec.raw_decode(text, i)
    values.append(v)
assert values, "no JSON at all: %r" % text
lines = [l for l in text.split("\n") if l]
if mode == "short":
    assert len(lines) == len(values), "short JSON is one line per value: %r" % text
    for l in lines:
        json.loads(l)
elif mode == "pretty":
    assert len(lines) > len(values) and "\n  " in text, "pretty JSON is indented: %r" % text
PY
}

# --- help, version, usage errors: exit 1 as systemctl -----------------------------------------
for exe in dpipectl dpipe-client; do
        dp_expect_exit 0 "$exe" --help
        for opt in --json --quiet --version; do
                dp_assert_contains "$out" "$opt" "$exe --help"
        done
        dp_expect_exit 0 "$exe" --version
        dp_expect_exit 1 "$exe" --no-such-option
        dp_assert_contains "$err" "unrecognized option" "$exe --no-such-option"
        dp_expect_exit 1 "$exe" --json=yaml
        dp_assert_contains "$err" "pretty, short or off" "$exe --json=yaml"
done
dp_expect_exit 1 dpipectl frobnicate
dp_assert_contains "$err" "Unknown command 'frobnicate'" "unknown verb"
dp_expect_exit 0 dpipectl --help
dp_assert_contains "$out" "--no-pager" "dpipectl --help"

# --- exit 3: dpiped is not running ------------------------------------------------------------
dp_start_bus
dp_expect_exit 3 dpipectl status
dp_assert_contains "$err" "dpiped is not running" "status without dpiped"
dp_expect_exit 3 dpipectl
dp_expect_exit 3 dpipe-client --connect="$RUNTIME_DIR/client.sock" list
dp_expect_exit 3 dpipectl tail --no-follow --connect="$RUNTIME_DIR/client.sock"
dp_assert_contains "$err" "client.sock" "tail without dpiped"

# --- a pipeline with 12 records ---------------------------------------------------------------
dp_start_pipeline
{ echo "id,city"; for i in $(seq 0 11); do echo "$i,city $i"; done; } >"$TMP/twelve.csv"
PORT=$(dp_free_port)
dp_daemon source dpipe-source --file="$TMP/twelve.csv" --tcp="127.0.0.1:$PORT"
dp_wait_port 127.0.0.1 "$PORT"
SOCK="$RUNTIME_DIR/client.sock"

# tail --no-follow before any record: says so, exit 0.
dp_expect_exit 0 timeout 20 dpipectl tail --no-follow --connect="$SOCK"
dp_assert_eq "-- No records --" "$out" "tail --no-follow of an empty queue"

dp_expect_exit 0 dpipectl add-source twelve --type=tcp --address="127.0.0.1:$PORT"
dp_retry 15 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager QueueNextOffset)" = "t 12" ]' ||
        dp_fail "the queue does not hold the 12 records"

# --- the default verb --------------------------------------------------------------------------
dp_expect_exit 0 dpipectl list-sources
listed=$out
dp_expect_exit 0 dpipectl
dp_assert_eq "$listed" "$out" "dpipectl alone is list-sources"
dp_assert_contains "$out" "1 source listed." "dpipectl alone"

# --- --json forms ------------------------------------------------------------------------------
for verb in list-sources status "status twelve"; do
        # shellcheck disable=SC2086 # verb is two words for "status twelve"
        {
                dp_expect_exit 0 dpipectl --json=short $verb
                json_check short "$out" || dp_fail "dpipectl --json=short $verb: $out"
                dp_expect_exit 0 dpipectl $verb --json=pretty
                json_check pretty "$out" || dp_fail "dpipectl --json=pretty $verb: $out"
                dp_expect_exit 0 dpipectl --json $verb
                json_check short "$out" || dp_fail "dpipectl --json $verb (not a terminal: short): $out"
                dp_expect_exit 0 dpipectl -j $verb
                json_check short "$out" || dp_fail "dpipectl -j $verb: $out"
                dp_expect_exit 0 dpipectl --json=pretty --json=off $verb
                [[ "$out" != "{"* && "$out" != "["* ]] || dp_fail "dpipectl --json=off $verb printed JSON: $out"
        }
done
dp_expect_exit 0 timeout 20 dpipectl tail --no-follow --json=pretty --connect="$SOCK"
json_check pretty "$out" || dp_fail "tail --json=pretty: $out"
dp_expect_exit 0 dpipe-client --connect="$SOCK" --json=pretty list
json_check pretty "$out" || dp_fail "dpipe-client --json=pretty list: $out"
dp_expect_exit 0 dpipe-client --connect="$SOCK" --json=short status
json_check short "$out" || dp_fail "dpipe-client --json=short status: $out"
dp_expect_exit 0 dpipe-client --connect="$SOCK" --json list
json_check short "$out" || dp_fail "dpipe-client --json list: $out"
dp_expect_exit 0 dpipe-client --connect="$SOCK" --json=off list
[[ "$out" == NAME* ]] || dp_fail "dpipe-client --json=off list is not a table: $out"

# --- options after the command (dpipe-client like dpipectl) ------------------------------------
dp_expect_exit 0 dpipe-client list --format=table --connect="$SOCK"
[[ "$out" == NAME* && "$out" == *twelve* ]] || dp_fail "dpipe-client list --format=table --connect=...: $out"
# (A subscription never ends: it is stopped after it has printed the queue.)
# --foreground: SIGTERM reaches dpipe-client once. timeout(1) otherwise signals its whole process
# group too, and under ASan a second SIGTERM arriving during LeakSanitizer's exit check
# deadlocks the sanitizer's StopTheWorld (ptrace) with the client spinning: the test hung.
out=$(timeout --foreground -k 10 3 dpipe-client subscribe earliest --connect="$SOCK" --json=short) || [ $? = 124 ] || dp_fail "subscribe with options after it"
python3 -c 'import json,sys; o=[json.loads(l)["offset"] for l in sys.argv[1].splitlines()]; assert o[:12]==list(range(12)), o' "$out" ||
        dp_fail "dpipe-client subscribe earliest --connect=... --json=short: $out"

# --- tail --no-follow without -n: the last 10, like tail(1) ------------------------------------
dp_expect_exit 0 timeout 20 dpipectl tail --no-follow --json --connect="$SOCK"
python3 -c 'import json,sys; o=[json.loads(l)["offset"] for l in sys.argv[1].splitlines()]; assert o==list(range(2,12)), o' "$out" ||
        dp_fail "tail --no-follow: not the last 10 records: $out"
dp_expect_exit 0 timeout 20 dpipectl tail --no-follow --connect="127.0.0.1:$DPIPED_PORT"
[ "$(printf '%s\n' "$out" | wc -l)" = 10 ] || dp_fail "tail --no-follow (human) over TCP: $out"
dp_expect_exit 3 timeout 20 dpipectl tail --no-follow --connect=127.0.0.1:1
dp_assert_contains "$err" "127.0.0.1:1" "tail --no-follow to nothing"

# --- -q ------------------------------------------------------------------------------------------
dp_expect_exit 0 dpipectl -q status twelve
dp_assert_eq "" "$out" "status -q"
dp_expect_exit 0 dpipectl status twelve --quiet
dp_assert_eq "" "$out" "status --quiet"
dp_expect_exit 0 dpipectl -q list-sources
[[ "$out" != *NAME* && "$out" != *listed* ]] || dp_fail "list-sources -q prints the legend: $out"
dp_expect_exit 0 dpipe-client -q --connect="$SOCK" pause twelve
dp_assert_eq "" "$out" "dpipe-client -q pause"
dp_expect_exit 0 dpipe-client --connect="$SOCK" start twelve
dp_assert_eq '{"op":"ok"}' "$out" "dpipe-client start (no -q)"

# --- exit 4: no such source ----------------------------------------------------------------------
for verb in "status nosuch" "remove-source nosuch" "pause-source nosuch" "resume-source nosuch" "-q status nosuch"; do
        # shellcheck disable=SC2086
        dp_expect_exit 4 dpipectl $verb
done
dp_expect_exit 4 dpipectl remove-sink nosuch
dp_assert_contains "$err" "nosuch" "remove-sink nosuch"
dp_expect_exit 4 dpipe-client --connect="$SOCK" remove nosuch
dp_expect_exit 4 dpipe-client --connect="$SOCK" pause nosuch

# --- exit 77: access denied, in words ------------------------------------------------------------
if setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null; then
        dp_expect_exit 77 dp_nobody dpipectl remove-source twelve
        dp_assert_contains "$err" "Access denied: changing the pipeline over D-Bus needs root" "remove-source as nobody"
        [[ "$err" != *"Rejected send message"* && "$err" != *"matched rules"* ]] ||
                dp_fail "dbus-daemon's raw refusal shown: $err"
        dp_expect_exit 77 dp_nobody dpipectl add-source x --type=tcp --address=127.0.0.1:1
        dp_expect_exit 77 dp_nobody dpipectl remove-sink nosuch
        dp_expect_exit 77 dp_nobody dpipe-client --connect="$SOCK" remove twelve
        dp_assert_contains "$err" "Access denied: changing the pipeline needs root or membership in group" "dpipe-client remove as nobody"
        dp_expect_exit 0 dp_nobody dpipectl -q status twelve
fi

# --- colours: only on a terminal, never with NO_COLOR ------------------------------------------
dp_expect_exit 0 dpipectl list-sources
[[ "$out" != *$'\e'* ]] || dp_fail "colours into a pipe"
screen=$(PTY 20 -NO_COLOR -- "$DPIPECTL" --no-pager list-sources) || dp_fail "pty: $screen"
dp_assert_contains "$screen" 'rc=0' "list-sources on a terminal"
dp_assert_contains "$screen" '\x1b[0;4mNAME' "colours on a terminal"
screen=$(PTY 20 NO_COLOR=1 -- "$DPIPECTL" --no-pager list-sources) || dp_fail "pty: $screen"
dp_assert_contains "$screen" 'NAME' "list-sources with NO_COLOR"
[[ "$screen" != *'\x1b'* ]] || dp_fail "colours despite NO_COLOR: $screen"
screen=$(PTY 20 NO_COLOR=1 -- "$DPIPECTL" --no-pager status twelve) || dp_fail "pty: $screen"
[[ "$screen" != *'\x1b'* ]] || dp_fail "status: colours despite NO_COLOR: $screen"
screen=$(PTY 20 NO_COLOR=1 -- "$(command -v dpipe-client)" --connect="$SOCK" remove nosuch) || dp_fail "pty: $screen"
[[ "$screen" != *'\x1b'* ]] || dp_fail "dpipe-client: colours despite NO_COLOR: $screen"

# --- the pager -----------------------------------------------------------------------------------
# Fake pagers mark their lines; a fake more(1) that waits for a key, as the real one does on a
# terminal, must never be run.
mkdir -p "$TMP/bin-less" "$TMP/bin-more"
printf '#!/bin/sh\nexec %s "s/^/LESS:/"\n' "$(command -v sed)" >"$TMP/bin-less/less"
printf '#!/bin/sh\necho MORE-RAN; exec %s 600\n' "$(command -v sleep)" >"$TMP/bin-more/more"
cp "$TMP/bin-more/more" "$TMP/bin-less/more"
chmod +x "$TMP/bin-less/less" "$TMP/bin-more/more" "$TMP/bin-less/more"
nopager=(-DPIPE_PAGER -SYSTEMD_PAGER -PAGER)

screen=$(PTY 20 "${nopager[@]}" PATH="$TMP/bin-less" -- "$DPIPECTL" list-sources) || dp_fail "pager: $screen"
dp_assert_contains "$screen" 'LESS:' "less is the default pager"
screen=$(PTY 20 "${nopager[@]}" PATH="$TMP/bin-more" -- "$DPIPECTL" list-sources) ||
        dp_fail "without less, dpipectl must print directly and not fall back to more: $screen"
[[ "$screen" == *twelve* && "$screen" != *MORE-RAN* ]] || dp_fail "without less: $screen"
screen=$(PTY 20 "${nopager[@]}" PATH="$TMP/bin-less:/usr/bin:/bin" SYSTEMD_PAGER="sed s/^/SYSTEMD:/" PAGER="sed s/^/PAGER:/" -- "$DPIPECTL" list-sources) ||
        dp_fail "pager: $screen"
dp_assert_contains "$screen" 'SYSTEMD:' "SYSTEMD_PAGER comes first"
screen=$(PTY 20 "${nopager[@]}" PATH="$TMP/bin-less:/usr/bin:/bin" PAGER="sed s/^/PAGER:/" -- "$DPIPECTL" list-sources) ||
        dp_fail "pager: $screen"
dp_assert_contains "$screen" 'PAGER:' "PAGER"
screen=$(PTY 20 "${nopager[@]}" PATH="$TMP/bin-less" -- "$DPIPECTL" --no-pager list-sources) || dp_fail "pager: $screen"
[[ "$screen" == *twelve* && "$screen" != *LESS:* ]] || dp_fail "--no-pager: $screen"
screen=$(PTY 20 "${nopager[@]}" PATH="$TMP/bin-less" PAGER= -- "$DPIPECTL" list-sources) || dp_fail "pager: $screen"
[[ "$screen" == *twelve* && "$screen" != *LESS:* ]] || dp_fail "PAGER= (empty): $screen"
# Not a terminal: never a pager.
out=$(env -u DPIPE_PAGER -u SYSTEMD_PAGER -u PAGER PATH="$TMP/bin-less" "$DPIPECTL" list-sources)
[[ "$out" == NAME* ]] || dp_fail "a pager without a terminal: $out"

# --- the daemons' log: plain lines on a terminal, "<N>" lines into a pipe ----------------------
mkdir -p "$TMP/wstate"
screen=$(PTY 20 DPIPE_LOG_LEVEL=info -- "$(command -v dpipe-writer)" --runtime-dir=/proc/nonexistent --state-dir="$TMP/wstate") ||
        dp_fail "pty: $screen"
dp_assert_contains "$screen" 'rc=1' "dpipe-writer with a runtime dir it cannot make"
dp_assert_contains "$screen" "'Queue: Created a new queue" "a daemon's info line on a terminal"
dp_assert_contains "$screen" '\r\nFailed to create /proc/nonexistent' "a daemon's error on a terminal"
[[ "$screen" != *'<3>'* && "$screen" != *'<6>'* ]] || dp_fail "<N> prefixes on a terminal: $screen"
rm -rf "$TMP/wstate"
out=$(DPIPE_LOG_LEVEL=info dpipe-writer --runtime-dir=/proc/nonexistent --state-dir="$TMP/wstate" 2>&1 | cat) || true
dp_assert_contains "$out" "<3>Failed to create /proc/nonexistent" "a daemon's error into a pipe"

dp_log "ok"
