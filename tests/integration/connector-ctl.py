#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drives a dpipe connector over its control socket without dpiped (man:dpipe-connector(7)).

connector-ctl.py SOCKET COMMAND..., the commands of control_ctl.py, and:
  connector-ctl.py SOCKET add-many PREFIX COUNT KEY=VALUE...  add PREFIX0..PREFIX<COUNT-1>; {i} in a
                                                              value is replaced by the index
  connector-ctl.py SOCKET totals                              print "SOURCES ACTIVE RECORDS SKIPPED"
In an add, values of options named *_ms and *_bytes that are all digits are sent as JSON numbers."""
import json
import sys
import time

import control_ctl


def convert(k, v):
    return control_ctl.value(v) if k.endswith('_ms') or k.endswith('_bytes') else v


def extra(sock, cmd, args):
    if cmd == 'add-many':
        prefix, count = args[0], int(args[1])
        for i in range(count):
            opts = {}
            for a in args[2:]:
                k, v = a.split('=', 1)
                opts[k] = convert(k, v.replace('{i}', str(i)))
            control_ctl.send(sock, {'op': 'add', 'id': 1000 + i, 'name': '%s%d' % (prefix, i), 'options': opts})
        ok = 0
        for m in control_ctl.frames(sock, time.monotonic() + 30):
            if isinstance(m.get('id'), int) and m['id'] >= 1000:
                if m.get('op') != 'ok':
                    print(json.dumps(m), file=sys.stderr)
                    return 1
                ok += 1
                if ok == count:
                    print('added %d' % ok)
                    return 0
        return 1
    if cmd == 'totals':
        control_ctl.send(sock, {'op': 'list', 'id': 1})
        for m in control_ctl.frames(sock, time.monotonic() + 10):
            if m.get('op') == 'sources':
                ss = m['sources']
                print(len(ss), sum(1 for x in ss if x['state'] == 'active'), sum(x['records'] for x in ss),
                      sum(x['skipped'] for x in ss))
                return 0
        return 1
    return None


if __name__ == '__main__':
    sys.exit(control_ctl.run(sys.argv, 'sources', convert, extra))
