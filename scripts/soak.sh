#!/usr/bin/env bash
# Soak and chaos driver (issue 15): runs one serving node of its own under steady HTTP and gRPC
# load for DURATION while injecting faults, and checks that every failed request is one the
# node's guarantees (docs/reliability.md, docs/manager.md) allow.
#
#   scripts/soak.sh DURATION [--seed N] [--faults KIND,...] [--port-base P]
#                   [--converge-timeout S] [--interval MIN,MAX] [--think-ms MS]
#                   [--grpc-client auto|grpc_load] [--keep]
#
#   DURATION            how long the load runs: 90s, 30m, 1h (a bare number is seconds)
#   --seed N            the random seed of the fault sequence (printed at start; the same seed
#                       picks the same faults, targets and pauses; timings still vary)
#   --faults LIST       kinds to choose from, comma-separated (default: all five below;
#                       `none` runs the load alone)
#   --port-base P       HAProxy HTTP on P, gRPC P+1, metrics P+2, stats P+3, manager control
#                       P+4; replica HTTP ports P+100..P+399, gRPC P+400..P+699 (default 18000)
#   --converge-timeout S  how long the node may take to converge after a fault (default 45; a
#                       replica restart backs off up to 30 s when one is killed repeatedly)
#   --interval MIN,MAX  seconds between a converged node and the next fault (default 1.5,6)
#   --think-ms MS       each load worker's pause between requests (default 20)
#   --grpc-client grpc_load  use build/bench/grpc_load slices even when Python grpc exists
#   --keep              keep the work directory even when the run passes
#
# Uses the binaries already built in build/ (it never builds; SOAK_BUILD_DIR names another
# build folder), and HAProxy from PATH or RAY_SERVE_HAPROXY_BINARY_PATH. Python 3 (standard
# library) runs the load and the chaos loop (scripts/soak.py); gRPC load uses grpcio with
# tritonclient's generated KServe messages (from python3, else from .tools/tritonclient, which
# scripts/setup.sh installs), else build/bench/grpc_load: 1 s slices (1 call in flight, no pause: busier than the Python
# workers) with 2 s between them, echo and slow only; a slice is recorded as one span, so its
# failures are matched to fault windows by the slice's [start, end], which is coarser.
#
# The node (in a fresh `mktemp -d` directory, removed after a passing run):
#   state dir   WORK/run (haproxy.cfg, admin and master sockets, control token, state files)
#   logs        WORK/logs (HAProxy, replicas), WORK/manager-N.log (each manager's output)
#   records     WORK/requests-*.csv (every request: start, end, app, protocol, outcome),
#               WORK/faults.jsonl, WORK/failures.jsonl
#   config A    echo (noop) x2, digits (mlp, models/digits.safetensors) x2, slow (sleep 100 ms)
#               x2, on 127.0.0.1 only; config B: echo x3 and digits' max_ongoing_requests
#               16 -> 12 (which replaces both digits replicas one at a time); slow unchanged.
#   env         RAY_SERVE_* paths and ports are set here; health checks default to inter 1s,
#               fastinter/downinter 250ms, fall/rise 2 (other RAY_SERVE_* you export pass on).
#
# Load (moderate: 7 closed-loop workers, each pausing 20 ms between requests):
#   HTTP  2x echo, 1x digits, 1x slow: KServe v2 infer POSTs, alternately to the route prefix
#         and to /v2/models/<model>/infer, each on a fresh connection; ok = status 200 and the
#         expected answer (the echo of the sent tensor and id; for digits the held-out sample's
#         probabilities from models/digits.json within 1e-3, and its class).
#   gRPC  1x echo, 1x digits, 1x slow: ModelInfer through HAProxy's gRPC port with the
#         `application` metadata, typed and raw tensors alternately, the same answer checks.
#   Outcomes: ok, connect refused, reset, timeout (15 s), http status N, grpc code X, wrong body.
#
# Faults, one at a time, 1.5-6 s apart (random, seeded). After each, the node must converge
# within --converge-timeout: the manager answers, every application has exactly the replicas
# the config in force asks for, all `serving`, each in an active slot whose HTTP and gRPC
# servers HAProxy shows UP, no change pending, no deployment failing, no serve-replica of ours
# that the status does not list, and no HAProxy of ours outside the current master's tree;
# after a deploy, also no replica of `digits` from before it. A fault that does not converge is
# a failure of the run (and ends the fault loop: the node is broken, the logs are kept).
#
# Which fault may fail which request (a failure is EXPLAINED only by a fault of its kind, and
# only if the request's [start, end] meets the window below, with 50 ms of clock slack):
#   replica_kill   SIGKILL one serving replica (pid from the status JSON). May fail requests of
#                  that replica's application, either protocol, that were in flight at the kill
#                  (started before the kill returned, ended after it was sent): "a killed
#                  replica costs at most the requests inside it". Requests sent after the kill
#                  must succeed: HAProxy retries refused connections on another server.
#   replica_stop   SIGSTOP one serving replica for 1.5-5 s, then SIGCONT. May fail requests of
#                  that application that were in flight at the SIGSTOP or started before
#                  HAProxy's health check showed the replica DOWN (or before the SIGCONT, when
#                  it was not marked down earlier). Their usual fate is only a delay.
#   haproxy_kill   SIGKILL the HAProxy master, a worker, or both (the manager must restart it).
#                  May fail requests that overlap [kill, node converged again] and got no
#                  answer: connect refused, reset, timeout, or a gRPC error of the client's
#                  transport. An answer (an HTTP status, or a gRPC status whose message the
#                  node wrote, e.g. UNAVAILABLE "No replica of application 'x' is available.")
#                  is not explained: every replica is serving, and a restarted HAProxy must
#                  route as the killed one did ("a reload or restart reproduces exactly what
#                  runs", docs/manager.md).
#   manager_kill   SIGKILL the manager, wait 0.5-3 s, start a successor with the same
#                  environment and the config in force; it must adopt the running HAProxy and
#                  replicas (same pids: checked). May fail NO request.
#   deploy         `haproxy-manager deploy` of the other config (A <-> B): scale up/down and a
#                  rolling replacement. May fail NO request, and must answer success.
# Any other failure, e.g. one during a deploy or with no fault at all, is UNEXPLAINED.
#
# Exit status: 0 when every failure is explained, every fault converged, the node converged at
# the end and its manager stopped everything it ran on SIGTERM; 1 otherwise; 2 for a setup
# error (missing binaries, busy ports, a node that does not come up); 130 when interrupted.
# Ctrl-C or SIGTERM stops early: the load drains, the node is stopped, everything left that
# this run started (by pid, found by the work directory in its command line) is killed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# SOAK_BUILD_DIR: another build folder with the same layout (default: build/).
BUILD=${SOAK_BUILD_DIR:-$ROOT/build}

