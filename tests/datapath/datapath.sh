#!/bin/bash
# datapath.sh - data-path integration tests: two real postcopyd processes
# (source and destination) on loopback, mutual TLS 1.3 with certificates
# made here, real postcopy-guest VMMs, driven with postcopyctl.
#
#   datapath.sh BUILD_DIR migrate SIZE WORKLOAD [postcopy-guest dest args]
#   datapath.sh BUILD_DIR badpeer
#   datapath.sh BUILD_DIR bandwidth
#   datapath.sh BUILD_DIR cancel
#   datapath.sh BUILD_DIR dirty
#   datapath.sh BUILD_DIR truncate|dtruncate  (a VMM cutting its memfd)
#   datapath.sh BUILD_DIR hugezero [SIZE [dest args]]   (2 MiB huge pages
#                                       reserved)
#   datapath.sh BUILD_DIR precopy-converge|precopy-switch [--copy]
#   datapath.sh BUILD_DIR precopy-oldkernel
#   datapath.sh BUILD_DIR bulkch N SIZE [postcopy-guest dest args]
#
# migrate: one migration; passes when the destination guest verified every
#   page (its JSON summary) AND both daemons report COMPLETED with every
#   page verified against the source's digests and none mismatched.
# bulkch: one migration over N parallel bulk channels (--bulk-channels N):
#   every page verified as in migrate, each of the N channels accepted by
#   the destination and each carried page bytes (the source's log).
# badpeer: one destination daemon, hostile peers (pcd-wirepeer): plaintext,
#   a certificate from another CA, no certificate, a wrong protocol version,
#   a wrong guest size, a page index beyond the guest, a frame length that
#   does not match its header, an unknown frame type, digests that do not
#   match the pages (verification must catch it). Each is refused with a
#   message naming the problem, no byte reaches guest memory, and the same
#   daemon then completes a good migration.
# dirty: the source guest keeps writing pages (--dirty-rate) until the
#   pause; the destination verifies every page against what the source had
#   at the pause. The source VMM sends its dirty-tracking descriptors (the
#   daemon says it can track); one that does not (--no-track-dirty) is
#   attached postcopy-only, and the daemon's log says so.
set -euo pipefail

B=$(readlink -f "$1"); shift
MODE=$1; shift
PEER=$B/tests/datapath/pcd-wirepeer
. "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
harness_init datapath "$PEER"

# dguest_bg ID WORKLOAD TIMEOUT: a 64 MiB destination guest for ID in the
# background (its log $T/ID.dguest.log); its pid in DG_PID.
dguest_bg() {
	"$GUEST" --role dest --id "$1" -S "$T/dst.vmm" -s 64M -w "$2" -q \
	    --timeout "$3" > /dev/null 2> "$T/$1.dguest.log" &
	DG_PID=$!; PIDS+=($DG_PID)
}

# cut_failed SIDE ID WANT GUEST: a VMM cut its memfd under migration ID
# (its GUEST log, sguest or dguest, says so): the SIDE daemon (src, dst)
# failed it with an error containing WANT, and lives on.
cut_failed() {
	local side=$1 id=$2 expect=$3 log="$T/$2.$4.log" err pid
	wait_state "$side" "$id" failed completed
	err=$(field "$side" "$id" errmsg)
	[ "$(field "$side" "$id" state)" = failed ] ||
		fail "$id: $side state $(field "$side" "$id" state), want failed"
	[[ "$err" == *"$expect"* ]] || fail "$id: $side error '$err' does not name the cut memfd"
	pid=PID_$side
	kill -0 "${!pid}" 2>/dev/null || fail "$id: the $side daemon died"
	grep -q "cut the memfd" "$log" || fail "$id: the guest did not cut its memfd: $(tail -n 2 "$log")"
	echo "$id: $side failed: $err"
}

