// Reliability against hostile sizes and files (issue 12): sizes are checked arithmetic; a model
// config is refused before it allocates too much; a gzip'd IDX file is inflated only as far as its
// header declares; a checkpoint's data carries a CRC-32 that is verified on load.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/tests/testing.h>
#include <dgm/data/idx.h>
#include <dgm/tools/files.h>
#include <dgm/data/mnist.h>
#include <dgm/models/config.h>
#include <dgm/models/registry.h>
#include <dgm/nn/serialize.h>
#include <dgm/tensor/allocator.h>
#include <dgm/tensor/array.h>
#include <dgm/tensor/kernels.h>
#include <dgm/tools/cli/commands.h>

using namespace dgm;
namespace fs = std::filesystem;

namespace {

using dgm::testing::TempDir;

template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("wrong exception: ") + e.what();
  }
  return "no exception";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// ---- 1. sizes are checked arithmetic ------------------------------------------------------------

TEST(CheckedSizes, CreationRefusesOverflowingShapes) {
  const int64_t big = int64_t{1} << 62;
  std::string msg = message_of<ShapeError>([&] { Array::zeros({big, 8}); });
  EXPECT_TRUE(contains(msg, "empty: shape (4611686018427387904, 8) has more than 2^62 elements")) << msg;
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::empty({big, big}, DType::Bool); }), "(4611686018427387904, 4611686018427387904)"));
  // a zero size does not hide an overflowing product: the strides would still overflow
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::zeros({0, big, 8}); }), "(0, 4611686018427387904, 8)"));
  // numel fits but the bytes do not
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::zeros({big}, DType::Float64); }), "more bytes than fit in 64 bits"));
  // fits in 64 bits, but is no real allocation: refused before the system is asked
  EXPECT_TRUE(contains(message_of<MemoryError>([&] { Array::empty({int64_t{1} << 50}); }), "above the limit"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { Array::zeros({2, -3}); }), "(2, -3)"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::arange(0, 1e300); }), "arange"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::arange(0, INFINITY); }), "arange"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::eye(int64_t{1} << 40); }), "eye") ||
              contains(message_of<ShapeError>([&] { Array::eye(int64_t{1} << 40); }), "empty"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::from_vector(std::vector<float>{1, 2}, {big, 4, 0, 2}); }), "from_vector"));
}

TEST(CheckedSizes, ViewsRefuseOverflowingShapes) {
  const int64_t big = int64_t{1} << 62;
  Array a = Array::zeros({1, 8});
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { a.expand({big, 8}); }), "expand: shape (4611686018427387904, 8)"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { a.expand({big, 2, 8}); }), "expand"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { a.reshape({big, 4, 0}); }), "reshape"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { a.view({-1, big, 4}); }), "view"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { Array::zeros({0}).reshape({big, big, 0}); }), "reshape"));
  // slicing with a huge step or length: no wrap-around
  Array s = Array::arange(0, 10).slice(0, 2, 10, INT64_MAX);
  EXPECT_EQ(s.shape(), (Shape{1}));
  EXPECT_EQ(s.item(), 2.0);
  EXPECT_EQ(Array::arange(0, 10).slice(0, INT64_MIN, INT64_MAX, 3).numel(), 4);
  EXPECT_THROW(Array::arange(0, 10).narrow(0, 5, INT64_MAX), IndexError);
  // as_strided may not reach outside the storage, nor overflow computing how far it reaches
  Array base = Array::zeros({4});
  EXPECT_EQ(base.as_strided({2, 2}, {2, 1}, 0).numel(), 4);
  EXPECT_THROW(base.as_strided({2, 2}, {2, 1}, 1), IndexError);
  EXPECT_THROW(base.as_strided({3}, {-1}, 1), IndexError);
  EXPECT_THROW(base.as_strided({big, 2}, {big, 1}, 0), ShapeError);
  EXPECT_THROW(base.as_strided({2}, {1, 1}, 0), ShapeError);
}

TEST(CheckedSizes, KernelsRefuseOverflowingSizes) {
  Array a = Array::zeros({2, 3});
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { cpu::pad(a, {INT64_MAX, 1}); }), "pad"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { cpu::pad(a, {int64_t{1} << 62, 0, int64_t{1} << 62, 0}); }), "pad"));
  EXPECT_TRUE(contains(message_of<ShapeError>([&] { cpu::one_hot(Array::zeros({4}, DType::Int64), int64_t{1} << 61); }),
                       "empty"));
}

