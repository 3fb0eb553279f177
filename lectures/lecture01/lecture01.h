// Lecture 1 of R. Isachenko's Deep Generative Models course as runnable, tested chapters.
//
//   tricks       log-derivative trick, Jensen, Monte-Carlo estimation, change of variables, LOTUS,
//                the Dirac delta                                                    (tricks.h)
//   histograms   the problem statement: a histogram as a generative model, the curse of
//                dimensionality on binarized MNIST, conditional models               (histograms.h)
//   divergences  forward vs reverse KL, the properties of KL, MLE = Monte-Carlo forward KL
//                                                                                    (divergences.h)
//
// Every claim is a function returning numbers (so tests check it without files); run() calls them,
// prints a summary, and writes report.md plus figures under out_dir:
//
//   dgm::lecture01::run("tricks", {.out_dir = "runs/lecture01"});   // or `dgm lecture01 tricks`
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dgm::lecture01 {

struct Options {
  std::string out_dir = "runs/lecture01";
  uint64_t seed = 0;
  bool quiet = false;  // print nothing on stdout (report.md and the figures are still written)
  std::string data;    // MNIST source for load_mnist: "" = the embedded 10k digits
};

struct ModuleInfo {
  std::string name, title;
};

// The modules in the order run("") runs them.
const std::vector<ModuleInfo>& modules();

// Runs one module by name, or all of them when name is empty: prints a readable summary to stdout,
// writes out_dir/report.md (a companion to the slides: per section the formula, what was shown,
// the numbers, links to figures) and the figures under out_dir/<module>/. report.md holds the
// sections of the modules of this call. Throws dgm::ValueError for an unknown module name.
void run(const std::string& name, const Options& opt);

}  // namespace dgm::lecture01

#include "lectures/lecture01/divergences.h"
#include "lectures/lecture01/histograms.h"
#include "lectures/lecture01/tricks.h"
