#include <dgm/autograd/functional.h>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/ops.h>

namespace dgm::autograd {

namespace {

// The input the function sees: x itself when its history is to be kept, else a fresh leaf.
Tensor prepare_input(const Tensor& x, bool create_graph, const char* op) {
  if (!is_floating(x.dtype())) throw DTypeError(cat(op, ": expected a floating input, got ", dtype_name(x.dtype())));
  if (create_graph && x.requires_grad()) return x;
  return x.detach().requires_grad_();
}

Tensor finish(const Tensor& t, bool create_graph) { return create_graph ? t : t.detach(); }

// d <y, v> / dx, zeros where y does not depend on x
Tensor vector_jacobian(const Tensor& y, const Tensor& x, const Tensor& v, bool create_graph) {
  if (!y.requires_grad()) return zeros(x.shape(), {.dtype = x.dtype()});
  Tensor g = grad({y}, {x}, {v}, true, create_graph, true)[0];
  return g.defined() ? g : zeros(x.shape(), {.dtype = x.dtype()});
}

void check_shape(const Tensor& v, const Shape& expected, const char* op, const char* what) {
  if (v.shape() != expected)
    throw ShapeError(cat(op, ": v has shape ", shape_str(v.shape()), ", expected the shape of ", what, " ", shape_str(expected)));
}

}  // namespace

OutputAndProduct vjp(const TensorFunction& f, const Tensor& x, const Tensor& v, bool create_graph) {
  EnableGradGuard enable;
  Tensor xi = prepare_input(x, create_graph, "vjp");
  Tensor y = f(xi);
  check_shape(v, y.shape(), "vjp", "f(x)");
  return {finish(y, create_graph), finish(vector_jacobian(y, xi, v, create_graph), create_graph)};
}

OutputAndProduct jvp(const TensorFunction& f, const Tensor& x, const Tensor& v, bool create_graph) {
  EnableGradGuard enable;
  check_shape(v, x.shape(), "jvp", "x");
  Tensor xi = prepare_input(x, create_graph, "jvp");
  Tensor y = f(xi);
  Tensor u = zeros(y.shape(), {.dtype = y.dtype(), .requires_grad = true});  // dummy: J^T u is linear in u
  Tensor jt_u = vector_jacobian(y, xi, u, true);
  Tensor jv = jt_u.requires_grad() ? vector_jacobian(jt_u, u, v, create_graph) : zeros(y.shape(), {.dtype = y.dtype()});
  return {finish(y, create_graph), finish(jv, create_graph)};
}

Tensor jacobian(const TensorFunction& f, const Tensor& x, bool create_graph) {
  EnableGradGuard enable;
  Tensor xi = prepare_input(x, create_graph, "jacobian");
  Tensor y = f(xi);
  const int64_t m = y.numel();
  std::vector<Tensor> rows;  // row k = e_k^T J, flattened
  rows.reserve(static_cast<size_t>(m));
  for (int64_t k = 0; k < m; ++k) {
    Array e = Array::zeros({m}, y.dtype());
    dispatch_floating(y.dtype(), "jacobian", [&]<class T>() { e.data<T>()[k] = 1; });
    rows.push_back(reshape(vector_jacobian(y, xi, Tensor(e.view(y.shape())), create_graph), {-1}));
  }
  Shape s = y.shape();
  s.insert(s.end(), x.shape().begin(), x.shape().end());
  if (m == 0) return zeros(s, {.dtype = x.dtype()});
  return finish(reshape(stack(rows, 0), s), create_graph);
}

Tensor batch_jacobian(const TensorFunction& f, const Tensor& x, bool create_graph) {
  if (x.dim() < 1) throw ShapeError("batch_jacobian: x needs a batch dim, got a 0-dim tensor");
  // Summing the outputs over the batch leaves sum_b dy_b/dx_b; x_b reaches only y_b, so the
  // block of J(sum) for x_b is J_b.
  auto summed = [&](const Tensor& xb) { return sum(f(xb), {0}); };
  Tensor j = jacobian(summed, x, create_graph);  // (y.shape[1:]..., B, x.shape[1:]...)
  const int64_t out_dims = j.dim() - x.dim();
  std::vector<int64_t> order{out_dims};  // the batch dim first
  for (int64_t d = 0; d < j.dim(); ++d)
    if (d != out_dims) order.push_back(d);
  return permute(j, order);
}

}  // namespace dgm::autograd
