#!/bin/sh
# A real postcopyd on a private socket driven by postcopyctl: every
# subcommand, human and --json output (parsed with jq), exit codes.
. "$(dirname "$0")/lib.sh"
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
: >"$T/none.conf"

"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
start_daemon a -l debug

# version
ctl a --json version >"$T/v.json" || fail "version"
jq -e '.status.code == 0 and .protocol == 1 and (.version|length) > 0 and .max_migrations == 8' "$T/v.json" >/dev/null || fail "version json: $(cat "$T/v.json")"
ctl a version | grep -q "^postcopyd .*control protocol 1" || fail "version text"
ok version

# check-kernel: the probe's features, whatever this kernel has
set +e; ctl a --json check-kernel >"$T/k.json"; rc=$?; set -e
jq -e '.status.code == 0 and (.features|length) == 8 and (.release|length) > 0' "$T/k.json" >/dev/null || fail "check-kernel json: $(cat "$T/k.json")"
if jq -e .ok "$T/k.json" >/dev/null; then [ $rc = 0 ] || fail "check-kernel rc $rc with ok"; else [ $rc = 1 ] || fail "check-kernel rc $rc without ok"; fi
ok "check-kernel (rc $rc)"

# status on an empty daemon
ctl a --json status | jq -e '.status.code == 0 and (.migrations|length) == 0' >/dev/null || fail "empty status"
expect_rc 1 ctl a status nosuch
grep -q "NOT_FOUND" "$T/err" || fail "status nosuch: $(cat "$T/err")"
ok "status (empty, not found)"

# prepare: a destination listening on a port of its choosing
ctl a --json prepare m1 --listen 127.0.0.1:0 --tls-dir "$T/tls" >"$T/p.json" || fail "prepare: $(cat "$T/p.json")"
jq -e '.status.code == 0 and (.listen|test("^127\\.0\\.0\\.1:[0-9]+$"))' "$T/p.json" >/dev/null || fail "prepare json: $(cat "$T/p.json")"
port=$(jq -r .listen "$T/p.json" | cut -d: -f2)
[ "$port" -gt 0 ] || fail "prepare bound port 0"
expect_rc 1 ctl a prepare m1 --listen 127.0.0.1:0 --tls-dir "$T/tls"
grep -q ALREADY_EXISTS "$T/err" || fail "second prepare m1: $(cat "$T/err")"
expect_rc 1 ctl a prepare 'bad id!' --tls-dir "$T/tls"
grep -q INVALID_ARGUMENT "$T/err" || fail "bad id: $(cat "$T/err")"
ok "prepare (port $port, duplicate, bad id)"

ctl a --json status m1 >"$T/s.json"
jq -e '.migrations[0] | .id == "m1" and .role == "destination" and .state == "waiting" and (.lat_hist|length) == 32' "$T/s.json" >/dev/null || fail "status m1: $(cat "$T/s.json")"
ctl a status m1 | grep -q "^state: *waiting" || fail "status m1 text"
ctl a status | grep -q "^m1 .*destination *waiting" || fail "status table"
ctl a --json status --libvirt >"$T/l.json"
jq -e '.id == "m1" and .operation == 4 and .job_type == 2 and has("memory_total") and has("memory_postcopy_requests")' "$T/l.json" >/dev/null || fail "status --libvirt --json: $(cat "$T/l.json")"
ctl a status --libvirt | grep -q "^Operation: *Incoming migration" || fail "status --libvirt text"
ok "status (json, table, detail, --libvirt)"

# set-bandwidth applies to sources only: the engine says so
expect_rc 1 ctl a set-bandwidth m1 100M
expect_rc 2 ctl a set-bandwidth m1 lots
expect_rc 1 ctl a set-bandwidth nosuch 1G
grep -q NOT_FOUND "$T/err" || fail "set-bandwidth nosuch: $(cat "$T/err")"
ok "set-bandwidth (destination refused, bad size, not found)"

# migrate to a port nobody listens on: accepted, then it fails on its own
ctl a --json migrate s1 127.0.0.1:1 --tls-dir "$T/tls" --bandwidth 64M | jq -e '.status.code == 0' >/dev/null || fail "migrate"
ctl a --json status s1 | jq -e '.migrations[0] | .role == "source" and .bandwidth_bps == 67108864' >/dev/null || fail "migrate status"
ctl a set-bandwidth s1 1G >/dev/null || fail "set-bandwidth s1"
ctl a --json status s1 | jq -e '.migrations[0].bandwidth_bps == 1073741824' >/dev/null || fail "bandwidth not changed"
expect_rc 2 ctl a migrate s2
ok "migrate (accepted, bandwidth changed live, usage)"

