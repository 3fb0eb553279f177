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
# Built for this machine (-march=native) unless DGM_NATIVE=OFF: the README's commands build where
# they run. A package for other machines: see README.md, "Using dgm in your homework".
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DDGM_NATIVE="${DGM_NATIVE:-ON}" ${DGM_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$(nproc)" "$@"
