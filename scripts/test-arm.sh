#!/usr/bin/env bash
# The 64-bit ARM check: cross-compiles dgm's core for aarch64 Linux with Debian's cross compiler
# (g++-aarch64-linux-gnu, toolchain file cmake/aarch64-linux-gnu.cmake) and runs its tests under
# qemu-user (qemu-aarch64), through ctest: the emulator runs GoogleTest's test listing and every
# test. The core is what -DDGM_CORE_ONLY=ON builds (cmake/core_only.cmake): the tensor and autograd
# libraries and the test files that need nothing above them (test_tensor, test_autograd, test_gemm,
# test_conv, test_fused, test_jacobian, test_gradcheck), so it needs no zlib, stb or JSON for ARM.
# GoogleTest is built from the sources libgtest-dev ships (/usr/src/googletest): there is no arm64
# libgtest to link. Installs what is missing with apt-get (as root); scripts/test.sh runs it as a
# stage (DGM_ARM=0 skips it there).
#   DGM_ARM_BUILD_DIR    the build folder (default build-arm/)
#   DGM_ARM_JOBS         parallel compiles and tests (default: nproc)
#   DGM_ARM_CMAKE_ARGS   more arguments for the configure
#   DGM_ARM_MISSING_OK=1 without root and with a tool missing: say so and exit 0 (scripts/test.sh
#                        skips the stage), instead of failing
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${DGM_ARM_BUILD_DIR:-build-arm}
jobs=${DGM_ARM_JOBS:-$(nproc)}
gtest_src=/usr/src/googletest

# ---- the tools: the cross compiler, qemu-user, GoogleTest's sources, cmake ----------------------------
packages=(cmake make g++-aarch64-linux-gnu qemu-user googletest)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "dgm arm: missing packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "dgm arm: need root to install them; run: sudo apt-get install -y ${missing[*]}" >&2
    if [ "${DGM_ARM_MISSING_OK:-0}" = 1 ]; then
      echo "dgm arm: ARM check skipped (not root, tools missing)"
      exit 0
    fi
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  for p in "${missing[@]}"; do
    if apt-cache policy "$p" | grep -q 'Candidate: (none)' || [ -z "$(apt-cache policy "$p")" ]; then
      echo "dgm arm: package $p is not available from this machine's apt sources" >&2
      exit 1
    fi
  done
  echo "dgm arm: installing ${missing[*]}"
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- cross build (dgm_tensor, dgm_autograd, dgm_core_tests), then the tests, each under qemu-aarch64 ----
echo "== ARM: cross build (aarch64-linux-gnu, -DDGM_CORE_ONLY=ON) in $build_dir"
# shellcheck disable=SC2086  # DGM_ARM_CMAKE_ARGS: several words
exec bash scripts/core-check.sh ARM "$build_dir" "$jobs" -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DDGM_NATIVE=OFF \
  -DDGM_GTEST_SOURCE_DIR="$gtest_src" ${DGM_ARM_CMAKE_ARGS:-}
