// Movement and shaping ops. Forward returns a view where the layout allows; backward moves the
// gradient back to the input's layout (reshape back, inverse permutation, sum over broadcast, ...).
#include <algorithm>
#include <numeric>

#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

using Grads = std::vector<Tensor>;

Tensor reshape(const Tensor& x, const Shape& shape) {
  return record1(Op::Reshape, {x}, x.array().reshape(shape), {},
                 [in = x.shape()](const Grads& g, const Grads&) { return Grads{reshape(g[0], in)}; });
}
Tensor view(const Tensor& x, const Shape& shape) {
  return record1(Op::Reshape, {x}, x.array().view(shape), {},
                 [in = x.shape()](const Grads& g, const Grads&) { return Grads{reshape(g[0], in)}; });
}
Tensor flatten(const Tensor& x, int64_t start, int64_t end) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t s = wrap_dim(start, x.dim(), "flatten"), e = wrap_dim(end, x.dim(), "flatten");
  if (s > e) throw ValueError(cat("flatten: start dim ", s, " is after end dim ", e));
  Shape out(x.shape().begin(), x.shape().begin() + s);
  int64_t n = 1;
  for (int64_t d = s; d <= e; ++d) n *= x.shape()[d];
  out.push_back(n);
  out.insert(out.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, out);
}
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  Array y = x.array().permute(dims);
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[wrap_dim(dims[i], x.dim(), "permute")] = static_cast<int64_t>(i);
  return record1(Op::Permute, {x}, y, {}, [inverse](const Grads& g, const Grads&) { return Grads{permute(g[0], inverse)}; });
}
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  if (x.dim() == 0) {  // as torch: dims 0 / -1 of a 0-dim tensor are allowed, nothing moves
    wrap_dim(d0, 0, "transpose");
    wrap_dim(d1, 0, "transpose");
    return x;
  }
  std::vector<int64_t> p(x.dim());
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[wrap_dim(d0, x.dim(), "transpose")], p[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, p);
}
Tensor expand(const Tensor& x, const Shape& shape) {
  Array y = x.array().expand(shape);
  if (y.shape() == x.shape()) return x;
  return record1(Op::Expand, {x}, y, {}, [in = x.shape()](const Grads& g, const Grads&) { return Grads{sum_to(g[0], in)}; });
}
Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

