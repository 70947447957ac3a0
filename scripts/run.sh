#!/usr/bin/env bash
# Runs one serving node with the embedded default config (examples/serve.yaml): HAProxy on
# :8000, the replicas it names (the digits classifier, echo, slow), metrics on :9101, the admin
# socket at /tmp/haproxy-serve/admin.sock. In the foreground; Ctrl-C drains and stops it all.
#   scripts/run.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-examples/serve.yaml}

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target haproxy-manager serve-replica

cat >&2 <<MSG
starting the node from $config (Ctrl-C to stop). Then try:
  curl -s localhost:8000/-/routes
  curl -s -XPOST localhost:8000/echo -d '{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}'
  echo "show stat" | socat stdio /tmp/haproxy-serve/admin.sock | cut -d, -f1,2,18 | head
  curl -s localhost:9101/metrics | grep haproxy_backend_http_responses_total
  build/haproxy-manager/haproxy-manager status
MSG
exec build/haproxy-manager/haproxy-manager start --config "$config"
