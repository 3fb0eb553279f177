// Elementwise kernels: y = f(x) and z = a op b with NumPy broadcasting.
#include <cmath>
#include <cstdlib>

#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>
#include <dgm/tensor/vecmath.h>

namespace dgm::cpu {

void set_num_threads(int n) {
  if (n < 1) throw ValueError(cat("set_num_threads: expected n >= 1, got ", n));
  omp_set_num_threads(n);
}
int get_num_threads() { return omp_get_max_threads(); }

namespace {

// out[i] = f(x[i]) for any layout of x; out is a fresh contiguous array of dtype `out_dtype`.
template <class T, class U, class F>
Array map_unary(const Array& x, DType out_dtype, F f) {
  Array out = Array::empty(x.shape(), out_dtype);
  const T* xp = static_cast<const T*>(x.storage()->data) + x.offset();
  U* op = out.data<U>();
  for_each_row<2>(x.shape(), {x.strides(), out.strides()}, [&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
    const T* a = xp + o[0];
    U* r = op + o[1];
    if (s[0] == 1) {
      for (int64_t i = 0; i < n; ++i) r[i] = f(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) r[i] = f(a[i * s[0]]);
    }
  });
  return out;
}

// out = f(a, b) with a, b broadcast to `shape`; the operands are already of type T.
template <class T, class U, class F>
Array map_binary(const Array& a, const Array& b, DType out_dtype, F f, const char* op) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op);
  Array out = Array::empty(shape, out_dtype);
  const T* ap = static_cast<const T*>(a.storage()->data) + a.offset();
  const T* bp = static_cast<const T*>(b.storage()->data) + b.offset();
  U* op_ = out.data<U>();
  for_each_row<3>(shape, {broadcast_strides(a, shape), broadcast_strides(b, shape), out.strides()},
                  [&](const std::array<int64_t, 3>& o, int64_t n, const std::array<int64_t, 3>& s) {
                    const T* x = ap + o[0];
                    const T* y = bp + o[1];
                    U* r = op_ + o[2];
                    if (s[0] == 1 && s[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) r[i] = f(x[i], y[i]);
                    } else if (s[0] == 1 && s[1] == 0) {
                      T yv = *y;
                      for (int64_t i = 0; i < n; ++i) r[i] = f(x[i], yv);
                    } else if (s[0] == 0 && s[1] == 1) {
                      T xv = *x;
                      for (int64_t i = 0; i < n; ++i) r[i] = f(xv, y[i]);
                    } else {
                      for (int64_t i = 0; i < n; ++i) r[i] = f(x[i * s[0]], y[i * s[1]]);
                    }
                  });
  return out;
}

template <class T>
T gelu(T x) {  // exact (erf) GELU, PyTorch's default: x Phi(x); float: vectorisable (tensor/vecmath.h)
  return x * normal_cdf_approx(x);
}
template <class T>
T gelu_tanh(T x) {  // PyTorch's approximate="tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  const T k = static_cast<T>(M_2_SQRTPI * M_SQRT1_2), c = static_cast<T>(0.044715);
  return static_cast<T>(0.5) * x * (static_cast<T>(1) + std::tanh(k * (x + c * x * x * x)));
}
template <class T>
T softplus(T x) {  // log(1 + e^x) without overflow; float: vectorisable (tensor/vecmath.h)
  return softplus_approx(x);
}

const char* unary_name(Unary op) {
  static const char* names[] = {"neg", "abs", "sign", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt",
                                "sin", "cos", "tanh", "sigmoid", "relu", "gelu", "softplus", "erf", "elu", "gelu_tanh"};
  return names[static_cast<int>(op)];
}

}  // namespace

