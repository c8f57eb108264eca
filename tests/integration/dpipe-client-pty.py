#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Drives dpipe-client's interactive mode through a pseudo-terminal, the way a person at a terminal
# would: waits for the prompt, types commands, reads what appears. Used by test-dpipe-client.sh.
#   dpipe-client-pty.py HOST:PORT N_RECORDS IDLE_SECONDS
# Exits non-zero with a message when the session does not go as a person would expect.
import json, os, pty, re, select, sys, time

addr, n_records, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
pid, fd = pty.fork()
if pid == 0:
    os.execvp("dpipe-client", ["dpipe-client", "--connect=" + addr])

buf = b""
def fail(msg):
    sys.exit("pty session: %s; screen so far:\n%s" % (msg, buf.decode(errors="replace")[-3000:]))

def read_until(pattern, timeout=15):
    global buf
    rx = re.compile(pattern)
    end = time.time() + timeout
    while time.time() < end:
        m = rx.search(buf)
        if m:
            return m
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                d = os.read(fd, 65536)
            except OSError:
                d = b""
            if not d:
                break
            buf += d
    fail("did not see %r" % pattern)

def lines_since(mark):
    text = buf[mark:].decode(errors="replace").replace("\r", "").replace("\x1b[K", "")
    return [l[len("dpipe> "):] if l.startswith("dpipe> ") else l for l in text.split("\n")]

# A greeting, then the prompt.
read_until(rb'Connected to [^\r]*"help" lists the commands[^\r]*\r\ndpipe> $')

# A reply, then the prompt again.
mark = len(buf)
os.write(fd, b"list\n")
read_until(rb'"op":"sources".*\r\ndpipe> $')
sources = [json.loads(l) for l in lines_since(mark) if l.startswith('{"op":"sources"')]
if not sources or sources[0]["sources"][0]["name"] != "alpha":
    fail("list reply %r" % sources)

# Idle for longer than the server's client timeout: only the client's own pongs keep it alive.
time.sleep(idle)
mark = len(buf)
os.write(fd, b"ping\n")
read_until(rb'\{"op":"pong"\}\r\ndpipe> $')

# Records arrive and are printed as they come, each on its own line, and acked (we do not check
# the acks here; the server's window would stall a client that never acks).
mark = len(buf)
os.write(fd, b"subscribe earliest\n")
read_until((r'"offset":%d,' % (n_records - 1)).encode())
read_until(rb"dpipe> $")
recs = [json.loads(l) for l in lines_since(mark) if l.startswith('{"op":"record"')]
if [r["offset"] for r in recs] != list(range(n_records)):
    fail("offsets %r" % [r["offset"] for r in recs][:20])

# Quoting: double quotes group words (the server sees one name with a blank and refuses it).
mark = len(buf)
os.write(fd, b'remove "no such"\n')
read_until(rb'\x1b\[0;31m\{"op":"error".*\x1b\[0m\r\ndpipe> $')  # errors in red

os.write(fd, b"quit\n")
read_until(rb'\{"op":"bye"\}')
_, status = os.waitpid(pid, 0)
if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
    fail("exit status %r after quit" % status)
print("pty session ok: %d records" % len(recs))
