#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped's client protocol (dpiped(8), CLIENT PROTOCOL) over real TCP and client.sock: every op in JSON and
# inline form, every error code, ids echoed, heartbeat pings, the idle timeout and the line limit.
# Changes are made as root over client.sock (on TCP they need a token: test-dpiped-access.sh).
# Streaming is in test-dpiped-stream.sh.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

dp_start_bus
dp_fake_connector tcp
dp_dpiped --heartbeat-ms=400 --client-timeout-ms=30000

# hello, ping, help, status, ids echoed; CR and NUL bytes are ignored.
out=$(dp_client send:hello 'send:{"op":"hello","version":1,"id":"a"}' send:ping 'send:{"op":"ping","id":42}' \
        'raw:70690000006e670d0a' send:help recv:6)
exp_version=$(dpiped --version | cut -d' ' -f2)
dp_assert_eq "{\"op\":\"hello\",\"version\":1,\"server\":\"dpiped $exp_version\",\"heartbeat_ms\":400}" "$(sed -n 1p <<<"$out")" "inline hello"
dp_assert_eq "{\"op\":\"hello\",\"version\":1,\"server\":\"dpiped $exp_version\",\"heartbeat_ms\":400,\"id\":\"a\"}" "$(sed -n 2p <<<"$out")" "JSON hello with id"
dp_assert_eq '{"op":"pong"}' "$(sed -n 3p <<<"$out")" "inline ping"
dp_assert_eq '{"op":"pong","id":42}' "$(sed -n 4p <<<"$out")" "JSON ping with id"
dp_assert_eq '{"op":"pong"}' "$(sed -n 5p <<<"$out")" "ping with NUL bytes and CRLF"
dp_assert_contains "$(sed -n 6p <<<"$out")" '{"op":"help","commands":["hello [TOKEN]",' "help"

# Sources: add (inline with quotes, JSON), list, pause/start, remove; the D-Bus side sees them.
out=$(dp_sock_client 'send:add demo tcp "address=127.0.0.1:9" format=jsonl interval_ms=250' \
        'send:{"op":"add_source","id":1,"name":"j","type":"tcp","options":{"address":"[::1]:9","csv_header":"a,b c"}}' \
        send:list recv:3)
dp_assert_eq '{"op":"ok"}' "$(sed -n 1p <<<"$out")" "inline add"
dp_assert_eq '{"op":"ok","id":1}' "$(sed -n 2p <<<"$out")" "JSON add"
dp_assert_contains "$(sed -n 3p <<<"$out")" '{"op":"sources","sources":[{"name":"demo","type":"tcp","state":' "list"
dp_assert_contains "$(sed -n 3p <<<"$out")" '"address":"127.0.0.1:9","records":' "list shows the address"
# Stored as the connector gave them back from its check (this fake one gives nothing back: as sent).
dp_assert_contains "$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1/source/demo org.dpipe.Pipeline1.Source Options)" '"interval_ms" s "250"' \
        "inline options stored"
dp_assert_contains "$(dp_manager ListSources)" '"j" "tcp"' "a source added by a client is on the bus"

out=$(dp_sock_client send:'pause demo' send:list send:'start demo' 'send:{"op":"pause_source","name":"j","id":2}' \
        'send:{"op":"resume_source","name":"j","id":3}' 'send:remove j' recv:6)
dp_assert_eq '{"op":"ok"}' "$(sed -n 1p <<<"$out")" "pause"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"name":"demo","type":"tcp","state":"paused"' "paused in list"
dp_assert_eq '{"op":"ok"}' "$(sed -n 3p <<<"$out")" "start"
dp_assert_eq '{"op":"ok","id":2}' "$(sed -n 4p <<<"$out")" "pause_source"
dp_assert_eq '{"op":"ok","id":3}' "$(sed -n 5p <<<"$out")" "resume_source"
dp_assert_eq '{"op":"ok"}' "$(sed -n 6p <<<"$out")" "remove"
dp_assert_eq org.dpipe.Pipeline1.Error.NoSuchSource "$(dp_bus_error dp_manager GetSource s j)" "removed by a client"

