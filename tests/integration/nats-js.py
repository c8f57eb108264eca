#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A small NATS JetStream client over plain sockets, for the tests (Debian has no `nats` CLI).

  nats-js.py URLS ready [TIMEOUT]                  wait until JetStream answers ($JS.API.INFO)
  nats-js.py URLS add-stream NAME SUBJECT REPLICAS [DUPLICATE_WINDOW_S] [KEY=INT...]
                                                   create a file-backed stream (ok if it exists);
                                                   KEY=INT: more of its config, e.g. max_msg_size=64
  nats-js.py URLS info STREAM                      print $JS.API.STREAM.INFO.<STREAM> as JSON
  nats-js.py URLS leader STREAM [TIMEOUT]          wait until the stream has a leader, print its
                                                   server name
  nats-js.py URLS current STREAM [TIMEOUT]         wait until the stream has a leader and every
                                                   replica is current, print the leader's name
  nats-js.py URLS last STREAM SUBJECT              print the last message on SUBJECT (wildcards ok)
                                                   as a JSON line, exit 1 if there is none
  nats-js.py URLS dump STREAM [FILTER]             print every message (of FILTER) as a JSON line:
                                                   {"seq":N,"subject":S,"headers":{..},"data":"..."}
  nats-js.py URLS pub SUBJECT FIRST COUNT          publish COUNT messages {"i":FIRST..}, each with
                                                   Nats-Msg-Id i, and wait for every ack; retries
                                                   what failed; prints the acks' stream sequences

