// PNG grids, SVG plots and the progress bar.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <cctype>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/data/idx.h>
#include <dgm/tools/files.h>
#include <dgm/tensor/errors.h>
#include <dgm/tools/image.h>
#include <dgm/tools/plot.h>
#include <dgm/tools/progress.h>

using namespace dgm;
using namespace dgm::tools;
namespace fs = std::filesystem;

namespace {

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("dgm_test_tools_" + std::to_string(getpid()) + "_" + name)).string();
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// A small XML well-formedness check, enough for our own output: every tag is closed in order,
// attribute values are quoted, and no raw '<' or '&' appears in text. Returns "" or the problem.
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  size_t i = 0;
  if (xml.rfind("<?xml", 0) == 0) i = xml.find("?>") + 2;
  while (i < xml.size()) {
    if (xml[i] == '&') {
      size_t semi = xml.find(';', i);
      std::string entity = xml.substr(i, semi == std::string::npos ? 8 : semi - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" && entity != "&apos;")
        return "bad entity " + entity + " at " + std::to_string(i);
      ++i;
      continue;
    }
    if (xml[i] != '<') {
      ++i;
      continue;
    }
    size_t end = i + 1;
    bool in_quotes = false;
    while (end < xml.size() && (in_quotes || xml[end] != '>')) {
      if (xml[end] == '"') in_quotes = !in_quotes;
      if (xml[end] == '<' && !in_quotes) return "'<' inside a tag at " + std::to_string(end);
      ++end;
    }
    if (end >= xml.size()) return "unterminated tag at " + std::to_string(i);
    std::string tag = xml.substr(i + 1, end - i - 1);
    if (tag.empty()) return "empty tag at " + std::to_string(i);
    if (tag[0] == '/') {
      std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "closing </" + name + "> does not match at " + std::to_string(i);
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(tag.substr(0, tag.find_first_of(" \n\t")));
    }
    i = end + 1;
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  return "";
}

// Every number in the file must be finite: no "nan" or "inf" from a division by zero. Numbers are
// scanned by hand: a run starting with a digit (or '-' and a digit), with '.', digits and an
// exponent; colours like #3e4989 are skipped, they are not numbers.
void expect_finite_numbers(const std::string& svg) {
  EXPECT_FALSE(contains(svg, "nan")) << "the SVG contains nan";
  EXPECT_FALSE(contains(svg, "inf\"")) << "an attribute holds inf";
  int checked = 0;
  for (size_t i = 0; i < svg.size();) {
    if (svg[i] == '#') {  // a colour: skip its hex digits
      ++i;
      while (i < svg.size() && std::isxdigit(static_cast<unsigned char>(svg[i]))) ++i;
      continue;
    }
    const bool starts = std::isdigit(static_cast<unsigned char>(svg[i])) ||
                        (svg[i] == '-' && i + 1 < svg.size() && std::isdigit(static_cast<unsigned char>(svg[i + 1])));
    if (!starts) {
      ++i;
      continue;
    }
    const char* begin = svg.c_str() + i;
    char* stop = nullptr;
    const double v = std::strtod(begin, &stop);
    const size_t used = static_cast<size_t>(stop - begin);
    EXPECT_TRUE(std::isfinite(v)) << svg.substr(i, used);
    ++checked;
    i += std::max<size_t>(used, 1);
  }
  EXPECT_GT(checked, 50);
}

}  // namespace

// ---- PNG ----

