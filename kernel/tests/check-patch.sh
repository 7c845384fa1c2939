#!/bin/sh
# check-patch.sh - the carried patch is a faithful, git-am-able mail.
#
#   check-patch.sh KERNEL_DIR
#
# Asserts, on kernel/patches/:
#  - git mailinfo reads the author, address, date, subject, the Fixes: line
#    and the Signed-off-by: line of Axel Rasmussen's original mail;
#  - git apply --stat reads the diff and finds the diffstat the mail states
#    (2 files, 156 insertions, 83 deletions);
#  - git am applies it to a tree made of the patch's own preimage lines and
#    the resulting commit keeps the original authorship and date;
#  - check-series.sh says "applies" (0) for that preimage tree, "does not
#    apply" (1) once the patch is in, and "usage" (2) for a non-kernel dir.
# Each check prints what it found.
set -eu

kdir=$(cd "$1" && pwd)
series="$kdir/patches/series"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# git apply inside a repository subdirectory ignores paths outside it (ctest
# runs us inside the build tree of a checkout): work outside any repository.
cd "$tmp"
export GIT_CEILING_DIRECTORIES="$(dirname "$tmp")"
fail=0

check() {	# check WHAT EXPECTED FOUND
	if [ "$2" = "$3" ]; then
		echo "ok   $1: $3"
	else
		echo "FAIL $1: expected '$2', found '$3'"
		fail=1
	fi
}

command -v git >/dev/null || { echo "SKIP: git is not installed"; exit 77; }

patch=$kdir/patches/$(grep -v '^#' "$series" | grep -v '^$' | head -n 1)
check "series names an existing patch" yes "$([ -f "$patch" ] && echo yes || echo no)"
check "series length" 1 "$(grep -v '^#' "$series" | grep -c -v '^$')"

git mailinfo "$tmp/msg" "$tmp/diff" < "$patch" > "$tmp/info"
field() { sed -n "s/^$1: //p" "$tmp/info"; }
check "mailinfo Author" "Axel Rasmussen" "$(field Author)"
check "mailinfo Email" "axelrasmussen@google.com" "$(field Email)"
check "mailinfo Date" "Thu, 1 Apr 2021 18:37 +0000" "$(field Date)"
check "mailinfo Subject" "userfaultfd/shmem: fix MCOPY_ATOMIC_CONTINUE behavior" "$(field Subject)"
check "body: first line" "Previously, the continue implementation in shmem_mcopy_atomic_pte was" \
	"$(head -n 1 "$tmp/msg")"
check "body: Fixes" 'Fixes: 00da60b9d0a0 ("userfaultfd: support minor fault handling for shmem")' \
	"$(grep '^Fixes:' "$tmp/msg")"
check "body: Signed-off-by" "Signed-off-by: Axel Rasmussen <axelrasmussen@google.com>" \
	"$(grep '^Signed-off-by:' "$tmp/msg")"
check "body: sign-off count" 1 "$(grep -c '^Signed-off-by:' "$tmp/msg")"
check "mailinfo diff: files" "mm/shmem.c mm/userfaultfd.c" \
	"$(sed -n 's|^diff --git a/\([^ ]*\) .*|\1|p' "$tmp/diff" | tr '\n' ' ' | sed 's/ $//')"

stat=$(git apply --stat "$patch" | tail -n 1 | sed 's/^ *//')
check "git apply --stat" "2 files changed, 156 insertions(+), 83 deletions(-)" "$stat"
check "git apply --numstat" "23 33 mm/shmem.c|133 50 mm/userfaultfd.c" \
	"$(git apply --numstat "$patch" | tr '\t' ' ' | tr '\n' '|' | sed 's/|$//')"
check "mail's own diffstat" " 2 files changed, 156 insertions(+), 83 deletions(-)" \
	"$(grep '^ 2 files changed' "$patch")"

# A tree made of the hunks' preimage lines (context and '-' lines, in order)
# is enough for git apply to find every hunk.
mkdir -p "$tmp/tree/mm"
awk -v root="$tmp/tree" '
/^diff --git / { f = root "/" substr($4, 3); next }
/^@@ / { split($2, a, ","); old = (a[2] == "" ? 1 : a[2]); inh = 1; next }
inh && old > 0 {
	c = substr($0, 1, 1)
	if (c == "+") next
	if (c == "-" || c == " ") print substr($0, 2) > f
	else if ($0 == "") print "" > f
	else { print "bad hunk line: " $0 > "/dev/stderr"; exit 1 }
	if (--old == 0) inh = 0
}' "$patch"

rc=0; "$kdir/check-series.sh" "$tmp/tree" > "$tmp/cs.out" 2>&1 || rc=$?
check "check-series.sh on the preimage tree (exit)" 0 "$rc"

cd "$tmp/tree"
git init -q .
git -c user.name=t -c user.email=t@example.org add mm
git -c user.name=t -c user.email=t@example.org commit -q -m preimage
git -c user.name=t -c user.email=t@example.org am -q "$patch"
check "git am: author" "Axel Rasmussen <axelrasmussen@google.com>" "$(git log -1 --format='%an <%ae>')"
check "git am: author date" "2021-04-01T18:37:00+00:00" "$(git log -1 --format=%aI)"
check "git am: subject" "userfaultfd/shmem: fix MCOPY_ATOMIC_CONTINUE behavior" "$(git log -1 --format=%s)"
check "git am: trailers" "Fixes: 00da60b9d0a0 (\"userfaultfd: support minor fault handling for shmem\")|Signed-off-by: Axel Rasmussen <axelrasmussen@google.com>" \
	"$(git log -1 --format=%B | grep -E '^(Fixes|Signed-off-by):' | tr '\n' '|' | sed 's/|$//')"
rc=0; git apply -R --check "$patch" 2>/dev/null || rc=$?
check "git apply -R --check on the result (the patch landed exactly)" 0 "$rc"
cd /

rc=0; "$kdir/check-series.sh" "$tmp/tree" > "$tmp/cs.out" 2>&1 || rc=$?
check "check-series.sh once applied (exit)" 1 "$rc"
rc=0; "$kdir/check-series.sh" "$tmp" > "$tmp/cs.out" 2>&1 || rc=$?
check "check-series.sh on a non-kernel dir (exit)" 2 "$rc"

[ "$fail" -eq 0 ] && echo "all checks passed" || echo "some checks FAILED"
exit "$fail"
