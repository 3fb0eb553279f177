// The histogram chapter's baselines (lecture 1): exact maximum-likelihood models fitted by counting.
//
//   independent pixels     p(x) = prod_j pi_j(x_j)              D (K - 1) free parameters
//   first-order Markov     p(x) = prod_j pi(x_j | x_{j-1})      K (K - 1) free parameters
//
// where K = 2 (binary data) or 256 (8-bit data). The Markov chain is shared over positions (one
// transition table for the whole raster scan, across row ends too) and the pixel before the image
// is taken to be 0. The MLE is the histogram; we add one to every count (Laplace smoothing) so that a
// value never seen in training keeps a finite log-probability, exactly as the PyTorch peer does
// (../shared/peers/pytorch_train.py baselines):
//
//   pi_j(v)     = (1 + #{i : x_ij = v}) / (n + K)
//   pi(w | v)   = (1 + #{(i, j) : x_i,j-1 = v, x_ij = w}) / (K + #{(i, j) : x_i,j-1 = v})
//
// The tables are stored as parameters holding logits (log_softmax(logits) = log pi), so the models
// can also be trained by gradient descent like any other; fit() jumps straight to the optimum.
//
// Config: {"data": "binary" | "8-bit", "image_size": 28}.
#pragma once
#include <dgm/models/autoregressive.h>

namespace dgm::models {

struct BaselineConfig {
  DataKind data = DataKind::Binary;
  int64_t image_size = 28;

  static BaselineConfig from_json(const std::string& model, const nlohmann::json& config);
  nlohmann::json to_json() const;
};

class IndependentPixels : public AutoregressiveModel {
 public:
  explicit IndependentPixels(BaselineConfig config = {});
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);

  // train: (n, D) int64 -> sets pi_j to the smoothed histogram of pixel j.
  bool fit(const Batch& train) override;

  Tensor conditional_log_probs(const Batch& batch) override;
  Tensor next_log_probs(const Batch& batch, int64_t t) override;
  Tensor log_prob(const Batch& batch) override;
  DataKind data_kind() const override { return config_.data; }
  int64_t height() const override { return config_.image_size; }
  int64_t width() const override { return config_.image_size; }
  nlohmann::json config() const override { return config_.to_json(); }

  Tensor logits;  // (D, K): log pi_j(v) up to a constant per pixel

 private:
  BaselineConfig config_;
};

class MarkovChain : public AutoregressiveModel {
 public:
  explicit MarkovChain(BaselineConfig config = {});
  static std::shared_ptr<GenerativeModel> create(const nlohmann::json& config);

  // train: (n, D) int64 -> sets pi(w | v) to the smoothed transition counts.
  bool fit(const Batch& train) override;

  Tensor conditional_log_probs(const Batch& batch) override;
  Tensor next_log_probs(const Batch& batch, int64_t t) override;
  Tensor log_prob(const Batch& batch) override;
  DataKind data_kind() const override { return config_.data; }
  int64_t height() const override { return config_.image_size; }
  int64_t width() const override { return config_.image_size; }
  nlohmann::json config() const override { return config_.to_json(); }

  Tensor logits;  // (K, K): row v = log pi(. | previous pixel v) up to a constant per row

 private:
  BaselineConfig config_;
};

}  // namespace dgm::models
