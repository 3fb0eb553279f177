#include <dgm/models/registry.h>

#include <algorithm>

#include <dgm/models/config.h>
#include <dgm/tensor/allocator.h>

#include <dgm/models/baselines.h>
#include <dgm/models/flow_models.h>
#include <dgm/models/imagegpt.h>
#include <dgm/models/mlp_ar.h>
#include <dgm/models/pixelcnn.h>
#include <dgm/models/template_model.h>

namespace dgm::models {

// config[key] if it is an integer, else the model's default (the range checks come later, in create).
static double size_of(const nlohmann::json& config, const char* key, double fallback) {
  if (!config.is_object()) return fallback;
  auto it = config.find(key);
  return it != config.end() && it->is_number_integer() ? static_cast<double>(it->get<int64_t>()) : fallback;
}

// Parameter counts from the configs (the layers' weights; biases and norms left out: a lower bound).
static double mlp_ar_parameters(const nlohmann::json& c) {
  const double h = size_of(c, "hidden", 256), d = size_of(c, "context", 2), k = size_of(c, "mixtures", 5);
  return h * (d * 256 + h + std::max(256.0, 3 * k));
}
static double imagegpt_parameters(const nlohmann::json& c) {
  const double d = size_of(c, "embed_dim", 64), layers = size_of(c, "layers", 2), side = size_of(c, "image_size", 28);
  return layers * 8 * d * d + side * side * d;  // per block: qkv 3d^2, proj d^2, MLP 2 x 2d^2; positions
}
static double pixelcnn_parameters(const nlohmann::json& c) {
  const double ch = size_of(c, "channels", 64), layers = size_of(c, "layers", 5), ka = size_of(c, "kernel_a", 7), kb = size_of(c, "kernel_b", 3);
  return ch * ka * ka + layers * ch * ch * kb * kb;
}

const std::vector<ModelInfo>& registry() {
  // One line per model: name, one-line description, the function that builds it from a config, and
  // optionally the training defaults of `dgm train NAME` (1 epoch, lr 1e-3 when left out).
  static const std::vector<ModelInfo> models = {
      {"independent", "independent pixels, exact MLE by counting (lecture 1 histogram baseline); fit() or train", IndependentPixels::create},
      {"markov1", "first-order Markov chain over raster pixels, shared over positions, exact MLE by counting", MarkovChain::create},
      {"mlp_ar", "MLP autoregressive model on 8-bit pixels with a Markov context (lecture 1), categorical or logistic-mixture head",
       MLPAR::create, {}, mlp_ar_parameters},
      // conditional: 10 epochs (6 give 89.2% as a classifier, 10 give 92.9%; models/README.md)
      {"imagegpt", "ImageGPT: causal transformer over binarized raster pixels, KV-cache sampling (homework 1)", ImageGPT::create,
       {.epochs = 6, .lr = 3e-3, .conditional_epochs = 10}, imagegpt_parameters},
      // conditional: 6 epochs (4 give 89.1% as a classifier, 6 give 91.5%; models/README.md)
      {"pixelcnn", "PixelCNN: masked convolutions (A then B) over binarized pixels (homework 1)", PixelCNN::create,
       {.epochs = 1, .lr = 1e-3, .conditional_epochs = 6}, pixelcnn_parameters},
      {"realnvp", "RealNVP: multi-scale affine couplings (checkerboard, squeeze, channel) with residual CNN conditioners, ActNorm, a learned prior, variationally dequantised 8-bit pixels (lecture 2, homework 1)",
       RealNVP::create, {.epochs = 20, .lr = 3e-3, .lr_schedule = "cosine"}, nullptr,
       // checkpoints from before these keys: one scale, affine couplings, no learned prior, uniform noise, alpha 0.05
       {{"scales", 1}, {"mixtures", 0}, {"learned_prior", false}, {"input_affine", false}, {"dequantization", "uniform"}, {"logit_alpha", 0.05}}},  // models/README.md: bits/dim per setting
      {"maf", "MAF: MADE Gaussian autoregressive layers over the flattened image, dequantised 8-bit pixels (lecture 2)", MAF::create,
       {.epochs = 8, .lr = 1e-3, .lr_schedule = "cosine"}, nullptr,
       {{"max_log_scale", 0}, {"logit_alpha", 0.05}}},  // checkpoints from before the bound were trained unbounded (the loss became inf at step 413 at this lr) and with alpha 0.05; 1.950 bits/dim now (models/README.md)
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

nlohmann::json saved_config(const std::string& name, nlohmann::json config) {
  if (!config.is_object()) return config;
  for (const auto& [key, value] : find_model(name).saved_defaults.items())
    if (!config.contains(key)) config[key] = value;
  return config;
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
  // Refused at once, before any allocation, when the sizes alone are too much. (A key out of its
  // range is left to create(), whose message names the range.)
  bool in_range = config.is_object();
  if (in_range)
    for (const auto& [key, value] : config.items())
      if (value.is_number_integer() && (value.get<int64_t>() < 0 || value.get<int64_t>() > config_max(key))) in_range = false;
  if (info.parameters && in_range) {
    const double bytes = info.parameters(config) * 4;
    if (!(bytes <= static_cast<double>(limit)))
      throw ValueError(cat(name, ": the model's config asks for more than ", format_bytes(limit), " of parameters (about ",
                           format_bytes(static_cast<size_t>(std::min(bytes, 1e18))),
                           "; DGM_MAX_MEMORY or --max-memory raise the limit); its size keys: ", size_keys(config)));
  }
  try {
    AllocationLimit budget(limit, cat(name, ": building the model"));  // counts every tensor the constructor makes
    return info.create(config);
  } catch (const MemoryError& e) {
    throw ValueError(cat(name, ": the model's config asks for more than ", format_bytes(limit), " of parameters and buffers",
                         " (the limit for building a model; DGM_MAX_MEMORY or --max-memory raise it); its size keys: ", size_keys(config)));
  }
}

}  // namespace dgm::models
