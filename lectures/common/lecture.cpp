// The lecture registry and run(): report.md around the modules' sections.
#include <dgm/lectures/common/lecture.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <iostream>
#include <mutex>

#include <omp.h>

#include <dgm/lectures/common/chapter.h>
#include <dgm/tensor/errors.h>
#include <dgm/tools/files.h>

namespace dgm::lectures {

namespace {

std::vector<Lecture>& table() {
  static std::vector<Lecture> lectures;
  return lectures;
}

void ensure_folders_registered() {
  static std::once_flag once;
  std::call_once(once, [] { register_lecture_folders(); });
}

}  // namespace

const Module* Lecture::find(const std::string& name) const {
  for (const Module& m : modules)
    if (m.info.name == name) return &m;
  return nullptr;
}

std::vector<ModuleInfo> Lecture::module_infos() const {
  std::vector<ModuleInfo> v;
  for (const Module& m : modules) v.push_back(m.info);
  return v;
}

void register_lecture(Lecture lecture) {
  if (lecture.number < 1 || lecture.number > 99) throw ValueError(cat("register_lecture: lecture number ", lecture.number, " outside 1..99"));
  if (lecture.modules.empty()) throw ValueError(cat("register_lecture: lecture ", lecture.number, " has no modules"));
  for (size_t i = 0; i < lecture.modules.size(); ++i) {
    if (lecture.modules[i].info.name.empty() || !lecture.modules[i].write)
      throw ValueError(cat("register_lecture: lecture ", lecture.number, ", module ", i, " needs a name and a writer"));
    for (size_t j = 0; j < i; ++j)
      if (lecture.modules[j].info.name == lecture.modules[i].info.name)
        throw ValueError(cat("register_lecture: lecture ", lecture.number, " has two modules named '", lecture.modules[i].info.name, "'"));
  }
  std::vector<Lecture>& t = table();
  auto it = std::find_if(t.begin(), t.end(), [&](const Lecture& l) { return l.number == lecture.number; });
  if (it != t.end()) *it = std::move(lecture);
  else t.push_back(std::move(lecture));
  std::sort(t.begin(), t.end(), [](const Lecture& a, const Lecture& b) { return a.number < b.number; });
}

const std::vector<Lecture>& all() {
  ensure_folders_registered();
  return table();
}

const Lecture* find_lecture(int number) {
  for (const Lecture& l : all())
    if (l.number == number) return &l;
  return nullptr;
}

std::string available() {
  std::string s;
  for (const Lecture& l : all()) s += (s.empty() ? "" : ", ") + std::to_string(l.number);
  return s.empty() ? "no lectures are registered" : "lectures " + s;
}

std::string default_out_dir(const Lecture& lecture) { return strf("runs/lecture%02d", lecture.number); }

void run(const Lecture& lecture, const std::string& name, const Options& opt) {
  std::vector<const Module*> selected;
  std::string known;
  for (const Module& m : lecture.modules) {
    if (name.empty() || m.info.name == name) selected.push_back(&m);
    known += (known.empty() ? "" : ", ") + m.info.name;
  }
  if (selected.empty())
    throw ValueError(cat("lecture ", lecture.number, ": unknown module '", name, "' (expected one of: ", known, ")"));

  std::filesystem::create_directories(opt.out_dir);
  std::string md = strf("# Lecture %d — %s: a companion to the slides\n\n", lecture.number, lecture.title.c_str()) +
                   "Numbers and figures produced by `dgm lecture " + std::to_string(lecture.number) +
                   (name.empty() ? std::string() : " " + name) + "` (seed " + std::to_string(opt.seed) +
                   ", data: " + (opt.data.empty() ? std::string("embedded MNIST") : opt.data) +
                   strf("). Every number here is checked by a test in `tests/test_lecture%02d*.cpp`.\n\n", lecture.number);
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  for (const Module* m : selected) {
    const auto t0 = clock::now();
    Chapter ch(opt, lecture.number, m->info);
    m->write(ch);
    double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    md += ch.markdown() + strf("*(%s: %.1f s)*\n\n", m->info.name.c_str(), seconds);
    if (!opt.quiet) std::cout << strf("\n(%s took %.1f s)\n", m->info.name.c_str(), seconds);
  }
  const std::string report = (std::filesystem::path(opt.out_dir) / "report.md").string();
  tools::write_file_atomic(report, md);
  if (!opt.quiet)
    std::cout << strf("\nWrote %s (%.1f s in all)\n", report.c_str(), std::chrono::duration<double>(clock::now() - start).count());
}

void run_side_by_side(int64_t n, const std::function<void(int64_t)>& task) {
  std::vector<std::exception_ptr> errors(static_cast<size_t>(std::max<int64_t>(n, 0)));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      task(i);
    } catch (...) {
      errors[static_cast<size_t>(i)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace dgm::lectures
