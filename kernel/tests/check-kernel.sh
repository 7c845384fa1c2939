#!/bin/sh
# check-kernel.sh - `postcopyd --check-kernel` prints one line per feature
# with its state and exits 0 when all are present, 1 when one is not. The
# precopy dirty-tracking line (WP_ASYNC, PAGEMAP_SCAN; Linux >= 6.7) is
# reported but optional: it never changes the exit code.
#
#   check-kernel.sh PATH/TO/postcopyd
#
# As root (this machine, kernel 6.18): every feature present, exit 0.
# Then the same binary as user nobody, who may not create a userfaultfd
# (/dev/userfaultfd is 0600 root, vm.unprivileged_userfaultfd=0): the
# userfaultfd line says MISSING with the reason, the rest "not checked",
# exit 1 and a pointer to kernel/README.md.
set -eu
pcd=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

check() {	# check WHAT EXPECTED FOUND
	if [ "$2" = "$3" ]; then
		echo "ok   $1: $3"
	else
		echo "FAIL $1: expected '$2', found '$3'"
		fail=1
	fi
}

features="userfaultfd
UFFDIO_API
UFFD_FEATURE_MISSING_SHMEM
UFFD_FEATURE_MINOR_SHMEM
UFFDIO_REGISTER MISSING|MINOR on memfd
UFFDIO_CONTINUE
UFFDIO_COPY
UFFDIO_WAKE"

if [ "$(id -u)" -ne 0 ] && [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ]; then
	echo "SKIP: not root and vm.unprivileged_userfaultfd is not 1: cannot create a userfaultfd here"
	exit 77
fi

rc=0; "$pcd" --check-kernel > "$tmp/out" 2> "$tmp/err" || rc=$?
echo "--- postcopyd --check-kernel (uid $(id -u)):"; cat "$tmp/out" "$tmp/err"
check "exit code" 0 "$rc"
check "line count" 12 "$(wc -l < "$tmp/out" | tr -d ' ')"
echo "$features" | while IFS= read -r f; do
	state=$(grep -F "$f: " "$tmp/out" | head -n 1 | sed "s/^.*: \([a-zA-Z ]*\) (.*/\1/")
	if [ "$state" = present ]; then echo "ok   $f: present"; else echo "FAIL $f: '$state'"; echo x >> "$tmp/bad"; fi
done
[ -f "$tmp/bad" ] && fail=1
kmaj=$(uname -r | cut -d. -f1); kmin=$(uname -r | cut -d. -f2)
pre=$(grep '^precopy dirty tracking (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN): ' "$tmp/out" | sed 's/^[^:]*: \([A-Za-z]*\) (.*/\1/')
if [ "$kmaj" -gt 6 ] || { [ "$kmaj" -eq 6 ] && [ "$kmin" -ge 7 ]; }; then
	check "precopy line (kernel >= 6.7)" present "$pre"
else
	check "precopy line (kernel < 6.7)" MISSING "$pre"
	check "precopy reason names 6.7" 1 "$(grep -c '^precopy.*Linux >= 6.7' "$tmp/out")"
fi
check "kernel line" "kernel: $(uname -r)" "$(grep '^kernel: ' "$tmp/out")"
check "shmem THP line" 1 "$(grep -c '^shmem THP: ' "$tmp/out")"
check "result line" "result: all 8 features present" "$(tail -n 1 "$tmp/out")"
check "stderr empty" "" "$(cat "$tmp/err")"

if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null &&
    [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 0 ]; then
	cp "$pcd" "$tmp/postcopyd"
	chmod 755 "$tmp" "$tmp/postcopyd"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$tmp/postcopyd" --check-kernel > "$tmp/out" 2> "$tmp/err" || rc=$?
	echo "--- postcopyd --check-kernel as nobody:"; cat "$tmp/out" "$tmp/err"
	check "unprivileged: exit code" 1 "$rc"
	check "unprivileged: line count" 12 "$(wc -l < "$tmp/out" | tr -d ' ')"
	check "unprivileged: userfaultfd line" "userfaultfd: MISSING" \
	    "$(grep '^userfaultfd: ' "$tmp/out" | cut -d'(' -f1 | sed 's/ $//')"
	check "unprivileged: reason names EPERM" 1 "$(grep -c '^userfaultfd: MISSING (Operation not permitted' "$tmp/out")"
	check "unprivileged: not checked" 7 "$(grep -c ': not checked (' "$tmp/out")"
	check "unprivileged: precopy line" 1 "$(grep -c '^precopy dirty tracking (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN): MISSING (precopy.s dirty tracking could not be set up: userfaultfd: Operation not permitted' "$tmp/out")"
	check "unprivileged: result line" "result: 8 of 8 features not present; see kernel/README.md" \
	    "$(tail -n 1 "$tmp/out")"
else
	echo "note: the unprivileged (exit 1) half needs root, setpriv and vm.unprivileged_userfaultfd=0; not run"
fi

[ "$fail" -eq 0 ] && echo "all checks passed" || echo "some checks FAILED"
exit "$fail"