// Slice backward puts the gradient into a zero tensor of the input's shape: by padding for
// step 1, by index_add for larger steps.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  int64_t d = wrap_dim(dim, x.dim(), "slice");
  Array y = x.array().slice(d, start, end, step);
  int64_t first = std::clamp<int64_t>(start < 0 ? start + x.shape()[d] : start, 0, x.shape()[d]);  // as Array::slice
  Shape in = x.shape();
  return record1(Op::Slice, {x}, y, {}, [d, first, step, in](const Grads& g, const Grads&) {
    int64_t n = g[0].shape()[d];
    if (step == 1) {
      std::vector<int64_t> pads(2 * (in.size() - d), 0);
      size_t p = 2 * (in.size() - 1 - d);
      pads[p] = first;
      pads[p + 1] = in[d] - first - n;
      return Grads{pad(g[0], pads)};
    }
    Tensor idx(Array::arange(static_cast<double>(first), static_cast<double>(first + n * step), static_cast<double>(step), DType::Int64));
    return Grads{index_add(zeros(in, {.dtype = g[0].dtype()}), d, idx, g[0])};
  });
}
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  x.array().narrow(d, start, length);  // validates
  if (start < 0) start += x.shape()[d];
  return slice(x, d, start, start + length);
}
Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  int64_t d = wrap_dim(dim, x.dim(), "select");
  Array y = x.array().select(d, index);
  if (index < 0) index += x.shape()[d];
  Shape in = x.shape();
  return record1(Op::Select, {x}, y, {}, [d, index, in](const Grads& g, const Grads&) {
    std::vector<int64_t> pads(2 * (in.size() - d), 0);
    size_t p = 2 * (in.size() - 1 - d);
    pads[p] = index;
    pads[p + 1] = in[d] - index - 1;
    return Grads{pad(unsqueeze(g[0], d), pads)};
  });
}
Tensor squeeze(const Tensor& x, int64_t dim) {
  return record1(Op::Squeeze, {x}, x.array().squeeze(dim), {},
                 [in = x.shape()](const Grads& g, const Grads&) { return Grads{reshape(g[0], in)}; });
}
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  return record1(Op::Unsqueeze, {x}, x.array().unsqueeze(dim), {},
                 [in = x.shape()](const Grads& g, const Grads&) { return Grads{reshape(g[0], in)}; });
}
Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return record1(Op::Contiguous, {x}, x.array().contiguous(), {}, [](const Grads& g, const Grads&) { return Grads{g[0]}; });
}
Tensor clone(const Tensor& x) {
  return record1(Op::Contiguous, {x}, x.array().clone(), {}, [](const Grads& g, const Grads&) { return Grads{g[0]}; });
}
Tensor to(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Array y = x.array().to(dtype);
  if (!is_floating(dtype)) return Tensor(y);  // casting to an integer type cuts the gradient
  return record1(Op::Cast, {x}, y, {}, [dt = x.dtype()](const Grads& g, const Grads&) { return Grads{to(g[0], dt)}; });
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  std::vector<Array> arrays;
  for (const Tensor& x : xs) arrays.push_back(x.array());
  Array y = cpu::concat(arrays, dim);
  int64_t d = wrap_dim(dim, xs[0].dim(), "cat");
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.shape()[d]);
  return record1(Op::Cat, xs, y, {}, [d, sizes](const Grads& g, const Grads&) {
    Grads out;
    int64_t at = 0;
    for (int64_t n : sizes) {
      out.push_back(narrow(g[0], d, at, n));
      at += n;
    }
    return out;
  });
}
Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  std::vector<Array> arrays;
  for (const Tensor& x : xs) arrays.push_back(x.array());
  Array y = cpu::stack(arrays, dim);
  int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  size_t n = xs.size();
  return record1(Op::Stack, xs, y, {}, [d, n](const Grads& g, const Grads&) {
    Grads out;
    for (size_t i = 0; i < n; ++i) out.push_back(select(g[0], d, static_cast<int64_t>(i)));
    return out;
  });
}
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  if (split_size <= 0) throw ValueError(cat("split: split_size must be positive, got ", split_size));
  int64_t d = wrap_dim(dim, x.dim(), "split");
  std::vector<Array> pieces;
  std::vector<Shape> shapes;
  for (int64_t at = 0; at < x.shape()[d]; at += split_size) {
    pieces.push_back(x.array().narrow(d, at, std::min(split_size, x.shape()[d] - at)));  // views
    shapes.push_back(pieces.back().shape());
  }
  // One node for all the pieces: backward puts their gradients side by side again with one cat (a
  // piece without a gradient contributes zeros), instead of a zero-padded copy of x per piece.
  return record(Op::Split, {x}, pieces, {}, [d, shapes, dt = x.dtype()](const Grads& g, const Grads&) {
    Grads parts;
    for (size_t i = 0; i < shapes.size(); ++i) parts.push_back(g[i].defined() ? g[i] : zeros(shapes[i], {.dtype = dt}));
    return Grads{cat(parts, d)};
  });
}
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  if (chunks <= 0) throw ValueError(cat("chunk: chunks must be positive, got ", chunks));
  int64_t n = x.shape()[wrap_dim(dim, x.dim(), "chunk")];
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}
Tensor tril(const Tensor& x, int64_t k) {
  return record1(Op::Tril, {x}, cpu::tril(x.array(), k), {}, [k](const Grads& g, const Grads&) { return Grads{tril(g[0], k)}; });
}
Tensor triu(const Tensor& x, int64_t k) {
  return record1(Op::Triu, {x}, cpu::triu(x.array(), k), {}, [k](const Grads& g, const Grads&) { return Grads{triu(g[0], k)}; });
}
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  return record1(Op::Pad, {x}, cpu::pad(x.array(), pads, value), {}, [pads](const Grads& g, const Grads&) {
    std::vector<int64_t> crop(pads.size());
    for (size_t i = 0; i < pads.size(); ++i) crop[i] = -pads[i];  // negative padding crops
    return Grads{pad(g[0], crop)};
  });
}

}  // namespace dgm

namespace dgm {
// (B, C, H, W) -> (B, C, H/2, 2, W/2, 2) [b, c, h, i, w, j] -> [b, c, i, j, h, w] -> (B, 4C, H/2, W/2)
Tensor squeeze2d(const Tensor& x) {
  if (x.dim() != 4 || x.size(2) % 2 != 0 || x.size(3) % 2 != 0)
    throw ShapeError(cat("squeeze2d: expected (B, C, H, W) with even H and W, got ", shape_str(x.shape())));
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  return reshape(permute(reshape(x, {B, C, H / 2, 2, W / 2, 2}), {0, 1, 3, 5, 2, 4}), {B, 4 * C, H / 2, W / 2});
}
// (B, 4C, H, W) -> (B, C, 2, 2, H, W) [b, c, i, j, h, w] -> [b, c, h, i, w, j] -> (B, C, 2H, 2W)
Tensor unsqueeze2d(const Tensor& x) {
  if (x.dim() != 4 || x.size(1) % 4 != 0)
    throw ShapeError(cat("unsqueeze2d: expected (B, 4C, H, W), got ", shape_str(x.shape())));
  const int64_t B = x.size(0), C = x.size(1) / 4, H = x.size(2), W = x.size(3);
  return reshape(permute(reshape(x, {B, C, 2, 2, H, W}), {0, 1, 4, 2, 5, 3}), {B, C, 2 * H, 2 * W});
}
}  // namespace dgm
