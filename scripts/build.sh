#!/usr/bin/env bash
# Configures and builds one build tree: scripts/build.sh DIR [cmake -D options...] [--target T]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1; shift
options=()
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --target) targets+=(--target "$2"); shift 2 ;;
    *) options+=("$1"); shift ;;
  esac
done
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "${options[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${targets[@]}"
