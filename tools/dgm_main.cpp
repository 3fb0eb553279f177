// The `dgm` command: train, evaluate, sample and benchmark the course's generative models.
//
//   dgm train imagegpt --epochs 10 --out runs/igpt     dgm eval imagegpt --checkpoint runs/igpt
//   dgm sample imagegpt --checkpoint runs/igpt --n 64  dgm bench gemm_512
//
// Everything happens in tools/cli/ (commands.cpp); `dgm --help` lists the commands and models.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#if defined(__linux__)
#include <unistd.h>
#endif

#include <dgm/tools/cli/commands.h>

namespace {

// OpenMP's idle threads wait for the next parallel region by spinning: GCC's libgomp for 300,000
// rounds (milliseconds) after every region unless told otherwise. On a laptop where a browser or a
// build holds a core, a dgm thread then spins on the core that its sibling needs, and a training step
// ran 1.3x (mlp_ar, imagegpt; more under heavier load) slower than with a short spin. The runtime reads
// its settings once, before main, so the only way to change them is to start again: when the user set
// none of them, dgm re-executes itself once with a spin of 10,000 rounds (and LLVM libomp's 1 ms block
// time). Measured cost on an idle machine: 2-4% per training step (bench/README.md).
void prefer_short_openmp_spins(char** argv) {
#if defined(__linux__)
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv("KMP_BLOCKTIME")) return;
  if (setenv("GOMP_SPINCOUNT", "10000", 1) != 0 || setenv("KMP_BLOCKTIME", "1", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only if it failed: carry on with the runtime's defaults
#else
  (void)argv;
#endif
}

}  // namespace

int main(int argc, char** argv) {
  prefer_short_openmp_spins(argv);
  return dgm::cli::run_cli(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
