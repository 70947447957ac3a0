#!/usr/bin/env bash
# Runs the system with the embedded default config. Until haproxy-manager lands (issue 4), this
# starts one serve-replica of the example digits classifier in the foreground; Ctrl-C drains it.
# Other applications of the config: scripts/run.sh examples/serve.yaml echo
set -euo pipefail
cd "$(dirname "$0")/.."

config=${1:-examples/serve.yaml}
app=${2:-digits}

bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target serve-replica

export RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=${RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S:-1}
echo "starting serve-replica for application '$app' from $config (Ctrl-C to stop)" >&2
exec build/replica/serve-replica --config "$config" --app "$app"
