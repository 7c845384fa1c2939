#!/bin/sh
# Control connections cannot lock out the control plane (issue 13 items 9
# and 13): peers that never start TLS or Unix clients that never send a
# call are closed at their deadline; the Unix socket and the TCP listener
# have separate budgets; a client over budget gets a RESOURCE_EXHAUSTED
# error that postcopyctl prints (exit 1, not "connection lost"); a bare
# length of 0 is refused at once.
. "$(dirname "$0")/lib.sh"
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
cat >"$T/a.conf" <<EOC
control_tcp_listen = 127.0.0.1:0
control_tls_dir = $T/tls
tls_dir = $T/tls
max_connections = 8
max_tcp_connections = 4
control_handshake_timeout = 2
control_idle_timeout = 3
EOC
start_daemon a
tcp=$(log_port a tcp)

# 4 TCP peers that never start TLS fill the TCP budget: a real TCP
# client is told so after TLS (RESOURCE_EXHAUSTED, exit 1).
"$RAWFRAME" --hold "tcp:127.0.0.1:$tcp" 4 6 >"$T/hold4.out" 2>&1 &
holder=$!
sleep 0.5
expect_rc 1 "$POSTCOPYCTL" --connect "127.0.0.1:$tcp" --tls-dir "$T/tls" version
grep -q "RESOURCE_EXHAUSTED: .*max_tcp_connections" "$T/err" ||
	fail "TCP client over budget: $(cat "$T/err")"
wait "$holder" || fail "silent TCP peers not closed at the deadline: $(cat "$T/hold4.out")"

# 20 of them: the Unix socket still serves (its own budget), and they are
# closed at the handshake deadline (2 s).
"$RAWFRAME" --hold "tcp:127.0.0.1:$tcp" 20 6 >"$T/holdtcp.out" 2>&1 &
holder=$!
sleep 0.5
ctl a version >/dev/null || fail "20 silent TCP peers lock out the Unix socket"
wait "$holder" || fail "silent TCP peers not closed at the deadline: $(cat "$T/holdtcp.out")"
cat "$T/holdtcp.out"
grep -q "no TLS handshake within 2 s" "$T/a.log" || fail "handshake deadline not logged"
[ "$(grep -c "refusing more" "$T/a.log")" -le 2 ] || fail "every refusal logged"
"$POSTCOPYCTL" --connect "127.0.0.1:$tcp" --tls-dir "$T/tls" version >/dev/null ||
	fail "TCP listener does not serve after the deadline"
ok "silent TCP peers: separate budget, refused with RESOURCE_EXHAUSTED, closed at the handshake deadline"

# 12 idle Unix clients (8 + the 4 kept for root and our own user): the
# 13th is refused with RESOURCE_EXHAUSTED, which postcopyctl prints; all
# are closed at the idle deadline (3 s), then the socket serves again.
"$RAWFRAME" --hold "unix:$T/a.sock" 12 8 >"$T/holdunix.out" 2>&1 &
holder=$!
sleep 0.5
expect_rc 1 ctl a version
grep -q "RESOURCE_EXHAUSTED: 12 control connections are open" "$T/err" ||
	fail "Unix client over budget: $(cat "$T/err")"
expect_rc 1 ctl a watch nosuch
grep -q "RESOURCE_EXHAUSTED" "$T/err" || fail "watch over budget: $(cat "$T/err")"
wait "$holder" || fail "idle Unix clients not closed at the deadline: $(cat "$T/holdunix.out")"
cat "$T/holdunix.out"
ctl a version >/dev/null || fail "Unix socket does not serve after the idle deadline"
ok "idle Unix clients: refusal printed, closed at the idle deadline"

# A Watch is not idle: it outlives the idle deadline.
ctl a prepare w1 --listen 127.0.0.1:0 >/dev/null || fail "prepare w1"
ctl a watch w1 --interval 60000 >"$T/watch.out" 2>&1 &
watcher=$!
sleep 4.5
kill -0 "$watcher" || fail "a Watch was closed as idle: $(cat "$T/watch.out")"
kill "$watcher"; wait "$watcher" 2>/dev/null || true
ok "an open Watch is not idle"

"$RAWFRAME" --zero-len "$T/a.sock" || fail "bare length of 0"
kill -0 "$PID_a" || fail "daemon died"
ok "control plane cannot be locked out"
