#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Declarative sources (dpipe.source(5)) on a private bus with a stand-in
# connector that logs what dpiped tells it: precedence of /etc over /run over /usr/lib, masking,
# drop-ins, a bad file, option values passed verbatim, reload (dpipectl, SIGHUP, the client op)
# applying only the difference, SourceDefinedByFile over busctl, dpipectl and the client protocol,
# and a file taking over a source of the API and giving it back.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

ETC=$TMP/etc/sources.d RUN=$TMP/run/sources.d LIB=$TMP/lib/sources.d
mkdir -p "$ETC" "$RUN" "$LIB"
DIRS="$ETC:$RUN:$LIB"
MSG=$LOG_DIR/connector-tcp.messages

src() { # src FILE ADDRESS [MORE LINES...]
        local f=$1 a=$2
        shift 2
        printf '[Source]\nType=tcp\nAddress=%s\n' "$a" >"$f"
        local l
        for l in "$@"; do printf '%s\n' "$l" >>"$f"; done
}
prop() { dp_source_property "$1" "$2"; }
# The connector's messages about NAME (add/remove/pause...), one per line: "op address".
msgs() {
        python3 - "$MSG" "$1" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("name") == sys.argv[2]:
        print(o["op"], o.get("options", {}).get("address", ""))
PY
}
options_of() { # the options of the last add of NAME, as JSON
        python3 - "$MSG" "$1" <<'PY'
import json, sys
last = None
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o.get("name") == sys.argv[2] and o["op"] == "add":
        last = o["options"]
print(json.dumps(last, sort_keys=True))
PY
}

# Precedence: the same name in all three directories, /etc wins.
src "$LIB/a.source" 127.0.0.1:1001
src "$RUN/a.source" 127.0.0.1:1002
src "$ETC/a.source" 127.0.0.1:1003
# Masked by a symlink to /dev/null, and by an empty file.
src "$LIB/b.source" 127.0.0.1:1004
ln -s /dev/null "$ETC/b.source"
src "$LIB/c.source" 127.0.0.1:1005
: >"$RUN/c.source"
# Drop-ins from every directory in file-name order; /run's 10-format.conf hides /usr/lib's, a
# /dev/null symlink in /etc masks /usr/lib's 30-query.conf.
src "$LIB/d.source" 127.0.0.1:1006 Option=format=csv
mkdir -p "$LIB/d.source.d" "$RUN/d.source.d" "$ETC/d.source.d"
printf '[Source]\nOption=format=csv\nOption=csv_header=x,y\n' >"$LIB/d.source.d/10-format.conf"
printf '[Source]\nOption=format=jsonl\n' >"$RUN/d.source.d/10-format.conf"
printf '# moved\n[Source]\nAddress=127.0.0.1:2006\n' >"$ETC/d.source.d/20-address.conf"
printf '[Source]\nOption=query=masked\n' >"$LIB/d.source.d/30-query.conf"
ln -s /dev/null "$ETC/d.source.d/30-query.conf"
# A bad file: one log line with file:line, the others load.
src "$ETC/e.source" 127.0.0.1:1007 'Option=format=jsonl' 'Colour=blue'
# A file name that is not a source name.
src "$ETC/not ok.source" 127.0.0.1:1008
# Values as they are: '=', ';', quotes, blanks, a continued line, comments, X- extensions.
cat >"$ETC/f.source" <<'EOF'
# A source with every kind of value.
; also a comment
[Source]
Type=tcp
Address = 127.0.0.1:1009
Option=transform=select a,b; where msg ~ "x = y" ; set k='v w'
Option=query={"op":"subscribe","from":0}
Option=csv_header=one,\
  two
X-Owner=team data

[X-Notes]
Anything=goes
EOF
# An empty Option= resets the list (Address= stays).
src "$ETC/g.source" 127.0.0.1:1010 Option=format=csv Option=heartbeat_ms=500 Option= Option=heartbeat_ms=750

