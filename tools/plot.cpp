// SVG plotting; see plot.h for the API. The drawing follows matplotlib's defaults where a reader
// expects them: tab10 colours, 5% margins around the data, bars standing on y = 0, ticks by the
// 1-2-5 rule, powers of ten on log axes, a legend in the emptiest corner, viridis for heatmaps.
#include <dgm/tools/plot.h>

#include <algorithm>
#include <cstdio>
#include <tuple>
#include <utility>

#include <dgm/tools/files.h>
#include <dgm/tensor/errors.h>

namespace dgm::tools {

namespace {

constexpr const char* kColorCycle[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr double kTickFont = 11, kLabelFont = 12.5, kTitleFont = 14, kLegendFont = 11;
constexpr double kTickLength = 4;

// A coordinate for SVG: 2 decimals (1/100 px is finer than any screen), no trailing zeros.
// Never prints nan/inf: a non-finite value here is a bug upstream, drawn at 0 rather than
// making the whole file invalid.
std::string num(double v) {
  if (!std::isfinite(v)) v = 0;
  v = std::clamp(v, -1e6, 1e6);  // far-off points are clipped anyway
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

// Rough width of a text in px: DejaVu Sans averages ~0.6 em per character. Counts UTF-8 code
// points, not bytes, so "σ" is one character.
double text_width(const std::string& s, double font_size) {
  size_t chars = 0;
  for (unsigned char c : s) chars += (c & 0xC0) != 0x80;
  return static_cast<double>(chars) * font_size * 0.6;
}

// Viridis colour map, sampled at 9 evenly spaced points and interpolated linearly in between.
constexpr uint8_t kViridis[9][3] = {{68, 1, 84},    {71, 44, 122},  {59, 81, 139},   {44, 113, 142}, {33, 144, 141},
                                    {39, 173, 129}, {92, 200, 99},  {170, 220, 50}, {253, 231, 37}};

std::string rgb(double r, double g, double b) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(std::lround(r)), int(std::lround(g)), int(std::lround(b)));
  return buf;
}

std::string viridis(double t) {
  t = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * 8;
  int i = std::min(static_cast<int>(t), 7);
  double f = t - i;
  const uint8_t* a = kViridis[i];
  const uint8_t* b = kViridis[i + 1];
  return rgb(a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2]));
}

// Maps data values to pixels along one axis, linearly or in log10.
struct Scale {
  double lo = 0, hi = 1;  // data limits
  bool log = false;
  double p0 = 0, p1 = 1;  // pixels of lo and hi (p1 < p0 for the y axis: SVG's y grows downward)

  bool valid(double v) const { return std::isfinite(v) && (!log || v > 0); }
  double t(double v) const { return log ? std::log10(v) : v; }
  double operator()(double v) const { return p0 + (t(v) - t(lo)) / (t(hi) - t(lo)) * (p1 - p0); }
};

// Limits for one axis: the data's range plus a 5% margin on each side (in log space for log axes).
// Bars and steps stand on 0, so a range starting at exactly 0 keeps 0 as its edge, like matplotlib.
std::pair<double, double> auto_limits(double lo, double hi, bool log, bool sticky_zero, bool exact) {
  if (lo > hi) return log ? std::pair{1.0, 10.0} : std::pair{0.0, 1.0};  // nothing to show
  if (log) {
    double a = std::log10(lo), b = std::log10(hi);
    if (a == b) a -= 0.5, b += 0.5;
    double m = exact ? 0 : 0.05 * (b - a);
    return {std::pow(10.0, a - m), std::pow(10.0, b + m)};
  }
  if (lo == hi) {
    double d = lo == 0 ? 1 : 0.1 * std::fabs(lo);
    return {lo - d, hi + d};
  }
  double m = exact ? 0 : 0.05 * (hi - lo);
  double new_lo = (sticky_zero && lo == 0) ? 0 : lo - m;
  double new_hi = (sticky_zero && hi == 0) ? 0 : hi + m;
  return {new_lo, new_hi};
}

struct Tick {
  double value;
  std::string label;     // "" = minor tick, no label
  std::string exponent;  // log axes: label "10" with this superscript
};

