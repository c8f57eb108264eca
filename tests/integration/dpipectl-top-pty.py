#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives `dpipectl top` through a pseudo-terminal the way a person watches it: the table appears
# on the alternate screen, is redrawn in place, shows records arriving (RECORDS grows, REC/S > 0
# while they come), and q quits at once with the terminal given back. Used by test-dpiped-metrics.sh.
#   dpipectl-top-pty.py SOURCE FILE N_BEFORE N_MORE
# FILE is the source's file: N_MORE lines {"n":...} are appended while top runs.
import os, pty, re, select, sys, time

source, path, n_before, n_more = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = dict(os.environ, COLUMNS="120")
pid, fd = pty.fork()
if pid == 0:
    os.execvpe("dpipectl", ["dpipectl", "top", "--interval=0.3"], env)

buf = b""
def fail(msg):
    os.kill(pid, 9)
    sys.exit("top on a pty: %s; screen so far:\n%r" % (msg, buf[-3000:]))

def pump(timeout):
    global buf
    r, _, _ = select.select([fd], [], [], timeout)
    if r:
        try:
            d = os.read(fd, 65536)
        except OSError:
            d = b""
        if not d:
            return False
        buf += d
    return True

def read_until(pattern, timeout=15, start=0):
    rx = re.compile(pattern)
    end = time.time() + timeout
    while time.time() < end:
        m = rx.search(buf, start)
        if m:
            return m
        if not pump(0.1):
            break
    fail("did not see %r" % pattern)

def frames():
    return buf.split(b"\x1b[H\x1b[2J")

def row(frame, name):
    text = re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", frame).decode(errors="replace")
    for l in text.replace("\r", "").split("\n"):
        f = l.split()
        if f and f[0] == name:
            return f
    return None

# The alternate screen, then a frame with the source's row and its record count.
read_until(rb"\x1b\[\?1049h")
read_until(rb"SOURCE +TYPE +STATE +REC/S +BYTES/S +RECORDS +SKIPPED")
read_until(rb"SUBSCRIPTION +CLIENT")
read_until((r"\n%s +file +\S*(active|degraded)" % re.escape(source)).encode())
first = row(frames()[-1], source) or row(frames()[-2], source)
if not first or first[5] != str(n_before):
    fail("row of %s before the traffic: %r" % (source, first))

# Redrawn in place: several frames, each starting at the top left of a cleared screen.
n = len(frames())
end = time.time() + 10
while len(frames()) < n + 2 and time.time() < end:
    pump(0.1)
if len(frames()) < n + 2:
    fail("the table is not redrawn")

# Records arrive while it runs: the count grows to n_before + n_more, and a rate shows.
with open(path, "a") as f:
    for i in range(n_more):
        f.write('{"n":%d}\n' % (1000 + i))
want = str(n_before + n_more)
end = time.time() + 20
seen_rate = False
while time.time() < end:
    pump(0.1)
    for fr in frames()[-3:]:
        r = row(fr, source)
        if r and r[3] not in ("-", "0"):
            seen_rate = True
    r = row(frames()[-1], source) if frames() else None
    if r and r[5] == want and seen_rate:
        break
else:
    fail("RECORDS did not reach %s with a rate shown (last row %r, rate seen %r)" % (want, r, seen_rate))

# q quits at once, and the terminal is given back (main screen, cursor shown).
t0 = time.time()
os.write(fd, b"q")
while pump(0.2):
    if time.time() - t0 > 5:
        fail("q did not quit within 5 s")
_, status = os.waitpid(pid, 0)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("exit status %r after q" % status)
if not buf.rstrip().endswith(b"\x1b[?25h\x1b[?1049l"):
    fail("the terminal was not restored at exit")
print("top on a pty ok: %d frames" % len(frames()))