TEST(CheckedSizes, AllocationLimitRefusesBeforeAllocating) {
  reset_peak_bytes();
  const size_t before = allocator_stats().peak_bytes_in_use;
  {
    AllocationLimit limit(size_t{1} << 20, "the test");
    Array small = Array::zeros({1000});  // 4 KB: fine
    std::string msg = message_of<MemoryError>([&] { Array::zeros({1 << 20}); });  // 4 MiB: refused
    EXPECT_TRUE(contains(msg, "the test: needs more than the limit of 1048576 bytes")) << msg;
    EXPECT_GT(limit.bytes(), 0u);
  }
  EXPECT_LT(allocator_stats().peak_bytes_in_use - before, size_t{1} << 20);
  Array after = Array::zeros({1 << 20});  // the limit ended with its scope
  EXPECT_EQ(after.numel(), 1 << 20);
}

// ---- 2. model configs are untrusted --------------------------------------------------------------

TEST(UntrustedConfig, HugeIntegersAreRefusedNamingTheKey) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg = message_of<ValueError>([] { models::create_model("mlp_ar", {{"hidden", 4611686018427387904LL}}); });
  EXPECT_TRUE(contains(msg, "mlp_ar: config key 'hidden' must be in 1..65536, got 4611686018427387904")) << msg;
  msg = message_of<ValueError>([] { models::create_model("imagegpt", {{"layers", 100000000}}); });
  EXPECT_TRUE(contains(msg, "imagegpt: config key 'layers' must be in 0..1024, got 100000000")) << msg;
  msg = message_of<ValueError>([] { models::create_model("pixelcnn", {{"layers", 100000000}}); });
  EXPECT_TRUE(contains(msg, "'layers'")) << msg;
  msg = message_of<ValueError>([] { models::create_model("mlp_ar", {{"context", 100000}}); });
  EXPECT_TRUE(contains(msg, "'context' must be in 1..4096")) << msg;
  msg = message_of<ValueError>([] { models::create_model("imagegpt", {{"image_size", 18446744073709551615ULL}}); });
  EXPECT_TRUE(contains(msg, "'image_size'")) << msg;
  msg = message_of<ValueError>([] { models::create_model("imagegpt", {{"heads", -5}}); });
  EXPECT_TRUE(contains(msg, "'heads' must be in 1..1024, got -5")) << msg;
  EXPECT_LT(seconds_since(t0), 1.0);
  EXPECT_EQ(models::config_max("hidden"), 65536);
  EXPECT_EQ(models::config_max("some_new_key"), models::kDefaultConfigMax);
}

TEST(UntrustedConfig, InRangeSizesWhoseProductIsHugeAreRefusedWithinTheMemoryLimit) {
  // every key in range, but 784 embeddings of 256 x 65536 floats (52 GB): the limit refuses it
  // before the allocation that would cross it, naming the size keys
  reset_peak_bytes();
  const size_t before = allocator_stats().peak_bytes_in_use;
  const size_t limit = size_t{64} << 20;
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg = message_of<ValueError>([&] { models::create_model("mlp_ar", {{"hidden", 65536}, {"context", 784}}, limit); });
  EXPECT_TRUE(contains(msg, "mlp_ar: the model's config asks for more than 64 MiB")) << msg;
  EXPECT_TRUE(contains(msg, "'context' = 784")) << msg;
  EXPECT_TRUE(contains(msg, "'hidden' = 65536")) << msg;
  EXPECT_LE(allocator_stats().peak_bytes_in_use - before, limit);
  EXPECT_LT(seconds_since(t0), 5.0);
}

TEST(UntrustedConfig, EveryRegisteredModelBuildsWithItsDefaults) {
  for (const auto& m : models::registry()) EXPECT_NO_THROW(models::create_model(m.name)) << m.name;
}

TEST(UntrustedConfig, MaxMemoryComesFromTheEnvironment) {
  EXPECT_EQ(models::max_model_memory(), size_t{8} << 30);
  ::setenv("DGM_MAX_MEMORY", "512K", 1);
  EXPECT_EQ(models::max_model_memory(), size_t{512} << 10);
  std::string msg = message_of<ValueError>([] { models::create_model("mlp_ar"); });  // ~1.3 MB of parameters
  EXPECT_TRUE(contains(msg, "more than 512 KiB")) << msg;
  ::setenv("DGM_MAX_MEMORY", "lots", 1);
  msg = message_of<ValueError>([] { models::max_model_memory(); });
  EXPECT_TRUE(contains(msg, "DGM_MAX_MEMORY='lots' is not a memory size")) << msg;
  ::setenv("DGM_MAX_MEMORY", "99999999999999999999G", 1);
  EXPECT_THROW(models::max_model_memory(), ValueError);
  ::unsetenv("DGM_MAX_MEMORY");
  EXPECT_EQ(models::format_bytes(size_t{8} << 30), "8 GiB");
}