TEST(Image, GridLayoutPaddingAndUpscaling) {
  // Three 2x3 images: pixel value = 10 * image + position, so every pixel is recognisable.
  std::vector<uint8_t> images;
  for (int k = 0; k < 3; ++k)
    for (int p = 0; p < 6; ++p) images.push_back(static_cast<uint8_t>(10 * k + p));
  GrayImage grid = make_image_grid(images, 3, 2, 3, /*grid_rows=*/2, /*padding=*/1, /*upscale=*/2);
  // 2 grid rows x 2 grid cols (3 images, one slot empty); each tile 2x3 plus 1 px padding, x2.
  EXPECT_EQ(grid.width, (2 * (3 + 1) + 1) * 2);
  EXPECT_EQ(grid.height, (2 * (2 + 1) + 1) * 2);
  auto at = [&](int r, int c) { return grid.pixels[r * grid.width + c]; };
  EXPECT_EQ(at(0, 0), kGridPaddingLevel);
  // Image 0 starts at (1, 1) before upscaling -> (2, 2); its pixel (1, 2) = 5 covers a 2x2 block.
  EXPECT_EQ(at(2, 2), 0);
  EXPECT_EQ(at(2 + 2 * 1, 2 + 2 * 2), 5);
  EXPECT_EQ(at(2 + 2 * 1 + 1, 2 + 2 * 2 + 1), 5);
  // Image 1 sits right of image 0; image 2 below image 0; the 4th slot is padding colour.
  EXPECT_EQ(at(2, (1 + 3 + 1) * 2), 10);
  EXPECT_EQ(at((1 + 2 + 1) * 2, 2), 20);
  EXPECT_EQ(at((1 + 2 + 1) * 2, (1 + 3 + 1) * 2), kGridPaddingLevel);
}

TEST(Image, GridPngRoundTripsThroughStbImage) {
  const int n = 10, rows = 28, cols = 28;
  std::vector<float> images(n * rows * cols);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<float>(i % 97) / 96.0f;
  images[5] = NAN;    // shows as black
  images[6] = 7.0f;   // clamped to white
  images[7] = -1.0f;  // clamped to black
  const std::string path = temp_path("grid.png");
  save_image_grid(path, images, n, rows, cols, /*grid_rows=*/0, /*padding=*/2, /*upscale=*/3);
  GrayImage expected = make_image_grid(images, n, rows, cols, 0, 2, 3);
  GrayImage back = read_png_gray(path);
  // n = 10 -> ceil(sqrt(10)) = 4 columns, 3 rows.
  EXPECT_EQ(back.width, (4 * (cols + 2) + 2) * 3);
  EXPECT_EQ(back.height, (3 * (rows + 2) + 2) * 3);
  EXPECT_EQ(back.pixels, expected.pixels);
  EXPECT_EQ(back.pixels[(2 * 3) * back.width + (2 + 5) * 3], 0);
  EXPECT_EQ(back.pixels[(2 * 3) * back.width + (2 + 6) * 3], 255);
  EXPECT_EQ(back.pixels[(2 * 3) * back.width + (2 + 7) * 3], 0);
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(getpid())));
  fs::remove(path);
}

TEST(Image, BinaryUint8WithMaxLevelOne) {
  std::vector<uint8_t> bits = {0, 1, 1, 0};
  GrayImage g = make_image_grid(bits, 1, 2, 2, 1, 0, 1, /*max_level=*/1);
  EXPECT_EQ(g.pixels, (std::vector<uint8_t>{0, 255, 255, 0}));
}

TEST(Image, BadArgumentsAreValueErrors) {
  std::vector<uint8_t> few(10);
  EXPECT_THROW(make_image_grid(few, 2, 28, 28), ValueError);
  EXPECT_THROW(make_image_grid(few, 1, 2, 5, 0, -1), ValueError);
  EXPECT_THROW(make_image_grid(few, 1, 2, 5, 0, 1, 0), ValueError);
  EXPECT_THROW(read_png_gray(temp_path("missing.png")), IOError);
  const std::string bogus = temp_path("bogus.png");
  tools::write_file_atomic(bogus, std::string("not a png"));
  EXPECT_THROW(read_png_gray(bogus), FormatError);
  fs::remove(bogus);
}

// ---- SVG ----