migrate_once() {
	local name=$1 size=$2 workload=$3; shift 3
	local addr gpid spid
	addr=$(prepare dst "$name")
	note "$name: destination listening on $addr"
	"$GUEST" --role dest --id "$name" -S "$T/dst.vmm" -s "$size" \
	    -w "$workload" -j -q --timeout 300 "$@" > "$T/$name.dguest.json" \
	    2> "$T/$name.dguest.log" &
	gpid=$!
	PIDS+=($gpid)
	ctl src migrate "$name" "$addr" --tls-dir "$T/certs" ${BANDWIDTH:+--bandwidth $BANDWIDTH} ${BULK:+--bulk-channels $BULK} ${MIGRATE_ARGS:-} >/dev/null ||
		fail "migrate $name was refused"
	"$GUEST" --role source --id "$name" -S "$T/src.vmm" -s "$size" -j -q \
	    --timeout 300 ${SGUEST_ARGS:-} > "$T/$name.sguest.json" \
	    2> "$T/$name.sguest.log" &
	spid=$!
	PIDS+=($spid)
	local grc=0 src=0
	wait_pair "$gpid" grc "$spid" src
	[ $grc -eq 77 ] && skip "postcopy-guest cannot run the $workload workload here: $(tail -n 1 "$T/$name.dguest.log")"
	[ $src -eq 77 ] && skip "postcopy-guest cannot run the $workload workload here: $(tail -n 1 "$T/$name.sguest.log")"
	guests_ok "$name" $grc "$T/$name.dguest.log" $src "$T/$name.sguest.log"
	wait_state dst "$name" completed failed
	wait_state src "$name" completed failed

	local g total verified mism dstate sstate dver dmis
	g=$(cat "$T/$name.dguest.json")
	total=$(jq -r .pages_total <<<"$g")
	verified=$(jq -r .pages_verified <<<"$g")
	mism=$(jq -r .mismatched <<<"$g")
	[ "$total" -gt 0 ] && [ "$verified" = "$total" ] && [ "$mism" = 0 ] ||
		fail "$name: guest verified $verified of $total pages, $mism mismatched"
	dstate=$(field dst "$name" state); sstate=$(field src "$name" state)
	[ "$dstate" = completed ] || fail "$name: destination state $dstate: $(field dst "$name" errmsg)"
	[ "$sstate" = completed ] || fail "$name: source state $sstate: $(field src "$name" errmsg)"
	dver=$(field dst "$name" pages_verified); dmis=$(field dst "$name" pages_mismatched)
	[ "$dver" = "$total" ] && [ "${dmis:-0}" = 0 ] ||
		fail "$name: destination daemon verified ${dver:-?} of $total pages, ${dmis:-?} mismatched"
	local got
	got=$(status_json dst "$name" | jq -r '(.migrations[0] // .) | .pages_sent_bulk + .pages_sent_urgent')
	# Precopy sends a page once per round it was written in.
	if [ -n "${MIGRATE_ARGS:-}" ]; then
		[ "$got" -ge "$total" ] || fail "$name: destination wrote $got pages (bulk + urgent), want at least $total"
	else
		[ "$got" = "$total" ] || fail "$name: destination wrote $got pages (bulk + urgent), want $total"
	fi
	echo "$name: OK: guest and daemon verified $total/$total pages;" \
	    "$(status_json dst "$name" | jq -r '(.migrations[0] // .) |
	      "\(.pages_zero) zero, \(.pages_sent_bulk) bulk, \(.pages_sent_urgent) urgent, faults \(.faults_remote) remote / \(.faults_local) local, \(.bytes_transferred) bytes in \(.elapsed_ms) ms"')"
}

# precopy_check NAME ID: the source ran precopy rounds and the destination
# guest still verified every page (migrate_once did): rounds, pages sent
# by them, and the final dirty list are reported.
precopy_check() {
	local it sent
	it=$(field "$1" "$2" iteration); sent=$(field "$1" "$2" precopy_pages_sent)
	[ "${it:-0}" -ge 1 ] || fail "$2: no precopy round reported (phase '$(field "$1" "$2" phase)': $(field "$1" "$2" precopy_note))"
	[ "${sent:-0}" -ge 1 ] || fail "$2: precopy sent no page"
	echo "$2: $it precopy rounds, $sent pages sent by them, $(field "$1" "$2" pages_redirtied) redirtied, $(field "$1" "$2" final_dirty) dirty at the pause"
}

# Precopy's store on the destination: --copy (COPY mode) keeps the pages
# in the daemon's staging memory, MINOR in the page cache.
STORE="page cache"
[[ " $* " == *" --copy "* ]] && STORE="staging memory"

