#!/bin/sh
# Config golden tests: `postcopyd -nn -c NAME.conf` for every
# configs/NAME.conf must print exactly configs/NAME.out (stdout, stderr and
# the exit status). UPDATE=1 rewrites the .out files from what it prints.
set -eu
dir=$(cd "$(dirname "$0")/configs" && pwd)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
n=0; bad=0
cd "$dir"
for conf in *.conf; do
	name=${conf%.conf}
	set +e
	"$POSTCOPYD" -nn -c "$conf" >"$tmp" 2>&1
	echo "exit $?" >>"$tmp"
	set -e
	if [ "${UPDATE:-}" = 1 ]; then
		cp "$tmp" "$name.out"
	elif ! diff -u "$name.out" "$tmp"; then
		echo "FAIL: $conf" >&2
		bad=$((bad + 1))
	fi
	n=$((n + 1))
done
[ -f "$dir/good-empty.out" ] || { echo "FAIL: no golden files" >&2; exit 1; }

# The command line overrides the file, and its errors are named too.
out=$("$POSTCOPYD" -nn -c good-full.conf -s /tmp/override.sock -l error)
echo "$out" | grep -qx "control_socket = /tmp/override.sock" || { echo "FAIL: -s does not override" >&2; bad=$((bad + 1)); }
echo "$out" | grep -qx "log_level = error" || { echo "FAIL: -l does not override" >&2; bad=$((bad + 1)); }
set +e
out=$("$POSTCOPYD" -n -c good-full.conf -l loud 2>&1); rc=$?
set -e
[ $rc = 1 ] && echo "$out" | grep -q "^command line: log_level: unknown level 'loud'" || { echo "FAIL: bad -l: $rc $out" >&2; bad=$((bad + 1)); }
out=$("$POSTCOPYD" -n -c good-full.conf)
[ "$out" = "configuration OK" ] || { echo "FAIL: -n prints '$out'" >&2; bad=$((bad + 1)); }
set +e
out=$("$POSTCOPYD" -n -c missing.conf 2>&1); rc=$?
set -e
[ $rc = 1 ] && [ "$out" = "missing.conf: cannot open: No such file or directory" ] || { echo "FAIL: missing file: $rc $out" >&2; bad=$((bad + 1)); }

# The shipped example is all comments: it means the defaults.
"$POSTCOPYD" -nn -c "$dir/../../../daemon/postcopyd.conf.example" >"$tmp" 2>&1 || { echo "FAIL: example config" >&2; bad=$((bad + 1)); }
echo "exit 0" >>"$tmp"
diff -u good-empty.out "$tmp" || { echo "FAIL: example config is not the defaults" >&2; bad=$((bad + 1)); }

echo "$n config files, $bad failures"
[ $bad = 0 ]
