// nn/serialize.h: safetensors checkpoints round-trip exactly, interoperate with a reader/writer
// written independently in Python (json + numpy), and every kind of corrupt file is refused with a
// FormatError naming the file and the entry.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <dgm/nn/nn.h>

namespace {

using namespace dgm;
namespace fs = std::filesystem;

class NnSerialize : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dgm_nn_serialize_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A file made of an 8-byte length, `header` (not padded) and `data`.
  std::string write_raw(const std::string& name, const std::string& header, const std::string& data, int64_t length_override = -1) {
    std::string p = path(name);
    std::ofstream f(p, std::ios::binary);
    uint64_t n = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
    f << header << data;
    return p;
  }

  // Asserts that loading `p` throws FormatError mentioning every piece of `parts` and the path.
  void expect_format_error(const std::string& p, const std::vector<std::string>& parts) {
    try {
      nn::load_safetensors(p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const FormatError& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << msg;
      for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' not in: " << msg;
    }
  }

  fs::path dir_;
};

std::string bytes_of(const std::vector<float>& v) { return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)); }

// ---- round trips -------------------------------------------------------------------------------------------
TEST_F(NnSerialize, RoundTripsEveryDtypeBitForBit) {
  Generator g(1);
  Tensor f32 = randn({3, 4}, {}, &g);
  f32.data<float>()[0] = -0.0f;
  f32.data<float>()[1] = std::numeric_limits<float>::denorm_min();
  f32.data<float>()[2] = std::numeric_limits<float>::infinity();
  f32.data<float>()[3] = std::numeric_limits<float>::quiet_NaN();
  Tensor f64 = randn({2, 1, 3}, {.dtype = DType::Float64}, &g);
  Tensor i64 = from_vector(std::vector<int64_t>{INT64_MIN, -1, 0, INT64_MAX}, {4});
  Tensor flags = from_vector(std::vector<bool>{true, false, true}, {3});
  Tensor scalar = scalar_tensor(2.5, {.dtype = DType::Float64});
  Tensor empty_t = zeros({0, 5});
  Tensor strided = transpose(randn({3, 2}, {}, &g), 0, 1);  // saved as its contiguous copy
  nn::NamedTensors in{{"w", f32}, {"d", f64}, {"idx", i64}, {"flags", flags}, {"s", scalar}, {"empty", empty_t}, {"t", strided}};
  nn::Metadata meta{{"model", "ImageGPT"}, {"config", R"({"d": 64, "layers": 2})"}};
  nn::save_safetensors(path("a.safetensors"), in, meta);

  nn::SafetensorsFile out = nn::load_safetensors(path("a.safetensors"));
  EXPECT_EQ(out.metadata, meta);
  ASSERT_EQ(out.tensors.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    SCOPED_TRACE(in[i].first);
    const Tensor &a = in[i].second, &b = out.tensors[i].second;
    EXPECT_EQ(out.tensors[i].first, in[i].first);  // file order = given order
    EXPECT_EQ(a.shape(), b.shape());
    EXPECT_EQ(a.dtype(), b.dtype());
    Array ac = a.array().contiguous();
    EXPECT_EQ(std::memcmp(ac.raw_data(), b.array().raw_data(), a.numel() * itemsize(a.dtype())), 0);
  }
  EXPECT_FALSE(fs::exists(path("a.safetensors") + ".tmp." + std::to_string(::getpid())));  // renamed, not left behind

  // the layout: N is a multiple of 8, tensors packed in order from offset 0
  std::ifstream f(path("a.safetensors"), std::ios::binary);
  unsigned char len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  std::string header(n, ' ');
  f.read(header.data(), static_cast<std::streamsize>(n));
  EXPECT_EQ(header.rfind("{\"__metadata__\":", 0), 0u) << header;
  EXPECT_NE(header.find(R"("w":{"dtype":"F32","shape":[3,4],"data_offsets":[0,48]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("d":{"dtype":"F64","shape":[2,1,3],"data_offsets":[48,96]})"), std::string::npos) << header;
  EXPECT_NE(header.find(R"("s":{"dtype":"F64","shape":[],"data_offsets":[131,139]})"), std::string::npos) << header;
  EXPECT_EQ(fs::file_size(path("a.safetensors")), 8 + n + 48 + 48 + 32 + 3 + 8 + 0 + 24);  // the data: 163 bytes
}

