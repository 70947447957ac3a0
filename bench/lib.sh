# Shell functions shared by the benchmark drivers (replica_bench.sh, mlp_bench.sh,
# grpc_bench.sh). Source it after setting BENCH_NAME (the prefix of every message); the
# process helpers also use `work` (the run's temp dir), PIDS (an associative array: name ->
# pid of what start() launched) and STOP_TIMEOUT_S.

die() {
  echo "$BENCH_NAME: $*" >&2
  exit 1
}

log() {
  echo "$BENCH_NAME: $*" >&2
}

need_value() {  # option, number of remaining args
  (($2 >= 2)) || die "$1 needs a value (see --help)"
}

# wrk takes N, Ns, Nm; the seconds bound the run's timeout.
duration_seconds() {  # duration -> seconds on stdout
  [[ $1 =~ ^([0-9]+)(s|m)?$ ]] || die "bad duration '$1' (want N, Ns or Nm)"
  local n=$((10#${BASH_REMATCH[1]}))
  ((n > 0)) || die "duration must be positive: '$1'"
  if [[ ${BASH_REMATCH[2]} == m ]]; then
    echo $((n * 60))
  else
    echo "$n"
  fi
}

port_busy() {  # port
  if command -v ss >/dev/null; then
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]] && return 0
  fi
  # Something answering on the port also counts (and covers machines without ss).
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

is_running() {  # pid; false for a zombie, which a child is until it has been waited for
  local stat
  [[ -r /proc/$1/stat ]] || return 1
  read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

start() {  # name, command...: runs the command in the background with its output in files
  local name=$1
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" </dev/null &
  PIDS[$name]=$!
}

# Waits until `deadline` (in SECONDS) for a process that was sent SIGTERM, then SIGKILLs it,
# and reaps it when it is this shell's child.
reap_or_kill() {  # pid, name, deadline, timeout_s (for the message)
  local pid=$1 name=$2 deadline=$3
  while is_running "$pid" && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if is_running "$pid"; then
    log "$name (pid $pid) still running $4s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_pid() {  # pid, name, timeout_s: SIGTERM, wait, SIGKILL
  kill -TERM "$1" 2>/dev/null || true
  reap_or_kill "$1" "$2" $((SECONDS + $3)) "$3"
}

# Everything start() launched: SIGTERM to all at once, then up to STOP_TIMEOUT_S in all for
# them to exit, then SIGKILL.
stop_started() {
  local name deadline
  for name in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$name]}" 2>/dev/null || true
  done
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  for name in "${!PIDS[@]}"; do
    reap_or_kill "${PIDS[$name]}" "$name" "$deadline" "$STOP_TIMEOUT_S"
    unset "PIDS[$name]"
  done
}

# The EXIT trap: stops what runs (the driver's stop_all), keeps `work` for a failed run and
# removes it otherwise, and exits with the script's status.
cleanup() {
  local rc=$?
  set +e
  trap - INT TERM
  stop_all
  if ((rc == 0)) || [[ -z $(ls -A "$work" 2>/dev/null) ]]; then
    rm -rf "$work"
  else
    log "failed (exit $rc); process output and client logs kept in $work"
  fi
  exit "$rc"
}

# Every process a driver starts is stopped when it exits, also on failure or Ctrl-C.
install_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
