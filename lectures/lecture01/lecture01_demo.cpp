// Runs the lecture-1 chapters until `dgm lecture01 [MODULE]` takes over:
//
//   lecture01_demo [MODULE] [--out DIR] [--seed N] [--data SRC] [--quiet]
//
// MODULE is tricks, histograms or divergences; without it, all of them. Writes DIR/report.md and the
// figures (default DIR: runs/lecture01).
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "lectures/lecture01/lecture01.h"

int main(int argc, char** argv) {
  dgm::lecture01::Options opt;
  std::string module;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "lecture01_demo: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--out") opt.out_dir = value();
    else if (a == "--seed") opt.seed = std::stoull(value());
    else if (a == "--data") opt.data = value();
    else if (a == "--quiet") opt.quiet = true;
    else if (a == "--help" || a == "-h") {
      std::printf("usage: lecture01_demo [MODULE] [--out DIR] [--seed N] [--data SRC] [--quiet]\nmodules:");
      for (const auto& m : dgm::lecture01::modules()) std::printf(" %s", m.name.c_str());
      std::printf("\n");
      return 0;
    } else module = a;
  }
  try {
    dgm::lecture01::run(module, opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lecture01_demo: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
