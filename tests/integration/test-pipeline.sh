#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The first record end to end (issue #2): CSV files served by dpipe-source, two sources added over
# D-Bus (once with dpipectl, once with busctl), every row reaching dpipe-client in order with dense
# offsets and the exact field values; ListSources/list-sources show them, RemoveSource removes them,
# records already queued stay.
source "$(dirname "$0")/lib.sh"

# --- data: two CSV files with values that break naive parsers -----------------------------------
python3 - "$TMP/alpha.csv" "$TMP/beta.csv" <<'PY'
import csv, sys

tricky = [
    "plain",
    "comma, inside",
    'say "hello"',
    '"fully quoted"',
    '"',
    "multi\nline",
    "crlf\r\ninside",
    "K\u00f6ln \u20ac \U0001F600 \u65e5\u672c\u8a9e",
    "  leading and trailing spaces  ",
    "",
    "back\\slash \\n \\u0041",
    '{"json":"looking","n":[1,2]}',
    "tab\there",
    "# not a comment",
    "007",
    "42",
    "-3.5",
    "true",
    "x" * 10000,
]
with open(sys.argv[1], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\n")
    w.writerow(["id", "value", "na\u00efve note", "n"])
    for i, v in enumerate(tricky):
        w.writerow(["t%02d" % i, v, "row %d, \"quoted\" \u00fc" % i, str(i)])
    for i in range(400):
        w.writerow(["g%04d" % i, "name %d, with comma" % i, 'quote "%d" \u00fc' % i, str(i * 7)])

# The second file: CRLF line ends, as RFC 4180 writes them.
with open(sys.argv[2], "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\r\n")
    w.writerow(["city", "country", "temp"])
    cities = [("Z\u00fcrich", "CH"), ("S\u00e3o Paulo", "BR"), ("Krak\u00f3w", "PL"),
              ("Reykjav\u00edk", "IS"), ("Washington, D.C.", "US"), ('The "Big" Apple', "US")]
    for i in range(250):
        c, k = cities[i % len(cities)]
        w.writerow(["%s #%d" % (c, i), k, "%d.5" % (i % 40)])
PY

# dp_count_records FILE: how many record lines a client printed so far.
dp_count_records() {
        grep -c -E '"op" ?: ?"record"' "$1" 2>/dev/null || true
}
# dp_wait_records FILE N: waits until the client printed at least N records.
dp_wait_records() {
        local i n
        for ((i = 0; i < 600; i++)); do
                n=$(dp_count_records "$1")
                [ "${n:-0}" -ge "$2" ] && return 0
                sleep 0.1
        done
        dp_fail "$(basename "$1"): $2 records expected, ${n:-0} arrived"
}

# check_records FILE SOURCE=CSV...: the client's output holds exactly the rows of each CSV, source
# after source, in file order, with offsets 0..n-1 and the exact field values.
check_records() {
        python3 - "$@" <<'PY' || dp_fail "records printed by dpipe-client are not the CSV rows (see above)"
import csv, json, re, sys

out = sys.argv[1]
expected = []
for spec in sys.argv[2:]:
    source, path = spec.split("=", 1)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    expected += [(source, dict(zip(header, r))) for r in rows[1:]]

def same(want, got):
    # Without --infer-types every CSV value is served as the exact text of the file.
    return isinstance(got, str) and got == want

records = []
with open(out, encoding="utf-8") as f:
    for n, line in enumerate(f, 1):
        line = line.strip()
        if not line:
            continue
        try:
            m = json.loads(line)
        except ValueError as e:
            sys.exit("%s:%d: not JSON (%s): %.200s" % (out, n, e, line))
        if isinstance(m, dict) and m.get("op") == "record":
            records.append(m)

errors = []
if len(records) != len(expected):
    errors.append("%d records printed, %d CSV rows expected" % (len(records), len(expected)))
for i, (m, (source, row)) in enumerate(zip(records, expected)):
    if m.get("offset") != i:
        errors.append("record %d: offset %r, expected %d" % (i, m.get("offset"), i))
    if m.get("source") != source:
        errors.append("record %d: source %r, expected %r" % (i, m.get("source"), source))
    if not isinstance(m.get("ts_us"), int) or m["ts_us"] <= 0:
        errors.append("record %d: bad ts_us %r" % (i, m.get("ts_us")))
    data = m.get("data")
    if not isinstance(data, dict):
        errors.append("record %d: data is not an object: %.200r" % (i, data))
        continue
    if set(data) != set(row):
        errors.append("record %d: fields %s, expected %s" % (i, sorted(data), sorted(row)))
    for k, v in row.items():
        if k in data and not same(v, data[k]):
            errors.append("record %d (%s): field %r is %.120r, expected %.120r" % (i, source, k, data[k], v))
    if len(errors) > 20:
        break
if errors:
    print("\n".join(errors[:20]), file=sys.stderr)
    sys.exit(1)
print("%s: %d records match" % (out, len(records)))
PY
}

N_ALPHA=$(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$TMP/alpha.csv") - 1))
N_BETA=$(($(python3 -c 'import csv,sys; print(sum(1 for _ in csv.reader(open(sys.argv[1], newline=""))))' "$TMP/beta.csv") - 1))
N_ALL=$((N_ALPHA + N_BETA))
dp_log "alpha.csv has $N_ALPHA rows, beta.csv has $N_BETA rows"

# --- the pipeline ----------------------------------------------------------------------------
dp_start_bus
dp_start_pipeline

PORT_ALPHA=$(dp_free_port)
dp_daemon source-alpha dpipe-source --file="$TMP/alpha.csv" --tcp="127.0.0.1:$PORT_ALPHA"
dp_wait_port 127.0.0.1 "$PORT_ALPHA"
PORT_BETA=$(dp_free_port)
dp_daemon source-beta dpipe-source --file="$TMP/beta.csv" --tcp="127.0.0.1:$PORT_BETA"
dp_wait_port 127.0.0.1 "$PORT_BETA"

# A client subscribed before anything is there: it must see the records as they land.
dp_bg client-live bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/live.jsonl"

# --- first source: dpipectl ----------------------------------------------------------------
out=$(dpipectl add-source alpha --type=tcp --address="127.0.0.1:$PORT_ALPHA" 2>&1) ||
        dp_fail "dpipectl add-source alpha failed: $out"
dp_wait_records "$TMP/live.jsonl" "$N_ALPHA"

# --- second source: busctl, straight on the D-Bus API ------------------------------------------
out=$(busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager \
        AddSource 'ssa{sv}' beta tcp 2 address s "127.0.0.1:$PORT_BETA" heartbeat_ms u 1000 2>&1) ||
        dp_fail "busctl AddSource beta failed: $out"
dp_assert_eq 'o "/org/dpipe/Pipeline1/source/beta"' "$out" "AddSource reply"
dp_wait_records "$TMP/live.jsonl" "$N_ALL"

# Nothing more than the rows may arrive (no duplicates after reconnects either).
sleep 1
check_records "$TMP/live.jsonl" "alpha=$TMP/alpha.csv" "beta=$TMP/beta.csv"

# --- what the control plane shows ------------------------------------------------------------
busctl --system --json=short call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager \
        ListSources >"$TMP/list.json" || dp_fail "busctl ListSources failed"
python3 - "$TMP/list.json" <<'PY' || dp_fail "ListSources does not show alpha and beta: $(cat "$TMP/list.json")"
import json, sys
reply = json.load(open(sys.argv[1]))
assert reply["type"] == "a(ssso)", reply["type"]
sources = {s[0]: s for s in reply["data"][0]}
assert set(sources) == {"alpha", "beta"}, sources
for name, (n, t, state, path) in sources.items():
    assert t == "tcp", (name, t)
    assert state in ("connecting", "active", "backoff"), (name, state)
    assert path == "/org/dpipe/Pipeline1/source/" + name, (name, path)
PY

out=$(dpipectl list-sources 2>&1) || dp_fail "dpipectl list-sources failed: $out"
dp_assert_contains "$out" alpha "dpipectl list-sources"
dp_assert_contains "$out" beta "dpipectl list-sources"
dp_assert_contains "$out" "127.0.0.1:$PORT_ALPHA" "dpipectl list-sources"

out=$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/alpha \
        org.dpipe.Pipeline1.Source Address 2>&1) || dp_fail "Source.Address of alpha: $out"
dp_assert_eq "s \"127.0.0.1:$PORT_ALPHA\"" "$out" "Source.Address of alpha"
# Counters reach dpiped at most once a second.
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/beta org.dpipe.Pipeline1.Source RecordsReceived)" = "t $1" ]' _ "$N_BETA" ||
        dp_fail "Source.RecordsReceived of beta: expected $N_BETA, got $(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/beta org.dpipe.Pipeline1.Source RecordsReceived 2>&1)"