TEST(Plot, NiceTicksFollowThe125Rule) {
  std::vector<double> unit = nice_ticks(0, 1, 5), expected = {0, 0.2, 0.4, 0.6, 0.8, 1};
  ASSERT_EQ(unit.size(), expected.size());
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], expected[i], 1e-12);
  std::vector<double> t = nice_ticks(-3.7, 112, 6);
  ASSERT_GE(t.size(), 3u);
  const double step = t[1] - t[0];
  EXPECT_DOUBLE_EQ(step, 20);
  EXPECT_EQ(t.front(), 0);
  EXPECT_EQ(t.back(), 100);
  for (double lo : {1e-7, 0.3, 17.0, 2e9}) {
    std::vector<double> ticks = nice_ticks(lo, lo * 3.3, 5);
    ASSERT_GE(ticks.size(), 2u);
    double s = ticks[1] - ticks[0], mantissa = s / std::pow(10.0, std::floor(std::log10(s) + 1e-9));
    EXPECT_TRUE(std::fabs(mantissa - 1) < 1e-6 || std::fabs(mantissa - 2) < 1e-6 || std::fabs(mantissa - 5) < 1e-6)
        << "step " << s;
  }
  EXPECT_TRUE(nice_ticks(1, 1).empty());
}

TEST(Plot, TrainingCurveSvgIsWellFormedAndLabelled) {
  std::vector<double> steps, loss, epoch_steps, test_loss;
  for (int i = 0; i <= 300; ++i) steps.push_back(i), loss.push_back(0.6 * std::exp(-i / 80.0) + 0.1 + 0.01 * std::sin(i));
  for (int e = 1; e <= 3; ++e) epoch_steps.push_back(100 * e), test_loss.push_back(0.6 * std::exp(-100 * e / 80.0) + 0.12);
  loss[50] = NAN;  // a gap, not a crash and not "nan" in the file

  Figure fig(1, 2);
  fig.suptitle("Tom & Jerry's <model>");
  fig.axes(0, 0)
      .plot(steps, loss, "train")
      .plot(epoch_steps, test_loss, "test (per epoch)", Style::markers_only())
      .title("NLL")
      .xlabel("step")
      .ylabel("nats/dim");
  std::vector<double> samples;
  for (int i = 0; i < 5000; ++i) samples.push_back(std::sin(i * 0.37) + std::cos(i * 0.11));
  fig.axes(0, 1).hist(samples, 100, "samples", Style{}, true).title("histogram");
  std::string svg = fig.svg();

  EXPECT_EQ(xml_problem(svg), "") << svg.substr(0, 2000);
  EXPECT_TRUE(contains(svg, "Tom &amp; Jerry&apos;s &lt;model&gt;"));
  EXPECT_FALSE(contains(svg, "<model>"));
  for (const char* text : {">train<", ">test (per epoch)<", ">NLL<", ">step<", ">nats/dim<", ">samples<", ">histogram<"})
    EXPECT_TRUE(contains(svg, text)) << text;
  EXPECT_EQ(count_of(svg, "<polyline"), 2u);  // the train line, split in two at the NaN
  EXPECT_GE(count_of(svg, "<circle"), 3u);    // 3 test markers (+ the legend's)
  EXPECT_GE(count_of(svg, "<rect"), 100u);    // 100 histogram bars
  expect_finite_numbers(svg);

  const std::string path = temp_path("curves.svg");
  fig.save(path);
  EXPECT_EQ(tools::read_file_bytes(path).size(), svg.size());
  fs::remove(path);
}

