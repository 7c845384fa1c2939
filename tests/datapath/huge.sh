#!/bin/bash
# huge.sh - huge-page guests (hugetlbfs memfds) against real postcopyd
# processes. Run under tests/lib/hugepages.sh, which reserves the pages.
#
#   huge.sh BUILD_DIR refused
#
# refused: the daemon's data path moves base pages only, so a 2 MiB guest
#   (postcopy-guest --hugepages 2M, source and destination) is refused at
#   attach with a message saying so, never migrated wrongly; the daemons
#   serve on.
set -euo pipefail

B=$(readlink -f "$1"); shift
MODE=$1; shift
. "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
harness_init huge

# expect_refused ROLE SOCKET: a 2 MiB guest of that role is refused.
expect_refused() {
	local role=$1 sock=$2 rc=0
	"$GUEST" --role "$role" --id h1 -S "$sock" -s 64M --hugepages 2M -q \
	    --timeout 30 > /dev/null 2> "$T/h1.$role.log" || rc=$?
	[ $rc -eq 77 ] && skip "postcopy-guest: $(tail -n 1 "$T/h1.$role.log")"
	[ $rc -eq 2 ] || fail "$role guest on 2 MiB pages exited $rc, want 2 (refused)"
	grep -q "cannot migrate 2 MiB huge-page guests" "$T/h1.$role.log" ||
		fail "$role guest: no clear refusal: $(tail -n 1 "$T/h1.$role.log")"
	echo "$role: $(tail -n 1 "$T/h1.$role.log")"
}

case "$MODE" in
refused)
	start_daemon dst
	start_daemon src
	prepare dst h1 > /dev/null
	expect_refused dest "$T/dst.vmm"
	ctl src migrate h1 "$(field dst h1 listen)" --tls-dir "$T/certs" > /dev/null ||
		fail "migrate h1 was refused"
	expect_refused source "$T/src.vmm"
	[ "$(field dst h1 vmm_attached)" != true ] || fail "dst: a VMM is attached"
	[ "$(field src h1 vmm_attached)" != true ] || fail "src: a VMM is attached"
	ctl dst cancel h1 > /dev/null
	ctl src cancel h1 > /dev/null
	for n in dst src; do
		kill -0 "$(eval echo "\$PID_$n")" || fail "postcopyd $n died"
	done
	echo "OK: 2 MiB guests refused by both daemons, which serve on"
	;;
*)
	echo "huge.sh: unknown mode $MODE" >&2
	exit 2
	;;
esac
