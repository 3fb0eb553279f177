// Differentiable ops on Tensors. Each records a graph node when an input requires grad; every
// backward formula is itself written with these ops, so gradients can be differentiated again.
#pragma once
#include <optional>
#include <string_view>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm {

// ---- unary elementwise -------------------------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  // not differentiable (zero gradient), returns a tensor without history
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
// approximate "none": the exact x Phi(x); "tanh": PyTorch's x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Any other string is a ValueError.
Tensor gelu(const Tensor& x, std::string_view approximate = "none");
void check_gelu_approximate(std::string_view approximate);  // the ValueError of gelu for an unknown form
Tensor softplus(const Tensor& x);  // log(1 + e^x)
Tensor elu(const Tensor& x);       // x > 0 ? x : e^x - 1 (alpha 1, PyTorch's F.elu)
Tensor erf(const Tensor& x);
Tensor pow(const Tensor& x, double p);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor clamp_min(const Tensor& x, double lo);
Tensor clamp_max(const Tensor& x, double hi);
Tensor square(const Tensor& x);
// logit(x) = log(x / (1 - x)), the inverse of sigmoid: a composite, log(x) - log1p(-x).
// eps given (as torch.logit): x is first clamped to [eps, 1 - eps] (zero gradient outside).
Tensor logit(const Tensor& x, std::optional<double> eps = std::nullopt);

// ---- binary elementwise (NumPy broadcasting, PyTorch type promotion) ------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// comparisons and logic -> bool tensors (no gradient)
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& a);

// A 0-dim tensor holding `v`, of a dtype that combines with `like` as a Python scalar would:
// the dtype of `like` if it is floating, else float32 (for a fractional v) or like's dtype.
Tensor scalar_like(const Tensor& like, double v);

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);
Tensor operator==(const Tensor& a, double b);
Tensor operator!=(const Tensor& a, double b);

// ---- reductions (dims empty = all dims) -------------------------------------------------------------
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
// After `using namespace dgm;` a bare `std(x)` is ambiguous with namespace std (as torch::std is):
// write dgm::std(x) or x.std().
Tensor std(const Tensor& x, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
struct ValuesIndices {
  Tensor values, indices;
};
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor amax(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor logsumexp(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor sum_to(const Tensor& x, const Shape& shape);  // inverse of broadcasting

// ---- movement and shaping ------------------------------------------------------------------------
Tensor reshape(const Tensor& x, const Shape& shape);  // a view when the strides allow
Tensor view(const Tensor& x, const Shape& shape);     // always a view (ShapeError otherwise)
Tensor flatten(const Tensor& x, int64_t start = 0, int64_t end = -1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to(const Tensor& x, DType dtype);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);  // views
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);      // views
Tensor tril(const Tensor& x, int64_t k = 0);
Tensor triu(const Tensor& x, int64_t k = 0);
// Space to depth (RealNVP's squeeze), a composite of reshape and permute:
//   x: (B, C, H, W) -> (B, 4C, H/2, W/2), output channel 4c + 2i + j <- pixel (2h + i, 2w + j) of channel c.
Tensor squeeze2d(const Tensor& x);
Tensor unsqueeze2d(const Tensor& x);  // the inverse: (B, 4C, H, W) -> (B, C, 2H, 2W)
// torch.nn.functional.pad order: {last_left, last_right, second_last_left, ...}; constant value.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0);

// ---- indexing ----------------------------------------------------------------------------------------
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// weight: (V, D), index: int64 of any shape (...) -> (..., D)
Tensor embedding(const Tensor& weight, const Tensor& index);
Tensor one_hot(const Tensor& index, int64_t num_classes);  // int64 -> int64, no gradient

// ---- matrices and nn ---------------------------------------------------------------------------------
Tensor matmul(const Tensor& a, const Tensor& b);  // torch.matmul semantics
namespace linalg {
struct SignLogAbsDet {
  Tensor sign, logabsdet;
};
SignLogAbsDet slogdet(const Tensor& a);  // d log|det A| / dA = A^{-T}
Tensor inv(const Tensor& a);
// X with A X = B (left) or X A = B (!left), A triangular (torch.linalg.solve_triangular).
//   A: (..., n, n), B: (..., n, k) (left) or (..., k, n) (!left); batch dims broadcast.
// Only A's triangle named by `upper` is read (and differentiated); unitriangular: diagonal taken as 1.
Tensor solve_triangular(const Tensor& a, const Tensor& b, bool upper, bool left = true, bool unitriangular = false);
}  // namespace linalg
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// 2-D convolution (cross-correlation, as torch.nn.functional.conv2d), im2col + GEMM (tensor/conv.h).
// x: (B, C, H, W), weight: (O, C, kh, kw), bias: (O) or undefined -> (B, O, Ho, Wo),
// Ho = (H + 2 padding - kh) / stride + 1. taps: the kernel offsets i*kw + j used, increasing
// (empty: all); the others count as zero and are never computed (a masked convolution's mask).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1, int64_t padding = 0,
              const std::vector<int64_t>& taps = {});
namespace reference {
// The composite conv2d (unfold by index_select, then one matmul): the fast op's reference.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(), int64_t stride = 1, int64_t padding = 0,
              const std::vector<int64_t>& taps = {});
}  // namespace reference

}  // namespace dgm
