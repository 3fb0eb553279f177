#include <dgm/tensor/fused.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include <dgm/tensor/gemm.h>
#include <dgm/tensor/kernels.h>
#include <dgm/tensor/loops.h>
#include <dgm/tensor/simd.h>
#include <dgm/tensor/vecmath.h>

namespace dgm::cpu {

namespace {

void check_float(const Array& a, const char* op, const char* what) {
  if (!is_floating(a.dtype())) throw DTypeError(cat(op, ": ", what, " must be floating, got ", dtype_name(a.dtype())));
}
void check_same_dtype(const Array& a, const Array& b, const char* op) {
  if (a.dtype() != b.dtype())
    throw DTypeError(cat(op, ": dtypes must match, got ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype())));
}
int64_t row_grain(int64_t row_len) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(row_len, 1)); }

}  // namespace

// ---- cross entropy --------------------------------------------------------------------------------
std::pair<Array, Array> cross_entropy_forward(const Array& logits_in, const Array& target_in) {
  check_float(logits_in, "cross_entropy", "logits");
  if (logits_in.dim() != 2) throw ShapeError(cat("cross_entropy: logits must be (N, C), got ", shape_str(logits_in.shape())));
  if (target_in.dtype() != DType::Int64) throw DTypeError(cat("cross_entropy: target must be int64 class indices, got ", dtype_name(target_in.dtype())));
  int64_t N = logits_in.size(0), C = logits_in.size(1);
  if (target_in.shape() != Shape{N})
    throw ShapeError(cat("cross_entropy: target shape ", shape_str(target_in.shape()), " does not match logits ", shape_str(logits_in.shape()),
                         " (expected (", N, ",))"));
  Array logits = logits_in.contiguous(), target = target_in.contiguous();
  Array loss = Array::empty({N}, logits.dtype()), lse = Array::empty({N}, logits.dtype());
  const int64_t* t = target.data<int64_t>();
  for (int64_t i = 0; i < N; ++i)
    if (t[i] < 0 || t[i] >= C) throw IndexError(cat("cross_entropy: target ", t[i], " at row ", i, " is out of range for ", C, " classes"));
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    const T* x = logits.data<T>();
    T* l = loss.data<T>();
    T* s_out = lse.data<T>();
    parallel_for(N, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* row = x + i * C;
        const T m = max_of(row, C);
        const T lse_i = m + std::log(sum_exp_shift(row, C, m));
        s_out[i] = lse_i;
        l[i] = lse_i - row[t[i]];
      }
    }, row_grain(C));
  });
  return {loss, lse};
}

Array cross_entropy_backward(const Array& logits_in, const Array& target_in, const Array& lse_in, const Array& grad_in) {
  Array logits = logits_in.contiguous(), target = target_in.contiguous(), lse = lse_in.contiguous(), grad = grad_in.contiguous();
  int64_t N = logits.size(0), C = logits.size(1);
  Array dx = Array::empty(logits.shape(), logits.dtype());
  dispatch_floating(logits.dtype(), "cross_entropy_backward", [&]<class T>() {
    const T *x = logits.data<T>(), *s = lse.data<T>(), *g = grad.data<T>();
    const int64_t* t = target.data<int64_t>();
    T* d = dx.data<T>();
    parallel_for(N, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* row = x + i * C;
        T* drow = d + i * C;
        T gi = g[i], si = s[i];
        for (int64_t c = 0; c < C; ++c) drow[c] = gi * exp_approx(row[c] - si);  // softmax * g
        drow[t[i]] -= gi;
      }
    }, row_grain(C));
  });
  return dx;
}

// ---- binary cross entropy with logits --------------------------------------------------------------
Array bce_with_logits_forward(const Array& x_in, const Array& y_in) {
  check_float(x_in, "binary_cross_entropy_with_logits", "logits");
  Shape shape = broadcast_shapes(x_in.shape(), y_in.shape(), "binary_cross_entropy_with_logits");
  Array x = x_in.expand(shape).contiguous(), y = y_in.to(x_in.dtype()).expand(shape).contiguous();
  Array out = Array::empty(shape, x.dtype());
  dispatch_floating(x.dtype(), "binary_cross_entropy_with_logits", [&]<class T>() {
    const T *xp = x.data<T>(), *yp = y.data<T>();
    T* o = out.data<T>();
    parallel_for(out.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T v = xp[i];
        o[i] = softplus_approx(v) - v * yp[i];  // max(v, 0) + log(1 + e^{-|v|}) - v y, no library call (vectorises)
      }
    });
  });
  return out;
}

Array bce_with_logits_backward(const Array& x_in, const Array& y_in, const Array& grad_in) {
  Shape shape = grad_in.shape();
  Array x = x_in.expand(shape).contiguous(), y = y_in.to(x_in.dtype()).expand(shape).contiguous(), g = grad_in.contiguous();
  Array dx = Array::empty(shape, x.dtype());
  dispatch_floating(x.dtype(), "binary_cross_entropy_with_logits_backward", [&]<class T>() {
    const T *xp = x.data<T>(), *yp = y.data<T>(), *gp = g.data<T>();
    T* d = dx.data<T>();
    parallel_for(dx.numel(), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        d[i] = gp[i] * (sigmoid_approx(xp[i]) - yp[i]);
      }
    });
  });
  return dx;
}

// ---- gated residual ----------------------------------------------------------------------------------
//
// Clever part: the five ops of the composite (sigmoid, mul, add, elu, and chunk's views) each read and
// write a full activation, forward and again backward; here one pass reads h, v and g and writes the
// output, and one pass back writes dh, dv and dg, with every intermediate in registers.
namespace {

struct GatedGeometry {
  int64_t rows, F, inner;  // rows = B*F rows of `inner` values each
};

GatedGeometry gated_geometry(const Array& h, const Array& u) {
  check_float(h, "gated_residual", "h");
  if (h.dim() < 2 || u.dim() != h.dim() || u.dtype() != h.dtype())
    throw ShapeError(cat("gated_residual: h (B, F, ...) and u (B, 2F, ...) of one dtype expected, got ", shape_str(h.shape()), " ",
                         dtype_name(h.dtype()), " and ", shape_str(u.shape()), " ", dtype_name(u.dtype())));
  Shape want = h.shape();
  want[1] *= 2;
  if (u.shape() != want)
    throw ShapeError(cat("gated_residual: u must be ", shape_str(want), " for h ", shape_str(h.shape()), ", got ", shape_str(u.shape())));
  const int64_t B = h.size(0), F = h.size(1);
  return {B * F, F, B * F == 0 ? 0 : h.numel() / (B * F)};
}

int64_t gated_grain(int64_t inner) { return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, inner)); }

// One row of n values each way. The pointers are parameters so that __restrict holds (GCC ignores it
// on local pointers, and five possibly aliased streams are more than it will check at run time: the
// loop stayed scalar).
template <class T>
void gated_row(const T* __restrict h, const T* __restrict v, const T* __restrict gate, int64_t n, T* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    const T a = h[i] + v[i] * sigmoid_approx(gate[i]);
    out[i] = a > T(0) ? a : expm1_approx(a);
  }
}
template <class T>
void gated_row_backward(const T* __restrict v, const T* __restrict gate, const T* __restrict out, const T* __restrict dout, int64_t n,
                        T* __restrict dh, T* __restrict dv, T* __restrict dg) {
  for (int64_t i = 0; i < n; ++i) {
    const T d = dout[i] * (T(1) + (out[i] <= T(0) ? out[i] : T(0) * out[i]));  // as elu_backward
    const T s = sigmoid_approx(gate[i]);
    dh[i] = d;
    dv[i] = d * s;
    dg[i] = d * v[i] * s * (T(1) - s);
  }
}

}  // namespace

Array gated_residual_forward(const Array& h_in, const Array& u_in) {
  const GatedGeometry g = gated_geometry(h_in, u_in);
  const Array h = h_in.contiguous(), u = u_in.contiguous();
  Array out = Array::empty(h.shape(), h.dtype());
  dispatch_floating(h.dtype(), "gated_residual", [&]<class T>() {
    const T *hp = h.data<T>(), *up = u.data<T>();
    T* op = out.data<T>();
    parallel_for(g.rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* v = up + ((r / g.F) * 2 * g.F + r % g.F) * g.inner;
        gated_row(hp + r * g.inner, v, v + g.F * g.inner, g.inner, op + r * g.inner);
      }
    }, gated_grain(g.inner));
  });
  return out;
}

std::pair<Array, Array> gated_residual_backward(const Array& u_in, const Array& out_in, const Array& dout_in) {
  const GatedGeometry g = gated_geometry(out_in, u_in);
  if (dout_in.shape() != out_in.shape())
    throw ShapeError(cat("gated_residual backward: gradient ", shape_str(dout_in.shape()), " for an output ", shape_str(out_in.shape())));
  const Array u = u_in.contiguous(), out = out_in.contiguous(), dout = dout_in.to(out_in.dtype()).contiguous();
  Array dh = Array::empty(out.shape(), out.dtype()), du = Array::empty(u.shape(), u.dtype());
  dispatch_floating(out.dtype(), "gated_residual_backward", [&]<class T>() {
    const T *up = u.data<T>(), *op = out.data<T>(), *gp = dout.data<T>();
    T *dhp = dh.data<T>(), *dup = du.data<T>();
    parallel_for(g.rows, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t v_off = ((r / g.F) * 2 * g.F + r % g.F) * g.inner, g_off = v_off + g.F * g.inner;
        gated_row_backward(up + v_off, up + g_off, op + r * g.inner, gp + r * g.inner, g.inner, dhp + r * g.inner, dup + v_off, dup + g_off);
      }
    }, gated_grain(g.inner));
  });
  return {dh, du};
}

