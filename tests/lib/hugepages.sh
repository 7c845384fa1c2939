#!/bin/sh
# hugepages.sh SIZE COUNT CMD [ARGS...] - run CMD with COUNT free huge pages
# of SIZE (2M or 1G) in the host's pool, reserving them for the run.
#
# The pool is grown through /sys/kernel/mm/hugepages/hugepages-<N>kB/
# nr_hugepages only by what is missing, and put back to its old size when
# CMD ends (also on failure or a signal). Runs are serialised on a lock
# file (other tests, other checkouts on this host) so that two runs never
# restore each other's sizes. Exits 77 (skipped), saying why, when the
# host has no huge pages of that size or they cannot be reserved; else
# CMD's exit status.
set -u

size=${1:?usage: hugepages.sh 2M|1G COUNT CMD [ARGS...]}
count=${2:?usage: hugepages.sh 2M|1G COUNT CMD [ARGS...]}
shift 2
case $size in
2M) kb=2048 ;;
1G) kb=1048576 ;;
*) echo "hugepages.sh: size must be 2M or 1G, not $size" >&2; exit 2 ;;
esac
dir=/sys/kernel/mm/hugepages/hugepages-${kb}kB
lock=${PCD_HUGEPAGES_LOCK:-/tmp/postcopyd-hugepages.lock}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

if [ ! -d "$dir" ]; then
	extra=
	[ "$size" = 1G ] && ! grep -qw pdpe1gb /proc/cpuinfo 2>/dev/null &&
	    extra=" (the CPU lacks pdpe1gb)"
	skip "this host offers no $size huge pages: no $dir$extra"
fi

exec 9>>"$lock" || skip "cannot open the lock file $lock"
flock 9 || skip "cannot lock $lock"

# Free pages not promised to a mapping already (reserved ones count as
# free in the kernel's figures).
avail() {
	echo $(($(cat "$dir/free_hugepages") - $(cat "$dir/resv_hugepages")))
}

old=$(cat "$dir/nr_hugepages")
free=$(avail)
changed=0
restore() {
	if [ "$changed" = 1 ]; then
		echo "$old" > "$dir/nr_hugepages" 2>/dev/null ||
		    echo "hugepages.sh: could not restore $dir/nr_hugepages" \
		    "to $old" >&2
		changed=0
	fi
}
trap 'restore' EXIT
trap 'restore; exit 143' TERM
trap 'restore; exit 130' INT

if [ "$free" -lt "$count" ]; then
	want=$((old + count - free))
	[ -w "$dir/nr_hugepages" ] ||
	    skip "need $count free $size huge pages, $free are free, and" \
	    "$dir/nr_hugepages is not writable (run as root)"
	changed=1
	echo "$want" > "$dir/nr_hugepages" 2>/dev/null ||
	    skip "cannot grow the $size huge page pool to $want pages"
	free=$(avail)
	[ "$free" -ge "$count" ] ||
	    skip "asked the kernel for $want $size huge pages, it gave" \
	    "$(cat "$dir/nr_hugepages") ($free free, $count needed:" \
	    "memory is too fragmented or too small)"
	echo "hugepages.sh: $size huge page pool $old -> $want" \
	    "($count reserved for the run)" >&2
fi

"$@"
rc=$?
restore
exit $rc
