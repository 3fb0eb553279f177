// Numerical gradient checks (float64, central differences), as torch.autograd.gradcheck:
//   d f / d x_j  ~  (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)
// compared against the analytic Jacobian from backward, element by element.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <dgm/autograd/tensor.h>

namespace dgm {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
};
struct GradcheckResult {
  bool ok = true;
  std::string message;  // on failure: which input/output/element, analytic and numeric values
  explicit operator bool() const { return ok; }
};

using DifferentiableFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;

// Inputs that require grad must be float64; others (indices, masks) are passed through.
// Inputs may be non-contiguous views (they are perturbed in place, keeping their layout).
GradcheckResult gradcheck(const DifferentiableFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opt = {});
// Checks the gradient of the gradient: gradcheck of (inputs, v) -> grad(fn(inputs), inputs, v, create_graph).
GradcheckResult gradgradcheck(const DifferentiableFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opt = {},
                              uint64_t seed = 0);

// Full Jacobian of a function R^n -> R^m at x (for Hessians: jacobian of the gradient).
Tensor jacobian(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, bool create_graph = false);
// Hessian of a scalar function and a Hessian-vector product (double backward).
Tensor hessian(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x);
Tensor hvp(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const Tensor& v);

}  // namespace dgm
