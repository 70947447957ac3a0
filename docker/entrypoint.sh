#!/usr/bin/env bash
# Entrypoint of the per-node haproxy-serve image (Dockerfile; how to run it: docs/deployment.md).
#
#   entrypoint.sh [--config FILE]      run `haproxy-manager start --config FILE` in HAProxy mode
#   entrypoint.sh --help
#
# HAProxy mode is switched on the way Ray Serve switches it: RAY_SERVE_ENABLE_HA_PROXY=1. The
# config is --config FILE, else $SERVE_CONFIG, else $SERVE_DEFAULT_CONFIG (the image's bundled
# example, /opt/haproxy-serve/examples/serve.yaml). Every other RAY_SERVE_* variable goes to the
# manager untouched; RAY_SERVE_DEFAULT_HTTP_HOST in particular is left to the user (replicas bind
# 127.0.0.1 without it, which is right for one node; set 0.0.0.0 when other nodes' HAProxy must
# reach this node's replicas).
#
# Exit status (sysexits.h names where one fits):
#   0    --help, or the manager stopped cleanly (after SIGTERM/SIGINT: the node drained)
#   64   EX_USAGE: unknown argument, --config without a value or given twice, or
#        RAY_SERVE_ENABLE_HA_PROXY set to something other than 0 or 1
#   66   EX_NOINPUT: the config file is missing, a directory, or unreadable
#   78   EX_CONFIG: HAProxy mode is off (RAY_SERVE_ENABLE_HA_PROXY unset, empty or 0)
#   127  the manager binary was not found
#   143  SIGTERM/SIGINT arrived before the manager was started (nothing was started)
#   else the manager's own status: 1 error, 2 usage error, 128+N when killed by signal N
#
# HAPROXY_MANAGER_BIN overrides the manager binary (the tests use a fake one).
set -euo pipefail

readonly prog="entrypoint"
readonly bundled_config="/opt/haproxy-serve/examples/serve.yaml"

usage() {
  cat <<EOF
Usage: entrypoint.sh [--config FILE]
       entrypoint.sh --help

Runs haproxy-manager (HAProxy on :8000, metrics on :9101, replicas behind it) for this node.

  --config FILE   serve config (YAML). Default: \$SERVE_CONFIG if set, else
                  \$SERVE_DEFAULT_CONFIG (${SERVE_DEFAULT_CONFIG:-$bundled_config}).
  --help, -h      this text.

Environment:
  RAY_SERVE_ENABLE_HA_PROXY    must be 1 (HAProxy mode); unset or 0 exits 78 with a hint.
  SERVE_CONFIG                 config path when --config is not given.
  SERVE_DEFAULT_CONFIG         fallback config path (default $bundled_config).
  RAY_SERVE_DEFAULT_HTTP_HOST  replica bind address; set 0.0.0.0 on multi-node clusters.
  HAPROXY_MANAGER_BIN          manager binary (default: haproxy-manager on PATH).
  Every other RAY_SERVE_* variable is read by the manager: docs/configuration.md.

Signals: SIGTERM and SIGINT stop the node (the manager drains and stops HAProxy and the
replicas); SIGHUP makes the manager re-read the config file and deploy it.
EOF
}

die() {  # die STATUS MESSAGE...
  local status=$1
  shift
  local line
  for line in "$@"; do
    printf '%s: %s\n' "$prog" "$line" >&2
  done
  exit "$status"
}

usage_error() {
  die 64 "$1" "run with --help for usage"
}

# --- signals ----------------------------------------------------------------------------------
# Trap-and-forward rather than `exec`: this script stays PID 1 in the container and the manager
# runs as its child. Bash as PID 1 reaps orphans that get re-parented to it (an HAProxy worker
# whose master was killed, a replica's child) while waiting, which the manager, waiting only for
# its own children, would leave as zombies; and the traps are set before anything else runs, so a
# SIGTERM during start-up is not lost (PID 1 drops signals it has no handler for).
# SIGTERM goes on as SIGTERM and SIGHUP as SIGHUP. SIGINT goes on as SIGTERM: the manager treats
# both as "drain and stop", and a background child of a non-interactive shell starts with SIGINT
# ignored, so SIGTERM is the one it is sure to see. The script then exits with the manager's status.
child=""
stop_before_start=0
got_signal=0

