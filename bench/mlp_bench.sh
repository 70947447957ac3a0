#!/usr/bin/env bash
# Measures the large MLP (1024-4096-4096-1000, ~25M parameters, random weights) on the CPU, three
# ways, in one invocation on one machine:
#   in-process     bench/mlp_forward_bench: CpuMlpModel::forward() alone at batch size B
#                  (with --gpu: CudaMlpModel::forward(), and the replicas ask for num_gpus 1)
#   batching on    serve-replica, max_batch_size 64, batch_wait_timeout_s 0.002, driven by wrk at
#                  concurrency C with one-sample [1,1024] requests
#   batching off   the same replica config with max_batch_size 1
# and compares the replica at concurrency C with the in-process pass at batch size B = C. Within
# each level the three run one after another (interleaved), so drift in the machine's speed
# affects all of them alike. See docs/benchmarks.md ("Large MLP on the CPU").
#
# usage: bench/mlp_bench.sh [BUILD_DIR] [DURATION] [options]    (defaults: build 10s)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BENCH_NAME=mlp_bench
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
TARGETS="batching_on batching_off"
# Fixed loopback ports, one per replica; their gRPC listeners get PORT + 100.
declare -A PORT=([batching_on]=18091 [batching_off]=18092)
MODEL_NAME=large_mlp
MODEL_LAYERS=1024,4096,4096,1000
INFER_PATH=/v2/models/$MODEL_NAME/infer
READY_TIMEOUT_S=60  # loading 100 MB and one warm-up pass; a replica not ready by then is broken
STOP_TIMEOUT_S=30   # SIGTERM, then SIGKILL

# The bars from the issue, checked at the end of the report.
TARGET_VS_INPROC=0.80  # batching-on samples/s / in-process samples/s at the same batch size
TARGET_ON_OFF=3        # batching-on samples/s / batching-off samples/s at concurrency ...
TARGET_ON_OFF_AT=32    # ... this one

usage() {
  cat <<EOF
usage: bench/mlp_bench.sh [BUILD_DIR] [DURATION] [options]

  BUILD_DIR             CMake build directory (default: build; relative to the current
                        directory if it exists there, else to the repository root)
  DURATION              wrk duration of each measured replica run: N, Ns or Nm (default: 10s)

options:
  -c, --concurrency "LIST"  connection counts = in-process batch sizes (default: "1 8 32 64")
  -s, --seconds N           in-process seconds per batch size (default: 3)
  -T, --threads N           OpenBLAS threads, in process and as the replicas' num_cpus
                            (default: 2)
  -g, --gpu                 run the model on CUDA device 0 (of CUDA_VISIBLE_DEVICES): in process
                            with --backend cuda, replicas with num_gpus: 1
  -b, --binary              send the sample as binary tensor data and ask for binary outputs
                            (KServe's binary tensor data extension) instead of JSON numbers
      --linger F            batching_on's linger_fraction (default: the replica's, 0.25)
      --batch-wait S        batching_on's batch_wait_timeout_s (default: 0.002)
      --wrk-threads N       wrk threads (default: 1 at concurrency 1, else 2; the 2-core
                            machines share their cores with the replica)
  -m, --model FILE          model file (default: BUILD_DIR/models/large_mlp.safetensors,
                            generated with models/make_random_mlp.py when absent)
  -r, --rounds N            repeat every run N times, interleaved; the report shows the
                            median (default: 1)
  -w, --warmup D            unmeasured wrk run per replica before measuring (default: 2s)
  -o, --output FILE         report file (default: bench/results/mlp-<date>.md; - = none)
      --check               exit 1 when a target from the issue is missed
  -h, --help                this text

Ports 127.0.0.1:18091-18092 (and 18191-18192 for the replicas' gRPC) must be free.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments

concurrency="1 8 32 64"
inproc_seconds=3
threads=2
gpu=0
binary=0
linger=""
batch_wait=0.002
wrk_threads_flag=""
model=""
rounds=1
warmup=2s
check=0
output=""
positional=()
while (($#)); do
  case $1 in
    -c | --concurrency) need_value "$1" $#; concurrency=$2; shift 2 ;;
    --concurrency=*) concurrency=${1#*=}; shift ;;
    -s | --seconds) need_value "$1" $#; inproc_seconds=$2; shift 2 ;;
    --seconds=*) inproc_seconds=${1#*=}; shift ;;
    -T | --threads) need_value "$1" $#; threads=$2; shift 2 ;;
    --threads=*) threads=${1#*=}; shift ;;
    -g | --gpu) gpu=1; shift ;;
    -b | --binary) binary=1; shift ;;
    --linger) need_value "$1" $#; linger=$2; shift 2 ;;
    --batch-wait) need_value "$1" $#; batch_wait=$2; shift 2 ;;
    --batch-wait=*) batch_wait=${1#*=}; shift ;;
    --linger=*) linger=${1#*=}; shift ;;
    --wrk-threads) need_value "$1" $#; wrk_threads_flag=$2; shift 2 ;;
    --wrk-threads=*) wrk_threads_flag=${1#*=}; shift ;;
    -m | --model) need_value "$1" $#; model=$2; shift 2 ;;
    --model=*) model=${1#*=}; shift ;;
    -r | --rounds) need_value "$1" $#; rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#*=}; shift ;;
    -w | --warmup) need_value "$1" $#; warmup=$2; shift 2 ;;
    --warmup=*) warmup=${1#*=}; shift ;;
    -o | --output) need_value "$1" $#; output=$2; shift 2 ;;
    --output=*) output=${1#*=}; shift ;;
    --check) check=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; positional+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) positional+=("$1"); shift ;;
  esac