Array unary(Unary op, const Array& x) {
  const char* name = unary_name(op);
  if (op == Unary::Neg || op == Unary::Abs || op == Unary::Sign || op == Unary::Relu) {
    return dispatch_numeric(x.dtype(), name, [&]<class T>() {
      switch (op) {
        case Unary::Neg: return map_unary<T, T>(x, x.dtype(), [](T v) { return static_cast<T>(-v); });
        case Unary::Abs: return map_unary<T, T>(x, x.dtype(), [](T v) { return v < 0 ? static_cast<T>(-v) : v; });
        case Unary::Sign: return map_unary<T, T>(x, x.dtype(), [](T v) { return static_cast<T>((v > 0) - (v < 0)); });
        default: return map_unary<T, T>(x, x.dtype(), [](T v) { return v > 0 || is_nan(v) ? v : static_cast<T>(0); });  // NaN stays NaN, as torch.relu
      }
    });
  }
  return dispatch_floating(x.dtype(), name, [&]<class T>() {
    switch (op) {
      case Unary::Exp: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::exp(v); });
      case Unary::Log: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::log(v); });
      case Unary::Log1p: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::log1p(v); });
      case Unary::Expm1: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::expm1(v); });
      case Unary::Sqrt: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::sqrt(v); });
      case Unary::Rsqrt: return map_unary<T, T>(x, x.dtype(), [](T v) { return 1 / std::sqrt(v); });
      case Unary::Sin: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::sin(v); });
      case Unary::Cos: return map_unary<T, T>(x, x.dtype(), [](T v) { return std::cos(v); });
      case Unary::Tanh: return map_unary<T, T>(x, x.dtype(), [](T v) { return tanh_approx(v); });  // float: vectorisable
      case Unary::Sigmoid: return map_unary<T, T>(x, x.dtype(), [](T v) { return sigmoid_approx(v); });  // tensor/vecmath.h
      case Unary::Gelu: return map_unary<T, T>(x, x.dtype(), [](T v) { return gelu(v); });
      case Unary::Softplus: return map_unary<T, T>(x, x.dtype(), [](T v) { return softplus(v); });
      case Unary::Erf: return map_unary<T, T>(x, x.dtype(), [](T v) { return erf_approx(v); });
      case Unary::GeluTanh: return map_unary<T, T>(x, x.dtype(), [](T v) { return gelu_tanh(v); });
      // float: a vectorisable expm1 (tensor/vecmath.h); float64: std::expm1
      case Unary::Elu: return map_unary<T, T>(x, x.dtype(), [](T v) { return v > 0 ? v : expm1_approx(v); });
      default: throw Error(cat("unary: unhandled op ", name));
    }
  });
}

Array pow_scalar(const Array& x, double p) {
  return dispatch_floating(x.dtype(), "pow", [&]<class T>() {
    if (p == 2) return map_unary<T, T>(x, x.dtype(), [](T v) { return v * v; });
    T pt = static_cast<T>(p);
    return map_unary<T, T>(x, x.dtype(), [pt](T v) { return std::pow(v, pt); });
  });
}

Array clamp(const Array& x, double lo, double hi) {
  if (lo > hi) throw ValueError(cat("clamp: min ", lo, " is greater than max ", hi));
  return dispatch_numeric(x.dtype(), "clamp", [&]<class T>() {
    return map_unary<T, T>(x, x.dtype(), [lo, hi](T v) {
      double d = static_cast<double>(v);
      return static_cast<T>(d < lo ? lo : (d > hi ? hi : d));
    });
  });
}

static const char* binary_name(Binary op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};
  return names[static_cast<int>(op)];
}

Array binary(Binary op, const Array& a_in, const Array& b_in) {
  const char* name = binary_name(op);
  DType t = promote_types(a_in.dtype(), b_in.dtype());
  // PyTorch's true division: integer / integer gives a float.
  if (op == Binary::Div && !is_floating(t)) t = DType::Float32;
  if (op == Binary::Pow && !is_floating(t)) t = DType::Float32;
  Array a = a_in.to(t), b = b_in.to(t);
  return dispatch_numeric(t, name, [&]<class T>() {
    switch (op) {
      case Binary::Add: return map_binary<T, T>(a, b, t, [](T x, T y) { return static_cast<T>(x + y); }, name);
      case Binary::Sub: return map_binary<T, T>(a, b, t, [](T x, T y) { return static_cast<T>(x - y); }, name);
      case Binary::Mul: return map_binary<T, T>(a, b, t, [](T x, T y) { return static_cast<T>(x * y); }, name);
      case Binary::Div: return map_binary<T, T>(a, b, t, [](T x, T y) { return static_cast<T>(x / y); }, name);
      // NaN propagates, as in torch.maximum
      case Binary::Maximum: return map_binary<T, T>(a, b, t, [](T x, T y) { return is_nan(x) ? x : (is_nan(y) ? y : (x > y ? x : y)); }, name);
      case Binary::Minimum: return map_binary<T, T>(a, b, t, [](T x, T y) { return is_nan(x) ? x : (is_nan(y) ? y : (x < y ? x : y)); }, name);
      case Binary::Pow: return map_binary<T, T>(a, b, t, [](T x, T y) { return static_cast<T>(std::pow(x, y)); }, name);
    }
    throw Error("binary: unhandled op");
  });
}

