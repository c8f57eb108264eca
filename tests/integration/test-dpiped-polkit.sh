#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped's own authorization, behind the bus policy: a caller other than root that a local policy
# lets through is decided by polkit (action org.dpipe.pipeline1.manage, asked asynchronously), and
# denied when there is no polkit. Uses a stand-in polkit authority on the private bus.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

# A local drop-in, as an admin would write it: "nobody" may send to dpiped; and the test may play
# polkit.
mkdir -p "$TMP/system.d"
cat >"$TMP/system.d/local-test.conf" <<'XML'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="root"><allow own="org.freedesktop.PolicyKit1"/></policy>
  <policy user="nobody"><allow send_destination="org.dpipe.Pipeline1"/></policy>
  <policy context="default"><allow send_destination="org.freedesktop.PolicyKit1"/></policy>
</busconfig>
XML
dp_start_bus
dp_fake_connector tcp
dp_dpiped

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
add_as_nobody() {
        as_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager \
                AddSource 'ssa{sv}' "$1" tcp 1 address s 127.0.0.1:9
}

# No polkit on the bus: dpiped itself says no.
dp_assert_eq org.freedesktop.DBus.Error.AccessDenied "$(dp_bus_error add_as_nobody a)" "without polkit"
out=$(SYSTEMD_LOG_LEVEL=debug add_as_nobody a 2>&1 || true)
dp_assert_contains "$out" "error-message=Changing the pipeline needs root or the polkit action org.dpipe.pipeline1.manage" \
        "dpiped's own message (not the bus policy's)"

# polkit says no.
dp_bg polkit-no dpiped-fake-polkit no
dp_retry 10 busctl --system status org.freedesktop.PolicyKit1 || dp_fail "fake polkit did not start"
dp_assert_eq org.freedesktop.DBus.Error.AccessDenied "$(dp_bus_error add_as_nobody b)" "polkit says no"
grep -Eq '^system-bus-name :[0-9]+\.[0-9]+ org.dpipe.pipeline1.manage [01]$' "$LOG_DIR/polkit-no.log" ||
        dp_fail "polkit was not asked about the caller and the action: $(cat "$LOG_DIR/polkit-no.log")"
kill "${DP_OTHER_PIDS[-1]}"
dp_retry 10 bash -c '! busctl --system status org.freedesktop.PolicyKit1' || dp_fail "fake polkit did not stop"

# polkit says yes: the call is answered after the asynchronous check, and does its work.
dp_bg polkit-yes dpiped-fake-polkit yes
dp_retry 10 busctl --system status org.freedesktop.PolicyKit1 || dp_fail "fake polkit did not start"
dp_assert_eq 'o "/org/dpipe/Pipeline1/source/c"' "$(add_as_nobody c)" "polkit says yes"
dp_assert_eq 'o "/org/dpipe/Pipeline1/source/c"' "$(dp_manager GetSource s c)" "the source is there"
dp_retry 5 grep -q '"name": "c", "op": "add"' "$LOG_DIR/connector-tcp.messages" || dp_fail "not forwarded"
as_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager PauseSource s c
dp_assert_eq 's "paused"' "$(dp_source_property c State)" "paused by an authorized caller"
dp_assert_eq org.dpipe.Pipeline1.Error.SourceExists "$(dp_bus_error add_as_nobody c)" "named errors after authorization"
as_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager RemoveSource s c
dp_assert_eq 'a(ssso) 0' "$(dp_manager ListSources)" "removed by an authorized caller"
# Root is never asked about.
n=$(wc -l <"$LOG_DIR/polkit-yes.log")
dp_manager AddSource 'ssa{sv}' d tcp 1 address s 127.0.0.1:9 >/dev/null
dp_assert_eq "$n" "$(wc -l <"$LOG_DIR/polkit-yes.log")" "polkit asked about root"
