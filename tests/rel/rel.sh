#!/bin/bash
# rel.sh - reliability tests: real postcopyd processes on loopback with
# mutual TLS (certificates made here) and real postcopy-guest VMMs.
#
#   rel.sh BUILD_DIR load [SIZE]
#   rel.sh BUILD_DIR cuts [SIZE] [MIN_CUTS]
#   rel.sh BUILD_DIR resume [SIZE]
#   rel.sh BUILD_DIR restart [SIZE]
#   rel.sh BUILD_DIR stall [SIZE]
#   rel.sh BUILD_DIR statedir [SIZE]
#
# GUEST_ARGS: more postcopy-guest arguments for both guests (cuts, restart),
# e.g. --hugepages 2M; with HUGE_CUT set, cuts also wants a cut inside a
# huge page a guest thread waited on; with HUGE_RESTART set, restart kills
# the daemon while a 2 MiB huge page is partial (one guest thread faults
# for 0.2 s, so that the migration cannot finish first) and wants the
# restarted daemon to find exactly the partial huge pages the page state
# file holds.
#
# load: 4 migrations at once on one pair of daemons; the first destination
#   guest faults with 64 threads at once, the others with 8. Passes when
#   every guest verified every page (no thread saw a wrong byte, none hung:
#   a lost wake-up or a deadlock ends in the guest's timeout) and both
#   daemons report every migration COMPLETED with every page verified
#   against the source's digests. Under TSan the daemons' logs must hold
#   no report (stop_daemons checks).
# cuts: one migration whose two channels go through faultproxy, which
#   resets a connection every few hundred KiB: both daemons pause and the
#   source reconnects and resumes each time. Passes when at least MIN_CUTS
#   cuts happened, both daemons report COMPLETED with every page verified
#   and the guest verified every page.
# resume: Status while the path is down (postcopy-paused, and why), the Resume RPC on
#   both sides (postcopyctl resume), a new destination address.
# stall: a path that stops forwarding (no error) and delivers tiny pieces:
#   the no-progress timeout pauses, the source reconnects.
# restart: kill -9 of the destination daemon mid-postcopy and a restart;
#   the migration completes with every page verified (see below).
# statedir: the destination's state directory on a small tmpfs: a full one
#   refuses Prepare (ENOSPC, the directory named), one with room for one
#   migration's page state file refuses a second; the daemon keeps serving
#   and the first migration completes with every page verified. (Before
#   the space was reserved, the daemon died of SIGBUS writing the file.)
set -euo pipefail

B=$(readlink -f "$1"); shift
MODE=$1; shift
PROXY=$B/tests/tools/faultproxy
. "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
harness_init rel "$PROXY"

# start_migration ID SIZE DEST_ADDR_FOR_SOURCE [dest guest args]: prepares
# the destination, starts both guests, sets GPID/SPID. The source is told to
# migrate to DEST_ADDR_FOR_SOURCE ("" = the destination's own address).
start_migration() {
	local id=$1 size=$2 via=$3; shift 3
	local addr
	addr=$(prepare dst "$id")
	echo "$addr" > "$T/$id.addr"
	"$GUEST" --role dest --id "$id" -S "$T/dst.vmm" -s "$size" \
	    -j -q --timeout 240 "$@" > "$T/$id.dguest.json" \
	    2> "$T/$id.dguest.log" &
	GPID=$!
	PIDS+=($GPID)
	ctl src migrate "$id" "${via:-$addr}" --tls-dir "$T/certs" \
	    ${BANDWIDTH:+--bandwidth $BANDWIDTH} >/dev/null ||
		fail "migrate $id was refused"
	"$GUEST" --role source --id "$id" -S "$T/src.vmm" -s "$size" -j -q \
	    --timeout 240 > "$T/$id.sguest.json" 2> "$T/$id.sguest.log" &
	SPID=$!
	PIDS+=($SPID)
}

