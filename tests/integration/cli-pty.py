#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs a command on a pseudo-terminal, as a person at a terminal would, and prints what appeared
# there (as Python's repr of the bytes, so that escape sequences are visible) after "rc=N". Fails
# when the command does not end within the timeout: a pager that waits for a key blocks it.
#   cli-pty.py TIMEOUT ENV=VALUE... -- CMD ARGS...
# An ENV of the form -NAME removes NAME from the environment.
import os, pty, select, sys, time

timeout = float(sys.argv[1])
i = sys.argv.index("--")
env = dict(os.environ)
for a in sys.argv[2:i]:
    if a.startswith("-"):
        env.pop(a[1:], None)
    else:
        k, v = a.split("=", 1)
        env[k] = v
cmd = sys.argv[i + 1:]
env.setdefault("TERM", "xterm")

pid, fd = pty.fork()
if pid == 0:
    os.execvpe(cmd[0], cmd, env)

out = b""
done, st = 0, 0
end = time.time() + timeout
while time.time() < end:
    r, _, _ = select.select([fd], [], [], 0.1)
    if r:
        try:
            d = os.read(fd, 65536)
        except OSError:
            d = b""
        if not d:
            break
        out += d
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        break
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    sys.exit("timed out after %gs (a pager waiting for a key?); screen: %r" % (timeout, out))
# Read what is left, then reap.
while True:
    try:
        d = os.read(fd, 65536)
    except OSError:
        break
    if not d:
        break
    out += d
if not done:
    _, st = os.waitpid(pid, 0)
rc = os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
print("rc=%d" % rc)
print(repr(out.decode(errors="replace")))
