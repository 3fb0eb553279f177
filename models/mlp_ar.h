// The MLP autoregressive model of lecture 1 (slide "Autoregressive models: MLP"), on 8-bit images.
//
// Markov assumption: each raster pixel depends only on the d previous ones,
//   p(x_j | x_{1:j-1}, theta) = p(x_j | x_{j-d:j-1}, theta),     x_j in {0, ..., 255},
//   h_j = MLP_theta(x_{j-1}, ..., x_{j-d}),   pi_j = softmax(h_j),   p(x_j | ...) = Categorical(pi_j).
//
// The first layer is a linear map of the one-hot context, written as a sum of one embedding table
// per context position (the same function; it is how pytorch_ref.py's MLPAR writes it):
//   a_j = b + sum_{k<d} E_k[x_{j-k-1}]        (pixels before the image start are 0, as F.pad)
//   h_j = W3 relu(W2 relu(a_j) + b2) + b3     -> 256 logits
//
// "Is it possible to model continuous distributions instead?" — head = "logistic_mixture" replaces
// the 256-way softmax by PixelCNN++'s discretised mixture of `mixtures` logistics
// (nn::DiscretizedLogisticMixture): the last layer gives 3 numbers per component (mixture logit,
// mean, log scale), 3 * mixtures outputs instead of 256, and nearby values share probability mass.
//
// Config: {"hidden": 256, "context": 2, "head": "categorical" | "logistic_mixture", "mixtures": 5,
//          "image_size": 28}. Parameter names follow MLPAR: emb.<k>.weight, b, l2.*, l3.*.
#pragma once
#include <vector>

#include <dgm/models/autoregressive.h>
#include <dgm/nn/layers.h>

namespace dgm::models {

struct MLPARConfig {
  int64_t hidden = 256;
  int64_t context = 2;
  std::string head = "categorical";  // or "logistic_mixture"
  int64_t mixtures = 5;
  int64_t image_size = 28;

  static MLPARConfig from_json(const nlohmann::json& config);
  nlohmann::json to_json() const;
};

class MLPAR : public AutoregressiveModel {
 public:
  explicit MLPAR(MLPARConfig config = {});
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);

  // x: (B, D) int64 -> (B, D, P): the head's parameters for every pixel, P = 256 logits or
  // 3 * mixtures mixture parameters.
  Tensor head_params(const Tensor& x);

  Tensor conditional_log_probs(const Batch& batch) override;
  Tensor next_log_probs(const Batch& batch, int64_t t) override;
  Tensor log_prob(const Batch& batch) override;
  DataKind data_kind() const override { return DataKind::Byte; }
  int64_t height() const override { return config_.image_size; }
  int64_t width() const override { return config_.image_size; }
  nlohmann::json config() const override { return config_.to_json(); }

  std::vector<std::shared_ptr<nn::Embedding>> emb;  // E_k: (256, hidden) for context position k
  Tensor b;                                         // (hidden), zeros
  std::shared_ptr<nn::Linear> l2, l3;               // l2: (hidden, hidden) with ReLU; l3: (hidden, P)

 private:
  // context: (..., d) int64, the d previous pixels, nearest first -> (..., P)
  Tensor mlp(const Tensor& context);
  // params: (..., P) -> (..., 256) log p(value) for every value 0..255
  Tensor all_log_probs(const Tensor& params);
  bool mixture() const { return config_.head == "logistic_mixture"; }

  MLPARConfig config_;
};

}  // namespace dgm::models