# check_migration ID GPID SPID: waits for both guests, checks everything.
check_migration() {
	local id=$1 gpid=$2 spid=$3
	local grc=0 src=0
	wait "$gpid" || grc=$?
	wait "$spid" || src=$?
	[ $grc -eq 0 ] || fail "$id: destination guest exited $grc: $(tail -n 3 "$T/$id.dguest.log")"
	[ $src -eq 0 ] || fail "$id: source guest exited $src: $(tail -n 3 "$T/$id.sguest.log")"
	! grep -E "WARNING: ThreadSanitizer|ERROR: (Address|Leak|Thread)Sanitizer|runtime error:" \
	    "$T/$id.dguest.log" "$T/$id.sguest.log" || fail "$id: sanitizer report in a guest's log"
	wait_state dst "$id" completed failed
	wait_state src "$id" completed failed
	local g total verified mism st dver dmis
	g=$(cat "$T/$id.dguest.json")
	total=$(jq -r .pages_total <<<"$g")
	verified=$(jq -r .pages_verified <<<"$g")
	mism=$(jq -r .mismatched <<<"$g")
	[ "$total" -gt 0 ] && [ "$verified" = "$total" ] && [ "$mism" = 0 ] ||
		fail "$id: guest verified $verified of $total pages, $mism mismatched"
	for n in dst src; do
		st=$(field $n "$id" state)
		[ "$st" = completed ] || fail "$id: $n state $st: $(field $n "$id" errmsg)"
	done
	dver=$(field dst "$id" pages_verified); dmis=$(field dst "$id" pages_mismatched)
	[ "$dver" = "$total" ] && [ "${dmis:-0}" = 0 ] ||
		fail "$id: destination daemon verified ${dver:-?} of $total pages, ${dmis:-?} mismatched"
	echo "$id: OK: guest and daemon verified $total/$total pages;" \
	    "$(status_json dst "$id" | jq -r '(.migrations[0] // .) |
	      "faults \(.faults_remote) remote / \(.faults_local) local, \(.pages_sent_urgent) urgent pages, \(.elapsed_ms) ms"')"
	VERIFIED=$((${VERIFIED:-0} + total))
}