std::string plain_label(double v, double step) {
  if (v == 0) return "0";
  char buf[32];
  double biggest = std::max(std::fabs(v), step);
  if (biggest >= 1e9 || step < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

std::vector<Tick> linear_ticks(double lo, double hi, int target) {
  std::vector<Tick> ticks;
  std::vector<double> values = nice_ticks(lo, hi, target);
  double step = values.size() >= 2 ? values[1] - values[0] : std::fabs(hi - lo);
  for (double v : values) ticks.push_back({v, plain_label(v, step), ""});
  return ticks;
}

// Log axes: a labelled tick at each power of ten and unlabelled minor ticks at 2..9 times it.
// When the range spans less than about two decades there are too few powers of ten to read
// values from, so 1-2-5 multiples get plain labels instead.
std::vector<Tick> log_ticks(double lo, double hi) {
  std::vector<Tick> ticks;
  const double eps = 1e-9;
  int e0 = static_cast<int>(std::floor(std::log10(lo) + eps)), e1 = static_cast<int>(std::ceil(std::log10(hi) - eps));
  int powers_inside = 0;
  for (int e = e0; e <= e1; ++e) powers_inside += std::pow(10.0, e) >= lo * (1 - eps) && std::pow(10.0, e) <= hi * (1 + eps);
  const bool few_decades = powers_inside < 2;
  const int label_every = std::max(1, (e1 - e0 + 7) / 8);  // at most ~8 labelled decades
  for (int e = e0; e <= e1; ++e) {
    for (int m = 1; m <= 9; ++m) {
      double v = m * std::pow(10.0, e);
      if (v < lo * (1 - eps) || v > hi * (1 + eps)) continue;
      if (m == 1 && !few_decades) {
        ticks.push_back({v, e % label_every == 0 ? "10" : "", e % label_every == 0 ? std::to_string(e) : ""});
      } else if (few_decades && (m == 1 || m == 2 || m == 5)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        ticks.push_back({v, buf, ""});
      } else if (e1 - e0 <= 8) {
        ticks.push_back({v, "", ""});
      }
    }
  }
  return ticks;
}

std::vector<Tick> make_ticks(const Scale& s, int target) {
  return s.log ? log_ticks(s.lo, s.hi) : linear_ticks(s.lo, s.hi, target);
}

double widest_label(const std::vector<Tick>& ticks) {
  double w = 0;
  for (const Tick& t : ticks) w = std::max(w, text_width(t.label + t.exponent, kTickFont));
  return w;
}

// <text> for a tick label; powers of ten get a raised exponent.
std::string tick_text(const Tick& t, double x, double y, const char* anchor) {
  std::string s = "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\">" + xml_escape(t.label);
  if (!t.exponent.empty())
    s += "<tspan dy=\"-5\" font-size=\"" + num(kTickFont * 0.75) + "\">" + xml_escape(t.exponent) + "</tspan>";
  return s + "</text>\n";
}

std::string stroke_attrs(const std::string& color, const Style& st) {
  std::string s = " fill=\"none\" stroke=\"" + xml_escape(color) + "\" stroke-width=\"" + num(st.line_width) + "\"";
  if (st.alpha < 1) s += " stroke-opacity=\"" + num(st.alpha) + "\"";
  if (st.dashed) s += " stroke-dasharray=\"" + num(4 * st.line_width) + "," + num(2.5 * st.line_width) + "\"";
  return s;
}

std::string marker_svg(Marker m, double x, double y, double r, const std::string& color, double alpha) {
  std::string opacity = alpha < 1 ? " fill-opacity=\"" + num(alpha) + "\"" : "";
  std::string c = xml_escape(color);
  switch (m) {
    case Marker::Circle:
      return "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"" + num(r) + "\" fill=\"" + c + "\"" + opacity + "/>\n";
    case Marker::Square:
      return "<rect x=\"" + num(x - r) + "\" y=\"" + num(y - r) + "\" width=\"" + num(2 * r) + "\" height=\"" +
             num(2 * r) + "\" fill=\"" + c + "\"" + opacity + "/>\n";
    case Marker::Cross:
      return "<path d=\"M" + num(x - r) + "," + num(y - r) + "L" + num(x + r) + "," + num(y + r) + "M" + num(x - r) +
             "," + num(y + r) + "L" + num(x + r) + "," + num(y - r) + "\" fill=\"none\" stroke=\"" + c + "\" stroke-width=\"1.5\"" +
             (alpha < 1 ? " stroke-opacity=\"" + num(alpha) + "\"" : "") + "/>\n";
    case Marker::None: break;
  }
  return "";
}

void check_same_size(const char* op, const std::vector<double>& x, const std::vector<double>& y) {
  if (x.size() != y.size())
    throw ValueError(cat(op, ": x has ", x.size(), " values but y has ", y.size(), "; they must match"));
}

void check_style(const char* op, const Style& st) {
  if (!(st.alpha >= 0 && st.alpha <= 1)) throw ValueError(cat(op, ": alpha ", st.alpha, " is outside [0, 1]"));
  if (!(st.line_width >= 0) || !(st.marker_size >= 0))
    throw ValueError(cat(op, ": line_width ", st.line_width, " and marker_size ", st.marker_size, " must be >= 0"));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Helpers with a public face

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(hi > lo)) return {};
  const double raw = (hi - lo) / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * magnitude >= raw * (1 - 1e-9)) {
      step = m * magnitude;
      break;
    }
  }
  std::vector<double> ticks;
  for (double k = std::ceil(lo / step - 1e-9); k <= std::floor(hi / step + 1e-9); ++k) {
    double v = k * step;
    ticks.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);  // no "-0" or 1e-17 from rounding
  }
  return ticks;
}

LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  check_same_size("fit_line", x, y);
  double n = 0, sx = 0, sy = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) n += 1, sx += x[i], sy += y[i];
  if (n < 2) throw ValueError(cat("fit_line: ", n, " finite points; need at least 2"));
  const double mx = sx / n, my = sy / n;
  double sxx = 0, sxy = 0;  // centred sums: numerically stable for large x such as step counts
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) continue;
    sxx += (x[i] - mx) * (x[i] - mx);
    sxy += (x[i] - mx) * (y[i] - my);
  }
  if (sxx == 0) throw ValueError("fit_line: all x values are equal; the slope is undefined");
  LineFit fit;
  fit.slope = sxy / sxx;
  fit.intercept = my - fit.slope * mx;
  return fit;
}

LineFit fit_loglog(const std::vector<double>& x, const std::vector<double>& y) {
  check_same_size("fit_loglog", x, y);
  std::vector<double> lx, ly;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i] > 0 && y[i] > 0 && std::isfinite(x[i]) && std::isfinite(y[i])) {
      lx.push_back(std::log10(x[i]));
      ly.push_back(std::log10(y[i]));
    }
  }
  return fit_line(lx, ly);
}

// ---------------------------------------------------------------------------------------------
// Axes: collecting series

Axes& Axes::add(Series series) {
  if (series.style.color.empty()) series.style.color = kColorCycle[next_color_++ % 10];
  series_.push_back(std::move(series));
  return *this;
}

Axes& Axes::plot(const std::vector<double>& x, const std::vector<double>& y, const std::string& label, Style style) {
  check_same_size("plot", x, y);
  check_style("plot", style);
  return add({Series::Kind::Line, x, y, 0, label, style});
}

Axes& Axes::plot_indexed(const std::vector<double>& y, const std::string& label, Style style) {
  std::vector<double> x(y.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i);
  return plot(x, y, label, std::move(style));
}

Axes& Axes::scatter(const std::vector<double>& x, const std::vector<double>& y, const std::string& label, Style style) {
  check_same_size("scatter", x, y);
  check_style("scatter", style);
  style.line = false;
  if (style.marker == Marker::None) style.marker = Marker::Circle;
  return add({Series::Kind::Line, x, y, 0, label, style});
}

Axes& Axes::bar(const std::vector<double>& centers, const std::vector<double>& heights, const std::string& label,
                Style style, double width) {
  check_same_size("bar", centers, heights);
  check_style("bar", style);
  if (width < 0 || !std::isfinite(width)) throw ValueError(cat("bar: width ", width, " must be >= 0 (0 = automatic)"));
  if (width == 0) {
    std::vector<double> sorted = centers;
    std::sort(sorted.begin(), sorted.end());
    double gap = INFINITY;
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i] > sorted[i - 1]) gap = std::min(gap, sorted[i] - sorted[i - 1]);
    width = 0.8 * (std::isfinite(gap) ? gap : 1.0);
  }
  return add({Series::Kind::Bars, centers, heights, width, label, style});
}

