// Finding and loading MNIST-style datasets; see mnist.h.
#include <dgm/data/mnist.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <dgm/data/idx.h>
#include <dgm/tensor/errors.h>

namespace dgm::data {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool folder_exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// A few names in the folder, for an error message that helps spot a misnamed file.
std::string list_some_files(const fs::path& dir) {
  std::string names;
  int shown = 0, total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (shown < 8) {
      names += (shown ? ", " : "") + entry.path().filename().string();
      ++shown;
    }
    ++total;
  }
  if (total == 0) return "the folder is empty";
  if (total > shown) names += cat(", ... (", total, " entries)");
  return "the folder contains: " + names;
}

// The file for one split and kind ("images" / "labels"), trying the spellings found in the wild:
// train-images-idx3-ubyte (LeCun's site), train-images.idx3-ubyte (some mirrors), each maybe .gz;
// the test split is t10k-... originally, test-... in dgm's embedded data.
fs::path find_mnist_file(const fs::path& dir, Split split, const std::string& kind) {
  const std::string idx = kind == "images" ? "idx3" : "idx1";
  const std::vector<std::string> prefixes =
      split == Split::Train ? std::vector<std::string>{"train"} : std::vector<std::string>{"t10k", "test"};
  std::vector<std::string> tried;
  for (const std::string& prefix : prefixes) {
    for (const std::string& middle : {"-" + kind + "-" + idx + "-ubyte", "-" + kind + "." + idx + "-ubyte"}) {
      for (const char* gz : {".gz", ""}) {
        std::string name = prefix + middle + gz;
        if (file_exists(dir / name)) return dir / name;
        tried.push_back(name);
      }
    }
  }
  std::string looked_for;
  for (size_t i = 0; i < tried.size(); ++i) looked_for += (i ? ", " : "") + tried[i];
  throw IOError(cat(dir.string(), ": no ", split_name(split), " ", kind, " file; looked for ", looked_for, "; ",
                    list_some_files(dir)));
}

}  // namespace

Split parse_split(const std::string& split) {
  if (split == "train") return Split::Train;
  if (split == "test") return Split::Test;
  throw ValueError(cat("split \"", split, "\" is not one of \"train\", \"test\""));
}

const char* split_name(Split split) { return split == Split::Train ? "train" : "test"; }

std::string data_dir() {
  const char* env = std::getenv("DGM_DATA_DIR");
  return env && *env ? env : "";
}

std::string resolve_mnist_dir(const std::string& src) {
  if (src.empty() || src == "mnist") {
    if (data_dir().empty()) return "";  // compiled in
    fs::path dir = fs::path(data_dir()) / "mnist10k";
    if (!folder_exists(dir))
      throw IOError(cat("mnist: folder ", dir.string(), " not found (the environment variable DGM_DATA_DIR names ",
                        data_dir(), "); unset DGM_DATA_DIR to use the digits compiled into dgm, or write the folder with "
                        "`python3 scripts/make_mnist10k.py DIR/mnist10k`"));
    return dir.string();
  }
  if (src == "fashion-mnist" || src == "fashion_mnist") {
    const char* env = std::getenv("DGM_FASHION_MNIST_DIR");
    std::string dir = env && *env ? env : kFashionMnistDir;
    if (!folder_exists(dir))
      throw IOError(cat("fashion-mnist: folder ", dir,
                        " not found; install it with `apt-get install dataset-fashion-mnist`"));
    return dir;
  }
  if (folder_exists(src)) return src;
  std::error_code ec;
  if (fs::exists(src, ec))
    throw IOError(cat(src, ": is a file; expected a folder of MNIST IDX files, \"mnist\" or \"fashion-mnist\""));
  throw IOError(cat(src, ": no such folder; expected a folder of MNIST IDX files, \"mnist\" (the embedded "
                         "default) or \"fashion-mnist\""));
}

MnistData load_mnist(const std::string& src, Split split) {
  const std::string dir = resolve_mnist_dir(src);
  std::string images_path, labels_path, source = dir;
  IdxImages images;
  std::vector<uint8_t> labels;
  if (dir.empty()) {  // the compiled-in digits
    source = "mnist10k (embedded)";
    images_path = cat(source, " ", split_name(split), " images");
    labels_path = cat(source, " ", split_name(split), " labels");
    auto decode = [](std::span<const uint8_t> bytes, const std::string& name) {
      return decode_idx(std::vector<uint8_t>(bytes.begin(), bytes.end()), name);
    };
    images = idx_images(decode(embedded_mnist_file(split, "images"), images_path), images_path);
    labels = idx_labels(decode(embedded_mnist_file(split, "labels"), labels_path), labels_path);
  } else {
    images_path = find_mnist_file(dir, split, "images").string();
    labels_path = find_mnist_file(dir, split, "labels").string();
    images = read_idx_images(images_path);
    labels = read_idx_labels(labels_path);
  }
  if (static_cast<int64_t>(labels.size()) != images.n)
    throw FormatError(cat(images_path, " has ", images.n, " images but ", labels_path, " has ",
                          labels.size(), " labels; they must match one to one"));
  if (images.rows > kMaxImageSide || images.cols > kMaxImageSide)
    throw FormatError(cat(images_path, ": images of ", images.rows, "x", images.cols, " pixels; an MNIST-style dataset has at most ",
                          kMaxImageSide, "x", kMaxImageSide));
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] >= kNumClasses)
      throw FormatError(cat(labels_path, ": label ", int(labels[i]), " of image ", i, " is outside 0..", kNumClasses - 1));

  MnistData data;
  data.source = source;
  data.split = split;
  data.n = images.n;
  data.rows = images.rows;
  data.cols = images.cols;
  data.pixels = std::move(images.pixels);
  data.labels = std::move(labels);
  return data;
}

