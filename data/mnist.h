// MNIST-style datasets: 28x28 grey digits (or clothes) with a label 0..9 each.
//
//   MnistData train = load_mnist("", Split::Train);        // the embedded 10,000 digits (compiled in)
//   MnistData test  = load_mnist("fashion-mnist", "test"); // Debian package dataset-fashion-mnist
//   MnistData mine  = load_mnist("/path/to/mnist", "train"); // any folder of standard MNIST files
//   std::vector<uint8_t> x = binarize(train.pixels);      // the course's binarized MNIST: pixel > 128
//
// Plain vectors only; adapters to Tensors live with the tensor code.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dgm::data {

enum class Split { Train, Test };

constexpr int kNumClasses = 10;         // labels are 0..9
constexpr int64_t kMaxImageSide = 1024;  // rows and cols of an MNIST-style image, at most

struct MnistData {
  std::string source;  // the folder the files came from; "mnist10k (embedded)" for the built-in digits
  Split split = Split::Train;
  int64_t n = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // n * rows * cols grey levels 0..255; image i at pixels[i * rows * cols]
  std::vector<uint8_t> labels;  // n labels

  int64_t pixels_per_image() const { return rows * cols; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * rows * cols; }
};

// Loads one split. `src` is
//   "" or "mnist"      the embedded default, data/mnist10k's 9003 train / 997 test digits compiled into
//                      the library (no file is read); $DGM_DATA_DIR/mnist10k instead when the
//                      environment variable DGM_DATA_DIR is set and non-empty
//   "fashion-mnist"    /usr/share/datasets/fashion-mnist from the Debian package dataset-fashion-mnist
//                      (env DGM_FASHION_MNIST_DIR overrides the folder)
//   a folder           holding train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] and
//                      t10k-... or test-... for the test split (also the "images.idx3-ubyte" spelling)
// Throws dgm::IOError if files are missing (the message lists what was looked for), dgm::FormatError
// if a file is corrupt or images and labels disagree in count.
// Also refused (FormatError): a label outside 0..9, images larger than kMaxImageSide on a side.
MnistData load_mnist(const std::string& src = "", Split split = Split::Train);
// Same, with split given as "train" or "test" (dgm::ValueError otherwise).
MnistData load_mnist(const std::string& src, const std::string& split);

// Both splits of a dataset, checked together before a run uses either (so that a bad test split
// fails at the start, not after training): neither empty, one image size. FormatError otherwise.
void check_splits(const MnistData& train, const MnistData& test);

Split parse_split(const std::string& split);  // "train" / "test"; dgm::ValueError otherwise
const char* split_name(Split split);           // "train" / "test"

// The override of the embedded data: the environment variable DGM_DATA_DIR (a folder holding
// mnist10k/) when set and non-empty, else "" (the digits compiled into the library are used).
std::string data_dir();
// The folder `load_mnist(src, ...)` reads from, without reading it; "" for the compiled-in digits.
std::string resolve_mnist_dir(const std::string& src);
// The gzip'd IDX bytes of data/mnist10k compiled into the library (kind "images" or "labels"):
// what load_mnist("") reads. dgm::ValueError for another kind.
std::span<const uint8_t> embedded_mnist_file(Split split, const std::string& kind);

// ---- pixel transforms ----

// Binarized MNIST, the course convention (dgm_utils): 1 where pixel > 128, else 0. 128 itself is 0.
std::vector<uint8_t> binarize(const std::vector<uint8_t>& pixels);
// Every image resized to rows x cols by bilinear interpolation with pixel centres at half-integers
// and edge pixels repeated, along rows then along columns, each pass rounded to a grey level: what
// the course's torchvision `Resize(32)` does to a 28x28 digit (PIL's bilinear filter when enlarging;
// shrinking would need PIL's antialiasing, which this does not do). The homework's
// binarised 32x32 MNIST is binarize(resize(data, 32, 32).pixels). dgm::ValueError if a size is
// below 1 or the result would take more than 4 GiB.
MnistData resize(const MnistData& data, int64_t rows, int64_t cols);
// Grey levels scaled to [0, 1]: pixel / 255.
std::vector<float> to_unit_float(const std::vector<uint8_t>& pixels);

// The three ways the course feeds pixels to a model, as floats:
//   Binary  0 or 1 (binarize)           -> report NLL in nats/dim
//   Unit    pixel / 255 in [0, 1]
//   Levels  pixel as is, 0..255         -> 8-bit models; report NLL in bits/dim
enum class PixelMode { Binary, Unit, Levels };
PixelMode parse_pixel_mode(const std::string& mode);  // "binary" / "unit" / "levels"; dgm::ValueError otherwise
std::vector<float> pixels_as_float(const std::vector<uint8_t>& pixels, PixelMode mode);

// How many images carry each label 0..num_classes-1 (dgm::ValueError if a label is out of range).
std::vector<int64_t> count_labels(const std::vector<uint8_t>& labels, int num_classes = 10);

}  // namespace dgm::data
