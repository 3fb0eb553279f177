#include <dgm/lectures/common/chapter.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <dgm/tools/plot.h>

namespace dgm::lectures {

std::string strf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  int size = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string out(static_cast<size_t>(size > 0 ? size : 0), '\0');
  if (size > 0) std::vsnprintf(out.data(), out.size() + 1, format, args);
  va_end(args);
  return out;
}

Chapter::Chapter(const Options& options, int lecture, const ModuleInfo& module) : opt_(options), lecture_(lecture), module_(module) {
  std::filesystem::create_directories(std::filesystem::path(opt_.out_dir) / module_.name);
  md_ += "## " + module_.title + " (`dgm lecture " + std::to_string(lecture_) + " " + module_.name + "`)\n\n";
  out("\n=== " + module_.title + " (" + module_.name + ") ===\n");
}

void Chapter::out(const std::string& s) const {
  if (!opt_.quiet) std::cout << s << std::flush;
}

void Chapter::section(const std::string& title, const std::string& latex, const std::string& plain) {
  md_ += "### " + title + "\n\n$$" + latex + "$$\n\n";
  out("\n-- " + title + ":  " + plain + "\n");
}

void Chapter::text(const std::string& markdown, const std::string& plain) {
  md_ += markdown + "\n\n";
  out((plain.empty() ? markdown : plain) + "\n");
}

void Chapter::say(const std::string& plain) { out(plain + "\n"); }

void Chapter::report(const std::string& markdown) { md_ += markdown + "\n\n"; }

void Chapter::table(const Table& t) {
  // Markdown
  auto md_row = [](const std::vector<std::string>& cells) {
    std::string r = "|";
    for (const std::string& c : cells) {
      std::string escaped;  // a '|' inside a cell (|x|, KL(p || q)) would end the cell
      for (char ch : c) escaped += ch == '|' ? std::string("\\|") : std::string(1, ch);
      r += " " + escaped + " |";
    }
    return r + "\n";
  };
  md_ += md_row(t.header);
  md_ += "|";
  for (size_t i = 0; i < t.header.size(); ++i) md_ += i == 0 ? " :-- |" : " --: |";
  md_ += "\n";
  for (const auto& row : t.rows) md_ += md_row(row);
  md_ += "\n";
  // console: columns padded to their widest cell, the first left-aligned, the rest right-aligned
  std::vector<size_t> width(t.header.size(), 0);
  auto measure = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) width[i] = std::max(width[i], cells[i].size());
  };
  measure(t.header);
  for (const auto& row : t.rows) measure(row);
  auto line = [&](const std::vector<std::string>& cells) {
    std::string r = " ";
    for (size_t i = 0; i < cells.size() && i < width.size(); ++i) {
      std::string pad(width[i] - cells[i].size(), ' ');
      r += "  " + (i == 0 ? cells[i] + pad : pad + cells[i]);
    }
    return r + "\n";
  };
  std::string s = line(t.header);
  for (const auto& row : t.rows) s += line(row);
  out(s + "\n");
}

std::string Chapter::path(const std::string& file) const {
  return (std::filesystem::path(opt_.out_dir) / module_.name / file).string();
}
std::string Chapter::link(const std::string& file) const { return module_.name + "/" + file; }

void Chapter::figure(const tools::Figure& fig, const std::string& file, const std::string& caption) {
  fig.save(path(file));
  image(file, caption);
}

void Chapter::image(const std::string& file, const std::string& caption) {
  md_ += "![" + caption + "](" + link(file) + ")\n\n*" + caption + "* (`" + link(file) + "`)\n\n";
  out("  [figure] " + path(file) + " -- " + caption + "\n");
}

}  // namespace dgm::lectures
