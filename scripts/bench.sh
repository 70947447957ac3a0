#!/usr/bin/env bash
# Benchmarks. `scripts/bench.sh replica [DURATION] [options]` measures serve-replica alone
# against a bare cpp-httplib server and nginx (bench/replica_bench.sh; see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-replica}
shift || true
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target serve-replica bare_httplib_server
case "$what" in
  replica) exec bash bench/replica_bench.sh build "${@:-10s}" ;;
  *) echo "usage: scripts/bench.sh replica [DURATION] [bench/replica_bench.sh options]" >&2; exit 2 ;;
esac
