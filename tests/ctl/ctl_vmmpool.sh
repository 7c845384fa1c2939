#!/bin/sh
# VMM attaches for ids nobody prepared cannot take the orchestrator's
# places (issue 13 item 10), and a migration whose VMM never comes fails
# with a deadline (item 13). Such VMMs are held in a small pool (at most
# vmm_unclaimed_max, each for vmm_unclaimed_timeout), not made into
# migrations: 16 invented ids, then Prepare still works; the held ones are
# told when their time is up; one held early is claimed by its Prepare and
# its migration completes with every page verified.
. "$(dirname "$0")/lib.sh"
for x in "$POSTCOPYGUEST" "$POSTCOPYCTL" "$POSTCOPYD"; do
	[ -x "$x" ] || { echo "$x not built"; exit 77; }
done
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
cat >"$T/dst.conf" <<EOC
max_migrations = 3
vmm_unclaimed_max = 4
vmm_unclaimed_timeout = 3
vmm_wait_timeout = 2
EOC
cp "$T/dst.conf" "$T/src.conf"
start_daemon dst
start_daemon src

# 16 VMMs with invented ids: 4 held, 12 refused at once.
gpids=""
for i in $(seq 16); do
	"$POSTCOPYGUEST" --role source --id "x$i" -S "$T/dst.vmm" -s 1M -q \
	    --timeout 30 >"$T/x$i.log" 2>&1 &
	gpids="$gpids $!"
done
PIDS="$PIDS $gpids"
sleep 1
for i in 1 2 3; do
	ctl dst prepare "real$i" --listen 127.0.0.1:0 --tls-dir "$T/tls" >/dev/null ||
		fail "Prepare real$i refused after 16 invented VMM attaches"
done
n=$(ctl dst --json status | jq '.migrations | length')
[ "$n" = 3 ] || fail "$n migrations listed, expected the 3 prepared"
refused=$(grep -l "vmm_unclaimed_max" "$T"/x*.log | wc -l)
[ "$refused" = 12 ] || fail "$refused of 16 invented attaches refused, expected 12 (4 held)"
ok "16 invented ids: 4 held, 12 refused (vmm_unclaimed_max); 3 Prepares accepted"

# The held ones are told when vmm_unclaimed_timeout (3 s) is up.
for p in $gpids; do wait "$p" 2>/dev/null || true; done
told=$(grep -l "vmm_unclaimed_timeout" "$T"/x*.log | wc -l)
[ "$told" = 4 ] || fail "$told of 4 held VMMs told of the timeout: $(cat "$T"/x1.log)"
grep -q "held for up to 3 s" "$T/dst.log" || fail "hold not logged"
ok "held VMMs closed after vmm_unclaimed_timeout, told why"

# A prepared migration whose VMM never attaches fails after
# vmm_wait_timeout (2 s), and says so; so does a Migrate.
sleep 1.5
for id in real1 real2 real3; do
	ctl dst --json status "$id" | jq -e '.migrations[0].state == "failed"' >/dev/null ||
		fail "$id still waits for a VMM after vmm_wait_timeout"
done
ctl dst --json status real1 | jq -r '.migrations[0].errmsg' | grep -q "no destination VMM attached within 2 s (vmm_wait_timeout)" ||
	fail "real1: $(ctl dst --json status real1)"
ctl src migrate novmm 127.0.0.1:1 --tls-dir "$T/tls" >/dev/null || fail "migrate novmm"
sleep 2.5
ctl src --json status novmm | jq -r '.migrations[0] | .state + ": " + .errmsg' >"$T/novmm"
grep -q "^failed: no source VMM attached within 2 s (vmm_wait_timeout)" "$T/novmm" ||
	fail "Migrate without a VMM: $(cat "$T/novmm")"
ok "Prepare and Migrate without a VMM fail after vmm_wait_timeout: $(cat "$T/novmm")"

# A destination VMM that attaches before its Prepare is held, then claimed;
# the migration completes and the guest verifies every page.
"$POSTCOPYGUEST" --role dest --id early -S "$T/dst.vmm" -s 16M -w threads \
    -j -q --timeout 60 >"$T/dguest.json" 2>"$T/dguest.log" &
dgpid=$!
PIDS="$PIDS $dgpid"
sleep 0.5
addr=$(ctl dst --json prepare early --listen 127.0.0.1:0 --tls-dir "$T/tls" | jq -r .listen)
ctl dst --json status early | jq -e '.migrations[0].vmm_attached == true' >/dev/null ||
	fail "the held VMM was not claimed by Prepare: $(ctl dst --json status early)"
ctl src migrate early "$addr" --tls-dir "$T/tls" >/dev/null || fail "migrate early"
"$POSTCOPYGUEST" --role source --id early -S "$T/src.vmm" -s 16M -q \
    --timeout 60 >"$T/sguest.log" 2>&1 || fail "source guest: $(tail -3 "$T/sguest.log")"
set +e; wait $dgpid; dg=$?; set -e
[ $dg = 0 ] || fail "destination guest exited $dg: $(tail -3 "$T/dguest.log")"
jq -e '.pages_verified == .pages_total and .mismatched == 0' "$T/dguest.json" >/dev/null ||
	fail "destination guest: $(cat "$T/dguest.json")"
ok "a VMM held before Prepare is claimed; every page verified"
kill -0 "$PID_dst" && kill -0 "$PID_src" || fail "a daemon died"
