// Elementwise ops: forward on the CPU kernels, backward written with differentiable ops.
//   Each op: y = f(x) ... ; backward: dL/dx = dL/dy * f'(x).
#include <cmath>

#include <dgm/autograd/node.h>
#include <dgm/autograd/ops.h>
#include <dgm/tensor/kernels.h>

namespace dgm {

using cpu::Binary;
using cpu::Unary;
using Grads = std::vector<Tensor>;

// A tensor without history: masks and constants inside backward formulas.
static Tensor constant(Array a) { return Tensor(std::move(a)); }

Tensor scalar_like(const Tensor& like, double v) {
  DType t = like.dtype();
  if (!is_floating(t)) t = (v == std::floor(v) && t == DType::Int64) ? DType::Int64 : DType::Float32;
  return Tensor(Array::scalar(v, t));
}

// ---- unary ----------------------------------------------------------------------------------------
// Each backward gets `s`, the tensors its save list names, in that order: with {save::out()}, s[0] is y;
// with {save::in(0)}, s[0] is x.
Tensor neg(const Tensor& x) {
  return record1(Op::Neg, {x}, cpu::unary(Unary::Neg, x.array()), {}, [](const Grads& g, const Grads&) { return Grads{-g[0]}; });
}
Tensor abs(const Tensor& x) {
  return record1(Op::Abs, {x}, cpu::unary(Unary::Abs, x.array()), {save::in(0)},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * sign(s[0])}; });
}
Tensor sign(const Tensor& x) { return constant(cpu::unary(Unary::Sign, x.array())); }
Tensor exp(const Tensor& x) {  // d e^x = e^x
  return record1(Op::Exp, {x}, cpu::unary(Unary::Exp, x.array()), {save::out()}, [](const Grads& g, const Grads& s) { return Grads{g[0] * s[0]}; });
}
Tensor log(const Tensor& x) {  // d log x = 1/x
  return record1(Op::Log, {x}, cpu::unary(Unary::Log, x.array()), {save::in(0)}, [](const Grads& g, const Grads& s) { return Grads{g[0] / s[0]}; });
}
Tensor log1p(const Tensor& x) {
  return record1(Op::Log1p, {x}, cpu::unary(Unary::Log1p, x.array()), {save::in(0)},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] / (s[0] + 1.0)}; });
}
Tensor expm1(const Tensor& x) {  // d (e^x - 1) = e^x = y + 1
  return record1(Op::Expm1, {x}, cpu::unary(Unary::Expm1, x.array()), {save::out()},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * (s[0] + 1.0)}; });
}
Tensor sqrt(const Tensor& x) {  // d sqrt(x) = 1 / (2 sqrt(x))
  return record1(Op::Sqrt, {x}, cpu::unary(Unary::Sqrt, x.array()), {save::out()},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * 0.5 / s[0]}; });
}
Tensor rsqrt(const Tensor& x) {  // d x^(-1/2) = -x^(-3/2) / 2 = -y^3 / 2
  return record1(Op::Rsqrt, {x}, cpu::unary(Unary::Rsqrt, x.array()), {save::out()},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * (-0.5) * s[0] * s[0] * s[0]}; });
}
Tensor sin(const Tensor& x) {
  return record1(Op::Sin, {x}, cpu::unary(Unary::Sin, x.array()), {save::in(0)}, [](const Grads& g, const Grads& s) { return Grads{g[0] * cos(s[0])}; });
}
Tensor cos(const Tensor& x) {
  return record1(Op::Cos, {x}, cpu::unary(Unary::Cos, x.array()), {save::in(0)}, [](const Grads& g, const Grads& s) { return Grads{-g[0] * sin(s[0])}; });
}
Tensor tanh(const Tensor& x) {  // d tanh = 1 - tanh^2
  return record1(Op::Tanh, {x}, cpu::unary(Unary::Tanh, x.array()), {save::out()},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * (1.0 - s[0] * s[0])}; });
}
Tensor sigmoid(const Tensor& x) {  // d sigma = sigma (1 - sigma)
  return record1(Op::Sigmoid, {x}, cpu::unary(Unary::Sigmoid, x.array()), {save::out()},
                 [](const Grads& g, const Grads& s) {
                   // one fused pass (tensor/kernels.h) unless the gradient's own graph is recorded
                   if (!is_grad_enabled() && g[0].dtype() == s[0].dtype() && g[0].shape() == s[0].shape())
                     return Grads{constant(cpu::sigmoid_backward(g[0].array(), s[0].array()))};
                   return Grads{g[0] * s[0] * (1.0 - s[0])};
                 });
}
Tensor relu(const Tensor& x) {  // d relu = [x > 0] = [y > 0]
  // only the output is kept (as PyTorch does): the input can be freed once the forward is done with it
  return record1(Op::Relu, {x}, cpu::unary(Unary::Relu, x.array()), {save::out()}, [](const Grads& g, const Grads& s) {
    // one fused pass (tensor/kernels.h) unless the gradient's own graph is recorded: the composite
    // makes three (compare, bool -> float, multiply), six times per PixelCNN step
    if (!is_grad_enabled() && g[0].dtype() == s[0].dtype() && g[0].shape() == s[0].shape())
      return Grads{constant(cpu::relu_backward(g[0].array(), s[0].array()))};
    return Grads{g[0] * constant(cpu::compare(cpu::Compare::Gt, s[0].array(), Array::scalar(0, s[0].dtype())).to(g[0].dtype()))};
  });
}
// approximate="tanh": g = x/2 (1 + t), t = tanh(u), u = k (x + c x^3), k = sqrt(2/pi), c = 0.044715;
// d g = (1 + t)/2 + x/2 (1 - t^2) k (1 + 3 c x^2).
static Tensor gelu_tanh(const Tensor& x) {
  return record1(Op::GeluTanh, {x}, cpu::unary(Unary::GeluTanh, x.array()), {save::in(0)}, [](const Grads& g, const Grads& s) {
    const Tensor& x = s[0];
    const double k = M_2_SQRTPI * M_SQRT1_2, c = 0.044715;
    Tensor t = tanh(k * (x + c * x * x * x));
    return Grads{g[0] * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (k * (1.0 + 3.0 * c * x * x)))};
  });
}
void check_gelu_approximate(std::string_view approximate) {
  if (approximate != "none" && approximate != "tanh")
    throw ValueError(cat("gelu: approximate must be \"none\" or \"tanh\", got \"", approximate, "\""));
}
Tensor gelu(const Tensor& x, std::string_view approximate) {  // gelu = x Phi(x);  d gelu = Phi(x) + x phi(x)
  check_gelu_approximate(approximate);
  if (approximate == "tanh") return gelu_tanh(x);
  return record1(Op::Gelu, {x}, cpu::unary(Unary::Gelu, x.array()), {save::in(0)}, [](const Grads& g, const Grads& s) {
    const Tensor& x = s[0];
    Tensor Phi = 0.5 * (1.0 + erf(x * M_SQRT1_2));
    Tensor phi = exp(-0.5 * x * x) * (0.5 * M_2_SQRTPI * M_SQRT1_2);  // 1/sqrt(2 pi) e^{-x^2/2}
    return Grads{g[0] * (Phi + x * phi)};
  });
}
Tensor softplus(const Tensor& x) {  // d log(1 + e^x) = sigmoid(x)
  return record1(Op::Softplus, {x}, cpu::unary(Unary::Softplus, x.array()), {save::in(0)},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * sigmoid(s[0])}; });
}
Tensor elu(const Tensor& x) {  // d elu = [x > 0] + [x <= 0] e^x = 1 + [y <= 0] y  ([y <= 0] = [x <= 0])
  // only the output is kept: the input can be freed as soon as the forward pass is done with it
  return record1(Op::Elu, {x}, cpu::unary(Unary::Elu, x.array()), {save::out()}, [](const Grads& g, const Grads& s) {
    // one fused pass (tensor/kernels.h) unless the gradient's own graph is recorded
    if (!is_grad_enabled() && g[0].dtype() == s[0].dtype() && g[0].shape() == s[0].shape())
      return Grads{constant(cpu::elu_backward(g[0].array(), s[0].array()))};
    Tensor negative = constant(cpu::compare(cpu::Compare::Le, s[0].array(), Array::scalar(0, s[0].dtype())).to(g[0].dtype()));
    return Grads{g[0] * (1.0 + negative * s[0])};
  });
}
Tensor erf(const Tensor& x) {  // d erf = 2/sqrt(pi) e^{-x^2}
  return record1(Op::Erf, {x}, cpu::unary(Unary::Erf, x.array()), {save::in(0)},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * M_2_SQRTPI * exp(-(s[0] * s[0]))}; });
}
Tensor pow(const Tensor& x, double p) {  // d x^p = p x^(p-1)
  return record1(Op::PowScalar, {x}, cpu::pow_scalar(x.array(), p), {save::in(0)}, [p](const Grads& g, const Grads& s) {
    if (p == 0) return Grads{g[0] * 0.0};
    if (p == 1) return Grads{g[0]};
    if (p == 2) return Grads{g[0] * 2.0 * s[0]};
    return Grads{g[0] * p * pow(s[0], p - 1)};
  });
}
Tensor square(const Tensor& x) { return pow(x, 2); }
Tensor clamp(const Tensor& x, double lo, double hi) {  // gradient passes where lo <= x <= hi
  return record1(Op::Clamp, {x}, cpu::clamp(x.array(), lo, hi), {save::in(0)}, [lo, hi](const Grads& g, const Grads& s) {
    Array inside = cpu::logical_and(cpu::compare(cpu::Compare::Ge, s[0].array(), Array::scalar(lo, s[0].dtype())),
                                    cpu::compare(cpu::Compare::Le, s[0].array(), Array::scalar(hi, s[0].dtype())));
    return Grads{g[0] * constant(inside.to(g[0].dtype()))};
  });
}
Tensor clamp_min(const Tensor& x, double lo) { return clamp(x, lo, INFINITY); }
Tensor clamp_max(const Tensor& x, double hi) { return clamp(x, -INFINITY, hi); }