Axes& Axes::hist(const std::vector<double>& values, int bins, const std::string& label, Style style, bool density,
                 double lo, double hi) {
  if (bins < 1) throw ValueError(cat("hist: bins = ", bins, "; need at least 1"));
  if (!(lo <= hi)) throw ValueError(cat("hist: range [", lo, ", ", hi, "] is empty"));
  if (lo == hi) {  // the data's own range
    lo = INFINITY, hi = -INFINITY;
    for (double v : values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (lo > hi) lo = 0, hi = 1;
    if (lo == hi) lo -= 0.5, hi += 0.5;
  }
  const double bin_width = (hi - lo) / bins;
  std::vector<double> counts(bins, 0.0);
  double total = 0;
  for (double v : values) {
    if (!(v >= lo && v <= hi)) continue;  // outside the range (or NaN): not counted, as numpy does
    int b = std::min(static_cast<int>((v - lo) / bin_width), bins - 1);  // hi itself goes in the last bin
    counts[b] += 1;
    total += 1;
  }
  std::vector<double> centers(bins);
  for (int b = 0; b < bins; ++b) {
    centers[b] = lo + (b + 0.5) * bin_width;
    if (density && total > 0) counts[b] /= total * bin_width;
  }
  return bar(centers, counts, label, std::move(style), bin_width);
}

Axes& Axes::step(const std::vector<double>& edges, const std::vector<double>& values, const std::string& label,
                 Style style) {
  if (edges.size() != values.size() + 1)
    throw ValueError(cat("step: ", values.size(), " values need ", values.size() + 1, " edges, got ", edges.size()));
  check_style("step", style);
  return add({Series::Kind::Step, edges, values, 0, label, style});
}

Axes& Axes::axhline(double y, const std::string& label, Style style) {
  if (!std::isfinite(y)) throw ValueError(cat("axhline: y = ", y, " is not finite"));
  check_style("axhline", style);
  return add({Series::Kind::HLine, {}, {y}, 0, label, style});
}

Axes& Axes::heatmap(const Heatmap& map) {
  if (!heatmap_.empty()) throw ValueError("heatmap: this Axes already has a heatmap; use another subplot");
  if (map.nx < 1 || map.ny < 1 || static_cast<int64_t>(map.values.size()) != map.nx * map.ny)
    throw ValueError(cat("heatmap: ", map.values.size(), " values for a grid of nx=", map.nx, " by ny=", map.ny,
                         "; need nx * ny >= 1"));
  if (!(map.x_max > map.x_min) || !(map.y_max > map.y_min))
    throw ValueError(cat("heatmap: extent x [", map.x_min, ", ", map.x_max, "], y [", map.y_min, ", ", map.y_max,
                         "] must have max > min"));
  heatmap_.push_back(map);
  return *this;
}

Axes& Axes::title(const std::string& text) { title_ = text; return *this; }
Axes& Axes::xlabel(const std::string& text) { xlabel_ = text; return *this; }
Axes& Axes::ylabel(const std::string& text) { ylabel_ = text; return *this; }
Axes& Axes::log_x(bool on) { log_x_ = on; return *this; }
Axes& Axes::log_y(bool on) { log_y_ = on; return *this; }
Axes& Axes::legend(LegendLoc loc) { legend_ = loc; return *this; }
Axes& Axes::grid(bool on) { grid_ = on; return *this; }

Axes& Axes::xlim(double lo, double hi) {
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi)) throw ValueError(cat("xlim: need lo < hi, got ", lo, ", ", hi));
  xlim_[0] = lo, xlim_[1] = hi;
  return *this;
}

Axes& Axes::ylim(double lo, double hi) {
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi)) throw ValueError(cat("ylim: need lo < hi, got ", lo, ", ", hi));
  ylim_[0] = lo, ylim_[1] = hi;
  return *this;
}

// ---------------------------------------------------------------------------------------------
// Axes: drawing

