#!/usr/bin/env bash
# Runs one libFuzzer binary for a bounded time from a seed corpus.
#   run_fuzzer.sh BINARY SECONDS WORK_DIR SEED_DIR ARTIFACT_DIR
# New interesting inputs go to WORK_DIR (kept between runs, so later runs start further along);
# SEED_DIR is only read. A crash, leak, timeout or out-of-memory stops the run with a non-zero
# status; the input is saved in ARTIFACT_DIR and the command to reproduce it is printed.
set -euo pipefail
binary=$1 seconds=$2 work=$3 seeds=$4 artifacts=$5
mkdir -p "$work" "$artifacts"
# -rss_limit_mb / -malloc_limit_mb: an input that makes a parser allocate over 1 GB is a finding
# (the replica runs under memory limits), not a reason to slow down.
if ! "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -print_final_stats=1 -print_funcs=0 -artifact_prefix="$artifacts/$(basename "$binary")-" "$work" "$seeds"; then
  echo "fuzzer $(basename "$binary") found a failing input: see $artifacts; reproduce with" >&2
  echo "  $binary $artifacts/<file>" >&2
  echo "then fix it and add the file to $seeds as a regression test" >&2
  exit 1
fi
