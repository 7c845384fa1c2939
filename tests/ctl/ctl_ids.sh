#!/bin/sh
# Migration ids a peer cannot smuggle (issue 13 item 12): an id with a NUL
# inside ("a\0b" used to become "a") or with invalid UTF-8 (used to be
# echoed into replies standard protobuf parsers refuse) is refused by
# control calls and VMM attaches, with a message that says why; every
# answer is valid UTF-8. The wire Hello's id is tests/unit test_wire.
. "$(dirname "$0")/lib.sh"
start_daemon a
"$RAWFRAME" --ids "$T/a.sock" "$T/a.vmm" || fail "bad ids"
kill -0 "$PID_a" || fail "daemon died"
ctl a --json status | jq -e '.migrations | length == 0' >/dev/null ||
	fail "a migration was made from a bad id"
ok "bad ids refused"
