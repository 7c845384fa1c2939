#!/bin/bash
# completion.sh SOURCE_DIR - the bash completion of postcopyctl, sourced
# into this shell (after bash-completion's own script when it is
# installed, as an interactive shell would) and driven through
# COMP_WORDS/COMP_CWORD against a real daemon: commands and options as
# --help lists them, migration ids from `postcopyctl list` on the daemon
# the command line names.
set -u
SRC=$(readlink -f "$1")
. "$SRC/tests/ctl/lib.sh"
set +e
for x in "$POSTCOPYCTL" "$POSTCOPYD"; do
	[ -x "$x" ] || { echo "SKIP: $x not built"; exit 77; }
done
BC=/usr/share/bash-completion/bash_completion
if [ -z "${PCD_NO_BC:-}" ] && [ -f "$BC" ]; then
	. "$BC"
	echo "with bash-completion's $BC"
else
	echo "without bash-completion (${PCD_NO_BC:+asked; }the completion's own fallback)"
fi
. "$SRC/packaging/completion/postcopyctl" || fail "cannot source the completion"
[ "$(complete -p postcopyctl)" = "complete -F _postcopyctl postcopyctl" ] ||
	fail "postcopyctl is not bound: $(complete -p postcopyctl 2>&1)"

start_daemon d
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
for id in vm-alpha vm-beta other; do
	ctl d prepare $id --listen 127.0.0.1:0 --tls-dir "$T/tls" >/dev/null || fail "prepare $id"
done

# comp WORD... : what completing the last word offers, sorted, one line.
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_postcopyctl "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
	printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
# expect WANT WORD...
expect() {
	local want=$1; shift
	local got
	got=$(comp "$@")
	[ "$got" = "$want" ] || fail "completing '$*': got '$got', want '$want'"
	echo "ok: '${*/#$POSTCOPYCTL/postcopyctl}' -> $got"
}

C=$POSTCOPYCTL
cmds=$("$C" --help | sed -n '/^Commands:/,/^$/ s/^  \([a-z][a-z-]*\).*/\1/p' | sort | tr '\n' ' ')
expect "$(echo $cmds help | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')" "$C" ""
expect "set-bandwidth start-postcopy status" "$C" s
expect "vm-alpha" "$C" -s "$T/d.sock" start-postcopy vm-a
expect "--peer-name --postcopy-only --precopy" "$C" migrate x y --p
expect "" "$C" migrate x y --rounds ""
expect "check-kernel" "$C" -s "$T/d.sock" ch
expect "other vm-alpha vm-beta" "$C" -s "$T/d.sock" cancel ""
expect "vm-alpha vm-beta" "$C" --socket "$T/d.sock" watch vm
expect "vm-alpha vm-beta" "$C" -s "$T/d.sock" --json status vm-
expect "vm-beta" "$C" -s "$T/d.sock" set-bandwidth vm-b
expect "" "$C" -s "$T/d.sock" set-bandwidth vm-beta ""
expect "" "$C" -s "$T/d.sock" migrate vm-alpha ""
expect "" "$C" -s "$T/d.sock" version ""
POSTCOPYD_SOCKET=$T/d.sock expect "other" "$C" resume o
expect "--domain --help --json --libvirt-uri --listen --peer-name --tls-dir" "$C" prepare x --
expect "--interval" "$C" watch vm-alpha --i
expect "--connect --help --json --socket --timeout --tls-dir" "$C" --
expect "--connect --help --json --socket --timeout --tls-dir -T -c -h -j -s -t" "$C" -
expect "" "$C" prepare x --listen ""
expect "cancel check-kernel" "$C" help c
mkdir -p "$T/tlsdir-x"
expect "$T/tlsdir-x" "$C" --tls-dir "$T/tlsdir-"
# A daemon without migrations, or none at all: nothing offered, no error.
expect "" "$C" -s "$T/nobody.sock" cancel ""

# Once more without bash-completion's helpers (its own fallback).
if [ -z "${PCD_NO_BC:-}" ] && [ -f "$BC" ]; then
	PCD_NO_BC=1 bash "$0" "$@" || exit 1
fi
