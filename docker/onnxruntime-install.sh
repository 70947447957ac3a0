#!/usr/bin/env bash
# Installs ONNX Runtime for `kind: onnx` into the folder that holds the haproxy_serve package
# (serve-replica puts that folder on every Python worker's import path), in the runtime stage,
# with the image's own python3 so that the wheel matches its version. Only the onnxruntime wheel
# is installed (--no-deps): at run time it needs numpy alone, which python3-numpy provides.
# The wheel is pinned by sha256, one per Python the two runtime bases have: 3.11 (Debian 12) and
# 3.12 (Ubuntu 24.04); pip refuses any other file. pip itself is removed again afterwards.
#
#   onnxruntime-install.sh VERSION TARGET_DIR
set -euo pipefail

version=$1
target=$2
# Change with VERSION (and scripts/setup.sh's ONNXRUNTIME_VERSION): the sha256 of
# onnxruntime-VERSION-cp3XX-cp3XX-manylinux_2_28_x86_64.whl as PyPI serves it.
hashes=(
  --hash=sha256:5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d  # cp311
  --hash=sha256:99e1074c4b2197accd5073052a465361be17b89c093b8ffb6e6bd8f986c52df8  # cp312
)

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends ca-certificates python3-pip
# Behind a TLS-inspecting proxy, the build machine's CA bundle mounted for the build
# (scripts/image-check.sh does) is what pip trusts; the sha256 pins hold either way.
if [[ -s /etc/serve-build/ca.crt ]]; then
  export PIP_CERT=/etc/serve-build/ca.crt
fi
tmp=$(mktemp -d)
echo "onnxruntime==$version ${hashes[*]}" >"$tmp/req.txt"
# --break-system-packages: Debian's and Ubuntu's pip guard the system Python even for --target.
python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --require-hashes --no-compile --target "$target" -r "$tmp/req.txt" 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --require-hashes --no-compile --target "$target" -r "$tmp/req.txt" --break-system-packages
rm -rf "$tmp" "$target/bin"
apt-get purge -y --auto-remove python3-pip
apt-get clean
rm -rf /var/lib/apt/lists/*
# The worker's import works with the image's numpy.
PYTHONPATH="$target" python3 -c 'import onnxruntime; print("onnxruntime", onnxruntime.__version__)'