TEST(Plot, LogLogScatterHeatmapAndStep) {
  std::vector<double> n, err;
  for (int k = 1; k <= 6; ++k) n.push_back(std::pow(10.0, k)), err.push_back(2.0 / std::sqrt(std::pow(10.0, k)));
  LineFit fit = fit_loglog(n, err);
  EXPECT_NEAR(fit.slope, -0.5, 1e-12);
  EXPECT_NEAR(power_law_at(fit, 100.0), 0.2, 1e-12);

  Figure fig(2, 2);
  std::vector<double> fitted;
  for (double x : n) fitted.push_back(power_law_at(fit, x));
  fig.axes(0, 0).plot(n, err, "|error|", Style::markers_only()).plot(n, fitted, "slope -0.50").loglog().xlabel("n");

  std::vector<double> px, py;
  for (int i = 0; i < 500; ++i) px.push_back(std::cos(i * 2.4) * i / 500.0), py.push_back(std::sin(i * 2.4) * i / 500.0);
  Style faint = Style::markers_only();
  faint.alpha = 0.3;
  fig.axes(0, 1).scatter(px, py, "points", faint);

  Heatmap map;
  map.nx = 40, map.ny = 30, map.x_min = -2, map.x_max = 2, map.y_min = -1.5, map.y_max = 1.5;
  map.colorbar_label = "p(x, y)";
  for (int iy = 0; iy < map.ny; ++iy)
    for (int ix = 0; ix < map.nx; ++ix) {
      double x = -2 + (ix + 0.5) * 0.1, y = -1.5 + (iy + 0.5) * 0.1;
      map.values.push_back(std::exp(-(x * x + 2 * y * y)));
    }
  fig.axes(1, 0).heatmap(map).title("density");

  fig.axes(1, 1).step({0, 1, 2, 3, 4}, {0.1, 0.4, 0.3, 0.2}, "model").axhline(0.25, "uniform");
  std::string svg = fig.svg();
  EXPECT_EQ(xml_problem(svg), "");
  for (const char* text : {">|error|<", ">slope -0.50<", ">points<", ">p(x, y)<", ">model<", ">uniform<", ">density<"})
    EXPECT_TRUE(contains(svg, text)) << text;
  EXPECT_TRUE(contains(svg, "fill-opacity=\"0.3\""));
  EXPECT_TRUE(contains(svg, "<linearGradient"));         // the colour bar
  EXPECT_GE(count_of(svg, "<tspan"), 4u);                // 10^k labels on log axes
  EXPECT_EQ(count_of(svg, "<clipPath"), 4u);             // one per subplot, ids unique:
  for (int id = 0; id < 4; ++id) EXPECT_EQ(count_of(svg, "id=\"dgm-clip-" + std::to_string(id) + "\""), 1u);
  expect_finite_numbers(svg);

  const std::string path = temp_path("grid.svg");
  fig.save(path);
  EXPECT_TRUE(fs::exists(path));
  fs::remove(path);
}

TEST(Plot, EmptyAndDegenerateDataStillGiveAValidFigure) {
  Figure fig;
  fig.axes().plot(std::vector<double>{}, std::vector<double>{}).title("nothing");
  EXPECT_EQ(xml_problem(fig.svg()), "");
  Figure flat;
  flat.axes().plot({1, 2, 3}, {5, 5, 5}, "constant").log_y();
  std::string svg = flat.svg();
  EXPECT_EQ(xml_problem(svg), "");
  expect_finite_numbers(svg);
}

TEST(Plot, BadArgumentsAreValueErrors) {
  Figure fig(1, 2);
  EXPECT_THROW(fig.axes(1, 0), ValueError);
  EXPECT_THROW(fig.axes().plot({1, 2}, {1}), ValueError);
  Style too_opaque;
  too_opaque.alpha = 2;
  EXPECT_THROW(fig.axes().plot({1, 2}, {1, 2}, "", too_opaque), ValueError);
  EXPECT_THROW(fig.axes().step({0, 1}, {1, 2}), ValueError);
  EXPECT_THROW(fig.axes().xlim(2, 1), ValueError);
  EXPECT_THROW(fig.axes().hist({1, 2}, 0), ValueError);
  Heatmap wrong;
  wrong.nx = 3, wrong.ny = 3, wrong.values = {1, 2};
  EXPECT_THROW(fig.axes().heatmap(wrong), ValueError);
  EXPECT_THROW(fit_line({1, 1}, {2, 3}), ValueError);
  EXPECT_THROW(Figure(0, 1), ValueError);
}

// ---- progress bar ----

namespace {
// A clock the test moves by hand: progress output must not depend on how fast the test runs.
struct FakeClock {
  double t = 1000;
  std::function<double()> fn() {
    return [this] { return t; };
  }
};

// Options writing into `out` in plain (log) mode, timed by `clock`.
ProgressOptions plain_options(std::ostream& out, FakeClock& clock) {
  ProgressOptions opt;
  opt.mode = ProgressMode::Plain;
  opt.out = &out;
  opt.clock = clock.fn();
  return opt;
}
}  // namespace

