#!/usr/bin/env bash
# README command 1: set up, build, and run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --target log_derivative_demo
"${DGM_BUILD_DIR:-build}/log_derivative_demo"
