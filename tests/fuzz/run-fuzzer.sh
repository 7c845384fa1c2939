#!/bin/sh
# run-fuzzer.sh FUZZER SEED_DIR WORK_DIR SECONDS
# Runs one libFuzzer target for a bounded time on a copy of its seed corpus
# and prints how many executions it made. A crash, leak or timeout fails.
set -eu
fuzzer=$1 seeds=$2 work=$3 secs=$4
rm -rf "$work" && mkdir -p "$work"
[ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$work/" "$work" 2>"$work.log" || {
	tail -n 60 "$work.log"; exit 1; }
grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$work.log" | tail -n 2