struct Net : nn::Module {
  std::shared_ptr<nn::Linear> fc;
  std::shared_ptr<nn::MaskedConv2d> conv;
  explicit Net(int64_t hidden = 4) : Module("Net") {
    fc = register_module("fc", std::make_shared<nn::Linear>(3, hidden));
    conv = register_module("conv", std::make_shared<nn::MaskedConv2d>('A', 1, 2, 3));
  }
};

TEST_F(NnSerialize, ModuleSaveLoadAndMismatches) {
  manual_seed(1);
  Net a;
  manual_seed(2);
  Net b;
  nn::save(a, path("net.safetensors"), {{"model", "Net"}});
  nn::Metadata meta = nn::load(b, path("net.safetensors"));
  EXPECT_EQ(meta.at("model"), "Net");
  auto sa = a.state_dict(), sb = b.state_dict();
  ASSERT_EQ(sa.size(), 5u);  // fc.weight, fc.bias, conv.weight, conv.bias, conv.mask
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_EQ(sa[i].second.to_vector<float>(), sb[i].second.to_vector<float>()) << sa[i].first;

  Net wider(5);
  try {
    nn::load(wider, path("net.safetensors"));
    ADD_FAILURE() << "loaded a checkpoint of the wrong shape";
  } catch (const ShapeError& e) {
    std::string msg = e.what();
    for (const char* part : {"net.safetensors", "'fc.weight'", "(4, 3)", "(5, 3)"}) EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
  nn::save_safetensors(path("partial.safetensors"), {{"fc.weight", a.fc->weight}});
  EXPECT_THROW(nn::load(b, path("partial.safetensors")), ValueError);
}

TEST_F(NnSerialize, WriteFailuresAreIOErrorsAndReplaceIsAtomic) {
  EXPECT_THROW(nn::save_safetensors(path("no/such/dir/x.safetensors"), {{"a", zeros({2})}}), IOError);
  EXPECT_THROW(nn::load_safetensors(path("missing.safetensors")), IOError);
  nn::save_safetensors(path("x.safetensors"), {{"a", zeros({2})}});
  nn::save_safetensors(path("x.safetensors"), {{"b", ones({3})}});  // replaced whole
  nn::SafetensorsFile f = nn::load_safetensors(path("x.safetensors"));
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_EQ(f.tensors[0].first, "b");
  EXPECT_THROW(nn::save_safetensors(path("y.safetensors"), {{"a", zeros({1})}, {"a", zeros({1})}}), ValueError);
  EXPECT_THROW(nn::save_safetensors(path("y.safetensors"), {{"__metadata__", zeros({1})}}), ValueError);
}

// ---- corrupt files -------------------------------------------------------------------------------------------
TEST_F(NnSerialize, RefusesTruncatedFiles) {
  {
    std::ofstream f(path("short.safetensors"), std::ios::binary);
    f << "abc";
  }
  expect_format_error(path("short.safetensors"), {"3 bytes", "too short"});
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  expect_format_error(write_raw("len.safetensors", header, bytes_of({1, 2}), 1000), {"header length 1000", "exceeds"});
  expect_format_error(write_raw("huge.safetensors", header, bytes_of({1, 2}), int64_t{1} << 62), {"exceeds"});
  // a file cut inside the data: the entry's region runs past the end
  nn::save_safetensors(path("ok.safetensors"), {{"w", ones({4})}});
  fs::resize_file(path("ok.safetensors"), fs::file_size(path("ok.safetensors")) - 3);
  expect_format_error(path("ok.safetensors"), {"entry 'w'", "outside", "truncated"});
  // a file cut inside the header
  nn::save_safetensors(path("ok2.safetensors"), {{"w", ones({4})}});
  fs::resize_file(path("ok2.safetensors"), 20);
  expect_format_error(path("ok2.safetensors"), {"exceeds"});
}

TEST_F(NnSerialize, RefusesAHeaderAboveTheSizeCap) {
  // a sparse 120 MB file claiming a 110 MB header: refused before reading it
  std::string p = write_raw("cap.safetensors", "{}", "", 110ll << 20);
  fs::resize_file(p, 120ull << 20);
  expect_format_error(p, {"above the limit"});
}

TEST_F(NnSerialize, RefusesBadJson) {
  expect_format_error(write_raw("json.safetensors", R"({"w": {"dtype": "F32", )", ""), {"not valid JSON"});
  expect_format_error(write_raw("array.safetensors", "[1, 2]", ""), {"must be a JSON object"});
  expect_format_error(write_raw("entry.safetensors", R"({"w": 3})", ""), {"entry 'w'", "expected an object"});
  expect_format_error(write_raw("meta.safetensors", R"({"__metadata__": {"epoch": 3}})", ""), {"'__metadata__'", "'epoch'", "must be a string"});
  expect_format_error(write_raw("nodtype.safetensors", R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", bytes_of({1})), {"entry 'w'", "dtype"});
}

TEST_F(NnSerialize, RefusesWrongDtypesAndShapes) {
  expect_format_error(write_raw("f16.safetensors", R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\0')),
                      {"entry 'w'", "unsupported dtype 'F16'"});
  expect_format_error(write_raw("neg.safetensors", R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", bytes_of({1, 2})),
                      {"entry 'w'", "non-negative integers"});
  expect_format_error(write_raw("frac.safetensors", R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", bytes_of({1, 2})),
                      {"entry 'w'", "non-negative integers"});
  // shape (3,) of F32 needs 12 bytes, the offsets give 8
  expect_format_error(write_raw("size.safetensors", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", bytes_of({1, 2})),
                      {"entry 'w'", "span 8 bytes", "needs 12"});
  // a shape whose size overflows 64 bits
  expect_format_error(
      write_raw("overflow.safetensors", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", bytes_of({1, 2})),
      {"entry 'w'", "more bytes than"});
  expect_format_error(write_raw("bool.safetensors", R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2)),
                      {"entry 'b'", "BOOL value 2"});
}

TEST_F(NnSerialize, RefusesBadOffsets) {
  std::string two = bytes_of({1, 2});
  expect_format_error(write_raw("range.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", two),
                      {"entry 'w'", "[4, 12]", "outside the 8 bytes"});
  expect_format_error(write_raw("reversed.safetensors", R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", two), {"entry 'w'", "[8, 4]"});
  expect_format_error(write_raw("shape.safetensors", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", two),
                      {"entry 'w'", "data_offsets"});
  expect_format_error(
      write_raw("overlap.safetensors",
                R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                bytes_of({1, 2, 3})),
      {"'b'", "overlaps entry 'a'"});
  expect_format_error(write_raw("gap.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", two),
                      {"bytes [0, 4)", "belong to no tensor"});
  expect_format_error(write_raw("trailing.safetensors", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", two),
                      {"8 bytes", "cover only 4"});
}

TEST_F(NnSerialize, AcceptsAHandWrittenFileWithOutOfOrderEntries) {
  // entries listed in a different order from their data, an unpadded header, a metadata block
  std::string header =
      R"({"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  int64_t seven = 7;
  nn::SafetensorsFile f =
      nn::load_safetensors(write_raw("hand.safetensors", header, bytes_of({1.5f, -2}) + std::string(reinterpret_cast<char*>(&seven), 8)));
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].first, "b");
  EXPECT_EQ(f.tensors[0].second.to_vector<int64_t>(), std::vector<int64_t>{7});
  EXPECT_EQ(f.tensors[1].second.to_vector<float>(), (std::vector<float>{1.5f, -2}));
  EXPECT_EQ(f.metadata.at("format"), "pt");
}

// ---- interoperability with an independent Python reader / writer (json + numpy) --------------------------------
bool have_python_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") == 0; }

std::string run(const std::string& cmd) {
  std::string out;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  ::pclose(p);
  return out;
}

TEST_F(NnSerialize, PythonReadsWhatDgmWrites) {
  if (!have_python_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  nn::save_safetensors(path("w.safetensors"),
                       {{"w", tensor({{1.5, -2}, {0.25, 8}})},
                        {"d", tensor({3.0}, {.dtype = DType::Float64})},
                        {"i", from_vector(std::vector<int64_t>{-5, 1LL << 40}, {2})},
                        {"b", from_vector(std::vector<bool>{true, false}, {2})}},
                       {{"model", "demo"}});
  std::ofstream(path("read.py")) << R"(import json, struct, sys
import numpy as np
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
kinds = {'F32': '<f4', 'F64': '<f8', 'I64': '<i8', 'BOOL': '?'}
print('meta', header.pop('__metadata__')['model'], n % 8)
for name, info in header.items():
    b, e = info['data_offsets']
    a = np.frombuffer(data[b:e], dtype=kinds[info['dtype']]).reshape(info['shape'])
    print(name, info['dtype'], list(a.shape), ' '.join(repr(x) for x in a.flatten().tolist()))
)";
  std::string out = run("/usr/bin/python3 " + path("read.py") + " " + path("w.safetensors"));
  EXPECT_EQ(out,
            "meta demo 0\n"
            "w F32 [2, 2] 1.5 -2.0 0.25 8.0\n"
            "d F64 [1] 3.0\n"
            "i I64 [2] -5 1099511627776\n"
            "b BOOL [2] True False\n");
}

TEST_F(NnSerialize, DgmReadsWhatPythonWrites) {
  if (!have_python_numpy()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  // written like the reference: sorted keys, header padded with spaces to a multiple of 8
  std::ofstream(path("write.py")) << R"(import json, struct, sys
import numpy as np
tensors = {'emb': np.arange(6, dtype='<f4').reshape(2, 3) / 4, 'pos': np.array([[-1.25]], dtype='<f8'),
           'tokens': np.array([3, -9, 2**50], dtype='<i8'), 'mask': np.array([[True], [False]])}
header, blobs, off = {'__metadata__': {'source': 'numpy'}}, [], 0
for name in sorted(tensors):
    a = tensors[name]
    kind = {'float32': 'F32', 'float64': 'F64', 'int64': 'I64', 'bool': 'BOOL'}[str(a.dtype)]
    header[name] = {'dtype': kind, 'shape': list(a.shape), 'data_offsets': [off, off + a.nbytes]}
    blobs.append(a.tobytes()); off += a.nbytes
h = json.dumps(header).encode()
h += b' ' * ((8 - len(h) % 8) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + b''.join(blobs))
)";
  ASSERT_EQ(std::system(("/usr/bin/python3 " + path("write.py") + " " + path("py.safetensors")).c_str()), 0);
  nn::SafetensorsFile f = nn::load_safetensors(path("py.safetensors"));
  EXPECT_EQ(f.metadata.at("source"), "numpy");
  std::map<std::string, Tensor> t(f.tensors.begin(), f.tensors.end());
  EXPECT_EQ(t.at("emb").shape(), (Shape{2, 3}));
  EXPECT_EQ(t.at("emb").to_vector<float>(), (std::vector<float>{0, 0.25, 0.5, 0.75, 1, 1.25}));
  EXPECT_EQ(t.at("pos").dtype(), DType::Float64);
  EXPECT_EQ(t.at("pos").item(), -1.25);
  EXPECT_EQ(t.at("tokens").to_vector<int64_t>(), (std::vector<int64_t>{3, -9, int64_t{1} << 50}));
  EXPECT_EQ(t.at("mask").dtype(), DType::Bool);
  EXPECT_EQ(t.at("mask").shape(), (Shape{2, 1}));
  EXPECT_EQ(t.at("mask").to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
}

}  // namespace