// ---- layer norm ------------------------------------------------------------------------------------
namespace {

// ---- LayerNorm over the channels of an image, in place in NCHW memory ------------------------------
//
// A ConvNet normalising over channels (PixelCNN's LayerNorm) permutes (B, C, H, W) to (B, H, W, C),
// normalises the last dim and permutes back. Copying that view to rows and back cost PixelCNN's step
// two full passes per layer; instead the kernels below read and write the (outer, D, inner) memory
// under the view directly (D = C channels, inner = H*W pixels). Clever because the pixels, not the
// channels, are contiguous: each loop runs across a block of pixels (vectorised) with the channels
// as the reduction, so no element is gathered with a stride. Same arithmetic per pixel as the row
// kernels (two-pass mean and variance), so the two agree to rounding.

// The permutation (0, n-1, 1, ..., n-2) that takes the (B, ..., C) view back to channels-first order.
std::vector<int64_t> to_channels_first(int64_t n) {
  std::vector<int64_t> p{0, n - 1};
  for (int64_t k = 1; k < n - 1; ++k) p.push_back(k);
  return p;
}
// ... and its inverse, (0, 2, ..., n-1, 1).
std::vector<int64_t> from_channels_first(int64_t n) {
  std::vector<int64_t> p{0};
  for (int64_t k = 2; k < n; ++k) p.push_back(k);
  p.push_back(1);
  return p;
}
// x is a (B, ..., C) view of contiguous channels-first memory (B, C, ...), the permute of an NCHW tensor.
bool is_channels_first_view(const Array& x) {
  return x.dim() >= 3 && x.size(-1) > 1 && !x.is_contiguous() && x.permute(to_channels_first(x.dim())).is_contiguous();
}

constexpr int64_t kPixelBlock = 256;

template <class T>
void layer_norm_channels_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t outer, int64_t D,
                                 int64_t inner, T eps) {
  const int64_t blocks = (inner + kPixelBlock - 1) / kPixelBlock, size = (inner + blocks - 1) / blocks;  // even blocks
  parallel_for(outer * blocks, [&](int64_t u0, int64_t u1) {
    T m[kPixelBlock], r[kPixelBlock];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t o = u / blocks, p0 = (u % blocks) * size, n = std::min(size, inner - p0);
      const T* xo = x + o * D * inner + p0;
      std::fill(m, m + n, T(0));
      std::fill(r, r + n, T(0));
      for (int64_t d = 0; d < D; ++d) {
        const T* xr = xo + d * inner;
#pragma omp simd
        for (int64_t p = 0; p < n; ++p) m[p] += xr[p];
      }
      for (int64_t p = 0; p < n; ++p) m[p] /= T(D);
      for (int64_t d = 0; d < D; ++d) {
        const T* xr = xo + d * inner;
#pragma omp simd
        for (int64_t p = 0; p < n; ++p) r[p] += (xr[p] - m[p]) * (xr[p] - m[p]);
      }
      for (int64_t p = 0; p < n; ++p) {
        r[p] = T(1) / std::sqrt(r[p] / T(D) + eps);
        mean[o * inner + p0 + p] = m[p];
        rstd[o * inner + p0 + p] = r[p];
      }
      for (int64_t d = 0; d < D; ++d) {
        const T* xr = xo + d * inner;
        T* yr = y + o * D * inner + d * inner + p0;
        const T wd = w ? w[d] : T(1), bd = b ? b[d] : T(0);
#pragma omp simd
        for (int64_t p = 0; p < n; ++p) yr[p] = (xr[p] - m[p]) * r[p] * wd + bd;
      }
    }
  }, std::max<int64_t>(1, kParallelGrain / (D * kPixelBlock)));
}

// dx = rstd * (dy*w - mean_d(dy*w) - xhat * mean_d(dy*w*xhat)); dweight, dbias: sums over (outer, inner)
// of dy * xhat and dy, one partial per unit (a block of pixels of one image), added in unit order: the
// same bits on any thread count, and the units are taken by whichever thread is free.
template <class T>
void layer_norm_channels_backward(const T* x, const T* dy, const T* w, const T* mean, const T* rstd, T* dx, T* dw, T* db,
                                  int64_t outer, int64_t D, int64_t inner) {
  const int64_t blocks = (inner + kPixelBlock - 1) / kPixelBlock, size = (inner + blocks - 1) / blocks, units = outer * blocks;
  std::vector<T> part(static_cast<size_t>(units * 2 * D));  // per unit: D of dw, then D of db
  parallel_for(units, [&](int64_t u0, int64_t u1) {
    T a[kPixelBlock], c[kPixelBlock];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t o = u / blocks, p0 = (u % blocks) * size, n = std::min(size, inner - p0);
      const T *m = mean + o * inner + p0, *r = rstd + o * inner + p0;
      T *dwu = part.data() + u * 2 * D, *dbu = dwu + D;
      std::fill(a, a + n, T(0));
      std::fill(c, c + n, T(0));
      for (int64_t d = 0; d < D; ++d) {
        const int64_t off = o * D * inner + d * inner + p0;
        const T *xr = x + off, *dyr = dy + off;
        const T wd = w ? w[d] : T(1);
        T sw = 0, sb = 0;
#pragma omp simd reduction(+ : sw, sb)
        for (int64_t p = 0; p < n; ++p) {
          const T xhat = (xr[p] - m[p]) * r[p], g = dyr[p] * wd;
          a[p] += g;
          c[p] += g * xhat;
          sw += dyr[p] * xhat;
          sb += dyr[p];
        }
        dwu[d] = sw;
        dbu[d] = sb;
      }
      for (int64_t p = 0; p < n; ++p) a[p] /= T(D), c[p] /= T(D);
      for (int64_t d = 0; d < D; ++d) {
        const int64_t off = o * D * inner + d * inner + p0;
        const T *xr = x + off, *dyr = dy + off;
        T* dxr = dx + off;
        const T wd = w ? w[d] : T(1);
#pragma omp simd
        for (int64_t p = 0; p < n; ++p) dxr[p] = r[p] * (dyr[p] * wd - a[p] - (xr[p] - m[p]) * r[p] * c[p]);
      }
    }
  }, std::max<int64_t>(1, kParallelGrain / (D * kPixelBlock)));
  if (units == 0) return;  // dw and db stay 0
  combine_chunks_in_order(part.data(), 1, units, 2 * D, [](T a, T b) { return a + b; },
                          [&](int64_t j, T s) { (j < D ? dw[j] : db[j - D]) = s; });
}

}  // namespace

LayerNormResult layer_norm_forward(const Array& x_in, const Array& weight, const Array& bias, double eps) {
  check_float(x_in, "layer_norm", "input");
  if (x_in.dim() < 1) throw ShapeError("layer_norm: input must have at least one dim");
  int64_t D = x_in.size(-1), rows = x_in.numel() / std::max<int64_t>(D, 1);
  if (weight.defined() && weight.shape() != Shape{D})
    throw ShapeError(cat("layer_norm: weight shape ", shape_str(weight.shape()), " does not match the last dim ", D, " of input ", shape_str(x_in.shape())));
  if (bias.defined() && bias.shape() != Shape{D})
    throw ShapeError(cat("layer_norm: bias shape ", shape_str(bias.shape()), " does not match the last dim ", D, " of input ", shape_str(x_in.shape())));
  if (weight.defined()) check_same_dtype(x_in, weight, "layer_norm");
  if (bias.defined()) check_same_dtype(x_in, bias, "layer_norm");
  Shape rs(x_in.shape().begin(), x_in.shape().end() - 1);
  if (is_channels_first_view(x_in)) {  // (B, ..., C) over NCHW memory: y in the same layout, nothing copied
    const Array x = x_in.permute(to_channels_first(x_in.dim()));  // contiguous (B, C, ...)
    const int64_t outer = x.size(0), inner = x.numel() / std::max<int64_t>(outer * D, 1);
    LayerNormResult r{Array::empty(x.shape(), x.dtype()), Array::empty(rs, x.dtype()), Array::empty(rs, x.dtype())};
    dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
      layer_norm_channels_forward<T>(x.data<T>(), weight.defined() ? weight.contiguous().data<T>() : nullptr,
                                     bias.defined() ? bias.contiguous().data<T>() : nullptr, r.y.data<T>(), r.mean.data<T>(),
                                     r.rstd.data<T>(), outer, D, inner, static_cast<T>(eps));
    });
    r.y = r.y.permute(from_channels_first(x_in.dim()));
    return r;
  }
  Array x = x_in.contiguous();
  LayerNormResult r{Array::empty(x.shape(), x.dtype()), Array::empty(rs, x.dtype()), Array::empty(rs, x.dtype())};
  dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
    const T* xp = x.data<T>();
    // no weight or bias: ones and zeros, so that the last loop has no branch per value (as the backward)
    Array wc = weight.defined() ? weight.contiguous() : Array::full({D}, 1.0, x.dtype());
    Array bc = bias.defined() ? bias.contiguous() : Array::zeros({D}, x.dtype());
    const T *w = wc.data<T>(), *b = bc.data<T>();
    T *y = r.y.data<T>(), *mp = r.mean.data<T>(), *rp = r.rstd.data<T>();
    parallel_for(rows, [&](int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) {
        const T* row = xp + i * D;
        T m = 0;
#pragma omp simd reduction(+ : m)
        for (int64_t j = 0; j < D; ++j) m += row[j];
        m /= D;
        T v = 0;
#pragma omp simd reduction(+ : v)
        for (int64_t j = 0; j < D; ++j) v += (row[j] - m) * (row[j] - m);
        T rstd = T(1) / std::sqrt(v / D + static_cast<T>(eps));
        mp[i] = m;
        rp[i] = rstd;
        T* yr = y + i * D;
#pragma omp simd
        for (int64_t j = 0; j < D; ++j) yr[j] = (row[j] - m) * rstd * w[j] + b[j];
      }
    }, row_grain(D));
  });
  return r;
}

