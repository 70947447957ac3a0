#!/usr/bin/env bash
# The project's test command: installs what is missing, configures, builds, runs every test
# (unit and integration) with CTest. Extra arguments go to ctest, e.g. `scripts/test.sh -L unit`.
# SERVE_CMAKE_ARGS adds configure options (CI: -DSERVE_WERROR=ON).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# shellcheck disable=SC2086  # SERVE_CMAKE_ARGS is a list of options
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo ${SERVE_CMAKE_ARGS:-}
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure --timeout 300 "$@"
