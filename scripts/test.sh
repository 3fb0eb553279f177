#!/usr/bin/env bash
# README command 2: set up, build, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir "${DGM_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" --timeout 600
