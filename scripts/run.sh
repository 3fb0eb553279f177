#!/usr/bin/env bash
# README command 1: set up, build, and run the main job: lecture 1 on the embedded MNIST digits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --target dgm_cli
"${DGM_BUILD_DIR:-build}/dgm" lecture 1 "$@"
