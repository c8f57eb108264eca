#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# TLS on dpiped's TCP listeners (dpiped(8), ACCESS and LIMITS), with certificates made here by
# openssl: `openssl s_client` and `dpipe-client --tls` talk to it, the server certificate is
# verified against the CA and the name, a wrong CA gives a clear error, records stream through it
# in order, --tls-client-ca requires a client certificate (whose CN shows in the audit line), a
# client that never finishes its handshake is closed; and a plain-text listener on an address that
# is not loopback is refused unless --allow-plaintext, also when systemd passes the socket.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

command -v openssl >/dev/null || { dp_log "SKIP: openssl not installed"; rm -rf "$TMP"; trap - EXIT; exit 77; }

# --- certificates -------------------------------------------------------------------------------
PKI=$TMP/pki
mkdir -p "$PKI"
mkcert() { # NAME CN ISSUER SAN|-  (ISSUER "-" makes a self-signed CA)
        local name=$1 cn=$2 issuer=$3 san=$4
        if [ "$issuer" = - ]; then
                openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$cn" \
                        -keyout "$PKI/$name.key" -out "$PKI/$name.pem" 2>"$PKI/$name.log" || dp_fail "openssl: $(cat "$PKI/$name.log")"
                return
        fi
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
                -keyout "$PKI/$name.key" -out "$PKI/$name.csr" 2>"$PKI/$name.log" || dp_fail "openssl: $(cat "$PKI/$name.log")"
        if [ "$san" != - ]; then
                echo "subjectAltName=$san" >"$PKI/$name.ext"
        else
                : >"$PKI/$name.ext"
        fi
        openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$issuer.pem" -CAkey "$PKI/$issuer.key" -CAcreateserial \
                -days 2 -extfile "$PKI/$name.ext" -out "$PKI/$name.pem" 2>"$PKI/$name.log" || dp_fail "openssl: $(cat "$PKI/$name.log")"
}
mkcert ca "dpipe test CA" - -
mkcert server localhost ca "DNS:localhost,IP:127.0.0.1"
mkcert elsewhere elsewhere.example ca "DNS:elsewhere.example"
mkcert clientca "dpipe client CA" - -
mkcert client backup-job clientca -
mkcert otherca "some other CA" - -
chmod 600 "$PKI"/*.key

ADMIN=0123456789abcdef0123456789
READER=fedcba9876543210fedcba
printf 'ops admin %s\nviewer read %s\n' "$ADMIN" "$READER" >"$TMP/tokens"
chmod 600 "$TMP/tokens"
echo "$ADMIN" >"$TMP/admin.token"
echo "$READER" >"$TMP/reader.token"
RECORDS=20000

dp_start_bus
dp_fake_connector tcp
# ~500 bytes per record: 10 MB through TLS, many times the socket buffers (partial writes).
dpiped-queue-fill "$STATE_DIR/queue" "$RECORDS" feed 450
TLS=(--tls-cert="$PKI/server.pem" --tls-key="$PKI/server.key")
dp_dpiped "${TLS[@]}" --tokens="$TMP/tokens" --client-timeout-ms=1500 --heartbeat-ms=500
ADDR=127.0.0.1:$DPIPED_PORT
grep -q "Serving clients on $ADDR with TLS" "$LOG_DIR/dpiped.log" || dp_fail "not serving TLS"

# --- openssl s_client -------------------------------------------------------------------------
out=$(printf 'hello\nping\nhello %s\nlist\nquit\n' "$READER" |
      timeout 20 openssl s_client -quiet -verify_return_error -CAfile "$PKI/ca.pem" -connect "$ADDR" 2>"$TMP/s_client.err" |
      grep -v '"op":"ping"') || dp_fail "openssl s_client failed: $(cat "$TMP/s_client.err")"
dp_assert_contains "$(sed -n 1p <<<"$out")" '{"op":"hello","version":1,"server":"dpiped ' "hello over TLS (s_client)"
dp_assert_eq '{"op":"pong"}' "$(sed -n 2p <<<"$out")" "ping over TLS"
dp_assert_contains "$(sed -n 3p <<<"$out")" '"role":"read"' "a token over TLS"
dp_assert_contains "$(sed -n 4p <<<"$out")" '{"op":"sources","sources":[' "list over TLS"
dp_assert_eq '{"op":"bye"}' "$(sed -n 5p <<<"$out")" "quit over TLS"
# The server's certificate does not verify against another CA.
printf 'ping\n' | timeout 20 openssl s_client -quiet -verify_return_error -CAfile "$PKI/otherca.pem" -connect "$ADDR" \
        >/dev/null 2>"$TMP/s_client.err" && dp_fail "s_client accepted a certificate of another CA"
grep -q "unable to get local issuer certificate" "$TMP/s_client.err" || dp_fail "s_client: $(cat "$TMP/s_client.err")"
# Not below TLS 1.2 (the server refuses 1.1 whatever the client's own policy).
printf 'ping\n' | timeout 20 openssl s_client -quiet -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' -connect "$ADDR" \
        >/dev/null 2>&1 && dp_fail "TLS 1.1 was accepted"

# --- dpipe-client --tls -----------------------------------------------------------------------
dp_expect_exit 0 dpipe-client --connect="$ADDR" --tls --tls-ca="$PKI/ca.pem" --token-file="$TMP/admin.token" \
        add tls1 tcp address=127.0.0.1:9
dp_assert_eq '{"op":"ok"}' "$out" "add over TLS with an admin token"
dp_retry 5 grep -q "^<6>Source tls1 added (type tcp, address 127.0.0.1:9) by token ops from 127.0.0.1:[0-9]* over TLS.$" \
        "$LOG_DIR/dpiped.log" || dp_fail "audit line of a change over TLS"
dp_expect_exit 0 dpipe-client --connect="localhost:$DPIPED_PORT" --tls --tls-ca="$PKI/ca.pem" --token-file="$TMP/reader.token" status
dp_assert_contains "$out" '"op":"status"' "the name localhost verifies too"
dp_expect_exit 1 dpipe-client --connect="$ADDR" --tls --tls-ca="$PKI/otherca.pem" --token-file="$TMP/reader.token" status
dp_assert_eq "dpipe-client: TLS with $ADDR failed: TLS handshake failed: certificate verify failed (unable to get local issuer certificate)" \
        "$err" "a wrong CA: one clear line"
dp_expect_exit 1 dpipe-client --connect="$ADDR" --token-file="$TMP/reader.token" status
dp_assert_contains "$err" "(if the server speaks TLS, add --tls)" "plain text to a TLS port"
dp_expect_exit 1 dpipe-client --connect="$RUNTIME_DIR/client.sock" --tls status
dp_assert_contains "$err" "--tls needs --connect=HOST:PORT" "TLS on client.sock"
dp_expect_exit 1 dpipe-client --connect="$ADDR" --tls --tls-ca="$TMP/none.pem" status
dp_assert_contains "$err" "cannot open CA file $TMP/none.pem: No such file or directory" "a missing CA file"

# Every record, in order, through TLS (the stream batches: many records per TLS write).
# --foreground: the kill below reaches dpipe-client once (see test-cli-conventions.sh: a second
# SIGTERM during LeakSanitizer's exit check deadlocks an ASan build).
timeout --foreground -k 10 60 dpipe-client --connect="$ADDR" --tls --tls-ca="$PKI/ca.pem" --token-file="$TMP/reader.token" \
        subscribe earliest >"$TMP/stream.jsonl" 2>"$TMP/stream.err" &
SUB=$!
dp_retry 30 bash -c '[ "$(wc -l <"$1")" -ge "$2" ]' _ "$TMP/stream.jsonl" "$RECORDS" ||
        dp_fail "only $(wc -l <"$TMP/stream.jsonl") of $RECORDS records over TLS: $(cat "$TMP/stream.err")"
kill "$SUB"; wait "$SUB" 2>/dev/null || true
python3 - "$TMP/stream.jsonl" "$RECORDS" <<'PY' || dp_fail "the TLS stream is not every record once in order"
import json, sys
offs = [json.loads(l)["offset"] for l in open(sys.argv[1])]
assert offs == list(range(int(sys.argv[2]))), offs[:10]
PY
# dpipectl tail does the same.
dp_expect_exit 0 timeout 60 dpipectl tail --connect="$ADDR" --tls --tls-ca="$PKI/ca.pem" --token-file="$TMP/reader.token" \
        --from=earliest --no-follow --json
dp_assert_eq "$RECORDS" "$(grep -c '"op":"record"' <<<"$out")" "dpipectl tail --tls"
dp_expect_exit 1 timeout 60 dpipectl tail --connect="$ADDR" --tls --tls-ca="$PKI/otherca.pem" --token-file="$TMP/reader.token"
dp_assert_contains "$err" "certificate verify failed" "dpipectl tail with a wrong CA"

# A TCP client that never starts its handshake is closed (here after the 1.5 s client timeout).
out=$(dp_client closed:20)
dp_assert_eq CLOSED "$out" "a silent client before the handshake"
dp_retry 5 grep -q "did not finish its TLS handshake within 1500 ms" "$LOG_DIR/dpiped.log" || dp_fail "handshake timeout"
dp_kill_daemon dpiped TERM

# --- the certificate's name ---------------------------------------------------------------------
dp_dpiped --tls-cert="$PKI/elsewhere.pem" --tls-key="$PKI/elsewhere.key"
dp_expect_exit 1 dpipe-client --connect="127.0.0.1:$DPIPED_PORT" --tls --tls-ca="$PKI/ca.pem" status
dp_assert_contains "$err" "certificate verify failed (IP address mismatch)" "a certificate for another name"
dp_kill_daemon dpiped TERM

# --- client certificates ------------------------------------------------------------------------
dp_dpiped "${TLS[@]}" --tls-client-ca="$PKI/clientca.pem" --tokens="$TMP/tokens"
ADDR=127.0.0.1:$DPIPED_PORT
printf 'ping\n' | timeout 20 openssl s_client -quiet -CAfile "$PKI/ca.pem" -connect "$ADDR" >"$TMP/nocert.out" 2>&1 || true
! grep -q pong "$TMP/nocert.out" || dp_fail "a client without a certificate was served"
dp_expect_exit 1 dpipe-client --connect="$ADDR" --tls --tls-ca="$PKI/ca.pem" --token-file="$TMP/reader.token" status
dp_assert_contains "$err" "certificate required" "dpipe-client without a client certificate"
out=$(printf 'ping\nquit\n' | timeout 20 openssl s_client -quiet -CAfile "$PKI/ca.pem" -cert "$PKI/client.pem" \
        -key "$PKI/client.key" -connect "$ADDR" 2>/dev/null)
dp_assert_contains "$out" '{"op":"pong"}' "s_client with a client certificate"
dp_expect_exit 0 dpipe-client --connect="$ADDR" --tls --tls-ca="$PKI/ca.pem" --tls-cert="$PKI/client.pem" \
        --tls-key="$PKI/client.key" --token-file="$TMP/admin.token" remove tls1
dp_retry 5 grep -q '^<6>Source tls1 removed by token ops (certificate CN backup-job) from 127.0.0.1:[0-9]* over TLS.$' \
        "$LOG_DIR/dpiped.log" || dp_fail "the certificate's CN in the audit line: $(grep 'tls1 removed' "$LOG_DIR/dpiped.log")"
# A certificate of another CA is refused.
mkcert stranger stranger otherca -
printf 'ping\n' | timeout 20 openssl s_client -quiet -CAfile "$PKI/ca.pem" -cert "$PKI/stranger.pem" \
        -key "$PKI/stranger.key" -connect "$ADDR" >"$TMP/stranger.out" 2>&1 || true
! grep -q pong "$TMP/stranger.out" || dp_fail "a client certificate of another CA was accepted"
dp_kill_daemon dpiped TERM

# --- start-up errors ----------------------------------------------------------------------------
start_fails() { # WHAT EXPECTED-TEXT DPIPED-OPTIONS...
        local what=$1 text=$2 rc=0
        shift 2
        out=$(dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" "$@" 2>&1) || rc=$?
        [ "$rc" != 0 ] || dp_fail "$what: dpiped exited 0"
        dp_assert_contains "$out" "$text" "$what"
}
start_fails "a key of another certificate" "does not belong to certificate" --tls-cert="$PKI/server.pem" --tls-key="$PKI/client.key"
start_fails "no key" "--tls-cert= and --tls-key= go together" --tls-cert="$PKI/server.pem"
start_fails "a missing certificate" "cannot open certificate $TMP/none.pem: No such file or directory" \
        --tls-cert="$TMP/none.pem" --tls-key="$PKI/server.key"
start_fails "not a certificate" "cannot load certificate $TMP/tokens" --tls-cert="$TMP/tokens" --tls-key="$PKI/server.key"

# --- plain text only on loopback ------------------------------------------------------------------
port=$(dp_free_port)
start_fails "plain text on 0.0.0.0" \
        "Refusing to serve clients in plain text on 0.0.0.0:$port, which is not a loopback address: give --tls-cert= and --tls-key=, or --allow-plaintext." \
        --listen="0.0.0.0:$port"
start_fails "plain text on [::]" "Refusing to serve clients in plain text on [::]:$port" --listen="[::]:$port"
# Accepted with TLS, or with --allow-plaintext.
DPIPED_PORT=$port
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="0.0.0.0:$port" --allow-plaintext
dp_wait_bus_name org.dpipe.Pipeline1
dp_assert_eq '{"op":"pong"}' "$(dp_client send:ping recv:1)" "--allow-plaintext on 0.0.0.0"
dp_kill_daemon dpiped TERM
dp_daemon dpiped dpiped --runtime-dir="$RUNTIME_DIR" --state-dir="$STATE_DIR" --listen="0.0.0.0:$port" "${TLS[@]}"
dp_wait_bus_name org.dpipe.Pipeline1
out=$(printf 'ping\nquit\n' | timeout 20 openssl s_client -quiet -CAfile "$PKI/ca.pem" -connect "127.0.0.1:$port" 2>/dev/null)
dp_assert_contains "$out" '{"op":"pong"}' "TLS on 0.0.0.0"
dp_kill_daemon dpiped TERM
# A socket that systemd passes is checked the same way (getsockname).
port=$(dp_free_port)
dp_bg activated bash -c 'systemd-socket-activate -l "0.0.0.0:$1" -E DBUS_SYSTEM_BUS_ADDRESS -E DPIPE_LOG_LEVEL \
        "$(command -v dpiped)" --runtime-dir="$2" --state-dir="$3"; echo "exit $?"' _ "$port" "$RUNTIME_DIR" "$STATE_DIR"
dp_retry 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" || true # the first connection starts dpiped
dp_retry 10 grep -q '^exit ' "$LOG_DIR/activated.log" || dp_fail "dpiped did not stop on a passed 0.0.0.0 socket"
grep -q "Refusing to serve clients in plain text on 0.0.0.0:$port" "$LOG_DIR/activated.log" ||
        dp_fail "no refusal for a passed socket: $(cat "$LOG_DIR/activated.log")"
grep -q '^exit 1$' "$LOG_DIR/activated.log" || dp_fail "exit code: $(grep '^exit' "$LOG_DIR/activated.log")"
