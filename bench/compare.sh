#!/usr/bin/env bash
# dgm against its PyTorch peers, interleaved: ROUNDS rounds (default 5) of peak_flops, `dgm bench`
# (every workload), then pytorch_ref.py, pixelcnn_ref.py and bench/realnvp_ref.py's step, all on
# THREADS threads (default 2), one right after the other, so that each round's ratios see one state
# of a machine whose speed moves. Each line is "SOURCE NAME VALUE UNIT"; SOURCE is "dgm", "torch", or
# the name given to an extra dgm binary (EXTRA_DGM=path EXTRA_NAME=avx2: e.g. a -march=haswell build,
# the AVX2 kernels on an AVX-512 machine). Peers (as root):
#   apt-get install -y python3-torch libopenblas0-pthread python3-numpy
# (without libopenblas0-pthread Debian's python3-torch runs on the reference BLAS: gemm at ~6 GFLOP/s).
#   bash bench/compare.sh 5 > rounds.log
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
threads=${THREADS:-2}
peers=../shared/peers
dgm=${DGM:-build/dgm}
peak=$(mktemp -d)/peak_flops
gcc -O3 -march=native -fopenmp "$peers/peak_flops.c" -o "$peak"
echo "# torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), BLAS $(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)"
grep -m1 "model name" /proc/cpuinfo | sed 's/^/# /'
grep -q avx512f /proc/cpuinfo && echo "# AVX-512" || echo "# no AVX-512"
for r in $(seq "$rounds"); do
  echo "# round $r $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  OMP_NUM_THREADS=$threads "$peak" | tail -1 | sed 's/^/peak_flops /'
  "$dgm" bench --quiet --threads "$threads" | sed 's/^/dgm /'
  if [ -n "${EXTRA_DGM:-}" ]; then
    "$EXTRA_DGM" bench --quiet --threads "$threads" | sed "s/^/${EXTRA_NAME:-extra} /"
  fi
  /usr/bin/python3 "$peers/pytorch_ref.py" all --threads "$threads" 2>&1 | grep -v "^torch " | sed 's/^/torch /'
  /usr/bin/python3 "$peers/pixelcnn_ref.py" --threads "$threads" 2>&1 | grep -v "^torch " | sed 's/^/torch /'
  THREADS=$threads /usr/bin/python3 bench/realnvp_ref.py step 32 2>&1 | tail -1 | sed 's/^/torch /'
done
