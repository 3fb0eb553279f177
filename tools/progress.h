// A progress bar on stderr, like Python's tqdm:
//
//   epoch 3:  45%|█████▌      | 450/1000 [00:12<00:15, 37.21it/s, loss=0.1234]
//
//   ProgressBar bar(steps, "epoch 3");
//   for (...) { ...; bar.set_postfix("loss", loss); bar.update(); }
//   bar.finish();   // or let the destructor do it
//
//   ProgressOptions opt;            // everything else: quiet, output stream, intervals, clock
//   opt.desc = "sampling";
//   opt.quiet = args.quiet;
//   ProgressBar bar2(n, opt);
//
// On a terminal the line is redrawn in place with '\r', at most ~10 times a second, so the bar
// costs nothing measurable in a training loop. When stderr is not a terminal (CI logs, `2> log`)
// '\r' would pile up into one unreadable line, so it prints a plain line at each 10% step and at
// least every `plain_interval` seconds instead. `quiet` silences it completely.
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace dgm::tools {

enum class ProgressMode {
  Auto,   // Tty when writing to std::cerr and stderr is a terminal (isatty(2)), else Plain
  Tty,    // redraw one line with '\r'
  Plain,  // one line per 10% (and every plain_interval seconds)
};

// Declared outside ProgressBar because a nested struct with default member values cannot be a
// default argument (`= {}`) of its enclosing class's constructor.
struct ProgressOptions {
  std::string desc;                  // shown before the bar, e.g. "epoch 3"
  std::string unit = "it";           // "37.21it/s"
  bool quiet = false;                // print nothing at all
  ProgressMode mode = ProgressMode::Auto;
  std::ostream* out = nullptr;       // nullptr = std::cerr; tests pass a std::ostringstream
  double tty_interval = 0.1;         // seconds between redraws on a terminal
  double plain_interval = 30;        // seconds between plain lines, besides every 10%
  int width = 0;                     // characters per line on a terminal; 0 = its width (or 80)
  std::function<double()> clock;     // seconds, any origin; empty = std::chrono::steady_clock
};

class ProgressBar {
 public:
  using Mode = ProgressMode;
  using Options = ProgressOptions;

  // total <= 0 means unknown: the line then shows the count and rate, without bar or ETA.
  explicit ProgressBar(int64_t total, Options options = {});
  ProgressBar(int64_t total, const std::string& desc, bool quiet = false);
  ~ProgressBar();  // calls finish()
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(int64_t n = 1);
  // Text after the rate, e.g. "loss=0.1234". The key/value form keeps one entry per key, in order.
  void set_postfix(const std::string& text);
  void set_postfix(const std::string& key, double value);
  // Draws the final state and ends the line. Later calls do nothing.
  void finish();

  int64_t count() const { return count_; }
  int64_t total() const { return total_; }
  // The status line for the current state, without '\r' or '\n'. `bar_width` in characters.
  std::string line(int bar_width) const;

  // "00:07", "12:34", "1:02:03".
  static std::string format_duration(double seconds);

 private:
  double now() const;
  void draw(bool final_draw);
  std::ostream& out() const;
  int terminal_width() const;

  int64_t total_;
  Options opt_;
  bool tty_ = false;
  bool finished_ = false;
  int64_t count_ = 0;
  double start_ = 0, last_draw_ = 0;
  int64_t last_drawn_count_ = -1;
  int last_decile_ = 0;
  size_t last_length_ = 0;  // of the previous terminal line, to blank out what a shorter line leaves
  std::string postfix_text_;
  std::vector<std::pair<std::string, std::string>> postfix_;
};

}  // namespace dgm::tools
