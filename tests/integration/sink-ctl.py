#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Drives a dpipe sink daemon over its control socket without dpiped (man:dpipe-sink(7)).

sink-ctl.py SOCKET COMMAND..., the commands of control_ctl.py. In an add, values that are all
digits are sent as JSON numbers."""
import sys

import control_ctl

if __name__ == '__main__':
    sys.exit(control_ctl.run(sys.argv, 'sinks', lambda k, v: control_ctl.value(v)))
