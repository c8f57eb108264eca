#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""queue-seed.py OUT SEGMENT [SEGMENT2] — packs one or two segment files of a real queue into an
input of fuzz-queue-recover (see its header): flags, the first file's length, the files. The seeds
in corpus-queue-recover/ were made this way from a queue that dpipe-writer wrote (bench/writer-feed
into dpipe-writer --segment-size=4K), some of them then torn or damaged by hand."""
import struct
import sys

out, segs = sys.argv[1], [open(p, "rb").read() for p in sys.argv[2:]]
if not 1 <= len(segs) <= 2 or len(segs[0]) > 0xFFFF:
    sys.exit("usage: queue-seed.py OUT SEGMENT [SEGMENT2] (segments of at most 64 KiB)")
with open(out, "wb") as f:
    f.write(bytes([1 if len(segs) == 2 else 0]) + struct.pack("<H", len(segs[0])) + b"".join(segs))