// ---- binary ----------------------------------------------------------------------------------------
// The node sums each gradient down to its input's shape, so formulas ignore broadcasting.
Tensor add(const Tensor& a, const Tensor& b) {
  return record1(Op::Add, {a, b}, cpu::binary(Binary::Add, a.array(), b.array()), {},
                 [](const Grads& g, const Grads&) { return Grads{g[0], g[0]}; });
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return record1(Op::Sub, {a, b}, cpu::binary(Binary::Sub, a.array(), b.array()), {},
                 [](const Grads& g, const Grads&) { return Grads{g[0], -g[0]}; });
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return record1(Op::Mul, {a, b}, cpu::binary(Binary::Mul, a.array(), b.array()), {save::in(0), save::in(1)},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] * s[1], g[0] * s[0]}; });
}
Tensor div(const Tensor& a, const Tensor& b) {  // d(a/b) = da / b - a db / b^2
  return record1(Op::Div, {a, b}, cpu::binary(Binary::Div, a.array(), b.array()), {save::in(0), save::in(1)},
                 [](const Grads& g, const Grads& s) { return Grads{g[0] / s[1], -g[0] * s[0] / (s[1] * s[1])}; });
}
// Ties split the gradient evenly between a and b, as in PyTorch.
static Tensor pick_weight(const Tensor& a, const Tensor& b, bool greater) {
  Array win = cpu::compare(greater ? cpu::Compare::Gt : cpu::Compare::Lt, a.array(), b.array()).to(a.dtype());
  Array tie = cpu::compare(cpu::Compare::Eq, a.array(), b.array()).to(a.dtype());
  return constant(cpu::binary(Binary::Add, win, cpu::binary(Binary::Mul, tie, Array::scalar(0.5, a.dtype()))));
}
Tensor maximum(const Tensor& a, const Tensor& b) {
  return record1(Op::Maximum, {a, b}, cpu::binary(Binary::Maximum, a.array(), b.array()), {save::in(0), save::in(1)}, [](const Grads& g, const Grads& s) {
    return Grads{g[0] * pick_weight(s[0], s[1], true), g[0] * pick_weight(s[1], s[0], true)};
  });
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return record1(Op::Minimum, {a, b}, cpu::binary(Binary::Minimum, a.array(), b.array()), {save::in(0), save::in(1)}, [](const Grads& g, const Grads& s) {
    return Grads{g[0] * pick_weight(s[0], s[1], false), g[0] * pick_weight(s[1], s[0], false)};
  });
}
Tensor pow(const Tensor& a, const Tensor& b) {  // d a^b = b a^(b-1) da + a^b log(a) db
  return record1(Op::Pow, {a, b}, cpu::binary(Binary::Pow, a.array(), b.array()), {save::in(0), save::in(1), save::out()}, [](const Grads& g, const Grads& s) {
    const Tensor &a = s[0], &b = s[1], &y = s[2];
    Tensor ga = g[0] * b * pow(a, b - 1.0);
    // at a == 0 the exponent's gradient is taken as 0 (the limit of a^b log a for b > 0)
    Tensor a_zero = constant(cpu::compare(cpu::Compare::Eq, a.array(), Array::scalar(0, a.dtype())));
    Tensor gb = where(a_zero, scalar_like(y, 0), g[0] * y * log(where(a_zero, scalar_like(a, 1), a)));
    return Grads{ga, gb};
  });
}
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  return record1(Op::Where, {cond, a, b}, cpu::where(cond.array(), a.array(), b.array()), {save::in(0)}, [](const Grads& g, const Grads& s) {
    Tensor zero = scalar_like(g[0], 0);
    return Grads{Tensor(), where(s[0], g[0], zero), where(s[0], zero, g[0])};
  });
}
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  if (mask.dtype() != DType::Bool) throw DTypeError(cat("masked_fill: mask must be bool, got ", dtype_name(mask.dtype())));
  Array out = cpu::where(mask.array(), Array::scalar(value, x.dtype()), x.array());
  if (out.shape() != x.shape())
    throw ShapeError(cat("masked_fill: mask of shape ", shape_str(mask.shape()), " does not broadcast to the input's shape ", shape_str(x.shape())));
  return record1(Op::MaskedFill, {x, mask}, out, {save::in(1)},
                 [](const Grads& g, const Grads& s) { return Grads{where(s[0], scalar_like(g[0], 0), g[0]), Tensor()}; });
}

