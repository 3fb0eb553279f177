#!/usr/bin/env bash
# Same-minute A/B of two revisions' kernels: the tensor layer of REV_A and of REV_B compiled into one
# binary (namespaces dgmA / dgmB), whose driver alternates them call by call on a GEMM, MLP-AR's
# layers, a PixelCNN convolution, ImageGPT's attention, MLP-AR's embedding-bag backward and its
# cross-entropy (bench/ab_side.cpp). On a shared machine,
# whose speed moves by 2x within minutes, two binaries run one after the other compare two moments;
# this compares two codes.
#   bash bench/ab.sh REV_A REV_B [CALLS] [WORKLOAD]     e.g. bash bench/ab.sh HEAD~1 HEAD 21 conv
# REV may also be "." (the working tree's tensor/). Threads: OMP_NUM_THREADS (default: all cores).
# AB_FLAGS_A / AB_FLAGS_B: extra compiler flags for one side, e.g. AB_FLAGS_B=-DSOME_BLOCK=128 to try a
# parameter that the code reads from a macro (bash bench/ab.sh . . 21 conv with both set).
# Builds with the flags of scripts/setup.sh's Release -march=native build in a temporary folder
# (about 2 minutes on 2 cores); needs git, g++ and OpenMP.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: bash bench/ab.sh REV_A REV_B [CALLS] [WORKLOAD]" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags="-O3 -DNDEBUG -fno-trapping-math -fno-math-errno -march=native -fopenmp -std=c++20 -falign-loops=64"
for side in A B; do
  rev=$([ $side = A ] && echo "$1" || echo "$2")
  mkdir -p "$work/$side/include" "$work/$side/obj"
  if [ "$rev" = . ]; then
    cp -r tensor "$work/$side/"
  else
    git rev-parse --verify --quiet "$rev^{commit}" >/dev/null || { echo "ab: '$rev' is not a commit here" >&2; exit 2; }
    git archive "$rev" tensor | tar -x -C "$work/$side"
  fi
  ln -s .. "$work/$side/include/dgm"  # <dgm/tensor/x.h> -> that side's tensor/x.h
  for f in "$work/$side"/tensor/*.cpp bench/ab_side.cpp; do
    extra=$([ $side = A ] && echo "${AB_FLAGS_A:-}" || echo "${AB_FLAGS_B:-}")
    echo "g++ $flags $extra -I$work/$side/include -Ddgm=dgm$side -DAB_SIDE=$side -c $f -o $work/$side/obj/$(basename "$f" .cpp).o"
  done
done > "$work/commands"
echo "# ab: compiling the tensor layer of $1 (A) and $2 (B)" >&2
xargs -P "$(nproc)" -I{} sh -c '{}' < "$work/commands"
g++ -fopenmp bench/ab_main.cpp "$work"/A/obj/*.o "$work"/B/obj/*.o -o "$work/ab"
"$work/ab" "${3:-21}" "${4:-}"