LayerNormGrads layer_norm_backward(const Array& x_in, const Array& weight, const Array& mean, const Array& rstd, const Array& dy_in) {
  if (is_channels_first_view(x_in)) {  // the layout of layer_norm_forward's channels-first path
    const std::vector<int64_t> to_cf = to_channels_first(x_in.dim());
    const Array x = x_in.permute(to_cf), dy = dy_in.permute(to_cf).contiguous();  // dy is copied only if laid out otherwise
    const int64_t D = x.size(1), outer = x.size(0), inner = x.numel() / std::max<int64_t>(outer * D, 1);
    LayerNormGrads g{Array::empty(x.shape(), x.dtype()), Array::zeros({D}, x.dtype()), Array::zeros({D}, x.dtype())};
    dispatch_floating(x.dtype(), "layer_norm_backward", [&]<class T>() {
      layer_norm_channels_backward<T>(x.data<T>(), dy.data<T>(), weight.defined() ? weight.contiguous().data<T>() : nullptr,
                                      mean.contiguous().data<T>(), rstd.contiguous().data<T>(), g.dx.data<T>(), g.dweight.data<T>(),
                                      g.dbias.data<T>(), outer, D, inner);
    });
    g.dx = g.dx.permute(from_channels_first(x_in.dim()));
    return g;
  }
  Array x = x_in.contiguous(), dy = dy_in.contiguous();
  int64_t D = x.size(-1), rows = x.numel() / std::max<int64_t>(D, 1);
  LayerNormGrads g{Array::empty(x.shape(), x.dtype()), Array::zeros({D}, x.dtype()), Array::zeros({D}, x.dtype())};
  dispatch_floating(x.dtype(), "layer_norm_backward", [&]<class T>() {
    const Array mc = mean.contiguous(), rc = rstd.contiguous();  // held: a copy's pointer would outlive it
    const T *xp = x.data<T>(), *dyp = dy.data<T>(), *mp = mc.data<T>(), *rp = rc.data<T>();
    // no weight: a row of ones (x * 1 is x, the same bits), so the loops have no branch per value
    Array wc = weight.defined() ? weight.contiguous() : Array::full({D}, 1.0, x.dtype());
    const T* w = wc.data<T>();
    T* dx = g.dx.data<T>();
    // weight/bias gradients are sums over rows: one partial per chunk of kRows rows, the chunks taken
    // by whichever thread is free and added in chunk order (the same bits on any thread count)
    constexpr int64_t kRows = 64;
    const int64_t chunks = (rows + kRows - 1) / kRows;
    std::vector<T> part(static_cast<size_t>(chunks * 2 * D));  // per chunk: D of dweight, then D of dbias
    parallel_for(chunks, [&](int64_t c0, int64_t c1) {
      for (int64_t ch = c0; ch < c1; ++ch) {
        T *dwt = part.data() + ch * 2 * D, *dbt = dwt + D;
        std::fill(dwt, dwt + D, T(0));
        std::fill(dbt, dbt + D, T(0));
        for (int64_t i = ch * kRows; i < std::min(rows, (ch + 1) * kRows); ++i) {
          const T *row = xp + i * D, *dyr = dyp + i * D;
          T m = mp[i], rs = rp[i];
          // dxhat = dy * w;  dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
          T sum_dxhat = 0, sum_dxhat_xhat = 0;
#pragma omp simd reduction(+ : sum_dxhat, sum_dxhat_xhat)
          for (int64_t j = 0; j < D; ++j) {
            T xhat = (row[j] - m) * rs, dxhat = dyr[j] * w[j];
            sum_dxhat += dxhat;
            sum_dxhat_xhat += dxhat * xhat;
            dwt[j] += dyr[j] * xhat;
            dbt[j] += dyr[j];
          }
          T a = sum_dxhat / D, c = sum_dxhat_xhat / D;
          T* dxr = dx + i * D;
          for (int64_t j = 0; j < D; ++j) {
            T xhat = (row[j] - m) * rs;
            dxr[j] = rs * (dyr[j] * w[j] - a - xhat * c);
          }
        }
      }
    }, std::max<int64_t>(1, kParallelGrain / (kRows * std::max<int64_t>(D, 1))));
    if (chunks == 0) return;  // no rows: the gradients stay 0
    T *dwp = g.dweight.data<T>(), *dbp = g.dbias.data<T>();
    combine_chunks_in_order(part.data(), 1, chunks, 2 * D, [](T a, T b) { return a + b; },
                            [&](int64_t j, T s) { (j < D ? dwp[j] : dbp[j - D]) = s; });
  });
  return g;
}

// ---- attention -------------------------------------------------------------------------------------
namespace {

struct AttnShape {
  int64_t B, H, Lq, Lk, D;
};
AttnShape check_attention(const Array& q, const Array& k, const Array& v) {
  for (const Array* a : {&q, &k, &v}) check_float(*a, "attention", "q, k, v");
  check_same_dtype(q, k, "attention");
  check_same_dtype(q, v, "attention");
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || k.shape() != v.shape() || q.size(0) != k.size(0) || q.size(1) != k.size(1) ||
      q.size(3) != k.size(3))
    throw ShapeError(cat("attention: expected q (B, H, Lq, D) and k, v (B, H, Lk, D), got ", shape_str(q.shape()), ", ", shape_str(k.shape()),
                         ", ", shape_str(v.shape())));
  return {q.size(0), q.size(1), q.size(2), k.size(2), q.size(3)};
}
// keys visible to query i: [0, limit)
inline int64_t key_limit(int64_t i, const AttnShape& s, bool causal) {
  return causal ? std::clamp<int64_t>(i + (s.Lk - s.Lq) + 1, 0, s.Lk) : s.Lk;
}
// Tiles: a block of kQueryBlock queries against a tile of kKeyBlock keys. The tile's scores are one
// GEMM into a buffer that stays in L1/L2, so no L x L matrix is ever stored, and the products run in
// the packed GEMM kernel instead of one-query-at-a-time dot products. Tiles to the right of the
// causal diagonal are skipped.
constexpr int64_t kQueryBlock = 64, kKeyBlock = 256;

// Heads per thread: a parallel region only when there are at least ~2^20 multiply-adds to share.
// Decoding one token (Lq = 1) stays on one thread: waking the team for a few microseconds of work
// costs more than the work, and on a busy machine the wait for a descheduled thread is far longer.
inline int64_t head_grain(const AttnShape& s) {
  const int64_t per_head = std::max<int64_t>(1, s.Lq * s.Lk * s.D);
  return std::max<int64_t>(1, (int64_t{1} << 20) / per_head);
}
// Ranges of heads per thread: heads as heavy as ImageGPT's (784 x 784 scores, ~1 ms forward and
// backward) go one to a range; 4 a thread (8 ranges of 16 heads on 2 threads) left the other thread
// waiting for the last one.
constexpr int64_t kHeadRangesPerThread = 64;

// A (B, H, L, D) operand read in place: head (b, h) starts at data + b*sb + h*sh, row i at + i*sr.
// q, k, v are usually permuted views of the (B, L, 3D) projection, so this avoids three copies;
// only a non-unit stride along D forces one.
template <class T>
struct Heads {
  const T* data;
  int64_t sb, sh, sr;
  Heads(const Array& a) : data(a.data<T>()), sb(a.stride(0)), sh(a.stride(1)), sr(a.stride(2)) {}
  const T* head(int64_t bh, int64_t H) const { return data + (bh / H) * sb + (bh % H) * sh; }
};
inline Array unit_last_stride(const Array& a) { return a.size(3) <= 1 || a.stride(3) == 1 ? a : a.contiguous(); }
// Outputs are allocated (B, L, H, D) and returned as a (B, H, L, D) view: heads side by side, so the
// caller's permute back to (B, L, H*D) is free.
inline Array heads_last(int64_t B, int64_t H, int64_t L, int64_t D, DType dt, bool zero) {
  Array a = zero ? Array::zeros({B, L, H, D}, dt) : Array::empty({B, L, H, D}, dt);
  return a.permute({0, 2, 1, 3});
}

#if DGM_SIMD_KERNELS
// ---- attention on register tiles (AVX2 / AVX-512 builds) -----------------------------------------
//
// Clever part: with short heads (ImageGPT's D = 16) every product of the tiled GEMM version (in
// attention_forward / attention_backward: what portable builds and decoding run) has an inner
// size or a width of D, and each GEMM call repacked a K or V tile and a Q block for a few hundred
// FLOPs per value: on one Zen 3 core its forward ran at 21 GFLOP/s (21% of the peak) and attention
// was 80% of ImageGPT's step. Here a head's K^T, K and V are packed once into register-tile panels,
// and each block of MR queries makes two passes over the keys it sees: its scores (an MR x NR tile
// per panel of keys, D multiply-adds each, written once into a row buffer: 6 x 784 floats, 19 KiB,
// for ImageGPT), then, with each row's exact max and sum, P @ V as one product of inner size n, read
// from that buffer in place. No online rescaling. The backward uses the same tiles for S, dP and
// dQ = dS K; dK and dV, whose inner size is the query block, stay blocked GEMMs over kBackRows
// queries.
template <class T>
struct AttnTiles {
  using V = typename VecOf<T>::type;
  static constexpr int MR = kVectorRegisters == 32 ? 8 : 6, NV = 2, NR = NV * V::width, W = V::width;
  static constexpr int64_t kBackRows = 10 * MR;  // queries per dK / dV product
  // the width of a panel along D: one vector when D fits in it (AVX-512 with D = 16), else two
  static int nvd(int64_t D) { return D <= W ? 1 : 2; }
};

