// SVG plots in the spirit of matplotlib's defaults: a Figure holds a grid of Axes, each Axes holds
// series (lines, markers, bars, steps, scatter points, one heatmap) plus title, axis labels, ticks
// chosen by the 1-2-5 rule, an optional log scale and a legend. The output is a plain SVG file any
// browser shows.
//
//   Figure fig(1, 2);                                    // one row, two plots
//   Axes& ax = fig.axes(0, 0);
//   ax.plot(steps, train_loss, "train");                 // a line per training step
//   ax.plot(epoch_steps, test_loss, "test", Style::markers_only());  // a marker per epoch
//   ax.title("MADE on binarized MNIST").xlabel("step").ylabel("NLL (nats/dim)");
//   fig.axes(0, 1).hist(samples, 100, "samples", Style{}, /*density=*/true);
//   fig.save("curves.svg");
//
// Non-finite values (NaN, inf) and, on a log axis, values <= 0 are skipped, breaking a line into
// pieces, as matplotlib does. Errors: dgm::ValueError for bad arguments, dgm::IOError for files.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace dgm::tools {

enum class Marker { None, Circle, Square, Cross };

struct Style {
  std::string color;         // any SVG colour ("#d62728", "black"); "" = next of the axes' colour cycle
  double line_width = 1.5;   // px
  bool line = true;          // draw the connecting line (plot, step, axhline)
  bool dashed = false;
  Marker marker = Marker::None;
  double marker_size = 3.5;  // radius in px
  double alpha = 1.0;        // opacity, 0..1: lower it for dense scatter plots and overlapping bars

  static Style markers_only(Marker m = Marker::Circle) {
    Style s;
    s.line = false;
    s.marker = m;
    return s;
  }
};

enum class LegendLoc { Best, UpperRight, UpperLeft, LowerLeft, LowerRight, Hidden };

// A 2-D grid of values shown as colours (viridis) with a colour bar: values[iy * nx + ix] covers
// x in [x_min + ix*dx, x_min + (ix+1)*dx), iy = 0 at the *bottom* (y_min), like a density p(x, y).
struct Heatmap {
  std::vector<double> values;
  int64_t nx = 0, ny = 0;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  double v_min = std::numeric_limits<double>::quiet_NaN();  // colour scale; NaN = from the data
  double v_max = std::numeric_limits<double>::quiet_NaN();
  std::string colorbar_label;
  bool colorbar = true;
};

class Axes {
 public:
  // y against x, as a line (and/or markers: see Style).
  Axes& plot(const std::vector<double>& x, const std::vector<double>& y, const std::string& label = "",
             Style style = {});
  // y[i] against x = i, e.g. a loss per step. (Not an overload of plot: plot({1, 2}, {3, 4}) would
  // then be ambiguous, as {3, 4} could also be a std::string.)
  Axes& plot_indexed(const std::vector<double>& y, const std::string& label = "", Style style = {});
  // Points without a line; lower style.alpha for thousands of points.
  Axes& scatter(const std::vector<double>& x, const std::vector<double>& y, const std::string& label = "",
                Style style = Style::markers_only());
  // Bars from 0 to height at the given centres; width 0 = 80% of the smallest gap between centres.
  Axes& bar(const std::vector<double>& centers, const std::vector<double>& heights, const std::string& label = "",
            Style style = {}, double width = 0);
  // Histogram of values in `bins` equal bins over [lo, hi] (lo == hi: the data's range);
  // density = true scales heights so the bars' area is 1, comparable with a density line.
  Axes& hist(const std::vector<double>& values, int bins = 100, const std::string& label = "", Style style = {},
             bool density = false, double lo = 0, double hi = 0);
  // Piecewise-constant line: values[i] over [edges[i], edges[i+1]] (edges has one more entry).
  // The natural picture of a histogram-model density.
  Axes& step(const std::vector<double>& edges, const std::vector<double>& values, const std::string& label = "",
             Style style = {});
  // A horizontal reference line across the plot, e.g. the exact value an estimate converges to.
  Axes& axhline(double y, const std::string& label = "", Style style = {});
  // One heatmap per Axes; it sets the axis limits to its extent unless xlim/ylim are given.
  Axes& heatmap(const Heatmap& map);

  Axes& title(const std::string& text);
  Axes& xlabel(const std::string& text);
  Axes& ylabel(const std::string& text);
  Axes& xlim(double lo, double hi);
  Axes& ylim(double lo, double hi);
  Axes& log_x(bool on = true);
  Axes& log_y(bool on = true);
  Axes& loglog() { return log_x().log_y(); }
  Axes& legend(LegendLoc loc);  // default: Best, shown when some series has a label
  Axes& grid(bool on);          // light grid lines at the major ticks (default on)

  // Writes this Axes as SVG elements into the box (x, y, width, height) of the figure.
  // `id` makes the clip path's name unique within the figure.
  void render(std::string& svg, double x, double y, double width, double height, int id) const;

 private:
  struct Series {
    enum class Kind { Line, Bars, Step, HLine } kind = Kind::Line;
    std::vector<double> x, y;  // Bars: centres and heights; Step: edges and values; HLine: y[0]
    double bar_width = 0;
    std::string label;
    Style style;
  };
  Axes& add(Series series);

  std::vector<Series> series_;
  std::vector<Heatmap> heatmap_;  // zero or one
  std::string title_, xlabel_, ylabel_;
  double xlim_[2] = {NAN, NAN}, ylim_[2] = {NAN, NAN};
  bool log_x_ = false, log_y_ = false, grid_ = true;
  LegendLoc legend_ = LegendLoc::Best;
  int next_color_ = 0;
};

class Figure {
 public:
  // rows x cols subplots; width/height in px, 0 = 600 x 420 per subplot.
  explicit Figure(int rows = 1, int cols = 1, double width = 0, double height = 0);

  Axes& axes(int row = 0, int col = 0);  // dgm::ValueError when outside the grid
  Figure& suptitle(const std::string& text);

  std::string svg() const;
  void save(const std::string& path) const;  // atomic: path + ".tmp.<pid>", then rename

 private:
  int rows_, cols_;
  double width_, height_;
  std::string suptitle_;
  std::vector<Axes> axes_;
};

// Least-squares line y = slope * x + intercept.
struct LineFit {
  double slope = 0, intercept = 0;
  double at(double x) const { return slope * x + intercept; }
};
// dgm::ValueError with fewer than 2 finite points or all x equal.
LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y);
// A power law y = C * x^slope fitted as a line in log10-log10 space (intercept = log10 C), e.g. the
// Monte-Carlo error ~ n^-1/2. Points with x <= 0 or y <= 0 are skipped. Evaluate with power_law_at.
LineFit fit_loglog(const std::vector<double>& x, const std::vector<double>& y);
inline double power_law_at(const LineFit& fit, double x) { return std::pow(10.0, fit.intercept) * std::pow(x, fit.slope); }

// Text made safe for SVG/XML: & < > " ' replaced by entities.
std::string xml_escape(const std::string& text);

// Tick positions between lo and hi by the 1-2-5 rule: steps of 1, 2 or 5 times a power of ten,
// about `target` of them. Exposed for tests.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

}  // namespace dgm::tools