// ---- comparisons (no gradient) --------------------------------------------------------------------
Tensor eq(const Tensor& a, const Tensor& b) { return constant(cpu::compare(cpu::Compare::Eq, a.array(), b.array())); }
Tensor ne(const Tensor& a, const Tensor& b) { return constant(cpu::compare(cpu::Compare::Ne, a.array(), b.array())); }
Tensor lt(const Tensor& a, const Tensor& b) { return constant(cpu::compare(cpu::Compare::Lt, a.array(), b.array())); }
Tensor le(const Tensor& a, const Tensor& b) { return constant(cpu::compare(cpu::Compare::Le, a.array(), b.array())); }
Tensor gt(const Tensor& a, const Tensor& b) { return constant(cpu::compare(cpu::Compare::Gt, a.array(), b.array())); }
Tensor ge(const Tensor& a, const Tensor& b) { return constant(cpu::compare(cpu::Compare::Ge, a.array(), b.array())); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return constant(cpu::logical_and(a.array(), b.array())); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return constant(cpu::logical_or(a.array(), b.array())); }
Tensor logical_not(const Tensor& a) { return constant(cpu::logical_not(a.array())); }

// ---- operators ------------------------------------------------------------------------------------
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(a, b)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(a, b)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(b, a), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(b, a), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(b, a), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(b, a), b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, double b) { return lt(a, scalar_like(a, b)); }
Tensor operator<=(const Tensor& a, double b) { return le(a, scalar_like(a, b)); }
Tensor operator>(const Tensor& a, double b) { return gt(a, scalar_like(a, b)); }
Tensor operator>=(const Tensor& a, double b) { return ge(a, scalar_like(a, b)); }
Tensor operator==(const Tensor& a, double b) { return eq(a, scalar_like(a, b)); }
Tensor operator!=(const Tensor& a, double b) { return ne(a, scalar_like(a, b)); }

}  // namespace dgm

namespace dgm {
// logit(x) = log x - log(1 - x);  d logit = 1 / (x (1 - x)) comes from the two ops it is made of.
Tensor logit(const Tensor& x, std::optional<double> eps) {
  if (eps && !(*eps >= 0 && *eps < 0.5)) throw ValueError(cat("logit: eps must be in [0, 0.5), got ", *eps));
  Tensor xc = eps ? clamp(x, *eps, 1 - *eps) : x;
  return log(xc) - log1p(-xc);
}
}  // namespace dgm
