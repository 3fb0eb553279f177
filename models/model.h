// The one interface every generative model implements, so that the trainer, the evaluator, the
// sampler, the benchmarks and the lecture programs work for any model — including yours.
//
//   log p(x | theta)  per example, in nats          -> log_prob(x)
//   the training objective (mean NLL per dimension) -> loss(x)
//   x ~ p(x | theta)                                 -> sample(n, gen)
//
// Images are flattened in raster order: x has shape (B, D) with D = height * width, int64 values
// in {0, 1} (binarized MNIST, DataKind::Binary) or 0..255 (8-bit MNIST, DataKind::Byte).
#pragma once
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "nn/module.h"

namespace dgm::models {

enum class DataKind { Binary, Byte };
inline const char* data_kind_name(DataKind k) { return k == DataKind::Binary ? "binary" : "8-bit"; }
// NLL unit reported for each kind: nats/dim for binary data, bits/dim for 8-bit data (the course's convention).
inline const char* nll_unit(DataKind k) { return k == DataKind::Binary ? "nats/dim" : "bits/dim"; }

class GenerativeModel : public nn::Module {
 public:
  using nn::Module::Module;

  // x: (B, D) int64 -> (B,) log p(x) in nats.
  virtual Tensor log_prob(const Tensor& x) = 0;
  // Mean negative log-likelihood per dimension in nats (what training minimises).
  virtual Tensor loss(const Tensor& x) { return -mean(log_prob(x)) / static_cast<double>(x.size(1)); }
  // n samples: (n, D) int64, drawn from `gen`.
  virtual Tensor sample(int64_t n, Generator& gen) = 0;
  // Keeps the first k raster pixels of each row of x and samples the rest (autocompletion).
  virtual Tensor complete(const Tensor& x, int64_t k, Generator& gen);

  // Models with a closed-form maximum-likelihood fit (the counting baselines) fit `train` (N, D)
  // directly and return true; gradient-trained models return false.
  virtual bool fit(const Tensor& train) {
    (void)train;
    return false;
  }

  virtual DataKind data_kind() const = 0;
  virtual int64_t height() const { return 28; }
  virtual int64_t width() const { return 28; }
  // The hyper-parameters that rebuild this model (saved in checkpoints' metadata).
  virtual nlohmann::json config() const = 0;
};

}  // namespace dgm::models
