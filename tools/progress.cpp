// tqdm-style progress bar; see progress.h.
#include <dgm/tools/progress.h>

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>

namespace dgm::tools {

namespace {

// Eighths of a block, so the bar grows smoothly on a terminal: index k draws k/8 of a cell.
const char* const kPartialBlocks[8] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
const char* const kFullBlock = "█";

std::string format_number(double v, const char* format) {
  char buf[48];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Characters on screen, not bytes: the block characters are 3 bytes of UTF-8 each.
size_t display_length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

ProgressBar::ProgressBar(int64_t total, Options options) : total_(total), opt_(std::move(options)) {
  if (opt_.mode == Mode::Auto) {
    // Only stderr itself can be a terminal; an injected stream (a test, a log file) is plain.
    bool to_stderr = opt_.out == nullptr || opt_.out == &std::cerr;
    tty_ = to_stderr && isatty(STDERR_FILENO);
  } else {
    tty_ = opt_.mode == Mode::Tty;
  }
  start_ = last_draw_ = now();
  if (!opt_.quiet) draw(false);
}

ProgressBar::ProgressBar(int64_t total, const std::string& desc, bool quiet)
    : ProgressBar(total, [&] {
        Options opt;
        opt.desc = desc;
        opt.quiet = quiet;
        return opt;
      }()) {}

ProgressBar::~ProgressBar() {
  try {
    finish();
  } catch (...) {
    // A destructor must not throw; a failed last redraw of a progress bar is not worth a crash.
  }
}

double ProgressBar::now() const {
  if (opt_.clock) return opt_.clock();
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::ostream& ProgressBar::out() const { return opt_.out ? *opt_.out : std::cerr; }

int ProgressBar::terminal_width() const {
  if (opt_.width > 0) return opt_.width;
  winsize ws{};
  if (tty_ && ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

void ProgressBar::update(int64_t n) {
  count_ += n;
  if (opt_.quiet || finished_) return;
  const double t = now();
  if (tty_) {
    if (t - last_draw_ >= opt_.tty_interval || count_ == total_) draw(false);
    return;
  }
  // Plain mode: a line whenever a new 10% step is reached, or when plain_interval has passed.
  bool new_decile = false;
  if (total_ > 0) {
    int decile = static_cast<int>(std::min<int64_t>(count_, total_) * 10 / total_);
    if (decile > last_decile_) last_decile_ = decile, new_decile = true;
  }
  if (new_decile || t - last_draw_ >= opt_.plain_interval) draw(false);
}

void ProgressBar::set_postfix(const std::string& text) {
  postfix_.clear();
  postfix_text_ = text;
}

void ProgressBar::set_postfix(const std::string& key, double value) {
  postfix_text_.clear();
  std::string shown = format_number(value, "%.4g");
  for (auto& [k, v] : postfix_) {
    if (k == key) {
      v = shown;
      return;
    }
  }
  postfix_.push_back({key, shown});
}

void ProgressBar::finish() {
  if (finished_) return;
  finished_ = true;
  if (opt_.quiet) return;
  draw(true);
}

std::string ProgressBar::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  // Whole seconds, truncated like tqdm; the 1e-6 keeps 0.05 * 20 = 0.99999... from showing 00:00.
  const int64_t s = static_cast<int64_t>(seconds + 1e-6);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

std::string ProgressBar::line(int bar_width) const {
  const double elapsed = std::max(now() - start_, 0.0);
  const double rate = elapsed > 0 && count_ > 0 ? count_ / elapsed : 0;

  // "[00:12<00:15, 37.21it/s, loss=0.1234]": below 1 it/s, tqdm's "s/it" reads better.
  // (Appended piece by piece: `"[" + std::string` trips a false -Wrestrict warning in GCC 12 at -O3.)
  std::string stats = "[";
  stats += format_duration(elapsed);
  if (total_ > 0) {
    stats += '<';
    stats += rate > 0 ? format_duration(std::max<int64_t>(total_ - count_, 0) / rate) : "?";
  }
  if (rate == 0)
    stats += ", ?" + opt_.unit + "/s";
  else if (rate >= 1)
    stats += ", " + format_number(rate, "%.2f") + opt_.unit + "/s";
  else
    stats += ", " + format_number(1 / rate, "%.2f") + "s/" + opt_.unit;
  std::string postfix = postfix_text_;
  for (const auto& [k, v] : postfix_) postfix += (postfix.empty() ? "" : ", ") + k + "=" + v;
  if (!postfix.empty()) stats += ", " + postfix;
  stats += "]";

  const std::string prefix = opt_.desc.empty() ? "" : opt_.desc + ": ";
  if (total_ <= 0) return prefix + std::to_string(count_) + opt_.unit + " " + stats;

  const double fraction = std::clamp(static_cast<double>(count_) / total_, 0.0, 1.0);
  std::string bar;
  const int width = std::max(bar_width, 1);
  if (tty_) {
    const int eighths = static_cast<int>(fraction * width * 8);
    for (int i = 0; i < eighths / 8; ++i) bar += kFullBlock;
    bar += kPartialBlocks[eighths % 8];
    bar += std::string(static_cast<size_t>(width - eighths / 8 - (eighths % 8 ? 1 : 0)), ' ');
  } else {
    const int filled = static_cast<int>(fraction * width);  // plain ASCII: logs may not be UTF-8
    bar = std::string(static_cast<size_t>(filled), '#') + std::string(static_cast<size_t>(width - filled), '.');
  }
  const std::string percent = format_number(100.0 * count_ / total_, "%3.0f") + "%";
  return prefix + percent + "|" + bar + "| " + std::to_string(count_) + "/" + std::to_string(total_) + " " + stats;
}

void ProgressBar::draw(bool final_draw) {
  last_draw_ = now();
  if (!tty_) {
    // In a log, the closing line is worth printing only if it says something new.
    if (final_draw && count_ == last_drawn_count_) return;
    last_drawn_count_ = count_;
    out() << line(20) << '\n';
    out().flush();
    return;
  }
  // The bar takes whatever the terminal width leaves after the text (at least 10 characters).
  const std::string without_bar = line(1);
  const int bar_width = std::max(10, terminal_width() - static_cast<int>(display_length(without_bar)) - 1);
  std::string text = line(bar_width);
  const size_t length = display_length(text);
  if (length < last_length_) text += std::string(last_length_ - length, ' ');
  last_length_ = length;
  last_drawn_count_ = count_;
  out() << '\r' << text;
  if (final_draw) out() << '\n';
  out().flush();
}

}  // namespace dgm::tools
