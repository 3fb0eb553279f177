// 2-D convolution on the blocked GEMM (see tensor/conv.h).
#include "tensor/conv.h"

#include <omp.h>

#include <algorithm>

#include "tensor/errors.h"
#include "tensor/gemm.h"

namespace dgm::cpu {
namespace {

// Sizes of one convolution, checked; the taps (offsets i*KW + j) spelled out.
struct Geometry {
  int64_t B, C, H, W, O, KH, KW, Ho, Wo, stride, padding;
  std::vector<int64_t> taps;
  int64_t T() const { return int64_t(taps.size()); }
  int64_t K() const { return C * T(); }  // rows of cols, columns of Wt
  int64_t P() const { return Ho * Wo; }  // output pixels per image
};

Geometry geometry(const Array& x, const Array& weight, int64_t stride, int64_t padding, const std::vector<int64_t>& taps) {
  if (x.dim() != 4) throw ShapeError(cat("conv2d: input must be (B, C, H, W), got ", shape_str(x.shape())));
  if (weight.dim() != 4)
    throw ShapeError(cat("conv2d: weight must be (out_channels, in_channels, kh, kw), got ", shape_str(weight.shape())));
  if (x.dtype() != weight.dtype() || (x.dtype() != DType::Float32 && x.dtype() != DType::Float64))
    throw DTypeError(cat("conv2d: input and weight must both be float32 or both float64, got ", dtype_name(x.dtype()), " and ",
                         dtype_name(weight.dtype())));
  Geometry g{x.size(0), x.size(1), x.size(2), x.size(3), weight.size(0), weight.size(2), weight.size(3), 0, 0, stride, padding, taps};
  if (weight.size(1) != g.C)
    throw ShapeError(cat("conv2d: input ", shape_str(x.shape()), " has ", g.C, " channels but the weight ", shape_str(weight.shape()),
                         " expects ", weight.size(1)));
  if (stride < 1 || padding < 0) throw ValueError(cat("conv2d: stride must be >= 1 and padding >= 0, got ", stride, " and ", padding));
  const int64_t Hp = g.H + 2 * padding, Wp = g.W + 2 * padding;
  if (Hp < g.KH || Wp < g.KW)
    throw ShapeError(cat("conv2d: kernel ", g.KH, "x", g.KW, " is larger than the padded input ", Hp, "x", Wp, " (input ",
                         shape_str(x.shape()), ")"));
  g.Ho = (Hp - g.KH) / stride + 1;
  g.Wo = (Wp - g.KW) / stride + 1;
  if (g.taps.empty())
    for (int64_t t = 0; t < g.KH * g.KW; ++t) g.taps.push_back(t);
  for (size_t t = 0; t < g.taps.size(); ++t)
    if (g.taps[t] < 0 || g.taps[t] >= g.KH * g.KW || (t > 0 && g.taps[t] <= g.taps[t - 1]))
      throw ValueError(cat("conv2d: taps must be increasing offsets i*kw + j in [0, ", g.KH * g.KW, "), got ", g.taps[t], " at ", t));
  return g;
}

// The columns wo of an output row whose input column wo*s + j - p lies inside [0, W): [lo, hi).
void valid_columns(const Geometry& g, int64_t j, int64_t& lo, int64_t& hi) {
  const int64_t first = j - g.padding;  // input column of wo = 0
  lo = first >= 0 ? 0 : (-first + g.stride - 1) / g.stride;
  hi = first > g.W - 1 ? 0 : std::min(g.Wo, (g.W - 1 - first) / g.stride + 1);
  lo = std::min(lo, hi);
}

// cols[(c*T + t), ho*Wo + wo] = x[c, ho*s + i - p, wo*s + j - p] (0 outside the image), for one
// image x (C, H, W) with strides (sc, sh, sw) and tap t = (i, j).
// Channels [c_begin, c_end) only, when given: their rows start at cols.
template <class T>
void im2col(const T* x, int64_t sc, int64_t sh, int64_t sw, const Geometry& g, T* cols, int64_t c_begin = 0, int64_t c_end = -1) {
  if (c_end < 0) c_end = g.C;
  for (int64_t c = c_begin; c < c_end; ++c)
    for (int64_t t = 0; t < g.T(); ++t) {
      const int64_t i = g.taps[t] / g.KW, j = g.taps[t] % g.KW;
      int64_t lo, hi;
      valid_columns(g, j, lo, hi);
      T* row = cols + ((c - c_begin) * g.T() + t) * g.P();
      for (int64_t ho = 0; ho < g.Ho; ++ho) {
        T* out = row + ho * g.Wo;
        const int64_t hi_in = ho * g.stride + i - g.padding;
        if (hi_in < 0 || hi_in >= g.H) {
          std::fill(out, out + g.Wo, T(0));
          continue;
        }
        const T* in = x + c * sc + hi_in * sh + (lo * g.stride + j - g.padding) * sw;
        std::fill(out, out + lo, T(0));
        const int64_t step = g.stride * sw;
        if (step == 1)
          std::copy(in, in + (hi - lo), out + lo);
        else
          for (int64_t wo = lo; wo < hi; ++wo) out[wo] = in[(wo - lo) * step];
        std::fill(out + hi, out + g.Wo, T(0));
      }
    }
}

// The adjoint of im2col: dx[c, ho*s + i - p, wo*s + j - p] += dcols[(c*T + t), ho*Wo + wo], for one
// contiguous image dx (C, H, W), in a fixed order.
template <class T>
void col2im(const T* dcols, const Geometry& g, T* dx) {
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t t = 0; t < g.T(); ++t) {
      const int64_t i = g.taps[t] / g.KW, j = g.taps[t] % g.KW;
      int64_t lo, hi;
      valid_columns(g, j, lo, hi);
      const T* row = dcols + (c * g.T() + t) * g.P();
      for (int64_t ho = 0; ho < g.Ho; ++ho) {
        const int64_t hi_in = ho * g.stride + i - g.padding;
        if (hi_in < 0 || hi_in >= g.H) continue;
        const T* in = row + ho * g.Wo;
        T* out = dx + (c * g.H + hi_in) * g.W + (lo * g.stride + j - g.padding);
        for (int64_t wo = lo; wo < hi; ++wo) out[(wo - lo) * g.stride] += in[wo];
      }
    }
}

// Wt (O, C*T): Wt[o, c*T + t] = w[o, c, taps[t]], the taps of the weight in cols' row order.
template <class T>
std::vector<T> gather_weight(const Array& w, const Geometry& g) {
  std::vector<T> wt(size_t(g.O * g.K()));
  const T* p = w.data<T>();
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t t = 0; t < g.T(); ++t)
        wt[size_t(o * g.K() + c * g.T() + t)] =
            p[o * w.stride(0) + c * w.stride(1) + (g.taps[t] / g.KW) * w.stride(2) + (g.taps[t] % g.KW) * w.stride(3)];
  return wt;
}

