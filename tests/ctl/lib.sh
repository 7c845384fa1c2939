# lib.sh - shared by the control-plane tests: private daemons on private
# sockets in a temporary directory, cleaned up on exit.
# Needs: POSTCOPYD, POSTCOPYCTL (absolute paths, from ctest).
set -eu

T=$(mktemp -d /tmp/pcd-ctl.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	if [ "${KEEP:-}" = "" ]; then rm -rf "$T"; else echo "kept $T"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; for f in "$T"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -30 "$f"; }; done >&2; exit 1; }
ok() { echo "ok: $*"; }

# start_daemon NAME [postcopyd args...]: control socket $T/NAME.sock
start_daemon() {
	name=$1; shift
	conf="$T/$name.conf"
	[ -f "$conf" ] || { conf="$T/none.conf"; [ -f "$conf" ] || : >"$conf"; }
	"$POSTCOPYD" -c "$conf" -s "$T/$name.sock" -V "$T/$name.vmm" \
	    "$@" >"$T/$name.log" 2>&1 &
	pid=$!
	PIDS="$PIDS $pid"
	eval "PID_$name=$pid"
	for _ in $(seq 100); do
		[ -S "$T/$name.sock" ] && "$POSTCOPYCTL" -s "$T/$name.sock" version >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null || fail "daemon $name exited at start"
		sleep 0.05
	done
	fail "daemon $name did not answer on $T/$name.sock"
}

ctl() { name=$1; shift; "$POSTCOPYCTL" -s "$T/$name.sock" "$@"; }

# expect_rc RC cmd...: runs cmd and checks its exit code
expect_rc() {
	want=$1; shift
	set +e; "$@" >"$T/out" 2>"$T/err"; got=$?; set -e
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, expected $want"; }
}

# log_port NAME WHAT: the port a daemon logged for "metrics: serving" or
# "control: listening on ... port N".
log_port() {
	for _ in $(seq 100); do
		case $2 in
		metrics) p=$(sed -n 's|.*metrics: serving http://.*:\([0-9]*\)/metrics.*|\1|p' "$T/$1.log" | tail -1) ;;
		tcp) p=$(sed -n 's|.*control: listening on .* port \([0-9]*\) (TCP.*|\1|p' "$T/$1.log" | tail -1) ;;
		esac
		[ -n "$p" ] && [ "$p" != 0 ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	fail "no $2 port in $T/$1.log"
}
