#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpipe-source streaming rules over raw TCP: --loop (seq keeps growing, row = seq mod rows),
# --rate (a paced client does not get everything at once), heartbeat pings and the idle timeout,
# a slow reader disconnected with an error line while the server's memory stays bounded, and
# 1000 concurrent subscribers each with their own cursor.
source "$(dirname "$0")/lib.sh"
# A version-manager shim for python3 can cost seconds per start; the system one is enough here.
python3() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else command python3 "$@"; fi; }

CLIENT="$SOURCE_DIR/tests/integration/source-client.py"
printf 'i,name\n0,zero\n1,one\n2,two\n' >"$TMP/small.csv"

# --loop: subscribe 0 reads past the end; subscribe 7 starts at row 7 mod 3 = 1.
PORT=$(dp_free_port)
dp_daemon loop dpipe-source --file="$TMP/small.csv" --tcp="127.0.0.1:$PORT" --loop
dp_wait_port 127.0.0.1 "$PORT"
out=$(python3 "$CLIENT" "$PORT" --send subscribe --lines 10)
dp_assert_eq "0 1 2 3 4 5 6 7 8" "$(grep -o '"seq":[0-9]*' <<<"$out" | cut -d: -f2 | xargs)" "loop seq"
dp_assert_eq '{"op":"record","seq":7,"data":{"i":"1","name":"one"}}' "$(grep '"seq":7,' <<<"$out")" "loop row 7"
out=$(python3 "$CLIENT" "$PORT" --send 'subscribe 7' --lines 3)
dp_assert_eq '{"op":"record","seq":7,"data":{"i":"1","name":"one"}}' "$(sed -n 2p <<<"$out")" "subscribe 7 with loop"

# --rate: at 20 rows/s a client reading for 1 s gets far fewer than the 1000 rows there are,
# and at least some. (A bound on a count, not a timing measurement.)
{ echo 'n'; seq 0 999; } >"$TMP/big.csv"
PORT=$(dp_free_port)
dp_daemon rate dpipe-source --file="$TMP/big.csv" --tcp="127.0.0.1:$PORT" --rate=20
dp_wait_port 127.0.0.1 "$PORT"
n=$(python3 "$CLIENT" "$PORT" --send subscribe --duration 1 | grep -c '"op":"record"' || true)
[ "$n" -ge 1 ] && [ "$n" -le 200 ] || dp_fail "--rate=20: $n rows in about a second"
# The rows that do come are in order from the requested seq.
out=$(python3 "$CLIENT" "$PORT" --send 'subscribe 500' --lines 4)
dp_assert_eq "500 501 502" "$(grep -o '"seq":[0-9]*' <<<"$out" | cut -d: -f2 | xargs)" "paced rows in order"

# Heartbeat: pings every --heartbeat-ms; a silent peer gets a timeout error and is closed; a peer
# that answers pings stays.
PORT=$(dp_free_port)
dp_daemon hb dpipe-source --file="$TMP/small.csv" --tcp="127.0.0.1:$PORT" --heartbeat-ms=200
dp_wait_port 127.0.0.1 "$PORT"
out=$(python3 "$CLIENT" "$PORT" --show-pings --timeout 5)
dp_assert_contains "$out" '{"op":"ping"}' "server pings"
dp_assert_contains "$out" '"code":"timeout"' "idle timeout error line"
dp_assert_eq "#EOF" "$(tail -n1 <<<"$out")" "closed after the timeout"
out=$(python3 "$CLIENT" "$PORT" --pong --send ping --lines 1 --timeout 3 --stay 1.5)
dp_assert_eq $'{"op":"pong"}\n#OPEN' "$out" "a peer answering pings stays"

# A slow reader: rows fall due at 200000/s, the client reads nothing for 3 s with a tiny receive
# buffer. The server must cut it off with an error line, not buffer without bound.
{ echo 'k,payload'; for i in $(seq 0 99); do echo "$i,$(head -c 200 /dev/zero | tr '\0' p)"; done; } >"$TMP/wide.csv"
PORT=$(dp_free_port)
dp_daemon slow dpipe-source --file="$TMP/wide.csv" --tcp="127.0.0.1:$PORT" --rate=200000 --loop --client-buffer=262144
dp_wait_port 127.0.0.1 "$PORT"
python3 "$CLIENT" "$PORT" --send subscribe --rcvbuf 4096 --sleep 3 --timeout 10 >"$TMP/slow.out"
grep -q '"code":"overflow"' "$TMP/slow.out" || dp_fail "slow client got no overflow error line"
dp_assert_eq "#EOF" "$(tail -n1 "$TMP/slow.out")" "slow client disconnected"
dp_assert_contains "$(tail -n2 "$TMP/slow.out" | head -n1)" '"code":"overflow"' "error is the last line"
rss=$(awk '/VmHWM/ {print $2}' "/proc/${DP_PIDS[slow]}/status")
[ "$rss" -lt 65536 ] || dp_fail "peak RSS ${rss} kB with one slow client"

# 1000 concurrent subscribers, each with its own cursor (subscribe i mod 1000 on a looping source).
ulimit -n 4096 2>/dev/null || true
PORT=$(dp_free_port)
dp_daemon many dpipe-source --file="$TMP/big.csv" --tcp="127.0.0.1:$PORT" --loop --rate=5
dp_wait_port 127.0.0.1 "$PORT"
python3 - "$PORT" <<'PY' || dp_fail "1000 concurrent subscribers"
import resource, select, socket, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
port = int(sys.argv[1])
socks = {}
for i in range(1000):
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'subscribe %d\n' % (i * 7))
    socks[s.fileno()] = (s, i * 7)
bufs = {fd: b'' for fd in socks}
done = set()
poll = select.poll()
for fd in socks:
    poll.register(fd, select.POLLIN)
deadline = time.time() + 40
while len(done) < len(socks) and time.time() < deadline:
    for fd, ev in poll.poll(1000):
        s, start = socks[fd]
        data = s.recv(65536)
        if not data:
            sys.exit('client %d closed early' % start)
        bufs[fd] += data
        lines = bufs[fd].split(b'\n')
        # ok line, then the first record must be the requested seq with row seq mod 1000.
        if len(lines) >= 3 and fd not in done:
            if lines[0] != b'{"op":"ok","from":%d}' % start:
                sys.exit('bad reply %r' % lines[0])
            want = b'{"op":"record","seq":%d,"data":{"n":"%d"}}' % (start, start % 1000)
            if lines[1] != want:
                sys.exit('client %d got %r, want %r' % (start, lines[1], want))
            done.add(fd)
            poll.unregister(fd)
print('%d of %d clients got their first row' % (len(done), len(socks)))
sys.exit(0 if len(done) == len(socks) else 1)
PY