# huge_kill_partial PID FILE UPP: watches the page state file FILE (valid
# bitmap after a 4 KiB header) until a huge page of UPP pieces has some but
# not all of its pieces valid, kills PID (-9) at once, and prints from the
# file as the killed daemon left it "PARTIAL WHOLE" (huge pages). Fails if
# none was partial within 60 s, or the file is gone (migration over).
huge_kill_partial() {
	python3 - "$@" <<'PY'
import os, signal, sys, time
pid, path, upp = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def count():
    with open(path, "rb") as f:
        npages = int.from_bytes(f.read(4096)[8:16], "little")
        bm = f.read((npages + 7) // 8)
    per = upp // 8
    partial = whole = 0
    for u in range(npages // upp):
        c = sum(bin(b).count("1") for b in bm[u * per:(u + 1) * per])
        partial += 0 < c < upp
        whole += c == upp
    return partial, whole
start = time.time()
while time.time() < start + 60:
    try:
        p, _ = count()
    except FileNotFoundError:
        if time.time() > start + 2:
            print("the page state file is gone: the migration finished first")
            sys.exit(1)
        p = 0
    if p > 0:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        p, w = count()
        print(p, w)
        sys.exit(0 if p > 0 else 1)
    time.sleep(0.005)
print("none in 60 s")
sys.exit(1)
PY
}

case "$MODE" in
load)
	size=${1:-32M}
	start_daemon dst
	start_daemon src
	declare -A G S
	for i in 0 1 2 3; do
		th=8
		[ $i = 0 ] && th=64
		start_migration "load$i" "$size" "" -w threads --threads $th
		G[$i]=$GPID S[$i]=$SPID
	done
	note "4 migrations of $size running (64 + 3x8 faulting threads)"
	for i in 0 1 2 3; do
		check_migration "load$i" "${G[$i]}" "${S[$i]}"
	done
	stop_daemons
	echo "load: $VERIFIED pages verified over 4 concurrent migrations"
	;;
cuts)
	size=${1:-64M} min_cuts=${2:-20}
	start_daemon dst
	start_daemon src
	# The source reaches the destination only through the proxy, which
	# resets a connection after 200-600 KiB (both channels count).
	# The bulk stream is limited so the migration lasts long enough for
	# the cuts: a guest thread faults while channels are down.
	addr=$(prepare dst cut)
	"$PROXY" --listen 127.0.0.1:0 --connect "$addr" --cut-every 400K \
	    --max-cuts "$((min_cuts + 10))" --seed 7 --port-file "$T/proxy.port" \
	    --stats "$T/proxy.stats" > "$T/proxy.log" 2>&1 &
	PPID_=$!
	PIDS+=($PPID_)
	for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
	[ -s "$T/proxy.port" ] || fail "faultproxy did not start"
	via=127.0.0.1:$(cat "$T/proxy.port")
	note "source -> faultproxy $via -> destination (cut every ~400 KiB)"
	BANDWIDTH=${BANDWIDTH:-8M}
	"$GUEST" --role dest --id cut -S "$T/dst.vmm" -s "$size" \
	    -j -q --timeout 240 -w threads --threads "${CUT_THREADS:-8}" \
	    ${GUEST_ARGS:-} > "$T/cut.dguest.json" 2> "$T/cut.dguest.log" &
	GPID=$!
	PIDS+=($GPID)
	ctl src migrate cut "$via" --tls-dir "$T/certs" --bandwidth "$BANDWIDTH" >/dev/null ||
		fail "migrate cut was refused"
	"$GUEST" --role source --id cut -S "$T/src.vmm" -s "$size" -j -q \
	    --timeout 240 ${GUEST_ARGS:-} > "$T/cut.sguest.json" \
	    2> "$T/cut.sguest.log" &
	SPID=$!
	PIDS+=($SPID)
	# The source's "pages valid" is sampled while the cuts happen: a
	# resume must not make it go back.
	ctl src -j watch cut --interval 20 > "$T/cut.watch" 2> "$T/cut.watch.err" &
	SAMPLER=$!
	PIDS+=($SAMPLER)
	check_migration cut "$GPID" "$SPID"
	wait "$SAMPLER" 2>/dev/null || true
	jq -r '.info.pages_valid // empty' "$T/cut.watch" > "$T/cut.valid"
	awk 'NF && $1 < last { print "pages valid went back from " last " to " $1; bad = 1 }
	    NF { last = $1 } END { exit bad }' "$T/cut.valid" ||
		fail "source pages_valid went back across a resume"
	echo "cuts: source pages_valid sampled $(wc -l < "$T/cut.valid") times, never went back"
	kill -TERM "$PPID_"
	wait "$PPID_" 2>/dev/null || true
	cuts=$(sed -n 's/.*cuts=\([0-9]*\).*/\1/p' "$T/proxy.stats")
	srec=$(field src cut reconnects); drec=$(field dst cut reconnects)
	echo "cuts: faultproxy cut $cuts connections; source resumed $srec sessions," \
	    "destination $drec; $VERIFIED pages verified"
	paused=$(grep -c -- "-> postcopy-paused\|-> precopy-paused" "$T/dst.log" || true)
	echo "cuts: the destination paused $paused times"
	[ "${cuts:-0}" -ge "$min_cuts" ] || fail "only ${cuts:-0} cuts (wanted $min_cuts)"
	[ "${srec:-0}" -ge 1 ] || fail "the source never resumed"
	if [ -n "${HUGE_CUT:-}" ]; then
		# Huge pages: some cut fell inside a huge page a guest thread
		# waited on (its pieces on the urgent channel); it stayed
		# unmapped until whole, and the guest verified every page.
		w=$(sed -n 's/.*huge pages partly here.*, \([0-9]*\) of them with a guest thread waiting/\1/p' \
		    "$T/dst.log" | awk '{ s += $1 } END { print s + 0 }')
		echo "cuts: $w times a cut left a huge page a guest thread waited on partly here"
		[ "$w" -ge 1 ] || fail "no cut fell inside a huge page a guest thread waited on"
	fi
	stop_daemons
	;;
