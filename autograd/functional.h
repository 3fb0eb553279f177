// Jacobians and Jacobian products of a function f: R^n -> R^m, built on reverse mode
// (torch.autograd.functional). For a normalizing flow z = f(x) these give J_f = dz/dx, whose
// log|det| every flow layer's analytic log-det is tested against.
//
//   vjp:  v^T J      one backward pass (reverse mode's native product)
//   jvp:  J v        two backward passes, the double-backward trick: g(u) = J^T u is linear in a
//                    dummy u, so d<g(u), v>/du = J v, whatever the value of u
//   jacobian:  J     m backward passes, one per output element (row k = e_k^T J)
//   batch_jacobian:  the per-example Jacobians J_b = dz_b/dx_b of a function applied to each example
//                    of a batch independently, in (size of one output) passes instead of B times that
//
// Shapes: x any shape, y = f(x) any shape; jacobian(f, x) has shape y.shape + x.shape.
// create_graph = true records the computation, so the results can be differentiated again
// (e.g. the gradient of a log-det computed from a Jacobian); x's own history is kept then.
#pragma once
#include <functional>

#include <dgm/autograd/tensor.h>

namespace dgm::autograd {

using TensorFunction = std::function<Tensor(const Tensor&)>;

struct OutputAndProduct {
  Tensor output;   // f(x)
  Tensor product;  // vjp: v^T J, shaped like x;  jvp: J v, shaped like f(x)
};

// v: shaped like f(x).
OutputAndProduct vjp(const TensorFunction& f, const Tensor& x, const Tensor& v, bool create_graph = false);
// v: shaped like x.
OutputAndProduct jvp(const TensorFunction& f, const Tensor& x, const Tensor& v, bool create_graph = false);
// (y.shape..., x.shape...)
Tensor jacobian(const TensorFunction& f, const Tensor& x, bool create_graph = false);
// x: (B, ...) -> y: (B, ...), example b of y depending on example b of x only (the caller's
// promise; not checked). Returns (B, y.shape[1:]..., x.shape[1:]...).
Tensor batch_jacobian(const TensorFunction& f, const Tensor& x, bool create_graph = false);

}  // namespace dgm::autograd