// Register tiles for at least two query blocks; below that (sampling: one new token against the
// cache) packing the head's K and V cost more than its few queries saved (imagegpt_sample16 0.8 ->
// 1.1 s), and the GEMM tiles read them in place. And for at most 16384 keys: a thread's row buffers
// hold 2 x kBackRows x Lk scores (7.5 MiB of float32 at that length); longer sequences keep the
// GEMM tiles' fixed 64 x 256 buffers.
constexpr int64_t kMaxTiledKeys = 16384;
inline bool register_tiles_pay(const AttnShape& s) { return s.Lq >= 2 * AttnTiles<float>::MR && s.Lk <= kMaxTiledKeys; }

// The head's operands in register-tile panels, by the GEMM's packing (its SIMD transposes; plain
// loops here gathered one value per load and store: bench/ab.sh's attention_imagegpt 3-5% faster
// with it on Zen 5, AVX-512 and AVX2 builds):
// X^T in panels of NR rows of X: dst[(p*D + d)*NR + r] = X[(p*NR + r)*sr + d] (0 past row n)
template <class T, int NR>
void pack_rows_transposed(const T* X, int64_t sr, int64_t n, int64_t D, T* dst) { pack_panels(NR, X, sr, 1, n, D, dst); }
// X's columns in panels of w: dst[(c*n + j)*w + r] = X[j*sr + c*w + r] (0 past column D)
template <class T>
void pack_column_panels(const T* X, int64_t sr, int64_t n, int64_t D, int64_t w, T* dst) { pack_panels(int(w), X, 1, sr, D, n, dst); }
// MR rows as a tile's A operand: a[d*MR + i] = s * X[i*sr + d] for i < rows (0 for rows <= i < MR).
// A plain loop: pack_panels and a scaling pass over these 8 x 16 values measured 5% slower.
template <class T, int MR>
void pack_block_rows(const T* X, int64_t sr, int64_t rows, int64_t D, T s, T* a) {
  for (int64_t d = 0; d < D; ++d)
    for (int i = 0; i < MR; ++i) a[d * MR + i] = i < rows ? s * X[i * sr + d] : T(0);
}

// out[i*ldo + r] = sum_{k < K} A(i, k) * b[k*NV*W + r] for i < MR, r < NV*W: one register tile against
// a panel of B. A(i, k) is a[k*MR + i] when packed (a block of queries, pack_block_rows: the score
// tiles S = Q K^T and dP = dO V^T, K = D) or a[i*lda + k] for MR rows read in place (P or dS, times
// a panel of V or K: K = the keys). Not inlined, like the GEMM's micro-kernel: inside the long head
// functions GCC ran out of registers and reloaded the row offsets from the stack every step.
template <class V, int MR, int NV, bool kRowsInPlace>
[[gnu::noinline]] void attn_tile(const typename V::scalar* __restrict a, int64_t lda, const typename V::scalar* __restrict b, int64_t K,
                                 typename V::scalar* __restrict out, int64_t ldo) {
  using Reg = typename V::type;
  constexpr int W = V::width;
  Reg acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) acc[i][v] = V::zero();
  for (int64_t k = 0; k < K; ++k, a += kRowsInPlace ? 1 : MR, b += NV * W) {
    Reg bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) bv[v] = V::loadu(b + v * W);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const Reg ai = V::broadcast(kRowsInPlace ? a[i * lda] : a[i]);
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) acc[i][v] = V::fmadd(ai, bv[v], acc[i][v]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) V::storeu(out + i * ldo + v * W, acc[i][v]);
}

