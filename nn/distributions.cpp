#include <dgm/nn/distributions.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include <dgm/nn/functional.h>

namespace dgm::nn {

namespace F = functional;

static void check_positive(const Tensor& t, const char* what) {
  if (!is_floating(t.dtype())) throw DTypeError(cat(what, " must be floating, got ", dtype_name(t.dtype())));
  std::vector<double> v = t.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i)
    if (!(v[i] > 0)) throw ValueError(cat(what, " must be positive, got ", v[i], " at flat index ", i, " (shape ", shape_str(t.shape()), ")"));
}
static Shape concat_shapes(const Shape& a, const Shape& b) {
  Shape s = a;
  s.insert(s.end(), b.begin(), b.end());
  return s;
}

// ---- Normal ----------------------------------------------------------------------------------------------
Normal::Normal(Tensor loc, Tensor scale) : loc_(std::move(loc)), scale_(std::move(scale)) {
  if (!is_floating(loc_.dtype())) throw DTypeError(cat("Normal: loc must be floating, got ", dtype_name(loc_.dtype())));
  check_positive(scale_, "Normal: scale");
  batch_shape();  // validates that loc and scale broadcast
}
Normal::Normal(double loc, double scale) : Normal(scalar_tensor(loc), scalar_tensor(scale)) {}

Shape Normal::batch_shape() const { return broadcast_shapes(loc_.shape(), scale_.shape(), "Normal"); }

Tensor Normal::log_prob(const Tensor& x) const {
  Tensor z = (x - loc_) / scale_;
  return -0.5 * z * z - log(scale_) - 0.5 * std::log(2 * M_PI);
}
Tensor Normal::rsample(const Shape& sample_shape, Generator& gen) const {
  DType dt = promote_types(loc_.dtype(), scale_.dtype());
  Tensor eps = randn(concat_shapes(sample_shape, batch_shape()), {.dtype = dt}, &gen);
  return loc_ + scale_ * eps;
}
Tensor Normal::sample(const Shape& sample_shape, Generator& gen) const {
  NoGradGuard no_grad;
  return rsample(sample_shape, gen).detach();
}
Tensor Normal::entropy() const { return 0.5 + 0.5 * std::log(2 * M_PI) + log(scale_); }

// ---- Bernoulli -------------------------------------------------------------------------------------------
Bernoulli Bernoulli::from_logits(Tensor logits) {
  if (!is_floating(logits.dtype())) throw DTypeError(cat("Bernoulli: logits must be floating, got ", dtype_name(logits.dtype())));
  return Bernoulli(std::move(logits));
}
Bernoulli Bernoulli::from_probs(Tensor probs) {
  if (!is_floating(probs.dtype())) throw DTypeError(cat("Bernoulli: probs must be floating, got ", dtype_name(probs.dtype())));
  for (double p : probs.to_vector<double>())
    if (!(p >= 0 && p <= 1)) throw ValueError(cat("Bernoulli: probabilities must be in [0, 1], got ", p));
  double eps = probs.dtype() == DType::Float32 ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
  Tensor p = clamp(probs, eps, 1 - eps);
  return Bernoulli(log(p) - log1p(-p));
}
Tensor Bernoulli::log_prob(const Tensor& x) const { return x * logits_ - softplus(logits_); }
Tensor Bernoulli::sample(const Shape& sample_shape, Generator& gen) const {
  NoGradGuard no_grad;
  Tensor p = probs().detach();
  return bernoulli(contiguous(expand(p, concat_shapes(sample_shape, p.shape()))), &gen);
}
// H = -p log p - (1 - p) log(1 - p) = softplus(logits) - p logits
Tensor Bernoulli::entropy() const { return softplus(logits_) - probs() * logits_; }

// ---- Categorical -----------------------------------------------------------------------------------------
Categorical::Categorical(const Tensor& logits) {
  if (logits.dim() < 1 || logits.size(-1) < 1)
    throw ShapeError(cat("Categorical: logits must be (..., K) with K >= 1, got ", shape_str(logits.shape())));
  if (!is_floating(logits.dtype())) throw DTypeError(cat("Categorical: logits must be floating, got ", dtype_name(logits.dtype())));
  log_probs_ = log_softmax(logits, -1);
}
Categorical Categorical::from_probs(const Tensor& probs) {
  if (!is_floating(probs.dtype())) throw DTypeError(cat("Categorical: probs must be floating, got ", dtype_name(probs.dtype())));
  for (double p : probs.to_vector<double>())
    if (!(p >= 0) || std::isinf(p)) throw ValueError(cat("Categorical: probabilities must be finite and non-negative, got ", p));
  return Categorical(log(probs));  // log_softmax(log p) = log(p / sum p)
}
Shape Categorical::batch_shape() const { return Shape(log_probs_.shape().begin(), log_probs_.shape().end() - 1); }

