// The `dgm` command: train, evaluate, sample and benchmark the course's generative models.
//
//   dgm train imagegpt --epochs 10 --out runs/igpt     dgm eval imagegpt --checkpoint runs/igpt
//   dgm sample imagegpt --checkpoint runs/igpt --n 64  dgm bench gemm_512
//
// Everything happens in tools/cli/ (commands.cpp); `dgm --help` lists the commands and models.
#include <iostream>
#include <string>
#include <vector>

#include <dgm/tools/cli/commands.h>

int main(int argc, char** argv) {
  return dgm::cli::run_cli(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
