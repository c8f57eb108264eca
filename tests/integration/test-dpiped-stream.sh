#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# dpiped streaming the queue to clients (dpiped(8), CLIENT PROTOCOL): records with dense offsets and the
# exact stored data, subscribe from earliest/latest/N with a sources filter, records pushed as
# they are written, the ack window, and named durable subscriptions across reconnects and
# restarts of dpiped.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/dpiped-lib.sh"

dp_start_bus
dp_dpiped --heartbeat-ms=400 --client-timeout-ms=30000

# Records: dense offsets, the exact stored data, the source name, in order.
dpiped-queue-fill "$STATE_DIR/queue" 5 demo
dpiped-queue-fill "$STATE_DIR/queue" 3 other.src-2
out=$(dp_client send:'subscribe earliest' recv:1 recv-records:8)
dp_assert_eq '{"op":"ok","offset":0}' "$(sed -n 1p <<<"$out")" "subscribe reply"
for i in 0 1 2 3 4; do
        line=$(sed -n "$((i + 2))p" <<<"$out")
        dp_assert_contains "$line" "{\"op\":\"record\",\"offset\":$i,\"source\":\"demo\",\"ts_us\":" "record $i"
        dp_assert_contains "$line" ",\"data\":{\"i\":$((i + 1)),\"pad\":\"\"}}" "data of record $i"
done
dp_assert_contains "$(sed -n 7p <<<"$out")" '"offset":5,"source":"other.src-2","ts_us":' "another source"
python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin]' <<<"$out" || dp_fail "a line is not JSON"

# From an offset, latest, a filter; records that arrive later are pushed.
out=$(dp_client send:'subscribe 6' recv:1 recv-records:2)
dp_assert_contains "$(sed -n 2p <<<"$out")" '"offset":6,' "subscribe N"
out=$(dp_client 'send:{"op":"subscribe","from":"earliest","sources":["demo"]}' recv:1 recv-records:5 \
        'send:{"op":"subscribe","from":"latest","id":9}' recv:1)
dp_assert_eq '{"op":"ok","offset":8,"id":9}' "$(tail -n1 <<<"$out")" "subscribe latest"
! grep -q 'other.src-2' <<<"$out" || dp_fail "the sources filter let another source through"
out=$(dp_client 'send:subscribe latest' recv:1 "exec:dpiped-queue-fill '$STATE_DIR/queue' 2 demo" recv-records:2)
dp_assert_contains "$(sed -n 2p <<<"$out")" '"offset":8,"source":"demo"' "a new record is pushed"
dp_assert_contains "$(sed -n 3p <<<"$out")" '"offset":9,"source":"demo"' "and the next"

# The window: never more than W records past the last ack.
dpiped-queue-fill "$STATE_DIR/queue" 20 demo
out=$(dp_client 'send:subscribe earliest window=4' recv:1 recv-records:4 sleep:1 'send:status' recv-until:'"op":"status"')
dp_assert_eq 0 "$(grep -c '"offset":4,' <<<"$out")" "a fifth record before an ack"
dp_assert_contains "$(tail -n1 <<<"$out")" '"subscription":{"next_offset":4,"window":4,"in_flight":4}' "status shows the window"
out=$(dp_client 'send:subscribe earliest window=4' recv:1 recv-records:4 'send:ack 1' recv-records:2 sleep:1 send:status recv-until:'"op":"status"')
dp_assert_contains "$(sed -n 6p <<<"$out")" '"offset":4,' "ack 1 lets record 4 through"
dp_assert_contains "$(sed -n 7p <<<"$out")" '"offset":5,' "and record 5"
dp_assert_contains "$(tail -n1 <<<"$out")" '"in_flight":4' "window full again"

