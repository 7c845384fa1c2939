#!/bin/sh
# deb.sh BUILD_DIR - builds the Debian package with cpack from a finished
# build and checks what it holds:
#   - the file list (dpkg-deb -c): daemon, units, sysusers.d/tmpfiles.d
#     snippets, udev rule, README (and the example config once it exists);
#   - the unit installed names the daemon where the package puts it;
#   - Depends (dpkg-deb -f): a package for every shared library the packaged
#     binaries need (readelf NEEDED -> dpkg -S), plus systemd for postinst;
#   - the maintainer scripts parse and run systemd-sysusers/-tmpfiles.
set -eu
build=$(readlink -f "$1")
src=$(readlink -f "$(dirname "$0")/../..")

for t in cpack dpkg-deb dpkg-shlibdeps readelf; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "SKIP: $t not installed (packages cmake, dpkg-dev, binutils)"
		exit 77
	fi
done
tmp=$(mktemp -d /tmp/pcd-deb.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cpack -G DEB -B "$tmp/out" --config "$build/CPackConfig.cmake" >"$tmp/cpack.log" 2>&1 ||
	fail "cpack -G DEB failed: $(cat "$tmp/cpack.log")"
set -- "$tmp"/out/postcopyd_*.deb
[ -f "$1" ] || fail "no postcopyd_*.deb: $(ls "$tmp/out")"
deb=$1
echo "ok: built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/sbin/postcopyd \
	 /lib/systemd/system/postcopyd.service \
	 /lib/systemd/system/postcopyd.socket \
	 /lib/systemd/system/postcopyd-vmm.socket \
	 /usr/lib/sysusers.d/postcopyd.conf \
	 /usr/lib/tmpfiles.d/postcopyd.conf \
	 /lib/udev/rules.d/60-postcopyd-userfaultfd.rules \
	 /usr/share/doc/postcopyd/README.md; do
	grep -qx "$f" "$tmp/files" || fail "$f not in the package:
$(cat "$tmp/files")"
done
if [ -f "$src/daemon/postcopyd.conf.example" ]; then
	grep -qx /usr/share/doc/postcopyd/examples/postcopyd.conf.example "$tmp/files" ||
		fail "example configuration not in the package"
	grep -qx /etc/postcopyd/postcopyd.conf "$tmp/files" ||
		fail "/etc/postcopyd/postcopyd.conf not in the package"
fi
for tool in postcopyctl postcopy-bench postcopy-guest; do
	if [ -x "$build/client/$tool" ]; then
		grep -qx "/usr/bin/$tool" "$tmp/files" || fail "/usr/bin/$tool not in the package"
	fi
done
for page in "$build"/packaging/man/*.[158]; do
	[ -f "$page" ] || continue
	n=$(basename "$page")
	grep -qx "/usr/share/man/man${n##*.}/$n.gz" "$tmp/files" ||
		fail "man page $n not in the package as /usr/share/man/man${n##*.}/$n.gz"
done
grep -qx /usr/share/bash-completion/completions/postcopyctl "$tmp/files" ||
	fail "bash completion of postcopyctl not in the package"
for f in copyright changelog.gz; do
	grep -qx "/usr/share/doc/postcopyd/$f" "$tmp/files" || fail "/usr/share/doc/postcopyd/$f not in the package"
done
py=/usr/lib/python3/dist-packages/postcopyd
if [ -f "$build/client/python/postcopyd/control_pb2.py" ]; then
	for f in __init__ client common_pb2 control_pb2; do
		grep -qx "$py/$f.py" "$tmp/files" || fail "$py/$f.py not in the package"
	done
fi
if grep -E '^/usr/local|/build|__pycache__' "$tmp/files"; then
	fail "build-tree or test files in the package"
fi
echo "ok: dpkg-deb -c: $(grep -cv '/$' "$tmp/files") files, daemon, units, snippets, udev rule, docs"

mkdir "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
exec=$(sed -n 's/^ExecStart=//p' "$tmp/root/lib/systemd/system/postcopyd.service")
[ "$exec" = /usr/sbin/postcopyd ] || fail "installed unit runs '$exec'"
[ -x "$tmp/root$exec" ] || fail "ExecStart=$exec is not in the package"
echo "ok: installed postcopyd.service runs $exec"
if [ -f "$tmp/root$py/control_pb2.py" ] && /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
	v=$(cd / && PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$tmp/root/usr/lib/python3/dist-packages" \
	    /usr/bin/python3 -c 'import postcopyd; print(postcopyd.__version__, len(postcopyd.client.SERVICE.methods))') ||
		fail "the packaged Python client does not import"
	echo "ok: the packaged Python client imports (version, RPCs: $v)"
fi

depends=$(dpkg-deb -f "$deb" Depends)
[ -n "$depends" ] || fail "no Depends: field"
echo "Depends: $depends"
case $depends in *systemd*) ;; *) fail "Depends lacks systemd (sysusers/tmpfiles)";; esac
find "$tmp/root" -type f -perm -u+x | while read -r bin; do
	readelf -d "$bin" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'
done | sort -u >"$tmp/needed"
[ -s "$tmp/needed" ] || fail "no shared libraries found in the packaged binaries"
while read -r so; do
	path=$(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }')
	[ -n "$path" ] || fail "cannot locate $so"
	# usrmerge: dpkg may know the file under /lib or /usr/lib.
	real=$(readlink -f "$path")
	pkg=
	for p in "$path" "$real" "${real#/usr}" "/usr$path"; do
		pkg=$(dpkg -S "$p" 2>/dev/null | head -n1 | cut -d: -f1)
		[ -z "$pkg" ] || break
	done
	[ -n "$pkg" ] || fail "no package owns $path ($so)"
	printf '%s\n' "$depends" | tr ',|' '\n\n' | sed 's/^ *//; s/ .*//' | grep -qx "$pkg" ||
		fail "$so is in $pkg, which Depends: lacks"
	echo "ok: $so -> $pkg in Depends"
done <"$tmp/needed"

mkdir "$tmp/ctl"
dpkg-deb -e "$deb" "$tmp/ctl"
for s in postinst prerm postrm; do
	[ -x "$tmp/ctl/$s" ] || fail "maintainer script $s missing or not executable"
	sh -n "$tmp/ctl/$s" || fail "$s does not parse"
done
if grep -qx /etc/postcopyd/postcopyd.conf "$tmp/files"; then
	grep -qx /etc/postcopyd/postcopyd.conf "$tmp/ctl/conffiles" ||
		fail "/etc/postcopyd/postcopyd.conf is not a conffile"
fi
grep -q 'systemd-sysusers .*postcopyd.conf' "$tmp/ctl/postinst" || fail "postinst does not run systemd-sysusers"
grep -q 'systemd-tmpfiles .*--create postcopyd.conf' "$tmp/ctl/postinst" || fail "postinst does not run systemd-tmpfiles"
echo "ok: postinst runs systemd-sysusers and systemd-tmpfiles; prerm/postrm parse"
