#!/usr/bin/env bash
# README command 2: set up, build, and run the whole test suite — then again under the sanitizers,
# then the fuzzers. Three stages (each can be skipped; CI runs all three — about 32 minutes in all
# from a clean clone on an idle 2-core AVX2 machine on 2026-11-30: about 7, 19 and 6):
#   1. the suite, Release build in $DGM_BUILD_DIR (default build/)
#   2. the suite built with -DDGM_SANITIZE=ON (AddressSanitizer + LeakSanitizer + UBSan) in
#      $DGM_SANITIZE_BUILD_DIR (default build-sanitize/): any report fails the test    DGM_SANITIZE=0 skips
#   3. scripts/fuzz.sh: each libFuzzer target for FUZZ_SECONDS (default 30) s          DGM_FUZZ=0 skips
#      (needs clang 16+: installed with apt-get as root, else skipped with a note)
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DGM_BUILD_DIR:-build}
jobs=$(nproc)

bash scripts/setup.sh
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 600

if [ "${DGM_SANITIZE:-1}" != 0 ]; then
  san_dir=${DGM_SANITIZE_BUILD_DIR:-build-sanitize}
  echo "== sanitizers: building the tests with -DDGM_SANITIZE=ON in $san_dir"
  # -O1: the sanitizer build is for finding bugs, not speed; it compiles much faster than -O3.
  # (GCC's -Wmaybe-uninitialized gives false positives inside libstdc++'s <regex> at -O1 with ASan.)
  CXXFLAGS="-O1 -Wno-maybe-uninitialized" DGM_BUILD_DIR=$san_dir \
    DGM_CMAKE_ARGS="-DDGM_SANITIZE=ON -DCMAKE_BUILD_TYPE=None ${DGM_CMAKE_ARGS:-}" \
    bash scripts/setup.sh --target dgm_tests
  # Tests left out under the sanitizers (they still run in stage 1), each with the reason:
  #   Lecture01.*  the lecture's Monte-Carlo demonstrations draw 10^5..10^6 samples through the
  #                engine: minutes under ASan, and they exercise the same kernels the unit tests of
  #                tensor/autograd/nn already cover.
  #   Architecture.DgmLecture1PrintsWhatDgmLecture01Printed  runs a lecture-1 module twice (the same
  #                Monte-Carlo code); the registry and alias it checks are covered by the other
  #                Architecture tests, which do run here.
  san_exclude=${DGM_SANITIZE_EXCLUDE:-'^Lecture01|^Architecture.DgmLecture1PrintsWhatDgmLecture01Printed'}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  echo "== sanitizers: running the tests (excluding '$san_exclude')"
  ctest --test-dir "$san_dir" --output-on-failure -j "$jobs" --timeout 900 -E "$san_exclude"
fi

if [ "${DGM_FUZZ:-1}" != 0 ]; then
  fuzz_cxx=${FUZZ_CXX:-clang++-16}
  if ! command -v "$fuzz_cxx" >/dev/null && [ -z "${FUZZ_CXX:-}" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "dgm: installing clang 16 and libFuzzer for the fuzzers"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-16 libclang-rt-16-dev libomp-16-dev >/dev/null || true
  fi
  if command -v "$fuzz_cxx" >/dev/null; then
    echo "== fuzzing: ${FUZZ_SECONDS:-30} s per target"
    bash scripts/fuzz.sh
  else
    echo "== fuzzing skipped: $fuzz_cxx not found (apt-get install clang-16 libclang-rt-16-dev libomp-16-dev)"
  fi
fi