resume)
	# By hand: the path dies (the proxy is killed) mid-postcopy; both
	# daemons show paused and why; the source cannot reconnect; a new
	# path appears and `postcopyctl resume ID HOST:PORT` on the source
	# moves the migration there. Before that, `resume` on the destination
	# drops live channels and the source comes back by itself.
	size=${1:-32M}
	start_daemon dst
	start_daemon src
	addr=$(prepare dst man)
	start_proxy() {
		rm -f "$T/proxy.port"
		"$PROXY" --listen 127.0.0.1:0 --connect "$addr" \
		    --port-file "$T/proxy.port" > "$T/proxy$1.log" 2>&1 &
		PPID_=$!
		PIDS+=($PPID_)
		for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
		[ -s "$T/proxy.port" ] || fail "faultproxy did not start"
		via=127.0.0.1:$(cat "$T/proxy.port")
	}
	start_proxy 1
	"$GUEST" --role dest --id man -S "$T/dst.vmm" -s "$size" \
	    -j -q --timeout 240 -w none > "$T/man.dguest.json" \
	    2> "$T/man.dguest.log" &
	GPID=$!
	PIDS+=($GPID)
	ctl src migrate man "$via" --tls-dir "$T/certs" --bandwidth 1M >/dev/null ||
		fail "migrate man was refused"
	"$GUEST" --role source --id man -S "$T/src.vmm" -s "$size" -j -q \
	    --timeout 240 > "$T/man.sguest.json" 2> "$T/man.sguest.log" &
	SPID=$!
	PIDS+=($SPID)
	wait_state dst man postcopy
	ctl dst resume man >/dev/null || fail "resume on the destination was refused"
	for _ in $(seq 100); do
		[ "$(field src man reconnects)" = 1 ] && break
		sleep 0.1
	done
	[ "$(field src man reconnects)" = 1 ] ||
		fail "the source did not reconnect after the destination dropped its channels"
	echo "resume: the destination dropped its channels by request; the source reconnected"
	kill -KILL "$PPID_"
	wait "$PPID_" 2>/dev/null || true
	wait_state src man postcopy-paused
	wait_state dst man postcopy-paused
	sleep 1
	echo "resume: source status: $(field src man state): $(field src man errmsg)"
	echo "resume: destination status: $(field dst man state): $(field dst man errmsg)"
	ctl src status man | grep -q "state: *postcopy-paused - channels lost" ||
		fail "status does not say why the migration is paused"
	v1=$(field dst man pages_valid)
	sleep 1
	v2=$(field dst man pages_valid)
	[ "$v1" = "$v2" ] || fail "pages arrived while paused ($v1 -> $v2)"
	start_proxy 2
	out=$(ctl src resume man "$via") || fail "resume on the source was refused: $out"
	echo "resume: $out (new path $via)"
	wait_state src man postcopy completed
	BANDWIDTH=0
	ctl src set-bandwidth man 0 >/dev/null
	check_migration man "$GPID" "$SPID"
	[ "$(field src man reconnects)" -ge 2 ] || fail "the source did not count the reconnects"
	stop_daemons
	;;
stall)
	# The path stops forwarding without an error (a stalled network) and
	# delivers everything else in pieces of at most 1400 bytes: the
	# no-progress timeout (10 s) pauses both daemons, the source reconnects
	# over a fresh connection, and every page is verified.
	size=${1:-16M}
	start_daemon dst
	start_daemon src
	addr=$(prepare dst st)
	"$PROXY" --listen 127.0.0.1:0 --connect "$addr" --stall-every 8M \
	    --stall-ms 30000 --chunk 1400 --port-file "$T/proxy.port" \
	    > "$T/proxy.log" 2>&1 &
	PPID_=$!
	PIDS+=($PPID_)
	for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
	[ -s "$T/proxy.port" ] || fail "faultproxy did not start"
	via=127.0.0.1:$(cat "$T/proxy.port")
	"$GUEST" --role dest --id st -S "$T/dst.vmm" -s "$size" -j -q \
	    --timeout 240 -w none > "$T/st.dguest.json" 2> "$T/st.dguest.log" &
	GPID=$!
	PIDS+=($GPID)
	ctl src migrate st "$via" --tls-dir "$T/certs" >/dev/null ||
		fail "migrate st was refused"
	"$GUEST" --role source --id st -S "$T/src.vmm" -s "$size" -j -q \
	    --timeout 240 > "$T/st.sguest.json" 2> "$T/st.sguest.log" &
	SPID=$!
	PIDS+=($SPID)
	check_migration st "$GPID" "$SPID"
	grep -q "no progress for" "$T/dst.log" "$T/src.log" ||
		fail "no channel was declared lost for lack of progress"
	echo "stall: $(grep -h "paused: channels lost" "$T/dst.log" "$T/src.log" | head -2 | sed 's/^postcopyd: //')"
	echo "stall: source reconnects $(field src st reconnects)"
	[ "$(field src st reconnects)" -ge 1 ] || fail "the source never reconnected"
	stop_daemons
	;;
