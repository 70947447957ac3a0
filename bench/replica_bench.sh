#!/usr/bin/env bash
# Measures serve-replica alone, with wrk over keep-alive loopback connections, against two
# baselines run in the same invocation on the same machine:
#   nginx                 nginx `return 200` with the same reply: the ceiling for this machine
#   bare_httplib          serve::HttpServer (the replica's front-end class, same socket settings)
#                         answering a constant: the denominator of every ratio
#   replica_noop          serve-replica, built-in noop model, no batching (configs/noop.yaml)
#   replica_noop_batched  the same with batching (max 32, 2 ms wait; configs/noop_batched.yaml)
# Within each concurrency level the targets run one after another (interleaved), so drift in
# the machine's speed affects all of them alike. See docs/benchmarks.md ("Replica alone").
#
# usage: bench/replica_bench.sh [BUILD_DIR] [DURATION] [options]    (defaults: build 10s)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
BENCH_NAME=replica_bench
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
ALL_TARGETS="nginx bare_httplib replica_noop replica_noop_batched"
# Fixed loopback ports, one per target; the replicas' gRPC listeners get PORT + 100.
declare -A PORT=([nginx]=18081 [bare_httplib]=18082 [replica_noop]=18083
                 [replica_noop_batched]=18084)
INFER_PATH=/v2/models/noop/infer
READY_TIMEOUT_S=30  # a server that is not ready by then is broken
STOP_TIMEOUT_S=30   # SIGTERM, then SIGKILL (the replica drains before it exits)

# The bars from the issue, checked at the end of the report.
TARGET_RPS_RATIO=0.85       # replica_noop req/s / bare_httplib req/s, at every concurrency
TARGET_P50_C1_US=150        # replica_noop p50 at concurrency 1
LONE_BATCH_MAX_EXTRA_US=500 # batched p50 - unbatched p50 at c=1; the wait it must skip is 2000