case "$MODE" in
migrate)
	size=$1 workload=$2; shift 2
	if [ -n "${DAEMON_CONF:-}" ]; then
		echo "daemon config: $DAEMON_CONF (load average $(cut -d' ' -f1 /proc/loadavg), $(nproc) CPUs)"
	fi
	start_daemon dst
	start_daemon src
	migrate_once "m-$workload" "$size" "$workload" "$@"
	case " $* " in *" --hugepages "*|*" --copy "*) ;; *)
		# A memfd guest on base pages: the way pages were written
		# (postcopyd.conf page_write) is the one configured.
		how="with pwrite"
		[[ "${DAEMON_CONF:-}" == *"page_write = alias"* ]] && how="through the alias"
		grep -q "received pages go into the page cache $how" "$T/dst.log" ||
			fail "m-$workload: the destination did not write pages $how: $(grep -o 'received pages go.*' "$T/dst.log")"
		echo "m-$workload: received pages went into the page cache $how"
		;;
	esac
	case " $* " in *" --hugepages "*)
		# Demanded huge pages go first: the bulk receiver waits while
		# guest threads wait for them (counted, not timed).
		rf=$(field dst "m-$workload" faults_remote)
		y=$(sed -n 's/.*the bulk receiver yielded \([0-9]*\) times.*/\1/p' "$T/dst.log" | tail -n 1)
		echo "m-$workload: $(grep -o 'the bulk receiver yielded.*' "$T/dst.log" | tail -n 1);" \
		    "source: $(grep -o 'the bulk stream yielded.*' "$T/src.log" | tail -n 1)"
		[ -n "$y" ] || fail "m-$workload: the destination did not count its bulk receiver's yields"
		[ "${rf:-0}" -lt 4 ] || [ "$y" -ge 1 ] ||
			fail "m-$workload: $rf remote faults on huge pages, but the bulk receiver never yielded to them"
		;;
	esac
	stop_daemons
	;;
bulkch)
	n=$1 size=$2; shift 2
	start_daemon dst
	start_daemon src
	BULK=$n migrate_once m-bulk "$size" threads "$@"
	for k in $(seq 0 $((n - 1))); do
		line=$(grep "m-bulk: bulk stream $k of $n done" "$T/src.log" | tail -n 1)
		[ -n "$line" ] || fail "source: no 'bulk stream $k of $n done' in its log"
		bytes=$(sed -n 's/.* \([0-9][0-9]*\) bytes of pages.*/\1/p' <<<"$line")
		[ "${bytes:-0}" -gt 0 ] || fail "bulk stream $k carried no page bytes: $line"
		echo "bulk $k: ${line#*done: }"
		[ "$k" = 0 ] && continue
		grep -q "m-bulk: bulk $k channel from" "$T/dst.log" ||
			fail "destination: bulk channel $k was not accepted"
	done
	stop_daemons
	;;
cancel)
	# Cancel before switchover, on both sides: the data-path threads are
	# stopped and joined at once, the VMM is told, the daemon serves on.
	start_daemon dst
	start_daemon src
	prepare dst c1 >/dev/null
	dguest_bg c1 none 60; g1=$DG_PID
	for _ in $(seq 100); do
		[ "$(field dst c1 vmm_attached)" = true ] && break
		sleep 0.05
	done
	[ "$(field dst c1 state)" = setup ] || fail "c1: state $(field dst c1 state), want setup"
	ctl dst cancel c1 >/dev/null || fail "cancel c1 refused"
	[ "$(field dst c1 state)" = cancelled ] || fail "c1 not cancelled"
	rc=0; wait $g1 || rc=$?
	[ $rc -ne 0 ] || fail "c1: the destination guest did not learn of the cancel"
	echo "c1 (destination): cancelled; guest: $(tail -n 1 "$T/c1.dguest.log")"
	# A source whose destination never answers: cancel while it connects.
	ctl src migrate c2 127.0.0.1:1 --tls-dir "$T/certs" >/dev/null || fail "migrate c2 refused"
	"$GUEST" --role source --id c2 -S "$T/src.vmm" -s 64M -q --timeout 60 \
	    > /dev/null 2> "$T/c2.sguest.log" &
	g2=$!; PIDS+=($g2)
	wait_state src c2 setup
	t0=$(date +%s%N)
	ctl src cancel c2 >/dev/null || fail "cancel c2 refused"
	t1=$(date +%s%N)
	[ "$(field src c2 state)" = cancelled ] || fail "c2 not cancelled: $(field src c2 state)"
	[ $(( (t1 - t0) / 1000000 )) -lt 2000 ] || fail "cancel c2 took $(( (t1 - t0) / 1000000 )) ms"
	wait $g2 || true
	echo "c2 (source, setup): cancelled in $(( (t1 - t0) / 1000000 )) ms"
	migrate_once after-cancel 64M threads
	stop_daemons
	;;
