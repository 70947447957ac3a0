#!/usr/bin/env bash
# Tests docker/entrypoint.sh as a plain script: no Docker engine runs on the build machines.
# A fake haproxy-manager (HAPROXY_MANAGER_BIN) records the arguments it got and, in "wait" mode,
# the signals it receives; each case asserts the exit status, the stderr lines and what the
# manager got. Every entrypoint run is bounded by `timeout`.
#
#   bash tests/docker/entrypoint_test.sh [path/to/entrypoint.sh]
#
# Prints PASS/FAIL per case and "N passed, N failed" last; exits 1 if any case failed.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
entrypoint=$(realpath "${1:-$here/../../docker/entrypoint.sh}")
if [[ ! -f $entrypoint ]]; then
  echo "entrypoint_test: no entrypoint at $entrypoint" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/entrypoint_test.XXXXXX")
bg_pids=()
cleanup() {
  local pid
  # `timeout` passes SIGTERM on to the entrypoint, which passes it to the fake manager.
  # Only processes of this run: their command lines name $work.
  for pid in "${bg_pids[@]}"; do
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$work"; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

# The fake manager. FAKE_RECORD: where to write. FAKE_MODE: exit (default; exits FAKE_EXIT) or
# wait (traps TERM/HUP/INT, writes its pid and parent pid to `ready`, runs up to 10 s).
fake=$work/bin/fake-manager
mkdir -p "$work/bin"
cat >"$fake" <<'EOF'
#!/usr/bin/env bash
rec=${FAKE_RECORD:?FAKE_RECORD unset}
printf '%s\n' "$@" >"$rec/args.tmp" && mv "$rec/args.tmp" "$rec/args"
case ${FAKE_MODE:-exit} in
  exit)
    exit "${FAKE_EXIT:-0}"
    ;;
  wait)
    trap 'echo TERM >>"$rec/signals"; exit 0' TERM
    trap 'echo HUP >>"$rec/signals"' HUP
    trap 'echo INT >>"$rec/signals"; exit 0' INT
    echo "$$ $PPID" >"$rec/ready.tmp" && mv "$rec/ready.tmp" "$rec/ready"
    for ((i = 0; i < 200; i++)); do sleep 0.05; done
    echo TIMEOUT >>"$rec/signals"
    exit 99
    ;;
esac
EOF
chmod +x "$fake"

config=$work/etc/serve.yaml
env_config=$work/env/serve.yaml
default_config=$work/default/serve.yaml
mkdir -p "$work/etc" "$work/env" "$work/default" "$work/a-directory.yaml"
for f in "$config" "$env_config" "$default_config"; do
  echo "applications: []" >"$f"
done

passed=0
failed=0
skipped=0
problems=()

# Variables that would change the outcome if the caller's environment had them.
clean_env=(env -u RAY_SERVE_ENABLE_HA_PROXY -u SERVE_CONFIG -u SERVE_DEFAULT_CONFIG
  -u HAPROXY_MANAGER_BIN -u RAY_SERVE_DEFAULT_HTTP_HOST -u FAKE_MODE -u FAKE_EXIT
  HAPROXY_MANAGER_BIN="$fake" SERVE_DEFAULT_CONFIG="$default_config")

# run NAME [VAR=VALUE...] -- [ARG...]: runs the entrypoint in the foreground (10 s bound);
# sets dir (the case's folder: out, err, rec/args) and rc.
run() {
  local name=$1
  shift
  local envs=()
  while [[ $1 != -- ]]; do
    envs+=("$1")
    shift
  done
  shift
  dir=$work/cases/$name
  mkdir -p "$dir/rec"
  timeout -s KILL 10 "${clean_env[@]}" FAKE_RECORD="$dir/rec" "${envs[@]}" \
    bash "$entrypoint" "$@" >"$dir/out" 2>"$dir/err" </dev/null
  rc=$?
}

# start NAME [VAR=VALUE...] -- [ARG...]: runs it in the background (8 s bound) with a fake
# manager in wait mode; sets dir and bg (the pid of the timeout wrapper).
start() {
  local name=$1
  shift
  local envs=()
  while [[ $1 != -- ]]; do
    envs+=("$1")
    shift
  done
  shift
  dir=$work/cases/$name
  mkdir -p "$dir/rec"
  # `timeout` execs the entrypoint with default signal dispositions, as a container runtime
  # does for PID 1 (a plain `&` here would start it with SIGINT ignored).
  timeout -s KILL 8 "${clean_env[@]}" FAKE_RECORD="$dir/rec" FAKE_MODE=wait "${envs[@]}" \
    bash "$entrypoint" "$@" >"$dir/out" 2>"$dir/err" </dev/null &
  bg=$!
  bg_pids+=("$bg")
}