Array compare(Compare op, const Array& a_in, const Array& b_in) {
  DType t = promote_types(a_in.dtype(), b_in.dtype());
  Array a = a_in.to(t), b = b_in.to(t);
  return dispatch(t, [&]<class T>() {
    switch (op) {
      case Compare::Eq: return map_binary<T, bool>(a, b, DType::Bool, [](T x, T y) { return x == y; }, "eq");
      case Compare::Ne: return map_binary<T, bool>(a, b, DType::Bool, [](T x, T y) { return x != y; }, "ne");
      case Compare::Lt: return map_binary<T, bool>(a, b, DType::Bool, [](T x, T y) { return x < y; }, "lt");
      case Compare::Le: return map_binary<T, bool>(a, b, DType::Bool, [](T x, T y) { return x <= y; }, "le");
      case Compare::Gt: return map_binary<T, bool>(a, b, DType::Bool, [](T x, T y) { return x > y; }, "gt");
      case Compare::Ge: return map_binary<T, bool>(a, b, DType::Bool, [](T x, T y) { return x >= y; }, "ge");
    }
    throw Error("compare: unhandled op");
  });
}

Array logical_and(const Array& a, const Array& b) {
  return map_binary<bool, bool>(a.to(DType::Bool), b.to(DType::Bool), DType::Bool, [](bool x, bool y) { return x && y; }, "logical_and");
}
Array logical_or(const Array& a, const Array& b) {
  return map_binary<bool, bool>(a.to(DType::Bool), b.to(DType::Bool), DType::Bool, [](bool x, bool y) { return x || y; }, "logical_or");
}
Array logical_not(const Array& a) {
  return map_unary<bool, bool>(a.to(DType::Bool), DType::Bool, [](bool x) { return !x; });
}

Array where(const Array& cond, const Array& a_in, const Array& b_in) {
  if (cond.dtype() != DType::Bool) throw DTypeError(cat("where: condition must be bool, got ", dtype_name(cond.dtype())));
  DType t = promote_types(a_in.dtype(), b_in.dtype());
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a_in.shape(), "where"), b_in.shape(), "where");
  Array a = a_in.to(t), b = b_in.to(t);
  Array out = Array::empty(shape, t);
  dispatch(t, [&]<class T>() {
    const bool* cp = static_cast<const bool*>(cond.storage()->data) + cond.offset();
    const T* ap = static_cast<const T*>(a.storage()->data) + a.offset();
    const T* bp = static_cast<const T*>(b.storage()->data) + b.offset();
    T* op = out.data<T>();
    for_each_row<4>(shape, {broadcast_strides(cond, shape), broadcast_strides(a, shape), broadcast_strides(b, shape), out.strides()},
                    [&](const std::array<int64_t, 4>& o, int64_t n, const std::array<int64_t, 4>& s) {
                      for (int64_t i = 0; i < n; ++i)
                        op[o[3] + i] = cp[o[0] + i * s[0]] ? ap[o[1] + i * s[1]] : bp[o[2] + i * s[2]];
                    });
  });
  return out;
}