// Runs fn(b, scratch) for every image: in parallel over images when there are at least as many as
// threads (each image on one thread, its GEMMs single-threaded), otherwise one image at a time
// with the GEMMs threaded. `scratch` is a per-thread buffer of `scratch_size` elements.
template <class T, class Fn>
void for_each_image(int64_t B, int64_t work_per_image, size_t scratch_size, const Fn& fn) {
  const int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (nt > 1 && B >= nt && work_per_image >= 64 * 64 * 64) {
#pragma omp parallel num_threads(nt)
    {
      std::vector<T> scratch(scratch_size);
      // dynamic: a thread slowed by the machine's other load takes fewer images (an image's result
      // does not depend on which thread computes it)
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < B; ++b) fn(b, scratch.data());
    }
  } else {
    std::vector<T> scratch(scratch_size);
    for (int64_t b = 0; b < B; ++b) fn(b, scratch.data());
  }
}

}  // namespace

Array conv2d_forward(const Array& x, const Array& weight, const Array& bias, int64_t stride, int64_t padding,
                     const std::vector<int64_t>& taps) {
  const Geometry g = geometry(x, weight, stride, padding, taps);
  if (bias.defined() && (bias.shape() != Shape{g.O} || bias.dtype() != x.dtype()))
    throw ShapeError(cat("conv2d: bias ", shape_str(bias.shape()), " ", dtype_name(bias.dtype()), " does not match out_channels = ", g.O,
                         " of ", dtype_name(x.dtype())));
  Array y = Array::empty({g.B, g.O, g.Ho, g.Wo}, x.dtype());
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    const std::vector<T> wt = gather_weight<T>(weight, g);
    Array bc = bias.defined() ? bias.contiguous() : Array();
    const T* bp = bias.defined() ? bc.data<T>() : nullptr;
    const T* xp = x.data<T>();
    T* yp = y.data<T>();
    const int64_t K = g.K(), P = g.P();
    for_each_image<T>(g.B, g.O * K * P, size_t(K * P), [&](int64_t b, T* cols) {
      im2col(xp + b * x.stride(0), x.stride(1), x.stride(2), x.stride(3), g, cols);
      T* yb = yp + b * g.O * P;
      gemm(g.O, P, K, T(1), wt.data(), K, 1, cols, P, 1, T(0), yb, P, 1);  // (O, K) @ (K, P)
      if (bp)
        for (int64_t o = 0; o < g.O; ++o)
          for (int64_t p = 0; p < P; ++p) yb[o * P + p] += bp[o];
    });
  });
  return y;
}

