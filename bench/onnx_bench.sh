#!/usr/bin/env bash
# kind: onnx (docs/python.md): the digits model (models/digits.onnx) served by serve-replica
# through ONNX Runtime in its Python worker, driven by wrk over a loopback keep-alive connection
# with KServe v2 JSON requests of 1 and of 32 samples, against the same session run in a loop in
# one Python process (bench/onnx_inprocess.py).
#
#   bench/onnx_bench.sh [--duration D] [--python PATH] [--build DIR]
#
#   --duration D   wrk duration of each measured run: N, Ns or Nm (default 10s)
#   --python PATH  the interpreter of the worker and of the in-process loop
#                  (default: $SERVE_PYTHON, else /usr/bin/python3; needs numpy and onnxruntime,
#                  which haproxy_serve.onnx finds in .tools/onnxruntime after scripts/setup.sh)
#   --build DIR    the build tree with replica/serve-replica (default: build)
#
# Prints a Markdown table: requests/s, p50 latency and time per request at one connection for
# batch 1 and batch 32, next to the in-process time per run, with their ratios.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=onnx_bench
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
PYTHONPATH="$ROOT/python" "$python" -c \
  'from haproxy_serve import onnx; onnx.import_onnxruntime()' 2>/dev/null ||
  die "$python cannot import onnxruntime (scripts/setup.sh installs it into .tools/onnxruntime)"

work=$(mktemp -d /tmp/onnx_bench.XXXXXX)
declare -A PIDS=()
STOP_TIMEOUT_S=10
stop_all() { stop_started; }
install_cleanup

cat >"$work/serve.yaml" <<YAML
applications:
  - name: onnx
    route_prefix: /onnx
    deployments:
      - name: d
        max_ongoing_requests: 64
        model: {kind: onnx, name: digits_onnx, path: $ROOT/models/digits.onnx}
YAML

# One wrk script per batch size: a KServe v2 request of that many held-out samples.
for batch in 1 32; do
  "$python" - "$ROOT/models/digits.json" "$batch" >"$work/post_$batch.lua" <<'PY'
import json, sys
samples = json.load(open(sys.argv[1]))["heldout"]
n = int(sys.argv[2])
data = [v for i in range(n) for v in samples[i % len(samples)]["inputs"]]
body = json.dumps({"inputs": [{"name": "input", "shape": [n, 64], "datatype": "FP32",
                               "data": data}]}, separators=(",", ":"))
print(f"wrk.method = 'POST'\nwrk.body = '{body}'\nwrk.headers['Content-Type'] = 'application/json'")
PY
done

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVE_PYTHON=$python RAY_SERVE_LOG_TO_STDERR=0 RAY_SERVE_LOG_DIR="$work/logs" \
  RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=0 \
  start onnx "$replica" --config "$work/serve.yaml" --app onnx --http-port "$port" --grpc-port none
deadline=$((SECONDS + 60))
until [[ $(curl -s "http://127.0.0.1:$port/-/healthz" || true) == success ]]; do
  is_running "${PIDS[onnx]}" || die "the replica exited: $(tail -n 3 "$work/onnx.err")"
  ((SECONDS < deadline)) || die "the replica is not ready within 60 s"
  sleep 0.2
done
url="http://127.0.0.1:$port/v2/models/digits_onnx/infer"
body32=$(sed -n "s/^wrk.body = '\(.*\)'$/\1/p" "$work/post_32.lua")
[[ $(curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' -d "$body32" \
  "$url") == 200 ]] || die "the replica does not answer a batch of 32"

# wrk URL SCRIPT -> "requests/s p50_ms", one connection
measure() {
  wrk -t1 -c1 -d2s -s "$2" "$1" >/dev/null 2>&1 || true  # warm-up
  timeout $((duration_s + 30)) wrk -t1 -c1 -d"$duration" --latency -s "$2" "$1" \
    >"$work/wrk.out" 2>&1 || die "wrk failed: $(cat "$work/wrk.out")"
  grep -q "Non-2xx" "$work/wrk.out" && die "non-2xx answers: $(cat "$work/wrk.out")"
  awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
                  ms = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    END { printf "%.0f %.3f\n", rps, ms }' "$work/wrk.out"
}

declare -A RPS=() P50=() INPROC=()
for batch in 1 32; do
  read -r RPS[$batch] P50[$batch] < <(measure "$url" "$work/post_$batch.lua")
done
while read -r key value; do
  INPROC[${key%_us}]=$value
done < <(PYTHONPATH="$ROOT/python" "$python" "$ROOT/bench/onnx_inprocess.py" 3 2>/dev/null)

echo "## ONNX digits: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $("$python" --version 2>&1), wrk $duration per run, c=1"
echo
echo "| batch | replica req/s | replica p50 ms | replica us/request | in process us/run | ratio | replica us/sample |"
echo "|---|---|---|---|---|---|---|"
for batch in 1 32; do
  awk -v b="$batch" -v rps="${RPS[$batch]}" -v p50="${P50[$batch]}" -v inproc="${INPROC[b$batch]}" 'BEGIN {
    per = 1e6 / rps
    printf "| %d | %d | %s | %.1f | %.1f | %.1fx | %.1f |\n", b, rps, p50, per, inproc, per / inproc, per / b
  }'
done