usage() {
  cat <<EOF
usage: bench/replica_bench.sh [BUILD_DIR] [DURATION] [options]

  BUILD_DIR             CMake build directory (default: build; relative to the current
                        directory if it exists there, else to the repository root)
  DURATION              wrk duration of each measured run: N, Ns or Nm (default: 10s)

options:
  -c, --concurrency "LIST"  connection counts to measure (default: "1 8 32")
  -t, --targets "LIST"      subset of: $ALL_TARGETS
                            (default: all; the ratios need bare_httplib)
  -r, --rounds N            repeat every run N times, interleaved; the report shows the
                            median (default: 1)
  -w, --warmup D            unmeasured wrk run per target before measuring (default: 2s)
  -o, --output FILE         report file (default: bench/results/replica-<date>.md; - = none)
      --check               exit 1 when a target from the issue is missed
  -h, --help                this text

Ports 127.0.0.1:18081-18084 (and 18183-18184 for the replicas' gRPC) must be free.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments

concurrency="1 8 32"
targets=$ALL_TARGETS
rounds=1
warmup=2s
check=0
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
done

read -r -a target_list <<<"$targets"
((${#target_list[@]} > 0)) || die "empty target list"
for t in "${target_list[@]}"; do
  [[ " $ALL_TARGETS " == *" $t "* ]] || die "unknown target '$t' (one of: $ALL_TARGETS)"
done

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "bad --rounds '$rounds'"

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

for tool in wrk curl awk timeout sort; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/setup.sh installs it)"
done

nginx_bin=""
if has_target nginx; then
  nginx_bin=$(command -v nginx || true)
  [[ -n $nginx_bin ]] || { [[ -x /usr/sbin/nginx ]] && nginx_bin=/usr/sbin/nginx; } ||
    die "nginx not found (scripts/setup.sh installs nginx-light)"
fi

bare_bin=""
if has_target bare_httplib; then
  bare_bin=$build_dir/bench/bare_httplib_server
  [[ -x $bare_bin ]] || die "$bare_bin not found: build it (cmake --build $build_dir)"
fi

replica_bin=""
if has_target replica_noop || has_target replica_noop_batched; then
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
fi

# The request body lives in post.lua only; the curl check below sends the same bytes.
request_body=$(sed -n "s/^local body = '\(.*\)'\$/\1/p" "$BENCH/post.lua")
[[ -n $request_body ]] || die "cannot read the request body from $BENCH/post.lua"

for t in "${target_list[@]}"; do
  ports=("${PORT[$t]}")
  if [[ $t == replica_* ]]; then
    ports+=($((PORT[$t] + 100)))
  fi
  for p in "${ports[@]}"; do
    ! port_busy "$p" || die "port 127.0.0.1:$p (for $t) is in use; free it and rerun"
  done
done

# ---------------------------------------------------------------------------------------------
# Processes: everything this script starts is recorded in PIDS and stopped on exit.

work=$(mktemp -d "${TMPDIR:-/tmp}/replica-bench.XXXXXX")
declare -A PIDS=()

stop_all() { stop_started; }
install_cleanup


show_logs() {  # name: the tail of what a server wrote, for a failure message
  local f files=("$work/$1.out" "$work/$1.err")
  if [[ $1 == nginx ]]; then
    files+=("$work/nginx/error.log")
  fi
  for f in "${files[@]}"; do
    if [[ -s $f ]]; then
      echo "--- $f (last 20 lines)" >&2
      tail -n 20 "$f" >&2
    fi
  done
}

# Waits for serve-replica's (and bare_httplib_server's) {"event":"ready","http_port":N,...} line.
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

# nginx prints nothing when it is ready; poll until it answers.
wait_answering() {  # name, port
  local name=$1 port=$2 deadline=$((SECONDS + READY_TIMEOUT_S))
  while ((SECONDS < deadline)); do
    if curl -s -o /dev/null --max-time 1 -H 'Content-Type: application/json' \
         --data-binary "$request_body" "http://127.0.0.1:$port$INFER_PATH"; then
      return 0
    fi
    is_running "${PIDS[$name]}" || { show_logs "$name"; die "$name exited before it was ready"; }
    sleep 0.05
  done
  show_logs "$name"
  die "$name: not answering on 127.0.0.1:$port within ${READY_TIMEOUT_S}s"
}

start_nginx() {
  local port=${PORT[nginx]} dir=$work/nginx reply conf
  mkdir -p "$dir"
  reply=$(<"$BENCH/noop_reply.json")
  # The reply goes into a single-quoted nginx string, where these characters are special.
  [[ $reply != *[\'\\\$]* ]] || die "noop_reply.json must not contain ' \\ or \$ (nginx quoting)"
  conf=$(<"$BENCH/nginx.conf.in")
  conf=${conf//@PREFIX@/"$dir"}
  conf=${conf//@PORT@/"$port"}
  conf=${conf//@REPLY@/"$reply"}
  printf '%s\n' "$conf" >"$dir/nginx.conf"
  "$nginx_bin" -t -q -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log" 2>"$work/nginx.err" ||
    { show_logs nginx; die "nginx rejected $dir/nginx.conf"; }
  start nginx "$nginx_bin" -p "$dir/" -c "$dir/nginx.conf" -e "$dir/error.log"
  wait_answering nginx "$port"
}

start_bare() {
  start bare_httplib "$bare_bin" --port "${PORT[bare_httplib]}"
  wait_ready_line bare_httplib "${PORT[bare_httplib]}"
}

start_replica() {  # name, config file
  local name=$1 config=$2 port=${PORT[$1]}
  mkdir -p "$work/logs-$name"
  # The port ranges are pinned to the one port each listener must use, so a replica that
  # falls back to another port on a bind failure cannot end up measured somewhere unexpected.
  # No proxy watches these replicas, so SIGTERM need not keep them reachable while one notices
  # (the default draining period is 30 s).
  start "$name" env \
    RAY_SERVE_LOG_TO_STDERR="${RAY_SERVE_LOG_TO_STDERR:-0}" \
    RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE="${RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE:-1000}" \
    RAY_SERVE_LOG_DIR="${RAY_SERVE_LOG_DIR:-$work/logs-$name}" \
    RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S="${RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S:-0}" \
    RAY_SERVE_DEFAULT_HTTP_HOST=127.0.0.1 \
    RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT="$port" \
    RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT="$((port + 1))" \
    RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT="$((port + 100))" \
    RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT="$((port + 101))" \
    "$replica_bin" --config "$config" --app bench --http-port "$port"
  wait_ready_line "$name" "$port"
}

url_of() {
  echo "http://127.0.0.1:${PORT[$1]}$INFER_PATH"
}

# ---------------------------------------------------------------------------------------------
# Measurement

declare -A REPLY_INFO=()  # target -> "status header_bytes body_bytes"

check_reply() {  # target: one request with curl; the answer must be a 200 with a body
  local target=$1 result code
  result=$(curl -sS --max-time 5 -o "$work/$target.reply" \
             -w '%{http_code} %{size_header} %{size_download}' \
             -H 'Content-Type: application/json' --data-binary "$request_body" \
             "$(url_of "$target")") || die "$target: request failed"
  code=${result%% *}
  if [[ $code != 200 ]]; then
    echo "--- reply body:" >&2
    head -c 2000 "$work/$target.reply" >&2
    echo >&2
    die "$target answered $code, not 200"
  fi
  REPLY_INFO[$target]=$result
}

wrk_threads() {  # connections -> wrk threads: the machine has few cores, wrk shares them
  if (($1 < 2)); then echo 1; else echo 2; fi
}

# Runs wrk once and sets WRK_RESULT to "req_per_s p50_us p99_us errors"; wrk's output stays in
# $work. wrk runs in the background so that a signal to this script interrupts `wait` at once
# (a foreground child would be waited out first); cleanup stops it like the servers.
WRK_RESULT=""
run_wrk() {  # target, connections, duration, duration_seconds, log name
  local target=$1 conns=$2 dur=$3 dur_s=$4 name=$5 out rc=0
  out=$work/wrk-$name.txt
  timeout -k 5 $((dur_s + 30)) wrk -t"$(wrk_threads "$conns")" -c"$conns" -d"$dur" \
    --latency -s "$BENCH/post.lua" "$(url_of "$target")" >"$out" 2>&1 </dev/null &
  PIDS[wrk]=$!
  wait "${PIDS[wrk]}" || rc=$?
  unset "PIDS[wrk]"
  if ((rc != 0)); then
    cat "$out" >&2
    die "wrk failed (exit $rc) against $target at concurrency $conns"
  fi
  # wrk prints latencies as e.g. 48.00us, 1.20ms, 2.00s; everything is turned into µs.
  WRK_RESULT=$(awk '
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
}

median() {  # numbers... -> their median
  printf '%s\n' "$@" | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------------------------------------
# Run


# Other work on the machine skews every number; say so up front and record it in the report.
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
if awk -v l="${load_at_start%% *}" -v n="$(nproc)" 'BEGIN { exit !(l + 0 > n / 4) }'; then
  log "warning: load average is $load_at_start on $(nproc) cores; results will be noisy"
fi

runs=$((${#target_list[@]} * ${#conc_list[@]} * rounds))
log "$runs runs of $duration (+ ${warmup} warm-up per target): about $((runs * duration_s + ${#target_list[@]} * warmup_s + 10))s"

for t in "${target_list[@]}"; do
  case $t in
    nginx) start_nginx ;;
    bare_httplib) start_bare ;;
    replica_noop) start_replica replica_noop "$BENCH/configs/noop.yaml" ;;
    replica_noop_batched) start_replica replica_noop_batched "$BENCH/configs/noop_batched.yaml" ;;
  esac
  check_reply "$t"
  log "$t ready on 127.0.0.1:${PORT[$t]} (pid ${PIDS[$t]})"
done

max_conc=$(printf '%s\n' "${conc_list[@]}" | sort -n | tail -n 1)
if ((warmup_s > 0)); then
  for t in "${target_list[@]}"; do
    run_wrk "$t" "$max_conc" "$warmup" "$warmup_s" "warmup-$t"
  done
fi

declare -A RPS=() P50=() P99=() ERRORS=()  # "target,conns" -> space-separated values per round
raw_rows=()
for ((round = 1; round <= rounds; round++)); do
  for c in "${conc_list[@]}"; do
    for t in "${target_list[@]}"; do
      run_wrk "$t" "$c" "$duration" "$duration_s" "$t-c$c-r$round"
      read -r rps p50 p99 errors <<<"$WRK_RESULT"
      key=$t,$c
      RPS[$key]="${RPS[$key]:-} $rps"
      P50[$key]="${P50[$key]:-} $p50"
      P99[$key]="${P99[$key]:-} $p99"
      ERRORS[$key]=$((${ERRORS[$key]:-0} + errors))
      raw_rows+=("| $round | $t | $c | $rps | $p50 | $p99 | $errors |")
      log "round $round, c=$c, $t: $rps req/s, p50 ${p50}µs, p99 ${p99}µs, errors $errors"
    done
  done
done

# ---------------------------------------------------------------------------------------------
# Report

declare -A MED_RPS=() MED_P50=() MED_P99=()
for key in "${!RPS[@]}"; do
  # shellcheck disable=SC2086  # word splitting of the per-round lists is intended
  {
    MED_RPS[$key]=$(median ${RPS[$key]})
    MED_P50[$key]=$(median ${P50[$key]})
    MED_P99[$key]=$(median ${P99[$key]})
  }
done

ratio() {  # numerator, denominator -> "93.1%"
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f%%", 100 * a / b; else print "n/a" }'
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

if has_target replica_noop && has_target bare_httplib; then
  for c in "${conc_list[@]}"; do
    r=${MED_RPS[replica_noop,$c]}
    b=${MED_RPS[bare_httplib,$c]}
    ok=$(awk -v r="$r" -v b="$b" -v t="$TARGET_RPS_RATIO" 'BEGIN { print (b > 0 && r >= t * b) ? 1 : 0 }')
    verdict "$ok" "replica_noop at concurrency $c serves $(ratio "$r" "$b") of bare_httplib's req/s ($r vs $b; target ≥ $(ratio "$TARGET_RPS_RATIO" 1))"
  done
fi
if has_target replica_noop && [[ -n ${MED_P50[replica_noop,1]:-} ]]; then
  p=${MED_P50[replica_noop,1]}
  verdict "$((p < TARGET_P50_C1_US))" "replica_noop p50 at concurrency 1 is ${p} µs (target < ${TARGET_P50_C1_US} µs)"
fi
if has_target replica_noop && has_target replica_noop_batched &&
   [[ -n ${MED_P50[replica_noop,1]:-} ]]; then
  pb=${MED_P50[replica_noop_batched,1]}
  pu=${MED_P50[replica_noop,1]}
  verdict "$((pb - pu < LONE_BATCH_MAX_EXTRA_US))" "a lone request skips the batch wait: p50 at concurrency 1 is ${pb} µs batched vs ${pu} µs unbatched, $((pb - pu)) µs more (the wait is 2000 µs; limit ${LONE_BATCH_MAX_EXTRA_US} µs)"
fi
for c in "${conc_list[@]}"; do
  for t in "${target_list[@]}"; do
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
compiler_version=""
if [[ -n $compiler && -x $compiler ]]; then
  compiler_version=$("$compiler" --version 2>/dev/null | head -n 1 || true)
fi
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1 || true) ]]; then
  git_rev="$git_rev (with uncommitted changes)"
fi
wrk_version=$( (wrk -v 2>&1 || true) | head -n 1)
nginx_version=""
if [[ -n $nginx_bin ]]; then
  nginx_version=$("$nginx_bin" -v 2>&1 || true)
fi
ray_env=$(env | grep -E '^RAY_SERVE_' | sort || true)

cmdline="bench/replica_bench.sh ${build_dir#"$ROOT"/} $duration -c \"${conc_list[*]}\""
[[ ${target_list[*]} == "$ALL_TARGETS" ]] || cmdline+=" -t \"${target_list[*]}\""
((rounds == 1)) || cmdline+=" -r $rounds"
[[ $warmup == 2s ]] || cmdline+=" -w $warmup"

report=$work/report.md
{
  echo "# Replica alone: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Command: \`$cmdline\` at $git_rev, build type ${build_type:-unknown}."
  echo
  echo "## Machine"
  echo
  echo "- \`$(uname -a)\`"
  echo "- CPU: ${cpu_model:-unknown}; nproc: $(nproc); memory: ${mem_total:-unknown}"
  echo "- load average before the run: $load_at_start"
  echo "- wrk: ${wrk_version:-unknown}"
  [[ -z $nginx_version ]] || echo "- nginx: $nginx_version"
  [[ -z $compiler_version ]] || echo "- compiler: $compiler_version"
  echo "- wrk and the servers share the machine's cores (wrk -t1 at concurrency 1, -t2 above);"
  echo "  all traffic is keep-alive HTTP/1.1 over 127.0.0.1."
  if [[ -n $ray_env ]]; then
    echo "- RAY_SERVE_* set by the caller: $(tr '\n' ' ' <<<"$ray_env")"
  fi
  echo
  echo "## Setup"
  echo
  echo "Each run: \`wrk -t{1,2} -c<concurrency> -d$duration --latency -s bench/post.lua http://127.0.0.1:<port>$INFER_PATH\`,"
  echo "a ${#request_body}-byte KServe v2 JSON request. Targets interleaved within each concurrency level;"
  if ((warmup_s > 0)); then
    echo "one unmeasured $warmup warm-up per target at concurrency $max_conc first."
  else
    echo "no warm-up."
  fi
  ((rounds == 1)) || echo "$rounds rounds; the table shows the median of each cell."
  echo
  echo "| target | status | header bytes | body bytes |"
  echo "|---|---|---|---|"
  for t in "${target_list[@]}"; do
    read -r code hbytes bbytes <<<"${REPLY_INFO[$t]}"
    echo "| $t | $code | $hbytes | $bbytes |"
  done
  echo
  echo "## Results"
  echo
  echo "| target | concurrency | req/s | p50 µs | p99 µs | req/s vs bare httplib |"
  echo "|---|---:|---:|---:|---:|---:|"
  for c in "${conc_list[@]}"; do
    for t in "${target_list[@]}"; do
      key=$t,$c
      rel="n/a"
      if has_target bare_httplib; then
        rel=$(ratio "${MED_RPS[$key]}" "${MED_RPS[bare_httplib,$c]}")
      fi
      echo "| $t | $c | ${MED_RPS[$key]} | ${MED_P50[$key]} | ${MED_P99[$key]} | $rel |"
    done
  done
  echo
  if ((${#verdicts[@]} > 0)); then
    echo "Targets (issue: replica_noop ≥ 85% of bare_httplib's req/s; p50 < 150 µs at concurrency 1;"
    echo "a batch of one does not pay the batch wait):"
    echo
    printf '%s\n' "${verdicts[@]}"
    echo
  fi
  if ((rounds > 1)); then
    echo "Every run:"
    echo
    echo "| round | target | concurrency | req/s | p50 µs | p99 µs | errors |"
    echo "|---:|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${raw_rows[@]}"
    echo
  fi
} >"$report"

cat "$report"
if [[ $output != - ]]; then
  if [[ -z $output ]]; then
    mkdir -p "$BENCH/results"
    output=$BENCH/results/replica-$(date -u +%Y-%m-%d-%H%M%S).md
  fi
  cp "$report" "$output"
  log "report written to $output"
fi

if ((check && failed)); then
  exit 1
fi