TEST(Progress, PlainModePrintsALineEveryTenPercent) {
  std::ostringstream out;
  FakeClock clock;
  {
    ProgressOptions opt = plain_options(out, clock);
    opt.mode = ProgressMode::Auto;  // an injected stream is never a terminal
    opt.desc = "epoch 1";
    ProgressBar bar(200, opt);
    for (int i = 0; i < 200; ++i) {
      clock.t += 0.05;  // 20 it/s
      bar.set_postfix("loss", 1.0 / (i + 1));
      bar.update();
    }
    bar.finish();
  }  // the destructor must not print a second final line
  std::string text = out.str();
  EXPECT_FALSE(contains(text, "\r"));
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 11u) << text;  // 0%, 10%, ..., 100%
  EXPECT_TRUE(contains(lines[0], "epoch 1:   0%|")) << lines[0];
  EXPECT_TRUE(contains(lines[1], " 10%|##")) << lines[1];
  EXPECT_TRUE(contains(lines[1], "| 20/200 [00:01<00:09, 20.00it/s, loss=0.05]")) << lines[1];
  EXPECT_TRUE(contains(lines[10], "100%|####################| 200/200 [00:10<00:00, 20.00it/s, loss=0.005]"))
      << lines[10];
  EXPECT_EQ(text.back(), '\n');
}

TEST(Progress, PlainModeAlsoPrintsAfterTheTimeInterval) {
  std::ostringstream out;
  FakeClock clock;
  ProgressOptions opt = plain_options(out, clock);
  opt.plain_interval = 5;
  ProgressBar bar(1000000, opt);
  for (int i = 0; i < 10; ++i) {
    clock.t += 2;  // 20 s, far from the first 10%
    bar.update();
  }
  bar.finish();
  // The start line, one at 6, 12 and 18 s (5 s or more after the previous one), and the closing
  // line at 20 s, which shows a new count.
  EXPECT_EQ(count_of(out.str(), "\n"), 5u) << out.str();
  EXPECT_TRUE(contains(out.str(), "| 3/1000000 [00:06<")) << out.str();
  EXPECT_TRUE(contains(out.str(), "| 10/1000000 [00:20<")) << out.str();
  EXPECT_TRUE(contains(out.str(), "2.00s/it")) << out.str();  // slow loops read as seconds per item
}

TEST(Progress, TtyModeRedrawsInPlaceAtMostTenTimesASecond) {
  std::ostringstream out;
  FakeClock clock;
  ProgressOptions opt = plain_options(out, clock);
  opt.mode = ProgressMode::Tty;
  opt.width = 80;
  ProgressBar bar(1000, opt);
  for (int i = 0; i < 1000; ++i) {
    clock.t += 0.001;  // 1 s in total -> about 10 redraws
    bar.update();
  }
  bar.finish();
  std::string text = out.str();
  const size_t redraws = count_of(text, "\r");
  EXPECT_GE(redraws, 9u);
  EXPECT_LE(redraws, 14u);
  EXPECT_EQ(count_of(text, "\n"), 1u);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_TRUE(contains(text, "100%|")) << text;
  EXPECT_TRUE(contains(text, "█")) << text;
}

TEST(Progress, QuietPrintsNothingAndUnknownTotalHasNoBar) {
  std::ostringstream quiet_out;
  {
    FakeClock clock;
    ProgressOptions opt = plain_options(quiet_out, clock);
    opt.quiet = true;
    ProgressBar bar(10, opt);
    bar.update(10);
  }
  EXPECT_EQ(quiet_out.str(), "");

  std::ostringstream out;
  FakeClock clock;
  ProgressOptions opt = plain_options(out, clock);
  opt.desc = "sampling";
  opt.unit = "img";
  ProgressBar bar(0, opt);
  clock.t += 2;
  bar.update(50);
  bar.finish();
  EXPECT_TRUE(contains(out.str(), "sampling: 50img [00:02, 25.00img/s]")) << out.str();
  EXPECT_EQ(ProgressBar::format_duration(3725), "1:02:05");
  EXPECT_EQ(ProgressBar::format_duration(75), "01:15");
}