MnistData load_mnist(const std::string& src, const std::string& split) { return load_mnist(src, parse_split(split)); }

void check_splits(const MnistData& train, const MnistData& test) {
  for (const MnistData* d : {&train, &test})
    if (d->n == 0) throw FormatError(cat(d->source, ": the ", split_name(d->split), " split has no images"));
  if (train.rows != test.rows || train.cols != test.cols)
    throw FormatError(cat(train.source, ": the train images are ", train.rows, "x", train.cols, " but the test images ", test.rows, "x",
                          test.cols, "; both splits must have one size"));
}

std::vector<uint8_t> binarize(const std::vector<uint8_t>& pixels) {
  std::vector<uint8_t> out(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) out[i] = pixels[i] > 128 ? 1 : 0;
  return out;
}

MnistData resize(const MnistData& data, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) throw ValueError(cat("resize: the new size must be at least 1x1, got ", rows, "x", cols));
  if (data.rows < 1 || data.cols < 1 || data.n < 0 || static_cast<int64_t>(data.pixels.size()) != data.n * data.rows * data.cols)
    throw ValueError(cat("resize: ", data.pixels.size(), " pixels do not make ", data.n, " images of ", data.rows, "x", data.cols));
  constexpr double kMaxBytes = 4.0 * (1 << 30);
  if (double(data.n) * double(rows) * double(cols) > kMaxBytes)
    throw ValueError(cat("resize: ", data.n, " images of ", rows, "x", cols, " would take more than 4 GiB"));
  MnistData out = data;
  out.rows = rows;
  out.cols = cols;
  out.pixels.assign(static_cast<size_t>(data.n * rows * cols), 0);
  // Source coordinate of output index i: (i + 0.5) * in / out - 0.5, clamped to the image; its two
  // neighbours and the weight of the second, per axis.
  struct Tap { int64_t a, b; double w; };
  auto taps = [](int64_t in, int64_t out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    for (int64_t i = 0; i < out; ++i) {
      const double c = std::clamp((double(i) + 0.5) * double(in) / double(out) - 0.5, 0.0, double(in - 1));
      const int64_t a = std::min(static_cast<int64_t>(c), in - 1);
      t[static_cast<size_t>(i)] = {a, std::min(a + 1, in - 1), c - double(a)};
    }
    return t;
  };
  const std::vector<Tap> ty = taps(data.rows, rows), tx = taps(data.cols, cols);
  auto round_byte = [](double v) { return static_cast<uint8_t>(std::clamp(std::floor(v + 0.5), 0.0, 255.0)); };
  // Two passes, each rounded to a byte, as PIL does: along rows first, then along columns.
  std::vector<uint8_t> wide(static_cast<size_t>(data.rows * cols));
  for (int64_t k = 0; k < data.n; ++k) {
    const uint8_t* src = data.image(k);
    for (int64_t r = 0; r < data.rows; ++r)
      for (int64_t j = 0; j < cols; ++j) {
        const Tap& x = tx[static_cast<size_t>(j)];
        wide[r * cols + j] = round_byte(src[r * data.cols + x.a] * (1 - x.w) + src[r * data.cols + x.b] * x.w);
      }
    uint8_t* dst = out.pixels.data() + k * rows * cols;
    for (int64_t i = 0; i < rows; ++i) {
      const Tap& y = ty[static_cast<size_t>(i)];
      for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = round_byte(wide[y.a * cols + j] * (1 - y.w) + wide[y.b * cols + j] * y.w);
    }
  }
  return out;
}

std::vector<float> to_unit_float(const std::vector<uint8_t>& pixels) {
  std::vector<float> out(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) out[i] = static_cast<float>(pixels[i]) / 255.0f;
  return out;
}

PixelMode parse_pixel_mode(const std::string& mode) {
  if (mode == "binary") return PixelMode::Binary;
  if (mode == "unit") return PixelMode::Unit;
  if (mode == "levels") return PixelMode::Levels;
  throw ValueError(cat("pixel mode \"", mode, "\" is not one of \"binary\" (pixel > 128), \"unit\" (pixel / 255), "
                       "\"levels\" (0..255)"));
}

std::vector<float> pixels_as_float(const std::vector<uint8_t>& pixels, PixelMode mode) {
  if (mode == PixelMode::Unit) return to_unit_float(pixels);
  std::vector<float> out(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i)
    out[i] = mode == PixelMode::Binary ? (pixels[i] > 128 ? 1.0f : 0.0f) : static_cast<float>(pixels[i]);
  return out;
}

std::vector<int64_t> count_labels(const std::vector<uint8_t>& labels, int num_classes) {
  if (num_classes < 1 || num_classes > 256)
    throw ValueError(cat("count_labels: num_classes ", num_classes, " is outside 1..256"));
  std::vector<int64_t> counts(num_classes, 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes)
      throw ValueError(cat("count_labels: label ", int(labels[i]), " at index ", i, " is outside 0..",
                           num_classes - 1));
    ++counts[labels[i]];
  }
  return counts;
}

}  // namespace dgm::data
