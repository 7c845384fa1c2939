#!/bin/sh
# The remote side of the control plane on a real daemon: the TCP listener
# with mutual TLS 1.3 (a good client, a client from another CA, a plaintext
# client), the Prometheus endpoint scraped over HTTP and parsed, and SIGHUP
# reloading the configuration (good and bad files).
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || { echo "curl not installed"; exit 77; }
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
cat >"$T/a.conf" <<EOC
control_tcp_listen = 127.0.0.1:0
control_tls_dir = $T/tls
metrics_listen = 127.0.0.1:0
tls_dir = $T/tls
EOC
start_daemon a
tcp=$(log_port a tcp)
mport=$(log_port a metrics)

# mutual TLS: a client with a certificate from the daemon's CA
"$POSTCOPYCTL" --connect 127.0.0.1:$tcp --tls-dir "$T/tls" --json version >"$T/v.json" || fail "TLS version: $(cat "$T/v.json")"
jq -e '.status.code == 0 and .protocol == 1' "$T/v.json" >/dev/null || fail "TLS version json"
"$POSTCOPYCTL" --connect 127.0.0.1:$tcp --tls-dir "$T/tls" prepare r1 --listen 127.0.0.1:0 >/dev/null || fail "TLS prepare (default tls_dir)"
grep -q "call 1 Prepare from tcp 127.0.0.1:[0-9]* CN=" "$T/a.log" || fail "TLS peer not logged with its certificate"
ok "mutual TLS client: Version, Prepare; peer logged by certificate"

# a client whose certificate comes from another CA: refused at the handshake
expect_rc 3 "$POSTCOPYCTL" --connect 127.0.0.1:$tcp --tls-dir "$T/tls/other-ca" version
# a plaintext client: its bytes never reach the RPC layer
# our CA, but a client certificate from another CA: the daemon refuses it
mkdir "$T/mixed"
cp "$T/tls/ca-cert.pem" "$T/mixed/"
cp "$T/tls/other-ca/client-cert.pem" "$T/tls/other-ca/client-key.pem" "$T/mixed/"
expect_rc 3 "$POSTCOPYCTL" --connect 127.0.0.1:$tcp --tls-dir "$T/mixed" version
grep -Eq "TLS: .*(unknown ca|certificate verify failed)" "$T/a.log" || fail "daemon did not refuse the foreign client certificate"
curl -s --max-time 3 -o /dev/null "http://127.0.0.1:$tcp/" && fail "plaintext HTTP got an answer"
"$POSTCOPYCTL" --connect 127.0.0.1:$tcp --tls-dir "$T/tls" version >/dev/null || fail "TLS listener dead after bad clients"
ok "server or client from another CA refused (exit 3), plaintext client refused, listener still serves"

# metrics: Prometheus text format with the migrations by state and the
# per-migration families, parsed line by line
curl -fsS "http://127.0.0.1:$mport/metrics" >"$T/m.txt" || fail "scrape"
grep -qx 'postcopyd_migrations{state="waiting"} 1' "$T/m.txt" || fail "migrations by state: $(grep postcopyd_migrations "$T/m.txt")"
grep -qx 'postcopyd_migrations{state="completed"} 0' "$T/m.txt" || fail "completed count"
grep -q '^postcopyd_migration_info{id="r1",role="destination",state="waiting"} 1$' "$T/m.txt" || fail "migration info"
grep -q '^postcopyd_migration_fault_latency_seconds_bucket{id="r1",role="destination",le="+Inf"} 0$' "$T/m.txt" || fail "histogram +Inf"
[ "$(grep -c '^# TYPE postcopyd_migration_fault_latency_seconds histogram$' "$T/m.txt")" = 1 ] || fail "histogram TYPE line"
# every sample line is NAME{LABELS} VALUE or NAME VALUE; every family has
# one HELP and one TYPE; no family's samples are split
awk '
/^# HELP / { help[$3]++; next }
/^# TYPE / { type[$3]++; cur=$3; next }
/^#/ { next }
{
	if ($0 !~ /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$/) { print "bad line: " $0; bad=1 }
	n=$0; sub(/[{ ].*/, "", n); base=n; sub(/_(bucket|sum|count)$/, "", base)
	if (base != cur && n != cur) { print "sample outside its family: " $0; bad=1 }
}
END { for (f in type) if (type[f] != 1 || help[f] != 1) { print "family " f; bad=1 }; exit bad }
' "$T/m.txt" || fail "metrics format"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/nothing")
[ "$code" = 404 ] || fail "unknown path gave $code"
ok "metrics scraped and parsed ($(grep -vc '^#' "$T/m.txt") samples)"

# SIGHUP: a good file applies live (log level, new limits), a bad one is
# refused with FILE:LINE and the daemon keeps its settings
cat >>"$T/a.conf" <<EOC
max_migrations = 3
log_level = debug
EOC
kill -HUP "$PID_a"
for _ in $(seq 50); do grep -q "configuration reloaded" "$T/a.log" && break; sleep 0.05; done
grep -q "configuration reloaded" "$T/a.log" || fail "no reload"
ctl a --json version | jq -e '.max_migrations == 3' >/dev/null || fail "max_migrations not applied"
echo "max_inflight = many" >>"$T/a.conf"
kill -HUP "$PID_a"
for _ in $(seq 50); do grep -q "configuration not reloaded" "$T/a.log" && break; sleep 0.05; done
grep -q "configuration not reloaded: $T/a.conf:7: max_inflight: 'many'" "$T/a.log" || fail "bad reload not reported with its line"
ctl a --json version | jq -e '.max_migrations == 3' >/dev/null || fail "settings lost on a bad reload"
"$POSTCOPYCTL" --connect 127.0.0.1:$tcp --tls-dir "$T/tls" version >/dev/null || fail "TLS listener lost on reload"
curl -fsS "http://127.0.0.1:$mport/metrics" >/dev/null || fail "metrics lost on reload"
ok "SIGHUP: good file applied, bad file refused with its line"
