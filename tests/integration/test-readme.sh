#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's "Running each piece by hand", to the letter (issue #17): its "sh by-hand" blocks,
# extracted by tests/readme/blocks.py, run in order in one shell from a copy of the source tree
# whose build/ is this build, in a network namespace of their own (the README's fixed ports must
# not meet another test's). Before the last block (which stops everything) the test checks what a
# reader would: the sample's records went through to dpipectl tail, dpipe-client lists the source,
# the sink daemon listens. The README's build and systemd blocks run in tests/systemd/run.
source "$(dirname "$0")/lib.sh"

for exe in dpipe-writer dpipe-connector-tcp dpiped dpipe-source dpipectl dpipe-client dpipe-sink-file; do
        command -v "$exe" >/dev/null || { dp_log "SKIP: $exe not built"; rm -rf "$TMP"; trap - EXIT; exit 77; }
done
unshare --net true 2>/dev/null || { dp_log "SKIP: cannot make a network namespace"; rm -rf "$TMP"; trap - EXIT; exit 77; }

# The source tree as the README sees it, with this build as build/.
mkdir -p "$TMP/src"
cp -a "$SOURCE_DIR/dbus" "$SOURCE_DIR/tools" "$TMP/src/"
ln -s "$BUILD_DIR" "$TMP/src/build"

N=$(python3 -c 'import csv,sys; print(len(list(csv.reader(open(sys.argv[1], newline="")))) - 1)' "$SOURCE_DIR/tools/demo-data/cities.csv")
cat >"$TMP/checks.sh" <<'CHECKS'
# What a reader sees: every row of the sample through the pipeline, the source listed.
for ((i = 0; i < 300; i++)); do
        n=$($B/client/dpipectl tail --no-follow --json -n 1000 --connect=$RUN/client.sock | grep -c '"source":"demo"' || true)
        [ "$n" -ge "$README_N" ] && break
        sleep 0.1
done
[ "$n" -ge "$README_N" ] || { echo "README check: $n of $README_N records of demo arrived" >&2; exit 1; }
$B/client/dpipectl tail --no-follow --from=earliest --connect=$RUN/client.sock | grep -q 'demo: .*Zürich' ||
        { echo "README check: dpipectl tail does not show Zürich" >&2; exit 1; }
$B/client/dpipectl list-sources --no-legend | grep -Eq '^demo +tcp +active' ||
        { echo "README check: demo is not active" >&2; exit 1; }
[ -S $RUN/sink-file.sock ] || { echo "README check: dpipe-sink-file does not listen" >&2; exit 1; }
echo "README checks: ok"
CHECKS
python3 "$SOURCE_DIR/tests/readme/blocks.py" "$SOURCE_DIR/README.md" by-hand --script \
        --check-before-last="$TMP/checks.sh" >"$TMP/by-hand.sh" || dp_fail "cannot extract the README's blocks"

# Whatever happens, nothing the README started outlives the test: its scratch dir is under $TMP
# (mktemp -d honours TMPDIR), where the private bus's pid file is; the rest is in our session.
readme_cleanup() {
        local f
        for f in "$TMP"/tmp.*/bus.pid; do
                [ -e "$f" ] && kill "$(cat "$f")" 2>/dev/null
        done
        [ -n "${README_PID:-}" ] && pkill -TERM -s "$README_PID" 2>/dev/null
        return 0
}
DP_CLEANUP_HOOKS+=(readme_cleanup)

rc=0
(cd "$TMP/src" && unset DPIPE_LOG_LEVEL && TMPDIR=$TMP README_N=$N timeout -k 5 120 setsid unshare --net \
        bash -c 'ip link set lo up && exec bash -x "$1"' _ "$TMP/by-hand.sh") >"$LOG_DIR/readme.log" 2>&1 &
README_PID=$!
wait "$README_PID" || rc=$?
[ "$rc" = 0 ] || dp_fail "the README's by-hand blocks failed (exit $rc): $(grep -v '^+' "$LOG_DIR/readme.log" | tail -n 15)"
grep -q "README checks: ok" "$LOG_DIR/readme.log" || dp_fail "the checks did not run"
# The last block removed the scratch directory and stopped the bus.
! ls -d "$TMP"/tmp.* 2>/dev/null || dp_fail "the last block left its scratch directory"
grep -v '^+' "$LOG_DIR/readme.log" | grep -E '^(dpipectl|dpipe-client|busctl):|Failed to' | head -n 5 >"$TMP/errors" || true
[ ! -s "$TMP/errors" ] || dp_fail "error messages while running the README: $(cat "$TMP/errors")"
dp_log "ok: README by hand ($(grep -c '^# ---- README block' "$TMP/by-hand.sh") blocks)"
