#!/bin/bash
# man.sh BUILD_DIR - the man pages built from packaging/man/*.scd:
#   - `man --warnings -l` renders each without a warning (and a page with a
#     roff error is caught: the check can fail);
#   - every option the program's --help lists (long and short) is in its
#     page; for postcopyctl also every command and every option of each
#     command's --help, and its exit codes and NO_COLOR; for
#     postcopyd.conf(5) every key `postcopyd -nn` prints. A page missing an
#     option fails (checked against a copy with one option removed).
set -euo pipefail
B=$(readlink -f "$1")
M=$B/packaging/man
SRC=$(readlink -f "$(dirname "$0")/../..")
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v man >/dev/null || skip "man is not installed (Debian package man-db)"
[ -f "$M/postcopyd.8" ] || skip "man pages not built: scdoc is not installed (Debian package scdoc)"
T=$(mktemp -d /tmp/pcd-man.XXXXXX)
trap 'rm -rf "$T"' EXIT
export LC_ALL=C MANWIDTH=1000	# ASCII hyphens, no line breaks inside options

# render PAGE OUT: plain text of a page; fails on any warning.
render() {
	man --warnings -l "$1" >"$2.raw" 2>"$2.warn" || fail "man -l $1 exited $?: $(cat "$2.warn")"
	[ ! -s "$2.warn" ] || fail "man --warnings -l $(basename "$1"): $(cat "$2.warn")"
	col -bx <"$2.raw" >"$2"
}

# options TEXT: the long (--x) and short (-x, as "-x,") options a help lists.
options() {
	grep -oE -- '(^|[][ ,(|])--[a-z0-9][a-z0-9-]*' "$1" | sed 's/^[^-]*//' | sort -u
	grep -oE -- '^ +-[A-Za-z0-9],' "$1" | tr -d ' ,' | sort -u
}

# missing PAGE_TEXT HELP_TEXT: prints the options of HELP missing in PAGE.
missing() {
	local o
	for o in $(options "$2"); do
		grep -qE -- "(^|[^a-z0-9-])$o([^a-z0-9-]|\$)" "$1" || echo "$o"
	done
}

# check PROGRAM PAGE HELP_FILE
check() {
	local m
	m=$(missing "$T/$2.txt" "$3")
	[ -z "$m" ] || fail "$2: options that '$1 --help' lists are not in the page: $(echo $m)"
	echo "ok: $2: all $(options "$3" | wc -l) options of $1 --help are in the page"
}

n=0
for page in "$M"/*.[158]; do
	render "$page" "$T/$(basename "$page").txt"
	n=$((n + 1))
done
[ $n -ge 5 ] || fail "only $n man pages built"
for p in postcopyd.8 postcopyd.conf.5 postcopyctl.1 postcopy-bench.1 postcopy-guest.1; do
	[ -f "$T/$p.txt" ] || fail "no $p"
done
echo "ok: $n pages render with man --warnings -l and no warning"
printf '.TH BAD 1\n.SH NAME\nbad \\- a page with a roff error\n.BOGUS\n' >"$T/bad.1"
if (render "$T/bad.1" "$T/bad.txt") 2>/dev/null; then fail "a page with a roff error rendered without a warning"; fi
echo "ok: a page with a roff error is caught"

"$B/daemon/postcopyd" --help >"$T/postcopyd.help" 2>&1 || true
check postcopyd postcopyd.8 "$T/postcopyd.help"
"$B/client/postcopy-bench" --help >"$T/bench.help" 2>&1 || true
check postcopy-bench postcopy-bench.1 "$T/bench.help"
"$B/client/postcopy-guest" --help >"$T/guest.help" 2>&1 || true
check postcopy-guest postcopy-guest.1 "$T/guest.help"
"$SRC/client/scripts/postcopy-demo" --help >"$T/demo.help" 2>&1 || true
check postcopy-demo postcopy-demo.1 "$T/demo.help"

CTL=$B/client/postcopyctl
"$CTL" --help >"$T/ctl.help"
check postcopyctl postcopyctl.1 "$T/ctl.help"
cmds=$(sed -n '/^Commands:/,/^$/p' "$T/ctl.help" | awk 'NR > 1 && NF { print $1 }')
[ -n "$cmds" ] || fail "no commands in postcopyctl --help"
for c in $cmds; do
	grep -qE "^ +$c( |\$)" "$T/postcopyctl.1.txt" || fail "postcopyctl.1: command '$c' is not described"
	"$CTL" "$c" --help >"$T/ctl-$c.help"
	check "postcopyctl $c" postcopyctl.1 "$T/ctl-$c.help"
done
echo "ok: postcopyctl.1 describes all $(echo $cmds | wc -w) commands: $(echo $cmds)"
sed -n '/^EXIT STATUS/,/^[A-Z]/p' "$T/postcopyctl.1.txt" >"$T/exit.txt"
for rc in 0 1 2 3; do
	grep -qE "^ +$rc\$" "$T/exit.txt" || fail "postcopyctl.1: exit status $rc not documented"
done
grep -q "NO_COLOR" "$T/postcopyctl.1.txt" || fail "postcopyctl.1: NO_COLOR not documented"
echo "ok: postcopyctl.1 documents exit codes 0-3 and NO_COLOR"

"$B/daemon/postcopyd" -nn -c /dev/null >"$T/conf.txt" 2>&1 || fail "postcopyd -nn: $(cat "$T/conf.txt")"
keys=$(sed -n 's/^\([a-z_]*\) = .*/\1/p' "$T/conf.txt")
[ -n "$keys" ] || fail "postcopyd -nn printed no keys"
for k in $keys; do
	grep -qE "^ +$k = " "$T/postcopyd.conf.5.txt" || fail "postcopyd.conf.5: key '$k' is not described"
done
echo "ok: postcopyd.conf.5 describes all $(echo $keys | wc -w) keys of postcopyd -nn"

# The option check can fail: the same page without --interval.
grep -v -- '--interval' "$T/postcopyctl.1.txt" >"$T/cut.txt"
[ "$(missing "$T/cut.txt" "$T/ctl-watch.help")" = "--interval" ] ||
	fail "a page without --interval was not caught"
echo "ok: a page lacking an option that --help lists is caught"
