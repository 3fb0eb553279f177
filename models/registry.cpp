#include "models/registry.h"

#include "models/baselines.h"
#include "models/flow_models.h"
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
      {"realnvp", "RealNVP: multi-scale affine couplings (checkerboard, squeeze, channel) with residual CNN conditioners, ActNorm, dequantised 8-bit pixels (lecture 2, homework 1)",
       RealNVP::create, {.epochs = 1, .lr = 1e-3}},  // 281 steps of 32: ~20 min at the 4.5 s a step measured on the busy 2-core machine
      {"maf", "MAF: MADE Gaussian autoregressive layers over the flattened image, dequantised 8-bit pixels (lecture 2)", MAF::create,
       {.epochs = 10, .lr = 1e-3}},  // not yet timed
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

std::shared_ptr<GenerativeModel> create_model(const std::string& name, const nlohmann::json& config) { return find_model(name).create(config); }

}  // namespace dgm::models
