#include "models/registry.h"

#include <algorithm>

#include "models/config.h"
#include "tensor/allocator.h"

#include "models/baselines.h"
#include "models/imagegpt.h"
#include "models/mlp_ar.h"
#include "models/pixelcnn.h"
#include "models/template_model.h"

namespace dgm::models {

const std::vector<ModelInfo>& registry() {
  // One line per model: name, one-line description, the function that builds it from a config, and
  // optionally the training defaults of `dgm train NAME` (1 epoch, lr 1e-3 when left out).
  static const std::vector<ModelInfo> models = {
      {"independent", "independent pixels, exact MLE by counting (lecture 1 histogram baseline); fit() or train", IndependentPixels::create},
      {"markov1", "first-order Markov chain over raster pixels, shared over positions, exact MLE by counting", MarkovChain::create},
      {"mlp_ar", "MLP autoregressive model on 8-bit pixels with a Markov context (lecture 1), categorical or logistic-mixture head",
       MLPAR::create},
      {"imagegpt", "ImageGPT: causal transformer over binarized raster pixels, KV-cache sampling (homework 1)", ImageGPT::create,
       {.epochs = 6, .lr = 3e-3}},
      {"pixelcnn", "PixelCNN: masked convolutions (A then B) over binarized pixels (homework 1)", PixelCNN::create},
      {"template", "independent Bernoulli logits: the template for adding a model (models/template_model.h)", TemplateModel::create},
  };
  return models;
}

const ModelInfo& find_model(const std::string& name) {
  std::string known;
  for (const ModelInfo& m : registry()) {
    if (m.name == name) return m;
    known += (known.empty() ? "" : ", ") + m.name;
  }
  throw ValueError(cat("unknown model '", name, "' (known models: ", known, ")"));
}

// The config's integer keys, largest first: the sizes to lower when a model does not fit.
static std::string size_keys(const nlohmann::json& config) {
  std::vector<std::pair<int64_t, std::string>> sizes;
  if (config.is_object())
    for (const auto& [key, value] : config.items())
      if (value.is_number_integer()) sizes.emplace_back(value.get<int64_t>(), key);
  std::sort(sizes.rbegin(), sizes.rend());
  std::string s;
  for (const auto& [value, key] : sizes) s += cat(s.empty() ? "" : ", ", "'", key, "' = ", value);
  return s.empty() ? "none given" : s;
}

std::shared_ptr<GenerativeModel> create_model(const std::string& name, const nlohmann::json& config, size_t max_memory) {
  const ModelInfo& info = find_model(name);
  const size_t limit = max_memory > 0 ? max_memory : max_model_memory();
  try {
    AllocationLimit budget(limit, cat(name, ": building the model"));  // counts every tensor the constructor makes
    return info.create(config);
  } catch (const MemoryError& e) {
    throw ValueError(cat(name, ": the model's config asks for more than ", format_bytes(limit), " of parameters and buffers",
                         " (the limit for building a model; DGM_MAX_MEMORY raises it); its size keys: ", size_keys(config)));
  }
}

}  // namespace dgm::models