dp_start_bus
dp_bg signals stdbuf -oL dbus-monitor --system "type='signal',sender='org.dpipe.Pipeline1'"
dp_fake_connector tcp
dp_dpiped --sources-dirs="$DIRS"

out=$(busctl --system --json=short call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager ListSources |
        python3 -c 'import json, sys; print(" ".join(sorted(s[0] for s in json.load(sys.stdin)["data"][0])), end=" ")')
dp_assert_eq "a d f g " "$out" "sources loaded from files"
dp_assert_eq "s \"127.0.0.1:1003\"" "$(prop a Address)" "/etc wins over /run and /usr/lib"
dp_assert_eq "s \"$ETC/a.source\"" "$(prop a FragmentPath)" "FragmentPath of a"
dp_assert_eq "as 0" "$(prop a DropInPaths)" "DropInPaths of a"
dp_assert_eq "s \"127.0.0.1:2006\"" "$(prop d Address)" "Address= of a drop-in"
dp_assert_eq "s \"$LIB/d.source\"" "$(prop d FragmentPath)" "FragmentPath of d"
dp_assert_eq "as 2 \"$RUN/d.source.d/10-format.conf\" \"$ETC/d.source.d/20-address.conf\"" "$(prop d DropInPaths)" \
        "DropInPaths of d"
dp_retry 10 grep -q '"name": "g"' "$MSG" || dp_fail "the connector got no add of g"
dp_assert_eq '{"address": "127.0.0.1:2006", "format": "jsonl"}' "$(options_of d)" "options of d (/usr/lib's 10-format.conf hidden)"
dp_assert_eq '{"address": "127.0.0.1:1009", "csv_header": "one,   two", "query": "{\"op\":\"subscribe\",\"from\":0}", "transform": "select a,b; where msg ~ \"x = y\" ; set k='"'"'v w'"'"'"}' \
        "$(options_of f)" "options of f, verbatim"
dp_assert_eq '{"address": "127.0.0.1:1010", "heartbeat_ms": "750"}' "$(options_of g)" "options of g after Option="
grep -q "$ETC/e.source:5: unknown setting \"Colour\"" "$LOG_DIR/dpiped.log" ||
        dp_fail "no file:line for the bad file: $(grep -i e.source "$LOG_DIR/dpiped.log")"
