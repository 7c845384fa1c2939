#!/bin/bash
# python_client.sh BUILD_DIR - tests/ops/python_migration.py against two
# real daemons (harness.sh): the destination's control over its Unix
# socket, the source's over TCP with mutual TLS, real guests.
set -euo pipefail
B=$(readlink -f "$1")
HERE=$(dirname "$(readlink -f "$0")")
. "$HERE/../lib/harness.sh"
[ -f "$B/client/python/postcopyd/control_pb2.py" ] ||
	skip "the Python client is not built: protoc is missing (Debian package protobuf-compiler)"
PY=""
for p in ${PCD_PYTHON:-} /usr/bin/python3 python3; do
	command -v "$p" >/dev/null && "$p" -c 'import google.protobuf' 2>/dev/null && { PY=$p; break; }
done
[ -n "$PY" ] || skip "no python3 with the protobuf module (Debian package python3-protobuf)"
harness_init python

start_daemon dst
DAEMON_CONF="control_tcp_listen = 127.0.0.1:0
control_tls_dir = $T/certs"
start_daemon src
DAEMON_CONF=""
port=""
for _ in $(seq 100); do
	port=$(sed -n 's|.*control: listening on .* port \([0-9]*\) (TCP.*|\1|p' "$T/src.log" | tail -n 1)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || fail "the source daemon logged no TCP control port"
echo "$port" >"$T/src.tcp"
note "$($PY --version) with protobuf $($PY -c 'import google.protobuf as g; print(g.__version__)')"
PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$B/client/python" \
	"$PY" "$HERE/python_migration.py" "$T" "$GUEST" || fail "python_migration.py failed"
