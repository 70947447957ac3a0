#!/usr/bin/env bash
# Installs every build, test and benchmark dependency on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped, so a second run does no network work.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  libcpp-httplib-dev libyaml-cpp-dev doctest-dev
  libcurl4-openssl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsimdjson-dev uuid-dev
  libopenblas-dev libabsl-dev
  curl wrk nginx-light
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  SUDO="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
