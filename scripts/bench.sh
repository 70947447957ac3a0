#!/usr/bin/env bash
# Benchmarks (see docs/benchmarks.md):
#   scripts/bench.sh replica [DURATION] [options]  serve-replica alone vs bare cpp-httplib and nginx
#   scripts/bench.sh mlp [DURATION] [options]      the large MLP: in process vs the replica
#   scripts/bench.sh propagation [ITERATIONS]       manager: registration -> routed, vs reload
#   scripts/bench.sh grpc [DURATION] [options]     unary gRPC and HTTP through HAProxy vs direct
#   scripts/bench.sh python [options]              the Python worker boundary vs in process
#   scripts/bench.sh peers [options]               a no-op class: this node vs Ray Serve, KServe
#   scripts/bench.sh onnx [options]                ONNX digits: the replica vs ONNX Runtime in process
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-replica}
shift || true
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target serve-replica bare_httplib_server mlp_forward_bench \
  haproxy-manager propagation_bench grpc_load
case "$what" in
  replica) exec bash bench/replica_bench.sh build "${@:-10s}" ;;
  mlp)
    python3 -c 'import numpy' 2>/dev/null || pip install --quiet numpy  # to generate the model
    exec bash bench/mlp_bench.sh build "${@:-10s}" ;;
  propagation) exec bash bench/propagation_bench.sh build "${@:-200}" ;;
  grpc) exec bash bench/grpc_bench.sh build "${@:-10s}" ;;
  python) exec bash bench/python_bench.sh "$@" ;;
  peers)  # Ray and KServe into .tools/ (opt-in, pinned), then bench/peers_bench.sh --help's options
    bash scripts/setup.sh --bench-peers
    exec bash bench/peers_bench.sh "$@" ;;
  onnx) exec bash bench/onnx_bench.sh "$@" ;;
  *) echo "usage: scripts/bench.sh replica|mlp|propagation|grpc|python|peers|onnx [DURATION] [options of bench/<what>_bench.sh]" >&2
     exit 2 ;;
esac
