#!/usr/bin/env bash
# Builds the libFuzzer targets and runs each for FUZZ_SECONDS seconds (default 30) on its committed
# seed corpus tests/fuzz/corpus/<name>/. They are built in the checking tree of
# scripts/build-sanitize.sh (DGM_FUZZ_DIR, default build-sanitize/: clang 16+, ASan + UBSan, -O1),
# whose library objects the sanitizer run of the tests uses too. A crash leaves crash-* in that
# folder and fails the script; turn the input into a regression test
# (tests/test_reliability_fuzz.cpp, input committed under tests/fuzz/regressions/) before fixing it.
#   bash scripts/fuzz.sh                                   # every target, 30 s each (CI)
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh                  # longer runs
#   FUZZ_SECONDS=3600 bash scripts/fuzz.sh fuzz_safetensors # one target
#   build-sanitize/fuzz_idx build-sanitize/crash-...       # replay one input
# Targets: fuzz_idx (data::decode_idx, gunzip, parse_idx), fuzz_safetensors (nn::load_safetensors),
#          fuzz_args (cli::parse_args; input split into argv words on NUL/newline/space),
#          fuzz_checkpoint (safetensors -> metadata -> models::create_model -> one log_prob; seeds:
#          a small checkpoint of every registered model, tests/fuzz/checkpoint_harness.h),
#          fuzz_cpu_list (cpu::cpu_list_covers, the GEMM's L3 report from sysfs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
out=${DGM_FUZZ_DIR:-${DGM_SANITIZE_BUILD_DIR:-build-sanitize}}
# Inputs up to this many bytes (the checkpoint seeds are real checkpoints of a few KB).
declare -A max_len=(
  [fuzz_idx]=4096
  [fuzz_safetensors]=4096
  [fuzz_args]=4096
  [fuzz_checkpoint]=65536
  [fuzz_cpu_list]=256
)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_idx fuzz_safetensors fuzz_args fuzz_checkpoint fuzz_cpu_list)
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]+x}" ] || { echo "fuzz.sh: unknown target $t (known: ${!max_len[*]})" >&2; exit 2; }
done
echo "== building ${targets[*]} in $out"
DGM_SANITIZE_BUILD_DIR=$out bash scripts/build-sanitize.sh "${targets[@]}"
grep -q '^DGM_FUZZ:BOOL=ON' "$out/CMakeCache.txt" || {
  echo "fuzz.sh: $out was configured without clang (-DDGM_FUZZ=OFF); install clang-16 libclang-rt-16-dev libomp-16-dev" >&2
  exit 1
}
out=$(cd "$out" && pwd)

# The targets run FUZZ_JOBS at a time (default: one per core), each on one thread (libFuzzer runs one
# input at a time; OMP_NUM_THREADS=1 so that two targets never share a core's OpenMP spin) and each
# still for the full FUZZ_SECONDS.
jobs=${FUZZ_JOBS:-$(nproc)}
fuzz_one() {
  local t=$1 corpus="$PWD/tests/fuzz/corpus/${1#fuzz_}"
  mkdir -p "$out/corpus-$t"
  echo "== $t: fuzzing for ${seconds}s (seed corpus ${corpus#"$PWD"/})"
  (cd "$out" && ASAN_OPTIONS=detect_leaks=1 OMP_NUM_THREADS=1 "./$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 "corpus-$t" "$corpus" 2>"$t.log")
}
declare -A pid_of=()
failed=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  fuzz_one "$t" &
  pid_of[$t]=$!
done
for t in "${targets[@]}"; do
  if wait "${pid_of[$t]}"; then
    echo "== $t:"
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/$t.log" | sed "s/^/   /"
  else
    tail -n 40 "$out/$t.log"
    echo "== $t: FAILED (see $out/$t.log)"
    failed+=("$t")
  fi
done
[ ${#failed[@]} -eq 0 ] || exit 1