// The max of p[0, n) on two vector accumulators (GCC left vecmath.h's max_of scalar here: 10% of
// the forward).
template <class T>
T row_max(const T* p, int64_t n) {
  using V = typename AttnTiles<T>::V;
  constexpr int W = V::width;
  typename V::type m0 = V::broadcast(T(-INFINITY)), m1 = m0;
  int64_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W) {
    m0 = V::max(m0, V::loadu(p + j));
    m1 = V::max(m1, V::loadu(p + j + W));
  }
  T lane[W];
  V::storeu(lane, V::max(m0, m1));
  T m = -INFINITY;
  for (int l = 0; l < W; ++l) m = m > lane[l] ? m : lane[l];
  for (; j < n; ++j) m = m > p[j] ? m : p[j];
  return m;
}
#if defined(__AVX512F__)
using ExpReg = __m512;
inline ExpReg exp_set1(float x) { return _mm512_set1_ps(x); }
#define DGM_EXP_OP(op) _mm512_##op
// (the masked form: GCC 12's plain one reads an undefined register and warns)
inline __m512 exp_max(__m512 a, __m512 b) { return _mm512_mask_max_ps(a, 0xFFFF, a, b); }
#else
inline __m256 exp_scale(__m256 shifted) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(127 - 0x4B400000)), 23));
}
#if DGM_WIDE_VECTORS
// AVX-512 emulated on AVX2 (simd.h): each operation on the two halves
// (simd.h's FloatVec where it has the operation; the exp's other two here)
using ExpReg = FloatVec::type;
inline ExpReg exp_set1(float x) { return FloatVec::broadcast(x); }
inline ExpReg exp_scale(ExpReg shifted) { return {exp_scale(shifted.lo), exp_scale(shifted.hi)}; }
inline ExpReg exp_max(ExpReg a, ExpReg b) { return FloatVec::max(a, b); }
constexpr auto wide_add_ps = FloatVec::add;
inline ExpReg wide_sub_ps(ExpReg a, ExpReg b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline ExpReg wide_fnmadd_ps(ExpReg a, ExpReg b, ExpReg c) { return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)}; }
constexpr auto wide_mul_ps = FloatVec::mul;
constexpr auto wide_fmadd_ps = FloatVec::fmadd;
constexpr auto wide_loadu_ps = FloatVec::loadu;
constexpr auto wide_storeu_ps = FloatVec::storeu;
#define DGM_EXP_OP(op) wide_##op
#else
using ExpReg = __m256;
inline ExpReg exp_set1(float x) { return _mm256_set1_ps(x); }
#define DGM_EXP_OP(op) _mm256_##op
inline __m256 exp_max(__m256 a, __m256 b) { return _mm256_max_ps(a, b); }
#endif
#endif
// e^x for x <= 0: exp_approx's arithmetic (vecmath.h) without its upper clamp and final select,
// which GCC turned into blends (33 instructions a vector, a third of the forward). Below -87 the
// value is e^-87 ~ 1.6e-38 instead of 0, which no softmax sum (it holds the max's 1) can see. A NaN
// stays NaN (max returns its second operand when either is NaN).
#if defined(__AVX512F__)
// AVX-512: n = round(x / ln 2) by one rounding instruction and e^r 2^n by one vscalefps, in place
// of the magic-number shift's subtraction and the two integer operations and a multiply that build
// 2^n, and the polynomial's tail as two FMAs: 13 instructions a vector instead of 16.
inline ExpReg exp_nonpositive(ExpReg x) {
  x = exp_max(_mm512_set1_ps(-87.0f), x);
  const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  const __m512 nf = _mm512_mask_roundscale_ps(t, 0xFFFF, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // (masked: see exp_max)
  const __m512 r = _mm512_fmadd_ps(nf, _mm512_set1_ps(2.12194440e-4f), _mm512_fnmadd_ps(nf, _mm512_set1_ps(0.693359375f), x));
  __m512 q = _mm512_set1_ps(1.9875691500e-4f);
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.3981999507e-3f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(8.3334519073e-3f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(4.1665795894e-2f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.6666665459e-1f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 e = _mm512_fmadd_ps(_mm512_fmadd_ps(q, r, _mm512_set1_ps(1.0f)), r, _mm512_set1_ps(1.0f));  // 1 + r + r^2 q
  return _mm512_mask_scalef_ps(e, 0xFFFF, e, nf);
}
#else
inline ExpReg exp_nonpositive(ExpReg x) {
  x = exp_max(exp_set1(-87.0f), x);
  const ExpReg magic = exp_set1(12582912.0f);
  const ExpReg shifted = DGM_EXP_OP(fmadd_ps)(x, exp_set1(1.44269504088896341f), magic);  // n in the low mantissa bits
  const ExpReg nf = DGM_EXP_OP(sub_ps)(shifted, magic);
  const ExpReg r = DGM_EXP_OP(fmadd_ps)(nf, exp_set1(2.12194440e-4f), DGM_EXP_OP(fnmadd_ps)(nf, exp_set1(0.693359375f), x));
  ExpReg q = exp_set1(1.9875691500e-4f);
  q = DGM_EXP_OP(fmadd_ps)(q, r, exp_set1(1.3981999507e-3f));
  q = DGM_EXP_OP(fmadd_ps)(q, r, exp_set1(8.3334519073e-3f));
  q = DGM_EXP_OP(fmadd_ps)(q, r, exp_set1(4.1665795894e-2f));
  q = DGM_EXP_OP(fmadd_ps)(q, r, exp_set1(1.6666665459e-1f));
  q = DGM_EXP_OP(fmadd_ps)(q, r, exp_set1(5.0000001201e-1f));
  const ExpReg e = DGM_EXP_OP(fmadd_ps)(DGM_EXP_OP(fmadd_ps)(q, r, exp_set1(1.0f)), r, exp_set1(1.0f));  // 1 + r + r^2 q
  return DGM_EXP_OP(mul_ps)(e, exp_scale(shifted));
}
#endif

// p[j] = e^(p[j] - shift) for j < n, every p[j] <= shift (the row's max): returns their sum.
inline float row_exp_sum(float* p, int64_t n, float shift) {
  constexpr int W = sizeof(ExpReg) / sizeof(float);
  const ExpReg vs = exp_set1(shift);
  ExpReg sum = exp_set1(0.0f);
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    const ExpReg v = exp_nonpositive(DGM_EXP_OP(sub_ps)(DGM_EXP_OP(loadu_ps)(p + j), vs));
    DGM_EXP_OP(storeu_ps)(p + j, v);
    sum = DGM_EXP_OP(add_ps)(sum, v);
  }
  float lane[W], total = 0;
  DGM_EXP_OP(storeu_ps)(lane, sum);
  for (int l = 0; l < W; ++l) total += lane[l];
  for (; j < n; ++j) total += p[j] = exp_approx(p[j] - shift);
  return total;
}

// The backward's row: p[j] = e^(s[j] - lse) (s in p; <= lse up to rounding), ds[j] = p[j] (dp[j] - di) sc
// (dp in ds), j < n.
inline void row_softmax_backward(float* p, float* ds, int64_t n, float lse, float di, float sc) {
  constexpr int W = sizeof(ExpReg) / sizeof(float);
  const ExpReg vl = exp_set1(lse), vd = exp_set1(di), vsc = exp_set1(sc);
  int64_t j = 0;
  for (; j + W <= n; j += W) {
    const ExpReg v = exp_nonpositive(DGM_EXP_OP(sub_ps)(DGM_EXP_OP(loadu_ps)(p + j), vl));
    DGM_EXP_OP(storeu_ps)(p + j, v);
    DGM_EXP_OP(storeu_ps)(ds + j, DGM_EXP_OP(mul_ps)(DGM_EXP_OP(mul_ps)(v, DGM_EXP_OP(sub_ps)(DGM_EXP_OP(loadu_ps)(ds + j), vd)), vsc));
  }
  for (; j < n; ++j) {
    p[j] = exp_approx(p[j] - lse);
    ds[j] = p[j] * (ds[j] - di) * sc;
  }
}
inline void row_softmax_backward(double* p, double* ds, int64_t n, double lse, double di, double sc) {
  for (int64_t j = 0; j < n; ++j) {
    p[j] = exp_approx(p[j] - lse);
    ds[j] = p[j] * (ds[j] - di) * sc;
  }
}
#undef DGM_EXP_OP
// float64 is for checks: vecmath's exp_shift_sum (exp_approx is std::exp there).
inline double row_exp_sum(double* p, int64_t n, double shift) { return exp_shift_sum(p, n, shift); }

// The score tiles of an MR-row block `a` (pack_block_rows) against keys [0, n) (n rounded up to NR),
// from a head's K^T panels (pack_rows_transposed): out (MR x ld).
template <class T>
void score_rows(const T* a, const T* kt, int64_t n, int64_t D, T* out, int64_t ld) {
  using C = AttnTiles<T>;
  for (int64_t p = 0; p * C::NR < n; ++p) attn_tile<typename C::V, C::MR, C::NV, false>(a, C::MR, kt + p * D * C::NR, D, out + p * C::NR, ld);
}

// dst[i*ldd + c*w + r] = (MR rows of P) @ (panels of X), r < min(w, D - c*w), rows i < rows, times
// scale[i] when given: P (MR x n) in place, panels from pack_column_panels (n_all rows each).
template <class T>
void rows_times_panels(const T* P, int64_t ldp, const T* panels, int64_t n, int64_t n_all, int64_t D, int64_t rows, const T* scale,
                       T* dst, int64_t ldd) {
  using C = AttnTiles<T>;
  const int nvd = C::nvd(D);
  const int64_t w = nvd * C::W;
  T out[C::MR * C::NR];
  for (int64_t c = 0; c * w < D; ++c) {
    if (nvd == 1)
      attn_tile<typename C::V, C::MR, 1, true>(P, ldp, panels + c * n_all * w, n, out, w);
    else
      attn_tile<typename C::V, C::MR, 2, true>(P, ldp, panels + c * n_all * w, n, out, w);
    const int64_t width = std::min<int64_t>(w, D - c * w);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t r = 0; r < width; ++r) dst[i * ldd + c * w + r] = scale ? out[i * w + r] * scale[i] : out[i * w + r];
  }
}

// Per-thread buffers of one head's tiles, from the caching allocator.
template <class T>
struct AttnBuffers {
  Array kt_buf, vt_buf, cols_buf, p_buf, ds_buf, a_buf;
  T *kt, *vt, *cols, *P, *dS, *qa, *da;
  int64_t ldp;
  AttnBuffers(const AttnShape& s, DType dt, bool backward) {
    using C = AttnTiles<T>;
    const int64_t key_panels = (s.Lk + C::NR - 1) / C::NR, w = C::nvd(s.D) * C::W, d_panels = (s.D + w - 1) / w;
    ldp = key_panels * C::NR;
    const int64_t rows = backward ? C::kBackRows : C::MR;
    kt_buf = Array::empty({key_panels * C::NR * s.D + 1}, dt);
    cols_buf = Array::empty({d_panels * s.Lk * w + 1}, dt);  // K (backward) or V (forward) in column panels
    p_buf = Array::empty({rows * ldp}, dt);
    a_buf = Array::empty({2 * s.D * C::MR + 1}, dt);
    kt = kt_buf.data<T>(), cols = cols_buf.data<T>(), P = p_buf.data<T>(), qa = a_buf.data<T>(), da = qa + s.D * C::MR;
    vt = dS = nullptr;
    if (backward) {
      vt_buf = Array::empty({key_panels * C::NR * s.D + 1}, dt);
      ds_buf = Array::empty({rows * ldp}, dt);
      vt = vt_buf.data<T>(), dS = ds_buf.data<T>();
    }
  }
};

template <class T>
void attention_head_forward(const T* Q, int64_t sq, const T* K, int64_t sk, const T* Vv, int64_t sv, T* O, int64_t so, T* lse,
                            const AttnShape& s, bool causal, T sc, AttnBuffers<T>& b) {
  using C = AttnTiles<T>;
  constexpr int MR = C::MR;
  const int64_t D = s.D, w = C::nvd(D) * C::W;
  pack_rows_transposed<T, C::NR>(K, sk, s.Lk, D, b.kt);
  pack_column_panels<T>(Vv, sv, s.Lk, D, w, b.cols);
  T l[MR], m[MR], inv[MR];
  for (int64_t i0 = 0; i0 < s.Lq; i0 += MR) {
    const int64_t rows = std::min<int64_t>(MR, s.Lq - i0), n = key_limit(i0 + rows - 1, s, causal);  // keys the last row sees
    pack_block_rows<T, MR>(Q + i0 * sq, sq, rows, D, sc, b.qa);
    score_rows(b.qa, b.kt, n, D, b.P, b.ldp);
    for (int64_t i = 0; i < MR; ++i) {
      T* p = b.P + i * b.ldp;
      const int64_t lim = i < rows ? key_limit(i0 + i, s, causal) : 0;  // keys row i sees
      m[i] = lim > 0 ? row_max(p, lim) : T(-INFINITY);
      l[i] = lim > 0 ? row_exp_sum(p, lim, m[i]) : T(0);
      inv[i] = l[i] > T(0) ? T(1) / l[i] : T(0);  // a row that saw no key outputs 0 and has lse -inf
      std::fill(p + lim, p + n, T(0));
    }
    rows_times_panels(b.P, b.ldp, b.cols, n, s.Lk, D, rows, inv, O + i0 * so, so);
    for (int64_t i = 0; i < rows; ++i) lse[i0 + i] = l[i] > T(0) ? m[i] + std::log(l[i]) : T(-INFINITY);
  }
}

template <class T>
void attention_head_backward(const T* Q, int64_t sq, const T* K, int64_t sk, const T* Vv, int64_t sv, const T* O, int64_t so,
                             const T* dO, int64_t sdo, const T* lse, T* dQ, int64_t sdq, T* dK, int64_t sdk, T* dV, int64_t sdv,
                             const AttnShape& s, bool causal, T sc, AttnBuffers<T>& b) {
  using C = AttnTiles<T>;
  constexpr int MR = C::MR;
  const int64_t D = s.D, w = C::nvd(D) * C::W;
  pack_rows_transposed<T, C::NR>(K, sk, s.Lk, D, b.kt);
  pack_rows_transposed<T, C::NR>(Vv, sv, s.Lk, D, b.vt);
  pack_column_panels<T>(K, sk, s.Lk, D, w, b.cols);
  for (int64_t ib = 0; ib < s.Lq; ib += C::kBackRows) {
    const int64_t qrows = std::min(C::kBackRows, s.Lq - ib), nb = key_limit(ib + qrows - 1, s, causal);  // keys the block sees
    for (int64_t i0 = ib; i0 < ib + qrows; i0 += MR) {
      const int64_t rows = std::min<int64_t>(MR, ib + qrows - i0), n = key_limit(i0 + rows - 1, s, causal);
      T *P = b.P + (i0 - ib) * b.ldp, *dS = b.dS + (i0 - ib) * b.ldp;
      pack_block_rows<T, MR>(Q + i0 * sq, sq, rows, D, sc, b.qa);
      pack_block_rows<T, MR>(dO + i0 * sdo, sdo, rows, D, T(1), b.da);
      score_rows(b.qa, b.kt, n, D, P, b.ldp);   // S
      score_rows(b.da, b.vt, n, D, dS, b.ldp);  // dP = dO V^T
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t lim = key_limit(i0 + i, s, causal);
        T *p = P + i * b.ldp, *ds = dS + i * b.ldp;
        const T *o = O + (i0 + i) * so, *g = dO + (i0 + i) * sdo;
        T di = 0;  // D_i = dO_i . O_i = sum_j P_ij dP_ij
        for (int64_t c = 0; c < D; ++c) di += g[c] * o[c];
        row_softmax_backward(p, ds, lim, lse[i0 + i], di, sc);  // P = e^(S - lse), dS = P (dP - D) scale
        std::fill(p + lim, p + nb, T(0));
        std::fill(ds + lim, ds + nb, T(0));
      }
      rows_times_panels(dS, b.ldp, b.cols, n, s.Lk, D, rows, static_cast<const T*>(nullptr), dQ + i0 * sdq, sdq);  // dQ = dS K
    }
    gemm(nb, D, qrows, T(1), b.dS, 1, b.ldp, Q + ib * sq, sq, 1, T(1), dK, sdk, 1);  // dK += dS^T Q_blk
    gemm(nb, D, qrows, T(1), b.P, 1, b.ldp, dO + ib * sdo, sdo, 1, T(1), dV, sdv, 1);  // dV += P^T dO_blk
  }
}