Conv2dGrads conv2d_backward(const Array& x, const Array& weight, const Array& dy_in, int64_t stride, int64_t padding,
                            const std::vector<int64_t>& taps, bool need_dx, bool need_dweight, bool need_dbias) {
  const Geometry g = geometry(x, weight, stride, padding, taps);
  if (dy_in.shape() != Shape{g.B, g.O, g.Ho, g.Wo} || dy_in.dtype() != x.dtype())
    throw ShapeError(cat("conv2d backward: the output gradient ", shape_str(dy_in.shape()), " does not match the output (", g.B, ", ", g.O,
                         ", ", g.Ho, ", ", g.Wo, ")"));
  Conv2dGrads r;
  dispatch_floating(x.dtype(), "conv2d", [&]<class T>() {
    const Array dy = dy_in.contiguous();
    const T* dyp = dy.data<T>();
    const T* xp = x.data<T>();
    const int64_t K = g.K(), P = g.P();
    if (need_dbias) {  // db[o] = sum_{b, p} dy[b, o, p], in a fixed order per o
      r.dbias = Array::empty({g.O}, x.dtype());
      T* db = r.dbias.data<T>();
#pragma omp parallel for schedule(static) if (g.O * g.B * P > (1 << 16) && !omp_in_parallel())
      for (int64_t o = 0; o < g.O; ++o) {
        T s = T(0);
        for (int64_t b = 0; b < g.B; ++b)
          for (int64_t p = 0; p < P; ++p) s += dyp[(b * g.O + o) * P + p];
        db[o] = s;
      }
    }
    if (need_dweight) {
      // dWt (O, K) = sum_b dy_b (O, P) @ cols_b^T (P, K): one GEMM per image, accumulated in image
      // order. The input channels are cut into groups (4 per thread, handed out dynamically); a
      // group's thread builds only its rows of cols and owns its columns of dWt, so the threads
      // share no sum: the same bits for any thread count.
      std::vector<T> dwt(size_t(g.O * K));
      const int64_t nt = omp_in_parallel() || g.O * K * P * g.B < (1 << 18) ? 1 : omp_get_max_threads();
      const int64_t groups = std::min<int64_t>(g.C, 4 * nt);
#pragma omp parallel num_threads(int(nt))
      {
        std::vector<T> cols(size_t((g.C + groups - 1) / groups * g.T() * P));
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < groups; ++q) {
          const int64_t c0 = g.C * q / groups, c1 = g.C * (q + 1) / groups, k0 = c0 * g.T(), kn = (c1 - c0) * g.T();
          for (int64_t b = 0; b < g.B && kn > 0; ++b) {
            im2col(xp + b * x.stride(0), x.stride(1), x.stride(2), x.stride(3), g, cols.data(), c0, c1);
            gemm(g.O, kn, P, T(1), dyp + b * g.O * P, P, 1, cols.data(), 1, P, b == 0 ? T(0) : T(1), dwt.data() + k0, K, 1);
          }
        }
      }
      r.dweight = Array::zeros(weight.shape(), x.dtype());
      T* dw = r.dweight.data<T>();  // contiguous (O, C, KH, KW); the taps not used stay 0
      for (int64_t o = 0; o < g.O; ++o)
        for (int64_t c = 0; c < g.C; ++c)
          for (int64_t t = 0; t < g.T(); ++t) dw[(o * g.C + c) * g.KH * g.KW + g.taps[t]] = dwt[size_t(o * K + c * g.T() + t)];
    }
    if (need_dx) {
      // dcols_b (K, P) = Wt^T (K, O) @ dy_b (O, P), then col2im adds each tap back to its pixel.
      const std::vector<T> wt = gather_weight<T>(weight, g);
      r.dx = Array::zeros({g.B, g.C, g.H, g.W}, x.dtype());
      T* dx = r.dx.data<T>();
      for_each_image<T>(g.B, g.O * K * P, size_t(K * P), [&](int64_t b, T* dcols) {
        gemm(K, P, g.O, T(1), wt.data(), 1, K, dyp + b * g.O * P, P, 1, T(0), dcols, P, 1);
        col2im(dcols, g, dx + b * g.C * g.H * g.W);
      });
    }
  });
  return r;
}

}  // namespace dgm::cpu
