// The fuzzers' inputs as regression tests: every file of the seed corpora (tests/fuzz/corpus/<name>/)
// and every input a fuzzer once crashed on (tests/fuzz/regressions/<name>/, committed with the fix)
// goes through the same calls as the fuzz target and must give a result or a dgm::Error — nothing
// else. A new crash: copy build-sanitize/crash-... to tests/fuzz/regressions/<name>/ and fix the reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <dgm/data/idx.h>
#include <dgm/nn/serialize.h>
#include <dgm/tensor/errors.h>
#include <dgm/tests/fuzz/checkpoint_harness.h>
#include <dgm/tools/cli/args.h>

using namespace dgm;
namespace fs = std::filesystem;

namespace {

const fs::path kFuzzDir = fs::path(DGM_SOURCE_DIR) / "tests" / "fuzz";

// The inputs of one target: its seed corpus and its regressions.
std::vector<fs::path> inputs_of(const std::string& name) {
  std::vector<fs::path> files;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = kFuzzDir / kind / name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Returns "" for a parsed input or a dgm::Error, else what went wrong.
template <class F>
std::string outcome(F&& f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    return std::string("a non-dgm exception: ") + e.what();
  }
  return "";
}

}  // namespace

TEST(FuzzRegressions, IdxInputs) {
  const auto files = inputs_of("idx");
  ASSERT_FALSE(files.empty()) << kFuzzDir;
  for (const auto& f : files) {
    const std::string b = bytes_of(f);
    std::vector<uint8_t> bytes(b.begin(), b.end());
    EXPECT_EQ(outcome([&] {
                // as fuzz_idx: the bounded reader, then the in-memory gunzip + parse, which must agree
                const data::IdxArray a = data::decode_idx(bytes, "fuzz");
                size_t n = 1;
                for (auto d : a.dims) n *= static_cast<size_t>(d);
                if (n != a.data.size()) throw std::logic_error("inconsistent array");
                if (bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b) bytes = data::gunzip(bytes, "fuzz.gz");
                const data::IdxArray b = data::parse_idx(bytes, "fuzz");
                if (b.dims != a.dims || b.data != a.data) throw std::logic_error("decode_idx and parse_idx disagree");
              }),
              "")
        << f;
  }
}

TEST(FuzzRegressions, SafetensorsInputs) {
  const auto files = inputs_of("safetensors");
  ASSERT_FALSE(files.empty()) << kFuzzDir;
  for (const auto& f : files) {
    EXPECT_EQ(outcome([&] {
                const nn::SafetensorsFile file = nn::load_safetensors(f.string());
                size_t bytes = 0;
                for (const auto& [name, t] : file.tensors) bytes += static_cast<size_t>(t.numel()) * itemsize(t.dtype());
                if (bytes > fs::file_size(f)) throw std::logic_error("more tensor data than file");
              }),
              "")
        << f;
  }
  // The corpus holds valid files too: they load.
  EXPECT_EQ(nn::load_safetensors((kFuzzDir / "corpus/safetensors/mixed.safetensors").string()).tensors.size(), 3u);
  EXPECT_THROW(nn::load_safetensors((kFuzzDir / "corpus/safetensors/huge_claim.safetensors").string()), FormatError);
  EXPECT_THROW(nn::load_safetensors((kFuzzDir / "corpus/safetensors/huge_header_len.safetensors").string()), FormatError);
}

TEST(FuzzRegressions, ArgsInputs) {
  const auto files = inputs_of("args");
  ASSERT_FALSE(files.empty()) << kFuzzDir;
  for (const auto& f : files) {
    // Split on NUL, newline and space, as fuzz_args does.
    std::vector<std::string> words(1);
    for (char c : bytes_of(f)) {
      if (c == '\0' || c == '\n' || c == ' ') {
        if (!words.back().empty()) words.emplace_back();
      } else {
        words.back().push_back(c);
      }
    }
    if (words.back().empty()) words.pop_back();
    EXPECT_EQ(outcome([&] {
                const cli::CliArgs a = cli::parse_args(words);
                if (!a.help && (a.command == cli::Command::None || a.batch < 1 || !(a.lr > 0)))
                  throw std::logic_error("parsed into an unusable state");
                (void)cli::usage(a.command);
              }),
              "")
        << f;
  }
}

TEST(FuzzRegressions, CheckpointInputs) {
  // DGM_WRITE_FUZZ_SEEDS=tests/fuzz/corpus/checkpoint build/dgm_tests --gtest_filter=*CheckpointInputs
  // (re)writes the seeds: a small checkpoint of every registered model.
  if (const char* dir = std::getenv("DGM_WRITE_FUZZ_SEEDS"); dir && *dir) {
    fs::create_directories(dir);
    for (const std::string& p : fuzz::write_checkpoint_seeds(dir)) EXPECT_LT(fs::file_size(p), 200u * 1024) << p;
  }
  const auto files = inputs_of("checkpoint");
  ASSERT_FALSE(files.empty()) << kFuzzDir;
  for (const auto& f : files) EXPECT_EQ(outcome([&] { fuzz::run_checkpoint(f.string()); }), "") << f;
  // Every registered model has a seed, and the seeds load and run (they are real checkpoints).
  for (const models::ModelInfo& m : models::registry()) {
    const fs::path seed = kFuzzDir / "corpus/checkpoint" / (m.name + ".safetensors");
    ASSERT_TRUE(fs::exists(seed)) << "no fuzz seed for model " << m.name << "; write the seeds as said above";
    EXPECT_NO_THROW(fuzz::run_checkpoint(seed.string())) << seed;
  }
}
