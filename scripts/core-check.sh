#!/usr/bin/env bash
# The core build and test run that scripts/test-arm.sh and scripts/test-wide.sh share: configures
# -DDGM_CORE_ONLY=ON (the tensor and autograd layers and their tests, cmake/core_only.cmake) in a
# build folder with the caller's CMake arguments, builds dgm_core_tests, runs it through ctest, and
# prints both times. Ninja for a new folder when installed, as scripts/setup.sh does (both cores stay
# busy).
#   bash scripts/core-check.sh LABEL BUILD_DIR JOBS [CMAKE_ARG...]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  echo "usage: bash scripts/core-check.sh LABEL BUILD_DIR JOBS [CMAKE_ARG...]" >&2
  exit 2
fi
label=$1 build_dir=$2 jobs=$3
shift 3
start=$SECONDS
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDGM_CORE_ONLY=ON "$@" >/dev/null
cmake --build "$build_dir" -j "$jobs" --target dgm_core_tests
build_s=$((SECONDS - start))

echo "== $label: the tests"
start=$SECONDS
rc=0
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 600 || rc=$?
echo "== $label: build ${build_s} s, tests $((SECONDS - start)) s"
exit $rc
