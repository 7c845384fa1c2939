#!/bin/sh
# ctl_conventions.sh - postcopyctl's conventions for people and scripts,
# against a real daemon: exit codes 0/1/2/3 as documented; --json before or
# after any subcommand; `list` prints ids one per line; colours only on a
# terminal and never with NO_COLOR (or TERM=dumb); the watch progress bar
# only on a terminal. Terminals are real ptys made by script(1).
. "$(dirname "$0")/../ctl/lib.sh"
for x in "$POSTCOPYCTL" "$POSTCOPYD"; do
	[ -x "$x" ] || { echo "SKIP: $x not built"; exit 77; }
done
command -v jq >/dev/null || { echo "SKIP: jq not installed"; exit 77; }
command -v script >/dev/null || { echo "SKIP: script(1) not installed (package bsdutils)"; exit 77; }
start_daemon d
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
ESC=$(printf '\033')

# exit codes
expect_rc 0 ctl d version
expect_rc 1 ctl d cancel no-such-id
grep -q "NOT_FOUND" "$T/err" || fail "cancel of an unknown id: $(cat "$T/err")"
expect_rc 2 ctl d no-such-command
expect_rc 2 ctl d status a b c
expect_rc 2 ctl d version --listen x
expect_rc 3 "$POSTCOPYCTL" -s "$T/nobody.sock" version
ok "exit codes: 0 ok, 1 NOT_FOUND, 2 usage, 3 no daemon"

# list, and --json on either side of every subcommand
expect_rc 0 ctl d list
[ ! -s "$T/out" ] || fail "list of an empty daemon printed: $(cat "$T/out")"
for id in alpha beta; do
	ctl d prepare $id --listen 127.0.0.1:0 --tls-dir "$T/tls" >/dev/null || fail "prepare $id"
done
[ "$(ctl d list | sort | tr "\n" " ")" = "alpha beta " ] || fail "list: $(ctl d list)"
[ "$(ctl d list --json | jq -r "[.migrations[].id] | sort | join(\",\")")" = alpha,beta ] || fail "list --json"
a=$(ctl d --json status alpha | jq -c '.migrations[0] | {id, state}')
b=$(ctl d status alpha --json | jq -c '.migrations[0] | {id, state}')
[ "$a" = "$b" ] && [ "$a" = '{"id":"alpha","state":"waiting"}' ] || fail "status --json: '$a' vs '$b'"
for c in "version" "check-kernel" "status" "list" "status alpha --libvirt" \
    "set-bandwidth alpha 1M" "resume alpha" "cancel beta" "watch beta"; do
	set +e; ctl d $c --json >"$T/j.out" 2>"$T/j.err"; rc=$?; set -e
	[ $rc -le 1 ] || fail "'$c --json' exited $rc: $(cat "$T/j.err")"
	[ -s "$T/j.out" ] || fail "'$c --json' printed nothing: $(cat "$T/j.err")"
	jq -e . "$T/j.out" >/dev/null 2>&1 || fail "'$c --json' is not JSON: $(head -c 300 "$T/j.out")"
done
ctl d set-bandwidth alpha 1M --json >"$T/j.out" 2>/dev/null || true
jq -e '.status.code == 3' "$T/j.out" >/dev/null || fail "set-bandwidth on a destination, --json: $(cat "$T/j.out")"
ok "list prints ids one per line; --json accepted after every subcommand, JSON out (errors too)"

# colours and the progress bar: a pty with and without NO_COLOR, a pipe
tty_run() {	# OUT ENV... -- postcopyctl args
	out=$1; shift
	env "$@" script -qfec "$POSTCOPYCTL -s $T/d.sock status" "$T/$out" >/dev/null 2>&1 || true
}
tty_run tty-colour TERM=xterm NO_COLOR=
grep -q "${ESC}\[33mcancelled" "$T/tty-colour" || fail "no colour on a terminal: $(cat -v "$T/tty-colour")"
tty_run tty-nocolour TERM=xterm NO_COLOR=1
! grep -q "${ESC}\[3" "$T/tty-nocolour" || fail "colours with NO_COLOR=1: $(cat -v "$T/tty-nocolour")"
grep -q cancelled "$T/tty-nocolour" || fail "status on a terminal: $(cat -v "$T/tty-nocolour")"
tty_run tty-dumb TERM=dumb NO_COLOR=
! grep -q "${ESC}\[3" "$T/tty-dumb" || fail "colours with TERM=dumb: $(cat -v "$T/tty-dumb")"
TERM=xterm ctl d status >"$T/pipe.out"
! grep -q "$ESC" "$T/pipe.out" || fail "escape sequences into a pipe: $(cat -v "$T/pipe.out")"
ok "colours on a terminal only, none with NO_COLOR=1 or TERM=dumb, none into a pipe"

env TERM=xterm script -qfec "$POSTCOPYCTL -s $T/d.sock watch beta" "$T/tty-watch" >/dev/null 2>&1 || true
grep -q '\[\.\.\.\.' "$T/tty-watch" || fail "no progress bar on a terminal: $(cat -v "$T/tty-watch")"
set +e; ctl d watch beta >"$T/pipe-watch" 2>&1; set -e
! grep -q '\[\.\.\.\.' "$T/pipe-watch" || fail "progress bar into a pipe: $(cat -v "$T/pipe-watch")"
! grep -q "$(printf '\r')" "$T/pipe-watch" || fail "carriage returns into a pipe"
grep -q "^beta cancelled" "$T/pipe-watch" || fail "watch into a pipe: $(cat "$T/pipe-watch")"
ok "watch: progress bar on a terminal, plain lines into a pipe"
