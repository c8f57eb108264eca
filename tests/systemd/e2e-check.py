#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# e2e-check.py CLIENT_OUTPUT N [--count]
#
# Checks what `dpipe-client subscribe earliest` printed in the container test: exactly the N
# rows of the demo source (tests/systemd/run writes them: id 1..N, "sensor, id%7",
# 'says "id*3" — ok'), each once, in order, with dense offsets from 0 and source "demo".
# --count only prints how many records arrived so far (for the test's progress checks).
import json
import sys


def records(path):
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("op") == "record":
                out.append(msg)
    return out


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    recs = records(path)
    if "--count" in sys.argv[3:]:
        print(len(recs))
        return 0
    errors = []
    seen = {}
    for i, r in enumerate(recs):
        if r.get("offset") != i:
            errors.append("record #%d has offset %r, expected %d" % (i, r.get("offset"), i))
        if r.get("source") != "demo":
            errors.append("record #%d has source %r" % (i, r.get("source")))
        data = r.get("data")
        if not isinstance(data, dict):
            errors.append("record #%d: data is not an object: %r" % (i, data))
            continue
        try:
            rid = int(str(data.get("id")))
        except ValueError:
            errors.append("record #%d: bad id %r" % (i, data.get("id")))
            continue
        if rid in seen:
            errors.append("id %d repeated (records #%d and #%d)" % (rid, seen[rid], i))
        seen[rid] = i
        want = {"id": str(rid), "name": "sensor, %d" % (rid % 7), "note": 'says "%d" — ok' % (rid * 3)}
        got = {k: str(v) for k, v in data.items()}
        if got != want:
            errors.append("record #%d: data %r, expected %r" % (i, data, want))
        if i > 0 and rid != i + 1:
            errors.append("record #%d: id %d out of order (expected %d)" % (i, rid, i + 1))
    missing = [i for i in range(1, n + 1) if i not in seen]
    if missing:
        errors.append("%d of %d rows missing (first: %s)" % (len(missing), n, missing[:10]))
    if len(recs) != n:
        errors.append("%d records received, expected %d" % (len(recs), n))
    if errors:
        for e in errors[:20]:
            print(e)
        if len(errors) > 20:
            print("... and %d more" % (len(errors) - 20))
        return 1
    print("%d records, offsets 0..%d, every row once and in order" % (n, n - 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
