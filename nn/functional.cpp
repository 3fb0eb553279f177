#include <dgm/nn/functional.h>

#include <cmath>
#include <functional>

#include <dgm/autograd/fused.h>

namespace dgm::nn::functional {

// ---- layers ------------------------------------------------------------------------------------------
static void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (weight.dim() != 2) throw ShapeError(cat("linear: weight must be (out_features, in_features), got ", shape_str(weight.shape())));
  if (x.dim() < 1 || x.size(-1) != weight.size(1))
    throw ShapeError(cat("linear: input ", shape_str(x.shape()), " does not end in in_features = ", weight.size(1), " (weight ",
                         shape_str(weight.shape()), ")"));
  if (bias.defined() && bias.shape() != Shape{weight.size(0)})
    throw ShapeError(cat("linear: bias ", shape_str(bias.shape()), " does not match out_features = ", weight.size(0)));
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, LinearActivation act) {
  check_linear(x, weight, bias);
  // (..., in) -> (N, in): one GEMM for all leading dims instead of a batch of small ones
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  if (x.dim() == 2) return fused::linear(x, weight, bias, act);
  return reshape(fused::linear(reshape(x, {-1, weight.size(1)}), weight, bias, act), out_shape);
}

// (..., K) -> (N, K) for the kernel and back to (..., H)
static Tensor over_bags(const Tensor& indices, const Tensor& weight, const std::function<Tensor(const Tensor&)>& fn) {
  if (indices.dim() < 1) throw ShapeError(cat("embedding_bag: indices must be (..., bag size), got a scalar"));
  if (weight.dim() != 2) throw ShapeError(cat("embedding_bag: weight must be (num_embeddings, dim), got ", shape_str(weight.shape())));
  if (indices.dim() == 2) return fn(indices);
  Shape out_shape = indices.shape();
  out_shape.back() = weight.size(1);
  return reshape(fn(reshape(indices, {-1, indices.size(-1)})), out_shape);
}

Tensor embedding_bag(const Tensor& indices, const Tensor& weight, const Tensor& bias, LinearActivation act) {
  return over_bags(indices, weight, [&](const Tensor& i) { return fused::embedding_bag(weight, i, bias, act); });
}

static void check_layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  if (x.dim() < 1) throw ShapeError("layer_norm: input must have at least 1 dim");
  Shape d{x.size(-1)};
  if (weight.defined() && weight.shape() != d)
    throw ShapeError(cat("layer_norm: weight ", shape_str(weight.shape()), " does not match the last dim of the input ", shape_str(x.shape())));
  if (bias.defined() && bias.shape() != d)
    throw ShapeError(cat("layer_norm: bias ", shape_str(bias.shape()), " does not match the last dim of the input ", shape_str(x.shape())));
}

// One fused kernel (tensor/fused.h): a pass for the row statistics and one for the output, instead
// of the reference's six ops and five (..., D) temporaries.
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_layer_norm(x, weight, bias);
  return fused::layer_norm(x, weight, bias, eps);
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride, int64_t padding) {
  return dgm::conv2d(x, weight, bias, stride, padding);
}

static void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  if (q.dim() < 2 || k.dim() != q.dim() || v.dim() != q.dim() || k.size(-1) != q.size(-1) || v.size(-2) != k.size(-2))
    throw ShapeError(cat("scaled_dot_product_attention: expected q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv), got ", shape_str(q.shape()),
                         ", ", shape_str(k.shape()), ", ", shape_str(v.shape())));
  if (causal && q.size(-2) > k.size(-2))
    throw ShapeError(cat("scaled_dot_product_attention: causal attention needs Lq <= Lk, got ", q.size(-2), " and ", k.size(-2)));
}

// The fused kernel (tensor/fused.h) keeps one row of scores at a time instead of the (..., Lq, Lk)
// score and probability matrices; it takes (B, H, L, d) with equal head sizes for q, k and v, and
// other shapes go through its composite reference (autograd/fused.h), which defines what it computes.
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
  check_attention(q, k, v, causal);
  if (q.dim() == 4 && v.size(-1) == q.size(-1) && q.size(0) == k.size(0) && q.size(1) == k.size(1) && k.shape() == v.shape())
    return fused::attention(q, k, v, causal);
  return reference::attention(q, k, v, causal);
}

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  if (!(p >= 0 && p <= 1)) throw ValueError(cat("dropout: probability must be in [0, 1], got ", p));
  if (!training || p == 0) return x;
  if (p == 1) return x * 0.0;
  const double keep = 1 - p;
  Array mask = Array::empty(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), "dropout", [&]<class T>() {
    T* m = mask.data<T>();
    for (int64_t i = 0; i < mask.numel(); ++i) m[i] = gen.uniform() < keep ? static_cast<T>(1 / keep) : T(0);
  });
  return x * Tensor(mask);
}

