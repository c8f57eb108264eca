#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-connector-file follows a JSON Lines file and a CSV file through appends, a logrotate-style
# rename + new file, truncation in place, and a restart of the connector (it resumes at its cursor:
# nothing is sent twice, nothing is skipped). Bad lines are counted and skipped.
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CTL="python3 $HERE/connector-ctl.py $RUNTIME_DIR/connector-file.sock"
OUT="$TMP/stored.jsonl"
LOGF="$TMP/data/app.jsonl"
CSVF="$TMP/data/people.csv"
mkdir -p "$TMP/data"

dp_bg writer python3 "$HERE/connector-fake-writer.py" "$RUNTIME_DIR/writer.sock" "$OUT"
dp_wait_socket "$RUNTIME_DIR/writer.sock"

start_connector() {
        dp_daemon "connector$1" dpipe-connector-file --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR"
        dp_wait_socket "$RUNTIME_DIR/connector-file.sock"
}
# stored SOURCE: the "n" fields stored for SOURCE, one per line.
stored() {
        python3 -c "
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r['source'] == sys.argv[2]: print(r['data'].get('n', r['data'].get('name')))" "$OUT" "$1"
}
expect() { # expect SOURCE N: records 0..N-1 stored exactly once, in order
        dp_retry 15 bash -c "[ \$(grep -c '\"source\": \"$1\"' '$OUT') -ge $2 ]" || true
        dp_assert_eq "$(seq 0 $(($2 - 1)) | tr '\n' ' ')" "$(stored "$1" | tr '\n' ' ')" "records of $1"
}
append() { # append FROM TO
        for ((i = $1; i < $2; i++)); do echo "{\"n\":$i}"; done >>"$LOGF"
}

append 0 5
printf 'name,city\n0,Oslo\n1,"Rome, Italy"\n' >"$CSVF"
start_connector 1
dpipe-connector-file --help | grep -q "poll_ms" || dp_fail "--help does not list the options"

$CTL add applog address="$LOGF" >/dev/null || dp_fail "add applog"
$CTL add people address="$CSVF" >/dev/null || dp_fail "add people"
reply=$($CTL add rel address=relative/path || true)
dp_assert_contains "$reply" "absolute path" "relative path refused"
expect applog 5

# Appends, and a malformed line that is skipped and counted.
append 5 8
echo '{"n": broken' >>"$LOGF"
append 8 10
expect applog 10
st=$($CTL wait applog skipped '>=' 1 5) || dp_fail "malformed line not counted"

# logrotate: rename the file away, then a new file appears under the same name.
mv "$LOGF" "$LOGF.1"
append 10 12 # creates the new file under the old name
append 12 15
expect applog 15

# Truncation in place (copytruncate): the file starts over.
: >"$LOGF"
sleep 0.3
append 15 18
expect applog 18

# Restart the connector: it resumes at its cursor, neither repeating nor skipping.
dp_kill_daemon connector1
append 18 21
start_connector 2
$CTL add applog address="$LOGF" >/dev/null || dp_fail "re-add applog"
$CTL add people address="$CSVF" >/dev/null || dp_fail "re-add people"
append 21 23
expect applog 23

# The CSV header survives the restart (read again from the file's first line).
printf '2,Paris\n' >>"$CSVF"
dp_retry 10 grep -q '"city": "Paris"' "$OUT" || dp_fail "CSV row after restart"
grep -q '"name": "2", "city": "Paris"' "$OUT" || dp_fail "CSV header lost after restart"
grep -q '"city": "Rome, Italy"' "$OUT" || dp_fail "quoted CSV field"
if grep -h duplicate "$LOG_DIR"/writer.log; then
        dp_fail "records were sent twice"
fi