#if defined(__AVX2__) && defined(__FMA__)
// ---- decoding: a few queries against the keys of a cache (float32, D a multiple of 8) ---------------
//
// Clever part: one query row against n keys is a vector-matrix product, which the GEMM runs as one
// dot product per key (K^T's columns are the keys) -- for ImageGPT's D = 16 two vector FMAs, then a
// horizontal sum and a call per key: ~58% of `dgm sample imagegpt`. Here 8 keys go at a time: each
// key's D products stay in a vector (D / 8 FMAs), and the 8 vectors are summed across lanes
// together by a tree of hadds, giving the 8 scores in one vector. P V then runs 4 keys at a time
// into 4 accumulators (a single one would wait on its FMA latency each key).
inline bool decode_pays(const AttnShape& s) { return !register_tiles_pay(s) && s.D % 8 == 0; }
// Heads per thread: a parallel region from 2^17 multiply-adds (head_grain's 2^20 was sized for the
// dot-per-key speed; at this kernel's, 2^17 is ~10 us on one Zen 3 core): ImageGPT's 64 heads of
// 16-sample decoding take both cores past ~130 keys. imagegpt_sample16, the two alternated 6 rounds on
// 2 Zen 3 cores: 0.30-0.48 -> 0.21-0.29 s.
inline int64_t decode_grain(const AttnShape& s) { return std::max<int64_t>(1, (int64_t{1} << 17) / std::max<int64_t>(1, s.Lq * s.Lk * s.D)); }

// out[j] = sc * (q . K[j]) for j < n (K's rows sk apart).
inline void decode_scores(const float* q, const float* K, int64_t sk, int64_t n, int64_t D, float sc, float* out) {
  const __m256 vsc = _mm256_set1_ps(sc);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) {
      const float* k = K + (j + r) * sk;
      __m256 a = _mm256_mul_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(k));
      for (int64_t d = 8; d < D; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a);
      acc[r] = a;
    }
    // hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7]: two levels leave
    // u0 = [key 0..3, lanes 0-3 summed | key 0..3, lanes 4-7 summed] (u1: keys 4..7); the halves add
    const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]), _mm256_hadd_ps(acc[6], acc[7]));
    const __m256 s = _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
    _mm256_storeu_ps(out + j, _mm256_mul_ps(s, vsc));
  }
  for (; j < n; ++j) {
    const float* k = K + j * sk;
    __m256 a = _mm256_mul_ps(_mm256_loadu_ps(q), _mm256_loadu_ps(k));
    for (int64_t d = 8; d < D; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(k + d), a);
    out[j] = sum256(a) * sc;
  }
}

// o[0, 8 NV) = scale * sum_{j < n} p[j] V[j, 0, 8 NV) (V's rows sv apart).
template <int NV>
void decode_values(const float* p, const float* V, int64_t sv, int64_t n, float scale, float* o) {
  __m256 acc[4][NV];
#pragma GCC unroll 4
  for (int u = 0; u < 4; ++u)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[u][v] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 4 <= n; j += 4)
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      const __m256 pj = _mm256_broadcast_ss(p + j + u);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[u][v] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(V + (j + u) * sv + 8 * v), acc[u][v]);
    }
  for (; j < n; ++j)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[0][v] = _mm256_fmadd_ps(_mm256_broadcast_ss(p + j), _mm256_loadu_ps(V + j * sv + 8 * v), acc[0][v]);
  const __m256 vs = _mm256_set1_ps(scale);
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v)
    _mm256_storeu_ps(o + 8 * v, _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(acc[0][v], acc[1][v]), _mm256_add_ps(acc[2][v], acc[3][v])), vs));
}

// One head: each query row's scores into p (Lk floats), its exact max and sum, then P V.
inline void attention_head_decode(const float* Q, int64_t sq, const float* K, int64_t sk, const float* Vv, int64_t sv, float* O,
                                  int64_t so, float* lse, const AttnShape& s, bool causal, float sc, float* p) {
  for (int64_t i = 0; i < s.Lq; ++i) {
    const int64_t n = key_limit(i, s, causal);
    float* o = O + i * so;
    decode_scores(Q + i * sq, K, sk, n, s.D, sc, p);
    const float m = row_max(p, n);  // -inf for no key
    if (m == -INFINITY) {  // a row that saw no key (or only -inf scores) outputs 0 and has lse -inf, as the tiled paths
      std::fill(o, o + s.D, 0.0f);
      lse[i] = -INFINITY;
      continue;
    }
    const float l = row_exp_sum(p, n, m);
    int64_t c = 0;
    for (; c + 32 <= s.D; c += 32) decode_values<4>(p, Vv + c, sv, n, 1.0f / l, o + c);
    for (; c + 16 <= s.D; c += 16) decode_values<2>(p, Vv + c, sv, n, 1.0f / l, o + c);
    for (; c < s.D; c += 8) decode_values<1>(p, Vv + c, sv, n, 1.0f / l, o + c);
    lse[i] = m + std::log(l);
  }
}
#endif  // __AVX2__ && __FMA__
#endif  // DGM_SIMD_KERNELS

}  // namespace

// Forward, per head and query block: the keys are visited tile by tile with an online softmax.
// Each row keeps its running max m and sum l of exp(s - m); when a tile raises the max, the sum and
// the output accumulated so far are rescaled by exp(m_old - m_new). At the end O = acc / l and
// lse = m + log l is saved for the backward pass.
AttentionResult attention_forward(const Array& q_in, const Array& k_in, const Array& v_in, bool causal, double scale) {
  AttnShape s = check_attention(q_in, k_in, v_in);
  Array q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in);
  AttentionResult r{heads_last(s.B, s.H, s.Lq, s.D, q.dtype(), false), Array::empty({s.B, s.H, s.Lq}, q.dtype())};
  dispatch_floating(q.dtype(), "attention", [&]<class T>() {
    const Heads<T> hq(q), hk(k), hv(v), ho(r.out);
    T* lp = r.lse.data<T>();
    const T sc = static_cast<T>(scale);
#if DGM_SIMD_KERNELS
#if defined(__AVX2__) && defined(__FMA__)
    if constexpr (std::is_same_v<T, float>) {
      if (decode_pays(s)) {
        parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
          Array p_buf = Array::empty({s.Lk + 1}, q.dtype());
          for (int64_t bh = h0; bh < h1; ++bh)
            attention_head_decode(hq.head(bh, s.H), hq.sr, hk.head(bh, s.H), hk.sr, hv.head(bh, s.H), hv.sr,
                                  const_cast<T*>(ho.head(bh, s.H)), ho.sr, lp + bh * s.Lq, s, causal, sc, p_buf.data<T>());
        }, decode_grain(s));
        return;
      }
    }
#endif
    if (register_tiles_pay(s)) {
      parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
        AttnBuffers<T> buf(s, q.dtype(), false);
        for (int64_t bh = h0; bh < h1; ++bh)
          attention_head_forward<T>(hq.head(bh, s.H), hq.sr, hk.head(bh, s.H), hk.sr, hv.head(bh, s.H), hv.sr,
                                    const_cast<T*>(ho.head(bh, s.H)), ho.sr, lp + bh * s.Lq, s, causal, sc, buf);
      }, head_grain(s), kHeadRangesPerThread);
      return;
    }
#endif
    parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
      // per-thread tile buffers, from the caching allocator (a training step allocates nothing new)
      Array P_buf = Array::empty({kQueryBlock, kKeyBlock}, q.dtype()), acc_buf = Array::empty({kQueryBlock, s.D}, q.dtype());
      T *P = P_buf.data<T>(), *acc = acc_buf.data<T>();
      T m[kQueryBlock], l[kQueryBlock];
      for (int64_t bh = h0; bh < h1; ++bh) {
        const T *Q = hq.head(bh, s.H), *K = hk.head(bh, s.H), *V = hv.head(bh, s.H);
        T *O = const_cast<T*>(ho.head(bh, s.H)), *lse = lp + bh * s.Lq;
        for (int64_t i0 = 0; i0 < s.Lq; i0 += kQueryBlock) {
          const int64_t rows = std::min(kQueryBlock, s.Lq - i0), n = key_limit(i0 + rows - 1, s, causal);  // keys the last row sees
          std::fill(m, m + kQueryBlock, T(-INFINITY));
          std::fill(l, l + kQueryBlock, T(0));
          std::fill(acc, acc + kQueryBlock * s.D, T(0));
          for (int64_t j0 = 0; j0 < n; j0 += kKeyBlock) {
            const int64_t nk = std::min(kKeyBlock, n - j0);
            gemm(rows, nk, s.D, sc, Q + i0 * hq.sr, hq.sr, 1, K + j0 * hk.sr, 1, hk.sr, T(0), P, nk, 1);  // Q_blk K_tile^T
            for (int64_t r_ = 0; r_ < rows; ++r_) {
              T* p = P + r_ * nk;
              const int64_t lim = std::clamp<int64_t>(key_limit(i0 + r_, s, causal) - j0, 0, nk);  // keys of this tile row r_ sees
              const T m_new = std::max(m[r_], max_of(p, lim));
              if (m_new == T(-INFINITY)) {  // nothing seen yet: the row stays empty
                std::fill(p, p + nk, T(0));
                continue;
              }
              const T sum = exp_shift_sum(p, lim, m_new);
              std::fill(p + lim, p + nk, T(0));
              const T corr = exp_approx(m[r_] - m_new);  // 0 on the first tile (m = -inf)
              l[r_] = l[r_] * corr + sum;
              m[r_] = m_new;
              if (corr != T(1))
                for (int64_t c = 0; c < s.D; ++c) acc[r_ * s.D + c] *= corr;
            }
            gemm(rows, s.D, nk, T(1), P, nk, 1, V + j0 * hv.sr, hv.sr, 1, T(1), acc, s.D, 1);  // acc += P V_tile
          }
          for (int64_t r_ = 0; r_ < rows; ++r_) {  // a row that saw no key (l = 0) outputs 0 and has lse -inf
            const T inv = l[r_] > T(0) ? T(1) / l[r_] : T(0);
            for (int64_t c = 0; c < s.D; ++c) O[(i0 + r_) * ho.sr + c] = acc[r_ * s.D + c] * inv;
            lse[i0 + r_] = l[r_] > T(0) ? m[r_] + std::log(l[r_]) : T(-INFINITY);
          }
        }
      }
    }, head_grain(s), kHeadRangesPerThread);
  });
  return r;
}

