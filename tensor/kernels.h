// CPU kernels on raw Arrays: the numerical work of every op, with no knowledge of gradients.
// autograd/ calls these in forward and composes backward formulas from differentiable ops.
#pragma once
#include <utility>
#include <vector>

#include <dgm/tensor/array.h>

namespace dgm::cpu {

// Threads used by OpenMP kernels (default: all cores; DGM_NUM_THREADS overrides).
void set_num_threads(int n);
int get_num_threads();
// Elementwise loops with fewer elements than this run on one thread (no OpenMP overhead). 8192, not
// PyTorch's 32768: a flow's per-pixel maps over a batch (32 x 784 = 25k values) were serial at 32768
// and left the other threads spinning; at 8192 RealNVP's step ran 6% faster on 2 threads, and the
// other model steps did not move (dgm bench, 2-core AVX-512 EPYC).
constexpr int64_t kParallelGrain = 8192;

// ---- unary elementwise (float unless noted) ---------------------------------------------------
enum class Unary {
  Neg, Abs, Sign,  // numeric
  Exp, Log, Log1p, Expm1, Sqrt, Rsqrt, Sin, Cos, Tanh, Sigmoid, Relu, Gelu, Softplus, Erf, Elu, GeluTanh,
};
Array unary(Unary op, const Array& x);
Array pow_scalar(const Array& x, double p);
Array clamp(const Array& x, double lo, double hi);  // lo/hi may be +-inf

// ---- binary elementwise with broadcasting --------------------------------------------------------
enum class Binary { Add, Sub, Mul, Div, Maximum, Minimum, Pow };
Array binary(Binary op, const Array& a, const Array& b);  // dtype: promote_types(a, b)
enum class Compare { Eq, Ne, Lt, Le, Gt, Ge };
Array compare(Compare op, const Array& a, const Array& b);  // -> bool
Array logical_and(const Array& a, const Array& b);
Array logical_or(const Array& a, const Array& b);
Array logical_not(const Array& a);
Array where(const Array& cond, const Array& a, const Array& b);  // cond: bool, broadcast all three
// a op= b in place (b broadcast to a); used for gradient accumulation and optimiser updates.
void binary_(Binary op, Array& a, const Array& b);

// ---- reductions ----------------------------------------------------------------------------------
// `dims` empty means all dims. Negative dims count from the end.
Array sum(const Array& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Array mean(const Array& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Array var(const Array& x, std::vector<int64_t> dims = {}, int64_t correction = 1, bool keepdim = false);
Array amax(const Array& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Array amin(const Array& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Array logsumexp(const Array& x, std::vector<int64_t> dims, bool keepdim = false);
// values and int64 indices of the max/min along one dim (first occurrence on ties)
std::pair<Array, Array> max_dim(const Array& x, int64_t dim, bool keepdim = false);
std::pair<Array, Array> min_dim(const Array& x, int64_t dim, bool keepdim = false);
Array argmax(const Array& x, int64_t dim, bool keepdim = false);
Array argmin(const Array& x, int64_t dim, bool keepdim = false);
Array cumsum(const Array& x, int64_t dim);
// Sums `x` down to `shape` (the inverse of broadcasting): used by backward of broadcast ops.
Array sum_to(const Array& x, const Shape& shape);

// ---- softmax -------------------------------------------------------------------------------------
Array softmax(const Array& x, int64_t dim);
Array log_softmax(const Array& x, int64_t dim);

// ---- matmul / linear algebra ---------------------------------------------------------------------
Array matmul(const Array& a, const Array& b);  // torch.matmul semantics (1-D, 2-D, batched, broadcast)
// LU with partial pivoting of a batch of square matrices (..., n, n): returns (LU, pivots, sign).
struct LU {
  Array lu;      // (..., n, n) packed L (unit diagonal, below) and U (on and above the diagonal)
  Array pivots;  // (..., n) int64: row i was swapped with row pivots[i]
  Array sign;    // (...) +-1: the sign of the permutation
};
LU lu_factor(const Array& a);
std::pair<Array, Array> slogdet(const Array& a);  // (sign, log|det|), each (...)
Array inverse(const Array& a);                    // (..., n, n); ValueError if singular
// Solves A X = B for X with A triangular (torch.linalg.solve_triangular, left=True).
//   A: (..., n, n), B: (..., n, k) -> X: (..., n, k); batch dims broadcast.
// Only the triangle named by `upper` is read; unitriangular takes the diagonal as 1 (unread).
// O(n^2 k) per matrix: forward substitution (lower) or back substitution (upper).
Array solve_triangular(const Array& a, const Array& b, bool upper, bool unitriangular = false);

// ---- indexing and shaping ------------------------------------------------------------------------
Array gather(const Array& x, int64_t dim, const Array& index);
Array scatter_add(const Array& x, int64_t dim, const Array& index, const Array& src);
Array index_select(const Array& x, int64_t dim, const Array& index);
Array index_add(const Array& x, int64_t dim, const Array& index, const Array& src);  // out = x; out[index[i]] += src[i]
Array one_hot(const Array& index, int64_t num_classes);  // int64 -> int64 (..., num_classes)
Array concat(const std::vector<Array>& xs, int64_t dim);  // torch.cat
Array stack(const std::vector<Array>& xs, int64_t dim);
Array tril(const Array& x, int64_t k = 0);
Array triu(const Array& x, int64_t k = 0);
// Constant padding, torch.nn.functional.pad order: pads = {last_left, last_right, prev_left, ...}.
// Negative pads crop.
Array pad(const Array& x, const std::vector<int64_t>& pads, double value = 0);

// ---- checks ----------------------------------------------------------------------------------------
// Fused backward passes of two activations, one pass each instead of four or five (g = dL/dy; g, x,
// y of one floating dtype and shape, any layout). Autograd uses them when no graph of the gradient
// is recorded; with create_graph it differentiates the composite formula in the comment, and
// tests check both agree.
Array elu_backward(const Array& g, const Array& y);  // g * (1 + [y <= 0] y), y = elu(x): [y <= 0] = [x <= 0]
Array sigmoid_backward(const Array& g, const Array& y);              // g * y * (1 - y)
Array relu_backward(const Array& g, const Array& y);                 // g * [y > 0], y = relu(x): [y > 0] = [x > 0]

bool has_nonfinite(const Array& x);  // any NaN or Inf (floating dtypes only)

}  // namespace dgm::cpu
