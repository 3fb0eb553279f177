// Autoregressive models (lecture 1): the likelihood is a product of conditionals in raster order,
//
//   log p(x | theta) = sum_{j=1}^{m} log p(x_j | x_{1:j-1}, theta),
//
// and sampling is sequential: x_1 ~ p(x_1), x_2 ~ p(x_2 | x_1), ..., x_m ~ p(x_m | x_{1:m-1}).
//
// A model derived from AutoregressiveModel provides one hook, its conditionals for every pixel,
//
//   conditional_log_probs(batch): x (B, D) int64 -> (B, D, K),  [b, j, v] = log p(x_j = v | x_{<j}, y)
//
// (K = 2 for binary data, 256 for 8-bit data; y the batch's class labels for a conditional model),
// and gets log_prob, sample and complete from it. Sampling calls next_log_probs(batch, t) once per pixel; by default that is the full forward's column
// t (one forward per pixel, like the homework's sampler); models override it when the next pixel's
// conditional is cheaper to compute alone (a Markov context, a receptive-field window).
#pragma once
#include <vector>

#include <dgm/models/model.h>

namespace dgm::models {

class AutoregressiveModel : public GenerativeModel {
 public:
  using GenerativeModel::GenerativeModel;

  // ---- the hook ----------------------------------------------------------------------------------
  // batch.x: (B, D) int64 -> (B, D, K): log p(x_j = v | x_<j, y) for every pixel j and value v.
  virtual Tensor conditional_log_probs(const Batch& batch) = 0;
  // batch.x: (B, D) int64 -> (B, K): log p(x_t = v | x_<t, y) for one pixel t. Only x_<t may matter.
  virtual Tensor next_log_probs(const Batch& batch, int64_t t);

  // ---- what it gives -------------------------------------------------------------------------------
  // x: (B, D) -> (B,): sum_j log p(x_j | x_<j, y)
  Tensor log_prob(const Batch& batch) override;
  // (n, D): x_0, x_1, ... drawn in turn (complete() with nothing kept), from the conditionals
  // p^(1/T) renormalised at temperature T = options.temperature; y = options.labels.
  Tensor sample(int64_t n, Generator& gen, const SampleOptions& options = {}) override;
  // Keeps x[:, :k] and draws x_k, ..., x_{D-1} in turn, one uniform per image per pixel.
  Tensor complete(const Batch& batch, int64_t k, Generator& gen) override;
  virtual Tensor complete(const Batch& batch, int64_t k, Generator& gen, double temperature);

  int64_t num_pixels() const { return height() * width(); }                      // D
  int64_t num_values() const { return data_kind() == DataKind::Binary ? 2 : 256; }  // K
  // The dtype of the parameters (float32, or float64 after to(Float64)): what inputs are cast to.
  DType param_dtype() const;

 protected:
  // ShapeError / DTypeError / ValueError unless x is (B, D) int64 with values in [0, K), and the
  // labels (needed by a conditional model, refused by an unconditional one) are (B,) in [0, classes).
  void check_input(const Batch& batch, const char* op) const;
};

// One value per row of `log_probs` (B, K), by the inverse CDF: with u ~ U[0, 1) drawn from `gen` for
// row 0, 1, ..., the value is the smallest v with u < p_0 + ... + p_v.
std::vector<int64_t> draw_from_log_probs(const Tensor& log_probs, Generator& gen);

// Binary conditionals from Bernoulli logits: (...) -> (..., 2) = [log sigmoid(-l), log sigmoid(l)].
Tensor bernoulli_log_probs(const Tensor& logits);

}  // namespace dgm::models