# watch: a stream that ends when the migration ends (cancel it meanwhile)
ctl a --json watch m1 --interval 50 >"$T/w.json" 2>&1 &
wpid=$!
sleep 0.3
ctl a --json cancel m1 >"$T/c.json" || fail "cancel: $(cat "$T/c.json")"
jq -e '.status.code == 0 and .state == "cancelled"' "$T/c.json" >/dev/null || fail "cancel json: $(cat "$T/c.json")"
set +e; wait $wpid; wrc=$?; set -e
[ $wrc = 1 ] || fail "watch of a cancelled migration exited $wrc"
n=$(wc -l <"$T/w.json")
[ "$n" -ge 3 ] || fail "watch produced $n events: $(cat "$T/w.json")"
tail -1 "$T/w.json" | jq -e '.final == true and .info.state == "cancelled"' >/dev/null || fail "last watch event: $(tail -1 "$T/w.json")"
head -1 "$T/w.json" | jq -e '.final == false and .info.state == "waiting"' >/dev/null || fail "first watch event"
expect_rc 1 ctl a watch nosuch
expect_rc 1 ctl a cancel nosuch
ok "watch ($n events) + cancel"

# usage errors and help
expect_rc 2 ctl a
expect_rc 2 ctl a frobnicate
expect_rc 2 ctl a status --bandwidth 1
for c in prepare migrate status cancel watch set-bandwidth version check-kernel; do
	"$POSTCOPYCTL" $c --help | grep -q "^usage: postcopyctl .*$c" || fail "$c --help"
done
"$POSTCOPYCTL" --help | grep -q "Exit status" || fail "--help"
expect_rc 3 "$POSTCOPYCTL" -s "$T/nothing.sock" version
ok "usage, --help, connection failure (3)"

# every call was logged with the caller's uid and pid
grep -q "call 1 Version from uid $(id -u) pid [0-9]" "$T/a.log" || fail "SO_PEERCRED not logged"
perm=$(stat -c %a "$T/a.sock")
[ "$perm" = 660 ] || fail "control socket mode $perm"
kill -0 "$PID_a" || fail "daemon died"
ok "peer credentials logged, socket mode 0660"

# The socket's directory is created when absent; a second daemon on the
# same path is refused; a stale socket left by a killed daemon is replaced.
"$POSTCOPYD" -c "$T/none.conf" -s "$T/rundir/b.sock" -V "$T/b.vmm" >"$T/b.log" 2>&1 &
bpid=$!
PIDS="$PIDS $bpid"
for _ in $(seq 100); do "$POSTCOPYCTL" -s "$T/rundir/b.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
"$POSTCOPYCTL" -s "$T/rundir/b.sock" version >/dev/null || fail "daemon in a new directory"
set +e; "$POSTCOPYD" -c "$T/none.conf" -s "$T/rundir/b.sock" -V "$T/b2.vmm" >"$T/b2.log" 2>&1; rc=$?; set -e
[ $rc != 0 ] && grep -q "another daemon is listening there" "$T/b2.log" || fail "second daemon on the same socket: rc $rc $(cat "$T/b2.log")"
"$POSTCOPYCTL" -s "$T/rundir/b.sock" version >/dev/null || fail "first daemon lost its socket"
kill -9 $bpid; wait $bpid 2>/dev/null || true
[ -S "$T/rundir/b.sock" ] || fail "no stale socket to test with"
"$POSTCOPYD" -c "$T/none.conf" -s "$T/rundir/b.sock" -V "$T/b3.vmm" >"$T/b3.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do "$POSTCOPYCTL" -s "$T/rundir/b.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
"$POSTCOPYCTL" -s "$T/rundir/b.sock" version >/dev/null || fail "stale socket not replaced"
ok "socket directory created, second daemon refused, stale socket replaced"

# The VMM socket is made by the same code: a second daemon given the VMM
# socket of a live one (but its own control socket) is refused with a clear
# error and leaves that socket alone; once the first is killed, its stale
# VMM socket is replaced.
"$POSTCOPYD" -c "$T/none.conf" -s "$T/v1.sock" -V "$T/shared.vmm" >"$T/v1.log" 2>&1 &
v1pid=$!
PIDS="$PIDS $v1pid"
for _ in $(seq 100); do "$POSTCOPYCTL" -s "$T/v1.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
[ -S "$T/shared.vmm" ] || fail "first daemon made no VMM socket"
ino=$(stat -c %i "$T/shared.vmm")
set +e; "$POSTCOPYD" -c "$T/none.conf" -s "$T/v2.sock" -V "$T/shared.vmm" >"$T/v2.log" 2>&1; rc=$?; set -e
[ $rc != 0 ] && grep -q "VMM socket: $T/shared.vmm: another daemon is listening there" "$T/v2.log" ||
	fail "second daemon on the same VMM socket: rc $rc $(cat "$T/v2.log")"
[ ! -e "$T/v2.sock" ] || fail "refused daemon left its control socket"
kill -0 $v1pid || fail "first daemon died"
[ "$(stat -c %i "$T/shared.vmm")" = "$ino" ] || fail "first daemon's VMM socket was replaced"
"$POSTCOPYCTL" -s "$T/v1.sock" version >/dev/null || fail "first daemon stopped answering"
kill -9 $v1pid; wait $v1pid 2>/dev/null || true
"$POSTCOPYD" -c "$T/none.conf" -s "$T/v3.sock" -V "$T/shared.vmm" >"$T/v3.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do "$POSTCOPYCTL" -s "$T/v3.sock" version >/dev/null 2>&1 && break; sleep 0.05; done
"$POSTCOPYCTL" -s "$T/v3.sock" version >/dev/null || fail "stale VMM socket not replaced: $(cat "$T/v3.log")"
ok "VMM socket: second daemon refused while the first lives, stale socket replaced"
