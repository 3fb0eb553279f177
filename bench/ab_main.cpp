// bench/ab.sh's driver: the workloads of ab_side.cpp on side A and side B, alternated call by call
// (A first on even calls, B first on odd ones), so that both see the same minutes of a machine
// whose speed moves. Prints per workload: medians, minima, and how many calls B won.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define AB_DECLARE(name) double name##A(); double name##B();
AB_DECLARE(gemm_1024_) AB_DECLARE(gemm_mlp_ar_) AB_DECLARE(conv_pixelcnn_) AB_DECLARE(conv_forward_pixelcnn_)
AB_DECLARE(attention_imagegpt_) AB_DECLARE(embedding_bag_mlp_ar_) AB_DECLARE(cross_entropy_mlp_ar_)

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 21;
  const char* only = argc > 2 ? argv[2] : "";
  if (calls < 1 || calls > 10000) {
    std::fprintf(stderr, "ab: CALLS must be 1..10000, got '%s'\n", argv[1]);
    return 2;
  }
  struct Workload {
    const char* name;
    double (*a)();
    double (*b)();
  } workloads[] = {{"gemm_1024", gemm_1024_A, gemm_1024_B},
                   {"gemm_mlp_ar", gemm_mlp_ar_A, gemm_mlp_ar_B},
                   {"conv_pixelcnn", conv_pixelcnn_A, conv_pixelcnn_B},
                   {"conv_forward_pixelcnn", conv_forward_pixelcnn_A, conv_forward_pixelcnn_B},
                   {"attention_imagegpt", attention_imagegpt_A, attention_imagegpt_B},
                   {"embedding_bag_mlp_ar", embedding_bag_mlp_ar_A, embedding_bag_mlp_ar_B},
                   {"cross_entropy_mlp_ar", cross_entropy_mlp_ar_A, cross_entropy_mlp_ar_B}};
  std::printf("# %d threads, %d alternated calls per side; ms\n", omp_get_max_threads(), calls);
  for (const Workload& w : workloads) {
    if (*only && !std::strstr(w.name, only)) continue;
    w.a(), w.b();  // warm-up: buffers, packed weights, the caching allocator
    std::vector<double> ta, tb;
    int b_faster = 0;
    for (int i = 0; i < calls; ++i) {
      double a, b;
      if (i % 2) b = w.b(), a = w.a();
      else a = w.a(), b = w.b();
      ta.push_back(a), tb.push_back(b), b_faster += b < a;
    }
    std::sort(ta.begin(), ta.end()), std::sort(tb.begin(), tb.end());
    std::printf("%-20s A median %8.2f min %8.2f | B median %8.2f min %8.2f | B faster in %d of %d\n", w.name, ta[calls / 2], ta[0],
                tb[calls / 2], tb[0], b_faster, calls);
  }
}