Tensor Categorical::log_prob(const Tensor& value) const {
  if (value.dtype() != DType::Int64) throw DTypeError(cat("Categorical.log_prob: value must be int64 class indices, got ", dtype_name(value.dtype())));
  const int64_t K = num_classes();
  for (int64_t v : value.to_vector<int64_t>())
    if (v < 0 || v >= K) throw IndexError(cat("Categorical.log_prob: class ", v, " is outside [0, ", K, ")"));
  Shape out = broadcast_shapes(value.shape(), batch_shape(), "Categorical.log_prob");
  Tensor table = expand(log_probs_, concat_shapes(out, {K}));  // (sample..., batch..., K)
  return squeeze(gather(table, -1, unsqueeze(expand(value, out), -1)), -1);
}
Tensor Categorical::sample(const Shape& sample_shape, Generator& gen) const {
  NoGradGuard no_grad;
  const int64_t K = num_classes(), n = numel_of(sample_shape);
  Tensor rows = reshape(probs().detach(), {-1, K});                 // (R, K)
  Tensor draws = multinomial(rows, n, /*replacement=*/true, &gen);  // (R, n)
  return reshape(contiguous(transpose(draws, 0, 1)), concat_shapes(sample_shape, batch_shape()));
}
Tensor Categorical::entropy() const {
  // a class with p = 0 contributes 0 (not 0 * -inf)
  double lowest = log_probs_.dtype() == DType::Float32 ? std::numeric_limits<float>::lowest() : std::numeric_limits<double>::lowest();
  return -sum(probs() * clamp_min(log_probs_, lowest), {-1});
}

// ---- GaussianMixture ---------------------------------------------------------------------------------------
GaussianMixture::GaussianMixture(Tensor weights, Tensor means, Tensor stds) : means_(std::move(means)), stds_(std::move(stds)) {
  if (weights.dim() != 1 || (means_.dim() != 1 && means_.dim() != 2) || means_.size(0) != weights.size(0) || stds_.shape() != means_.shape())
    throw ShapeError(cat("GaussianMixture: expected weights (K), means and stds both (K) or (K, D), got ", shape_str(weights.shape()), ", ",
                         shape_str(means_.shape()), ", ", shape_str(stds_.shape())));
  if (!is_floating(weights.dtype()) || !is_floating(means_.dtype()))
    throw DTypeError(cat("GaussianMixture: weights and means must be floating, got ", dtype_name(weights.dtype()), " and ", dtype_name(means_.dtype())));
  check_positive(stds_, "GaussianMixture: stds");
  double total = 0;
  for (double w : weights.to_vector<double>()) {
    if (!(w >= 0) || std::isinf(w)) throw ValueError(cat("GaussianMixture: weights must be finite and non-negative, got ", w));
    total += w;
  }
  if (total <= 0) throw ValueError("GaussianMixture: the weights sum to zero");
  log_weights_ = log(weights / sum(weights));
}

Tensor GaussianMixture::log_prob(const Tensor& x) const {
  Tensor per_component;  // log w_k + log N(x; mu_k, sigma_k): (..., K)
  if (means_.dim() == 1) {
    per_component = Normal(means_, stds_).log_prob(unsqueeze(x, -1));  // (..., 1) vs (K) -> (..., K)
  } else {
    if (x.dim() < 1 || x.size(-1) != event_dim())
      throw ShapeError(cat("GaussianMixture.log_prob: x must be (..., ", event_dim(), "), got ", shape_str(x.shape())));
    per_component = sum(Normal(means_, stds_).log_prob(unsqueeze(x, -2)), {-1});  // (..., 1, D) vs (K, D) -> (..., K)
  }
  return logsumexp(per_component + log_weights_, {-1});
}

Tensor GaussianMixture::sample(int64_t n, Generator& gen) const {
  if (n <= 0) throw ValueError(cat("GaussianMixture.sample: n must be positive, got ", n));
  NoGradGuard no_grad;
  Tensor k = multinomial(weights().detach(), n, /*replacement=*/true, &gen);  // (n) component of each sample
  Tensor mu = index_select(means_.detach(), 0, k), sigma = index_select(stds_.detach(), 0, k);
  return mu + sigma * randn(mu.shape(), {.dtype = mu.dtype()}, &gen);
}