// Backward, per head, query block and key tile (FlashAttention's recomputation): P is rebuilt from
// the saved log-sum-exp, never stored; dQ accumulates over the key tiles, dK and dV over the query
// blocks.
AttentionGrads attention_backward(const Array& q_in, const Array& k_in, const Array& v_in, const Array& out_in, const Array& lse_in,
                                  const Array& dout_in, bool causal, double scale) {
  AttnShape s = check_attention(q_in, k_in, v_in);
  Array q = unit_last_stride(q_in), k = unit_last_stride(k_in), v = unit_last_stride(v_in), out = unit_last_stride(out_in),
        lse = lse_in.contiguous(), dout = unit_last_stride(dout_in);
  AttentionGrads g{heads_last(s.B, s.H, s.Lq, s.D, q.dtype(), true), heads_last(s.B, s.H, s.Lk, s.D, q.dtype(), true),
                   heads_last(s.B, s.H, s.Lk, s.D, q.dtype(), true)};
  dispatch_floating(q.dtype(), "attention_backward", [&]<class T>() {
    const Heads<T> hq(q), hk(k), hv(v), ho(out), hdo(dout), hdq(g.dq), hdk(g.dk), hdv(g.dv);
    const T* lp = lse.data<T>();
    const T sc = static_cast<T>(scale);
    // heads are independent, so each thread owns whole heads (dk, dv accumulate over query blocks)
#if DGM_SIMD_KERNELS
    if (register_tiles_pay(s)) {
      parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
        AttnBuffers<T> buf(s, q.dtype(), true);
        for (int64_t bh = h0; bh < h1; ++bh)
          attention_head_backward<T>(hq.head(bh, s.H), hq.sr, hk.head(bh, s.H), hk.sr, hv.head(bh, s.H), hv.sr, ho.head(bh, s.H), ho.sr,
                                     hdo.head(bh, s.H), hdo.sr, lp + bh * s.Lq, const_cast<T*>(hdq.head(bh, s.H)), hdq.sr,
                                     const_cast<T*>(hdk.head(bh, s.H)), hdk.sr, const_cast<T*>(hdv.head(bh, s.H)), hdv.sr, s, causal, sc, buf);
      }, head_grain(s), kHeadRangesPerThread);
      return;
    }
#endif
    parallel_for(s.B * s.H, [&](int64_t h0, int64_t h1) {
      Array P_buf = Array::empty({kQueryBlock, kKeyBlock}, q.dtype()), dP_buf = Array::empty({kQueryBlock, kKeyBlock}, q.dtype());
      T *P = P_buf.data<T>(), *dP = dP_buf.data<T>(), Di[kQueryBlock];
      for (int64_t bh = h0; bh < h1; ++bh) {
        const T *Q = hq.head(bh, s.H), *K = hk.head(bh, s.H), *V = hv.head(bh, s.H);
        const T *O = ho.head(bh, s.H), *dO = hdo.head(bh, s.H), *lse = lp + bh * s.Lq;
        T *dQ = const_cast<T*>(hdq.head(bh, s.H)), *dK = const_cast<T*>(hdk.head(bh, s.H)), *dV = const_cast<T*>(hdv.head(bh, s.H));
        for (int64_t i0 = 0; i0 < s.Lq; i0 += kQueryBlock) {
          const int64_t rows = std::min(kQueryBlock, s.Lq - i0), n = key_limit(i0 + rows - 1, s, causal);
          for (int64_t r_ = 0; r_ < rows; ++r_) {  // D_i = dO_i . O_i = sum_j P_ij dP_ij
            const T *a = dO + (i0 + r_) * hdo.sr, *b = O + (i0 + r_) * ho.sr;
            T d = 0;
            for (int64_t c = 0; c < s.D; ++c) d += a[c] * b[c];
            Di[r_] = d;
          }
          for (int64_t j0 = 0; j0 < n; j0 += kKeyBlock) {
            const int64_t nk = std::min(kKeyBlock, n - j0);
            const T *Kt = K + j0 * hk.sr, *Vt = V + j0 * hv.sr;
            // P = exp(S - lse) recomputed;  dP = dO_blk V_tile^T;  dS = P (dP - D) scale, written over dP
            gemm(rows, nk, s.D, sc, Q + i0 * hq.sr, hq.sr, 1, Kt, 1, hk.sr, T(0), P, nk, 1);
            gemm(rows, nk, s.D, T(1), dO + i0 * hdo.sr, hdo.sr, 1, Vt, 1, hv.sr, T(0), dP, nk, 1);
            for (int64_t r_ = 0; r_ < rows; ++r_) {
              const int64_t lim = std::clamp<int64_t>(key_limit(i0 + r_, s, causal) - j0, 0, nk);
              T *p = P + r_ * nk, *ds = dP + r_ * nk;
              const T li = lse[i0 + r_], di = Di[r_];
#pragma omp simd
              for (int64_t j = 0; j < lim; ++j) {
                p[j] = exp_approx(p[j] - li);
                ds[j] = p[j] * (ds[j] - di) * sc;
              }
              std::fill(p + lim, p + nk, T(0));
              std::fill(ds + lim, ds + nk, T(0));
            }
            gemm(rows, s.D, nk, T(1), dP, nk, 1, Kt, hk.sr, 1, T(1), dQ + i0 * hdq.sr, hdq.sr, 1);           // dQ_blk += dS K_tile
            gemm(nk, s.D, rows, T(1), dP, 1, nk, Q + i0 * hq.sr, hq.sr, 1, T(1), dK + j0 * hdk.sr, hdk.sr, 1);  // dK_tile += dS^T Q_blk
            gemm(nk, s.D, rows, T(1), P, 1, nk, dO + i0 * hdo.sr, hdo.sr, 1, T(1), dV + j0 * hdv.sr, hdv.sr, 1);  // dV_tile += P^T dO_blk
          }
        }
      }
    }, head_grain(s), kHeadRangesPerThread);
  });
  return g;
}

// ---- linear + bias + activation --------------------------------------------------------------------
namespace {
template <class T>
T gelu_of(T x) {  // exact (erf) GELU, as Unary::Gelu: x Phi(x), vectorisable in float (tensor/vecmath.h)
  return x * normal_cdf_approx(x);
}
}  // namespace

LinearResult linear_forward(const Array& x, const Array& weight, const Array& bias, LinearActivation act) {
  check_float(x, "linear", "input");
  check_same_dtype(x, weight, "linear");
  if (x.dim() != 2 || weight.dim() != 2 || x.size(1) != weight.size(1))
    throw ShapeError(cat("linear: expected x (N, in) and weight (out, in), got ", shape_str(x.shape()), " and ", shape_str(weight.shape())));
  const int64_t N = x.size(0), in = x.size(1), out = weight.size(0);
  if (bias.defined() && bias.shape() != Shape{out})
    throw ShapeError(cat("linear: bias ", shape_str(bias.shape()), " does not match out_features = ", out));
  if (bias.defined()) check_same_dtype(x, bias, "linear");
  LinearResult r{Array::empty({N, out}, x.dtype()), Array()};
  dispatch_floating(x.dtype(), "linear", [&]<class T>() {
    T* y = r.y.data<T>();
    Array bc = bias.defined() ? bias.contiguous() : Array();
    // The bias and ReLU are the GEMM's epilogue: applied to each row panel of y while it is in cache.
    // B[k, n] = W[n, k]: W^T is W with its strides swapped, never copied.
    const GemmEpilogue<T> epilogue{bias.defined() ? bc.data<T>() : nullptr, act == LinearActivation::ReLU};
    gemm(N, out, in, T(1), x.data<T>(), x.stride(0), x.stride(1), weight.data<T>(), weight.stride(1), weight.stride(0), T(0), y,
         out, 1, epilogue);
    if (act != LinearActivation::GELU) return;
    // GELU's derivative needs the pre-activation: the product becomes `pre`, y = GELU(pre) in one pass
    r.pre = r.y;
    r.y = Array::empty({N, out}, x.dtype());
    const T* pre = r.pre.data<T>();
    T* act_out = r.y.data<T>();
    parallel_for(N * out, [pre, act_out](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) act_out[i] = gelu_of(pre[i]);
    });
  });
  return r;
}

namespace {
// Rows per partial of a bias gradient (a column sum of g over rows): fixed, so the sum's order is.
constexpr int64_t kBiasChunkRows = 64;

// o[j] = d[j] * act'(saved[j]) for j < n, act ReLU or GELU (saved: the output for ReLU, the
// pre-activation for GELU).
template <class T>
inline void activation_grad_row(LinearActivation act, const T* d, const T* sp, int64_t n, T* o) {
  if (act == LinearActivation::ReLU) {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) o[j] = sp[j] > T(0) ? d[j] : T(0);
  } else {
    for (int64_t j = 0; j < n; ++j) o[j] = d[j] * gelu_slope_approx(sp[j]);  // d/dx x Phi(x)
  }
}

