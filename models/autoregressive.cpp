#include <dgm/models/autoregressive.h>

#include <cmath>

#include <dgm/nn/functional.h>

namespace dgm::models {

namespace F = nn::functional;

void AutoregressiveModel::check_input(const Batch& batch, const char* op) const {
  const Tensor& x = batch.x;
  const int64_t D = num_pixels(), K = num_values();
  if (x.dtype() != DType::Int64) throw DTypeError(cat(type_name(), ".", op, ": x must be int64 pixel values, got ", dtype_name(x.dtype())));
  if (x.dim() != 2 || x.size(1) != D)
    throw ShapeError(cat(type_name(), ".", op, ": x must be (B, ", D, ") (", height(), "x", width(), " images in raster order), got ",
                         shape_str(x.shape())));
  const Array values = x.array().contiguous();
  const int64_t* v = values.data<int64_t>();
  for (int64_t i = 0; i < values.numel(); ++i)
    if (v[i] < 0 || v[i] >= K)
      throw ValueError(cat(type_name(), ".", op, ": pixel value ", v[i], " at flat index ", i, " is outside [0, ", K, ") for ",
                           data_kind_name(data_kind()), " data"));
  check_labels(*this, batch, op);
}

DType AutoregressiveModel::param_dtype() const {
  std::vector<Tensor> params = parameters();
  return params.empty() ? DType::Float32 : params.front().dtype();
}

// x: (B, D) -> (B, K)
Tensor AutoregressiveModel::next_log_probs(const Batch& batch, int64_t t) { return select(conditional_log_probs(batch), 1, t); }

// x: (B, D) -> (B,)
Tensor AutoregressiveModel::log_prob(const Batch& batch) {
  check_input(batch, "log_prob");
  const Tensor& x = batch.x;
  Tensor all = conditional_log_probs(batch);                          // (B, D, K)
  Tensor picked = squeeze(gather(all, 2, unsqueeze(x, 2)), 2);        // log p(x_j | x_<j): (B, D)
  return sum(picked, {1});                                            // (B,)
}

Tensor AutoregressiveModel::sample(int64_t n, Generator& gen, const SampleOptions& options) {
  if (n <= 0) throw ValueError(cat(type_name(), ".sample: n must be positive, got ", n));
  return complete(Batch(zeros({n, num_pixels()}, {.dtype = DType::Int64}), options.labels), 0, gen, options.temperature);
}

Tensor AutoregressiveModel::complete(const Batch& batch, int64_t k, Generator& gen) { return complete(batch, k, gen, 1.0); }

Tensor AutoregressiveModel::complete(const Batch& batch, int64_t k, Generator& gen, double temperature) {
  check_input(batch, "complete");
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw ValueError(cat(type_name(), ".sample: the temperature must be positive and finite, got ", temperature));
  const Tensor& x = batch.x;
  const int64_t B = x.size(0), D = num_pixels();
  if (k < 0 || k > D) throw ValueError(cat(type_name(), ".complete: k must be in [0, ", D, "], got ", k));
  NoGradGuard no_grad;
  Tensor out = clone(x);  // contiguous; pixels >= t are still x's and cannot influence pixel t
  int64_t* pixels = out.data<int64_t>();
  for (int64_t t = k; t < D; ++t) {
    Tensor lp = next_log_probs(Batch(out, batch.y), t);                      // (B, K)
    if (temperature != 1.0) lp = log_softmax(lp / temperature, 1);         // p^(1/T), renormalised
    std::vector<int64_t> drawn = draw_from_log_probs(lp, gen);             // x_t ~ p(x_t | x_<t, y)
    for (int64_t b = 0; b < B; ++b) pixels[b * D + t] = drawn[static_cast<size_t>(b)];
  }
  return out;
}

std::vector<int64_t> draw_from_log_probs(const Tensor& log_probs, Generator& gen) {
  if (log_probs.dim() != 2) throw ShapeError(cat("draw_from_log_probs: expected (B, K) log-probabilities, got ", shape_str(log_probs.shape())));
  const int64_t B = log_probs.size(0), K = log_probs.size(1);
  const std::vector<double> lp = log_probs.contiguous().to_vector<double>();
  std::vector<int64_t> out(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    const double u = gen.uniform();
    double cdf = 0;
    int64_t v = -1, last_possible = 0;  // if rounding leaves the total a hair below u: the last value with p > 0
    for (int64_t j = 0; j < K && v < 0; ++j) {
      const double p = std::exp(lp[static_cast<size_t>(b * K + j)]);
      if (p > 0) last_possible = j;
      cdf += p;
      if (u < cdf) v = j;
    }
    out[static_cast<size_t>(b)] = v >= 0 ? v : last_possible;
  }
  return out;
}

// (...) -> (..., 2)
Tensor bernoulli_log_probs(const Tensor& logits) { return stack({F::log_sigmoid(-logits), F::log_sigmoid(logits)}, -1); }

}  // namespace dgm::models
