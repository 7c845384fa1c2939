#!/usr/bin/env bash
# bench-realtime.sh BENCH - demand_realtime (postcopyd.conf): with it, the
# three threads a demand fault crosses (pcd-dst-fault, pcd-dst-urgent,
# pcd-src-urgent) run SCHED_FIFO and no other thread does (the bulk senders
# the source's urgent thread starts step back to normal); without it, none
# does. Without the right to (no CAP_SYS_NICE, RLIMIT_RTPRIO 0) the daemon
# says so once and migrates at normal priority. Every page verified in each.
set -euo pipefail
bench=$1
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"

# run NAME [WRAPPER...] -- BENCH ARGS: one 64 MiB MINOR migration, kept.
run() {
	local name=$1 rc=0
	shift
	"$@" --size 64M --mode minor --json --keep >"$tmp/$name.json" \
	    2>"$tmp/$name.err" || rc=$?
	if [ "$rc" -ne 0 ] && grep -Eq 'kernel lacks|cannot open a userfaultfd' "$tmp/$name.err"; then
		echo "SKIP: this kernel cannot do userfaultfd MINOR faults on shmem"; exit 77
	fi
	[ "$rc" -eq 0 ] || { cat "$tmp/$name.err" >&2; echo "FAIL: $name: postcopy-bench exited $rc"; exit 1; }
	jq -e '.ok == true and all(.runs[]; .pages.verified == .pages.total and
	    .pages.mismatched == 0)' "$tmp/$name.json" >/dev/null ||
		{ echo "FAIL: $name: pages not all verified"; exit 1; }
	# The work dir, for the daemons' logs.
	sed -n 's/^postcopy-bench: work dir kept: //p' "$tmp/$name.err" >"$tmp/$name.dir"
}
cleanup() {
	for d in "$tmp"/*.dir; do
		[ -f "$d" ] && [ -s "$d" ] && rm -rf "$(cat "$d")"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

rt() { jq -c "[.runs[0].cpu_s.realtime.source, .runs[0].cpu_s.realtime.destination | sort]" "$tmp/$1.json"; }

run default "$bench"
jq -e '.demand_realtime == false' "$tmp/default.json" >/dev/null ||
	{ echo "FAIL: the JSON does not say demand_realtime false by default"; exit 1; }
[ "$(rt default)" = '[[],[]]' ] || { echo "FAIL: real-time threads by default: $(rt default)"; exit 1; }
echo "ok: default: no real-time thread, every page verified"

run on "$bench" --demand-realtime yes
jq -e '.demand_realtime == true' "$tmp/on.json" >/dev/null ||
	{ echo "FAIL: the JSON does not say demand_realtime true"; exit 1; }
want='[["pcd-src-urgent"],["pcd-dst-fault","pcd-dst-urgent"]]'
[ "$(rt on)" = "$want" ] || { echo "FAIL: real-time threads: $(rt on), want $want"; exit 1; }
echo "ok: demand_realtime = yes: exactly $want real-time, every page verified"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! command -v prlimit >/dev/null; then
	echo "SKIP (part): the refusal needs root, setpriv and prlimit to take the right away"
	exit 0
fi
run refused setpriv --inh-caps=-sys_nice --bounding-set=-sys_nice \
    prlimit --rtprio=0 -- "$bench" --demand-realtime yes
[ "$(rt refused)" = '[[],[]]' ] || { echo "FAIL: real-time threads without the right: $(rt refused)"; exit 1; }
dir=$(cat "$tmp/refused.dir")
n=$(cat "$dir"/run0-minor/*/postcopyd.log 2>/dev/null | grep -c 'stays at normal priority: SCHED_FIFO refused: Operation not permitted' || true)
[ "$n" -eq 2 ] || { ls -la "$dir" >&2; echo "FAIL: want the refusal said once by each daemon, saw it $n times"; exit 1; }
echo "ok: without CAP_SYS_NICE and RLIMIT_RTPRIO: each daemon says so once, every page verified"
echo "PASS: demand_realtime"
