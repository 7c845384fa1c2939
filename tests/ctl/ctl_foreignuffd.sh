#!/bin/sh
# A userfaultfd from another process is refused at attach (issue 13 item
# 11): it acts on that process's memory, so the daemon checks the uffd
# against the layout before it answers (registers the range through it and
# looks for the registration in the VMM's own mappings), refuses with a
# message that says what is wrong, and leaves the prepared migration
# usable: a correct attach afterwards migrates with every page verified.
. "$(dirname "$0")/lib.sh"
for x in "$POSTCOPYGUEST" "$FOREIGNUFFD"; do
	[ -x "$x" ] || { echo "$x not built"; exit 77; }
done
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
[ -e /dev/userfaultfd ] || [ "$(id -u)" = 0 ] ||
    [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ] ||
	{ echo "userfaultfd is not available to this user"; exit 77; }
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
start_daemon dst
start_daemon src
addr=$(ctl dst --json prepare fu --listen 127.0.0.1:0 --tls-dir "$T/tls" | jq -r .listen)

for how in forked unmapped; do
	"$FOREIGNUFFD" "$T/dst.vmm" fu 16M $how >"$T/$how.out" 2>&1 ||
		fail "uffd of a $how child accepted: $(cat "$T/$how.out")"
	grep -q "refused: .*another process" "$T/$how.out" ||
		fail "refusal does not say what is wrong: $(cat "$T/$how.out")"
	echo "$how: $(cat "$T/$how.out")"
	ctl dst --json status fu | jq -e '.migrations[0].state == "waiting"' >/dev/null ||
		fail "migration not left usable: $(ctl dst --json status fu)"
done
ok "foreign userfaultfds refused, migration still waiting"

"$POSTCOPYGUEST" --role dest --id fu -S "$T/dst.vmm" -s 16M -w threads \
    -j -q --timeout 60 >"$T/dguest.json" 2>"$T/dguest.log" &
dgpid=$!
PIDS="$PIDS $dgpid"
ctl src migrate fu "$addr" --tls-dir "$T/tls" >/dev/null || fail "migrate fu"
"$POSTCOPYGUEST" --role source --id fu -S "$T/src.vmm" -s 16M -q \
    --timeout 60 >"$T/sguest.log" 2>&1 || fail "source guest: $(tail -3 "$T/sguest.log")"
set +e; wait $dgpid; dg=$?; set -e
[ $dg = 0 ] || fail "destination guest exited $dg: $(tail -3 "$T/dguest.log")"
jq -e '.pages_verified == .pages_total and .mismatched == 0' "$T/dguest.json" >/dev/null ||
	fail "destination guest: $(cat "$T/dguest.json")"
ok "a correct attach afterwards: migrated, every page verified"

# SetBandwidth on a migration that is over is refused, with the reason.
for _ in $(seq 100); do
	[ "$(ctl src --json status fu | jq -r '.migrations[0].state')" = completed ] && break
	sleep 0.05
done
expect_rc 1 ctl src set-bandwidth fu 1M
grep -q "FAILED_PRECONDITION: migration 'fu' is completed: it has no bulk stream left to limit" "$T/err" ||
	fail "set-bandwidth on a completed migration: $(cat "$T/out" "$T/err")"
ok "set-bandwidth on a completed migration refused: $(cat "$T/err")"
