#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The sink daemons' "check" control request (man:dpipe-sink(7)), as dpiped will send it before it
# accepts a sink: the type's option table and validation answer, strictly, with the options typed;
# nothing is added or opened, bad requests leave the daemon running; and the lenient add next to it.
source "$(dirname "$0")/lib.sh"
command -v dpipe-sink-file >/dev/null || { dp_log "SKIP: dpipe-sink-file not built"; exit 77; }
CTL="$SOURCE_DIR/tests/integration/sink-ctl.py"
SOCK="$RUNTIME_DIR/sink-file.sock"
OUT="$TMP/out"
mkdir -p "$OUT"
# reply FIELD: a field of the JSON reply in $out (compact JSON unless it is a string).
reply() {
        python3 -c 'import json, sys; v = json.loads(sys.argv[2])[sys.argv[1]]
print(v if isinstance(v, str) else json.dumps(v, separators=(",", ":")))' "$1" "$out"
}

dp_daemon sink dpipe-sink-file --runtime-dir="$RUNTIME_DIR" --connect="$RUNTIME_DIR/client.sock"
dp_wait_socket "$SOCK"

# Accepted, with the values in the table's types (text in, numbers and booleans out).
dp_expect_exit 0 "$CTL" "$SOCK" check address="$OUT/a.jsonl" max_bytes=1048576 max_files=3 window=500
dp_assert_eq "{\"address\":\"$OUT/a.jsonl\",\"max_bytes\":1048576,\"max_files\":3,\"window\":500}" "$(reply options)" "typed options"
dp_expect_exit 0 "$CTL" "$SOCK" check address="$OUT/a.jsonl" --pipeline-id=pipeA

# Refused, each with the reason a user is shown.
dp_expect_exit 1 "$CTL" "$SOCK" check address="$OUT/a.jsonl" max_byte=1
dp_assert_eq "unknown option 'max_byte'" "$(reply message)" "a misspelt option"
dp_expect_exit 1 "$CTL" "$SOCK" check max_bytes=1
dp_assert_eq "option 'address' is required" "$(reply message)" "a missing address"
dp_expect_exit 1 "$CTL" "$SOCK" check address=relative/path
dp_assert_eq "address must be an absolute path" "$(reply message)" "the type's validation"
dp_expect_exit 1 "$CTL" "$SOCK" check address="$OUT/a.jsonl" window=0
dp_assert_eq "option 'window' must be 1-1000000" "$(reply message)" "the common option's range"
dp_expect_exit 1 "$CTL" "$SOCK" check address="$OUT/a.jsonl" max_bytes=lots
dp_assert_contains "$(reply message)" "invalid value for option 'max_bytes'" "a bad value"
dp_expect_exit 1 "$CTL" "$SOCK" check address="$OUT/a.jsonl" --pipeline-id=a.b
dp_assert_contains "$(reply message)" "invalid pipeline id" "a bad pipeline id"

# Nothing was added or opened, and the daemon still answers.
dp_expect_exit 0 "$CTL" "$SOCK" list
dp_assert_eq "[]" "$(reply sinks)" "sinks after the checks"
[ -z "$(ls -A "$OUT")" ] || dp_fail "a check created files: $(ls -A "$OUT")"

# add stays lenient: an unknown name is logged and ignored, so that a sink saved before an option
# went away still runs.
dp_expect_exit 0 "$CTL" "$SOCK" add s1 address="$OUT/s1.jsonl" old_option=1 --paused
dp_retry 10 grep -q "Unknown option 'old_option', ignoring" "$LOG_DIR/sink.log" ||
        dp_fail "the unknown option of an add was not logged"
dp_expect_exit 0 "$CTL" "$SOCK" list
dp_assert_eq '[{"name":"s1","state":"paused"}]' "$(python3 -c 'import json, sys
print(json.dumps([{"name": s["name"], "state": s["state"]} for s in json.loads(sys.argv[1])["sinks"]], separators=(",", ":")))' "$out")" "sinks after the add"
dp_expect_exit 0 "$CTL" "$SOCK" remove s1
dp_log "ok"