TEST(UntrustedConfig, DgmTrainWithAHugeFlagExitsWithOneLine) {
  TempDir dir("cli");
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"train", "mlp_ar", "--hidden", "4611686018427387904", "--out", dir / "run"},
        std::vector<std::string>{"train", "imagegpt", "--layers", "100000000", "--out", dir / "run"}}) {
    std::ostringstream out, err;
    const auto t0 = std::chrono::steady_clock::now();
    const int code = cli::run_cli(args, out, err);
    EXPECT_NE(code, 0) << args[1];
    const std::string e = err.str();
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 1) << e;
    EXPECT_TRUE(contains(e, args[2].substr(2))) << e;  // names the key
    EXPECT_LT(seconds_since(t0), 2.0);
    EXPECT_FALSE(fs::exists(dir / "run/checkpoint.safetensors"));
  }
}

// ---- 3. bounded decompression ------------------------------------------------------------------

namespace {

// A valid one-member gzip file: `prefix` followed by `zero_mib` MiB of zero bytes, made without
// holding them: after a full flush deflate starts afresh, so every further MiB of zeros
// compresses to the same bytes, which are repeated; the trailer's CRC-32 and length are patched.
std::string zero_bomb(const std::string& prefix, int zero_mib) {
  const std::vector<uint8_t> zeros(size_t{1} << 20, 0);
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  auto deflate_chunk = [&](const uint8_t* p, size_t n, int flush) {
    std::string out;
    std::vector<uint8_t> buf(1 << 16);
    zs.next_in = const_cast<Bytef*>(p);
    zs.avail_in = static_cast<uInt>(n);
    do {
      zs.next_out = buf.data();
      zs.avail_out = static_cast<uInt>(buf.size());
      deflate(&zs, flush);
      out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - zs.avail_out);
    } while (zs.avail_out == 0 || zs.avail_in > 0);
    return out;
  };
  std::string gz = deflate_chunk(reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size(), Z_FULL_FLUSH);
  gz += deflate_chunk(zeros.data(), zeros.size(), Z_FULL_FLUSH);
  const std::string one_mib = deflate_chunk(zeros.data(), zeros.size(), Z_FULL_FLUSH);
  EXPECT_EQ(deflate_chunk(zeros.data(), zeros.size(), Z_FULL_FLUSH), one_mib);  // the repetition holds
  for (int i = 2; i < zero_mib; ++i) gz += one_mib;  // with the first MiB and the last one: zero_mib
  gz += one_mib + deflate_chunk(nullptr, 0, Z_FINISH);
  deflateEnd(&zs);
  uLong crc = crc32(0, reinterpret_cast<const Bytef*>(prefix.data()), static_cast<uInt>(prefix.size()));
  const uLong zero_crc = crc32(0, zeros.data(), static_cast<uInt>(zeros.size()));
  for (int i = 0; i < zero_mib; ++i) crc = crc32_combine(crc, zero_crc, static_cast<z_off_t>(zeros.size()));
  const uint32_t length = static_cast<uint32_t>(prefix.size() + (uint64_t(zero_mib) << 20));
  for (int i = 0; i < 4; ++i) gz[gz.size() - 8 + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
  for (int i = 0; i < 4; ++i) gz[gz.size() - 4 + i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return gz;
}

std::string idx_header(std::vector<uint32_t> dims) {
  std::string h = {0, 0, 8, static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((d >> s) & 0xFF));
  return h;
}

}  // namespace

TEST(BoundedDecompression, TheBombMakerMakesValidGzip) {
  const std::string gz = zero_bomb("abc", 4);
  const std::vector<uint8_t> out = data::gunzip(std::vector<uint8_t>(gz.begin(), gz.end()), "small bomb", size_t{8} << 20);
  ASSERT_EQ(out.size(), 3 + (size_t{4} << 20));
  EXPECT_EQ(std::string(out.begin(), out.begin() + 3), "abc");
  EXPECT_EQ(std::count(out.begin() + 3, out.end(), 0), static_cast<std::ptrdiff_t>(size_t{4} << 20));
}

TEST(BoundedDecompression, AFileThatInflatesFarPastItsHeaderIsRefusedAtOnceInLittleMemory) {
  TempDir dir("bomb");
  // 10 images of 28x28 declared (7840 bytes), 2 GiB of zeros inflated: a ~2 MB file
  const std::string gz = zero_bomb(idx_header({10, 28, 28}), 2048);
  EXPECT_LT(gz.size(), size_t{3} << 20);
  const std::string path = dir / "train-images-idx3-ubyte.gz";
  write_bytes(path, gz);

  // in a child, so that its peak memory is its own
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    rusage r0{}, r1{};
    ::getrusage(RUSAGE_SELF, &r0);
    const auto t0 = std::chrono::steady_clock::now();
    std::string msg = message_of<FormatError>([&] { data::read_idx_images(path); });
    const double seconds = seconds_since(t0);
    ::getrusage(RUSAGE_SELF, &r1);
    const long grown_kb = r1.ru_maxrss - r0.ru_maxrss;
    const bool ok = contains(msg, "header says 10 images of 28x28 (7840 bytes) but more bytes follow") && seconds < 1.0 && grown_kb < 32 * 1024;
    if (!ok) std::fprintf(stderr, "message: %s\nseconds: %.3f, peak memory grew by %ld KB\n", msg.c_str(), seconds, grown_kb);
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "see the child's stderr above";

  // the in-memory paths are bounded the same way
  const std::vector<uint8_t> bytes(gz.begin(), gz.end());
  EXPECT_TRUE(contains(message_of<FormatError>([&] { data::decode_idx(bytes, "bomb"); }), "but more bytes follow"));
  EXPECT_TRUE(contains(message_of<FormatError>([&] { data::gunzip(bytes, "bomb", size_t{1} << 20); }),
                       "bomb: decompresses to more than 1048576 bytes"));
}

TEST(BoundedDecompression, DeclaredSizesAboveTheCapAreRefused) {
  TempDir dir("cap");
  const std::string path = dir / "big.gz";
  const std::string gz = zero_bomb(idx_header({60000, 1000, 1000}), 1);  // 60 GB declared
  write_bytes(path, gz);
  std::string msg = message_of<FormatError>([&] { data::read_idx_images(path); });
  EXPECT_TRUE(contains(msg, "header says 60000 images of 1000x1000 (60000000000 bytes), more than the limit of 2147483648 bytes")) << msg;
}

TEST(BoundedDecompression, DataIsValidatedBeforeUse) {
  TempDir dir("labels");
  data::write_idx_images(dir / "train-images-idx3-ubyte", {3, 2, 2, std::vector<uint8_t>(12, 7)});
  data::write_idx_labels(dir / "train-labels-idx1-ubyte", {1, 12, 3});
  std::string msg = message_of<FormatError>([&] { data::load_mnist(dir.path.string(), data::Split::Train); });
  EXPECT_TRUE(contains(msg, "train-labels-idx1-ubyte: label 12 of image 1 is outside 0..9")) << msg;
  data::write_idx_labels(dir / "train-labels-idx1-ubyte", {1, 2, 3});
  data::write_idx_images(dir / "test-images-idx3-ubyte", {0, 2, 2, {}});
  data::write_idx_labels(dir / "test-labels-idx1-ubyte", {});
  const data::MnistData train = data::load_mnist(dir.path.string(), data::Split::Train);
  const data::MnistData test = data::load_mnist(dir.path.string(), data::Split::Test);
  msg = message_of<FormatError>([&] { data::check_splits(train, test); });
  EXPECT_TRUE(contains(msg, "the test split has no images")) << msg;
  data::write_idx_images(dir / "test-images-idx3-ubyte", {1, 3, 3, std::vector<uint8_t>(9)});
  data::write_idx_labels(dir / "test-labels-idx1-ubyte", {0});
  msg = message_of<FormatError>([&] { data::check_splits(train, data::load_mnist(dir.path.string(), data::Split::Test)); });
  EXPECT_TRUE(contains(msg, "train images are 2x2 but the test images 3x3")) << msg;
}

TEST(AtomicWrites, WriteFileAtomicUsesAPerProcessTemporaryName) {
  TempDir dir("atomic");
  const std::string path = dir / "labels";
  write_bytes(path + ".tmp", "another writer's file");
  tools::write_file_atomic(path, std::string("new"));
  EXPECT_EQ(file_bytes(path), "new");
  EXPECT_EQ(file_bytes(path + ".tmp"), "another writer's file");  // not touched
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(getpid())));
  EXPECT_THROW(tools::write_file_atomic(dir / "no/such/folder/x", std::string("y")), IOError);
}

