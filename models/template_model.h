// The template for a new model: copy this file and template_model.cpp, rename, and add one line to
// models/registry.cpp. It is the smallest model that trains: every pixel an independent Bernoulli
// with its own logit,
//
//   p(x | theta) = prod_j sigmoid(theta_j)^{x_j} (1 - sigmoid(theta_j))^{1 - x_j},
//   log p(x | theta) = sum_j [x_j theta_j - softplus(theta_j)].
//
// What a model provides (models/model.h): log_prob (per image, in nats), sample, data_kind, config,
// and a static create(config) for the registry. loss(batch, gen) defaults to -mean(log_prob) / D; complete()
// to a "not supported" error (an autoregressive model derives from AutoregressiveModel instead and
// gets sampling and autocompletion from its conditionals, see models/autoregressive.h).
//
// Config: {"image_size": 28}.
#pragma once
#include <dgm/models/model.h>

namespace dgm::models {

class TemplateModel : public GenerativeModel {
 public:
  explicit TemplateModel(int64_t image_size = 28);
  // Reads the config (unknown keys are errors) and builds the model: what the registry calls.
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);

  Tensor log_prob(const Batch& batch) override;
  Tensor sample(int64_t n, Generator& gen, const SampleOptions& options = {}) override;
  DataKind data_kind() const override { return DataKind::Binary; }
  int64_t height() const override { return image_size_; }
  int64_t width() const override { return image_size_; }
  nlohmann::json config() const override { return {{"image_size", image_size_}}; }

  Tensor logits;  // theta: (D), zeros (every pixel 1/2) until trained

 private:
  int64_t image_size_;
};

}  // namespace dgm::models
