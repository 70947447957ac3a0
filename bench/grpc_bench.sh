#!/usr/bin/env bash
# Unary KServe v2 inference through HAProxy, gRPC next to HTTP, on one real node:
# `haproxy-manager start --config bench/configs/grpc_noop.yaml` (HAProxy + one supervised
# serve-replica with the built-in noop model, batching off). Four targets, interleaved within
# each concurrency level so that drift in the machine's speed affects all of them alike:
#   grpc_haproxy   bench/grpc_load (closed loop, N calls in flight) → HAProxy's gRPC port
#   grpc_direct    the same → the replica's own gRPC port: the baseline of grpc_haproxy
#   http_haproxy   wrk + bench/post.lua (N keep-alive connections) → HAProxy's HTTP port
#   http_direct    the same → the replica's own HTTP port: the baseline of http_haproxy
# See docs/benchmarks.md ("gRPC through HAProxy").
#
# usage: bench/grpc_bench.sh [BUILD_DIR] [DURATION] [options]    (defaults: build 10s)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BENCH_NAME=grpc_bench
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
CONFIG=$BENCH/configs/grpc_noop.yaml
ALL_TARGETS="grpc_haproxy grpc_direct http_haproxy http_direct"
# HAProxy's listeners come from the config file; the rest is pinned here so that nothing of a
# default node (8000, 9000, 9101, 8404, 8405, 30000+, 40000+) is touched.
HTTP_PORT=18180
GRPC_PORT=18190
METRICS_PORT=18185
STATS_PORT=18186
CONTROL_PORT=18187
REPLICA_HTTP_PORTS=(18200 18204)  # [min, max) of the replica's HTTP port range
REPLICA_GRPC_PORTS=(18210 18214)  # and of its gRPC range
APPLICATION=bench
MODEL=noop
INFER_PATH=/v2/models/$MODEL/infer
READY_TIMEOUT_S=60  # manager ready, HAProxy routing, replica in its slot
STOP_TIMEOUT_S=60   # SIGTERM, then SIGKILL (the manager drains the replica first)
GRPC_WARMUP_S=0.5   # grpc_load's own unmeasured start of every run (its connection is up already)

