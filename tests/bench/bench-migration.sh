#!/usr/bin/env bash
# bench-migration.sh BENCH - a small postcopy-bench run (64 MiB guest, MINOR
# and COPY modes, real daemons over loopback TLS) prints one JSON object of
# the documented shape, in which every page was verified and none
# mismatched; --plot draws an SVG with gnuplot.
set -euo pipefail
bench=$1
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"
plot=""
command -v gnuplot >/dev/null && plot="--plot $tmp/bench.svg"

# shellcheck disable=SC2086
rc=0; "$bench" --size 64M --mode both --threads 2 --json $plot >"$tmp/out.json" 2>"$tmp/err" || rc=$?
cat "$tmp/err" >&2
if [ "$rc" -ne 0 ] && grep -Eq 'kernel lacks|cannot open a userfaultfd' "$tmp/err"; then
	echo "SKIP: this kernel cannot do userfaultfd MINOR faults on shmem"; exit 77
fi
[ "$rc" -eq 0 ] || { echo "FAIL: postcopy-bench exited $rc"; exit 1; }
jq . "$tmp/out.json"

jq -e '
	def num: type == "number";
	(.size_bytes == 67108864) and (.page_size | num) and (.mode == "both") and
	(.workload == "random") and (.guest == "threads") and (.threads == 2) and
	(.runs | length == 2) and
	([.runs[].mode] | sort == ["copy", "minor"]) and
	all(.runs[];
	    (.total_s | num and . > 0) and (.switchover_ms | num) and
	    (.throughput_gbps | num and . > 0) and
	    (.pages | (.total == 16384) and (.zero | num) and (.sent_bulk | num) and
	        (.sent_urgent | num) and (.verified == .total) and (.mismatched == 0)) and
	    (.faults | (.remote | num) and (.local | num) and has("p50_us") and
	        has("p99_us") and has("p999_us") and has("max_us")) and
	    (.daemon_rss_kib | (.source | num and . > 0) and (.destination | num and . > 0)) and
	    (.cpu_s | (.source | num and . > 0) and (.destination | num and . > 0) and
	        (.destination_per_gib | num and . > 0) and
	        (.threads.destination | has("pcd-dst-bulk")) and (.threads.source | has("pcd-src-bulk")) and
	        (.destination as $t | [.threads.destination[]] | add <= $t * 1.05 + 0.02))) and
	(.baselines | (.tls_raw_gbps | num and . > 0) and (.tls_rtt_us | num and . > 0) and
	    (.uffd_floor_us | num and . > 0) and (.uffd_floor_loaded_us | num and . > 0) and
	    (.tls_rtt_loaded_us | num and . > 0) and
	    (.tls_tx_cpu_s | num and . > 0) and (.tls_rx_cpu_s | num and . > 0)) and
	(.ratios | (.throughput_vs_tls_raw | num and . > 0) and has("remote_p50_vs_tls_rtt") and
	    has("remote_p50_vs_tls_rtt_idle") and has("local_p50_vs_uffd_floor_idle") and
	    (.dst_cpu_per_gib_vs_tls_rx | num and . > 0) and
	    has("local_p50_vs_uffd_floor") and (.minor_vs_copy_throughput | num and . > 0)) and
	(.ok == true)' "$tmp/out.json" >/dev/null ||
	{ echo "FAIL: bench JSON has the wrong shape or unverified pages"; exit 1; }

if [ -n "$plot" ]; then
	grep -q '<svg' "$tmp/bench.svg" || { echo "FAIL: --plot wrote no SVG"; exit 1; }
fi
echo "PASS: 64 MiB bench, both modes, every page verified"