grep -q "not ok.*not a valid source name" "$LOG_DIR/dpiped.log" || dp_fail "no log line for the bad file name"
out=$(busctl --system --json=short get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/f \
        org.dpipe.Pipeline1.Source Options | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"]["transform"]["data"])')
dp_assert_eq "select a,b; where msg ~ \"x = y\" ; set k='v w'" "$out" "Options property of f"

# A source of a file cannot be removed over any API; AddSource of its name is SourceExists.
dp_assert_eq org.dpipe.Pipeline1.Error.SourceDefinedByFile "$(dp_bus_error dp_manager RemoveSource s a)" "RemoveSource a"
dp_assert_eq org.dpipe.Pipeline1.Error.SourceExists \
        "$(dp_bus_error dp_manager AddSource 'ssa{sv}' a tcp 1 address s 127.0.0.1:9)" "AddSource a"
out=$(dpipectl remove-source a 2>&1) && dp_fail "dpipectl remove-source a succeeded"
dp_assert_contains "$out" "is defined by $ETC/a.source" "dpipectl remove-source a"
out=$(dp_sock_client 'send:{"op":"remove_source","name":"a","id":1}' 'send:remove a' recv:2)
dp_assert_contains "$out" '"code":"source_defined_by_file"' "client protocol remove_source a"
[ "$(grep -c source_defined_by_file <<<"$out")" = 2 ] || dp_fail "inline remove: $out"
out=$(dp_sock_client send:list recv:1)
dp_assert_contains "$out" "\"fragment_path\":\"$ETC/a.source\"" "list shows where a comes from"
dp_assert_eq "s \"127.0.0.1:1003\"" "$(prop a Address)" "a is still there"

# dpipectl status NAME says where the definition comes from.
out=$(dpipectl --no-pager status d)
dp_assert_contains "$out" "Defined by: $LIB/d.source" "dpipectl status d"
dp_assert_contains "$out" "Drop-In: $RUN/d.source.d/10-format.conf" "dpipectl status d, drop-in"

# Pausing one at run time is fine, and writes nothing to the registry.
dp_manager PauseSource s a
dp_assert_eq 'b true' "$(prop a Paused)" "a paused"
[ ! -e "$STATE_DIR/sources/a.source" ] || dp_fail "pausing a wrote it into the registry"

# Reload: a changed, d removed (its drop-ins stay but the fragment is gone), h added, g broken
# (keeps running as it was), f untouched (not a single message to the connector about it).
n_f=$(msgs f | wc -l)
n_g=$(msgs g | wc -l)
src "$ETC/a.source" 127.0.0.1:3003
rm "$LIB/d.source"
src "$RUN/h.source" 127.0.0.1:1011
printf '[Source]\nType=tcp\nAddress=127.0.0.1:1010\nOption=heart beat=1\n' >"$ETC/g.source"
dpipectl reload || dp_fail "dpipectl reload failed"
dp_assert_eq "s \"127.0.0.1:3003\"" "$(prop a Address)" "a changed"
dp_assert_eq 'b true' "$(prop a Paused)" "a stays paused across its change"
dp_assert_eq "s \"127.0.0.1:1011\"" "$(prop h Address)" "h added"
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSource "$(dp_bus_error dp_manager GetSource s d)" "d removed"
dp_assert_eq "s \"127.0.0.1:1010\"" "$(prop g Address)" "g kept"
dp_retry 10 bash -c "grep -q '\"name\": \"h\"' '$MSG'" || dp_fail "the connector got no add of h"
dp_retry 10 bash -c "grep -q '\"name\": \"d\", \"op\": \"remove\"' '$MSG'" || dp_fail "the connector got no remove of d"
dp_assert_eq "$(printf 'add 127.0.0.1:1003\npause \nremove \nadd 127.0.0.1:3003')" "$(msgs a)" "connector: a restarted"
dp_assert_eq "$n_f" "$(msgs f | wc -l)" "f untouched by the reload"
dp_assert_eq "$n_g" "$(msgs g | wc -l)" "g (now broken) untouched by the reload"
grep -q "$ETC/g.source:4: invalid option name \"heart beat\"; keeping the running definition of source g" \
        "$LOG_DIR/dpiped.log" || dp_fail "no file:line for broken g: $(grep g.source "$LOG_DIR/dpiped.log")"
grep -q "Reloaded the source files: 1 added, 1 changed, 1 removed, 1 unchanged, 3 with errors" "$LOG_DIR/dpiped.log" ||
        dp_fail "reload summary: $(grep Reloaded "$LOG_DIR/dpiped.log")"
dp_retry 5 bash -c "grep -A1 'member=SourceRemoved' '$LOG_DIR/signals.log' | grep -q 'string \"d\"'" ||
        dp_fail "no SourceRemoved for d"

# Only the drop-in moves: the source is not restarted, its paths are updated.
n_h=$(msgs h | wc -l)
mkdir -p "$ETC/h.source.d"
printf '[Source]\n# nothing but a comment\n' >"$ETC/h.source.d/50-note.conf"
mv "$RUN/h.source" "$LIB/h.source"
dpipectl reload
dp_assert_eq "s \"$LIB/h.source\"" "$(prop h FragmentPath)" "h moved"
dp_assert_eq "as 1 \"$ETC/h.source.d/50-note.conf\"" "$(prop h DropInPaths)" "h's new drop-in"
dp_assert_eq "$n_h" "$(msgs h | wc -l)" "h not restarted when only its paths changed"

# SIGHUP reloads too, and so does the client op (as root on client.sock).
src "$ETC/i.source" 127.0.0.1:1012
kill -HUP "${DP_PIDS[dpiped]}"
dp_retry 10 dp_manager GetSource s i || dp_fail "SIGHUP did not load i"
src "$ETC/j.source" 127.0.0.1:1013
out=$(dp_sock_client 'send:{"op":"reload","id":7}' send:reload recv:2)
dp_assert_contains "$out" '{"op":"ok","id":7}' "client op reload"
dp_assert_eq "s \"127.0.0.1:1013\"" "$(prop j Address)" "j added by the client op"
src "$ETC/j2.source" 127.0.0.1:1014
out=$(dpipe-client --connect="$RUNTIME_DIR/client.sock" reload) || dp_fail "dpipe-client reload failed: $out"
dp_assert_eq "s \"127.0.0.1:1014\"" "$(prop j2 Address)" "j2 added by dpipe-client reload"
out=$(dpipe-client --connect="$RUNTIME_DIR/client.sock" remove j2 2>&1) && dp_fail "dpipe-client remove j2 succeeded"
dp_assert_contains "$out" "defined by $ETC/j2.source" "dpipe-client remove j2"

# Reload changes the pipeline: not for everyone.
dp_assert_eq org.freedesktop.DBus.Error.AccessDenied "$(dp_bus_error dp_nobody busctl --system call org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager Reload)" \
        "Reload as nobody"
out=$(dp_nobody dpipectl reload 2>&1) && dp_fail "dpipectl reload as nobody succeeded"
out=$(dp_nobody python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$RUNTIME_DIR/client.sock" send:reload recv:1)
dp_assert_contains "$out" '"code":"denied"' "client op reload as nobody"
out=$(dp_client send:reload recv:1)
dp_assert_contains "$out" '"code":"denied"' "client op reload over TCP without a token"

# A file takes over a source of the API, and gives it back when it goes away.
dp_manager AddSource 'ssa{sv}' k tcp 1 address s 127.0.0.1:4000 >/dev/null
test -s "$STATE_DIR/sources/k.source" || dp_fail "k not in the registry"
src "$ETC/k.source" 127.0.0.1:4001
dpipectl reload
dp_assert_eq "s \"127.0.0.1:4001\"" "$(prop k Address)" "the file wins over the API"
grep -q "Source k is defined by $ETC/k.source and through the API: the file wins" "$LOG_DIR/dpiped.log" ||
        dp_fail "no warning about k"
test -s "$STATE_DIR/sources/k.source" || dp_fail "the registry entry of k was dropped"
rm "$ETC/k.source"
dpipectl reload
dp_assert_eq "s \"127.0.0.1:4000\"" "$(prop k Address)" "the API's k is back"
dp_assert_eq 's ""' "$(prop k FragmentPath)" "k is the API's again"
dp_manager RemoveSource s k

# After a restart: the files again (a's pause was for that run only), the broken g is gone, and
# k, taken over at start-up, is the file's.
src "$ETC/k.source" 127.0.0.1:4002
dp_manager AddSource 'ssa{sv}' k2 tcp 1 address s 127.0.0.1:4003 >/dev/null
dp_kill_daemon dpiped
dp_dpiped --sources-dirs="$DIRS"
dp_assert_eq 'b false' "$(prop a Paused)" "a after a restart"
dp_assert_eq "s \"127.0.0.1:4002\"" "$(prop k Address)" "k from its file after a restart"
dp_assert_eq "s \"127.0.0.1:4003\"" "$(prop k2 Address)" "k2 from the registry after a restart"
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSource "$(dp_bus_error dp_manager GetSource s g)" "broken g not loaded at start"

# --sources-dirs is checked.
dp_expect_exit 1 dpiped --sources-dirs=relative/dir --help
