#!/usr/bin/env bash
# Prints the distribution packages that own the shared libraries the given binaries load, one
# per line, sorted: what a runtime image of the same distribution must install for them to
# start. Used by the Dockerfile's build stages (it runs with bash explicitly, so pipefail holds
# whatever the image format does with SHELL).
#
#   runtime-packages.sh [--skip-prefix DIR]... BINARY...
#
# Libraries under a --skip-prefix (CUDA's, which the runtime base image brings; a wheel's bundled
# lib/ folder, which is copied along) are left out. A library that is not found, or that no
# package owns, fails the script with a message naming it: an image that would not start is
# stopped at build time.
set -euo pipefail

skip=()
while (($# > 0)) && [[ $1 == --skip-prefix ]]; do
  skip+=("$2")
  shift 2
done
if (($# == 0)); then
  echo "usage: runtime-packages.sh [--skip-prefix DIR]... BINARY..." >&2
  exit 64
fi

ldd "$@" >/dev/null  # fails here, with ldd's own message, on a file that is not a binary

declare -A packages=()
while read -r name arrow path _; do
  [[ $arrow == "=>" ]] || continue
  if [[ $path == "not" ]]; then
    echo "runtime-packages: $name is not found (ldd $*)" >&2
    exit 1
  fi
  [[ $path == /* ]] || continue
  for prefix in "${skip[@]}"; do
    [[ $path == "$prefix"* ]] && continue 2
  done
  # dpkg records /lib/x86_64-linux-gnu/... or /usr/lib/...; usrmerge makes either the real one.
  pattern="*${path#/usr}"
  owner=$(dpkg-query --search "$pattern" 2>/dev/null | head -n1 | cut -d: -f1) || true
  if [[ -z $owner ]]; then
    echo "runtime-packages: no package owns $path (needed by $*)" >&2
    exit 1
  fi
  packages[$owner]=1
done < <(ldd "$@")

printf '%s\n' "${!packages[@]}" | sort
