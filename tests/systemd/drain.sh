#!/bin/bash
# drain.sh BUILD_DIR - SIGTERM during postcopy: the destination daemon takes
# no new work but lets the migration its guest depends on finish, then
# exits 0; the guest verifies every page. Real daemons on loopback TLS, real
# postcopy-guest VMMs, postcopyctl; the bulk stream is slowed down
# (--bandwidth) so the postcopy phase lasts seconds.
set -euo pipefail

B=$(readlink -f "$1")
PCD=$B/daemon/postcopyd
CTL=$B/client/postcopyctl
GUEST=$B/client/postcopy-guest
GENCERTS=$B/client/postcopy-gencerts
SIZE=16M
BW=2M		# bytes/s on the bulk channel: ~8 s for 16M

skip() { echo "SKIP: $*"; exit 77; }
for x in "$PCD" "$CTL" "$GUEST" "$GENCERTS"; do
	[ -x "$x" ] || skip "$x is not built"
done
command -v jq >/dev/null || skip "jq is not installed"
[ "$(id -u)" = 0 ] || [ -r /dev/userfaultfd ] || skip "no userfaultfd for this user"

T=$(mktemp -d /tmp/pcd-drain.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	for f in "$T"/*.log; do echo "---- $f" >&2; tail -n 20 "$f" >&2; done
	exit 1
}

"$GENCERTS" "$T/certs" >/dev/null
start_daemon() {
	: >"$T/$1.conf"
	"$PCD" -c "$T/$1.conf" -s "$T/$1.ctl" -V "$T/$1.vmm" >"$T/$1.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$1=$!"
	for _ in $(seq 100); do
		[ -S "$T/$1.ctl" ] && [ -S "$T/$1.vmm" ] && return 0
		sleep 0.05
	done
	fail "postcopyd $1 did not create its sockets"
}
ctl() { local n=$1; shift; "$CTL" -s "$T/$n.ctl" "$@"; }
state() { ctl "$1" -j status m | jq -r '(.migrations[0] // .) | .state // empty'; }

start_daemon dst
start_daemon src
ctl dst prepare m --listen 127.0.0.1:0 --tls-dir "$T/certs" >/dev/null || fail "prepare"
addr=$(ctl dst -j status m | jq -r '(.migrations[0] // .) | .listen')
# A guest that runs no workload: every page arrives on the slow bulk
# channel, so the migration stays in postcopy for a while.
"$GUEST" --role dest --id m -S "$T/dst.vmm" -s $SIZE -w none \
    -t 2 -j -q --timeout 120 >"$T/dguest.json" 2>"$T/dguest.log" &
gpid=$!; PIDS+=($gpid)
ctl src migrate m "$addr" --tls-dir "$T/certs" --bandwidth $BW >/dev/null || fail "migrate"
"$GUEST" --role source --id m -S "$T/src.vmm" -s $SIZE -j -q --timeout 120 \
    >"$T/sguest.json" 2>"$T/sguest.log" &
spid=$!; PIDS+=($spid)

s=""
for _ in $(seq 300); do
	s=$(state dst)
	[ "$s" = postcopy ] && break
	[ "$s" = completed ] || [ "$s" = failed ] && fail "migration reached $s before the test could stop the daemon in postcopy"
	sleep 0.05
done
[ "$s" = postcopy ] || fail "destination never reached postcopy (state '$s')"
echo "ok: destination in postcopy; SIGTERM to its daemon"

t0=$(date +%s%N)
kill -TERM "$PID_dst"
sleep 1
kill -0 "$PID_dst" 2>/dev/null || fail "the daemon exited during postcopy instead of waiting"
ctl dst prepare other --listen 127.0.0.1:0 --tls-dir "$T/certs" >"$T/refused.out" 2>&1 &&
	fail "a stopping daemon accepted a new migration"
echo "ok: still serving its postcopy migration 1 s after SIGTERM; new work refused: $(head -n1 "$T/refused.out")"

rc=0
wait "$PID_dst" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc = 0 ] || fail "daemon exit code $rc after SIGTERM"
grep -q "no migration running: exiting" "$T/dst.log" || fail "the daemon did not wait for the migration"
grc=0; wait "$gpid" || grc=$?
[ $grc = 0 ] || fail "destination guest exited $grc: $(tail -n 3 "$T/dguest.log")"
total=$(jq -r .pages_total "$T/dguest.json"); verified=$(jq -r .pages_verified "$T/dguest.json")
[ "$total" -gt 0 ] && [ "$total" = "$verified" ] || fail "guest verified $verified of $total pages"
echo "ok: daemon exited 0 ${ms} ms after SIGTERM, once the migration completed; guest verified $verified/$total pages"