usage() {  # the synopsis and options from the header above
  sed -n '/^#   scripts\/soak.sh/,/^#   --keep/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "$1"
}

die() {
  echo "soak.sh: $*" >&2
  exit 2
}

duration=""
py_args=()
port_base=18000
keep=0
while (($#)); do
  case $1 in
    -h | --help) usage 0 ;;
    --seed | --faults | --converge-timeout | --interval | --think-ms | --grpc-client)
      (($# >= 2)) || die "$1 needs a value"
      py_args+=("$1" "$2")
      shift 2
      ;;
    --port-base)
      (($# >= 2)) || die "$1 needs a value"
      port_base=$2
      shift 2
      ;;
    --keep)
      keep=1
      shift
      ;;
    -*) die "unknown option $1 (see --help)" ;;
    *)
      [[ -z $duration ]] || die "one DURATION only (got '$duration' and '$1')"
      duration=$1
      shift
      ;;
  esac
done
[[ -n $duration ]] || usage 2 >&2
[[ $duration =~ ^([0-9]+)([smh]?)$ ]] ||
  die "DURATION must look like 90s, 30m or 1h, not '$duration'"
case ${BASH_REMATCH[2]} in
  m) duration_s=$((BASH_REMATCH[1] * 60)) ;;
  h) duration_s=$((BASH_REMATCH[1] * 3600)) ;;
  *) duration_s=${BASH_REMATCH[1]} ;;
esac
((duration_s > 0)) || die "DURATION must be positive"
if ! [[ $port_base =~ ^[0-9]+$ ]] || ((port_base < 1024 || port_base + 700 > 65535)); then
  die "--port-base must be a number in 1024..64835"
fi

manager_bin=$BUILD/haproxy-manager/haproxy-manager
replica_bin=$BUILD/replica/serve-replica
for bin in "$manager_bin" "$replica_bin"; do
  [[ -x $bin ]] || die "$bin is missing: build it first with \`cmake --build build\`" \
    "(scripts/test.sh configures and builds everything)"
