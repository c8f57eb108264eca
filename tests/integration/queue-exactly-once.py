#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""queue-exactly-once.py DUMP N SOURCE... — checks a queue dump (bench/queue-dump output: offset,
source, seq, data per line, tab-separated) after crash tests: offsets dense from 0, each record
filed under the source and seq its data names ({"s": source, "q": seq}), and every seq 1..N of
every source exactly once, in order. Exits non-zero with the first thing that is wrong."""
import json
import sys

path, n, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seqs = {s: [] for s in sources}
expect_offset = 0
for line in open(path):
    offset, source, seq, data = line.rstrip('\n').split('\t', 3)
    if int(offset) != expect_offset:
        sys.exit(f'offset {offset} where {expect_offset} was expected (offsets must be dense)')
    expect_offset += 1
    d = json.loads(data)
    if d['s'] != source or d['q'] != int(seq):
        sys.exit(f'record at offset {offset} carries {data} but is filed as {source}/{seq}')
    if source not in seqs:
        sys.exit(f'record at offset {offset} of unexpected source {source}')
    seqs[source].append(int(seq))
for source, got in seqs.items():
    if got != list(range(1, n + 1)):
        dup = len(got) - len(set(got))
        missing = n - len(set(got))
        sys.exit(f'{source}: {len(got)} records, {dup} duplicates, {missing} missing, in order: {got == sorted(got)}')
print(f'{expect_offset} records, offsets 0..{expect_offset - 1}, every seq of {len(sources)} source(s) exactly once, in order')
