#!/usr/bin/env bash
# Configures and builds the checking tree that scripts/test.sh (stage 2) and scripts/fuzz.sh share,
# in $DGM_SANITIZE_BUILD_DIR (default build-sanitize/): clang 16 or newer, -O1, AddressSanitizer +
# LeakSanitizer + UBSan, the portable x86-64 baseline (-DDGM_NATIVE=OFF: no -march=native, so the
# kernels' non-AVX paths), and every object instrumented for libFuzzer (-DDGM_FUZZ=ON), so that the
# test binary and the fuzz targets link the same library objects: one compile serves both.
#   bash scripts/build-sanitize.sh dgm_tests fuzz_targets     # the targets to build (CMake targets)
# The compiler: $DGM_SANITIZE_CXX (or the older $FUZZ_CXX), else the newest of clang++-18/-17/-16
# found; as root with apt-get, clang-16 (+ libclang-rt-16-dev for the sanitizer and libFuzzer
# runtimes, libomp-16-dev for OpenMP) is installed when none is. Without clang it falls back to g++
# (the sanitizers, no fuzz targets: DGM_FUZZ=OFF in the tree's CMakeCache.txt) and says so.
# clang 16 rather than Debian 12's default clang 14, which rejected C++20 code of dgm's (the capture
# of a structured binding in a lambda).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${DGM_SANITIZE_BUILD_DIR:-build-sanitize}

cxx=${DGM_SANITIZE_CXX:-${FUZZ_CXX:-}}
find_clang() {
  for c in clang++-18 clang++-17 clang++-16; do command -v "$c" >/dev/null && { echo "$c"; return; }; done
  return 0  # none found: an empty answer, not a failure (under set -e, cxx=$(find_clang) would end the script)
}
if [ -z "$cxx" ]; then
  cxx=$(find_clang)
  if [ -z "$cxx" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "dgm: installing clang 16, its sanitizer/libFuzzer runtimes and OpenMP" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-16 libclang-rt-16-dev libomp-16-dev >/dev/null || true
    cxx=$(find_clang)
  fi
fi
# -O1: the checking build is for finding bugs, not speed; it compiles much faster than -O3. The tensor
# layer alone gets -O2 (DGM_TENSOR_FLAGS): at -O1 its loops (gemm's portable micro-kernel, im2col, the
# elementwise maps) were most of the time of the suite under the sanitizers, and -O2 compiles them in
# about the same time; the sanitizers check them the same. The layers above compile as unity batches
# (DGM_UNITY), which cuts their compile by a quarter, and the test files share a precompiled header
# (DGM_PCH); stage 1 still compiles every file alone.
flags="-O1"
fuzz=ON
if [ -z "$cxx" ]; then
  echo "dgm: clang++ 16 or newer not found (apt-get install clang-16 libclang-rt-16-dev libomp-16-dev):" \
       "building the sanitizer tree with g++, without the fuzz targets" >&2
  cxx=g++
fi
case "$("$cxx" --version | head -n 1)" in
  *clang*) ;;
  *) fuzz=OFF
     # GCC's -Wmaybe-uninitialized gives false positives inside libstdc++'s <regex> at -O1 with ASan.
     flags="-O1 -Wno-maybe-uninitialized" ;;
esac

# Ninja for a new folder when installed (scripts/setup.sh installs it as root), as in scripts/setup.sh.
generator=()
if [ ! -f "$dir/CMakeCache.txt" ] && [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
# shellcheck disable=SC2086
cmake -S . -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_CXX_FLAGS="$flags" \
  -DDGM_NATIVE="${DGM_SANITIZE_NATIVE:-OFF}" -DDGM_SANITIZE=ON -DDGM_FUZZ=$fuzz -DDGM_TENSOR_FLAGS=-O2 -DDGM_UNITY=ON -DDGM_PCH=ON \
  ${DGM_CMAKE_ARGS:-} >/dev/null
targets=("$@")
if [ "$fuzz" = OFF ]; then  # no fuzz targets in a g++ tree
  targets=()
  for t in "$@"; do case "$t" in fuzz_*) ;; *) targets+=("$t");; esac; done
fi
if [ ${#targets[@]} -gt 0 ]; then
  cmake --build "$dir" -j "$(nproc)" --target "${targets[@]}"
fi
