// run(): the module table, and report.md around the modules' sections.
#include "lectures/lecture01/lecture01.h"

#include <chrono>
#include <filesystem>
#include <iostream>

#include "data/idx.h"
#include "lectures/lecture01/chapter.h"
#include "tensor/errors.h"

namespace dgm::lecture01 {

namespace {

struct Module {
  ModuleInfo info;
  void (*write)(Chapter&);
};

// One row per module, in lecture order. A new chapter adds its row here.
const std::vector<Module>& module_table() {
  static const std::vector<Module> table = {
      {{"tricks", "Course tricks"}, write_tricks},
      {{"histograms", "Problem statement and histograms"}, write_histograms},
      {{"divergences", "Divergences and MLE"}, write_divergences},
      {{"autoregressive", "Autoregressive modelling"}, write_autoregressive},
  };
  return table;
}

}  // namespace

const std::vector<ModuleInfo>& modules() {
  static const std::vector<ModuleInfo> infos = [] {
    std::vector<ModuleInfo> v;
    for (const Module& m : module_table()) v.push_back(m.info);
    return v;
  }();
  return infos;
}

void run(const std::string& name, const Options& opt) {
  std::vector<const Module*> selected;
  std::string known;
  for (const Module& m : module_table()) {
    if (name.empty() || m.info.name == name) selected.push_back(&m);
    known += (known.empty() ? "" : ", ") + m.info.name;
  }
  if (selected.empty()) throw ValueError(cat("lecture01: unknown module '", name, "' (expected one of: ", known, ")"));

  std::filesystem::create_directories(opt.out_dir);
  std::string md =
      "# Lecture 1 — a companion to the slides\n\n"
      "Numbers and figures produced by `dgm lecture01" + (name.empty() ? std::string() : " " + name) + "` (seed " +
      std::to_string(opt.seed) + ", data: " + (opt.data.empty() ? std::string("embedded MNIST") : opt.data) +
      "). Every number here is checked by a test in `tests/test_lecture01.cpp`.\n\n";
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (const Module* m : selected) {
    const auto t0 = clock::now();
    Chapter ch(opt, m->info);
    m->write(ch);
    double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    md += ch.markdown() + strf("*(%s: %.1f s)*\n\n", m->info.name.c_str(), seconds);
    if (!opt.quiet) std::cout << strf("\n(%s took %.1f s)\n", m->info.name.c_str(), seconds);
  }
  const std::string report = (std::filesystem::path(opt.out_dir) / "report.md").string();
  data::write_file_atomic(report, md);
  if (!opt.quiet)
    std::cout << strf("\nWrote %s (%.1f s in all)\n", report.c_str(),
                      std::chrono::duration<double>(clock::now() - start).count());
}

}  // namespace dgm::lecture01