# Named durable subscriptions: resume after the last ack, across reconnects and restarts.
out=$(dp_client 'send:{"op":"subscribe","name":"analytics","from":"committed","window":3}' recv:1 recv-records:3 ack-all sleep:1.5)
dp_assert_eq '{"op":"ok","offset":0}' "$(sed -n 1p <<<"$out")" "committed without a stored offset starts at the beginning"
dp_assert_eq 3 "$(cat "$STATE_DIR/subscriptions/analytics.offset")" "stored offset"
out=$(dp_client 'send:subscribe committed name=analytics window=2' recv:1 recv-records:2 'send:ack 3' 'send:quit' closed)
dp_assert_eq '{"op":"ok","offset":3}' "$(sed -n 1p <<<"$out")" "resumes after the last ack"
dp_assert_contains "$(sed -n 2p <<<"$out")" '"offset":3,' "first record after resuming"
dp_assert_eq '{"op":"bye"}' "$(grep -v '"op":"ping"' <<<"$out" | tail -n2 | head -n1)" "quit"
dp_assert_eq CLOSED "$(tail -n1 <<<"$out")" "closed after quit"
dp_kill_daemon dpiped TERM
dp_dpiped --heartbeat-ms=400
out=$(dp_client 'send:{"op":"subscribe","name":"analytics","from":"committed"}' recv:1)
dp_assert_eq '{"op":"ok","offset":4}' "$out" "resumes after a restart of dpiped"
# ... and after a crash: acks are stored within a second.
out=$(dp_client 'send:{"op":"subscribe","name":"analytics","from":"committed","window":2}' recv:1 recv-records:2 ack-all sleep:1.5)
dp_kill_daemon dpiped KILL
dp_dpiped --heartbeat-ms=400
out=$(dp_client 'send:{"op":"subscribe","name":"analytics"}' recv:1)
dp_assert_eq '{"op":"ok","offset":6}' "$out" "resumes after SIGKILL of dpiped"


# After retention removed the oldest segment, "earliest" says where the queue really starts.
dpiped-queue-fill "$STATE_DIR/queue" 5000 demo 1000
first_seg=$(ls "$STATE_DIR"/queue/*.seg | head -n1)
[ "$(ls "$STATE_DIR"/queue/*.seg | wc -l)" -ge 2 ] || dp_fail "expected two segments"
rm -f "$first_seg" "${first_seg%.seg}.idx"
first=$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager QueueFirstOffset | cut -d' ' -f2)
[ "$first" -gt 0 ] || dp_fail "QueueFirstOffset did not move"
out=$(dp_client 'send:subscribe earliest window=1' recv:1 recv-records:1)
dp_assert_eq "{\"op\":\"ok\",\"offset\":$first}" "$(sed -n 1p <<<"$out")" "earliest after retention"
dp_assert_contains "$(sed -n 2p <<<"$out")" "\"offset\":$first," "first record after retention"

# A record that fails its checksum, the last one written: the client waits (the damaged bytes could
# hold more than one record), and once the next record is written it gets data_lost for exactly the
# damaged one, then the new record, on the same connection.
dpiped-queue-fill "$STATE_DIR/queue" 1 demo 200
next=$(busctl --system get-property org.dpipe.Pipeline1 /org/dpipe/Pipeline1 org.dpipe.Pipeline1.Manager QueueNextOffset | cut -d' ' -f2)
seg=$(ls "$STATE_DIR"/queue/*.seg | tail -n1)
python3 - "$seg" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-50] ^= 0xFF  # inside the payload of the last record
open(p, "wb").write(b)
PY
out=$(dp_client "send:subscribe $((next - 1))" recv:1 "exec:dpiped-queue-fill '$STATE_DIR/queue' 1 demo" recv:2 send:ping recv-until:pong)
dp_assert_eq "{\"op\":\"error\",\"code\":\"data_lost\",\"first\":$((next - 1)),\"last\":$((next - 1)),\"message\":\"records $((next - 1))..$((next - 1)) are damaged in the queue and cannot be read\"}" \
        "$(sed -n 2p <<<"$out")" "a corrupt record"
dp_assert_contains "$(sed -n 3p <<<"$out")" "\"offset\":$next," "the record after it"
dp_assert_eq '{"op":"pong"}' "$(tail -n1 <<<"$out")" "the connection stays up"
dp_assert_eq '{"op":"pong"}' "$(dp_client send:ping recv:1)" "dpiped lives on"
