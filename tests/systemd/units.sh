#!/bin/sh
# units.sh SYSTEMD_DIR POSTCOPYD - the unit files and snippets, checked
# offline (no running systemd, no D-Bus: works in containers and chroots):
#   - systemd-analyze verify: clean (no output at all);
#   - systemd-analyze security --offline=true: overall exposure <= 2.0;
#   - systemd-sysusers / systemd-tmpfiles --root=TMP: the postcopyd user and
#     groups, /run/postcopyd and /etc/postcopyd come out as intended;
#   - the udev rule hands /dev/userfaultfd to the userfaultfd group.
set -eu
src=$(readlink -f "$1")
daemon=$(readlink -f "$2")
max_exposure=2.0

for t in systemd-analyze systemd-sysusers systemd-tmpfiles; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "SKIP: $t not installed (package systemd)"
		exit 77
	fi
done

tmp=$(mktemp -d /tmp/pcd-units.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# verify: the units as installed, except that ExecStart= names the daemon
# just built (verify checks that the binary exists and is executable).
mkdir "$tmp/units"
sed "s|^ExecStart=/usr/sbin/postcopyd|ExecStart=$daemon|" \
	"$src/postcopyd.service" >"$tmp/units/postcopyd.service"
cp "$src/postcopyd.socket" "$src/postcopyd-vmm.socket" "$tmp/units/"
grep -q "^ExecStart=$daemon\$" "$tmp/units/postcopyd.service" ||
	fail "postcopyd.service has no ExecStart=/usr/sbin/postcopyd line"
out=$(cd "$tmp/units" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify \
	"$tmp/units/postcopyd.service" "$tmp/units/postcopyd.socket" \
	"$tmp/units/postcopyd-vmm.socket" 2>&1) ||
	fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify is not clean: $out"
echo "ok: systemd-analyze verify postcopyd.service postcopyd.socket postcopyd-vmm.socket: clean"

# security: the unit from the source tree, as the README quotes it.
out=$(cd "$src" && systemd-analyze security --offline=true \
	--no-pager postcopyd.service 2>&1) || true
line=$(printf '%s\n' "$out" | grep 'Overall exposure level for postcopyd.service:') ||
	fail "no 'Overall exposure level' line in: $out"
level=$(printf '%s\n' "$line" | sed -n 's/.*postcopyd\.service: \([0-9][0-9.]*\).*/\1/p')
[ -n "$level" ] || fail "cannot parse the exposure level from: $line"
awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l + 0 <= m + 0) }' ||
	fail "exposure $level > $max_exposure:
$(printf '%s\n' "$out" | grep '✗')"
echo "ok: systemd-analyze security: exposure $level <= $max_exposure"

# The privileges the issue rules out must stay out.
for bad in CAP_SYS_PTRACE unprivileged_userfaultfd 'PrivateDevices=no'; do
	! grep -v '^#' "$src/postcopyd.service" | grep -q "$bad" ||
		fail "postcopyd.service must not use $bad"
done
grep -q '^DeviceAllow=/dev/userfaultfd rw$' "$src/postcopyd.service" ||
	fail "postcopyd.service lacks DeviceAllow=/dev/userfaultfd rw"
grep -q '^SupplementaryGroups=userfaultfd$' "$src/postcopyd.service" ||
	fail "postcopyd.service lacks SupplementaryGroups=userfaultfd"

# sysusers: in an empty root, the user, its group and the device group.
mkdir -p "$tmp/root/etc"
systemd-sysusers --root="$tmp/root" "$src/postcopyd.sysusers" ||
	fail "systemd-sysusers rejected postcopyd.sysusers"
grep -q '^postcopyd:x:[0-9]*:[0-9]*:postcopyd live migration daemon:/run/postcopyd:/usr/sbin/nologin$' \
	"$tmp/root/etc/passwd" || fail "no postcopyd user: $(cat "$tmp/root/etc/passwd")"
grep -q '^postcopyd:x:' "$tmp/root/etc/group" || fail "no postcopyd group"
grep -q '^userfaultfd:x:[0-9]*:postcopyd$' "$tmp/root/etc/group" ||
	fail "postcopyd is not a member of userfaultfd: $(cat "$tmp/root/etc/group")"
uid=$(awk -F: '$1 == "postcopyd" { print $3 }' "$tmp/root/etc/passwd")
[ "$uid" -lt 1000 ] || fail "postcopyd uid $uid is not a system uid"
echo "ok: systemd-sysusers: postcopyd (uid $uid), member of userfaultfd"

# tmpfiles: the directories, with the owners from that root's passwd.
systemd-tmpfiles --root="$tmp/root" --create "$src/postcopyd.tmpfiles" ||
	fail "systemd-tmpfiles rejected postcopyd.tmpfiles"
gid=$(awk -F: '$1 == "postcopyd" { print $3 }' "$tmp/root/etc/group")
st=$(stat -c '%a %u %g' "$tmp/root/run/postcopyd")
[ "$st" = "755 $uid $gid" ] || fail "/run/postcopyd is '$st', want '755 $uid $gid'"
st=$(stat -c '%a %u %g' "$tmp/root/etc/postcopyd")
[ "$st" = "750 0 $gid" ] || fail "/etc/postcopyd is '$st', want '750 0 $gid'"
grep -q '^z /dev/userfaultfd 0660 root userfaultfd -$' "$src/postcopyd.tmpfiles" ||
	fail "postcopyd.tmpfiles does not hand /dev/userfaultfd to userfaultfd"
echo "ok: systemd-tmpfiles: /run/postcopyd 0755 postcopyd, /etc/postcopyd 0750 root:postcopyd"

grep -q '^KERNEL=="userfaultfd", SUBSYSTEM=="misc", GROUP="userfaultfd", MODE="0660"$' \
	"$src/60-postcopyd-userfaultfd.rules" || fail "udev rule missing or changed"
echo "ok: udev rule for /dev/userfaultfd"