// ---- losses ------------------------------------------------------------------------------------------
static Tensor reduce(const Tensor& loss, const std::string& reduction, const char* op) {
  if (reduction == "mean") return mean(loss);
  if (reduction == "sum") return sum(loss);
  if (reduction == "none") return loss;
  throw ValueError(cat(op, ": reduction must be \"mean\", \"sum\" or \"none\", got \"", reduction, "\""));
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const std::string& reduction) {
  if (log_probs.dim() < 2)
    throw ShapeError(cat("nll_loss: log-probabilities must be (N, C) or (N, C, d1, ...), got ", shape_str(log_probs.shape())));
  if (target.dtype() != DType::Int64) throw DTypeError(cat("nll_loss: target must hold int64 class indices, got ", dtype_name(target.dtype())));
  Shape expect = log_probs.shape();
  expect.erase(expect.begin() + 1);
  if (target.shape() != expect)
    throw ShapeError(cat("nll_loss: target ", shape_str(target.shape()), " does not match input ", shape_str(log_probs.shape()), " (expected ",
                         shape_str(expect), ")"));
  const int64_t C = log_probs.size(1);
  const Array t = target.array().contiguous();
  const int64_t* tp = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (tp[i] < 0 || tp[i] >= C) throw IndexError(cat("nll_loss: target class ", tp[i], " at flat index ", i, " is outside [0, ", C, ")"));
  Tensor picked = squeeze(gather(log_probs, 1, unsqueeze(target, 1)), 1);  // log p(target): (N, d1, ...)
  return reduce(-picked, reduction, "nll_loss");
}

// The fused kernel (tensor/fused.h) takes (N, C) rows: one pass for log-sum-exp and the picked
// logit, no (N, C) log-softmax kept for backward. (N, C, d1, ...) is moved to (N*d1*..., C) first.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const std::string& reduction) {
  if (logits.dim() < 2) throw ShapeError(cat("cross_entropy: logits must be (N, C) or (N, C, d1, ...), got ", shape_str(logits.shape())));
  if (target.dtype() != DType::Int64) throw DTypeError(cat("cross_entropy: target must hold int64 class indices, got ", dtype_name(target.dtype())));
  Shape expect = logits.shape();
  expect.erase(expect.begin() + 1);
  if (target.shape() != expect)
    throw ShapeError(cat("cross_entropy: target ", shape_str(target.shape()), " does not match input ", shape_str(logits.shape()), " (expected ",
                         shape_str(expect), ")"));
  if (logits.dim() == 2) return reduce(fused::cross_entropy(logits, target), reduction, "cross_entropy");
  std::vector<int64_t> order{0};  // (N, C, d1, ...) -> (N, d1, ..., C)
  for (int64_t i = 2; i < logits.dim(); ++i) order.push_back(i);
  order.push_back(1);
  Tensor rows = reshape(permute(logits, order), {-1, logits.size(1)});
  Tensor loss = reshape(fused::cross_entropy(rows, reshape(target, {-1})), target.shape());  // (N, d1, ...)
  return reduce(loss, reduction, "cross_entropy");
}

Tensor log_sigmoid(const Tensor& x) { return -softplus(-x); }

static void check_bce(const Tensor& logits, const Tensor& target) {
  if (logits.shape() != target.shape())
    throw ShapeError(cat("binary_cross_entropy_with_logits: logits ", shape_str(logits.shape()), " and target ", shape_str(target.shape()),
                         " must have the same shape"));
  if (!is_floating(target.dtype()))
    throw DTypeError(cat("binary_cross_entropy_with_logits: target must be floating (0./1.), got ", dtype_name(target.dtype())));
}

// One fused pass forward and one backward (tensor/fused.h) instead of four elementwise ops.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const std::string& reduction) {
  check_bce(logits, target);
  return reduce(fused::binary_cross_entropy_with_logits(logits, target), reduction, "binary_cross_entropy_with_logits");
}

Tensor mse_loss(const Tensor& input, const Tensor& target, const std::string& reduction) {
  if (input.shape() != target.shape())
    throw ShapeError(cat("mse_loss: input ", shape_str(input.shape()), " and target ", shape_str(target.shape()), " must have the same shape"));
  Tensor diff = input - target;
  return reduce(diff * diff, reduction, "mse_loss");
}

}  // namespace dgm::nn::functional