restart)
	# kill -9 of the destination daemon mid-postcopy, guest threads
	# faulting: the daemon is started again, the orchestrator (this test)
	# prepares the migration again on the same address, the VMM attaches
	# again with its memfd and userfaultfd (postcopy-guest --reattach), the
	# daemon picks the migration up from its page state file, the source
	# reconnects, and every page is verified.
	size=${1:-256M} wl="--threads 4"
	# Huge pages: one guest thread for 0.2 s (each fault brings its
	# whole huge page at once: four threads had the guest migrated before
	# the kill), then the bulk stream alone at 4 MB/s.
	[ -n "${HUGE_RESTART:-}" ] && wl="--threads 1 --duration 0.2"
	start_daemon dst
	start_daemon src
	addr=$(prepare dst rs)
	"$GUEST" --role dest --id rs -S "$T/dst.vmm" -s "$size" -j -q \
	    --timeout 240 --reattach 60 -w threads $wl ${GUEST_ARGS:-} \
	    > "$T/rs.dguest.json" 2> "$T/rs.dguest.log" &
	GPID=$!
	PIDS+=($GPID)
	ctl src migrate rs "$addr" --tls-dir "$T/certs" --bandwidth 4M >/dev/null ||
		fail "migrate rs was refused"
	"$GUEST" --role source --id rs -S "$T/src.vmm" -s "$size" -j -q \
	    --timeout 240 ${GUEST_ARGS:-} > "$T/rs.sguest.json" \
	    2> "$T/rs.sguest.log" &
	SPID=$!
	PIDS+=($SPID)
	wait_state dst rs postcopy
	if [ -n "${HUGE_RESTART:-}" ]; then
		# Killed the moment a huge page is partial (the bulk stream, at
		# 4 MB/s, takes half a second over each one): the page state
		# file then says which pieces of it had arrived.
		partial=$(huge_kill_partial "$PID_dst" "$T/rs.pcstate" 512) ||
			fail "no partial huge page to kill the daemon on: $partial"
		v1="$(echo $partial | cut -d' ' -f2) whole and $(echo $partial | cut -d' ' -f1) partial huge"
	else
		sleep 0.3
		v1=$(field dst rs pages_valid)
		[ -f "$T/rs.pcstate" ] || fail "no page state file $T/rs.pcstate"
		kill -KILL "$PID_dst"
	fi
	wait "$PID_dst" 2>/dev/null || true
	DAEMONS=(src)
	echo "restart: destination daemon killed (-9) in postcopy with $v1 pages valid"
	wait_state src rs postcopy-paused
	# The dead daemon's sockets are still there: wait for the new ones.
	rm -f "$T/dst.ctl" "$T/dst.vmm"
	start_daemon dst
	out=$(ctl dst prepare rs --listen "$addr" --tls-dir "$T/certs" 2>&1) ||
		fail "prepare rs again after the restart: $out"
	# The rest at full speed: the bulk limit only made room for the kill.
	[ -n "${HUGE_RESTART:-}" ] && { ctl src set-bandwidth rs 0 >/dev/null ||
		fail "set-bandwidth rs 0 refused"; }
	check_migration rs "$GPID" "$SPID"
	grep -q "picked up after a restart" "$T/dst.log" ||
		fail "the restarted daemon did not pick the migration up"
	if [ -n "${HUGE_RESTART:-}" ]; then
		n=$(sed -n 's/.* \([0-9]*\) huge pages were partial at the restart.*/\1/p' "$T/dst.log")
		[ "$n" = "${partial%% *}" ] ||
			fail "the restarted daemon found ${n:-no} partial huge pages, the file had ${partial%% *}"
		echo "restart: $n partial huge pages completed after the restart, every piece verified"
	fi
	echo "restart: $(grep -h "picked up after a restart" "$T/dst.log" | sed 's/^postcopyd: //')"
	echo "restart: source reconnects $(field src rs reconnects)"
	[ ! -e "$T/rs.pcstate" ] || fail "page state file left after completion"
	stop_daemons
	;;
