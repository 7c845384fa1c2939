#!/usr/bin/env bash
# bench-baselines.sh BENCH - postcopy-bench --baselines-only measures a raw
# TLS stream, TLS round trips and userfaultfd MINOR faults; each must come
# out a positive number, with the negotiated cipher, and --help must work.
set -euo pipefail
bench=$1
. "$(dirname "$(readlink -f "$0")")/bench-lib.sh"

"$bench" --help | grep -q -- '--baselines-only'
# Bad options are refused with a message and exit code 2.
rc=0; "$bench" --size 12345 --baselines-only 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: --size 12345 gave exit $rc, want 2"; exit 1; }

rc=0; out=$("$bench" --baselines-only --size 16M --repeat 2 --json 2>"$tmp/err") || rc=$?
cat "$tmp/err" >&2
if [ "$rc" -ne 0 ] && grep -Eq 'kernel lacks|cannot open a userfaultfd' "$tmp/err"; then
	echo "SKIP: this kernel cannot do userfaultfd MINOR faults on shmem"; exit 77
fi
[ "$rc" -eq 0 ] || { echo "FAIL: postcopy-bench --baselines-only exited $rc"; exit 1; }
echo "$out" | jq .
echo "$out" | jq -e '
	(.size_bytes == 16777216) and (.page_size > 0) and (.runs == []) and
	(.repeat == 2) and
	(.baselines.tls_raw_gbps | type == "number" and . > 0) and
	(.baselines.tls_rtt_us | type == "number" and . > 0) and
	(.baselines.uffd_floor_us | type == "number" and . > 0) and
	(.baselines.uffd_floor_loaded_us | type == "number" and . > 0) and
	(.baselines.tls_rx_cpu_s | type == "number" and . > 0) and
	(.baselines.tls_tx_cpu_s | type == "number" and . > 0) and
	(.baselines.page_touch_rw_us | type == "number" and . > 0) and
	(.baselines.page_touch_ro_us | type == "number" and . > 0) and
	(.baselines.page_touch_again_us | type == "number" and . > 0) and
	(.baselines.page_pwrite_us | type == "number" and . > 0) and
	(.baselines.page_pread_us | type == "number" and . > 0) and
	(.baselines.tls_raw_gbps_range.min <= .baselines.tls_raw_gbps) and
	(.baselines.tls_raw_gbps <= .baselines.tls_raw_gbps_range.max) and
	(.baselines.cipher | startswith("TLS_")) and
	(.ratios | has("throughput_vs_tls_raw") and has("remote_p50_vs_tls_rtt")
	    and has("local_p50_vs_uffd_floor") and has("minor_vs_copy_throughput")) and
	(.ok == true)' >/dev/null || { echo "FAIL: baselines JSON has the wrong shape"; exit 1; }

# An explicit --tls-dir is used as given: a directory without certificates
# is an error that names the file.
empty=$tmp/empty
mkdir "$empty"
rc=0; err=$("$bench" --baselines-only --size 1M --tls-dir "$empty" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && echo "$err" | grep -q 'cert.pem' ||
	{ echo "FAIL: missing certificates not reported: rc=$rc: $err"; exit 1; }
echo "PASS: baselines are positive numbers"