forward() {  # forward SIGNAL
  got_signal=1
  if [[ -z $child ]]; then
    if [[ $1 == TERM ]]; then
      stop_before_start=1  # HUP before the start has nothing to reload: the config is read fresh
    fi
    return 0
  fi
  printf '%s: forwarding SIG%s to haproxy-manager (pid %s)\n' "$prog" "$1" "$child" >&2
  kill -s "$1" "$child" 2>/dev/null || true
}
trap 'forward TERM' TERM INT
trap 'forward HUP' HUP

# --- arguments --------------------------------------------------------------------------------
config_arg=""
config_given=0
while (($# > 0)); do
  case $1 in
    -h | --help)
      usage
      exit 0
      ;;
    --config | --config=*)
      if ((config_given)); then
        usage_error "--config given more than once"
      fi
      if [[ $1 == --config=* ]]; then
        config_arg=${1#--config=}
      elif (($# > 1)); then
        config_arg=$2
        shift
      fi
      if [[ -z $config_arg ]]; then
        usage_error "--config needs a file"
      fi
      config_given=1
      ;;
    *)
      usage_error "unknown argument '$1'"
      ;;
  esac
  shift
done

# --- the enable switch ------------------------------------------------------------------------
enable=${RAY_SERVE_ENABLE_HA_PROXY:-}
case $enable in
  1) ;;
  "" | 0)
    if [[ -z $enable ]]; then
      state="is unset"
    else
      state="is 0"
    fi
    die 78 "HAProxy mode is off (RAY_SERVE_ENABLE_HA_PROXY $state); this image serves only in HAProxy mode." \
      "Enable it with -e RAY_SERVE_ENABLE_HA_PROXY=1 (docker run), or env RAY_SERVE_ENABLE_HA_PROXY: \"1\" in a pod spec."
    ;;
  *)
    die 64 "RAY_SERVE_ENABLE_HA_PROXY must be 0 or 1, got '$enable'"
    ;;
esac

# --- the config -------------------------------------------------------------------------------
if ((config_given)); then
  config=$config_arg
  source_name="--config"
elif [[ -n ${SERVE_CONFIG:-} ]]; then
  config=$SERVE_CONFIG
  source_name="SERVE_CONFIG"
else
  config=${SERVE_DEFAULT_CONFIG:-$bundled_config}
  source_name="the bundled example"
fi
if [[ ! -e $config ]]; then
  die 66 "config file not found: $config (from $source_name)"
elif [[ -d $config ]]; then
  die 66 "config path is a directory, not a file: $config (from $source_name)"
elif [[ ! -r $config ]]; then
  die 66 "config file not readable by uid $(id -u): $config (from $source_name)"
fi

manager=${HAPROXY_MANAGER_BIN:-haproxy-manager}
if ! command -v -- "$manager" >/dev/null 2>&1; then
  die 127 "manager binary not found: $manager (set HAPROXY_MANAGER_BIN or put haproxy-manager on PATH)"
fi

# --- run the manager ---------------------------------------------------------------------------
if ((stop_before_start)); then
  die 143 "stop requested before haproxy-manager started; not starting it"
fi
printf '%s: starting %s start --config %s (config from %s; RAY_SERVE_DEFAULT_HTTP_HOST=%s)\n' \
  "$prog" "$manager" "$config" "$source_name" "${RAY_SERVE_DEFAULT_HTTP_HOST:-unset, replicas bind 127.0.0.1}" >&2
"$manager" start --config "$config" &
child=$!
if ((stop_before_start)); then
  forward TERM
fi

# `wait` returns early (128+N) when a trapped signal arrives; the manager is then still running,
# so wait again until it has really exited. A second `wait` on a child whose status an earlier
# `wait` already collected answers 127; that happens only when a signal raced with the exit, and
# the status collected before is the real one.
status=""
while :; do
  got_signal=0
  if wait "$child"; then rc=0; else rc=$?; fi
  if [[ -n $status ]] && ((rc == 127)) && ! kill -0 "$child" 2>/dev/null; then
    break
  fi
  status=$rc
  if ((got_signal == 0)); then
    break
  fi
done
printf '%s: haproxy-manager exited with status %s\n' "$prog" "$status" >&2
exit "$status"
