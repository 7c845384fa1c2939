#!/usr/bin/env bash
# bench-precopy.sh BENCH - the issue's precopy bench, small: a 64 MiB guest
# writing 2000 pages/s, precopy --auto in both modes (COPY: the destination
# stages precopied pages and places them with UFFDIO_COPY). Each run must
# report its rounds, downtime and faults, converge (0 remote faults), and
# verify every page.
set -euo pipefail
bench=$1
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"

rc=0; "$bench" --size 64M --precopy --auto --dirty-rate 2000 --mode both \
    --repeat 1 --json >"$tmp/out.json" 2>"$tmp/err" || rc=$?
cat "$tmp/err" >&2
if [ "$rc" -ne 0 ] && grep -Eq 'kernel lacks|cannot open a userfaultfd' "$tmp/err"; then
	echo "SKIP: this kernel cannot do userfaultfd MINOR faults on shmem"; exit 77
fi
[ "$rc" -eq 0 ] || { echo "FAIL: postcopy-bench exited $rc"; exit 1; }
jq -c '.runs[] | {mode, downtime_ms, precopy, faults: {remote: .faults.remote, local: .faults.local, local_p50_us: .faults.local_p50_us}}' "$tmp/out.json"

jq -e '
	def num: type == "number";
	(.max_downtime_ms == 10) and (.runs | length == 2) and
	([.runs[].mode] | sort == ["copy", "minor"]) and
	all(.runs[];
	    (.downtime_ms | num and . > 0) and
	    (.precopy | (.rounds >= 1) and (.pages_sent >= 16384) and
	        (.pages_redirtied | num) and (.final_dirty | num)) and
	    (.faults.remote == 0) and (.faults.local | num) and
	    (.pages | (.verified == .total) and (.mismatched == 0)))
' "$tmp/out.json" >/dev/null || { echo "FAIL: precopy bench JSON: $(cat "$tmp/out.json")"; exit 1; }
echo "OK: precopy --auto converged in both modes, every page verified"
