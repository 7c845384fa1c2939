#!/bin/sh
# check-series.sh - does the carried patch series apply to a kernel tree?
#
#   kernel/check-series.sh KERNEL_TREE
#
# Runs `git apply --check` of every patch named in kernel/patches/series,
# in order and cumulatively (one git apply invocation, so a later patch sees
# the earlier ones applied), against KERNEL_TREE. Nothing in the tree is
# modified. KERNEL_TREE may be a git checkout or a plain unpacked source tree.
#
# Exit status: 0 the whole series applies; 1 it does not (git apply says
# which hunk failed); 2 usage error or KERNEL_TREE is not a kernel tree.
#
# See kernel/README.md for which kernels need the series at all: mainline
# 5.14 and later already carry the reworked upstream version, so on those the
# carried v4 patch is expected NOT to apply.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
patches="$here/patches"

if [ $# -ne 1 ]; then
	echo "usage: $0 KERNEL_TREE" >&2
	exit 2
fi
tree=$1
if [ ! -f "$tree/mm/userfaultfd.c" ] || [ ! -f "$tree/mm/shmem.c" ]; then
	echo "check-series: $tree: not a kernel source tree (no mm/userfaultfd.c or mm/shmem.c)" >&2
	exit 2
fi
if [ ! -f "$patches/series" ]; then
	echo "check-series: $patches/series: missing" >&2
	exit 2
fi

version=unknown
if [ -f "$tree/Makefile" ]; then
	version=$(awk -F' *= *' '
		$1 == "VERSION" { v = $2 } $1 == "PATCHLEVEL" { p = $2 }
		$1 == "SUBLEVEL" { s = $2 } $1 == "EXTRAVERSION" { e = $2 }
		END { if (v != "") printf "%s.%s.%s%s", v, p, s, e }' "$tree/Makefile")
	[ -n "$version" ] || version=unknown
fi

# The series file: one patch per line; blank lines and # comments ignored.
set --
while IFS= read -r line || [ -n "$line" ]; do
	case $line in
	''|'#'*) continue ;;
	esac
	name=${line%%[	 ]*}
	if [ ! -f "$patches/$name" ]; then
		echo "check-series: series names $name, which is not in $patches" >&2
		exit 2
	fi
	set -- "$@" "$patches/$name"
done < "$patches/series"
if [ $# -eq 0 ]; then
	echo "check-series: $patches/series lists no patch" >&2
	exit 2
fi

echo "kernel tree: $tree (version $version)"
for p in "$@"; do
	echo "  patch: $(basename "$p")"
done

# Run outside any enclosing repository so paths are taken relative to the
# tree itself even when it is a subdirectory of some other git checkout.
if (cd "$tree" && GIT_CEILING_DIRECTORIES=$(dirname "$(pwd)") \
	git apply --check --verbose "$@"); then
	echo "check-series: the series applies to $tree"
	exit 0
fi
echo "check-series: the series does NOT apply to $tree (see kernel/README.md" \
	"for which kernels need it)" >&2
exit 1
