#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Looks at what a client of dpiped received (dpipe-client's output, one line per message), for the
tests of record validation.

  edge-lines.py strict FILE          exit 1, naming the line, unless every line is one strict JSON
                                     object (UTF-8, no NaN/Infinity, no raw control characters)
  edge-lines.py data FILE SOURCE     the data of SOURCE's records, one compact JSON value per line
  edge-lines.py count FILE SOURCE    how many records of SOURCE"""
import json
import sys


def reject(word):
    raise ValueError('%s is not JSON' % word)


def records(path):
    with open(path, 'rb') as f:
        for n, raw in enumerate(f, 1):
            try:
                msg = json.loads(raw.decode('utf-8'), parse_constant=reject)
            except ValueError as e:
                sys.exit('%s:%d: not strict JSON (%s): %r' % (path, n, e, raw[:200]))
            if not isinstance(msg, dict):
                sys.exit('%s:%d: not a JSON object: %r' % (path, n, raw[:200]))
            yield msg


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == 'strict':
        for _ in records(path):
            pass
    elif cmd == 'data':
        for m in records(path):
            if m.get('op') == 'record' and m.get('source') == sys.argv[3]:
                print(json.dumps(m['data'], separators=(',', ':'), ensure_ascii=False))
    elif cmd == 'count':
        print(sum(1 for m in records(path) if m.get('op') == 'record' and m.get('source') == sys.argv[3]))
    else:
        sys.exit('unknown command ' + cmd)


if __name__ == '__main__':
    main()
