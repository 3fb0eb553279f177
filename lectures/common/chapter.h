// What every lecture module uses to show its results: a Chapter prints a readable summary to
// stdout and, in parallel, writes its section of report.md (formulas in LaTeX, tables, links to the
// figures it saved under out_dir/<module>/).
//
//   void write_tricks(Chapter& ch) {
//     ch.section("Jensen's inequality", "\\mathbb{E} f(x) \\ge f(\\mathbb{E} x)", "E f(x) >= f(E x)");
//     ch.table(Table{{"f", "E f(x)", "f(E x)"}, rows});
//     ch.figure(fig, "jensen.svg", "the gap E log x - log E x against the spread of x");
//   }
//
// A new module writes one `void write_X(Chapter&)` and adds one row to its lecture's module table
// (lectures/lectureNN/lectureNN.cpp; see lectures/common/lecture.h).
#pragma once
#include <string>
#include <vector>

#include <dgm/lectures/common/lecture.h>

namespace dgm::tools {
class Figure;
}

namespace dgm::lectures {

// printf into a std::string (GCC 12 has no std::format).
std::string strf(const char* format, ...) __attribute__((format(printf, 1, 2)));

// A small table shown aligned on the console and as a Markdown table in the report.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

class Chapter {
 public:
  // Creates out_dir/<module>/ for the figures. `lecture` is the lecture's number (for the report's
  // `dgm lecture N MODULE` line).
  Chapter(const Options& options, int lecture, const ModuleInfo& module);

  const Options& options() const { return opt_; }
  const ModuleInfo& module() const { return module_; }
  int lecture() const { return lecture_; }

  // A section: its title, the formula it demonstrates (LaTeX for the report, plain text for the console).
  void section(const std::string& title, const std::string& latex, const std::string& plain);
  // A paragraph of both (Markdown may use `code` and $math$; the console gets `plain`, or `markdown` if empty).
  void text(const std::string& markdown, const std::string& plain = "");
  void say(const std::string& plain);     // console only
  void report(const std::string& markdown);  // report only
  void table(const Table& t);
  // Saves the figure as out_dir/<module>/<file> and links it in the report.
  void figure(const tools::Figure& fig, const std::string& file, const std::string& caption);
  // Links a file the module wrote itself (a PNG grid) into the report.
  void image(const std::string& file, const std::string& caption);
  // Where to write a file of this module, and its link relative to report.md.
  std::string path(const std::string& file) const;
  std::string link(const std::string& file) const;

  const std::string& markdown() const { return md_; }

 private:
  void out(const std::string& s) const;
  Options opt_;
  int lecture_ = 0;
  ModuleInfo module_;
  std::string md_;
};

}  // namespace dgm::lectures
