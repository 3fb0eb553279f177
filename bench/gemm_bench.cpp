// GEMM throughput in GFLOP/s: square products (compared with PyTorch/OpenBLAS by
// ../shared/peers/pytorch_ref.py gemm) and the shapes our models actually run.
//
// Methodology (the same as pytorch_ref.py): a few warm-up calls, then the median wall time of at
// least 5 timed calls (more for small sizes, ~2 GFLOP in total). FLOPs = 2*M*N*K per product.
//
// Build: g++ -O3 -march=native -fopenmp -std=c++20 -I. bench/gemm_bench.cpp tensor/gemm.cpp -o gemm_bench
// Threads: OMP_NUM_THREADS (default: all cores).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "tensor/gemm.h"

namespace dgm::bench {

// Median seconds of `reps` calls of fn after `warmup` untimed ones.
double median_seconds(const std::function<void()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::vector<float> random_matrix(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = dist(rng);
  return v;
}

// One benchmark case: `batch` products C[M,N] = A[M,K] @ B[K,N]. A transposed operand is stored
// as its row-major transpose and passed with swapped strides, as matmul does for views.
struct GemmCase {
  std::string name;
  int64_t batch, M, N, K;
  bool trans_A = false;  // A is the transpose of a row-major (K, M) array
  bool trans_B = false;  // B is the transpose of a row-major (N, K) array (x @ W^T)
};

// GFLOP/s of one case (median time, same methodology as pytorch_ref.py).
double bench_gemm_case(const GemmCase& c) {
  const int64_t a_size = c.M * c.K, b_size = c.K * c.N, c_size = c.M * c.N;
  std::vector<float> A = random_matrix(c.batch * a_size, 1);
  std::vector<float> B = random_matrix(c.batch * b_size, 2);
  std::vector<float> C(size_t(c.batch * c_size));
  const int64_t rsA = c.trans_A ? 1 : c.K, csA = c.trans_A ? c.M : 1;
  const int64_t rsB = c.trans_B ? 1 : c.N, csB = c.trans_B ? c.K : 1;
  auto run = [&] {
    if (c.batch == 1)
      dgm::cpu::gemm(c.M, c.N, c.K, 1.0f, A.data(), rsA, csA, B.data(), rsB, csB, 0.0f, C.data(), c.N, 1);
    else
      dgm::cpu::gemm_batched(c.batch, c.M, c.N, c.K, 1.0f, A.data(), a_size, rsA, csA, B.data(), b_size, rsB, csB, 0.0f, C.data(),
                             c_size, c.N, 1);
  };
  const double flops = 2.0 * double(c.batch) * double(c.M) * double(c.N) * double(c.K);
  const int reps = std::max(5, int(2e9 / flops));
  return flops / median_seconds(run, 3, reps) / 1e9;
}

// GFLOP/s of an n x n x n float product (the `gemm_<n>` line of pytorch_ref.py).
double bench_gemm(int n) { return bench_gemm_case({"gemm_" + std::to_string(n), 1, n, n, n}); }

// The shapes our models run (ImageGPT / PixelCNN sized): name, then the product.
std::vector<GemmCase> model_cases() {
  return {
      {"linear_fwd_25088x64_W192x64", 1, 25088, 192, 64, false, true},   // x @ W^T
      {"linear_25088x64_64x192", 1, 25088, 192, 64},                      // x @ W (row-major W)
      {"weight_grad_25088x64T_25088x192", 1, 64, 192, 25088, true},       // x^T @ dy (K is big)
      {"input_grad_25088x192_W192x64", 1, 25088, 64, 192},                // dy @ W
      {"linear_12544x256_256x256", 1, 12544, 256, 256},
      {"batched_128x_784x16_16x784", 128, 784, 784, 16},                 // attention scores
      {"batched_128x_784x16_K784x16T", 128, 784, 784, 16, false, true},   // q @ k^T
      {"batched_128x_784x784_784x16", 128, 784, 16, 784},                 // probs @ v
  };
}

}  // namespace dgm::bench

int main() {
  using namespace dgm::bench;
  std::printf("threads %d\n", omp_get_max_threads());
  for (int n : {256, 512, 1024}) std::printf("gemm_%d %.1f GFLOP/s\n", n, bench_gemm(n));
  for (const GemmCase& c : model_cases()) std::printf("%s %.1f GFLOP/s\n", c.name.c_str(), bench_gemm_case(c));
  return 0;
}
