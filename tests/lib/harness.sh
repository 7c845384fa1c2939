# harness.sh - shared by the integration test scripts that run real
# postcopyd processes on loopback with mutual TLS (certificates made at test
# time), real postcopy-guest VMMs, driven with postcopyctl. Sourced, not run.
#
# The caller sets B (the build directory), then calls
#   harness_init NAME [EXTRA_BINARY...]
# which skips (exit 77) when something the test needs is missing, makes the
# work dir $T with certificates in $T/certs, and removes it on exit (unless
# KEEP is set). Processes started in the background go into PIDS and are
# killed on exit.

PCD=$B/daemon/postcopyd
CTL=$B/client/postcopyctl
GUEST=$B/client/postcopy-guest
GENCERTS=$B/client/postcopy-gencerts

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; dump_logs; exit 1; }
note() { echo "== $*"; }

harness_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}

dump_logs() {
	for f in "$T"/*.log; do
		[ -f "$f" ] || continue
		echo "---- $(basename "$f") (last 30 lines)" >&2
		tail -n 30 "$f" >&2
	done
}

harness_init() {
	local name=$1; shift
	for x in "$PCD" "$CTL" "$GUEST" "$GENCERTS" "$@"; do
		[ -x "$x" ] || skip "$x is not built"
	done
	command -v jq >/dev/null || skip "jq is not installed"
	[ -e /dev/userfaultfd ] || [ "$(id -u)" = 0 ] ||
	    [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ] ||
		skip "userfaultfd is not available to this user"
	T=$(mktemp -d "/tmp/pcd-$name.XXXXXX")
	PIDS=()
	DAEMONS=()
	trap harness_cleanup EXIT
	"$GENCERTS" "$T/certs" >/dev/null
}

# start_daemon NAME: postcopyd with private sockets in $T, in the
# background; its config is $DAEMON_CONF (may be empty), its log $T/NAME.log
# (appended to, so a restarted daemon keeps the first one's lines).
start_daemon() {
	local n=$1
	DAEMONS+=("$n")
	printf "%s\n" "${DAEMON_CONF:-}" > "$T/$n.conf"
	"$PCD" -c "$T/$n.conf" -s "$T/$n.ctl" -V "$T/$n.vmm" -l "${DAEMON_LOG_LEVEL:-info}" \
	    >> "$T/$n.log" 2>&1 &
	PIDS+=($!)
	eval "PID_$n=$!"
	for _ in $(seq 200); do
		[ -S "$T/$n.ctl" ] && [ -S "$T/$n.vmm" ] && return 0
		kill -0 "${PIDS[-1]}" 2>/dev/null || fail "postcopyd $n exited at start"
		sleep 0.05
	done
	fail "postcopyd $n did not create its sockets"
}

ctl() { local n=$1; shift; "$CTL" -s "$T/$n.ctl" "$@"; }
status_json() { ctl "$1" -j status "$2"; }
# field NAME ID KEY: one field of a migration's status.
field() {
	status_json "$1" "$2" | jq -r "(.migrations[0] // .) | .$3 // empty"
}

# prepare NAME ID: prepares an incoming migration; prints the bound address.
prepare() {
	local out addr
	out=$(ctl "$1" prepare "$2" --listen 127.0.0.1:0 --tls-dir "$T/certs") ||
		fail "prepare $2: $out"
	addr=$(field "$1" "$2" listen)
	[ -n "$addr" ] || fail "prepare $2: no bound address in status"
	echo "$addr"
}

# wait_state NAME ID STATE... : until the migration reaches one of them
# (two minutes at most).
wait_state() {
	local n=$1 id=$2; shift 2
	local s="" want
	for _ in $(seq 1200); do
		s=$(field "$n" "$id" state)
		for want in "$@"; do [ "$s" = "$want" ] && return 0; done
		sleep 0.1
	done
	fail "migration $id on $n: state '$s', wanted $*"
}

# wait_pair PID1 VAR1 PID2 VAR2: waits for two background processes (the
# two guests of a migration), storing each exit status in its variable. A
# process that fails or skips (not 0; 77 is the skip) ends the wait at
# once: the other one is killed, so a guest that died (or cannot run here)
# at start does not leave the test waiting out its partner's timeout.
wait_pair() {
	local -A var=([$1]=$2 [$3]=$4)
	local left=("$1" "$3") done_pid rc p
	while [ ${#left[@]} -gt 0 ]; do
		rc=0 done_pid=""
		wait -n -p done_pid "${left[@]}" || rc=$?
		if [ -z "$done_pid" ]; then	# not our children (127): no status
			for p in "${left[@]}"; do printf -v "${var[$p]}" %d "$rc"; done
			return 0
		fi
		printf -v "${var[$done_pid]}" %d "$rc"
		left=($(for p in "${left[@]}"; do [ "$p" = "$done_pid" ] || echo "$p"; done))
		if [ $rc -ne 0 ]; then
			for p in "${left[@]}"; do
				kill "$p" 2>/dev/null || true
				rc=0; wait "$p" || rc=$?
				printf -v "${var[$p]}" %d "$rc"
			done
			return 0
		fi
	done
}

# guests_ok ID DRC DLOG SRC SLOG: both guests exited 0, or the test fails
# naming each one's status and last lines (the one that failed first is the
# one not killed by wait_pair, status 143).
guests_ok() {
	[ "$2" -eq 0 ] && [ "$4" -eq 0 ] && return 0
	fail "$1: destination guest exited $2 ($(tail -n 3 "$3" | tr '\n' ' ')), source guest exited $4 ($(tail -n 3 "$5" | tr '\n' ' '))"
}

# stop_daemons: SIGTERM to every daemon started, a clean exit (status 0),
# and no sanitizer report (ASan, LSan, TSan, UBSan) in its log.
stop_daemons() {
	local n p rc
	for n in "${DAEMONS[@]}"; do
		p=$(eval echo "\$PID_$n")
		kill -TERM "$p" 2>/dev/null || fail "postcopyd $n died during the test"
		rc=0
		wait "$p" || rc=$?
		[ $rc -eq 0 ] || fail "postcopyd $n exited with status $rc on SIGTERM"
		! grep -E "WARNING: ThreadSanitizer|ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" "$T/$n.log" ||
			fail "postcopyd $n: sanitizer report in its log"
	done
}
