// Probability distributions, as torch.distributions: log_prob (differentiable in the parameters
// and, for continuous ones, in x), sample (no gradient) and, where the reparameterisation trick
// applies, rsample (differentiable). Parameters broadcast like elementwise ops; "batch shape" is
// their broadcast shape. Samples draw from a Generator (default: dgm::default_generator()).
#pragma once
#include <dgm/autograd/ops.h>
#include <dgm/tensor/random.h>

namespace dgm::nn {

// N(loc, scale^2), elementwise.  log p(x) = -(x - loc)^2 / (2 scale^2) - log scale - log(2 pi) / 2
class Normal {
 public:
  Normal(Tensor loc, Tensor scale);  // scale > 0
  Normal(double loc, double scale);
  const Tensor& loc() const { return loc_; }
  const Tensor& scale() const { return scale_; }
  Tensor mean() const { return loc_; }
  Tensor stddev() const { return scale_; }
  Tensor variance() const { return scale_ * scale_; }
  Shape batch_shape() const;

  Tensor log_prob(const Tensor& x) const;  // x broadcast with the batch shape
  // (sample_shape..., batch_shape...). rsample = loc + scale * eps with eps ~ N(0, 1), so gradients
  // reach loc and scale; sample is the same draw without history.
  Tensor rsample(const Shape& sample_shape = {}, Generator& gen = default_generator()) const;
  Tensor sample(const Shape& sample_shape = {}, Generator& gen = default_generator()) const;
  Tensor entropy() const;  // 1/2 + log(2 pi) / 2 + log scale

 private:
  Tensor loc_, scale_;
};

// Bernoulli(p) on {0, 1}, parameterised by logits (p = sigmoid(logits)) or by probabilities.
//   log p(x) = x logits - softplus(logits) = -binary_cross_entropy_with_logits(logits, x)
class Bernoulli {
 public:
  static Bernoulli from_logits(Tensor logits);
  // p is clamped to [eps, 1 - eps] (eps of its dtype) before taking logits, as PyTorch does.
  static Bernoulli from_probs(Tensor probs);
  const Tensor& logits() const { return logits_; }
  Tensor probs() const { return sigmoid(logits_); }
  Tensor mean() const { return probs(); }

  Tensor log_prob(const Tensor& x) const;  // x: 0./1. values, broadcast with the batch shape
  Tensor sample(const Shape& sample_shape = {}, Generator& gen = default_generator()) const;  // 0./1., dtype of the logits
  Tensor entropy() const;

 private:
  explicit Bernoulli(Tensor logits) : logits_(std::move(logits)) {}
  Tensor logits_;
};

// Categorical over K classes. logits: (..., K), unnormalised (normalised with log_softmax).
class Categorical {
 public:
  explicit Categorical(const Tensor& logits);
  static Categorical from_probs(const Tensor& probs);  // (..., K), non-negative
  const Tensor& logits() const { return log_probs_; }  // normalised: log p
  Tensor probs() const { return exp(log_probs_); }
  int64_t num_classes() const { return log_probs_.size(-1); }
  Shape batch_shape() const;  // logits.shape without the last dim

  // value: int64 (sample_shape..., batch_shape...) -> log p(value), same shape
  Tensor log_prob(const Tensor& value) const;
  Tensor sample(const Shape& sample_shape = {}, Generator& gen = default_generator()) const;  // int64 (sample..., batch...)
  Tensor entropy() const;  // (batch...)

 private:
  Tensor log_probs_;
};

// A mixture of Gaussians with diagonal covariances:
//   p(x) = sum_k w_k prod_d N(x_d; mu_kd, sigma_kd^2),   w normalised to sum to 1.
// 1-D: weights (K), means (K), stds (K); x (...) -> log_prob (...)
// m-D: weights (K), means (K, D), stds (K, D); x (..., D) -> log_prob (...)
class GaussianMixture {
 public:
  GaussianMixture(Tensor weights, Tensor means, Tensor stds);
  int64_t num_components() const { return means_.size(0); }
  int64_t event_dim() const { return means_.dim() == 1 ? 1 : means_.size(1); }  // D (1 for 1-D)
  const Tensor& means() const { return means_; }
  const Tensor& stds() const { return stds_; }
  Tensor weights() const { return exp(log_weights_); }

  Tensor log_prob(const Tensor& x) const;
  // n samples: (n) for 1-D, (n, D) for m-D; component first, then the Gaussian.
  Tensor sample(int64_t n, Generator& gen = default_generator()) const;

 private:
  Tensor log_weights_, means_, stds_;
};

// PixelCNN++'s discretised mixture of logistics (Salimans et al. 2017) for 8-bit data. A value
// v in 0..255 is rescaled to x = v / 127.5 - 1 in [-1, 1] and gets the mass of its bin of width 2/255:
//   P(x) = sum_k pi_k [sigmoid((x + 1/255 - mu_k) / s_k) - sigmoid((x - 1/255 - mu_k) / s_k)],
// where the edge bins are open: v = 0 takes all mass below -1 + 1/255 (first term only), v = 255
// all mass above 1 - 1/255 (1 - second term). pi = softmax(logit_probs), s = exp(log_scales),
// with log_scales clamped below at min_log_scale (-7, as the reference implementation).
// The bin mass is computed in log space without cancellation, so a tiny or flat bin stays finite:
//   log(sigmoid(a) - sigmoid(b)) = log sinh((a-b)/2) - log cosh(a/2) - log cosh(b/2) - log 2.
// logit_probs, means, log_scales: (..., K); x: (...) -> log_prob (...) in nats.
class DiscretizedLogisticMixture {
 public:
  DiscretizedLogisticMixture(Tensor logit_probs, Tensor means, Tensor log_scales, double min_log_scale = -7);
  int64_t num_components() const { return means_.size(-1); }

  Tensor log_prob(const Tensor& x) const;
  // One value per batch element, on the grid {v / 127.5 - 1}: (...).
  Tensor sample(Generator& gen = default_generator()) const;

  static Tensor to_unit(const Tensor& pixels);  // 0..255 -> v / 127.5 - 1 (float32 for integer pixels)
  static Tensor to_pixels(const Tensor& x);     // [-1, 1] -> int64 0..255 (nearest bin)

 private:
  Tensor log_mix_, means_, log_scales_;  // log_mix = log_softmax(logit_probs)
};

}  // namespace dgm::nn
