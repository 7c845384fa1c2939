#!/bin/bash
# prometheus.sh BUILD_DIR - the daemons' metrics as a real Prometheus reads
# them: two postcopyd processes with metrics_listen on loopback, a
# `prometheus` server of our own (free loopback port, config and storage in
# the test's temp dir, 1 s scrape interval; a packaged service, if one
# runs, is neither used nor touched), one migration with every page
# verified by the guest and the daemons. Checks:
#   - `promtool check metrics` is clean on both endpoints, before, during
#     and after the migration;
#   - the pages counter and the fault-latency histogram read back through
#     Prometheus' HTTP query API (curl + jq) equal what Status says.
set -euo pipefail

B=$(readlink -f "$1")
. "$(dirname "$(readlink -f "$0")")/../lib/harness.sh"
for t in prometheus promtool curl; do
	command -v "$t" >/dev/null || skip "$t is not installed (Debian packages prometheus, curl)"
done
harness_init prometheus

ID=prom
SIZE=64M
PAGES=16384

metrics_port() {
	local p=""
	for _ in $(seq 100); do
		p=$(sed -n 's|.*metrics: serving http://.*:\([0-9]*\)/metrics.*|\1|p' "$T/$1.log" | tail -n 1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.05
	done
	fail "$1: no 'metrics: serving' line in its log"
}

# lint NAME: promtool on the endpoint's text, as Prometheus would fetch it.
lint() {
	curl -fsS "http://127.0.0.1:$2/metrics" >"$T/$1.prom" || fail "GET /metrics on $1"
	promtool check metrics <"$T/$1.prom" >"$T/$1.lint" 2>&1 ||
		fail "promtool check metrics on $1 ($3): $(cat "$T/$1.lint")"
	[ ! -s "$T/$1.lint" ] || fail "promtool check metrics on $1 ($3) says: $(cat "$T/$1.lint")"
}

# promql QUERY: the single value of an instant query, "" if no series.
promql() {
	curl -fsS --get "http://127.0.0.1:$PPORT/api/v1/query" \
	    --data-urlencode "query=$1" >"$T/q.json" || fail "query API: $1"
	jq -e '.status == "success"' "$T/q.json" >/dev/null || fail "query '$1': $(cat "$T/q.json")"
	jq -r '.data.result[0].value[1] // empty' "$T/q.json"
}

# until_value QUERY WANT: polls Prometheus until QUERY yields WANT (the
# scrape after the migration ended may still be a second away).
until_value() {
	local v=""
	for _ in $(seq 150); do
		v=$(promql "$1")
		[ "$v" = "$2" ] && { echo "promql: $1 => $v"; return 0; }
		sleep 0.2
	done
	fail "Prometheus: '$1' is '$v', want $2"
}

DAEMON_CONF="metrics_listen = 127.0.0.1:0"
start_daemon dst
start_daemon src
DPORT=$(metrics_port dst)
SPORT=$(metrics_port src)
lint dst "$DPORT" "no migration"

# Our own Prometheus: a free port (retried if another process takes it first).
mkdir -p "$T/prom-data"
cat >"$T/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: postcopyd
    static_configs:
      - targets: ['127.0.0.1:$DPORT', '127.0.0.1:$SPORT']
EOC
promtool check config "$T/prometheus.yml" >"$T/promtool-config.log" 2>&1 ||
	fail "promtool check config: $(cat "$T/promtool-config.log")"
PPORT=""
for _ in 1 2 3 4 5; do
	p=$(( 20000 + RANDOM % 30000 ))
	(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue	# taken
	prometheus --config.file="$T/prometheus.yml" \
	    --storage.tsdb.path="$T/prom-data" \
	    --web.listen-address="127.0.0.1:$p" --log.level=warn \
	    >>"$T/prometheus.log" 2>&1 &
	PIDS+=($!)
	ppid=$!
	for _ in $(seq 150); do
		curl -fsS "http://127.0.0.1:$p/-/ready" >/dev/null 2>&1 && { PPORT=$p; break; }
		kill -0 "$ppid" 2>/dev/null || break
		sleep 0.2
	done
	[ -n "$PPORT" ] && break
	kill "$ppid" 2>/dev/null || true
done
[ -n "$PPORT" ] || fail "prometheus did not become ready: $(tail -n 5 "$T/prometheus.log")"
note "prometheus $(prometheus --version 2>&1 | head -n 1 | cut -d' ' -f3) on 127.0.0.1:$PPORT scraping :$DPORT (destination) and :$SPORT (source)"
until_value 'count(up{job="postcopyd"} == 1)' 2

# One migration, every page verified by the destination guest.
addr=$(prepare dst "$ID")
"$GUEST" --role dest --id "$ID" -S "$T/dst.vmm" -s "$SIZE" -w threads \
    -j -q --timeout 300 >"$T/dguest.json" 2>"$T/dguest.log" &
gpid=$!; PIDS+=($gpid)
ctl src migrate "$ID" "$addr" --tls-dir "$T/certs" >/dev/null || fail "migrate refused"
"$GUEST" --role source --id "$ID" -S "$T/src.vmm" -s "$SIZE" -j -q \
    --timeout 300 >"$T/sguest.json" 2>"$T/sguest.log" &
spid=$!; PIDS+=($spid)
lint dst "$DPORT" "migration running"
lint src "$SPORT" "migration running"
grc=0; src=0; wait_pair "$gpid" grc "$spid" src
guests_ok "$ID" $grc "$T/dguest.log" $src "$T/sguest.log"
jq -e ".pages_total == $PAGES and .pages_verified == $PAGES and .mismatched == 0" "$T/dguest.json" >/dev/null ||
	fail "destination guest: $(cat "$T/dguest.json")"
wait_state dst "$ID" completed
wait_state src "$ID" completed
[ "$(field dst "$ID" pages_verified)" = $PAGES ] || fail "destination daemon verified $(field dst "$ID" pages_verified) pages"
note "migration $ID completed: $PAGES pages, verified by the guest and the daemon"
lint dst "$DPORT" "completed"
lint src "$SPORT" "completed"

# What Status says, then the same read back through Prometheus.
status_json dst "$ID" >"$T/dst.status.json"
faults=$(jq '.migrations[0].lat_hist | add' "$T/dst.status.json")
remote=$(jq '.migrations[0].faults_remote' "$T/dst.status.json")
[ "$faults" -gt 0 ] || fail "no fault recorded on the destination: the histogram test means nothing"
D="id=\"$ID\",role=\"destination\""
until_value "sum(postcopyd_migration_pages_transferred_total{$D})" $PAGES
until_value "postcopyd_migration_pages_verified_total{$D}" $PAGES
until_value "sum(postcopyd_migration_pages_transferred_total{id=\"$ID\",role=\"source\"})" \
    "$(status_json src "$ID" | jq '.migrations[0] | .pages_sent_bulk + .pages_sent_urgent')"
until_value "postcopyd_migration_faults_total{$D,kind=\"remote\"}" "$remote"
until_value "postcopyd_migration_fault_latency_seconds_count{$D}" "$faults"
until_value "postcopyd_migration_fault_latency_seconds_bucket{$D,le=\"+Inf\"}" "$faults"
until_value 'postcopyd_migrations{state="completed"}' 1
sum=$(promql "postcopyd_migration_fault_latency_seconds_sum{$D}")
max=$(promql "postcopyd_migration_fault_latency_max_seconds{$D}")
p99=$(promql "histogram_quantile(0.99, sum by (le) (postcopyd_migration_fault_latency_seconds_bucket{$D}))")
p50=$(promql "histogram_quantile(0.5, sum by (le) (postcopyd_migration_fault_latency_seconds_bucket{$D}))")
mean=$(promql "postcopyd_migration_fault_latency_seconds_sum{$D} / postcopyd_migration_fault_latency_seconds_count{$D}")
echo "promql: postcopyd_migration_fault_latency_seconds_sum{$D} => $sum"
echo "promql: postcopyd_migration_fault_latency_max_seconds{$D} => $max"
echo "promql: histogram_quantile(0.5, ...) => $p50; histogram_quantile(0.99, ...) => $p99; sum / count => $mean"
awk -v s="$sum" -v m="$max" -v n="$faults" -v q="$p99" -v mean="$mean" 'BEGIN {
	# the exact sum lies within (0, count * max]; the mean below the max;
	# the p99 bucket bound at most twice the max (power-of-two buckets).
	exit !(s > 0 && s <= n * m + 1e-6 && mean <= m + 1e-6 && q > 0 && q <= 2 * m + 1e-6)
}' || fail "histogram read back is inconsistent: sum $sum, max $max, count $faults, p99 $p99"
ok_buckets=$(curl -fsS --get "http://127.0.0.1:$PPORT/api/v1/query" \
    --data-urlencode "query=postcopyd_migration_fault_latency_seconds_bucket{$D}" |
    jq -r '[.data.result[] | {le: (.metric.le | if . == "+Inf" then 1e30 else tonumber end), v: (.value[1] | tonumber)}]
	| sort_by(.le) | [range(1; length) as $i | .[$i].v >= .[$i - 1].v] | all')
[ "$ok_buckets" = true ] || fail "buckets read back from Prometheus are not cumulative"
echo "ok: Prometheus read back $PAGES pages and $faults fault latencies (sum ${sum}s, p99 <= ${p99}s), matching Status"