truncate)
	# A source VMM that cuts its memfd short after the pause (bad input
	# from a VMM): the source daemon reads guest pages with pread, so the
	# migration fails with an error naming the cut, where reading through
	# a mapping died of SIGBUS with every other migration on the daemon.
	# The daemon then migrates another guest.
	start_daemon dst
	start_daemon src
	addr=$(prepare dst cut)
	dguest_bg cut threads 60; g1=$DG_PID
	ctl src migrate cut "$addr" --tls-dir "$T/certs" >/dev/null || fail "migrate cut refused"
	"$GUEST" --role source --id cut -S "$T/src.vmm" -s 64M --truncate-at-pause \
	    --timeout 60 > /dev/null 2> "$T/cut.sguest.log" &
	g2=$!; PIDS+=($g2)
	cut_failed src cut "memfd ends before them" sguest
	kill "$g1" "$g2" 2>/dev/null || true
	wait "$g1" "$g2" 2>/dev/null || true
	migrate_once after-cut 64M threads
	stop_daemons
	;;
dtruncate)
	# A destination VMM that cuts its memfd short while the daemon writes
	# the guest's pages into it, through the alias (page_write = alias,
	# $DAEMON_CONF): the write past the end is a SIGBUS, which killed the
	# daemon and every migration on it. Now that migration fails with an
	# error naming the cut, and the same daemon migrates another guest.
	# The bulk stream is held to 16 MB/s so that the cut comes first.
	start_daemon dst
	start_daemon src
	addr=$(prepare dst dcut)
	"$GUEST" --role dest --id dcut -S "$T/dst.vmm" -s 64M --truncate-at-resume \
	    --timeout 60 > /dev/null 2> "$T/dcut.dguest.log" &
	g1=$!; PIDS+=($g1)
	ctl src migrate dcut "$addr" --tls-dir "$T/certs" --bandwidth 16M >/dev/null ||
		fail "migrate dcut refused"
	"$GUEST" --role source --id dcut -S "$T/src.vmm" -s 64M -w none \
	    --timeout 60 > /dev/null 2> "$T/dcut.sguest.log" &
	g2=$!; PIDS+=($g2)
	cut_failed dst dcut "cut its memfd short" dguest
	wait "$g1" || fail "dcut: the destination guest: $(tail -n 2 "$T/dcut.dguest.log")"
	kill "$g2" 2>/dev/null || true
	wait "$g2" 2>/dev/null || true
	migrate_once after-dcut 64M threads
	stop_daemons
	;;
dirty)
	start_daemon dst
	start_daemon src
	SGUEST_ARGS="--dirty-rate 200000"
	migrate_once m-dirty 64M threads
	sw=$(jq -r .source_writes "$T/m-dirty.sguest.json")
	dw=$(jq -r .source_writes "$T/m-dirty.dguest.json")
	[ "$(jq -r .dirty_tracking "$T/m-dirty.sguest.json")" = true ] ||
		fail "m-dirty: the source guest sent no dirty-tracking descriptors"
	[ "$sw" -gt 0 ] || fail "m-dirty: the source guest wrote no page before the pause"
	[ "$dw" = "$sw" ] || fail "m-dirty: destination replayed $dw source writes, source made $sw"
	grep -q "m-dirty/source (pid [0-9]*): dirty tracking ready" "$T/src.log" ||
		fail "m-dirty: the source daemon did not report dirty tracking"
	echo "m-dirty: $sw source writes before the pause; every page verified"
	# Precopy asked for, but the VMM offers no dirty tracking: the
	# migration runs postcopy-only and says why.
	SGUEST_ARGS="--no-track-dirty"
	MIGRATE_ARGS="--precopy"
	migrate_once m-old 64M threads
	MIGRATE_ARGS=
	[ "$(field src m-old phase)" = postcopy-only ] ||
		fail "m-old: phase '$(field src m-old phase)', want postcopy-only"
	field src m-old precopy_note | grep -q "postcopy-only: .*dirty-tracking descriptors" ||
		fail "m-old: precopy_note '$(field src m-old precopy_note)' does not say why"
	[ "$(jq -r .dirty_tracking "$T/m-old.sguest.json")" = false ] ||
		fail "m-old: --no-track-dirty sent descriptors"
	grep -q "m-old/source (pid [0-9]*): the VMM sent no dirty-tracking descriptors.*postcopy-only" "$T/src.log" ||
		fail "m-old: the source daemon did not say postcopy-only"
	echo "m-old: $(grep -o 'the VMM sent no dirty-tracking.*' "$T/src.log" | head -n 1)"
	stop_daemons
	;;
