// `dgm bench`: speed figures printed as `NAME VALUE UNIT`, with the names and the methodology of
// the PyTorch peers (../shared/peers/pytorch_ref.py, pixelcnn_ref.py), so the outputs pair up line by
// line: each figure is the median wall time of at least 5 runs after a few untimed warm-up runs.
// What follows `#` on a line is a note: the share of the measured peak, a step's useful FLOPs.
//
//   peak_f32_fma                       GFLOP/s of independent FMA chains on every thread, as
//                                      ../shared/peers/peak_flops.c (printed first whenever needed)
//   gemm_256, gemm_512, gemm_1024      GFLOP/s of C = A B, n x n x n float32 (2 n^3 flops)
//   mlp_ar_step_B16                    ms per Adam step of the registered "mlp_ar" (Markov context 2,
//                                      hidden 256) on random 8-bit images, batch 16
//   imagegpt_step_B32_d64_h4_l2        ms per Adam step of the registered "imagegpt" (embed_dim 64,
//                                      4 heads, 2 layers) on random binary images, batch 32
//   pixelcnn_step_B32_c64_l5           ms per Adam step of the registered "pixelcnn" (7x7 mask A, 5 x
//                                      [channel LayerNorm, ReLU, 3x3 mask B], 64 channels), batch 32
//   imagegpt_sample16                  s to draw 16 images from that ImageGPT
//
// Workloads whose model is not registered (or rejects that config) print a `# ...` note instead.
#pragma once
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace dgm::cli {

// Every workload name, in the order `dgm bench` runs them.
const std::vector<std::string>& bench_names();

// Runs the named workloads (all when `names` is empty), printing each line to `out` as soon as it
// is measured. UsageError listing the known names if a name is unknown (checked before running).
void run_bench(const std::vector<std::string>& names, std::ostream& out);

// Median seconds of `reps` calls of fn after `warmup` untimed calls.
double median_seconds(const std::function<void()>& fn, int warmup, int reps);

}  // namespace dgm::cli