void binary_(Binary op, Array& a, const Array& b_in) {
  if (broadcast_shapes(a.shape(), b_in.shape(), binary_name(op)) != a.shape())
    throw ShapeError(cat(binary_name(op), "_: in-place result of shape ", shape_str(a.shape()), " cannot hold the broadcast with ",
                         shape_str(b_in.shape())));
  // As PyTorch: the out-of-place result type must fit in `a` (int64 += 0.5 would silently truncate;
  // int64 / int64 is a float).
  DType result = promote_types(a.dtype(), b_in.dtype());
  if ((op == Binary::Div || op == Binary::Pow) && !is_floating(result)) result = DType::Float32;
  if (!is_floating(a.dtype()) && is_floating(result))
    throw DTypeError(cat(binary_name(op), "_: the result type ", dtype_name(result), " cannot be stored in place in a tensor of dtype ",
                         dtype_name(a.dtype())));
  Array b = b_in.to(a.dtype());
  dispatch_numeric(a.dtype(), binary_name(op), [&]<class T>() {
    T* ap = a.data<T>();
    const T* bp = static_cast<const T*>(b.storage()->data) + b.offset();
    for_each_row<2>(a.shape(), {a.strides(), broadcast_strides(b, a.shape())},
                    [&](const std::array<int64_t, 2>& o, int64_t n, const std::array<int64_t, 2>& s) {
                      T* x = ap + o[0];
                      const T* y = bp + o[1];
                      for (int64_t i = 0; i < n; ++i) {
                        T& r = x[i * s[0]];
                        T v = y[i * s[1]];
                        switch (op) {
                          case Binary::Add: r += v; break;
                          case Binary::Sub: r -= v; break;
                          case Binary::Mul: r *= v; break;
                          case Binary::Div: r /= v; break;
                          case Binary::Maximum: r = r > v ? r : v; break;
                          case Binary::Minimum: r = r < v ? r : v; break;
                          case Binary::Pow: r = static_cast<T>(std::pow(r, v)); break;
                        }
                      }
                    });
  });
  a.bump_version();
}

namespace {
void check_same(const char* op, const Array& a, const Array& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype() || !is_floating(a.dtype()))
    throw ShapeError(cat(op, ": operands must have one floating dtype and shape, got ", shape_str(a.shape()), " ",
                         dtype_name(a.dtype()), " and ", shape_str(b.shape()), " ", dtype_name(b.dtype())));
}
}  // namespace

// The fused backward passes: out = f(g, y) elementwise, g and y of one floating dtype and shape.
Array elu_backward(const Array& g, const Array& y) {
  check_same("elu_backward", g, y);
  return dispatch_floating(g.dtype(), "elu_backward", [&]<class T>() {
    // the composite's bits: g * (1 + m * y) with m = [y <= 0] (= [x <= 0]: y = x for x > 0, y = e^x - 1 <= 0 otherwise)
    return map_binary<T, T>(g, y, g.dtype(), [](T a, T c) { return a * (T(1) + (c <= T(0) ? c : T(0) * c)); }, "elu_backward");
  });
}

Array relu_backward(const Array& g, const Array& y) {
  check_same("relu_backward", g, y);
  return dispatch_floating(g.dtype(), "relu_backward", [&]<class T>() {
    // the composite's bits: g * m with m = [y > 0] as 1 or 0 (so 0 * inf is still NaN)
    return map_binary<T, T>(g, y, g.dtype(), [](T a, T c) { return a * (c > T(0) ? T(1) : T(0)); }, "relu_backward");
  });
}

Array sigmoid_backward(const Array& g, const Array& y) {
  check_same("sigmoid_backward", g, y);
  return dispatch_floating(g.dtype(), "sigmoid_backward", [&]<class T>() {
    return map_binary<T, T>(g, y, g.dtype(), [](T a, T c) { return a * c * (T(1) - c); }, "sigmoid_backward");
  });
}

bool has_nonfinite(const Array& x) {
  if (!is_floating(x.dtype())) return false;
  return dispatch_floating(x.dtype(), "has_nonfinite", [&]<class T>() {
    const T* p = static_cast<const T*>(x.storage()->data) + x.offset();
    bool bad = false;
    for_each_offset<1>(x.shape(), {&x.strides()}, [&](const std::array<int64_t, 1>& o) { bad |= !std::isfinite(p[o[0]]); });
    return bad;
  });
}

}  // namespace dgm::cpu