precopy-oldkernel)
	# A kernel without UFFD_FEATURE_WP_ASYNC (hidden from the source
	# daemon's probe by PCD_TEST_HIDE_WP_ASYNC=1, a test setting): a
	# Migrate that asks for precopy is refused, naming the kernel; one
	# that only inherits 'precopy = yes' from the config runs
	# postcopy-only and its Status says why.
	start_daemon dst
	DAEMON_CONF="precopy = yes" PCD_TEST_HIDE_WP_ASYNC=1 start_daemon src
	for args in "--precopy" "--rounds 2" "--auto"; do
		out=$(ctl src migrate m-k 127.0.0.1:1 --tls-dir "$T/certs" $args 2>&1) &&
			fail "m-k: migrate $args accepted on a kernel without WP_ASYNC: $out"
		grep -q "asks for precopy, which this kernel cannot do: precopy needs Linux >= 6.7 (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN)" <<<"$out" ||
			fail "m-k: migrate $args refused without the reason: $out"
		status_json src m-k >/dev/null 2>&1 && fail "m-k: a refused migration was registered"
	done
	echo "m-k: refused: $out"
	migrate_once m-kdef 64M threads
	[ "$(field src m-kdef phase)" = postcopy-only ] ||
		fail "m-kdef: phase '$(field src m-kdef phase)', want postcopy-only"
	note=$(field src m-kdef precopy_note)
	grep -q "postcopy-only: .*UFFD_FEATURE_WP_ASYNC" <<<"$note" ||
		fail "m-kdef: precopy_note '$note' does not say why"
	echo "m-kdef: $note"
	stop_daemons
	;;
hugezero)
	# Zero detection per huge page: a 2 MiB guest whose huge pages are
	# mostly all zero (postcopy-guest decides zero pages per huge page,
	# and leaves them untouched). An all-zero huge page goes whole as a
	# ZERO run: no page bytes (the destination allocates it with fallocate
	# and maps it with one UFFDIO_CONTINUE; --copy: one UFFDIO_COPY from a
	# zero buffer), so the page bytes on the wire
	# are those of the other huge pages (up to twice: pieces that a fault's
	# whole request and the bulk stream both carried).
	size=${1:-64M}
	shift || true
	start_daemon dst
	start_daemon src
	SGUEST_ARGS="--hugepages 2M --zero-fraction 0.75"
	migrate_once hz "$size" threads --hugepages 2M "$@"
	upp=512
	total=$(jq -r .pages_total "$T/hz.sguest.json")
	zpieces=$(jq -r .zero_pages "$T/hz.sguest.json")
	hps=$((total / upp)) zhp=$((zpieces / upp))
	[ $((zpieces % upp)) = 0 ] && [ "$zhp" -gt 0 ] && [ "$zhp" -lt "$hps" ] ||
		fail "hz: want some, not all, whole huge pages of zeros: $zpieces zero pieces in $hps huge pages"
	dzero=$(field dst hz pages_zero)
	[ "$dzero" = "$zpieces" ] ||
		fail "hz: the destination wrote $dzero zero pieces, the guest has $zpieces"
	bytes=$(field dst hz bytes_transferred)
	data=$(( (hps - zhp) * upp * 4096 ))
	# A piece travels at most twice (the bulk stream, a fault's whole
	# request); the zero huge pages as data would be 3 times as much.
	[ "$bytes" -ge "$data" ] && [ "$bytes" -le $((2 * data + (1 << 20))) ] ||
		fail "hz: $bytes bytes of PAGES/ZERO frames for $((hps - zhp)) non-zero huge pages ($data bytes); zero huge pages cost bytes?"
	n=$(sed -n 's/.* \([0-9]*\) all-zero huge pages sent whole.*/\1/p' "$T/src.log" | tail -n 1)
	[ "${n:-0}" -ge "$zhp" ] ||
		fail "hz: the source sent ${n:-no} all-zero huge pages whole, the guest has $zhp"
	echo "hz: $zhp of $hps huge pages all zero, $n sent whole as ZERO runs;" \
	    "$bytes bytes of page frames for $((hps - zhp)) non-zero huge pages ($data page bytes)"
	stop_daemons
	;;
