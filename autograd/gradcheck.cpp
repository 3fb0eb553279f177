#include <dgm/autograd/gradcheck.h>

#include <cmath>

#include <dgm/autograd/engine.h>
#include <dgm/autograd/ops.h>

namespace dgm {

namespace {

// Pointer to element k (row-major logical order) of a float64 tensor, respecting its strides.
double* element(const Tensor& t, int64_t k) {
  const Array& a = t.array();
  int64_t off = 0;
  for (int64_t d = a.dim(); d-- > 0;) {
    off += (k % a.shape()[d]) * a.strides()[d];
    k /= a.shape()[d];
  }
  return static_cast<double*>(a.storage()->data) + a.offset() + off;
}

std::string index_str(const Shape& s, int64_t k) {
  Shape idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = k % s[d];
    k /= s[d];
  }
  return shape_str(idx);
}

std::vector<std::vector<double>> flat_outputs(const DifferentiableFn& fn, const std::vector<Tensor>& inputs) {
  NoGradGuard ng;
  std::vector<std::vector<double>> r;
  for (const Tensor& o : fn(inputs)) r.push_back(o.defined() ? o.to_vector<double>() : std::vector<double>{});
  return r;
}

}  // namespace

GradcheckResult gradcheck(const DifferentiableFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opt) {
  std::vector<size_t> diff;  // indices of inputs we differentiate
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined() || !inputs[i].requires_grad()) continue;
    if (inputs[i].dtype() != DType::Float64)
      throw DTypeError(cat("gradcheck: input ", i, " must be float64 for a meaningful check, got ", dtype_name(inputs[i].dtype())));
    diff.push_back(i);
  }
  std::vector<Tensor> outputs = fn(inputs);
  // analytic Jacobian rows: for each output element, one backward with a one-hot gradient
  for (size_t oi = 0; oi < outputs.size(); ++oi) {
    const Tensor& out = outputs[oi];
    if (!out.defined() || !is_floating(out.dtype())) continue;
    int64_t m = out.numel();
    std::vector<std::vector<std::vector<double>>> analytic(diff.size(), std::vector<std::vector<double>>(m));
    for (int64_t k = 0; k < m; ++k) {
      std::vector<Tensor> ins;
      for (size_t i : diff) ins.push_back(inputs[i]);
      std::vector<Tensor> gs;
      if (out.requires_grad()) {
        Tensor onehot = zeros(out.shape(), {.dtype = out.dtype()});
        *element(onehot, k) = 1;
        gs = autograd::grad({out}, ins, {onehot}, true, false, true);
      } else {
        gs.resize(ins.size());
      }
      for (size_t j = 0; j < diff.size(); ++j)
        analytic[j][k] = gs[j].defined() ? gs[j].to_vector<double>() : std::vector<double>(inputs[diff[j]].numel(), 0.0);
    }
    // numeric Jacobian columns, compared as we go
    for (size_t j = 0; j < diff.size(); ++j) {
      const Tensor& x = inputs[diff[j]];
      for (int64_t e = 0; e < x.numel(); ++e) {
        double* p = element(x, e);
        double orig = *p;
        *p = orig + opt.eps;
        auto plus = flat_outputs(fn, inputs)[oi];
        *p = orig - opt.eps;
        auto minus = flat_outputs(fn, inputs)[oi];
        *p = orig;
        for (int64_t k = 0; k < m; ++k) {
          double numeric = (plus[k] - minus[k]) / (2 * opt.eps);
          double a = analytic[j][k][e];
          if (!(std::abs(a - numeric) <= opt.atol + opt.rtol * std::abs(numeric)))
            return {false, cat("gradcheck failed: d output ", oi, index_str(out.shape(), k), " / d input ", diff[j], index_str(x.shape(), e),
                               " (input shape ", shape_str(x.shape()), "): analytic ", a, ", numeric ", numeric, " (atol ", opt.atol,
                               ", rtol ", opt.rtol, ")")};
        }
      }
    }
  }
  return {};
}

GradcheckResult gradgradcheck(const DifferentiableFn& fn, const std::vector<Tensor>& inputs, GradcheckOptions opt, uint64_t seed) {
  // random output gradients v, themselves differentiated
  Generator gen(seed);
  std::vector<Tensor> outputs = fn(inputs);
  std::vector<Tensor> vs;
  std::vector<size_t> diff_out;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].defined() || !outputs[i].requires_grad()) continue;
    diff_out.push_back(i);
    vs.push_back(randn(outputs[i].shape(), {.dtype = DType::Float64, .requires_grad = true}, &gen));
  }
  std::vector<size_t> diff_in;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].defined() && inputs[i].requires_grad()) diff_in.push_back(i);
  size_t n_in = inputs.size();
  DifferentiableFn grad_fn = [&](const std::vector<Tensor>& all) {
    // Under NoGradGuard (gradcheck's numeric evaluations) we still need first-order gradients,
    // just not a graph of them.
    bool record_second_order = is_grad_enabled();
    EnableGradGuard eg;
    std::vector<Tensor> ins(all.begin(), all.begin() + n_in);
    std::vector<Tensor> outs = fn(ins);
    std::vector<Tensor> os, xs;
    for (size_t i : diff_out) os.push_back(outs[i]);
    for (size_t i : diff_in) xs.push_back(ins[i]);
    std::vector<Tensor> v(all.begin() + n_in, all.end());
    auto g = autograd::grad(os, xs, v, true, record_second_order, true);
    for (size_t k = 0; k < g.size(); ++k) {
      if (!g[k].defined()) g[k] = zeros(xs[k].shape(), {.dtype = DType::Float64});  // zero second derivative
      else if (!record_second_order) g[k] = g[k].detach();
    }
    return g;
  };
  std::vector<Tensor> all = inputs;
  all.insert(all.end(), vs.begin(), vs.end());
  GradcheckResult r = gradcheck(grad_fn, all, opt);
  if (!r.ok) r.message = "gradgradcheck: " + r.message + " (inputs beyond " + std::to_string(n_in - 1) + " are the output gradients)";
  return r;
}

Tensor jacobian(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, bool create_graph) {
  Tensor y = fn(x);
  int64_t m = y.numel();
  std::vector<Tensor> rows;
  for (int64_t k = 0; k < m; ++k) {
    Tensor onehot = zeros(y.shape(), {.dtype = y.dtype()});
    dispatch_floating(y.dtype(), "jacobian", [&]<class T>() { onehot.data<T>()[k] = 1; });
    auto g = autograd::grad({y}, {x}, {onehot}, true, create_graph, true);
    rows.push_back(g[0].defined() ? reshape(g[0], {-1}) : zeros({x.numel()}, {.dtype = x.dtype()}));
  }
  Shape s = y.shape();
  s.insert(s.end(), x.shape().begin(), x.shape().end());
  return reshape(stack(rows, 0), s);
}

Tensor hessian(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x) {
  auto grad_fn = [&](const Tensor& z) { return autograd::grad({fn(z)}, {z}, {}, true, true)[0]; };
  return jacobian(grad_fn, x);
}

Tensor hvp(const std::function<Tensor(const Tensor&)>& fn, const Tensor& x, const Tensor& v) {
  Tensor g = autograd::grad({fn(x)}, {x}, {}, true, true)[0];
  return autograd::grad({sum(g * v)}, {x}, {}, true, false)[0];
}

}  // namespace dgm
