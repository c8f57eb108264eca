#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Compares records with the CSV corpus's expected ones (tests/data/csv/NAME.jsonl).

  csv-corpus-check.py page EXPECTED.jsonl PAGE.json      a dpipe-source /records page
  csv-corpus-check.py stream CORPUS_DIR CLIENT.jsonl SOURCE=NAME...
                                                        records of each SOURCE (dpipe-client
                                                        subscribe output) against NAME.jsonl
Exits 0 when all match; 1 with what differs; 2 when a stream has fewer records than expected
yet (the caller waits and asks again)."""
import json
import sys


def expected(path):
    return [json.loads(line) for line in open(path, encoding='utf-8') if line.strip()]


def same(what, got, want):
    # Objects compared with their key order: the header's order is part of the answer.
    if [list(o.items()) for o in got] == [list(o.items()) for o in want]:
        return True
    print(f'{what}: got {len(got)} records, want {len(want)}', file=sys.stderr)
    for i, (g, w) in enumerate(zip(got, want)):
        if list(g.items()) != list(w.items()):
            print(f'  first difference at record {i}: got {json.dumps(g)}, want {json.dumps(w)}', file=sys.stderr)
            break
    return False


if sys.argv[1] == 'page':
    page = json.load(open(sys.argv[3], encoding='utf-8'))
    sys.exit(0 if same('dpipe-source ' + sys.argv[2], page['records'], expected(sys.argv[2])) else 1)

corpus, client = sys.argv[2], sys.argv[3]
by_source = {}
for line in open(client, encoding='utf-8'):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get('op') == 'record':
        by_source.setdefault(m['source'], []).append(m['data'])
status = 0
for arg in sys.argv[4:]:
    source, name = arg.split('=', 1)
    want = expected(f'{corpus}/{name}.jsonl')
    got = by_source.get(source, [])
    if len(got) < len(want):
        print(f'{source}: {len(got)} of {len(want)} records so far', file=sys.stderr)
        status = max(status, 2)
    elif not same(source, got, want):
        status = 1
sys.exit(status)