// ---- DiscretizedLogisticMixture ----------------------------------------------------------------------------
DiscretizedLogisticMixture::DiscretizedLogisticMixture(Tensor logit_probs, Tensor means, Tensor log_scales, double min_log_scale) {
  if (logit_probs.dim() < 1 || means.shape() != logit_probs.shape() || log_scales.shape() != logit_probs.shape())
    throw ShapeError(cat("DiscretizedLogisticMixture: logit_probs, means and log_scales must all be (..., K), got ", shape_str(logit_probs.shape()),
                         ", ", shape_str(means.shape()), ", ", shape_str(log_scales.shape())));
  log_mix_ = log_softmax(logit_probs, -1);
  means_ = means;
  log_scales_ = clamp_min(log_scales, min_log_scale);
}

Tensor DiscretizedLogisticMixture::log_prob(const Tensor& x) const {
  constexpr double half_bin = 1.0 / 255;  // bins have width 2/255 on [-1, 1]
  Tensor xk = unsqueeze(x, -1);           // (..., 1) against the components (..., K)
  Tensor inv_s = exp(-log_scales_);
  Tensor a = inv_s * (xk - means_ + half_bin);  // upper bin edge in logistic units
  Tensor b = inv_s * (xk - means_ - half_bin);  // lower bin edge
  Tensor h = inv_s * half_bin;                  // (a - b) / 2 > 0, computed without cancellation
  // log(sigmoid(a) - sigmoid(b)) = log sinh(h) - log cosh(a/2) - log cosh(b/2) - log 2, with
  // log sinh(h) = h + log(1 - e^{-2h}) - log 2 and log cosh(z) = |z| + log(1 + e^{-2|z|}) - log 2
  Tensor log_bin = h + log(-expm1(-2.0 * h)) - 0.5 * abs(a) - 0.5 * abs(b) - softplus(-abs(a)) - softplus(-abs(b));
  Tensor log_left = F::log_sigmoid(a);    // v = 0:   log P(X < -1 + 1/255)
  Tensor log_right = F::log_sigmoid(-b);  // v = 255: log P(X > 1 - 1/255)
  Tensor log_p = where(xk < -0.999, log_left, where(xk > 0.999, log_right, log_bin));  // (..., K)
  return logsumexp(log_p + log_mix_, {-1});
}

Tensor DiscretizedLogisticMixture::sample(Generator& gen) const {
  const int64_t K = num_components();
  std::vector<double> log_mix = log_mix_.contiguous().to_vector<double>(), mu = means_.contiguous().to_vector<double>(),
                      log_s = log_scales_.contiguous().to_vector<double>();
  const size_t rows = log_mix.size() / static_cast<size_t>(K);
  std::vector<double> out(rows);
  for (size_t r = 0; r < rows; ++r) {
    // component by inverse CDF of the mixture weights, then a logistic draw around its mean
    double u = gen.uniform(), c = 0;
    size_t k = 0;
    for (; k + 1 < static_cast<size_t>(K); ++k) {
      c += std::exp(log_mix[r * K + k]);
      if (u < c) break;
    }
    size_t i = r * K + k;
    double v = std::clamp(gen.uniform(), 1e-5, 1 - 1e-5);
    double x = mu[i] + std::exp(log_s[i]) * (std::log(v) - std::log1p(-v));
    double pixel = std::clamp(std::round((x + 1) * 127.5), 0.0, 255.0);
    out[r] = pixel / 127.5 - 1;
  }
  Shape batch(means_.shape().begin(), means_.shape().end() - 1);
  return Tensor(from_vector(out, batch).array().to(means_.dtype()));
}

Tensor DiscretizedLogisticMixture::to_unit(const Tensor& pixels) {
  return pixels.detach().to(is_floating(pixels.dtype()) ? pixels.dtype() : DType::Float32) / 127.5 - 1.0;
}
Tensor DiscretizedLogisticMixture::to_pixels(const Tensor& x) {
  std::vector<double> v = x.contiguous().to_vector<double>();
  std::vector<int64_t> p(v.size());
  for (size_t i = 0; i < v.size(); ++i) p[i] = static_cast<int64_t>(std::clamp(std::round((v[i] + 1) * 127.5), 0.0, 255.0));
  return from_vector(p, x.shape());
}

}  // namespace dgm::nn