# Every error code; the connection lives on after each.
out=$(dp_sock_client 'send:{"op":"add_source","name":"demo","type":"tcp","options":{"address":"1.2.3.4:5"},"id":"e1"}' \
        'send:remove nope' 'send:add x smoke-signal address=a' 'send:add bad/name tcp address=1.2.3.4:5' \
        'send:add x tcp address=refuse-check:1' 'send:{"op":"subscribe","window":0}' 'send:{"op":"subscribe","from":"yesterday"}' \
        'send:{"op":"subscribe","from":"committed"}' 'send:{not json' 'send:[1,2]' 'send:{"id":5}' 'send:{"op":"fly","id":6}' \
        'send:fly away' 'send:add "unterminated' 'send:ack' 'send:ack 3' 'send:{"op":"add_source","name":1}' \
        'send:{"op":"hello","version":"x"}' 'send:add x' 'send:list extra' 'send:ping' recv:21)
codes=$(sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p' <<<"$out" | tr '\n' ' ')
dp_assert_eq "source_exists no_such_source unknown_type invalid_argument invalid_argument invalid_argument invalid_argument invalid_argument bad_request unknown_op bad_request unknown_op unknown_op bad_request bad_request bad_request bad_request bad_request bad_request bad_request " \
        "$codes" "error codes"
dp_assert_contains "$(sed -n 1p <<<"$out")" '"id":"e1"' "errors echo the id"
dp_assert_contains "$(sed -n 5p <<<"$out")" "refused by the fake connector's check" "the connector's message"
dp_assert_eq '{"op":"error","code":"unknown_op","message":"unknown op, try \"help\"","id":6}' "$(sed -n 12p <<<"$out")" "unknown op with id"
dp_assert_eq '{"op":"pong"}' "$(sed -n 21p <<<"$out")" "the connection lives on"

# Not UTF-8: refused, the connection lives on; and no reply ever echoes such bytes.
out=$(dp_client raw:6164642078c0af2074637020610a send:ping recv:2)
dp_assert_eq '{"op":"error","code":"bad_request","message":"not UTF-8 text"}' "$(sed -n 1p <<<"$out")" "not UTF-8"
dp_assert_eq '{"op":"pong"}' "$(sed -n 2p <<<"$out")" "alive after a line that is not UTF-8"

# Random lines never close the connection nor hurt dpiped (run it under ASan to see); every
# reply is UTF-8 JSON (the client decodes strictly).
out=$(dp_client garbage:1 garbage:2 send:'ping' recv-until:'"op":"pong"')
dp_assert_contains "$out" '{"op":"pong"}' "alive after random lines"
! grep -q '"code":"internal"' <<<"$out" || dp_fail "random lines gave internal errors"
dp_assert_eq '{"op":"pong"}' "$(dp_client send:ping recv:1)" "dpiped alive after random lines"

# Heartbeat pings, and the idle timeout closes a silent client with "timeout".
dp_kill_daemon dpiped TERM
dp_dpiped --heartbeat-ms=500 --client-timeout-ms=2000
out=$(dp_client 'send:hello' recv:1 'closed:15')
dp_assert_contains "$out" '{"op":"ping"}' "heartbeat ping"
dp_assert_contains "$out" '{"op":"error","code":"timeout","message":"no message from the client within the timeout, closing"}' "timeout"
dp_assert_eq CLOSED "$(tail -n1 <<<"$out")" "closed after timeout"
# A client that answers pings stays: 4 s of pongs every 0.5 s, twice the timeout.
out=$(dp_client send:hello recv:1 $(for i in $(seq 8); do echo sleep:0.5 send:pong; done) send:ping recv-until:pong)
! grep -q timeout <<<"$out" || dp_fail "a live client timed out"

# A line over 1 MiB: too_long, then closed.
out=$(dp_client long:1100000 closed)
dp_assert_contains "$out" '{"op":"error","code":"too_long",' "too_long"
dp_assert_eq CLOSED "$(tail -n1 <<<"$out")" "closed after too_long"

# A server that does not let clients change the pipeline: denied, to root on client.sock too.
dp_kill_daemon dpiped TERM
dp_dpiped --read-only-clients
out=$(dp_sock_client 'send:add z tcp address=1.2.3.4:5' 'send:remove demo' send:list recv:3)
dp_assert_eq "denied denied " "$(sed -n 's/.*"code":"\([a-z_]*\)".*/\1/p' <<<"$out" | tr '\n' ' ')" "denied"
dp_assert_contains "$(sed -n 1p <<<"$out")" 'this server does not let clients change the pipeline' "read-only message"
dp_assert_contains "$(sed -n 3p <<<"$out")" '"name":"demo"' "reading is still allowed"
