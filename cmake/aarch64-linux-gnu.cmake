# Cross build for 64-bit ARM Linux with Debian's cross compilers (g++-aarch64-linux-gnu); the
# programs it builds run on this machine under qemu-user (qemu-aarch64), so ctest and GoogleTest's
# test discovery work as in a native build. scripts/test-arm.sh uses it:
#   cmake -S . -B build-arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DDGM_CORE_ONLY=ON \
#         -DDGM_GTEST_SOURCE_DIR=/usr/src/googletest
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)    # GoogleTest's project enables C as well
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The target's libraries and headers live in the multiarch sysroot Debian installs; never pick up
# the build machine's (x86-64) libraries, but do run the build machine's programs.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# add_test, gtest_discover_tests and try_run run target programs through this; -L points qemu at
# the target's dynamic loader and shared libraries (libstdc++, libgomp, libm).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)

# Keep DGM_NATIVE off (the default): -march=native would name the build machine's CPU, not the
# target's. The generic ARMv8-A baseline has Advanced SIMD, so the portable kernels still vectorise.
