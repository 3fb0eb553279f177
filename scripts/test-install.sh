#!/usr/bin/env bash
# The install test (a stage of scripts/test.sh): what a student does with the README's section "Using
# dgm in your homework", checked end to end.
#   1. install the test build ($DGM_BUILD_DIR, default build/) into a temporary prefix;
#   2. move the prefix to another folder, so that no path known at install time is valid any more;
#   3. check that no installed file names the source or the build folder (the package must not
#      reach back into the clone: data, headers and CMake files all come from the prefix);
#   4. write the README's consumer CMakeLists.txt and homework.cpp (the first ```cmake and ```cpp
#      blocks of that section) into an empty folder, configure it with only the moved prefix on
#      CMAKE_PREFIX_PATH and the compiler's default C++ standard, build it, and check the binary
#      names neither folder either;
#   5. run it from an empty folder with DGM_DATA_DIR unset: it loads the compiled-in digits, trains
#      a few steps and writes a checkpoint, which must exist.
# Steps 4 and 5 run with the source and build folders hidden where the machine allows it (below).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd -P)
build=$(cd "${DGM_BUILD_DIR:-build}" && pwd -P)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dgm-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() { echo "install test: FAILED: $*" >&2; exit 1; }

echo "== install test: cmake --install $build into a temporary prefix, then moved"
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
mv "$tmp/prefix" "$tmp/moved"
prefix=$tmp/moved
[ -f "$prefix/include/dgm/nn/layers.h" ] || fail "include/dgm/nn/layers.h was not installed"
ls "$prefix"/lib*/cmake/dgm/dgmConfig.cmake >/dev/null 2>&1 || fail "no dgmConfig.cmake under $prefix/lib*/cmake/dgm"
if grep -rlF -e "$src" -e "$build" "$prefix" >"$tmp/hits"; then
  fail "installed files name the source or build folder: $(head -n 5 "$tmp/hits" | tr '\n' ' ')"
fi

# The consumer: the README's blocks, verbatim.
mkdir "$tmp/consumer"
awk -v out="$tmp/consumer" '
  /^## / { inside = ($0 == "## Using dgm in your homework") }
  inside && /^```cmake$/ && !cm { grab = "CMakeLists.txt"; cm = 1; next }
  inside && /^```cpp$/ && !cp { grab = "homework.cpp"; cp = 1; next }
  grab && /^```$/ { grab = ""; next }
  grab { print > (out "/" grab) }
' README.md
for f in CMakeLists.txt homework.cpp; do
  [ -s "$tmp/consumer/$f" ] || fail "README.md's section \"Using dgm in your homework\" has no $f block"
done

# Where it can (root, Linux mount namespaces), the consumer is built and run with the source and build
# folders hidden under empty file systems, so anything that still reached into them would fail.
hide=()
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
  hide=(unshare -m sh -c 'mount -t tmpfs none "$0" && { [ "$1" = "${1#"$0"/}" ] && mount -t tmpfs none "$1"; true; } && shift && exec "$@"' "$src" "$build")
  echo "== install test: $src and $build are hidden (empty tmpfs mounts) while the consumer builds and runs"
else
  echo "== install test: cannot hide $src and $build here (needs root and mount namespaces); relying on the moved prefix and the grep"
fi
run_consumer() { (cd "$tmp/consumer" && env -u DGM_DATA_DIR -u CPATH -u CPLUS_INCLUDE_PATH -u LIBRARY_PATH "${hide[@]}" "$@"); }

echo "== install test: building the README's homework project against the moved prefix"
grep -q "CMAKE_CXX_STANDARD" "$tmp/consumer/CMakeLists.txt" && fail "the consumer must build on the compiler's default standard"
run_consumer cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  >"$tmp/consumer-cmake.log" 2>&1 || { cat "$tmp/consumer-cmake.log"; fail "configuring the consumer"; }
run_consumer cmake --build build -j "$(nproc)" >"$tmp/consumer-build.log" 2>&1 ||
  { cat "$tmp/consumer-build.log"; fail "building the consumer"; }
if grep -qF -e "$src" -e "$build" "$tmp/consumer/build/homework"; then fail "the consumer binary names the source or build folder"; fi

echo "== install test: running it"
mkdir "$tmp/run"
out=$(run_consumer sh -c 'cd "$0" && OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} ./../consumer/build/homework' "$tmp/run") ||
  fail "the consumer exited with $?"
echo "$out"
[ -s "$tmp/run/homework-run/model.safetensors" ] || fail "no checkpoint homework-run/model.safetensors"
echo "$out" | grep -qE "^test NLL after 20 steps: [0-9.]+ bits/dim" || fail "unexpected output: $out"
echo "== install test: passed"