statedir)
	size=${1:-32M}
	SD=$T/state
	mkdir -p "$SD"
	# 32 pages: one 32M guest's file (8192 pages: 4 KiB header, 1 KiB of
	# bitmap, 64 KiB of hashes = 18 pages) fits, a second does not.
	mount -t tmpfs -o size=128k,mode=0700 pcd-state "$SD" 2>/dev/null ||
		skip "cannot mount a tmpfs for the state directory (mount not permitted here)"
	trap 'umount -l "$SD" 2>/dev/null; harness_cleanup' EXIT
	DAEMON_CONF="state_dir = $SD"
	start_daemon dst
	start_daemon src
	alive() { kill -0 "$PID_dst" 2>/dev/null ||
		fail "postcopyd dst died ($1): $(tail -n 2 "$T/dst.log")"; }
	# (a) a full directory: Prepare is refused with the reason.
	dd if=/dev/zero of="$SD/fill" bs=4k 2>/dev/null || true
	if out=$(ctl dst prepare full --listen 127.0.0.1:0 --tls-dir "$T/certs" 2>&1); then
		# Accepted: attaching is where the page state file is written.
		"$GUEST" --role dest --id full -S "$T/dst.vmm" -s "$size" -j -q \
		    --timeout 20 > /dev/null 2> "$T/full.dguest.log" &
		PIDS+=($!)
		sleep 2
		alive "attach of a migration whose state directory is full"
		fail "Prepare with a full state directory was accepted: $out"
	fi
	echo "statedir: full directory: $out"
	grep -q "ENOSPC" <<<"$out" && grep -qF "$SD" <<<"$out" ||
		fail "the refusal does not name the directory and ENOSPC: $out"
	alive "Prepare with a full state directory"
	[ "$(field dst full state 2>/dev/null)" = "" ] || fail "a refused Prepare left a migration"
	rm -f "$SD/fill"
	# (b) room for one file: the second migration is refused, the first
	# completes. The first is slowed (bulk limit, no faulting guest) so
	# its file is still there when the second attaches.
	BANDWIDTH=2M start_migration one "$size" "" -w none
	G1=$GPID S1=$SPID
	for _ in $(seq 200); do [ -e "$SD/one.pcstate" ] && break; sleep 0.05; done
	[ -e "$SD/one.pcstate" ] || fail "no page state file for the first migration"
	addr=$(prepare dst two)
	"$GUEST" --role dest --id two -S "$T/dst.vmm" -s "$size" -j -q \
	    --timeout 60 > "$T/two.dguest.json" 2> "$T/two.dguest.log" &
	G2=$!
	PIDS+=($G2)
	wait_state dst two failed
	msg=$(field dst two errmsg)
	echo "statedir: second migration: $msg"
	grep -q "ENOSPC" <<<"$msg" && grep -qF "$SD" <<<"$msg" ||
		fail "the second migration's error does not name the directory and ENOSPC: $msg"
	alive "a second migration without room for its page state file"
	wait "$G2" 2>/dev/null && fail "the second destination guest was not told" || true
	check_migration one "$G1" "$S1"
	[ ! -e "$SD/one.pcstate" ] || fail "page state file left after completion"
	stop_daemons
	;;
*)
	echo "usage: rel.sh BUILD_DIR load|cuts|resume|restart|stall|statedir ..." >&2
	exit 2
	;;
esac
echo PASS
