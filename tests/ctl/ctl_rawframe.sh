#!/bin/sh
# Malformed frames, oversize lengths, junk and floods on the raw control
# socket of a real daemon (ctl_rawframe.c); the daemon keeps serving.
. "$(dirname "$0")/lib.sh"
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
printf 'max_connections = 6\n' >"$T/none.conf"
start_daemon a
ctl a prepare w1 --listen 127.0.0.1:0 --tls-dir "$T/tls" >/dev/null || fail "prepare"
"$RAWFRAME" "$T/a.sock" w1 6 || fail "ctl_rawframe"
kill -0 "$PID_a" || fail "daemon died"
ctl a --json status w1 | jq -e '.migrations[0].state == "waiting"' >/dev/null || fail "status after the flood"
grep -q "over the limit" "$T/a.log" || fail "oversize frame not logged"
ok "daemon alive and serving"

# Out of file descriptors: the daemon backs off accepting instead of
# spinning, and serves again once descriptors are free.
printf 'max_connections = 200\n' >"$T/lowfd.conf"
(ulimit -n 40; exec "$POSTCOPYD" -c "$T/lowfd.conf" -s "$T/lowfd.sock" -V "$T/lowfd.vmm" >"$T/lowfd.log" 2>&1) &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -S "$T/lowfd.sock" ] && break; sleep 0.05; done
"$RAWFRAME" --emfile "$T/lowfd.sock" 60 || fail "EMFILE"
grep -q "accept: .*pausing for 1 s" "$T/lowfd.log" || fail "no EMFILE back-off logged"
ok "EMFILE back-off"
