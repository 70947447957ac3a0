#!/usr/bin/env bash
# The sanitizer build: clang with AddressSanitizer and UndefinedBehaviorSanitizer on every target
# and the fuzz targets as libFuzzer binaries, in build-asan/. Any sanitizer report aborts the
# process, so the test that triggered it fails.
#   scripts/sanitizers.sh               build, then: unit tests, the integration subset, each
#                                       fuzzer for SERVE_FUZZ_SECONDS (default 20)
#   scripts/sanitizers.sh --build-only  build only (scripts/fuzz.sh uses this)
# The integration subset is what fits CI's budget on 2 cores (see INTEGRATION_SUBSET below).
set -euo pipefail
cd "$(dirname "$0")/.."

# -O1: ASan's own recommendation for usable speed with exact reports; -g1: line tables for the
# reports' stacks without full debug info (the build is twice as fast as -g).
cmake -S . -B build-asan -DCMAKE_CXX_COMPILER=clang++ -DSERVE_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DSERVE_BUILD_BENCH=OFF \
  -DSERVE_ENABLE_CUDA=OFF -DSERVE_SANITIZE=address,undefined -DSERVE_BUILD_FUZZERS=ON \
  -DSERVE_FUZZ_SECONDS="${SERVE_FUZZ_SECONDS:-20}" >/dev/null
cmake --build build-asan -j"$(nproc)"
[[ ${1:-} == --build-only ]] && exit 0

# Every process the tests start (replicas, the manager, helpers) inherits these and writes any
# report to a file under reports/, so a report from a child that a test did not notice (a leak at
# a replica's exit, a UBSan finding in a background thread) still fails this script below.
# halt_on_error makes UBSan's first report fatal as ASan's are.
reports=$PWD/build-asan/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=0:log_path=$reports/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
trap 'report_findings' EXIT
report_findings() {
  local status=$?
  if compgen -G "$reports/*" >/dev/null; then
    echo "sanitizer reports (from test processes or their children):" >&2
    for f in "$reports"/*; do
      echo "--- $f" >&2
      cat "$f" >&2
    done
    status=1
  fi
  exit "$status"
}

# Every integration test of the replica alone (HTTP, gRPC, admission, framing, lifecycle, Python
# workers), and the node tests of deploys and kills through real HAProxy. Left out, for time: the
# manager's reload, scaling and endpoint suites (GCC's full run covers them; they drive HAProxy
# more than our code) and the ONNX and Triton-client suites (their work is in Python).
INTEGRATION_SUBSET='^(replica|python replica|node:|manager: SIGTERM)'
ctest --test-dir build-asan --output-on-failure --timeout 300 -j"$(nproc)" -L unit
ctest --test-dir build-asan --output-on-failure --timeout 300 -L integration -R "$INTEGRATION_SUBSET"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L fuzz