done
command -v python3 >/dev/null || die "python3 not found"
haproxy_bin=${RAY_SERVE_HAPROXY_BINARY_PATH:-haproxy}
command -v "$haproxy_bin" >/dev/null || die "no HAProxy ('$haproxy_bin'): run scripts/setup.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/haproxy-soak.XXXXXX")
# Socket paths must fit in 107 bytes (sun_path).
((${#work} <= 80)) || {
  rmdir "$work"
  die "temp dir path $work is too long for unix sockets; set TMPDIR=/tmp"
}
py_pid=""
rc=0

# Every process this run started names a file of $work on its command line (the manager its
# config, HAProxy its haproxy.cfg, replicas their config snapshot): kill those that are left,
# by pid. soak.py stops the node properly first; this is the backstop.
# shellcheck disable=SC2317  # the three functions below run from traps
kill_leftovers() {
  local pass dir pid cmd
  # Managers first, so that none starts HAProxy or a replica again meanwhile; then the rest,
  # twice.
  for pass in manager any any; do
    for dir in /proc/[0-9]*; do
      pid=${dir#/proc/}
      [[ $pid != "$$" ]] || continue
      cmd=$(tr "\\0" " " 2>/dev/null <"$dir/cmdline") || continue
      [[ $cmd == *"$work/"* ]] || continue
      [[ $pass == any || $cmd == *"haproxy-manager start"* ]] || continue
      echo "soak.sh: killing leftover process $pid: ${cmd:0:120}" >&2
      kill -CONT "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 0.2
  done
}

# shellcheck disable=SC2317
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  ((rc != 0)) || rc=$status
  if [[ -n $py_pid ]] && kill -0 "$py_pid" 2>/dev/null; then
    kill -TERM "$py_pid" 2>/dev/null || true
    for _ in $(seq 1 120); do
      kill -0 "$py_pid" 2>/dev/null || break
      sleep 1
    done
    kill -KILL "$py_pid" 2>/dev/null || true
  fi
  kill_leftovers
  if ((rc == 0 && keep == 0)) || ! compgen -G "$work/manager-*.log" >/dev/null; then
    rm -rf "$work"
  else
    echo "soak.sh: logs and records kept in $work" >&2
  fi
  exit "$rc"
}

# shellcheck disable=SC2317
on_signal() {
  echo "soak.sh: $1: stopping (the node is drained and stopped first)" >&2
  [[ -z $py_pid ]] || kill -TERM "$py_pid" 2>/dev/null || true
  rc=130
}

trap cleanup EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM

# The node's own state directory, sockets, logs and ports; replicas outside the default ranges.
export RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=$work/run/haproxy.cfg
export RAY_SERVE_HAPROXY_SOCKET_PATH=$work/run/admin.sock
export RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=$work/run/access.sock
export RAY_SERVE_LOG_DIR=$work/logs
export RAY_SERVE_HAPROXY_METRICS_PORT=$((port_base + 2))
export RAY_SERVE_HAPROXY_STATS_PORT=$((port_base + 3))
export RAY_SERVE_HAPROXY_CONTROL_PORT=$((port_base + 4))
export RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT=$((port_base + 100))
export RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT=$((port_base + 400))
export RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT=$((port_base + 400))
export RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT=$((port_base + 700))
export SERVE_REPLICA_BINARY=$replica_bin
export RAY_SERVE_HAPROXY_NBTHREAD=${RAY_SERVE_HAPROXY_NBTHREAD:-2}
export RAY_SERVE_HAPROXY_MAXCONN=${RAY_SERVE_HAPROXY_MAXCONN:-1000}
export RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER=${RAY_SERVE_HAPROXY_HEALTH_CHECK_INTER:-1s}
export RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER=${RAY_SERVE_HAPROXY_HEALTH_CHECK_FASTINTER:-250ms}
export RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER=${RAY_SERVE_HAPROXY_HEALTH_CHECK_DOWNINTER:-250ms}
export RAY_SERVE_LOG_TO_STDERR=1

# Nothing may already listen on the node's HAProxy and control ports.
for port in $(seq "$port_base" $((port_base + 4))); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    rc=2
    die "port $port is in use; pick other ports with --port-base"
  fi
done

echo "soak.sh: node in $work (HAProxy http :$port_base, grpc :$((port_base + 1));" \
  "manager control :$RAY_SERVE_HAPROXY_CONTROL_PORT)"
# Bounded even if soak.py hangs: the load, a last convergence wait, the drain and the stop.
limit=$((duration_s + 600))
timeout --kill-after=30 "$limit" python3 "$ROOT/scripts/soak.py" "$duration" \
  --workdir "$work" --root "$ROOT" --manager-bin "$manager_bin" \
  --grpc-load-bin "$BUILD/bench/grpc_load" \
  --http-port "$port_base" --grpc-port $((port_base + 1)) "${py_args[@]}" &
py_pid=$!
while :; do
  status=0
  wait "$py_pid" || status=$?
  # Above 128 with the child still there: a trapped signal cut the wait short; wait again.
  if ((status > 128)) && [[ -e /proc/$py_pid ]]; then
    continue
  fi
  break
done
py_pid=""
((status != 124)) || echo "soak.sh: soak.py overran its ${limit} s limit and was stopped" >&2
((rc == 130)) || rc=$status
exit "$rc"
