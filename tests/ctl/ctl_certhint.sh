#!/bin/sh
# "did the peer refuse our certificate?" only where that is the cause
# (issue 13 item 13):
#  1. a path whose far end accepts and closes during the TLS handshake (the
#     destination's listener is gone behind a proxy) is reported as a close
#     before the peer saw our certificate, not as a refused certificate;
#  2. a destination that does refuse our client certificate (signed by a
#     CA it does not trust) is reported as that.
# In both cases the migration fails before switchover and the source guest
# keeps running.
. "$(dirname "$0")/lib.sh"
for x in "$POSTCOPYGUEST" "$FAULTPROXY"; do
	[ -x "$x" ] || { echo "$x not built"; exit 77; }
done
command -v jq >/dev/null || { echo "jq not installed"; exit 77; }
"$POSTCOPYGENCERTS" "$T/tls" >/dev/null
start_daemon src
start_daemon dst

# wait_failed NAME ID: the migration's state reaches failed; prints errmsg
wait_failed() {
	for _ in $(seq 300); do
		st=$(ctl "$1" --json status "$2" | jq -r '.migrations[0].state')
		[ "$st" = failed ] && break
		sleep 0.1
	done
	[ "$st" = failed ] || fail "migration $2 on $1: state $st, wanted failed"
	ctl "$1" --json status "$2" | jq -r '.migrations[0].errmsg'
}

# guest_untouched PID LOG: a source guest the daemon told "failed" before
# it asked for a pause: it ran its workload throughout and was never paused.
guest_untouched() {
	for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	grep -q "migration failed" "$2" || fail "source guest not told: $(tail -3 "$2")"
	! grep -q "paused after" "$2" || fail "the source guest was paused: $(tail -3 "$2")"
}

# 1. Paths whose far end goes away during the TLS handshake: a proxy to a
# real destination that resets the connection after the first bytes (RST),
# and a proxy to a port nobody listens on (it accepts, cannot connect on,
# and closes: FIN).
addr=$(ctl dst --json prepare cut --listen 127.0.0.1:0 --tls-dir "$T/tls" | jq -r .listen)
n=0
for target in "$addr" 127.0.0.1:1; do
	n=$((n + 1))
	rm -f "$T/proxy.port"
	"$FAULTPROXY" --listen 127.0.0.1:0 --connect "$target" --cut-every 1 \
	    --port-file "$T/proxy.port" >"$T/proxy$n.log" 2>&1 &
	PIDS="$PIDS $!"
	for _ in $(seq 100); do [ -s "$T/proxy.port" ] && break; sleep 0.05; done
	[ -s "$T/proxy.port" ] || fail "faultproxy did not start"
	ctl src migrate "gone$n" "127.0.0.1:$(cat "$T/proxy.port")" --tls-dir "$T/tls" >/dev/null ||
		fail "migrate gone$n"
	"$POSTCOPYGUEST" --role source --id "gone$n" -S "$T/src.vmm" -s 1M \
	    --timeout 60 >"$T/sguest-gone$n.log" 2>&1 &
	g=$!
	PIDS="$PIDS $g"
	msg=$(wait_failed src "gone$n")
	echo "path to $target gone during the handshake: $msg"
	case $msg in *"during the handshake"*) ;; *) fail "no handshake failure: $msg";; esac
	case $msg in *"refuse our certificate"*|*"refused our certificate"*)
		fail "a path that is gone reported as a refused certificate: $msg";; esac
	case $msg in *"before it saw our certificate"*) ;; *) fail "the cause is not named: $msg";; esac
	guest_untouched $g "$T/sguest-gone$n.log"
done
ok "a closed or reset path is not reported as a refused certificate; the source guests were never paused"

# 2. Our client certificate from a CA the destination does not trust (the
# destination's own certificate is trusted: the handshake completes on our
# side, the refusal comes after it).
mkdir -p "$T/mixed"
cp "$T/tls/ca-cert.pem" "$T/mixed/"
cp "$T/tls/other-ca/client-cert.pem" "$T/tls/other-ca/client-key.pem" "$T/mixed/"
cp "$T/tls/server-cert.pem" "$T/tls/server-key.pem" "$T/mixed/"
chmod 700 "$T/mixed"
addr=$(ctl dst --json prepare bad --listen 127.0.0.1:0 --tls-dir "$T/tls" | jq -r .listen)
"$POSTCOPYGUEST" --role dest --id bad -S "$T/dst.vmm" -s 1M \
    --timeout 60 >"$T/dguest-bad.log" 2>&1 &
PIDS="$PIDS $!"
ctl src migrate bad "$addr" --tls-dir "$T/mixed" >/dev/null || fail "migrate bad"
"$POSTCOPYGUEST" --role source --id bad -S "$T/src.vmm" -s 1M \
    --timeout 60 >"$T/sguest-bad.log" 2>&1 &
g2=$!
PIDS="$PIDS $g2"
msg=$(wait_failed src bad)
echo "certificate refused: $msg"
case $msg in *"refused our certificate"*) ;; *) fail "a refused certificate is not named: $msg";; esac
guest_untouched $g2 "$T/sguest-bad.log"
ok "a refused client certificate is named; the source guest was never paused"
ctl dst cancel bad >/dev/null || fail "cancel on the destination"
