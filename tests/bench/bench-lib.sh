# bench-lib.sh - sourced by the postcopy-bench tests: skips (77) without jq
# or userfaultfd access, and makes $tmp, removed on exit.
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
[ -r /dev/userfaultfd ] || [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ] ||
	[ "$(id -u)" -eq 0 ] || { echo "SKIP: no userfaultfd access"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