// g = dy * act'(saved), row by row (for None, g is dy itself and nothing is written), and, when db
// is given, db = the column sums of g. The sums are taken over fixed chunks of rows and the chunks
// added in order, so db is the same for any thread count; one pass reads dy (and saved) once.
template <class T>
void activation_backward(int64_t N, int64_t W, const T* dy, const T* saved, LinearActivation act, T* g, T* db) {
  constexpr int64_t kRows = kBiasChunkRows;
  const int64_t chunks = (N + kRows - 1) / kRows;
  Array partial = db ? Array::empty({chunks, W}, dtype_of<T>()) : Array();
  T* part = db ? partial.data<T>() : nullptr;
  parallel_for(chunks, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      T* acc = part ? part + c * W : nullptr;
      if (acc) std::fill(acc, acc + W, T(0));
      for (int64_t i = c * kRows; i < std::min(N, (c + 1) * kRows); ++i) {
        const T *d = dy + i * W, *row = d;
        if (act != LinearActivation::None) {
          activation_grad_row(act, d, saved + i * W, W, g + i * W);
          row = g + i * W;
        }
        if (acc) {
#pragma omp simd
          for (int64_t j = 0; j < W; ++j) acc[j] += row[j];
        }
      }
    }
  }, std::max<int64_t>(1, kParallelGrain / (kRows * std::max<int64_t>(W, 1))));
  if (!db) return;
  if (chunks == 0) {  // no rows
    std::fill(db, db + W, T(0));
    return;
  }
  combine_chunks_in_order(part, 1, chunks, W, [](T a, T b) { return a + b; }, [&](int64_t j, T s) { db[j] = s; });
}
}  // namespace

LinearGrads linear_backward(const Array& x, const Array& weight, const Array& saved, const Array& dy_in, LinearActivation act, bool need_dx,
                            bool need_dweight, bool need_dbias) {
  const int64_t N = x.size(0), in = x.size(1), out = weight.size(0);
  LinearGrads g;
  dispatch_floating(x.dtype(), "linear_backward", [&]<class T>() {
    // gp = dL/d(pre): dy through the activation, (N, out) contiguous; db = its column sums, same pass
    Array dy = dy_in.contiguous(), s = act == LinearActivation::None ? Array() : saved.contiguous();
    Array gpre = act == LinearActivation::None ? dy : Array::empty({N, out}, x.dtype());
    if (need_dbias) g.dbias = Array::empty({out}, x.dtype());
    activation_backward<T>(N, out, dy.data<T>(), s.defined() ? s.data<T>() : nullptr, act, gpre.data<T>(),
                           need_dbias ? g.dbias.data<T>() : nullptr);
    const T* gp = gpre.data<T>();
    if (need_dx) {  // dx = gp W: (N, out) @ (out, in)
      g.dx = Array::empty({N, in}, x.dtype());
      gemm(N, in, out, T(1), gp, out, 1, weight.data<T>(), weight.stride(0), weight.stride(1), T(0), g.dx.data<T>(), in, 1);
    }
    if (need_dweight) {  // dW = gp^T x: (out, N) @ (N, in)
      g.dweight = Array::empty({out, in}, x.dtype());
      gemm(out, in, N, T(1), gp, 1, out, x.data<T>(), x.stride(0), x.stride(1), T(0), g.dweight.data<T>(), in, 1);
    }
  });
  return g;
}

// ---- embedding bag + bias + activation -------------------------------------------------------------
LinearResult embedding_bag_forward(const Array& weight_in, const Array& indices_in, const Array& bias, LinearActivation act) {
  check_float(weight_in, "embedding_bag", "weight");
  if (weight_in.dim() != 2) throw ShapeError(cat("embedding_bag: weight must be (num_embeddings, dim), got ", shape_str(weight_in.shape())));
  if (indices_in.dtype() != DType::Int64) throw DTypeError(cat("embedding_bag: indices must be int64, got ", dtype_name(indices_in.dtype())));
  if (indices_in.dim() != 2) throw ShapeError(cat("embedding_bag: indices must be (N, bag size), got ", shape_str(indices_in.shape())));
  const int64_t V = weight_in.size(0), H = weight_in.size(1), N = indices_in.size(0), K = indices_in.size(1);
  if (bias.defined() && bias.shape() != Shape{H})
    throw ShapeError(cat("embedding_bag: bias ", shape_str(bias.shape()), " does not match the embedding dim ", H));
  if (bias.defined()) check_same_dtype(weight_in, bias, "embedding_bag");
  Array weight = weight_in.contiguous(), indices = indices_in.contiguous();
  const int64_t* idx = indices.data<int64_t>();
  for (int64_t i = 0; i < N * K; ++i)
    if (idx[i] < 0 || idx[i] >= V)
      throw IndexError(cat("embedding_bag: index ", idx[i], " at (", i / std::max<int64_t>(K, 1), ", ", i % std::max<int64_t>(K, 1),
                           ") is out of range for a table of ", V, " rows"));
  LinearResult r{Array::empty({N, H}, weight.dtype()), Array()};
  if (act == LinearActivation::GELU) r.pre = Array::empty({N, H}, weight.dtype());
  dispatch_floating(weight.dtype(), "embedding_bag", [&]<class T>() {
    const T* w = weight.data<T>();
    Array bc = bias.defined() ? bias.contiguous() : Array();
    const T* b = bias.defined() ? bc.data<T>() : nullptr;
    T *y = r.y.data<T>(), *pre = r.pre.defined() ? r.pre.data<T>() : nullptr;
    parallel_for(N, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        T* yr = y + n * H;
        if (b) std::copy(b, b + H, yr);
        else std::fill(yr, yr + H, T(0));
        for (int64_t k = 0; k < K; ++k) {
          const T* row = w + idx[n * K + k] * H;
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) yr[j] += row[j];
        }
        if (act == LinearActivation::ReLU) {
#pragma omp simd
          for (int64_t j = 0; j < H; ++j) yr[j] = yr[j] > T(0) ? yr[j] : T(0);
        } else if (act == LinearActivation::GELU) {
          std::copy(yr, yr + H, pre + n * H);
          for (int64_t j = 0; j < H; ++j) yr[j] = gelu_of(yr[j]);
        }
      }
    }, row_grain(H * std::max<int64_t>(K, 1)));
  });
  return r;
}

// Clever part: each thread owns a band of columns (whole cache lines) of every table row and of the
// bias gradient, and walks all bags in order: dy goes through the activation on the fly, into the
// rows its bag names and into the bias sums, so the activation's gradient is never written out and
// dy and the saved output are read once in all (split by table rows, as before, every thread read
// all of the gradient, which a pass before had written out: for MLP-AR's 12544 x 256 ReLU layer on
// 2 threads, 64 MB read or written, now 26 MB). Every value is summed in the same order as before
// (a table row's bags in order, the bias over 64-row chunks added in order), whichever thread owns
// it: the same bits on any thread count.
EmbeddingBagGrads embedding_bag_backward(const Array& indices_in, const Array& saved, const Array& dy_in, int64_t V, LinearActivation act,
                                         bool need_dbias) {
  const int64_t N = indices_in.size(0), K = indices_in.size(1), H = dy_in.size(1);
  Array indices = indices_in.contiguous(), dy = dy_in.contiguous();
  EmbeddingBagGrads g{Array::zeros({V, H}, dy.dtype()), Array()};
  dispatch_floating(dy.dtype(), "embedding_bag_backward", [&]<class T>() {
    Array s = act == LinearActivation::None ? Array() : saved.contiguous();
    if (need_dbias) g.dbias = Array::empty({H}, dy.dtype());
    const T* d = dy.data<T>();
    const T* sv = s.defined() ? s.data<T>() : nullptr;
    const int64_t* idx = indices.data<int64_t>();
    T* dw = g.dweight.data<T>();
    T* db = need_dbias ? g.dbias.data<T>() : nullptr;
    constexpr int64_t kLine = 64 / int64_t(sizeof(T)), kRows = kBiasChunkRows, kAhead = 8;
    const int64_t lines = (H + kLine - 1) / kLine;
    const int64_t bands = std::min<int64_t>(lines, team_for(N * std::max<int64_t>(K, 1) * H, kParallelGrain));
    parallel_for(bands, [&](int64_t b0, int64_t b1) {
      const int64_t j0 = std::min(H, lines * b0 / bands * kLine), j1 = std::min(H, lines * b1 / bands * kLine), w = j1 - j0;
      if (w <= 0) return;
      std::vector<T> gbuf(size_t(w), T(0)), chunk(db ? size_t(w) : 0, T(0)), total(db ? size_t(w) : 0, T(0));
      T* gr = gbuf.data();
      for (int64_t n = 0; n < N; ++n) {
        const T* dr = d + n * H + j0;
        if (n + kAhead < N)  // a band of each row is a short run that the hardware prefetcher follows late
          for (int64_t j = 0; j < w; j += kLine) {
            __builtin_prefetch(dr + kAhead * H + j);
            if (sv) __builtin_prefetch(sv + (n + kAhead) * H + j0 + j);
          }
        if (act == LinearActivation::None) std::copy(dr, dr + w, gr);
        else activation_grad_row(act, dr, sv + n * H + j0, w, gr);
        for (int64_t k = 0; k < K; ++k) {
          T* dst = dw + idx[n * K + k] * H + j0;
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) dst[j] += gr[j];
        }
        if (db) {
          T* c = chunk.data();
#pragma omp simd
          for (int64_t j = 0; j < w; ++j) c[j] += gr[j];
          if ((n + 1) % kRows == 0 || n + 1 == N) {  // a chunk ends: total = chunk 0, then + each chunk in order
            T* t = total.data();
            if (n < kRows) {
              std::copy(c, c + w, t);
            } else {
#pragma omp simd
              for (int64_t j = 0; j < w; ++j) t[j] += c[j];
            }
            std::fill(c, c + w, T(0));
          }
        }
      }
      if (db) std::copy(total.begin(), total.end(), db + j0);  // 0 for no rows
    }, 1);
  });
  return g;
}

}  // namespace dgm::cpu