precopy-converge)
	# Precopy at a modest dirty rate converges: the rest is sent while
	# the guest is paused, no fault needs the network. Before the pause
	# the source waits until the destination applied what it sent (a
	# bulk Ping with echo), and sends the last pages as one more round:
	# the stale list is empty. (Debug level: the switchover timeline.)
	DAEMON_LOG_LEVEL=debug start_daemon dst
	DAEMON_LOG_LEVEL=debug start_daemon src
	SGUEST_ARGS="--dirty-rate 2000"
	MIGRATE_ARGS="--precopy --max-downtime 2000"
	migrate_once m-conv 64M threads "$@"
	precopy_check src m-conv
	grep -q "m-conv: precopy: .*stored in the $STORE" "$T/dst.log" ||
		fail "m-conv: the destination did not store precopy pages in the $STORE"
	[ "$(field dst m-conv faults_remote)" = 0 ] ||
		fail "m-conv: $(field dst m-conv faults_remote) remote faults after a converged precopy"
	[ "$(field src m-conv phase)" = "completed (converged)" ] ||
		fail "m-conv: phase '$(field src m-conv phase)', want converged: $(field src m-conv precopy_note)"
	echo "m-conv: converged: $(field src m-conv precopy_note)"
	grep -q "m-conv: switchover timeline .*source: the destination caught up in" "$T/src.log" ||
		fail "m-conv: the source did not wait for the destination to catch up before the pause"
	grep -q "m-conv: precopy over after [0-9]* rounds: 0 pages stale" "$T/dst.log" ||
		fail "m-conv: the final pages were not sent as a round while paused: $(grep 'precopy over' "$T/dst.log")"
	grep "m-conv: switchover timeline" "$T/src.log" "$T/dst.log" | sed 's/.*timeline @//' | sort
	stop_daemons
	;;
precopy-switch)
	# A guest that writes faster than precopy converges: StartPostcopy
	# after two rounds; the destination then maps pages precopy left
	# valid locally (one CONTINUE; COPY: one UFFDIO_COPY from the staging
	# memory) and asks for the stale ones. The background mapper waits
	# 2 s after precopy (PCD_TEST_MAPPER_DELAY_MS, test only), so the
	# guest's first touches of valid pages are local faults.
	PCD_TEST_MAPPER_DELAY_MS=2000 start_daemon dst
	start_daemon src
	# A limited bulk stream: each round takes long enough for the guest
	# to dirty most of what it sent.
	SGUEST_ARGS="--dirty-rate 20000"
	MIGRATE_ARGS="--precopy --max-downtime 1 --bandwidth 32M"
	( for _ in $(seq 600); do
		it=$(field src m-sw iteration 2>/dev/null || true)
		if [ "${it:-0}" -ge 1 ]; then
			ctl src start-postcopy m-sw > "$T/m-sw.start" 2>&1
			exit
		fi
		sleep 0.1
	  done ) &
	PIDS+=($!)
	starter=$!
	migrate_once m-sw 64M threads "$@"
	wait "$starter" || true
	grep -q "switching to postcopy" "$T/m-sw.start" ||
		fail "m-sw: start-postcopy: $(cat "$T/m-sw.start" 2>/dev/null)"
	precopy_check src m-sw
	loc=$(field dst m-sw faults_local); rem=$(field dst m-sw faults_remote)
	[ "$rem" -gt 0 ] || fail "m-sw: no remote fault after StartPostcopy (local $loc)"
	[ "$loc" -gt 0 ] || fail "m-sw: no local fault after precopy (remote $rem)"
	grep -q "m-sw: precopy: .*stored in the $STORE" "$T/dst.log" ||
		fail "m-sw: the destination did not store precopy pages in the $STORE"
	[ "$(field src m-sw phase)" = completed ] ||
		fail "m-sw: phase '$(field src m-sw phase)', want completed (by postcopy)"
	out=$(ctl src start-postcopy m-sw 2>&1) && fail "m-sw: start-postcopy accepted after the end"
	echo "m-sw: $loc local, $rem remote faults; a late start-postcopy: $out"
	# Automatic: after --rounds 3 (the guest never lets it converge).
	MIGRATE_ARGS="--precopy --rounds 3 --max-downtime 1 --bandwidth 32M"
	migrate_once m-auto 64M threads "$@"
	precopy_check src m-auto
	[ "$(field src m-auto iteration)" -le 3 ] ||
		fail "m-auto: $(field src m-auto iteration) rounds, want at most 3"
	grep -q "m-auto: precopy round .*: switch to postcopy" "$T/src.log" ||
		fail "m-auto: the source did not log its switch"
	echo "m-auto: $(field src m-auto precopy_note)"
	stop_daemons
	;;
