#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# The README's runnable code blocks, for the tests that run them to the letter.
#
#   blocks.py README.md TAG              the blocks tagged TAG, as a JSON list of strings
#   blocks.py README.md TAG --script [--check-before-last=FILE]
#                                        one bash script that runs them in order, in one shell
#
# A runnable block is a fenced block whose info string is "sh TAG" (GitHub shows it as sh and
# ignores the rest): "build" (building by hand), "by-hand" (each piece by hand, on a private bus),
# "systemd" (after meson install, under systemd). The script stops at the first failing command,
# and after each block waits, like a person reading the next paragraph, until the daemons the
# block started in the background listen (and dpiped owns its bus name): pasting fast must not be
# what makes a step fail. With --check-before-last, FILE (bash) runs before the last block, which
# by convention stops everything.
import json, re, sys

PROLOGUE = r'''set -eo pipefail
__readme_seen=
__readme_settle() {
        local pid deadline comm
        for pid in $(jobs -p); do
                [[ " $__readme_seen " == *" $pid "* ]] && continue
                __readme_seen+=" $pid"
                comm=$(cat /proc/$pid/comm 2>/dev/null || true)
                deadline=$((SECONDS + 30))
                until ss -Hlpn 2>/dev/null | grep -q "pid=$pid,"; do
                        kill -0 $pid 2>/dev/null || { echo "README: $comm (pid $pid) died" >&2; return 1; }
                        [ $SECONDS -lt $deadline ] || { echo "README: $comm (pid $pid) listens on nothing after 30 s" >&2; return 1; }
                        sleep 0.1
                done
                if [ "$comm" = dpiped ]; then
                        until busctl --system status org.dpipe.Pipeline1 >/dev/null 2>&1; do
                                [ $SECONDS -lt $deadline ] || { echo "README: dpiped did not take its bus name" >&2; return 1; }
                                sleep 0.1
                        done
                fi
        done
}
'''


def blocks(path, tag):
    out, cur = [], None
    for line in open(path, encoding="utf-8"):
        if cur is None:
            m = re.match(r"^```(\S*)\s*(.*?)\s*$", line)
            if m and m.group(1) == "sh" and m.group(2) == tag:
                cur = []
        elif line.startswith("```"):
            out.append("".join(cur))
            cur = None
        else:
            cur.append(line)
    if cur is not None:
        sys.exit("%s: unterminated block" % path)
    return out


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__ if __doc__ else "usage: blocks.py README.md TAG [--script]")
    path, tag, opts = args[0], args[1], args[2:]
    bs = blocks(path, tag)
    if not bs:
        sys.exit("%s: no block tagged %r" % (path, tag))
    if "--script" not in opts:
        json.dump(bs, sys.stdout, indent=1)
        print()
        return
    check = None
    for o in opts:
        if o.startswith("--check-before-last="):
            check = open(o.split("=", 1)[1]).read()
    parts = [PROLOGUE]
    for i, b in enumerate(bs):
        if check and i == len(bs) - 1:
            parts.append("# ---- checks of the test ----\n" + check)
        parts.append("# ---- README block %d of %d (%s) ----\n%s__readme_settle\n" % (i + 1, len(bs), tag, b))
    sys.stdout.write("".join(parts))


main()
