#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""queue-damage.py SEGMENT OFFSET [NBYTES] [SKIP] — damages a queue segment file the way bit rot
does: finds the record with OFFSET (walking the records by their size fields, docs/queue-format.md)
and flips every bit of NBYTES bytes (default 16) starting SKIP bytes (default 48: in its data) into
it. Prints the record's byte position in the file."""
import struct
import sys

path, offset = sys.argv[1], int(sys.argv[2])
nbytes = int(sys.argv[3]) if len(sys.argv) > 3 else 16
skip = int(sys.argv[4]) if len(sys.argv) > 4 else 48
with open(path, "r+b") as f:
    data = f.read()
    pos = 32
    while pos + 40 <= len(data):
        size, _crc, off = struct.unpack_from("<IIQ", data, pos)
        if off == offset:
            if skip + nbytes > size:
                sys.exit(f"record {offset} has only {size} bytes")
            f.seek(pos + skip)
            f.write(bytes(b ^ 0xFF for b in data[pos + skip:pos + skip + nbytes]))
            print(pos)
            sys.exit(0)
        pos += size
sys.exit(f"no record with offset {offset} in {path}")