precopy-cancel)
	# Cancel during precopy: the source guest runs on with its memory
	# untouched and no page left write-protected (postcopy-guest
	# --survive-cancel checks both); the destination is cancelled too and
	# the same daemons then migrate again.
	start_daemon dst
	start_daemon src
	addr=$(prepare dst pc1)
	dguest_bg pc1 none 120; g1=$DG_PID
	ctl src migrate pc1 "$addr" --tls-dir "$T/certs" --precopy \
	    --max-downtime 1 --bandwidth 32M >/dev/null || fail "migrate pc1 refused"
	"$GUEST" --role source --id pc1 -S "$T/src.vmm" -s 64M -j -q \
	    --timeout 120 --dirty-rate 20000 --survive-cancel \
	    > "$T/pc1.sguest.json" 2> "$T/pc1.sguest.log" &
	s1=$!; PIDS+=($s1)
	for _ in $(seq 600); do
		[ "$(field src pc1 iteration)" -ge 1 ] 2>/dev/null && break
		sleep 0.1
	done
	[ "$(field src pc1 state)" = precopy ] || fail "pc1: state $(field src pc1 state), want precopy"
	ctl src cancel pc1 >/dev/null || fail "cancel pc1 refused"
	[ "$(field src pc1 state)" = cancelled ] || fail "pc1 not cancelled: $(field src pc1 state)"
	rc=0; wait $s1 || rc=$?
	[ $rc -eq 0 ] || fail "pc1: the source guest after the cancel: $(cat "$T/pc1.sguest.json") $(tail -n 3 "$T/pc1.sguest.log")"
	j=$(cat "$T/pc1.sguest.json")
	[ "$(jq -r .wp_pages <<<"$j")" = 0 ] && [ "$(jq -r .verify_mismatched <<<"$j")" = 0 ] ||
		fail "pc1: source guest after the cancel: $j"
	[ "$(jq -r .source_writes <<<"$j")" -gt 0 ] || fail "pc1: the source guest wrote nothing"
	# (A source that tells its peer about the cancel may have ended the
	# destination's side already.)
	ctl dst cancel pc1 >/dev/null 2>&1 || true
	wait_state dst pc1 cancelled failed
	rc=0; wait $g1 || rc=$?
	[ $rc -ne 0 ] || fail "pc1: the destination guest did not learn of the cancel"
	echo "pc1: cancelled in precopy round $(field src pc1 iteration); source guest: $j"
	SGUEST_ARGS="--dirty-rate 2000"
	MIGRATE_ARGS="--precopy"
	migrate_once after-pc1 64M threads
	stop_daemons
	;;
bandwidth)
	# The bulk stream honours the limit: a guest that touches nothing gets
	# every page from the bulk channel, so the time is bounded below.
	start_daemon dst
	start_daemon src
	BANDWIDTH=16M
	migrate_once m-bw 64M none
	ms=$(field src m-bw elapsed_ms); bulk=$(field src m-bw pages_sent_bulk)
	zero=$(field src m-bw pages_zero)
	want=$(( (bulk - zero) * 4096 * 1000 / (16 << 20) * 8 / 10 ))
	echo "m-bw: $((bulk - zero)) data pages over bulk at 16 MiB/s in $ms ms (at least $want ms expected)"
	[ "$ms" -ge "$want" ] || fail "bulk stream ignored the 16 MiB/s limit: $ms ms < $want ms"
	[ "$(field src m-bw bandwidth_bps)" = $((16 << 20)) ] || fail "limit not reported in status"
	stop_daemons
	;;
