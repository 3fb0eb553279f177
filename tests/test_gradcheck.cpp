// The gradcheck table: every differentiable op (autograd/ops_list.h) is checked here against
// central differences in float64 — plain, broadcast and non-contiguous cases — and, where the op
// is twice differentiable, its gradient is checked again (gradgradcheck).
// Adding an op to DGM_DIFFERENTIABLE_OPS without a row here makes EveryOpHasARow fail.
#include <gtest/gtest.h>

#include <set>
#include <unordered_set>

#include <dgm/autograd/fused.h>
#include <dgm/autograd/gradcheck.h>
#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {
namespace {

using Ts = std::vector<Tensor>;

struct Row {
  Op op;
  std::string name;                  // test case name
  std::function<Ts(const Ts&)> fn;   // the function to check
  std::function<Ts(Generator&)> inputs;  // fresh inputs (float64 leaves that require grad, plus indices/masks)
  bool second_order = true;
  GradcheckOptions opt = {};
};

// ---- input makers ----------------------------------------------------------------------------
// uniform in [lo, hi], float64, requires grad
Tensor U(Generator& g, const Shape& s, double lo = -1, double hi = 1) {
  Tensor t = rand(s, {.dtype = DType::Float64}, &g);
  return (t * (hi - lo) + lo).detach().requires_grad_();
}
// |values| in [lo, hi] with random signs: stays away from kinks at 0
Tensor away_from_zero(Generator& g, const Shape& s, double lo = 0.2, double hi = 1) {
  Tensor mag = rand(s, {.dtype = DType::Float64}, &g) * (hi - lo) + lo;
  Tensor sgn = where(rand(s, {.dtype = DType::Float64}, &g) < 0.5, scalar_tensor(-1, {.dtype = DType::Float64}),
                     scalar_tensor(1, {.dtype = DType::Float64}));
  return (mag * sgn).detach().requires_grad_();
}
// A non-contiguous leaf: the transpose of a (cols, rows) tensor, so its data has strides (1, rows).
Tensor NC(Generator& g, int64_t rows, int64_t cols, double lo = -1, double hi = 1) {
  Tensor base = U(g, {cols, rows}, lo, hi);
  Tensor t(base.array().transpose(0, 1), true);
  EXPECT_FALSE(t.is_contiguous());
  return t;
}
// distinct values (no ties for max/min): a shuffled arange, scaled
Tensor distinct(Generator& g, const Shape& s) {
  int64_t n = numel_of(s);
  Tensor perm = multinomial(ones({n}, {.dtype = DType::Float64}), n, false, &g);
  return ((perm.to(DType::Float64) - n / 2.0) * 0.3).reshape(s).detach().requires_grad_();
}
Tensor shifted(const Tensor& t, double by) { return (t + by).detach().requires_grad_(); }
Tensor idx(std::initializer_list<double> v) { return tensor(v, {.dtype = DType::Int64}); }
Tensor idx2(std::initializer_list<std::initializer_list<double>> v) { return tensor(v, {.dtype = DType::Int64}); }

#define F(expr) [](const Ts& x) -> Ts { return {expr}; }
#define IN(...) [](Generator& g) -> Ts { (void)g; return {__VA_ARGS__}; }

std::vector<Row> table() {
  std::vector<Row> rows;
  auto row = [&](Op op, std::string name, std::function<Ts(const Ts&)> fn, std::function<Ts(Generator&)> in, bool second = true,
                 GradcheckOptions opt = {}) { rows.push_back({op, std::move(name), std::move(fn), std::move(in), second, opt}); };

  // unary elementwise: a plain case and a non-contiguous one, inputs inside each op's domain
  struct U1 {
    Op op;
    const char* name;
    Tensor (*fn)(const Tensor&);
    double lo, hi;
    bool avoid_zero;
  };
  const U1 unary[] = {
      {Op::Neg, "neg", [](const Tensor& t) { return neg(t); }, -1, 1, false},
      {Op::Abs, "abs", [](const Tensor& t) { return abs(t); }, 0.2, 1, true},
      {Op::Exp, "exp", [](const Tensor& t) { return exp(t); }, -1, 1, false},
      {Op::Log, "log", [](const Tensor& t) { return log(t); }, 0.5, 2, false},
      {Op::Log1p, "log1p", [](const Tensor& t) { return log1p(t); }, -0.5, 1, false},
      {Op::Expm1, "expm1", [](const Tensor& t) { return expm1(t); }, -1, 1, false},
      {Op::Sqrt, "sqrt", [](const Tensor& t) { return sqrt(t); }, 0.5, 2, false},
      {Op::Rsqrt, "rsqrt", [](const Tensor& t) { return rsqrt(t); }, 0.5, 2, false},
      {Op::Sin, "sin", [](const Tensor& t) { return sin(t); }, -2, 2, false},
      {Op::Cos, "cos", [](const Tensor& t) { return cos(t); }, -2, 2, false},
      {Op::Tanh, "tanh", [](const Tensor& t) { return tanh(t); }, -2, 2, false},
      {Op::Sigmoid, "sigmoid", [](const Tensor& t) { return sigmoid(t); }, -3, 3, false},
      {Op::Relu, "relu", [](const Tensor& t) { return relu(t); }, 0.2, 1, true},
      {Op::Gelu, "gelu", [](const Tensor& t) { return gelu(t); }, -3, 3, false},
      {Op::Softplus, "softplus", [](const Tensor& t) { return softplus(t); }, -3, 3, false},
      {Op::Erf, "erf", [](const Tensor& t) { return erf(t); }, -2, 2, false},
      {Op::GeluTanh, "gelu_tanh", [](const Tensor& t) { return gelu(t, "tanh"); }, -3, 3, false},
      {Op::Elu, "elu", [](const Tensor& t) { return elu(t); }, 0.2, 2, true},
      {Op::PowScalar, "pow_2_5", [](const Tensor& t) { return pow(t, 2.5); }, 0.5, 2, false},
      {Op::PowScalar, "pow_3_signed", [](const Tensor& t) { return pow(t, 3.0); }, -1, 1, false},
      {Op::PowScalar, "square", [](const Tensor& t) { return square(t); }, -1, 1, false},
      {Op::Clamp, "clamp", [](const Tensor& t) { return clamp(t, -0.5, 0.5); }, 0.2, 1, true},
  };
  for (const U1& u : unary) {
    auto fn = u.fn;
    double lo = u.lo, hi = u.hi;
    bool az = u.avoid_zero;
    row(u.op, std::string(u.name), [fn](const Ts& x) -> Ts { return {fn(x[0])}; },
        [lo, hi, az](Generator& g) -> Ts { return {az ? away_from_zero(g, {3, 4}, lo, hi) : U(g, {3, 4}, lo, hi)}; });
    row(u.op, std::string(u.name) + "_noncontig", [fn](const Ts& x) -> Ts { return {fn(x[0])}; },
        [lo, hi, az](Generator& g) -> Ts {
          if (!az) return {NC(g, 3, 4, lo, hi)};
          Tensor a = away_from_zero(g, {4, 3}, lo, hi);
          return {Tensor(a.array().transpose(0, 1), true)};
        });
  }

  // binary elementwise: same shape, broadcast both ways, scalar, non-contiguous
  row(Op::Add, "add", F(add(x[0], x[1])), IN(U(g, {3, 4}), U(g, {3, 4})));
  row(Op::Add, "add_broadcast", F(x[0] + x[1]), IN(U(g, {3, 1}), U(g, {1, 4})));
  row(Op::Add, "add_scalar", F(x[0] + 2.0), IN(U(g, {3, 4})));
  row(Op::Sub, "sub_broadcast", F(x[0] - x[1]), IN(U(g, {2, 3, 4}), U(g, {4})));
  row(Op::Sub, "sub_noncontig", F(x[0] - x[1]), IN(NC(g, 3, 4), U(g, {3, 4})));
  row(Op::Mul, "mul", F(x[0] * x[1]), IN(U(g, {3, 4}), U(g, {3, 4})));
  row(Op::Mul, "mul_broadcast", F(x[0] * x[1]), IN(U(g, {3, 1}), NC(g, 3, 4)));
  row(Op::Div, "div", F(x[0] / x[1]), IN(U(g, {3, 4}), U(g, {3, 4}, 0.5, 2)));
  row(Op::Div, "div_broadcast", F(x[0] / x[1]), IN(U(g, {2, 3}), U(g, {3}, 0.5, 2)));
  row(Op::Div, "rdiv_scalar", F(1.0 / x[0]), IN(U(g, {3, 4}, 0.5, 2)));
  row(Op::Maximum, "maximum", F(maximum(x[0], x[1])), IN(distinct(g, {3, 4}), shifted(distinct(g, {3, 4}), 0.1)));
  row(Op::Maximum, "maximum_broadcast", F(maximum(x[0], x[1])), IN(distinct(g, {3, 4}), U(g, {4}, 0.05, 0.25)));
  row(Op::Minimum, "minimum", F(minimum(x[0], x[1])), IN(distinct(g, {3, 4}), shifted(distinct(g, {3, 4}), 0.1)));
  row(Op::Minimum, "minimum_noncontig", F(minimum(x[0], x[1])), IN(NC(g, 3, 4, -1, 0), U(g, {4}, 0.1, 1)));
  row(Op::Pow, "pow", F(pow(x[0], x[1])), IN(U(g, {3, 4}, 0.5, 2), U(g, {3, 4}, -1, 2)));
  row(Op::Pow, "pow_broadcast", F(pow(x[0], x[1])), IN(U(g, {3, 4}, 0.5, 2), U(g, {4}, -1, 2)));
  row(Op::Where, "where_broadcast", F(where(x[2], x[0], x[1])), IN(U(g, {3, 4}), U(g, {4}), rand({3, 4}, {}, &g) < 0.5));
  row(Op::MaskedFill, "masked_fill", F(masked_fill(x[0], x[1], 0.7)), IN(NC(g, 3, 4), rand({4}, {}, &g) < 0.5));

  // reductions
  row(Op::Sum, "sum_all", F(sum(x[0])), IN(U(g, {3, 4})));
  row(Op::Sum, "sum_dims", F(sum(x[0], {0, 2})), IN(U(g, {2, 3, 4})));
  row(Op::Sum, "sum_keepdim_noncontig", F(sum(x[0], {1}, true)), IN(NC(g, 3, 4)));
  row(Op::Mean, "mean", F(mean(x[0], {-1})), IN(U(g, {3, 4})));
  row(Op::Mean, "mean_all_noncontig", F(mean(x[0])), IN(NC(g, 3, 4)));
  row(Op::Var, "var", F(var(x[0], {1})), IN(U(g, {3, 4})));
  row(Op::Var, "var_biased_keepdim", F(var(x[0], {0, 1}, 0, true)), IN(NC(g, 3, 4)));
  row(Op::Std, "std", F(std(x[0], {1})), IN(U(g, {3, 4})));
  row(Op::Std, "std_all", F(std(x[0])), IN(NC(g, 3, 4)));
  row(Op::MaxDim, "max", F(max(x[0], 1).values), IN(distinct(g, {3, 4})));
  row(Op::MaxDim, "max_keepdim", F(max(x[0], 0, true).values), IN(distinct(g, {3, 4})));
  row(Op::MinDim, "min", F(min(x[0], -1).values), IN(distinct(g, {2, 3, 4})));
  row(Op::Amax, "amax_dims", F(amax(x[0], {0, 2})), IN(distinct(g, {2, 3, 4})));
  row(Op::Amin, "amin", F(amin(x[0], {1}, true)), IN(distinct(g, {3, 4})));
  row(Op::Logsumexp, "logsumexp", F(logsumexp(x[0], {1})), IN(U(g, {3, 4}, -2, 2)));
  row(Op::Logsumexp, "logsumexp_dims_keepdim", F(logsumexp(x[0], {0, 1}, true)), IN(NC(g, 3, 4, -2, 2)));
  row(Op::Cumsum, "cumsum", F(cumsum(x[0], 1)), IN(U(g, {3, 4})));
  row(Op::Cumsum, "cumsum_dim0_noncontig", F(cumsum(x[0], 0)), IN(NC(g, 3, 4)));
  row(Op::SumTo, "sum_to", F(sum_to(x[0], {3, 1})), IN(U(g, {2, 3, 4})));

  // movement and shaping
  row(Op::Reshape, "reshape", F(reshape(x[0], {4, 3})), IN(U(g, {3, 4})));
  row(Op::Reshape, "reshape_noncontig_copies", F(reshape(x[0], {-1})), IN(NC(g, 3, 4)));
  row(Op::Reshape, "view_flatten", F(flatten(x[0], 1)), IN(U(g, {2, 3, 2})));
  row(Op::Permute, "permute", F(permute(x[0], {2, 0, 1}) * x[1]), IN(U(g, {2, 3, 4}), U(g, {4, 2, 3})));
  row(Op::Permute, "transpose", F(transpose(x[0], 0, 1) * x[1]), IN(U(g, {3, 4}), U(g, {4, 3})));
  row(Op::Expand, "expand", F(expand(x[0], {2, 3, 4}) * x[1]), IN(U(g, {3, 1}), U(g, {2, 3, 4})));
  row(Op::Slice, "slice", F(slice(x[0], 1, 1, 3)), IN(U(g, {3, 4})));
  row(Op::Slice, "slice_step_negative_start", F(slice(x[0], 0, -4, 5, 2)), IN(NC(g, 5, 3)));
  row(Op::Select, "select", F(select(x[0], 1, -1)), IN(U(g, {3, 4})));
  row(Op::Split, "split_chunk", F(chunk(x[0], 2, 1)[1] * split(x[0], 2, 1)[0]), IN(U(g, {3, 4})));
  // the middle piece has no gradient (zeros in backward); uneven last piece; non-contiguous input
  row(Op::Split, "split_unused_piece_noncontig", F(split(x[0], 2, 0)[0] * 2 + split(x[0], 2, 0)[2]), IN(NC(g, 5, 3)));
  row(Op::Squeeze, "squeeze", F(squeeze(x[0], 1)), IN(U(g, {3, 1, 4})));
  row(Op::Unsqueeze, "unsqueeze", F(unsqueeze(x[0], 0) * x[1]), IN(U(g, {3, 4}), U(g, {2, 1, 4})));
  row(Op::Contiguous, "contiguous", F(contiguous(x[0])), IN(NC(g, 3, 4)));
  row(Op::Contiguous, "clone", F(clone(x[0])), IN(U(g, {3, 4})));
  // float32 round trip: precision 1e-7, so the step and tolerances are wider
  row(Op::Cast, "to_float32_and_back", F(to(to(x[0], DType::Float32), DType::Float64) * x[0]), IN(U(g, {3, 4})), true,
      {.eps = 1e-3, .atol = 1e-3, .rtol = 1e-3});
  row(Op::Cat, "cat", F(cat({x[0], x[1], x[0]}, 1)), IN(U(g, {3, 2}), NC(g, 3, 4)));
  row(Op::Stack, "stack", F(stack({x[0], x[1]}, 1)), IN(U(g, {3, 4}), NC(g, 3, 4)));
  row(Op::Tril, "tril", F(tril(x[0], 1)), IN(U(g, {2, 4, 4})));
  row(Op::Triu, "triu", F(triu(x[0], -1)), IN(NC(g, 4, 3)));
  row(Op::Pad, "pad", F(pad(x[0], {1, 2, 0, 1}, 0.5)), IN(U(g, {2, 3})));
  row(Op::Pad, "pad_negative_crops", F(pad(x[0], {-1, 1})), IN(NC(g, 3, 4)));

  // indexing (int64 index inputs are not differentiated)
  row(Op::Gather, "gather", F(gather(x[0], 1, x[1])), IN(U(g, {3, 4}), idx2({{0, 3, 3}, {1, 1, 0}, {2, 0, 3}})));
  row(Op::ScatterAdd, "scatter_add", F(scatter_add(x[0], 1, x[2], x[1])), IN(U(g, {3, 4}), U(g, {3, 2}), idx2({{0, 0}, {3, 1}, {2, 2}})));
  row(Op::IndexSelect, "index_select", F(index_select(x[0], 0, x[1])), IN(NC(g, 3, 4), idx({2, 0, 2})));
  row(Op::IndexSelect, "index_select_dim1", F(index_select(x[0], 1, x[1])), IN(U(g, {3, 4}), idx({3, 3, 1})));
  row(Op::IndexAdd, "index_add", F(index_add(x[0], 0, x[2], x[1])), IN(U(g, {3, 4}), U(g, {2, 4}), idx({2, 2})));
  row(Op::Embedding, "embedding", F(embedding(x[0], x[1])), IN(U(g, {5, 3}), idx2({{1, 4}, {1, 0}})));

  // matrices
  row(Op::Matmul, "matmul_2d", F(matmul(x[0], x[1])), IN(U(g, {3, 4}), U(g, {4, 2})));
  row(Op::Matmul, "matmul_batched_broadcast", F(matmul(x[0], x[1])), IN(U(g, {2, 1, 3, 4}), U(g, {3, 4, 2})));
  row(Op::Matmul, "matmul_vector", [](const Ts& x) -> Ts { return {matmul(x[0], x[1]), matmul(x[1], x[2]), matmul(x[1], x[1])}; }, IN(U(g, {3, 4}), U(g, {4}), U(g, {4, 2})));
  row(Op::Matmul, "matmul_noncontig", F(matmul(x[0], x[1])), IN(NC(g, 3, 4), NC(g, 4, 2)));
  // well-conditioned: random + 3 I (and a negative determinant case)
  row(Op::Slogdet, "slogdet", F(linalg::slogdet(x[0] + eye(3, {.dtype = DType::Float64}) * 3.0).logabsdet), IN(U(g, {3, 3})));
  row(Op::Slogdet, "slogdet_batched_negative_det",
      F(linalg::slogdet(x[0] + tensor({{0, 1, 0}, {1, 0, 0}, {0, 0, 1}}, {.dtype = DType::Float64}) * 3.0).logabsdet),
      IN(U(g, {2, 3, 3}, -0.3, 0.3)));
  row(Op::Inverse, "inverse", F(linalg::inv(x[0] + eye(3, {.dtype = DType::Float64}) * 3.0)), IN(NC(g, 3, 3)));
  row(Op::Softmax, "softmax", F(softmax(x[0], -1)), IN(U(g, {3, 4}, -2, 2)));
  row(Op::Softmax, "softmax_dim0_noncontig", F(softmax(x[0], 0)), IN(NC(g, 3, 4, -2, 2)));
  row(Op::LogSoftmax, "log_softmax", F(log_softmax(x[0], 1)), IN(U(g, {3, 4}, -2, 2)));
  row(Op::LogSoftmax, "log_softmax_3d", F(log_softmax(x[0], 1)), IN(U(g, {2, 3, 2}, -2, 2)));
  // triangular solves, A = random + 3 I (well conditioned); entries outside the triangle read (and
  // the diagonal when unitriangular) get zero gradient, as the numeric one
  row(Op::SolveTriangular, "solve_triangular_lower", F(linalg::solve_triangular(x[0] + eye(3, {.dtype = DType::Float64}) * 3.0, x[1], false)),
      IN(U(g, {3, 3}), U(g, {3, 2})));
  row(Op::SolveTriangular, "solve_triangular_upper_unit_broadcast", F(linalg::solve_triangular(x[0], x[1], true, true, true)),
      IN(U(g, {2, 1, 3, 3}), U(g, {4, 3, 2})));
  row(Op::SolveTriangular, "solve_triangular_right_noncontig",
      F(linalg::solve_triangular(x[0] + eye(3, {.dtype = DType::Float64}) * 3.0, x[1], true, /*left=*/false)), IN(NC(g, 3, 3), NC(g, 2, 3)));
  // composites for flows (no op of their own; each row names one op it records)
  row(Op::Log1p, "logit_composite", F(logit(x[0])), IN(U(g, {3, 4}, 0.1, 0.9)));
  row(Op::Clamp, "logit_eps_composite_noncontig", F(logit(x[0], 0.05)), IN(NC(g, 3, 4, 0.1, 0.9)));
  row(Op::Permute, "squeeze2d_composite", F(squeeze2d(x[0]) * x[1]), IN(U(g, {2, 1, 4, 2}), U(g, {2, 4, 2, 1})));
  row(Op::Permute, "unsqueeze2d_composite_noncontig", F(unsqueeze2d(x[0])), IN(Tensor(U(g, {1, 2, 4, 4}).array().transpose(1, 2), true)));

  // fused kernels: first order runs the fused backward kernel, second order differentiates the
  // composite reference (and test_fused.cpp checks fused == reference)
  row(Op::CrossEntropy, "cross_entropy", F(fused::cross_entropy(x[0], x[1])), IN(U(g, {4, 5}, -2, 2), idx({0, 4, 2, 2})));
  row(Op::CrossEntropy, "cross_entropy_noncontig", F(fused::cross_entropy(x[0], x[1])), IN(NC(g, 3, 4, -2, 2), idx({3, 0, 1})));
  row(Op::BceWithLogits, "bce_with_logits", F(fused::binary_cross_entropy_with_logits(x[0], x[1])), IN(U(g, {3, 4}, -3, 3), U(g, {3, 4}, 0, 1)));
  row(Op::BceWithLogits, "bce_with_logits_broadcast_target", F(fused::binary_cross_entropy_with_logits(x[0], x[1])),
      IN(NC(g, 3, 4, -3, 3), U(g, {4}, 0, 1)));
  // u's gate half spans both sides of the sigmoid; h + v s stays away from the ELU's kink at 0 only by
  // chance, which the ELU's continuous first derivative does not need
  row(Op::GatedResidual, "gated_residual", F(fused::gated_residual(x[0], x[1])), IN(U(g, {2, 3, 2, 2}, -2, 2), U(g, {2, 6, 2, 2}, -2, 2)));
  row(Op::GatedResidual, "gated_residual_noncontig_vectors", F(fused::gated_residual(x[0], x[1])),
      IN(Tensor(U(g, {2, 3, 2}, -2, 2).array().transpose(1, 2), true), U(g, {2, 4, 3}, -2, 2)));
  row(Op::LayerNorm, "layer_norm", F(fused::layer_norm(x[0], x[1], x[2])), IN(U(g, {2, 3, 5}), U(g, {5}, 0.5, 1.5), U(g, {5})));
  row(Op::LayerNorm, "layer_norm_noncontig_no_affine", F(fused::layer_norm(x[0], Tensor(), Tensor())), IN(NC(g, 3, 4)));
  row(Op::LayerNorm, "layer_norm_channels_of_nchw", F(fused::layer_norm(permute(x[0], {0, 2, 3, 1}), x[1], x[2])),
      IN(U(g, {2, 4, 3, 2}), U(g, {4}, 0.5, 1.5), U(g, {4})));
  row(Op::Attention, "attention_causal", F(fused::attention(x[0], x[1], x[2], true)), IN(U(g, {1, 2, 5, 3}), U(g, {1, 2, 5, 3}), U(g, {1, 2, 5, 3})));
  row(Op::Attention, "attention_full", F(fused::attention(x[0], x[1], x[2], false, 0.7)), IN(U(g, {2, 1, 3, 2}), U(g, {2, 1, 4, 2}), U(g, {2, 1, 4, 2})));
  row(Op::Attention, "attention_causal_queries_after_cache", F(fused::attention(x[0], x[1], x[2], true)),
      IN(U(g, {1, 2, 2, 3}), U(g, {1, 2, 5, 3}), U(g, {1, 2, 5, 3})));
  // 12 queries and more take the register tiles of AVX2 builds, 16 and more those of AVX-512 ones (and
  // of scripts/test-wide.sh's emulation): blocks of 6 or 8 queries; D in panels of 4 or 8 doubles
  row(Op::Attention, "attention_causal_register_tiles", F(fused::attention(x[0], x[1], x[2], true)),
      IN(U(g, {1, 1, 17, 3}), U(g, {1, 1, 17, 3}), U(g, {1, 1, 17, 3})));
  row(Op::Attention, "attention_full_register_tiles_two_panels", F(fused::attention(x[0], x[1], x[2], false, 0.4)),
      IN(U(g, {1, 1, 16, 9}), U(g, {1, 1, 19, 9}), U(g, {1, 1, 19, 9})));
  row(Op::Attention, "attention_noncontig", F(fused::attention(x[0], x[1], x[2], true)),
      IN(Tensor(U(g, {1, 2, 3, 4}).array().transpose(2, 3), true), U(g, {1, 2, 4, 3}), U(g, {1, 2, 4, 3})));
  row(Op::Linear, "linear_bias", F(fused::linear(x[0], x[1], x[2])), IN(U(g, {3, 4}), U(g, {5, 4}), U(g, {5})));
  row(Op::Linear, "linear_noncontig_no_bias", F(fused::linear(x[0], x[1], Tensor())), IN(NC(g, 3, 4), NC(g, 5, 4)));
  // |bias| >= 0.5 > |x W^T| keeps every pre-activation away from ReLU's kink
  row(Op::Linear, "linear_relu", F(fused::linear(x[0], x[1], x[2], fused::LinearActivation::ReLU)),
      IN(U(g, {3, 2}, 0.1, 0.3), U(g, {4, 2}, 0.1, 0.3), away_from_zero(g, {4}, 0.5, 1)));
  row(Op::Linear, "linear_gelu", F(fused::linear(x[0], x[1], x[2], fused::LinearActivation::GELU)), IN(U(g, {3, 4}), U(g, {5, 4}), U(g, {5})));
  // bags with a repeated index (row 1 of the table gets two gradients from one bag)
  row(Op::EmbeddingBag, "embedding_bag_bias", F(fused::embedding_bag(x[0], x[1], x[2])),
      IN(U(g, {5, 3}), idx2({{1, 4}, {1, 1}, {0, 2}}), U(g, {3})));
  row(Op::EmbeddingBag, "embedding_bag_noncontig_no_bias", F(fused::embedding_bag(x[0], x[1], Tensor())),
      IN(NC(g, 4, 3), idx2({{3, 0, 2}, {1, 1, 1}})));
  row(Op::EmbeddingBag, "embedding_bag_relu", F(fused::embedding_bag(x[0], x[1], x[2], fused::LinearActivation::ReLU)),
      IN(U(g, {4, 2}, 0.1, 0.3), idx2({{0, 3}, {2, 2}}), away_from_zero(g, {2}, 0.8, 1)));
  row(Op::EmbeddingBag, "embedding_bag_gelu", F(fused::embedding_bag(x[0], x[1], x[2], fused::LinearActivation::GELU)),
      IN(U(g, {4, 3}), idx2({{0, 3}, {2, 1}}), U(g, {3})));
  row(Op::Conv2d, "conv2d_bias_padding", F(conv2d(x[0], x[1], x[2], 1, 1)), IN(U(g, {2, 3, 5, 4}), U(g, {4, 3, 3, 3}), U(g, {4})));
  row(Op::Conv2d, "conv2d_no_bias_stride2", F(conv2d(x[0], x[1], Tensor(), 2, 1)), IN(U(g, {1, 2, 6, 5}), U(g, {3, 2, 3, 2})));
  row(Op::Conv2d, "conv2d_noncontig", F(conv2d(x[0], x[1], x[2])),
      IN(Tensor(U(g, {2, 2, 4, 5}).array().transpose(2, 3), true), U(g, {3, 2, 2, 3}), U(g, {3})));
  row(Op::Conv2d, "conv2d_one_channel_in_and_out", F(conv2d(x[0], x[1], x[2], 1, 1)), IN(U(g, {2, 1, 5, 6}), U(g, {1, 1, 3, 3}), U(g, {1})));
  // PixelCNN's 3x3 mask B: only the taps above the centre, left of it and itself
  row(Op::Conv2d, "conv2d_masked_taps", F(conv2d(x[0], x[1], x[2], 1, 1, {0, 1, 2, 3, 4})), IN(U(g, {2, 2, 4, 4}), U(g, {3, 2, 3, 3}), U(g, {3})));
  // 8 -> 9 channels (K = 72): the AVX2 build's outputs-in-lanes kernels in float64 (a partial panel of 8 + 1)
  row(Op::Conv2d, "conv2d_outputs_in_lanes", F(conv2d(x[0], x[1], x[2], 1, 1)), IN(U(g, {1, 8, 4, 3}), U(g, {9, 8, 3, 3}), U(g, {9})));
  return rows;
}

// All ops recorded in the graph behind `outputs`.
std::set<Op> ops_in_graph(const Ts& outputs) {
  std::set<Op> ops;
  std::vector<Node*> stack;
  std::unordered_set<Node*> seen;
  for (const Tensor& t : outputs)
    if (t.defined() && t.grad_fn()) stack.push_back(t.grad_fn().get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    if (!dynamic_cast<AccumulateGrad*>(n)) ops.insert(n->op());
    for (auto& e : n->next_edges)
      if (e.fn) stack.push_back(e.fn.get());
  }
  return ops;
}

void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

class Gradcheck : public ::testing::TestWithParam<Row> {};

TEST_P(Gradcheck, FirstOrder) {
  const Row& row = GetParam();
  Generator g(42);
  Ts inputs = row.inputs(g);
  // the row really exercises its op
  std::set<Op> ops = ops_in_graph(row.fn(inputs));
  ASSERT_TRUE(ops.count(row.op)) << row.name << " does not record op '" << op_name(row.op) << "'";
  GradcheckResult r = gradcheck(row.fn, inputs, row.opt);
  EXPECT_TRUE(r.ok) << row.name << ": " << r.message;
}

TEST_P(Gradcheck, SecondOrder) {
  const Row& row = GetParam();
  if (!row.second_order) GTEST_SKIP() << "not twice differentiable";
  Generator g(7);
  Ts inputs = row.inputs(g);
  GradcheckResult r = gradgradcheck(row.fn, inputs, row.opt);
  EXPECT_TRUE(r.ok) << row.name << ": " << r.message;
}

INSTANTIATE_TEST_SUITE_P(Ops, Gradcheck, ::testing::ValuesIn(table()), [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

TEST(GradcheckTable, EveryOpHasARow) {
  std::set<Op> covered;
  for (const Row& r : table()) covered.insert(r.op);
  for (Op op : kAllOps) EXPECT_TRUE(covered.count(op)) << "op '" << op_name(op) << "' is registered but has no gradcheck row";
  EXPECT_GE(std::size(kAllOps), 45u);
}

TEST(GradcheckTable, CatchesAWrongGradient) {
  // A deliberately wrong backward (d/dx x^2 reported as x instead of 2x) must be caught, with
  // a message naming the element and both values.
  auto wrong = [](const Ts& x) -> Ts {
    return {record1(Op::Mul, {x[0]}, cpu::binary(cpu::Binary::Mul, x[0].array(), x[0].array()), {save::in(0)},
                    [](const Ts& g, const Ts& s) { return Ts{g[0] * s[0]}; })};
  };
  Generator g(1);
  GradcheckResult r = gradcheck(wrong, {U(g, {2, 2}, 0.5, 1)});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("analytic"), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("numeric"), std::string::npos) << r.message;
}

TEST(GradcheckTable, RefusesFloat32Inputs) {
  Tensor x = ones({2}, {.requires_grad = true});
  EXPECT_THROW(gradcheck(F(exp(x[0])), {x}), DTypeError);
}

}  // namespace
}  // namespace dgm
