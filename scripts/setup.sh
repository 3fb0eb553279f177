#!/usr/bin/env bash
# Installs what dgm needs to build on Debian, if it is missing (apt-get, as root), then configures
# and builds. Used by the README's two commands (scripts/run.sh and scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake g++ make libgtest-dev libgmock-dev libstb-dev zlib1g-dev nlohmann-json3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Ninja is optional (make builds the same tree), but on 2 cores it keeps both busy where make
# waits for each layer's last file: installed along when root is installing anyway, or alone.
if ! command -v ninja >/dev/null && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  missing+=(ninja-build)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "dgm: installing missing packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "dgm: need root to install them; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build_dir=${DGM_BUILD_DIR:-build}
# A new build folder uses Ninja when it is installed (CMAKE_GENERATOR, if set, chooses instead); an
# existing one keeps the generator it was configured with.
generator=()
if [ ! -f "$build_dir/CMakeCache.txt" ] && [ -z "${CMAKE_GENERATOR:-}" ] && command -v ninja >/dev/null; then
  generator=(-G Ninja)
fi
# Built for this machine (-march=native) unless DGM_NATIVE=OFF: the README's commands build where
# they run. A package for other machines: see README.md, "Using dgm in your homework".
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDGM_NATIVE="${DGM_NATIVE:-ON}" ${DGM_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$(nproc)" "$@"
