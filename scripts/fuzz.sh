#!/usr/bin/env bash
# Fuzzes the parsers of untrusted input for longer than CI's slice, with the sanitizer build.
#   scripts/fuzz.sh SECONDS [NAME...]   NAME: serve_config, kserve_json, kserve_grpc,
#                                       safetensors, haproxy_show, ingress_log (default: all)
# Fuzzers run one after another, each for SECONDS. New inputs accumulate in
# build-asan/fuzz-work/NAME (kept between runs); a crash stops with the input saved in
# build-asan/fuzz-artifacts/. Fix it, then add the input to fuzz/corpus/NAME/: the corpus replay
# (ctest -L unit) keeps it as a regression test in every build.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:?usage: scripts/fuzz.sh SECONDS [NAME...]}
shift
names=("$@")
if ((${#names[@]} == 0)); then
  names=(serve_config kserve_json kserve_grpc safetensors haproxy_show ingress_log)
fi
bash scripts/sanitizers.sh --build-only
for name in "${names[@]}"; do
  echo "=== fuzz_$name for $seconds s"
  bash fuzz/run_fuzzer.sh "build-asan/fuzz/fuzz_$name" "$seconds" "build-asan/fuzz-work/$name" \
    "fuzz/corpus/$name" build-asan/fuzz-artifacts
done
