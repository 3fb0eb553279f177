// The whole checkpoint path, as `dgm eval` walks it, for the fuzz target fuzz_checkpoint and its
// replay in tests/test_reliability_fuzz.cpp: safetensors bytes -> metadata ("model", "config") ->
// models::create_model -> load_state_dict -> one log_prob on a tiny batch. Any file must end in a
// result or a dgm::Error; anything else (a crash, a std:: exception, a wrong output shape) is a bug.
//
// The seeds (tests/fuzz/corpus/checkpoint/<model>.safetensors, one or more per registered model,
// small configs) are written by write_checkpoint_seeds, run from the test
// FuzzRegressions.CheckpointInputs when DGM_WRITE_FUZZ_SEEDS names a folder.
#pragma once
#include <cstdint>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <dgm/autograd/tensor.h>
#include <dgm/models/registry.h>
#include <dgm/nn/serialize.h>
#include <dgm/tensor/allocator.h>
#include <dgm/tensor/errors.h>

namespace dgm::fuzz {

// Bounds that keep one input fast: a model may take 16 MiB to build and 256 MiB for its forward;
// a well-formed model larger than this is valid but too slow to fuzz, and is skipped.
inline constexpr size_t kMaxModelBytes = size_t{16} << 20;
inline constexpr size_t kMaxForwardBytes = size_t{256} << 20;
inline constexpr int64_t kMaxFuzzPixels = 1024, kMaxFuzzParameters = int64_t{1} << 20;

// Runs one checkpoint file through the path. Throws dgm::Error when the file is refused; returns
// normally when it loads and runs (or is skipped as too big); throws std::logic_error on a bug.
inline void run_checkpoint(const std::string& path) {
  const nn::SafetensorsFile file = nn::load_safetensors(path);
  const auto model_it = file.metadata.find("model");
  if (model_it == file.metadata.end()) throw FormatError("no model in the metadata");
  const auto config_it = file.metadata.find("config");
  nlohmann::json config =
      nlohmann::json::parse(config_it == file.metadata.end() ? std::string("{}") : config_it->second, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) throw FormatError("the config is not JSON");
  models::find_model(model_it->second);  // ValueError for an unknown name
  config = models::saved_config(model_it->second, config);  // as dgm eval: an old checkpoint's missing keys
  auto model = models::create_model(model_it->second, config, kMaxModelBytes);
  model->load_state_dict(file.tensors);
  const int64_t pixels = model->height() * model->width();
  if (pixels > kMaxFuzzPixels || model->num_parameters() > kMaxFuzzParameters) return;
  const int64_t levels = model->data_kind() == models::DataKind::Binary ? 2 : 256;
  std::vector<int64_t> x(static_cast<size_t>(2 * pixels));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int64_t>((i * 37 + i / 3) % static_cast<size_t>(levels));
  NoGradGuard no_grad;
  AllocationLimit forward_limit(kMaxForwardBytes, "fuzz_checkpoint: one forward");
  const Tensor log_prob = model->log_prob(from_vector(x, {2, pixels}));
  if (log_prob.shape() != Shape{2}) throw std::logic_error("log_prob returned shape " + shape_str(log_prob.shape()) + ", expected (2,)");
}

// Small configs, one or more per model, for the seeds; a model not listed gets {"image_size": 4}.
inline std::vector<std::pair<std::string, nlohmann::json>> checkpoint_seed_configs() {
  std::vector<std::pair<std::string, nlohmann::json>> seeds = {
      {"independent", {{"image_size", 4}}},
      {"independent", {{"image_size", 4}, {"data", "8-bit"}}},
      {"markov1", {{"image_size", 4}}},
      {"mlp_ar", {{"hidden", 8}, {"context", 2}, {"image_size", 4}}},
      {"mlp_ar", {{"hidden", 8}, {"context", 3}, {"head", "logistic_mixture"}, {"mixtures", 2}, {"image_size", 4}}},
      {"imagegpt", {{"embed_dim", 8}, {"heads", 2}, {"layers", 1}, {"image_size", 4}}},
      {"pixelcnn", {{"channels", 4}, {"layers", 1}, {"kernel_a", 3}, {"kernel_b", 3}, {"image_size", 4}}},
      {"template", {{"image_size", 4}}},
      {"realnvp", {{"filters", 4}, {"blocks", 1}, {"checkerboard", 1}, {"channel", 1}, {"image_size", 4}}},
      {"maf", {{"layers", 1}, {"hidden", 8}, {"image_size", 4}}},
  };
  for (const models::ModelInfo& m : models::registry()) {
    bool listed = false;
    for (const auto& [name, config] : seeds) listed = listed || name == m.name;
    if (!listed) seeds.emplace_back(m.name, nlohmann::json{{"image_size", 4}});
  }
  return seeds;
}

// Writes <dir>/<model>[_<i>].safetensors for every seed config, and of each model's first one a copy
// without its checksum (<model>_nocrc.safetensors: the key renamed, so that mutated tensor data
// reaches the forward instead of stopping at the CRC check); returns the paths.
inline std::vector<std::string> write_checkpoint_seeds(const std::string& dir) {
  std::vector<std::string> paths;
  std::string previous;
  int count = 0;
  for (const auto& [name, config] : checkpoint_seed_configs()) {
    count = name == previous ? count + 1 : 0;
    previous = name;
    manual_seed(1);
    auto model = models::create_model(name, config);
    const std::string path = dir + "/" + name + (count ? "_" + std::to_string(count) : "") + ".safetensors";
    nn::save(*model, path, {{"model", name}, {"config", model->config().dump()}});
    paths.push_back(path);
    if (count == 0) {
      std::ifstream in(path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t key = bytes.find(std::string("\"") + nn::kChecksumKey + "\"");
      if (key == std::string::npos) throw std::logic_error("no checksum key in " + path);
      bytes.replace(key + 1, 9, "dgm.nocrc");  // same length: the header stays valid
      const std::string nocrc = dir + "/" + name + "_nocrc.safetensors";
      std::ofstream(nocrc, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      paths.push_back(nocrc);
    }
  }
  return paths;
}

}  // namespace dgm::fuzz
