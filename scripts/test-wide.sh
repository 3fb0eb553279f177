#!/usr/bin/env bash
# The other vector width's check. On x86-64 CPUs without AVX-512: builds dgm's core with
# -DDGM_EMULATE_AVX512=ON (tensor/simd.h: the kernels take their AVX-512 shapes — 8 x 32 GEMM tiles,
# 8-query attention tiles with 16-float panels, the pixel-lane convolution tiles — on pairs of AVX2
# registers, lane for lane the AVX-512 arithmetic) and runs the tests of the kernels that have such
# shapes. Without it, the AVX-512 paths would run first on a student's laptop. On CPUs with AVX-512,
# the other way round: the core built for this CPU without AVX-512 (-mno-avx512f: the AVX2 kernels'
# shapes, 6 x 16 GEMM tiles and 6-query attention blocks, which most laptops run) and the same tests.
# The core is what -DDGM_CORE_ONLY=ON builds (cmake/core_only.cmake), here only the test files of
# DGM_WIDE_TESTS. scripts/test.sh runs it as a stage (DGM_WIDE=0 skips it there).
#   DGM_WIDE_BUILD_DIR   the build folder (default build-wide/)
#   DGM_WIDE_JOBS        parallel compiles and tests (default: nproc)
#   DGM_WIDE_TESTS       the core test files to build (default: test_gemm;test_fused;test_conv;test_gradcheck)
# Exits 0 with a note, building nothing, where there is no other width to run: not x86-64, or no
# AVX2 + FMA.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DGM_WIDE_BUILD_DIR:-build-wide}
jobs=${DGM_WIDE_JOBS:-$(nproc)}
tests=${DGM_WIDE_TESTS:-test_gemm;test_fused;test_conv;test_gradcheck}

flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
if [ "$(uname -m)" != x86_64 ] || ! grep -qw avx2 <<<"$flags" || ! grep -qw fma <<<"$flags"; then
  echo "dgm wide: skipped: this CPU has no AVX2 + FMA to emulate AVX-512 with"
  exit 0
fi
if grep -qw avx512f <<<"$flags"; then
  echo "== wide: this CPU has AVX-512 (stage 1 ran its kernels); core build without it (-mno-avx512f: the AVX2 shapes) in $build_dir (tests: $tests)"
  exec bash scripts/core-check.sh narrow "$build_dir" "$jobs" -DDGM_NATIVE=ON -DDGM_EMULATE_AVX512=OFF -DCMAKE_CXX_FLAGS=-mno-avx512f -DDGM_CORE_TESTS="$tests"
fi

echo "== wide: core build with -DDGM_EMULATE_AVX512=ON in $build_dir (tests: $tests)"
exec bash scripts/core-check.sh wide "$build_dir" "$jobs" -DDGM_NATIVE=ON -DDGM_EMULATE_AVX512=ON -DCMAKE_CXX_FLAGS= -DDGM_CORE_TESTS="$tests"
