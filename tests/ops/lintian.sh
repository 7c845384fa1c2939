#!/bin/sh
# lintian.sh BUILD_DIR - builds the Debian package into BUILD_DIR/pkg with
# cpack (as README's "Running as a service" does) and runs
# `lintian build/pkg/postcopyd_*.deb`: no error, no warning. A tag the
# package keeps on purpose is in packaging/debian/lintian-overrides with
# the reason; lintian reports those as overridden (shown here, N: lines).
set -eu
build=$(readlink -f "$1")
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in lintian cpack dpkg-deb dpkg-shlibdeps; do
	command -v "$t" >/dev/null 2>&1 ||
		{ echo "SKIP: $t not installed (Debian packages lintian, cmake, dpkg-dev)"; exit 77; }
done
out=$build/pkg
rm -f "$out"/postcopyd_*.deb
cpack -G DEB -B "$out" --config "$build/CPackConfig.cmake" >"$out.cpack.log" 2>&1 ||
	fail "cpack -G DEB failed: $(tail -n 20 "$out.cpack.log")"
set -- "$out"/postcopyd_*.deb
[ -f "$1" ] || fail "cpack made no postcopyd_*.deb in $out"
deb=$1
echo "lintian $(lintian --version | awk '{ print $2 }') on $deb:"
# --fail-on error,warning: the exit status says whether any E: or W: tag
# is left; overridden tags are listed (--show-overrides) but do not count.
set +e
lintian --fail-on error,warning --show-overrides "$deb" >"$out.lintian" 2>&1
rc=$?
set -e
grep -v 'running with root privileges is not recommended' "$out.lintian" || true
[ $rc -eq 0 ] || fail "lintian exited $rc"
if grep -Eq '^[EW]: ' "$out.lintian"; then
	fail "lintian reports errors or warnings"
fi
n=$(grep -c '^O: ' "$out.lintian" || true)
if [ "$n" -eq 0 ]; then
	echo "ok: lintian: no errors, no warnings, nothing overridden"
else
	echo "ok: lintian: no errors, no warnings ($n overridden, each with its reason in packaging/debian/lintian-overrides)"
fi
