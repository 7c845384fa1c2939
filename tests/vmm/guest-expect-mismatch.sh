#!/bin/sh
# Runs postcopy-guest with a page delivered wrong on purpose and passes only
# if the guest notices: exit status 1 and a MISMATCH report naming the page.
# usage: guest-expect-mismatch.sh POSTCOPY-GUEST PAGE [ARGS...]
guest=$1 page=$2
shift 2
out=$("$guest" --local --local-corrupt "$page" -q "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ $rc -eq 77 ]; then exit 77; fi
if [ $rc -ne 1 ]; then
	echo "expected exit status 1 (mismatch), got $rc" >&2
	exit 1
fi
if ! printf '%s\n' "$out" | grep -q "MISMATCH verify: page $page "; then
	echo "no MISMATCH report for page $page" >&2
	exit 1
fi
echo "ok: the corrupted page $page was caught"
