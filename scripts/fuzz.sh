#!/usr/bin/env bash
# Builds the libFuzzer targets (clang) and runs each for FUZZ_SECONDS seconds (default 30) on its
# committed seed corpus. A crash leaves crash-* in build-fuzz/ and fails the script; turn the
# input into a regression test (tests/test_*.cpp) before fixing it.
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh            # longer runs
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh fuzz_idx    # one target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-30}
out=${DGM_FUZZ_DIR:-build-fuzz}
mkdir -p "$out"
cxx=${FUZZ_CXX:-clang++}
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)

declare -A sources=(
  [fuzz_idx]="data/idx.cpp"
)
declare -A libs=(
  [fuzz_idx]="-lz"
)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${!sources[@]}")
for t in "${targets[@]}"; do
  echo "== $t: building"
  # shellcheck disable=SC2086
  "$cxx" "${flags[@]}" "tests/fuzz/$t.cpp" ${sources[$t]} ${libs[$t]} -o "$out/$t"
  corpus="tests/fuzz/corpus/${t#fuzz_}"
  work="$out/corpus-$t"
  mkdir -p "$work"
  echo "== $t: fuzzing for ${seconds}s (seed corpus $corpus)"
  (cd "$out" && "./$t" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      "corpus-$t" "../$corpus" 2>"$t.log") || { tail -n 40 "$out/$t.log"; echo "== $t: FAILED (see $out/$t.log)"; exit 1; }
  grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$out/$t.log" | sed "s/^/   /"
done