usage() {
  local replica_ports="${REPLICA_HTTP_PORTS[0]}-$((REPLICA_HTTP_PORTS[1] - 1)) and"
  replica_ports+=" ${REPLICA_GRPC_PORTS[0]}-$((REPLICA_GRPC_PORTS[1] - 1))"
  cat <<EOF
usage: bench/grpc_bench.sh [BUILD_DIR] [DURATION] [options]

  BUILD_DIR             CMake build directory with haproxy-manager, serve-replica and
                        bench/grpc_load (default: build; relative to the current directory if
                        it exists there, else to the repository root)
  DURATION              duration of each measured run: N, Ns or Nm (default: 10s)

options:
  -c, --concurrency "LIST"   calls in flight (gRPC) = connections (wrk) (default: "1 8 32")
  -t, --targets "LIST"       subset of: $ALL_TARGETS (default: all)
  -r, --rounds N             repeat every run N times, interleaved; the tables show medians
                             (default: 1)
  -w, --warmup D             unmeasured run per target at the highest concurrency first
                             (default: 2s; 0 for none)
      --raw                  gRPC tensors in raw_input_contents (default: typed fp32_contents)
      --grpc-connections N   HTTP/2 connections grpc_load spreads its calls over (default: 1)
      --haproxy BIN          the HAProxy binary (default: haproxy on PATH)
  -o, --output FILE          report file (default: bench/results/grpc-<date>.md; - = none)
  -h, --help                 this text

127.0.0.1 ports $HTTP_PORT, $GRPC_PORT, $METRICS_PORT-$CONTROL_PORT, $replica_ports must be free.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments

concurrency="1 8 32"
targets=$ALL_TARGETS
rounds=1
warmup=2s
raw=0
grpc_connections=1
haproxy_bin=""
output=""
positional=()
while (($#)); do
  case $1 in
    -c | --concurrency) need_value "$1" $#; concurrency=$2; shift 2 ;;
    --concurrency=*) concurrency=${1#*=}; shift ;;
    -t | --targets) need_value "$1" $#; targets=$2; shift 2 ;;
    --targets=*) targets=${1#*=}; shift ;;
    -r | --rounds) need_value "$1" $#; rounds=$2; shift 2 ;;
    --rounds=*) rounds=${1#*=}; shift ;;
    -w | --warmup) need_value "$1" $#; warmup=$2; shift 2 ;;
    --warmup=*) warmup=${1#*=}; shift ;;
    --raw) raw=1; shift ;;
    --grpc-connections) need_value "$1" $#; grpc_connections=$2; shift 2 ;;
    --grpc-connections=*) grpc_connections=${1#*=}; shift ;;
    --haproxy) need_value "$1" $#; haproxy_bin=$2; shift 2 ;;
    --haproxy=*) haproxy_bin=${1#*=}; shift ;;
    -o | --output) need_value "$1" $#; output=$2; shift 2 ;;
    --output=*) output=${1#*=}; shift ;;
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
done
read -r -a target_list <<<"$targets"
((${#target_list[@]} > 0)) || die "empty target list"
for t in "${target_list[@]}"; do
  [[ " $ALL_TARGETS " == *" $t "* ]] || die "unknown target '$t' (one of: $ALL_TARGETS)"
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad --rounds '$rounds'"
[[ $grpc_connections =~ ^[1-9][0-9]*$ ]] || die "bad --grpc-connections '$grpc_connections'"

has_target() {
  [[ " ${target_list[*]} " == *" $1 "* ]]
}

if [[ $build_dir != /* ]]; then
  if [[ -d $build_dir ]]; then
    build_dir=$(cd "$build_dir" && pwd)
  else
    build_dir=$ROOT/$build_dir
  fi
fi

# ---------------------------------------------------------------------------------------------
# Tools and binaries

for tool in wrk curl awk timeout sort python3; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done
manager_bin=$build_dir/haproxy-manager/haproxy-manager
replica_bin=$build_dir/replica/serve-replica
load_bin=$build_dir/bench/grpc_load
for bin in "$manager_bin" "$replica_bin" "$load_bin"; do
  [[ -x $bin ]] || die "$bin not found: cmake --build ${build_dir#"$ROOT"/} --target haproxy-manager serve-replica grpc_load"
done
if [[ -z $haproxy_bin ]]; then
  haproxy_bin=$(command -v haproxy || true)
  [[ -n $haproxy_bin ]] || { [[ -x /usr/sbin/haproxy ]] && haproxy_bin=/usr/sbin/haproxy; } ||
    die "haproxy not found (scripts/setup.sh installs it)"
fi
[[ -x $haproxy_bin ]] || die "$haproxy_bin is not an executable"
haproxy_version=$("$haproxy_bin" -v 2>/dev/null | head -n 1)

request_body=$(sed -n "s/^local body = '\(.*\)'\$/\1/p" "$BENCH/post.lua")
[[ -n $request_body ]] || die "cannot read the request body from $BENCH/post.lua"
# grpc_load sends the same tensor: [1,4] FP32, values 1..4.
[[ $request_body == *'"shape":[1,4]'*'"data":[1,2,3,4]'* ]] ||
  die "bench/post.lua no longer sends [1,4] = 1,2,3,4; change grpc_load's --elements to match"

for p in "$HTTP_PORT" "$GRPC_PORT" "$METRICS_PORT" "$STATS_PORT" "$CONTROL_PORT" \
         $(seq "${REPLICA_HTTP_PORTS[0]}" $((REPLICA_HTTP_PORTS[1] - 1))) \
         $(seq "${REPLICA_GRPC_PORTS[0]}" $((REPLICA_GRPC_PORTS[1] - 1))); do
  ! port_busy "$p" || die "port 127.0.0.1:$p is in use; free it and rerun"
done

# ---------------------------------------------------------------------------------------------
# The node. Everything lives in one temp dir (short, for the unix socket paths); the manager is
# this script's child and stops its HAProxy and replica itself on SIGTERM.

work=$(mktemp -d "${TMPDIR:-/tmp}/grpc-bench.XXXXXX")
mkdir -p "$work/haproxy" "$work/logs"
manager_pid=""
client_pid=""
node_pids=()  # HAProxy master and replica, from the manager's status: checked after it stops

stop_all() {
  local pid
  if [[ -n $client_pid ]]; then
    stop_pid "$client_pid" client 5
    client_pid=""
  fi
  if [[ -n $manager_pid ]]; then
    stop_pid "$manager_pid" haproxy-manager "$STOP_TIMEOUT_S"
    manager_pid=""
  fi
  # Only if the manager could not stop them: the pids it reported, nothing found by name.
  for pid in "${node_pids[@]}"; do
    if is_running "$pid"; then
      log "pid $pid (started by the manager) outlived it; stopping it"
      stop_pid "$pid" "pid $pid" 10
    fi
  done
  node_pids=()
}

install_cleanup

show_logs() {
  local f
  for f in "$work/manager.out" "$work/manager.err" "$work"/logs/*; do
    if [[ -s $f ]]; then
      echo "--- $f (last 20 lines)" >&2
      tail -n 20 "$f" >&2
    fi
  done
}

node_env=(
  RAY_SERVE_HAPROXY_BINARY_PATH="$haproxy_bin"
  RAY_SERVE_HAPROXY_SOCKET_PATH="$work/haproxy/admin.sock"
  RAY_SERVE_HAPROXY_CONFIG_FILE_LOC="$work/haproxy/haproxy.cfg"
  RAY_SERVE_HAPROXY_METRICS_PORT="$METRICS_PORT"
  RAY_SERVE_HAPROXY_STATS_PORT="$STATS_PORT"
  RAY_SERVE_HAPROXY_CONTROL_PORT="$CONTROL_PORT"
  RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT="${REPLICA_HTTP_PORTS[0]}"
  RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT="${REPLICA_HTTP_PORTS[1]}"
  RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT="${REPLICA_GRPC_PORTS[0]}"
  RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT="${REPLICA_GRPC_PORTS[1]}"
  RAY_SERVE_DEFAULT_HTTP_HOST=127.0.0.1
  RAY_SERVE_LOG_DIR="${RAY_SERVE_LOG_DIR:-$work/logs}"
  # As in "Replica alone": access logging stays on, a thousand lines per write.
  RAY_SERVE_LOG_TO_STDERR="${RAY_SERVE_LOG_TO_STDERR:-0}"
  RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE="${RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE:-1000}"
  # A stop drains the node first; nothing watches this one, so no need to wait out 30 s.
  RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S="${RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S:-0}"
)

status_json() {
  env "${node_env[@]}" "$manager_bin" status
}

start_node() {
  env "${node_env[@]}" "$manager_bin" start --config "$CONFIG" \
    >"$work/manager.out" 2>"$work/manager.err" </dev/null &
  manager_pid=$!
  local deadline=$((SECONDS + READY_TIMEOUT_S)) code="" status
  while ! grep -qE '"event" *: *"ready"' "$work/manager.out" 2>/dev/null; do
    is_running "$manager_pid" || { show_logs; die "haproxy-manager exited before it was ready"; }
    ((SECONDS < deadline)) || { show_logs; die "haproxy-manager: no ready line within ${READY_TIMEOUT_S}s"; }
    sleep 0.1
  done
  # Ready means HAProxy runs; routing needs the replica up and in its slot.
  while [[ $code != 200 ]]; do
    ((SECONDS < deadline)) || { show_logs; die "http://127.0.0.1:$HTTP_PORT/-/healthz answered '$code', not 200, within ${READY_TIMEOUT_S}s"; }
    sleep 0.2
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$HTTP_PORT/-/healthz" || true)
  done
  # The replica's own addresses, and the pids to watch, from the manager's status.
  while true; do
    status=$(status_json) || { show_logs; die "haproxy-manager status failed"; }
    NODE_INFO=$(python3 -c '
import json, sys
s = json.loads(sys.argv[1]); app = sys.argv[2]
slots = [x for a in s["applications"] if a["name"] == app for x in a["slots"] if x["state"] == "active"]
procs = [p for p in s.get("processes", []) if p["application"] == app]
if len(slots) == 1 and slots[0].get("grpc_address") and len(procs) == 1 and procs[0]["pid"] > 0:
    print(slots[0]["address"], slots[0]["grpc_address"], s["haproxy"]["master_pid"], procs[0]["pid"])
' "$status" "$APPLICATION") || { echo "$status" >&2; die "cannot read the manager status"; }
    [[ -z $NODE_INFO ]] || break
    ((SECONDS < deadline)) || { echo "$status" >&2; die "no active slot with a gRPC address within ${READY_TIMEOUT_S}s"; }
    sleep 0.2
  done
  read -r replica_http replica_grpc haproxy_master replica_pid <<<"$NODE_INFO"
  node_pids=("$haproxy_master" "$replica_pid")
  echo "$status" >"$work/status.json"
}

haproxy_workers() {  # the master's children: the worker (more than one only during a reload)
  local children
  children=$(cat "/proc/$haproxy_master/task/$haproxy_master/children" 2>/dev/null || true)
  [[ -n $children ]] || children=$(pgrep -P "$haproxy_master" 2>/dev/null | tr '\n' ' ' || true)
  echo "$children"
}

# ---------------------------------------------------------------------------------------------
# Measurement

CLK_TCK=$(getconf CLK_TCK)

cpu_ticks() {  # pids... -> utime + stime summed over those that still run
  local pid stat total=0 fields
  for pid in "$@"; do
    read -r stat 2>/dev/null <"/proc/$pid/stat" || continue
    read -r -a fields <<<"${stat##*) }"
    total=$((total + fields[11] + fields[12]))  # fields 14 and 15 of stat(5)
  done
  echo "$total"
}

children_ticks() {  # CPU of this shell's reaped children: the clients, once waited for
  local stat fields
  read -r stat <"/proc/$$/stat"
  read -r -a fields <<<"${stat##*) }"
  echo $((fields[13] + fields[14]))  # cutime + cstime, fields 16 and 17 of stat(5)
}

url_of() {  # target
  case $1 in
    http_haproxy) echo "http://127.0.0.1:$HTTP_PORT$INFER_PATH" ;;
    http_direct) echo "http://$replica_http$INFER_PATH" ;;
  esac
}

grpc_args_of() {  # target
  case $1 in
    grpc_haproxy) echo "--target 127.0.0.1:$GRPC_PORT --application $APPLICATION" ;;
    grpc_direct) echo "--target $replica_grpc" ;;
  esac
}

check_http() {  # target: one request; the answer must be a 200 echo
  local body code
  code=$(curl -sS --max-time 5 -o "$work/$1.reply" -w '%{http_code}' \
           -H 'Content-Type: application/json' --data-binary "$request_body" "$(url_of "$1")") ||
    die "$1: request failed"
  body=$(head -c 2000 "$work/$1.reply")
  [[ $code == 200 && $body == *'"data":[1'*'2'*'3'*'4'* ]] || die "$1 answered $code: $body"
}

wrk_threads() {  # connections -> wrk threads, as in replica_bench.sh
  if (($1 < 2)); then echo 1; else echo 2; fi
}

grpc_threads() {  # in-flight calls -> grpc_load threads: the same as wrk, for the same cores
  wrk_threads "$1"
}

# Runs one client; sets RESULT to "rps p50 p90 p99 errors codes client_cpu haproxy_cpu
# replica_cpu manager_cpu" (CPU in % of one core over the run). The client runs in the background so that
# a signal interrupts `wait` at once; cleanup stops it.
RESULT=""
run_client() {  # target, concurrency, duration, duration_seconds, log name
  local target=$1 conns=$2 dur=$3 dur_s=$4 name=$5 out rc=0 parsed
  local t0 t1 c0 c1 h0 h1 r0 r1 m0 m1 workers wall
  out=$work/client-$name.txt
  workers=$(haproxy_workers)
  # shellcheck disable=SC2086  # the worker list is split on purpose
  {
    h0=$(cpu_ticks $workers)
    r0=$(cpu_ticks "$replica_pid")
    m0=$(cpu_ticks "$manager_pid")
  }
  c0=$(children_ticks)
  t0=$EPOCHREALTIME
  if [[ $target == grpc_* ]]; then
    local extra=()
    ((raw == 0)) || extra+=(--raw)
    # shellcheck disable=SC2046  # grpc_args_of's words are separate arguments
    timeout -k 5 $((dur_s + 30)) "$load_bin" $(grpc_args_of "$target") --model "$MODEL" \
      --concurrency "$conns" --duration "$dur_s" --warmup "$GRPC_WARMUP_S" --elements 4 \
      --connections "$grpc_connections" --threads "$(grpc_threads "$conns")" "${extra[@]}" \
      >"$out" 2>&1 </dev/null &
  else
    timeout -k 5 $((dur_s + 30)) wrk -t"$(wrk_threads "$conns")" -c"$conns" -d"$dur" \
      --latency -s "$BENCH/post.lua" "$(url_of "$target")" >"$out" 2>&1 </dev/null &
  fi
  client_pid=$!
  wait "$client_pid" || rc=$?
  client_pid=""
  t1=$EPOCHREALTIME
  c1=$(children_ticks)
  # shellcheck disable=SC2086
  {
    h1=$(cpu_ticks $workers)
    r1=$(cpu_ticks "$replica_pid")
    m1=$(cpu_ticks "$manager_pid")
  }
  if ((rc != 0)); then
    cat "$out" >&2
    die "$target at concurrency $conns: the client failed (exit $rc)"
  fi
  if [[ $target == grpc_* ]]; then
    parsed=$(awk '
      /^result / {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        found = 1
      }
      END {
        if (!found) exit 1
        printf "%.0f %d %d %d %d %s\n", v["rps"], v["p50_us"], v["p90_us"], v["p99_us"],
          v["errors"] + v["warmup_errors"], v["errors_by_code"]
      }' "$out") || { cat "$out" >&2; die "no result line from grpc_load (kept in $out)"; }
  else
    # wrk prints latencies as e.g. 48.00us, 1.20ms, 2.00s; everything is turned into µs.
    parsed=$(awk '
      function us(v,   n, unit) {
        n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit)
        if (unit == "us") return n
        if (unit == "ms") return n * 1e3
        if (unit == "s") return n * 1e6
        if (unit == "m") return n * 6e7
        return -1
      }
      /^Requests\/sec:/ { rps = $2 }
      /^[ \t]+50%/ { p50 = us($2) }
      /^[ \t]+90%/ { p90 = us($2) }
      /^[ \t]+99%/ { p99 = us($2) }
      /Non-2xx or 3xx responses:/ { non2xx += $NF }
      /Socket errors:/ {
        line = $0; sub(/.*Socket errors:/, "", line); gsub(/[^0-9]+/, " ", line)
        k = split(line, parts, " "); for (i = 1; i <= k; i++) sock += parts[i]
      }
      END {
        if (rps == "" || p50 == "" || p90 == "" || p99 == "" || p50 < 0 || p99 < 0) exit 1
        codes = "-"
        if (non2xx > 0) codes = "non-2xx:" non2xx
        if (sock > 0) codes = (codes == "-" ? "" : codes ",") "socket:" sock
        printf "%.0f %.0f %.0f %.0f %d %s\n", rps, p50, p90, p99, non2xx + sock, codes
      }' "$out") || { cat "$out" >&2; die "cannot parse wrk output for $target (kept in $out)"; }
  fi
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
  RESULT="$parsed $(awk -v c="$((c1 - c0))" -v h="$((h1 - h0))" -v r="$((r1 - r0))" \
    -v m="$((m1 - m0))" -v w="$wall" -v hz="$CLK_TCK" 'BEGIN {
      printf "%.0f %.0f %.0f %.0f", 100 * c / hz / w, 100 * h / hz / w, 100 * r / hz / w,
        100 * m / hz / w }')"
}

median() {  # numbers... -> their median
  printf '%s\n' "$@" | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

ratio() {  # numerator, denominator -> "93.1%"
  awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'
}

# ---------------------------------------------------------------------------------------------
# Run

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
if awk -v l="${load_at_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l + 0 > n / 4) }'; then
  log "warning: load average is $load_at_start on $(nproc) cores; results will be noisy"
fi
runs=$((${#target_list[@]} * ${#conc_list[@]} * rounds))
log "$runs runs of $duration (+ $warmup warm-up per target): about $((runs * (duration_s + 1) + ${#target_list[@]} * warmup_s + 15))s"

start_node
log "node up: manager pid $manager_pid, HAProxy master $haproxy_master (workers $(haproxy_workers)), replica pid $replica_pid at http $replica_http, grpc $replica_grpc"
for t in "${target_list[@]}"; do
  [[ $t != http_* ]] || check_http "$t"
done

max_conc=$(printf '%s\n' "${conc_list[@]}" | sort -n | tail -n 1)
if ((warmup_s > 0)); then
  for t in "${target_list[@]}"; do
    run_client "$t" "$max_conc" "$warmup" "$warmup_s" "warmup-$t"
  done
fi

declare -A RPS=() P50=() P90=() P99=() ERRORS=() CODES=() CCPU=() HCPU=() RCPU=() MCPU=()
raw_rows=()
for ((round = 1; round <= rounds; round++)); do
  for c in "${conc_list[@]}"; do
    for t in "${target_list[@]}"; do
      run_client "$t" "$c" "$duration" "$duration_s" "$t-c$c-r$round"
      read -r rps p50 p90 p99 errors codes ccpu hcpu rcpu mcpu <<<"$RESULT"
      key=$t,$c
      RPS[$key]="${RPS[$key]:-} $rps"
      P50[$key]="${P50[$key]:-} $p50"
      P90[$key]="${P90[$key]:-} $p90"
      P99[$key]="${P99[$key]:-} $p99"
      CCPU[$key]="${CCPU[$key]:-} $ccpu"
      HCPU[$key]="${HCPU[$key]:-} $hcpu"
      RCPU[$key]="${RCPU[$key]:-} $rcpu"
      MCPU[$key]="${MCPU[$key]:-} $mcpu"
      ERRORS[$key]=$((${ERRORS[$key]:-0} + errors))
      [[ $codes == - ]] || CODES[$key]="${CODES[$key]:+${CODES[$key]} }r$round:$codes"
      raw_rows+=("| $round | $t | $c | $rps | $p50 | $p90 | $p99 | $ccpu% | $hcpu% | $rcpu% | $mcpu% | $codes |")
      log "round $round, c=$c, $t: $rps req/s, p50 ${p50}µs, p99 ${p99}µs, errors $errors, CPU client/haproxy/replica/manager $ccpu/$hcpu/$rcpu/$mcpu%"
    done
  done
done
load_at_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
restarts=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("replica_restarts", "?"))' \
  <(status_json) 2>/dev/null || echo "?")
# HAProxy's per-request log lines that the manager could not read: each is work for nothing, and
# a sign that the template and the manager binary disagree.
log_errors=$(curl -s --max-time 5 "http://127.0.0.1:$CONTROL_PORT/metrics" |
  awk '/^serve_ingress_log_errors_total / { print $2 }' || true)

# ---------------------------------------------------------------------------------------------
# Report

declare -A MED=()  # "field,target,conns" -> median
for key in "${!RPS[@]}"; do
  # shellcheck disable=SC2086  # word splitting of the per-round lists is intended
  {
    MED[rps,$key]=$(median ${RPS[$key]})
    MED[p50,$key]=$(median ${P50[$key]})
    MED[p90,$key]=$(median ${P90[$key]})
    MED[p99,$key]=$(median ${P99[$key]})
    MED[ccpu,$key]=$(median ${CCPU[$key]})
    MED[hcpu,$key]=$(median ${HCPU[$key]})
    MED[rcpu,$key]=$(median ${RCPU[$key]})
    MED[mcpu,$key]=$(median ${MCPU[$key]})
  }
done

protocol_of() { [[ $1 == grpc_* ]] && echo gRPC || echo HTTP; }
path_of() { [[ $1 == *_haproxy ]] && echo "via HAProxy" || echo direct; }
direct_of() { echo "${1%_*}_direct"; }

cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576; exit }' /proc/meminfo 2>/dev/null || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null || true)
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | head -n 1 || true) ]]; then
  git_rev="$git_rev (with uncommitted changes)"
fi
wrk_version=$( (wrk -v 2>&1 || true) | head -n 1)
grpc_version=$(dpkg-query -W -f '${Version}' libgrpc++1.51 2>/dev/null ||
  pkg-config --modversion grpc++ 2>/dev/null || echo unknown)
ray_env=$(env | grep -E '^RAY_SERVE_' | sort || true)

cmdline="bench/grpc_bench.sh ${build_dir#"$ROOT"/} $duration -c \"${conc_list[*]}\""
[[ ${target_list[*]} == "$ALL_TARGETS" ]] || cmdline+=" -t \"${target_list[*]}\""
((rounds == 1)) || cmdline+=" -r $rounds"
[[ $warmup == 2s ]] || cmdline+=" -w $warmup"
((raw == 0)) || cmdline+=" --raw"
((grpc_connections == 1)) || cmdline+=" --grpc-connections $grpc_connections"
encoding=$([[ $raw == 1 ]] && echo "raw_input_contents" || echo "typed fp32_contents")

report=$work/report.md
{
  echo "# gRPC through HAProxy: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Command: \`$cmdline\` at $git_rev, build type ${build_type:-unknown}."
  echo
  echo "## Machine"
  echo
  echo "- \`$(uname -a)\`"
  echo "- CPU: ${cpu_model:-unknown}; nproc: $(nproc); memory: ${mem_total:-unknown}"
  echo "- load average before the run: $load_at_start; after: $load_at_end"
  echo "- HAProxy: $haproxy_version ($haproxy_bin)"
  echo "- wrk: ${wrk_version:-unknown}; grpc++: $grpc_version"
  echo "- the clients, HAProxy and the replica share the machine's cores; all traffic is on 127.0.0.1."
  if [[ -n $ray_env ]]; then
    echo "- RAY_SERVE_* set by the caller: $(tr '\n' ' ' <<<"$ray_env")"
  fi
  echo
  echo "## Setup"
  echo
  echo "\`haproxy-manager start --config bench/configs/grpc_noop.yaml\`: HAProxy (HTTP :$HTTP_PORT,"
  echo "gRPC h2c :$GRPC_PORT) and one \`serve-replica\` (noop model, batching off,"
  echo "max_ongoing_requests 64) at HTTP $replica_http and gRPC $replica_grpc. Replica restarts during"
  echo "the run: $restarts. Ingress log lines the manager could not parse: ${log_errors:-n/a}."
  echo
  echo "- gRPC: \`grpc_load --concurrency N --duration $duration_s --warmup $GRPC_WARMUP_S --elements 4"
  echo "  --connections $grpc_connections --threads {1,2}\` (1 thread at concurrency 1, 2 above):"
  echo "  N unary ModelInfer calls in flight on $grpc_connections HTTP/2 connection(s), [1,4] FP32 as"
  echo "  $encoding, metadata \`application: $APPLICATION\` through HAProxy."
  echo "- HTTP: \`wrk -t{1,2} -cN -d$duration --latency -s bench/post.lua\` to"
  echo "  \`POST $INFER_PATH\`: N keep-alive HTTP/1.1 connections, the same tensor as KServe v2 JSON."
  if ((warmup_s > 0)); then
    echo "- One unmeasured $warmup run per target at concurrency $max_conc first; targets interleaved"
    echo "  within each concurrency level."
  fi
  ((rounds == 1)) || echo "- $rounds rounds; the tables show the median of each cell."
  echo "- CPU columns: CPU time over the run's wall time, in % of one core (the machine has"
  echo "  $(nproc) cores, so $(($(nproc) * 100))% in all): the client process, HAProxy's worker, the"
  echo "  replica, and haproxy-manager (which turns HAProxy's per-request log lines of both"
  echo "  frontends into metrics, unless RAY_SERVE_HAPROXY_METRICS_ENABLED=0)."
  echo
  echo "## Results"
  echo
  echo "| protocol | path | concurrency | req/s | p50 µs | p90 µs | p99 µs | via HAProxy ÷ direct | client CPU | HAProxy CPU | replica CPU | manager CPU |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in "${conc_list[@]}"; do
    for t in "${target_list[@]}"; do
      key=$t,$c
      rel=""
      if [[ $t == *_haproxy ]] && has_target "$(direct_of "$t")"; then
        rel=$(ratio "${MED[rps,$key]}" "${MED[rps,$(direct_of "$t"),$c]}")
      fi
      echo "| $(protocol_of "$t") | $(path_of "$t") | $c | ${MED[rps,$key]} | ${MED[p50,$key]} |" \
        "${MED[p90,$key]} | ${MED[p99,$key]} | $rel | ${MED[ccpu,$key]}% | ${MED[hcpu,$key]}% |" \
        "${MED[rcpu,$key]}% | ${MED[mcpu,$key]}% |"
    done
  done
  echo
  echo "gRPC ÷ HTTP (req/s):"
  echo
  echo "| path | concurrency | gRPC req/s | HTTP req/s | gRPC ÷ HTTP |"
  echo "|---|---:|---:|---:|---:|"
  for c in "${conc_list[@]}"; do
    for path in haproxy direct; do
      if has_target "grpc_$path" && has_target "http_$path"; then
        g=${MED[rps,grpc_$path,$c]}
        h=${MED[rps,http_$path,$c]}
        echo "| $(path_of "x_$path") | $c | $g | $h | $(ratio "$g" "$h") |"
      fi
    done
  done
  echo
  any_errors=0
  for c in "${conc_list[@]}"; do
    for t in "${target_list[@]}"; do
      if ((ERRORS[$t,$c] > 0)); then
        echo "- WARNING: $t at concurrency $c had ${ERRORS[$t,$c]} failed calls (${CODES[$t,$c]}); its numbers are not comparable"
        any_errors=1
      fi
    done
  done
  if [[ -n $log_errors && $log_errors != 0 ]]; then
    echo "- WARNING: the manager rejected $log_errors of HAProxy's ingress log lines; the manager CPU column measures that"
    any_errors=1
  fi
  ((any_errors)) || echo "No run had a failed call or a non-2xx response."
  echo
  if ((rounds > 1)); then
    echo "Every run:"
    echo
    echo "| round | target | concurrency | req/s | p50 µs | p90 µs | p99 µs | client CPU | HAProxy CPU | replica CPU | manager CPU | errors |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${raw_rows[@]}"
    echo
  fi
} >"$report"

cat "$report"
if [[ $output != - ]]; then
  if [[ -z $output ]]; then
    mkdir -p "$BENCH/results"
    output=$BENCH/results/grpc-$(date -u +%Y-%m-%d-%H%M%S).md
  fi
  cp "$report" "$output"
  log "report written to $output"
fi
