#!/usr/bin/env bash
# Builds the libFuzzer targets (clang) and runs each for FUZZ_SECONDS seconds (default 30) on its
# committed seed corpus tests/fuzz/corpus/<name>/. A crash leaves crash-* in the fuzz folder
# (DGM_FUZZ_DIR, default build-fuzz/) and fails the script; turn the input into a regression test
# (tests/test_reliability_fuzz.cpp, input committed under tests/fuzz/regressions/) before fixing it.
#   bash scripts/fuzz.sh                                   # every target, 30 s each (CI)
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh                  # longer runs
#   FUZZ_SECONDS=3600 bash scripts/fuzz.sh fuzz_safetensors # one target
#   build-fuzz/fuzz_idx build-fuzz/crash-...               # replay one input
# Targets: fuzz_idx (data::decode_idx, gunzip, parse_idx), fuzz_safetensors (nn::load_safetensors),
#          fuzz_args (cli::parse_args; input split into argv words on NUL/newline/space),
#          fuzz_checkpoint (safetensors -> metadata -> models::create_model -> one log_prob; seeds:
#          a small checkpoint of every registered model, tests/fuzz/checkpoint_harness.h).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
out=${DGM_FUZZ_DIR:-build-fuzz}
mkdir -p "$out/obj"
out=$(cd "$out" && pwd)
# clang 16 or newer: nn/serialize.cpp captures a structured binding in a lambda (C++20), which
# clang 14 (Debian 12's default clang) rejects.
cxx=${FUZZ_CXX:-}
if [ -z "$cxx" ]; then
  for c in clang++-18 clang++-17 clang++-16; do command -v "$c" >/dev/null && { cxx=$c; break; }; done
fi
if [ -z "$cxx" ]; then
  echo "fuzz.sh: clang++ 16 or newer not found; install it: apt-get install clang-16 libclang-rt-16-dev" >&2
  exit 1
fi
flags=(-std=c++20 -O1 -g -march=native -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
       -fno-omit-frame-pointer -I.
       # clang (14) does not define GCC's __SANITIZE_ADDRESS__, by which tensor/allocator.cpp turns its
       # caching off under ASan (so that every buffer is checked): define it for these builds.
       -D__SANITIZE_ADDRESS__=1)

# OpenMP only for tensor/ (its kernels use it): clang 16 refuses, with -fopenmp, the capture of a
# structured binding in a lambda that nn/serialize.cpp uses.
# The library sources each target links, compiled once into $out/obj (recompiled when the source
# or one of the headers it includes changes).
engine_sources="$(ls tensor/*.cpp autograd/*.cpp | tr '\n' ' ') nn/module.cpp nn/serialize.cpp"
model_sources="$(ls tensor/*.cpp autograd/*.cpp nn/*.cpp data/*.cpp tools/*.cpp models/*.cpp | grep -v -E '_(main|demo)\.cpp$' | tr '\n' ' ')"
declare -A sources=(
  [fuzz_idx]="data/idx.cpp tools/files.cpp"
  [fuzz_safetensors]="$engine_sources"
  [fuzz_args]="tools/cli/args.cpp"
  [fuzz_checkpoint]="$model_sources"
)
declare -A libs=(
  [fuzz_idx]="-lz"
  [fuzz_safetensors]="-lz"
  [fuzz_args]=""
  [fuzz_checkpoint]="-lz"
)
# Inputs up to this many bytes (the checkpoint seeds are real checkpoints of a few KB).
declare -A max_len=(
  [fuzz_idx]=4096
  [fuzz_safetensors]=4096
  [fuzz_args]=4096
  [fuzz_checkpoint]=65536
)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_idx fuzz_safetensors fuzz_args fuzz_checkpoint)

object_of() { local s=$1; echo "$out/obj/${s//\//_}.o"; }
stale() {  # stale SOURCE: its object is missing or older than the source or an included header
  local o d
  o=$(object_of "$1"); d="${o%.o}.d"
  [ -f "$o" ] && [ -f "$d" ] || return 0
  for dep in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$d"); do
    [ "$dep" -nt "$o" ] && return 0
  done
  return 1
}
export -f object_of
export out cxx
export FLAGS="${flags[*]}"

for t in "${targets[@]}"; do
  [ -n "${sources[$t]+x}" ] || { echo "fuzz.sh: unknown target $t (known: ${!sources[*]})" >&2; exit 2; }
  echo "== $t: building"
  todo=()
  for s in ${sources[$t]}; do stale "$s" && todo+=("$s"); done
  if [ ${#todo[@]} -gt 0 ]; then
    # shellcheck disable=SC2016
    printf '%s\n' "${todo[@]}" | xargs -P "$(nproc)" -I{} bash -c \
      'o=$(object_of "{}"); omp=; case "{}" in tensor/*) omp=-fopenmp;; esac
       $cxx $FLAGS $omp -MMD -MF "${o%.o}.d" -c "{}" -o "$o"'
  fi
  objs=()
  for s in ${sources[$t]}; do objs+=("$(object_of "$s")"); done
  # shellcheck disable=SC2086
  "$cxx" "${flags[@]}" -fopenmp -fsanitize=fuzzer "tests/fuzz/$t.cpp" "${objs[@]}" ${libs[$t]} -o "$out/$t"

  corpus="$PWD/tests/fuzz/corpus/${t#fuzz_}"
  work="$out/corpus-$t"
  mkdir -p "$work"
  echo "== $t: fuzzing for ${seconds}s (seed corpus ${corpus#"$PWD"/})"
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 "./$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 "corpus-$t" "$corpus" 2>"$t.log") || { tail -n 40 "$out/$t.log"; echo "== $t: FAILED (see $out/$t.log)"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$t.log" | sed "s/^/   /"
done