dp_retry 10 bash -c '[ "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager QueueNextOffset)" = "t $1" ]' _ "$N_ALL" ||
        dp_fail "QueueNextOffset: expected $N_ALL, got $(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager QueueNextOffset 2>&1)"

# --- errors a user sees ----------------------------------------------------------------------
if out=$(dpipectl add-source alpha --type=tcp --address="127.0.0.1:$PORT_ALPHA" 2>&1); then
        dp_fail "adding alpha twice succeeded: $out"
fi
[ -n "$out" ] || dp_fail "adding alpha twice failed without a message"
out=$(dbus-send --system --print-reply --dest=org.dpipe.Pipeline1 /org/dpipe/Pipeline1 \
        org.dpipe.Pipeline1.Manager.RemoveSource string:nosuch 2>&1) && dp_fail "RemoveSource nosuch succeeded: $out"
dp_assert_contains "$out" org.dpipe.Pipeline1.Error.NoSuchSource "RemoveSource of an unknown source"

# --- RemoveSource (busctl) and remove-source (dpipectl) -------------------------------------
out=$(busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager \
        RemoveSource s beta 2>&1) || dp_fail "busctl RemoveSource beta failed: $out"
out=$(busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSources 2>&1)
dp_assert_contains "$out" '"alpha"' "ListSources after RemoveSource beta"
[[ "$out" != *'"beta"'* ]] || dp_fail "ListSources still shows beta after RemoveSource: $out"
out=$(dbus-send --system --print-reply --dest=org.dpipe.Pipeline1 /org/dpipe/Pipeline1 \
        org.dpipe.Pipeline1.Manager.GetSource string:beta 2>&1) && dp_fail "GetSource beta after removal succeeded: $out"
dp_assert_contains "$out" org.dpipe.Pipeline1.Error.NoSuchSource "GetSource of a removed source"

out=$(dpipectl remove-source alpha 2>&1) || dp_fail "dpipectl remove-source alpha failed: $out"
out=$(dpipectl list-sources 2>&1) || dp_fail "dpipectl list-sources failed: $out"
[[ "$out" != *alpha* && "$out" != *beta* ]] || dp_fail "list-sources still shows a removed source: $out"
out=$(busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSources 2>&1)
dp_assert_eq "a(ssso) 0" "$out" "ListSources after removing both"

# --- records already queued stay: a new client replays them all from offset 0 -----------------
dp_bg client-replay bash -c 'exec dpipe-client --connect="$1" subscribe earliest >"$2" </dev/null' \
        _ "127.0.0.1:$DPIPED_PORT" "$TMP/replay.jsonl"
dp_wait_records "$TMP/replay.jsonl" "$N_ALL"
sleep 0.5
check_records "$TMP/replay.jsonl" "alpha=$TMP/alpha.csv" "beta=$TMP/beta.csv"
# ... and the live client got nothing more after the removals.
check_records "$TMP/live.jsonl" "alpha=$TMP/alpha.csv" "beta=$TMP/beta.csv"