// ---- 4. checkpoint integrity ---------------------------------------------------------------------

TEST(CheckpointIntegrity, AFlippedBitIsRefusedNamingTheFile) {
  TempDir dir("crc");
  const std::string path = dir / "ck.safetensors";
  Array w = Array::arange(0, 64).reshape({8, 8});
  nn::save_safetensors(path, {{"w", Tensor(w)}, {"b", Tensor(Array::ones({8}))}}, {{"model", "x"}});
  nn::SafetensorsFile f = nn::load_safetensors(path);
  EXPECT_EQ(f.checksum, nn::Checksum::Verified);
  EXPECT_EQ(f.metadata, (nn::Metadata{{"model", "x"}}));  // the checksum is not user metadata
  const std::string good = file_bytes(path);
  for (size_t at : {good.size() - 1, good.size() - 40, good.size() - 8 * 4 - 256}) {
    std::string bad = good;
    bad[at] ^= 0x10;  // one bit of the tensor data
    write_bytes(path, bad);
    std::string msg = message_of<FormatError>([&] { nn::load_safetensors(path); });
    EXPECT_TRUE(contains(msg, "load_safetensors(" + path + "): the tensor data does not match its checksum")) << msg;
  }
  // a checksum that is not one
  std::string bad = good;
  const size_t key = bad.find("\"dgm.crc32\":\"");
  ASSERT_NE(key, std::string::npos);
  bad[key + 13] = 'z';
  write_bytes(path, bad);
  EXPECT_TRUE(contains(message_of<FormatError>([&] { nn::load_safetensors(path); }), "is not a CRC-32"));
}

