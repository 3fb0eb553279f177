// Lecture 1 of R. Isachenko's Deep Generative Models course as runnable, tested chapters.
//
//   tricks          log-derivative trick, Jensen, Monte-Carlo estimation, change of variables, LOTUS,
//                   the Dirac delta                                                 (tricks.h)
//   histograms      the problem statement: a histogram as a generative model, the curse of
//                   dimensionality on binarized MNIST, conditional models            (histograms.h)
//   divergences     forward vs reverse KL, the properties of KL, MLE = Monte-Carlo forward KL
//                                                                                   (divergences.h)
//   autoregressive  the MLP autoregressive model, ImageGPT and PixelCNN             (autoregressive.h)
//   conditional     p(x | y): naive Bayes, conditional ImageGPT and PixelCNN as classifiers by
//                   Bayes' rule                                                     (conditional.h)
//
// Every claim is a function returning numbers (so tests check it without files); the module
// writers call them, print a summary, and write report.md plus figures. The lecture registers
// itself in the lecture registry (lectures/common/lecture.h):
//
//   dgm::lecture01::run("tricks", {.out_dir = "runs/lecture01"});   // or `dgm lecture 1 tricks`
#pragma once
#include <string>
#include <vector>

#include <dgm/lectures/common/chapter.h>
#include <dgm/lectures/common/lecture.h>

namespace dgm::lecture01 {

using lectures::Chapter;
using lectures::ModuleInfo;
using lectures::Options;
using lectures::strf;
using lectures::Table;

// The module writers (one per row of the module table in lecture01.cpp).
void write_tricks(Chapter& ch);
void write_histograms(Chapter& ch);
void write_divergences(Chapter& ch);
void write_autoregressive(Chapter& ch);
void write_conditional(Chapter& ch);

// Lecture 1's modules in the order run("") runs them, and run() itself, through the registry.
std::vector<ModuleInfo> modules();
void run(const std::string& name, const Options& opt);

}  // namespace dgm::lecture01

#include <dgm/lectures/lecture01/divergences.h>
#include <dgm/lectures/lecture01/histograms.h>
#include <dgm/lectures/lecture01/tricks.h>