void Axes::render(std::string& out, double X, double Y, double W, double H, int id) const {
  // ---- 1. data limits ----
  Scale sx, sy;
  sx.log = log_x_, sy.log = log_y_;
  double x_lo = INFINITY, x_hi = -INFINITY, y_lo = INFINITY, y_hi = -INFINITY;
  auto take_x = [&](double v) { if (sx.valid(v)) x_lo = std::min(x_lo, v), x_hi = std::max(x_hi, v); };
  auto take_y = [&](double v) { if (sy.valid(v)) y_lo = std::min(y_lo, v), y_hi = std::max(y_hi, v); };
  bool stands_on_zero = false;
  for (const Series& s : series_) {
    switch (s.kind) {
      case Series::Kind::Line:
        for (size_t i = 0; i < s.x.size(); ++i)
          if (sx.valid(s.x[i]) && sy.valid(s.y[i])) take_x(s.x[i]), take_y(s.y[i]);
        break;
      case Series::Kind::Bars:
        for (size_t i = 0; i < s.x.size(); ++i)
          if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
            take_x(s.x[i] - s.bar_width / 2), take_x(s.x[i] + s.bar_width / 2), take_y(s.y[i]);
        stands_on_zero = true;
        break;
      case Series::Kind::Step:
        for (double e : s.x) take_x(e);
        for (double v : s.y) take_y(v);
        stands_on_zero = true;
        break;
      case Series::Kind::HLine: take_y(s.y[0]); break;
    }
  }
  if (stands_on_zero && !sy.log) take_y(0.0);
  bool exact = false;
  if (!heatmap_.empty()) {  // a heatmap fills the plot exactly, as imshow does
    const Heatmap& m = heatmap_[0];
    take_x(m.x_min), take_x(m.x_max), take_y(m.y_min), take_y(m.y_max);
    exact = series_.empty();
  }
  std::tie(sx.lo, sx.hi) = std::isfinite(xlim_[0]) ? std::pair{xlim_[0], xlim_[1]} : auto_limits(x_lo, x_hi, sx.log, false, exact);
  std::tie(sy.lo, sy.hi) =
      std::isfinite(ylim_[0]) ? std::pair{ylim_[0], ylim_[1]} : auto_limits(y_lo, y_hi, sy.log, stands_on_zero, exact);
  if (sx.log && sx.lo <= 0) throw ValueError(cat("xlim: lower limit ", sx.lo, " on a log axis must be > 0"));
  if (sy.log && sy.lo <= 0) throw ValueError(cat("ylim: lower limit ", sy.lo, " on a log axis must be > 0"));

  // ---- 2. layout: margins depend on the widest tick label ----
  const bool has_colorbar = !heatmap_.empty() && heatmap_[0].colorbar;
  const double top = Y + (title_.empty() ? 14 : 34);
  const double bottom = Y + H - (xlabel_.empty() ? 26 : 46);
  const double plot_h = std::max(bottom - top, 20.0);
  sy.p0 = top + plot_h, sy.p1 = top;
  std::vector<Tick> y_ticks = make_ticks(sy, std::clamp(static_cast<int>(plot_h / 55), 3, 8));
  const double left = X + 10 + (ylabel_.empty() ? 0 : 20) + widest_label(y_ticks) + kTickLength + 4;
  const double right = X + W - (has_colorbar ? 88 + (heatmap_[0].colorbar_label.empty() ? 0 : 18) : 18);
  const double plot_w = std::max(right - left, 20.0);
  sx.p0 = left, sx.p1 = left + plot_w;
  std::vector<Tick> x_ticks;
  for (int target = std::clamp(static_cast<int>(plot_w / 80), 3, 9);; --target) {  // fewer ticks until labels fit
    x_ticks = make_ticks(sx, target);
    int labelled = 0;
    for (const Tick& t : x_ticks) labelled += !t.label.empty();
    if (target <= 2 || (widest_label(x_ticks) + 10) * labelled <= plot_w) break;
  }

  std::string clip = "dgm-clip-" + std::to_string(id);
  out += "<g class=\"axes\">\n<clipPath id=\"" + clip + "\"><rect x=\"" + num(left) + "\" y=\"" + num(top) +
         "\" width=\"" + num(plot_w) + "\" height=\"" + num(plot_h) + "\"/></clipPath>\n";

  // ---- 3. grid lines, behind everything ----
  if (grid_) {
    out += "<g stroke=\"#b0b0b0\" stroke-opacity=\"0.35\" stroke-width=\"0.8\">\n";
    for (const Tick& t : x_ticks)
      if (!t.label.empty())
        out += "<line x1=\"" + num(sx(t.value)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(sx(t.value)) + "\" y2=\"" +
               num(top + plot_h) + "\"/>\n";
    for (const Tick& t : y_ticks)
      if (!t.label.empty())
        out += "<line x1=\"" + num(left) + "\" y1=\"" + num(sy(t.value)) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" +
               num(sy(t.value)) + "\"/>\n";
    out += "</g>\n";
  }

  // ---- 4. data, clipped to the plot area ----
  out += "<g clip-path=\"url(#" + clip + ")\">\n";
  double v_min = 0, v_max = 1;
  if (!heatmap_.empty()) {
    const Heatmap& m = heatmap_[0];
    v_min = m.v_min, v_max = m.v_max;
    double lo = INFINITY, hi = -INFINITY;
    for (double v : m.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!std::isfinite(v_min)) v_min = lo > hi ? 0 : lo;
    if (!std::isfinite(v_max)) v_max = lo > hi ? 1 : hi;
    if (!(v_max > v_min)) v_max = v_min + 1;  // constant map: one colour, a valid colour bar
    const double dx = (m.x_max - m.x_min) / m.nx, dy = (m.y_max - m.y_min) / m.ny;
    out += "<g shape-rendering=\"crispEdges\">\n";  // no anti-aliased seams between cells
    for (int64_t iy = 0; iy < m.ny; ++iy) {
      const double y0 = sy(m.y_min + (iy + 1) * dy), y1 = sy(m.y_min + iy * dy);
      // Neighbouring cells of the same colour become one rect: much smaller files for densities
      // that are flat over large areas. The 0.5 px overlap closes gaps from rounding.
      for (int64_t ix = 0; ix < m.nx;) {
        const double v = m.values[iy * m.nx + ix];
        if (!std::isfinite(v)) { ++ix; continue; }
        const std::string color = viridis((v - v_min) / (v_max - v_min));
        int64_t end = ix + 1;
        while (end < m.nx && std::isfinite(m.values[iy * m.nx + end]) &&
               viridis((m.values[iy * m.nx + end] - v_min) / (v_max - v_min)) == color)
          ++end;
        const double x0 = sx(m.x_min + ix * dx), x1 = sx(m.x_min + end * dx);
        out += "<rect x=\"" + num(x0) + "\" y=\"" + num(y0) + "\" width=\"" + num(x1 - x0 + 0.5) + "\" height=\"" +
               num(y1 - y0 + 0.5) + "\" fill=\"" + color + "\"/>\n";
        ix = end;
      }
    }
    out += "</g>\n";
  }

  std::vector<std::pair<double, double>> drawn;  // pixel positions of data, to place the legend
  for (const Series& s : series_) {
    const Style& st = s.style;
    if (s.kind == Series::Kind::Bars) {
      const double base = sy.log ? sy.lo : 0.0;
      std::string fill = " fill=\"" + xml_escape(st.color) + "\"" + (st.alpha < 1 ? " fill-opacity=\"" + num(st.alpha) + "\"" : "");
      out += "<g" + fill + ">\n";
      for (size_t i = 0; i < s.x.size(); ++i) {
        const double a = s.x[i] - s.bar_width / 2, b = s.x[i] + s.bar_width / 2;
        if (!sx.valid(a) || !sx.valid(b) || !std::isfinite(s.y[i]) || (sy.log && s.y[i] <= 0)) continue;
        const double px0 = sx(a), px1 = sx(b), py_top = sy(std::max(s.y[i], base)), py_bottom = sy(std::min(s.y[i], base));
        out += "<rect x=\"" + num(px0) + "\" y=\"" + num(py_top) + "\" width=\"" + num(px1 - px0) + "\" height=\"" +
               num(py_bottom - py_top) + "\"/>\n";
        drawn.push_back({(px0 + px1) / 2, sy(s.y[i])});
      }
      out += "</g>\n";
      continue;
    }
    if (s.kind == Series::Kind::HLine) {
      out += "<line x1=\"" + num(left) + "\" y1=\"" + num(sy(s.y[0])) + "\" x2=\"" + num(left + plot_w) + "\" y2=\"" +
             num(sy(s.y[0])) + "\"" + stroke_attrs(st.color, st) + "/>\n";
      continue;
    }
    // Line or Step: a list of data points, broken where a value cannot be drawn.
    std::vector<std::pair<double, double>> pts;
    if (s.kind == Series::Kind::Line) {
      for (size_t i = 0; i < s.x.size(); ++i) pts.push_back({s.x[i], s.y[i]});
    } else {
      for (size_t i = 0; i < s.y.size(); ++i) pts.push_back({s.x[i], s.y[i]}), pts.push_back({s.x[i + 1], s.y[i]});
    }
    if (st.line) {
      std::string points;
      auto flush = [&] {
        if (points.find(' ') != std::string::npos)  // at least two points
          out += "<polyline points=\"" + points + "\"" + stroke_attrs(st.color, st) + " stroke-linejoin=\"round\"/>\n";
        points.clear();
      };
      for (const auto& [x, y] : pts) {
        if (!sx.valid(x) || !sy.valid(y)) { flush(); continue; }
        points += (points.empty() ? "" : " ") + num(sx(x)) + "," + num(sy(y));
      }
      flush();
    }
    for (const auto& [x, y] : pts) {
      if (!sx.valid(x) || !sy.valid(y)) continue;
      drawn.push_back({sx(x), sy(y)});
      if (st.marker != Marker::None) out += marker_svg(st.marker, sx(x), sy(y), st.marker_size, st.color, st.alpha);
    }
  }
  out += "</g>\n";

  // ---- 5. frame, ticks, tick labels ----
  out += "<rect x=\"" + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(plot_w) + "\" height=\"" + num(plot_h) +
         "\" fill=\"none\" stroke=\"black\" stroke-width=\"0.8\"/>\n";
  out += "<g stroke=\"black\" stroke-width=\"0.8\">\n";
  for (const Tick& t : x_ticks) {
    const double len = t.label.empty() ? kTickLength / 2 : kTickLength;
    out += "<line x1=\"" + num(sx(t.value)) + "\" y1=\"" + num(top + plot_h) + "\" x2=\"" + num(sx(t.value)) +
           "\" y2=\"" + num(top + plot_h + len) + "\"/>\n";
  }
  for (const Tick& t : y_ticks) {
    const double len = t.label.empty() ? kTickLength / 2 : kTickLength;
    out += "<line x1=\"" + num(left - len) + "\" y1=\"" + num(sy(t.value)) + "\" x2=\"" + num(left) + "\" y2=\"" +
           num(sy(t.value)) + "\"/>\n";
  }
  out += "</g>\n<g font-size=\"" + num(kTickFont) + "\" fill=\"#222\">\n";
  for (const Tick& t : x_ticks)
    if (!t.label.empty()) out += tick_text(t, sx(t.value), top + plot_h + kTickLength + kTickFont + 2, "middle");
  for (const Tick& t : y_ticks)
    if (!t.label.empty()) out += tick_text(t, left - kTickLength - 3, sy(t.value) + kTickFont * 0.35, "end");
  out += "</g>\n";

  // ---- 6. title and axis labels ----
  if (!title_.empty())
    out += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(top - 10) + "\" font-size=\"" + num(kTitleFont) +
           "\" text-anchor=\"middle\">" + xml_escape(title_) + "</text>\n";
  if (!xlabel_.empty())
    out += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(top + plot_h + kTickLength + kTickFont + 22) +
           "\" font-size=\"" + num(kLabelFont) + "\" text-anchor=\"middle\">" + xml_escape(xlabel_) + "</text>\n";
  if (!ylabel_.empty()) {
    const double lx = X + 10 + kLabelFont, ly = top + plot_h / 2;
    out += "<text x=\"" + num(lx) + "\" y=\"" + num(ly) + "\" font-size=\"" + num(kLabelFont) +
           "\" text-anchor=\"middle\" transform=\"rotate(-90 " + num(lx) + " " + num(ly) + ")\">" + xml_escape(ylabel_) +
           "</text>\n";
  }

  // ---- 7. colour bar ----
  if (has_colorbar) {
    const Heatmap& m = heatmap_[0];
    const double bx = left + plot_w + 14, bw = 14;
    const std::string grad = "dgm-cbar-" + std::to_string(id);
    out += "<linearGradient id=\"" + grad + "\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n";
    for (int i = 0; i <= 8; ++i) out += "<stop offset=\"" + num(i / 8.0) + "\" stop-color=\"" + viridis(i / 8.0) + "\"/>\n";
    out += "</linearGradient>\n<rect x=\"" + num(bx) + "\" y=\"" + num(top) + "\" width=\"" + num(bw) + "\" height=\"" +
           num(plot_h) + "\" fill=\"url(#" + grad + ")\" stroke=\"black\" stroke-width=\"0.8\"/>\n";
    Scale sc;
    sc.lo = v_min, sc.hi = v_max, sc.p0 = top + plot_h, sc.p1 = top;
    std::vector<Tick> c_ticks = linear_ticks(v_min, v_max, std::clamp(static_cast<int>(plot_h / 55), 3, 8));
    out += "<g font-size=\"" + num(kTickFont) + "\" fill=\"#222\">\n";
    for (const Tick& t : c_ticks) {
      out += "<line x1=\"" + num(bx + bw) + "\" y1=\"" + num(sc(t.value)) + "\" x2=\"" + num(bx + bw + kTickLength) +
             "\" y2=\"" + num(sc(t.value)) + "\" stroke=\"black\" stroke-width=\"0.8\"/>\n";
      out += tick_text(t, bx + bw + kTickLength + 3, sc(t.value) + kTickFont * 0.35, "start");
    }
    out += "</g>\n";
    if (!m.colorbar_label.empty()) {
      const double lx = bx + bw + kTickLength + 6 + widest_label(c_ticks) + kLabelFont, ly = top + plot_h / 2;
      out += "<text x=\"" + num(lx) + "\" y=\"" + num(ly) + "\" font-size=\"" + num(kLabelFont) +
             "\" text-anchor=\"middle\" transform=\"rotate(-90 " + num(lx) + " " + num(ly) + ")\">" +
             xml_escape(m.colorbar_label) + "</text>\n";
    }
  }

  // ---- 8. legend, in the corner that covers the fewest data points ----
  std::vector<const Series*> entries;
  for (const Series& s : series_)
    if (!s.label.empty()) entries.push_back(&s);
  if (!entries.empty() && legend_ != LegendLoc::Hidden) {
    const double row = kLegendFont + 6, swatch = 24;
    double label_w = 0;
    for (const Series* s : entries) label_w = std::max(label_w, text_width(s->label, kLegendFont));
    const double box_w = 8 + swatch + 6 + label_w + 8, box_h = entries.size() * row + 8, inset = 8;
    auto corner = [&](LegendLoc loc) {
      bool right_side = loc == LegendLoc::UpperRight || loc == LegendLoc::LowerRight;
      bool upper = loc == LegendLoc::UpperRight || loc == LegendLoc::UpperLeft;
      return std::pair{right_side ? left + plot_w - inset - box_w : left + inset,
                       upper ? top + inset : top + plot_h - inset - box_h};
    };
    LegendLoc loc = legend_;
    if (loc == LegendLoc::Best) {
      size_t fewest = SIZE_MAX;
      for (LegendLoc c : {LegendLoc::UpperRight, LegendLoc::UpperLeft, LegendLoc::LowerLeft, LegendLoc::LowerRight}) {
        auto [lx, ly] = corner(c);
        size_t covered = 0;
        for (const auto& [px, py] : drawn) covered += px >= lx && px <= lx + box_w && py >= ly && py <= ly + box_h;
        if (covered < fewest) fewest = covered, loc = c;
      }
    }
    auto [lx, ly] = corner(loc);
    out += "<g class=\"legend\">\n<rect x=\"" + num(lx) + "\" y=\"" + num(ly) + "\" width=\"" + num(box_w) +
           "\" height=\"" + num(box_h) + "\" rx=\"3\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#cccccc\"/>\n";
    for (size_t i = 0; i < entries.size(); ++i) {
      const Series& s = *entries[i];
      const double cy = ly + 4 + (i + 0.5) * row, sx0 = lx + 8;
      if (s.kind == Series::Kind::Bars) {
        out += "<rect x=\"" + num(sx0 + 5) + "\" y=\"" + num(cy - 5) + "\" width=\"14\" height=\"10\" fill=\"" +
               xml_escape(s.style.color) + "\"" + (s.style.alpha < 1 ? " fill-opacity=\"" + num(s.style.alpha) + "\"" : "") +
               "/>\n";
      } else {
        if (s.style.line)
          out += "<line x1=\"" + num(sx0) + "\" y1=\"" + num(cy) + "\" x2=\"" + num(sx0 + swatch) + "\" y2=\"" + num(cy) +
                 "\"" + stroke_attrs(s.style.color, s.style) + "/>\n";
        if (s.style.marker != Marker::None)
          out += marker_svg(s.style.marker, sx0 + swatch / 2, cy, std::max(s.style.marker_size, 3.0), s.style.color,
                            std::max(s.style.alpha, 0.6));
      }
      out += "<text x=\"" + num(sx0 + swatch + 6) + "\" y=\"" + num(cy + kLegendFont * 0.35) + "\" font-size=\"" +
             num(kLegendFont) + "\">" + xml_escape(s.label) + "</text>\n";
    }
    out += "</g>\n";
  }
  out += "</g>\n";
}

// ---------------------------------------------------------------------------------------------
// Figure

Figure::Figure(int rows, int cols, double width, double height) : rows_(rows), cols_(cols) {
  if (rows < 1 || cols < 1 || rows > 20 || cols > 20)
    throw ValueError(cat("Figure: grid of ", rows, "x", cols, " subplots; rows and cols must be in 1..20"));
  if (width < 0 || height < 0 || !std::isfinite(width) || !std::isfinite(height))
    throw ValueError(cat("Figure: size ", width, "x", height, " px must be >= 0 (0 = automatic)"));
  width_ = width > 0 ? width : 600.0 * cols;
  height_ = height > 0 ? height : 420.0 * rows;
  axes_.resize(static_cast<size_t>(rows * cols));
}

Axes& Figure::axes(int row, int col) {
  if (row < 0 || row >= rows_ || col < 0 || col >= cols_)
    throw ValueError(cat("Figure::axes(", row, ", ", col, "): outside the ", rows_, "x", cols_, " grid of subplots"));
  return axes_[static_cast<size_t>(row * cols_ + col)];
}

Figure& Figure::suptitle(const std::string& text) {
  suptitle_ = text;
  return *this;
}

std::string Figure::svg() const {
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width_) + "\" height=\"" + num(height_) +
         "\" viewBox=\"0 0 " + num(width_) + " " + num(height_) +
         "\" font-family=\"DejaVu Sans, Verdana, Arial, sans-serif\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  double top = 0;
  if (!suptitle_.empty()) {
    out += "<text x=\"" + num(width_ / 2) + "\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">" +
           xml_escape(suptitle_) + "</text>\n";
    top = 32;
  }
  const double cell_w = width_ / cols_, cell_h = (height_ - top) / rows_;
  for (int r = 0; r < rows_; ++r)
    for (int c = 0; c < cols_; ++c)
      axes_[static_cast<size_t>(r * cols_ + c)].render(out, c * cell_w, top + r * cell_h, cell_w, cell_h, r * cols_ + c);
  out += "</svg>\n";
  return out;
}

void Figure::save(const std::string& path) const { tools::write_file_atomic(path, svg()); }

}  // namespace dgm::tools