TEST(CheckpointIntegrity, AFileWithoutChecksumStillLoads) {
  TempDir dir("nocrc");
  const std::string path = dir / "plain.safetensors";
  std::string header = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xFF);
  const float values[2] = {1.5f, -2.0f};
  bytes += header + std::string(reinterpret_cast<const char*>(values), 8);
  write_bytes(path, bytes);
  nn::SafetensorsFile f = nn::load_safetensors(path);
  EXPECT_EQ(f.checksum, nn::Checksum::Absent);
  EXPECT_EQ(f.tensors.at(0).second.array().to_vector<float>(), (std::vector<float>{1.5f, -2.0f}));
}

TEST(CheckpointIntegrity, HeaderFieldsAreUntrusted) {
  TempDir dir("header");
  auto file_with = [&](const std::string& name, std::string header, size_t data_bytes) {
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xFF);
    write_bytes(dir / name, bytes + header + std::string(data_bytes, '\0'));
    return dir / name;
  };
  // a name twice (JSON parsers keep one of them, silently)
  std::string p = file_with("dup", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_TRUE(contains(message_of<FormatError>([&] { nn::load_safetensors(p); }), "names 'a' twice"));
  p = file_with("dupmeta", R"({"__metadata__":{"k":"1","k":"2"}})", 0);
  EXPECT_TRUE(contains(message_of<FormatError>([&] { nn::load_safetensors(p); }), "names 'k' twice"));
  // a shape whose product overflows, and one with too many dims
  p = file_with("overflow", R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", 0);
  // 0 elements, but strides past 2^62: refused like any shape dgm cannot hold
  EXPECT_TRUE(contains(message_of<FormatError>([&] { nn::load_safetensors(p); }), "entry 'a': shape (4294967296, 4294967296, 0)"));
  p = file_with("overflow2", R"({"a":{"dtype":"F64","shape":[4611686018427387904,4611686018427387904,1],"data_offsets":[0,8]}})", 8);
  EXPECT_THROW(nn::load_safetensors(p), FormatError);
  std::string ones = "1";
  for (int i = 1; i < 100; ++i) ones += ",1";
  p = file_with("dims", R"({"a":{"dtype":"F32","shape":[)" + ones + R"(],"data_offsets":[0,4]}})", 4);
  EXPECT_TRUE(contains(message_of<FormatError>([&] { nn::load_safetensors(p); }), "more than the limit of 64"));
}

TEST(CheckpointIntegrity, ModuleLoadSaysWhetherTheDataWasVerified) {
  TempDir dir("module");
  auto model = models::create_model("template", {{"image_size", 4}});
  nn::save(*model, dir / "m.safetensors", {{"model", "template"}});
  nn::Checksum checksum = nn::Checksum::Absent;
  nn::Metadata meta = nn::load(*model, dir / "m.safetensors", &checksum);
  EXPECT_EQ(checksum, nn::Checksum::Verified);
  EXPECT_EQ(meta.count(nn::kChecksumKey), 0u);
}