# wait_for FILE [PATTERN]: until FILE exists (and holds a line matching PATTERN); 5 s bound.
wait_for() {
  local file=$1 pattern=${2:-}
  for ((i = 0; i < 100; i++)); do
    if [[ -f $file ]] && { [[ -z $pattern ]] || grep -qx -- "$pattern" "$file"; }; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

# read_ready: fake_pid and ep_pid from the fake's ready file; fails unless ep_pid is this case's
# entrypoint (so a signal never goes to anything else).
read_ready() {
  read -r fake_pid ep_pid <"$dir/rec/ready" || return 1
  bg_pids+=("$fake_pid")  # stopped at exit if a failing case leaves it running
  [[ $ep_pid =~ ^[0-9]+$ ]] && ((ep_pid > 1)) && [[ -r /proc/$ep_pid/cmdline ]] &&
    tr '\0' '\n' <"/proc/$ep_pid/cmdline" | grep -qxF -- "$entrypoint"
}

# --- assertions: each adds to `problems` ------------------------------------------------------
expect_rc() {
  if [[ $rc != "$1" ]]; then
    problems+=("exit status $rc, want $1")
  fi
}
expect_err_line() {  # an exact line of stderr
  if ! grep -qxF -- "$1" "$dir/err"; then
    problems+=("stderr lacks the line: $1")
  fi
}
expect_err_has() {  # a substring of stderr
  if ! grep -qF -- "$1" "$dir/err"; then
    problems+=("stderr lacks: $1")
  fi
}
expect_out_has() {
  if ! grep -qF -- "$1" "$dir/out"; then
    problems+=("stdout lacks: $1")
  fi
}
expect_args() {  # the manager's arguments, exactly
  local want got
  want=$(printf '%s\n' "$@")
  if [[ ! -f $dir/rec/args ]]; then
    problems+=("the manager was not run; want arguments: $*")
    return
  fi
  got=$(cat "$dir/rec/args")
  if [[ $got != "$want" ]]; then
    problems+=("manager arguments: $(tr '\n' ' ' <"$dir/rec/args"), want: $*")
  fi
}
expect_not_run() {
  if [[ -f $dir/rec/args ]]; then
    problems+=("the manager ran (arguments: $(tr '\n' ' ' <"$dir/rec/args")), want it not run")
  fi
}
expect_signals() {  # the signals the fake manager recorded, in order
  local want got=""
  want=$(printf '%s\n' "$@")
  [[ -f $dir/rec/signals ]] && got=$(cat "$dir/rec/signals")
  if [[ $got != "$want" ]]; then
    problems+=("manager got signals: [$(echo "$got" | tr '\n' ' ')], want: [$*]")
  fi
}

# verdict NAME: prints PASS or FAIL (with the problems and the entrypoint's stderr).
verdict() {
  if ((${#problems[@]} == 0)); then
    echo "PASS $1"
    passed=$((passed + 1))
  else
    echo "FAIL $1"
    printf '    %s\n' "${problems[@]}"
    sed 's/^/    stderr| /' "$dir/err"
    failed=$((failed + 1))
  fi
  problems=()
}

# --- the enable switch ------------------------------------------------------------------------
run switch_unset -- --config "$config"
expect_rc 78
expect_err_line "entrypoint: HAProxy mode is off (RAY_SERVE_ENABLE_HA_PROXY is unset); this image serves only in HAProxy mode."
expect_err_line "entrypoint: Enable it with -e RAY_SERVE_ENABLE_HA_PROXY=1 (docker run), or env RAY_SERVE_ENABLE_HA_PROXY: \"1\" in a pod spec."
expect_not_run
verdict "switch unset: exits 78 and says how to enable HAProxy mode"

run switch_empty RAY_SERVE_ENABLE_HA_PROXY= -- --config "$config"
expect_rc 78
expect_err_has "(RAY_SERVE_ENABLE_HA_PROXY is unset)"
expect_not_run
verdict "switch empty: treated as unset (78)"

run switch_zero RAY_SERVE_ENABLE_HA_PROXY=0 -- --config "$config"
expect_rc 78
expect_err_line "entrypoint: HAProxy mode is off (RAY_SERVE_ENABLE_HA_PROXY is 0); this image serves only in HAProxy mode."
expect_err_has "-e RAY_SERVE_ENABLE_HA_PROXY=1"
expect_not_run
verdict "switch 0: exits 78 and says how to enable HAProxy mode"

for value in yes true 2 " 1"; do
  run "switch_garbage_${value// /_}" RAY_SERVE_ENABLE_HA_PROXY="$value" -- --config "$config"
  expect_rc 64
  expect_err_line "entrypoint: RAY_SERVE_ENABLE_HA_PROXY must be 0 or 1, got '$value'"
  expect_not_run
  verdict "switch '$value': exits 64 naming the variable and the accepted values"
done

# --- which config -----------------------------------------------------------------------------
run config_flag RAY_SERVE_ENABLE_HA_PROXY=1 SERVE_CONFIG="$env_config" -- --config "$config"
expect_rc 0
expect_args start --config "$config"
expect_err_has "entrypoint: starting $fake start --config $config (config from --config;"
expect_err_line "entrypoint: haproxy-manager exited with status 0"
verdict "--config FILE: the manager gets start --config FILE (over SERVE_CONFIG)"

run config_flag_equals RAY_SERVE_ENABLE_HA_PROXY=1 -- --config="$config"
expect_rc 0
expect_args start --config "$config"
verdict "--config=FILE works too"

run config_env RAY_SERVE_ENABLE_HA_PROXY=1 SERVE_CONFIG="$env_config" --
expect_rc 0
expect_args start --config "$env_config"
expect_err_has "(config from SERVE_CONFIG;"
verdict "SERVE_CONFIG: used when --config is absent"

run config_default RAY_SERVE_ENABLE_HA_PROXY=1 --
expect_rc 0
expect_args start --config "$default_config"
expect_err_has "(config from the bundled example;"
expect_err_has "RAY_SERVE_DEFAULT_HTTP_HOST=unset, replicas bind 127.0.0.1)"
verdict "neither: the default config (SERVE_DEFAULT_CONFIG)"

run config_default_host RAY_SERVE_ENABLE_HA_PROXY=1 RAY_SERVE_DEFAULT_HTTP_HOST=0.0.0.0 --
expect_rc 0
expect_err_has "RAY_SERVE_DEFAULT_HTTP_HOST=0.0.0.0)"
expect_args start --config "$default_config"
verdict "RAY_SERVE_DEFAULT_HTTP_HOST is reported, not changed"

# The image's own default (SERVE_DEFAULT_CONFIG empty counts as unset): where the Dockerfile copies it.
run config_bundled SERVE_DEFAULT_CONFIG= RAY_SERVE_ENABLE_HA_PROXY=1 --
if [[ -f /opt/haproxy-serve/examples/serve.yaml ]]; then
  expect_rc 0
  expect_args start --config /opt/haproxy-serve/examples/serve.yaml
else
  expect_rc 66
  expect_err_line "entrypoint: config file not found: /opt/haproxy-serve/examples/serve.yaml (from the bundled example)"
  expect_not_run
fi
verdict "no SERVE_DEFAULT_CONFIG: /opt/haproxy-serve/examples/serve.yaml"

# --- config errors ----------------------------------------------------------------------------
run missing_flag RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$work/nope.yaml"
expect_rc 66
expect_err_line "entrypoint: config file not found: $work/nope.yaml (from --config)"
expect_not_run
verdict "--config of a missing file: exits 66 naming the path"

run missing_env RAY_SERVE_ENABLE_HA_PROXY=1 SERVE_CONFIG="$work/nope-env.yaml" --
expect_rc 66
expect_err_line "entrypoint: config file not found: $work/nope-env.yaml (from SERVE_CONFIG)"
expect_not_run
verdict "SERVE_CONFIG of a missing file: exits 66 naming the path"

run missing_default RAY_SERVE_ENABLE_HA_PROXY=1 SERVE_DEFAULT_CONFIG="$work/nope-default.yaml" --
expect_rc 66
expect_err_line "entrypoint: config file not found: $work/nope-default.yaml (from the bundled example)"
expect_not_run
verdict "missing default config: exits 66 naming the path"

run config_directory RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$work/a-directory.yaml"
expect_rc 66
expect_err_line "entrypoint: config path is a directory, not a file: $work/a-directory.yaml (from --config)"
expect_not_run
verdict "--config of a directory: exits 66"

if (($(id -u) != 0)); then
  unreadable=$work/etc/unreadable.yaml
  echo "applications: []" >"$unreadable"
  chmod 000 "$unreadable"
  run config_unreadable RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$unreadable"
  expect_rc 66
  expect_err_line "entrypoint: config file not readable by uid $(id -u): $unreadable (from --config)"
  expect_not_run
  verdict "--config of an unreadable file: exits 66"
else
  echo "SKIP --config of an unreadable file: running as root, which reads any file"
  skipped=$((skipped + 1))
fi

# --- arguments --------------------------------------------------------------------------------
run unknown_arg RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$config" --verbose
expect_rc 64
expect_err_line "entrypoint: unknown argument '--verbose'"
expect_err_line "entrypoint: run with --help for usage"
expect_not_run
verdict "unknown argument: exits 64 with a usage hint"

run positional_arg RAY_SERVE_ENABLE_HA_PROXY=1 -- "$config"
expect_rc 64
expect_err_line "entrypoint: unknown argument '$config'"
expect_not_run
verdict "a bare path (no --config): exits 64"

run unknown_arg_switch_off -- --bogus
expect_rc 64
expect_err_line "entrypoint: unknown argument '--bogus'"
expect_not_run
verdict "unknown argument with the switch off: still a usage error (64)"

run config_no_value RAY_SERVE_ENABLE_HA_PROXY=1 -- --config
expect_rc 64
expect_err_line "entrypoint: --config needs a file"
expect_not_run
verdict "--config without a value: exits 64"

run config_empty_value RAY_SERVE_ENABLE_HA_PROXY=1 -- --config=
expect_rc 64
expect_err_line "entrypoint: --config needs a file"
expect_not_run
verdict "--config= (empty): exits 64"

run config_twice RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$config" --config "$env_config"
expect_rc 64
expect_err_line "entrypoint: --config given more than once"
expect_not_run
verdict "--config twice: exits 64"

run help -- --help
expect_rc 0
expect_out_has "Usage: entrypoint.sh [--config FILE]"
expect_out_has "RAY_SERVE_ENABLE_HA_PROXY"
expect_out_has "RAY_SERVE_DEFAULT_HTTP_HOST"
expect_not_run
verdict "--help: usage on stdout, exit 0, even with the switch off"

run help_short RAY_SERVE_ENABLE_HA_PROXY=1 -- -h
expect_rc 0
expect_out_has "Usage: entrypoint.sh [--config FILE]"
expect_not_run
verdict "-h: usage"

# --- the manager's status ---------------------------------------------------------------------
run manager_status RAY_SERVE_ENABLE_HA_PROXY=1 FAKE_EXIT=3 -- --config "$config"
expect_rc 3
expect_args start --config "$config"
expect_err_line "entrypoint: haproxy-manager exited with status 3"
verdict "the manager's exit status is the entrypoint's"

run manager_missing RAY_SERVE_ENABLE_HA_PROXY=1 HAPROXY_MANAGER_BIN="$work/bin/no-such-manager" -- \
  --config "$config"
expect_rc 127
expect_err_line "entrypoint: manager binary not found: $work/bin/no-such-manager (set HAPROXY_MANAGER_BIN or put haproxy-manager on PATH)"
verdict "no manager binary: exits 127"

# --- signals ----------------------------------------------------------------------------------
# ready holds "FAKE_PID ENTRYPOINT_PID": the fake's parent is the entrypoint itself.
start sigterm RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$config"
if wait_for "$dir/rec/ready" && read_ready; then
  kill -TERM "$ep_pid"
  wait "$bg"
  rc=$?
  expect_rc 0
  expect_args start --config "$config"
  expect_signals TERM
  expect_err_line "entrypoint: forwarding SIGTERM to haproxy-manager (pid $fake_pid)"
  expect_err_line "entrypoint: haproxy-manager exited with status 0"
else
  problems+=("the fake manager never became ready under this entrypoint")
fi
verdict "SIGTERM is forwarded; the manager exits 0, so does the entrypoint"

start sigint RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$config"
if wait_for "$dir/rec/ready" && read_ready; then
  kill -INT "$ep_pid"
  wait "$bg"
  rc=$?
  expect_rc 0
  expect_signals TERM
  expect_err_line "entrypoint: forwarding SIGTERM to haproxy-manager (pid $fake_pid)"
else
  problems+=("the fake manager never became ready under this entrypoint")
fi
verdict "SIGINT (Ctrl-C) reaches the manager as SIGTERM"

start sighup RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$config"
if wait_for "$dir/rec/ready" && read_ready; then
  kill -HUP "$ep_pid"
  if wait_for "$dir/rec/signals" HUP; then
    sleep 0.2  # the manager must still be running after a SIGHUP
    if ! kill -0 "$fake_pid" 2>/dev/null; then
      problems+=("the manager stopped after SIGHUP")
    fi
    kill -TERM "$ep_pid"
  else
    problems+=("SIGHUP did not reach the manager")
    kill -KILL "$fake_pid" 2>/dev/null
  fi
  wait "$bg"
  rc=$?
  expect_rc 0
  expect_signals HUP TERM
  expect_err_line "entrypoint: forwarding SIGHUP to haproxy-manager (pid $fake_pid)"
else
  problems+=("the fake manager never became ready under this entrypoint")
fi
verdict "SIGHUP is forwarded (config reload) and the manager keeps running; SIGTERM then stops it"

start manager_killed RAY_SERVE_ENABLE_HA_PROXY=1 -- --config "$config"
if wait_for "$dir/rec/ready" && read_ready; then
  kill -KILL "$fake_pid"
  wait "$bg"
  rc=$?
  expect_rc 137
  expect_err_line "entrypoint: haproxy-manager exited with status 137"
else
  problems+=("the fake manager never became ready under this entrypoint")
fi
verdict "a manager killed by SIGKILL: the entrypoint exits 137"

echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0))