URLS: nats://HOST:PORT[,nats://HOST:PORT...]; the first that answers is used. Exit status 0 on
success, 1 with a message on stderr otherwise. Only the protocol the tests need: CONNECT with
headers and no_responders, SUB, PUB, MSG/HMSG, PING/PONG."""
import base64
import json
import socket
import sys
import time


class NatsError(Exception):
    pass


class Conn:
    def __init__(self, urls, timeout=5.0):
        err = None
        for url in urls.split(','):
            hostport = url.split('://', 1)[-1]
            host, port = hostport.rsplit(':', 1)
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=timeout)
                break
            except OSError as e:
                err = e
        else:
            raise NatsError(f'cannot connect to {urls}: {err}')
        self.buf = b''
        self.sid = 0
        self.subs = {}
        info = self._line()
        if not info.startswith(b'INFO '):
            raise NatsError(f'unexpected greeting {info!r}')
        self.info = json.loads(info[5:])
        self._send(b'CONNECT ' + json.dumps({
            'verbose': False, 'pedantic': False, 'headers': True, 'no_responders': True,
            'lang': 'python', 'version': '0', 'protocol': 1}).encode() + b'\r\nPING\r\n')
        while True:
            line = self._line()
            if line == b'PONG':
                break
            if line.startswith(b'-ERR'):
                raise NatsError(line.decode())
        self.inbox = '_INBOX.dpipetest%d' % int(time.monotonic() * 1e6)
        self.inbox_sid = self.subscribe(self.inbox + '.*')
        self.req = 0

    def _send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic() if deadline else None
        if left is not None and left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError
        if not chunk:
            raise NatsError('connection closed by the server')
        self.buf += chunk

    def _line(self, deadline=None):
        while b'\r\n' not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _bytes(self, n, deadline=None):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def subscribe(self, subject):
        self.sid += 1
        self._send(f'SUB {subject} {self.sid}\r\n'.encode())
        return self.sid

    def publish(self, subject, payload, reply=None):
        if isinstance(payload, str):
            payload = payload.encode()
        r = f' {reply}' if reply else ''
        self._send(f'PUB {subject}{r} {len(payload)}\r\n'.encode() + payload + b'\r\n')

    def next_msg(self, deadline):
        """Returns (subject, reply, status, headers, data) of the next message."""
        while True:
            line = self._line(deadline)
            if line == b'PING':
                self._send(b'PONG\r\n')
                continue
            if line in (b'PONG', b'+OK'):
                continue
            if line.startswith(b'-ERR'):
                raise NatsError(line.decode())
            parts = line.split()
            if parts[0] == b'MSG':
                subject, size = parts[1].decode(), int(parts[-1])
                reply = parts[3].decode() if len(parts) == 5 else None
                return subject, reply, None, {}, self._bytes(size, deadline)
            if parts[0] == b'HMSG':
                subject, hsize, size = parts[1].decode(), int(parts[-2]), int(parts[-1])
                reply = parts[3].decode() if len(parts) == 6 else None
                raw = self._bytes(size, deadline)
                status, headers = parse_headers(raw[:hsize])
                return subject, reply, status, headers, raw[hsize:]

    def request(self, subject, payload=b'', timeout=5.0):
        self.req += 1
        reply = f'{self.inbox}.{self.req}'
        self.publish(subject, payload, reply)
        deadline = time.monotonic() + timeout
        while True:
            subj, _, status, _, data = self.next_msg(deadline)
            if subj != reply:
                continue
            if status == '503':
                raise NatsError(f'no responders for {subject}')
            return data


def parse_headers(raw):
    lines = raw.decode(errors='replace').split('\r\n')
    first = lines[0].split()
    status = first[1] if len(first) > 1 else None
    headers = {}
    for line in lines[1:]:
        if ':' in line:
            k, v = line.split(':', 1)
            headers[k.strip()] = v.strip()
    return status, headers


def api(conn, subject, body=None, timeout=5.0):
    payload = json.dumps(body).encode() if body is not None else b''
    reply = json.loads(conn.request('$JS.API.' + subject, payload, timeout))
    if 'error' in reply:
        e = reply['error']
        raise NatsError(f"{subject}: {e.get('description')} (code {e.get('code')}, err_code {e.get('err_code')})")
    return reply


def retry(timeout, fn):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (NatsError, TimeoutError, OSError) as e:
            if time.monotonic() >= deadline:
                raise NatsError(f'gave up after {timeout} s: {e}')
            time.sleep(0.2)


def cmd_ready(urls, timeout='30'):
    def attempt():
        c = Conn(urls)
        api(c, 'INFO', timeout=2)
    retry(float(timeout), attempt)


def cmd_add_stream(urls, name, subject, replicas, duplicate_window=None, *more):
    def attempt():
        c = Conn(urls)
        cfg = {'name': name, 'subjects': [subject], 'storage': 'file', 'num_replicas': int(replicas),
               'retention': 'limits', 'discard': 'old'}
        if duplicate_window:
            cfg['duplicate_window'] = int(float(duplicate_window) * 10**9)
        for kv in more:
            k, v = kv.split('=', 1)
            cfg[k] = int(v)
        try:
            api(c, 'STREAM.CREATE.' + name, cfg, timeout=10)
        except NatsError as e:
            if 'already in use' not in str(e):
                raise
    retry(30, attempt)


def cmd_info(urls, stream):
    c = Conn(urls)
    print(json.dumps(api(c, 'STREAM.INFO.' + stream)))


def cmd_leader(urls, stream, timeout='30', all_current=False):
    def attempt():
        c = Conn(urls)
        info = api(c, 'STREAM.INFO.' + stream, timeout=2)
        cl = info.get('cluster', {})
        leader = cl.get('leader')
        if not leader:
            raise NatsError(f'stream {stream} has no leader')
        for r in cl.get('replicas', []) if all_current else []:
            if not r.get('current') or r.get('offline'):
                raise NatsError(f"replica {r.get('name')} of {stream} is not current")
        return leader
    print(retry(float(timeout), attempt))


def cmd_current(urls, stream, timeout='30'):
    cmd_leader(urls, stream, timeout, True)


def message_json(seq, subject, headers, data):
    return json.dumps({'seq': seq, 'subject': subject, 'headers': headers,
                       'data': data.decode(errors='replace')}, separators=(',', ':'))


def cmd_last(urls, stream, subject):
    c = Conn(urls)
    reply = json.loads(c.request('$JS.API.STREAM.MSG.GET.' + stream, json.dumps({'last_by_subj': subject})))
    if 'error' in reply:
        print(f"no message on {subject}: {reply['error'].get('description')}", file=sys.stderr)
        sys.exit(1)
    m = reply['message']
    headers = {}
    if m.get('hdrs'):
        _, headers = parse_headers(base64.b64decode(m['hdrs']))
    print(message_json(m['seq'], m['subject'], headers, base64.b64decode(m.get('data', ''))))


def cmd_dump(urls, stream, filter_subject=None):
    c = Conn(urls)
    cfg = {'deliver_policy': 'all', 'ack_policy': 'none', 'replay_policy': 'instant',
           'inactive_threshold': 30 * 10**9, 'mem_storage': True, 'num_replicas': 1}
    if filter_subject:
        cfg['filter_subject'] = filter_subject
    # Creating a consumer needs the cluster's metadata leader, which nats-server 2.9 may take well
    # over 20 s to settle on after servers came back (seen: elected, stepped down 2 ms later, none
    # for 15 s).
    created = retry(90, lambda: api(Conn(urls), f'CONSUMER.CREATE.{stream}', {'stream_name': stream, 'config': cfg}))
    consumer = created['name']
    pending = created.get('num_pending', 0)
    out = sys.stdout
    while pending > 0:
        c.req += 1
        reply = f'{c.inbox}.{c.req}'
        batch = min(pending, 5000)
        c.publish(f'$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}',
                  json.dumps({'batch': batch, 'expires': 5 * 10**9}), reply)
        got = 0
        deadline = time.monotonic() + 10
        while got < batch:
            subj, ack, status, headers, data = c.next_msg(deadline)
            if status is not None:
                if status in ('404', '408', '409'):
                    break
                continue
            # $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
            tok = ack.split('.')
            seq, pending = int(tok[5]), int(tok[8])
            out.write(message_json(seq, subj, headers, data) + '\n')
            got += 1
        if got == 0:
            raise NatsError(f'consumer of {stream} delivered nothing with {pending} pending')
    out.flush()


def cmd_pub(urls, subject, first, count):
    c = Conn(urls)
    first, count = int(first), int(count)
    i = first
    while i < first + count:
        payload = json.dumps({'i': i}).encode()
        hdr = f'NATS/1.0\r\nNats-Msg-Id: {i}\r\n\r\n'.encode()
        c.req += 1
        reply = f'{c.inbox}.{c.req}'
        c._send(f'HPUB {subject} {reply} {len(hdr)} {len(hdr) + len(payload)}\r\n'.encode() + hdr + payload + b'\r\n')
        try:
            deadline = time.monotonic() + 5
            while True:
                subj, _, status, _, data = c.next_msg(deadline)
                if subj == reply:
                    break
            if status == '503':
                raise NatsError('no responders')
            ack = json.loads(data)
            if 'error' in ack:
                raise NatsError(ack['error'].get('description'))
        except (NatsError, TimeoutError) as e:
            print(f'publish {i}: {e or "timeout"}, retrying', file=sys.stderr)
            time.sleep(0.2)
            c = retry(30, lambda: Conn(urls))
            continue
        print(ack['seq'])
        i += 1


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    urls, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    cmds = {'ready': cmd_ready, 'add-stream': cmd_add_stream, 'info': cmd_info, 'leader': cmd_leader, 'current': cmd_current,
            'last': cmd_last, 'dump': cmd_dump, 'pub': cmd_pub}
    if cmd not in cmds:
        print(f'unknown command {cmd}', file=sys.stderr)
        sys.exit(2)
    try:
        cmds[cmd](urls, *args)
    except (NatsError, TimeoutError, OSError) as e:
        print(f'nats-js.py {cmd}: {e or "timeout"}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
