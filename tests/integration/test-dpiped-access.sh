#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Who may change the pipeline through the client protocol (dpiped(8), ACCESS and LIMITS), as the
# users themselves: on client.sock the peer's credentials decide (root, dpiped's own user and the
# admin group change, everyone reads and subscribes: `nobody` via setpriv); on TCP a change needs
# an admin token (--tokens, or the credential dpipe-tokens), and with --tokens a client without a
# valid token may only say hello, ping, help and quit. Every change and every refusal is logged
# with who it was. TLS: test-dpiped-tls.sh; memory bounds: test-dpiped-limits.sh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

SOCK=$RUNTIME_DIR/client.sock
codes() { sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p' <<<"$1" | tr '\n' ' '; }
dpiped_log() { cat "$LOG_DIR/dpiped.log"; }

dp_start_bus
dp_fake_connector tcp
dpiped-queue-fill "$STATE_DIR/queue" 50 feed
dp_dpiped --heartbeat-ms=2000
test -S "$SOCK" || dp_fail "no $SOCK"
dp_assert_eq "666" "$(stat -c %a "$SOCK")" "client.sock is open to everyone (mode)"

# --- client.sock: nobody reads and subscribes, but may not change anything -----------------------
dp_expect_exit 0 dp_nobody dpipe-client --connect="$SOCK" list
dp_assert_contains "$out" '{"op":"sources","sources":[]}' "nobody lists the sources"
out=$(dp_nobody timeout 20 python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$SOCK" 'send:subscribe earliest' recv:51) ||
        dp_fail "nobody could not subscribe over client.sock: $out"
dp_assert_eq 50 "$(grep -c '"op":"record"' <<<"$out")" "nobody receives every record over client.sock"
# The finding of issue 14: nobody added a source that reads a root-only file.
dp_expect_exit 77 dp_nobody dpipe-client --connect="$SOCK" add steal file address=/etc/shadow
dp_assert_contains "$err" "changing the pipeline needs root or membership in group dpipe" "nobody's add is denied"
out=$(dp_nobody python3 "$DPIPED_TESTS_DIR/dpiped-client.py" "$SOCK" 'send:{"op":"add_source","name":"x","type":"tcp","options":{"address":"127.0.0.1:9"},"id":7}' \
        'send:remove feed' 'send:pause feed' 'send:start feed' send:ping recv:5)
dp_assert_eq "denied denied denied denied " "$(codes "$out")" "every change is denied to nobody"
dp_assert_contains "$(sed -n 1p <<<"$out")" '"id":7' "the denied error echoes the id"
dp_assert_eq '{"op":"pong"}' "$(sed -n 5p <<<"$out")" "the connection lives on after denied"
dp_assert_eq 'a(ssso) 0' "$(dp_manager ListSources)" "nothing was added"
dp_retry 5 grep -q 'Refused add_source of source steal .* by uid 65534 (pid [0-9]*) over client.sock' "$LOG_DIR/dpiped.log" ||
        dp_fail "no audit line for nobody's refused add: $(grep Refused "$LOG_DIR/dpiped.log")"
# One notice per connection, the rest at debug: a client cannot flood the journal.
dp_assert_eq 1 "$(grep -c '^<5>Refused .* of source x ' "$LOG_DIR/dpiped.log")" "the first refusal at notice"
grep -q '^<7>Refused remove_source of source feed' "$LOG_DIR/dpiped.log" || dp_fail "later refusals at debug"

# --- client.sock: root changes the pipeline, and the audit line says who -------------------------
dp_expect_exit 0 dpipe-client --connect="$SOCK" add demo tcp address=127.0.0.1:9
dp_assert_eq '{"op":"ok"}' "$out" "root adds over client.sock"
dp_retry 5 grep -q '^<6>Source demo added (type tcp, address 127.0.0.1:9) by uid 0 (pid [0-9]*) over client.sock.$' \
        "$LOG_DIR/dpiped.log" || dp_fail "no audit line for root's add: $(grep 'Source demo' "$LOG_DIR/dpiped.log")"
dp_expect_exit 0 dpipe-client --connect="$SOCK" pause demo
grep -q '^<6>Source demo paused by uid 0 (pid [0-9]*) over client.sock.$' "$LOG_DIR/dpiped.log" || dp_fail "audit of pause"
# Over D-Bus too, with the sender.
dp_manager ResumeSource s demo >/dev/null
dp_retry 5 grep -q '^<6>Source demo resumed by uid 0 (pid [0-9]*.*) over D-Bus (:1\.[0-9]*).$' "$LOG_DIR/dpiped.log" ||
        dp_fail "audit of a D-Bus change: $(grep 'Source demo resumed' "$LOG_DIR/dpiped.log")"
# The D-Bus policy lets nobody not even call; that is the bus's own refusal (test-dpiped-bus.sh).

# --- TCP without --tokens: anyone on the port reads, nobody changes ---------------------------------
out=$(dp_client send:list 'send:add x tcp address=127.0.0.1:9' 'send:{"op":"remove_source","name":"demo"}' \
        'send:hello 0123456789abcdef' send:ping recv:5)
dp_assert_contains "$(sed -n 1p <<<"$out")" '"name":"demo"' "TCP reads without a token"
dp_assert_eq "denied denied denied " "$(codes "$out")" "TCP changes are denied without --tokens, and so is a token"
dp_assert_contains "$(sed -n 2p <<<"$out")" "needs an admin token, and this server has none (dpiped --tokens)" "why"
dp_assert_contains "$(sed -n 4p <<<"$out")" "this server accepts no tokens" "a token without --tokens"
dp_expect_exit 77 dpipe-client --connect="127.0.0.1:$DPIPED_PORT" remove demo
dp_assert_contains "$err" "changing the pipeline over TCP needs an admin token" "dpipe-client over TCP"
grep -q 'Refused add_source of source x .* by a client without a token from 127.0.0.1:[0-9]* over TCP' "$LOG_DIR/dpiped.log" ||
        dp_fail "audit of a refused TCP change"
dp_kill_daemon dpiped TERM

# --- the admin group: primary or supplementary, resolved at start ----------------------------------
if getent group users >/dev/null; then
        gid=$(getent group users | cut -d: -f3)
        dp_dpiped --admin-group=users
        DP_SETPRIV="--reuid=65534 --regid=65534 --groups=$gid" dp_expect_exit 0 dp_nobody dpipe-client --connect="$SOCK" add g1 tcp address=127.0.0.1:9
        DP_SETPRIV="--reuid=65534 --regid=$gid --clear-groups" dp_expect_exit 0 dp_nobody dpipe-client --connect="$SOCK" remove g1
        dp_expect_exit 77 dp_nobody dpipe-client --connect="$SOCK" add g2 tcp address=127.0.0.1:9
        dp_assert_contains "$err" "membership in group users" "the group named in the refusal"
        dp_kill_daemon dpiped TERM
else
        dp_log "no group 'users' here: admin group membership not tested"
fi
out=$(dpiped --admin-group=no-such-group-here --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" 2>&1) &&
        dp_fail "an unknown --admin-group was accepted"
dp_assert_contains "$out" 'Unknown group "no-such-group-here"' "unknown --admin-group"

# --- tokens files: refused at start with file:line, a warning when others may read it --------------
bad_tokens() { # WHAT LINE-TEXT EXPECTED
        printf '# comment\n\nops admin 0123456789abcdef0123456789\n%s\n' "$2" >"$TMP/bad.tokens"
        chmod 600 "$TMP/bad.tokens"
        local rc=0
        out=$(dpiped --tokens="$TMP/bad.tokens" --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" 2>&1) || rc=$?
        [ "$rc" != 0 ] || dp_fail "$1: dpiped started"
        dp_assert_contains "$out" "Invalid tokens file $TMP/bad.tokens:4: $3" "$1"
}
bad_tokens "unknown role" "viewer root fedcba9876543210fedcba" 'invalid role "root" of token viewer'
bad_tokens "short secret" "viewer read short" "the secret of token viewer has 5 characters"
bad_tokens "same name" "ops read fedcba9876543210fedcba" "token name ops is used twice"
bad_tokens "same secret" "viewer read 0123456789abcdef0123456789" "tokens ops and viewer have the same secret"
bad_tokens "two words" "viewer read" 'expected "NAME ROLE SECRET"'
bad_tokens "four words" "viewer read fedcba9876543210fedcba extra" 'expected "NAME ROLE SECRET", found more words'
out=$(dpiped --tokens="$TMP/none" --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" 2>&1) && dp_fail "a missing tokens file"
dp_assert_contains "$out" "$TMP/none: No such file or directory" "missing tokens file"

ADMIN=0123456789abcdef0123456789
READER=fedcba9876543210fedcba
printf '# name role secret\nops admin %s\nviewer read %s\n' "$ADMIN" "$READER" >"$TMP/tokens"
chmod 644 "$TMP/tokens"
dp_dpiped --tokens="$TMP/tokens"
grep -q "Tokens file $TMP/tokens is readable by other users" "$LOG_DIR/dpiped.log" || dp_fail "no warning for o+r"
grep -q "Loaded 2 tokens from $TMP/tokens" "$LOG_DIR/dpiped.log" || dp_fail "tokens not loaded"

# --- TCP with --tokens ------------------------------------------------------------------------------
# Without a token: hello, ping, pong, help, quit only.
out=$(dp_client send:hello send:ping send:pong send:help send:list send:status 'send:subscribe earliest' \
        'send:ack 1' 'send:add x tcp address=127.0.0.1:9' send:quit closed)
dp_assert_contains "$(sed -n 1p <<<"$out")" '{"op":"hello","version":1,' "hello without a token"
dp_assert_eq '{"op":"pong"}' "$(sed -n 2p <<<"$out")" "ping without a token"
dp_assert_contains "$(sed -n 3p <<<"$out")" '{"op":"help",' "help without a token"
dp_assert_eq "denied denied denied denied denied " "$(codes "$out")" "everything else needs a token"
dp_assert_contains "$(sed -n 4p <<<"$out")" 'send a valid token first' "why"
dp_assert_eq '{"op":"bye"}' "$(sed -n 9p <<<"$out")" "quit without a token"
! grep -q '"op":"record"' <<<"$out" || dp_fail "records without a token"
# A read token reads, and may not change.
out=$(dp_client "send:{\"op\":\"hello\",\"version\":1,\"token\":\"$READER\"}" send:list 'send:add x tcp address=127.0.0.1:9' recv:3)
dp_assert_contains "$(sed -n 1p <<<"$out")" '"role":"read"' "hello with a read token"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"op":"sources"' "a read token lists"
dp_assert_eq "denied " "$(codes "$out")" "a read token may not add"
dp_assert_contains "$(sed -n 3p <<<"$out")" "this token may only read" "why"
# An admin token changes; inline hello TOKEN too.
out=$(dp_client "send:hello $ADMIN" 'send:add t1 tcp address=127.0.0.1:9' 'send:remove t1' recv:3)
dp_assert_contains "$(sed -n 1p <<<"$out")" '"role":"admin"' "hello with an admin token"
dp_assert_eq '{"op":"ok"}{"op":"ok"}' "$(sed -n 2,3p <<<"$out" | tr -d '\n')" "an admin token adds and removes"
dp_retry 5 grep -q "^<6>Source t1 added (type tcp, address 127.0.0.1:9) by token ops from 127.0.0.1:[0-9]* over TCP.$" \
        "$LOG_DIR/dpiped.log" || dp_fail "audit of a token's change: $(grep 'Source t1' "$LOG_DIR/dpiped.log")"
# A wrong token: denied, and it takes away what an earlier token gave.
out=$(dp_client "send:hello $ADMIN" "send:hello ${ADMIN}x" 'send:add t2 tcp address=127.0.0.1:9' "send:hello ${ADMIN:0:10}" send:ping recv:5)
dp_assert_eq "denied denied denied " "$(codes "$out")" "wrong tokens"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"message":"invalid token"' "invalid token"
dp_assert_eq '{"op":"pong"}' "$(sed -n 5p <<<"$out")" "the connection lives on"
grep -q 'Refused hello (invalid token) by a client without a token from 127.0.0.1' "$LOG_DIR/dpiped.log" ||
        dp_fail "audit of a wrong token"
# dpipe-client: --token-file and $DPIPE_TOKEN.
echo "$ADMIN" >"$TMP/admin.token"
dp_expect_exit 0 dpipe-client --connect="127.0.0.1:$DPIPED_PORT" --token-file="$TMP/admin.token" add t3 tcp address=127.0.0.1:9
dp_expect_exit 0 env DPIPE_TOKEN="$READER" dpipe-client --connect="127.0.0.1:$DPIPED_PORT" list
dp_assert_contains "$out" '"name":"t3"' "a read token via \$DPIPE_TOKEN"
dp_expect_exit 77 env DPIPE_TOKEN="$READER" dpipe-client --connect="127.0.0.1:$DPIPED_PORT" remove t3
dp_assert_contains "$err" "this token may only read" "a read token's change"
dp_expect_exit 77 env DPIPE_TOKEN=wrong-wrong-wrong-wrong dpipe-client --connect="127.0.0.1:$DPIPED_PORT" --reconnect list
dp_assert_contains "$err" "refused our token: invalid token" "a wrong token ends dpipe-client, even with --reconnect"
dp_expect_exit 77 dpipe-client --connect="127.0.0.1:$DPIPED_PORT" list
dp_assert_contains "$err" "send a valid token first" "no token"
# client.sock is not affected by tokens: credentials decide there.
dp_expect_exit 0 dp_nobody dpipe-client --connect="$SOCK" list
dp_expect_exit 0 dpipe-client --connect="$SOCK" remove t3
dp_kill_daemon dpiped TERM

# --- the systemd credential dpipe-tokens, when --tokens is not given -------------------------------
mkdir -p "$TMP/credentials"
cp "$TMP/tokens" "$TMP/credentials/dpipe-tokens"
chmod 400 "$TMP/credentials/dpipe-tokens"
CREDENTIALS_DIRECTORY=$TMP/credentials dp_dpiped
grep -q "Loaded 2 tokens from $TMP/credentials/dpipe-tokens" "$LOG_DIR/dpiped.log" || dp_fail "credential not loaded"
! grep -q "readable by other users" "$LOG_DIR/dpiped.log" || dp_fail "a warning for a private file"
out=$(dp_client "send:hello $READER" send:list 'send:add y tcp address=127.0.0.1:9' recv:3)
dp_assert_eq "denied " "$(codes "$out")" "tokens from the credential"
