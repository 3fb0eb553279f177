// Reductions. Backward broadcasts the output gradient back over the reduced dims.
#include <algorithm>

#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

using Grads = std::vector<Tensor>;

// The reduced dims of `x` in ascending, non-negative form (all dims when `dims` is empty).
static std::vector<int64_t> reduced_dims(int64_t ndim, const std::vector<int64_t>& dims, const char* op) {
  std::vector<int64_t> r;
  if (dims.empty())
    for (int64_t d = 0; d < ndim; ++d) r.push_back(d);
  for (int64_t d : dims) r.push_back(wrap_dim(d, ndim, op));
  std::sort(r.begin(), r.end());
  return r;
}
static int64_t count_reduced(const Shape& s, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    if (d < static_cast<int64_t>(s.size())) n *= s[d];  // dim 0 of a 0-dim tensor counts 1 element
  return n;
}
// Gradient of a reduction output -> the input's shape (re-inserting dropped dims, then expanding).
static Tensor unreduce(const Tensor& g, const Shape& in_shape, const std::vector<int64_t>& dims, bool keepdim) {
  Tensor r = g;
  if (!keepdim && !in_shape.empty())
    for (int64_t d : dims) r = unsqueeze(r, d);
  return expand(r, in_shape);
}

Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  auto rd = reduced_dims(x.dim(), dims, "sum");
  Shape in = x.shape();
  return record1(Op::Sum, {x}, cpu::sum(x.array(), dims, keepdim), {},
                 [rd, in, keepdim](const Grads& g, const Grads&) { return Grads{unreduce(g[0], in, rd, keepdim)}; });
}

Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  auto rd = reduced_dims(x.dim(), dims, "mean");
  Shape in = x.shape();
  double n = static_cast<double>(count_reduced(in, rd));
  return record1(Op::Mean, {x}, cpu::mean(x.array(), dims, keepdim), {},
                 [rd, in, keepdim, n](const Grads& g, const Grads&) { return Grads{unreduce(g[0] / n, in, rd, keepdim)}; });
}

// var = sum (x - mean)^2 / (N - correction);  d var / dx = 2 (x - mean) / (N - correction)
Tensor var(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  auto rd = reduced_dims(x.dim(), dims, "var");
  Shape in = x.shape();
  double denom = static_cast<double>(count_reduced(in, rd) - correction);
  return record1(Op::Var, {x}, cpu::var(x.array(), dims, correction, keepdim), {save::in(0)}, [rd, in, keepdim, denom, dims](const Grads& g, const Grads& s) {
    Tensor centered = s[0] - mean(s[0], dims, true);
    return Grads{unreduce(g[0], in, rd, keepdim) * centered * (2.0 / denom)};
  });
}

// std = sqrt(var);  d std / dx = (x - mean) / ((N - correction) std)
Tensor std(const Tensor& x, std::vector<int64_t> dims, int64_t correction, bool keepdim) {
  auto rd = reduced_dims(x.dim(), dims, "std");
  Shape in = x.shape();
  double denom = static_cast<double>(count_reduced(in, rd) - correction);
  Array v = cpu::var(x.array(), dims, correction, keepdim);
  return record1(Op::Std, {x}, cpu::unary(cpu::Unary::Sqrt, v), {save::in(0), save::out()}, [rd, in, keepdim, denom, dims](const Grads& g, const Grads& s) {
    Tensor centered = s[0] - mean(s[0], dims, true);
    return Grads{unreduce(g[0] / s[1], in, rd, keepdim) * centered * (1.0 / denom)};
  });
}

// max/min along a dim: the gradient goes to the selected element (scattered by index).
static ValuesIndices extreme_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  int64_t d = wrap_dim(dim, x.dim(), is_max ? "max" : "min");
  auto [vals, idx] = is_max ? cpu::max_dim(x.array(), d, keepdim) : cpu::min_dim(x.array(), d, keepdim);
  Tensor indices(idx);
  Shape in = x.shape();
  std::vector<Array> outs{vals};
  Tensor values = record(is_max ? Op::MaxDim : Op::MinDim, {x}, outs, {}, [in, d, keepdim, indices](const Grads& g, const Grads&) {
    Tensor gk = keepdim ? g[0] : unsqueeze(g[0], d);
    Tensor ik = keepdim ? indices : unsqueeze(indices, d);
    return Grads{scatter_add(zeros(in, {.dtype = g[0].dtype()}), d, ik, gk)};
  })[0];
  return {values, indices};
}
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim) { return extreme_dim(x, dim, keepdim, true); }
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim) { return extreme_dim(x, dim, keepdim, false); }

// amax/amin over dims: ties share the gradient evenly (as torch.amax).
static Tensor amax_amin(const Tensor& x, std::vector<int64_t> dims, bool keepdim, bool is_max) {
  auto rd = reduced_dims(x.dim(), dims, is_max ? "amax" : "amin");
  Shape in = x.shape();
  Array y = is_max ? cpu::amax(x.array(), dims, keepdim) : cpu::amin(x.array(), dims, keepdim);
  return record1(is_max ? Op::Amax : Op::Amin, {x}, y, {save::in(0), save::out()}, [rd, in, keepdim](const Grads& g, const Grads& s) {
    Tensor yk = unreduce(s[1], in, rd, keepdim);
    Tensor hit = (s[0] == yk.detach()).to(g[0].dtype());
    Tensor count = sum(hit, rd, true);
    return Grads{unreduce(g[0], in, rd, keepdim) * hit / count};
  });
}
Tensor amax(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return amax_amin(x, dims, keepdim, true); }
Tensor amin(const Tensor& x, std::vector<int64_t> dims, bool keepdim) { return amax_amin(x, dims, keepdim, false); }
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) { return Tensor(cpu::argmax(x.array(), dim, keepdim)); }
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) { return Tensor(cpu::argmin(x.array(), dim, keepdim)); }

// d logsumexp(x) / dx = softmax(x) = exp(x - logsumexp(x))
Tensor logsumexp(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  auto rd = reduced_dims(x.dim(), dims, "logsumexp");
  Shape in = x.shape();
  return record1(Op::Logsumexp, {x}, cpu::logsumexp(x.array(), dims, keepdim), {save::in(0), save::out()}, [rd, in, keepdim](const Grads& g, const Grads& s) {
    return Grads{unreduce(g[0], in, rd, keepdim) * exp(s[0] - unreduce(s[1], in, rd, keepdim))};
  });
}

// y_i = sum_{j<=i} x_j  =>  dL/dx_j = sum_{i>=j} g_i = total - (cumsum of g up to j) + g_j
Tensor cumsum(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "cumsum");
  return record1(Op::Cumsum, {x}, cpu::cumsum(x.array(), d), {}, [d](const Grads& g, const Grads&) {
    if (g[0].dim() == 0) return Grads{g[0]};
    return Grads{sum(g[0], {d}, true) - cumsum(g[0], d) + g[0]};
  });
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  return record1(Op::SumTo, {x}, cpu::sum_to(x.array(), shape), {},
                 [in = x.shape()](const Grads& g, const Grads&) { return Grads{expand(g[0], in)}; });
}

}  // namespace dgm