done
((${#positional[@]} <= 2)) || die "too many arguments: ${positional[*]} (see --help)"
build_dir=${positional[0]:-build}
duration=${positional[1]:-10s}

duration_s=$(duration_seconds "$duration")
warmup_s=0
if [[ $warmup != 0 ]]; then
  warmup_s=$(duration_seconds "$warmup")
fi

read -r -a conc_list <<<"$concurrency"
((${#conc_list[@]} > 0)) || die "empty concurrency list"
for c in "${conc_list[@]}"; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "bad concurrency '$c'"
  ((c <= 64)) || die "concurrency $c exceeds the replicas' max_ongoing_requests (64)"
done
[[ $inproc_seconds =~ ^[1-9][0-9]*$ ]] || die "bad --seconds '$inproc_seconds' (whole seconds)"
[[ $threads =~ ^[1-9][0-9]*$ ]] || die "bad --threads '$threads'"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad --rounds '$rounds'"
[[ -z $linger || $linger =~ ^(0|1|0?\.[0-9]+)$ ]] || die "bad --linger '$linger' (a number in [0, 1])"
[[ $batch_wait =~ ^[0-9]*\.?[0-9]+$ ]] || die "bad --batch-wait '$batch_wait' (seconds)"
[[ -z $wrk_threads_flag || $wrk_threads_flag =~ ^[1-9][0-9]*$ ]] ||
  die "bad --wrk-threads '$wrk_threads_flag'"
backend=cpu
num_gpus=0
if ((gpu)); then
  backend=cuda
  num_gpus=1
fi

if [[ $build_dir != /* ]]; then
  if [[ -d $build_dir ]]; then
    build_dir=$(cd "$build_dir" && pwd)
  else
    build_dir=$ROOT/$build_dir
  fi
fi

# ---------------------------------------------------------------------------------------------
# Tools, binaries and the model

for tool in wrk curl awk timeout sort; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done

forward_bin=$build_dir/bench/mlp_forward_bench
[[ -x $forward_bin ]] || die "$forward_bin not found: build it (cmake --build $build_dir)"

replica_bin=""
for candidate in "$build_dir/replica/serve-replica" "$build_dir/serve-replica" \
                 "$build_dir/bin/serve-replica"; do
  if [[ -x $candidate ]]; then
    replica_bin=$candidate
    break
  fi
done
if [[ -z $replica_bin ]]; then
  replica_bin=$(find "$build_dir" -maxdepth 4 -type f -name serve-replica -perm -u+x \
                  -print -quit 2>/dev/null || true)
fi
[[ -n $replica_bin ]] || die "serve-replica not found under $build_dir: build it first"

if [[ -z $model ]]; then
  model=$build_dir/models/large_mlp.safetensors
  if [[ ! -f $model ]]; then
    command -v python3 >/dev/null || die "python3 not found: needed to generate $model"
    log "generating $model (models/make_random_mlp.py --layers $MODEL_LAYERS --seed 0)"
    python3 "$ROOT/models/make_random_mlp.py" --layers "$MODEL_LAYERS" --seed 0 \
      --out "$model" >&2 || die "cannot generate $model (needs numpy: pip install numpy)"
  fi
fi
[[ -f $model ]] || die "model $model not found"
model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")

for t in $TARGETS; do
  for p in "${PORT[$t]}" $((PORT[$t] + 100)); do
    ! port_busy "$p" || die "port 127.0.0.1:$p (for $t) is in use; free it and rerun"
  done
done

# ---------------------------------------------------------------------------------------------
# Processes: everything this script starts is recorded in PIDS and stopped on exit.

work=$(mktemp -d "${TMPDIR:-/tmp}/mlp-bench.XXXXXX")
declare -A PIDS=()

stop_all() { stop_started; }
install_cleanup

show_logs() {  # name: the tail of what a process wrote, for a failure message
  local f
  for f in "$work/$1.out" "$work/$1.err"; do
    if [[ -s $f ]]; then
      echo "--- $f (last 20 lines)" >&2
      tail -n 20 "$f" >&2
    fi
  done
}

# Waits for serve-replica's {"event":"ready","http_port":N,...} line.
wait_ready_line() {  # name, port
  local name=$1 port=$2 line got deadline=$((SECONDS + READY_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    line=$(grep -m1 -E '"event" *: *"ready"' "$work/$name.out" 2>/dev/null || true)
    if [[ -n $line ]]; then
      got=$(sed -n -E 's/.*"http_port" *: *([0-9]+).*/\1/p' <<<"$line")
      [[ $got == "$port" ]] || { show_logs "$name"; die "$name: ready on port '$got', expected $port: $line"; }
      return 0
    fi
    is_running "${PIDS[$name]}" || { show_logs "$name"; die "$name exited before it was ready"; }
    sleep 0.05
  done
  show_logs "$name"
  die "$name: no ready line within ${READY_TIMEOUT_S}s"
}

# The two replica configs differ only in `batching`. The model path is absolute, so the configs
# can live in the temp dir; the report quotes them.
write_config() {  # name, batching line
  cat >"$work/$1.yaml" <<EOF
applications:
  - name: bench
    route_prefix: /bench
    deployments:
      - name: $1
        num_replicas: 1
        max_ongoing_requests: 64
        ray_actor_options: {num_cpus: $threads, num_gpus: $num_gpus}
        model: {kind: mlp, name: $MODEL_NAME, path: $model}
        batching: $2
EOF
}

start_replica() {  # name
  local name=$1 port=${PORT[$1]}
  mkdir -p "$work/logs-$name"
  # The port ranges are pinned to the one port each listener must use. OMP_NUM_THREADS is
  # removed so that BLAS threads come from num_cpus (= --threads), like the in-process run.
  start "$name" env -u OMP_NUM_THREADS \
    RAY_SERVE_LOG_TO_STDERR="${RAY_SERVE_LOG_TO_STDERR:-0}" \
    RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE="${RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE:-1000}" \
    RAY_SERVE_LOG_DIR="${RAY_SERVE_LOG_DIR:-$work/logs-$name}" \
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S="${RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S:-0}" \
    RAY_SERVE_DEFAULT_HTTP_HOST=127.0.0.1 \
    RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT="$port" \
    RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT="$((port + 1))" \
    RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT="$((port + 100))" \
    RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT="$((port + 101))" \
    "$replica_bin" --config "$work/$name.yaml" --app bench --http-port "$port"
  wait_ready_line "$name" "$port"
}

base_url() {
  echo "http://127.0.0.1:${PORT[$1]}"
}

# ---------------------------------------------------------------------------------------------
# The request: one sample, [1, 1024] FP32, fixed pseudo-random values in [0, 1) (awk's generator
# with seed 1), generated once into a file that wrk's script reads. Every request sends the same
# bytes. With --binary the same values travel as 4 bytes each after a JSON header (KServe's
# binary tensor data extension), and the answer comes back the same way.

inputs=${MODEL_LAYERS%%,*}
values=$(awk -v n="$inputs" 'BEGIN {
  srand(1)
  for (i = 0; i < n; i++) printf "%s%.4f", (i ? "," : ""), rand()
}')
if ((binary)); then
  command -v python3 >/dev/null || die "python3 not found: --binary needs it to write the body"
  request_header="{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":\"input\",\"shape\":[1,$inputs],\"datatype\":\"FP32\",\"parameters\":{\"binary_data_size\":$((inputs * 4))}}]}"
  printf '%s' "$request_header" >"$work/body.bin"
  python3 -c 'import struct, sys
v = [float(x) for x in sys.argv[1].split(",")]
sys.stdout.buffer.write(struct.pack("<%df" % len(v), *v))' "$values" >>"$work/body.bin" ||
    die "cannot write the binary request body"
  request_headers=(-H 'Content-Type: application/octet-stream'
                   -H "Inference-Header-Content-Length: ${#request_header}")
  body_file=$work/body.bin
  body_text="${#request_header}-byte JSON header + $((inputs * 4)) bytes of binary FP32"
  lua_headers="wrk.headers[\"Content-Type\"] = \"application/octet-stream\"
wrk.headers[\"Inference-Header-Content-Length\"] = \"${#request_header}\""
else
  printf '{"inputs":[{"name":"input","shape":[1,%d],"datatype":"FP32","data":[%s]}]}' \
    "$inputs" "$values" >"$work/body.json"
  request_headers=(-H 'Content-Type: application/json')
  body_file=$work/body.json
  body_text="$(wc -c <"$body_file" | tr -d ' ')-byte JSON body"
  lua_headers="wrk.headers[\"Content-Type\"] = \"application/json\""
fi
cat >"$work/post.lua" <<EOF
-- generated by bench/mlp_bench.sh: one [1,$inputs] FP32 sample
local f = assert(io.open("$body_file", "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
$lua_headers
EOF

# ---------------------------------------------------------------------------------------------
# Measurement

declare -A REPLY_INFO=()  # target -> "status header_bytes body_bytes"

check_reply() {  # target: one request with curl; the answer must be a 200 with a [1,N] output
  local target=$1 result code
  result=$(curl -sS --max-time 10 -o "$work/$target.reply" \
             -w '%{http_code} %{size_header} %{size_download}' \
             "${request_headers[@]}" --data-binary "@$body_file" \
             "$(base_url "$target")$INFER_PATH") || die "$target: request failed"
  code=${result%% *}
  if [[ $code != 200 ]] || ! grep -aq '"shape":\[1,[0-9]*\]' "$work/$target.reply"; then
    echo "--- reply body:" >&2
    head -c 2000 "$work/$target.reply" >&2
    echo >&2
    die "$target answered $code, not 200 with a [1,N] output"
  fi
  REPLY_INFO[$target]=$result
}

# Sets METRICS_RESULT to "batch_sum batch_count forward_ms_sum forward_count" from /metrics.
METRICS_RESULT=""
read_metrics() {  # target
  curl -sS --max-time 5 -o "$work/metrics.txt" "$(base_url "$1")/metrics" ||
    die "$1: cannot read /metrics"
  METRICS_RESULT=$(awk '
    /^serve_batch_size_sum[{ ]/ { bs = $NF }
    /^serve_batch_size_count[{ ]/ { bc = $NF }
    /^serve_model_forward_latency_ms_sum[{ ]/ { fs = $NF }
    /^serve_model_forward_latency_ms_count[{ ]/ { fc = $NF }
    END {
      if (bs == "" || bc == "" || fs == "" || fc == "") exit 1
      printf "%s %s %s %s\n", bs, bc, fs, fc
    }' "$work/metrics.txt") || die "$1: no serve_batch_size / serve_model_forward_latency_ms in /metrics"
}

wrk_threads() {  # connections -> wrk threads: the machine has few cores, wrk shares them
  if [[ -n $wrk_threads_flag ]]; then
    echo $((wrk_threads_flag < $1 ? wrk_threads_flag : $1))
    return
  fi
  if (($1 < 2)); then echo 1; else echo 2; fi
}

# Runs wrk once and sets WRK_RESULT to "req_per_s p50_us p99_us errors mean_batch forward_ms";
# the last two come from the replica's /metrics, read before and after the run (deltas). wrk runs
# in the background so that a signal to this script interrupts `wait` at once; cleanup stops it
# like the servers.
WRK_RESULT=""
run_wrk() {  # target, connections, duration, duration_seconds, log name
  local target=$1 conns=$2 dur=$3 dur_s=$4 name=$5 out rc=0 before after parsed
  out=$work/wrk-$name.txt
  read_metrics "$target"
  before=$METRICS_RESULT
  timeout -k 5 $((dur_s + 30)) wrk -t"$(wrk_threads "$conns")" -c"$conns" -d"$dur" \
    --latency -s "$work/post.lua" "$(base_url "$target")$INFER_PATH" >"$out" 2>&1 </dev/null &
  PIDS[wrk]=$!
  wait "${PIDS[wrk]}" || rc=$?
  unset "PIDS[wrk]"
  if ((rc != 0)); then
    cat "$out" >&2
    die "wrk failed (exit $rc) against $target at concurrency $conns"
  fi
  read_metrics "$target"
  after=$METRICS_RESULT
  # wrk prints latencies as e.g. 48.00us, 1.20ms, 2.00s; everything is turned into µs.
  parsed=$(awk '
    function us(v,   n, unit) {
      n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit)
      if (unit == "us") return n
      if (unit == "ms") return n * 1e3
      if (unit == "s") return n * 1e6
      if (unit == "m") return n * 6e7
      if (unit == "h") return n * 3.6e9
      return -1
    }
    /^Requests\/sec:/ { rps = $2 }
    /^[ \t]+50%/ { p50 = us($2) }
    /^[ \t]+99%/ { p99 = us($2) }
    /Non-2xx or 3xx responses:/ { errors += $NF }
    /Socket errors:/ {
      line = $0; sub(/.*Socket errors:/, "", line); gsub(/[^0-9]+/, " ", line)
      k = split(line, parts, " "); for (i = 1; i <= k; i++) errors += parts[i]
    }
    END {
      if (rps == "" || p50 == "" || p99 == "" || p50 < 0 || p99 < 0) exit 1
      printf "%.0f %.0f %.0f %d\n", rps, p50, p99, errors
    }' "$out") || { cat "$out" >&2; die "cannot parse wrk output for $target (kept in $out)"; }
  # The deltas include the few requests still in flight when wrk stopped; over thousands of
  # requests that is noise.
  WRK_RESULT="$parsed $(awk -v b="$before" -v a="$after" 'BEGIN {
    split(b, x, " "); split(a, y, " ")
    bc = y[2] - x[2]; fc = y[4] - x[4]
    printf "%.1f %.2f\n", (bc > 0 ? (y[1] - x[1]) / bc : 0), (fc > 0 ? (y[3] - x[3]) / fc : 0)
  }')"
}

# Runs the in-process pass at one batch size and sets INPROC_RESULT to "samples_per_s ms_per_pass".
INPROC_RESULT=""
run_inproc() {  # batch size, log name
  local batch=$1 name=$2 out rc=0 line
  out=$work/inproc-$name.txt
  timeout -k 5 $((inproc_seconds + 120)) "$forward_bin" --model "$model" --backend "$backend" --threads "$threads" \
    --batch-sizes "$batch" --seconds "$inproc_seconds" >"$out" 2>&1 </dev/null &
  PIDS[inproc]=$!
  wait "${PIDS[inproc]}" || rc=$?
  unset "PIDS[inproc]"
  if ((rc != 0)); then
    cat "$out" >&2
    die "mlp_forward_bench failed (exit $rc) at batch size $batch"
  fi
  line=$(grep -m1 "^result batch_size=$batch " "$out") || { cat "$out" >&2; die "no result line from mlp_forward_bench"; }
  INPROC_RESULT=$(sed -E 's/.* samples_per_s=([0-9.]+) ms_per_pass=([0-9.]+).*/\1 \2/' <<<"$line")
}

int() {  # number -> rounded to an integer
  awk -v a="$1" 'BEGIN { printf "%.0f", a }'
}
fixed2() {  # number -> two decimals
  awk -v a="$1" 'BEGIN { printf "%.2f", a }'
}
ms() {  # microseconds -> milliseconds, one decimal
  awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'
}

median() {  # numbers... -> their median
  printf '%s\n' "$@" | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------------------------------------
# Run

# Other work on the machine skews every number; say so up front and record it in the report.
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
if awk -v l="${load_at_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l + 0 > n / 4) }'; then
  log "warning: load average is $load_at_start on $(nproc) cores; results will be noisy"
fi

levels=${#conc_list[@]}
log "$((levels * rounds)) levels x (${inproc_seconds}s in process + 2 x $duration), plus start-up and ${warmup} warm-up per replica: about $((levels * rounds * (inproc_seconds + 2 + 2 * duration_s) + 2 * warmup_s + 10))s"

if [[ -n $linger ]]; then
  write_config batching_on "{max_batch_size: 64, batch_wait_timeout_s: $batch_wait, linger_fraction: $linger}"
else
  write_config batching_on "{max_batch_size: 64, batch_wait_timeout_s: $batch_wait}"
fi
write_config batching_off "{max_batch_size: 1}"
for t in $TARGETS; do
  start_replica "$t"
  check_reply "$t"
  log "$t ready on 127.0.0.1:${PORT[$t]} (pid ${PIDS[$t]})"
done

max_conc=$(printf '%s\n' "${conc_list[@]}" | sort -n | tail -n 1)
if ((warmup_s > 0)); then
  for t in $TARGETS; do
    run_wrk "$t" "$max_conc" "$warmup" "$warmup_s" "warmup-$t"
  done
fi

# "target,conns" -> space-separated values per round; target "inproc" is the in-process pass.
declare -A SPS=() P50=() P99=() ERRORS=() BATCH=() FWD=()
raw_rows=()
for ((round = 1; round <= rounds; round++)); do
  for c in "${conc_list[@]}"; do
    run_inproc "$c" "b$c-r$round"
    read -r sps ms <<<"$INPROC_RESULT"
    SPS[inproc,$c]="${SPS[inproc,$c]:-} $sps"
    FWD[inproc,$c]="${FWD[inproc,$c]:-} $ms"
    raw_rows+=("| $round | in-process | $c | $(int "$sps") | | | | $c | $(fixed2 "$ms") |")
    log "round $round, batch $c, in-process: $sps samples/s, $ms ms per pass"
    for t in $TARGETS; do
      run_wrk "$t" "$c" "$duration" "$duration_s" "$t-c$c-r$round"
      read -r rps p50 p99 errors batch fwd <<<"$WRK_RESULT"
      key=$t,$c
      SPS[$key]="${SPS[$key]:-} $rps"
      P50[$key]="${P50[$key]:-} $p50"
      P99[$key]="${P99[$key]:-} $p99"
      BATCH[$key]="${BATCH[$key]:-} $batch"
      FWD[$key]="${FWD[$key]:-} $fwd"
      ERRORS[$key]=$((${ERRORS[$key]:-0} + errors))
      raw_rows+=("| $round | $t | $c | $rps | $p50 | $p99 | $errors | $batch | $fwd |")
      log "round $round, c=$c, $t: $rps samples/s, p50 ${p50}µs, p99 ${p99}µs, mean batch $batch, forward ${fwd} ms, errors $errors"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# Report

declare -A M_SPS=() M_P50=() M_P99=() M_BATCH=() M_FWD=()
# shellcheck disable=SC2086  # word splitting of the per-round lists is intended
for key in "${!SPS[@]}"; do
  M_SPS[$key]=$(median ${SPS[$key]})
  M_FWD[$key]=$(median ${FWD[$key]})
  if [[ $key != inproc,* ]]; then
    M_P50[$key]=$(median ${P50[$key]})
    M_P99[$key]=$(median ${P99[$key]})
    M_BATCH[$key]=$(median ${BATCH[$key]})
  fi
done

ratio() {  # numerator, denominator -> "93.1%"
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'
}
times() {  # numerator, denominator -> "3.2×"
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'
}

# In-process ms per pass at a batch size between the measured ones, linear between the two
# nearest (a pass costs about a fixed part plus a part per row); n/a outside the measured range.
interp_ms() {  # batch size -> ms per pass
  local c pairs=""
  for c in "${conc_list[@]}"; do
    pairs+="$c:${M_FWD[inproc,$c]} "
  done
  awk -v x="$1" -v pairs="$pairs" 'BEGIN {
    n = split(pairs, p, " ")
    for (i = 1; i <= n; i++) { split(p[i], q, ":"); b[i] = q[1] + 0; m[i] = q[2] + 0 }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] < b[i]) {
      t = b[i]; b[i] = b[j]; b[j] = t; t = m[i]; m[i] = m[j]; m[j] = t
    }
    for (i = 1; i <= n; i++) {
      if (x == b[i]) { printf "%.2f", m[i]; exit }
      if (i < n && x > b[i] && x < b[i + 1]) {
        printf "%.2f", m[i] + (x - b[i]) * (m[i + 1] - m[i]) / (b[i + 1] - b[i]); exit
      }
    }
    print "n/a"
  }'
}

verdicts=()
failed=0
verdict() {  # ok (0/1), text
  if (($1)); then
    verdicts+=("- PASS: $2")
  else
    verdicts+=("- FAIL: $2")
    failed=1
  fi
}

for c in "${conc_list[@]}"; do
  on=${M_SPS[batching_on,$c]}
  ip=${M_SPS[inproc,$c]}
  ok=$(awk -v r="$on" -v b="$ip" -v t="$TARGET_VS_INPROC" 'BEGIN { print (b > 0 && r >= t * b) ? 1 : 0 }')
  verdict "$ok" "batching on at concurrency $c serves $(ratio "$on" "$ip") of the in-process samples/s at batch size $c ($(int "$on") vs $(int "$ip"); target ≥ $(ratio "$TARGET_VS_INPROC" 1); mean batch formed ${M_BATCH[batching_on,$c]})"
done
if [[ " ${conc_list[*]} " == *" $TARGET_ON_OFF_AT "* ]]; then
  on=${M_SPS[batching_on,$TARGET_ON_OFF_AT]}
  off=${M_SPS[batching_off,$TARGET_ON_OFF_AT]}
  ok=$(awk -v a="$on" -v b="$off" -v t="$TARGET_ON_OFF" 'BEGIN { print (b > 0 && a >= t * b) ? 1 : 0 }')
  verdict "$ok" "batching on vs off at concurrency $TARGET_ON_OFF_AT: $(times "$on" "$off") ($(int "$on") vs $(int "$off") samples/s; target ≥ ${TARGET_ON_OFF}×)"
else
  verdicts+=("- SKIPPED: batching on vs off at concurrency $TARGET_ON_OFF_AT (not in the concurrency list)")
fi
for c in "${conc_list[@]}"; do
  for t in $TARGETS; do
    if ((ERRORS[$t,$c] > 0)); then
      verdicts+=("- WARNING: $t at concurrency $c had ${ERRORS[$t,$c]} errors (non-2xx responses or socket errors); its numbers are not comparable")
      failed=1
    fi
  done
done

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576; exit }' /proc/meminfo 2>/dev/null || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
compiler=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
# What CMake recorded when it configured the build: right also when the binaries were built
# elsewhere and carried to this machine, whose own compiler may differ.
compiler_version=$(cat "$build_dir"/CMakeFiles/*/CMakeCXXCompiler.cmake 2>/dev/null | awk -F'"' '
  /^set\(CMAKE_CXX_COMPILER_ID / { id = $2 }
  /^set\(CMAKE_CXX_COMPILER_VERSION / { v = $2 }
  END { if (id != "") print id " " v }')
if [[ -z $compiler_version && -n $compiler && -x $compiler ]]; then
  compiler_version=$("$compiler" --version 2>/dev/null | head -n 1 || true)
fi
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1 || true) ]]; then
  git_rev="$git_rev (with uncommitted changes)"
fi
wrk_version=$( (wrk -v 2>&1 || true) | head -n 1)
inproc_logs=("$work"/inproc-*.txt)
first_inproc=${inproc_logs[0]}
model_line=$(sed -n 's/^model: //p' "$first_inproc" 2>/dev/null | head -n 1)
backend_line=$(sed -n 's/^back end: //p' "$first_inproc" 2>/dev/null | head -n 1)
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
ray_env=$(env | grep -E '^RAY_SERVE_' | sort || true)

cmdline="bench/mlp_bench.sh ${build_dir#"$ROOT"/} $duration -c \"${conc_list[*]}\" -s $inproc_seconds"
((threads == 2)) || cmdline+=" -T $threads"
((gpu == 0)) || cmdline+=" --gpu"
((binary == 0)) || cmdline+=" --binary"
[[ -z $linger ]] || cmdline+=" --linger $linger"
[[ $batch_wait == 0.002 ]] || cmdline+=" --batch-wait $batch_wait"
[[ -z $wrk_threads_flag ]] || cmdline+=" --wrk-threads $wrk_threads_flag"
((rounds == 1)) || cmdline+=" -r $rounds"
[[ $warmup == 2s ]] || cmdline+=" -w $warmup"

report=$work/report.md
{
  if ((gpu)); then
    echo "# Large MLP on the GPU: $(date -u '+%Y-%m-%d %H:%M UTC')"
  else
    echo "# Large MLP on the CPU: $(date -u '+%Y-%m-%d %H:%M UTC')"
  fi
  echo
  echo "Command: \`$cmdline\` at $git_rev, build type ${build_type:-unknown}."
  echo
  echo "## Machine"
  echo
  echo "- \`$(uname -a)\`"
  echo "- CPU: ${cpu_model:-unknown}; nproc: $(nproc); memory: ${mem_total:-unknown}"
  echo "- load average before the run: $load_at_start; after: $load_at_end"
  echo "- back end: ${backend_line:-unknown}; num_cpus $threads, num_gpus $num_gpus in each replica"
  echo "- wrk: ${wrk_version:-unknown}"
  [[ -z $compiler_version ]] || echo "- compiler: $compiler_version"
  echo "- wrk and the replica share the machine's cores (wrk threads: $(wrk_threads 1) at concurrency 1, $(wrk_threads 64) above);"
  echo "  all traffic is keep-alive HTTP/1.1 over 127.0.0.1."
  if [[ -n $ray_env ]]; then
    echo "- RAY_SERVE_* set by the caller: $(tr '\n' ' ' <<<"$ray_env")"
  fi
  echo
  echo "## Setup"
  echo
  echo "- model: ${model_line:-$model}"
  echo "- in process: \`mlp_forward_bench --backend $backend --threads $threads --batch-sizes B --seconds $inproc_seconds\`"
  echo "  (the back end's forward() on random inputs, ≥ 0.5 s warm-up)"
  echo "- replicas: \`wrk -t<T> -c<C> -d$duration --latency\` against \`POST $INFER_PATH\`, one"
  echo "  [1,$inputs] FP32 sample per request ($body_text); samples/s = requests/s."
  if ((warmup_s > 0)); then
    echo "  One unmeasured $warmup warm-up per replica at concurrency $max_conc first."
  fi
  echo "- each level runs in process, batching on, batching off in turn; mean batch and forward ms"
  echo "  are deltas of the replica's serve_batch_size and serve_model_forward_latency_ms over the run."
  ((rounds == 1)) || echo "- $rounds rounds; the table shows the median of each cell."
  echo
  echo "| replica | port | batching | status | header bytes | body bytes |"
  echo "|---|---:|---|---|---:|---:|"
  for t in $TARGETS; do
    read -r code hbytes bbytes <<<"${REPLY_INFO[$t]}"
    echo "| $t | ${PORT[$t]} | \`$(sed -n 's/^ *batching: //p' "$work/$t.yaml")\` | $code | $hbytes | $bbytes |"
  done
  echo
  echo "Both: \`max_ongoing_requests: 64\`, \`ray_actor_options: {num_cpus: $threads, num_gpus: $num_gpus}\`, \`model: {kind: mlp, name: $MODEL_NAME}\`."
  echo
  echo "## Results"
  echo
  echo "Concurrency C for the replicas is compared with batch size C in process: with C"
  echo "connections at most C requests can share a batch."
  echo
  echo "| batch size / concurrency | in-process samples/s | batching on samples/s | on vs in-process | mean batch (on) | batching off samples/s | on / off |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${conc_list[@]}"; do
    on=${M_SPS[batching_on,$c]}
    off=${M_SPS[batching_off,$c]}
    ip=${M_SPS[inproc,$c]}
    echo "| $c | $(int "$ip") | $(int "$on") | $(ratio "$on" "$ip") | ${M_BATCH[batching_on,$c]} | $(int "$off") | $(times "$on" "$off") |"
  done
  echo
  echo "Where the gap comes from (batching on): the mean batch the replica actually formed, the"
  echo "share of wall time its model was computing (passes/s × forward ms), its forward ms against"
  echo "the in-process ms/pass at that batch size (interpolated linearly between the measured sizes),"
  echo "and the replica's samples/s against the in-process samples/s at the batch it formed:"
  echo
  echo "| C | mean batch formed | model busy | forward ms in the replica | in-process ms/pass at that batch | in-process samples/s at that batch | on vs that |"
  echo "|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${conc_list[@]}"; do
    on=${M_SPS[batching_on,$c]}
    b=${M_BATCH[batching_on,$c]}
    f=${M_FWD[batching_on,$c]}
    ims=$(interp_ms "$b")
    isps=$(awk -v b="$b" -v m="$ims" 'BEGIN { if (m + 0 > 0) printf "%.0f", b * 1000 / m; else print "n/a" }')
    busy=$(awk -v s="$on" -v b="$b" -v f="$f" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * s / b * f / 1000; else print "n/a" }')
    echo "| $c | $b | $busy | $f | $ims | $isps | $(ratio "$on" "$isps") |"
  done
  echo
  echo "Latency and time per forward pass:"
  echo
  echo "| C | in-process ms/pass (batch C) | on: p50 ms | on: p99 ms | on: forward ms | off: p50 ms | off: p99 ms | off: forward ms | off: mean batch |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${conc_list[@]}"; do
    echo "| $c | $(fixed2 "${M_FWD[inproc,$c]}") | $(ms "${M_P50[batching_on,$c]}") | $(ms "${M_P99[batching_on,$c]}") | ${M_FWD[batching_on,$c]} | $(ms "${M_P50[batching_off,$c]}") | $(ms "${M_P99[batching_off,$c]}") | ${M_FWD[batching_off,$c]} | ${M_BATCH[batching_off,$c]} |"
  done
  echo
  echo "Targets (issue: with batching the replica reaches ≥ 80% of the in-process samples/s at the"
  echo "same batch size; batching on beats batching off by ≥ 3× at concurrency 32):"
  echo
  printf '%s\n' "${verdicts[@]}"
  echo
  if ((rounds > 1)); then
    echo "Every run:"
    echo
    echo "| round | target | C | samples/s | p50 µs | p99 µs | errors | mean batch | forward ms |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${raw_rows[@]}"
    echo
  fi
} >"$report"

cat "$report"
if [[ $output != - ]]; then
  if [[ -z $output ]]; then
    mkdir -p "$BENCH/results"
    output=$BENCH/results/mlp-$(date -u +%Y-%m-%d-%H%M%S).md
  fi
  cp "$report" "$output"
  log "report written to $output"
fi

if ((check && failed)); then
  exit 1
fi
