#!/usr/bin/env bash
# bench-huge2m.sh BENCH - postcopy-bench --hugepages 2M --mode both (run
# under tests/lib/hugepages.sh, which reserves the pages): a 64 MiB guest on
# 2 MiB huge pages migrated in MINOR mode (hugetlbfs memfds) and in COPY
# mode (the destination on anonymous huge pages, each placed by one
# UFFDIO_COPY), every page verified, the baseline tls_2m_us (a request
# answered by one huge page on raw TLS) and the ratios of the huge-page
# demand fault against it in the JSON; --hugepages 1G where the host has no
# free 1 GiB pages exits 77 and says why; COPY mode on 1 GiB pages is
# refused.
set -euo pipefail
bench=$1
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"

rc=0; "$bench" --size 2G --hugepages 1G --mode both >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "1G runs minor mode only" "$tmp/err" ||
	{ echo "FAIL: --hugepages 1G with --mode both: exit $rc: $(cat "$tmp/err")"; exit 1; }

# 1 GiB pages: none free here (or none at all) -> 77 with the reason.
free1g=$(cat /sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages 2>/dev/null || echo 0)
if [ "$free1g" -lt 2 ]; then
	rc=0; "$bench" --size 1G --hugepages 1G --json >/dev/null 2>"$tmp/err" || rc=$?
	[ "$rc" -eq 77 ] && grep -q "SKIP: .*1G huge pages\|SKIP: two guests" "$tmp/err" ||
		{ echo "FAIL: --hugepages 1G without 1 GiB pages: exit $rc: $(cat "$tmp/err")"; exit 1; }
	echo "1G: $(cat "$tmp/err")"
fi

rc=0; "$bench" --size 64M --hugepages 2M --mode both --threads 2 --json >"$tmp/out.json" 2>"$tmp/err" || rc=$?
cat "$tmp/err" >&2
[ "$rc" -eq 77 ] && { echo "SKIP: $(grep SKIP "$tmp/err")"; exit 77; }
[ "$rc" -eq 0 ] || { echo "FAIL: postcopy-bench --hugepages 2M exited $rc"; exit 1; }
jq -c '{hugepage_bytes, runs: [.runs[] | {mode, pages, faults: (.faults | del(.latency_hist_us))}],
	tls_2m_us: .baselines.tls_2m_us, ratios: (.ratios | with_entries(select(.key | test("2m|copy"))))}' "$tmp/out.json"

jq -e '
	def num: type == "number";
	(.size_bytes == 67108864) and (.hugepage_bytes == 2097152) and (.mode == "both") and
	(.runs | length == 2) and ([.runs[].mode] | sort == ["copy", "minor"]) and
	all(.runs[]; (.pages | (.total == 16384) and (.verified == .total) and
	        (.mismatched == 0) and (.digest_verified == .total)) and
	    (.faults | has("remote_p50_us") and has("remote_p99_us")) and
	    ((.faults.remote == 0) or (.faults.remote_p50_us | num and . > 0))) and
	(.baselines | (.tls_2m_us | num and . > 0) and (.tls_2m_p99_us | num and . >= 0) and
	    (.tls_2m_loaded_us | num and . > 0) and (.tls_rtt_us | num and . > 0)) and
	(.ratios | has("remote_p50_vs_tls_2m") and has("remote_p99_vs_tls_2m") and
	    has("remote_p50_vs_tls_2m_loaded")) and
	((.runs[0].faults.remote == 0) or (.ratios.remote_p50_vs_tls_2m | num and . > 0)) and
	(.ok == true)' "$tmp/out.json" >/dev/null ||
	{ echo "FAIL: bench JSON lacks the huge-page baseline or has unverified pages"; exit 1; }
echo "PASS: 64 MiB guest on 2 MiB huge pages, MINOR and COPY, every page verified, tls_2m_us and its ratios reported"