badpeer)
	start_daemon dst
	start_daemon src
	C=$T/certs
	good=(--ca "$C/ca-cert.pem" --cert "$C/client-cert.pem" --key "$C/client-key.pem")
	# expect_refused ID CASE PATTERN [peer args]: the peer is refused and
	# the destination names the problem (status errmsg or its log).
	expect_refused() {
		local id=$1 cs=$2 pat=$3; shift 3
		local addr out
		addr=$(field dst "$id" listen)
		out=$("$PEER" --dest "$addr" --id "$id" --size 64M --case "$cs" "$@" 2>&1) ||
			fail "$cs: peer was not refused: $out"
		for _ in $(seq 50); do
			grep -q -- "$pat" "$T/dst.log" && break
			sleep 0.1
		done
		grep -q -- "$pat" "$T/dst.log" ||
			fail "$cs: destination did not report '$pat'"
		echo "$cs: OK: peer: ${out#pcd-wirepeer: }"
		echo "    destination: $(grep -- "$pat" "$T/dst.log" | tail -n 1 | sed 's/^postcopyd: //')"
	}
	# A destination with a real VMM waiting; every bad peer is refused
	# before the guest may run.
	start_bad_dest() {
		local id=$1
		prepare dst "$id" >/dev/null
		"$GUEST" --role dest --id "$id" -S "$T/dst.vmm" -s 64M -w none -q \
		    --timeout 120 > "$T/$id.dguest.json" 2> "$T/$id.dguest.log" &
		PIDS+=($!)
		for _ in $(seq 100); do
			[ "$(field dst "$id" vmm_attached)" = true ] && return 0
			sleep 0.05
		done
		fail "$id: the destination VMM did not attach"
	}
	start_bad_dest bad1
	expect_refused bad1 plaintext "does not speak TLS" "${good[@]}"
	expect_refused bad1 tls-refused "peer certificate rejected" \
	    --ca "$C/ca-cert.pem" --cert "$C/other-ca/client-cert.pem" --key "$C/other-ca/client-key.pem"
	expect_refused bad1 tls-refused "presented no certificate" --ca "$C/ca-cert.pem" --no-cert
	expect_refused bad1 bad-version "wire protocol version 99, this daemon speaks version 1" "${good[@]}"
	expect_refused bad1 bad-size "guest size mismatch" "${good[@]}"
	# Parallel bulk channels: a count over the cap, an index out of
	# range, a count that differs from the session's other channels.
	expect_refused bad1 bad-bulk-count "asks for 17 bulk channels; this daemon takes at most 16" "${good[@]}"
	expect_refused bad1 bad-bulk-index "names bulk channel 2 of 2" "${good[@]}"
	expect_refused bad1 bulk-count-differs "announces 3 bulk channels, the channels already accepted for this session announced 2" "${good[@]}"
	[ "$(field dst bad1 state)" != failed ] || fail "bad1 failed on a refused handshake"
	expect_refused bad1 bad-index "beyond the guest" "${good[@]}"
	wait_state dst bad1 failed
	[ "$(field dst bad1 pages_valid)" = 0 ] || fail "bad1: pages reached guest memory"
	start_bad_dest bad2
	expect_refused bad2 bad-length "does not match" "${good[@]}"
	wait_state dst bad2 failed
	start_bad_dest bad3
	expect_refused bad3 bad-type "unknown frame type 200" "${good[@]}"
	wait_state dst bad3 failed
	# A source whose digests disagree with what it sent: the destination
	# verifies every page and refuses to call the migration complete.
	start_bad_dest bad4
	expect_refused bad4 bad-digest "1 pages differ from the source" "${good[@]}"
	wait_state dst bad4 failed
	[ "$(field dst bad4 pages_mismatched)" = 1 ] || fail "bad4: mismatch not counted"
	for id in bad1 bad2 bad3 bad4; do
		echo "$id: $(field dst $id state): $(field dst $id errmsg)"
	done
	note "the same destination daemon still serves a good migration"
	migrate_once good 64M threads
	stop_daemons
	;;
*)
	echo "usage: datapath.sh BUILD_DIR migrate SIZE WORKLOAD | badpeer" >&2
	exit 2
	;;
esac
echo PASS
