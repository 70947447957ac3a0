#!/usr/bin/env bash
# The cost of the replica-worker boundary of Python deployments (docs/python.md): a no-op Python
# class served by serve-replica, driven by wrk over loopback keep-alive connections, against the
# same methods called in a loop in one Python process (bench/python_inprocess.py); the C++ noop
# model through the same replica is the reference for the replica's own cost.
#
#   bench/python_bench.sh [--duration D] [--python PATH] [--build DIR]
#
#   --duration D   wrk duration of each measured run: N, Ns or Nm (default 10s)
#   --python PATH  the interpreter of the workers and of the in-process loop
#                  (default: $SERVE_PYTHON, else /usr/bin/python3; needs numpy only for tensors)
#   --build DIR    the build tree with replica/serve-replica (default: build)
#
# Prints a Markdown table: requests/s and p50 latency for each target at 1 and 32 connections,
# then the per-request and per-item costs next to the in-process ones, with their ratios.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=python_bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

duration=10s
python=${SERVE_PYTHON:-/usr/bin/python3}
build=$ROOT/build
while (($# > 0)); do
  case $1 in
    --duration) need_value "$1" $#; duration=$2; shift ;;
    --python) need_value "$1" $#; python=$2; shift ;;
    --build) need_value "$1" $#; build=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
duration_s=$(duration_seconds "$duration")
replica=$build/replica/serve-replica
[[ -x $replica ]] || die "no $replica: build first (cmake --build build)"
for tool in wrk curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh installs it)"
done
"$python" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null ||
  die "$python is not a Python 3.9+ interpreter"

work=$(mktemp -d /tmp/python_bench.XXXXXX)
declare -A PIDS=()
STOP_TIMEOUT_S=10
stop_all() { stop_started; }
install_cleanup

cat >"$work/serve.yaml" <<YAML
applications:
  - name: cxx
    route_prefix: /cxx
    deployments:
      - {name: d, max_ongoing_requests: 64, model: {kind: noop, name: cxx}}
  - name: py
    route_prefix: /py
    deployments:
      - name: d
        max_ongoing_requests: 64
        model: {kind: python, name: py, import_path: "noop_app:noop", working_dir: $ROOT/bench/python_apps}
  - name: pyb
    route_prefix: /pyb
    deployments:
      - name: d
        max_ongoing_requests: 64
        model: {kind: python, name: pyb, import_path: "noop_app:noop_batched", working_dir: $ROOT/bench/python_apps}
YAML

free_port() {
  "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
declare -A PORTS=()
for app in cxx py pyb; do
  PORTS[$app]=$(free_port)
  SERVE_PYTHON=$python RAY_SERVE_LOG_TO_STDERR=0 RAY_SERVE_LOG_DIR="$work/logs" \
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=0 \
    start "$app" "$replica" --config "$work/serve.yaml" --app "$app" \
    --http-port "${PORTS[$app]}" --grpc-port none
done
for app in cxx py pyb; do
  deadline=$((SECONDS + 60))
  until [[ $(curl -s "http://127.0.0.1:${PORTS[$app]}/-/healthz" || true) == success ]]; do
    is_running "${PIDS[$app]}" || die "replica $app exited: $(tail -n 3 "$work/$app.err")"
    ((SECONDS < deadline)) || die "replica $app not ready within 60 s"
    sleep 0.2
  done
done
[[ $(curl -s "http://127.0.0.1:${PORTS[py]}/py") == ok ]] || die "the Python noop does not answer ok"

# wrk URL CONNECTIONS [SCRIPT] -> "requests/s p50_ms"
measure() {
  local url=$1 conns=$2 script=${3:-} threads=1 args=()
  ((conns >= 8)) && threads=2
  [[ -n $script ]] && args=(-s "$script")
  wrk -t"$threads" -c"$conns" -d2s "${args[@]}" "$url" >/dev/null 2>&1 || true  # warm-up
  timeout $((duration_s + 30)) wrk -t"$threads" -c"$conns" -d"$duration" --latency \
    "${args[@]}" "$url" >"$work/wrk.out" 2>&1 || die "wrk failed: $(cat "$work/wrk.out")"
  awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
                  ms = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    END { printf "%.0f %.3f\n", rps, ms }' "$work/wrk.out"
}

declare -A RPS=() P50=()
for conns in 1 32; do
  read -r RPS[cxx,$conns] P50[cxx,$conns] < <(measure "http://127.0.0.1:${PORTS[cxx]}/cxx" \
    "$conns" "$ROOT/bench/post.lua")
  for app in py pyb; do
    read -r RPS[$app,$conns] P50[$app,$conns] < <(measure \
      "http://127.0.0.1:${PORTS[$app]}/$app" "$conns")
  done
done
read -r _ call_us < <(cd "$ROOT/bench" && PYTHONPATH="$ROOT/python:$ROOT/bench/python_apps" \
  "$python" python_inprocess.py 3 | grep '^call_us')
read -r _ item_us < <(cd "$ROOT/bench" && PYTHONPATH="$ROOT/python:$ROOT/bench/python_apps" \
  "$python" python_inprocess.py 3 | grep '^item_us')

echo "## Python boundary: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $("$python" --version 2>&1), wrk $duration per run"
echo
echo "| target | c=1 req/s | c=1 p50 ms | c=32 req/s | c=32 p50 ms |"
echo "|---|---|---|---|---|"
for app in cxx py pyb; do
  case $app in
    cxx) label="C++ noop model (KServe JSON)" ;;
    py) label="Python async \`__call__\`" ;;
    pyb) label="Python \`@serve.batch\` (32) \`__call__\`" ;;
  esac
  echo "| $label | ${RPS[$app,1]} | ${P50[$app,1]} | ${RPS[$app,32]} | ${P50[$app,32]} |"
done
echo
awk -v rps1="${RPS[py,1]}" -v rpsb="${RPS[pyb,32]}" -v call="$call_us" -v item="$item_us" 'BEGIN {
  per_req = 1e6 / rps1; per_item = 1e6 / rpsb
  printf "- per request at c=1 through the replica: %.1f us; the same call in process: %.2f us (%.0fx)\n", per_req, call, per_req / call
  printf "- per item at c=32 with batches of up to 32: %.1f us; in process, per item of a batch of 32: %.2f us (%.1fx)\n", per_item, item, per_item / item
}'
