// The lecture registry: every lecture folder (lectures/lectureNN/) registers its modules here, and
// `dgm lecture N [MODULE]`, the tests and your own programs run them by number.
//
//   const Lecture* l = lectures::find_lecture(1);
//   lectures::run(*l, "tricks", {.out_dir = "runs/lecture01"});   // or `dgm lecture 1 tricks`
//
// A new lecture is a folder lectures/lectureNN/ (CMake picks up every such folder) whose
// lectureNN.cpp defines `void dgm::lectures::register_lectureNN()`, calling register_lecture() with
// its number, title and module table; the generated index calls it before the first look-up.
// A test or a homework program may register a lecture of its own at run time the same way.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dgm::lectures {

struct Options {
  std::string out_dir = "runs/lecture";  // dgm lecture uses runs/lectureNN
  uint64_t seed = 0;
  bool quiet = false;  // print nothing on stdout (report.md and the figures are still written)
  std::string data;    // MNIST source for load_mnist: "" = the embedded 10k digits
  // Trained models a module may use instead of its own short runs: run folders or checkpoint files
  // written by `dgm train`, comma-separated ("" = none; `dgm lecture N --checkpoint A,B`).
  std::string checkpoint;
};

struct ModuleInfo {
  std::string name, title;
};

class Chapter;

struct Module {
  ModuleInfo info;
  std::function<void(Chapter&)> write;  // prints its claims, checked in numbers, and writes its figures
};

struct Lecture {
  int number = 0;
  std::string title;
  std::vector<Module> modules;  // in lecture order; run("") runs them all in this order
  const Module* find(const std::string& name) const;
  std::vector<ModuleInfo> module_infos() const;
};

// Adds a lecture (or replaces the one with the same number). ValueError for a number outside 1..99,
// a lecture without modules, or two modules of the same name.
void register_lecture(Lecture lecture);
// Every registered lecture, by number (the lecture folders' own first).
const std::vector<Lecture>& all();
const Lecture* find_lecture(int number);  // nullptr if none
std::string available();                  // "lectures 1, 2" (for error messages)
std::string default_out_dir(const Lecture& lecture);  // "runs/lecture01"

// Runs one module by name, or all of them when name is empty: prints a readable summary to stdout,
// writes out_dir/report.md (a companion to the slides: per section the formula, what was shown,
// the numbers, links to figures) and the figures under out_dir/<module>/. report.md holds the
// sections of the modules of this call. ValueError for an unknown module name.
void run(const Lecture& lecture, const std::string& module, const Options& options);

// Runs task(i) for i < n side by side, one task at a time per OpenMP thread: for independent runs
// too small to keep the threads busy one by one (the seminar's ten 2-D flow fits, each with its own
// generator and flow). The ops inside a task run on its thread alone, and dgm's ops give the same
// bits on any thread count, so every result is the one the task gives run by itself. An exception
// of a task is rethrown (the first by index) after all tasks have finished.
void run_side_by_side(int64_t n, const std::function<void(int64_t)>& task);

// Defined by the generated index (CMake): calls each lecture folder's register_lectureNN().
void register_lecture_folders();

}  // namespace dgm::lectures
